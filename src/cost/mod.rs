//! Hardware cost profiles: a TOML file (docs/cost-models.md) that prices any per-layer
//! fixed-point assignment in memory, multiplication cost (BOPs), energy, area, LUTs and DSPs.
//!
//! - [`profile`]: the schema, parsed with `deny_unknown_fields` and validated once into a
//!   [`CostProfile`] (errors carry file, line and column); the shipped profiles are built in.
//! - [`mult`]: multiplier models (`bilinear`, `table`, `dsp`, `lut`).
//! - [`price`]: [`CostModel`] precomputes a graph's per-layer counts once and prices
//!   assignments without allocating ([`CostModel::objectives`]) or with a per-layer breakdown
//!   ([`CostModel::price`]).
//! - [`report`]: the `qdse cost` table and JSON, side by side with uniform 8-bit and float32.

pub mod mult;
pub mod price;
pub mod profile;
pub mod report;
pub mod synth;

pub use mult::{dsp_tiles, finn_luts, DspModel, LutModel, MultCost, MultTable, MultiplierModel, Poly};
pub use price::{
    objective_names, price, price_float32, price_uniform, uniform_assignment, CostModel, Costs, LayerCost, MemoryBits,
    Objectives, PartCost,
};
pub use profile::{
    builtin, Accumulator, AccumulatorWidth, ActivationOperand, ActivationStorage, CostProfile, Datapath, EnergyAt,
    Memory, MemoryRole, Reads, StorageClass, BUILTIN_NAMES,
};
pub use report::{breakdown_json, breakdown_table};

/// The objectives a profile may expose, in their fixed output order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Objective {
    /// Allocated storage for weights, biases and activations, in bits.
    MemoryBits,
    /// Sum over layers of `bw * ba * multiplications` (bit operations, BOPs), per inference.
    MultCost,
    /// Energy per inference, in picojoules.
    EnergyPj,
    /// Silicon area, in square micrometres.
    AreaUm2,
    /// FPGA look-up tables.
    Luts,
    /// FPGA DSP blocks.
    Dsps,
}

impl Objective {
    pub const ALL: [Objective; 6] = [
        Objective::MemoryBits,
        Objective::MultCost,
        Objective::EnergyPj,
        Objective::AreaUm2,
        Objective::Luts,
        Objective::Dsps,
    ];

    /// The key used in profiles, CSV headers and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Objective::MemoryBits => "memory_bits",
            Objective::MultCost => "mult_cost",
            Objective::EnergyPj => "energy_pj",
            Objective::AreaUm2 => "area_um2",
            Objective::Luts => "luts",
            Objective::Dsps => "dsps",
        }
    }

    pub fn from_name(name: &str) -> Option<Objective> {
        Self::ALL.into_iter().find(|o| o.name() == name)
    }

    /// Unit, for table headers.
    pub fn unit(self) -> &'static str {
        match self {
            Objective::MemoryBits => "bit",
            Objective::MultCost => "bit-product",
            Objective::EnergyPj => "pJ",
            Objective::AreaUm2 => "um2",
            Objective::Luts => "LUT",
            Objective::Dsps => "DSP",
        }
    }

    /// Position in [`Objective::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Objective {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
