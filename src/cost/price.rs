//! Pricing an assignment with a profile (docs/cost-models.md, "How an assignment is priced").
//!
//! [`CostModel::new`] precomputes everything that depends only on the graph (parameter counts,
//! multiplications, fan-in, which layer produces each value, the ping-pong pairs), so that
//! [`CostModel::objectives`] prices an assignment without allocating, and
//! [`CostModel::price`] adds a per-layer breakdown.

use super::profile::{AccumulatorWidth, ActivationOperand, ActivationStorage, CostProfile, Datapath, EnergyAt, Reads};
use super::Objective;
use crate::fixed::format::channel_headroom;
use crate::fixed::{Arith, Assignment, Format, LayerFormats, RangeMode};
use crate::model::{Graph, Op};
use anyhow::{bail, Result};
use std::sync::Arc;

/// Values of every objective; only the profile's are exposed (`get` returns `None` for others).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Objectives {
    values: [f64; 6],
    exposed: [bool; 6],
}

impl Objectives {
    fn new(profile: &CostProfile) -> Self {
        let mut exposed = [false; 6];
        for o in &profile.objectives {
            exposed[o.index()] = true;
        }
        Objectives { values: [0.0; 6], exposed }
    }

    /// The value of an exposed objective.
    pub fn get(&self, o: Objective) -> Option<f64> {
        self.exposed[o.index()].then(|| self.values[o.index()])
    }

    /// The value of an exposed objective by its name (`memory_bits`, `mult_cost`, ...).
    pub fn by_name(&self, name: &str) -> Option<f64> {
        Objective::from_name(name).and_then(|o| self.get(o))
    }

    /// The value whether or not the profile exposes it (0 when the profile has no figures).
    pub fn raw(&self, o: Objective) -> f64 {
        self.values[o.index()]
    }

    /// Exposed objectives and their values, in [`Objective::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Objective, f64)> + '_ {
        Objective::ALL.into_iter().filter_map(|o| self.get(o).map(|v| (o, v)))
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.iter().map(|(o, _)| o.name()).collect()
    }

    fn add(&mut self, o: Objective, v: f64) {
        self.values[o.index()] += v;
    }
}

/// Names of the objectives a profile exposes, in their fixed order.
pub fn objective_names(p: &CostProfile) -> Vec<&'static str> {
    p.objectives.iter().map(|o| o.name()).collect()
}

/// The cost of one layer (a node that owns an output format).
#[derive(Debug, Clone, PartialEq)]
pub struct LayerCost {
    /// Index of the node in [`Graph::nodes`].
    pub node: usize,
    pub name: Arc<str>,
    pub op: &'static str,
    /// Multiplication operand widths (0 when the layer has no multiplications).
    pub bw: u32,
    pub ba: u32,
    /// Accumulator width (0 when the layer accumulates nothing).
    pub acc_bits: u32,
    /// Storage in bits before allocation granularity: B x count.
    pub weight_bits: u64,
    pub bias_bits: u64,
    pub activation_bits: u64,
    /// Multiplications per inference.
    pub mults: u64,
    /// `bw * ba * mults`.
    pub mult_cost: u64,
    /// Energy per inference: multiplications, accumulations, memory traffic, and their sum.
    pub mult_energy_pj: f64,
    pub acc_energy_pj: f64,
    pub mem_energy_pj: f64,
    pub energy_pj: f64,
    /// This layer's multipliers and accumulators (dataflow); 0 in a shared datapath.
    pub lanes: u64,
    pub area_um2: f64,
    pub luts: f64,
    pub dsps: f64,
}

/// Allocated storage in bits (after each storage class's granularity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryBits {
    pub weights: u64,
    pub biases: u64,
    pub activations: u64,
}

impl MemoryBits {
    pub fn total(&self) -> u64 {
        self.weights + self.biases + self.activations
    }
}

/// Area-like costs of a part of the design (storage, or a shared multiplier array).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PartCost {
    pub area_um2: f64,
    pub luts: f64,
    pub dsps: f64,
}

