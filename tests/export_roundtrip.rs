//! `qdse export` round trip: export a small net with every kind of layer, then read the exported
//! files back (formats.csv and the .mem files only) and recompute every tensor with a small,
//! independent integer implementation written here. Every golden vector must match bit for bit.

mod common;

use common::Builder;
use qdse::export::{export, read_mem, ExportMeta};
use qdse::fixed::{Arith, Assignment, Format, LayerFormats, Overflow, RangeMode, Rounding};
use qdse::model::{Activation, Graph, Op, Window};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{HashMap, HashSet};
use std::path::Path;

// ---------- the network and its assignment ----------

fn net(seed: u64) -> Graph {
    let mut r = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let mut p = move || r.random_range(-1.0..1.0);
    let mut b = Builder::new(vec![2, 7, 7]);
    let c1 = b.conv("/conv1/Conv", 0, 4, 3, 2, 1, 1, Activation::Relu, &mut p);
    let dw = b.conv("/dw/Conv", c1, 4, 3, 1, 1, 4, Activation::None, &mut p);
    // conv -> ReLU -> BN: the ReLU cannot be fused into the (unfoldable) BN, so it stays a node.
    let relu = b.push("/relu/Relu", Op::Activation(Activation::Relu), vec![dw], b.shape(dw));
    let bn = b.affine("/bn/BatchNormalization", relu, Activation::None, &mut p);
    let s = b.shape(c1);
    let add = b.push("/add/Add", Op::Add { activation: Activation::Relu }, vec![c1, bn], s.clone());
    let pw = b.conv("/pw/Conv", add, 3, 1, 1, 0, 1, Activation::Relu, &mut p);
    if seed % 2 == 1 {
        // A conv without bias: the export writes zeros and has_bias = false.
        let Op::Conv(c) = &mut b.g.nodes.last_mut().unwrap().op else { unreachable!() };
        c.has_bias = false;
        c.bias.iter_mut().for_each(|x| *x = 0.0);
    }
    let cat = b.push("/cat/Concat", Op::Concat, vec![add, pw], vec![7, s[1], s[2]]);
    let w = Window { kernel: [3, 3], stride: [1, 1], pads: [1, 1, 1, 1], dilation: [1, 1] };
    let avg = b.push(
        "/avg/AveragePool",
        Op::AvgPool { window: w, count_include_pad: seed.is_multiple_of(3) },
        vec![cat],
        vec![7, 4, 4],
    );
    let w = Window { kernel: [2, 2], stride: [2, 2], pads: [0, 0, 0, 0], dilation: [1, 1] };
    let mp = b.push("/max/MaxPool", Op::MaxPool(w), vec![avg], vec![7, 2, 2]);
    let act = if seed % 3 == 1 { Activation::Relu } else { Activation::Clip { min: 0.0, max: 0.75 } };
    let clip = b.push("/clip/Clip", Op::Activation(act), vec![mp], vec![7, 2, 2]);
    let flat = b.push("/flat/Flatten", Op::Flatten, vec![clip], vec![28]);
    let act = if seed.is_multiple_of(2) { Activation::Relu } else { Activation::Clip { min: 0.0, max: 1.5 } };
    let fc1 = b.dense("/fc1/Gemm", flat, 8, act, &mut p);
    b.dense("/fc2/Gemm", fc1, 5, Activation::None, &mut p);
    b.g
}

fn assignment(g: &Graph, seed: u64, wide: bool) -> Assignment {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let arith = Arith {
        rounding: [Rounding::HalfEven, Rounding::HalfUp, Rounding::Floor, Rounding::HalfAway][seed as usize % 4],
        overflow: if seed % 3 == 1 { Overflow::Wrap } else { Overflow::Saturate },
        range: if seed % 5 == 2 { RangeMode::Symmetric } else { RangeMode::TwosComplement },
    };
    let in_bits = if wide { 16 } else { rng.random_range(4..=10) };
    let input = Format::new(in_bits, in_bits as i32 - rng.random_range(0..=2), seed % 4 != 3);
    let nn = g.non_negative(!input.signed);
    let fmt = |rng: &mut ChaCha8Rng, signed: bool, lo: u32, hi: u32| {
        let bits = if wide { rng.random_range(24..=32) } else { rng.random_range(lo..=hi) };
        Format::new(bits, bits as i32 - i32::from(signed) - rng.random_range(-1..=2), signed)
    };
    let layers = g
        .quant_layers()
        .map(|(i, n)| {
            let has = n.op.has_params();
            let unsigned = nn[n.output] && rng.random_bool(0.5);
            LayerFormats {
                node: i,
                per_channel: has && rng.random_bool(0.5),
                weights: has.then(|| fmt(&mut rng, true, 2, 10)),
                bias: has.then(|| fmt(&mut rng, true, 2, 14)),
                output: fmt(&mut rng, !unsigned, 3, 12),
                accumulator: (matches!(n.op, Op::Add { .. }) || has)
                    .then(|| rng.random_bool(0.35).then(|| rng.random_range(8..=20)))
                    .flatten()
                    .filter(|_| !wide),
            }
        })
        .collect();
    let a = Assignment { arith, input, layers };
    a.validate(g, &nn).expect("valid assignment");
    a
}

