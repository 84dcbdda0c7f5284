//! Image-folder data sets (docs/data-roles.md, "Image folders"): the shipped example config on a
//! folder written from the shipped Fashion-MNIST IDX files predicts exactly what the IDX files
//! do, and every bad folder is an error naming the path.
mod common;

use common::repo_file;
use qdse::config::Settings;
use qdse::data::{self, DataError, Dataset, FolderTarget};
use qdse::experiment::Experiment;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// The example image-folder config and the IDX config it mirrors.
const FOLDER_CONFIG: &str = "configs/image-folder/resnet-fashion.toml";
/// How many images the README's `qdse image-folder --limit` writes per folder.
const LIMIT: usize = 2000;

fn fashion(split: &str) -> (PathBuf, PathBuf) {
    (
        repo_file(&format!("data/fashion-mnist/{split}-images-idx3-ubyte.gz")),
        repo_file(&format!("data/fashion-mnist/{split}-labels-idx1-ubyte.gz")),
    )
}

fn idx_first(split: &str, n: usize) -> Dataset {
    let (i, l) = fashion(split);
    let ds = data::load(&i, &l, None).unwrap();
    ds.subset(0..n)
}

/// The order the folder reader gives `ds` written as a folder: classes take turns, each in
/// index order (docs/data-roles.md, "Image folders").
fn folder_order(ds: &Dataset) -> Vec<usize> {
    let classes = ds.labels.iter().max().map_or(0, |m| m + 1);
    let by_class: Vec<Vec<usize>> =
        (0..classes).map(|k| (0..ds.len()).filter(|&i| ds.labels[i] == k).collect()).collect();
    let longest = by_class.iter().map(Vec::len).max().unwrap_or(0);
    (0..longest).flat_map(|j| by_class.iter().filter_map(move |c| c.get(j).copied())).collect()
}

fn target(shape: &[usize], classes: usize) -> FolderTarget {
    FolderTarget { shape: shape.to_vec(), classes, resize: None }
}

/// The README's commands in a scratch copy of the repository layout: write the first 2,000
/// validation and test images as folders, load the shipped example config, and compare it image
/// by image with the same images read from the IDX files: same pixels, same labels, the same
/// float and uniform 8-bit predictions, the same accuracies.
#[test]
fn example_config_predicts_exactly_as_the_idx_files() {
    let tmp = TempDir::new().unwrap();
    let text = std::fs::read_to_string(repo_file(FOLDER_CONFIG)).unwrap();
    let config = tmp.path().join(FOLDER_CONFIG);
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::create_dir_all(tmp.path().join("models")).unwrap();
    std::fs::copy(repo_file("models/resnet-fashion.onnx"), tmp.path().join("models/resnet-fashion.onnx")).unwrap();
    for (split, folder) in [("val", "val"), ("t10k", "test")] {
        let ds = idx_first(split, LIMIT);
        data::write_image_folder(&ds, &tmp.path().join("data/fashion-mnist-png").join(folder)).unwrap();
    }
    let folder = Experiment::load(Settings::parse(&text, &config).unwrap()).unwrap();

    // The same images from the IDX files, in the folder's order.
    let (val, test) = (idx_first("val", LIMIT), idx_first("t10k", LIMIT));
    let (vo, to) = (folder_order(&val), folder_order(&test));
    assert_eq!(folder.data.len(), vo.len() + to.len());
    for (k, &i) in vo.iter().enumerate() {
        assert_eq!(folder.data.sample(k), val.sample(i), "validation image {k} (val {i})");
        assert_eq!(folder.data.labels[k], val.labels[i]);
    }
    for (k, &i) in to.iter().enumerate() {
        assert_eq!(folder.data.sample(vo.len() + k), test.sample(i), "holdout image {k} (t10k {i})");
        assert_eq!(folder.data.labels[vo.len() + k], test.labels[i]);
    }
    // The folder config's roles over the IDX files in the same order.
    let reordered = Dataset::concat(&[&pick(&val, &vo), &pick(&test, &to)]).unwrap();
    let g = &folder.graph;
    let all = 0..reordered.len();
    let float_f = qdse::eval::predict_float(g, &folder.data, &folder.pre, all.clone());
    let float_i = qdse::eval::predict_float(g, &reordered, &folder.pre, all.clone());
    assert_eq!(float_f, float_i);
    let engine = qdse::eval::fixed::FixedEngine::new(g, &folder.baseline()).unwrap();
    let fixed_f = qdse::eval::predict_fixed(&engine, g, &folder.data, &folder.pre, all.clone());
    let fixed_i = qdse::eval::predict_fixed(&engine, g, &reordered, &folder.pre, all);
    assert_eq!(fixed_f, fixed_i);
    // Not a vacuous comparison: the net classifies these images well.
    let acc = qdse::eval::accuracy(&float_f, &folder.data.labels);
    assert!(acc > 0.8, "float accuracy {acc}");
    println!("image folder: float {acc:.4}, uniform 8-bit {:.4}", qdse::eval::accuracy(&fixed_f, &folder.data.labels));
}

