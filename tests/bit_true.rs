//! The integer engine against an independent float64 fake-quantization reference
//! (docs/fixed-point.md, "The test oracle"): on random small nets with random
//! formats, rounding and overflow modes, every tensor must agree bit for bit.

mod common;

use common::{inputs_f32, inputs_f64, pixel_over_255, shipped_model, shipped_test_data, Builder, SHIPPED_MODELS};
use proptest::prelude::*;
use qdse::eval::calibrate::{activation_format, param_format, uniform, Kind, Ranges, UniformSpec};
use qdse::eval::fixed::{Carriers, FixedEngine, Precision};
use qdse::eval::kernels::Isa;
use qdse::fixed::{Arith, Assignment, Format, LayerFormats, Overflow, RangeMode, Rounding};
use qdse::model::ir::Conv;
use qdse::model::{Activation, Graph, Op, Window};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

// ---------- the reference: plain f64 arithmetic on real values, written independently ----------

fn ref_round(v: f64, mode: Rounding) -> f64 {
    match mode {
        Rounding::HalfEven => v.round_ties_even(),
        Rounding::HalfUp => (v + 0.5).floor(),
        Rounding::Floor => v.floor(),
        Rounding::HalfAway => v.round(),
    }
}

fn ref_range(f: Format, range: RangeMode) -> (f64, f64) {
    let b = f.bits as i32;
    if !f.signed {
        return (0.0, 2f64.powi(b) - 1.0);
    }
    let hi = 2f64.powi(b - 1) - 1.0;
    match range {
        RangeMode::TwosComplement => (-hi - 1.0, hi),
        RangeMode::Symmetric => (-hi, hi),
    }
}

/// Integer (as f64) into range: saturate or wrap.
fn ref_fit(k: f64, f: Format, a: Arith) -> f64 {
    let (lo, hi) = ref_range(f, a.range);
    match a.overflow {
        Overflow::Saturate => k.clamp(lo, hi),
        Overflow::Wrap => {
            let m = 2f64.powi(f.bits as i32);
            let mut w = k.rem_euclid(m);
            if f.signed && w >= m / 2.0 {
                w -= m;
            }
            w.clamp(lo, hi)
        }
    }
}

/// Fake quantization: the real value after quantizing x into f.
fn q(x: f64, f: Format, a: Arith) -> f64 {
    let scale = 2f64.powi(f.frac);
    ref_fit(ref_round(x * scale, a.rounding), f, a) / scale
}

fn act(x: f64, act: Activation) -> f64 {
    match act {
        Activation::None => x,
        Activation::Relu => x.max(0.0),
        Activation::Clip { min, max } => x.clamp(min, max),
    }
}

/// A layer's output from its exact accumulator value (real) at frac_acc.
fn ref_finish(acc: f64, frac_acc: i32, acc_bits: Option<u32>, a_act: Activation, out: Format, a: Arith) -> f64 {
    let acc = match acc_bits {
        Some(bits) => {
            let plain = Arith { range: RangeMode::TwosComplement, ..a };
            let s = 2f64.powi(frac_acc);
            ref_fit(acc * s, Format::new(bits, frac_acc, true), plain) / s
        }
        None => acc,
    };
    q(act(acc, a_act), out, a)
}

/// Quantized parameters (reals) of one layer: the weights, the bias aligned to the
/// accumulator's frac, and that frac for each output channel.
type RefParams = Vec<Option<(Vec<f64>, Vec<f64>, Vec<i32>)>>;

/// Each output channel's weight offset, computed here from the definition (docs/fixed-point.md,
/// "Per-channel weight offsets"): the layer's frac, plus under per-channel offsets the integer
/// bits the channel's largest magnitude needs fewer than the layer's, capped at 64.
fn ref_weight_fracs(w: &[f64], channels: usize, frac: i32, per_channel: bool) -> Vec<i32> {
    let int_bits = |m: f64| if m > 0.0 { m.log2().ceil() as i32 } else { 0 };
    let whole = w.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let per = w.len() / channels;
    (0..channels)
        .map(|c| {
            let m = w[c * per..(c + 1) * per].iter().fold(0.0f64, |m, x| m.max(x.abs()));
            match per_channel && m > 0.0 {
                true => (frac + int_bits(whole) - int_bits(m)).min(64),
                false => frac,
            }
        })
        .collect()
}

/// The quantized parameters of every node (None for nodes without parameters).
fn ref_params(g: &Graph, asg: &Assignment) -> RefParams {
    let a = asg.arith;
    let fmts = asg.value_formats(g);
    g.nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let (w, b) = n.op.params()?;
            let l = asg.layer_of(i).unwrap();
            let (wf, bf) = (l.weights.unwrap(), l.bias.unwrap());
            let wfr = ref_weight_fracs(w, b.len(), wf.frac, l.per_channel);
            let per = w.len() / b.len();
            let wq: Vec<f64> =
                w.iter().enumerate().map(|(j, &v)| q(v, Format { frac: wfr[j / per], ..wf }, a)).collect();
            let fa: Vec<i32> = wfr.iter().map(|f| fmts[n.inputs[0]].frac + f).collect();
            let bq: Vec<f64> = b
                .iter()
                .zip(&fa)
                .map(|(&v, &fa)| {
                    let v = q(v, bf, a);
                    if bf.frac > fa {
                        ref_round(v * 2f64.powi(fa), a.rounding) / 2f64.powi(fa)
                    } else {
                        v
                    }
                })
                .collect();
            Some((wq, bq, fa))
        })
        .collect()
}

/// The exact sums of products of a Conv (without the bias) on the real input `x`, per output
/// element: the weights `wq` are reals on their format's grid.
fn ref_conv_sums(c: &Conv, x: &[f64], is: &[usize], os: &[usize], wq: &[f64]) -> Vec<f64> {
    let (ic, ih, iw) = (is[0], is[1], is[2]);
    let (oc, oh, ow) = (os[0], os[1], os[2]);
    let cg = ic / c.groups;
    let og = oc / c.groups;
    let [kh, kw] = c.window.kernel;
    let [dy, dx] = c.window.dilation;
    let [sy, sx] = c.window.stride;
    let (pt, pl) = (c.window.pads[0] as isize, c.window.pads[1] as isize);
    // Every product is a multiple of 2^-fa and every sum stays far below
    // 2^53 steps, so f64 sums are exact and their order is free: loop over
    // the weights and sweep the output plane (much faster on real models).
    let mut sums = vec![0.0; oc * oh * ow];
    for o in 0..oc {
        let grp = o / og;
        let plane = &mut sums[o * oh * ow..(o + 1) * oh * ow];
        for ci in 0..cg {
            let cin = grp * cg + ci;
            let xp = &x[cin * ih * iw..(cin + 1) * ih * iw];
            for ky in 0..kh {
                for kx in 0..kw {
                    let wv = wq[((o * cg + ci) * kh + ky) * kw + kx];
                    // Output columns ox whose input column ox*sx + kx*dx - pl
                    // lies inside the row: lo..hi.
                    let first = pl - (kx * dx) as isize; // ox*sx >= first
                    let last = iw as isize - 1 + pl - (kx * dx) as isize; // ox*sx <= last
                    let lo = (first.max(0) as usize).div_ceil(sx);
                    let hi = if last < 0 { 0 } else { (last as usize / sx + 1).min(ow) };
                    if lo >= hi {
                        continue;
                    }
                    let ix0 = (lo * sx) as isize - first; // >= 0
                    for oy in 0..oh {
                        let iy = (oy * sy + ky * dy) as isize - pt;
                        if iy < 0 || iy >= ih as isize {
                            continue;
                        }
                        let row = &xp[iy as usize * iw..(iy as usize + 1) * iw];
                        let out = &mut plane[oy * ow + lo..oy * ow + hi];
                        if sx == 1 {
                            let src = &row[ix0 as usize..ix0 as usize + out.len()];
                            for (acc, &xv) in out.iter_mut().zip(src) {
                                *acc += xv * wv;
                            }
                        } else {
                            let src = row[ix0 as usize..].iter().step_by(sx);
                            for (acc, &xv) in out.iter_mut().zip(src) {
                                *acc += xv * wv;
                            }
                        }
                    }
                }
            }
        }
    }
    sums
}

