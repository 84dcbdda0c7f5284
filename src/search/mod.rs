//! Searching per-layer assignments: a shared context that scores, prices, records and budgets
//! evaluations, and the strategies that propose them.
//!
//! Every strategy only ever sees the search split (through [`score::Scorer`]); the holdout
//! split is touched once the search is over, for reporting.

pub mod confirm;
pub mod descent;
pub mod explore;
pub mod independent;
pub mod nsga2;
pub mod paper;
pub mod pareto;
pub mod score;
pub mod space;
pub mod strategy;
pub mod uniform;

use crate::fixed::{Assignment, Format};
use crate::run_folder::EvaluationRow;
use score::Scorer;
pub use space::Space;
use std::cmp::Ordering;
use std::collections::HashSet;
pub use strategy::{Context, Strategy};

/// Bits standing in for "float" when a strategy quantizes one kind of tensor alone: 16-bit
/// no-clip formats lose nothing measurable on these nets and keep the engine on its fast path.
pub const FLOAT_PROXY_BITS: u32 = 16;

/// One tensor's format slot in an assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Slot {
    Weights(usize),
    Bias(usize),
    Output(usize),
}

impl Slot {
    pub fn get(&self, a: &Assignment) -> Format {
        match *self {
            Slot::Weights(i) => a.layers[i].weights.expect("weights slot"),
            Slot::Bias(i) => a.layers[i].bias.expect("bias slot"),
            Slot::Output(i) => a.layers[i].output,
        }
    }

    pub fn set(&self, a: &mut Assignment, f: Format) {
        match *self {
            Slot::Weights(i) => a.layers[i].weights = Some(f),
            Slot::Bias(i) => a.layers[i].bias = Some(f),
            Slot::Output(i) => a.layers[i].output = f,
        }
    }

    pub fn with(&self, a: &Assignment, f: Format) -> Assignment {
        let mut b = a.clone();
        self.set(&mut b, f);
        b
    }
}

/// A scored assignment: its row of evaluations.csv and the assignment itself.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub row: EvaluationRow,
    pub assignment: Assignment,
}

/// The row's fields read as the evaluation's own (`e.loss_search`).
impl std::ops::Deref for Evaluation {
    type Target = EvaluationRow;
    fn deref(&self) -> &EvaluationRow {
        &self.row
    }
}

impl Evaluation {
    /// What orders evaluations of equal primary cost: the loss, then every objective in order.
    fn tie_break(&self) -> impl Iterator<Item = &f64> {
        std::iter::once(&self.loss_search).chain(&self.objectives)
    }
}

/// Prices an assignment: one value per objective, lower is better.
pub type Pricer<'p> = dyn Fn(&Assignment) -> Vec<f64> + Sync + 'p;

/// What a search tells its observer (the CSV log, a progress display); the search itself
/// neither writes nor displays anything.
pub enum Event<'a> {
    /// A candidate was scored afresh (not remembered), whether or not it was recorded.
    Scored,
    /// A new evaluation was recorded; `new_best`: it is the cheapest within the loss budget so
    /// far, on the primary objective.
    Recorded { evaluation: &'a Evaluation, new_best: bool },
}

/// Called with every [`Event`] of a search.
pub type Observer<'o> = dyn FnMut(Event) + 'o;

pub struct Search<'e> {
    pub scorer: Scorer<'e>,
    pricer: &'e Pricer<'e>,
    pub objective_names: Vec<String>,
    /// Index of the objective the chosen point minimises.
    pub primary: usize,
    pub max_loss: f64,
    /// Most full evaluations this search may run.
    pub budget: usize,
    pub evaluations: Vec<Evaluation>,
    recorded: HashSet<String>,
    observer: Box<Observer<'e>>,
}

impl<'e> Search<'e> {
    pub fn new(
        scorer: Scorer<'e>,
        pricer: &'e Pricer<'e>,
        objective_names: Vec<String>,
        primary: usize,
        max_loss: f64,
        budget: usize,
        observer: Box<Observer<'e>>,
    ) -> Self {
        Search {
            scorer,
            pricer,
            objective_names,
            primary,
            max_loss,
            budget,
            evaluations: Vec::new(),
            recorded: HashSet::new(),
            observer,
        }
    }

    /// The cost objectives of an assignment.
    pub fn price(&self, a: &Assignment) -> Vec<f64> {
        (self.pricer)(a)
    }

    /// Whether the evaluation budget is spent.
    pub fn exhausted(&self) -> bool {
        self.scorer.scored() >= self.budget
    }

    /// Score `a` (stopping early if its loss certainly exceeds `max_loss`), record it, and
    /// return its loss on the search split. None: over `max_loss`, or the budget is spent.
    pub fn evaluate(&mut self, a: &Assignment, source: &str, max_loss: Option<f64>) -> Option<f64> {
        let key = score::key(a);
        if self.exhausted() && !self.recorded.contains(&key) {
            return None;
        }
        let (score, fresh) = self.scorer.score(a, max_loss);
        if fresh {
            (self.observer)(Event::Scored);
        }
        let score::Score { accuracy: acc, loss } = score?;
        if self.recorded.insert(key.clone()) {
            let row = EvaluationRow {
                id: self.evaluations.len(),
                source: source.to_string(),
                acc_search: acc,
                loss_search: loss,
                objectives: (self.pricer)(a),
                key,
            };
            let e = Evaluation { row, assignment: a.clone() };
            let best = self.best_within_budget().map(|b| b.objectives[self.primary]);
            let new_best = loss <= self.max_loss && best.is_none_or(|b| e.objectives[self.primary] < b);
            (self.observer)(Event::Recorded { evaluation: &e, new_best });
            self.evaluations.push(e);
        }
        match max_loss {
            Some(m) if loss > m + 1e-12 => None,
            _ => Some(loss),
        }
    }

    /// The lowest-cost evaluation (on the primary objective) whose search loss is within budget.
    /// Among equal costs: the lowest loss, then the lowest other objectives in order, then the
    /// earliest. So the chosen point is always on the Pareto front: a bias-width change leaves
    /// the multiplication cost as it is, and the earliest of two such points may be the worse.
    pub fn best_within_budget(&self) -> Option<&Evaluation> {
        let p = self.primary;
        self.evaluations.iter().filter(|e| e.loss_search <= self.max_loss + 1e-12).min_by(|a, b| {
            a.objectives[p]
                .total_cmp(&b.objectives[p])
                .then_with(|| {
                    a.tie_break()
                        .zip(b.tie_break())
                        .map(|(x, y)| x.total_cmp(y))
                        .find(|o| o.is_ne())
                        .unwrap_or(Ordering::Equal)
                })
                .then(a.id.cmp(&b.id))
        })
    }

    /// Indices (into `evaluations`) of the Pareto front over loss and every objective.
    pub fn front(&self) -> Vec<usize> {
        let pts: Vec<Vec<f64>> = self
            .evaluations
            .iter()
            .map(|e| std::iter::once(e.loss_search).chain(e.objectives.iter().copied()).collect())
            .collect();
        pareto::front(&pts)
    }
}
