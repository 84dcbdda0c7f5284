//! The integer engine's fast carriers, i32 sums of exact integer products:
//! - i16 codes in pairs, through AVX2's `vpmaddwd` (sixteen multiply-adds per instruction) or
//!   AVX-512 VNNI's `vpdpwssd` (thirty-two, accumulation included);
//! - u8 activation codes against i8 weight codes in quads, through AVX-512 VNNI's `vpdpbusd`
//!   (sixty-four) or AVX2's `vpmaddubsw` + `vpmaddwd` (thirty-two, in three instructions);
//!
//! with the common requantization as a vectorized epilogue.
//!
//! The engine picks a carrier per layer only where every activation and weight code fits its
//! lanes and a bound proves no partial sum (the instruction's pair sums included: `vpmaddubsw`
//! saturates them to i16) and no sum plus bias leaves i32, so it is exact, as the f32/f64/i128
//! carriers are: i32 wrap-around arithmetic gives the true sum whenever that sum fits. Without
//! AVX2 neither is chosen and nothing here runs; the functions take the instruction set the
//! engine chose ([`Isa`]).

use super::kernels::{convert_chunks, scratch_prefix, PANEL};
pub use super::kernels::{Isa, SumLayout};
use crate::fixed::Rounding;
use std::mem::MaybeUninit;

/// Rows of the GEMM microkernel's output tile.
const MR: usize = 6;
/// Rows of an AVX-512 tile where they pad fewer weight rows than [`MR`] (16, 32 or 64 channels:
/// 6-row blocks would compute 18, 36 or 66).
const MR_WIDE: usize = 8;
/// Columns of the microkernel's output tile (two 8-lane i32 vectors on AVX2, one 16-lane on
/// AVX-512): the engines' [`PANEL`], so a gathered convolution pads no more than it.
pub const NR: usize = PANEL;

/// Whether this machine can run the carriers.
pub fn available() -> bool {
    Isa::best() >= Isa::Avx2
}

/// The activation code type of a carrier. Either way one i32 word of weight codes meets
/// `NR` columns of 4 bytes each: a 64-byte step of the microkernel.
pub trait Lane: Copy + Default + Send + Sync + Into<i32> + 'static {
    /// The weight code type.
    type Weight: Copy + Default + Send + Sync + Into<i32>;
    /// Codes per 32-bit word: 2 (i16) or 4 (u8).
    const PER_WORD: usize;
    /// An activation code the caller checked fits.
    fn code(k: i64) -> Self;
    /// A weight code the caller checked fits.
    fn weight(k: i64) -> Self::Weight;
    /// The weight codes `w` (`PER_WORD` of them) in one word, the first in the low bits (the
    /// layout the instructions take).
    fn word(w: &[Self::Weight]) -> i32;
}

impl Lane for i16 {
    type Weight = i16;
    const PER_WORD: usize = 2;
    fn code(k: i64) -> Self {
        k as i16
    }
    fn weight(k: i64) -> i16 {
        k as i16
    }
    fn word(w: &[i16]) -> i32 {
        (u32::from(w[0] as u16) | u32::from(w[1] as u16) << 16) as i32
    }
}

impl Lane for u8 {
    type Weight = i8;
    const PER_WORD: usize = 4;
    fn code(k: i64) -> Self {
        k as u8
    }
    fn weight(k: i64) -> i8 {
        k as i8
    }
    fn word(w: &[i8]) -> i32 {
        i32::from_le_bytes([w[0] as u8, w[1] as u8, w[2] as u8, w[3] as u8])
    }
}

/// A weight matrix `[m][k]` packed once for the microkernel: blocks of `mr` rows; within a
/// block, for each step `p` (columns `PER_WORD * p ..`), `mr` words of those columns' codes.
/// Rows past `m` and columns past `k` are zero.
pub struct PackedWeights<L: Lane> {
    m: usize,
    steps: usize,
    /// Rows per block: [`MR`], or [`MR_WIDE`] for the AVX-512 kernel where that pads fewer.
    mr: usize,
    words: Vec<i32>,
    lane: std::marker::PhantomData<L>,
}

impl<L: Lane> PackedWeights<L> {
    /// `w` holds `m * k` codes, each within `L::Weight` (checked by the caller's carrier choice),
    /// packed for `isa`'s kernel.
    pub fn new(m: usize, k: usize, w: &[i64], isa: Isa) -> Self {
        let steps = k.div_ceil(L::PER_WORD);
        let wide = isa >= Isa::Avx512Vnni && m.div_ceil(MR_WIDE) * MR_WIDE < m.div_ceil(MR) * MR;
        let mr = if wide { MR_WIDE } else { MR };
        let mut words = vec![0i32; m.div_ceil(mr) * steps * mr];
        let mut codes = vec![L::Weight::default(); L::PER_WORD];
        for r in 0..m {
            for p in 0..steps {
                for (t, c) in codes.iter_mut().enumerate() {
                    let col = p * L::PER_WORD + t;
                    *c = if col < k { L::weight(w[r * k + col]) } else { L::Weight::default() };
                }
                words[((r / mr) * steps + p) * mr + r % mr] = L::word(&codes);
            }
        }
        PackedWeights { m, steps, mr, words, lane: std::marker::PhantomData }
    }
}

/// Bytes of one step of one panel: `NR` columns of one word each.
const STEP: usize = NR * 4;

/// Pack an im2col matrix `col` (`[k][n]` row-major) into `NR`-column panels (the layout
/// [`pack_runs`] writes, spelled out; the tests' reference): for panel `j` and
/// step `p`, the `NR` columns' `PER_WORD` codes of rows `PER_WORD * p ..`, zero past `n` or `k`.
pub fn pack_columns<L: Lane>(k: usize, n: usize, col: &[L], out: &mut Vec<L>) {
    let (per, steps, panels) = (L::PER_WORD, k.div_ceil(L::PER_WORD), n.div_ceil(NR));
    out.clear();
    out.resize(panels * steps * NR * per, L::default());
    for p in 0..steps {
        for t in 0..per.min(k - p * per) {
            let src = &col[(p * per + t) * n..][..n];
            for j in 0..panels {
                let dst = &mut out[(j * steps + p) * NR * per..][..NR * per];
                for (c, &x) in src[j * NR..(n.min((j + 1) * NR))].iter().enumerate() {
                    dst[c * per + t] = x;
                }
            }
        }
    }
}

/// Pack the virtual im2col matrix whose row `t` is `padded[offsets[t]..][..n]` into the panel
/// layout of [`pack_columns`] (its prefix: `out` is scratch, only grown). `padded` must hold
/// `max(offsets) + n.div_ceil(NR) * NR` codes.
pub fn pack_runs<L: Lane>(offsets: &[usize], n: usize, padded: &[L], out: &mut Vec<L>, isa: Isa) {
    let steps = offsets.len().div_ceil(L::PER_WORD);
    let panels = n.div_ceil(NR);
    let reach = offsets.iter().max().map_or(0, |&o| o + panels * NR);
    assert!(padded.len() >= reach, "padded input too short for its runs");
    assert!(isa >= Isa::Avx2 && isa.supported(), "the integer carriers run on AVX2 or better ({isa:?})");
    // Every step of every panel is written below: grow the scratch, never refill it.
    scratch_prefix(out, panels * steps * STEP / std::mem::size_of::<L>());
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX2 is present (checked); every read is below `reach` (checked) and every write
    // inside `out`, sized above (both element types are plain integers, read as bytes).
    unsafe {
        let (src, dst) = (padded.as_ptr().cast::<u8>(), out.as_mut_ptr().cast::<u8>());
        let bytes = std::mem::size_of::<L>();
        let runs: Vec<usize> = offsets.iter().map(|&o| o * bytes).collect();
        if L::PER_WORD == 2 && isa == Isa::Avx512Vnni {
            avx512::pack_pairs(&runs, panels, steps, src, dst);
        } else if L::PER_WORD == 2 {
            avx2::pack_pairs(&runs, panels, steps, src, dst);
        } else if isa == Isa::Avx512Vnni {
            avx512::pack_quads(&runs, panels, steps, src, dst);
        } else {
            avx2::pack_quads(&runs, panels, steps, src, dst);
        }
    }
}