/// The full price of an assignment.
#[derive(Debug, Clone, PartialEq)]
pub struct Costs {
    pub layers: Vec<LayerCost>,
    pub memory: MemoryBits,
    /// Storage area and LUTs (already included in the totals).
    pub storage: PartCost,
    /// The shared multiplier array (shared datapath only; included in the totals).
    pub array: Option<PartCost>,
    /// Array operand and accumulator widths (shared datapath only).
    pub array_widths: Option<(u32, u32, u32)>,
    pub totals: Objectives,
}

impl Costs {
    /// An exposed objective's total by name.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.totals.by_name(name)
    }
}

/// Price an assignment (the assignment must match the graph: [`Assignment::validate`]).
pub fn price(graph: &Graph, a: &Assignment, p: &CostProfile) -> Costs {
    CostModel::new(graph, p).price(a)
}

/// An assignment with every tensor `bits` wide (the fractional offsets do not affect cost).
/// `accumulator` is left to the profile's rule.
pub fn uniform_assignment(graph: &Graph, bits: u32) -> Assignment {
    let f = Format::new(bits, 0, true);
    Assignment {
        arith: Arith::default(),
        input: f,
        layers: graph
            .quant_layers()
            .map(|(i, n)| LayerFormats {
                node: i,
                per_channel: false,
                weights: n.op.has_params().then_some(f),
                bias: n.op.has_params().then_some(f),
                output: f,
                accumulator: None,
            })
            .collect(),
    }
}

/// The uniform `bits`-bit assignment's price (the "uniform 8-bit" baseline for `bits = 8`).
pub fn price_uniform(graph: &Graph, p: &CostProfile, bits: u32) -> Costs {
    price(graph, &uniform_assignment(graph, bits), p)
}

/// The float32 model's price: every tensor 32 bits wide and 32-bit accumulators, priced with
/// the profile's integer figures (a float multiplier costs more: Horowitz gives 3.7 pJ for an
/// fp32 multiply against 3.1 pJ for int32).
pub fn price_float32(graph: &Graph, p: &CostProfile) -> Costs {
    let mut a = uniform_assignment(graph, 32);
    for l in &mut a.layers {
        l.accumulator = Some(32);
    }
    price(graph, &a, p)
}

/// Where a value's format comes from.
#[derive(Debug, Clone, Copy)]
enum Src {
    Input,
    Layer(usize),
}

/// What a layer's hardware does, for pricing (not [`crate::eval::calibrate::Kind`], a tensor's kind).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Work {
    /// Conv / Dense: MACs with a weight operand.
    Mac,
    /// Per-element scale: one multiplication per element.
    Affine,
    /// Add / AvgPool / GlobalAvgPool: additions only.
    Adds,
    /// Concat: storage only.
    Store,
}

#[derive(Debug, Clone)]
struct LayerInfo {
    node: usize,
    name: Arc<str>,
    op: &'static str,
    kind: Work,
    weights: u64,
    biases: u64,
    /// Bits that store the layer's per-channel weight offsets when it has them: one shift
    /// amount `d_c` per output channel, as wide as the largest needs (docs/cost-models.md,
    /// "Per-channel weight offsets").
    channel_shift_bits: u64,
    macs: u64,
    fan_in: u64,
    out_numel: u64,
    inputs: Vec<usize>,
    lanes: u64,
}

/// A graph prepared for pricing with one profile. Cheap to share across threads.
#[derive(Debug, Clone)]
pub struct CostModel {
    profile: CostProfile,
    layers: Vec<LayerInfo>,
    value_src: Vec<Src>,
    value_numel: Vec<u64>,
    /// (inputs, output) of each node that holds a tensor in a ping-pong buffer.
    pairs: Vec<(Vec<usize>, usize)>,
    input: usize,
}

/// One layer's numbers, before the per-layer breakdown is (optionally) kept.
#[derive(Debug, Clone, Copy, Default)]
struct Row {
    bw: u32,
    ba: u32,
    acc_bits: u32,
    weight_bits: u64,
    bias_bits: u64,
    activation_bits: u64,
    mults: u64,
    mult_cost: u64,
    mult_energy_pj: f64,
    acc_energy_pj: f64,
    mem_energy_pj: f64,
    area_um2: f64,
    luts: f64,
    dsps: f64,
}

fn ceil_log2(n: u64) -> u32 {
    if n <= 1 {
        0
    } else {
        64 - (n - 1).leading_zeros()
    }
}

