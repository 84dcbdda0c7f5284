//! NSGA-II (Deb et al. 2002) over the input's and every layer's genes: widths of weights, biases
//! and activations, each with an offset shift around its no-clip offset. Objectives: loss on the
//! search split and every cost objective of the profile. Candidates whose loss exceeds a cap are
//! stopped early and ranked as infeasible (constrained domination), which keeps hopeless
//! candidates cheap.
//!
//! Half of each generation's offspring are bred as usual (tournament, uniform crossover, rare
//! mutation) and spread the front. The other half work the edge that decides the chosen point:
//! a member within the loss budget, picked by tournament on the primary cost, changed in one or
//! two genes by one step, with widths narrowed twice as often as widened. Uniform crossover
//! between the far-apart seeds (uniform 2..16 bits, the paper points) rarely gives a child
//! within budget on a 15-layer net; these local children do, and they explore the trades
//! (narrow one tensor, widen or re-range another) that a one-move-at-a-time descent cannot.

use super::paper::{self, Budgets};
use super::{descent, uniform, Context, Search, Space};
use crate::eval::calibrate::{activation_format, param_format, Kind};
use crate::fixed::{Assignment, Format};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub population: usize,
    /// Candidates with a larger loss are stopped early and treated as infeasible.
    pub loss_cap: f64,
    /// The loss budget of the chosen point: members within it parent the edge offspring.
    pub max_loss: f64,
    /// Index of the primary cost among the search's cost objectives.
    pub primary: usize,
}

/// Widths 1..=16 for every tensor: the descent narrows down to 1 bit, and its points seed this.
const BITS: (i32, i32) = (1, 16);
const SHIFT: (i32, i32) = (-6, 6);

/// Genes: [in_bits, in_shift] for the network input, then per layer [w_bits, w_shift, b_bits,
/// b_shift, a_bits, a_shift] (params) or [a_bits, a_shift]; where the space lets strategies choose
/// weight offsets, a per-channel gene (0 or 1) follows `b_shift`. Every seed must encode exactly
/// (the paper and descent points included), so each format has a shift and the shift range is
/// wide.
type Genome = Vec<i32>;

struct Codec<'a> {
    space: &'a Space<'a>,
    template: Assignment,
    /// (gene offset, has params) per layer.
    layout: Vec<(usize, bool)>,
    bounds: Vec<(i32, i32)>,
}

impl<'a> Codec<'a> {
    fn new(space: &'a Space<'a>, template: Assignment) -> Self {
        let mut layout = Vec::new();
        let mut bounds = vec![BITS, SHIFT];
        for l in &template.layers {
            layout.push((bounds.len(), l.weights.is_some()));
            if l.weights.is_some() {
                bounds.extend([BITS, SHIFT, BITS, SHIFT]);
                if space.choose_offsets {
                    bounds.push((0, 1));
                }
            }
            bounds.extend([BITS, SHIFT]);
        }
        Codec { space, template, layout, bounds }
    }

    fn input_no_clip(&self, bits: u32) -> Format {
        activation_format(self.space.ranges, self.space.graph.input, bits, !self.template.input.signed)
    }

    fn no_clip(&self, layer: usize, kind: Kind, bits: u32) -> Format {
        let node = self.template.layers[layer].node;
        match kind {
            Kind::Activation => {
                let out = self.space.graph.nodes[node].output;
                let signed = self.template.layers[layer].output.signed;
                activation_format(self.space.ranges, out, bits, !signed)
            }
            k => param_format(self.space.graph, node, k, bits),
        }
    }

