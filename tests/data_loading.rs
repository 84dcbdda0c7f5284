//! Loading data sets from IDX, .npy and CIFAR-10 files written into a temporary directory.
use std::io::Write;
use std::path::{Path, PathBuf};

use qdse::data::{load, split, DataError, Dataset, Layout, Preprocess, Split};

mod common;
use common::idx;

/// A version 1.0 .npy file, header laid out as NumPy writes it.
fn npy(descr: &str, shape: &[i64], fortran: bool, data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(std::string::ToString::to_string).collect();
    let shape = if shape.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let order = if fortran { "True" } else { "False" };
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}");
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut v = b"\x93NUMPY\x01\x00".to_vec();
    v.extend_from_slice(&(h.len() as u16).to_le_bytes());
    v.extend_from_slice(h.as_bytes());
    v.extend_from_slice(data);
    v
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn le<T: Copy, const N: usize>(values: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
    values.iter().flat_map(|&v| f(v)).collect()
}

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Dir {
        Dir(tempfile::tempdir().unwrap())
    }
    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

fn load_err(images: &Path, labels: &Path, layout: Option<Layout>) -> (DataError, String) {
    let e = load(images, labels, layout).expect_err("load should fail");
    let msg = e.to_string();
    (e, msg)
}

const NUMPY_U8_NHW: &[u8] = b"\x93NUMPY\x01\x00v\x00{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2, 3), }                                                       \n\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b";
/// `np.save(f, np.asfortranarray(np.arange(12, dtype=np.float32).reshape(1, 3, 2, 2)))`.
const NUMPY_F32_FORTRAN: &[u8] = b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': True, 'shape': (1, 3, 2, 2), }                                                     \n\x00\x00\x00\x00\x00\x00\x80@\x00\x00\x00A\x00\x00\x00@\x00\x00\xc0@\x00\x00 A\x00\x00\x80?\x00\x00\xa0@\x00\x00\x10A\x00\x00@@\x00\x00\xe0@\x00\x000A";
/// `np.save(f, np.array([3, 0], dtype=np.int64))`.
const NUMPY_I64_LABELS: &[u8] = b"\x93NUMPY\x01\x00v\x00{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }                                                            \n\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";

#[test]
fn idx_raw_and_gzip() {
    let d = Dir::new();
    let pixels: Vec<u8> = (0..2 * 2 * 3).map(|v| v as u8 * 20).collect();
    let images = idx(0x08, &[2, 2, 3], &pixels);
    let labels = idx(0x08, &[2], &[9, 1]);
    let want =
        Dataset { shape: vec![1, 2, 3], raw: pixels.iter().map(|&b| f32::from(b)).collect(), labels: vec![9, 1] };
    let ds = load(&d.file("images-idx3-ubyte", &images), &d.file("labels-idx1-ubyte", &labels), None).unwrap();
    assert_eq!(ds, want);
    // Gzip is detected by content: a gzipped file without .gz, and a raw file named .gz.
    let ds = load(&d.file("images.idx", &gz(&images)), &d.file("labels.gz", &labels), Some(Layout::Nhw)).unwrap();
    assert_eq!(ds, want);
    let ds = load(&d.file("i.gz", &gz(&images)), &d.file("l.gz", &gz(&labels)), None).unwrap();
    assert_eq!(ds, want);
}

