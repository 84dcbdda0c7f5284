//! Labelled image data sets: loading (IDX, `.npy`, CIFAR-10 binary, image folders),
//! preprocessing and the search/holdout split.
//!
//! Images are held as raw pixel values in NCHW order ([`Dataset`]); [`Preprocess`] maps them to
//! network inputs as `(raw * scale - mean[c]) / std[c]`, computed in f64.
use std::fmt;
use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod array;
mod cifar;
mod error;
mod idx;
mod image_folder;
mod npy;

pub use error::DataError;
pub use image_folder::{write as write_image_folder, Target as FolderTarget};

/// A labelled image data set with raw (unpreprocessed) pixel values.
#[derive(Clone, PartialEq)]
pub struct Dataset {
    /// Per-sample shape `[C, H, W]`.
    pub shape: Vec<usize>,
    /// `N * C * H * W` raw pixel values in NCHW order: uint8 files converted exactly, float32
    /// files as stored.
    pub raw: Vec<f32>,
    /// One class index per image.
    pub labels: Vec<usize>,
}

impl fmt::Debug for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dataset").field("len", &self.len()).field("shape", &self.shape).finish_non_exhaustive()
    }
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the data set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of values per image (`C * H * W`).
    pub fn sample_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Number of channels (`C`).
    pub fn channels(&self) -> usize {
        self.shape.first().copied().unwrap_or(0)
    }

    /// Raw values of image `i`, CHW order. Panics if `i >= len()`.
    pub fn sample(&self, i: usize) -> &[f32] {
        let n = self.sample_len();
        &self.raw[i * n..(i + 1) * n]
    }

    /// A copy of the images in `range`, with their labels. Panics if the range is out of bounds.
    pub fn subset(&self, range: Range<usize>) -> Dataset {
        let n = self.sample_len();
        Dataset {
            shape: self.shape.clone(),
            raw: self.raw[range.start * n..range.end * n].to_vec(),
            labels: self.labels[range].to_vec(),
        }
    }

    /// The images of `parts` one after another (the data roles of a run, from one file or
    /// several). Errors if the parts' image shapes differ.
    pub fn concat(parts: &[&Dataset]) -> Result<Dataset, DataError> {
        let shape = parts.first().map(|p| p.shape.clone()).unwrap_or_default();
        if let Some(p) = parts.iter().find(|p| p.shape != shape) {
            return Err(DataError::Split(format!(
                "the data roles' images differ in shape: {:?} and {:?}",
                shape, p.shape
            )));
        }
        Ok(Dataset {
            shape,
            raw: parts.iter().flat_map(|p| p.raw.iter().copied()).collect(),
            labels: parts.iter().flat_map(|p| p.labels.iter().copied()).collect(),
        })
    }
}

/// How the axes of an image array are ordered in the file. Loading always produces NCHW.
#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// `[N, C, H, W]`.
    Nchw,
    /// `[N, H, W, C]`.
    Nhwc,
    /// `[N, H, W]`: a single channel.
    Nhw,
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::Nchw => "nchw",
            Layout::Nhwc => "nhwc",
            Layout::Nhw => "nhw",
        })
    }
}

/// Input normalisation: `(raw * scale - mean[c]) / std[c]`.
///
/// `mean` and `std` hold one value (all channels) or one per channel. Deserializes from e.g.
/// `{ scale = 0.00392156862745098, mean = [0.4914, 0.4822, 0.4465], std = 0.25 }`; missing
/// fields default to `scale = 1`, `mean = 0`, `std = 1`. Call [`Preprocess::validate`] before
/// use.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct Preprocess {
    pub scale: f64,
    #[serde(deserialize_with = "one_or_many")]
    pub mean: Vec<f64>,
    #[serde(deserialize_with = "one_or_many")]
    pub std: Vec<f64>,
}

impl Default for Preprocess {
    fn default() -> Self {
        Preprocess { scale: 1.0, mean: vec![0.0], std: vec![1.0] }
    }
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(f64),
        Many(Vec<f64>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(v) => vec![v],
        OneOrMany::Many(v) => v,
    })
}

