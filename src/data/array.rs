//! The format-independent middle of loading: a typed n-d array borrowed from a file's bytes,
//! turned into NCHW images or labels.
use std::path::Path;

use super::{DataError, Layout};

/// Element type of an array in a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
}

impl DType {
    pub(crate) fn size(self) -> usize {
        match self {
            DType::U8 | DType::I8 => 1,
            DType::U16 | DType::I16 => 2,
            DType::U32 | DType::I32 | DType::F32 => 4,
            DType::U64 | DType::I64 | DType::F64 => 8,
        }
    }
}

/// Byte order of multi-byte elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endian {
    Little,
    Big,
}

/// An n-d array whose element bytes are borrowed from the file (length already checked).
#[derive(Debug)]
pub(crate) struct Array<'a> {
    pub dtype: DType,
    pub endian: Endian,
    /// Shape as stored in the file.
    pub dims: Vec<usize>,
    /// Column-major storage (.npy `fortran_order: True`).
    pub fortran: bool,
    /// Exactly `product(dims) * dtype.size()` bytes.
    pub data: &'a [u8],
    /// How the dtype is spelled in the file, for messages.
    pub dtype_name: String,
}

/// Number of bytes `dims` of `elem`-byte elements need, saturating instead of overflowing.
pub(crate) fn byte_len(dims: &[u64], elem: usize) -> u128 {
    dims.iter().fold(elem as u128, |acc, &d| acc.saturating_mul(u128::from(d)))
}

/// Check that `bytes` holds exactly `header + data_len` bytes.
pub(crate) fn check_len(path: &Path, file_len: usize, header: usize, data_len: u128) -> Result<(), DataError> {
    let expected = (header as u128).saturating_add(data_len);
    let actual = file_len as u128;
    if actual < expected {
        return Err(DataError::Truncated { path: path.to_path_buf(), expected, actual: file_len as u64 });
    }
    if actual > expected {
        return Err(DataError::TrailingBytes {
            path: path.to_path_buf(),
            expected: expected as u64,
            extra: (actual - expected) as u64,
        });
    }
    Ok(())
}

fn chunk<const N: usize>(c: &[u8], endian: Endian) -> [u8; N] {
    let mut b = [0u8; N];
    b.copy_from_slice(c);
    if endian == Endian::Big {
        b.reverse();
    }
    b
}

impl Array<'_> {
    fn shape_u64(&self) -> Vec<u64> {
        self.dims.iter().map(|&d| d as u64).collect()
    }

    /// Elements as f32, in C order. Only u8 and f32 are image types.
    fn image_values(&self, path: &Path) -> Result<Vec<f32>, DataError> {
        let e = self.endian;
        let values: Vec<f32> = match self.dtype {
            DType::U8 => self.data.iter().map(|&b| f32::from(b)).collect(),
            DType::F32 => self.data.chunks_exact(4).map(|c| f32::from_le_bytes(chunk::<4>(c, e))).collect(),
            _ => {
                return Err(DataError::UnsupportedDtype {
                    path: path.to_path_buf(),
                    what: "images",
                    dtype: self.dtype_name.clone(),
                    supported: "uint8, float32",
                })
            }
        };
        if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(DataError::NonFinite { path: path.to_path_buf(), index, value });
        }
        Ok(self.to_c_order(values))
    }

    /// Elements as integers, in C order. Only integer types are label types.
    fn int_values(&self, path: &Path) -> Result<Vec<i128>, DataError> {
        let e = self.endian;
        let d = self.data;
        let v: Vec<i128> = match self.dtype {
            DType::U8 => d.iter().map(|&b| i128::from(b)).collect(),
            DType::I8 => d.iter().map(|&b| i128::from(b as i8)).collect(),
            DType::U16 => d.chunks_exact(2).map(|c| i128::from(u16::from_le_bytes(chunk(c, e)))).collect(),
            DType::I16 => d.chunks_exact(2).map(|c| i128::from(i16::from_le_bytes(chunk(c, e)))).collect(),
            DType::U32 => d.chunks_exact(4).map(|c| i128::from(u32::from_le_bytes(chunk(c, e)))).collect(),
            DType::I32 => d.chunks_exact(4).map(|c| i128::from(i32::from_le_bytes(chunk(c, e)))).collect(),
            DType::U64 => d.chunks_exact(8).map(|c| i128::from(u64::from_le_bytes(chunk(c, e)))).collect(),
            DType::I64 => d.chunks_exact(8).map(|c| i128::from(i64::from_le_bytes(chunk(c, e)))).collect(),
            DType::F32 | DType::F64 => {
                return Err(DataError::UnsupportedDtype {
                    path: path.to_path_buf(),
                    what: "labels",
                    dtype: self.dtype_name.clone(),
                    supported: "any integer type (uint8, int8, int16, int32, int64, ...)",
                })
            }
        };
        Ok(self.to_c_order(v))
    }

    fn to_c_order<T: Copy>(&self, v: Vec<T>) -> Vec<T> {
        if !self.fortran || self.dims.len() < 2 {
            return v;
        }
        // Column-major data of shape S is row-major data of shape reverse(S); reversing the axes
        // of that gives row-major data of shape S.
        let rev: Vec<usize> = self.dims.iter().rev().copied().collect();
        let perm: Vec<usize> = (0..rev.len()).rev().collect();
        permute(&v, &rev, &perm)
    }

    /// Interpret as images: returns the per-sample `[C, H, W]` shape, the NCHW values and N.
    pub(crate) fn into_images(
        self,
        path: &Path,
        layout: Option<Layout>,
    ) -> Result<(Vec<usize>, Vec<f32>, usize), DataError> {
        let shape = self.shape_u64();
        let layout_err =
            |layout, expected| DataError::Layout { path: path.to_path_buf(), layout, shape: shape.clone(), expected };
        let (n, chw, nhwc) = match (self.dims.as_slice(), layout) {
            (&[n, h, w], None | Some(Layout::Nhw)) => (n, vec![1, h, w], false),
            (&[n, c, h, w], None | Some(Layout::Nchw)) => (n, vec![c, h, w], false),
            (&[n, h, w, c], Some(Layout::Nhwc)) => (n, vec![c, h, w], true),
            (&[_, _, _], Some(l)) => return Err(layout_err(l, "a 3-D array is NHW; use layout \"nhw\"")),
            (&[_, _, _, _], Some(l)) => return Err(layout_err(l, "a 4-D array needs layout \"nchw\" or \"nhwc\"")),
            (_, Some(l)) => return Err(layout_err(l, "images must be 3-D (NHW) or 4-D (NCHW or NHWC)")),
            (_, None) => {
                return Err(DataError::Shape {
                    path: path.to_path_buf(),
                    shape,
                    what: "images",
                    detail: "images must be 3-D (NHW) or 4-D (NCHW or NHWC)".into(),
                })
            }
        };
        if n == 0 {
            return Err(DataError::Empty { path: path.to_path_buf() });
        }
        if chw.contains(&0) {
            return Err(DataError::Shape {
                path: path.to_path_buf(),
                shape,
                what: "images",
                detail: "an image dimension is zero".into(),
            });
        }
        let values = self.image_values(path)?;
        let raw = if nhwc {
            let d = &self.dims;
            permute(&values, &[d[0], d[1], d[2], d[3]], &[0, 3, 1, 2])
        } else {
            values
        };
        Ok((chw, raw, n))
    }

    /// Interpret as a 1-D array of class labels.
    pub(crate) fn into_labels(self, path: &Path) -> Result<Vec<usize>, DataError> {
        if self.dims.len() != 1 {
            return Err(DataError::Shape {
                path: path.to_path_buf(),
                shape: self.shape_u64(),
                what: "labels",
                detail: "labels must be 1-D".into(),
            });
        }
        let values = self.int_values(path)?;
        labels_from_ints(path, values)
    }
}