#[test]
fn idx_float_and_four_d() {
    let d = Dir::new();
    let vals: Vec<f32> = (0..12).map(|v| v as f32 * 0.25 - 1.0).collect();
    let be = le(&vals, f32::to_be_bytes);
    let labels = d.file("l", &idx(0x08, &[1], &[2]));
    // 3-D float32 -> one channel.
    let ds = load(&d.file("f3", &idx(0x0D, &[1, 3, 4], &be)), &labels, None).unwrap();
    assert_eq!(ds.shape, vec![1, 3, 4]);
    assert_eq!(ds.raw, vals);
    // 4-D is NCHW by default.
    let f4 = d.file("f4", &idx(0x0D, &[1, 3, 2, 2], &be));
    let ds = load(&f4, &labels, None).unwrap();
    assert_eq!(ds.shape, vec![3, 2, 2]);
    assert_eq!(ds.raw, vals);
    // ... or NHWC when the layout says so.
    let ds = load(&f4, &labels, Some(Layout::Nhwc)).unwrap();
    assert_eq!(ds.shape, vec![2, 3, 2]);
    assert_eq!(ds.raw[..4], [vals[0], vals[2], vals[4], vals[6]]);
}

#[test]
fn npy_u8_nhw_and_i64_labels() {
    let d = Dir::new();
    let ds = load(&d.file("x.npy", NUMPY_U8_NHW), &d.file("y.npy", NUMPY_I64_LABELS), None).unwrap();
    assert_eq!(ds.shape, vec![1, 2, 3]);
    assert_eq!(ds.len(), 2);
    assert_eq!(ds.sample(1), &[6.0, 7.0, 8.0, 9.0, 10.0, 11.0]);
    assert_eq!(ds.labels, vec![3, 0]);
    // Our writer produces the same bytes as NumPy.
    assert_eq!(npy("|u1", &[2, 2, 3], false, &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]), NUMPY_U8_NHW);
}

#[test]
fn npy_f32_nhwc_to_nchw() {
    // One 2x2 image with 3 channels, NHWC; value = 100*c + 10*h + w.
    let mut nhwc = Vec::new();
    for h in 0..2 {
        for w in 0..2 {
            for c in 0..3 {
                nhwc.push((100 * c + 10 * h + w) as f32 + 0.5);
            }
        }
    }
    let d = Dir::new();
    let images = d.file("x.npy", &npy("<f4", &[1, 2, 2, 3], false, &le(&nhwc, f32::to_le_bytes)));
    let labels = d.file("y.npy", &npy("<i4", &[1], false, &5i32.to_le_bytes()));
    let ds = load(&images, &labels, Some(Layout::Nhwc)).unwrap();
    assert_eq!(ds.shape, vec![3, 2, 2]);
    assert_eq!(ds.raw, vec![0.5, 1.5, 10.5, 11.5, 100.5, 101.5, 110.5, 111.5, 200.5, 201.5, 210.5, 211.5]);
    assert_eq!(ds.labels, vec![5]);
    // Without a layout a 4-D array is NCHW: shape [2, 2, 3], values as stored.
    let ds = load(&images, &labels, None).unwrap();
    assert_eq!(ds.shape, vec![2, 2, 3]);
    assert_eq!(ds.raw, nhwc);
    let ds2 = load(&images, &labels, Some(Layout::Nchw)).unwrap();
    assert_eq!(ds2, ds);
}

#[test]
fn npy_fortran_order_and_big_endian() {
    let d = Dir::new();
    let labels = d.file("y.npy", &npy("|u1", &[1], false, &[0]));
    let ds = load(&d.file("f.npy", NUMPY_F32_FORTRAN), &labels, None).unwrap();
    assert_eq!(ds.shape, vec![3, 2, 2]);
    assert_eq!(ds.raw, (0..12).map(|v| v as f32).collect::<Vec<_>>());
    let vals = [1.0f32, -2.0, 3.5, 4.0];
    let be = d.file("be.npy", &npy(">f4", &[1, 1, 2, 2], false, &le(&vals, f32::to_be_bytes)));
    assert_eq!(load(&be, &labels, None).unwrap().raw, vals);
    // Labels of other integer types, including big-endian and unsigned 64-bit.
    let x = d.file("x.npy", &npy("|u1", &[3, 1, 1], false, &[0, 0, 0]));
    for (descr, bytes) in [
        ("|u1", vec![1u8, 2, 3]),
        ("|i1", vec![1, 2, 3]),
        ("<i2", le(&[1i16, 2, 3], i16::to_le_bytes)),
        (">i4", le(&[1i32, 2, 3], i32::to_be_bytes)),
        ("<u8", le(&[1u64, 2, 3], u64::to_le_bytes)),
        ("<i8", le(&[1i64, 2, 3], i64::to_le_bytes)),
    ] {
        let y = d.file("y3.npy", &npy(descr, &[3], false, &bytes));
        assert_eq!(load(&x, &y, None).unwrap().labels, vec![1, 2, 3], "{descr}");
    }
}

