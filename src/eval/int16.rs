//! The integer engine's fast carrier: i16 codes, i32 sums, through AVX2's `vpmaddwd` (sixteen
//! multiply-adds per instruction) or AVX-512 VNNI's `vpdpwssd` (thirty-two, accumulation
//! included), with the common requantization as a vectorized epilogue.
//!
//! The engine picks this carrier per layer only where every activation and weight code fits i16
//! and a bound proves no partial sum (the instruction's pair sums included) and no sum plus bias
//! leaves i32, so it is exact, as the f32/f64/i128 carriers are: i32 wrap-around arithmetic
//! gives the true sum whenever that sum fits. Without AVX2 it is never chosen and nothing here
//! runs; the functions take the instruction set the engine chose ([`Isa`]).

pub use super::kernels::{Isa, SumLayout};
use crate::fixed::Rounding;

/// Rows of the GEMM microkernel's output tile.
const MR: usize = 6;
/// Columns of the microkernel's output tile: two 8-lane i32 vectors.
const NR: usize = 16;

/// Whether this machine can run the carrier.
pub fn available() -> bool {
    Isa::best() >= Isa::Avx2
}

/// Two i16 codes in one i32 word, the first in the low half (the layout `vpmaddwd` pairs).
fn pair_word(lo: i16, hi: i16) -> i32 {
    (u32::from(lo as u16) | u32::from(hi as u16) << 16) as i32
}

/// A weight matrix `[m][k]` packed once for the microkernel: blocks of `MR` rows; within a
/// block, for each pair of columns `(2p, 2p+1)`, `MR` words `pair_word(w[r][2p], w[r][2p+1])`.
/// Rows past `m` and the column past an odd `k` are zero.
pub struct PackedWeights {
    m: usize,
    pairs: usize,
    words: Vec<i32>,
}

impl PackedWeights {
    /// `w` holds `m * k` codes, each within i16 (checked by the caller's carrier choice).
    pub fn new(m: usize, k: usize, w: &[i64]) -> Self {
        let pairs = k.div_ceil(2);
        let mut words = vec![0i32; m.div_ceil(MR) * pairs * MR];
        let at = |r: usize, c: usize| if c < k { w[r * k + c] as i16 } else { 0 };
        for r in 0..m {
            for p in 0..pairs {
                words[((r / MR) * pairs + p) * MR + r % MR] = pair_word(at(r, 2 * p), at(r, 2 * p + 1));
            }
        }
        PackedWeights { m, pairs, words }
    }
}

/// Pack an im2col matrix `col` (`[k][n]` row-major) into `NR`-column panels: for panel `j`
/// and pair `p`, the `NR` pairs `(col[2p][c], col[2p+1][c])` of the panel's columns, zero past
/// `n` or `k`.
pub fn pack_columns(k: usize, n: usize, col: &[i16], out: &mut Vec<i16>) {
    let pairs = k.div_ceil(2);
    let panels = n.div_ceil(NR);
    out.clear();
    out.resize(panels * pairs * NR * 2, 0);
    for p in 0..pairs {
        let r0 = &col[2 * p * n..(2 * p + 1) * n];
        let r1 = if 2 * p + 1 < k { &col[(2 * p + 1) * n..(2 * p + 2) * n] } else { &[][..] };
        for j in 0..panels {
            let dst = &mut out[(j * pairs + p) * NR * 2..(j * pairs + p + 1) * NR * 2];
            let c0 = j * NR;
            let width = (n - c0).min(NR);
            for c in 0..width {
                dst[2 * c] = r0[c0 + c];
            }
            if !r1.is_empty() {
                for c in 0..width {
                    dst[2 * c + 1] = r1[c0 + c];
                }
            }
        }
    }
}

/// A stride-1 convolution's input, padded once into i16: `[c][hp][wp]` with zero borders. Over
/// "virtual" output columns `n = oy * wp + ox` (`ox < wp`, of which only `ox < out_w` are real),
/// the im2col row of tap `(c, ky, kx)` is then the contiguous run of `padded` starting at
/// `c * hp * wp + ky * dh * wp + kx * dw`: packing needs no index arithmetic and no bounds
/// checks, at the price of computing `wp - out_w` discarded columns per output row.
pub struct Padded {
    pub hp: usize,
    pub wp: usize,
}

