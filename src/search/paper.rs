//! The seed paper's dependent, sequential per-layer search (Goyal et al. 2021, docs/paper.md):
//! all weights layer by layer, then all biases, then all activations; each tensor lowered with
//! everything fixed so far applied, against a per-layer loss budget.

use super::strategy::Context;
use super::{Search, Slot, Space, FLOAT_PROXY_BITS};
use crate::eval::calibrate::Kind;
use crate::fixed::{Assignment, Format};

/// Loss budgets (in the configured loss unit). Layer i of L gets: weights `weights * i / L`,
/// biases `biases`, activations `activations_base + activations * i / L` (the paper's
/// 0.005 / 0.005 / 0.005 + 0.005, ending at 1 %).
#[derive(Debug, Clone, Copy)]
pub struct Budgets {
    pub weights: f64,
    pub biases: f64,
    pub activations_base: f64,
    pub activations: f64,
    /// Accuracy gain that justifies keeping a wider format in the neighbourhood step.
    pub keep_wider_gain: f64,
    /// Uniform starting loss limit per kind, when raising the starting width.
    pub start_loss: f64,
    /// Grow the weight and activation budgets in proportion to what each tensor's bits cost on
    /// the primary objective, instead of by layer index (the paper's schedule). The total per
    /// kind is the paper's.
    pub cost_weighted: bool,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            weights: 0.005,
            biases: 0.005,
            activations_base: 0.005,
            activations: 0.005,
            keep_wider_gain: 0.0015,
            start_loss: 0.005,
            cost_weighted: false,
        }
    }
}

/// The loss budget the paper's schedule is laid out for: its per-layer budgets end there.
pub const PAPER_MAX_LOSS: f64 = 0.01;

impl Budgets {
    /// The schedule for another overall budget: every per-layer budget in proportion, so that
    /// the last layer's still ends at `max_loss`. At the paper's 1 % it is the paper's schedule.
    pub fn scaled_to(self, max_loss: f64) -> Budgets {
        let k = max_loss / PAPER_MAX_LOSS;
        Budgets {
            weights: self.weights * k,
            biases: self.biases * k,
            activations_base: self.activations_base * k,
            activations: self.activations * k,
            keep_wider_gain: self.keep_wider_gain * k,
            start_loss: self.start_loss * k,
            cost_weighted: self.cost_weighted,
        }
    }
}

/// Change width and offset together (integer bits kept), or width alone (clipping more).
fn lower_while(s: &mut Search, cur: &mut Assignment, slot: Slot, budget: f64, min_bits: u32, dfrac: i32, src: &str) {
    loop {
        let f = slot.get(cur);
        let step = |n: u32| Format::new(f.bits - n, f.frac - dfrac * n as i32, f.signed);
        if f.bits <= min_bits {
            return;
        }
        let one = slot.with(cur, step(1));
        if s.evaluate(&one, src, Some(budget)).is_some() {
            *cur = one;
            continue;
        }
        // The paper allows one extra step: a width that fails can be followed by one that passes.
        if f.bits > min_bits + 1 {
            let two = slot.with(cur, step(2));
            if s.evaluate(&two, src, Some(budget)).is_some() {
                *cur = two;
                continue;
            }
        }
        return;
    }
}

/// The 3x3 neighbourhood (B±1, F±1): keep the narrowest passing width unless a wider one gains
/// more than `keep_wider_gain` accuracy.
fn neighbourhood(s: &mut Search, cur: &mut Assignment, slot: Slot, budget: f64, gain: f64, src: &str) {
    let min_bits = 1;
    let f = slot.get(cur);
    let mut passing: Vec<(Format, f64)> = Vec::new();
    if let Some(l) = s.evaluate(cur, src, Some(budget)) {
        passing.push((f, l));
    }
    for db in -1i32..=1 {
        for df in -1i32..=1 {
            let bits = f.bits as i32 + db;
            if (db, df) == (0, 0) || bits < min_bits || bits > FLOAT_PROXY_BITS as i32 {
                continue;
            }
            let g = Format::new(bits as u32, f.frac + df, f.signed);
            if let Some(l) = s.evaluate(&slot.with(cur, g), src, Some(budget)) {
                passing.push((g, l));
            }
        }
    }
    let Some(narrowest) = passing.iter().map(|(g, _)| g.bits).min() else { return };
    let best_narrow = passing
        .iter()
        .filter(|(g, _)| g.bits == narrowest)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .copied()
        .expect("non-empty");
    // Loss is accuracy lost, so a gain in accuracy is a drop in loss.
    let wider = passing
        .iter()
        .filter(|(g, l)| g.bits > narrowest && best_narrow.1 - l > gain)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .copied();
    slot.set(cur, wider.unwrap_or(best_narrow).0);
}