impl CostModel {
    pub fn new(graph: &Graph, profile: &CostProfile) -> CostModel {
        let mut value_src = vec![Src::Input; graph.values.len()];
        let mut layers = Vec::new();
        let mut pairs = Vec::new();
        for (i, node) in graph.nodes.iter().enumerate() {
            let owns = node.op.owns_output();
            value_src[node.output] = if owns { Src::Layer(layers.len()) } else { value_src[node.inputs[0]] };
            if !matches!(node.op, Op::Flatten) {
                pairs.push((node.inputs.clone(), node.output));
            }
            if !owns {
                continue;
            }
            let kind = match node.op {
                Op::Conv(_) | Op::Dense(_) => Work::Mac,
                Op::Affine(_) => Work::Affine,
                Op::Add { .. } | Op::AvgPool { .. } | Op::GlobalAvgPool => Work::Adds,
                Op::Concat | Op::MaxPool(_) | Op::GlobalMaxPool | Op::Activation(_) | Op::Flatten => Work::Store,
            };
            let (w, b) = graph.param_counts(node);
            let channel_shift_bits = node.op.params().map_or(0, |(wv, bv)| {
                let most = channel_headroom(wv, bv.len()).into_iter().max().unwrap_or(0);
                bv.len() as u64 * u64::from(ceil_log2(most as u64 + 1))
            });
            let lanes = match &profile.datapath {
                Datapath::Dataflow { parallelism, layer_parallelism } => {
                    u64::from(*layer_parallelism.get(&node.name).unwrap_or(parallelism))
                }
                Datapath::Shared { .. } => 0,
            };
            layers.push(LayerInfo {
                node: i,
                name: Arc::from(node.name.as_str()),
                op: node.op.kind(),
                kind,
                weights: w as u64,
                biases: b as u64,
                channel_shift_bits,
                macs: graph.macs(node),
                fan_in: graph.fan_in(node) as u64,
                out_numel: graph.values[node.output].numel() as u64,
                inputs: node.inputs.clone(),
                lanes,
            });
        }
        CostModel {
            profile: profile.clone(),
            layers,
            value_src,
            value_numel: graph.values.iter().map(|v| v.numel() as u64).collect(),
            pairs,
            input: graph.input,
        }
    }

    pub fn profile(&self) -> &CostProfile {
        &self.profile
    }

    /// Names of `layer_parallelism` entries that are not layers of this graph (likely typos).
    pub fn unknown_layer_names(&self) -> Vec<String> {
        match &self.profile.datapath {
            Datapath::Dataflow { layer_parallelism, .. } => layer_parallelism
                .keys()
                .filter(|k| !self.layers.iter().any(|l| &*l.name == k.as_str()))
                .cloned()
                .collect(),
            Datapath::Shared { .. } => Vec::new(),
        }
    }

    #[inline]
    fn fmt(&self, a: &Assignment, v: usize) -> Format {
        match self.value_src[v] {
            Src::Input => a.input,
            Src::Layer(j) => a.layers[j].output,
        }
    }

    /// (bw, ba) of a multiplying layer under the profile's activation-operand rule.
    fn operands(&self, a: &Assignment, j: usize) -> (u32, u32) {
        let (l, lf) = (&self.layers[j], &a.layers[j]);
        let bw = lf.weights.map_or(0, |f| f.bits);
        let ba = match self.profile.activation_operand {
            ActivationOperand::Input => self.fmt(a, l.inputs[0]).bits,
            ActivationOperand::Output => lf.output.bits,
        };
        (bw, ba)
    }

    /// Accumulator width of layer `j` (0 for layers without additions).
    fn acc_bits(&self, a: &Assignment, j: usize, bw: u32, ba: u32) -> u32 {
        let (l, lf) = (&self.layers[j], &a.layers[j]);
        match (l.kind, self.profile.accumulator.width) {
            (Work::Store, _) => 0,
            (_, AccumulatorWidth::Fixed(n)) => n,
            (_, AccumulatorWidth::Derived { guard_bits }) => lf.accumulator.unwrap_or_else(|| match l.kind {
                Work::Mac | Work::Affine => bw + ba + ceil_log2(l.fan_in) + guard_bits,
                _ => {
                    let widest = l.inputs.iter().map(|&v| self.fmt(a, v).bits).max().unwrap_or(0);
                    widest + ceil_log2(l.fan_in)
                }
            }),
        }
    }

