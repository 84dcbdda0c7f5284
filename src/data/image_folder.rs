//! Image-folder data sets: one subfolder per class, PNG or JPEG files in each
//! (docs/data-roles.md, "Image folders").
//!
//! * Classes: the subfolders in sorted (byte-wise) name order are classes 0, 1, ...; their
//!   number must equal the model's number of classes. Names starting with `.` are skipped, as
//!   are plain files beside the class folders.
//! * Images: every file of a class folder not starting with `.`, in sorted name order, decoded
//!   by content (PNG or JPEG). A file that does not decode, an image with another channel count
//!   than the model's input (greyscale is 1 channel, RGB 3; an alpha channel counts) and a folder
//!   inside a class folder are errors naming the path; so are an empty folder and an empty class.
//!   16-bit images are reduced to 8 bits; pixel values are the 8-bit values, so `scale`, `mean`
//!   and `std` apply as for IDX files.
//! * Size: an image already the model's `H x W` is taken as is; any other is resized (bilinear,
//!   on 8-bit pixels) so that it covers `H x W` (or so that its shorter side is `resize`, when
//!   given) and centre-cropped to `H x W` (offsets rounded down).
//! * Order: classes take turns, image `i` of class 0, of class 1, ..., then image `i + 1`, so
//!   that any first `n` images (the search split) hold every class about equally.
use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::{DynamicImage, GenericImageView};
use rayon::prelude::*;

use super::{DataError, Dataset};

/// What the images must become: the model's input and classes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `[C, H, W]`, C being 1 (greyscale) or 3 (RGB).
    pub shape: Vec<usize>,
    /// The model's number of classes: the number of class folders.
    pub classes: usize,
    /// Shorter side to resize to before the centre crop; None: just enough to cover `H x W`.
    pub resize: Option<u32>,
}

/// Load the image folder `dir` as a data set of `target.shape` images.
pub fn load(dir: &Path, target: &Target) -> Result<Dataset, DataError> {
    let format = |detail: String| DataError::Format { path: dir.to_path_buf(), detail };
    let [c, h, w] = target.shape[..] else {
        return Err(format(format!(
            "an image folder needs a model taking [C, H, W] images, this one takes {:?}",
            target.shape
        )));
    };
    if c != 1 && c != 3 {
        return Err(format(format!(
            "the model takes {c}-channel images; an image folder gives 1 (greyscale) or 3 (RGB)"
        )));
    }
    if let Some(r) = target.resize.filter(|&r| (r as usize) < h.max(w)) {
        return Err(format(format!(
            "resize = {r} is smaller than the model's input {h}x{w}; it must be at least {}",
            h.max(w)
        )));
    }
    let classes = entries(dir)?.into_iter().filter(|p| p.is_dir()).collect::<Vec<_>>();
    if classes.is_empty() {
        return Err(format("holds no class folders (one subfolder per class, holding its images)".into()));
    }
    if classes.len() != target.classes {
        let names: Vec<String> = classes.iter().map(|p| file_name(p)).collect();
        return Err(format(format!(
            "has {} class folders ({}) but the model has {} classes",
            classes.len(),
            names.join(", "),
            target.classes
        )));
    }
    let mut files = Vec::with_capacity(classes.len());
    for class in &classes {
        let list = entries(class)?;
        if let Some(sub) = list.iter().find(|p| p.is_dir()) {
            return Err(DataError::Format {
                path: sub.clone(),
                detail: "a folder inside a class folder (images must be directly in their class folder)".into(),
            });
        }
        if list.is_empty() {
            return Err(DataError::Empty { path: class.clone() });
        }
        files.push(list);
    }
    let order = interleave(&files);
    let size = [h as u32, w as u32];
    // Collected whole before the first error is taken, so the error names the first bad file in
    // reading order, whichever thread met a bad file first (rayon's Result collect keeps any one).
    let read: Vec<Result<Vec<f32>, DataError>> =
        order.par_iter().map(|&(k, i)| read_image(&files[k][i], c, size, target.resize)).collect();
    let pixels = read.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok(Dataset {
        shape: target.shape.clone(),
        raw: pixels.into_iter().flatten().collect(),
        labels: order.iter().map(|&(k, _)| k).collect(),
    })
}

/// The entries of a folder not starting with `.`, sorted by name.
fn entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let unreadable = |source| DataError::Unreadable { path: dir.to_path_buf(), source };
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(unreadable)? {
        let e = e.map_err(unreadable)?;
        if !e.file_name().to_string_lossy().starts_with('.') {
            out.push(e.path());
        }
    }
    out.sort();
    Ok(out)
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// `(class, index in its class)` of every image, classes taking turns.
fn interleave(files: &[Vec<PathBuf>]) -> Vec<(usize, usize)> {
    let longest = files.iter().map(Vec::len).max().unwrap_or(0);
    (0..longest).flat_map(|i| (0..files.len()).filter(move |&k| i < files[k].len()).map(move |k| (k, i))).collect()
}

