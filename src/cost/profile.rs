//! The cost-profile schema (docs/cost-models.md): raw serde structs that reject unknown keys,
//! validated once into a [`CostProfile`] with every default resolved. Every error names the
//! file, line and column it is about.

use super::mult::{DspModel, LutModel, MultTable, MultiplierModel, Poly};
use super::Objective;
use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use toml::Spanned;

/// Names of the profiles shipped in `cost-models/` and built into the binary.
pub const BUILTIN_NAMES: [&str; 6] =
    ["paper", "asic-45nm", "fpga-dsp48e2", "mcu-cortex-m", "asic-45nm-synth", "fpga-xcup-synth"];

/// The text of a shipped profile (`cost-models/NAME.toml`), so the binary works from any
/// directory.
pub fn builtin(name: &str) -> Option<&'static str> {
    match name {
        "paper" => Some(include_str!("../../cost-models/paper.toml")),
        "asic-45nm" => Some(include_str!("../../cost-models/asic-45nm.toml")),
        "fpga-dsp48e2" => Some(include_str!("../../cost-models/fpga-dsp48e2.toml")),
        "mcu-cortex-m" => Some(include_str!("../../cost-models/mcu-cortex-m.toml")),
        // Made by `qdse profile synth` (docs/cost-models.md, "Synthesized profiles").
        "asic-45nm-synth" => Some(include_str!("../../cost-models/asic-45nm-synth.toml")),
        "fpga-xcup-synth" => Some(include_str!("../../cost-models/fpga-xcup-synth.toml")),
        _ => None,
    }
}

/// Which activation is the second operand `ba` of a layer's multiplications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActivationOperand {
    /// The layer's input activation: what the hardware multiplies.
    #[default]
    Input,
    /// The layer's own output activation, as the seed paper's code computed it.
    Output,
}

/// How often a stored value is read per inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reads {
    /// Once per inference (stationary / fully reused operands).
    #[default]
    Once,
    /// Once for every multiplication that uses it (no reuse).
    PerMac,
}

/// How activation storage is sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActivationStorage {
    /// Every quantized layer's output feature map has its own storage (the paper's memory).
    #[default]
    All,
    /// Two buffers reused layer after layer: the largest (inputs + output) of any node.
    PingPong,
}

/// In a shared array, whether a layer's multiplication energy is priced at the layer's own
/// widths (operand gating) or at the array's (widest) widths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnergyAt {
    #[default]
    Layer,
    Array,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Style {
    #[default]
    Dataflow,
    Shared,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum ModelKind {
    Bilinear,
    Table,
    Dsp,
    Lut,
}

/// A storage class (`[storage.NAME]`): per-bit costs and allocation granularity.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageClass {
    pub name: String,
    pub area_um2_per_bit: f64,
    pub read_pj_per_bit: f64,
    pub write_pj_per_bit: f64,
    pub luts_per_bit: f64,
    /// Each tensor's storage is rounded up to a multiple of this many bits (1: none).
    pub granularity_bits: u64,
}

impl StorageClass {
    /// Bits allocated for a tensor of `bits` bits.
    pub fn allocate(&self, bits: u64) -> u64 {
        bits.div_ceil(self.granularity_bits) * self.granularity_bits
    }
}

/// Where one kind of tensor lives and how often it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryRole {
    /// Index into [`CostProfile::storage`].
    pub class: usize,
    pub reads: Reads,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Memory {
    pub weights: MemoryRole,
    /// Biases are read once per inference.
    pub biases: MemoryRole,
    pub activations: MemoryRole,
    pub activation_storage: ActivationStorage,
    /// Whether the network input counts as stored activations (`all` storage only; ping-pong
    /// always holds the first layer's input).
    pub include_input: bool,
    /// Whether a 1-bit bias under the symmetric range (it holds only 0: the bias is removed)
    /// costs no storage.
    pub removed_bias_is_free: bool,
}

/// Accumulator width rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccumulatorWidth {
    /// The assignment's explicit accumulator if set, else
    /// `bw + ba + ceil(log2(fan_in)) + guard_bits`.
    Derived { guard_bits: u32 },
    /// A fixed hardware accumulator (e.g. a 32-bit register), whatever the assignment says.
    Fixed(u32),
}

/// Adders/accumulators: one accumulation per multiplication, costed per accumulator bit.
#[derive(Debug, Clone, PartialEq)]
pub struct Accumulator {
    pub width: AccumulatorWidth,
    /// Energy of one accumulation: `energy_pj_per_bit * width + energy_pj`.
    pub energy_pj_per_bit: f64,
    pub energy_pj: f64,
    /// Area of one accumulator: `area_um2_per_bit * width + area_um2`.
    pub area_um2_per_bit: f64,
    pub area_um2: f64,
    pub luts_per_bit: f64,
}

impl Accumulator {
    pub fn energy(&self, bits: u32) -> f64 {
        self.energy_pj_per_bit * f64::from(bits) + self.energy_pj
    }
    pub fn area(&self, bits: u32) -> f64 {
        self.area_um2_per_bit * f64::from(bits) + self.area_um2
    }
    pub fn luts(&self, bits: u32) -> f64 {
        self.luts_per_bit * f64::from(bits)
    }
}

/// How multipliers are instantiated.
#[derive(Debug, Clone, PartialEq)]
pub enum Datapath {
    /// Each layer has its own `parallelism` multipliers (and accumulators): area sums over layers.
    Dataflow { parallelism: u32, layer_parallelism: BTreeMap<String, u32> },
    /// One array of `multipliers` multipliers, sized for the widest layer, runs every layer.
    Shared { multipliers: u32, energy_at: EnergyAt },
}