    /// Array (bw, ba, accumulator) widths of a shared datapath: the widest of any layer.
    fn array_widths(&self, a: &Assignment) -> (u32, u32, u32) {
        let mut w = (0, 0, 0);
        for (j, l) in self.layers.iter().enumerate() {
            if matches!(l.kind, Work::Mac | Work::Affine) {
                let (bw, ba) = self.operands(a, j);
                w = (w.0.max(bw), w.1.max(ba), w.2.max(self.acc_bits(a, j, bw, ba)));
            }
        }
        w
    }

    /// Error naming the layer and the profile's table if some multiplication of `a` is not
    /// covered by the multiplier model.
    pub fn check(&self, a: &Assignment) -> Result<()> {
        if let Datapath::Shared { .. } = self.profile.datapath {
            let (bw, ba, _) = self.array_widths(a);
            return self.profile.check_widths(bw, ba);
        }
        for (j, l) in self.layers.iter().enumerate() {
            if matches!(l.kind, Work::Mac | Work::Affine) {
                let (bw, ba) = self.operands(a, j);
                if let Err(e) = self.profile.check_widths(bw, ba) {
                    bail!("layer '{}': {e:#}", l.name);
                }
            }
        }
        Ok(())
    }

    /// Totals only, without allocating: the search's hot path.
    #[must_use]
    pub fn objectives(&self, a: &Assignment) -> Objectives {
        self.run(a, |_, _| {}).totals
    }

    /// Totals and the per-layer breakdown.
    #[must_use]
    pub fn price(&self, a: &Assignment) -> Costs {
        let mut layers = Vec::with_capacity(self.layers.len());
        let priced = self.run(a, |l, r| {
            layers.push(LayerCost {
                node: l.node,
                name: l.name.clone(),
                op: l.op,
                bw: r.bw,
                ba: r.ba,
                acc_bits: r.acc_bits,
                weight_bits: r.weight_bits,
                bias_bits: r.bias_bits,
                activation_bits: r.activation_bits,
                mults: r.mults,
                mult_cost: r.mult_cost,
                mult_energy_pj: r.mult_energy_pj,
                acc_energy_pj: r.acc_energy_pj,
                mem_energy_pj: r.mem_energy_pj,
                energy_pj: r.mult_energy_pj + r.acc_energy_pj + r.mem_energy_pj,
                lanes: l.lanes,
                area_um2: r.area_um2,
                luts: r.luts,
                dsps: r.dsps,
            });
        });
        let Priced { totals, memory, storage, array, array_widths } = priced;
        Costs { layers, memory, storage, array, array_widths, totals }
    }

    /// Price every layer (each one's row goes to `sink`), then the memories and the shared array.
    fn run(&self, a: &Assignment, mut sink: impl FnMut(&LayerInfo, &Row)) -> Priced {
        debug_assert_eq!(a.layers.len(), self.layers.len(), "assignment does not match the graph");
        let p = &self.profile;
        let shared = match p.datapath {
            Datapath::Shared { multipliers, energy_at } => Some((u64::from(multipliers), energy_at)),
            Datapath::Dataflow { .. } => None,
        };
        let widths = shared.map(|_| self.array_widths(a));
        let pass = Pass {
            energy_widths: widths.filter(|_| matches!(shared, Some((_, EnergyAt::Array)))),
            dataflow: shared.is_none(),
        };
        let mut tot = Objectives::new(p);
        let mut memory = MemoryBits::default();
        let mut act_bits_all = 0u64;
        for (j, l) in self.layers.iter().enumerate() {
            let r = self.price_layer(a, j, &pass, &mut memory, &mut act_bits_all);
            tot.add(Objective::MultCost, r.mult_cost as f64);
            tot.add(Objective::EnergyPj, r.mult_energy_pj + r.acc_energy_pj + r.mem_energy_pj);
            tot.add(Objective::AreaUm2, r.area_um2);
            tot.add(Objective::Luts, r.luts);
            tot.add(Objective::Dsps, r.dsps);
            sink(l, &r);
        }
        memory.activations = self.activation_memory(a, act_bits_all);
        let storage = self.storage_cost(&memory);
        tot.add(Objective::MemoryBits, memory.total() as f64);
        tot.add(Objective::AreaUm2, storage.area_um2);
        tot.add(Objective::Luts, storage.luts);

        let array = shared.map(|(n, _)| {
            let (bw, ba, acc) = widths.expect("a shared datapath has array widths");
            let m = p.multiplier.cost(bw, ba, n);
            let part = PartCost {
                area_um2: m.area_um2 + n as f64 * p.accumulator.area(acc),
                luts: m.luts + n as f64 * p.accumulator.luts(acc),
                dsps: m.dsps,
            };
            tot.add(Objective::AreaUm2, part.area_um2);
            tot.add(Objective::Luts, part.luts);
            tot.add(Objective::Dsps, part.dsps);
            part
        });
        Priced { totals: tot, memory, storage, array, array_widths: widths }
    }