fn samples(g: &Graph, a: &Assignment, seed: u64, n: usize) -> Vec<(Vec<f64>, usize)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed + 1000);
    let lo = if a.input.signed { -1.0 } else { 0.0 };
    (0..n)
        .map(|_| {
            let x = (0..g.values[g.input].numel()).map(|_| rng.random_range(lo..1.5)).collect();
            (x, rng.random_range(0..g.num_classes()))
        })
        .collect()
}

fn meta() -> ExportMeta {
    ExportMeta { model: "roundtrip-net".into(), config: Some("configs/test.toml".into()), tool_version: "test".into() }
}

// ---------- an independent integer implementation ----------

#[derive(Clone, Copy, Debug)]
struct Ar {
    mode: &'static str,
    wrap: bool,
    symmetric: bool,
}

/// round(num / den), den > 0, exactly.
fn rdiv(num: i128, den: i128, ar: Ar) -> i128 {
    assert!(den > 0);
    let q = num.div_euclid(den);
    let r = num - q * den;
    let up = match ar.mode {
        "floor" => false,
        "half-up" => 2 * r >= den,
        "half-even" => 2 * r > den || (2 * r == den && q % 2 != 0),
        "half-away" => 2 * r > den || (2 * r == den && num >= 0),
        m => panic!("unknown rounding {m}"),
    };
    q + i128::from(up)
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Fmt {
    bits: u32,
    frac: i32,
    signed: bool,
}

fn range(f: Fmt, symmetric: bool) -> (i128, i128) {
    if !f.signed {
        return (0, (1i128 << f.bits) - 1);
    }
    let m = 1i128 << (f.bits - 1);
    (if symmetric { -(m - 1) } else { -m }, m - 1)
}

fn fit(v: i128, f: Fmt, ar: Ar) -> i128 {
    let (lo, hi) = range(f, ar.symmetric);
    if !ar.wrap {
        return v.clamp(lo, hi);
    }
    let m = 1i128 << f.bits;
    let mut w = v.rem_euclid(m);
    if f.signed && w >= m / 2 {
        w -= m;
    }
    w.clamp(lo, hi)
}

fn requant(v: i128, from: i32, to: Fmt, ar: Ar) -> i128 {
    let s = from - to.frac;
    let r = if s > 0 { rdiv(v, 1i128 << s, ar) } else { v.checked_shl((-s) as u32).unwrap() };
    fit(r, to, ar)
}

/// Quantize a real (the input, clip bounds, parameters).
fn quant(x: f64, f: Fmt, ar: Ar) -> i128 {
    let s = x * 2f64.powi(f.frac);
    let fl = s.floor();
    let r = match ar.mode {
        "floor" => fl,
        "half-up" => fl + if s - fl >= 0.5 { 1.0 } else { 0.0 },
        "half-even" => s.round_ties_even(),
        "half-away" => s.round(),
        m => panic!("unknown rounding {m}"),
    };
    fit(r as i128, f, ar)
}

/// A `.mem` file read with a parser written here (and cross-checked against `read_mem`).
fn load_mem(path: &Path, f: Fmt) -> Vec<i128> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let digits = f.bits.div_ceil(4) as usize;
    let v: Vec<i128> = text
        .lines()
        .map(|l| {
            assert_eq!(l.len(), digits, "{}: word '{l}' should have {digits} digits", path.display());
            assert!(l.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)), "{l}");
            let u = i128::from_str_radix(l, 16).unwrap();
            assert!(u >> f.bits == 0, "{}: '{l}' wider than {} bits", path.display(), f.bits);
            if f.signed && (u >> (f.bits - 1)) & 1 == 1 {
                u - (1i128 << f.bits)
            } else {
                u
            }
        })
        .collect();
    let lib = read_mem(path, f.bits, f.signed).unwrap();
    assert_eq!(lib.iter().map(|&k| i128::from(k)).collect::<Vec<_>>(), v, "read_mem disagrees on {}", path.display());
    v
}

type Row = HashMap<String, String>;

