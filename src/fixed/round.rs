//! Rounding and overflow (docs/fixed-point.md, "Quantizing a real x"). Every conversion in the
//! integer engine goes through these few functions, so the rules live in one place.

use super::format::{Format, RangeMode};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Rounding {
    /// Round half to even (numpy's `round`).
    #[default]
    HalfEven,
    /// `floor(v + 1/2)`: one adder in hardware.
    HalfUp,
    /// Truncate toward minus infinity: free in hardware (drop bits).
    Floor,
    /// Round half away from zero.
    HalfAway,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Overflow {
    #[default]
    Saturate,
    /// Two's-complement wrap to the format's bits.
    Wrap,
}

/// The arithmetic policy of a whole assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Arith {
    pub rounding: Rounding,
    pub overflow: Overflow,
    pub range: RangeMode,
}

/// Round a real `v` (already scaled by `2^frac`) to an integer, exactly.
#[inline(always)]
pub fn round_f64(v: f64, mode: Rounding) -> f64 {
    match mode {
        Rounding::HalfEven => v.round_ties_even(),
        Rounding::HalfAway => v.round(),
        Rounding::Floor => v.floor(),
        Rounding::HalfUp => {
            // floor(v + 0.5) without the inexact addition: compare the exact fraction.
            let fl = v.floor();
            if v - fl >= 0.5 {
                fl + 1.0
            } else {
                fl
            }
        }
    }
}

/// `round(num / den)` for `den > 0`, exactly, in the given mode.
pub fn round_div(num: i128, den: i128, mode: Rounding) -> i128 {
    debug_assert!(den > 0);
    // floor and 0 <= r < den, since den > 0; in i64 where both fit (an i128 division is a
    // library call several times slower: pooling divides once per output).
    let (q, r) = match (i64::try_from(num), i64::try_from(den)) {
        (Ok(n), Ok(d)) => (i128::from(n.div_euclid(d)), i128::from(n.rem_euclid(d))),
        _ => (num.div_euclid(den), num.rem_euclid(den)),
    };
    let twice = 2 * r;
    match mode {
        Rounding::Floor => q,
        Rounding::HalfUp => q + i128::from(twice >= den),
        Rounding::HalfEven => {
            if twice > den || (twice == den && q & 1 == 1) {
                q + 1
            } else {
                q
            }
        }
        Rounding::HalfAway => {
            if twice > den || (twice == den && num >= 0) {
                q + 1
            } else {
                q
            }
        }
    }
}

/// `round(v / 2^shift)` for `shift >= 0`, exactly (the fast path of [`round_div`]).
pub fn round_shift(v: i128, shift: u32, mode: Rounding) -> i128 {
    if shift == 0 {
        return v;
    }
    if shift >= 126 {
        // |v| < 2^127 <= 2^(shift+1) / 2: the quotient is below one half in magnitude.
        return if mode == Rounding::Floor && v < 0 { -1 } else { 0 };
    }
    let q = v >> shift; // floor
    let r = v - (q << shift);
    let half = 1i128 << (shift - 1);
    match mode {
        Rounding::Floor => q,
        Rounding::HalfUp => q + i128::from(r >= half),
        Rounding::HalfEven => q + i128::from(r > half || (r == half && q & 1 == 1)),
        Rounding::HalfAway => q + i128::from(r > half || (r == half && v >= 0)),
    }
}

/// [`round_shift`] in 64-bit arithmetic, for `shift < 62` and `|v| < 2^62`.
fn round_shift_i64(v: i64, shift: u32, mode: Rounding) -> i64 {
    if shift == 0 {
        return v;
    }
    let q = v >> shift;
    let r = v - (q << shift);
    let half = 1i64 << (shift - 1);
    match mode {
        Rounding::Floor => q,
        Rounding::HalfUp => q + i64::from(r >= half),
        Rounding::HalfEven => q + i64::from(r > half || (r == half && q & 1 == 1)),
        Rounding::HalfAway => q + i64::from(r > half || (r == half && v >= 0)),
    }
}

/// Bring an exact integer into a format's code range: saturate, or wrap to its bits.
pub fn fit(v: i128, fmt: Format, arith: Arith) -> i64 {
    let (lo, hi) = fmt.code_range(arith.range);
    match arith.overflow {
        Overflow::Saturate => v.clamp(i128::from(lo), i128::from(hi)) as i64,
        Overflow::Wrap => {
            let m = 1i128 << fmt.bits;
            let mut w = v.rem_euclid(m);
            if fmt.signed && w >= m / 2 {
                w -= m;
            }
            // Symmetric range has no code -2^(b-1): a wrap that lands there saturates to -max.
            (w as i64).clamp(lo, hi)
        }
    }
}

