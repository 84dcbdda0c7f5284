//! The bit-true integer engine (docs/fixed-point.md). Every tensor is a vector of integer codes `k`
//! in its format; products and sums are exact. Convolutions run as GEMMs in the cheapest carrier
//! a per-layer bound proves exact: u8 x i8 or i16 codes with i32 sums (AVX2 or AVX-512 VNNI,
//! `int16.rs`), else the i16 kernels over blocks of taps or once per 8-bit digit of wider codes
//! (sums added in i64), else f32 or f64 when
//! every partial sum is an exactly representable integer there (2^24, 2^53), else i128.
//! Depthwise convolutions and affine layers run on direct kernels (i32 sums wherever the bound
//! allows). Codes lie between layers in i32 wherever every value's format fits it (all but
//! 32-bit unsigned formats; else i64, see [`Code`]). No carrier, storage type or instruction
//! set changes a single bit.

use super::depthwise::{MaskedTaps, PairWeight};
use super::float::conv_geom;
use super::int16::{self, Code, Lane, PackedWeights, Requant, Sum};
use super::kernels::{
    conv_image, convert, depthwise, pool_windows, run_offsets, scratch_prefix, ConvGeom, Gemm, Isa, Mac, Phases,
    SumLayout,
};
use super::permute::BytePermute;
use super::runner::{Batch, Engine, Scratch, Workspace};
use crate::fixed::round::{
    fit, quantize, quantize_scaled, requantize, requantize_codes, round_div, round_f64, round_shift, shl_saturating,
};
use crate::fixed::{Arith, Assignment, Format, Overflow, Rounding};
use crate::model::{Activation, Graph, Node, Op};
use anyhow::Result;
use std::marker::PhantomData;

/// Which number type carries a layer's exact products and sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// i16 codes, i32 sums (AVX2 or better).
    I16,
    /// u8 activation codes, i8 weight codes, i32 sums (AVX-512 VNNI; AVX2 where the
    /// instruction's i16 pair sums cannot saturate).
    U8,
    /// Activation codes of up to 16 bits split into two 8-bit digits (`k = 256 hi + lo`, `lo`
    /// in `0..=255`), each digit against i16 weight codes on the i16 carrier's kernels with i32
    /// sums, the two sums combined in i64 (`256 S_hi + S_lo`): for layers whose full sums leave
    /// i32 (e.g. 16-bit activations against 12-bit weights), where only f64 was exact before.
    I16Split,
    /// i16 codes whose full sums leave i32 but whose products fit: the reduction cut into blocks
    /// of input taps whose sums provably fit i32, each on the i16 kernels, the block sums added
    /// in i64 (e.g. 12-bit activations against 12-bit weights over hundreds of taps): one pass
    /// over the products, where the split carrier takes two.
    I16Blocks,
    F32,
    F64,
    I128,
}

impl Gemm for i128 {
    fn gemm(m: usize, k: usize, n: usize, a: &[i128], b: &[i128], c: &mut [i128]) {
        for i in 0..m {
            let row = &a[i * k..(i + 1) * k];
            let out = &mut c[i * n..(i + 1) * n];
            out.fill(0);
            for (kk, &w) in row.iter().enumerate() {
                if w == 0 {
                    continue;
                }
                let src = &b[kk * n..(kk + 1) * n];
                for (o, &x) in out.iter_mut().zip(src) {
                    *o += w * x;
                }
            }
        }
    }
}

/// Which carriers and instruction set the engine may choose from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carriers {
    /// The fastest exact carrier on the best instruction set this machine has (the default).
    Fastest,
    /// Only the carriers every machine has (f32, f64, i128) on the portable code: tests compare
    /// the sets.
    Portable,
    /// The fastest carriers on one instruction set (tests force each the machine has in turn);
    /// [`FixedEngine::with_carriers`] fails where the machine lacks it.
    On(Isa),
    /// [`Carriers::On`] without the u8 x i8 carrier: the i16 one runs the layers the u8 one
    /// would take (tests compare the two).
    I16On(Isa),
}

/// How a parameterised layer runs (the dispatch itself: [`FixedEngine::kernels`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kernel {
    pub precision: Precision,
    /// The direct depthwise kernel (else a GEMM, a matrix-vector product or the per-channel
    /// affine loop).
    pub depthwise: bool,
    /// A conv whose GEMM runs over its real output columns, gathered from the phases (see
    /// `Phases::gather_pays`), not over the virtual ones.
    pub gathered: bool,
    /// A depthwise conv on the masked-tap kernel (see `depthwise::MaskedTaps`), not the
    /// phases of the direct one.
    pub masked: bool,
    /// A conv whose u8 input is laid out by byte permutes (see `permute::BytePermute`): its
    /// stride phases or its gathered runs.
    pub permuted: bool,
}

/// A conv or dense layer's weights in one integer carrier's lanes.
struct LaneParams<L: Lane> {
    /// Conv: packed weights of each group (none for a depthwise layer).
    packed: Vec<PackedWeights<L>>,
    /// Conv: the runs of the input's phases (see `Phases`) each group's GEMM reads, one per
    /// weight column: they depend on the geometry alone, so they are computed once here
    /// rather than for every image.
    runs: Vec<Vec<usize>>,
    /// Conv whose GEMM runs on its real columns ([`Phases::gather_pays`]): the offsets of the
    /// gathered runs (the same for every group); empty where it reads the phases themselves.
    gathered: Vec<usize>,
    /// Dense: weight codes `[out][in]`.
    dense: Vec<L::Weight>,
    /// Conv: where its input's phases lie (the geometry alone: not recomputed per image).
    phases: Option<Phases>,
}

impl<L: Lane> LaneParams<L> {
    /// The weights of input taps `taps` of each of `rows` rows (output channels), for one block
    /// of the reduction.
    fn block(
        node: &Node,
        geom: Option<&ConvGeom>,
        w_codes: &[i64],
        rows: usize,
        taps: std::ops::Range<usize>,
        isa: Isa,
    ) -> Self {
        let k = w_codes.len() / rows;
        let sub: Vec<i64> = w_codes.chunks_exact(k).flat_map(|r| r[taps.clone()].iter().copied()).collect();
        Self::new(node, geom, &sub, taps, false, isa)
    }

    /// The weights of input taps `taps` packed for `isa`'s kernels; `geom` is a conv's geometry.
    fn new(
        node: &Node,
        geom: Option<&ConvGeom>,
        w_codes: &[i64],
        taps: std::ops::Range<usize>,
        depthwise: bool,
        isa: Isa,
    ) -> Self {
        let conv = geom.filter(|_| matches!(node.op, Op::Conv(_)) && !depthwise);
        // Where the phases lie: the geometry alone.
        let phases = conv.map(Phases::geometry);
        LaneParams {
            packed: match conv {
                Some(g) => {
                    let og = g.out_c / g.groups;
                    let k = w_codes.len() / g.out_c;
                    w_codes.chunks(og * k).map(|w| PackedWeights::new(og, k, w, isa)).collect()
                }
                None => Vec::new(),
            },
            runs: match (conv, &phases) {
                (Some(g), Some(ph)) => {
                    let cg = g.in_c / g.groups;
                    (0..g.groups)
                        .map(|grp| {
                            let mut runs = Vec::new();
                            run_offsets(grp * cg..(grp + 1) * cg, ph.chan, &ph.taps, taps.clone(), &mut runs);
                            runs
                        })
                        .collect()
                }
                _ => Vec::new(),
            },
            gathered: match (conv, &phases) {
                (Some(g), Some(ph)) if ph.gather_pays(g) => (0..taps.len()).map(|p| p * g.pixels()).collect(),
                _ => Vec::new(),
            },
            dense: match &node.op {
                Op::Dense(_) => w_codes.iter().map(|&k| L::weight(k)).collect(),
                _ => Vec::new(),
            },
            phases,
        }
    }

    fn empty() -> Self {
        LaneParams { packed: Vec::new(), runs: Vec::new(), gathered: Vec::new(), dense: Vec::new(), phases: None }
    }
}

/// The integer carriers' form of a layer's parameters (i16 or u8 x i8, i32 sums).
struct IntParams {
    /// The weights in the chosen carrier's lanes (the other is empty).
    i16: LaneParams<i16>,
    u8: LaneParams<u8>,
    /// Depthwise conv: weight codes `[out][kh * kw]` for the direct kernel's i32 sums.
    dw: Vec<i32>,
    /// A depthwise conv on the masked-tap kernel, where it applies and its input codes and
    /// weights fit i16: its taps and weights.
    masked: Option<(MaskedTaps, Vec<PairWeight>)>,
    /// A conv on the u8 x i8 carrier whose input is laid out by byte permutes (see
    /// `permute::BytePermute`), where the machine has them: its phases or gathered runs.
    permuted: Option<BytePermute>,
    /// [`Precision::I16Blocks`]: each block's input taps and weights.
    blocks: Vec<(std::ops::Range<usize>, LaneParams<i16>)>,
    /// The vectorized epilogue over i32 sums (u8 and i16 carriers, direct kernels), where the
    /// layer's arithmetic is its common case.
    narrow: Option<Epilogue<i32>>,
    /// The same over the i64 sums of a split or blocked layer, where every sum plus bias fits
    /// i64.
    wide: Option<Epilogue<i64>>,
    /// What the u8 carrier adds to each input code: 128 for signed 8-bit codes (into `0..=255`:
    /// each sum then holds `128 * sum(w)` more, which `narrow`'s bias takes off), else 0.
    u8_offset: i64,
}

