//! Scoring assignments on the search split: memoized, parallel over images, and stopped early
//! once a candidate can no longer meet the accuracy it is asked to meet.

use crate::config::LossKind;
use crate::eval::fixed::FixedEngine;
use crate::eval::runner::{argmax, live_at, run_nodes, Workspace};
use crate::fixed::{Assignment, Format};
use crate::model::Graph;
use rayon::prelude::*;
use std::collections::HashMap;
use std::fmt::Write;

/// Saved tensors of every search sample at a cut between two nodes, valid for every assignment
/// that agrees with `assignment` on all nodes before the cut. Sequential strategies change one
/// layer at a time, so most candidates resume here instead of recomputing the layers before.
struct Prefix {
    assignment: Assignment,
    cut: usize,
    live: Vec<usize>,
    /// `[sample][live value]` codes.
    values: Vec<Vec<Vec<i64>>>,
}

/// Largest prefix cache kept, in bytes.
const PREFIX_BYTES: usize = 1 << 30;
/// Samples per early-stopping check.
const CHUNK: usize = 250;

/// Load sample `i` into `ws`: its saved prefix tensors, or its quantized input.
fn begin(
    graph: &Graph,
    engine: &FixedEngine,
    prefix: Option<&Prefix>,
    input: &[f64],
    i: usize,
    ws: &mut Workspace<i64>,
    codes: &mut Vec<i64>,
) {
    match prefix {
        Some(p) => ws.load(&p.live, &p.values[i]),
        None => {
            codes.clear();
            engine.quantize_input(input, codes);
            ws.load(&[graph.input], std::slice::from_ref(codes));
        }
    }
}

/// First node whose computation differs between `a` and `b` (every node before it produces the
/// same codes under both).
fn first_difference(graph: &Graph, a: &Assignment, b: &Assignment) -> usize {
    if a.input != b.input || a.arith != b.arith {
        return 0;
    }
    a.layers.iter().zip(&b.layers).find(|(x, y)| x != y).map(|(x, _)| x.node).unwrap_or(graph.nodes.len())
}

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
    prefix: Option<Prefix>,
    last: Option<Assignment>,
    /// Whether to reuse saved prefixes (off only to measure what they save).
    pub reuse_prefix: bool,
    /// Whether to stop scoring a candidate once it cannot meet its loss limit (off only to
    /// measure what that saves: the caller still sees the limit exceeded).
    pub early_stop: bool,
    /// Nodes run over all samples, summed over evaluations (the work done).
    pub nodes_run: usize,
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
            prefix: None,
            last: None,
            reuse_prefix: true,
            early_stop: true,
            nodes_run: 0,
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
        let limit = max_loss.filter(|_| self.early_stop).map(|l| self.max_errors(l));
        match self.memo.get(&k) {
            Some(Known::Accuracy(acc)) => return (Some(*acc), false),
            Some(Known::MoreErrorsThan(e)) if limit.is_some_and(|l| l <= *e) => return (None, false),
            _ => {}
        }
        let correct = self.count_correct(a, limit);
        self.last = Some(a.clone());
        match correct {
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

    /// Correct predictions of `a` on the search split, or None once more than `limit` are wrong.
    fn count_correct(&mut self, a: &Assignment, limit: Option<usize>) -> Option<usize> {
        let graph = self.graph;
        let n_nodes = graph.nodes.len();
        let engine = FixedEngine::new(graph, a).expect("validated assignment");
        // Where this candidate can start: after a saved prefix it agrees with, else the input.
        let mut start = match &self.prefix {
            Some(p) if self.reuse_prefix && first_difference(graph, &p.assignment, a) >= p.cut => p.cut,
            _ => 0,
        };
        // Save a new prefix up to the first node this candidate changes against the previous one:
        // the next candidates of a sequential search most likely agree with it that far.
        let target = self.last.as_ref().map_or(0, |l| first_difference(graph, l, a)).min(n_nodes - 1);
        if self.reuse_prefix && target > start {
            let live = live_at(graph, target);
            let per_sample: usize = live.iter().map(|&v| graph.values[v].numel()).sum();
            if per_sample * self.inputs.len() * 8 <= PREFIX_BYTES {
                let values = self.run_prefix(&engine, start, target, &live);
                self.nodes_run += (target - start) * self.inputs.len();
                self.prefix = Some(Prefix { assignment: a.clone(), cut: target, live, values });
                start = target;
            }
        }
        let from_prefix = start > 0;
        let mut errors = 0;
        for c0 in (0..self.inputs.len()).step_by(CHUNK) {
            let range = c0..(c0 + CHUNK).min(self.inputs.len());
            let prefix = self.prefix.as_ref().filter(|_| from_prefix);
            let inputs = self.inputs;
            let wrong: usize = range
                .clone()
                .into_par_iter()
                .map_init(
                    || (Workspace::new(graph), Vec::new()),
                    |(ws, codes), i| {
                        begin(graph, &engine, prefix, &inputs[i], i, ws, codes);
                        run_nodes(graph, &engine, ws, start..n_nodes, false);
                        usize::from(argmax(ws.value(graph.output)) != self.labels[i])
                    },
                )
                .sum();
            self.nodes_run += (n_nodes - start) * range.len();
            errors += wrong;
            if limit.is_some_and(|m| errors > m) {
                return None;
            }
        }
        Some(self.labels.len() - errors)
    }

    /// Run nodes `from..to` for every sample (from the saved prefix when `from > 0`) and save
    /// the values live at `to`.
    fn run_prefix(&self, engine: &FixedEngine, from: usize, to: usize, live: &[usize]) -> Vec<Vec<Vec<i64>>> {
        let graph = self.graph;
        let prefix = self.prefix.as_ref().filter(|_| from > 0);
        (0..self.inputs.len())
            .into_par_iter()
            .map_init(
                || (Workspace::new(graph), Vec::new()),
                |(ws, codes), i| {
                    begin(graph, engine, prefix, &self.inputs[i], i, ws, codes);
                    run_nodes(graph, engine, ws, from..to, false);
                    ws.save(live)
                },
            )
            .collect()
    }
}