fn cifar_batch(labels: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    for (k, &l) in labels.iter().enumerate() {
        b.push(l);
        b.extend((0..3072).map(|i| ((i / 1024) * 50 + k) as u8));
    }
    b
}

#[test]
fn cifar_binary() {
    let d = Dir::new();
    let bin = d.file("data_batch_1.bin", &cifar_batch(&[6, 9, 0]));
    let ds = load(&bin, &bin, None).unwrap();
    assert_eq!(ds.shape, vec![3, 32, 32]);
    assert_eq!(ds.labels, vec![6, 9, 0]);
    let s = ds.sample(2);
    assert_eq!((s[0], s[1024], s[2048], s[3071]), (2.0, 52.0, 102.0, 102.0));
    // The same file through another spelling of its path still counts as the same file.
    let other = d.0.path().join(".").join("data_batch_1.bin");
    assert_eq!(load(&bin, &other, Some(Layout::Nchw)).unwrap(), ds);
    // Gzipped, with labels from a separate .npy file.
    let gzbin = d.file("test_batch.bin.gz", &gz(&cifar_batch(&[1, 2, 3])));
    let y = d.file("y.npy", &npy("<i8", &[3], false, &le(&[4i64, 5, 6], i64::to_le_bytes)));
    let ds = load(&gzbin, &y, None).unwrap();
    assert_eq!(ds.labels, vec![4, 5, 6]);
    assert_eq!(ds.len(), 3);
    let (e, msg) = load_err(&bin, &bin, Some(Layout::Nhwc));
    assert!(matches!(e, DataError::Layout { .. }), "{msg}");
}

#[test]
fn unreadable_file() {
    let d = Dir::new();
    let missing = d.0.path().join("nope.idx");
    let labels = d.file("l", &idx(0x08, &[1], &[0]));
    let (e, msg) = load_err(&missing, &labels, None);
    assert!(matches!(e, DataError::Unreadable { .. }));
    assert!(msg.contains("nope.idx"), "{msg}");
    let images = d.file("i", &idx(0x08, &[1, 1, 1], &[0]));
    let (e, msg) = load_err(&images, &missing, None);
    assert!(matches!(e, DataError::Unreadable { .. }), "{msg}");
    // A directory is not a readable file either.
    let (e, _) = load_err(d.0.path(), &labels, None);
    assert!(matches!(e, DataError::Unreadable { .. }));
}

#[test]
fn bad_magic_and_corrupt_gzip() {
    let d = Dir::new();
    let labels = d.file("l", &idx(0x08, &[1], &[0]));
    for (name, bytes) in
        [("junk.idx", b"hello world".to_vec()), ("junk.npy", b"\x93NUMPX\x01\x00".to_vec()), ("empty.idx", vec![])]
    {
        let (e, msg) = load_err(&d.file(name, &bytes), &labels, None);
        assert!(matches!(e, DataError::BadMagic { .. }), "{msg}");
        assert!(msg.contains(name), "{msg}");
    }
    let mut broken = gz(&idx(0x08, &[1, 1, 1], &[0]));
    let n = broken.len();
    broken.truncate(n - 6);
    let (e, msg) = load_err(&d.file("broken.gz", &broken), &labels, None);
    assert!(matches!(e, DataError::Decompress { .. }), "{msg}");
    assert!(msg.contains("broken.gz"), "{msg}");
}