impl Padded {
    /// Pad `input` (`[c][h][w]` codes that fit i16) by `pads = [top, left, bottom, right]`
    /// into `out`, leaving `tail` zeros after the last plane (packing reads up to a panel past
    /// the last virtual column).
    pub fn new(input: &[i64], [c, h, w]: [usize; 3], pads: [usize; 4], tail: usize, out: &mut Vec<i16>) -> Self {
        let (hp, wp) = (pads[0] + h + pads[2], pads[1] + w + pads[3]);
        out.clear();
        out.resize(c * hp * wp + tail, 0);
        for (plane, src) in out.chunks_exact_mut(hp * wp).zip(input.chunks_exact(h * w)) {
            for (y, row) in src.chunks_exact(w).enumerate() {
                let dst = &mut plane[(pads[0] + y) * wp + pads[1]..][..w];
                for (d, &x) in dst.iter_mut().zip(row) {
                    *d = x as i16;
                }
            }
        }
        Padded { hp, wp }
    }
}

/// Pack the virtual im2col matrix whose row `t` is `padded[offsets[t]..][..n]` into the panel
/// layout of [`pack_columns`]. `padded` must hold `max(offsets) + n.div_ceil(NR) * NR` codes.
pub fn pack_runs(offsets: &[usize], n: usize, padded: &[i16], out: &mut Vec<i16>, isa: Isa) {
    let pairs = offsets.len().div_ceil(2);
    let panels = n.div_ceil(NR);
    let reach = offsets.iter().max().map_or(0, |&o| o + panels * NR);
    assert!(padded.len() >= reach, "padded input too short for its runs");
    out.clear();
    out.resize(panels * pairs * NR * 2, 0);
    #[cfg(target_arch = "x86_64")]
    if isa >= Isa::Avx2 {
        assert!(isa.supported(), "{isa:?} is not available on this machine");
        // SAFETY: AVX2 is present (checked); every read is below `reach` (checked) and every
        // write inside `out`, sized above.
        unsafe { avx2::pack_runs(offsets, panels, pairs, padded, out) };
        return;
    }
    unreachable!("the i16 carrier is only chosen where AVX2 is available ({isa:?})")
}

/// `c[m][n] = w · cols` exactly, for weights and columns packed as above, on `isa`'s kernel.
/// The caller's bound keeps every partial sum within i32.
pub fn gemm(w: &PackedWeights, n: usize, cols: &[i16], c: &mut [i32], isa: Isa) {
    assert!(cols.len() >= n.div_ceil(NR) * w.pairs * NR * 2 && c.len() >= w.m * n, "packed GEMM operand sizes");
    assert!(isa.supported(), "{isa:?} is not available on this machine");
    match isa {
        // SAFETY: the machine has the instruction set (checked) and the operand sizes were
        // checked above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => unsafe { avx512::gemm(w, n, cols, c) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { avx2::gemm(w, n, cols, c) },
        _ => unreachable!("the i16 carrier is only chosen where AVX2 is available ({isa:?})"),
    }
}

/// `y[r] = w[r] · x` for `w` `[m][k]` in i16 (dense layers).
pub fn gemv(k: usize, w: &[i16], x: &[i16], y: &mut [i32], isa: Isa) {
    #[cfg(target_arch = "x86_64")]
    if isa >= Isa::Avx2 {
        assert!(isa.supported(), "{isa:?} is not available on this machine");
        // SAFETY: AVX2 is present (checked); the body is safe code compiled for AVX2.
        unsafe { avx2::gemv(k, w, x, y) };
        return;
    }
    gemv_body(k, w, x, y);
}

#[inline(always)]
fn gemv_body(k: usize, w: &[i16], x: &[i16], y: &mut [i32]) {
    for (row, out) in w.chunks_exact(k).zip(y.iter_mut()) {
        // LLVM turns this widening dot product into vpmaddwd.
        *out = row.iter().zip(x).map(|(&a, &b)| i32::from(a) * i32::from(b)).sum();
    }
}

/// A layer's requantization in its common case, all in i32: add the bias, round off `shift`
/// bits, saturate to `[lo, hi]`; the fused activation as two thresholds on the exact sum
/// (`v < below.0` gives code `below.1`, else `v > above.0` gives `above.1`: ReLU is `(0, 0)`
/// below, a Clip its bounds in the sum's scale and their codes). The caller chooses it only for
/// saturating arithmetic, no accumulator width, `0 <= shift <= 31`, sums plus bias within i32
/// and thresholds it computed exactly.
#[derive(Debug, Clone, Copy)]
pub struct Requant {
    pub shift: u32,
    pub rounding: Rounding,
    pub below: (i32, i32),
    pub above: (i32, i32),
    pub lo: i32,
    pub hi: i32,
}