/// Re-express an exact value `v * 2^-from_frac` in `fmt`: round to its step, then fit.
pub fn requantize(v: i128, from_frac: i32, fmt: Format, arith: Arith) -> i64 {
    let shift = from_frac - fmt.frac;
    // Fast path (the common case): the value and the shift fit 64-bit arithmetic.
    if (0..62).contains(&shift) && i64::try_from(v).is_ok_and(|x| x.unsigned_abs() < 1 << 62) {
        let r = round_shift_i64(v as i64, shift as u32, arith.rounding);
        if arith.overflow == Overflow::Saturate {
            let (lo, hi) = fmt.code_range(arith.range);
            return r.clamp(lo, hi);
        }
        return fit(i128::from(r), fmt, arith);
    }
    let r = if shift >= 0 { round_shift(v, shift as u32, arith.rounding) } else { shl_saturating(v, (-shift) as u32) };
    fit(r, fmt, arith)
}

/// [`requantize`] every code of a tensor (`codes` in a format of at most 32 bits, so every
/// value is within the 64-bit fast path), checking the format's case once instead of per code;
/// the codes are appended to `out` through `store` (the caller's code type).
pub fn requantize_codes<K: Copy + Into<i64>>(
    codes: &[K],
    from_frac: i32,
    fmt: Format,
    arith: Arith,
    store: impl Fn(i64) -> K,
    out: &mut Vec<K>,
) {
    let shift = from_frac - fmt.frac;
    if (0..62).contains(&shift) && arith.overflow == Overflow::Saturate {
        let (lo, hi) = fmt.code_range(arith.range);
        out.extend(codes.iter().map(|&k| store(round_shift_i64(k.into(), shift as u32, arith.rounding).clamp(lo, hi))));
    } else {
        out.extend(codes.iter().map(|&k| store(requantize(i128::from(k.into()), from_frac, fmt, arith))));
    }
}

/// `v * 2^s`, saturating at the i128 range (any such value saturates every format anyway).
pub fn shl_saturating(v: i128, s: u32) -> i128 {
    if v == 0 {
        return 0;
    }
    if s >= 127 || v.unsigned_abs().leading_zeros() <= s + 1 {
        return if v > 0 { i128::MAX / 4 } else { i128::MIN / 4 };
    }
    v << s
}

/// Quantize a real number into `fmt`: `k = fit(round(x * 2^frac))`.
pub fn quantize(x: f64, fmt: Format, arith: Arith) -> i64 {
    quantize_scaled(x * (2.0f64).powi(fmt.frac), fmt, arith)
}

/// [`quantize`] of `x` given `scaled = x * 2^frac` (exact: a power of two), so that loops over
/// a tensor compute the power once.
#[inline(always)]
pub fn quantize_scaled(scaled: f64, fmt: Format, arith: Arith) -> i64 {
    let r = round_f64(scaled, arith.rounding);
    if arith.overflow == Overflow::Saturate {
        // The range ends (|.| <= 2^32) are exact in f64, so clamping before the cast is `fit`.
        let (lo, hi) = fmt.code_range(arith.range);
        return r.clamp(lo as f64, hi as f64) as i64;
    }
    // Beyond ±2^100 only the cast matters (the code wraps anyway); clamp before it.
    let r = r.clamp(-1e30, 1e30);
    fit(r as i128, fmt, arith)
}