/// A max or average pool on the real input `x` (an average rounded into `of`).
fn ref_pool(op: &Op, w: &Window, x: &[f64], is: &[usize], os: &[usize], of: Format, a: Arith) -> Vec<f64> {
    let incl = matches!(op, Op::AvgPool { count_include_pad: true, .. });
    let mut y = Vec::new();
    for c in 0..is[0] {
        for oy in 0..os[1] {
            for ox in 0..os[2] {
                let mut vs = Vec::new();
                let mut padded = 0;
                for ky in 0..w.kernel[0] {
                    for kx in 0..w.kernel[1] {
                        let iy = (oy * w.stride[0] + ky) as isize - w.pads[0] as isize;
                        let ix = (ox * w.stride[1] + kx) as isize - w.pads[1] as isize;
                        if iy < (is[1] + w.pads[2]) as isize && ix < (is[2] + w.pads[3]) as isize {
                            padded += 1;
                        }
                        if iy >= 0 && ix >= 0 && (iy as usize) < is[1] && (ix as usize) < is[2] {
                            vs.push(x[(c * is[1] + iy as usize) * is[2] + ix as usize]);
                        }
                    }
                }
                y.push(if matches!(op, Op::MaxPool(_)) {
                    vs.iter().cloned().fold(f64::MIN, f64::max)
                } else {
                    let cnt = if incl { padded } else { vs.len() };
                    q(vs.iter().sum::<f64>() / cnt as f64, of, a)
                });
            }
        }
    }
    y
}

/// Run the reference over the whole graph; returns every value as reals.
fn reference(g: &Graph, asg: &Assignment, input: &[f64]) -> Vec<Vec<f64>> {
    reference_with(g, asg, &ref_params(g, asg), input)
}

/// [`reference`] with the parameters quantized once by [`ref_params`] (many images, one
/// assignment).
fn reference_with(g: &Graph, asg: &Assignment, params: &RefParams, input: &[f64]) -> Vec<Vec<f64>> {
    let a = asg.arith;
    let fmts = asg.value_formats(g);
    let mut vals: Vec<Vec<f64>> = vec![Vec::new(); g.values.len()];
    vals[g.input] = input.iter().map(|&x| q(x, asg.input, a)).collect();
    for (i, n) in g.nodes.iter().enumerate() {
        let l = asg.layer_of(i);
        let of = fmts[n.output];
        let x = &vals[n.inputs[0]];
        let is = g.shape(n.inputs[0]).to_vec();
        let os = g.shape(n.output).to_vec();
        let y: Vec<f64> = match &n.op {
            Op::Conv(_) | Op::Dense(_) | Op::Affine(_) => {
                let l = l.unwrap();
                let (wq, bq, fa) = params[i].as_ref().unwrap();
                // `c`: the output channel, whose accumulator offset the accumulator width uses.
                let fin = |acc: f64, c: usize| ref_finish(acc, fa[c], l.accumulator, n.op.activation(), of, a);
                match &n.op {
                    Op::Conv(c) => {
                        let sums = ref_conv_sums(c, x, &is, &os, wq);
                        let plane = os[1] * os[2];
                        sums.iter().enumerate().map(|(i, &acc)| fin(acc + bq[i / plane], i / plane)).collect()
                    }
                    Op::Dense(d) => (0..d.out_features)
                        .map(|o| {
                            let acc: f64 = (0..d.in_features).map(|k| wq[o * d.in_features + k] * x[k]).sum();
                            fin(acc + bq[o], o)
                        })
                        .collect(),
                    Op::Affine(af) => {
                        let per = x.len() / af.channels;
                        x.iter().enumerate().map(|(i, &v)| fin(wq[i / per] * v + bq[i / per], i / per)).collect()
                    }
                    _ => unreachable!(),
                }
            }
            Op::Add { activation } => {
                let x2 = &vals[n.inputs[1]];
                x.iter().zip(x2).map(|(p, r)| q(act(p + r, *activation), of, a)).collect()
            }
            Op::Concat => n.inputs.iter().flat_map(|&v| vals[v].iter().map(|&e| q(e, of, a))).collect(),
            Op::MaxPool(w) | Op::AvgPool { window: w, .. } => ref_pool(&n.op, w, x, &is, &os, of, a),
            Op::GlobalAvgPool => {
                let hw = is[1] * is[2];
                x.chunks(hw).map(|c| q(c.iter().sum::<f64>() / hw as f64, of, a)).collect()
            }
            Op::GlobalMaxPool => x.chunks(is[1] * is[2]).map(|c| c.iter().cloned().fold(f64::MIN, f64::max)).collect(),
            Op::Activation(ac) => x
                .iter()
                .map(|&v| match ac {
                    Activation::Clip { min, max } => {
                        let sat = Arith { overflow: Overflow::Saturate, ..a };
                        v.clamp(q(*min, of, sat), q(*max, of, sat))
                    }
                    _ => act(v, *ac),
                })
                .collect(),
            Op::Flatten => x.clone(),
        };
        vals[n.output] = y;
    }
    vals
}

// ---------- random nets and formats ----------
//
// Every choice of a random case is a field of a spec drawn by a proptest strategy, so that a
// failure shrinks to a small net and plain formats (smaller indices, `None`, `false`, fewer bits).
// Only the real values (weights and inputs) come from a seed.

const ACTS: [Activation; 4] = [
    Activation::None,
    Activation::Relu,
    Activation::Clip { min: 0.0, max: 1.5 },
    Activation::Clip { min: -0.5, max: 1.0 },
];

/// How the plain net reduces its pooled map before the dense layers.
#[derive(Debug, Clone, Copy)]
enum Reduce {
    Flatten,
    GlobalAvg,
    GlobalMax,
}

