//! A per-layer format assignment ("operating point") and its TOML point file.
//!
//! ```toml
//! rounding = "half-even"        # half-even | half-up | floor | half-away
//! overflow = "saturate"         # saturate | wrap
//! range = "twos-complement"     # twos-complement | symmetric
//! [input]
//! bits = 8
//! frac = 8
//! signed = false
//! [[layer]]
//! name = "/conv1/Conv"          # ONNX node name of the owning node
//! weights = { bits = 6, frac = 7 }     # per_channel = true: one offset per output channel
//! bias = { bits = 8, frac = 6 }
//! output = { bits = 6, frac = 3, signed = false }
//! accumulator = 20              # optional: saturate/wrap the accumulator to this width
//! ```

use super::format::{channel_headroom, Format, RangeMode, MAX_ABS_FRAC};
use super::round::{quantize, Arith, Overflow, Rounding};
use crate::model::Graph;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Formats of one layer that owns an output (docs/fixed-point.md, "Which node owns which format").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LayerFormats {
    /// Index of the node in [`Graph::nodes`].
    pub node: usize,
    pub weights: Option<Format>,
    /// The weights carry one fractional offset per output channel, `weights.frac` plus the
    /// channel's headroom (docs/fixed-point.md, "Per-channel weight offsets"); the width stays
    /// the layer's.
    pub per_channel: bool,
    pub bias: Option<Format>,
    pub output: Format,
    /// Accumulator width in bits, if the hardware bounds it.
    pub accumulator: Option<u32>,
}

impl LayerFormats {
    /// The fractional offset of each of the `channels` output channels' weights (`weights` are
    /// the layer's float weights, `channels` equal slices): `frac` for every channel, or under
    /// per-channel offsets `frac + d_c` ([`channel_headroom`]), at most the largest legal offset.
    /// Empty for a layer without weights.
    pub fn weight_fracs(&self, weights: &[f64], channels: usize) -> Vec<i32> {
        let Some(w) = self.weights else { return Vec::new() };
        if !self.per_channel {
            return vec![w.frac; channels];
        }
        channel_headroom(weights, channels).into_iter().map(|d| (w.frac + d).min(MAX_ABS_FRAC)).collect()
    }

    /// The weights' integer codes, channel `c` (the `c`-th of `fracs.len()` equal slices) at
    /// offset `fracs[c]` ([`LayerFormats::weight_fracs`]): what the engine multiplies and the
    /// export hands over. Empty for a layer without weights.
    pub fn weight_codes(&self, weights: &[f64], fracs: &[i32], arith: Arith) -> Vec<i64> {
        self.weight_codes_with(weights, fracs, |x, f, out| out.extend(x.iter().map(|&v| quantize(v, f, arith))))
    }

    /// [`Self::weight_codes`] with each channel's weights quantized into its format by
    /// `quantize` (appending to the codes): the engine passes its vectorized quantizer.
    pub fn weight_codes_with(
        &self,
        weights: &[f64],
        fracs: &[i32],
        mut quantize: impl FnMut(&[f64], Format, &mut Vec<i64>),
    ) -> Vec<i64> {
        let Some(w) = self.weights else { return Vec::new() };
        let mut codes = Vec::with_capacity(weights.len());
        for (channel, &frac) in weights.chunks(weights.len() / fracs.len().max(1)).zip(fracs) {
            quantize(channel, Format { frac, ..w }, &mut codes);
        }
        codes
    }
}

/// Every format of a network: the operating point the engine evaluates and the cost model prices.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub arith: Arith,
    pub input: Format,
    /// One entry per node that owns an output format, in graph order.
    pub layers: Vec<LayerFormats>,
}

impl Assignment {
    /// The format of every value in the graph: owners' outputs, and pass-through for the rest.
    pub fn value_formats(&self, graph: &Graph) -> Vec<Format> {
        let mut fmts = vec![self.input; graph.values.len()];
        let mut owned = self.layers.iter().peekable();
        for (i, node) in graph.nodes.iter().enumerate() {
            fmts[node.output] = match owned.peek() {
                Some(l) if l.node == i => owned.next().unwrap().output,
                _ => fmts[node.inputs[0]],
            };
        }
        fmts
    }