/// A layer's vectorized epilogue over sums of type `A`.
struct Epilogue<A> {
    /// Bias codes aligned to the accumulator (within `A`: the carrier's bound includes them).
    bias: Vec<A>,
    /// Runs of output channels that share one requantization (one run unless the weights have
    /// per-channel offsets), each as (end channel, requantization).
    runs: Vec<(usize, Requant<A>)>,
}

impl<A: Sum> Epilogue<A> {
    /// The epilogue of a layer with output format `out` (see [`vector_requant`]), None outside
    /// its common case or where a bias code leaves `A`.
    fn new(
        node: &Node,
        bias_acc: &[i128],
        frac_acc: &[i32],
        out: Format,
        arith: Arith,
        accumulator: Option<u32>,
    ) -> Option<Self> {
        let bias =
            bias_acc.iter().map(|&b| i64::try_from(b).ok().and_then(|b| A::try_from(b).ok())).collect::<Option<_>>()?;
        let runs = requant_runs(frac_acc, |f| vector_requant(node.op.activation(), f, out, arith, accumulator))?;
        Some(Epilogue { bias, runs })
    }

    /// Finish rows of sums laid out as `layout`, row `r` plus `bias[r]`, run by run.
    fn apply<C: Code>(&self, acc: &[A], layout: SumLayout, out: &mut Vec<C>, isa: Isa) {
        let mut start = 0;
        for &(end, ref rq) in &self.runs {
            let rows = &acc[start * layout.per_row..end * layout.per_row];
            int16::requant_rows(rows, layout, &self.bias[start..end], rq, out, isa);
            start = end;
        }
    }
}

impl IntParams {
    /// The integer form, on `precision` (`I16`, `U8`, `I16Split` or `I16Blocks`), of a layer whose codes
    /// (`w_codes`, `bias_acc` at each channel's `frac_acc`) passed that carrier's bound; `out` is
    /// its output format, `accumulator` its accumulator width, `depthwise` whether it runs on the
    /// direct depthwise kernel, `block_taps` the taps per block of an `I16Blocks` layer,
    /// `u8_shift` the offset of a `U8` layer's signed codes with the bias that takes it off
    /// (see `u8_offset`), `isa` the kernels its weights are packed for. A split or blocked
    /// layer's sums leave i32: it finishes in i64.
    #[allow(clippy::too_many_arguments)]
    fn new(
        node: &Node,
        geom: Option<&ConvGeom>,
        precision: Precision,
        w_codes: &[i64],
        bias_acc: &[i128],
        frac_acc: &[i32],
        out: Format,
        arith: Arith,
        accumulator: Option<u32>,
        depthwise: bool,
        block_taps: usize,
        u8_shift: Option<(i64, &[i128])>,
        isa: Isa,
    ) -> Self {
        let u8 = precision == Precision::U8;
        // The offset of shifted u8 codes and the bias that takes it off (see `u8_offset`).
        let u8_shift = u8_shift.filter(|_| u8);
        let wide_sums = matches!(precision, Precision::I16Split | Precision::I16Blocks);
        let fan_in = w_codes.len() / bias_acc.len().max(1);
        let blocks = match precision {
            Precision::I16Blocks => (0..fan_in)
                .step_by(block_taps)
                .map(|t| {
                    let taps = t..(t + block_taps).min(fan_in);
                    (taps.clone(), LaneParams::block(node, geom, w_codes, bias_acc.len(), taps, isa))
                })
                .collect(),
            _ => Vec::new(),
        };
        // A split or blocked layer's sums are below fan_in * 2^16 * 2^15: with fan_in < 2^30 and
        // every bias below 2^61, sum plus bias fits i64 with room to spare.
        let i64_fits = fan_in < 1 << 30 && bias_acc.iter().all(|b| b.unsigned_abs() < 1 << 61);
        let (narrow, wide) = if wide_sums {
            (None, i64_fits.then(|| Epilogue::new(node, bias_acc, frac_acc, out, arith, accumulator)).flatten())
        } else {
            let bias = u8_shift.map_or(bias_acc, |(_, b)| b);
            (Epilogue::new(node, bias, frac_acc, out, arith, accumulator), None)
        };
        let u8_lanes =
            if u8 { LaneParams::new(node, geom, w_codes, 0..fan_in, depthwise, isa) } else { LaneParams::empty() };
        // Where the row-by-row layout deals columns into stride phases or gathers runs (as the
        // u8 lanes' GEMM reads them); a stride-1 conv's rows are copied whole (a pointwise
        // conv's input as it lies).
        let permuted = match geom {
            Some(g) if u8 && !depthwise && isa == Isa::Avx512Vnni => {
                if !u8_lanes.gathered.is_empty() {
                    BytePermute::gathered(g)
                } else if g.window.stride[1] > 1 {
                    BytePermute::phases(g)
                } else {
                    None
                }
            }
            _ => None,
        };
        IntParams {
            blocks,
            narrow,
            wide,
            i16: if u8 || precision == Precision::I16Blocks {
                LaneParams::empty()
            } else {
                LaneParams::new(node, geom, w_codes, 0..fan_in, depthwise, isa)
            },
            u8: u8_lanes,
            dw: if depthwise { w_codes.iter().map(|&k| k as i32).collect() } else { Vec::new() },
            masked: None,
            permuted,
            u8_offset: u8_shift.map_or(0, |(offset, _)| offset),
        }
    }
}

/// `bias - offset * sum(w)` for each row (output channel) of `w_codes`: the bias of a layer
/// whose input codes are taken `+ offset` (see `IntParams::u8_offset`).
fn offset_bias(bias_acc: &[i128], w_codes: &[i64], offset: i64) -> Vec<i128> {
    let k = (w_codes.len() / bias_acc.len().max(1)).max(1);
    let row_sum = |row: &[i64]| row.iter().map(|&w| i128::from(w)).sum::<i128>();
    bias_acc.iter().zip(w_codes.chunks(k)).map(|(&b, row)| b - i128::from(offset) * row_sum(row)).collect()
}

/// A lane type of the integer carriers with its place in the engine's parameters and scratch.
trait EngineLane: Lane {
    fn params(q: &IntParams) -> &LaneParams<Self>;
    /// The (input codes, packed columns) scratch of this type and the i32 sums.
    fn scratch(s: &mut Scratch) -> (&mut Vec<Self>, &mut Vec<Self>, &mut Vec<i32>);
    /// The (input codes, packed columns, gathered columns) scratch of this type.
    fn gemm_scratch(s: &mut Scratch) -> (&mut Vec<Self>, &mut Vec<Self>, &mut Vec<Self>);
}

impl EngineLane for i16 {
    fn params(q: &IntParams) -> &LaneParams<i16> {
        &q.i16
    }
    fn scratch(s: &mut Scratch) -> (&mut Vec<i16>, &mut Vec<i16>, &mut Vec<i32>) {
        (&mut s.i16, &mut s.i16_b, &mut s.i32)
    }
    fn gemm_scratch(s: &mut Scratch) -> (&mut Vec<i16>, &mut Vec<i16>, &mut Vec<i16>) {
        (&mut s.i16, &mut s.i16_b, &mut s.i16_c)
    }
}

impl EngineLane for u8 {
    fn params(q: &IntParams) -> &LaneParams<u8> {
        &q.u8
    }
    fn scratch(s: &mut Scratch) -> (&mut Vec<u8>, &mut Vec<u8>, &mut Vec<i32>) {
        (&mut s.u8, &mut s.u8_b, &mut s.i32)
    }
    fn gemm_scratch(s: &mut Scratch) -> (&mut Vec<u8>, &mut Vec<u8>, &mut Vec<u8>) {
        (&mut s.u8, &mut s.u8_b, &mut s.u8_c)
    }
}

/// The epilogue of each run of channels with the same accumulator offset, as (end channel,
/// epilogue); None if any run lacks one (the layer then finishes on the scalar path).
fn requant_runs<A: Sum>(
    frac_acc: &[i32],
    epilogue: impl Fn(i32) -> Option<Requant<A>>,
) -> Option<Vec<(usize, Requant<A>)>> {
    let mut runs = Vec::new();
    for (c, &f) in frac_acc.iter().enumerate() {
        match runs.last_mut() {
            Some((end, _, last)) if *last == f => *end = c + 1,
            _ => runs.push((c + 1, epilogue(f)?, f)),
        }
    }
    Some(runs.into_iter().map(|(end, rq, _)| (end, rq)).collect())
}

