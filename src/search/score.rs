//! Scoring assignments on the search split: memoized, parallel over images, and stopped early
//! once a candidate can no longer meet the accuracy it is asked to meet.

use crate::config::LossKind;
use crate::eval::{correct_fixed_bounded, fixed::FixedEngine};
use crate::fixed::{Assignment, Format};
use crate::model::Graph;
use std::collections::HashMap;
use std::fmt::Write;

/// What is known of an assignment's accuracy on the search split.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Known {
    Accuracy(f64),
    /// Evaluation stopped: more than this many samples were wrong.
    MoreErrorsThan(usize),
}

pub struct Scorer<'e> {
    pub graph: &'e Graph,
    inputs: &'e [Vec<f64>],
    labels: &'e [usize],
    pub float_accuracy: f64,
    pub loss_kind: LossKind,
    memo: HashMap<String, Known>,
    /// Full evaluations run, and evaluations stopped early (memo hits excluded).
    pub evaluated: usize,
    pub stopped_early: usize,
}

fn fmt_code(f: Format) -> String {
    format!("{}{}.{}", if f.signed { 's' } else { 'u' }, f.bits, f.frac)
}

/// A compact, canonical text key of an assignment (also the `key` column of evaluations.csv).
pub fn key(a: &Assignment) -> String {
    let mut s = String::new();
    let _ = write!(s, "{:?}/{:?}/{:?};in={}", a.arith.rounding, a.arith.overflow, a.arith.range, fmt_code(a.input));
    for (i, l) in a.layers.iter().enumerate() {
        let _ = write!(s, ";L{i}=");
        if let (Some(w), Some(b)) = (l.weights, l.bias) {
            let _ = write!(s, "w{},b{},", fmt_code(w), fmt_code(b));
        }
        let _ = write!(s, "o{}", fmt_code(l.output));
        if let Some(acc) = l.accumulator {
            let _ = write!(s, ",a{acc}");
        }
    }
    s
}

impl<'e> Scorer<'e> {
    pub fn new(
        graph: &'e Graph,
        inputs: &'e [Vec<f64>],
        labels: &'e [usize],
        float_accuracy: f64,
        loss_kind: LossKind,
    ) -> Self {
        Scorer {
            graph,
            inputs,
            labels,
            float_accuracy,
            loss_kind,
            memo: HashMap::new(),
            evaluated: 0,
            stopped_early: 0,
        }
    }

    pub fn samples(&self) -> usize {
        self.labels.len()
    }

    pub fn loss(&self, acc: f64) -> f64 {
        self.loss_kind.loss(self.float_accuracy, acc)
    }

    /// Errors allowed for a loss of at most `max_loss`.
    pub fn max_errors(&self, max_loss: f64) -> usize {
        let n = self.samples() as f64;
        let min_acc = match self.loss_kind {
            crate::config::LossKind::Relative => self.float_accuracy * (1.0 - max_loss),
            crate::config::LossKind::Absolute => self.float_accuracy - max_loss,
        };
        // Tiny slack so that a loss exactly at the budget is not cut by float rounding.
        let min_correct = (min_acc * n - 1e-9).ceil().max(0.0);
        (n - min_correct).max(0.0) as usize
    }

    /// Preload a result (resuming from an earlier run's evaluations.csv).
    pub fn remember(&mut self, key: String, accuracy: f64) {
        self.memo.insert(key, Known::Accuracy(accuracy));
    }

    /// Accuracy of `a`, or None if it is certainly worse than `max_loss` (when given).
    /// The flag says whether it was computed now rather than remembered.
    pub fn score(&mut self, a: &Assignment, max_loss: Option<f64>) -> (Option<f64>, bool) {
        let k = key(a);
        let limit = max_loss.map(|l| self.max_errors(l));
        match self.memo.get(&k) {
            Some(Known::Accuracy(acc)) => return (Some(*acc), false),
            Some(Known::MoreErrorsThan(e)) if limit.is_some_and(|l| l <= *e) => return (None, false),
            _ => {}
        }
        let engine = FixedEngine::new(self.graph, a).expect("validated assignment");
        match correct_fixed_bounded(&engine, self.graph, self.inputs, self.labels, limit) {
            Some(correct) => {
                self.evaluated += 1;
                let acc = correct as f64 / self.samples() as f64;
                self.memo.insert(k, Known::Accuracy(acc));
                (Some(acc), true)
            }
            None => {
                self.stopped_early += 1;
                self.memo.insert(k, Known::MoreErrorsThan(limit.unwrap_or(0)));
                (None, true)
            }
        }
    }
}