/// `c[m][n] = w · cols` exactly, for weights and columns packed as above, on `isa`'s kernel.
/// The caller's bound keeps every partial sum within i32 (and, for u8 on AVX2, every pair sum
/// within i16).
pub fn gemm<L: Lane>(w: &PackedWeights<L>, n: usize, cols: &[L], c: &mut [i32], isa: Isa) {
    let bytes = n.div_ceil(NR) * w.steps * STEP;
    assert!(std::mem::size_of_val(cols) >= bytes && c.len() >= w.m * n, "packed GEMM operand sizes");
    assert!(isa.supported(), "{isa:?} is not available on this machine");
    assert!(w.mr == MR || isa >= Isa::Avx512Vnni, "weights packed for the AVX-512 kernel");
    let cols = cols.as_ptr().cast::<u8>();
    let quads = L::PER_WORD == 4;
    match isa {
        // SAFETY: the machine has the instruction set (checked) and the operand sizes were
        // checked above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni if quads => unsafe { avx512::gemm::<true>(w.m, w.mr, w.steps, &w.words, n, cols, c) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => unsafe { avx512::gemm::<false>(w.m, w.mr, w.steps, &w.words, n, cols, c) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 if quads => unsafe { avx2::gemm::<true>(w.m, w.steps, &w.words, n, cols, c) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { avx2::gemm::<false>(w.m, w.steps, &w.words, n, cols, c) },
        _ => unreachable!("the integer carriers are only chosen where AVX2 is available ({isa:?})"),
    }
}

/// `y[r] = w[r] · x` for `w` `[m][k]` (dense layers).
pub fn gemv<L: Lane>(k: usize, w: &[L::Weight], x: &[L], y: &mut [i32], isa: Isa) {
    assert!(isa.supported(), "{isa:?} is not available on this machine");
    assert!(w.len() >= y.len() * k && x.len() >= k, "matrix-vector operand sizes");
    let bytes = std::mem::size_of_val(&x[..k]);
    match isa {
        // SAFETY: the machine has the instruction set (checked); every row of `w` and `x` holds
        // `bytes` bytes (checked above), and both lane types are plain integers, read as bytes.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => unsafe {
            let (w, x) = (w.as_ptr().cast::<u8>(), x.as_ptr().cast::<u8>());
            if L::PER_WORD == 4 {
                avx512::gemv::<true>(bytes, w, x, y);
            } else {
                avx512::gemv::<false>(bytes, w, x, y);
            }
        },
        // SAFETY: the machine has the instruction set (checked); the body is safe code compiled
        // for it.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { avx2::gemv(k, w, x, y) },
        _ => gemv_body(k, w, x, y),
    }
}

/// `y[b][r] = w[r] · x[b]` for several images at once: `x` holds the images' inputs (`k` codes
/// each), `y` their sums (`m` each). On AVX-512 each weight vector loaded serves four images
/// (a dense layer's weights are read from cache once per batch, not once per image); elsewhere
/// image after image.
pub fn gemv_images<L: Lane>(k: usize, m: usize, w: &[L::Weight], x: &[L], y: &mut [i32], isa: Isa) {
    assert!(isa.supported(), "{isa:?} is not available on this machine");
    let images = x.len() / k.max(1);
    assert!(w.len() >= m * k && x.len() == images * k && y.len() == images * m, "batched matrix-vector operand sizes");
    match isa {
        // SAFETY: the machine has the instruction set (checked); every row of `w` and every
        // image of `x` holds `bytes` bytes (checked above), and both lane types are plain
        // integers, read as bytes.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni if images > 1 && k > 0 => unsafe {
            let (bytes, w, x) = (std::mem::size_of_val(&x[..k]), w.as_ptr().cast::<u8>(), x.as_ptr().cast::<u8>());
            if L::PER_WORD == 4 {
                avx512::gemv_images::<true>(bytes, m, w, x, y);
            } else {
                avx512::gemv_images::<false>(bytes, m, w, x, y);
            }
        },
        _ => {
            for (x, y) in x.chunks_exact(k.max(1)).zip(y.chunks_exact_mut(m)) {
                gemv(k, w, x, y, isa);
            }
        }
    }
}

#[inline(always)]
fn gemv_body<L: Lane>(k: usize, w: &[L::Weight], x: &[L], y: &mut [i32]) {
    for (row, out) in w.chunks_exact(k).zip(y.iter_mut()) {
        // LLVM turns this widening dot product into vpmaddwd / vpdpbusd.
        *out = row.iter().zip(x).map(|(&a, &b)| a.into() * b.into()).sum();
    }
}

/// The sum type of the vectorized epilogue: i32 (the integer carriers' sums) or i64 (the split
/// carrier's recombined digit sums).
pub trait Sum:
    Copy
    + Ord
    + Default
    + Send
    + Sync
    + Into<i64>
    + TryFrom<i64>
    + std::ops::Shr<u32, Output = Self>
    + std::ops::Shl<u32, Output = Self>
    + std::ops::BitAnd<Output = Self>
    + std::ops::Add<Output = Self>
    + 'static
{
    const BITS: u32;
    const MIN: Self;
    const MAX: Self;
    fn wrapping_add(self, other: Self) -> Self;
    fn from_bool(b: bool) -> Self;
    fn is_odd(self) -> bool;
    /// `(2^s - 1, 2^(s-1))`, the half `1` where `s = 0` (then no remainder reaches it).
    fn mask_half(s: u32) -> (Self, Self);
}

macro_rules! impl_sum {
    ($t:ty) => {
        impl Sum for $t {
            const BITS: u32 = <$t>::BITS;
            const MIN: Self = <$t>::MIN;
            const MAX: Self = <$t>::MAX;
            fn wrapping_add(self, other: Self) -> Self {
                <$t>::wrapping_add(self, other)
            }
            fn from_bool(b: bool) -> Self {
                <$t>::from(b)
            }
            fn is_odd(self) -> bool {
                self & 1 == 1
            }
            fn mask_half(s: u32) -> (Self, Self) {
                (((1u128 << s) - 1) as $t, if s == 0 { 1 } else { 1 << (s - 1) })
            }
        }
    };
}
impl_sum!(i32);
impl_sum!(i64);

/// The type the integer engine stores codes in between layers: i32 wherever every value's
/// format fits it (all but 32-bit unsigned formats), else i64. The narrow type halves the
/// memory traffic of every layer's epilogue and input conversion and doubles their vector lanes.
pub trait Code: Sum + PartialOrd {
    /// `k` in this type (the caller knows it fits: a code of a format that does).
    fn store(k: i64) -> Self;
    /// The code as i64.
    fn load(self) -> i64;
    /// An integral `x` within this type (a clamped code), converted.
    fn from_f64(x: f64) -> Self;
}

impl Code for i32 {
    fn store(k: i64) -> i32 {
        k as i32
    }
    fn load(self) -> i64 {
        i64::from(self)
    }
    fn from_f64(x: f64) -> i32 {
        // `as` saturates and maps NaN to 0 too, but LLVM lowers that one value at a time; the
        // explicit select and clamp vectorize (the quantize loops convert whole images).
        if x.is_nan() {
            return 0;
        }
        // SAFETY: not NaN, and clamped into i32's range, so truncation fits.
        unsafe { x.clamp(i32::MIN as f64, i32::MAX as f64).to_int_unchecked() }
    }
}

impl Code for i64 {
    fn store(k: i64) -> i64 {
        k
    }
    fn load(self) -> i64 {
        self
    }
    fn from_f64(x: f64) -> i64 {
        x as i64
    }
}

