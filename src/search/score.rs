//! Scoring assignments on the search split: memoized, parallel over images, and stopped early
//! once a candidate can no longer meet the loss it is asked to meet. Each image is compared
//! with the float network's output (eval/paired.rs); the search decides by the configured
//! signal, soft or top-1 loss (docs/data-roles.md, "The search signal").

use crate::config::{LossKind, Signal};
use crate::eval::fixed::FixedEngine;
use crate::eval::int16::Code;
use crate::eval::paired::{compare, Paired};
use crate::eval::runner::{live_at, Pool, Workspace, BATCH};
use crate::fixed::{Arith, Assignment, Format};
use crate::model::Graph;
use rand::seq::SliceRandom;
use rand::SeedableRng;
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
    values: SavedCodes,
}

/// A prefix's codes `[sample][live value][element]`, in the code type of the engine that saved
/// them: i32 halves their memory and makes every image's load of them a copy (as i64 the load
/// narrowed each code, 5 % of the default explore's profile).
enum SavedCodes {
    I32(Vec<Vec<Vec<i32>>>),
    I64(Vec<Vec<Vec<i64>>>),
}

/// The code types the engine stores (and a prefix is saved in).
trait Saved: Code {
    fn wrap(codes: Vec<Vec<Vec<Self>>>) -> SavedCodes;
    /// The scorer's workspaces for this code type.
    fn pool(pools: &Pools) -> &Pool<Self>;
}

impl Saved for i32 {
    fn wrap(codes: Vec<Vec<Vec<i32>>>) -> SavedCodes {
        SavedCodes::I32(codes)
    }
    fn pool(pools: &Pools) -> &Pool<i32> {
        &pools.0
    }
}

impl Saved for i64 {
    fn wrap(codes: Vec<Vec<Vec<i64>>>) -> SavedCodes {
        SavedCodes::I64(codes)
    }
    fn pool(pools: &Pools) -> &Pool<i64> {
        &pools.1
    }
}

/// Workspaces kept from one candidate's passes to the next, of either code type.
#[derive(Default)]
struct Pools(Pool<i32>, Pool<i64>);

/// Standard errors of margin before racing gives a candidate up: the remaining images' mean is
/// taken at the observed mean minus this many standard errors. At 4 a candidate whose full
/// loss is within its limit is given up with a chance under 1e-4 per check.
const RACE_SIGMAS: f64 = 4.0;

/// Racing over growing batches of one candidate's per-image signal values (docs/data-roles.md,
/// "Racing"): after each batch, give up when the full-split sum is certainly above the limit
/// (the images left cannot bring it back) or clearly above it (the images left would have to
/// average `RACE_SIGMAS` standard errors below the images seen). A candidate is never accepted
/// on a part of the images: a race that is not given up sees every image, so the loss it
/// reports is the exact full-split loss.
#[derive(Debug, Clone, Copy, Default)]
pub struct Race {
    /// Images seen, their signal sum and sum of squares.
    pub seen: usize,
    pub sum: f64,
    pub sum_sq: f64,
}

impl Race {
    pub fn observe(&mut self, values: impl IntoIterator<Item = f64>) {
        for v in values {
            self.seen += 1;
            self.sum += v;
            self.sum_sq += v * v;
        }
    }

    /// Whether the sum over all `n` images is certainly or clearly above `limit_sum`, given
    /// that the images not seen can add no less than `rest_min`.
    pub fn out(&self, n: usize, rest_min: f64, limit_sum: f64) -> bool {
        if self.sum + rest_min > limit_sum {
            return true;
        }
        let (k, rest) = (self.seen as f64, (n - self.seen) as f64);
        if self.seen < 2 || rest == 0.0 {
            return false;
        }
        let mean = self.sum / k;
        let var = ((self.sum_sq / k - mean * mean) * k / (k - 1.0)).max(0.0);
        // The images left are a sample of their own: their mean differs from the seen mean by
        // the spread of both, sd * sqrt(1/k + 1/rest) (the second term rules near the end).
        let rest_low = rest * (mean - RACE_SIGMAS * (var * (1.0 / k + 1.0 / rest)).sqrt());
        self.sum + rest_low.max(rest_min) > limit_sum
    }
}

