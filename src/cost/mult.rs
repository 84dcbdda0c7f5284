//! Multiplier cost models: what one `bw x ba` multiplication costs in energy, and what the
//! multipliers that perform it cost in area, LUTs and DSP blocks (docs/cost-models.md,
//! "[multiplier]").
//!
//! Every model is a pure function of the two operand widths, so the pricing loop can call it
//! without allocating. A width that a `table` does not cover prices as `f64::INFINITY`
//! (the search never prefers it); [`crate::cost::CostProfile::check_widths`] turns the same
//! case into an error that names the file and line of the table.

use super::Objective;

/// `a*bw*ba + b*(bw+ba) + c + sqrt*sqrt(bw*ba)`: a bilinear fit with an optional square-root
/// term (the QKeras qtools fit of Horowitz's multiplier energies needs it).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Poly {
    pub a: f64,
    pub b: f64,
    pub c: f64,
    pub sqrt: f64,
}

impl Poly {
    pub fn eval(&self, bw: u32, ba: u32) -> f64 {
        let (w, x) = (f64::from(bw), f64::from(ba));
        self.a * w * x + self.b * (w + x) + self.c + self.sqrt * (w * x).sqrt()
    }
}

/// An explicit 2-D table over listed operand widths. A width between two listed ones uses the
/// next larger listed width (the multiplier that would be instantiated); a width above the
/// largest is not covered.
#[derive(Debug, Clone, PartialEq)]
pub struct MultTable {
    /// Listed weight widths, strictly increasing (rows).
    pub weight_bits: Vec<u32>,
    /// Listed activation widths, strictly increasing (columns).
    pub activation_bits: Vec<u32>,
    /// Row-major `weight_bits.len() x activation_bits.len()` values, per metric.
    pub energy_pj: Option<Vec<f64>>,
    pub area_um2: Option<Vec<f64>>,
    pub luts: Option<Vec<f64>>,
    pub dsps: Option<Vec<f64>>,
    /// `file:line:col` of the table, for error messages.
    pub location: String,
}

impl MultTable {
    /// The (row, column) that prices `bw x ba`, or `None` when a width exceeds the table.
    pub fn cell(&self, bw: u32, ba: u32) -> Option<usize> {
        let r = self.weight_bits.iter().position(|&w| w >= bw)?;
        let c = self.activation_bits.iter().position(|&a| a >= ba)?;
        Some(r * self.activation_bits.len() + c)
    }

    /// Largest covered (weight, activation) widths.
    pub fn max_bits(&self) -> (u32, u32) {
        (*self.weight_bits.last().unwrap_or(&0), *self.activation_bits.last().unwrap_or(&0))
    }
}

/// Operands tiled onto `a_bits x b_bits` DSP blocks (DSP48E2: 27x18), with packing of small
/// products (two <=8-bit or four <=4-bit products per DSP48E2), and optionally small products
/// built from LUTs instead.
#[derive(Debug, Clone, PartialEq)]
pub struct DspModel {
    pub a_bits: u32,
    pub b_bits: u32,
    /// `(max_bits, products)`: when both operands are at most `max_bits` wide, `products`
    /// multiplications share one DSP.
    pub packing: Vec<(u32, u32)>,
    pub energy_pj_per_dsp: Option<f64>,
    pub area_um2_per_dsp: Option<f64>,
    /// Products whose operands are both at most this wide are built from LUTs (0: never).
    pub lut_max_bits: u32,
    /// LUT model for those products.
    pub lut: LutModel,
}

impl DspModel {
    /// DSP blocks one `bw x ba` product needs when it is not packed: the operands split into
    /// port-sized pieces, the better of the two orientations (18x27 -> 1, 19x27 -> 2).
    pub fn tiles(&self, bw: u32, ba: u32) -> u32 {
        dsp_tiles(bw, ba, self.a_bits, self.b_bits)
    }

    /// How many `bw x ba` products share one DSP (1 when no packing rule applies).
    pub fn products_per_dsp(&self, bw: u32, ba: u32) -> u32 {
        let m = bw.max(ba);
        self.packing.iter().filter(|(max_bits, _)| m <= *max_bits).map(|&(_, products)| products).max().unwrap_or(1)
    }