/// The vectorized epilogue of a layer whose exact sums at `frac` (bias included) fit `A`, or
/// None outside its common case: wrapping overflow, an accumulator width, a shift of `A::BITS`
/// or more either way, a Clip it cannot threshold exactly.
fn vector_requant<A: Sum>(
    act: Activation,
    frac: i32,
    out: Format,
    arith: Arith,
    accumulator: Option<u32>,
) -> Option<Requant<A>> {
    let shift = frac - out.frac;
    let bits = A::BITS as i32;
    if arith.overflow != Overflow::Saturate || accumulator.is_some() || !(1 - bits..bits).contains(&shift) {
        return None;
    }
    let (below, above) = match act {
        Activation::None => Requant::no_clip(),
        Activation::Relu => ((A::default(), A::default()), Requant::no_clip().1),
        Activation::Clip { min, max } => clip_thresholds(min, max, frac, out, arith)?,
    };
    let (lo, hi) = out.code_range(arith.range);
    let within = |k: i64| A::try_from(k.clamp(A::MIN.into(), A::MAX.into())).ok();
    let rq = Requant { shift, rounding: arith.rounding, below, above, lo: within(lo)?, hi: within(hi)? };
    Some(fold_thresholds(rq, |v| requantize(i128::from(v), frac, out, arith)))
}

/// `rq` with its activation's thresholds folded into the clamp where that gives the same code
/// for every sum: a ReLU, or a Clip whose bounds fall where the rounding puts them, is then a
/// tighter clamp, and the epilogue's loop compares nothing else (four vector instructions of
/// about fifteen per sixteen codes). `code(v)` is the code `rq`'s scaling and clamp give the sum
/// `v` (monotone in `v`).
///
/// Why it is exact: with `t_lo` and its code `k_lo`, `code(t_lo - 1) <= k_lo <= code(t_lo)`
/// (and the same at `t_hi`, `code(t_hi) <= k_hi <= code(t_hi + 1)`) and `k_lo <= k_hi`, every
/// sum below `t_lo` has a code at most `k_lo`, every one above `t_hi` at least `k_hi`, and every
/// one between them a code within `[k_lo, k_hi]`: clamping the code to `[k_lo, k_hi]` gives what
/// the thresholds give. A threshold at `A::MIN` or `A::MAX` passes no sum and is dropped.
fn fold_thresholds<A: Sum>(rq: Requant<A>, code: impl Fn(i64) -> i64) -> Requant<A> {
    let ((t_lo, k_lo), (t_hi, k_hi)) = (rq.below, rq.above);
    let (t_lo, t_hi): (i64, i64) = (t_lo.into(), t_hi.into());
    // Lazily: `t_lo - 1` and `t_hi + 1` are formed only for thresholds inside `A`.
    let lower = (t_lo != A::MIN.into()).then(|| (k_lo, code(t_lo - 1) <= k_lo.into() && k_lo.into() <= code(t_lo)));
    let upper = (t_hi != A::MAX.into()).then(|| (k_hi, code(t_hi) <= k_hi.into() && k_hi.into() <= code(t_hi + 1)));
    let (lo, hi) = (lower.map_or(rq.lo, |(k, _)| k.max(rq.lo)), upper.map_or(rq.hi, |(k, _)| k.min(rq.hi)));
    let exact = lower.is_none_or(|(_, ok)| ok) && upper.is_none_or(|(_, ok)| ok);
    if exact && lo <= hi {
        let (below, above) = Requant::no_clip();
        Requant { below, above, lo, hi, ..rq }
    } else {
        rq
    }
}

/// A Clip's bounds as thresholds on the integer sum `v` at `frac` with the codes they give
/// (see [`Requant`]): the real `v * 2^-frac < min` exactly when `v < ceil(min * 2^frac)`, and
/// `> max` when `v > floor(max * 2^frac)`, as [`FixedEngine::finish`] compares. None where a
/// scaling might not be exact, or a threshold that matters or a code leaves `A`: the scalar
/// epilogue handles those.
fn clip_thresholds<A: Sum>(min: f64, max: f64, frac: i32, out: Format, arith: Arith) -> Option<((A, A), (A, A))> {
    if !(-512..=512).contains(&frac) {
        return None;
    }
    let scale = 2f64.powi(frac);
    // Multiplying by a power of two is exact unless it overflows or underflows: the round trip
    // shows which.
    let scaled = |b: f64| (b.is_infinite() || (b * scale).is_finite() && b * scale / scale == b).then_some(b * scale);
    let (lo_t, hi_t) = (scaled(min)?.ceil(), scaled(max)?.floor());
    // Below a threshold under A::MIN no sum lies, nor above one over A::MAX (both powers of
    // two, or one off, exact enough in f64 for these comparisons).
    let (a_min, a_max) = (A::MIN.into() as f64, A::MAX.into() as f64);
    let lo_t = if lo_t < a_min { A::MIN } else { A::try_from(lo_t as i64).ok()? };
    let hi_t = if hi_t >= a_max { A::MAX } else { A::try_from(hi_t as i64).ok()? };
    // An infinite bound's code is never given (no sum passes it).
    let code = |b: f64| if b.is_finite() { A::try_from(quantize(b, out, arith)).ok() } else { Some(A::default()) };
    Some(((lo_t, code(min)?), (hi_t, code(max)?)))
}

/// A parameterised layer, quantized once.
struct QParams {
    /// Weight codes in the GEMM type chosen by `precision` (f32/f64 only when chosen), and
    /// always as i128 for the dot-product layers.
    w_f32: Vec<f32>,
    w_f64: Vec<f64>,
    w_i128: Vec<i128>,
    int: Option<IntParams>,
    precision: Precision,
    /// Bias codes aligned to their channel's `frac_acc` (docs/fixed-point.md, "A Conv / Dense
    /// layer": exact, or re-rounded if finer).
    bias_acc: Vec<i128>,
    /// The accumulator's offset of each output channel (all equal unless the weights have
    /// per-channel offsets).
    frac_acc: Vec<i32>,
    /// A convolution on the direct depthwise kernel.
    depthwise: bool,
}

/// Per-node compiled state.
enum QNode {
    Params(Box<QParams>),
    /// A residual Add whose aligned sum provably fits i32: the inputs' codes shifted left by
    /// `shifts` and added in i32, then the vectorized epilogue.
    Add {
        shifts: [u32; 2],
        requant: Requant,
    },
    /// Nodes without parameters need only the formats below.
    Plain,
}

pub struct FixedEngine<'g> {
    graph: &'g Graph,
    arith: Arith,
    /// The instruction set every kernel runs on.
    isa: Isa,
    /// Format of every value.
    fmts: Vec<Format>,
    /// Accumulator width of each node, if bounded.
    acc_bits: Vec<Option<u32>>,
    nodes: Vec<QNode>,
    /// Codes are stored in i32 between layers (every value's format fits it), else i64.
    narrow: bool,
}

/// Which lanes of the integer carriers a layer's codes fit (each false where the machine or
/// the engine's carrier set rules the carrier out).
#[derive(Debug, Clone, Copy)]
struct Lanes {
    /// Every input and weight code fits i16 (for the direct kernels, which widen codes to i32:
    /// always, the i32 bound covering the codes).
    i16: bool,
    /// Every input code plus `u8_offset` fits u8 and every weight code i8, and on AVX2 no pair
    /// of products (`vpmaddubsw` sums two into a saturating i16) can leave i16.
    u8: bool,
    /// 128 for signed input codes (see `IntParams::u8_offset`), else 0.
    u8_offset: i64,
    /// Every weight code fits i16 and every input code two 8-bit digits (`-32768..=65535`), on
    /// a GEMM layer ([`Precision::I16Split`]).
    split: bool,
    /// A direct kernel (depthwise conv, affine), not a GEMM: no blocks or digits.
    direct: bool,
}

/// Input taps per block of an [`Precision::I16Blocks`] layer: the most whose sum of products
/// fits i32 (`taps * max|a| * max|w| < 2^31`), even so that blocks keep whole i16 pairs.
fn block_taps(max_a: u64, max_w: u64) -> usize {
    let per_tap = (max_a * max_w).max(1);
    (((1u64 << 31) - 1) / per_tap) as usize & !1
}

/// Whether a layer of `fan_in` taps runs better in blocks of `taps` than on the split carrier
/// (when `split` is open to it): a block pass costs a GEMM call and a pass over the sums, so
/// blocks pay while they are few or long; two blocks never cost more than the split's two
/// passes.
fn blocks_pay(fan_in: usize, taps: usize, split: bool) -> bool {
    taps >= 2 && (!split || fan_in.div_ceil(taps) <= 2 || taps >= 64)
}

/// Largest |digit| of a split activation code.
const DIGIT_MAX: u64 = 255;

/// The largest |sum| a layer can produce is fan_in * max|a| * max|w| (+ |bias|): the cheapest
/// carrier that holds every partial sum exactly. The split carrier's bound is per digit (the
/// bias joins in i64).
fn choose_precision(fan_in: usize, max_a: u64, max_w: u64, max_b: u128, lanes: Lanes) -> Precision {
    let bound = (fan_in as f64) * (max_a as f64) * (max_w as f64) + max_b as f64;
    let digit_bound = (fan_in as f64) * (max_a.min(DIGIT_MAX) as f64) * (max_w as f64);
    let i32_max = (1u64 << 31) as f64;
    if lanes.u8 && bound < i32_max {
        Precision::U8
    } else if lanes.i16 && bound < i32_max {
        Precision::I16
    } else if lanes.i16 && !lanes.direct && blocks_pay(fan_in, block_taps(max_a, max_w), lanes.split) {
        Precision::I16Blocks
    } else if lanes.split && digit_bound < i32_max {
        Precision::I16Split
    } else if bound < (1u64 << 24) as f64 {
        Precision::F32
    } else if bound < (1u64 << 53) as f64 {
        Precision::F64
    } else {
        Precision::I128
    }
}