/// A layer's requantization in its common case, all in its sum type `A`: add the bias, round
/// off `shift` bits (or, where `shift` is negative, scale by `2^-shift`), saturate to
/// `[lo, hi]`; the fused activation as two thresholds on the exact sum (`v < below.0` gives code
/// `below.1`, else `v > above.0` gives `above.1`: ReLU is `(0, 0)` below, a Clip its bounds in
/// the sum's scale and their codes). The caller chooses it only for saturating arithmetic, no
/// accumulator width, `|shift| < A::BITS`, sums plus bias within `A` and thresholds it computed
/// exactly.
#[derive(Debug, Clone, Copy)]
pub struct Requant<A = i32> {
    pub shift: i32,
    pub rounding: Rounding,
    pub below: (A, A),
    pub above: (A, A),
    pub lo: A,
    pub hi: A,
}

impl<A: Sum> Requant<A> {
    /// No activation: no sum is below `A::MIN` or above `A::MAX`.
    pub fn no_clip() -> ((A, A), (A, A)) {
        ((A::MIN, A::default()), (A::MAX, A::default()))
    }

    /// Whether a threshold can pass a sum (else the clamp is the whole activation).
    fn thresholds(&self) -> bool {
        self.below.0 != A::MIN || self.above.0 != A::MAX
    }
}

/// Append the codes of the real outputs of rows of sums laid out as `layout` (row `r` plus
/// `bias[r]`) to `out`; the sums are only read.
pub fn requant_rows<A: Sum, C: Code>(
    acc: &[A],
    layout: SumLayout,
    bias: &[A],
    rq: &Requant<A>,
    out: &mut Vec<C>,
    isa: Isa,
) {
    let acc = &acc[..bias.len() * layout.per_row];
    let (start, len) = (out.len(), bias.len() * layout.outputs());
    // `COPY` codes of slack: short segments are written in whole chunks (see `requant_with`).
    // Written in place of a zero fill: every one of the `len` codes is written below.
    out.reserve(len + COPY);
    let dst = &mut out.spare_capacity_mut()[..len + COPY];
    assert!(isa.supported(), "{isa:?} is not available on this machine");
    match isa {
        // SAFETY: the machine has the instruction set (checked); the body is safe code compiled
        // for it.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => unsafe { avx512::requant_rows(acc, layout, bias, rq, dst) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { avx2::requant_rows(acc, layout, bias, rq, dst) },
        _ => requant_modes(acc, layout, bias, rq, dst),
    }
    // SAFETY: the body wrote all `len` codes after `start`: a dense layout one per sum
    // (`len` sums), a segmented one `seg_len` per segment (`len / seg_len` segments).
    unsafe { out.set_len(start + len) };
}

/// Codes written at a time from a segmented layout, at most (the slack after the codes).
const COPY: usize = 16;

/// The codes of the real outputs of the sums `acc` (rows laid out as `layout`, row `r` plus
/// `bias[r]`), into `out` (with `COPY` codes of slack): one loop per rounding mode (and one for a
/// left shift), each branch-free so that it vectorizes.
#[inline(always)]
fn requant_modes<A: Sum, C: Code>(
    acc: &[A],
    layout: SumLayout,
    bias: &[A],
    rq: &Requant<A>,
    out: &mut [MaybeUninit<C>],
) {
    let (lo, hi) = (rq.lo, rq.hi);
    if rq.shift < 0 {
        // `v * 2^l` saturates exactly where `v` is outside `[ceil(lo / 2^l), floor(hi / 2^l)]`:
        // compare first, so that the shift never leaves `A` where it is used.
        let l = rq.shift.unsigned_abs();
        let (lo64, hi64): (i64, i64) = (lo.into(), hi.into());
        let within = |k: i64| A::try_from(k).ok().expect("a bound of a code range within A");
        let (lo_in, hi_in) = (within(-((-lo64) >> l)), within(hi64 >> l));
        return requant_with(acc, layout, bias, rq, out, |v| {
            let k = if v > hi_in { hi } else { v << l };
            if v < lo_in {
                lo
            } else {
                k
            }
        });
    }
    // Round off `s` bits: `v = q * 2^s + r`; with `s = 0`, `r = 0` and `half = 1`, so no mode
    // rounds up.
    let s = rq.shift as u32;
    let (mask, half) = A::mask_half(s);
    let parts = move |v: A| (v >> s, v & mask);
    match rq.rounding {
        Rounding::Floor => requant_with(acc, layout, bias, rq, out, |v| (v >> s).clamp(lo, hi)),
        Rounding::HalfUp => requant_with(acc, layout, bias, rq, out, |v| {
            let (q, r) = parts(v);
            (q + A::from_bool(r >= half)).clamp(lo, hi)
        }),
        Rounding::HalfEven => requant_with(acc, layout, bias, rq, out, |v| {
            // Up where `r > half`, or `r == half` and `q` is odd: both at once as `r + odd > half`
            // (`r < 2^s`, so the sum cannot overflow): one compare in place of three.
            let (q, r) = parts(v);
            (q + A::from_bool(r + A::from_bool(q.is_odd()) > half)).clamp(lo, hi)
        }),
        Rounding::HalfAway => requant_with(acc, layout, bias, rq, out, |v| {
            let (q, r) = parts(v);
            (q + A::from_bool((r > half) | ((r == half) & (v >= A::default())))).clamp(lo, hi)
        }),
    }
}

/// `scale(v)`: the saturated code of the sum plus bias `v` before the activation.
#[inline(always)]
fn requant_with<A: Sum, C: Code>(
    acc: &[A],
    layout: SumLayout,
    bias: &[A],
    rq: &Requant<A>,
    out: &mut [MaybeUninit<C>],
    scale: impl Fn(A) -> A,
) {
    if rq.thresholds() {
        let ((t_lo, k_lo), (t_hi, k_hi)) = (rq.below, rq.above);
        // Discarded columns may hold any value: wrap rather than trap on them (real sums plus
        // bias fit, by the carrier's bound). Selects, not branches, so that the loop
        // vectorizes; `below` wins, as in the scalar `if v < min .. else if v > max`.
        let scale = |v: A| {
            let k = if v > t_hi { k_hi } else { scale(v) };
            if v < t_lo {
                k_lo
            } else {
                k
            }
        };
        requant_loops(acc, layout, bias, out, move |a: A, b: A| C::store(scale(a.wrapping_add(b)).into()));
    } else {
        requant_loops(acc, layout, bias, out, move |a: A, b: A| C::store(scale(a.wrapping_add(b)).into()));
    }
}

/// The loops of [`requant_with`]: `code(sum, bias)` for every real output.
#[inline(always)]
fn requant_loops<A: Sum, C: Code>(
    acc: &[A],
    layout: SumLayout,
    bias: &[A],
    out: &mut [MaybeUninit<C>],
    code: impl Fn(A, A) -> C,
) {
    let per_row = layout.per_row;
    if per_row == 1 {
        // A dense layer's sums, one per row: across rows, each with its own bias (row by row,
        // a masked vector per code was most of the requantization of the default explore).
        for ((&a, &b), o) in acc.iter().zip(bias).zip(out) {
            *o = MaybeUninit::new(code(a, b));
        }
        return;
    }
    if layout.seg_len == layout.seg_stride {
        // Every sum is a real output. Rows in whole vectors, the last overlapping the one before
        // (`code` is pure): LLVM's own loop unrolls by four vectors and leaves a 7x7 map's
        // 49-code rows to its narrow remainder loops.
        // (Plain loops: an iterator's `for_each` is a `fold` call that is not inlined into
        // this target-feature function, and then runs without its vectors.)
        for ((row, dst), &b) in acc.chunks_exact(per_row).zip(out.chunks_exact_mut(per_row)).zip(bias) {
            let code = |a: A| MaybeUninit::new(code(a, b));
            if per_row >= COPY {
                convert_chunks::<COPY, _, _>(row, dst, &code);
            } else if per_row >= COPY / 2 {
                convert_chunks::<{ COPY / 2 }, _, _>(row, dst, &code);
            } else {
                for (&a, o) in row.iter().zip(dst) {
                    *o = code(a);
                }
            }
        }
        return;
    }
    // Only the real outputs, each segment in whole chunks of `COPY` (a short segment's element
    // loop would not vectorize): a chunk past a segment's end reads discarded columns (or the
    // next row) and writes codes the next segment overwrites, or into the slack; a scalar tail
    // only where a chunk would read past `acc`.
    // A 14x14 map's 14-column segments take one chunk of 16, a 7x7 map's one of 8.
    if layout.seg_len > COPY / 2 {
        requant_segments::<A, C, COPY>(acc, layout, bias, out, code);
    } else {
        requant_segments::<A, C, { COPY / 2 }>(acc, layout, bias, out, code);
    }
}

