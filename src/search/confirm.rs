//! The choice with a confidence bound (docs/data-roles.md, "The choice"): the search proposes,
//! images it never saw confirm. Candidates are a ladder through the points of the (search loss,
//! primary cost) front and the uniform sweep within the budget: dearest first, each rung at
//! least [`LADDER_STEP`] cheaper than the one before. The order and the number of rungs `K` are fixed
//! before any confirmation image is looked at, and the rungs are tested in that order by the
//! fallback procedure: each rung gets an error share (`α = 1 - confidence` split by
//! [`error_shares`]), and a rung that is accepted passes its whole level on to the next. So a ladder that goes well tests its
//! last, cheapest rungs at nearly the full `α`, and one unlucky rung costs only its own share
//! instead of ending the test. The chance that any accepted point's true loss is over budget
//! stays within `α`. The chosen point is the cheapest accepted one.

use super::{pareto, Evaluation};
use crate::config::LossKind;
use crate::eval::paired::Paired;
use crate::fixed::Assignment;
use anyhow::Result;

/// A candidate's confirmation result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Confirmed {
    /// Index into the evaluations.
    pub index: usize,
    pub loss: f64,
    pub bound: f64,
    pub flip_rate: f64,
    /// The confidence the bound was computed at (the rung's level).
    pub confidence: f64,
    pub accepted: bool,
}

/// Smallest relative saving on the primary objective between two rungs of the ladder. Every rung
/// tested is a chance for an unlucky confirmation to end the test, so rungs that save little
/// over the one before are skipped.
pub const LADDER_STEP: f64 = 0.05;

/// Candidates in test order: the ladder over the evaluations whose `ladder_loss` (one per
/// evaluation, a loss on the search split) is within `max_loss`, costing at most `max_cost` on
/// the primary objective (the baseline's: a point dearer than what it is compared with is no
/// answer), that are on the (ladder loss, primary cost) front or `declared` (the uniform sweep:
/// points fixed before the search, which a front of points that were lucky on the search images
/// would otherwise hide); dearest first (ties: ladder loss, then id), so that the safest points
/// come first.
pub fn candidates(
    evaluations: &[Evaluation],
    ladder_loss: &[f64],
    primary: usize,
    max_loss: f64,
    max_cost: f64,
    declared: &[usize],
) -> Vec<usize> {
    let within: Vec<usize> = (0..evaluations.len())
        .filter(|&i| ladder_loss[i] <= max_loss + 1e-12 && evaluations[i].objectives[primary] <= max_cost)
        .collect();
    let points: Vec<Vec<f64>> =
        within.iter().map(|&i| vec![ladder_loss[i], evaluations[i].objectives[primary]]).collect();
    let mut order: Vec<usize> = pareto::front(&points).into_iter().map(|k| within[k]).collect();
    let extra: Vec<usize> = declared.iter().copied().filter(|i| within.contains(i) && !order.contains(i)).collect();
    order.extend(extra);
    order.sort_by(|&a, &b| {
        let (x, y) = (&evaluations[a], &evaluations[b]);
        y.objectives[primary]
            .total_cmp(&x.objectives[primary])
            .then(ladder_loss[a].total_cmp(&ladder_loss[b]))
            .then(x.id.cmp(&y.id))
    });
    let mut ladder: Vec<usize> = Vec::new();
    for i in order {
        let cost = evaluations[i].objectives[primary];
        if ladder.last().is_none_or(|&l| cost <= (1.0 - LADDER_STEP) * evaluations[l].objectives[primary]) {
            ladder.push(i);
        }
    }
    ladder
}

/// Each rung's own share of the error rate `alpha`: half for the first rung, the other half
/// split evenly over the rest. The first rung is the safest point of the ladder and nearly always
/// accepted, so its half normally flows on to the rungs after it (as in a fixed-sequence test);
/// the even shares keep the test going after an unlucky rung. A lone rung gets all of `alpha`.
pub fn error_shares(alpha: f64, rungs: usize) -> Vec<f64> {
    match rungs {
        0 => Vec::new(),
        1 => vec![alpha],
        k => std::iter::once(alpha / 2.0).chain(std::iter::repeat_n(alpha / 2.0 / (k - 1) as f64, k - 1)).collect(),
    }
}

/// Test every candidate in order with `confirm` (the paired counts of a point on the
/// confirmation images) by the fallback procedure at overall `confidence`.
#[allow(clippy::too_many_arguments)]
pub fn run(
    evaluations: &[Evaluation],
    ladder_loss: &[f64],
    primary: usize,
    max_loss: f64,
    max_cost: f64,
    declared: &[usize],
    kind: LossKind,
    confidence: f64,
    mut confirm: impl FnMut(&Assignment) -> Result<Paired>,
) -> Result<Vec<Confirmed>> {
    let ladder = candidates(evaluations, ladder_loss, primary, max_loss, max_cost, declared);
    let shares = error_shares(1.0 - confidence, ladder.len());
    let mut carried = 0.0;
    let mut tested = Vec::new();
    for (index, share) in ladder.into_iter().zip(shares) {
        let level = share + carried;
        let p = confirm(&evaluations[index].assignment)?;
        let bound = p.loss_upper_bound(kind, 1.0 - level);
        let accepted = bound <= max_loss + 1e-12;
        carried = if accepted { level } else { 0.0 };
        let flip_rate = p.flip_rate();
        tested.push(Confirmed { index, loss: p.loss(kind), bound, flip_rate, confidence: 1.0 - level, accepted });
    }
    Ok(tested)
}