    fn decode(&self, g: &Genome) -> Assignment {
        let mut a = self.template.clone();
        let x = self.input_no_clip(g[0] as u32);
        a.input = Format { frac: x.frac + g[1], ..x };
        for (i, &(o, params)) in self.layout.iter().enumerate() {
            let mut at = o;
            if params {
                let w = self.no_clip(i, Kind::Weights, g[o] as u32);
                a.layers[i].weights = Some(Format { frac: w.frac + g[o + 1], ..w });
                let b = self.no_clip(i, Kind::Bias, g[o + 2] as u32);
                a.layers[i].bias = Some(Format { frac: b.frac + g[o + 3], ..b });
                at += 4;
                if self.space.choose_offsets {
                    a.layers[i].per_channel = g[at] == 1;
                    at += 1;
                }
            }
            let y = self.no_clip(i, Kind::Activation, g[at] as u32);
            a.layers[i].output = Format { frac: y.frac + g[at + 1], ..y };
        }
        a
    }

    fn encode(&self, a: &Assignment) -> Genome {
        let mut g = Vec::with_capacity(self.bounds.len());
        g.extend([a.input.bits as i32, a.input.frac - self.input_no_clip(a.input.bits).frac]);
        for (i, l) in a.layers.iter().enumerate() {
            if let (Some(w), Some(b)) = (l.weights, l.bias) {
                g.extend([
                    w.bits as i32,
                    w.frac - self.no_clip(i, Kind::Weights, w.bits).frac,
                    b.bits as i32,
                    b.frac - self.no_clip(i, Kind::Bias, b.bits).frac,
                ]);
                if self.space.choose_offsets {
                    g.push(i32::from(l.per_channel));
                }
            }
            let o = l.output;
            g.extend([o.bits as i32, o.frac - self.no_clip(i, Kind::Activation, o.bits).frac]);
        }
        g.iter().zip(&self.bounds).map(|(&x, &(lo, hi))| x.clamp(lo, hi)).collect()
    }
}

#[derive(Clone)]
struct Member {
    genome: Genome,
    /// loss then cost objectives; `feasible` = loss within the cap.
    objectives: Vec<f64>,
    feasible: bool,
    rank: usize,
    crowding: f64,
}

fn constrained_dominates(a: &Member, b: &Member) -> bool {
    match (a.feasible, b.feasible) {
        (true, false) => true,
        (false, true) => false,
        (false, false) => false,
        (true, true) => super::pareto::dominates(&a.objectives, &b.objectives),
    }
}

/// Fast non-dominated sort, then crowding distance within each front.
fn rank(pop: &mut [Member]) {
    let n = pop.len();
    let mut dominated_by = vec![0usize; n];
    let mut dominates: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in 0..n {
        for j in 0..n {
            if i != j && constrained_dominates(&pop[i], &pop[j]) {
                dominates[i].push(j);
            } else if i != j && constrained_dominates(&pop[j], &pop[i]) {
                dominated_by[i] += 1;
            }
        }
    }
    let mut current: Vec<usize> = (0..n).filter(|&i| dominated_by[i] == 0).collect();
    let mut r = 0;
    while !current.is_empty() {
        for &i in &current {
            pop[i].rank = r;
        }
        crowding(pop, &current);
        let mut next = Vec::new();
        for &i in &current {
            for &j in &dominates[i] {
                dominated_by[j] -= 1;
                if dominated_by[j] == 0 {
                    next.push(j);
                }
            }
        }
        current = next;
        r += 1;
    }
}

fn crowding(pop: &mut [Member], front: &[usize]) {
    for &i in front {
        pop[i].crowding = 0.0;
    }
    let m = pop[front[0]].objectives.len();
    for k in 0..m {
        let mut idx = front.to_vec();
        idx.sort_by(|&a, &b| pop[a].objectives[k].total_cmp(&pop[b].objectives[k]));
        let (lo, hi) = (pop[idx[0]].objectives[k], pop[*idx.last().unwrap()].objectives[k]);
        pop[idx[0]].crowding = f64::INFINITY;
        pop[*idx.last().unwrap()].crowding = f64::INFINITY;
        if hi > lo {
            for w in 1..idx.len().saturating_sub(1) {
                let d = (pop[idx[w + 1]].objectives[k] - pop[idx[w - 1]].objectives[k]) / (hi - lo);
                pop[idx[w]].crowding += d;
            }
        }
    }
}