/// One image as `[channels, size[0], size[1]]` raw 8-bit values, CHW.
fn read_image(path: &Path, channels: usize, size: [u32; 2], resize: Option<u32>) -> Result<Vec<f32>, DataError> {
    let bad = |detail: String| DataError::Format { path: path.to_path_buf(), detail };
    let reader = image::ImageReader::open(path)
        .map_err(|source| DataError::Unreadable { path: path.to_path_buf(), source })?
        .with_guessed_format()
        .map_err(|source| DataError::Unreadable { path: path.to_path_buf(), source })?;
    let img = reader.decode().map_err(|e| bad(format!("not a readable PNG or JPEG image: {e}")))?;
    let color = img.color();
    let have = usize::from(color.channel_count());
    if have != channels {
        let what = match (color.has_color(), color.has_alpha()) {
            (false, false) => "a greyscale image".to_string(),
            (true, false) => "an RGB image".to_string(),
            (_, true) => "an image with an alpha channel".to_string(),
        };
        return Err(bad(format!(
            "{what} ({have} channel{}), but the model takes {channels}-channel images",
            if have == 1 { "" } else { "s" }
        )));
    }
    let img = fit(img, size, resize);
    let [h, w] = size;
    let plane = (h * w) as usize;
    let mut out = vec![0f32; channels * plane];
    let bytes = if channels == 1 { img.to_luma8().into_raw() } else { img.to_rgb8().into_raw() };
    for (p, px) in bytes.chunks_exact(channels).enumerate() {
        for (ch, &v) in px.iter().enumerate() {
            out[ch * plane + p] = f32::from(v);
        }
    }
    Ok(out)
}

/// Resize (if needed) and centre-crop to `size` = `[H, W]`.
fn fit(img: DynamicImage, size: [u32; 2], resize: Option<u32>) -> DynamicImage {
    let [h, w] = size;
    let (iw, ih) = img.dimensions();
    if (ih, iw) == (h, w) && resize.is_none() {
        return img;
    }
    let scale = match resize {
        Some(r) => f64::from(r) / f64::from(iw.min(ih)),
        None => (f64::from(h) / f64::from(ih)).max(f64::from(w) / f64::from(iw)),
    };
    let nw = ((f64::from(iw) * scale).round() as u32).max(w);
    let nh = ((f64::from(ih) * scale).round() as u32).max(h);
    let img = if (nw, nh) == (iw, ih) { img } else { img.resize_exact(nw, nh, FilterType::Triangle) };
    img.crop_imm((nw - w) / 2, (nh - h) / 2, w, h)
}

/// Write `ds` as an image folder in `dir` (which must not exist or be empty): class folders
/// named by their label, zero-padded so that sorted order is label order, one PNG per image
/// named by its index in `ds`. Every label from 0 to the largest must have an image, so that the
/// folder reads back with the same labels.
pub fn write(ds: &Dataset, dir: &Path) -> Result<(), DataError> {
    let format = |detail: String| DataError::Format { path: dir.to_path_buf(), detail };
    let [c, h, w] = ds.shape[..] else {
        return Err(format(format!("images of shape {:?} are not [C, H, W]", ds.shape)));
    };
    if c != 1 && c != 3 {
        return Err(format(format!("{c}-channel images cannot be PNG files (1 or 3 channels)")));
    }
    let classes = ds.labels.iter().max().map_or(0, |m| m + 1);
    if let Some(missing) = (0..classes).find(|k| !ds.labels.contains(k)) {
        return Err(format(format!(
            "label {missing} has no image, so the folder would not read back with the same labels"
        )));
    }
    if ds.raw.iter().any(|&v| !(0.0..=255.0).contains(&v) || v.fract() != 0.0) {
        return Err(format("the pixel values are not all whole numbers in [0, 255] (8-bit PNG)".into()));
    }
    if dir.exists() && std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_some()) {
        return Err(format("already exists and is not empty".into()));
    }
    let digits = |n: usize| n.saturating_sub(1).to_string().len();
    let (cw, iw) = (digits(classes), digits(ds.len()));
    let write_err =
        |path: &Path, e: String| DataError::Format { path: path.to_path_buf(), detail: format!("cannot write: {e}") };
    for k in 0..classes {
        let sub = dir.join(format!("{k:0cw$}"));
        std::fs::create_dir_all(&sub).map_err(|e| write_err(&sub, e.to_string()))?;
    }
    (0..ds.len()).into_par_iter().try_for_each(|i| {
        let path = dir.join(format!("{:0cw$}", ds.labels[i])).join(format!("{i:0iw$}.png"));
        let x = ds.sample(i);
        let plane = h * w;
        let bytes: Vec<u8> = (0..plane).flat_map(|p| (0..c).map(move |ch| x[ch * plane + p] as u8)).collect();
        let color = if c == 1 { image::ExtendedColorType::L8 } else { image::ExtendedColorType::Rgb8 };
        image::save_buffer(&path, &bytes, w as u32, h as u32, color).map_err(|e| write_err(&path, e.to_string()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_take_turns() {
        let f = |n: usize| vec![PathBuf::new(); n];
        assert_eq!(interleave(&[f(2), f(1), f(3)]), vec![(0, 0), (1, 0), (2, 0), (0, 1), (2, 1), (2, 2)]);
    }

    #[test]
    fn fit_covers_then_crops_the_centre() {
        // A 4x2 (w x h) image with distinct columns; the target 2x2 keeps the two middle columns.
        let img = image::GrayImage::from_fn(4, 2, |x, _| image::Luma([10 * x as u8]));
        let out = fit(DynamicImage::ImageLuma8(img.clone()), [2, 2], None).to_luma8();
        assert_eq!(out.into_raw(), vec![10, 20, 10, 20]);
        // Same size: untouched.
        let same = fit(DynamicImage::ImageLuma8(img.clone()), [2, 4], None).to_luma8();
        assert_eq!(same, img);
        // Twice the size, then cropped back to 2x2 from the centre of 8x4.
        let up = fit(DynamicImage::ImageLuma8(img), [2, 2], Some(4));
        assert_eq!(up.dimensions(), (2, 2));
    }
}
