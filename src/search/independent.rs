//! The "independent" strategy the paper warns against: each tensor is lowered alone against the
//! float network (every other tensor at the float proxy), then all results are combined. The
//! combination is scored honestly; its loss is usually far over budget.

use super::paper::{lower, Budgets};
use super::{Context, Search, Space, FLOAT_PROXY_BITS};
use crate::eval::calibrate::Kind;
use crate::fixed::Assignment;

/// Returns the combined assignment and its loss on the search split.
pub fn run(s: &mut Search, space: &Space, b: &Budgets) -> (Assignment, Option<f64>) {
    let p = FLOAT_PROXY_BITS;
    let base = (space.uniform)(p, p, p);
    let mut combined = base.clone();
    for kind in [Kind::Weights, Kind::Bias, Kind::Activation] {
        let slots = space.slots(&base, kind);
        let n = slots.len();
        for (i, slot) in slots.into_iter().enumerate() {
            let mut alone = base.clone();
            lower(s, &mut alone, slot, b.for_slot(kind, i, n), b, "independent");
            slot.set(&mut combined, slot.get(&alone));
        }
    }
    let loss = s.evaluate(&combined, "independent", None);
    (combined, loss)
}

/// The `independent` strategy; notes what the combination loses.
pub fn strategy(ctx: &mut Context) {
    let (_, loss) = run(ctx.search, ctx.space, &ctx.budgets);
    ctx.notes.push(match loss {
        Some(l) => format!("independent: the combined assignment loses {:.2}% on the search split", 100.0 * l),
        None => "independent: the evaluation budget ran out before the combination was scored".into(),
    });
}
