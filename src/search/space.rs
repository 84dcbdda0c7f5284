//! What the strategies search over: the graph, its calibrated ranges and the uniform starting
//! formats, with the format slots of each kind of tensor.

use super::Slot;
use crate::eval::calibrate::{Kind, Ranges};
use crate::fixed::Assignment;
use crate::model::Graph;

/// What the search works over: the graph, calibrated ranges and the starting formats.
pub struct Space<'a> {
    pub graph: &'a Graph,
    pub ranges: &'a Ranges,
    /// Uniform no-clip assignment at given (weights, bias, activation) widths.
    pub uniform: &'a dyn Fn(u32, u32, u32) -> Assignment,
    /// Strategies may switch a layer's weights between per-channel and per-tensor offsets
    /// (`[quant] weight_offsets = "choose"`).
    pub choose_offsets: bool,
}

impl Space<'_> {
    /// Slots of one kind, in layer order.
    #[must_use]
    pub fn slots(&self, a: &Assignment, kind: Kind) -> Vec<Slot> {
        a.layers
            .iter()
            .enumerate()
            .filter(|(_, l)| kind == Kind::Activation || l.weights.is_some())
            .map(|(i, _)| match kind {
                Kind::Weights => Slot::Weights(i),
                Kind::Bias => Slot::Bias(i),
                Kind::Activation => Slot::Output(i),
            })
            .collect()
    }
}