fn field<'r>(r: &'r Row, k: &str) -> &'r str {
    r.get(k).unwrap_or_else(|| panic!("formats.csv has no column {k}"))
}
fn num<T: std::str::FromStr>(r: &Row, k: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    field(r, k).parse().unwrap_or_else(|e| panic!("column {k} = '{}': {e:?}", field(r, k)))
}
fn list(r: &Row, k: &str, sep: char) -> Vec<usize> {
    let s = field(r, k);
    if s.is_empty() {
        vec![]
    } else {
        s.split(sep).map(|x| x.parse().unwrap()).collect()
    }
}
fn pair(r: &Row, k: &str) -> [usize; 2] {
    let v = list(r, k, 'x');
    [v[0], v[1]]
}
fn out_fmt(r: &Row) -> Fmt {
    Fmt { bits: num(r, "o_bits"), frac: num(r, "o_frac"), signed: num(r, "o_signed") }
}

enum Act {
    None,
    Relu,
    Clip(f64, f64),
}

fn act(r: &Row) -> Act {
    let s = field(r, "activation");
    match s {
        "none" => Act::None,
        "relu" => Act::Relu,
        _ => {
            let p: Vec<&str> = s.split(':').collect();
            assert_eq!(p[0], "clip", "{s}");
            Act::Clip(p[1].parse().unwrap(), p[2].parse().unwrap())
        }
    }
}

/// Steps 3-5 of the layer pipeline: accumulator bound, fused activation, requantize.
/// Steps 3-5 of a layer on its exact sum at `fa` (the channel's, for per-channel weights).
fn finish(acc: i128, fa: i32, r: &Row, ar: Ar) -> i128 {
    let acc = if field(r, "acc_derived") == "false" {
        let plain = Ar { symmetric: false, ..ar };
        fit(acc, Fmt { bits: num(r, "acc_bits"), frac: fa, signed: true }, plain)
    } else {
        acc
    };
    let of = out_fmt(r);
    match act(r) {
        Act::None => requant(acc, fa, of, ar),
        Act::Relu => requant(acc.max(0), fa, of, ar),
        Act::Clip(lo, hi) => {
            let s = 2f64.powi(fa);
            if acc < (lo * s).ceil() as i128 {
                quant(lo, of, ar)
            } else if acc > (hi * s).floor() as i128 {
                quant(hi, of, ar)
            } else {
                requant(acc, fa, of, ar)
            }
        }
    }
}

/// Window positions of output (oy, ox): Some(index in plane) inside the input, None in padding
/// (within the padded extent), skipped beyond it.
fn window(
    w_k: [usize; 2],
    st: [usize; 2],
    pads: &[usize],
    dil: [usize; 2],
    hw: [usize; 2],
    oy: usize,
    ox: usize,
) -> Vec<Option<usize>> {
    let mut v = Vec::new();
    for ky in 0..w_k[0] {
        for kx in 0..w_k[1] {
            let iy = (oy * st[0] + ky * dil[0]) as isize - pads[0] as isize;
            let ix = (ox * st[1] + kx * dil[1]) as isize - pads[1] as isize;
            if iy >= 0 && ix >= 0 && (iy as usize) < hw[0] && (ix as usize) < hw[1] {
                v.push(Some(iy as usize * hw[1] + ix as usize));
            } else if iy < (hw[0] + pads[2]) as isize && ix < (hw[1] + pads[3]) as isize {
                v.push(None);
            }
        }
    }
    v
}

/// What [`verify`] reads from an export before it recomputes the golden vectors: the
/// formats.csv rows, the arithmetic, every value's format and shape, the parameter codes.
struct Export {
    rows: Vec<Row>,
    ar: Ar,
    vfmt: HashMap<usize, Fmt>,
    vshape: HashMap<usize, Vec<usize>>,
    params: HashMap<String, Params>,
}

/// (weights, bias, each output channel's accumulator offset) of a parameterised layer.
type Params = (Vec<i128>, Vec<i128>, Vec<i32>);