/// Check and convert integer labels.
pub(crate) fn labels_from_ints(path: &Path, values: Vec<i128>) -> Result<Vec<usize>, DataError> {
    values
        .into_iter()
        .enumerate()
        .map(|(index, value)| {
            if value < 0 {
                Err(DataError::NegativeLabel { path: path.to_path_buf(), index, value })
            } else {
                usize::try_from(value).map_err(|_| DataError::LabelTooLarge { path: path.to_path_buf(), index, value })
            }
        })
        .collect()
}

/// Transpose a row-major array of shape `dims`: output axis `i` is input axis `perm[i]`.
/// The result is row-major in the permuted shape.
pub(crate) fn permute<T: Copy>(data: &[T], dims: &[usize], perm: &[usize]) -> Vec<T> {
    debug_assert_eq!(dims.len(), perm.len());
    debug_assert_eq!(data.len(), dims.iter().product::<usize>());
    let k = dims.len();
    let mut in_strides = vec![1usize; k];
    for a in (0..k.saturating_sub(1)).rev() {
        in_strides[a] = in_strides[a + 1] * dims[a + 1];
    }
    let out_dims: Vec<usize> = perm.iter().map(|&p| dims[p]).collect();
    let strides: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
    let mut out = Vec::with_capacity(data.len());
    if data.is_empty() {
        return out;
    }
    let mut idx = vec![0usize; k];
    let mut off = 0usize;
    for _ in 0..data.len() {
        out.push(data[off]);
        // Odometer step over the output index, last axis fastest.
        let mut a = k;
        while a > 0 {
            a -= 1;
            idx[a] += 1;
            off += strides[a];
            if idx[a] < out_dims[a] {
                break;
            }
            off -= strides[a] * out_dims[a];
            idx[a] = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_nhwc_to_nchw() {
        // One 2x2 image with 3 channels, NHWC: value = 100*c + 10*h + w.
        let mut nhwc = Vec::new();
        for h in 0..2 {
            for w in 0..2 {
                for c in 0..3 {
                    nhwc.push(100 * c + 10 * h + w);
                }
            }
        }
        let nchw = permute(&nhwc, &[1, 2, 2, 3], &[0, 3, 1, 2]);
        assert_eq!(nchw, vec![0, 1, 10, 11, 100, 101, 110, 111, 200, 201, 210, 211]);
    }

    #[test]
    fn permute_identity_and_2d_transpose() {
        let v: Vec<i32> = (0..6).collect();
        assert_eq!(permute(&v, &[2, 3], &[0, 1]), v);
        assert_eq!(permute(&v, &[2, 3], &[1, 0]), vec![0, 3, 1, 4, 2, 5]);
        assert_eq!(permute(&[7], &[], &[]), vec![7]);
    }

    #[test]
    fn fortran_order_is_reordered() {
        // Column-major [[0,1,2],[3,4,5]] is stored 0,3,1,4,2,5.
        let bytes = [0u8, 3, 1, 4, 2, 5];
        let a = Array {
            dtype: DType::U8,
            endian: Endian::Little,
            dims: vec![2, 3],
            fortran: true,
            data: &bytes,
            dtype_name: "|u1".into(),
        };
        let v = a.int_values(Path::new("x")).unwrap();
        assert_eq!(v, vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn byte_len_saturates() {
        assert_eq!(byte_len(&[2, 3], 4), 24);
        assert_eq!(byte_len(&[u64::MAX, u64::MAX, u64::MAX], 8), u128::MAX);
    }
}