/// A validated cost profile: every default resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct CostProfile {
    pub name: String,
    pub description: String,
    /// The file it came from (or `cost-models/NAME.toml (built in)`).
    pub origin: String,
    /// Exposed objectives, in [`Objective::ALL`] order.
    pub objectives: Vec<Objective>,
    /// The objective the search minimises first; the chosen point is the lowest in it.
    pub primary: Objective,
    pub activation_operand: ActivationOperand,
    pub storage: Vec<StorageClass>,
    pub memory: Memory,
    pub multiplier: MultiplierModel,
    pub accumulator: Accumulator,
    pub datapath: Datapath,
}

impl CostProfile {
    /// Read and validate a profile file. Returns the profile and its warnings.
    pub fn load(path: &Path) -> Result<(CostProfile, Vec<String>)> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read cost profile {}", path.display()))?;
        Self::from_str(&text, &path.display().to_string())
    }

    /// Parse and validate profile text; `origin` names it in messages.
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(text: &str, origin: &str) -> Result<(CostProfile, Vec<String>)> {
        let src = Src { text, origin };
        let raw: RawProfile = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or_else(|| origin.to_string(), |s| src.at(&s));
            anyhow!("{at}: {}", e.message().trim_end())
        })?;
        let mut warnings = Vec::new();
        let p = validate(raw, &src, &mut warnings)?;
        Ok((p, warnings))
    }

    /// A shipped profile by name ([`BUILTIN_NAMES`]).
    pub fn builtin(name: &str) -> Option<Result<(CostProfile, Vec<String>)>> {
        builtin(name).map(|text| Self::from_str(text, &format!("cost-models/{name}.toml (built in)")))
    }

    /// A profile from a path, or a shipped profile's name when no such file exists.
    pub fn resolve(spec: &str) -> Result<(CostProfile, Vec<String>)> {
        let path = Path::new(spec);
        if !path.exists() {
            if let Some(r) = Self::builtin(spec) {
                return r;
            }
            bail!("cost profile '{spec}' is neither a file nor a built-in profile ({})", BUILTIN_NAMES.join(", "));
        }
        Self::load(path)
    }

    pub fn exposes(&self, o: Objective) -> bool {
        self.objectives.contains(&o)
    }

    /// Largest (weight, activation) widths the multiplier model covers (`None`: any).
    pub fn max_widths(&self) -> Option<(u32, u32)> {
        match &self.multiplier {
            MultiplierModel::Table(t) => Some(t.max_bits()),
            _ => None,
        }
    }

    /// Error (naming the table's file and line) if a `bw x ba` multiplication is not covered.
    /// Call it with the widest widths a search may propose, or per point before pricing.
    pub fn check_widths(&self, bw: u32, ba: u32) -> Result<()> {
        if let MultiplierModel::Table(t) = &self.multiplier {
            if t.cell(bw, ba).is_none() {
                let (mw, ma) = t.max_bits();
                bail!(
                    "{}: the multiplier table covers weights up to {mw} bits and activations up to {ma} bits; \
                     a {bw} x {ba}-bit multiplication is not covered (add a row or column)",
                    t.location
                );
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Raw schema

type Num = Spanned<f64>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    name: String,
    #[serde(default)]
    description: String,
    objectives: Spanned<Vec<Spanned<String>>>,
    primary: Option<Spanned<String>>,
    #[serde(default)]
    activation_operand: ActivationOperand,
    #[serde(default)]
    storage: BTreeMap<String, RawStorage>,
    #[serde(default)]
    memory: RawMemory,
    multiplier: Option<RawMultiplier>,
    #[serde(default)]
    accumulator: RawAccumulator,
    datapath: Option<RawDatapath>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    area_um2_per_bit: Option<Num>,
    read_pj_per_bit: Option<Num>,
    write_pj_per_bit: Option<Num>,
    luts_per_bit: Option<Num>,
    granularity_bits: Option<Spanned<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMemory {
    weights: Option<RawRole>,
    biases: Option<RawBiasRole>,
    activations: Option<RawActRole>,
    removed_bias_is_free: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    class: Option<Spanned<String>>,
    reads: Option<Reads>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBiasRole {
    class: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawActRole {
    class: Option<Spanned<String>>,
    reads: Option<Reads>,
    storage: Option<ActivationStorage>,
    include_input: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMultiplier {
    model: Option<Spanned<ModelKind>>,
    bilinear: Option<RawBilinear>,
    table: Option<RawTable>,
    dsp: Option<RawDsp>,
    lut: Option<RawLut>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBilinear {
    energy_pj: Option<RawPoly>,
    area_um2: Option<RawPoly>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPoly {
    a: Option<Num>,
    b: Option<Num>,
    c: Option<Num>,
    sqrt: Option<Num>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    weight_bits: Option<Spanned<Vec<u32>>>,
    activation_bits: Option<Spanned<Vec<u32>>>,
    energy_pj: Option<Spanned<Vec<Vec<f64>>>>,
    area_um2: Option<Spanned<Vec<Vec<f64>>>>,
    luts: Option<Spanned<Vec<Vec<f64>>>>,
    dsps: Option<Spanned<Vec<Vec<f64>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDsp {
    a_bits: Option<Spanned<u32>>,
    b_bits: Option<Spanned<u32>>,
    #[serde(default)]
    packing: Vec<RawPack>,
    energy_pj_per_dsp: Option<Num>,
    area_um2_per_dsp: Option<Num>,
    lut_max_bits: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPack {
    max_bits: u32,
    products: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLut {
    group_bits: Option<Spanned<u32>>,
    per_group: Option<Spanned<f64>>,
    offset: Option<Spanned<f64>>,
    energy_pj_per_lut: Option<Num>,
    area_um2_per_lut: Option<Num>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccumulator {
    bits: Option<Spanned<u32>>,
    guard_bits: Option<u32>,
    energy_pj_per_bit: Option<Num>,
    energy_pj: Option<Num>,
    area_um2_per_bit: Option<Num>,
    area_um2: Option<Num>,
    luts_per_bit: Option<Num>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatapath {
    style: Option<Spanned<Style>>,
    parallelism: Option<Spanned<u32>>,
    layer_parallelism: Option<BTreeMap<String, Spanned<u32>>>,
    multipliers: Option<Spanned<u32>>,
    energy_at: Option<EnergyAt>,
}

// ---------------------------------------------------------------------------------------------
// Validation

struct Src<'a> {
    text: &'a str,
    origin: &'a str,
}

impl Src<'_> {
    /// `file:line:col` of a byte span.
    fn at(&self, span: &Range<usize>) -> String {
        let off = span.start.min(self.text.len());
        let before = &self.text[..off];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        format!("{}:{line}:{col}", self.origin)
    }

    /// `file:line:col` of a table (its `[header]`, or the first key that defines it), or the
    /// file alone when the text does not name it. Spans of whole tables are not reliable
    /// (implicitly created tables have none), so tables are found by their header.
    fn table(&self, path: &str) -> String {
        let norm = |l: &str| l.chars().filter(|c| !c.is_whitespace()).collect::<String>();
        let lines: Vec<String> = self.text.lines().map(norm).collect();
        let header = format!("[{path}]");
        let prefixes = [format!("[{path}."), format!("{path}."), format!("{path}=")];
        let line = lines
            .iter()
            .position(|l| l.starts_with(&header))
            .or_else(|| lines.iter().position(|l| prefixes.iter().any(|p| l.starts_with(p.as_str()))));
        match line {
            Some(i) => format!("{}:{}:1", self.origin, i + 1),
            None => self.origin.to_string(),
        }
    }

    /// A cost: finite and non-negative.
    fn cost(&self, v: &Option<Num>, key: &str) -> Result<Option<f64>> {
        let Some(v) = v else { return Ok(None) };
        let x = *v.get_ref();
        if !x.is_finite() {
            bail!("{}: {key} = {x} is not a finite number", self.at(&v.span()));
        }
        if x < 0.0 {
            bail!("{}: {key} = {x} is negative; costs must be >= 0", self.at(&v.span()));
        }
        Ok(Some(x))
    }

    /// A formula coefficient: finite (may be negative).
    fn coef(&self, v: &Option<Num>, key: &str, default: f64) -> Result<f64> {
        let Some(v) = v else { return Ok(default) };
        let x = *v.get_ref();
        if !x.is_finite() {
            bail!("{}: {key} = {x} is not a finite number", self.at(&v.span()));
        }
        Ok(x)
    }

    fn positive(&self, v: &Option<Spanned<u32>>, key: &str, default: u32) -> Result<u32> {
        match v {
            None => Ok(default),
            Some(v) if *v.get_ref() == 0 => bail!("{}: {key} must be at least 1", self.at(&v.span())),
            Some(v) => Ok(*v.get_ref()),
        }
    }
}

fn validate(raw: RawProfile, src: &Src, warnings: &mut Vec<String>) -> Result<CostProfile> {
    let origin = src.origin;
    if raw.name.trim().is_empty() {
        bail!("{origin}: name must not be empty");
    }
    let (objectives, primary) = objectives(&raw, src)?;
    let storage = storage_classes(&raw.storage, src)?;
    let memory = memory(&raw.memory, &storage, src)?;
    let multiplier = match &raw.multiplier {
        None => MultiplierModel::None,
        Some(ms) => multiplier(ms, src)?,
    };
    check_provided(&multiplier, &objectives, src.at(&raw.objectives.span()))?;
    monotone_warnings(&multiplier, &raw.multiplier, src, warnings);
    let accumulator = accumulator(&raw.accumulator, src, warnings)?;
    let datapath = match &raw.datapath {
        None => Datapath::Dataflow { parallelism: 1, layer_parallelism: BTreeMap::new() },
        Some(d) => datapath(d, src)?,
    };
    Ok(CostProfile {
        name: raw.name,
        description: raw.description,
        origin: origin.to_string(),
        objectives,
        primary,
        activation_operand: raw.activation_operand,
        storage,
        memory,
        multiplier,
        accumulator,
        datapath,
    })
}

/// The objectives (sorted, none twice) and the primary one (the first listed by default).
fn objectives(raw: &RawProfile, src: &Src) -> Result<(Vec<Objective>, Objective)> {
    let obj_span = raw.objectives.span();
    let mut objectives = Vec::new();
    for o in raw.objectives.get_ref() {
        let Some(obj) = Objective::from_name(o.get_ref()) else {
            bail!(
                "{}: unknown objective '{}' (expected one of: {})",
                src.at(&o.span()),
                o.get_ref(),
                Objective::ALL.map(Objective::name).join(", ")
            );
        };
        if objectives.contains(&obj) {
            bail!("{}: objective '{obj}' is listed twice", src.at(&o.span()));
        }
        objectives.push(obj);
    }
    if objectives.is_empty() {
        bail!("{}: objectives must list at least one objective", src.at(&obj_span));
    }
    let first_listed = objectives[0];
    objectives.sort();
    let primary = match &raw.primary {
        None => first_listed,
        Some(p) => {
            let Some(obj) = Objective::from_name(p.get_ref()).filter(|o| objectives.contains(o)) else {
                bail!(
                    "{}: primary = '{}' is not one of this profile's objectives ({})",
                    src.at(&p.span()),
                    p.get_ref(),
                    objectives.iter().map(|o| o.name()).collect::<Vec<_>>().join(", ")
                );
            };
            obj
        }
    };
    Ok((objectives, primary))
}

/// The `[storage]` classes; one free class named `memory` when none is given.
fn storage_classes(raw: &BTreeMap<String, RawStorage>, src: &Src) -> Result<Vec<StorageClass>> {
    let mut storage = Vec::new();
    for (name, r) in raw {
        let key = |k: &str| format!("storage.{name}.{k}");
        let granularity_bits = match &r.granularity_bits {
            None => 1,
            Some(g) if *g.get_ref() == 0 => {
                bail!("{}: {} must be at least 1", src.at(&g.span()), key("granularity_bits"))
            }
            Some(g) => *g.get_ref(),
        };
        storage.push(StorageClass {
            name: name.clone(),
            area_um2_per_bit: src.cost(&r.area_um2_per_bit, &key("area_um2_per_bit"))?.unwrap_or(0.0),
            read_pj_per_bit: src.cost(&r.read_pj_per_bit, &key("read_pj_per_bit"))?.unwrap_or(0.0),
            write_pj_per_bit: src.cost(&r.write_pj_per_bit, &key("write_pj_per_bit"))?.unwrap_or(0.0),
            luts_per_bit: src.cost(&r.luts_per_bit, &key("luts_per_bit"))?.unwrap_or(0.0),
            granularity_bits,
        });
    }
    if storage.is_empty() {
        storage.push(StorageClass {
            name: "memory".into(),
            area_um2_per_bit: 0.0,
            read_pj_per_bit: 0.0,
            write_pj_per_bit: 0.0,
            luts_per_bit: 0.0,
            granularity_bits: 1,
        });
    }
    Ok(storage)
}

/// The `[memory]` roles, each in one of the storage classes.
fn memory(m: &RawMemory, storage: &[StorageClass], src: &Src) -> Result<Memory> {
    let origin = src.origin;
    let class_of = |c: &Option<Spanned<String>>, role: &str| -> Result<usize> {
        match c {
            Some(c) => storage.iter().position(|s| s.name == *c.get_ref()).ok_or_else(|| {
                anyhow!(
                    "{}: memory.{role}.class = '{}' is not a [storage] class (defined: {})",
                    src.at(&c.span()),
                    c.get_ref(),
                    storage.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
                )
            }),
            None if storage.len() == 1 => Ok(0),
            None => bail!(
                "{origin}: memory.{role}.class is required when several storage classes are defined ({})",
                storage.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
            ),
        }
    };
    Ok(Memory {
        weights: MemoryRole {
            class: class_of(&m.weights.as_ref().and_then(|r| r.class.clone()), "weights")?,
            reads: m.weights.as_ref().and_then(|r| r.reads).unwrap_or_default(),
        },
        biases: MemoryRole {
            class: class_of(&m.biases.as_ref().and_then(|r| r.class.clone()), "biases")?,
            reads: Reads::Once,
        },
        activations: MemoryRole {
            class: class_of(&m.activations.as_ref().and_then(|r| r.class.clone()), "activations")?,
            reads: m.activations.as_ref().and_then(|r| r.reads).unwrap_or_default(),
        },
        activation_storage: m.activations.as_ref().and_then(|r| r.storage).unwrap_or_default(),
        include_input: m.activations.as_ref().and_then(|r| r.include_input).unwrap_or(false),
        removed_bias_is_free: m.removed_bias_is_free.unwrap_or(true),
    })
}

/// Every objective the profile lists has the multiplier figures it is priced from (`at`: the
/// `objectives` key).
fn check_provided(multiplier: &MultiplierModel, objectives: &[Objective], at: String) -> Result<()> {
    for &o in objectives {
        if !multiplier.provides(o) {
            let need = match o {
                Objective::EnergyPj => {
                    "multiplier energy figures (bilinear/table energy_pj, dsp energy_pj_per_dsp, lut energy_pj_per_lut)"
                }
                Objective::AreaUm2 => {
                    "multiplier area figures (bilinear/table area_um2, dsp area_um2_per_dsp, lut area_um2_per_lut)"
                }
                Objective::Luts => "a lut or dsp multiplier model, or a table with luts",
                Objective::Dsps => "a dsp multiplier model, or a table with dsps",
                Objective::MemoryBits | Objective::MultCost => unreachable!(),
            };
            bail!("{at}: objective '{o}' needs {need}");
        }
    }
    Ok(())
}

/// The `[accumulator]`: a fixed width, or one derived from the operands with guard bits.
fn accumulator(a: &RawAccumulator, src: &Src, warnings: &mut Vec<String>) -> Result<Accumulator> {
    let width = match &a.bits {
        Some(b) if !(2..=64).contains(b.get_ref()) => {
            bail!("{}: accumulator.bits = {} is out of range 2..=64", src.at(&b.span()), b.get_ref())
        }
        Some(b) => {
            if a.guard_bits.is_some() {
                warnings.push(format!(
                    "{}: accumulator.guard_bits has no effect with a fixed accumulator.bits",
                    src.origin
                ));
            }
            AccumulatorWidth::Fixed(*b.get_ref())
        }
        None => AccumulatorWidth::Derived { guard_bits: a.guard_bits.unwrap_or(1) },
    };
    Ok(Accumulator {
        width,
        energy_pj_per_bit: src.cost(&a.energy_pj_per_bit, "accumulator.energy_pj_per_bit")?.unwrap_or(0.0),
        energy_pj: src.cost(&a.energy_pj, "accumulator.energy_pj")?.unwrap_or(0.0),
        area_um2_per_bit: src.cost(&a.area_um2_per_bit, "accumulator.area_um2_per_bit")?.unwrap_or(0.0),
        area_um2: src.cost(&a.area_um2, "accumulator.area_um2")?.unwrap_or(0.0),
        luts_per_bit: src.cost(&a.luts_per_bit, "accumulator.luts_per_bit")?.unwrap_or(0.0),
    })
}

/// The `[datapath]`: each style takes only its own keys.
fn datapath(d: &RawDatapath, src: &Src) -> Result<Datapath> {
    let at = d.style.as_ref().map_or_else(|| src.table("datapath"), |s| src.at(&s.span()));
    Ok(match d.style.as_ref().map(|s| *s.get_ref()).unwrap_or_default() {
        Style::Dataflow => {
            if d.multipliers.is_some() || d.energy_at.is_some() {
                bail!("{at}: datapath.multipliers and datapath.energy_at apply only to style = \"shared\"");
            }
            let mut layer_parallelism = BTreeMap::new();
            for (name, p) in d.layer_parallelism.iter().flatten() {
                let key = format!("datapath.layer_parallelism.\"{name}\"");
                layer_parallelism.insert(name.clone(), src.positive(&Some(p.clone()), &key, 1)?);
            }
            Datapath::Dataflow {
                parallelism: src.positive(&d.parallelism, "datapath.parallelism", 1)?,
                layer_parallelism,
            }
        }
        Style::Shared => {
            if d.parallelism.is_some() || d.layer_parallelism.is_some() {
                bail!(
                    "{at}: datapath.parallelism and datapath.layer_parallelism apply only to style = \"dataflow\" \
                     (a shared array has datapath.multipliers)"
                );
            }
            Datapath::Shared {
                multipliers: src.positive(&d.multipliers, "datapath.multipliers", 1)?,
                energy_at: d.energy_at.unwrap_or_default(),
            }
        }
    })
}

fn kind_name(k: ModelKind) -> &'static str {
    match k {
        ModelKind::Bilinear => "bilinear",
        ModelKind::Table => "table",
        ModelKind::Dsp => "dsp",
        ModelKind::Lut => "lut",
    }
}

fn multiplier(m: &RawMultiplier, src: &Src) -> Result<MultiplierModel> {
    let Some(model) = &m.model else {
        bail!("{}: [multiplier] needs model = \"bilinear\" | \"table\" | \"dsp\" | \"lut\"", src.table("multiplier"));
    };
    let kind = *model.get_ref();
    let given = [
        (ModelKind::Bilinear, m.bilinear.is_some()),
        (ModelKind::Table, m.table.is_some()),
        (ModelKind::Dsp, m.dsp.is_some()),
        (ModelKind::Lut, m.lut.is_some()),
    ];
    for (k, present) in given {
        if present {
            let allowed = k == kind || (kind == ModelKind::Dsp && k == ModelKind::Lut);
            if !allowed {
                bail!(
                    "{}: [multiplier.{}] is given but multiplier.model = \"{}\"",
                    src.table(&format!("multiplier.{}", kind_name(k))),
                    kind_name(k),
                    kind_name(kind)
                );
            }
        }
    }
    let need = || {
        anyhow!("{}: multiplier.model = \"{1}\" needs a [multiplier.{1}] table", src.at(&model.span()), kind_name(kind))
    };
    Ok(match kind {
        ModelKind::Bilinear => bilinear(m.bilinear.as_ref().ok_or_else(need)?, src)?,
        ModelKind::Table => MultiplierModel::Table(table(m.table.as_ref().ok_or_else(need)?, src)?),
        ModelKind::Dsp => dsp(m.dsp.as_ref().ok_or_else(need)?, m.lut.as_ref(), src)?,
        ModelKind::Lut => MultiplierModel::Lut(lut(Some(m.lut.as_ref().ok_or_else(need)?), src)?),
    })
}

/// `[multiplier.lut]` (the defaults when absent); the formula must not go negative.
fn lut(r: Option<&RawLut>, src: &Src) -> Result<LutModel> {
    let Some(r) = r else { return Ok(LutModel::default()) };
    let d = LutModel::default();
    let model = LutModel {
        group_bits: src.positive(&r.group_bits, "multiplier.lut.group_bits", d.group_bits)?,
        per_group: src.coef(&r.per_group, "multiplier.lut.per_group", d.per_group)?,
        offset: src.coef(&r.offset, "multiplier.lut.offset", d.offset)?,
        energy_pj_per_lut: src.cost(&r.energy_pj_per_lut, "multiplier.lut.energy_pj_per_lut")?,
        area_um2_per_lut: src.cost(&r.area_um2_per_lut, "multiplier.lut.area_um2_per_lut")?,
    };
    for s in 2..=64 {
        let n = model.luts(s / 2, s - s / 2);
        if n < 0.0 {
            bail!("{}: the LUT formula gives {n} LUTs for W+A = {s}; it must be >= 0", src.table("multiplier.lut"));
        }
    }
    Ok(model)
}

/// One `[multiplier.bilinear]` polynomial; it must not go negative on 1..=32 bits.
fn poly(p: &Option<RawPoly>, what: &str, src: &Src) -> Result<Option<Poly>> {
    let Some(r) = p else { return Ok(None) };
    let first = [&r.a, &r.b, &r.c, &r.sqrt].into_iter().flatten().next();
    let at = first.map_or_else(|| src.table("multiplier.bilinear"), |v| src.at(&v.span()));
    let key = |k: &str| format!("multiplier.bilinear.{what}.{k}");
    let poly = Poly {
        a: src.coef(&r.a, &key("a"), 0.0)?,
        b: src.coef(&r.b, &key("b"), 0.0)?,
        c: src.coef(&r.c, &key("c"), 0.0)?,
        sqrt: src.coef(&r.sqrt, &key("sqrt"), 0.0)?,
    };
    for bw in 1..=32 {
        for ba in 1..=32 {
            let v = poly.eval(bw, ba);
            if v < 0.0 {
                bail!("{at}: multiplier.bilinear.{what} is negative ({v}) at {bw} x {ba} bits; costs must be >= 0");
            }
        }
    }
    Ok(Some(poly))
}

fn bilinear(b: &RawBilinear, src: &Src) -> Result<MultiplierModel> {
    let energy_pj = poly(&b.energy_pj, "energy_pj", src)?;
    let area_um2 = poly(&b.area_um2, "area_um2", src)?;
    if energy_pj.is_none() && area_um2.is_none() {
        bail!("{}: [multiplier.bilinear] needs energy_pj and/or area_um2", src.table("multiplier.bilinear"));
    }
    Ok(MultiplierModel::Bilinear { energy_pj, area_um2 })
}

/// `[multiplier.table]`: strictly increasing widths and one finite, non-negative grid per metric.
fn table(r: &RawTable, src: &Src) -> Result<MultTable> {
    let location = src.table("multiplier.table");
    let widths = |w: &Option<Spanned<Vec<u32>>>, key: &str| -> Result<Vec<u32>> {
        let Some(w) = w else {
            bail!("{location}: [multiplier.table] needs {key} (a list of widths)");
        };
        let v = w.get_ref().clone();
        if v.is_empty() || v[0] == 0 || v.windows(2).any(|p| p[0] >= p[1]) {
            bail!("{}: multiplier.table.{key} must be non-empty, strictly increasing widths >= 1", src.at(&w.span()));
        }
        Ok(v)
    };
    let weight_bits = widths(&r.weight_bits, "weight_bits")?;
    let activation_bits = widths(&r.activation_bits, "activation_bits")?;
    let grid = |g: &Option<Spanned<Vec<Vec<f64>>>>, key: &str| -> Result<Option<Vec<f64>>> {
        let Some(g) = g else { return Ok(None) };
        let at = src.at(&g.span());
        let rows = g.get_ref();
        if rows.len() != weight_bits.len() || rows.iter().any(|r| r.len() != activation_bits.len()) {
            bail!(
                "{at}: multiplier.table.{key} must have {} rows (one per weight_bits) of {} values (one per activation_bits)",
                weight_bits.len(),
                activation_bits.len()
            );
        }
        for (i, row) in rows.iter().enumerate() {
            for (j, &x) in row.iter().enumerate() {
                if !x.is_finite() || x < 0.0 {
                    bail!(
                        "{at}: multiplier.table.{key}[{i}][{j}] = {x} ({} x {} bits) must be a finite number >= 0",
                        weight_bits[i],
                        activation_bits[j]
                    );
                }
            }
        }
        Ok(Some(rows.iter().flatten().copied().collect()))
    };
    let table = MultTable {
        energy_pj: grid(&r.energy_pj, "energy_pj")?,
        area_um2: grid(&r.area_um2, "area_um2")?,
        luts: grid(&r.luts, "luts")?,
        dsps: grid(&r.dsps, "dsps")?,
        weight_bits,
        activation_bits,
        location,
    };
    if table.energy_pj.is_none() && table.area_um2.is_none() && table.luts.is_none() && table.dsps.is_none() {
        bail!("{}: [multiplier.table] needs at least one of energy_pj, area_um2, luts, dsps", table.location);
    }
    Ok(table)
}

/// `[multiplier.dsp]`, with the `[multiplier.lut]` model for products it leaves to LUTs.
fn dsp(d: &RawDsp, lut_raw: Option<&RawLut>, src: &Src) -> Result<MultiplierModel> {
    let mut packing = Vec::new();
    for r in &d.packing {
        if r.max_bits == 0 || r.products == 0 {
            bail!(
                "{}: multiplier.dsp.packing entries need max_bits >= 1 and products >= 1",
                src.table("multiplier.dsp")
            );
        }
        packing.push((r.max_bits, r.products));
    }
    Ok(MultiplierModel::Dsp(DspModel {
        a_bits: src.positive(&d.a_bits, "multiplier.dsp.a_bits", 27)?,
        b_bits: src.positive(&d.b_bits, "multiplier.dsp.b_bits", 18)?,
        packing,
        energy_pj_per_dsp: src.cost(&d.energy_pj_per_dsp, "multiplier.dsp.energy_pj_per_dsp")?,
        area_um2_per_dsp: src.cost(&d.area_um2_per_dsp, "multiplier.dsp.area_um2_per_dsp")?,
        lut_max_bits: d.lut_max_bits.unwrap_or(0),
        lut: lut(lut_raw, src)?,
    }))
}

/// Warn (not fail) when a multiplier metric drops as an operand gets wider.
fn monotone_warnings(model: &MultiplierModel, raw: &Option<RawMultiplier>, src: &Src, warnings: &mut Vec<String>) {
    if raw.is_none() {
        return;
    }
    let at = src.table("multiplier");
    let (ws, xs) = model.probe_widths();
    type Metric = fn(&super::mult::MultCost) -> f64;
    let metrics: [(&str, Metric); 4] =
        [("energy", |c| c.energy_pj), ("area", |c| c.area_um2), ("LUTs", |c| c.luts), ("DSPs", |c| c.dsps)];
    for (what, get) in metrics {
        'metric: for (i, &bw) in ws.iter().enumerate() {
            for (j, &ba) in xs.iter().enumerate() {
                let here = get(&model.cost(bw, ba, 1));
                let mut check = |bw2: u32, ba2: u32| {
                    let there = get(&model.cost(bw2, ba2, 1));
                    if there < here {
                        warnings.push(format!(
                            "{at}: multiplier {what} is not monotone in bitwidth: {bw2} x {ba2} bits costs {there} \
                             but {bw} x {ba} bits costs {here}"
                        ));
                        true
                    } else {
                        false
                    }
                };
                if (i + 1 < ws.len() && check(ws[i + 1], ba)) || (j + 1 < xs.len() && check(bw, xs[j + 1])) {
                    break 'metric;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "name = \"t\"\nobjectives = [\"memory_bits\", \"mult_cost\"]\n";

    fn err(text: &str) -> String {
        format!("{:#}", CostProfile::from_str(text, "p.toml").unwrap_err())
    }

    #[test]
    fn minimal_profile_defaults() {
        let (p, w) = CostProfile::from_str(MINIMAL, "p.toml").unwrap();
        assert!(w.is_empty());
        assert_eq!(p.objectives, vec![Objective::MemoryBits, Objective::MultCost]);
        assert_eq!(p.primary, Objective::MemoryBits);
        assert_eq!(p.activation_operand, ActivationOperand::Input);
        assert_eq!(p.storage.len(), 1);
        assert_eq!(p.multiplier, MultiplierModel::None);
        assert_eq!(p.accumulator.width, AccumulatorWidth::Derived { guard_bits: 1 });
        assert!(matches!(p.datapath, Datapath::Dataflow { parallelism: 1, .. }));
    }

    #[test]
    fn unknown_key_names_line() {
        let e = err(&format!("{MINIMAL}\n[accumulator]\nbitz = 3\n"));
        assert!(e.starts_with("p.toml:5:1: unknown field `bitz`"), "{e}");
    }

    #[test]
    fn missing_required_key() {
        let e = err("name = \"t\"\n");
        assert!(e.contains("p.toml:1:1") && e.contains("missing field `objectives`"), "{e}");
        let e = err(&format!("{MINIMAL}[multiplier.table]\nweight_bits = [8]\n"));
        assert!(e.starts_with("p.toml:3:1: [multiplier] needs model ="), "{e}");
        let e = err(&format!("{MINIMAL}[multiplier]\nmodel = \"table\"\n[multiplier.table]\nweight_bits = [8]\n"));
        assert!(e.starts_with("p.toml:5:1: [multiplier.table] needs activation_bits"), "{e}");
        let e =
            err(&format!("{MINIMAL}[multiplier]\nmodel = \"dsp\"\n[multiplier.dsp]\npacking = [{{ max_bits = 8 }}]\n"));
        assert!(e.contains("p.toml:6:") && e.contains("missing field `products`"), "{e}");
    }

    #[test]
    fn negative_and_non_finite_costs() {
        let e = err(&format!("{MINIMAL}[storage.sram]\nread_pj_per_bit = -0.5\n"));
        assert!(e.starts_with("p.toml:4:19: storage.sram.read_pj_per_bit = -0.5 is negative"), "{e}");
        let e = err(&format!("{MINIMAL}[accumulator]\nenergy_pj = nan\n"));
        assert!(e.starts_with("p.toml:4:13: accumulator.energy_pj = NaN is not a finite number"), "{e}");
        let e = err(&format!("{MINIMAL}[accumulator]\narea_um2_per_bit = inf\n"));
        assert!(e.contains("p.toml:4:20") && e.contains("not a finite"), "{e}");
        let e = err(&format!(
            "{MINIMAL}[multiplier]\nmodel = \"bilinear\"\n[multiplier.bilinear]\nenergy_pj = {{ a = 1.0, c = -5.0 }}\n"
        ));
        assert!(e.starts_with("p.toml:6:19: multiplier.bilinear.energy_pj is negative (-4) at 1 x 1"), "{e}");
    }

    #[test]
    fn integers_are_accepted_as_costs() {
        let (p, _) = CostProfile::from_str(&format!("{MINIMAL}[storage.s]\nread_pj_per_bit = 2\n"), "p.toml").unwrap();
        assert_eq!(p.storage[0].read_pj_per_bit, 2.0);
    }

    #[test]
    fn objectives_checked() {
        let e = err("name = \"t\"\nobjectives = [\"memory_bits\", \"speed\"]\n");
        assert!(e.starts_with("p.toml:2:30: unknown objective 'speed'"), "{e}");
        let e = err("name = \"t\"\nobjectives = [\"energy_pj\"]\n");
        assert!(e.starts_with("p.toml:2:14: objective 'energy_pj' needs multiplier energy"), "{e}");
        let e = err(&format!("{MINIMAL}primary = \"energy_pj\"\n"));
        assert!(e.starts_with("p.toml:3:11: primary = 'energy_pj' is not one"), "{e}");
        let (p, _) = CostProfile::from_str(&format!("{MINIMAL}primary = \"mult_cost\"\n"), "p.toml").unwrap();
        assert_eq!(p.primary, Objective::MultCost);
    }

    #[test]
    fn bad_enum_value_names_line() {
        let e = err(&format!("{MINIMAL}[memory.activations]\nstorage = \"pingpong\"\n"));
        assert!(e.starts_with("p.toml:4:11: unknown variant `pingpong`"), "{e}");
    }

    #[test]
    fn storage_class_references() {
        let two = format!("{MINIMAL}[storage.a]\n[storage.b]\n");
        let e = err(&two);
        assert!(e.contains("memory.weights.class is required"), "{e}");
        let e = err(&format!("{two}[memory]\nweights = {{ class = \"c\" }}\n"));
        assert!(e.starts_with("p.toml:6:21: memory.weights.class = 'c' is not a [storage] class"), "{e}");
    }

    #[test]
    fn table_validation_and_coverage() {
        let t = format!(
            "{MINIMAL}[multiplier]\nmodel = \"table\"\n[multiplier.table]\nweight_bits = [4, 8]\nactivation_bits = [8]\n\
             energy_pj = [[1.0], [2.0]]\n"
        );
        let (p, w) = CostProfile::from_str(&t, "p.toml").unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(p.max_widths(), Some((8, 8)));
        p.check_widths(8, 8).unwrap();
        let e = format!("{:#}", p.check_widths(9, 8).unwrap_err());
        assert!(e.starts_with("p.toml:5:1: the multiplier table covers weights up to 8 bits"), "{e}");
        assert!(e.contains("9 x 8-bit multiplication is not covered"), "{e}");

        let e = err(&t.replace("[[1.0], [2.0]]", "[[1.0]]"));
        assert!(e.contains("p.toml:8:13") && e.contains("2 rows"), "{e}");
        let e = err(&t.replace("[4, 8]", "[8, 4]"));
        assert!(e.contains("p.toml:6:15") && e.contains("strictly increasing"), "{e}");
        let e = err(&t.replace("[[1.0], [2.0]]", "[[1.0], [-2.0]]"));
        assert!(e.contains("energy_pj[1][0] = -2") && e.contains("8 x 8 bits"), "{e}");
    }

    #[test]
    fn non_monotone_is_a_warning() {
        let t = format!(
            "{MINIMAL}[multiplier]\nmodel = \"table\"\n[multiplier.table]\nweight_bits = [4, 8]\nactivation_bits = [8]\n\
             energy_pj = [[3.0], [2.0]]\n"
        );
        let (_, w) = CostProfile::from_str(&t, "p.toml").unwrap();
        assert_eq!(w.len(), 1);
        assert!(w[0].starts_with("p.toml:3:1: multiplier energy is not monotone"), "{w:?}");
        assert!(w[0].contains("8 x 8 bits costs 2 but 4 x 8 bits costs 3"), "{w:?}");
    }

    #[test]
    fn sub_table_must_match_model() {
        let e = err(&format!("{MINIMAL}[multiplier]\nmodel = \"lut\"\n[multiplier.dsp]\n"));
        assert!(e.contains("[multiplier.dsp] is given but multiplier.model = \"lut\""), "{e}");
        let e = err(&format!("{MINIMAL}[multiplier]\nmodel = \"table\"\n"));
        assert!(e.contains("p.toml:4:9") && e.contains("needs a [multiplier.table]"), "{e}");
    }

    #[test]
    fn implicit_and_dotted_tables() {
        let (p, _) =
            CostProfile::from_str(&format!("{MINIMAL}[datapath.layer_parallelism]\n\"/c1/Conv\" = 4\n"), "p.toml")
                .unwrap();
        assert!(
            matches!(&p.datapath, Datapath::Dataflow { layer_parallelism, .. } if layer_parallelism["/c1/Conv"] == 4)
        );
        let (p, _) = CostProfile::from_str(
            &format!("{MINIMAL}storage.sram.read_pj_per_bit = 0.5\nmultiplier.model = \"lut\"\nmultiplier.lut.group_bits = 6\n"),
            "p.toml",
        )
        .unwrap();
        assert_eq!(p.storage[0].read_pj_per_bit, 0.5);
        assert!(matches!(p.multiplier, MultiplierModel::Lut(_)));
    }

    #[test]
    fn datapath_style_keys() {
        let e = err(&format!("{MINIMAL}[datapath]\nstyle = \"shared\"\nparallelism = 4\n"));
        assert!(e.contains("apply only to style = \"dataflow\""), "{e}");
        let e = err(&format!("{MINIMAL}[datapath]\nparallelism = 0\n"));
        assert!(e.starts_with("p.toml:4:15: datapath.parallelism must be at least 1"), "{e}");
    }

    #[test]
    fn builtins_load_cleanly() {
        for name in BUILTIN_NAMES {
            let (p, w) = CostProfile::builtin(name).unwrap().unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert!(w.is_empty(), "{name}: {w:?}");
            assert_eq!(p.name, name);
            assert!(p.origin.contains(name));
        }
        assert!(builtin("nope").is_none());
    }

    #[test]
    fn shipped_files_match_builtins() {
        for name in BUILTIN_NAMES {
            let path = format!("{}/cost-models/{name}.toml", env!("CARGO_MANIFEST_DIR"));
            assert_eq!(std::fs::read_to_string(path).unwrap(), builtin(name).unwrap());
        }
    }
}