/// Read the export at `dir` back and recompute everything; panics on the first difference.
/// Returns the number of golden samples checked.
fn verify(dir: &Path, g: &Graph, a: &Assignment, samples: &[(Vec<f64>, usize)]) -> usize {
    let e = read_export(dir, g);
    let mut exp = csv::Reader::from_path(dir.join("golden/expected.csv")).unwrap();
    let expected: Vec<Vec<i128>> =
        exp.records().map(|r| r.unwrap().iter().map(|x| x.parse().unwrap()).collect()).collect();
    assert_eq!(expected.len(), samples.len());
    for (si, (x, label)) in samples.iter().enumerate() {
        let sdir = dir.join(format!("golden/sample_{si}"));
        let mut vals: HashMap<usize, Vec<i128>> = HashMap::new();
        for r in &e.rows {
            let v: usize = num(r, "output_value");
            let of = out_fmt(r);
            let op = field(r, "op");
            let y = if op == "Input" {
                let want: Vec<i128> = x.iter().map(|&x| quant(x, of, e.ar)).collect();
                assert_eq!(load_mem(&sdir.join("input.mem"), of), want, "sample {si}: input.mem");
                want
            } else {
                layer_output(&e, r, &vals)
            };
            assert_eq!(y.len(), e.vshape[&v].iter().product::<usize>(), "{op} output size");
            let golden = load_mem(&sdir.join(field(r, "golden_file")), of);
            assert_eq!(y, golden, "sample {si}: layer {} ({op}, node {}) differs", field(r, "layer"), field(r, "node"));
            vals.insert(v, y);
        }
        // Classification from the recomputed logits (ties to the lowest index).
        let logits = &vals[&g.output];
        let want = &expected[si];
        assert_eq!(want[0], si as i128);
        assert_eq!(want[1], *label as i128, "label");
        assert_eq!(want[2], common::argmax(logits) as i128, "sample {si}: predicted class");
        assert_eq!(&want[3..], &logits[..], "sample {si}: logits");
    }
    assert!(!dir.join(format!("golden/sample_{}", samples.len())).exists(), "no extra golden samples");
    check_other_files(dir, g, a, &e.rows, samples.len());
    samples.len()
}

/// formats.csv, the arithmetic, the formats and shapes of every value (checked against the
/// pass-through rule and the code ranges) and the parameter codes of the .mem files (checked
/// against quantizing the float model here).
fn read_export(dir: &Path, g: &Graph) -> Export {
    let mut rdr = csv::Reader::from_path(dir.join("formats.csv")).unwrap();
    let headers = rdr.headers().unwrap().clone();
    let rows: Vec<Row> = rdr
        .records()
        .map(|r| headers.iter().map(str::to_owned).zip(r.unwrap().iter().map(str::to_owned)).collect())
        .collect();
    assert_eq!(rows.len(), g.nodes.len() + 1, "one row per node plus the input");
    let ar = Ar {
        mode: match field(&rows[0], "rounding") {
            "half-even" => "half-even",
            "half-up" => "half-up",
            "floor" => "floor",
            "half-away" => "half-away",
            m => panic!("rounding {m}"),
        },
        wrap: field(&rows[0], "overflow") == "wrap",
        symmetric: field(&rows[0], "range") == "symmetric",
    };
    let mut vfmt: HashMap<usize, Fmt> = HashMap::new();
    let mut vshape: HashMap<usize, Vec<usize>> = HashMap::new();
    for r in &rows {
        let v: usize = num(r, "output_value");
        vfmt.insert(v, out_fmt(r));
        vshape.insert(v, list(r, "output_shape", 'x'));
        let (lo, hi) = range(out_fmt(r), ar.symmetric);
        assert_eq!((num::<i128>(r, "o_min"), num::<i128>(r, "o_max")), (lo, hi));
        if field(r, "role") == "pass-through" {
            let first = list(r, "input_values", ';')[0];
            assert_eq!(vfmt[&v], vfmt[&first], "pass-through row {} keeps its input's format", field(r, "node"));
        }
    }
    // Parameters from the .mem files; also checked against quantizing the float model here.
    let mut params: HashMap<String, Params> = HashMap::new();
    for r in rows.iter().filter(|r| !field(r, "weights_file").is_empty()) {
        let wf = Fmt { bits: num(r, "w_bits"), frac: num(r, "w_frac"), signed: true };
        let bf = Fmt { bits: num(r, "b_bits"), frac: num(r, "b_frac"), signed: true };
        let w = load_mem(&dir.join(field(r, "weights_file")), wf);
        let b = load_mem(&dir.join(field(r, "bias_file")), bf);
        let node = &g.nodes[num::<usize>(r, "layer")];
        let (fw, fb) = node.op.params().unwrap();
        // Per-channel weight offsets come from their file; else every channel has w_frac.
        let w_fracs: Vec<i32> = match field(r, "w_frac_file") {
            "" => vec![wf.frac; fb.len()],
            f => load_mem(&dir.join(f), Fmt { bits: 8, frac: 0, signed: true }).iter().map(|&k| k as i32).collect(),
        };
        assert_eq!(w_fracs.len(), fb.len(), "{}: one offset per output channel", node.name);
        assert_eq!(w_fracs.iter().min(), Some(&wf.frac), "{}: w_frac is the widest channel's", node.name);
        let per = fw.len() / fb.len();
        let want: Vec<i128> =
            fw.iter().enumerate().map(|(j, &x)| quant(x, Fmt { frac: w_fracs[j / per], ..wf }, ar)).collect();
        assert_eq!(w, want, "{} weights", node.name);
        let frac_in = vfmt[&list(r, "input_values", ';')[0]].frac;
        assert_eq!(num::<i32>(r, "frac_acc"), frac_in + wf.frac, "{} frac_acc", node.name);
        let fa: Vec<i32> = w_fracs.iter().map(|f| frac_in + f).collect();
        assert_eq!(b, fb.iter().map(|&x| quant(x, bf, ar)).collect::<Vec<_>>(), "{} bias", node.name);
        if field(r, "has_bias") == "false" {
            assert!(b.iter().all(|&k| k == 0));
        }
        params.insert(field(r, "layer").to_owned(), (w, b, fa));
    }
    Export { rows, ar, vfmt, vshape, params }
}