impl Requant {
    /// No activation: no sum is below `i32::MIN` or above `i32::MAX`.
    pub const NO_CLIP: ((i32, i32), (i32, i32)) = ((i32::MIN, 0), (i32::MAX, 0));
}

/// Finish the real outputs of rows of sums laid out as `layout`: row `r` gets `bias[r]`. The
/// codes are computed in place over whole rows (discarded columns too: long contiguous loops
/// vectorize, a padded layout's short segments do not), then the real ones are appended.
pub fn requant_rows(acc: &mut [i32], layout: SumLayout, bias: &[i32], rq: &Requant, out: &mut Vec<i64>, isa: Isa) {
    let acc = &mut acc[..bias.len() * layout.per_row];
    let start = out.len();
    out.resize(start + bias.len() * layout.outputs(), 0);
    let out = &mut out[start..];
    assert!(isa.supported(), "{isa:?} is not available on this machine");
    match isa {
        // SAFETY: the machine has the instruction set (checked); the body is safe code compiled
        // for it.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => unsafe { avx512::requant_rows(acc, layout, bias, rq, out) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { avx2::requant_rows(acc, layout, bias, rq, out) },
        _ => requant_rows_body(acc, layout, bias, rq, out),
    }
}

#[inline(always)]
fn requant_rows_body(acc: &mut [i32], layout: SumLayout, bias: &[i32], rq: &Requant, out: &mut [i64]) {
    if layout.seg_len == layout.seg_stride {
        // Every sum is a real output: the codes go straight to `out`, one pass.
        requant_modes(acc, layout.per_row, bias, rq, Some(out));
        return;
    }
    requant_modes(acc, layout.per_row, bias, rq, None);
    for (dst, (_, seg)) in out.chunks_exact_mut(layout.seg_len).zip(layout.real(acc)) {
        for (o, &k) in dst.iter_mut().zip(seg) {
            *o = i64::from(k);
        }
    }
}

/// The codes of the sums `acc` (rows of `per_row`, row `r` plus `bias[r]`), into `out` (of the
/// same length) or else in place: one loop per rounding mode, each branch-free so that it
/// vectorizes.
#[inline(always)]
fn requant_modes(acc: &mut [i32], per_row: usize, bias: &[i32], rq: &Requant, out: Option<&mut [i64]>) {
    match rq.rounding {
        Rounding::Floor => requant_with(acc, per_row, bias, rq, out, |_, _, _, _| 0),
        Rounding::HalfUp => requant_with(acc, per_row, bias, rq, out, |_, r, half, _| i32::from(r >= half)),
        Rounding::HalfEven => requant_with(acc, per_row, bias, rq, out, |q, r, half, _| {
            i32::from((r > half) | ((r == half) & (q & 1 == 1)))
        }),
        Rounding::HalfAway => requant_with(acc, per_row, bias, rq, out, |_, r, half, v| {
            i32::from((r > half) | ((r == half) & (v >= 0)))
        }),
    }
}