    /// Layer `j`'s row: its memory traffic, and its multiplications or additions. Adds its
    /// parameters to `memory` and its activations to `act_bits_all` (for storage of all of them).
    fn price_layer(
        &self,
        a: &Assignment,
        j: usize,
        pass: &Pass,
        memory: &mut MemoryBits,
        act_bits_all: &mut u64,
    ) -> Row {
        let (p, l, lf) = (&self.profile, &self.layers[j], &a.layers[j]);
        let mem = &p.memory;
        let (wc, bc, ac) =
            (&p.storage[mem.weights.class], &p.storage[mem.biases.class], &p.storage[mem.activations.class]);
        let mut r = Row::default();
        let out_bits = u64::from(lf.output.bits);
        r.activation_bits = l.out_numel * out_bits;
        // memory traffic: write the output once, read the inputs
        r.mem_energy_pj += r.activation_bits as f64 * ac.write_pj_per_bit;
        let per_mac_reads = mem.activations.reads == Reads::PerMac && matches!(l.kind, Work::Mac | Work::Affine);
        if per_mac_reads {
            r.mem_energy_pj += (l.macs * u64::from(self.fmt(a, l.inputs[0]).bits)) as f64 * ac.read_pj_per_bit;
        } else {
            for &v in &l.inputs {
                let bits = self.value_numel[v] * u64::from(self.fmt(a, v).bits);
                r.mem_energy_pj += bits as f64 * ac.read_pj_per_bit;
            }
        }
        match mem.activation_storage {
            ActivationStorage::All => *act_bits_all += ac.allocate(r.activation_bits),
            ActivationStorage::PingPong => {}
        }

        if matches!(l.kind, Work::Mac | Work::Affine) {
            let (bw, ba) = self.operands(a, j);
            let bb = lf.bias.map_or(0, |f| f.bits);
            let bias_removed = mem.removed_bias_is_free
                && bb == 1
                && a.arith.range == RangeMode::Symmetric
                && lf.bias.is_some_and(|f| f.signed);
            r.bw = bw;
            r.ba = ba;
            // Per-channel offsets store one shift amount per channel beside the weights.
            let shifts = if lf.per_channel { l.channel_shift_bits } else { 0 };
            r.weight_bits = l.weights * u64::from(bw) + shifts;
            r.bias_bits = if bias_removed { 0 } else { l.biases * u64::from(bb) };
            memory.weights += wc.allocate(r.weight_bits);
            memory.biases += bc.allocate(r.bias_bits);
            r.mem_energy_pj += match mem.weights.reads {
                Reads::Once => r.weight_bits as f64,
                Reads::PerMac => (l.macs * u64::from(bw)) as f64,
            } * wc.read_pj_per_bit;
            r.mem_energy_pj += r.bias_bits as f64 * bc.read_pj_per_bit;
            self.price_macs(a, j, pass, &mut r);
        } else if l.kind == Work::Adds {
            r.acc_bits = self.acc_bits(a, j, 0, 0);
            let adds = l.out_numel * l.fan_in.saturating_sub(1).max(1);
            r.acc_energy_pj = adds as f64 * p.accumulator.energy(r.acc_bits);
            if pass.dataflow {
                let n = l.lanes as f64;
                r.area_um2 = n * p.accumulator.area(r.acc_bits);
                r.luts = n * p.accumulator.luts(r.acc_bits);
            }
        }
        r
    }