/// `os[j] = cast((xs[j] * scale - m) / s)`: the preprocessing of one channel, each value in
/// f64 as written (the same results on every instruction set: IEEE operations, none fused).
#[inline(always)]
fn map_pixels<T>(xs: &[f32], os: &mut [T], scale: f64, m: f64, s: f64, cast: &impl Fn(f64) -> T) {
    if m.to_bits() == 0 && s == 1.0 {
        // `x - (+0) = x` (also for -0) and `x / 1 = x` exactly: the scale alone, no divisions.
        for (o, &r) in os.iter_mut().zip(xs) {
            *o = cast(f64::from(r) * scale);
        }
        return;
    }
    for (o, &r) in os.iter_mut().zip(xs) {
        *o = cast((f64::from(r) * scale - m) / s);
    }
}

/// [`map_pixels`] compiled for AVX-512: eight f64 divisions at a time (the baseline build's
/// two at a time took a tenth of the float engine's time on a small net).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn map_avx512<T>(xs: &[f32], os: &mut [T], scale: f64, m: f64, s: f64, cast: &impl Fn(f64) -> T) {
    map_pixels(xs, os, scale, m, s, cast);
}

#[inline]
fn per_channel(v: &[f64], c: usize) -> f64 {
    if v.len() == 1 {
        v[0]
    } else {
        v[c]
    }
}

impl Preprocess {
    /// Check the parameters against the data set's channel count (see
    /// [`Preprocess::validate_channels`]).
    pub fn validate(&self, ds: &Dataset) -> Result<(), DataError> {
        self.validate_channels(ds.channels())
    }

    /// Check the parameters against images with `channels` channels: `scale` finite and
    /// positive, `mean` finite, `std` finite and positive, each of length 1 or `channels`.
    pub fn validate_channels(&self, channels: usize) -> Result<(), DataError> {
        let err = |m: String| Err(DataError::Preprocess(m));
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return err(format!("scale must be finite and > 0, got {}", self.scale));
        }
        for (name, v) in [("mean", &self.mean), ("std", &self.std)] {
            if v.len() != 1 && v.len() != channels {
                return err(format!(
                    "{name} has {} values but the images have {channels} channel{}; give one \
                     value or one per channel",
                    v.len(),
                    if channels == 1 { "" } else { "s" }
                ));
            }
        }
        if let Some(m) = self.mean.iter().find(|m| !m.is_finite()) {
            return err(format!("mean must be finite, got {m}"));
        }
        if let Some(s) = self.std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return err(format!("std must be finite and > 0, got {s}"));
        }
        Ok(())
    }

    /// Preprocess image `i` of `ds` into `out` (length `ds.sample_len()`), in f64.
    /// Assumes [`Preprocess::validate`] passed for `ds`.
    pub fn apply_f64(&self, ds: &Dataset, i: usize, out: &mut [f64]) {
        self.apply_with(ds, i, out, |v| v);
    }

    /// Like [`Preprocess::apply_f64`] (computed in f64), each result rounded to f32.
    pub fn apply_f32(&self, ds: &Dataset, i: usize, out: &mut [f32]) {
        self.apply_with(ds, i, out, |v| v as f32);
    }

    fn apply_with<T>(&self, ds: &Dataset, i: usize, out: &mut [T], cast: impl Fn(f64) -> T) {
        let x = ds.sample(i);
        assert_eq!(out.len(), x.len(), "output buffer length != sample length");
        let plane = ds.shape[1..].iter().product::<usize>().max(1);
        for (c, (xs, os)) in x.chunks(plane).zip(out.chunks_mut(plane)).enumerate() {
            let (m, s) = (per_channel(&self.mean, c), per_channel(&self.std, c));
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the machine has the feature; the body is safe code compiled for it.
                unsafe { map_avx512(xs, os, self.scale, m, s, &cast) };
                continue;
            }
            map_pixels(xs, os, self.scale, m, s, &cast);
        }
    }

    /// Whether every preprocessed value of `ds` is `>= 0` (e.g. to know the input is unsigned).
    ///
    /// Computed from each channel's extreme raw value: the map is monotone (`std > 0`), and so
    /// is its f64 rounding.
    pub fn non_negative(&self, ds: &Dataset) -> bool {
        let c = ds.channels();
        let plane = ds.shape.get(1..).map_or(1, |s| s.iter().product::<usize>());
        if c == 0 || plane == 0 {
            return true;
        }
        let mut lo = vec![f32::INFINITY; c];
        let mut hi = vec![f32::NEG_INFINITY; c];
        for (k, xs) in ds.raw.chunks(plane).enumerate() {
            let ch = k % c;
            let Some((l, h)) = extremes(xs) else {
                return false;
            };
            lo[ch] = lo[ch].min(l);
            hi[ch] = hi[ch].max(h);
        }
        (0..c).all(|ch| {
            if lo[ch] > hi[ch] {
                return true; // no data
            }
            let extreme = if self.scale >= 0.0 { lo[ch] } else { hi[ch] };
            let v = (f64::from(extreme) * self.scale - per_channel(&self.mean, ch)) / per_channel(&self.std, ch);
            v >= 0.0
        })
    }
}