/// Bias code `b` at `b_frac` aligned to the accumulator's offset `fa` (the channel's, for
/// per-channel weights; README, "bias alignment").
fn align_bias(b: i128, fa: i32, r: &Row, ar: Ar) -> i128 {
    let bfr: i32 = num(r, "b_frac");
    if bfr <= fa {
        b << (fa - bfr)
    } else {
        rdiv(b, 1i128 << (bfr - fa), ar)
    }
}

/// The codes of row `r`'s output, recomputed from its inputs' codes `vals` by the export
/// README's rules alone.
fn layer_output(e: &Export, r: &Row, vals: &HashMap<usize, Vec<i128>>) -> Vec<i128> {
    let (ar, of) = (e.ar, out_fmt(r));
    let ins = list(r, "input_values", ';');
    let xin = &vals[&ins[0]];
    match field(r, "op") {
        "Conv" | "DepthwiseConv" => conv(e, r, xin),
        "Dense" => {
            let (w, b, fas) = &e.params[field(r, "layer")];
            (0..e.vshape[&num(r, "output_value")][0])
                .map(|o| {
                    let acc: i128 = (0..xin.len()).map(|i| w[o * xin.len() + i] * xin[i]).sum();
                    finish(acc + align_bias(b[o], fas[o], r, ar), fas[o], r, ar)
                })
                .collect()
        }
        "Affine" => {
            let (w, b, fas) = &e.params[field(r, "layer")];
            let ishape = &e.vshape[&ins[0]];
            let per = ishape[1] * ishape[2];
            xin.iter()
                .enumerate()
                .map(|(i, &x)| {
                    let c = i / per;
                    finish(x * w[c] + align_bias(b[c], fas[c], r, ar), fas[c], r, ar)
                })
                .collect()
        }
        "Add" => {
            let (fa, fb) = (e.vfmt[&ins[0]].frac, e.vfmt[&ins[1]].frac);
            let fm = fa.max(fb);
            assert_eq!(num::<i32>(r, "frac_acc"), fm);
            xin.iter()
                .zip(&vals[&ins[1]])
                .map(|(&p, &q)| finish((p << (fm - fa)) + (q << (fm - fb)), fm, r, ar))
                .collect()
        }
        "Concat" => {
            ins.iter().flat_map(|i| vals[i].iter().map(|&k| requant(k, e.vfmt[i].frac, of, ar))).collect::<Vec<_>>()
        }
        "AvgPool" | "MaxPool" => pool(e, r, xin),
        "Flatten" => xin.clone(),
        "Activation" => match act(r) {
            Act::None => xin.clone(),
            Act::Relu => xin.iter().map(|&k| k.max(0)).collect(),
            Act::Clip(lo, hi) => {
                // The bounds saturate into the format even under wrap.
                let sat = Ar { wrap: false, ..ar };
                let (lo, hi) = (quant(lo, of, sat), quant(hi, of, sat));
                xin.iter().map(|&k| k.clamp(lo, hi)).collect()
            }
        },
        other => panic!("op {other} not covered by this test"),
    }
}

/// A Conv row (grouped and depthwise included) on input codes `xin`.
fn conv(e: &Export, r: &Row, xin: &[i128]) -> Vec<i128> {
    let ar = e.ar;
    let (w, b, fas) = &e.params[field(r, "layer")];
    let ins = list(r, "input_values", ';');
    let (ishape, oshape) = (&e.vshape[&ins[0]], &e.vshape[&num(r, "output_value")]);
    let (k, st, dil) = (pair(r, "kernel"), pair(r, "stride"), pair(r, "dilation"));
    let pads = list(r, "pads", 'x');
    let groups: usize = num(r, "groups");
    let (ic, ih, iw) = (ishape[0], ishape[1], ishape[2]);
    let (oc, oh, ow) = (oshape[0], oshape[1], oshape[2]);
    let (cg, og) = (ic / groups, oc / groups);
    let mut y = Vec::new();
    for o in 0..oc {
        let fa = fas[o];
        let bias = align_bias(b[o], fa, r, ar);
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = 0i128;
                for ci in 0..cg {
                    let plane = &xin[(o / og * cg + ci) * ih * iw..][..ih * iw];
                    let pos = window(k, st, &pads, dil, [ih, iw], oy, ox);
                    let mut j = 0;
                    for ky in 0..k[0] {
                        for kx in 0..k[1] {
                            // Recompute the position (window() drops far-out ones).
                            let iy = (oy * st[0] + ky * dil[0]) as isize - pads[0] as isize;
                            let ix = (ox * st[1] + kx * dil[1]) as isize - pads[1] as isize;
                            let inside = iy >= 0 && ix >= 0 && (iy as usize) < ih && (ix as usize) < iw;
                            if inside {
                                let wv = w[((o * cg + ci) * k[0] + ky) * k[1] + kx];
                                acc += plane[iy as usize * iw + ix as usize] * wv;
                                j += 1;
                            }
                        }
                    }
                    assert_eq!(j, pos.iter().flatten().count());
                }
                y.push(finish(acc + bias, fa, r, ar));
            }
        }
    }
    y
}