/// The segmented case of [`requant_with`] in chunks of `N <= COPY` codes.
#[inline(always)]
fn requant_segments<A: Sum, C: Code, const N: usize>(
    acc: &[A],
    layout: SumLayout,
    bias: &[A],
    out: &mut [MaybeUninit<C>],
    code: impl Fn(A, A) -> C,
) {
    let (per_row, stride, len) = (layout.per_row, layout.seg_stride, layout.seg_len);
    let mut pos = 0;
    for (r, &b) in bias.iter().enumerate() {
        for s0 in (r * per_row..(r + 1) * per_row).step_by(stride) {
            let (src, dst) = (&acc[s0..], &mut out[pos..]);
            let mut i = 0;
            while i < len && i + N <= src.len() {
                let chunk: &[A; N] = src[i..i + N].try_into().expect("chunk");
                let to: &mut [MaybeUninit<C>; N] = (&mut dst[i..i + N]).try_into().expect("slack");
                for (t, &a) in to.iter_mut().zip(chunk) {
                    t.write(code(a, b));
                }
                i += N;
            }
            for j in i..len {
                dst[j].write(code(src[j], b));
            }
            pos += len;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Code, Lane, MaybeUninit, Requant, Sum, SumLayout, MR, NR, STEP};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2")]
    pub unsafe fn gemv<L: Lane>(k: usize, w: &[L::Weight], x: &[L], y: &mut [i32]) {
        super::gemv_body(k, w, x, y);
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn requant_rows<A: Sum, C: Code>(
        acc: &[A],
        layout: SumLayout,
        bias: &[A],
        rq: &Requant<A>,
        out: &mut [MaybeUninit<C>],
    ) {
        super::requant_modes(acc, layout, bias, rq, out);
    }

    /// i16 runs (byte offsets) `2p` and `2p+1` interleaved sixteen columns at a time:
    /// `unpack{lo,hi}_epi16` pair columns 0-3|8-11 and 4-7|12-15; the two 128-bit permutes
    /// restore column order.
    #[target_feature(enable = "avx2")]
    pub unsafe fn pack_pairs(runs: &[usize], panels: usize, steps: usize, src: *const u8, dst: *mut u8) {
        pack_pairs_from(runs, 0, panels, steps, src, dst);
    }

    /// [`pack_pairs`] of panels `first..panels` only.
    #[target_feature(enable = "avx2")]
    pub unsafe fn pack_pairs_from(
        runs: &[usize],
        first: usize,
        panels: usize,
        steps: usize,
        src: *const u8,
        dst: *mut u8,
    ) {
        for p in 0..steps {
            let r0 = src.add(runs[2 * p]);
            let r1 = runs.get(2 * p + 1).map(|&o| src.add(o));
            for j in first..panels {
                let a = _mm256_loadu_si256(r0.add(j * NR * 2) as *const __m256i);
                let b = match r1 {
                    Some(r1) => _mm256_loadu_si256(r1.add(j * NR * 2) as *const __m256i),
                    None => _mm256_setzero_si256(),
                };
                let lo = _mm256_unpacklo_epi16(a, b);
                let hi = _mm256_unpackhi_epi16(a, b);
                let d = dst.add((j * steps + p) * STEP) as *mut __m256i;
                _mm256_storeu_si256(d, _mm256_permute2x128_si256(lo, hi, 0x20));
                _mm256_storeu_si256(d.add(1), _mm256_permute2x128_si256(lo, hi, 0x31));
            }
        }
    }

    /// u8 runs (byte offsets) `4p .. 4p+3` interleaved sixteen columns at a time: bytes pair
    /// up (`unpack{lo,hi}_epi8`), then pairs (`unpack{lo,hi}_epi16`) into each column's word.
    #[target_feature(enable = "avx2")]
    pub unsafe fn pack_quads(runs: &[usize], panels: usize, steps: usize, src: *const u8, dst: *mut u8) {
        pack_quads_from(runs, 0, panels, steps, src, dst);
    }

    /// [`pack_quads`] of panels `first..panels` only.
    #[target_feature(enable = "avx2")]
    pub unsafe fn pack_quads_from(
        runs: &[usize],
        first: usize,
        panels: usize,
        steps: usize,
        src: *const u8,
        dst: *mut u8,
    ) {
        for p in 0..steps {
            // Spelled out, not `array::from_fn` / `array::map`: LLVM sometimes left those
            // calls out of line here (5 % of a convolution's time, depending on the build).
            let row = |t: usize| runs.get(4 * p + t).map(|&o| src.add(o));
            let rows = [row(0), row(1), row(2), row(3)];
            for j in first..panels {
                let load = |r: Option<*const u8>| match r {
                    Some(r) => _mm_loadu_si128(r.add(j * NR) as *const __m128i),
                    None => _mm_setzero_si128(),
                };
                let [a, b, c, d] = [load(rows[0]), load(rows[1]), load(rows[2]), load(rows[3])];
                let (ab_lo, ab_hi) = (_mm_unpacklo_epi8(a, b), _mm_unpackhi_epi8(a, b));
                let (cd_lo, cd_hi) = (_mm_unpacklo_epi8(c, d), _mm_unpackhi_epi8(c, d));
                let out = dst.add((j * steps + p) * STEP) as *mut __m128i;
                _mm_storeu_si128(out, _mm_unpacklo_epi16(ab_lo, cd_lo));
                _mm_storeu_si128(out.add(1), _mm_unpackhi_epi16(ab_lo, cd_lo));
                _mm_storeu_si128(out.add(2), _mm_unpacklo_epi16(ab_hi, cd_hi));
                _mm_storeu_si128(out.add(3), _mm_unpackhi_epi16(ab_hi, cd_hi));
            }
        }
    }

    /// Panels outermost: one panel of columns (`steps * 64` bytes) stays in L1 while every
    /// block of weight rows streams past it. `QUADS`: u8 x i8 quads (`vpmaddubsw`, whose i16
    /// pair sums the caller's bound keeps from saturating, then `vpmaddwd` by ones), else i16
    /// pairs (`vpmaddwd`).
    #[target_feature(enable = "avx2")]
    pub unsafe fn gemm<const QUADS: bool>(
        m: usize,
        steps: usize,
        words: &[i32],
        n: usize,
        cols: *const u8,
        c: &mut [i32],
    ) {
        let ones = _mm256_set1_epi16(1);
        for j in 0..n.div_ceil(NR) {
            let b = cols.add(j * steps * STEP);
            let c0 = j * NR;
            let width = (n - c0).min(NR);
            for blk in 0..m.div_ceil(MR) {
                let a = words.as_ptr().add(blk * steps * MR);
                let mut acc = [[_mm256_setzero_si256(); 2]; MR];
                for p in 0..steps {
                    let b0 = _mm256_loadu_si256(b.add(p * STEP) as *const __m256i);
                    let b1 = _mm256_loadu_si256(b.add(p * STEP + STEP / 2) as *const __m256i);
                    let ap = a.add(p * MR);
                    for (r, acc_r) in acc.iter_mut().enumerate() {
                        let av = _mm256_set1_epi32(*ap.add(r));
                        let (d0, d1) = if QUADS {
                            (
                                _mm256_madd_epi16(_mm256_maddubs_epi16(b0, av), ones),
                                _mm256_madd_epi16(_mm256_maddubs_epi16(b1, av), ones),
                            )
                        } else {
                            (_mm256_madd_epi16(av, b0), _mm256_madd_epi16(av, b1))
                        };
                        acc_r[0] = _mm256_add_epi32(acc_r[0], d0);
                        acc_r[1] = _mm256_add_epi32(acc_r[1], d1);
                    }
                }
                let rows = (m - blk * MR).min(MR);
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

/// The same microkernel on 512-bit vectors: one `vpdpwssd` (i16 pairs) or `vpdpbusd` (u8 x i8
/// quads) per row and step does the products and their accumulation; two panels at a time
/// (twelve accumulators of the 32 registers) so that each broadcast weight word serves 32
/// columns.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Code, MaybeUninit, Requant, Sum, SumLayout, MR, MR_WIDE, NR, STEP};
    use std::arch::x86_64::*;

    /// [`super::avx2::pack_pairs`] two panels at a time: each run's 64 bytes interleaved
    /// within 128-bit lanes as there, then one two-source qword permute per panel restores
    /// column order; an odd last panel as there.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub unsafe fn pack_pairs(runs: &[usize], panels: usize, steps: usize, src: *const u8, dst: *mut u8) {
        let whole = panels - panels % 2;
        // Qwords of (lo, hi): panel 0 is lanes 0 of lo, hi, then lanes 1; panel 1 lanes 2, 3.
        let first = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
        let second = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
        for p in 0..steps {
            let r0 = src.add(runs[2 * p]);
            let r1 = runs.get(2 * p + 1).map(|&o| src.add(o));
            for j in (0..whole).step_by(2) {
                let a = _mm512_loadu_si512(r0.add(j * NR * 2) as *const _);
                let b = match r1 {
                    Some(r1) => _mm512_loadu_si512(r1.add(j * NR * 2) as *const _),
                    None => _mm512_setzero_si512(),
                };
                let (lo, hi) = (_mm512_unpacklo_epi16(a, b), _mm512_unpackhi_epi16(a, b));
                _mm512_storeu_si512(
                    dst.add((j * steps + p) * STEP) as *mut _,
                    _mm512_permutex2var_epi64(lo, first, hi),
                );
                let next = dst.add(((j + 1) * steps + p) * STEP) as *mut _;
                _mm512_storeu_si512(next, _mm512_permutex2var_epi64(lo, second, hi));
            }
        }
        if whole < panels {
            super::avx2::pack_pairs_from(runs, whole, panels, steps, src, dst);
        }
    }

    /// [`super::avx2::pack_quads`] four panels at a time: each run's 64 bytes interleaved
    /// within 128-bit lanes as there (a lane per panel), then the lanes transposed so that each
    /// panel's step is one 64-byte store; the panels past a multiple of four as there.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub unsafe fn pack_quads(runs: &[usize], panels: usize, steps: usize, src: *const u8, dst: *mut u8) {
        let whole = panels - panels % 4;
        for p in 0..steps {
            let row = |t: usize| runs.get(4 * p + t).map(|&o| src.add(o));
            let rows = [row(0), row(1), row(2), row(3)];
            for j in (0..whole).step_by(4) {
                let load = |r: Option<*const u8>| match r {
                    Some(r) => _mm512_loadu_si512(r.add(j * NR) as *const _),
                    None => _mm512_setzero_si512(),
                };
                let [a, b, c, d] = [load(rows[0]), load(rows[1]), load(rows[2]), load(rows[3])];
                let (ab_lo, ab_hi) = (_mm512_unpacklo_epi8(a, b), _mm512_unpackhi_epi8(a, b));
                let (cd_lo, cd_hi) = (_mm512_unpacklo_epi8(c, d), _mm512_unpackhi_epi8(c, d));
                // Lane l of o[q]: the q-th 16 bytes of panel j + l's step.
                let o = [
                    _mm512_unpacklo_epi16(ab_lo, cd_lo),
                    _mm512_unpackhi_epi16(ab_lo, cd_lo),
                    _mm512_unpacklo_epi16(ab_hi, cd_hi),
                    _mm512_unpackhi_epi16(ab_hi, cd_hi),
                ];
                let t0 = _mm512_shuffle_i64x2::<0x44>(o[0], o[1]);
                let t1 = _mm512_shuffle_i64x2::<0xee>(o[0], o[1]);
                let t2 = _mm512_shuffle_i64x2::<0x44>(o[2], o[3]);
                let t3 = _mm512_shuffle_i64x2::<0xee>(o[2], o[3]);
                let panel = [
                    _mm512_shuffle_i64x2::<0x88>(t0, t2),
                    _mm512_shuffle_i64x2::<0xdd>(t0, t2),
                    _mm512_shuffle_i64x2::<0x88>(t1, t3),
                    _mm512_shuffle_i64x2::<0xdd>(t1, t3),
                ];
                for (l, &v) in panel.iter().enumerate() {
                    _mm512_storeu_si512(dst.add(((j + l) * steps + p) * STEP) as *mut _, v);
                }
            }
        }
        if whole < panels {
            super::avx2::pack_quads_from(runs, whole, panels, steps, src, dst);
        }
    }

    /// `y[r] = w[r] · x` over rows of `bytes` bytes: `vpdpbusd` (u8 x i8 quads) or `vpdpwssd`
    /// (i16 pairs) into i32 lanes, added up at the end. Rows in blocks of four, then two, then
    /// one: each input vector serves every row of a block, whose two accumulators per row (128
    /// bytes a step) are independent chains; one row's single chain waited on each product's
    /// latency. Exact in any order: the lanes add modulo 2^32.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    pub unsafe fn gemv<const QUADS: bool>(bytes: usize, w: *const u8, x: *const u8, y: &mut [i32]) {
        let mut r = 0;
        while r < y.len() {
            let (wr, yr) = (w.add(r * bytes), &mut y[r..]);
            r += match yr.len() {
                4.. => gemv_rows::<QUADS, 4>(bytes, wr, x, yr),
                2 | 3 => gemv_rows::<QUADS, 2>(bytes, wr, x, yr),
                _ => gemv_rows::<QUADS, 1>(bytes, wr, x, yr),
            };
        }
    }

    /// `y[r] = w[r] · x` for the first `R` rows; a row's last bytes through masked loads (the
    /// zeros add nothing). Returns `R`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn gemv_rows<const QUADS: bool, const R: usize>(
        bytes: usize,
        w: *const u8,
        x: *const u8,
        y: &mut [i32],
    ) -> usize {
        let mut acc = [[_mm512_setzero_si512(); 2]; R];
        let mut step = |i: usize, masks: [__mmask64; 2]| {
            let xv: [__m512i; 2] =
                std::array::from_fn(|v| _mm512_maskz_loadu_epi8(masks[v], x.wrapping_add(i + 64 * v) as *const i8));
            for (r, acc) in acc.iter_mut().enumerate() {
                for (v, a) in acc.iter_mut().enumerate() {
                    let wv = _mm512_maskz_loadu_epi8(masks[v], w.wrapping_add(r * bytes + i + 64 * v) as *const i8);
                    *a = if QUADS { _mm512_dpbusd_epi32(*a, xv[v], wv) } else { _mm512_dpwssd_epi32(*a, xv[v], wv) };
                }
            }
        };
        let whole = bytes - bytes % 128;
        for i in (0..whole).step_by(128) {
            step(i, [!0; 2]);
        }
        if whole < bytes {
            let live = |v: usize| match (bytes - whole).saturating_sub(64 * v) {
                0 => 0,
                n if n >= 64 => !0,
                n => (1u64 << n) - 1,
            };
            step(whole, [live(0), live(1)]);
        }
        for (a, out) in acc.iter().zip(y) {
            *out = _mm512_reduce_add_epi32(_mm512_add_epi32(a[0], a[1]));
        }
        R
    }

    /// `y[b][r] = w[r] · x[b]` for `y.len() / m` images of `bytes` bytes each: rows in blocks of
    /// four, images in blocks of four (then two, then one), sixteen independent accumulators a
    /// block, each weight vector loaded once for the block's images.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    pub unsafe fn gemv_images<const QUADS: bool>(bytes: usize, m: usize, w: *const u8, x: *const u8, y: &mut [i32]) {
        let images = y.len() / m;
        let mut r = 0;
        while r < m {
            // A block of rows stays in L1 while every image passes it.
            r += match m - r {
                4.. => rows_images::<QUADS, 4>(bytes, m, r, w, x, images, y),
                2 | 3 => rows_images::<QUADS, 2>(bytes, m, r, w, x, images, y),
                _ => rows_images::<QUADS, 1>(bytes, m, r, w, x, images, y),
            };
        }
    }

    /// Rows `r0..r0 + R` for every image. Returns `R`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn rows_images<const QUADS: bool, const R: usize>(
        bytes: usize,
        m: usize,
        r0: usize,
        w: *const u8,
        x: *const u8,
        images: usize,
        y: &mut [i32],
    ) -> usize {
        let mut b = 0;
        while b < images {
            b += match images - b {
                4.. => block::<QUADS, R, 4>(bytes, m, r0, w, x, b, y),
                2 | 3 => block::<QUADS, R, 2>(bytes, m, r0, w, x, b, y),
                _ => block::<QUADS, R, 1>(bytes, m, r0, w, x, b, y),
            };
        }
        R
    }

    /// Rows `r0..r0 + R` of images `b0..b0 + I`: one accumulator per (image, row), 64 bytes a
    /// step, the last through masked loads (zeros add nothing). Returns `I`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn block<const QUADS: bool, const R: usize, const I: usize>(
        bytes: usize,
        m: usize,
        r0: usize,
        w: *const u8,
        x: *const u8,
        b0: usize,
        y: &mut [i32],
    ) -> usize {
        let (w, x) = (w.add(r0 * bytes), x.add(b0 * bytes));
        let mut acc = [[_mm512_setzero_si512(); R]; I];
        let mut step = |i: usize, mask: __mmask64| {
            let wv: [__m512i; R] =
                std::array::from_fn(|r| _mm512_maskz_loadu_epi8(mask, w.wrapping_add(r * bytes + i) as *const i8));
            for (b, acc) in acc.iter_mut().enumerate() {
                let xv = _mm512_maskz_loadu_epi8(mask, x.wrapping_add(b * bytes + i) as *const i8);
                for (a, &wv) in acc.iter_mut().zip(&wv) {
                    *a = if QUADS { _mm512_dpbusd_epi32(*a, xv, wv) } else { _mm512_dpwssd_epi32(*a, xv, wv) };
                }
            }
        };
        let whole = bytes - bytes % 64;
        for i in (0..whole).step_by(64) {
            step(i, !0);
        }
        if whole < bytes {
            step(whole, (1u64 << (bytes - whole)) - 1);
        }
        let mut all = [_mm512_setzero_si512(); 16];
        for (b, acc) in acc.iter().enumerate() {
            all[b * R..(b + 1) * R].copy_from_slice(acc);
        }
        let mut sums = [0i32; 16];
        _mm512_storeu_si512(sums.as_mut_ptr().cast(), lane_sums(all));
        for b in 0..I {
            y[(b0 + b) * m + r0..][..R].copy_from_slice(&sums[b * R..(b + 1) * R]);
        }
        I
    }

    /// Lane `j` of the result is the sum of `v[j]`'s sixteen lanes: pairs of vectors interleaved
    /// and added (32-bit, then 64-bit halves), then the four 128-bit blocks; 45 instructions
    /// where sixteen separate reductions take about 150.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn lane_sums(v: [__m512i; 16]) -> __m512i {
        let pairs: [__m512i; 8] = std::array::from_fn(|j| {
            let (a, b) = (v[2 * j], v[2 * j + 1]);
            _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b))
        });
        let quads: [__m512i; 4] = std::array::from_fn(|j| {
            let (a, b) = (pairs[2 * j], pairs[2 * j + 1]);
            _mm512_add_epi32(_mm512_unpacklo_epi64(a, b), _mm512_unpackhi_epi64(a, b))
        });
        let blocks = |a, b| _mm512_add_epi32(_mm512_shuffle_i32x4::<0x88>(a, b), _mm512_shuffle_i32x4::<0xDD>(a, b));
        blocks(blocks(quads[0], quads[1]), blocks(quads[2], quads[3]))
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub unsafe fn requant_rows<A: Sum, C: Code>(
        acc: &[A],
        layout: SumLayout,
        bias: &[A],
        rq: &Requant<A>,
        out: &mut [MaybeUninit<C>],
    ) {
        super::requant_modes(acc, layout, bias, rq, out);
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    pub unsafe fn gemm<const QUADS: bool>(
        m: usize,
        mr: usize,
        steps: usize,
        words: &[i32],
        n: usize,
        cols: *const u8,
        c: &mut [i32],
    ) {
        let panels = n.div_ceil(NR);
        for j in (0..panels).step_by(2) {
            // A lone last panel on its own tile (a 3x3 map's one panel would otherwise be
            // computed twice).
            match (mr == MR_WIDE, j + 1 < panels) {
                (true, true) => tiles::<QUADS, MR_WIDE, 2>(m, steps, words, n, cols, j, c),
                (true, false) => tiles::<QUADS, MR_WIDE, 1>(m, steps, words, n, cols, j, c),
                (false, true) => tiles::<QUADS, MR, 2>(m, steps, words, n, cols, j, c),
                (false, false) => tiles::<QUADS, MR, 1>(m, steps, words, n, cols, j, c),
            }
        }
    }

    /// Panels `j .. j + P` (their steps follow one another in `cols`) against every block of
    /// `R` weight rows: `R x P` accumulators.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    unsafe fn tiles<const QUADS: bool, const R: usize, const P: usize>(
        m: usize,
        steps: usize,
        words: &[i32],
        n: usize,
        cols: *const u8,
        j: usize,
        c: &mut [i32],
    ) {
        let b = cols.add(j * steps * STEP);
        for blk in 0..m.div_ceil(R) {
            let a = words.as_ptr().add(blk * steps * R);
            let mut acc = [[_mm512_setzero_si512(); P]; R];
            for p in 0..steps {
                let bv: [__m512i; P] =
                    std::array::from_fn(|h| _mm512_loadu_si512(b.add(h * steps * STEP + p * STEP) as *const __m512i));
                let ap = a.add(p * R);
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_epi32(*ap.add(r));
                    for (acc_h, &bh) in acc_r.iter_mut().zip(&bv) {
                        // The unsigned operand is the activations, the signed the weights.
                        *acc_h = if QUADS {
                            _mm512_dpbusd_epi32(*acc_h, bh, av)
                        } else {
                            _mm512_dpwssd_epi32(*acc_h, av, bh)
                        };
                    }
                }
            }
            let rows = (m - blk * R).min(R);
            for (r, acc_r) in acc.iter().enumerate().take(rows) {
                let row = c.as_mut_ptr().add((blk * R + r) * n);
                for (h, &v) in acc_r.iter().enumerate() {
                    let c0 = (j + h) * NR;
                    let width = (n - c0).min(NR);
                    _mm512_mask_storeu_epi32(row.add(c0), ((1u32 << width) - 1) as __mmask16, v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn code_from_f64_converts_as_the_cast_does() {
        let edge = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 3e9, -3e9, 2147483647.0, -2147483648.0, -0.0, 5.0];
        for x in edge {
            assert_eq!(i32::from_f64(x), x as i32, "{x}");
        }
    }

    /// The instruction sets of the integer carriers this machine has.
    fn isas() -> Vec<Isa> {
        [Isa::Avx2, Isa::Avx512Vnni].into_iter().filter(|i| i.supported()).collect()
    }

    /// The packed GEMM against a plain triple loop, on ragged sizes (k not a multiple of the
    /// word, partial tiles, an odd number of panels), on every instruction set, for both lane
    /// types: i16 codes, and u8 codes against i8 weights at full range (on AVX2 at the range
    /// whose pair sums fit i16, as the engine's bound requires there).
    #[test]
    fn packed_gemm_equals_plain_product() {
        for isa in isas() {
            packed_gemm_on::<i16>(isa, (-32768, 32767), (-300, 300));
            let w8 = if isa == Isa::Avx2 { (-64, 63) } else { (-128, 127) };
            packed_gemm_on::<u8>(isa, w8, (0, 255));
        }
    }

    fn packed_gemm_on<L: Lane>(isa: Isa, (w_lo, w_hi): (i64, i64), (x_lo, x_hi): (i64, i64)) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for &(m, k, n) in &[(1, 1, 1), (7, 9, 17), (6, 18, 16), (13, 27, 49), (5, 30, 40), (32, 288, 196)] {
            let w: Vec<i64> = (0..m * k).map(|_| rng.random_range(w_lo..=w_hi)).collect();
            let x: Vec<i64> = (0..k * n).map(|_| rng.random_range(x_lo..=x_hi)).collect();
            // Keep the i16 sums of the long rows within i32.
            let w = if k > 100 && L::PER_WORD == 2 { w.iter().map(|&v| v / 256).collect() } else { w };
            let codes: Vec<L> = x.iter().map(|&v| L::code(v)).collect();
            let mut packed = Vec::new();
            pack_columns(k, n, &codes, &mut packed);
            let mut c = vec![0i32; m * n];
            gemm(&PackedWeights::<L>::new(m, k, &w, isa), n, &packed, &mut c, isa);
            for i in 0..m {
                for j in 0..n {
                    let want: i64 = (0..k).map(|t| w[i * k + t] * x[t * n + j]).sum();
                    assert_eq!(i64::from(c[i * n + j]), want, "{isa:?} {} ({m},{k},{n}) at ({i},{j})", L::PER_WORD);
                }
            }
        }
    }

    /// Packing runs of an input's stride phases equals `pack_columns` of the im2col matrix of
    /// the virtual columns, for both lane types, stride 1 and 2.
    #[test]
    fn pack_runs_equals_pack_columns() {
        if available() {
            pack_runs_on::<i16>(|i| (i as i64 * 37) % 201 - 100);
            pack_runs_on::<u8>(|i| (i as i64 * 37) % 256);
        }
    }

    fn pack_runs_on<L: Lane>(code: impl Fn(usize) -> i64) {
        use crate::eval::kernels::{ConvGeom, Phases};
        use crate::model::Window;
        // A 3x3 stride-1 window and a 3x2 stride-2 dilated one, asymmetrically padded.
        let windows = [
            Window { kernel: [3, 3], stride: [1, 1], pads: [1, 2, 0, 1], dilation: [1, 1] },
            Window { kernel: [3, 2], stride: [2, 2], pads: [1, 0, 2, 1], dilation: [1, 2] },
        ];
        for (window, (c, h, w), isa) in windows
            .into_iter()
            .flat_map(|win| [(3, 5, 6), (2, 12, 14)].map(|size| (win, size)))
            .flat_map(|(win, size)| isas().into_iter().map(move |isa| (win, size, isa)))
        {
            let [oh, ow] = window.output_hw(h, w).unwrap();
            let g = ConvGeom { in_c: c, in_h: h, in_w: w, out_c: 2, out_h: oh, out_w: ow, groups: 1, window };
            let input: Vec<i64> = (0..c * h * w).map(&code).collect();
            let mut padded = Vec::new();
            let ph = Phases::new(&g, &input, L::code, L::default(), Isa::best(), &mut padded);
            let n = ph.n;
            let offsets: Vec<usize> = (0..c).flat_map(|ch| ph.taps.iter().map(move |t| ch * ph.chan + t)).collect();
            // The im2col matrix of the virtual columns, from the input directly.
            let k = offsets.len();
            let taps = window.kernel[1];
            let mut col = vec![L::default(); k * n];
            for (t, row) in col.chunks_exact_mut(n).enumerate() {
                let (ch, ky, kx) = (t / (window.kernel[0] * taps), t / taps % window.kernel[0], t % taps);
                for (v, x) in row.iter_mut().enumerate() {
                    let (oy, ox) = (v / ph.wq, v % ph.wq);
                    let iy = (oy * window.stride[0] + ky * window.dilation[0]) as isize - window.pads[0] as isize;
                    let ix = (ox * window.stride[1] + kx * window.dilation[1]) as isize - window.pads[1] as isize;
                    if ox < ow && (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix) {
                        *x = L::code(input[(ch * h + iy as usize) * w + ix as usize]);
                    }
                }
            }
            let (mut want, mut got) = (Vec::new(), Vec::new());
            pack_columns(k, n, &col, &mut want);
            pack_runs(&offsets, n, &padded, &mut got, isa);
            // Discarded columns (ox >= out_w) may differ; compare the real ones through a GEMM.
            let wts: Vec<i64> = (0..2 * k).map(|i| i as i64 % 7 - 3).collect();
            let pw = PackedWeights::<L>::new(2, k, &wts, Isa::Avx2);
            let (mut cw, mut cg) = (vec![0; 2 * n], vec![0; 2 * n]);
            gemm(&pw, n, &want, &mut cw, Isa::Avx2);
            gemm(&pw, n, &got, &mut cg, Isa::Avx2);
            let real = |c: &[i32]| {
                c.iter().enumerate().filter(|(v, _)| v % n % ph.wq < ow).map(|(_, &x)| x).collect::<Vec<_>>()
            };
            assert_eq!(real(&cw), real(&cg), "{window:?} {c}x{h}x{w} {isa:?}");
        }
    }

    #[test]
    fn gemv_equals_plain_dot() {
        for k in [5, 37, 64, 100, 150, 200] {
            gemv_on(k);
        }
    }

    /// Rows of `k` codes (bytes short of a 64-byte vector, of a 128-byte step, exactly a step,
    /// steps and a remainder of either vector), both lane types; seven rows (a block of four,
    /// of two and a lone row).
    fn gemv_on(k: usize) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let m = 7;
        let w: Vec<i16> = (0..m * k).map(|_| rng.random_range(-2000..=2000)).collect();
        let x: Vec<i16> = (0..k).map(|_| rng.random_range(-2000..=2000)).collect();
        let w8: Vec<i8> = (0..m * k).map(|_| rng.random_range(-128..=127)).collect();
        let x8: Vec<u8> = (0..k).map(|_| rng.random_range(0..=255)).collect();
        for isa in [Isa::Baseline].into_iter().chain(isas()) {
            let (mut y, mut y8) = (vec![0; m], vec![0; m]);
            gemv(k, &w, &x, &mut y, isa);
            gemv(k, &w8, &x8, &mut y8, isa);
            for r in 0..m {
                let dot = |w: &[i32], x: &[i32]| w.iter().zip(x).map(|(a, b)| a * b).sum::<i32>();
                let wide = |v: &[i16]| v.iter().map(|&a| i32::from(a)).collect::<Vec<_>>();
                assert_eq!(y[r], dot(&wide(&w[r * k..(r + 1) * k]), &wide(&x)), "{isa:?}");
                let w8r: Vec<i32> = w8[r * k..(r + 1) * k].iter().map(|&a| i32::from(a)).collect();
                let x8r: Vec<i32> = x8.iter().map(|&a| i32::from(a)).collect();
                assert_eq!(y8[r], dot(&w8r, &x8r), "{isa:?} u8");
            }
        }
    }

    /// Several images at once equal each image's plain dot products: rows (1, 2, 3, 7, 10: blocks
    /// of four, two and one) times images (1 to 9: blocks of four, two and one), rows short of a
    /// vector, exactly one and with a remainder, both lane types, every instruction set.
    #[test]
    fn gemv_images_equals_plain_dot() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for k in [5, 37, 64, 100, 150] {
            for m in [1, 2, 3, 7, 10] {
                let w: Vec<i16> = (0..m * k).map(|_| rng.random_range(-2000..=2000)).collect();
                let w8: Vec<i8> = (0..m * k).map(|_| rng.random_range(-128..=127)).collect();
                for images in 1..=9 {
                    let x: Vec<i16> = (0..images * k).map(|_| rng.random_range(-2000..=2000)).collect();
                    let x8: Vec<u8> = (0..images * k).map(|_| rng.random_range(0..=255)).collect();
                    let want = |w: &[i32], x: &[i32]| -> Vec<i32> {
                        (0..images * m).map(|i| (0..k).map(|j| w[i % m * k + j] * x[i / m * k + j]).sum()).collect()
                    };
                    let wide = |v: &[i16]| v.iter().map(|&a| i32::from(a)).collect::<Vec<_>>();
                    let want16 = want(&wide(&w), &wide(&x));
                    let want8 = want(
                        &w8.iter().map(|&a| i32::from(a)).collect::<Vec<_>>(),
                        &x8.iter().map(|&a| i32::from(a)).collect::<Vec<_>>(),
                    );
                    for isa in [Isa::Baseline].into_iter().chain(isas()) {
                        let (mut y, mut y8) = (vec![0; images * m], vec![0; images * m]);
                        gemv_images(k, m, &w, &x, &mut y, isa);
                        gemv_images(k, m, &w8, &x8, &mut y8, isa);
                        assert_eq!(y, want16, "{isa:?} i16 k {k} m {m} images {images}");
                        assert_eq!(y8, want8, "{isa:?} u8 k {k} m {m} images {images}");
                    }
                }
            }
        }
    }

    /// The vectorized epilogue against the engine's scalar `requantize`, every mode and shift,
    /// with no activation, ReLU and a clip (thresholds and their codes), on i32 sums and on the
    /// split carrier's i64 sums (shifts past 31, sums past i32).
    #[test]
    fn requant_rows_equals_requantize() {
        requant_rows_case::<i32>(&[-30, -5, -1, 0, 1, 2, 5, 13, 30, 31], 29);
        requant_rows_case::<i64>(&[-40, -3, 0, 1, 13, 31, 32, 45, 62], 60);
    }

    /// Sums up to `2^mag` in magnitude (and neighbours of exact halves) at each of `shifts`.
    fn requant_rows_case<A: Sum + std::fmt::Debug>(shifts: &[i32], mag: u32) {
        use crate::fixed::round::requantize;
        use crate::fixed::{Arith, Format, Overflow, RangeMode};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let a = |v: i64| A::try_from(v).ok().expect("within the sum type");
        for rounding in [Rounding::Floor, Rounding::HalfUp, Rounding::HalfEven, Rounding::HalfAway] {
            for &shift in shifts {
                for act in 0..3 {
                    let relu = act == 1;
                    let fmt = Format::new(8, 3, !relu);
                    let (lo, hi) = fmt.code_range(RangeMode::TwosComplement);
                    let clip = ((a(-(1 << 12)), a(-5)), (a(1 << 22), a(99)));
                    let no = Requant::<A>::no_clip();
                    let (below, above) = [no, ((A::default(), A::default()), no.1), clip][act];
                    let rq = Requant { shift, rounding, below, above, lo: a(lo), hi: a(hi) };
                    let acc: Vec<A> = (0..128)
                        .map(|i| match i % 4 {
                            0 => a(rng.random_range(-(1i64 << mag)..1 << mag)),
                            1 => a(rng.random_range(-4096..4096)),
                            // exact halves and their neighbours
                            _ => {
                                let half = 1i64 << shift.max(0) >> 1;
                                let v = (rng.random_range(-64i64..64) << shift.clamp(0, mag as i32 - 9)) + half - 1
                                    + (i % 3);
                                a(v.clamp(-(1 << (mag + 1)), 1 << (mag + 1)))
                            }
                        })
                        .collect();
                    let bias = [a(-7), a(0), a(12), a(1 << 20)];
                    let mut out: Vec<i64> = Vec::new();
                    requant_rows(&acc, SumLayout::dense(16), &bias, &rq, &mut out, Isa::best());
                    let arith = Arith { rounding, overflow: Overflow::Saturate, range: RangeMode::TwosComplement };
                    let wide = |x: A| i128::from(x.into());
                    let want = |x: A, b: A| {
                        let mut v = wide(x) + wide(b);
                        if relu {
                            v = v.max(0);
                        }
                        if act == 2 && v < wide(clip.0 .0) {
                            clip.0 .1.into()
                        } else if act == 2 && v > wide(clip.1 .0) {
                            clip.1 .1.into()
                        } else {
                            requantize(v, fmt.frac + shift, fmt, arith)
                        }
                    };
                    for (i, (&x, &got)) in acc.iter().zip(&out).enumerate() {
                        assert_eq!(got, want(x, bias[i / 16]), "{rounding:?} shift {shift} activation {act} acc {x:?}");
                    }
                    // Dense rows of other lengths: in whole vectors with an overlapping last
                    // one, in half vectors, or one code at a time.
                    for per_row in [5, 12, 21, 29, 32] {
                        let mut got: Vec<i64> = Vec::new();
                        requant_rows(&acc, SumLayout::dense(per_row), &bias, &rq, &mut got, Isa::best());
                        let exp: Vec<i64> = (0..4 * per_row).map(|i| want(acc[i], bias[i / per_row])).collect();
                        assert_eq!(got, exp, "{rounding:?} shift {shift} activation {act} rows of {per_row}");
                    }
                    // The same codes stored as i32 (the engine's narrow storage).
                    let mut out32: Vec<i32> = Vec::new();
                    requant_rows(&acc, SumLayout::dense(16), &bias, &rq, &mut out32, Isa::best());
                    assert!(out32.iter().map(|&k| i64::from(k)).eq(out.iter().copied()), "{rounding:?} shift {shift}");
                    // Segmented layouts give the codes of their real columns (chunks that run
                    // past a segment, a row, or the sums' end; rows of one chunk, of several,
                    // of a partial last one), here into i32.
                    for (per_row, stride, len) in [
                        (16, 8, 7),
                        (16, 4, 3),
                        (16, 16, 9),
                        (16, 16, 14),
                        (24, 12, 8),
                        (28, 28, 24),
                        (30, 10, 7),
                        (32, 32, 20),
                    ] {
                        let layout = SumLayout { per_row, seg_stride: stride, seg_len: len };
                        let mut seg: Vec<i32> = Vec::new();
                        requant_rows(&acc, layout, &bias, &rq, &mut seg, Isa::best());
                        let real: Vec<i32> = (0..4 * per_row)
                            .filter(|i| i % per_row % stride < len)
                            .map(|i| want(acc[i], bias[i / per_row]) as i32)
                            .collect();
                        assert_eq!(
                            seg, real,
                            "{rounding:?} shift {shift} activation {act} segments {per_row}/{stride}/{len}"
                        );
                    }
                }
            }
        }
    }
}