fn better(a: &Member, b: &Member) -> bool {
    a.rank < b.rank || (a.rank == b.rank && a.crowding > b.crowding)
}

/// Run until the search's evaluation budget is spent. `seeds` start the population (e.g. the
/// uniform sweep and the paper's result); the rest is random around them.
pub fn run(s: &mut Search, space: &Space, seeds: &[Assignment], settings: Params, rng: &mut ChaCha8Rng) {
    let Some(first) = seeds.first() else { return };
    let codec = Codec::new(space, first.clone());
    let n = settings.population.max(4);
    let score = |s: &mut Search, g: Genome| -> Option<Member> {
        let a = codec.decode(&g);
        if s.exhausted() {
            return None;
        }
        let loss = s.evaluate(&a, "nsga2", Some(settings.loss_cap));
        let costs = s.price(&a);
        let feasible = loss.is_some();
        let objectives = std::iter::once(loss.unwrap_or(1.0)).chain(costs).collect();
        Some(Member { genome: g, objectives, feasible, rank: 0, crowding: 0.0 })
    };
    let mut genomes: Vec<Genome> = seeds.iter().map(|a| codec.encode(a)).collect();
    for (a, g) in seeds.iter().zip(&genomes) {
        debug_assert_eq!(super::score::key(&codec.decode(g)), super::score::key(a), "a seed that does not encode");
    }
    while genomes.len() < n {
        let mut g = genomes[rng.random_range(0..seeds.len())].clone();
        mutate(&mut g, &codec.bounds, rng, 0.3);
        genomes.push(g);
    }
    let mut pop: Vec<Member> = genomes.into_iter().filter_map(|g| score(s, g)).collect();
    if pop.is_empty() {
        return;
    }
    rank(&mut pop);
    let primary = 1 + settings.primary;
    while !s.exhausted() {
        let mut children: Vec<Member> = Vec::with_capacity(n);
        let within: Vec<usize> =
            (0..pop.len()).filter(|&i| pop[i].feasible && pop[i].objectives[0] <= settings.max_loss).collect();
        while children.len() < n {
            // A child already in the population or the brood adds nothing (its score is
            // remembered): draw again, a bounded number of times.
            let mut child = Vec::new();
            for _ in 0..16 {
                child = if children.len() % 2 == 1 && !within.is_empty() {
                    edge_child(&pop, &within, primary, &codec.bounds, rng)
                } else {
                    let pa = tournament(&pop, rng);
                    let pb = tournament(&pop, rng);
                    let mut c: Genome = pa
                        .genome
                        .iter()
                        .zip(&pb.genome)
                        .map(|(&x, &y)| if rng.random_bool(0.5) { x } else { y })
                        .collect();
                    mutate(&mut c, &codec.bounds, rng, 1.0 / codec.bounds.len() as f64 * 2.0);
                    c
                };
                if !pop.iter().chain(&children).any(|m| m.genome == child) {
                    break;
                }
            }
            match score(s, child) {
                Some(m) => children.push(m),
                None => break,
            }
        }
        if children.is_empty() {
            break;
        }
        pop.extend(children);
        rank(&mut pop);
        pop.sort_by(|a, b| a.rank.cmp(&b.rank).then(b.crowding.total_cmp(&a.crowding)));
        pop.truncate(n);
        rank(&mut pop);
    }
}

fn tournament<'p>(pop: &'p [Member], rng: &mut ChaCha8Rng) -> &'p Member {
    let a = &pop[rng.random_range(0..pop.len())];
    let b = &pop[rng.random_range(0..pop.len())];
    if better(b, a) {
        b
    } else {
        a
    }
}

