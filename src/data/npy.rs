//! NumPy `.npy` files (format versions 1.0, 2.0 and 3.0).
//!
//! Layout: `\x93NUMPY`, major and minor version bytes, a little-endian header length (u16 for
//! version 1, u32 for versions 2 and 3), a Python dict literal such as
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (10, 28, 28), }` padded with spaces and
//! a newline, then the elements.
//!
//! This is parsed by hand rather than with the `npyz` crate because `npyz` 0.9 panics (u64
//! overflow in `shape.iter().product()`, debug builds) on a header whose shape overflows and
//! allocates the declared header length before reading it; every length here is checked against
//! the file first.
use std::path::Path;

use super::array::{byte_len, check_len, Array, DType, Endian};
use super::DataError;

pub(crate) const MAGIC: &[u8] = b"\x93NUMPY";

/// Deepest nesting accepted in the header literal (structured dtypes nest a few levels).
const MAX_DEPTH: usize = 32;

/// Parse a `.npy` file held in memory.
pub(crate) fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<Array<'a>, DataError> {
    let bad = |detail: String| DataError::BadHeader { path: path.to_path_buf(), detail };
    let truncated = |expected: usize| DataError::Truncated {
        path: path.to_path_buf(),
        expected: expected as u128,
        actual: bytes.len() as u64,
    };
    if !bytes.starts_with(MAGIC) {
        return Err(DataError::BadMagic {
            path: path.to_path_buf(),
            detail: "a .npy file starts with \\x93NUMPY".into(),
        });
    }
    if bytes.len() < 10 {
        return Err(truncated(10));
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (start, hlen): (usize, usize) = match major {
        1 => (10, usize::from(u16::from_le_bytes([bytes[8], bytes[9]]))),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(truncated(12));
            }
            let l = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (12, usize::try_from(l).unwrap_or(usize::MAX))
        }
        _ => return Err(bad(format!("unsupported .npy format version {major}.{minor}"))),
    };
    let end = start.saturating_add(hlen);
    if bytes.len() < end {
        return Err(truncated(end));
    }
    let text = std::str::from_utf8(&bytes[start..end]).map_err(|_| bad("header is not valid text".into()))?;
    let dict = Parser::new(text).parse_all().map_err(|e| bad(format!("{e} in header {:?}", text.trim_end())))?;
    let Value::Dict(entries) = dict else {
        return Err(bad("header is not a dict".into()));
    };
    let get = |key: &str| {
        entries
            .iter()
            .find(|(k, _)| matches!(k, Value::Str(s) if s == key))
            .map(|(_, v)| v)
            .ok_or_else(|| bad(format!("header has no '{key}' key")))
    };
    let fortran = match get("fortran_order")? {
        Value::Bool(b) => *b,
        _ => return Err(bad("'fortran_order' is not True or False".into())),
    };
    let dims64: Vec<u64> = match get("shape")? {
        Value::Seq(items) => items
            .iter()
            .map(|v| match v {
                Value::Int(i) => u64::try_from(*i).map_err(|_| bad(format!("bad dimension {i}"))),
                _ => Err(bad("shape holds a non-integer".into())),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(bad("'shape' is not a tuple".into())),
    };
    let (dtype, endian, dtype_name) = match get("descr")? {
        Value::Str(s) => {
            let (t, e) = parse_descr(s).ok_or_else(|| DataError::UnsupportedDtype {
                path: path.to_path_buf(),
                what: ".npy",
                dtype: format!("'{s}'"),
                supported: "integer (i1..i8, u1..u8) and float (f4, f8) arrays",
            })?;
            (t, e, format!("'{s}'"))
        }
        _ => {
            return Err(DataError::UnsupportedDtype {
                path: path.to_path_buf(),
                what: ".npy",
                dtype: "structured (record) dtype".into(),
                supported: "plain integer and float arrays",
            })
        }
    };
    check_len(path, bytes.len(), end, byte_len(&dims64, dtype.size()))?;
    // The length check bounds every dimension (when none is zero) by the file size; a zero
    // dimension makes the array empty, and then the others must still fit in usize.
    let dims = dims64
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| bad(format!("dimension {d} is too large"))))
        .collect::<Result<_, _>>()?;
    Ok(Array { dtype, endian, dims, fortran, data: &bytes[end..], dtype_name })
}

/// `'<f4'` -> (F32, little). `None` for anything this loader does not read.
fn parse_descr(s: &str) -> Option<(DType, Endian)> {
    let b = s.as_bytes();
    if b.len() < 2 {
        return None;
    }
    let (order, rest) = match b[0] {
        b'<' | b'>' | b'|' | b'=' => (b[0], &s[1..]),
        _ => (b'=', s),
    };
    let dtype = match rest {
        "u1" | "B" => DType::U8,
        "i1" | "b" => DType::I8,
        "u2" => DType::U16,
        "i2" => DType::I16,
        "u4" => DType::U32,
        "i4" => DType::I32,
        "u8" => DType::U64,
        "i8" => DType::I64,
        "f4" => DType::F32,
        "f8" => DType::F64,
        _ => return None,
    };
    let endian = match order {
        b'>' => Endian::Big,
        b'<' => Endian::Little,
        // '|' (not applicable) only makes sense for one-byte types.
        b'|' if dtype.size() != 1 => return None,
        _ if cfg!(target_endian = "big") => Endian::Big,
        _ => Endian::Little,
    };
    Some((dtype, endian))
}

/// The subset of Python literals that appear in .npy headers.
#[derive(Debug, PartialEq)]
enum Value {
    Str(String),
    Int(i128),
    Bool(bool),
    None,
    /// A tuple or a list.
    Seq(Vec<Value>),
    Dict(Vec<(Value, Value)>),
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Parser { s: text.as_bytes(), pos: 0 }
    }

    fn parse_all(mut self) -> Result<Value, String> {
        let v = self.value(0)?;
        self.skip_ws();
        // NumPy pads with spaces and ends with '\n'; a few writers pad with NUL bytes.
        if self.s[self.pos..].iter().any(|&c| c != 0) {
            return Err(format!("unexpected text at byte {}", self.pos));
        }
        Ok(v)
    }

    fn skip_ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.pos).copied()
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", c as char, self.pos))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err("header nests too deeply".into());
        }
        match self.peek() {
            None => Err("header ends early".into()),
            Some(b'{') => {
                self.pos += 1;
                let mut entries = Vec::new();
                while self.peek() != Some(b'}') {
                    let k = self.value(depth + 1)?;
                    self.expect(b':')?;
                    let v = self.value(depth + 1)?;
                    entries.push((k, v));
                    if self.peek() != Some(b',') {
                        break;
                    }
                    self.pos += 1;
                }
                self.expect(b'}')?;
                Ok(Value::Dict(entries))
            }
            Some(open @ (b'(' | b'[')) => {
                let close = if open == b'(' { b')' } else { b']' };
                self.pos += 1;
                let mut items = Vec::new();
                while self.peek() != Some(close) {
                    items.push(self.value(depth + 1)?);
                    if self.peek() != Some(b',') {
                        break;
                    }
                    self.pos += 1;
                }
                self.expect(close)?;
                Ok(Value::Seq(items))
            }
            Some(q @ (b'\'' | b'"')) => {
                self.pos += 1;
                let start = self.pos;
                while self.pos < self.s.len() && self.s[self.pos] != q {
                    if self.s[self.pos] == b'\\' {
                        return Err("escapes in header strings are not supported".into());
                    }
                    self.pos += 1;
                }
                if self.pos >= self.s.len() {
                    return Err("unterminated string".into());
                }
                let text = String::from_utf8_lossy(&self.s[start..self.pos]).into_owned();
                self.pos += 1;
                Ok(Value::Str(text))
            }
            Some(c) if c == b'-' || c.is_ascii_digit() => {
                let start = self.pos;
                self.pos += 1;
                while self.pos < self.s.len() && self.s[self.pos].is_ascii_digit() {
                    self.pos += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("");
                let n: i128 = text.parse().map_err(|_| format!("bad integer '{text}' at byte {start}"))?;
                // Python 2 long suffix, written by old NumPy versions.
                if matches!(self.s.get(self.pos), Some(b'L' | b'l')) {
                    self.pos += 1;
                }
                Ok(Value::Int(n))
            }
            Some(_) => {
                let start = self.pos;
                while self.pos < self.s.len() && self.s[self.pos].is_ascii_alphabetic() {
                    self.pos += 1;
                }
                match &self.s[start..self.pos] {
                    b"True" => Ok(Value::Bool(true)),
                    b"False" => Ok(Value::Bool(false)),
                    b"None" => Ok(Value::None),
                    _ => Err(format!("unexpected text at byte {start}")),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numpy_header_literal() {
        let v =
            Parser::new("{'descr': '<f4', 'fortran_order': False, 'shape': (10, 28, 28), }   \n").parse_all().unwrap();
        assert_eq!(
            v,
            Value::Dict(vec![
                (Value::Str("descr".into()), Value::Str("<f4".into())),
                (Value::Str("fortran_order".into()), Value::Bool(false)),
                (Value::Str("shape".into()), Value::Seq(vec![Value::Int(10), Value::Int(28), Value::Int(28)])),
            ])
        );
        let v = Parser::new("{'shape': (3,), 'x': [('a', '<i4')], 'y': None, 'z': 5L}").parse_all().unwrap();
        assert!(matches!(v, Value::Dict(ref e) if e.len() == 4));
        assert_eq!(
            Parser::new("{'shape': ()}").parse_all().unwrap(),
            Value::Dict(vec![(Value::Str("shape".into()), Value::Seq(vec![]))])
        );
    }

    #[test]
    fn rejects_bad_literals_without_panicking() {
        for text in [
            "",
            "{",
            "{'a' 1}",
            "{'a': (1, 2}",
            "{'a': 'unterminated}",
            "{'a': 99999999999999999999999999999999999999999999}",
            "{'a': Maybe}",
            "{'a': 1} trailing",
            "{'a': -}",
        ] {
            assert!(Parser::new(text).parse_all().is_err(), "{text:?}");
        }
        let deep = "[".repeat(10_000);
        assert!(Parser::new(&deep).parse_all().is_err());
    }

    #[test]
    fn descr_strings() {
        assert_eq!(parse_descr("|u1"), Some((DType::U8, Endian::Little)));
        assert_eq!(parse_descr("<f4"), Some((DType::F32, Endian::Little)));
        assert_eq!(parse_descr(">f4"), Some((DType::F32, Endian::Big)));
        assert_eq!(parse_descr("<i8"), Some((DType::I64, Endian::Little)));
        assert_eq!(parse_descr(">u2"), Some((DType::U16, Endian::Big)));
        assert_eq!(parse_descr("<f2"), None);
        assert_eq!(parse_descr("|b1"), None);
        assert_eq!(parse_descr("|f4"), None);
        assert_eq!(parse_descr("<U5"), None);
        assert_eq!(parse_descr(""), None);
    }

    fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(' ');
        }
        h.push('\n');
        let mut v = MAGIC.to_vec();
        v.extend_from_slice(&[1, 0]);
        v.extend_from_slice(&(h.len() as u16).to_le_bytes());
        v.extend_from_slice(h.as_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn lying_shape_is_truncation() {
        let p = Path::new("t.npy");
        let b = npy("|u1", "(18446744073709551615, 18446744073709551615, 4)", &[0; 4]);
        assert!(matches!(parse(p, &b), Err(DataError::Truncated { .. })));
        let b = npy("<f4", "(2, 2)", &[0; 15]);
        assert!(matches!(parse(p, &b), Err(DataError::Truncated { .. })));
        // An empty array may have a huge other dimension; it must still be rejected cleanly.
        let b = npy("<f4", "(0, 18446744073709551615, 18446744073709551615)", &[]);
        let a = parse(p, &b).unwrap();
        assert!(matches!(a.into_images(p, None), Err(DataError::Empty { .. })));
        // Header length beyond the end of the file.
        let mut b = npy("|u1", "(1,)", &[0]);
        b[8] = 0xFF;
        b[9] = 0xFF;
        assert!(matches!(parse(p, &b), Err(DataError::Truncated { .. })));
        // Version 2 header length of 4 GiB.
        let mut b = npy("|u1", "(1,)", &[0]);
        b[6] = 2;
        b.splice(8..10, [0xFF, 0xFF, 0xFF, 0xFF]);
        assert!(matches!(parse(p, &b), Err(DataError::Truncated { .. })));
        assert!(matches!(parse(p, &b[..8]), Err(DataError::Truncated { .. })));
    }

    #[test]
    fn header_errors() {
        let p = Path::new("t.npy");
        assert!(matches!(parse(p, b"NUMPY\x01\x00"), Err(DataError::BadMagic { .. })));
        let mut b = npy("|u1", "(1,)", &[0]);
        b[6] = 9;
        assert!(matches!(parse(p, &b), Err(DataError::BadHeader { .. })));
        let b = npy("|u1", "(-1,)", &[]);
        assert!(matches!(parse(p, &b), Err(DataError::BadHeader { .. })));
        let b = npy("<c8", "(1,)", &[0; 8]);
        assert!(matches!(parse(p, &b), Err(DataError::UnsupportedDtype { .. })));
    }
}
