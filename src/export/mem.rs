//! `$readmemh` word files: one word per line, two's complement at the word's width, lower-case
//! hex with exactly `ceil(bits / 4)` digits (the unused high bits of the top digit are zero).

use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::Path;

/// Hex digits of a `bits`-wide word.
pub fn hex_digits(bits: u32) -> usize {
    bits.div_ceil(4) as usize
}

/// Whether `code` is representable in a `bits`-wide word of the given signedness.
fn fits(code: i64, bits: u32, signed: bool) -> bool {
    let b = i128::from(bits);
    let k = i128::from(code);
    if signed {
        (-(1i128 << (b - 1))..(1i128 << (b - 1))).contains(&k)
    } else {
        (0..(1i128 << b)).contains(&k)
    }
}

/// One word: `code` in two's complement at `bits`, as `ceil(bits/4)` hex digits.
pub fn mem_word(code: i64, bits: u32) -> String {
    let mask = (1u128 << bits) - 1;
    let v = (i128::from(code) as u128) & mask;
    format!("{v:0width$x}", width = hex_digits(bits))
}

/// Write `codes` as a `.mem` file. Every code must fit `bits` at the given signedness.
pub fn write_mem(path: &Path, codes: &[i64], bits: u32, signed: bool) -> Result<()> {
    if !(1..=64).contains(&bits) {
        bail!("{}: word width {bits} is out of range 1..=64", path.display());
    }
    let mut text = String::with_capacity(codes.len() * (hex_digits(bits) + 1));
    for (i, &k) in codes.iter().enumerate() {
        if !fits(k, bits, signed) {
            bail!(
                "{}: word {i} = {k} does not fit {} {bits} bits",
                path.display(),
                if signed { "signed" } else { "unsigned" }
            );
        }
        let _ = writeln!(text, "{}", mem_word(k, bits));
    }
    let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = BufWriter::new(file);
    w.write_all(text.as_bytes()).and_then(|_| w.flush()).with_context(|| format!("cannot write {}", path.display()))
}

/// Read a `.mem` file written by [`write_mem`] (or any plain `$readmemh` file without `@`
/// addresses) back into integer codes: each word is `bits` wide and sign-extended when `signed`.
/// Blank lines, `//` comments and `_` digit separators are accepted; `x`/`z` digits, address
/// directives and words wider than `bits` are errors.
pub fn read_mem(path: impl AsRef<Path>, bits: u32, signed: bool) -> Result<Vec<i64>> {
    let path = path.as_ref();
    if !(1..=64).contains(&bits) {
        bail!("{}: word width {bits} is out of range 1..=64", path.display());
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split("//").next().unwrap_or("");
        for word in line.split_whitespace() {
            let digits: String = word.chars().filter(|&c| c != '_').collect();
            if digits.starts_with('@') {
                bail!("{}:{}: address directives are not supported", path.display(), n + 1);
            }
            let v = u128::from_str_radix(&digits, 16)
                .ok()
                .filter(|_| !digits.is_empty() && digits.len() <= 32)
                .with_context(|| format!("{}:{}: '{word}' is not a hex word", path.display(), n + 1))?;
            if v >> bits != 0 {
                bail!("{}:{}: '{word}' is wider than {bits} bits", path.display(), n + 1);
            }
            let k = if signed && (v >> (bits - 1)) & 1 == 1 { v as i128 - (1i128 << bits) } else { v as i128 };
            out.push(
                i64::try_from(k).with_context(|| format!("{}:{}: '{word}' overflows i64", path.display(), n + 1))?,
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_padded_twos_complement() {
        assert_eq!(mem_word(-1, 8), "ff");
        assert_eq!(mem_word(-1, 5), "1f");
        assert_eq!(mem_word(3, 5), "03");
        assert_eq!(mem_word(-128, 8), "80");
        assert_eq!(mem_word(0, 1), "0");
        assert_eq!(mem_word(1, 1), "1");
        assert_eq!(mem_word(-1, 1), "1");
        assert_eq!(mem_word(i64::from(u32::MAX), 32), "ffffffff");
        assert_eq!(mem_word(i64::from(i32::MIN), 32), "80000000");
        assert_eq!(mem_word(-2, 64), "fffffffffffffffe");
    }

    #[test]
    fn round_trip_with_sign_extension() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.mem");
        for (bits, signed, codes) in [
            (5u32, true, vec![-16i64, -1, 0, 1, 15]),
            (5, false, vec![0, 1, 31]),
            (1, true, vec![-1, 0]),
            (1, false, vec![0, 1]),
            (32, true, vec![i64::from(i32::MIN), i64::from(i32::MAX)]),
            (32, false, vec![i64::from(u32::MAX)]),
            (64, true, vec![i64::MIN, i64::MAX, -1]),
        ] {
            write_mem(&p, &codes, bits, signed).unwrap();
            assert_eq!(read_mem(&p, bits, signed).unwrap(), codes, "{bits} {signed}");
        }
        assert!(write_mem(&p, &[16], 5, true).is_err());
        assert!(write_mem(&p, &[-1], 5, false).is_err());
    }

    #[test]
    fn reader_rejects_bad_words() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.mem");
        std::fs::write(&p, "// header\n0f\n\n1_0 // sixteen\n").unwrap();
        assert_eq!(read_mem(&p, 8, true).unwrap(), vec![15, 16]);
        std::fs::write(&p, "1ff\n").unwrap();
        assert!(read_mem(&p, 8, false).is_err());
        std::fs::write(&p, "xx\n").unwrap();
        assert!(read_mem(&p, 8, false).is_err());
        std::fs::write(&p, "@10\n00\n").unwrap();
        assert!(read_mem(&p, 8, false).is_err());
    }
}