/// The cheapest accepted candidate on the primary objective (ties: the lowest bound, then the
/// earliest evaluation).
pub fn cheapest_accepted<'t>(
    tested: &'t [Confirmed],
    evaluations: &[Evaluation],
    primary: usize,
) -> Option<&'t Confirmed> {
    tested.iter().filter(|c| c.accepted).min_by(|a, b| {
        evaluations[a.index].objectives[primary]
            .total_cmp(&evaluations[b.index].objectives[primary])
            .then(a.bound.total_cmp(&b.bound))
            .then(a.index.cmp(&b.index))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixed::Format;
    use proptest::prelude::*;

    fn eval(id: usize, loss: f64, cost: f64) -> Evaluation {
        let row = crate::run_folder::EvaluationRow {
            id,
            source: String::new(),
            acc_search: 0.0,
            loss_search: loss,
            objectives: vec![cost],
            key: id.to_string(),
        };
        Evaluation {
            row,
            assignment: Assignment { arith: Default::default(), input: Format::new(8, 8, false), layers: vec![] },
        }
    }

    /// The ladder ranking by each evaluation's own search loss.
    fn losses(e: &[Evaluation]) -> Vec<f64> {
        e.iter().map(|e| e.loss_search).collect()
    }

    #[test]
    fn candidates_are_a_ladder_over_the_front_within_budget() {
        let e = vec![
            eval(0, 0.000, 100.0),
            eval(1, 0.005, 50.0),
            eval(2, 0.006, 60.0), // dominated by 1
            eval(3, 0.007, 48.0), // on the front, but saves less than 5 % over 1
            eval(4, 0.009, 30.0),
            eval(5, 0.020, 10.0), // over budget
        ];
        assert_eq!(candidates(&e, &losses(&e), 0, 0.01, f64::INFINITY, &[]), vec![0, 1, 4]);
        assert_eq!(
            candidates(&e, &losses(&e), 0, 0.01, 60.0, &[]),
            vec![1, 4],
            "dearer than the baseline: no candidate"
        );
        assert_eq!(
            candidates(&e, &losses(&e), 0, 0.01, 60.0, &[2]),
            vec![2, 1, 4],
            "a declared point joins, dearest first"
        );
    }

    #[test]
    fn fallback_levels_and_the_cheapest_accepted() {
        let e = vec![eval(0, 0.0, 100.0), eval(1, 0.004, 40.0), eval(2, 0.006, 50.0), eval(3, 0.008, 20.0)];
        // Candidate 2 is dominated by 1 (cheaper and lower loss): the ladder is 0, 1, 3.
        let clean = |_: &Assignment| Ok(Paired { n: 1000, float_correct: 1000, ..Paired::default() });
        let tested = run(&e, &losses(&e), 0, 0.01, f64::INFINITY, &[], LossKind::Absolute, 0.95, clean).unwrap();
        let levels: Vec<f64> = tested.iter().map(|c| 1.0 - c.confidence).collect();
        // Shares 1/2, 1/4, 1/4 of 5 %, each passed on.
        assert!(levels.iter().zip([0.025, 0.0375, 0.05]).all(|(l, w)| (l - w).abs() < 1e-12), "{levels:?}");
        assert_eq!(cheapest_accepted(&tested, &e, 0).unwrap().index, 3);
        // The second rung loses 30 of 1000 images: rejected, and the third starts again from its
        // own share, but is still tested.
        let mut calls = 0;
        let tested = run(&e, &losses(&e), 0, 0.01, f64::INFINITY, &[], LossKind::Absolute, 0.95, |_| {
            calls += 1;
            let lost = if calls == 2 { 30 } else { 0 };
            Ok(Paired { n: 1000, float_correct: 1000, lost, flips: lost, ..Paired::default() })
        })
        .unwrap();
        assert_eq!(tested.len(), 3, "a rejection does not end the test");
        assert!(!tested[1].accepted && tested[2].accepted);
        assert!((1.0 - tested[2].confidence - 0.0125).abs() < 1e-12);
        assert_eq!(cheapest_accepted(&tested, &e, 0).unwrap().index, 3);
    }

    proptest! {
        /// Whatever the confirmation images show, every rung is tested, the levels spent never
        /// exceed the overall error rate (each rung's level is its share plus what the accepted
        /// rungs just before it passed on), and a rung is accepted exactly when its bound is
        /// within the budget.
        #[test]
        fn fallback_keeps_its_error_rate(
            outcomes in proptest::collection::vec((0usize..40, 0usize..20), 1..12),
            n in 100usize..3000,
        ) {
            let e: Vec<Evaluation> =
                (0..outcomes.len()).map(|i| eval(i, i as f64 * 0.0008, 100.0 - 6.0 * i as f64)).collect();
            let mut k = 0;
            let tested = run(&e, &losses(&e), 0, 0.01, f64::INFINITY, &[], LossKind::Absolute, 0.95, |_| {
                let (lost, gained) = outcomes[k];
                k += 1;
                Ok(Paired { n, float_correct: n, lost, gained, flips: lost + gained, ..Paired::default() })
            })
            .unwrap();
            prop_assert_eq!(tested.len(), outcomes.len());
            let shares = error_shares(0.05, outcomes.len());
            prop_assert!((shares.iter().sum::<f64>() - 0.05).abs() < 1e-12);
            let mut carried = 0.0;
            for (c, share) in tested.iter().zip(&shares) {
                let level = 1.0 - c.confidence;
                prop_assert!((level - (share + carried)).abs() < 1e-12 && level <= 0.05 + 1e-12);
                prop_assert!(c.bound >= c.loss);
                prop_assert_eq!(c.accepted, c.bound <= 0.01 + 1e-12);
                carried = if c.accepted { level } else { 0.0 };
            }
        }
    }
}