    /// Whether a `bw x ba` product is built from LUTs rather than a DSP.
    pub fn uses_luts(&self, bw: u32, ba: u32) -> bool {
        bw.max(ba) <= self.lut_max_bits
    }

    /// DSP blocks for `lanes` parallel `bw x ba` multipliers (two 8x8 -> 1 when two pack).
    pub fn dsp_count(&self, bw: u32, ba: u32, lanes: u64) -> u64 {
        if self.uses_luts(bw, ba) {
            return 0;
        }
        let k = u64::from(self.products_per_dsp(bw, ba));
        if k > 1 {
            lanes.div_ceil(k)
        } else {
            lanes * u64::from(self.tiles(bw, ba))
        }
    }

    /// DSP operations per multiplication (fractional when products pack).
    pub fn dsp_ops(&self, bw: u32, ba: u32) -> f64 {
        if self.uses_luts(bw, ba) {
            return 0.0;
        }
        f64::from(self.tiles(bw, ba)) / f64::from(self.products_per_dsp(bw, ba))
    }
}

/// DSP blocks of `a_bits x b_bits` needed for one `bw x ba` product, without packing.
pub fn dsp_tiles(bw: u32, ba: u32, a_bits: u32, b_bits: u32) -> u32 {
    let t = |x: u32, p: u32| x.max(1).div_ceil(p);
    (t(bw, a_bits) * t(ba, b_bits)).min(t(bw, b_bits) * t(ba, a_bits))
}

/// LUT multipliers: `(per_group * ceil((W+A)/group_bits) + offset) * (W+A)` LUTs; the FINN-R
/// estimate is `per_group = 2, group_bits = 6, offset = -1`.
#[derive(Debug, Clone, PartialEq)]
pub struct LutModel {
    pub group_bits: u32,
    pub per_group: f64,
    pub offset: f64,
    pub energy_pj_per_lut: Option<f64>,
    pub area_um2_per_lut: Option<f64>,
}

impl Default for LutModel {
    fn default() -> Self {
        LutModel { group_bits: 6, per_group: 2.0, offset: -1.0, energy_pj_per_lut: None, area_um2_per_lut: None }
    }
}

impl LutModel {
    /// LUTs of one `bw x ba` multiplier.
    pub fn luts(&self, bw: u32, ba: u32) -> f64 {
        let s = bw + ba;
        (self.per_group * f64::from(s.div_ceil(self.group_bits)) + self.offset) * f64::from(s)
    }
}

/// FINN-R's LUT estimate for a `W x A` multiplier: `(2*ceil((W+A)/6) - 1) * (W+A)`.
pub fn finn_luts(w: u32, a: u32) -> f64 {
    LutModel::default().luts(w, a)
}

/// Which multiplier model a profile uses.
#[derive(Debug, Clone, PartialEq)]
pub enum MultiplierModel {
    /// No `[multiplier]` model: only `memory_bits` and `mult_cost` can be exposed.
    None,
    Bilinear {
        energy_pj: Option<Poly>,
        area_um2: Option<Poly>,
    },
    Table(MultTable),
    Dsp(DspModel),
    Lut(LutModel),
}

/// The cost of one multiplier kind: `energy_pj` per multiplication; `area_um2`, `luts` and
/// `dsps` for the requested number of parallel multipliers.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MultCost {
    pub energy_pj: f64,
    pub area_um2: f64,
    pub luts: f64,
    pub dsps: f64,
}

impl MultCost {
    const UNCOVERED: MultCost =
        MultCost { energy_pj: f64::INFINITY, area_um2: f64::INFINITY, luts: f64::INFINITY, dsps: f64::INFINITY };
}