/// The lanes a layer with input format `fin` and weight codes within `[w_lo, w_hi]` fits on
/// `isa` (see [`Lanes`]); `u8_allowed` is false where the carrier set leaves the u8 carrier out;
/// `direct` marks a layer on a direct kernel (depthwise conv, affine), not a GEMM.
fn lanes(fin: Format, arith: Arith, (w_lo, w_hi): (i64, i64), isa: Isa, u8_allowed: bool, direct: bool) -> Lanes {
    if isa < Isa::Avx2 {
        return Lanes { i16: false, u8: false, u8_offset: 0, split: false, direct };
    }
    if direct {
        return Lanes { i16: true, u8: false, u8_offset: 0, split: false, direct };
    }
    let (lo, hi) = fin.code_range(arith.range);
    let fits = |(min, max): (i64, i64), l: i64, h: i64| min >= l && max <= h;
    let w_i16 = fits((w_lo, w_hi), i16::MIN.into(), i16::MAX.into());
    let i16 = fits((lo, hi), i16::MIN.into(), i16::MAX.into()) && w_i16;
    let w_i8 = fits((w_lo, w_hi), i8::MIN.into(), i8::MAX.into());
    // Signed codes (8-bit ones: -128..=127) enter the u8 carrier shifted by 128.
    let u8_offset = if lo < 0 { 128 } else { 0 };
    let (u_lo, u_hi) = (lo + u8_offset, hi + u8_offset);
    // vpmaddubsw: |a0 w0 + a1 w1| <= 2 max_a max_w must fit i16 (VNNI's vpdpbusd sums in i32).
    let max_w = w_lo.unsigned_abs().max(w_hi.unsigned_abs());
    let pairs_fit = isa >= Isa::Avx512Vnni || 2 * u_hi.unsigned_abs() * max_w <= 32767;
    Lanes {
        i16,
        u8: u8_allowed && u_lo >= 0 && u_hi <= 255 && w_i8 && pairs_fit,
        u8_offset,
        split: w_i16 && fits((lo, hi), i16::MIN.into(), u16::MAX.into()),
        direct,
    }
}

/// Align a bias code from `frac_b` to the accumulator's `frac_acc`.
fn align_bias(k: i64, frac_b: i32, frac_acc: i32, arith: Arith) -> i128 {
    if frac_b <= frac_acc {
        shl_saturating(i128::from(k), (frac_acc - frac_b) as u32)
    } else {
        round_shift(i128::from(k), (frac_b - frac_acc) as u32, arith.rounding)
    }
}

impl<'g> FixedEngine<'g> {
    /// Quantize the parameters of `graph` to `a`. The assignment must be validated.
    pub fn new(graph: &'g Graph, a: &Assignment) -> Result<Self> {
        Self::with_carriers(graph, a, Carriers::Fastest)
    }

    /// [`FixedEngine::new`] restricted to a set of carriers.
    pub fn with_carriers(graph: &'g Graph, a: &Assignment, carriers: Carriers) -> Result<Self> {
        let isa = match carriers {
            Carriers::Fastest => Isa::best(),
            Carriers::Portable => Isa::Baseline,
            Carriers::On(isa) if isa.supported() => isa,
            Carriers::I16On(isa) if isa.supported() => isa,
            Carriers::On(isa) | Carriers::I16On(isa) => anyhow::bail!("this machine cannot run the {isa:?} kernels"),
        };
        let u8_allowed = !matches!(carriers, Carriers::I16On(_));
        let fmts = a.value_formats(graph);
        let arith = a.arith;
        let mut acc_bits = vec![None; graph.nodes.len()];
        let mut nodes = Vec::with_capacity(graph.nodes.len());
        for (i, node) in graph.nodes.iter().enumerate() {
            let layer = a.layer_of(i);
            if let Some(l) = layer {
                acc_bits[i] = l.accumulator;
            }
            let q = match (node.op.params(), layer) {
                (Some((w, b)), Some(l)) => {
                    let bf = l.bias.expect("validated");
                    let fin = fmts[node.inputs[0]];
                    // One weight offset per output channel (docs/fixed-point.md, "Per-channel
                    // weight offsets"); the bias has one per channel too, so `b` counts them.
                    let w_fracs = l.weight_fracs(w, b.len());
                    let frac_acc: Vec<i32> = w_fracs.iter().map(|f| fin.frac + f).collect();
                    let w_codes = weight_codes(l, w, &w_fracs, arith, isa);
                    let bias_acc: Vec<i128> = b
                        .iter()
                        .zip(&frac_acc)
                        .map(|(&x, &fa)| align_bias(quantize(x, bf, arith), bf.frac, fa, arith))
                        .collect();
                    // One pass over the weights for both the sum bound and the lanes they fit.
                    let w_range = w_codes.iter().fold((0, 0), |(l, h), &k| (k.min(l), k.max(h)));
                    let max_w = w_range.0.unsigned_abs().max(w_range.1.unsigned_abs());
                    let max_b = bias_acc.iter().map(|k| k.unsigned_abs()).max().unwrap_or(0);
                    let geom = matches!(node.op, Op::Conv(_)).then(|| conv_geom(graph, node));
                    let depthwise = geom.as_ref().is_some_and(ConvGeom::is_depthwise);
                    let direct = depthwise || matches!(node.op, Op::Affine(_));
                    let mut lanes = lanes(fin, arith, w_range, isa, u8_allowed && !direct, direct);
                    // The bias of shifted u8 codes (see `IntParams::u8_offset`), computed once.
                    let shifted_bias =
                        (lanes.u8 && lanes.u8_offset != 0).then(|| offset_bias(&bias_acc, &w_codes, lanes.u8_offset));
                    if let Some(bias) = &shifted_bias {
                        // Shifted codes reach 255 and the bias moves by offset * sum(w): the i32
                        // bound must hold for those, and only the vectorized epilogue takes the
                        // shifted bias.
                        let max_b = bias.iter().map(|k| k.unsigned_abs()).max().unwrap_or(0) as f64;
                        let max_a = (fin.code_range(arith.range).1 + lanes.u8_offset) as f64;
                        let bound = graph.fan_in(node) as f64 * max_a * max_w as f64 + max_b;
                        let (of, acc) = (fmts[node.output], l.accumulator);
                        lanes.u8 = bound < 2f64.powi(31)
                            && Epilogue::<i32>::new(node, bias, &frac_acc, of, arith, acc).is_some();
                    }
                    let max_a = fin.max_abs_code(arith.range);
                    let precision = choose_precision(graph.fan_in(node), max_a, max_w, max_b, lanes);
                    let integer = [Precision::I16, Precision::U8, Precision::I16Split, Precision::I16Blocks];
                    let int = integer.contains(&precision).then(|| {
                        let (of, acc) = (fmts[node.output], l.accumulator);
                        let taps = block_taps(max_a, max_w);
                        let mut q = IntParams::new(
                            node,
                            geom.as_ref(),
                            precision,
                            &w_codes,
                            &bias_acc,
                            &frac_acc,
                            of,
                            arith,
                            acc,
                            depthwise,
                            taps,
                            shifted_bias.as_deref().map(|b| (lanes.u8_offset, b)),
                            isa,
                        );
                        // The masked kernel's vpdpwssd multiplies i16 halves: codes and weights
                        // must fit i16 (see `PairWeight`).
                        let (lo, hi) = fin.code_range(arith.range);
                        if i16::try_from(lo).is_ok() && i16::try_from(hi).is_ok() {
                            let weights: Option<Vec<PairWeight>> =
                                w_codes.iter().map(|&k| PairWeight::new(k)).collect();
                            let taps = geom.as_ref().and_then(|g| MaskedTaps::new(g, isa));
                            q.masked = taps.zip(weights);
                        }
                        q
                    });
                    let mut p = QParams {
                        w_f32: Vec::new(),
                        w_f64: Vec::new(),
                        w_i128: Vec::new(),
                        int,
                        precision,
                        bias_acc,
                        frac_acc,
                        depthwise,
                    };
                    match precision {
                        Precision::F32 => p.w_f32 = w_codes.iter().map(|&k| k as f32).collect(),
                        Precision::F64 => p.w_f64 = w_codes.iter().map(|&k| k as f64).collect(),
                        Precision::I128
                        | Precision::I16
                        | Precision::U8
                        | Precision::I16Split
                        | Precision::I16Blocks => {}
                    }
                    p.w_i128 = w_codes.iter().map(|&k| i128::from(k)).collect();
                    QNode::Params(Box::new(p))
                }
                (None, _) if matches!(node.op, Op::Add { .. }) => {
                    let ins = [fmts[node.inputs[0]], fmts[node.inputs[1]]];
                    let fm = ins[0].frac.max(ins[1].frac);
                    let shifts = ins.map(|f| (fm - f.frac) as u32);
                    // |a| 2^sa + |b| 2^sb, exact in f64 (each term below 2^32 * 2^31).
                    let bound: f64 = ins
                        .iter()
                        .zip(shifts)
                        .map(|(f, sh)| f.max_abs_code(arith.range) as f64 * 2f64.powi(sh.min(31) as i32))
                        .sum();
                    let requant = (shifts.iter().all(|&sh| sh < 31) && bound < 2f64.powi(31))
                        .then(|| vector_requant(node.op.activation(), fm, fmts[node.output], arith, acc_bits[i]))
                        .flatten();
                    requant.map_or(QNode::Plain, |requant| QNode::Add { shifts, requant })
                }
                _ => QNode::Plain,
            };
            nodes.push(q);
        }
        let narrow = fmts.iter().all(|f| {
            let (lo, hi) = f.code_range(arith.range);
            i32::try_from(lo).is_ok() && i32::try_from(hi).is_ok()
        });
        Ok(FixedEngine { graph, arith, isa, fmts, acc_bits, nodes, narrow })
    }

