//! The float32 reference path: what the model computes before quantization.

use super::kernels::{conv_image, depthwise, pool_windows, ConvGeom, Gemm, Isa};
use super::runner::{run_image, Engine, Scratch, Workspace};
use crate::model::{Activation, Graph, Node, Op};

/// Float parameters of one layer, cast once from the IR's f64.
struct Params {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

pub struct FloatEngine<'g> {
    graph: &'g Graph,
    params: Vec<Option<Params>>,
    /// The instruction set the depthwise kernel's loops run on.
    isa: Isa,
}

impl<'g> FloatEngine<'g> {
    pub fn new(graph: &'g Graph) -> Self {
        let params = graph
            .nodes
            .iter()
            .map(|n| {
                n.op.params().map(|(w, b)| Params {
                    weight: w.iter().map(|&x| x as f32).collect(),
                    bias: b.iter().map(|&x| x as f32).collect(),
                })
            })
            .collect();
        FloatEngine { graph, params, isa: Isa::best() }
    }

    /// Run one sample, returning the logits.
    pub fn forward(&self, input: &[f32]) -> Vec<f32> {
        let mut ws = Workspace::new(self.graph);
        run_image(self.graph, self, &mut ws, input, false).to_vec()
    }

    /// Run one sample keeping every value (for calibration).
    pub fn forward_all(&self, ws: &mut Workspace<f32>, input: &[f32]) {
        run_image(self.graph, self, ws, input, true);
    }
}

pub fn activate(x: f32, act: Activation) -> f32 {
    match act {
        Activation::None => x,
        Activation::Relu => x.max(0.0),
        Activation::Clip { min, max } => x.clamp(min as f32, max as f32),
    }
}

/// `activate(v + bias)` for every value of a channel, in place: the same operations per value
/// as [`activate`], with the activation chosen once per channel instead of per value, so that
/// the loops vectorize.
fn add_bias_activate(vals: &mut [f32], bias: f32, act: Activation) {
    match act {
        Activation::None => vals.iter_mut().for_each(|v| *v += bias),
        Activation::Relu => vals.iter_mut().for_each(|v| *v = (*v + bias).max(0.0)),
        Activation::Clip { min, max } => {
            let (lo, hi) = (min as f32, max as f32);
            vals.iter_mut().for_each(|v| *v = (*v + bias).clamp(lo, hi));
        }
    }
}

/// The geometry of a Conv node against the graph's shapes.
pub fn conv_geom(graph: &Graph, node: &Node) -> ConvGeom {
    let Op::Conv(c) = &node.op else { unreachable!("conv_geom on {}", node.op.kind()) };
    let i = graph.shape(node.inputs[0]);
    let o = graph.shape(node.output);
    ConvGeom {
        in_c: i[0],
        in_h: i[1],
        in_w: i[2],
        out_c: o[0],
        out_h: o[1],
        out_w: o[2],
        groups: c.groups,
        window: c.window,
    }
}

impl Engine for FloatEngine<'_> {
    type T = f32;

    fn compute(&self, idx: usize, node: &Node, ins: &[&[f32]], out: &mut Vec<f32>, s: &mut Scratch) {
        let g = self.graph;
        let n_out = g.values[node.output].numel();
        match &node.op {
            Op::Conv(c) => {
                let p = self.params[idx].as_ref().unwrap();
                let geom = conv_geom(g, node);
                if geom.is_depthwise() {
                    let layout = depthwise(&geom, ins[0], &p.weight, |x| x, self.isa, &mut s.f32, &mut s.f32_b);
                    for (oc, seg) in layout.real(&s.f32_b) {
                        let start = out.len();
                        out.extend_from_slice(seg);
                        add_bias_activate(&mut out[start..], p.bias[oc], c.activation);
                    }
                    return;
                }
                out.resize(n_out, 0.0);
                conv_image(&geom, ins[0], &p.weight, |x| x, &mut s.f32, out);
                let px = geom.pixels();
                for (chunk, &b) in out.chunks_mut(px).zip(&p.bias) {
                    add_bias_activate(chunk, b, c.activation);
                }
            }
            Op::Dense(d) => {
                let p = self.params[idx].as_ref().unwrap();
                out.resize(d.out_features, 0.0);
                f32::gemm(d.out_features, d.in_features, 1, &p.weight, ins[0], out);
                for (v, b) in out.iter_mut().zip(&p.bias) {
                    *v = activate(*v + b, d.activation);
                }
            }
            Op::Affine(a) => {
                let p = self.params[idx].as_ref().unwrap();
                let per = ins[0].len() / a.channels;
                for (i, &x) in ins[0].iter().enumerate() {
                    let c = i / per;
                    out.push(activate(p.weight[c] * x + p.bias[c], a.activation));
                }
            }
            Op::Add { activation } => {
                out.extend(ins[0].iter().zip(ins[1]).map(|(a, b)| activate(a + b, *activation)));
            }
            Op::Concat => {
                for x in ins {
                    out.extend_from_slice(x);
                }
            }
            Op::AvgPool { window, count_include_pad } => {
                let o = g.shape(node.output);
                out.resize(n_out, 0.0);
                pool_windows(ins[0], g.shape(node.inputs[0]), window, [o[1], o[2]], |c, i, vals, padded| {
                    let n = if *count_include_pad { padded } else { vals.len() };
                    out[c * o[1] * o[2] + i] = vals.iter().sum::<f32>() / n as f32;
                });
            }
            Op::GlobalAvgPool => {
                let shape = g.shape(node.inputs[0]);
                let hw = shape[1] * shape[2];
                out.extend(ins[0].chunks(hw).map(|ch| ch.iter().sum::<f32>() / hw as f32));
            }
            Op::Activation(a) => out.extend(ins[0].iter().map(|&x| activate(x, *a))),
            Op::MaxPool(_) | Op::GlobalMaxPool | Op::Flatten => unreachable!("handled by the runner"),
        }
    }
}