/// The plain random net: a conv (one of five windows), an unfused activation, a
/// BatchNormalization-like affine, a depthwise conv, a residual Add, a pointwise conv, a Concat,
/// a max or average pool, a flatten or global pool, two dense layers: every `Op`.
#[derive(Debug, Clone)]
struct NetSpec {
    channels: usize,
    hw: usize,
    conv1_window: usize,
    conv1_out: usize,
    conv1_act: usize,
    unfused_act: Option<usize>,
    affine_act: Option<usize>,
    add_act: usize,
    pool_pad: usize,
    /// None: MaxPool; Some(count_include_pad): AvgPool.
    avg_pool: Option<bool>,
    reduce: Reduce,
    fc1_act: usize,
}

fn net_spec() -> impl Strategy<Value = NetSpec> {
    let reduce = prop::sample::select(vec![Reduce::Flatten, Reduce::GlobalAvg, Reduce::GlobalMax]);
    (
        (1usize..=3, 5usize..=8, 0usize..5, 2usize..=4, 0usize..3),
        (prop::option::of(1usize..3), prop::option::of(0usize..2), 0usize..2, 0usize..=1),
        (prop::option::of(any::<bool>()), reduce, 0usize..3),
    )
        .prop_map(
            |((channels, hw, conv1_window, conv1_out, conv1_act), (unfused, affine, add, pad), (avg, reduce, fc1))| {
                NetSpec {
                    channels,
                    hw,
                    conv1_window,
                    conv1_out,
                    conv1_act,
                    unfused_act: unfused,
                    affine_act: affine,
                    add_act: add,
                    pool_pad: pad,
                    avg_pool: avg,
                    reduce,
                    fc1_act: fc1,
                }
            },
        )
}

/// A stream of parameter values in [-1.5, 1.5) from `seed`.
fn params(seed: u64) -> impl FnMut() -> f64 {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    move || r.random_range(-1.5..1.5)
}

fn random_net(spec: &NetSpec, seed: u64) -> Graph {
    let mut b = Builder::new(vec![spec.channels, spec.hw, spec.hw]);
    let mut p = params(seed);
    let square =
        |k: usize, s: usize, p: usize| Window { kernel: [k, k], stride: [s, s], pads: [p; 4], dilation: [1, 1] };
    // The last: rectangular, dilated, asymmetrically padded (stride 1: the padded-runs path).
    let odd = Window { kernel: [3, 2], stride: [1, 1], pads: [1, 0, 0, 1], dilation: [2, 1] };
    let w1 = [square(3, 1, 1), square(3, 2, 1), square(1, 1, 0), square(3, 1, 0), odd][spec.conv1_window];
    let c1 = spec.conv1_out;
    let x1 = b.conv_window("conv1", 0, c1, w1, 1, ACTS[spec.conv1_act], &mut p);
    // An unfused activation (its input's format passes through).
    let x1 = match spec.unfused_act {
        Some(a) => {
            let s1 = b.shape(x1);
            b.push("act", Op::Activation(ACTS[a]), vec![x1], s1)
        }
        None => x1,
    };
    let x2 = match spec.affine_act {
        Some(a) => b.affine("bn1", x1, ACTS[a], &mut p),
        None => x1,
    };
    let x3 = b.conv("dw", x2, c1, 3, 1, 1, c1, Activation::None, &mut p);
    let s = b.shape(x2);
    let x4 = b.push("add", Op::Add { activation: ACTS[spec.add_act] }, vec![x2, x3], s.clone());
    let x5 = b.conv("pw", x4, 2, 1, 1, 0, 1, Activation::Relu, &mut p);
    let s5 = b.shape(x5);
    let x6 = b.push("cat", Op::Concat, vec![x4, x5], vec![s[0] + s5[0], s[1], s[2]]);
    let s6 = b.shape(x6);
    let pad = spec.pool_pad;
    let w = Window { kernel: [2, 2], stride: [2, 2], pads: [0, 0, pad, pad], dilation: [1, 1] };
    let [oh, ow] = w.output_hw(s6[1], s6[2]).unwrap();
    let pool = match spec.avg_pool {
        None => Op::MaxPool(w),
        Some(count_include_pad) => Op::AvgPool { window: w, count_include_pad },
    };
    let x7 = b.push("pool", pool, vec![x6], vec![s6[0], oh, ow]);
    let x8 = match spec.reduce {
        Reduce::Flatten => b.push("flat", Op::Flatten, vec![x7], vec![s6[0] * oh * ow]),
        Reduce::GlobalAvg => b.push("gap", Op::GlobalAvgPool, vec![x7], vec![s6[0], 1, 1]),
        Reduce::GlobalMax => b.push("gmp", Op::GlobalMaxPool, vec![x7], vec![s6[0], 1, 1]),
    };
    let x9 = b.dense("fc1", x8, 6, ACTS[spec.fc1_act], &mut p);
    b.dense("fc2", x9, 4, Activation::None, &mut p);
    b.g
}

/// A depthwise-separable block, the layers the direct depthwise kernel and the i32 residual Add
/// run: a stem conv, a depthwise conv (channel multiplier 1 or 2; strided, dilated, rectangular
/// or asymmetrically padded windows), a grouped conv of two channels per group (the grouped GEMM
/// path), two pointwise convs, a residual Add (of the stem where the shapes agree), global
/// average pooling and a dense layer. ReLU6-like clips are common.
#[derive(Debug, Clone)]
struct SeparableSpec {
    channels: usize,
    hw: usize,
    /// 2 or 4 channels after the stem.
    wide_stem: bool,
    /// A 3x3 stem, else 1x1.
    stem_3x3: bool,
    dw_window: usize,
    multiplier: usize,
    /// Activations of the stem, depthwise, grouped, second pointwise conv, Add and dense layer.
    acts: [usize; 6],
}

fn separable_spec() -> impl Strategy<Value = SeparableSpec> {
    (
        1usize..=3,
        5usize..=9,
        any::<bool>(),
        any::<bool>(),
        0usize..6,
        1usize..=2,
        [0usize..4, 0..4, 0..4, 0..4, 0..4, 0..4],
    )
        .prop_map(|(channels, hw, wide_stem, stem_3x3, dw_window, multiplier, acts)| SeparableSpec {
            channels,
            hw,
            wide_stem,
            stem_3x3,
            dw_window,
            multiplier,
            acts,
        })
}

fn random_separable_net(spec: &SeparableSpec, seed: u64) -> Graph {
    let mut b = Builder::new(vec![spec.channels, spec.hw, spec.hw]);
    let mut p = params(seed);
    let [stem_act, dw_act, grouped_act, pw2_act, add_act, fc_act] = spec.acts.map(|a| ACTS[a]);
    let c1 = if spec.wide_stem { 4 } else { 2 };
    let k = if spec.stem_3x3 { 3 } else { 1 };
    let stem = b.conv("stem", 0, c1, k, 1, k / 2, 1, stem_act, &mut p);
    let win = |k: [usize; 2], s: [usize; 2], pads: [usize; 4], d: [usize; 2]| Window {
        kernel: k,
        stride: s,
        pads,
        dilation: d,
    };
    let w = [
        win([3, 3], [1, 1], [1; 4], [1, 1]),
        win([3, 3], [2, 2], [1; 4], [1, 1]),
        win([3, 3], [2, 2], [0, 1, 1, 0], [1, 1]),
        win([5, 5], [1, 1], [2; 4], [1, 1]),
        win([3, 2], [2, 1], [1, 0, 0, 1], [2, 1]),
        win([2, 3], [1, 3], [0, 2, 1, 0], [1, 2]),
    ][spec.dw_window];
    let mult = spec.multiplier;
    let dw = b.conv_window("dw", stem, c1 * mult, w, c1, dw_act, &mut p);
    let grouped = b.conv("grouped", dw, c1 * mult, 3, 1, 1, c1 * mult / 2, grouped_act, &mut p);
    let pw1 = b.conv("pw1", grouped, c1, 1, 1, 0, 1, Activation::None, &mut p);
    let other = if b.shape(stem) == b.shape(pw1) { stem } else { b.conv("pw2", dw, c1, 1, 1, 0, 1, pw2_act, &mut p) };
    let s = b.shape(pw1);
    let add = b.push("add", Op::Add { activation: add_act }, vec![pw1, other], s.clone());
    let gap = b.push("gap", Op::GlobalAvgPool, vec![add], vec![s[0], 1, 1]);
    b.dense("fc", gap, 4, fc_act, &mut p);
    b.g
}