    pub fn input_format(&self) -> Format {
        self.fmts[self.graph.input]
    }

    /// The format of every value.
    pub fn formats(&self) -> &[Format] {
        &self.fmts
    }

    /// Quantize a preprocessed (f64) input into the input format.
    pub fn quantize_input<C: Code>(&self, x: &[f64], out: &mut Vec<C>) {
        quantize_on(x, self.input_format(), self.arith, out, self.isa);
    }

    /// Whether codes are stored in i32 between layers (else i64): run the graph walk on
    /// `storing::<i32>()` if so, else on `storing::<i64>()`.
    pub fn stores_i32(&self) -> bool {
        self.narrow
    }

    /// The engine storing codes as `C` between layers (i32 only where [`Self::stores_i32`]).
    pub fn storing<C: Code>(&self) -> Storing<'_, 'g, C> {
        assert!(self.narrow || C::BITS == 64, "a format of this assignment does not fit i32");
        Storing(self, PhantomData)
    }

    /// The same engine storing codes in i64 even where i32 holds them (tests compare the two).
    pub fn with_i64_storage(self) -> Self {
        FixedEngine { narrow: false, ..self }
    }

    /// Run one sample and return the integer logits.
    pub fn forward(&self, input_codes: &[i64]) -> Vec<i64> {
        self.forward_batch(&[input_codes]).remove(0)
    }

    /// Run samples as one batch (as searches and evaluations do: dense layers over every image
    /// at once, the other layers image after image in one workspace) and return each one's
    /// integer logits.
    pub fn forward_batch(&self, input_codes: &[&[i64]]) -> Vec<Vec<i64>> {
        let output = self.graph.output;
        self.run_codes(input_codes, false).into_iter().map(|mut all| std::mem::take(&mut all[output])).collect()
    }

    /// Run one sample keeping every value's codes (golden vectors, tests).
    pub fn forward_all(&self, input_codes: &[i64]) -> Vec<Vec<i64>> {
        self.run_codes(&[input_codes], true).remove(0)
    }

    /// Run samples as one batch keeping every value's codes of each (tests: each image's values
    /// in its own workspace).
    pub fn forward_all_batch(&self, input_codes: &[&[i64]]) -> Vec<Vec<Vec<i64>>> {
        self.run_codes(input_codes, true)
    }

    /// Every value's codes after a batch of samples (only the output's unless `keep`), as i64.
    fn run_codes(&self, inputs: &[&[i64]], keep: bool) -> Vec<Vec<Vec<i64>>> {
        if self.narrow {
            self.run_stored::<i32>(inputs, keep)
        } else {
            self.run_stored::<i64>(inputs, keep)
        }
    }

    fn run_stored<C: Code>(&self, inputs: &[&[i64]], keep: bool) -> Vec<Vec<Vec<i64>>> {
        let (graph, n) = (self.graph, inputs.len());
        let mut batch = Batch::new(graph);
        for (ws, codes) in batch.images(graph, n).iter_mut().zip(inputs) {
            let input: Vec<C> = codes.iter().map(|&k| C::store(k)).collect();
            ws.set(graph.input, &input);
        }
        batch.run(graph, &self.storing::<C>(), n, 0..graph.nodes.len(), keep);
        let all = |ws: &Workspace<C>| {
            super::runner::values(ws).iter().map(|v| v.iter().map(|k| k.load()).collect()).collect()
        };
        batch.images(graph, n).iter().map(all).collect()
    }

    /// Precision chosen for each node (None for nodes without parameters).
    pub fn precisions(&self) -> Vec<Option<Precision>> {
        self.kernels().into_iter().map(|k| k.map(|k| k.precision)).collect()
    }

    /// The kernel each node runs on (None for nodes without parameters): what `compute`
    /// dispatches on, so that tests can tell a path that is never taken.
    pub fn kernels(&self) -> Vec<Option<Kernel>> {
        self.nodes
            .iter()
            .map(|n| match n {
                QNode::Params(p) => {
                    let lanes = p.int.as_ref().and_then(|q| match p.precision {
                        Precision::U8 => Some(&q.u8.gathered),
                        Precision::I16 | Precision::I16Split => Some(&q.i16.gathered),
                        Precision::I16Blocks => q.blocks.first().map(|(_, w)| &w.gathered),
                        Precision::F32 | Precision::F64 | Precision::I128 => None,
                    });
                    let gathered = lanes.is_some_and(|g| !g.is_empty());
                    let masked = p.int.as_ref().is_some_and(|q| q.masked.is_some());
                    let permuted = p.int.as_ref().is_some_and(|q| q.permuted.is_some());
                    Some(Kernel { precision: p.precision, depthwise: p.depthwise, gathered, masked, permuted })
                }
                QNode::Add { .. } | QNode::Plain => None,
            })
            .collect()
    }

    /// Whether each node's requantization is the vectorized i32 epilogue (parameterised layers
    /// and residual Adds; false for every other node).
    pub fn vector_epilogues(&self) -> Vec<bool> {
        self.nodes
            .iter()
            .map(|n| match n {
                QNode::Params(p) => p.int.as_ref().is_some_and(|q| q.narrow.is_some() || q.wide.is_some()),
                QNode::Add { .. } => true,
                QNode::Plain => false,
            })
            .collect()
    }

    /// The instruction set the kernels run on.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Bound the accumulator (if the layer has a width), apply the fused activation on the
    /// exact value, and requantize into the output format.
    fn finish(&self, idx: usize, acc: i128, frac: i32, out: Format, act: Activation) -> i64 {
        let acc = match self.acc_bits[idx] {
            Some(bits) => {
                let accf = Format::new(bits, frac, true);
                let plain = Arith { range: crate::fixed::RangeMode::TwosComplement, ..self.arith };
                i128::from(fit(acc, accf, plain))
            }
            None => acc,
        };
        match act {
            Activation::None => requantize(acc, frac, out, self.arith),
            Activation::Relu => requantize(acc.max(0), frac, out, self.arith),
            Activation::Clip { min, max } => {
                // The clip bounds are reals: compare exactly in the accumulator's scale.
                let v = acc as f64 * (2.0f64).powi(-frac);
                if v < min {
                    quantize(min, out, self.arith)
                } else if v > max {
                    quantize(max, out, self.arith)
                } else {
                    requantize(acc, frac, out, self.arith)
                }
            }
        }
    }

    /// `round(sum * 2^-frac_in / count)` into `out` (exact mean of a pooling window).
    fn mean(&self, sum: i128, count: usize, frac_in: i32, out: Format) -> i64 {
        let d = out.frac - frac_in;
        let (num, den) = if d >= 0 {
            (shl_saturating(sum, d as u32), count as i128)
        } else if -d < 100 {
            (sum, (count as i128) << (-d))
        } else {
            (0, 1)
        };
        fit(round_div(num, den, self.arith.rounding), out, self.arith)
    }

    /// Convolve one image exactly in the carrier type `G`, then finish every output.
    fn conv<G: Carrier, C: Code>(&self, idx: usize, node: &Node, input: &[C], s: &mut Scratch, out: &mut Vec<C>) {
        let QNode::Params(p) = &self.nodes[idx] else { unreachable!("conv without parameters") };
        let w = G::weights(p);
        let geom = conv_geom(self.graph, node);
        let (col, acc) = G::scratch(s);
        let layout = if p.depthwise {
            depthwise(&geom, input, w, |k| G::from_code(k.load()), self.isa, col, acc)
        } else {
            acc.resize(geom.out_c * geom.pixels(), G::default());
            conv_image(&geom, input, w, |k| G::from_code(k.load()), col, acc);
            SumLayout::dense(geom.pixels())
        };
        self.finish_rows(idx, node, p, layout, acc, G::to_i128, out);
    }

