//! The bit-true integer engine (FIXED_POINT.md). Every tensor is a vector of integer codes `k`
//! in its format; products and sums are exact. Convolutions run as GEMMs in f32 or f64 when a
//! per-layer bound proves every partial sum is an exactly representable integer there (2^24,
//! 2^53), and in i128 otherwise, so the fast path never changes a single bit.

use super::float::conv_geom;
use super::kernels::{conv_image, pool_windows, Gemm};
use super::runner::{run_image, Engine, Scratch, Workspace};
use crate::fixed::round::{fit, quantize, requantize, round_div, round_shift, shl_saturating};
use crate::fixed::{Arith, Assignment, Format};
use crate::model::{Activation, Graph, Node, Op};
use anyhow::Result;

/// Which number type carries a layer's exact products and sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
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

/// A parameterised layer, quantized once.
struct QParams {
    /// Weight codes in the GEMM type chosen by `precision` (f32/f64 only when chosen), and
    /// always as i128 for the dot-product layers.
    w_f32: Vec<f32>,
    w_f64: Vec<f64>,
    w_i128: Vec<i128>,
    precision: Precision,
    /// Bias codes aligned to `frac_acc` (FIXED_POINT.md: exact, or re-rounded if finer).
    bias_acc: Vec<i128>,
    frac_acc: i32,
}

/// Per-node compiled state.
enum QNode {
    Params(QParams),
    /// Nodes without parameters need only the formats below.
    Plain,
}

pub struct FixedEngine<'g> {
    graph: &'g Graph,
    arith: Arith,
    /// Format of every value.
    fmts: Vec<Format>,
    /// Accumulator width of each node, if bounded.
    acc_bits: Vec<Option<u32>>,
    nodes: Vec<QNode>,
}

/// The largest |sum| a layer can produce: fan_in * max|a| * max|w| (+ |bias|).
fn choose_precision(fan_in: usize, max_a: u64, max_w: u64, max_b: u128) -> Precision {
    let bound = (fan_in as f64) * (max_a as f64) * (max_w as f64) + max_b as f64;
    if bound < (1u64 << 24) as f64 {
        Precision::F32
    } else if bound < (1u64 << 53) as f64 {
        Precision::F64
    } else {
        Precision::I128
    }
}

/// Align a bias code from `frac_b` to the accumulator's `frac_acc`.
fn align_bias(k: i64, frac_b: i32, frac_acc: i32, arith: Arith) -> i128 {
    if frac_b <= frac_acc {
        shl_saturating(k as i128, (frac_acc - frac_b) as u32)
    } else {
        round_shift(k as i128, (frac_b - frac_acc) as u32, arith.rounding)
    }
}