/// Largest prefix cache kept, in bytes.
const PREFIX_BYTES: usize = 1 << 30;
/// Samples per early-stopping check.
const CHUNK: usize = 250;

/// Load sample `i` into `ws`: its saved prefix tensors, or its quantized input (from `codes`,
/// or quantized into the `scratch`).
#[allow(clippy::too_many_arguments)]
fn begin<C: Code>(
    graph: &Graph,
    engine: &FixedEngine,
    prefix: Option<&Prefix>,
    codes: Option<&InputCodes>,
    input: &[f64],
    i: usize,
    ws: &mut Workspace<C>,
    scratch: &mut Vec<C>,
) {
    match (prefix, codes) {
        // Codes saved by an engine of the other width fit this one's: the layers before the
        // cut, and so their formats, are the same.
        (Some(p), _) => match &p.values {
            SavedCodes::I32(v) => ws.load(&p.live, &v[i], |k| C::store(i64::from(k))),
            SavedCodes::I64(v) => ws.load(&p.live, &v[i], C::store),
        },
        (None, Some(c)) => ws.load(&[graph.input], std::slice::from_ref(&c.codes[i]), C::store),
        (None, None) => {
            scratch.clear();
            engine.quantize_input(input, scratch);
            ws.load(&[graph.input], std::slice::from_ref(scratch), |k| k);
        }
    }
}

/// Every search image's input codes in one input format: candidates that change no input
/// format (most of a search) start from these instead of quantizing every image again.
struct InputCodes {
    format: Format,
    arith: Arith,
    codes: Vec<Vec<i64>>,
}

/// First node whose computation differs between `a` and `b` (every node before it produces the
/// same codes under both).
fn first_difference(graph: &Graph, a: &Assignment, b: &Assignment) -> usize {
    if a.input != b.input || a.arith != b.arith {
        return 0;
    }
    a.layers.iter().zip(&b.layers).find(|(x, y)| x != y).map(|(x, _)| x.node).unwrap_or(graph.nodes.len())
}

/// What is known of an assignment on the search split.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Known {
    /// Top-1 accuracy and the signal's loss.
    Scored { accuracy: f64, loss: f64 },
    /// The same, from a resumed run's log and not asked for yet: its first request stands for
    /// the evaluation the earlier run made, so it spends the budget as that run did and a
    /// resumed search replays it exactly.
    Remembered { accuracy: f64, loss: f64 },
    /// Evaluation stopped: the signal's loss is certainly above this.
    LossAbove(f64),
}

/// A finished score: top-1 accuracy and the loss the search decides by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    pub accuracy: f64,
    pub loss: f64,
}