    /// Finish the real outputs of rows of raw sums (one row per output channel, laid out as
    /// `layout`) on the scalar path.
    #[allow(clippy::too_many_arguments)]
    fn finish_rows<A: Copy, C: Code>(
        &self,
        idx: usize,
        node: &Node,
        p: &QParams,
        layout: SumLayout,
        acc: &[A],
        to_i128: impl Fn(A) -> i128,
        out: &mut Vec<C>,
    ) {
        let (of, act) = (self.fmts[node.output], node.op.activation());
        // Scratch sums may run on past the layer's rows (see `scratch_prefix`).
        for (row, seg) in layout.real(&acc[..p.bias_acc.len() * layout.per_row]) {
            let (bias, frac) = (p.bias_acc[row], p.frac_acc[row]);
            out.extend(seg.iter().map(|&a| C::store(self.finish(idx, to_i128(a) + bias, frac, of, act))));
        }
    }
}

impl FixedEngine<'_> {
    /// A dense layer as a matrix-vector product in the carrier type `G`.
    fn dense<G: Carrier, C: Code>(&self, idx: usize, node: &Node, input: &[C], s: &mut Scratch, out: &mut Vec<C>) {
        let (QNode::Params(p), Op::Dense(d)) = (&self.nodes[idx], &node.op) else { unreachable!("dense layer") };
        let (x, acc) = G::scratch(s);
        x.clear();
        x.extend(input.iter().map(|&k| G::from_code(k.load())));
        acc.resize(d.out_features, G::default());
        G::gemm(d.out_features, d.in_features, 1, G::weights(p), x, acc);
        self.finish_rows(idx, node, p, SumLayout::dense(1), acc, G::to_i128, out);
    }
}

/// The integer carriers (chosen only where `IntParams` exist).
impl FixedEngine<'_> {
    fn conv_int<L: EngineLane, C: Code>(
        &self,
        idx: usize,
        node: &Node,
        p: &QParams,
        input: &[C],
        s: &mut Scratch,
        out: &mut Vec<C>,
    ) {
        let q = p.int.as_ref().expect("integer parameters");
        let geom = conv_geom(self.graph, node);
        if let Some((taps, w)) = &q.masked {
            // The codes fit i16 (checked when the kernel was built).
            let codes = scratch_prefix(&mut s.i16, input.len());
            convert(input, codes, |k| k.load() as i16, self.isa);
            let layout = taps.run(codes, w, &mut s.i32);
            return self.finish_i32(idx, node, p, layout, out, &s.i32);
        }
        if p.depthwise {
            let layout = depthwise(&geom, input, &q.dw, |x| x.load() as i32, self.isa, &mut s.i32_b, &mut s.i32);
            return self.finish_i32(idx, node, p, layout, out, &s.i32);
        }
        let mut sums = std::mem::take(&mut s.i32);
        // Lane codes `k + offset` (see `IntParams::u8_offset`); the padding is a zero input's.
        let off = q.u8_offset;
        let layout = match &q.permuted {
            Some(bytes) => self.permuted_sums(&geom, bytes, input, off, &q.u8, s, &mut sums),
            None => self.conv_sums(&geom, input, |k| L::code(k.load() + off), L::code(off), L::params(q), s, &mut sums),
        };
        self.finish_i32(idx, node, p, layout, out, &sums);
        s.i32 = sums;
    }

    /// A convolution's exact sums `[out_c][virtual columns]` on the packed GEMM, its input codes
    /// taken through `code`. Reads runs of the input's stride phases (see `Phases`): no im2col
    /// pass at all.
    #[allow(clippy::too_many_arguments)]
    fn conv_sums<L: EngineLane, C: Code>(
        &self,
        geom: &ConvGeom,
        input: &[C],
        code: impl Fn(C) -> L,
        pad: L,
        w: &LaneParams<L>,
        s: &mut Scratch,
        sums: &mut Vec<i32>,
    ) -> SumLayout {
        let ph = w.phases.as_ref().expect("a convolution's phases");
        ph.lay(geom, input, code, pad, self.isa, L::scratch(s).0);
        self.phase_sums(geom, ph, w, s, sums, false)
    }

    /// [`FixedEngine::conv_sums`] on the u8 x i8 carrier with the input laid out by byte
    /// permutes (`bytes`: its phases, or its gathered runs where the layer's GEMM reads those),
    /// from the codes `input` taken `+ off`.
    #[allow(clippy::too_many_arguments)]
    fn permuted_sums<C: Code>(
        &self,
        geom: &ConvGeom,
        bytes: &BytePermute,
        input: &[C],
        off: i64,
        w: &LaneParams<u8>,
        s: &mut Scratch,
        sums: &mut Vec<i32>,
    ) -> SumLayout {
        let ph = w.phases.as_ref().expect("a convolution's phases");
        let gathered = !w.gathered.is_empty();
        // The permutes read the codes as u8 lanes, and a window's worth past them.
        let (src, dst) = if gathered { (&mut s.u8, &mut s.u8_c) } else { (&mut s.u8_c, &mut s.u8) };
        let src = scratch_prefix(src, input.len() + BytePermute::SOURCE_SLACK);
        convert(input, src, |k| u8::code(k.load() + off), self.isa);
        // What the GEMM reads (the phases' slack of discarded columns, or a panel past the
        // gathered runs) and the vector the permutes write past their layout.
        let len = if gathered { bytes.laid_len() + int16::NR } else { ph.laid_len(geom) };
        bytes.lay(src, u8::code(off), scratch_prefix(dst, len.max(bytes.laid_len() + BytePermute::WRITE_SLACK)));
        self.phase_sums(geom, ph, w, s, sums, gathered)
    }

    /// The sums over the input taps `w` holds of a convolution whose input phases `ph` are in
    /// `L`'s code scratch.
    fn phase_sums<L: EngineLane>(
        &self,
        geom: &ConvGeom,
        ph: &Phases,
        w: &LaneParams<L>,
        s: &mut Scratch,
        sums: &mut Vec<i32>,
        laid_gathered: bool,
    ) -> SumLayout {
        let og = geom.out_c / geom.groups;
        let (codes, cols, gathered) = L::gemm_scratch(s);
        let gather = !w.gathered.is_empty();
        let n = if gather { geom.pixels() } else { ph.n };
        let sums = scratch_prefix(sums, geom.out_c * n);
        for (grp, (wts, runs)) in w.packed.iter().zip(&w.runs).enumerate() {
            if laid_gathered {
                // Every group's runs are already gathered, group after group.
                int16::pack_runs(&w.gathered, n, &gathered[grp * runs.len() * n..], cols, self.isa);
            } else if gather {
                // The packer reads whole panels: a panel's worth of slack after the last run.
                ph.gather(geom, codes, runs, int16::NR, gathered);
                int16::pack_runs(&w.gathered, n, gathered, cols, self.isa);
            } else {
                int16::pack_runs(runs, n, codes, cols, self.isa);
            }
            int16::gemm(wts, n, cols, &mut sums[grp * og * n..(grp + 1) * og * n], self.isa);
        }
        if gather {
            SumLayout::dense(n)
        } else {
            ph.layout(geom)
        }
    }

    /// A conv or dense layer whose sums leave i32, on the i16 kernels in passes whose sums fit
    /// it, added up in i64: each 8-bit digit of the input codes over every tap
    /// ([`Precision::I16Split`]: `k = 256 * (k >> 8) + (k & 255)`, arithmetic shift), or the
    /// codes over each block of taps ([`Precision::I16Blocks`]).
    fn wide<C: Code>(&self, idx: usize, node: &Node, p: &QParams, input: &[C], s: &mut Scratch, out: &mut Vec<C>) {
        let q = p.int.as_ref().expect("integer parameters");
        let fan_in = self.graph.fan_in(node);
        let passes: Vec<Pass> = match p.precision {
            Precision::I16Split => vec![
                Pass { shift: 0, mask: 0xff, taps: 0..fan_in, w: &q.i16, weight: 0 },
                Pass { shift: 8, mask: -1, taps: 0..fan_in, w: &q.i16, weight: 8 },
            ],
            _ => {
                q.blocks.iter().map(|(taps, w)| Pass { shift: 0, mask: -1, taps: taps.clone(), w, weight: 0 }).collect()
            }
        };
        let mut sums = std::mem::take(&mut s.i32);
        let mut acc = std::mem::take(&mut s.i64);
        let mut layout = SumLayout::dense(1);
        let mut phases = None;
        for (i, Pass { shift, mask, taps, w, weight }) in passes.into_iter().enumerate() {
            let digit = move |k: C| ((k.load() >> shift) & mask) as i16;
            // The codes each pass reads: the blocks share one conversion, each digit has its own.
            let fresh = i == 0 || p.precision == Precision::I16Split;
            layout = match &node.op {
                Op::Dense(d) => {
                    if fresh {
                        s.i16.resize(input.len(), 0);
                        convert(input, &mut s.i16, digit, self.isa);
                    }
                    sums.resize(d.out_features, 0);
                    int16::gemv(taps.len(), &w.dense, &s.i16[taps], &mut sums, self.isa);
                    SumLayout::dense(1)
                }
                _ => {
                    let geom = conv_geom(self.graph, node);
                    if fresh {
                        phases = Some(Phases::new(&geom, input, digit, 0, self.isa, &mut s.i16));
                    }
                    let ph = phases.as_ref().expect("phases of the first pass");
                    self.phase_sums(&geom, ph, w, s, &mut sums, false)
                }
            };
            let sums = &sums[..p.bias_acc.len() * layout.per_row];
            if i == 0 {
                acc.clear();
                acc.extend(sums.iter().map(|&x| i64::from(x) << weight));
            } else {
                acc.iter_mut().zip(sums).for_each(|(a, &x)| *a += i64::from(x) << weight);
            }
        }
        if let Some(e) = &q.wide {
            e.apply(&acc, layout, out, self.isa);
        } else {
            self.finish_rows(idx, node, p, layout, &acc, i128::from, out);
        }
        (s.i32, s.i64) = (sums, acc);
    }

    /// A dense layer on an integer carrier for one image or several (their codes side by side,
    /// one batched product).
    fn dense_images<L: EngineLane, C: Code>(
        &self,
        idx: usize,
        node: &Node,
        p: &QParams,
        inputs: &[&[C]],
        s: &mut Scratch,
        outs: &mut [Vec<C>],
    ) {
        let (q, Op::Dense(d)) = (p.int.as_ref().expect("integer parameters"), &node.op) else { unreachable!("dense") };
        let (k, m) = (d.in_features, d.out_features);
        let (codes, _, sums) = L::scratch(s);
        codes.resize(inputs.len() * k, L::default());
        let off = q.u8_offset;
        for (input, dst) in inputs.iter().zip(codes.chunks_exact_mut(k)) {
            convert(input, dst, |k| L::code(k.load() + off), self.isa);
        }
        sums.resize(inputs.len() * m, 0);
        int16::gemv_images(k, m, &L::params(q).dense, codes, sums, self.isa);
        for (out, sums) in outs.iter_mut().zip(s.i32.chunks_exact(m)) {
            self.finish_i32(idx, node, p, SumLayout::dense(1), out, sums);
        }
    }

    /// Finish i32 sums, one row per channel laid out as `layout`: vectorized in the common case.
    fn finish_i32<C: Code>(
        &self,
        idx: usize,
        node: &Node,
        p: &QParams,
        layout: SumLayout,
        out: &mut Vec<C>,
        acc: &[i32],
    ) {
        let q = p.int.as_ref().expect("integer parameters");
        match &q.narrow {
            Some(e) => e.apply(acc, layout, out, self.isa),
            None => {
                debug_assert_eq!(q.u8_offset, 0, "offset codes are only taken with the vectorized epilogue");
                self.finish_rows(idx, node, p, layout, acc, i128::from, out)
            }
        }
    }
}