#[test]
fn truncated_files() {
    let d = Dir::new();
    let labels = d.file("l", &idx(0x08, &[1], &[0]));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("short.idx", idx(0x08, &[1, 28, 28], &[0; 100])),
        ("header.idx", idx(0x08, &[1, 28, 28], &[])[..9].to_vec()),
        // A lying header: 2^32-1 images of 2^32-1 x 2^32-1 pixels in a 20-byte file.
        ("huge.idx", idx(0x08, &[u32::MAX, u32::MAX, u32::MAX], &[0; 4])),
        ("short.npy", npy("<f4", &[1, 2, 2], false, &[0; 15])),
        ("huge.npy", npy("|u1", &[i64::MAX, i64::MAX, i64::MAX], false, &[0; 4])),
        ("data_batch_2.bin", cifar_batch(&[1, 2])[..5000].to_vec()),
    ];
    for (name, bytes) in cases {
        let (e, msg) = load_err(&d.file(name, &bytes), &labels, None);
        assert!(matches!(e, DataError::Truncated { .. }), "{name}: {msg}");
        assert!(msg.contains(name) && msg.contains("truncated"), "{msg}");
    }
    let (e, msg) = load_err(&labels, &d.file("l2", &idx(0x08, &[1000], &[0; 10])), None);
    // `labels` as images: 1-D is not an image array.
    assert!(matches!(e, DataError::Shape { .. }), "{msg}");
}

#[test]
fn unsupported_dtypes() {
    let d = Dir::new();
    let labels = d.file("l.npy", &npy("|u1", &[1], false, &[0]));
    let images = d.file("x.npy", &npy("|u1", &[1, 1, 1], false, &[0]));
    for (name, bytes, is_images) in [
        ("f8.npy", npy("<f8", &[1, 1, 1], false, &[0; 8]), true),
        ("i16.idx", idx(0x0B, &[1, 1, 1], &[0; 2]), true),
        ("c8.npy", npy("<c8", &[1, 1, 1], false, &[0; 8]), true),
        ("code.idx", idx(0x0A, &[1, 1, 1], &[0]), true),
        ("float_labels.npy", npy("<f4", &[1], false, &[0; 4]), false),
        ("float_labels.idx", idx(0x0D, &[1], &[0; 4]), false),
    ] {
        let f = d.file(name, &bytes);
        let (e, msg) = if is_images { load_err(&f, &labels, None) } else { load_err(&images, &f, None) };
        if name == "code.idx" {
            // An unknown type code is not recognised as IDX at all.
            assert!(matches!(e, DataError::BadMagic { .. }), "{msg}");
        } else {
            assert!(matches!(e, DataError::UnsupportedDtype { .. }), "{name}: {msg}");
        }
        assert!(msg.contains(name), "{msg}");
    }
}

#[test]
fn count_mismatch_and_empty() {
    let d = Dir::new();
    let images = d.file("images.idx", &idx(0x08, &[99, 1, 1], &[0; 99]));
    let labels = d.file("labels.idx", &idx(0x08, &[100], &[0; 100]));
    let (e, msg) = load_err(&images, &labels, None);
    assert!(matches!(e, DataError::CountMismatch { labels: 100, images: 99, .. }));
    assert!(msg.contains("labels.idx has 100 labels but") && msg.contains("images.idx has 99 images"), "{msg}");
    let empty = d.file("none.idx", &idx(0x08, &[0, 28, 28], &[]));
    let (e, msg) = load_err(&empty, &labels, None);
    assert!(matches!(e, DataError::Empty { .. }));
    assert!(msg.ends_with("none.idx holds no images"), "{msg}");
    let empty = d.file("none.npy", &npy("<f4", &[0, 3, 32, 32], false, &[]));
    assert!(matches!(load_err(&empty, &labels, None).0, DataError::Empty { .. }));
}

