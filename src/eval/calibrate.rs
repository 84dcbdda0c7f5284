//! Calibration: per-tensor ranges from a float pass over the search split, and the no-clip
//! uniform assignments built from them.

use super::float::FloatEngine;
use super::runner::{values, Workspace};
use crate::fixed::{Arith, Assignment, Format, LayerFormats};
use crate::model::Graph;
use rayon::prelude::*;

/// Largest magnitude seen for every value, plus the parameters' own ranges.
#[derive(Debug, Clone)]
pub struct Ranges {
    /// max |x| per value over the calibration samples.
    pub values: Vec<f64>,
    /// Whether each value can never be negative (structure + input data).
    pub non_negative: Vec<bool>,
}

impl Ranges {
    /// Run the float engine over `inputs` (preprocessed samples) and record max |x| per value.
    pub fn measure(graph: &Graph, inputs: &[Vec<f32>], input_non_negative: bool) -> Ranges {
        let engine = FloatEngine::new(graph);
        let maxes = inputs
            .par_iter()
            .fold(
                || (Workspace::new(graph), vec![0f64; graph.values.len()]),
                |(mut ws, mut m), x| {
                    engine.forward_all(&mut ws, x);
                    for (mv, v) in m.iter_mut().zip(values(&ws)) {
                        *mv = mv.max(f64::from(max_abs_f32(v)));
                    }
                    (ws, m)
                },
            )
            .map(|(_, m)| m)
            .reduce(|| vec![0f64; graph.values.len()], |a, b| a.iter().zip(&b).map(|(x, y)| x.max(*y)).collect());
        Ranges { values: maxes, non_negative: graph.non_negative(input_non_negative) }
    }
}

/// max |x| over `xs` (0 for none; NaNs skipped, as `f32::max` does), in sixteen independent
/// lanes so that it vectorizes (one running maximum is a serial chain LLVM keeps scalar).
/// Exact: |x| and max are exact in f32, and so is the f64 of the result.
fn max_abs_f32(xs: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    let chunks = xs.chunks_exact(16);
    let rest = chunks.remainder().iter().fold(0f32, |m, x| m.max(x.abs()));
    for c in chunks {
        for (l, x) in lanes.iter_mut().zip(c) {
            *l = l.max(x.abs());
        }
    }
    lanes.iter().fold(rest, |m, &l| m.max(l))
}

fn max_abs(xs: &[f64]) -> f64 {
    xs.iter().fold(0.0, |m, x| m.max(x.abs()))
}

/// Which kind of tensor a format belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Weights,
    Bias,
    Activation,
}

/// Bits for each kind of tensor; `unsigned` = use unsigned activations where legal;
/// `per_channel` = weights with per-channel offsets (docs/fixed-point.md, "Per-channel weight
/// offsets").
#[derive(Debug, Clone, Copy)]
pub struct UniformSpec {
    pub weights: u32,
    pub bias: u32,
    pub activations: u32,
    pub input: u32,
    pub unsigned: bool,
    pub per_channel: bool,
}

impl UniformSpec {
    /// Every tensor at `bits`, per-tensor weight offsets.
    pub fn all(bits: u32, unsigned: bool) -> Self {
        UniformSpec { weights: bits, bias: bits, activations: bits, input: bits, unsigned, per_channel: false }
    }

    #[must_use]
    pub fn with_per_channel(self, per_channel: bool) -> Self {
        UniformSpec { per_channel, ..self }
    }
}

/// The no-clip format of a value at `bits`.
pub fn activation_format(ranges: &Ranges, value: usize, bits: u32, unsigned: bool) -> Format {
    let signed = !(unsigned && ranges.non_negative[value]);
    Format::no_clip(bits, signed, ranges.values[value])
}

/// The no-clip format of a node's weights or bias at `bits`.
pub fn param_format(graph: &Graph, node: usize, kind: Kind, bits: u32) -> Format {
    let (w, b) = graph.nodes[node].op.params().expect("parameterised layer");
    let m = if kind == Kind::Bias { max_abs(b) } else { max_abs(w) };
    Format::no_clip(bits, true, m)
}

/// Every tensor at the given widths with its no-clip fractional offset.
pub fn uniform(graph: &Graph, ranges: &Ranges, spec: UniformSpec, arith: Arith) -> Assignment {
    let layers = graph
        .quant_layers()
        .map(|(i, node)| {
            let has = node.op.has_params();
            LayerFormats {
                node: i,
                per_channel: has && spec.per_channel,
                weights: has.then(|| param_format(graph, i, Kind::Weights, spec.weights)),
                bias: has.then(|| param_format(graph, i, Kind::Bias, spec.bias)),
                output: activation_format(ranges, node.output, spec.activations, spec.unsigned),
                accumulator: None,
            }
        })
        .collect();
    Assignment { arith, input: activation_format(ranges, graph.input, spec.input, spec.unsigned), layers }
}

#[cfg(test)]
mod tests {
    use super::max_abs_f32;

    #[test]
    fn max_abs_f32_is_the_scalar_maximum() {
        for n in 0..70 {
            let mut xs: Vec<f32> = (0..n).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.5).collect();
            if n > 5 {
                xs[n / 2] = -99.0;
                xs[n - 3] = f32::NAN;
            }
            let want = xs.iter().fold(0f32, |m, x| m.max(x.abs()));
            assert_eq!(max_abs_f32(&xs), want, "{n} values");
        }
    }
}