/// Bits 1..=16 and a frac from 3 below 0 to 3 above the bits.
fn format_spec() -> impl Strategy<Value = (u32, i32)> {
    (1u32..=16).prop_flat_map(|bits| (Just(bits), -3..=bits as i32 + 3))
}

/// One node's formats, used where the node has them.
#[derive(Debug, Clone)]
struct LayerSpec {
    weights: (u32, i32),
    bias: (u32, i32),
    output: (u32, i32),
    /// An unsigned output, where the value is never negative.
    unsigned: bool,
    /// A bounded accumulator (parameterised layers only).
    accumulator: Option<u32>,
    /// Per-channel weight offsets (parameterised layers only).
    per_channel: bool,
}

fn layer_spec() -> impl Strategy<Value = LayerSpec> {
    let accumulator = prop::option::weighted(0.3, 6u32..=24);
    (format_spec(), format_spec(), format_spec(), any::<bool>(), accumulator, any::<bool>()).prop_map(
        |(weights, bias, output, unsigned, accumulator, per_channel)| LayerSpec {
            weights,
            bias,
            output,
            unsigned,
            accumulator,
            per_channel,
        },
    )
}

/// The arithmetic: every rounding mode, saturate or wrap, both signed ranges.
fn arith() -> impl Strategy<Value = Arith> {
    let rounding =
        prop::sample::select(vec![Rounding::HalfEven, Rounding::HalfUp, Rounding::Floor, Rounding::HalfAway]);
    let overflow = prop::sample::select(vec![Overflow::Saturate, Overflow::Wrap]);
    let range = prop::sample::select(vec![RangeMode::TwosComplement, RangeMode::Symmetric]);
    (rounding, overflow, range).prop_map(|(rounding, overflow, range)| Arith { rounding, overflow, range })
}

/// The formats of one random case: the arithmetic, the input format and one [`LayerSpec`] per
/// node that owns a format (more than either net has).
#[derive(Debug, Clone)]
struct Formats {
    arith: Arith,
    input: Format,
    layers: Vec<LayerSpec>,
}

fn formats() -> impl Strategy<Value = Formats> {
    let input = (2u32..=10, 0i32..=10, any::<bool>()).prop_map(|(b, f, s)| Format::new(b, f, s));
    (arith(), input, prop::collection::vec(layer_spec(), 12)).prop_map(|(arith, input, layers)| Formats {
        arith,
        input,
        layers,
    })
}

/// The assignment of `f` to `g` (a signed output where the value may be negative).
fn assignment(g: &Graph, f: &Formats) -> Assignment {
    let nn = g.non_negative(true);
    let owners: Vec<_> = g.quant_layers().collect();
    assert!(owners.len() <= f.layers.len(), "{} format owners, {} layer specs", owners.len(), f.layers.len());
    let fmt = |(bits, frac): (u32, i32), signed| Format::new(bits, frac, signed);
    let layers = owners
        .into_iter()
        .zip(&f.layers)
        .map(|((i, n), s)| {
            let has = n.op.has_params();
            LayerFormats {
                node: i,
                per_channel: has && s.per_channel,
                weights: has.then(|| fmt(s.weights, true)),
                bias: has.then(|| fmt(s.bias, true)),
                output: fmt(s.output, !(nn[n.output] && s.unsigned)),
                accumulator: s.accumulator.filter(|_| has),
            }
        })
        .collect();
    let a = Assignment { arith: f.arith, input: f.input, layers };
    a.validate(g, &nn).expect("generated assignment is valid");
    a
}

/// Every carrier set this machine has: the fastest, the portable f32/f64/i128 one, each
/// instruction set of the integer carriers forced in turn (the fastest is one of them), and each
/// again without the u8 x i8 carrier (so that the i16 one runs the layers it would take).
fn carrier_sets() -> Vec<Carriers> {
    let isas: Vec<Isa> = [Isa::Avx2, Isa::Avx512Vnni].into_iter().filter(|&i| i.supported()).collect();
    let forced = isas.iter().filter(|&&i| i != Isa::best()).map(|&i| Carriers::On(i));
    let wide = isas.iter().map(|&i| Carriers::I16On(i));
    [Carriers::Fastest, Carriers::Portable].into_iter().chain(forced).chain(wide).collect()
}

/// Each input's codes in `engine`'s input format.
fn input_codes(engine: &FixedEngine, inputs: &[Vec<f64>]) -> Vec<Vec<i64>> {
    inputs
        .iter()
        .map(|x| {
            let mut c = Vec::new();
            engine.quantize_input(x, &mut c);
            c
        })
        .collect()
}

/// Every carrier set ([`carrier_sets`]) on `g` under `f` against the reference, so that each
/// kernel is checked whichever the machine would pick, on five random inputs from `seed`, each
/// alone and the five as one batch.
fn check_net(g: &Graph, f: &Formats, seed: u64) -> Result<(), TestCaseError> {
    let a = assignment(g, f);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut engines: Vec<FixedEngine> =
        carrier_sets().into_iter().map(|c| FixedEngine::with_carriers(g, &a, c).unwrap()).collect();
    // Formats of up to 16 bits: codes are stored in i32 between layers; the i64 storage (taken
    // for 32-bit unsigned formats) must give the same codes.
    prop_assert!(engines.iter().all(FixedEngine::stores_i32), "16-bit formats not stored in i32");
    engines.push(FixedEngine::new(g, &a).unwrap().with_i64_storage());
    let fmts = a.value_formats(g);
    let inputs: Vec<Vec<f64>> =
        (0..5).map(|_| (0..g.values[0].numel()).map(|_| rng.random_range(0.0..1.2)).collect()).collect();
    let wants: Vec<_> = inputs.iter().map(|x| reference(g, &a, x)).collect();
    for engine in &engines {
        let codes = input_codes(engine, &inputs);
        // Each image alone, and all five as one batch (dense layers over blocks of images),
        // keeping every value and keeping only the logits (the other layers then run in one
        // workspace shared by the images).
        let singles = codes.iter().map(|c| engine.forward_all(c));
        let slices: Vec<&[i64]> = codes.iter().map(Vec::as_slice).collect();
        let batch = engine.forward_all_batch(&slices);
        for (img, logits) in engine.forward_batch(&slices).into_iter().enumerate() {
            let f = fmts[g.output];
            let got_real: Vec<f64> = logits.iter().map(|&k| k as f64 * 2f64.powi(-f.frac)).collect();
            prop_assert_eq!(&got_real, &wants[img][g.output], "logits of image {} in a batch differ", img);
        }
        for (run, got) in singles.map(|g| ("alone", g)).chain(batch.into_iter().map(|g| ("in a batch", g))).enumerate()
        {
            let (how, got) = got;
            let want = &wants[run % inputs.len()];
            for (v, (gv, wv)) in got.iter().zip(want).enumerate() {
                let f = fmts[v];
                let got_real: Vec<f64> = gv.iter().map(|&k| k as f64 * 2f64.powi(-f.frac)).collect();
                prop_assert_eq!(
                    &got_real,
                    wv,
                    "value {} ({}) format {} differs, image {} {} (kernels {:?} on {:?})",
                    v,
                    &g.values[v].name,
                    f,
                    run % inputs.len(),
                    how,
                    engine.kernels(),
                    engine.isa()
                );
            }
        }
    }
    Ok(())
}