    /// The layer entry of node `node`, if it owns one.
    pub fn layer_of(&self, node: usize) -> Option<&LayerFormats> {
        self.layers.iter().find(|l| l.node == node)
    }

    /// Check the assignment matches the graph and every format is legal.
    pub fn validate(&self, graph: &Graph, non_negative: &[bool]) -> Result<()> {
        let owners: Vec<usize> = graph.quant_layers().map(|(i, _)| i).collect();
        let have: Vec<usize> = self.layers.iter().map(|l| l.node).collect();
        if owners != have {
            bail!("the assignment does not list exactly the quantized layers of the model, in order");
        }
        self.input.validate().map_err(|e| anyhow::anyhow!("[input]: {e}"))?;
        if !self.input.signed && !non_negative[graph.input] {
            bail!("[input] is unsigned but the preprocessed input can be negative");
        }
        for l in &self.layers {
            let node = &graph.nodes[l.node];
            let ctx = |what: &str, e: String| anyhow::anyhow!("layer '{}' {what}: {e}", node.name);
            l.output.validate().map_err(|e| ctx("output", e))?;
            if !l.output.signed && !non_negative[node.output] {
                bail!(
                    "layer '{}' output is unsigned, but its values can be negative (only outputs after a ReLU, or of non-negative inputs, may be unsigned)",
                    node.name
                );
            }
            if l.per_channel && l.weights.is_none() {
                bail!("layer '{}' ({}) has per-channel weight offsets but no weights", node.name, node.op.kind());
            }
            match (node.op.has_params(), l.weights, l.bias) {
                (true, Some(w), Some(b)) => {
                    w.validate().map_err(|e| ctx("weights", e))?;
                    b.validate().map_err(|e| ctx("bias", e))?;
                    if !w.signed || !b.signed {
                        bail!("layer '{}': weights and bias formats are signed", node.name);
                    }
                }
                (true, _, _) => bail!("layer '{}' ({}) needs weights and bias formats", node.name, node.op.kind()),
                (false, None, None) => {}
                (false, _, _) => bail!("layer '{}' ({}) has no weights or bias to format", node.name, node.op.kind()),
            }
            if let Some(acc) = l.accumulator {
                if !(2..=64).contains(&acc) {
                    bail!("layer '{}': accumulator = {acc} is out of range 2..=64", node.name);
                }
            }
        }
        Ok(())
    }

    /// Serialize as a point file (TOML).
    pub fn to_toml(&self, graph: &Graph) -> String {
        let file = PointFile {
            rounding: Some(self.arith.rounding),
            overflow: Some(self.arith.overflow),
            range: Some(self.arith.range),
            input: Some(RawFormat::from(self.input)),
            layer: self
                .layers
                .iter()
                .map(|l| RawLayer {
                    name: graph.nodes[l.node].name.clone(),
                    weights: l
                        .weights
                        .map(|w| RawFormat { per_channel: l.per_channel.then_some(true), ..RawFormat::param(w) }),
                    bias: l.bias.map(RawFormat::param),
                    output: Some(RawFormat::from(l.output)),
                    accumulator: l.accumulator,
                })
                .collect(),
        };
        toml::to_string(&file).expect("point files always serialize")
    }