/// The exact sum of `codes`: in i64 (it vectorizes) wherever that cannot overflow, which is
/// always for fewer than 2^31 codes of at most 32 bits.
fn code_sum<C: Code>(codes: &[C]) -> i128 {
    if codes.len() < 1 << 31 {
        i128::from(codes.iter().map(|&k| k.load()).sum::<i64>())
    } else {
        codes.iter().map(|&k| i128::from(k.load())).sum()
    }
}

/// One GEMM pass of a wide layer: input codes `(k >> shift) & mask` over taps `taps` against
/// the weights `w`, its sums weighing `2^weight`.
struct Pass<'a> {
    shift: u32,
    mask: i64,
    taps: std::ops::Range<usize>,
    w: &'a LaneParams<i16>,
    weight: u32,
}

/// `quantize` every real of `x` into `f`, appended to `out`, on instruction set `isa` (one the
/// machine has).
fn quantize_on<C: Code>(x: &[f64], f: Format, arith: Arith, out: &mut Vec<C>, isa: Isa) {
    assert!(isa.supported(), "{isa:?} is not available on this machine");
    // SAFETY (both): the machine has the instruction set (checked); the body is safe code
    // compiled for it, where rounding is one instruction instead of a library call.
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => unsafe { quantize_all_avx512(x, f, arith, out) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { quantize_all_avx2(x, f, arith, out) },
        _ => quantize_all(x, f, arith, out),
    }
}

/// A layer's weight codes ([`crate::fixed::LayerFormats::weight_codes`]) on the vectorized
/// quantizer: the same codes (a test checks), where one library rounding call per weight was
/// most of the cost of making an engine for each search candidate.
fn weight_codes(l: &crate::fixed::LayerFormats, w: &[f64], fracs: &[i32], arith: Arith, isa: Isa) -> Vec<i64> {
    l.weight_codes_with(w, fracs, |x, f, out| quantize_on(x, f, arith, out, isa))
}

/// `quantize` every real of `x` into `f`, appended to `out`.
#[inline(always)]
fn quantize_all<C: Code>(x: &[f64], f: Format, arith: Arith, out: &mut Vec<C>) {
    let scale = (2.0f64).powi(f.frac);
    let start = out.len();
    out.resize(start + x.len(), C::default());
    let out = &mut out[start..];
    if arith.overflow != Overflow::Saturate {
        // A plain loop, not an iterator chain: it inlines into the vector copies of this function.
        for (o, &v) in out.iter_mut().zip(x) {
            *o = C::store(quantize_scaled(v * scale, f, arith));
        }
        return;
    }
    // `quantize_scaled` under saturation, one loop per rounding mode, cast straight to `C` (the
    // clamped code lies within it): through i64, an f64 -> i32 conversion would not vectorize.
    let (lo, hi) = f.code_range(arith.range);
    let bounds = (scale, lo as f64, hi as f64);
    match arith.rounding {
        Rounding::HalfEven => quantize_saturating(x, bounds, f64::round_ties_even, out),
        Rounding::HalfAway => quantize_saturating(x, bounds, f64::round, out),
        Rounding::Floor => quantize_saturating(x, bounds, f64::floor, out),
        Rounding::HalfUp => quantize_saturating(x, bounds, |v| round_f64(v, Rounding::HalfUp), out),
    }
}