#[test]
fn negative_labels() {
    let d = Dir::new();
    let images = d.file("x.npy", &npy("|u1", &[3, 1, 1], false, &[0; 3]));
    let y = d.file("neg.npy", &npy("<i8", &[3], false, &le(&[0i64, -1, 2], i64::to_le_bytes)));
    let (e, msg) = load_err(&images, &y, None);
    assert!(matches!(e, DataError::NegativeLabel { index: 1, value: -1, .. }), "{msg}");
    assert!(msg.contains("neg.npy"), "{msg}");
    let y = d.file("neg.idx", &idx(0x09, &[3], &[0, 1, 0xFE]));
    let (e, msg) = load_err(&images, &y, None);
    assert!(matches!(e, DataError::NegativeLabel { index: 2, value: -2, .. }), "{msg}");
}

#[test]
fn layout_inconsistent_with_dimensions() {
    let d = Dir::new();
    let labels = d.file("l", &idx(0x08, &[1], &[0]));
    let three = d.file("three.npy", &npy("|u1", &[1, 2, 2], false, &[0; 4]));
    let four = d.file("four.idx", &idx(0x08, &[1, 1, 2, 2], &[0; 4]));
    let two = d.file("two.npy", &npy("|u1", &[1, 4], false, &[0; 4]));
    for (f, layout) in [(&three, Layout::Nchw), (&three, Layout::Nhwc), (&four, Layout::Nhw), (&two, Layout::Nhw)] {
        let (e, msg) = load_err(f, &labels, Some(layout));
        assert!(matches!(e, DataError::Layout { .. }), "{msg}");
        assert!(msg.contains(&layout.to_string()), "{msg}");
    }
    let (e, msg) = load_err(&two, &labels, None);
    assert!(matches!(e, DataError::Shape { .. }), "{msg}");
    let zero = d.file("zero.npy", &npy("|u1", &[1, 0, 2], false, &[]));
    assert!(matches!(load_err(&zero, &labels, None).0, DataError::Shape { .. }));
    // Labels must be 1-D.
    let x = d.file("x.npy", &npy("|u1", &[2, 1, 1], false, &[0; 2]));
    let y = d.file("y.npy", &npy("|u1", &[2, 1], false, &[0; 2]));
    assert!(matches!(load_err(&x, &y, None).0, DataError::Shape { .. }));
}

#[test]
fn non_finite_pixels_are_rejected() {
    let d = Dir::new();
    let labels = d.file("l", &idx(0x08, &[1], &[0]));
    let x = d.file("nan.npy", &npy("<f4", &[1, 1, 2], false, &le(&[0.0f32, f32::NAN], f32::to_le_bytes)));
    assert!(matches!(load_err(&x, &labels, None).0, DataError::NonFinite { index: 1, .. }));
}

#[test]
fn preprocess_on_loaded_data() {
    let d = Dir::new();
    let bin = d.file("test_batch.bin", &cifar_batch(&[0, 1]));
    let ds = load(&bin, &bin, None).unwrap();
    let p = Preprocess { scale: 1.0 / 255.0, mean: vec![0.4914, 0.4822, 0.4465], std: vec![0.2470, 0.2435, 0.2616] };
    p.validate(&ds).unwrap();
    let mut out = vec![0.0; ds.sample_len()];
    p.apply_f64(&ds, 1, &mut out);
    for (c, k) in [(0, 0), (1, 1024), (2, 3071)] {
        let raw = f64::from(ds.sample(1)[k]);
        assert_eq!(out[k], (raw * (1.0 / 255.0) - p.mean[c]) / p.std[c]);
    }
    assert!(!p.non_negative(&ds));
    assert!(Preprocess { scale: 1.0 / 255.0, mean: vec![0.0], std: vec![1.0] }.non_negative(&ds));
    let e = Preprocess { scale: 1.0, mean: vec![0.0, 0.0], std: vec![1.0] }.validate(&ds).unwrap_err();
    assert!(matches!(e, DataError::Preprocess(_)));
}