/// Index ranges of the three data roles (docs/data-roles.md): the search never sees the
/// confirmation images, and nothing but the final report sees the holdout images.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    /// Calibration and search: every decision of a strategy is made on these.
    pub search: Range<usize>,
    /// The rest of the validation images: the chosen point's confidence bound, nothing else.
    pub confirm: Range<usize>,
    /// The test images: reported, never used to decide.
    pub holdout: Range<usize>,
}

/// Split `validation + holdout` images laid out in that order: the first `validation -
/// confirm` validation images search, the last `confirm` confirm, then the holdout.
/// Errors if the search or the holdout split would be empty.
pub fn split(validation: usize, confirm: usize, holdout: usize) -> Result<Split, DataError> {
    if confirm >= validation {
        return Err(DataError::Split(format!(
            "the validation split has {validation} images and {confirm} are kept for confirmation; \
             at least one must be left for the search"
        )));
    }
    if holdout == 0 {
        return Err(DataError::Split("the holdout split is empty: at least one image must be left for it".into()));
    }
    let search_end = validation - confirm;
    Ok(Split { search: 0..search_end, confirm: search_end..validation, holdout: validation..validation + holdout })
}

/// Recognised file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Idx,
    Npy,
    Cifar,
}

/// A file's (decompressed) bytes and its format.
struct Source {
    path: PathBuf,
    bytes: Vec<u8>,
    format: Format,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

impl Source {
    fn read(path: &Path) -> Result<Source, DataError> {
        let unreadable = |source| DataError::Unreadable { path: path.to_path_buf(), source };
        let mut bytes = std::fs::read(path).map_err(unreadable)?;
        if bytes.starts_with(&GZIP_MAGIC) {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(bytes.as_slice())
                .read_to_end(&mut out)
                .map_err(|source| DataError::Decompress { path: path.to_path_buf(), source })?;
            bytes = out;
        }
        let format = detect(path, &bytes)?;
        Ok(Source { path: path.to_path_buf(), bytes, format })
    }

    fn images(&self, layout: Option<Layout>) -> Result<(Vec<usize>, Vec<f32>, usize), DataError> {
        let p = &self.path;
        match self.format {
            Format::Idx => idx::parse(p, &self.bytes)?.into_images(p, layout),
            Format::Npy => npy::parse(p, &self.bytes)?.into_images(p, layout),
            Format::Cifar => {
                if let Some(l) = layout.filter(|&l| l != Layout::Nchw) {
                    return Err(DataError::Layout {
                        path: p.clone(),
                        layout: l,
                        shape: vec![
                            (self.bytes.len() / cifar::RECORD) as u64,
                            cifar::CHANNELS as u64,
                            cifar::SIDE as u64,
                            cifar::SIDE as u64,
                        ],
                        expected: "CIFAR-10 binaries are NCHW",
                    });
                }
                cifar::images(p, &self.bytes)
            }
        }
    }

    fn labels(&self) -> Result<Vec<usize>, DataError> {
        let p = &self.path;
        match self.format {
            Format::Idx => idx::parse(p, &self.bytes)?.into_labels(p),
            Format::Npy => npy::parse(p, &self.bytes)?.into_labels(p),
            Format::Cifar => cifar::labels(p, &self.bytes),
        }
    }
}

/// Pick the reader: `.npy` by its magic, CIFAR-10 by the `.bin` (or `.bin.gz`) extension, IDX by
/// its magic.
fn detect(path: &Path, bytes: &[u8]) -> Result<Format, DataError> {
    if bytes.is_empty() {
        return Err(DataError::BadMagic { path: path.to_path_buf(), detail: "the file is empty".into() });
    }
    if bytes.starts_with(npy::MAGIC) {
        return Ok(Format::Npy);
    }
    let name = path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    if name.ends_with(".bin") {
        return Ok(Format::Cifar);
    }
    if idx::looks_like_idx(bytes) {
        return Ok(Format::Idx);
    }
    let head: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02X}")).collect();
    let detail = if name.ends_with(".npy") {
        format!("a .npy file starts with 93 4E 55 4D 50 59 (\\x93NUMPY), found {}", head.join(" "))
    } else {
        format!(
            "starts with {}; expected an IDX file (00 00 08|0D <ndims>, optionally gzipped), a \
             .npy file (\\x93NUMPY), or a CIFAR-10 binary named *.bin",
            head.join(" ")
        )
    };
    Err(DataError::BadMagic { path: path.to_path_buf(), detail })
}