/// Lower one tensor: width with offset, then width alone, then the neighbourhood.
/// `src` labels the evaluations it records.
pub fn lower(s: &mut Search, cur: &mut Assignment, slot: Slot, budget: f64, b: &Budgets, src: &str) {
    let min_bits = 1;
    lower_while(s, cur, slot, budget, min_bits, 1, src);
    lower_while(s, cur, slot, budget, min_bits, 0, src);
    neighbourhood(s, cur, slot, budget, b.keep_wider_gain, src);
}

/// Starting widths: 12 (weights, activations) and 8 (biases), raised by 4 until that kind
/// alone, uniform, stays within `start_loss` (the other kinds at the float proxy).
pub fn start_widths(s: &mut Search, space: &Space, b: &Budgets, src: &str) -> (u32, u32, u32) {
    let p = FLOAT_PROXY_BITS;
    let mut raise = |start: u32, make: &dyn Fn(u32) -> Assignment| {
        let mut w = start;
        while w < p && s.evaluate(&make(w), src, Some(b.start_loss)).is_none() {
            w += 4;
        }
        w.min(p)
    };
    let w = raise(12, &|x| (space.uniform)(x, p, p));
    let bias = raise(8, &|x| (space.uniform)(p, x, p));
    let a = raise(12, &|x| (space.uniform)(p, p, x));
    (w, bias, a)
}

impl Budgets {
    /// Budget of the `i`-th (0-based) of `n` tensors of `kind`, the paper's schedule.
    pub fn for_slot(&self, kind: Kind, i: usize, n: usize) -> f64 {
        self.for_progress(kind, (i + 1) as f64 / n as f64)
    }

    /// Budget once `frac_done` of a kind's share (of layers, or of cost) has been lowered.
    fn for_progress(&self, kind: Kind, frac_done: f64) -> f64 {
        match kind {
            Kind::Weights => self.weights * frac_done,
            Kind::Bias => self.biases,
            Kind::Activation => self.activations_base + self.activations * frac_done,
        }
    }
}

/// What one bit of each slot costs on the primary objective at `a` (the saving of narrowing it
/// by one bit), normalised to cumulative fractions: entry `i` is the share of slots `0..=i`.
/// None when no slot's bits cost anything (e.g. biases under a multiplication-cost primary).
fn cumulative_cost_shares(s: &Search, a: &Assignment, slots: &[Slot]) -> Option<Vec<f64>> {
    let cost = s.price(a)[s.primary];
    let shares: Vec<f64> = slots
        .iter()
        .map(|slot| {
            let f = slot.get(a);
            let narrower = Format::new(f.bits.saturating_sub(1).max(1), f.frac, f.signed);
            (cost - s.price(&slot.with(a, narrower))[s.primary]).max(0.0)
        })
        .collect();
    let total: f64 = shares.iter().sum();
    (total > 0.0).then(|| {
        shares
            .iter()
            .scan(0.0, |acc, x| {
                *acc += x;
                Some(*acc / total)
            })
            .collect()
    })
}

/// Run the whole method; returns the final assignment. `src` labels its evaluations.
pub fn run(s: &mut Search, space: &Space, b: &Budgets, src: &str) -> Assignment {
    let (w, bias, a) = start_widths(s, space, b, src);
    let mut cur = (space.uniform)(w, bias, a);
    s.evaluate(&cur, src, None);
    for kind in [Kind::Weights, Kind::Bias, Kind::Activation] {
        let slots = space.slots(&cur, kind);
        let n = slots.len();
        let shares = if b.cost_weighted && kind != Kind::Bias { cumulative_cost_shares(s, &cur, &slots) } else { None };
        for (i, slot) in slots.into_iter().enumerate() {
            let budget = match &shares {
                Some(sh) => b.for_progress(kind, sh[i]),
                None => b.for_slot(kind, i, n),
            };
            lower(s, &mut cur, slot, budget, b, src);
            if s.exhausted() {
                return cur;
            }
        }
    }
    cur
}

/// The `paper` strategy: the paper's schedule from the uniform sweep's widths.
pub fn strategy(ctx: &mut Context) {
    run(ctx.search, ctx.space, &ctx.budgets, "paper");
}