impl MultiplierModel {
    /// Cost of `lanes` parallel `bw x ba` multipliers (energy: per multiplication). Metrics a
    /// model does not provide are 0; widths a table does not cover are infinite.
    pub fn cost(&self, bw: u32, ba: u32, lanes: u64) -> MultCost {
        let n = lanes as f64;
        match self {
            MultiplierModel::None => MultCost::default(),
            MultiplierModel::Bilinear { energy_pj, area_um2 } => MultCost {
                energy_pj: energy_pj.map_or(0.0, |p| p.eval(bw, ba)),
                area_um2: area_um2.map_or(0.0, |p| n * p.eval(bw, ba)),
                luts: 0.0,
                dsps: 0.0,
            },
            MultiplierModel::Table(t) => {
                let Some(i) = t.cell(bw, ba) else { return MultCost::UNCOVERED };
                let get = |v: &Option<Vec<f64>>| v.as_ref().map_or(0.0, |v| v[i]);
                MultCost {
                    energy_pj: get(&t.energy_pj),
                    area_um2: n * get(&t.area_um2),
                    luts: n * get(&t.luts),
                    dsps: n * get(&t.dsps),
                }
            }
            MultiplierModel::Dsp(d) => {
                if d.uses_luts(bw, ba) {
                    let luts = d.lut.luts(bw, ba);
                    MultCost {
                        energy_pj: d.lut.energy_pj_per_lut.map_or(0.0, |e| e * luts),
                        area_um2: d.lut.area_um2_per_lut.map_or(0.0, |e| n * e * luts),
                        luts: n * luts,
                        dsps: 0.0,
                    }
                } else {
                    let dsps = d.dsp_count(bw, ba, lanes) as f64;
                    MultCost {
                        energy_pj: d.energy_pj_per_dsp.map_or(0.0, |e| e * d.dsp_ops(bw, ba)),
                        area_um2: d.area_um2_per_dsp.map_or(0.0, |e| e * dsps),
                        luts: 0.0,
                        dsps,
                    }
                }
            }
            MultiplierModel::Lut(l) => {
                let luts = l.luts(bw, ba);
                MultCost {
                    energy_pj: l.energy_pj_per_lut.map_or(0.0, |e| e * luts),
                    area_um2: l.area_um2_per_lut.map_or(0.0, |e| n * e * luts),
                    luts: n * luts,
                    dsps: 0.0,
                }
            }
        }
    }

    /// Whether the model provides the multiplier part of an objective. `memory_bits` and
    /// `mult_cost` need no model.
    pub fn provides(&self, o: Objective) -> bool {
        match o {
            Objective::MemoryBits | Objective::MultCost => true,
            Objective::EnergyPj => match self {
                MultiplierModel::None => false,
                MultiplierModel::Bilinear { energy_pj, .. } => energy_pj.is_some(),
                MultiplierModel::Table(t) => t.energy_pj.is_some(),
                MultiplierModel::Dsp(d) => {
                    d.energy_pj_per_dsp.is_some() && (d.lut_max_bits == 0 || d.lut.energy_pj_per_lut.is_some())
                }
                MultiplierModel::Lut(l) => l.energy_pj_per_lut.is_some(),
            },
            Objective::AreaUm2 => match self {
                MultiplierModel::None => false,
                MultiplierModel::Bilinear { area_um2, .. } => area_um2.is_some(),
                MultiplierModel::Table(t) => t.area_um2.is_some(),
                MultiplierModel::Dsp(d) => {
                    d.area_um2_per_dsp.is_some() && (d.lut_max_bits == 0 || d.lut.area_um2_per_lut.is_some())
                }
                MultiplierModel::Lut(l) => l.area_um2_per_lut.is_some(),
            },
            Objective::Luts => match self {
                MultiplierModel::Table(t) => t.luts.is_some(),
                MultiplierModel::Dsp(_) | MultiplierModel::Lut(_) => true,
                _ => false,
            },
            Objective::Dsps => match self {
                MultiplierModel::Table(t) => t.dsps.is_some(),
                MultiplierModel::Dsp(_) => true,
                _ => false,
            },
        }
    }