impl<'g> FixedEngine<'g> {
    /// Quantize the parameters of `graph` to `a`. The assignment must be validated.
    pub fn new(graph: &'g Graph, a: &Assignment) -> Result<Self> {
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
                    let (wf, bf) = (l.weights.expect("validated"), l.bias.expect("validated"));
                    let fin = fmts[node.inputs[0]];
                    let frac_acc = fin.frac + wf.frac;
                    let w_codes: Vec<i64> = w.iter().map(|&x| quantize(x, wf, arith)).collect();
                    let bias_acc: Vec<i128> =
                        b.iter().map(|&x| align_bias(quantize(x, bf, arith), bf.frac, frac_acc, arith)).collect();
                    let max_w = w_codes.iter().map(|k| k.unsigned_abs()).max().unwrap_or(0);
                    let max_b = bias_acc.iter().map(|k| k.unsigned_abs()).max().unwrap_or(0);
                    let precision = choose_precision(graph.fan_in(node), fin.max_abs_code(arith.range), max_w, max_b);
                    let mut p = QParams {
                        w_f32: Vec::new(),
                        w_f64: Vec::new(),
                        w_i128: Vec::new(),
                        precision,
                        bias_acc,
                        frac_acc,
                    };
                    match precision {
                        Precision::F32 => p.w_f32 = w_codes.iter().map(|&k| k as f32).collect(),
                        Precision::F64 => p.w_f64 = w_codes.iter().map(|&k| k as f64).collect(),
                        Precision::I128 => {}
                    }
                    p.w_i128 = w_codes.iter().map(|&k| k as i128).collect();
                    QNode::Params(p)
                }
                _ => QNode::Plain,
            };
            nodes.push(q);
        }
        Ok(FixedEngine { graph, arith, fmts, acc_bits, nodes })
    }

    pub fn input_format(&self) -> Format {
        self.fmts[self.graph.input]
    }

    /// The format of every value.
    pub fn formats(&self) -> &[Format] {
        &self.fmts
    }

    /// Quantize a preprocessed (f64) input into the input format.
    pub fn quantize_input(&self, x: &[f64], out: &mut Vec<i64>) {
        let f = self.input_format();
        out.extend(x.iter().map(|&v| quantize(v, f, self.arith)));
    }

    /// Run one sample and return the integer logits.
    pub fn forward(&self, input_codes: &[i64]) -> Vec<i64> {
        let mut ws = Workspace::new(self.graph);
        run_image(self.graph, self, &mut ws, input_codes, false).to_vec()
    }

    /// Run one sample keeping every value's codes (golden vectors, tests).
    pub fn forward_all(&self, input_codes: &[i64]) -> Vec<Vec<i64>> {
        let mut ws = Workspace::new(self.graph);
        run_image(self.graph, self, &mut ws, input_codes, true);
        super::runner::values(&ws).to_vec()
    }

    /// Precision chosen for each node (None for nodes without parameters).
    pub fn precisions(&self) -> Vec<Option<Precision>> {
        self.nodes
            .iter()
            .map(|n| match n {
                QNode::Params(p) => Some(p.precision),
                QNode::Plain => None,
            })
            .collect()
    }

    /// Bound the accumulator (if the layer has a width), apply the fused activation on the
    /// exact value, and requantize into the output format.
    fn finish(&self, idx: usize, acc: i128, frac: i32, out: Format, act: Activation) -> i64 {
        let acc = match self.acc_bits[idx] {
            Some(bits) => {
                let accf = Format::new(bits, frac, true);
                let plain = Arith { range: crate::fixed::RangeMode::TwosComplement, ..self.arith };
                fit(acc, accf, plain) as i128
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
    fn conv<G: Carrier>(&self, idx: usize, node: &Node, input: &[i64], s: &mut Scratch, out: &mut Vec<i64>) {
        let QNode::Params(p) = &self.nodes[idx] else { unreachable!("conv without parameters") };
        let w = G::weights(p);
        let geom = conv_geom(self.graph, node);
        let px = geom.pixels();
        let (col, acc) = G::scratch(s);
        acc.resize(geom.out_c * px, G::default());
        conv_image(&geom, input, w, G::from_code, col, acc);
        let (of, act) = (self.fmts[node.output], node.op.activation());
        out.extend(
            acc.iter()
                .enumerate()
                .map(|(i, &a)| self.finish(idx, a.to_i128() + p.bias_acc[i / px], p.frac_acc, of, act)),
        );
    }
}

impl FixedEngine<'_> {
    /// A dense layer as a matrix-vector product in the carrier type `G`.
    fn dense<G: Carrier>(&self, idx: usize, node: &Node, input: &[i64], s: &mut Scratch, out: &mut Vec<i64>) {
        let (QNode::Params(p), Op::Dense(d)) = (&self.nodes[idx], &node.op) else { unreachable!("dense layer") };
        let (x, acc) = G::scratch(s);
        x.clear();
        x.extend(input.iter().map(|&k| G::from_code(k)));
        acc.resize(d.out_features, G::default());
        G::gemm(d.out_features, d.in_features, 1, G::weights(p), x, acc);
        let of = self.fmts[node.output];
        out.extend(
            acc.iter().zip(&p.bias_acc).map(|(&a, &b)| self.finish(idx, a.to_i128() + b, p.frac_acc, of, d.activation)),
        );
    }
}

/// A number type that carries integer codes exactly through a GEMM (within the bound checked
/// by [`choose_precision`]).
trait Carrier: Gemm {
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
        self as i64 as i128
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
        self as i64 as i128
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
        k as i128
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

impl Engine for FixedEngine<'_> {
    type T = i64;

    fn compute(&self, idx: usize, node: &Node, ins: &[&[i64]], out: &mut Vec<i64>, s: &mut Scratch) {
        let g = self.graph;
        let of = self.fmts[node.output];
        match (&node.op, &self.nodes[idx]) {
            (Op::Conv(_), QNode::Params(p)) => match p.precision {
                Precision::F32 => self.conv::<f32>(idx, node, ins[0], s, out),
                Precision::F64 => self.conv::<f64>(idx, node, ins[0], s, out),
                Precision::I128 => self.conv::<i128>(idx, node, ins[0], s, out),
            },
            (Op::Dense(_), QNode::Params(p)) => match p.precision {
                Precision::F32 => self.dense::<f32>(idx, node, ins[0], s, out),
                Precision::F64 => self.dense::<f64>(idx, node, ins[0], s, out),
                Precision::I128 => self.dense::<i128>(idx, node, ins[0], s, out),
            },
            (Op::Affine(a), QNode::Params(p)) => {
                let w = &p.w_i128;
                let per = ins[0].len() / a.channels;
                out.extend(ins[0].iter().enumerate().map(|(i, &x)| {
                    let c = i / per;
                    self.finish(idx, w[c] * x as i128 + p.bias_acc[c], p.frac_acc, of, a.activation)
                }));
            }
            (Op::Add { activation }, _) => {
                let (fa, fb) = (self.fmts[node.inputs[0]].frac, self.fmts[node.inputs[1]].frac);
                let fm = fa.max(fb);
                out.extend(ins[0].iter().zip(ins[1]).map(|(&a, &b)| {
                    let sum = shl_saturating(a as i128, (fm - fa) as u32) + shl_saturating(b as i128, (fm - fb) as u32);
                    self.finish(idx, sum, fm, of, *activation)
                }));
            }
            (Op::Concat, _) => {
                for (x, &v) in ins.iter().zip(&node.inputs) {
                    let fi = self.fmts[v].frac;
                    out.extend(x.iter().map(|&k| requantize(k as i128, fi, of, self.arith)));
                }
            }
            (Op::AvgPool { window, count_include_pad }, _) => {
                let o = g.shape(node.output);
                let fi = self.fmts[node.inputs[0]].frac;
                out.resize(g.values[node.output].numel(), 0);
                pool_windows(ins[0], g.shape(node.inputs[0]), window, [o[1], o[2]], |c, i, vals, padded| {
                    let n = if *count_include_pad { padded } else { vals.len() };
                    let sum: i128 = vals.iter().map(|&k| k as i128).sum();
                    out[c * o[1] * o[2] + i] = self.mean(sum, n, fi, of);
                });
            }
            (Op::GlobalAvgPool, _) => {
                let shape = g.shape(node.inputs[0]);
                let hw = shape[1] * shape[2];
                let fi = self.fmts[node.inputs[0]].frac;
                out.extend(ins[0].chunks(hw).map(|ch| self.mean(ch.iter().map(|&k| k as i128).sum(), hw, fi, of)));
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
                out.extend(ins[0].iter().map(|&k| k.clamp(lo, hi)));
            }
            (op, _) => unreachable!("{} is handled by the runner or lacks parameters", op.kind()),
        }
    }
}