/// Cases of each property in a plain `cargo test`; the slow tier (`-- --ignored`, run by CI)
/// runs [`FUZZ_CASES`] more.
const QUICK_CASES: u32 = 64;
const FUZZ_CASES: u32 = 1000;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(QUICK_CASES))]
    #[test]
    fn integer_engine_equals_fake_quant_reference(net in net_spec(), f in formats(), seed in any::<u64>()) {
        check_net(&random_net(&net, seed), &f, seed)?;
    }

    /// The depthwise, grouped and residual-Add paths on every carrier set and instruction set
    /// the machine has ([`carrier_sets`]), against the reference.
    #[test]
    fn separable_nets_equal_fake_quant_reference(net in separable_spec(), f in formats(), seed in any::<u64>()) {
        check_net(&random_separable_net(&net, seed), &f, seed)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(FUZZ_CASES))]
    #[test]
    #[ignore = "slow tier: cargo test -- --ignored"]
    fn fuzz_integer_engine_equals_fake_quant_reference(net in net_spec(), f in formats(), seed in any::<u64>()) {
        check_net(&random_net(&net, seed), &f, seed)?;
    }

    #[test]
    #[ignore = "slow tier: cargo test -- --ignored"]
    fn fuzz_separable_nets_equal_fake_quant_reference(net in separable_spec(), f in formats(), seed in any::<u64>()) {
        check_net(&random_separable_net(&net, seed), &f, seed)?;
    }
}

/// The small net of the carrier tests: an 8x8 two-channel input, a strided conv1 of four
/// channels, ReLUs, a flatten head; an affine layer after conv1 with activation `affine_act`.
fn carrier_net(affine_act: Option<usize>) -> NetSpec {
    NetSpec {
        channels: 2,
        hw: 8,
        conv1_window: 1,
        conv1_out: 4,
        conv1_act: 1,
        unfused_act: None,
        affine_act,
        add_act: 1,
        pool_pad: 0,
        avg_pool: None,
        reduce: Reduce::Flatten,
        fc1_act: 1,
    }
}

/// Unsigned 8-bit activations against 6-bit weights: on every instruction set of the integer
/// carriers the machine has, the u8 x i8 carrier takes the layers whose input codes fit u8
/// (on AVX2 too: 2 * 255 * 32 keeps `vpmaddubsw`'s pair sums within i16), the i16 one takes
/// them when the u8 one is left out, and every carrier set equals the reference. A u8 path that
/// stops being taken fails here.
#[test]
fn u8_carrier_takes_unsigned_8_bit_layers_and_is_exact() {
    let g = random_net(&carrier_net(None), 11);
    let layer = LayerSpec {
        weights: (6, 4),
        bias: (8, 4),
        output: (8, 4),
        unsigned: true,
        accumulator: None,
        per_channel: false,
    };
    let f = Formats { arith: Arith::default(), input: Format::new(8, 8, false), layers: vec![layer; 12] };
    let a = assignment(&g, &f);
    for isa in [Isa::Avx2, Isa::Avx512Vnni].into_iter().filter(|i| i.supported()) {
        let on = FixedEngine::with_carriers(&g, &a, Carriers::On(isa)).unwrap().precisions();
        let u8_layers = on.iter().flatten().filter(|&&p| p == Precision::U8).count();
        // conv1 (the unsigned input), pw (after the Add + ReLU), fc1 (after the max-pool) and
        // fc2 (after fc1's ReLU); not the depthwise conv.
        assert_eq!(u8_layers, 4, "{isa:?}: {on:?}");
        let wide = FixedEngine::with_carriers(&g, &a, Carriers::I16On(isa)).unwrap().precisions();
        assert!(wide.iter().flatten().all(|&p| p == Precision::I16), "{isa:?}: {wide:?}");
    }
    check_net(&g, &f, 11).unwrap();
}

/// Unsigned 16-bit activations against 12-bit weights: every sum may leave i32, but each
/// 8-bit digit's may not, so on every instruction set of the integer carriers the machine has,
/// the split carrier takes every conv and dense layer with its vectorized i64 epilogue (a split
/// path that stops being taken fails here), the depthwise conv and the affine layer run their
/// direct i32 kernels (their bounds fit i32 with codes beyond i16), and every carrier set equals
/// the reference.
#[test]
fn split_carrier_takes_16_bit_activations_and_is_exact() {
    wide_carrier_case((12, 10), (16, 10), Format::new(16, 15, false), |op| match op {
        Op::Conv(c) if c.groups > 1 => Precision::I16,
        Op::Affine(_) => Precision::I16,
        _ => Precision::I16Split,
    });
}

/// Unsigned 13-bit activations (they fit i16) against 16-bit weights: a sum of 10 products fits
/// i32. conv1's 18 taps run on the i16 kernels in two blocks added up in i64 (one pass over the
/// products, where the split carrier takes two); fc1's 24 taps would take three short blocks, so
/// it runs split; the layers with fewer taps fit i32 outright. A blocked path that stops being
/// taken fails here, and every carrier set equals the reference.
#[test]
fn blocked_carrier_takes_i16_codes_whose_sums_leave_i32_and_is_exact() {
    wide_carrier_case((16, 14), (13, 10), Format::new(13, 12, false), |op| match op {
        Op::Conv(c) if c.in_channels == 2 => Precision::I16Blocks,
        Op::Dense(d) if d.in_features == 24 => Precision::I16Split,
        _ => Precision::I16,
    });
}