fn pick(ds: &Dataset, order: &[usize]) -> Dataset {
    let parts: Vec<Dataset> = order.iter().map(|&i| ds.subset(i..i + 1)).collect();
    Dataset::concat(&parts.iter().collect::<Vec<_>>()).unwrap()
}

/// A folder of `classes` class folders, each with `per_class` 4x4 greyscale PNGs.
fn small_folder(classes: usize, per_class: usize) -> TempDir {
    let tmp = TempDir::new().unwrap();
    for k in 0..classes {
        let dir = tmp.path().join(format!("class-{k}"));
        std::fs::create_dir(&dir).unwrap();
        for i in 0..per_class {
            let img =
                image::GrayImage::from_fn(4, 4, |x, y| image::Luma([(k * 50 + i * 10) as u8 + (x + 4 * y) as u8]));
            img.save(dir.join(format!("{i}.png"))).unwrap();
        }
    }
    tmp
}

fn folder_err(dir: &Path, t: &FolderTarget) -> String {
    let e: DataError = data::load_for(dir, dir, None, t).unwrap_err();
    e.to_string()
}

#[test]
fn reads_classes_in_sorted_order_taking_turns() {
    let tmp = small_folder(3, 2);
    // An extra image in class 1, and files the reader skips: hidden ones and plain files at the top.
    image::GrayImage::new(4, 4).save(tmp.path().join("class-1/9.png")).unwrap();
    std::fs::write(tmp.path().join("class-0/.hidden"), b"x").unwrap();
    std::fs::write(tmp.path().join("README.txt"), b"notes").unwrap();
    let ds = data::load_for(tmp.path(), tmp.path(), None, &target(&[1, 4, 4], 3)).unwrap();
    assert_eq!(ds.labels, vec![0, 1, 2, 0, 1, 2, 1]);
    assert_eq!(ds.shape, vec![1, 4, 4]);
    // class 2, image 0: first pixel 100; class 0, image 1: first pixel 10, last 10 + 15.
    assert_eq!(ds.sample(2)[0], 100.0);
    assert_eq!(ds.sample(3)[0], 10.0);
    assert_eq!(ds.sample(3)[15], 25.0);
}

#[test]
fn rgb_resized_and_centre_cropped() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join("a");
    std::fs::create_dir(&dir).unwrap();
    // 8 wide, 4 high: resized to cover 2x2 is 4x2, whose centre columns are 1 and 2.
    let img = image::RgbImage::from_fn(8, 4, |x, _| image::Rgb([(x * 10) as u8, 100, 200]));
    img.save(dir.join("wide.png")).unwrap();
    let ds = data::load_for(tmp.path(), tmp.path(), None, &target(&[3, 2, 2], 1)).unwrap();
    assert_eq!(ds.shape, vec![3, 2, 2]);
    let x = ds.sample(0);
    assert_eq!(&x[4..], &[100.0, 100.0, 100.0, 100.0, 200.0, 200.0, 200.0, 200.0], "G and B planes");
    assert!(x[0] < x[1] && x[0] == x[2], "R grows left to right: {:?}", &x[..4]);
    // A JPEG reads too (its pixels are lossy, its size is not).
    img.save(dir.join("wide.jpg")).unwrap();
    let t = FolderTarget { resize: Some(4), ..target(&[3, 2, 2], 1) };
    assert_eq!(data::load_for(tmp.path(), tmp.path(), None, &t).unwrap().len(), 2);
}