    /// The multiplications of layer `j` (operand widths already in `r`): their cost, energy and,
    /// on a dataflow datapath, the layer's own multipliers and accumulators.
    fn price_macs(&self, a: &Assignment, j: usize, pass: &Pass, r: &mut Row) {
        let (p, l) = (&self.profile, &self.layers[j]);
        let (bw, ba) = (r.bw, r.ba);
        r.mults = l.macs;
        r.mult_cost = u64::from(bw) * u64::from(ba) * l.macs;
        r.acc_bits = self.acc_bits(a, j, bw, ba);
        let (ebw, eba, eacc) = pass.energy_widths.unwrap_or((bw, ba, r.acc_bits));
        if l.macs > 0 {
            r.mult_energy_pj = l.macs as f64 * p.multiplier.cost(ebw, eba, 1).energy_pj;
            r.acc_energy_pj = l.macs as f64 * p.accumulator.energy(eacc);
        }
        if pass.dataflow {
            let m = p.multiplier.cost(bw, ba, l.lanes);
            let n = l.lanes as f64;
            r.area_um2 = m.area_um2 + n * p.accumulator.area(r.acc_bits);
            r.luts = m.luts + n * p.accumulator.luts(r.acc_bits);
            r.dsps = m.dsps;
        }
    }

    /// Bits of activation memory: every activation (and the input, if counted), or the largest
    /// live set of inputs and output under ping-pong buffering.
    fn activation_memory(&self, a: &Assignment, act_bits_all: u64) -> u64 {
        let mem = &self.profile.memory;
        let ac = &self.profile.storage[mem.activations.class];
        match mem.activation_storage {
            ActivationStorage::All => {
                let input = if mem.include_input {
                    ac.allocate(self.value_numel[self.input] * u64::from(a.input.bits))
                } else {
                    0
                };
                act_bits_all + input
            }
            ActivationStorage::PingPong => {
                let bits = |v: usize| self.value_numel[v] * u64::from(self.fmt(a, v).bits);
                let live = self
                    .pairs
                    .iter()
                    .map(|(ins, out)| ins.iter().map(|&v| bits(v)).sum::<u64>() + bits(*out))
                    .max()
                    .unwrap_or(0);
                ac.allocate(live)
            }
        }
    }

    /// Area and LUTs of the memories holding `memory`.
    fn storage_cost(&self, memory: &MemoryBits) -> PartCost {
        let (p, mem) = (&self.profile, &self.profile.memory);
        let (wc, bc, ac) =
            (&p.storage[mem.weights.class], &p.storage[mem.biases.class], &p.storage[mem.activations.class]);
        PartCost {
            area_um2: memory.weights as f64 * wc.area_um2_per_bit
                + memory.biases as f64 * bc.area_um2_per_bit
                + memory.activations as f64 * ac.area_um2_per_bit,
            luts: memory.weights as f64 * wc.luts_per_bit
                + memory.biases as f64 * bc.luts_per_bit
                + memory.activations as f64 * ac.luts_per_bit,
            dsps: 0.0,
        }
    }
}

/// What one pass of the cost model gives: the objective totals and the parts they are made of.
struct Priced {
    totals: Objectives,
    memory: MemoryBits,
    storage: PartCost,
    /// The shared multiplier array, on a shared datapath.
    array: Option<PartCost>,
    /// (weights, activations, accumulator) widths of the shared array.
    array_widths: Option<(u32, u32, u32)>,
}

/// What the datapath fixes for every layer of one pass.
struct Pass {
    /// The widths multiplication and accumulation energy is priced at when a shared array's
    /// widths set it; else each layer's own.
    energy_widths: Option<(u32, u32, u32)>,
    /// Every layer has its own multipliers and accumulators (their area counts per layer).
    dataflow: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceil_log2_values() {
        assert_eq!(ceil_log2(0), 0);
        assert_eq!(ceil_log2(1), 0);
        assert_eq!(ceil_log2(2), 1);
        assert_eq!(ceil_log2(3), 2);
        assert_eq!(ceil_log2(4), 2);
        assert_eq!(ceil_log2(9), 4);
        assert_eq!(ceil_log2(288), 9);
        assert_eq!(ceil_log2(1 << 20), 20);
    }
}
