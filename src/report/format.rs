//! Number and label formatting shared by the plots and the reports.

use super::run::PointFormat;
use crate::config::LossKind;

/// U+2212 MINUS SIGN, for reductions ("−53%").
pub const MINUS: char = '\u{2212}';

/// Axis title of a cost objective, with its unit.
pub fn objective_title(obj: &str) -> String {
    match obj {
        "memory_bits" => "memory (bits)".into(),
        "mult_cost" => "multiplication cost (bit-ops)".into(),
        "energy_pj" => "energy per inference (pJ)".into(),
        "area_um2" => "area (µm²)".into(),
        "luts" => "LUTs".into(),
        "dsps" => "DSPs".into(),
        other => other.replace('_', " "),
    }
}

/// Short name of a cost objective for running text ("−53% memory").
pub fn objective_short(obj: &str) -> String {
    match obj {
        "memory_bits" => "memory".into(),
        "mult_cost" => "mult cost".into(),
        "energy_pj" => "energy".into(),
        "area_um2" => "area".into(),
        "luts" => "LUTs".into(),
        "dsps" => "DSPs".into(),
        other => other.replace('_', " "),
    }
}

/// Trim trailing zeros (and a trailing '.') of a decimal string.
fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// `v` with `sig` significant digits, trailing zeros trimmed.
fn sig_digits(v: f64, sig: i32) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let mag = v.abs().log10().floor() as i32;
    let decimals = (sig - 1 - mag).max(0) as usize;
    trim_zeros(format!("{v:.decimals$}"))
}

/// Compact form for tick labels: `950`, `12.5`, `470k`, `2.7M`, `1.25G`.
pub fn fmt_si(v: f64) -> String {
    let a = v.abs();
    let (scale, suffix) = match a {
        a if a >= 1e12 => (1e12, "T"),
        a if a >= 1e9 => (1e9, "G"),
        a if a >= 1e6 => (1e6, "M"),
        a if a >= 1e3 => (1e3, "k"),
        _ => (1.0, ""),
    };
    format!("{}{suffix}", sig_digits(v / scale, 3))
}

/// Full form for tables: thousands separators for large values (`1,234,567`), 4 significant digits below 1000.
pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    if v.abs() < 1000.0 && v.fract() != 0.0 {
        return sig_digits(v, 4);
    }
    let r = v.round();
    let out = crate::model::summary::group(r.abs() as u64);
    if r < 0.0 {
        format!("{MINUS}{out}")
    } else {
        out
    }
}

/// A fraction as a percentage: `pct(0.905, 2)` = `90.50%`.
pub fn pct(frac: f64, decimals: usize) -> String {
    format!("{:.decimals$}%", frac * 100.0)
}

/// A reduction (fraction, positive = less than the baseline) as a signed change: `−53%`, `+12%`.
/// Whole percent from 10 % up, one decimal below.
pub fn reduction(frac: f64) -> String {
    let p = frac * 100.0;
    let mag = if p.abs() >= 9.95 { format!("{:.0}", p.abs()) } else { format!("{:.1}", p.abs()) };
    if mag.trim_start_matches(['0', '.']).is_empty() {
        return "±0%".into();
    }
    if p > 0.0 {
        format!("{MINUS}{mag}%")
    } else {
        format!("+{mag}%")
    }
}

/// A reduction with one decimal, for tables: `−53.0%`.
pub fn reduction_precise(frac: f64) -> String {
    let p = frac * 100.0;
    if p.abs() < 0.05 {
        "±0.0%".into()
    } else if p > 0.0 {
        format!("{MINUS}{p:.1}%")
    } else {
        format!("+{:.1}%", -p)
    }
}

/// A loss vs float: relative losses in `%`, absolute ones in accuracy points (`pp`).
/// A loss interval, `lo – hi` in the loss's unit.
pub fn interval(ci: [f64; 2], kind: LossKind, decimals: usize) -> String {
    format!("{} – {}", loss(ci[0], kind, decimals), loss(ci[1], kind, decimals))
}

