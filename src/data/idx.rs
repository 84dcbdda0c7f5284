//! IDX files (the MNIST / Fashion-MNIST format).
//!
//! Layout: two zero bytes, a type code (0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32,
//! 0x0E f64), the number of dimensions, then one big-endian u32 per dimension, then the
//! big-endian elements in row-major order.
use std::path::Path;

use super::array::{byte_len, check_len, Array, DType, Endian};
use super::DataError;

/// Whether `bytes` starts like an IDX file.
pub(crate) fn looks_like_idx(bytes: &[u8]) -> bool {
    bytes.len() >= 4 && bytes[0] == 0 && bytes[1] == 0 && type_of(bytes[2]).is_some() && (1..=8).contains(&bytes[3])
}

fn type_of(code: u8) -> Option<(DType, &'static str)> {
    Some(match code {
        0x08 => (DType::U8, "ubyte (0x08)"),
        0x09 => (DType::I8, "sbyte (0x09)"),
        0x0B => (DType::I16, "short (0x0B)"),
        0x0C => (DType::I32, "int (0x0C)"),
        0x0D => (DType::F32, "float (0x0D)"),
        0x0E => (DType::F64, "double (0x0E)"),
        _ => return None,
    })
}

/// Parse an IDX file held in memory (already decompressed).
pub(crate) fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<Array<'a>, DataError> {
    if bytes.len() < 4 {
        return Err(DataError::Truncated { path: path.to_path_buf(), expected: 4, actual: bytes.len() as u64 });
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(DataError::BadMagic {
            path: path.to_path_buf(),
            detail: format!("IDX files start with 0x00 0x00, found 0x{:02X} 0x{:02X}", bytes[0], bytes[1]),
        });
    }
    let Some((dtype, dtype_name)) = type_of(bytes[2]) else {
        return Err(DataError::UnsupportedDtype {
            path: path.to_path_buf(),
            what: "IDX",
            dtype: format!("type code 0x{:02X}", bytes[2]),
            supported: "0x08 ubyte, 0x09 sbyte, 0x0B short, 0x0C int, 0x0D float, 0x0E double",
        });
    };
    let ndims = usize::from(bytes[3]);
    if ndims == 0 {
        return Err(DataError::BadHeader {
            path: path.to_path_buf(),
            detail: "IDX header declares zero dimensions".into(),
        });
    }
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected: header as u128,
            actual: bytes.len() as u64,
        });
    }
    let dims64: Vec<u64> =
        bytes[4..header].chunks_exact(4).map(|c| u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))).collect();
    check_len(path, bytes.len(), header, byte_len(&dims64, dtype.size()))?;
    // The length check bounds every dimension by the file size, so they fit in usize.
    let dims = dims64.iter().map(|&d| d as usize).collect();
    Ok(Array {
        dtype,
        endian: Endian::Big,
        dims,
        fortran: false,
        data: &bytes[header..],
        dtype_name: dtype_name.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(code: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, code, dims.len() as u8];
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn parses_ubyte_images() {
        let b = idx(0x08, &[2, 1, 3], &[1, 2, 3, 4, 5, 6]);
        assert!(looks_like_idx(&b));
        let a = parse(Path::new("t"), &b).unwrap();
        assert_eq!(a.dims, vec![2, 1, 3]);
        let (chw, raw, n) = a.into_images(Path::new("t"), None).unwrap();
        assert_eq!((chw, n), (vec![1, 1, 3], 2));
        assert_eq!(raw, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }

    #[test]
    fn parses_big_endian_floats() {
        let mut data = Vec::new();
        for v in [0.5f32, -1.25] {
            data.extend_from_slice(&v.to_be_bytes());
        }
        let b = idx(0x0D, &[1, 1, 2], &data);
        let (_, raw, _) = parse(Path::new("t"), &b).unwrap().into_images(Path::new("t"), None).unwrap();
        assert_eq!(raw, vec![0.5, -1.25]);
    }

    #[test]
    fn lying_header_is_truncation_not_allocation() {
        let b = idx(0x08, &[u32::MAX, u32::MAX, u32::MAX, u32::MAX], &[0; 8]);
        match parse(Path::new("t"), &b) {
            Err(DataError::Truncated { actual, .. }) => assert_eq!(actual, b.len() as u64),
            other => panic!("{other:?}"),
        }
        // Header cut short.
        let b = idx(0x08, &[5, 5, 5], &[]);
        assert!(matches!(parse(Path::new("t"), &b[..9]), Err(DataError::Truncated { .. })));
        assert!(matches!(parse(Path::new("t"), &[0, 0]), Err(DataError::Truncated { .. })));
    }

    #[test]
    fn bad_magic_and_type() {
        assert!(matches!(parse(Path::new("t"), &[1, 0, 8, 1, 0, 0, 0, 0]), Err(DataError::BadMagic { .. })));
        assert!(matches!(parse(Path::new("t"), &[0, 0, 0x0A, 1, 0, 0, 0, 0]), Err(DataError::UnsupportedDtype { .. })));
        let b = idx(0x08, &[2], &[1, 2, 3]);
        assert!(matches!(parse(Path::new("t"), &b), Err(DataError::TrailingBytes { extra: 1, .. })));
    }
}