fn same_file(a: &Path, b: &Path) -> bool {
    a == b
        || matches!(
            (std::fs::canonicalize(a), std::fs::canonicalize(b)),
            (Ok(x), Ok(y)) if x == y
        )
}

/// Load images and labels, converting images to NCHW.
///
/// Each file may be IDX (raw or gzipped, detected by content; u8 or f32 images, 3-D is NHW and
/// 4-D is NCHW unless `layout` says NHWC), `.npy` (u8 or f32 images; 3-D defaults to NHW and
/// 4-D to NCHW; labels of any integer type, 1-D) or a CIFAR-10 binary (`*.bin`). When `images`
/// and `labels` are the same CIFAR-10 file, both are read from it.
pub fn load(images: &Path, labels: &Path, layout: Option<Layout>) -> Result<Dataset, DataError> {
    let img = Source::read(images)?;
    let (shape, raw, n) = img.images(layout)?;
    let labels_vec = if img.format == Format::Cifar && same_file(images, labels) {
        img.labels()?
    } else {
        drop(img);
        Source::read(labels)?.labels()?
    };
    if labels_vec.len() != n {
        return Err(DataError::CountMismatch {
            labels_path: labels.to_path_buf(),
            labels: labels_vec.len(),
            images_path: images.to_path_buf(),
            images: n,
        });
    }
    Ok(Dataset { shape, raw, labels: labels_vec })
}

/// Load one data role's images: an image folder when `images` is a folder (read for `target`;
/// its labels are its class folders, so `labels` must be the same path and `layout` unset),
/// else the files, as [`load`] (and then `target.resize` must be unset).
pub fn load_for(
    images: &Path,
    labels: &Path,
    layout: Option<Layout>,
    target: &FolderTarget,
) -> Result<Dataset, DataError> {
    let misfit = |path: &Path, detail: &str| Err(DataError::Format { path: path.to_path_buf(), detail: detail.into() });
    if images.is_dir() {
        if !same_file(images, labels) {
            return misfit(
                labels,
                "labels given for an image folder, whose labels are its class folders: leave labels out",
            );
        }
        if layout.is_some() {
            return misfit(images, "layout given for an image folder: it applies to array files only");
        }
        return image_folder::load(images, target);
    }
    // (A missing path falls through to `load`, which says it cannot be read.)
    if target.resize.is_some() && images.is_file() {
        return misfit(images, "resize given for a file of arrays: it applies to image folders only");
    }
    load(images, labels, layout)
}