    /// The widths a first non-monotone step is searched over: the table's listed widths, or
    /// 1..=32 for formula models.
    pub(crate) fn probe_widths(&self) -> (Vec<u32>, Vec<u32>) {
        match self {
            MultiplierModel::Table(t) => (t.weight_bits.clone(), t.activation_bits.clone()),
            _ => ((1..=32).collect(), (1..=32).collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dsp48e2() -> DspModel {
        DspModel {
            a_bits: 27,
            b_bits: 18,
            packing: vec![(8, 2), (4, 4)],
            energy_pj_per_dsp: Some(1.0),
            area_um2_per_dsp: None,
            lut_max_bits: 0,
            lut: LutModel::default(),
        }
    }

    #[test]
    fn dsp_tiling() {
        let d = dsp48e2();
        assert_eq!(d.tiles(18, 27), 1);
        assert_eq!(d.tiles(27, 18), 1);
        assert_eq!(d.tiles(19, 27), 2);
        assert_eq!(d.tiles(27, 19), 2);
        assert_eq!(d.tiles(16, 16), 1);
        assert_eq!(d.tiles(28, 28), 4);
        assert_eq!(d.tiles(32, 32), 4);
        assert_eq!(d.tiles(1, 1), 1);
        assert_eq!(d.dsp_count(19, 27, 1), 2);
        assert_eq!(d.dsp_count(19, 27, 3), 6);
    }

    #[test]
    fn dsp_packing() {
        let d = dsp48e2();
        // two 8x8 products share one DSP48E2; four 4x4
        assert_eq!(d.products_per_dsp(8, 8), 2);
        assert_eq!(d.dsp_count(8, 8, 2), 1);
        assert_eq!(d.dsp_count(8, 8, 1), 1);
        assert_eq!(d.dsp_count(8, 8, 3), 2);
        assert_eq!(d.products_per_dsp(4, 4), 4);
        assert_eq!(d.dsp_count(4, 4, 4), 1);
        assert_eq!(d.dsp_count(4, 3, 5), 2);
        assert_eq!(d.products_per_dsp(9, 8), 1);
        assert_eq!(d.dsp_count(9, 8, 2), 2);
        assert_eq!(d.dsp_ops(8, 8), 0.5);
        assert_eq!(d.dsp_ops(4, 2), 0.25);
        assert_eq!(d.dsp_ops(19, 27), 2.0);
        let c = MultiplierModel::Dsp(d).cost(8, 8, 2);
        assert_eq!((c.dsps, c.energy_pj), (1.0, 0.5));
    }

    #[test]
    fn lut_fallback() {
        let d = DspModel { lut_max_bits: 4, ..dsp48e2() };
        assert_eq!(d.dsp_count(4, 4, 8), 0);
        let c = MultiplierModel::Dsp(d).cost(4, 4, 8);
        assert_eq!(c.luts, 8.0 * finn_luts(4, 4));
        assert_eq!(c.dsps, 0.0);
    }

    #[test]
    fn finn_r_formula() {
        // (2*ceil((W+A)/6) - 1) * (W+A)
        assert_eq!(finn_luts(4, 4), 24.0); // (2*2-1)*8
        assert_eq!(finn_luts(3, 3), 6.0); // (2*1-1)*6
        assert_eq!(finn_luts(8, 8), 80.0); // (2*3-1)*16
        assert_eq!(finn_luts(1, 2), 3.0);
    }

    #[test]
    fn table_rounds_up_and_errors_above() {
        let t = MultTable {
            weight_bits: vec![4, 8],
            activation_bits: vec![8, 16],
            energy_pj: Some(vec![1.0, 2.0, 3.0, 4.0]),
            area_um2: None,
            luts: None,
            dsps: None,
            location: "t:1:1".into(),
        };
        assert_eq!(t.cell(1, 1), Some(0));
        assert_eq!(t.cell(5, 8), Some(2));
        assert_eq!(t.cell(8, 9), Some(3));
        assert_eq!(t.cell(9, 8), None);
        assert_eq!(t.cell(8, 17), None);
        let m = MultiplierModel::Table(t);
        assert_eq!(m.cost(5, 9, 1).energy_pj, 4.0);
        assert!(m.cost(9, 9, 1).energy_pj.is_infinite());
    }
}
