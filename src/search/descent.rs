//! Cost-aware greedy descent: from a starting point (the paper method's result), repeatedly take
//! the one-bit narrowing that saves the most primary cost per unit of loss, as long as the loss
//! on the search split stays within `max_loss`.
//!
//! The paper method lowers every tensor in a fixed order against per-layer budgets and never
//! looks at what a bit costs: it spends the loss budget as readily on a bias of 64 values as on
//! the activation feeding a layer of 1.8M multiplications, and it stops with budget left over.
//! The descent spends what is left where the profile says bits are expensive. When no narrowing
//! fits, it widens a tensor whose bits cost nothing on the primary objective (a bias, under a
//! multiplication-cost primary) if that lowers the loss, and goes on narrowing.

use super::paper::{self, Budgets};
use super::{Context, Search, Slot, Space, FLOAT_PROXY_BITS};
use crate::fixed::{Assignment, Format};

/// Every slot of an assignment: weights and bias of each parameterised layer, every output.
fn slots(a: &Assignment) -> Vec<Slot> {
    let mut v = Vec::new();
    for (i, l) in a.layers.iter().enumerate() {
        if l.weights.is_some() {
            v.extend([Slot::Weights(i), Slot::Bias(i)]);
        }
        v.push(Slot::Output(i));
    }
    v
}

/// The one-bit narrowings of a format: drop the lowest bit (same integer bits, coarser step) or
/// the highest (same step, half the range).
fn narrowings(f: Format) -> Vec<Format> {
    if f.bits <= 1 {
        return Vec::new();
    }
    vec![Format::new(f.bits - 1, f.frac - 1, f.signed), Format::new(f.bits - 1, f.frac, f.signed)]
}

/// Each weighted layer's weights switched between per-channel and per-tensor offsets, where the
/// space lets strategies choose (else none).
fn offset_switches(space: &Space, a: &Assignment) -> Vec<Assignment> {
    if !space.choose_offsets {
        return Vec::new();
    }
    (0..a.layers.len())
        .filter(|&i| a.layers[i].weights.is_some())
        .map(|i| {
            let mut b = a.clone();
            b.layers[i].per_channel = !b.layers[i].per_channel;
            b
        })
        .collect()
}

/// The one-bit widenings of a format: a finer step, or twice the range.
fn widenings(f: Format) -> Vec<Format> {
    if f.bits >= FLOAT_PROXY_BITS {
        return Vec::new();
    }
    vec![Format::new(f.bits + 1, f.frac + 1, f.signed), Format::new(f.bits + 1, f.frac, f.signed)]
}

/// Descend from `start` (scored or not; if it is over `max_loss`, from the cheapest point scored
/// so far within it) until no narrowing stays within `max_loss`, the
/// search's evaluation budget is spent or `limit` more candidates have been scored. Returns the
/// last accepted point.
pub fn run(s: &mut Search, space: &Space, start: Assignment, src: &str, limit: usize) -> Assignment {
    let max_loss = s.max_loss;
    let scored = |s: &Search| s.scorer.scored();
    let stop_at = scored(s).saturating_add(limit);
    let spent = |s: &Search| s.exhausted() || scored(s) >= stop_at;
    let Some(mut loss) = s.evaluate(&start, src, None) else { return start };
    let mut cur = start;
    // A start over the budget has nothing to narrow: descend from the cheapest point within it.
    if loss > max_loss {
        match s.best_within_budget() {
            Some(e) => (cur, loss) = (e.assignment.clone(), e.loss_search),
            None => return cur,
        }
    }
    // Half an image's worth of loss: the denominator of "saving per loss" for moves that lose
    // nothing measurable, so that among those the largest saving wins.
    let quantum = 0.5 / s.scorer.samples().max(1) as f64;
    while loss <= max_loss && !spent(s) {
        let cost = s.price(&cur)[s.primary];
        // Candidates by saving, largest first: under the budget's end the big ones are tried
        // before the evaluation budget runs out.
        let mut moves: Vec<(Assignment, f64)> = slots(&cur)
            .into_iter()
            .flat_map(|slot| narrowings(slot.get(&cur)).into_iter().map(move |f| (slot, f)))
            .map(|(slot, f)| slot.with(&cur, f))
            .chain(offset_switches(space, &cur))
            .map(|a| {
                let saving = cost - s.price(&a)[s.primary];
                (a, saving)
            })
            .filter(|(_, saving)| *saving > 0.0)
            .collect();
        moves.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut best: Option<(Assignment, f64, f64)> = None;
        for (a, saving) in moves {
            if spent(s) {
                break;
            }
            if let Some(l) = s.evaluate(&a, src, Some(max_loss)) {
                let ratio = saving / ((l - loss).max(0.0) + quantum);
                if best.as_ref().is_none_or(|b| ratio > b.2) {
                    best = Some((a, l, ratio));
                }
            }
        }
        if best.is_none() {
            best = free_widening(s, space, &cur, cost, loss, src, &spent).map(|(a, l)| (a, l, 0.0));
        }
        match best {
            Some((a, l, _)) => {
                cur = a;
                loss = l;
            }
            None => break,
        }
    }
    cur
}

/// The widening that costs nothing on the primary objective and lowers the loss most, if any
/// lowers it at all.
fn free_widening(
    s: &mut Search,
    space: &Space,
    cur: &Assignment,
    cost: f64,
    loss: f64,
    src: &str,
    spent: &dyn Fn(&Search) -> bool,
) -> Option<(Assignment, f64)> {
    let mut best: Option<(Assignment, f64)> = None;
    let widened =
        slots(cur).into_iter().flat_map(|slot| widenings(slot.get(cur)).into_iter().map(move |f| slot.with(cur, f)));
    for a in widened.chain(offset_switches(space, cur)) {
        if spent(s) || s.price(&a)[s.primary] > cost {
            continue;
        }
        if let Some(l) = s.evaluate(&a, src, Some(s.max_loss)) {
            if l < best.as_ref().map_or(loss, |b| b.1) - 1e-12 {
                best = Some((a, l));
            }
        }
    }
    best
}

/// The `descent` strategy: the cost-weighted paper search, then the descent from its point.
pub fn strategy(ctx: &mut Context) {
    let weighted = Budgets { cost_weighted: true, ..ctx.budgets };
    let p = paper::run(ctx.search, ctx.space, &weighted, "paper-weighted");
    run(ctx.search, ctx.space, p, "descent", usize::MAX);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrowings_keep_integer_bits_or_step() {
        let f = Format::new(6, 3, true);
        assert_eq!(narrowings(f), vec![Format::new(5, 2, true), Format::new(5, 3, true)]);
        assert!(narrowings(Format::new(1, 0, false)).is_empty());
    }
}