pub fn loss(v: f64, kind: LossKind, decimals: usize) -> String {
    let p = v * 100.0;
    let s = format!("{p:.decimals$}");
    let s = match s.strip_prefix('-') {
        Some(rest) => format!("{MINUS}{rest}"),
        None => s,
    };
    match kind {
        LossKind::Relative => format!("{s}%"),
        LossKind::Absolute => format!("{s} pp"),
    }
}

/// The budget in words: `max loss 1% (relative)`.
pub fn budget(max_loss: f64, kind: LossKind) -> String {
    let p = trim_zeros(format!("{:.3}", max_loss * 100.0));
    match kind {
        LossKind::Relative => format!("max loss {p}% (relative)"),
        LossKind::Absolute => format!("max loss {p} pp (absolute)"),
    }
}

/// The budget for a plot label: `max loss 1%, relative`.
pub fn budget_inline(max_loss: f64, kind: LossKind) -> String {
    let p = trim_zeros(format!("{:.3}", max_loss * 100.0));
    match kind {
        LossKind::Relative => format!("max loss {p}%, relative"),
        LossKind::Absolute => format!("max loss {p} pp, absolute"),
    }
}

/// A wall time: `37.2 s`, `12 min 5 s`, `2 h 3 min`.
pub fn duration(seconds: f64) -> String {
    if seconds < 60.0 {
        return format!("{seconds:.1} s");
    }
    let s = seconds.round() as u64;
    if s < 3600 {
        format!("{} min {} s", s / 60, s % 60)
    } else {
        format!("{} h {} min", s / 3600, (s % 3600) / 60)
    }
}

/// A point-file format in the notation of evaluation keys: `s8.7` (signed, 8 bits, 7 fractional bits),
/// `u8.4`; `8` when only the width is known; `–` for none. `default_signed` applies when the file leaves
/// the sign out (weights and biases are always signed). Per-channel weights get the key's `/c`.
pub fn point_format(f: Option<PointFormat>, default_signed: Option<bool>) -> String {
    let Some(f) = f else { return "–".into() };
    let Some(bits) = f.bits else { return "?".into() };
    let sign = match f.signed.or(default_signed) {
        Some(true) => "s",
        Some(false) => "u",
        None => "",
    };
    let per_channel = if f.per_channel { "/c" } else { "" };
    match f.frac {
        Some(frac) => format!("{sign}{bits}.{frac}{per_channel}"),
        None => format!("{sign}{bits}{per_channel}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(fmt_si(470_000.0), "470k");
        assert_eq!(fmt_si(2.7e7), "27M");
        assert_eq!(fmt_si(2.75e6), "2.75M");
        assert_eq!(fmt_si(950.0), "950");
        assert_eq!(fmt_si(12.5), "12.5");
        assert_eq!(fmt_num(1_234_567.0), "1,234,567");
        assert_eq!(fmt_num(12.3456), "12.35");
        assert_eq!(fmt_num(100.0), "100");
        assert_eq!(pct(0.905, 2), "90.50%");
        assert_eq!(reduction(0.53), "−53%");
        assert_eq!(reduction(-0.12), "+12%");
        assert_eq!(reduction(0.043), "−4.3%");
        assert_eq!(reduction(0.0), "±0%");
        assert_eq!(loss(0.009, LossKind::Relative, 1), "0.9%");
        assert_eq!(loss(0.009, LossKind::Absolute, 2), "0.90 pp");
        assert_eq!(budget(0.01, LossKind::Relative), "max loss 1% (relative)");
        assert_eq!(duration(37.23), "37.2 s");
        assert_eq!(duration(725.0), "12 min 5 s");
        let f = PointFormat { bits: Some(6), frac: Some(3), signed: Some(false), per_channel: false };
        assert_eq!(point_format(Some(f), None), "u6.3");
        assert_eq!(
            point_format(
                Some(PointFormat { bits: Some(8), frac: Some(7), signed: None, per_channel: false }),
                Some(true)
            ),
            "s8.7"
        );
        let pc = PointFormat { bits: Some(4), frac: Some(5), signed: None, per_channel: true };
        assert_eq!(point_format(Some(pc), Some(true)), "s4.5/c");
        assert_eq!(point_format(None, None), "–");
    }
}