/// The net of these two tests at weights, outputs (unsigned) and input formats: every
/// parameterised layer must run on `want(op)`, a split or blocked one with the vectorized
/// epilogue.
fn wide_carrier_case(weights: (u32, i32), output: (u32, i32), input: Format, want: impl Fn(&Op) -> Precision) {
    let g = random_net(&carrier_net(Some(1)), 12);
    let layer = LayerSpec { weights, bias: (16, 10), output, unsigned: true, accumulator: None, per_channel: true };
    let f = Formats { arith: Arith::default(), input, layers: vec![layer; 12] };
    let a = assignment(&g, &f);
    for isa in [Isa::Avx2, Isa::Avx512Vnni].into_iter().filter(|i| i.supported()) {
        let engine = FixedEngine::with_carriers(&g, &a, Carriers::On(isa)).unwrap();
        let vector = engine.vector_epilogues();
        for ((node, k), vector) in g.nodes.iter().zip(engine.kernels()).zip(vector) {
            let Some(k) = k else { continue };
            let want = want(&node.op);
            assert_eq!(k.precision, want, "{isa:?}: {}", node.name);
            // Saturating, no accumulator width: the wide layers finish on the i64 epilogue.
            if matches!(want, Precision::I16Split | Precision::I16Blocks) {
                assert!(vector, "{isa:?}: {}: scalar epilogue", node.name);
            }
        }
    }
    check_net(&g, &f, 12).unwrap();
}

/// Wide formats push the conv GEMM off the f32 path onto f64 and i128; all must stay exact.
#[test]
fn wide_formats_use_exact_slower_paths() {
    let spec = NetSpec {
        channels: 2,
        hw: 7,
        conv1_window: 0,
        conv1_out: 3,
        conv1_act: 1,
        unfused_act: None,
        affine_act: Some(0),
        add_act: 1,
        pool_pad: 1,
        avg_pool: Some(false),
        reduce: Reduce::Flatten,
        fc1_act: 2,
    };
    let g = random_net(&spec, 7);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let spec = LayerSpec {
        weights: (8, 6),
        bias: (8, 6),
        output: (8, 4),
        unsigned: true,
        accumulator: None,
        per_channel: false,
    };
    let f = Formats { arith: Arith::default(), input: Format::new(8, 8, false), layers: vec![spec; 12] };
    let mut a = assignment(&g, &f);
    for l in &mut a.layers {
        l.accumulator = None;
        if let Some(w) = &mut l.weights {
            *w = Format::new(24, 20, true);
        }
        l.output = Format::new(28, 20, l.output.signed);
    }
    // A 32-bit unsigned input's codes leave i32: the engine stores every value's in i64.
    for input_format in [Format::new(20, 16, false), Format::new(32, 24, false)] {
        a.input = input_format;
        let engine = FixedEngine::new(&g, &a).unwrap();
        assert_eq!(engine.stores_i32(), input_format.bits < 32, "{input_format}");
        let precisions = engine.precisions();
        assert!(precisions.iter().flatten().any(|p| *p != Precision::F32), "{precisions:?}");
        let input: Vec<f64> = (0..g.values[0].numel()).map(|_| rng.random_range(0.0..1.0)).collect();
        let mut codes = Vec::new();
        engine.quantize_input(&input, &mut codes);
        let got = engine.forward_all(&codes);
        let want = reference(&g, &a, &input);
        let fmts = a.value_formats(&g);
        for (v, (gv, wv)) in got.iter().zip(&want).enumerate() {
            let got_real: Vec<f64> = gv.iter().map(|&k| k as f64 * 2f64.powi(-fmts[v].frac)).collect();
            assert_eq!(&got_real, wv, "value {v} (input {input_format})");
        }
    }
}

// ---------- the shipped models on real images ----------

/// Images of each shipped model's test split checked bit for bit, per assignment. The naive
/// reference costs ~18 ms per image for seq14 (13 M multiply-adds) and ~12 ms for branched on
/// one core, ~1.5 ms for lenet5, so the two big nets get fewer images to keep the whole test
/// at about 20 s on two cores.
fn shipped_images(model: &str) -> usize {
    if model.starts_with("seq14") {
        150
    } else if model.starts_with("branched") {
        200
    } else {
        500
    }
}

/// How far a random assignment strays from the no-clip 8-bit point.
struct Spread {
    bits: std::ops::RangeInclusive<u32>,
    /// Added to each no-clip frac (positive: clips large values; negative: wastes range).
    frac_offset: std::ops::RangeInclusive<i32>,
    /// An accumulator width is `full - slack` bits, where `full` = input bits + weight bits +
    /// ceil(log2 fan-in) is about the widest sum the layer can make (slack 0: rarely bounds).
    acc_slack: std::ops::RangeInclusive<u32>,
}

/// Stress: anything from 2 to 12 bits, fracs 2 steps either way, accumulators up to 12 bits
/// short. Most data saturates or wraps somewhere (accuracy near chance): corner cases.
const WILD: Spread = Spread { bits: 2..=12, frac_offset: -2..=2, acc_slack: 0..=12 };
/// Realistic: 6 to 12 bits, fracs one step either way, accumulators up to 4 bits short. The
/// network still classifies, so rounding runs on meaningful values all the way to the logits.
const MILD: Spread = Spread { bits: 6..=12, frac_offset: -1..=1, acc_slack: 0..=4 };

/// A random assignment for a real model under `arith`: every bit width and frac offset drawn
/// from `spread` around the no-clip formats, unsigned activations at random where legal, and
/// an accumulator width on ~40% of the parameterised layers.
fn random_shipped_assignment(
    g: &Graph,
    ranges: &Ranges,
    arith: Arith,
    spread: &Spread,
    rng: &mut ChaCha8Rng,
) -> Assignment {
    let act_format = |rng: &mut ChaCha8Rng, v: usize| {
        let unsigned = ranges.non_negative[v] && rng.random_bool(0.7);
        let f = activation_format(ranges, v, rng.random_range(spread.bits.clone()), unsigned);
        Format::new(f.bits, f.frac + rng.random_range(spread.frac_offset.clone()), f.signed)
    };
    let param = |rng: &mut ChaCha8Rng, i: usize, kind: Kind| {
        let f = param_format(g, i, kind, rng.random_range(spread.bits.clone()));
        Format::new(f.bits, f.frac + rng.random_range(spread.frac_offset.clone()), true)
    };
    let input = act_format(rng, g.input);
    let layers = g
        .quant_layers()
        .map(|(i, n)| {
            let has = n.op.has_params();
            LayerFormats {
                node: i,
                per_channel: has && rng.random_bool(0.5),
                weights: has.then(|| param(rng, i, Kind::Weights)),
                bias: has.then(|| param(rng, i, Kind::Bias)),
                output: act_format(rng, n.output),
                accumulator: None,
            }
        })
        .collect();
    let mut a = Assignment { arith, input, layers };
    let fmts = a.value_formats(g);
    for l in &mut a.layers {
        let n = &g.nodes[l.node];
        if let (Some(w), true) = (l.weights, rng.random_bool(0.4)) {
            let full = fmts[n.inputs[0]].bits + w.bits + (g.fan_in(n) as u32).next_power_of_two().trailing_zeros();
            l.accumulator = Some(full.saturating_sub(rng.random_range(spread.acc_slack.clone())).clamp(2, 64));
        }
    }
    a
}