/// The real value of code `k` in `fmt`.
pub fn dequantize(k: i64, fmt: Format) -> f64 {
    k as f64 * fmt.step()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARITH: Arith =
        Arith { rounding: Rounding::HalfEven, overflow: Overflow::Saturate, range: RangeMode::TwosComplement };

    fn with(rounding: Rounding, overflow: Overflow, range: RangeMode) -> Arith {
        Arith { rounding, overflow, range }
    }

    #[test]
    fn rounding_table() {
        // (value, half-even, half-up, floor, half-away)
        let table: &[(f64, f64, f64, f64, f64)] = &[
            (2.5, 2.0, 3.0, 2.0, 3.0),
            (3.5, 4.0, 4.0, 3.0, 4.0),
            (-2.5, -2.0, -2.0, -3.0, -3.0),
            (-3.5, -4.0, -3.0, -4.0, -4.0),
            (2.4, 2.0, 2.0, 2.0, 2.0),
            (-2.6, -3.0, -3.0, -3.0, -3.0),
            (0.5, 0.0, 1.0, 0.0, 1.0),
            (-0.5, -0.0, 0.0, -1.0, -1.0),
            (7.0, 7.0, 7.0, 7.0, 7.0),
        ];
        for &(v, he, hu, fl, ha) in table {
            assert_eq!(round_f64(v, Rounding::HalfEven), he, "half-even {v}");
            assert_eq!(round_f64(v, Rounding::HalfUp), hu, "half-up {v}");
            assert_eq!(round_f64(v, Rounding::Floor), fl, "floor {v}");
            assert_eq!(round_f64(v, Rounding::HalfAway), ha, "half-away {v}");
        }
    }

    #[test]
    fn integer_rounding_agrees_with_float_rounding() {
        for mode in [Rounding::HalfEven, Rounding::HalfUp, Rounding::Floor, Rounding::HalfAway] {
            for v in -80i128..=80 {
                for s in 0..5u32 {
                    let exact = v as f64 / (1u64 << s) as f64;
                    let want = round_f64(exact, mode) as i128;
                    assert_eq!(round_shift(v, s, mode), want, "{mode:?} {v} >> {s}");
                    assert_eq!(round_div(v, 1 << s, mode), want, "{mode:?} {v} / 2^{s}");
                }
                for den in 1..8i128 {
                    let want = round_f64(v as f64 / den as f64, mode) as i128;
                    assert_eq!(round_div(v, den, mode), want, "{mode:?} {v} / {den}");
                }
            }
        }
    }

    /// Quotients past i64 (the i128 path) round as small ones of the same sign and parity do
    /// (the i64 path, checked against float rounding above).
    #[test]
    fn rounding_past_i64_agrees_with_small_quotients() {
        for mode in [Rounding::HalfEven, Rounding::HalfUp, Rounding::Floor, Rounding::HalfAway] {
            for sign in [-1i128, 1] {
                for e in 0..4i128 {
                    let (big, small) = (sign * ((1 << 70) + e), sign * (2 + e));
                    for den in 1..8i128 {
                        for r in 0..den {
                            let want = round_div(small * den + r, den, mode) - small;
                            assert_eq!(round_div(big * den + r, den, mode) - big, want, "{mode:?} {big} * {den} + {r}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn huge_shifts_round_to_zero_or_minus_one() {
        assert_eq!(round_shift(-5, 200, Rounding::Floor), -1);
        assert_eq!(round_shift(-5, 200, Rounding::HalfEven), 0);
        assert_eq!(round_shift(i128::MAX / 2, 130, Rounding::HalfAway), 0);
    }

    #[test]
    fn saturation_table() {
        let s8 = Format::new(8, 0, true);
        let u8f = Format::new(8, 0, false);
        assert_eq!(fit(200, s8, ARITH), 127);
        assert_eq!(fit(-200, s8, ARITH), -128);
        assert_eq!(fit(-128, s8, with(Rounding::HalfEven, Overflow::Saturate, RangeMode::Symmetric)), -127);
        assert_eq!(fit(300, u8f, ARITH), 255);
        assert_eq!(fit(-3, u8f, ARITH), 0);
        let s1 = Format::new(1, 0, true);
        let sym = with(Rounding::HalfEven, Overflow::Saturate, RangeMode::Symmetric);
        assert_eq!(s1.code_range(RangeMode::Symmetric), (0, 0), "1-bit symmetric holds only 0");
        assert_eq!(fit(1, s1, sym), 0);
        assert_eq!(s1.code_range(RangeMode::TwosComplement), (-1, 0));
    }

    #[test]
    fn wrap_table() {
        let w = with(Rounding::HalfEven, Overflow::Wrap, RangeMode::TwosComplement);
        let s8 = Format::new(8, 0, true);
        assert_eq!(fit(128, s8, w), -128);
        assert_eq!(fit(129, s8, w), -127);
        assert_eq!(fit(-129, s8, w), 127);
        assert_eq!(fit(256 + 5, s8, w), 5);
        let u4 = Format::new(4, 0, false);
        assert_eq!(fit(17, u4, w), 1);
        assert_eq!(fit(-1, u4, w), 15);
    }

    #[test]
    fn quantize_examples() {
        let f = Format::new(8, 4, true);
        assert_eq!(quantize(1.03125, f, ARITH), 16); // 16.5 -> 16 (even)
        assert_eq!(quantize(1.09375, f, ARITH), 18); // 17.5 -> 18
        assert_eq!(quantize(100.0, f, ARITH), 127);
        assert_eq!(quantize(-100.0, f, ARITH), -128);
        let neg = Format::new(4, -2, true); // step 4
        assert_eq!(quantize(10.0, neg, ARITH), 2); // 2.5 -> 2
        assert_eq!(quantize(14.0, neg, ARITH), 4); // 3.5 -> 4
        assert_eq!(dequantize(4, neg), 16.0);
    }

    #[test]
    fn requantize_moves_between_fracs() {
        let out = Format::new(8, 2, true);
        // 37 at frac 4 = 2.3125 -> *4 = 9.25 -> 9
        assert_eq!(requantize(37, 4, out, ARITH), 9);
        // 3 at frac 0 = 3 -> frac 2: 12, exact
        assert_eq!(requantize(3, 0, out, ARITH), 12);
        // huge left shifts saturate instead of overflowing
        assert_eq!(requantize(1 << 40, -60, out, ARITH), 127);
    }

    #[test]
    fn no_clip_offsets() {
        assert_eq!(Format::no_clip_frac(8, true, 0.9), 7);
        assert_eq!(Format::no_clip_frac(8, true, 1.5), 6);
        assert_eq!(Format::no_clip_frac(8, false, 1.0), 8);
        assert_eq!(Format::no_clip_frac(4, true, 20.0), -2);
        assert_eq!(Format::no_clip_frac(8, true, 0.0), 7);
    }
}