#[test]
fn bad_folders_are_errors_naming_the_path() {
    let t = target(&[1, 4, 4], 2);
    // Not an image.
    let tmp = small_folder(2, 1);
    let bad = tmp.path().join("class-1/broken.png");
    std::fs::write(&bad, b"not a png").unwrap();
    let e = folder_err(tmp.path(), &t);
    assert!(e.contains(&bad.display().to_string()) && e.contains("not a readable PNG or JPEG"), "{e}");
    // Wrong channel count, both ways.
    let tmp = small_folder(2, 1);
    let rgb = tmp.path().join("class-0/colour.png");
    image::RgbImage::new(4, 4).save(&rgb).unwrap();
    let e = folder_err(tmp.path(), &t);
    assert!(e.contains(&rgb.display().to_string()) && e.contains("RGB image (3 channels)"), "{e}");
    let tmp = small_folder(2, 1);
    let e = folder_err(tmp.path(), &target(&[3, 4, 4], 2));
    assert!(e.contains("class-0/0.png") && e.contains("greyscale image (1 channel)"), "{e}");
    let tmp = small_folder(2, 1);
    let rgba = tmp.path().join("class-1/alpha.png");
    image::RgbaImage::new(4, 4).save(&rgba).unwrap();
    let e = folder_err(tmp.path(), &target(&[3, 4, 4], 2));
    assert!(e.contains("class-0/0.png"), "{e}");
    // Empty folder, empty class, too few or too many classes, a nested folder.
    let tmp = TempDir::new().unwrap();
    let e = folder_err(tmp.path(), &t);
    assert!(e.contains(&tmp.path().display().to_string()) && e.contains("no class folders"), "{e}");
    let tmp = small_folder(2, 1);
    std::fs::create_dir(tmp.path().join("class-2")).unwrap();
    let e = folder_err(tmp.path(), &target(&[1, 4, 4], 3));
    assert!(e.contains("class-2") && e.contains("holds no images"), "{e}");
    let tmp = small_folder(3, 1);
    let e = folder_err(tmp.path(), &t);
    assert!(e.contains("has 3 class folders (class-0, class-1, class-2) but the model has 2 classes"), "{e}");
    let tmp = small_folder(2, 1);
    std::fs::create_dir(tmp.path().join("class-0/more")).unwrap();
    let e = folder_err(tmp.path(), &t);
    assert!(e.contains("class-0/more") && e.contains("folder inside a class folder"), "{e}");
    // A missing folder is an unreadable file.
    let gone = tmp.path().join("nowhere");
    let e = data::load_for(&gone, &gone, None, &t).unwrap_err();
    assert!(matches!(e, DataError::Unreadable { .. }), "{e}");
    // Keys that do not fit a folder.
    let tmp = small_folder(2, 1);
    let (_, labels) = fashion("t10k");
    let e = data::load_for(tmp.path(), &labels, None, &t).unwrap_err().to_string();
    assert!(e.contains("leave labels out"), "{e}");
    let e = data::load_for(tmp.path(), tmp.path(), Some(data::Layout::Nhw), &t).unwrap_err().to_string();
    assert!(e.contains("layout given for an image folder"), "{e}");
    let (images, labels) = fashion("t10k");
    let e = data::load_for(&images, &labels, None, &FolderTarget { resize: Some(28), ..target(&[1, 28, 28], 10) })
        .unwrap_err()
        .to_string();
    assert!(e.contains("resize given for a file of arrays"), "{e}");
    let gone = tmp.path().join("typo");
    let e = data::load_for(&gone, &gone, None, &FolderTarget { resize: Some(4), ..t.clone() }).unwrap_err();
    assert!(matches!(e, DataError::Unreadable { .. }), "a missing folder with resize: {e}");
    let e = folder_err(tmp.path(), &FolderTarget { resize: Some(3), ..t.clone() });
    assert!(e.contains("resize = 3 is smaller than the model's input 4x4"), "{e}");
}

#[test]
fn writer_refuses_what_would_not_read_back() {
    let tmp = TempDir::new().unwrap();
    let gap = Dataset { shape: vec![1, 1, 1], raw: vec![0.0, 1.0], labels: vec![0, 2] };
    let e = data::write_image_folder(&gap, &tmp.path().join("a")).unwrap_err().to_string();
    assert!(e.contains("label 1 has no image"), "{e}");
    let frac = Dataset { shape: vec![1, 1, 1], raw: vec![0.5], labels: vec![0] };
    let e = data::write_image_folder(&frac, &tmp.path().join("b")).unwrap_err().to_string();
    assert!(e.contains("whole numbers in [0, 255]"), "{e}");
    let ok = Dataset { shape: vec![1, 1, 1], raw: vec![7.0], labels: vec![0] };
    data::write_image_folder(&ok, &tmp.path().join("c")).unwrap();
    let e = data::write_image_folder(&ok, &tmp.path().join("c")).unwrap_err().to_string();
    assert!(e.contains("not empty"), "{e}");
}
