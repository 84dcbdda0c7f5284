//! The CIFAR-10 binary format (`data_batch_1.bin` ... `data_batch_5.bin`, `test_batch.bin`).
//!
//! Each record is one label byte (0..=9) followed by 3072 pixel bytes: the 32x32 red plane,
//! then green, then blue (CHW). There is no header.
use std::path::Path;

use super::DataError;

pub(crate) const CHANNELS: usize = 3;
pub(crate) const SIDE: usize = 32;
pub(crate) const PIXELS: usize = CHANNELS * SIDE * SIDE;
pub(crate) const RECORD: usize = 1 + PIXELS;
const CLASSES: u8 = 10;

/// Check the record structure and return the number of records.
fn records(path: &Path, bytes: &[u8]) -> Result<usize, DataError> {
    if bytes.is_empty() {
        return Err(DataError::Empty { path: path.to_path_buf() });
    }
    if !bytes.len().is_multiple_of(RECORD) {
        let whole = bytes.len().div_ceil(RECORD);
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected: (whole * RECORD) as u128,
            actual: bytes.len() as u64,
        });
    }
    Ok(bytes.len() / RECORD)
}

/// Labels of a CIFAR-10 batch.
pub(crate) fn labels(path: &Path, bytes: &[u8]) -> Result<Vec<usize>, DataError> {
    records(path, bytes)?;
    bytes
        .chunks_exact(RECORD)
        .enumerate()
        .map(|(i, r)| {
            if r[0] < CLASSES {
                Ok(usize::from(r[0]))
            } else {
                Err(DataError::Format {
                    path: path.to_path_buf(),
                    detail: format!(
                        "record {i} has label byte {} > 9: not a CIFAR-10 binary \
                         (CIFAR-100 binaries, with two label bytes, are not supported)",
                        r[0]
                    ),
                })
            }
        })
        .collect()
}

/// Pixels of a CIFAR-10 batch as NCHW f32, with the per-sample shape `[3, 32, 32]`.
pub(crate) fn images(path: &Path, bytes: &[u8]) -> Result<(Vec<usize>, Vec<f32>, usize), DataError> {
    let n = records(path, bytes)?;
    let mut raw = Vec::with_capacity(n * PIXELS);
    for r in bytes.chunks_exact(RECORD) {
        raw.extend(r[1..].iter().map(|&b| f32::from(b)));
    }
    Ok((vec![CHANNELS, SIDE, SIDE], raw, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_records() {
        let mut b = Vec::new();
        for label in [3u8, 9] {
            b.push(label);
            b.extend((0..PIXELS).map(|i| (i % 200) as u8 + label));
        }
        let p = Path::new("data_batch_1.bin");
        assert_eq!(labels(p, &b).unwrap(), vec![3, 9]);
        let (shape, raw, n) = images(p, &b).unwrap();
        assert_eq!((shape, n), (vec![3, 32, 32], 2));
        assert_eq!(raw.len(), 2 * PIXELS);
        assert_eq!(raw[0], 3.0);
        assert_eq!(raw[PIXELS + 1], 10.0);
    }

    #[test]
    fn rejects_partial_records_and_cifar100() {
        let p = Path::new("x.bin");
        assert!(matches!(images(p, &[]), Err(DataError::Empty { .. })));
        assert!(matches!(
            images(p, &vec![0; RECORD + 5]),
            Err(DataError::Truncated { expected, .. }) if expected == 2 * RECORD as u128
        ));
        let mut b = vec![0u8; RECORD];
        b[0] = 57;
        assert!(matches!(labels(p, &b), Err(DataError::Format { .. })));
    }
}