/// `round_up(q, r, half, v)`: 1 where `v = q * 2^shift + r` rounds up from `q`. With `shift = 0`,
/// `r = 0` and `half = 1`, so no mode rounds up.
#[inline(always)]
fn requant_with(
    acc: &mut [i32],
    per_row: usize,
    bias: &[i32],
    rq: &Requant,
    out: Option<&mut [i64]>,
    round_up: impl Fn(i32, i32, i32, i32) -> i32,
) {
    let s = rq.shift;
    let mask = ((1u64 << s) - 1) as i32;
    let half = if s == 0 { 1 } else { 1i32 << (s - 1) };
    let ((t_lo, k_lo), (t_hi, k_hi)) = (rq.below, rq.above);
    let code = |a: i32, b: i32| {
        // Discarded columns may hold any i32: wrap rather than trap on them (real sums plus
        // bias fit, by the carrier's bound).
        let v = a.wrapping_add(b);
        let q = v >> s;
        let r = v & mask;
        let k = (q + round_up(q, r, half, v)).clamp(rq.lo, rq.hi);
        // Selects, not branches, so that the loop vectorizes; `below` wins, as in the scalar
        // `if v < min .. else if v > max`.
        let k = if v > t_hi { k_hi } else { k };
        if v < t_lo {
            k_lo
        } else {
            k
        }
    };
    match out {
        Some(out) => {
            for ((row, dst), &b) in acc.chunks_exact(per_row).zip(out.chunks_exact_mut(per_row)).zip(bias) {
                for (&a, o) in row.iter().zip(dst) {
                    *o = i64::from(code(a, b));
                }
            }
        }
        None => {
            for (row, &b) in acc.chunks_exact_mut(per_row).zip(bias) {
                for a in row {
                    *a = code(*a, b);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{PackedWeights, Requant, SumLayout, MR, NR};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2")]
    pub unsafe fn gemv(k: usize, w: &[i16], x: &[i16], y: &mut [i32]) {
        super::gemv_body(k, w, x, y);
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn requant_rows(acc: &mut [i32], layout: SumLayout, bias: &[i32], rq: &Requant, out: &mut [i64]) {
        super::requant_rows_body(acc, layout, bias, rq, out);
    }

    /// Interleave runs `2p` and `2p+1` sixteen columns at a time: `unpack{lo,hi}_epi16` pair
    /// columns 0-3|8-11 and 4-7|12-15; the two 128-bit permutes restore column order.
    #[target_feature(enable = "avx2")]
    pub unsafe fn pack_runs(offsets: &[usize], panels: usize, pairs: usize, padded: &[i16], out: &mut [i16]) {
        let src = padded.as_ptr();
        let dst = out.as_mut_ptr();
        for p in 0..pairs {
            let r0 = src.add(offsets[2 * p]);
            let r1 = offsets.get(2 * p + 1).map(|&o| src.add(o));
            for j in 0..panels {
                let a = _mm256_loadu_si256(r0.add(j * NR) as *const __m256i);
                let b = match r1 {
                    Some(r1) => _mm256_loadu_si256(r1.add(j * NR) as *const __m256i),
                    None => _mm256_setzero_si256(),
                };
                let lo = _mm256_unpacklo_epi16(a, b);
                let hi = _mm256_unpackhi_epi16(a, b);
                let d = dst.add((j * pairs + p) * NR * 2) as *mut __m256i;
                _mm256_storeu_si256(d, _mm256_permute2x128_si256(lo, hi, 0x20));
                _mm256_storeu_si256(d.add(1), _mm256_permute2x128_si256(lo, hi, 0x31));
            }
        }
    }

    /// Panels outermost: one panel of columns (`pairs * 64` bytes) stays in L1 while every
    /// block of weight rows streams past it.
    #[target_feature(enable = "avx2")]
    pub unsafe fn gemm(w: &PackedWeights, n: usize, cols: &[i16], c: &mut [i32]) {
        let pairs = w.pairs;
        for j in 0..n.div_ceil(NR) {
            let b = cols.as_ptr().add(j * pairs * NR * 2);
            let c0 = j * NR;
            let width = (n - c0).min(NR);
            for blk in 0..w.m.div_ceil(MR) {
                let a = w.words.as_ptr().add(blk * pairs * MR);
                let mut acc = [[_mm256_setzero_si256(); 2]; MR];
                for p in 0..pairs {
                    let b0 = _mm256_loadu_si256(b.add(p * NR * 2) as *const __m256i);
                    let b1 = _mm256_loadu_si256(b.add(p * NR * 2 + NR) as *const __m256i);
                    let ap = a.add(p * MR);
                    for (r, acc_r) in acc.iter_mut().enumerate() {
                        let av = _mm256_set1_epi32(*ap.add(r));
                        acc_r[0] = _mm256_add_epi32(acc_r[0], _mm256_madd_epi16(av, b0));
                        acc_r[1] = _mm256_add_epi32(acc_r[1], _mm256_madd_epi16(av, b1));
                    }
                }
                let rows = (w.m - blk * MR).min(MR);
                for (r, acc_r) in acc.iter().enumerate().take(rows) {
                    let dst = c.as_mut_ptr().add((blk * MR + r) * n + c0);
                    if width == NR {
                        _mm256_storeu_si256(dst as *mut __m256i, acc_r[0]);
                        _mm256_storeu_si256(dst.add(8) as *mut __m256i, acc_r[1]);
                    } else {
                        let mut tmp = [0i32; NR];
                        _mm256_storeu_si256(tmp.as_mut_ptr() as *mut __m256i, acc_r[0]);
                        _mm256_storeu_si256(tmp.as_mut_ptr().add(8) as *mut __m256i, acc_r[1]);
                        std::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, width);
                    }
                }
            }
        }
    }
}

/// The same microkernel on 512-bit vectors: one `vpdpwssd` per row and pair does the pair
/// products and their accumulation; two panels at a time (twelve accumulators of the 32
/// registers) so that each broadcast weight word serves 32 columns.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{PackedWeights, Requant, SumLayout, MR, NR};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub unsafe fn requant_rows(acc: &mut [i32], layout: SumLayout, bias: &[i32], rq: &Requant, out: &mut [i64]) {
        super::requant_rows_body(acc, layout, bias, rq, out);
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    pub unsafe fn gemm(w: &PackedWeights, n: usize, cols: &[i16], c: &mut [i32]) {
        let pairs = w.pairs;
        let panels = n.div_ceil(NR);
        for j in (0..panels).step_by(2) {
            let two = j + 1 < panels;
            let b = cols.as_ptr().add(j * pairs * NR * 2);
            // The second panel's pairs follow the first's; a lone last panel reads its own again.
            let b2 = if two { b.add(pairs * NR * 2) } else { b };
            for blk in 0..w.m.div_ceil(MR) {
                let a = w.words.as_ptr().add(blk * pairs * MR);
                let mut acc = [[_mm512_setzero_si512(); 2]; MR];
                for p in 0..pairs {
                    let b0 = _mm512_loadu_si512(b.add(p * NR * 2) as *const __m512i);
                    let b1 = _mm512_loadu_si512(b2.add(p * NR * 2) as *const __m512i);
                    let ap = a.add(p * MR);
                    for (r, acc_r) in acc.iter_mut().enumerate() {
                        let av = _mm512_set1_epi32(*ap.add(r));
                        acc_r[0] = _mm512_dpwssd_epi32(acc_r[0], av, b0);
                        acc_r[1] = _mm512_dpwssd_epi32(acc_r[1], av, b1);
                    }
                }
                let rows = (w.m - blk * MR).min(MR);
                for (r, acc_r) in acc.iter().enumerate().take(rows) {
                    let row = c.as_mut_ptr().add((blk * MR + r) * n);
                    for (h, &v) in acc_r.iter().enumerate().take(1 + usize::from(two)) {
                        let c0 = (j + h) * NR;
                        let width = (n - c0).min(NR);
                        _mm512_mask_storeu_epi32(row.add(c0), ((1u32 << width) - 1) as __mmask16, v);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The instruction sets of the i16 carrier this machine has.
    fn isas() -> Vec<Isa> {
        [Isa::Avx2, Isa::Avx512Vnni].into_iter().filter(|i| i.supported()).collect()
    }

    /// The packed GEMM against a plain triple loop, on ragged sizes (odd k, partial tiles, an odd
    /// number of panels), on every instruction set.
    #[test]
    fn packed_gemm_equals_plain_product() {
        for isa in isas() {
            packed_gemm_on(isa);
        }
    }

    fn packed_gemm_on(isa: Isa) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for &(m, k, n) in &[(1, 1, 1), (7, 9, 17), (6, 18, 16), (13, 27, 49), (32, 288, 196)] {
            let w: Vec<i64> = (0..m * k).map(|_| rng.random_range(-32768..=32767)).collect();
            let x: Vec<i16> = (0..k * n).map(|_| rng.random_range(-300..=300)).collect();
            let w = if k > 100 { w.iter().map(|&v| v / 256).collect() } else { w };
            let mut packed = Vec::new();
            pack_columns(k, n, &x, &mut packed);
            let mut c = vec![0i32; m * n];
            gemm(&PackedWeights::new(m, k, &w), n, &packed, &mut c, isa);
            for i in 0..m {
                for j in 0..n {
                    let want: i64 = (0..k).map(|t| w[i * k + t] * i64::from(x[t * n + j])).sum();
                    assert_eq!(i64::from(c[i * n + j]), want, "{isa:?} ({m},{k},{n}) at ({i},{j})");
                }
            }
        }
    }

    /// Packing runs of a padded input equals im2col + `pack_columns` on the virtual columns.
    #[test]
    fn pack_runs_equals_pack_columns() {
        if !available() {
            return;
        }
        let (c, h, w, pads) = (3, 5, 6, [1, 2, 0, 1]);
        let input: Vec<i64> = (0..c * h * w).map(|i| (i as i64 * 37) % 201 - 100).collect();
        let mut padded = Vec::new();
        let pd = Padded::new(&input, [c, h, w], pads, 64, &mut padded);
        assert_eq!((pd.hp, pd.wp), (6, 9));
        let n = 4 * pd.wp;
        let offsets: Vec<usize> = (0..c * 9).map(|t| (t / 9) * pd.hp * pd.wp + (t % 9 / 3) * pd.wp + t % 3).collect();
        let col: Vec<i16> = offsets.iter().flat_map(|&o| padded[o..o + n].to_vec()).collect();
        let (mut want, mut got) = (Vec::new(), Vec::new());
        pack_columns(offsets.len(), n, &col, &mut want);
        pack_runs(&offsets, n, &padded, &mut got, Isa::Avx2);
        // Columns past n may differ (runs read on); compare the real ones through a GEMM.
        let wts: Vec<i64> = (0..2 * offsets.len()).map(|i| i as i64 % 7 - 3).collect();
        let pw = PackedWeights::new(2, offsets.len(), &wts);
        let (mut cw, mut cg) = (vec![0; 2 * n], vec![0; 2 * n]);
        gemm(&pw, n, &want, &mut cw, Isa::Avx2);
        gemm(&pw, n, &got, &mut cg, Isa::Avx2);
        assert_eq!(cw, cg);
        // And the border is zero: the first padded row is all padding.
        assert!(padded[..pd.wp].iter().all(|&x| x == 0));
    }

    #[test]
    fn gemv_equals_plain_dot() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let (m, k) = (5, 37);
        let w: Vec<i16> = (0..m * k).map(|_| rng.random_range(-2000..=2000)).collect();
        let x: Vec<i16> = (0..k).map(|_| rng.random_range(-2000..=2000)).collect();
        let mut y = vec![0; m];
        gemv(k, &w, &x, &mut y, Isa::best());
        for r in 0..m {
            assert_eq!(y[r], (0..k).map(|t| i32::from(w[r * k + t]) * i32::from(x[t])).sum::<i32>());
        }
    }

    /// The vectorized epilogue against the engine's scalar `requantize`, every mode and shift,
    /// with no activation, ReLU and a clip (thresholds and their codes).
    #[test]
    fn requant_rows_equals_requantize() {
        use crate::fixed::round::requantize;
        use crate::fixed::{Arith, Format, Overflow, RangeMode};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for rounding in [Rounding::Floor, Rounding::HalfUp, Rounding::HalfEven, Rounding::HalfAway] {
            for shift in [0u32, 1, 2, 5, 13, 30, 31] {
                for act in 0..3 {
                    let relu = act == 1;
                    let fmt = Format::new(8, 3, !relu);
                    let (lo, hi) = fmt.code_range(RangeMode::TwosComplement);
                    let clip = ((-(1 << 12), -5), (1 << 22, 99));
                    let (below, above) = [Requant::NO_CLIP, ((0, 0), Requant::NO_CLIP.1), clip][act];
                    let rq = Requant { shift, rounding, below, above, lo: lo as i32, hi: hi as i32 };
                    let acc: Vec<i32> = (0..64)
                        .map(|i| match i % 4 {
                            0 => rng.random_range(-(1 << 29)..1 << 29),
                            1 => rng.random_range(-4096..4096),
                            // exact halves and their neighbours
                            _ => {
                                let half = 1i64 << shift >> 1;
                                let v = (rng.random_range(-64i64..64) << shift.min(20)) + half - 1 + i64::from(i % 3);
                                v.clamp(-(1 << 30), 1 << 30) as i32
                            }
                        })
                        .collect();
                    let bias = [-7, 0, 12, 1 << 20];
                    let mut out = Vec::new();
                    requant_rows(&mut acc.clone(), SumLayout::dense(16), &bias, &rq, &mut out, Isa::best());
                    let arith = Arith { rounding, overflow: Overflow::Saturate, range: RangeMode::TwosComplement };
                    for (i, (&a, &got)) in acc.iter().zip(&out).enumerate() {
                        let mut v = i128::from(a) + i128::from(bias[i / 16]);
                        if relu {
                            v = v.max(0);
                        }
                        let want = if act == 2 && v < i128::from(clip.0 .0) {
                            i64::from(clip.0 .1)
                        } else if act == 2 && v > i128::from(clip.1 .0) {
                            i64::from(clip.1 .1)
                        } else {
                            requantize(v, fmt.frac + shift as i32, fmt, arith)
                        };
                        assert_eq!(got, want, "{rounding:?} shift {shift} activation {act} acc {a}");
                    }
                }
            }
        }
    }
}
