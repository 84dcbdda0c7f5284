//! Errors raised while loading data sets, checking preprocessing and splitting.
use std::io;
use std::path::PathBuf;

use super::Layout;

/// Everything that can go wrong while loading or preparing a data set.
///
/// Every variant about a file names that file, so a message can be shown to the user as is.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("cannot read {}", .path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file starts with the gzip magic but does not decompress.
    #[error("cannot decompress {} (gzip): {source}", .path.display())]
    Decompress {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file is none of the supported formats, or its magic number is wrong.
    #[error("{}: bad magic: {detail}", .path.display())]
    BadMagic { path: PathBuf, detail: String },
    /// The header is present but malformed (unparsable .npy header, zero dimensions, ...).
    #[error("{}: malformed header: {detail}", .path.display())]
    BadHeader { path: PathBuf, detail: String },
    /// The file holds fewer bytes than its header says.
    #[error(
        "{} is truncated: its header describes {expected} bytes but the file holds {actual}",
        .path.display()
    )]
    Truncated {
        path: PathBuf,
        /// Bytes the header promises (header included), saturated at `u128::MAX`.
        expected: u128,
        actual: u64,
    },
    /// The file holds more bytes than its header says.
    #[error(
        "{}: {extra} unexpected bytes after the {expected} bytes its header describes",
        .path.display()
    )]
    TrailingBytes { path: PathBuf, expected: u64, extra: u64 },
    /// The element type is not one this reader accepts for images or labels.
    #[error("{}: unsupported {what} dtype {dtype} (supported: {supported})", .path.display())]
    UnsupportedDtype {
        path: PathBuf,
        /// "images" or "labels".
        what: &'static str,
        dtype: String,
        supported: &'static str,
    },
    /// The array has a shape that cannot hold images (or labels).
    #[error("{}: shape {shape:?} cannot be used as {what}: {detail}", .path.display())]
    Shape {
        path: PathBuf,
        shape: Vec<u64>,
        /// "images" or "labels".
        what: &'static str,
        detail: String,
    },
    /// The requested layout does not fit the number of dimensions of the array.
    #[error(
        "{}: layout {layout} does not fit an array of shape {shape:?} ({expected})",
        .path.display()
    )]
    Layout { path: PathBuf, layout: Layout, shape: Vec<u64>, expected: &'static str },
    /// The images file holds zero images.
    #[error("{} holds no images", .path.display())]
    Empty { path: PathBuf },
    /// The number of labels differs from the number of images.
    #[error(
        "{} has {labels} labels but {} has {images} images",
        .labels_path.display(),
        .images_path.display()
    )]
    CountMismatch { labels_path: PathBuf, labels: usize, images_path: PathBuf, images: usize },
    /// A label is negative.
    #[error("{}: label {index} is negative ({value})", .path.display())]
    NegativeLabel { path: PathBuf, index: usize, value: i128 },
    /// A label does not fit in `usize`.
    #[error("{}: label {index} is too large ({value})", .path.display())]
    LabelTooLarge { path: PathBuf, index: usize, value: i128 },
    /// A float image holds NaN or an infinity.
    #[error("{}: pixel value {index} is not finite ({value})", .path.display())]
    NonFinite { path: PathBuf, index: usize, value: f32 },
    /// The file has the expected extension but not the expected content (e.g. CIFAR-100 given as CIFAR-10).
    #[error("{}: {detail}", .path.display())]
    Format { path: PathBuf, detail: String },
    /// Preprocessing parameters are invalid for this data set.
    #[error("invalid preprocessing: {0}")]
    Preprocess(String),
    /// The search/holdout split is impossible.
    #[error("invalid split: {0}")]
    Split(String),
}