/// `out[i] = round(x[i] * scale)` clamped to `[lo, hi]` (within `C`).
#[inline(always)]
fn quantize_saturating<C: Code>(
    x: &[f64],
    (scale, lo, hi): (f64, f64, f64),
    round: impl Fn(f64) -> f64,
    out: &mut [C],
) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = C::from_f64(round(v * scale).clamp(lo, hi));
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn quantize_all_avx2<C: Code>(x: &[f64], f: Format, arith: Arith, out: &mut Vec<C>) {
    quantize_all(x, f, arith, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn quantize_all_avx512<C: Code>(x: &[f64], f: Format, arith: Arith, out: &mut Vec<C>) {
    quantize_all(x, f, arith, out);
}

/// A number type that carries integer codes exactly through a GEMM (within the bound checked
/// by [`choose_precision`]).
trait Carrier: Gemm + Mac {
    fn from_code(k: i64) -> Self;
    fn to_i128(self) -> i128;
    /// The (im2col, accumulator) scratch buffers of this type.
    fn scratch(s: &mut Scratch) -> (&mut Vec<Self>, &mut Vec<Self>);
    /// A layer's weight codes in this type.
    fn weights(p: &QParams) -> &[Self];
}

impl Carrier for f32 {
    fn from_code(k: i64) -> Self {
        k as f32
    }
    fn to_i128(self) -> i128 {
        // Exact integers below 2^24: the i64 conversion is exact and much cheaper.
        i128::from(self as i64)
    }
    fn scratch(s: &mut Scratch) -> (&mut Vec<Self>, &mut Vec<Self>) {
        (&mut s.f32, &mut s.f32_b)
    }
    fn weights(p: &QParams) -> &[Self] {
        &p.w_f32
    }
}

impl Carrier for f64 {
    fn from_code(k: i64) -> Self {
        k as f64
    }
    fn to_i128(self) -> i128 {
        i128::from(self as i64)
    }
    fn scratch(s: &mut Scratch) -> (&mut Vec<Self>, &mut Vec<Self>) {
        (&mut s.f64, &mut s.f64_b)
    }
    fn weights(p: &QParams) -> &[Self] {
        &p.w_f64
    }
}

impl Carrier for i128 {
    fn from_code(k: i64) -> Self {
        i128::from(k)
    }
    fn to_i128(self) -> i128 {
        self
    }
    fn scratch(s: &mut Scratch) -> (&mut Vec<Self>, &mut Vec<Self>) {
        (&mut s.i128, &mut s.i128_b)
    }
    fn weights(p: &QParams) -> &[Self] {
        &p.w_i128
    }
}

/// The engine with codes stored as `C` between layers (see [`Code`]): what the graph walk runs.
pub struct Storing<'e, 'g, C>(&'e FixedEngine<'g>, PhantomData<C>);

impl<C: Code> Engine for Storing<'_, '_, C> {
    type T = C;

    fn compute(&self, idx: usize, node: &Node, ins: &[&[C]], out: &mut Vec<C>, s: &mut Scratch) {
        self.0.compute(idx, node, ins, out, s);
    }

    /// Dense layers on the integer carriers: one batched matrix product reads their weights
    /// once for several images.
    fn by_images(&self, idx: usize, node: &Node) -> bool {
        matches!((&node.op, &self.0.nodes[idx]), (Op::Dense(_), QNode::Params(p)) if matches!(p.precision, Precision::I16 | Precision::U8))
    }

    fn compute_images(&self, idx: usize, node: &Node, ins: &[&[C]], outs: &mut [Vec<C>], s: &mut Scratch) {
        let QNode::Params(p) = &self.0.nodes[idx] else { unreachable!("dense layer") };
        match p.precision {
            Precision::I16 => self.0.dense_images::<i16, C>(idx, node, p, ins, s, outs),
            Precision::U8 => self.0.dense_images::<u8, C>(idx, node, p, ins, s, outs),
            _ => unreachable!("only integer-carrier dense layers are batched"),
        }
    }
}

impl FixedEngine<'_> {
    fn compute<C: Code>(&self, idx: usize, node: &Node, ins: &[&[C]], out: &mut Vec<C>, s: &mut Scratch) {
        let g = self.graph;
        let of = self.fmts[node.output];
        match (&node.op, &self.nodes[idx]) {
            (Op::Conv(_), QNode::Params(p)) => match p.precision {
                Precision::I16 => self.conv_int::<i16, C>(idx, node, p, ins[0], s, out),
                Precision::U8 => self.conv_int::<u8, C>(idx, node, p, ins[0], s, out),
                Precision::I16Split | Precision::I16Blocks => self.wide(idx, node, p, ins[0], s, out),
                Precision::F32 => self.conv::<f32, C>(idx, node, ins[0], s, out),
                Precision::F64 => self.conv::<f64, C>(idx, node, ins[0], s, out),
                Precision::I128 => self.conv::<i128, C>(idx, node, ins[0], s, out),
            },
            (Op::Dense(_), QNode::Params(p)) => match p.precision {
                Precision::I16 => self.dense_images::<i16, C>(idx, node, p, ins, s, std::slice::from_mut(out)),
                Precision::U8 => self.dense_images::<u8, C>(idx, node, p, ins, s, std::slice::from_mut(out)),
                Precision::I16Split | Precision::I16Blocks => self.wide(idx, node, p, ins[0], s, out),
                Precision::F32 => self.dense::<f32, C>(idx, node, ins[0], s, out),
                Precision::F64 => self.dense::<f64, C>(idx, node, ins[0], s, out),
                Precision::I128 => self.dense::<i128, C>(idx, node, ins[0], s, out),
            },
            (Op::Affine(a), QNode::Params(p)) if p.int.as_ref().is_some_and(|q| q.narrow.is_some()) => {
                // A stand-alone BatchNorm: each channel's products in i32 (the carrier's bound
                // holds for max|a| * max|w| + max|b|), then the vectorized epilogue.
                let per = ins[0].len() / a.channels;
                s.i32.resize(ins[0].len(), 0);
                for (c, (dst, src)) in s.i32.chunks_exact_mut(per).zip(ins[0].chunks_exact(per)).enumerate() {
                    let w = p.w_i128[c] as i32;
                    convert(src, dst, |x| (x.load() as i32) * w, self.isa);
                }
                self.finish_i32(idx, node, p, SumLayout::dense(per), out, &s.i32);
            }
            (Op::Affine(a), QNode::Params(p)) => {
                let w = &p.w_i128;
                let per = ins[0].len() / a.channels;
                out.extend(ins[0].iter().enumerate().map(|(i, &x)| {
                    let c = i / per;
                    C::store(self.finish(
                        idx,
                        w[c] * i128::from(x.load()) + p.bias_acc[c],
                        p.frac_acc[c],
                        of,
                        a.activation,
                    ))
                }));
            }
            (Op::Add { .. }, QNode::Add { shifts: [sa, sb], requant }) => {
                // Exact: the bound checked at construction keeps every aligned sum within i32.
                s.i32.resize(ins[0].len(), 0);
                convert(ins[0], &mut s.i32, |a| (a.load() as i32) << sa, self.isa);
                for (v, &b) in s.i32.iter_mut().zip(ins[1]) {
                    *v += (b.load() as i32) << sb;
                }
                let layout = SumLayout::dense(s.i32.len());
                int16::requant_rows(&s.i32, layout, &[0], requant, out, self.isa);
            }
            (Op::Add { activation }, _) => {
                let (fa, fb) = (self.fmts[node.inputs[0]].frac, self.fmts[node.inputs[1]].frac);
                let fm = fa.max(fb);
                out.extend(ins[0].iter().zip(ins[1]).map(|(&a, &b)| {
                    let sum = shl_saturating(i128::from(a.load()), (fm - fa) as u32)
                        + shl_saturating(i128::from(b.load()), (fm - fb) as u32);
                    C::store(self.finish(idx, sum, fm, of, *activation))
                }));
            }
            (Op::Concat, _) => {
                // Each input into the output's format: copied where that changes no code, else
                // on the vectorized epilogue (no bias, no activation) in its common case.
                let range = self.arith.range;
                for (x, &v) in ins.iter().zip(&node.inputs) {
                    let fi = self.fmts[v];
                    let ((lo, hi), (out_lo, out_hi)) = (fi.code_range(range), of.code_range(range));
                    let requant = vector_requant::<C>(Activation::None, fi.frac, of, self.arith, None);
                    if fi.frac == of.frac && out_lo <= lo && hi <= out_hi {
                        out.extend_from_slice(x);
                    } else if let (Some(rq), false) = (requant, x.is_empty()) {
                        int16::requant_rows(x, SumLayout::dense(x.len()), &[C::default()], &rq, out, self.isa);
                    } else {
                        requantize_codes(x, fi.frac, of, self.arith, C::store, out);
                    }
                }
            }
            (Op::AvgPool { window, count_include_pad }, _) => {
                let o = g.shape(node.output);
                let fi = self.fmts[node.inputs[0]].frac;
                out.resize(g.values[node.output].numel(), C::default());
                pool_windows(ins[0], g.shape(node.inputs[0]), window, [o[1], o[2]], |c, i, vals, padded| {
                    let n = if *count_include_pad { padded } else { vals.len() };
                    let sum = code_sum(vals);
                    out[c * o[1] * o[2] + i] = C::store(self.mean(sum, n, fi, of));
                });
            }
            (Op::GlobalAvgPool, _) => {
                let shape = g.shape(node.inputs[0]);
                let hw = shape[1] * shape[2];
                let fi = self.fmts[node.inputs[0]].frac;
                out.extend(ins[0].chunks(hw).map(|ch| C::store(self.mean(code_sum(ch), hw, fi, of))));
            }
            (Op::Activation(act), _) => {
                // Unfused: the output keeps the input's format; bounds are rounded into it.
                let (lo, hi) = match act {
                    Activation::None => (i64::MIN, i64::MAX),
                    Activation::Relu => (0, i64::MAX),
                    // Bounds are constants: saturate them into the format even under wrap, so
                    // that a bound outside the range cannot wrap below the other one.
                    Activation::Clip { min, max } => {
                        let sat = Arith { overflow: crate::fixed::Overflow::Saturate, ..self.arith };
                        (quantize(*min, of, sat), quantize(*max, of, sat))
                    }
                };
                out.extend(ins[0].iter().map(|&k| C::store(k.load().clamp(lo, hi))));
            }
            (Op::Conv(_) | Op::Dense(_) | Op::Affine(_), _) => unreachable!("{} without parameters", node.op.kind()),
            (Op::MaxPool(_) | Op::GlobalMaxPool | Op::Flatten, _) => unreachable!("handled by the runner"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixed::{LayerFormats, Overflow, RangeMode};

    /// The engine's weight codes equal `LayerFormats::weight_codes` (the export's) on every
    /// instruction set, rounding mode, overflow and range, per-channel offsets included: ties,
    /// values past the range (saturated or wrapped) and a code range past i32.
    #[test]
    fn weight_codes_equal_the_layers_codes() {
        let w: Vec<f64> = (0..96)
            .map(|i| (i as f64 - 48.0) * 0.37 + [0.0, 0.5, -0.5, 1e-9][i % 4] / 64.0)
            .chain([3e12, -3e12])
            .collect();
        let fracs = [6, 5, -1, 0, 9, 3, 2];
        for isa in [Isa::Baseline, Isa::Avx2, Isa::Avx512Vnni].into_iter().filter(|i| i.supported()) {
            for rounding in [Rounding::HalfEven, Rounding::HalfUp, Rounding::Floor, Rounding::HalfAway] {
                for overflow in [Overflow::Saturate, Overflow::Wrap] {
                    for range in [RangeMode::TwosComplement, RangeMode::Symmetric] {
                        for (j, (bits, signed)) in
                            [(4, true), (8, true), (16, true), (8, false), (40, true)].into_iter().enumerate()
                        {
                            let arith = Arith { rounding, overflow, range };
                            let f = Format { bits, frac: 0, signed };
                            let l = LayerFormats {
                                node: 0,
                                weights: Some(f),
                                per_channel: true,
                                bias: Some(f),
                                output: f,
                                accumulator: None,
                            };
                            let fracs = &fracs[..[1, 2, 7][j % 3]];
                            let w = &w[..w.len() / fracs.len() * fracs.len()];
                            assert_eq!(
                                weight_codes(&l, w, fracs, arith, isa),
                                l.weight_codes(w, fracs, arith),
                                "{isa:?} {arith:?} {f:?}"
                            );
                        }
                    }
                }
            }
        }
    }
}