    /// Parse a point file against a graph. `defaults` supplies anything the file leaves out
    /// (a point file may list only the layers it changes).
    pub fn from_toml(text: &str, origin: &str, graph: &Graph, defaults: &Assignment) -> Result<Assignment> {
        let raw: PointFile = toml::from_str(text).with_context(|| format!("invalid point file {origin}"))?;
        // An empty file is most likely a truncated or wrong one; the uniform 8-bit point is what
        // leaving out --point gives.
        if raw.rounding.is_none()
            && raw.overflow.is_none()
            && raw.range.is_none()
            && raw.input.is_none()
            && raw.layer.is_empty()
        {
            bail!("{origin}: the point file sets nothing (no arithmetic, no [input], no [[layer]])");
        }
        let mut a = defaults.clone();
        if let Some(r) = raw.rounding {
            a.arith.rounding = r;
        }
        if let Some(o) = raw.overflow {
            a.arith.overflow = o;
        }
        if let Some(r) = raw.range {
            a.arith.range = r;
        }
        if let Some(i) = raw.input {
            if i.per_channel.is_some() {
                bail!("{origin}: [input]: per_channel applies to layer weights only");
            }
            a.input = i.merge(a.input);
        }
        let mut listed: Vec<(usize, usize)> = Vec::new();
        for (entry, rl) in raw.layer.into_iter().enumerate() {
            let Some(node) = graph.node_by_name(&rl.name) else {
                bail!("{origin}: layer '{}' is not a node of the model", rl.name);
            };
            // Two entries for one layer: one would silently win.
            if let Some(&(_, first)) = listed.iter().find(|(n, _)| *n == node) {
                bail!(
                    "{origin}: layer '{}' is listed twice, in [[layer]] entries {} and {} (counting from 1)",
                    rl.name,
                    first + 1,
                    entry + 1
                );
            }
            listed.push((node, entry));
            let Some(l) = a.layers.iter_mut().find(|l| l.node == node) else {
                bail!(
                    "{origin}: node '{}' ({}) owns no formats (its output keeps its input's format)",
                    rl.name,
                    graph.nodes[node].op.kind()
                );
            };
            let name = &rl.name;
            // Only weights have channels of their own to offset.
            for (what, raw) in [("bias", &rl.bias), ("output", &rl.output)] {
                if raw.as_ref().is_some_and(|r| r.per_channel.is_some()) {
                    bail!("{origin}: layer '{name}': per_channel applies to weights only, not to its {what}");
                }
            }
            if let Some(pc) = rl.weights.as_ref().and_then(|w| w.per_channel) {
                l.per_channel = pc;
            }
            let merge_param = |raw: Option<RawFormat>, cur: Option<Format>, what: &str| -> Result<Option<Format>> {
                match (raw, cur) {
                    (None, cur) => Ok(cur),
                    (Some(r), Some(c)) => Ok(Some(r.merge(c))),
                    (Some(_), None) => bail!("{origin}: layer '{name}' has no {what}"),
                }
            };
            l.weights = merge_param(rl.weights, l.weights, "weights")?;
            l.bias = merge_param(rl.bias, l.bias, "bias")?;
            if let Some(o) = rl.output {
                l.output = o.merge(l.output);
            }
            if rl.accumulator.is_some() {
                l.accumulator = rl.accumulator;
            }
        }
        Ok(a)
    }

    /// Read and validate a point file.
    pub fn load(path: &Path, graph: &Graph, defaults: &Assignment, non_negative: &[bool]) -> Result<Assignment> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read point file {}", path.display()))?;
        let a = Self::from_toml(&text, &path.display().to_string(), graph, defaults)?;
        a.validate(graph, non_negative).with_context(|| format!("invalid point file {}", path.display()))?;
        Ok(a)
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PointFile {
    #[serde(skip_serializing_if = "Option::is_none")]
    rounding: Option<Rounding>,
    #[serde(skip_serializing_if = "Option::is_none")]
    overflow: Option<Overflow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    range: Option<RangeMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<RawFormat>,
    #[serde(default)]
    layer: Vec<RawLayer>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLayer {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    weights: Option<RawFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bias: Option<RawFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<RawFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    accumulator: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFormat {
    #[serde(skip_serializing_if = "Option::is_none")]
    bits: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frac: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signed: Option<bool>,
    /// Weights only: one offset per output channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    per_channel: Option<bool>,
}

impl RawFormat {
    fn from(f: Format) -> Self {
        RawFormat { bits: Some(f.bits), frac: Some(f.frac), signed: Some(f.signed), per_channel: None }
    }
    /// Weights and biases are always signed: leave the key out of the file.
    fn param(f: Format) -> Self {
        RawFormat { bits: Some(f.bits), frac: Some(f.frac), signed: None, per_channel: None }
    }
    fn merge(self, base: Format) -> Format {
        Format {
            bits: self.bits.unwrap_or(base.bits),
            frac: self.frac.unwrap_or(base.frac),
            signed: self.signed.unwrap_or(base.signed),
        }
    }
}
