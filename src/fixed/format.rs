//! Fixed-point formats (docs/fixed-point.md, "Formats"): a value is `k * 2^-frac` with integer `k`
//! in a range set by `bits`, signedness and the range mode.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Widest format we accept; the integer engine is exact for all of them (i128 accumulators).
pub const MAX_BITS: u32 = 32;
/// `frac` beyond this is certainly a mistake (values below 2^-64 or steps above 2^64).
pub const MAX_ABS_FRAC: i32 = 64;

/// How a signed format's most negative code is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RangeMode {
    /// `[-2^(b-1), 2^(b-1) - 1]`
    #[default]
    TwosComplement,
    /// `[-(2^(b-1) - 1), 2^(b-1) - 1]`, the seed paper's; 1 bit holds only 0.
    Symmetric,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Format {
    pub bits: u32,
    pub frac: i32,
    pub signed: bool,
}

impl Format {
    pub fn new(bits: u32, frac: i32, signed: bool) -> Self {
        Format { bits, frac, signed }
    }

    /// Check the format is one the engine supports; the message names what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.bits == 0 || self.bits > MAX_BITS {
            return Err(format!("bits = {} is out of range 1..={MAX_BITS}", self.bits));
        }
        if self.frac.abs() > MAX_ABS_FRAC {
            return Err(format!("frac = {} is out of range -{MAX_ABS_FRAC}..={MAX_ABS_FRAC}", self.frac));
        }
        Ok(())
    }

    /// Smallest and largest integer code.
    pub fn code_range(&self, range: RangeMode) -> (i64, i64) {
        let b = i64::from(self.bits);
        if !self.signed {
            return (0, (1i64 << b) - 1);
        }
        let max = (1i64 << (b - 1)) - 1;
        match range {
            RangeMode::TwosComplement => (-(1i64 << (b - 1)), max),
            RangeMode::Symmetric => (-max, max),
        }
    }

    /// Largest magnitude of any code, for exactness bounds.
    pub fn max_abs_code(&self, range: RangeMode) -> u64 {
        let (lo, hi) = self.code_range(range);
        lo.unsigned_abs().max(hi.unsigned_abs())
    }

    /// The no-clip fractional offset for a tensor whose largest magnitude is `max_abs`:
    /// `frac = bits - 1 - ceil(log2(max|x|))` (signed) or `bits - ceil(log2(max|x|))` (unsigned).
    /// An all-zero tensor gets the offset of `max|x| = 1`.
    pub fn no_clip_frac(bits: u32, signed: bool, max_abs: f64) -> i32 {
        let frac = bits as i32 - i32::from(signed) - int_bits(max_abs);
        frac.clamp(-MAX_ABS_FRAC, MAX_ABS_FRAC)
    }

    pub fn no_clip(bits: u32, signed: bool, max_abs: f64) -> Self {
        Format::new(bits, Self::no_clip_frac(bits, signed, max_abs), signed)
    }

    /// The real value of one step, `2^-frac`.
    pub fn step(&self) -> f64 {
        (2.0f64).powi(-self.frac)
    }
}

/// `ceil(log2(max_abs))`, the integer bits a magnitude needs; 0 for zero (or a non-finite value).
fn int_bits(max_abs: f64) -> i32 {
    if max_abs > 0.0 && max_abs.is_finite() {
        max_abs.log2().ceil() as i32
    } else {
        0
    }
}

/// The extra fractional bits each output channel's weights get under per-channel offsets
/// (docs/fixed-point.md, "Per-channel weight offsets"): `d_c = ceil(log2 max|W|) -
/// ceil(log2 max|W_c|)` for the `channels` equal slices of `weights` (0 for an all-zero
/// channel). Every `d_c >= 0`, and it is 0 for the channel with the largest magnitude, so a
/// layer's per-tensor `frac` stays the offset of its widest channel.
pub fn channel_headroom(weights: &[f64], channels: usize) -> Vec<i32> {
    let max_abs = |w: &[f64]| w.iter().fold(0.0f64, |m, &x| m.max(x.abs()));
    let per = weights.len() / channels.max(1);
    let whole = int_bits(max_abs(weights));
    weights
        .chunks(per.max(1))
        .take(channels)
        .map(|w| {
            let m = max_abs(w);
            if m > 0.0 {
                whole - int_bits(m)
            } else {
                0
            }
        })
        .collect()
}

impl fmt::Display for Format {
    /// `s8.5` = signed, 8 bits, frac 5; `u4.-1` = unsigned, 4 bits, frac -1.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}.{}", if self.signed { 's' } else { 'u' }, self.bits, self.frac)
    }
}