/// A MaxPool or AvgPool row on input codes `xin`.
fn pool(e: &Export, r: &Row, xin: &[i128]) -> Vec<i128> {
    let (ar, of) = (e.ar, out_fmt(r));
    let ins = list(r, "input_values", ';');
    let (ishape, oshape) = (&e.vshape[&ins[0]], &e.vshape[&num(r, "output_value")]);
    let (k, st, dil) = (pair(r, "kernel"), pair(r, "stride"), pair(r, "dilation"));
    let pads = list(r, "pads", 'x');
    let (ih, iw) = (ishape[1], ishape[2]);
    let fi = e.vfmt[&ins[0]].frac;
    let incl = field(r, "count_include_pad") == "true";
    let max = field(r, "op") == "MaxPool";
    let mut y = Vec::new();
    for c in 0..oshape[0] {
        let plane = &xin[c * ih * iw..][..ih * iw];
        for oy in 0..oshape[1] {
            for ox in 0..oshape[2] {
                let pos = window(k, st, &pads, dil, [ih, iw], oy, ox);
                let inside: Vec<i128> = pos.iter().flatten().map(|&p| plane[p]).collect();
                y.push(if max {
                    *inside.iter().max().unwrap()
                } else {
                    let n = if incl { pos.len() } else { inside.len() } as i128;
                    let s: i128 = inside.iter().sum();
                    let d = of.frac - fi;
                    let q = if d >= 0 { rdiv(s << d, n, ar) } else { rdiv(s, n << -d, ar) };
                    fit(q, of, ar)
                });
            }
        }
    }
    y
}

/// The files beside the golden vectors: point file, manifest, headers, README.
fn check_other_files(dir: &Path, g: &Graph, a: &Assignment, rows: &[Row], samples: usize) {
    let point = std::fs::read_to_string(dir.join("point.toml")).unwrap();
    assert_eq!(Assignment::from_toml(&point, "point.toml", g, a).unwrap(), *a);
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["format"], "qdse-export");
    assert_eq!(m["model"], "roundtrip-net");
    assert_eq!(m["golden"]["samples"], samples);
    for f in m["files"].as_array().unwrap() {
        let p = dir.join(f["path"].as_str().unwrap());
        assert_eq!(std::fs::metadata(&p).unwrap().len(), f["bytes"].as_u64().unwrap(), "{}", p.display());
    }
    let svh = std::fs::read_to_string(dir.join("qdse_formats.svh")).unwrap();
    let h = std::fs::read_to_string(dir.join("qdse_formats.h")).unwrap();
    assert!(svh.contains("package qdse_formats_pkg;") && svh.contains("endpackage"));
    assert!(h.contains("#ifndef QDSE_FORMATS_H") && h.contains("#endif"));
    for r in rows {
        let id = field(r, "ident");
        let o_bits = field(r, "o_bits");
        assert!(svh.contains(&format!("localparam int {id}_O_BITS = {o_bits};")), "{id} in svh");
        assert!(h.contains(&format!("#define {id}_O_BITS {o_bits}\n")), "{id} in .h");
        if !field(r, "w_bits").is_empty() {
            assert!(svh.contains(&format!("localparam int {id}_W_BITS = {};", field(r, "w_bits"))));
            assert!(svh.contains(&format!("localparam int {id}_ACC_BITS = {};", field(r, "acc_bits"))));
        }
    }
    assert!(std::fs::read_to_string(dir.join("README.md")).unwrap().contains("bias_acc = b << (frac_acc - b_frac)"));
}

/// Nothing but `keep` is left in the export's parent (no temp or backup siblings).
fn only_entries(parent: &Path, keep: &[&str]) {
    let mut names: Vec<String> =
        std::fs::read_dir(parent).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, keep, "entries of {}", parent.display());
}