pub struct Scorer<'e> {
    pub graph: &'e Graph,
    inputs: &'e [Vec<f64>],
    labels: &'e [usize],
    /// The float network's class and softmax per search image.
    float: &'e [(usize, Vec<f64>)],
    pub float_accuracy: f64,
    pub loss_kind: LossKind,
    pub signal: Signal,
    /// The order images are scored in: a fixed shuffle, so that the images seen when a race is
    /// decided are a random sample whatever order the data set is in (sorted by class, say).
    order: Vec<usize>,
    /// `rest_min[j]`: the least images `order[j..]` can still add to the signal's loss sum (an
    /// image adds at least `p_float(label) - 1` soft, or -1 top-1 where the float network is
    /// wrong), for stopping a score early.
    rest_min: Vec<f64>,
    memo: HashMap<String, Known>,
    prefix: Option<Prefix>,
    /// The input codes of the last input format scored (None where they would not fit
    /// [`PREFIX_BYTES`]).
    input_codes: Option<InputCodes>,
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
    /// Remembered results asked for (each counts as the evaluation the earlier run made).
    pub replayed: usize,
    pools: Pools,
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
            // `/c`: per-channel weight offsets.
            let pc = if l.per_channel { "/c" } else { "" };
            let _ = write!(s, "w{}{pc},b{},", fmt_code(w), fmt_code(b));
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
        float: &'e [(usize, Vec<f64>)],
        loss_kind: LossKind,
        signal: Signal,
    ) -> Self {
        let n = labels.len();
        let float_correct = float.iter().zip(labels).filter(|((c, _), l)| c == *l).count();
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0x5eed));
        let mut rest_min = vec![0.0; n + 1];
        for (j, &i) in order.iter().enumerate().rev() {
            let least = match signal {
                Signal::Soft => float[i].1.get(labels[i]).copied().unwrap_or(0.0) - 1.0,
                Signal::Top1 => -f64::from(u8::from(float[i].0 != labels[i])),
            };
            rest_min[j] = rest_min[j + 1] + least;
        }
        Scorer {
            graph,
            inputs,
            labels,
            float,
            float_accuracy: if n == 0 { 0.0 } else { float_correct as f64 / n as f64 },
            loss_kind,
            signal,
            order,
            rest_min,
            memo: HashMap::new(),
            prefix: None,
            input_codes: None,
            last: None,
            reuse_prefix: true,
            early_stop: true,
            nodes_run: 0,
            evaluated: 0,
            stopped_early: 0,
            replayed: 0,
            pools: Pools::default(),
        }
    }

    pub fn samples(&self) -> usize {
        self.labels.len()
    }

    /// The loss the search decides by, of a complete comparison.
    fn signal_loss(&self, p: &Paired) -> f64 {
        match self.signal {
            Signal::Soft => p.soft_loss(self.loss_kind),
            Signal::Top1 => p.loss(self.loss_kind),
        }
    }

    /// What turns a loss sum over the search images into the configured loss.
    fn scale(&self) -> f64 {
        self.loss_kind.scale(self.float_accuracy)
    }

    /// One image's contribution to the signal's loss sum.
    fn signal_value(&self, p: &Paired) -> f64 {
        match self.signal {
            Signal::Top1 => p.lost as f64 - p.gained as f64,
            Signal::Soft => p.soft_sum,
        }
    }

    /// Preload a result (resuming from an earlier run's evaluations.csv).
    pub fn remember(&mut self, key: String, accuracy: f64, loss: f64) {
        self.memo.insert(key, Known::Remembered { accuracy, loss });
    }

    /// Candidates scored so far: run in full, stopped early, or replayed from a resumed log.
    pub fn scored(&self) -> usize {
        self.evaluated + self.stopped_early + self.replayed
    }

    /// The score of `a`, or None if its loss is certainly over `max_loss` (when given).
    /// The flag says whether it was computed now rather than remembered.
    pub fn score(&mut self, a: &Assignment, max_loss: Option<f64>) -> (Option<Score>, bool) {
        let k = key(a);
        let limit = max_loss.filter(|_| self.early_stop);
        match self.memo.get_mut(&k) {
            Some(Known::Scored { accuracy, loss }) => return (Some(Score { accuracy: *accuracy, loss: *loss }), false),
            Some(&mut Known::Remembered { accuracy, loss }) => {
                self.memo.insert(k, Known::Scored { accuracy, loss });
                self.replayed += 1;
                return (Some(Score { accuracy, loss }), false);
            }
            Some(Known::LossAbove(x)) if limit.is_some_and(|l| l <= *x) => return (None, false),
            _ => {}
        }
        let compared = self.compare(a, limit);
        self.last = Some(a.clone());
        match compared {
            Some(p) => {
                self.evaluated += 1;
                let accuracy = p.fixed_accuracy();
                let score = Score { accuracy, loss: self.signal_loss(&p) };
                self.memo.insert(k, Known::Scored { accuracy, loss: score.loss });
                (Some(score), true)
            }
            None => {
                self.stopped_early += 1;
                self.memo.insert(k, Known::LossAbove(limit.unwrap_or(0.0)));
                (None, true)
            }
        }
    }

    /// The comparison of `a` with the float network on the search split, or None once its loss
    /// certainly exceeds `limit`.
    fn compare(&mut self, a: &Assignment, limit: Option<f64>) -> Option<Paired> {
        let graph = self.graph;
        let n_nodes = graph.nodes.len();
        let engine = FixedEngine::new(graph, a).expect("validated assignment");
        self.quantize_inputs(&engine, a);
        let step = 2f64.powi(-engine.formats()[graph.output].frac);
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
            let code_bytes = if engine.stores_i32() { 4 } else { 8 };
            if per_sample * self.inputs.len() * code_bytes <= PREFIX_BYTES {
                let values = self.run_prefix(&engine, start, target, &live);
                self.nodes_run += (target - start) * self.inputs.len();
                self.prefix = Some(Prefix { assignment: a.clone(), cut: target, live, values });
                start = target;
            }
        }
        let from_prefix = start > 0;
        let mut total = Paired::default();
        let mut race = Race::default();
        let n = self.samples();
        // The loss limit as a sum over the search images; 0 loss scale: no limit can be exceeded.
        let limit_sum =
            limit.map(|m| if self.scale() > 0.0 { (m + 1e-12) * n as f64 / self.scale() } else { f64::INFINITY });
        for c0 in (0..n).step_by(CHUNK) {
            let positions = c0..(c0 + CHUNK).min(n);
            let prefix = self.prefix.as_ref().filter(|_| from_prefix);
            let images = &self.order[positions.clone()];
            let per_image = if engine.stores_i32() {
                self.compare_images::<i32>(&engine, prefix, images, start, step)
            } else {
                self.compare_images::<i64>(&engine, prefix, images, start, step)
            };
            self.nodes_run += (n_nodes - start) * positions.len();
            // Summed in scoring order, not in rayon's: a float sum must not depend on how the
            // work was split between threads, or the search would not repeat under a seed.
            race.observe(per_image.iter().map(|p| self.signal_value(p)));
            total = per_image.into_iter().fold(total, |t, p| t + p);
            if limit_sum.is_some_and(|l| race.out(n, self.rest_min[positions.end], l)) {
                return None;
            }
        }
        Some(total)
    }

    /// The comparisons of `images` with the float network, each run from node `start` on (its
    /// codes there in `prefix`, or its input), `step` the output's code step.
    fn compare_images<C: Saved>(
        &self,
        engine: &FixedEngine,
        prefix: Option<&Prefix>,
        images: &[usize],
        start: usize,
        step: f64,
    ) -> Vec<Paired> {
        let (graph, labels, float) = (self.graph, self.labels, self.float);
        self.run_images::<C, _>(engine, prefix, images, start..graph.nodes.len(), |ws, i| {
            let out = ws.value(graph.output).iter().map(|&c| c.load() as f64 * step);
            compare(&float[i].1, float[i].0, out, labels[i])
        })
    }

    /// `read(workspace, image)` after running nodes `range` for each of `images` (from the
    /// saved `prefix`, or its input), in batches, in parallel, in `images`' order.
    fn run_images<C: Saved, R: Send>(
        &self,
        engine: &FixedEngine,
        prefix: Option<&Prefix>,
        images: &[usize],
        range: std::ops::Range<usize>,
        read: impl Fn(&Workspace<C>, usize) -> R + Sync,
    ) -> Vec<R> {
        let (graph, stored) = (self.graph, engine.storing::<C>());
        let batches: Vec<Vec<R>> = images
            .par_chunks(BATCH)
            .map_init(
                || (C::pool(&self.pools).lease(graph), Vec::new()),
                |(lease, scratch), ids| {
                    let b = &mut lease.batch;
                    for (ws, &i) in b.images(graph, ids.len()).iter_mut().zip(ids) {
                        begin(graph, engine, prefix, self.input_codes.as_ref(), &self.inputs[i], i, ws, scratch);
                    }
                    b.run(graph, &stored, ids.len(), range.clone(), false);
                    b.images(graph, ids.len()).iter().zip(ids).map(|(ws, &i)| read(ws, i)).collect()
                },
            )
            .collect();
        batches.into_iter().flatten().collect()
    }

    /// Keep every search image's input codes in `a`'s input format (unless they are kept
    /// already, or would not fit the cache budget).
    fn quantize_inputs(&mut self, engine: &FixedEngine, a: &Assignment) {
        if self.input_codes.as_ref().is_some_and(|c| c.format == a.input && c.arith == a.arith) {
            return;
        }
        self.input_codes = None;
        let per_sample = self.graph.values[self.graph.input].numel();
        if per_sample * self.inputs.len() * 8 > PREFIX_BYTES {
            return;
        }
        let codes = self
            .inputs
            .par_iter()
            .map(|x| {
                let mut c = Vec::with_capacity(x.len());
                engine.quantize_input(x, &mut c);
                c
            })
            .collect();
        self.input_codes = Some(InputCodes { format: a.input, arith: a.arith, codes });
    }

    /// Run nodes `from..to` for every sample (from the saved prefix when `from > 0`) and save
    /// the values live at `to`.
    fn run_prefix(&self, engine: &FixedEngine, from: usize, to: usize, live: &[usize]) -> SavedCodes {
        if engine.stores_i32() {
            self.run_prefix_as::<i32>(engine, from, to, live)
        } else {
            self.run_prefix_as::<i64>(engine, from, to, live)
        }
    }

    fn run_prefix_as<C: Saved>(&self, engine: &FixedEngine, from: usize, to: usize, live: &[usize]) -> SavedCodes {
        let prefix = self.prefix.as_ref().filter(|_| from > 0);
        let all: Vec<usize> = (0..self.inputs.len()).collect();
        C::wrap(self.run_images::<C, _>(engine, prefix, &all, from..to, |ws, _| ws.save(live, |k| k)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feed `values` in chunks of `chunk` as the scorer does; None when the race gives up, else
    /// the sum it reports.
    fn run_race(values: &[f64], chunk: usize, least: f64, limit_sum: f64) -> Option<f64> {
        let mut race = Race::default();
        for (c, part) in values.chunks(chunk).enumerate() {
            race.observe(part.iter().copied());
            let rest = values.len() - (c * chunk + part.len());
            if race.out(values.len(), least * rest as f64, limit_sum) {
                return None;
            }
        }
        Some(race.sum)
    }

    proptest! {
        /// A race that is not given up saw every image: the loss it reports is the full-split
        /// loss, so no candidate is ever accepted on an estimate from part of the images.
        #[test]
        fn an_accepted_race_reports_the_full_loss(
            values in proptest::collection::vec(-1.0f64..1.0, 1..600),
            chunk in 1usize..300,
            limit_sum in -50.0f64..50.0,
        ) {
            let full: f64 = values.iter().sum();
            if let Some(sum) = run_race(&values, chunk, -1.0, limit_sum) {
                prop_assert!((sum - full).abs() < 1e-9);
            }
        }

        /// Without noise there is nothing to race on: identical values are given up exactly
        /// when their full sum is over the limit.
        #[test]
        fn noiseless_races_are_exact(v in -1.0f64..1.0, n in 2usize..600, chunk in 1usize..300, limit_sum in -50.0f64..50.0) {
            let values = vec![v; n];
            let full = v * n as f64;
            let out = run_race(&values, chunk, -1.0, limit_sum).is_none();
            prop_assert_eq!(out, full > limit_sum + 1e-9 * n as f64 || (out && full > limit_sum - 1e-9 * n as f64));
        }
    }

    /// A candidate exactly at its limit is almost never given up: over 2,000 random orders of
    /// 2,000 soft-like values, the race stops none of them.
    #[test]
    fn races_rarely_give_up_a_candidate_within_its_limit() {
        use rand::Rng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut values: Vec<f64> =
            (0..2000).map(|_| rng.random_range(-0.2..0.3) * rng.random_range(0.0f64..1.0).powi(4)).collect();
        let full: f64 = values.iter().sum();
        let mut given_up = 0;
        for _ in 0..2000 {
            values.shuffle(&mut rng);
            // (A hair of slack: the sum in another order rounds differently.)
            given_up += usize::from(run_race(&values, CHUNK, -0.2, full + 1e-9).is_none());
        }
        assert_eq!(given_up, 0);
    }
}