/// A within-budget member (binary tournament on the primary cost) changed in one or two genes by
/// one step. Genes come in (width, shift) pairs; a width moves down with probability 2/3 (the
/// shift is relative to the no-clip offset, so a narrower width at the same shift drops the
/// lowest bit), a shift either way.
fn edge_child(pop: &[Member], within: &[usize], primary: usize, bounds: &[(i32, i32)], rng: &mut ChaCha8Rng) -> Genome {
    let a = &pop[within[rng.random_range(0..within.len())]];
    let b = &pop[within[rng.random_range(0..within.len())]];
    let parent = if b.objectives[primary] < a.objectives[primary] { b } else { a };
    let mut g = parent.genome.clone();
    // Two draws may hit one gene (two steps, or none: the caller draws again on a duplicate).
    for _ in 0..rng.random_range(1..=2) {
        let i = rng.random_range(0..g.len());
        let down = if i % 2 == 0 { rng.random_bool(2.0 / 3.0) } else { rng.random_bool(0.5) };
        let (lo, hi) = bounds[i];
        g[i] = (g[i] + if down { -1 } else { 1 }).clamp(lo, hi);
    }
    g
}

fn mutate(g: &mut Genome, bounds: &[(i32, i32)], rng: &mut ChaCha8Rng, p: f64) {
    for (x, &(lo, hi)) in g.iter_mut().zip(bounds) {
        if rng.random_bool(p.min(1.0)) {
            *x = (*x + if rng.random_bool(0.5) { 1 } else { -1 }).clamp(lo, hi);
        }
    }
}

/// The `nsga2` strategy. NSGA-II starts from what the sequential strategies find: the paper point
/// and the cost-weighted one, each refined by a descent with at most half of what is left. Its
/// front is over every evaluation, so it holds the `paper` and `descent` results.
pub fn strategy(ctx: &mut Context) {
    let s = &mut *ctx.search;
    let weighted = Budgets { cost_weighted: true, ..ctx.budgets };
    let mut seeds: Vec<Assignment> = uniform::BITS.map(ctx.uniform).collect();
    for (b, src) in [(&ctx.budgets, "paper"), (&weighted, "paper-weighted")] {
        let p = paper::run(s, ctx.space, b, src);
        let left = s.budget.saturating_sub(s.scorer.scored());
        let d = descent::run(s, ctx.space, p.clone(), "descent", left / 2);
        seeds.extend([p, d]);
    }
    let target = s.max_loss;
    let params = Params { population: 24, loss_cap: (4.0 * target).max(0.05), max_loss: target, primary: s.primary };
    run(s, ctx.space, &seeds, params, ctx.rng);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn member(genome: Genome, loss: f64, cost: f64) -> Member {
        Member { genome, objectives: vec![loss, cost], feasible: true, rank: 0, crowding: 0.0 }
    }

    #[test]
    fn edge_children_are_at_most_two_steps_from_a_member_within_budget() {
        let bounds = vec![BITS, SHIFT, BITS, SHIFT];
        // Member 1 is over the budget: no child may come from it.
        let pop = vec![member(vec![4, 0, 6, 1], 0.005, 10.0), member(vec![16, 6, 16, 6], 0.5, 1.0)];
        let within = [0];
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let (mut narrower, mut wider) = (0, 0);
        for _ in 0..300 {
            let g = edge_child(&pop, &within, 1, &bounds, &mut rng);
            let steps: Vec<i32> = g.iter().zip(&pop[0].genome).map(|(a, b)| a - b).collect();
            assert!(steps.iter().map(|d| d.abs()).sum::<i32>() <= 2, "{g:?}");
            assert!(g.iter().zip(&bounds).all(|(x, (lo, hi))| (lo..=hi).contains(&x)));
            narrower += usize::from(steps[0] + steps[2] < 0);
            wider += usize::from(steps[0] + steps[2] > 0);
        }
        // Widths go down twice as often as up.
        assert!(2 * narrower > 3 * wider, "{narrower} children narrower, {wider} wider");
    }
}