// ---------- tests ----------

#[test]
fn exported_files_recompute_bit_true() {
    let tmp = tempfile::tempdir().unwrap();
    let mut uneven_offsets = false;
    for seed in 0..10u64 {
        let g = net(seed);
        let a = assignment(&g, seed, false);
        let s = samples(&g, &a, seed, 4);
        let out = tmp.path().join(format!("export-{seed}"));
        export(&g, &a, &s, &out, &meta()).unwrap();
        assert_eq!(verify(&out, &g, &a, &s), 4);
        uneven_offsets |= std::fs::read_dir(out.join("weights")).unwrap().any(|e| {
            let p = e.unwrap().path();
            let text = std::fs::read_to_string(&p).unwrap();
            p.to_string_lossy().ends_with(".wfrac.mem") && text.lines().collect::<HashSet<_>>().len() > 1
        });
    }
    assert!(uneven_offsets, "no layer of any seed had channels at different offsets");
}

#[test]
fn wide_formats_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let g = net(3);
    let a = assignment(&g, 3, true);
    assert!(a.layers.iter().any(|l| l.output.bits == 32 || l.weights.is_some_and(|w| w.bits > 28)));
    let s = samples(&g, &a, 3, 4);
    let out = tmp.path().join("wide");
    export(&g, &a, &s, &out, &meta()).unwrap();
    verify(&out, &g, &a, &s);
}

#[test]
fn identifiers_and_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let g = net(0);
    let a = assignment(&g, 0, false);
    let s = samples(&g, &a, 0, 2);
    let out = tmp.path().join("x");
    export(&g, &a, &s, &out, &meta()).unwrap();
    let svh = std::fs::read_to_string(out.join("qdse_formats.svh")).unwrap();
    assert!(svh.contains("localparam int L00_CONV1_CONV_W_BITS"), "{svh}");
    assert!(svh.contains("localparam int L01_DW_CONV_W_FRAC"));
    assert!(svh.contains("localparam int L03_BN_BATCHNORMALIZATION_B_BITS"));
    assert!(svh.contains("localparam int L09_CLIP_CLIP_O_BITS"));
    assert!(svh.contains("localparam int QDSE_ROUNDING = 0;"));
    for f in ["weights/00_conv1_conv.w.mem", "weights/00_conv1_conv.b.mem", "weights/12_fc2_gemm.w.mem"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    assert!(!out.join("weights/04_add_add.w.mem").exists());
    for f in ["input.mem", "00_input.mem", "01_conv1_conv_out.mem", "13_fc2_gemm_out.mem"] {
        assert!(out.join("golden/sample_1").join(f).is_file(), "{f}");
    }
    let csv = std::fs::read_to_string(out.join("formats.csv")).unwrap();
    assert!(csv.lines().any(|l| l.starts_with("8,L08_MAX_MAXPOOL,/max/MaxPool,MaxPool,pass-through,")), "{csv}");
    assert!(csv.lines().any(|l| l.starts_with("input,INPUT,input,Input,input,")), "{csv}");
}

#[test]
fn exporting_twice_replaces_the_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("exp");
    let g = net(0);
    let a = assignment(&g, 0, false);
    let s = samples(&g, &a, 0, 4);
    export(&g, &a, &s, &out, &meta()).unwrap();
    std::fs::write(out.join("golden/sample_3/stale.txt"), "left over").unwrap();
    // A different model and assignment with fewer samples into the same folder.
    let g2 = net(5);
    let a2 = assignment(&g2, 5, false);
    let s2 = samples(&g2, &a2, 5, 2);
    export(&g2, &a2, &s2, &out, &meta()).unwrap();
    assert!(!out.join("golden/sample_2").exists() && !out.join("golden/sample_3").exists());
    assert_eq!(verify(&out, &g2, &a2, &s2), 2);
    only_entries(tmp.path(), &["exp"]);
}

#[test]
fn bad_destinations_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let g = net(1);
    let a = assignment(&g, 1, false);
    let s = samples(&g, &a, 1, 1);
    // Below a regular file: cannot be created.
    let file = tmp.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let err = export(&g, &a, &s, &file.join("exp"), &meta()).unwrap_err();
    assert!(format!("{err:#}").contains("cannot create folder"), "{err:#}");
    // A regular file or a folder that is not an export is never replaced.
    assert!(export(&g, &a, &s, &file, &meta()).is_err());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
    let mine = tmp.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), "keep").unwrap();
    let err = export(&g, &a, &s, &mine, &meta()).unwrap_err();
    assert!(format!("{err:#}").contains("not a qdse export"), "{err:#}");
    assert_eq!(std::fs::read_to_string(mine.join("notes.txt")).unwrap(), "keep");
    // No name, and samples of the wrong size.
    assert!(export(&g, &a, &s, Path::new("/"), &meta()).is_err());
    let bad = vec![(vec![0.0; 3], 0)];
    assert!(export(&g, &a, &bad, &tmp.path().join("bad"), &meta()).is_err());
    only_entries(tmp.path(), &["file", "mine"]);
}