/// The arithmetic of model `m`'s wild random assignment: over the six models every rounding
/// mode, both overflow modes and both range modes occur, and each architecture wraps once.
fn wild_arith(m: usize) -> Arith {
    Arith {
        rounding: [Rounding::HalfEven, Rounding::HalfUp, Rounding::Floor, Rounding::HalfAway][m % 4],
        overflow: if m % 2 == 1 { Overflow::Wrap } else { Overflow::Saturate },
        range: if m.is_multiple_of(3) { RangeMode::Symmetric } else { RangeMode::TwosComplement },
    }
}

/// The arithmetic of model `m`'s mild random assignment: saturating (a wrapped value is noise,
/// and the point of the mild run is meaningful values), every rounding and range mode.
fn mild_arith(m: usize) -> Arith {
    Arith {
        rounding: [Rounding::HalfEven, Rounding::HalfUp, Rounding::Floor, Rounding::HalfAway][(m + 2) % 4],
        overflow: Overflow::Saturate,
        range: if m.is_multiple_of(2) { RangeMode::Symmetric } else { RangeMode::TwosComplement },
    }
}

/// Runs every image through the engine (in batches) and the reference. Returns the first value of the first
/// image (in image order) where they differ, described with the model's node, value, format,
/// element and both reals, and the engine's predicted class of each image.
fn check_images(g: &Graph, a: &Assignment, engine: &FixedEngine, inputs: &[Vec<f64>]) -> (Option<String>, Vec<usize>) {
    use rayon::prelude::*;
    let fmts = a.value_formats(g);
    let params = ref_params(g, a);
    let producer = |v: usize| g.nodes.iter().find(|n| n.output == v).map_or("(graph input)", |n| n.name.as_str());
    // In batches of eight, as searches run them (dense layers over blocks of images).
    let batches: Vec<Vec<Vec<i64>>> = inputs
        .par_chunks(8)
        .map(|batch| {
            let codes = input_codes(engine, batch);
            engine.forward_all_batch(&codes.iter().map(Vec::as_slice).collect::<Vec<_>>())
        })
        .flatten_iter()
        .collect();
    let per_image: Vec<(Option<String>, usize)> = inputs
        .par_iter()
        .zip(batches)
        .enumerate()
        .map(|(img, (x, got))| {
            let want = reference_with(g, a, &params, x);
            let mismatch = got.iter().zip(&want).enumerate().find_map(|(v, (gv, wv))| {
                let f = fmts[v];
                if gv.len() != wv.len() {
                    return Some(format!(
                        "image {img}: value {v} has {} elements, the reference {}",
                        gv.len(),
                        wv.len()
                    ));
                }
                let step = 2f64.powi(-f.frac);
                let e = gv.iter().zip(wv).position(|(&k, &r)| k as f64 * step != r)?;
                Some(format!(
                    "image {img}: node '{}' value {v} '{}' format {f}: first differing element {e} of {}: \
                     engine code {} = {}, reference {}",
                    producer(v),
                    g.values[v].name,
                    gv.len(),
                    gv[e],
                    gv[e] as f64 * step,
                    wv[e]
                ))
            });
            (mismatch, common::argmax(&got[g.output]))
        })
        .collect();
    let first = per_image.iter().find_map(|(m, _)| m.clone());
    (first, per_image.into_iter().map(|(_, p)| p).collect())
}