/// The least and the greatest of `xs` (infinities for none), or None if one is NaN: in sixteen
/// independent lanes, so that it vectorizes (one running extreme with an early return stayed
/// scalar, a tenth of a short run's time over a whole data set).
fn extremes(xs: &[f32]) -> Option<(f32, f32)> {
    const L: usize = 16;
    let (mut lo, mut hi, mut nan) = ([f32::INFINITY; L], [f32::NEG_INFINITY; L], [false; L]);
    let chunks = xs.chunks_exact(L);
    let rest = chunks.remainder();
    for c in chunks {
        for j in 0..L {
            lo[j] = lo[j].min(c[j]);
            hi[j] = hi[j].max(c[j]);
            nan[j] |= c[j].is_nan();
        }
    }
    if nan.contains(&true) || rest.iter().any(|r| r.is_nan()) {
        return None;
    }
    let lo = rest.iter().chain(&lo).fold(f32::INFINITY, |m, &r| m.min(r));
    let hi = rest.iter().chain(&hi).fold(f32::NEG_INFINITY, |m, &r| m.max(r));
    Some((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extremes_are_the_scalar_ones_and_nan_is_none() {
        for n in 0..60 {
            let mut xs: Vec<f32> = (0..n).map(|i| ((i * 29 % 17) as f32 - 8.0) * 1.5).collect();
            let want = xs.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &x| (l.min(x), h.max(x)));
            assert_eq!(extremes(&xs), Some(want), "{n} values");
            if n > 0 {
                xs[n * 7 / 10] = f32::NAN;
                assert_eq!(extremes(&xs), None, "a NaN among {n} values");
            }
        }
    }

    /// Every path of the preprocessing (scale alone, per-channel mean and std, a mean of -0)
    /// gives the formula's f64 value, bit for bit, -0 and odd lengths included.
    #[test]
    fn preprocessing_is_the_formula() {
        let raw: Vec<f32> = (0..2 * 37).map(|i| if i == 5 { -0.0 } else { (i * 53 % 256) as f32 - 3.0 }).collect();
        let d = Dataset { shape: vec![2, 37, 1], raw, labels: vec![0] };
        for (scale, mean, std) in
            [(1.0 / 255.0, vec![0.0], vec![1.0]), (0.5, vec![0.1, -0.2], vec![0.3, 1.0]), (1.0, vec![-0.0], vec![1.0])]
        {
            let pre = Preprocess { scale, mean: mean.clone(), std: std.clone() };
            let (mut got, mut got32) = (vec![0.0; 74], vec![0.0f32; 74]);
            pre.apply_f64(&d, 0, &mut got);
            pre.apply_f32(&d, 0, &mut got32);
            for (j, (&g, &g32)) in got.iter().zip(&got32).enumerate() {
                let c = if mean.len() == 1 { 0 } else { j / 37 };
                let want = (f64::from(d.raw[j]) * scale - mean[c]) / std[c];
                assert_eq!(g.to_bits(), want.to_bits(), "{scale} {mean:?} {std:?} [{j}]");
                assert_eq!(g32.to_bits(), (want as f32).to_bits(), "f32 {scale} {mean:?} {std:?} [{j}]");
            }
        }
    }

    fn ds() -> Dataset {
        // Two 3-channel 1x2 images.
        Dataset {
            shape: vec![3, 1, 2],
            raw: vec![
                0.0, 255.0, 10.0, 20.0, 100.0, 50.0, //
                1.0, 2.0, 3.0, 4.0, 5.0, 6.0,
            ],
            labels: vec![4, 7],
        }
    }

    #[test]
    fn dataset_accessors() {
        let d = ds();
        assert_eq!((d.len(), d.sample_len(), d.channels()), (2, 6, 3));
        assert!(!d.is_empty());
        assert_eq!(d.sample(1), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let s = d.subset(1..2);
        assert_eq!(s.labels, vec![7]);
        assert_eq!(s.raw, d.sample(1));
        assert!(d.subset(1..1).is_empty());
        assert_eq!(format!("{d:?}"), "Dataset { len: 2, shape: [3, 1, 2], .. }");
    }

    #[test]
    fn preprocess_per_channel() {
        let p = Preprocess { scale: 1.0 / 255.0, mean: vec![0.5, 0.25, 0.0], std: vec![0.5, 0.25, 2.0] };
        p.validate_channels(3).unwrap();
        let d = ds();
        let mut out = vec![0.0f64; 6];
        p.apply_f64(&d, 0, &mut out);
        let want: Vec<f64> = [0.0f64, 255.0, 10.0, 20.0, 100.0, 50.0]
            .iter()
            .enumerate()
            .map(|(k, &r)| (r * (1.0 / 255.0) - p.mean[k / 2]) / p.std[k / 2])
            .collect();
        assert_eq!(out, want);
        assert_eq!(out[0], -1.0);
        assert_eq!(out[1], 1.0);
        let mut out32 = vec![0.0f32; 6];
        p.apply_f32(&d, 0, &mut out32);
        let cast: Vec<f32> = want.iter().map(|&v| v as f32).collect();
        assert_eq!(out32, cast);
    }

    #[test]
    fn preprocess_broadcast_single_value() {
        let p = Preprocess { scale: 2.0, mean: vec![1.0], std: vec![4.0] };
        p.validate_channels(3).unwrap();
        let mut out = vec![0.0; 6];
        p.apply_f64(&ds(), 1, &mut out);
        assert_eq!(out, vec![0.25, 0.75, 1.25, 1.75, 2.25, 2.75]);
    }

    #[test]
    fn preprocess_validation() {
        let ok = Preprocess::default();
        ok.validate_channels(3).unwrap();
        ok.validate(&ds()).unwrap();
        let with = |scale: f64, mean: Vec<f64>, std: Vec<f64>| Preprocess { scale, mean, std };
        for (p, needle) in [
            (with(1.0, vec![0.0, 0.0], vec![1.0]), "mean has 2 values"),
            (with(1.0, vec![0.0], vec![1.0; 4]), "std has 4 values"),
            (with(1.0, vec![0.0], vec![0.0]), "std must be finite and > 0"),
            (with(1.0, vec![0.0], vec![-1.0]), "std must be"),
            (with(1.0, vec![0.0], vec![f64::INFINITY]), "std must be"),
            (with(1.0, vec![0.0], vec![f64::NAN]), "std must be"),
            (with(1.0, vec![f64::NAN], vec![1.0]), "mean must be finite"),
            (with(0.0, vec![0.0], vec![1.0]), "scale must be"),
            (with(f64::NAN, vec![0.0], vec![1.0]), "scale must be"),
        ] {
            let e = p.validate_channels(3).unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn non_negative_uses_channel_minimum() {
        let d = ds();
        assert!(Preprocess::default().non_negative(&d));
        // Channel 0 minimum is 0 -> (0 - 0.5) < 0.
        let p = Preprocess { scale: 1.0, mean: vec![0.5, 0.0, 0.0], std: vec![1.0] };
        assert!(!p.non_negative(&d));
        // Channel 1 minimum is 3 (image 1); mean 3 -> exactly 0 is fine, 3.5 is not.
        let p = Preprocess { scale: 1.0, mean: vec![0.0, 3.0, 5.0], std: vec![1.0] };
        assert!(p.non_negative(&d));
        let p = Preprocess { scale: 1.0, mean: vec![0.0, 3.5, 5.0], std: vec![1.0] };
        assert!(!p.non_negative(&d));
        // Agrees with the brute force.
        for p in [Preprocess::default(), Preprocess { scale: 1.0 / 255.0, mean: vec![0.0, 0.01, 0.02], std: vec![0.3] }]
        {
            let mut all = true;
            let mut out = vec![0.0; d.sample_len()];
            for i in 0..d.len() {
                p.apply_f64(&d, i, &mut out);
                all &= out.iter().all(|&v| v >= 0.0);
            }
            assert_eq!(p.non_negative(&d), all);
        }
    }

    #[test]
    fn preprocess_deserializes_scalar_or_list() {
        #[derive(Deserialize)]
        struct C {
            p: Preprocess,
        }
        let c: C = serde_json::from_str(r#"{"p": {"scale": 0.5, "mean": 0.1, "std": [1, 2, 3]}}"#).unwrap();
        assert_eq!(c.p.scale, 0.5);
        assert_eq!(c.p.mean, vec![0.1]);
        assert_eq!(c.p.std, vec![1.0, 2.0, 3.0]);
        let c: C = toml::from_str("[p]\nmean = [0.5, 0.5, 0.5]\n").unwrap();
        assert_eq!(c.p.scale, 1.0);
        assert_eq!(c.p.std, vec![1.0]);
        let l: Layout = serde_json::from_str("\"nhwc\"").unwrap();
        assert_eq!(l, Layout::Nhwc);
        assert!(serde_json::from_str::<Layout>("\"NHWC\"").is_err());
    }

    #[test]
    fn split_rules() {
        assert_eq!(split(10, 4, 5).unwrap(), Split { search: 0..6, confirm: 6..10, holdout: 10..15 });
        assert_eq!(split(2, 0, 1).unwrap(), Split { search: 0..2, confirm: 2..2, holdout: 2..3 });
        assert!(split(10, 10, 5).is_err(), "no search image left");
        assert!(split(0, 0, 5).is_err());
        let e = split(5, 1, 0).unwrap_err().to_string();
        assert!(e.contains("holdout split is empty"), "{e}");
    }

    #[test]
    fn concat_keeps_order_and_checks_shapes() {
        let d = ds();
        let c = Dataset::concat(&[&d.subset(1..2), &d.subset(0..1)]).unwrap();
        assert_eq!(c.labels, vec![7, 4]);
        assert_eq!(c.sample(0), d.sample(1));
        let other = Dataset { shape: vec![1, 1, 2], raw: vec![0.0, 1.0], labels: vec![0] };
        assert!(Dataset::concat(&[&d, &other]).is_err());
    }
}