#[test]
fn a_clip_bound_outside_a_wrapping_format_saturates() {
    let tmp = tempfile::tempdir().unwrap();
    let g = net(0);
    let mut a = assignment(&g, 0, false);
    a.arith.overflow = Overflow::Wrap;
    // The clip after the max pool keeps the average pool's format: s3.3 holds [-0.5, 0.375], so
    // Q(0.75) would wrap to -2 < Q(0) = 0; the bound saturates to 0.375 instead.
    let avg = g.node_by_name("/avg/AveragePool").unwrap();
    a.layers.iter_mut().find(|l| l.node == avg).unwrap().output = Format::new(3, 3, true);
    let s = samples(&g, &a, 0, 2);
    let dir = tmp.path().join("x");
    export(&g, &a, &s, &dir, &meta()).unwrap();
    assert_eq!(verify(&dir, &g, &a, &s), 2);
}

#[test]
fn reference_datapath_replays_random_formats_in_verilator() {
    if !common::verilator_present("reference_datapath_replays_random_formats_in_verilator") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // Seeds that between them cover every rounding mode, saturate and wrap, both signed ranges,
    // signed and unsigned inputs (see `assignment`).
    let seeds = [2u64, 4, 5, 7];
    let ariths: Vec<Arith> = seeds.iter().map(|&s| assignment(&net(s), s, false).arith).collect();
    for mode in [Rounding::HalfEven, Rounding::HalfUp, Rounding::Floor, Rounding::HalfAway] {
        assert!(ariths.iter().any(|a| a.rounding == mode), "{mode:?} not covered");
    }
    assert!(
        ariths.iter().any(|a| a.overflow == Overflow::Wrap) && ariths.iter().any(|a| a.overflow == Overflow::Saturate)
    );
    assert!(
        ariths.iter().any(|a| a.range == RangeMode::Symmetric)
            && ariths.iter().any(|a| a.range == RangeMode::TwosComplement)
    );
    let inputs: Vec<bool> = seeds.iter().map(|&s| assignment(&net(s), s, false).input.signed).collect();
    assert!(inputs.contains(&true) && inputs.contains(&false));
    // The layers' own per-channel choices (fc1's forced): uneven weight offsets (the module's
    // w_off) on some, one of them with a fused Clip (thresholds shifted per channel), per-tensor
    // weights on others.
    let (mut uneven, mut uneven_clip, mut per_tensor) = (false, false, false);
    for seed in seeds {
        let mut g = net(seed);
        // fc1 (Clip on odd seeds) per-channel, its rows scaled so their offsets differ by 0 to 3
        // and its sums often pass the Clip's bound (a threshold left at the finest channel's
        // scale then fails).
        let fc1 = g.node_by_name("/fc1/Gemm").unwrap();
        let Op::Dense(d) = &mut g.nodes[fc1].op else { unreachable!("fc1 is dense") };
        let n = d.in_features;
        d.weight.iter_mut().enumerate().for_each(|(j, w)| *w *= 4.0 * 0.5f64.powi((j / n % 4) as i32));
        let mut a = assignment(&g, seed, false);
        // An output range well past the Clip's 1.5, so that the bound, not saturation, decides.
        a.layers.iter_mut().filter(|l| l.node == fc1).for_each(|l| {
            l.per_channel = true;
            l.output = Format::new(8, 4, true);
        });
        let s = samples(&g, &a, seed, 3);
        let out = tmp.path().join(format!("export-{seed}"));
        export(&g, &a, &s, &out, &meta()).unwrap();
        let (pass, log) = common::run_testbench(&out, 3);
        // conv1, the depthwise conv, the BatchNorm (Affine), the pointwise conv, fc1, fc2.
        assert!(pass && log.contains("of 6 layers over 3 samples"), "seed {seed}:\n{log}");
        let tb = std::fs::read_to_string(out.join("rtl/qdse_tb.sv")).unwrap();
        for inst in tb.lines().filter(|l| l.contains("qdse_layer #(")) {
            let offsets = !inst.contains(".W_OFF_MAX(0)");
            uneven |= offsets;
            uneven_clip |= offsets && inst.contains(".ACT(2)");
            per_tensor |= !offsets;
        }
    }
    assert!(uneven && uneven_clip && per_tensor, "offsets {uneven}, with a Clip {uneven_clip}, none {per_tensor}");
}