/// Every shipped model on real test images (500 for lenet5, 200 for branched, 150 for seq14,
/// see [`shipped_images`]): at the uniform 8-bit no-clip assignment (unsigned where legal,
/// calibrated on the same images) and at two random assignments ([`WILD`], [`MILD`]), every
/// value of every image equals the float64 fake-quantization reference exactly.
#[test]
#[ignore = "slow tier: cargo test -- --ignored"]
fn shipped_models_integer_engine_equals_reference() {
    let mut failures = Vec::new();
    for (m, name) in SHIPPED_MODELS.into_iter().enumerate() {
        let g = shipped_model(name);
        let ds = shipped_test_data(name);
        let n = shipped_images(name);
        let xs = inputs_f64(&ds, n);
        assert_eq!(xs.len(), n, "{name}: images");
        let ranges = Ranges::measure(&g, &inputs_f32(&ds, n), pixel_over_255().non_negative(&ds));
        let mut rng = ChaCha8Rng::seed_from_u64(0x5eed_0000 + m as u64);
        let points = [
            ("uniform 8-bit no-clip", uniform(&g, &ranges, UniformSpec::all(8, true), Arith::default())),
            ("random wild", random_shipped_assignment(&g, &ranges, wild_arith(m), &WILD, &mut rng)),
            ("random mild", random_shipped_assignment(&g, &ranges, mild_arith(m), &MILD, &mut rng)),
        ];
        // The uniform point runs on both carrier sets: on an AVX2 machine the fastest one is
        // the i16 carrier (asserted), the portable one f32.
        let runs = points.into_iter().enumerate().flat_map(|(i, (label, a))| {
            let carriers: &[Carriers] =
                if i == 0 { &[Carriers::Fastest, Carriers::Portable] } else { &[Carriers::Fastest] };
            carriers.iter().map(move |&c| (label, a.clone(), c))
        });
        for (label, a, carriers) in runs {
            a.validate(&g, &ranges.non_negative).unwrap_or_else(|e| panic!("{name} {label}: {e}"));
            let engine = FixedEngine::with_carriers(&g, &a, carriers).unwrap();
            if label.starts_with("uniform") && carriers == Carriers::Fastest && qdse::eval::int16::available() {
                let integer = |p: &Precision| matches!(p, Precision::I16 | Precision::U8);
                assert!(engine.precisions().iter().flatten().all(integer), "{name}: 8-bit not on the integer carriers");
            }
            let t = std::time::Instant::now();
            let (mismatch, preds) = check_images(&g, &a, &engine, &xs);
            println!(
                "{name}, {label}, {carriers:?} carriers ({:?}, {} accumulator widths, precisions {:?}): {n} images \
                 in {:.1} s, accuracy {:.3}: {}",
                a.arith,
                a.layers.iter().filter(|l| l.accumulator.is_some()).count(),
                engine.precisions().iter().flatten().collect::<Vec<_>>(),
                t.elapsed().as_secs_f64(),
                qdse::eval::accuracy(&preds, &ds.labels[..n]),
                if mismatch.is_none() { "bit-true" } else { "MISMATCH" }
            );
            if let Some(msg) = mismatch {
                failures.push(format!("{name}, {label}: {msg}\nassignment:\n{}", a.to_toml(&g)));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The best instruction set of this machine, detected here independently of the engine's
/// [`Isa::best`], so that a detection that silently fails is caught.
fn detected_isa() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx2") && has!("avx512f") && has!("avx512bw") && has!("avx512vl") && has!("avx512vnni") {
            return Isa::Avx512Vnni;
        }
        if has!("avx2") {
            return Isa::Avx2;
        }
    }
    Isa::Baseline
}

/// The embedded-class nets on 100 test images each: the depthwise-separable benchmark net
/// (`models/mbv2-fashion.onnx`: depthwise 3x3, ReLU6, residual Adds) and the small ResNet
/// (`models/resnet-fashion.onnx`: residual Adds of two conv branches, each with its own format,
/// 1x1 stride-2 shortcuts). Where the machine has AVX2, the default engine at the uniform 8-bit
/// point runs on the best instruction set the machine has, every layer on the i16 carrier, every
/// depthwise conv on the direct kernel, every conv and dense layer on the vectorized epilogue,
/// and every Add on it that requantizes by a right shift: a fast path that stops being taken
/// fails here. And at that point and a mild random
/// one, every carrier set and instruction set the machine has equals the reference bit for bit.
#[test]
#[ignore = "slow tier: cargo test -- --ignored"]
fn embedded_nets_take_the_fast_paths_and_equal_reference() {
    for (name, depthwise_layers, gathered_layers) in [("mbv2-fashion", 5, 0), ("resnet-fashion", 0, 2)] {
        embedded_net_equals_reference(name, depthwise_layers, gathered_layers);
    }
}

fn embedded_net_equals_reference(name: &str, depthwise_layers: usize, gathered_layers: usize) {
    // On AVX-512 every depthwise conv reads its input through masked loads (MobileNet's five,
    // one of them strided).
    let masked_layers = if detected_isa() == Isa::Avx512Vnni { depthwise_layers } else { 0 };
    // With AVX-512 VBMI too, the u8 convs whose inputs are dealt into stride phases or
    // gathered take byte permutes: ResNet's stride-2 stem, its two 3x3 convs into 4x4 outputs
    // (gathered), its stride-2 3x3 conv from 14x14 and its two stride-2 1x1 shortcuts;
    // MobileNet's stride-2 stem (its depthwise convs are masked, its pointwise ones unpadded).
    let vbmi = detected_isa() == Isa::Avx512Vnni && is_x86_feature_detected!("avx512vbmi");
    let permuted_layers = match name {
        "resnet-fashion" if vbmi => 6,
        "mbv2-fashion" if vbmi => 1,
        _ => 0,
    };
    let (g, ds) = (shipped_model(name), shipped_test_data(name));
    let n = 100;
    let xs = inputs_f64(&ds, n);
    let ranges = Ranges::measure(&g, &inputs_f32(&ds, n), pixel_over_255().non_negative(&ds));
    let uniform8 = uniform(&g, &ranges, UniformSpec::all(8, true), Arith::default());
    let engine = FixedEngine::new(&g, &uniform8).unwrap();
    assert_eq!(engine.isa(), detected_isa());
    assert_eq!(Isa::best(), detected_isa());
    if detected_isa() >= Isa::Avx2 {
        let (kernels, vector) = (engine.kernels(), engine.vector_epilogues());
        let (mut depthwise, mut adds, mut u8_layers, mut signed_u8, mut gathered, mut masked, mut permuted) =
            (0, [0; 2], 0, 0, 0, 0, 0);
        for (i, node) in g.nodes.iter().enumerate() {
            if let Op::Conv(c) = &node.op {
                let k = kernels[i].unwrap();
                // 8-bit input codes against 8-bit weights: the u8 x i8 carrier on AVX-512 VNNI
                // (signed codes shifted by 128); on AVX2 its pair sums could saturate, so the
                // i16 one.
                let fin = engine.formats()[node.inputs[0]];
                let dw = c.groups > 1 && c.groups == c.in_channels;
                let u8_fits = fin.bits <= 8 && !dw;
                let want = if u8_fits && detected_isa() == Isa::Avx512Vnni { Precision::U8 } else { Precision::I16 };
                assert_eq!(k.precision, want, "{name}: {}", node.name);
                u8_layers += usize::from(want == Precision::U8);
                signed_u8 += usize::from(want == Precision::U8 && fin.signed);
                assert_eq!(k.depthwise, dw, "{name}: {}", node.name);
                depthwise += usize::from(k.depthwise);
                // Only ResNet's 3x3 convs into 4x4 outputs: 20 or 24 virtual columns (two
                // panels) for 16 real ones (its 1x1 stride-2 shortcut has 16 virtual columns).
                let out = g.shape(node.output);
                assert!(!k.gathered || out[1] * out[2] == 16, "{name}: {}: gathered", node.name);
                gathered += usize::from(k.gathered);
                assert!(!k.masked || k.depthwise, "{name}: {}: masked", node.name);
                masked += usize::from(k.masked);
                assert!(!k.permuted || k.precision == Precision::U8, "{name}: {}: permuted", node.name);
                permuted += usize::from(k.permuted);
            }
            if matches!(node.op, Op::Conv(_) | Op::Dense(_)) {
                assert!(vector[i], "{name}: {}: scalar epilogue", node.name);
            }
            if let Op::Add { .. } = node.op {
                // Every 8-bit Add on the vectorized epilogue, including one whose output format
                // is finer than both operands (ResNet's Add + ReLU, unsigned, one fraction bit
                // more than its signed operands): the epilogue scales its sums up (a left shift).
                let f = engine.formats();
                let finest = f[node.inputs[0]].frac.max(f[node.inputs[1]].frac);
                let output_finer = finest < f[node.output].frac;
                assert!(vector[i], "{name}: {}: scalar epilogue", node.name);
                adds[usize::from(output_finer)] += 1;
            }
        }
        assert_eq!(depthwise, depthwise_layers, "{name}: depthwise layers on the direct kernel");
        assert_eq!(gathered, gathered_layers, "{name}: convs on their gathered real columns");
        assert_eq!(masked, masked_layers, "{name}: depthwise convs on masked taps");
        assert_eq!(permuted, permuted_layers, "{name}: convs on byte permutes");
        if detected_isa() == Isa::Avx512Vnni {
            assert!(u8_layers > 0, "{name}: no layer on the u8 x i8 carrier");
            // MobileNet's expansions after a residual Add read signed codes.
            assert!(name != "mbv2-fashion" || signed_u8 > 0, "{name}: no signed input on the u8 x i8 carrier");
        }
        println!("{name}: vectorized Adds shifting right / left: {adds:?}");
    }
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed_0100);
    let mild = random_shipped_assignment(&g, &ranges, mild_arith(1), &MILD, &mut rng);
    // Residual Adds of two branches quantized differently: the random point gives them.
    let f = mild.value_formats(&g);
    let mixed = g.nodes.iter().filter(|n| matches!(n.op, Op::Add { .. }) && f[n.inputs[0]] != f[n.inputs[1]]).count();
    assert!(mixed > 0, "{name}: no Add has operands of different formats at the random point");
    let mut failures = Vec::new();
    for (label, a) in [("uniform 8-bit no-clip", uniform8), ("random mild", mild)] {
        a.validate(&g, &ranges.non_negative).unwrap_or_else(|e| panic!("{name} {label}: {e}"));
        for carriers in carrier_sets() {
            let engine = FixedEngine::with_carriers(&g, &a, carriers).unwrap();
            let (mismatch, preds) = check_images(&g, &a, &engine, &xs);
            println!(
                "{name}, {label}, {carriers:?} ({:?}): accuracy {:.3}: {}",
                engine.isa(),
                qdse::eval::accuracy(&preds, &ds.labels[..n]),
                if mismatch.is_none() { "bit-true" } else { "MISMATCH" }
            );
            if let Some(msg) = mismatch {
                failures.push(format!("{name}, {label}, {carriers:?}: {msg}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