#[test]
fn split_search_then_confirm_then_holdout() {
    let s = split(5_000, 2_500, 5_000).unwrap();
    assert_eq!(s, Split { search: 0..2_500, confirm: 2_500..5_000, holdout: 5_000..10_000 });
    assert!(matches!(split(10, 10, 5), Err(DataError::Split(_))), "no search image");
    assert!(matches!(split(10, 3, 0), Err(DataError::Split(_))), "no holdout image");
    let d = Dataset { shape: vec![1, 1, 1], raw: (0..10).map(|v| v as f32).collect(), labels: (0..10).collect() };
    let s = split(7, 2, 3).unwrap();
    let (a, c, b) = (d.subset(s.search), d.subset(s.confirm), d.subset(s.holdout));
    assert_eq!((a.len(), c.len(), b.len()), (5, 2, 3));
    assert_eq!(c.labels, vec![5, 6]);
    assert_eq!(b.raw, vec![7.0, 8.0, 9.0]);
}

/// Every shipped config keeps its three data roles apart: validation and holdout ranges of the
/// same files do not overlap, and (whether from the same files or not) hardly any holdout image
/// is byte-identical to a validation image (a duplicate would leak the holdout into the search).
#[test]
fn shipped_configs_keep_data_roles_disjoint() {
    use qdse::config::Role;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let st = qdse::config::Settings::load(&path).unwrap();
        let d = &st.data;
        let images = |r: &Role| r.files.as_ref().map_or(d.images.clone(), |f| f.images.clone());
        let load = |r: &Role| match &r.files {
            None => qdse::data::load(&d.images, &d.labels, d.layout).unwrap(),
            Some(f) => qdse::data::load(&f.images, &f.labels, f.layout).unwrap(),
        };
        let (vd, hd) = (load(&d.validation), load(&d.holdout));
        let v = d.validation.start..d.validation.end.unwrap_or(vd.len());
        let h = d.holdout.start..d.holdout.end.unwrap_or(hd.len());
        assert!(v.end <= vd.len() && h.end <= hd.len(), "{}", path.display());
        if images(&d.validation) == images(&d.holdout) {
            assert!(
                v.end <= h.start || h.end <= v.start,
                "{}: validation {v:?} overlaps holdout {h:?}",
                path.display()
            );
        }
        let bits = |ds: &qdse::data::Dataset, i: usize| ds.sample(i).iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
        let seen: std::collections::HashSet<Vec<u32>> = v.clone().map(|i| bits(&vd, i)).collect();
        let leaked = h.clone().filter(|&i| seen.contains(&bits(&hd, i))).count();
        // Fashion-MNIST holds a handful of exact duplicates; none may be many.
        assert!(leaked * 1000 <= h.len(), "{}: {leaked} holdout images also in validation", path.display());
        checked += 1;
    }
    assert!(checked >= 7, "only {checked} configs checked");
}

#[test]
fn fashion_mnist_test_set() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fashion-mnist");
    let images = dir.join("t10k-images-idx3-ubyte.gz");
    let labels = dir.join("t10k-labels-idx1-ubyte.gz");
    if !images.exists() || !labels.exists() {
        eprintln!("note: {} not present; skipping the Fashion-MNIST check", images.display());
        return;
    }
    let ds = load(&images, &labels, None).unwrap();
    assert_eq!(ds.len(), 10_000);
    assert_eq!(ds.shape, vec![1, 28, 28]);
    assert_eq!(ds.raw.len(), 10_000 * 28 * 28);
    assert!(ds.labels.iter().all(|&l| l < 10));
    assert!(ds.raw.iter().all(|&v| (0.0..=255.0).contains(&v) && v.fract() == 0.0));
    let mut counts = [0usize; 10];
    for &l in &ds.labels {
        counts[l] += 1;
    }
    assert_eq!(counts, [1000; 10]);
}
