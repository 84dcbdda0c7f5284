//! `qdse explore`: run a strategy on an experiment and write the run folder (docs/outputs.md).
//!
//! The steps, in order: [`Plan::new`] (strategy, budget, seed, folder), [`EvaluationLog::open`]
//! (the growing evaluations.csv, and what a resumed run remembers), [`search`] (the uniform
//! sweep, then the strategy), [`choose`] (the confirmation ladder), [`front_rows`] (pareto.csv),
//! [`summarize`] (summary.json), [`write_folder`].

use super::confirm::{self, Confirmed};
use super::paper::Budgets;
use super::score::{key, Scorer};
use super::{uniform, Context, Evaluation, Event, Pricer, Search, Space, Strategy};
use crate::config::WeightOffsets;
use crate::experiment::Experiment;
use crate::report::write_atomic;
use crate::run_folder::{self as rf, Baseline, Chosen, Confirmation, Costs, FrontRow, LayerBits, RunSummary};
use anyhow::{Context as _, Result};
use rand::SeedableRng;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub out: Option<PathBuf>,
    pub strategy: Option<Strategy>,
    pub budget: Option<usize>,
    pub seed: Option<u64>,
    pub resume: bool,
    pub progress: bool,
    /// Recompute every candidate from the input (only to measure what prefix reuse saves).
    pub no_prefix_reuse: bool,
    /// Score every candidate fully (only to measure what early stopping saves).
    pub no_early_stop: bool,
    /// Write signals.csv: every evaluation's paired measures on the search and holdout images.
    pub measure_signals: bool,
}

/// The loss the strategies aim at (docs/data-roles.md, "The search target"): the budget less
/// the margin the confirmation bound will need, so that the search spends its evaluations where
/// a point can be shown to be within the budget. The margin is what the bound adds on the
/// confirmation images for a point that disagrees with the float network twice as often as
/// uniform 8-bit does on the search images. The full budget with confidence 0 or no
/// confirmation image; never below a quarter of it.
fn search_target(exp: &Experiment) -> Result<f64> {
    use statrs::distribution::{ContinuousCDF, Normal};
    let st = &exp.settings.search;
    let n = exp.split.confirm.len() as f64;
    if st.confidence == 0.0 || n == 0.0 {
        return Ok(st.max_loss);
    }
    let eight = exp.search(&exp.baseline())?;
    let discordant = 2.0 * eight.flip_rate() * n + 1.0;
    let z = Normal::standard().inverse_cdf(st.confidence);
    let margin = st.loss.scale(eight.float_accuracy()) * (z * discordant.sqrt() + 1.0) / n;
    Ok((st.max_loss - margin).max(st.max_loss / 4.0))
}

/// signals.csv: for every evaluation, each paired measure on the search and the holdout images
/// (which measure predicts the holdout loss best; reports/README.md).
fn write_signals(exp: &Experiment, evaluations: &[Evaluation], path: &Path) -> Result<()> {
    use rayon::prelude::*;
    let kind = exp.settings.search.loss;
    // Collected whole, then the first error in evaluation order (not whichever a thread met).
    let rows: Vec<Result<String>> = evaluations
        .par_iter()
        .map(|e| -> Result<String> {
            let (s, h) = (exp.search(&e.assignment)?, exp.holdout(&e.assignment)?);
            let m = |p: &crate::eval::paired::Paired| {
                format!("{},{},{},{}", p.loss(kind), p.flip_rate(), p.kl(), p.soft_loss(kind))
            };
            Ok(format!("{},{},{}\n", e.id, m(&s), m(&h)))
        })
        .collect();
    let rows = rows.into_iter().collect::<Result<Vec<_>>>()?;
    let mut text = String::from(
        "id,loss_search,flip_search,kl_search,soft_search,loss_holdout,flip_holdout,kl_holdout,soft_holdout\n",
    );
    text.extend(rows);
    write_atomic(path, text.as_bytes())?;
    Ok(())
}

/// The priced cost side of a run: objective names, the pricer, the primary objective and the
/// profile text (copied into the run folder).
pub struct Costing<'p> {
    pub names: Vec<String>,
    pub primary: usize,
    pub pricer: &'p Pricer<'p>,
    pub profile_name: String,
    pub profile_text: String,
}

/// The options resolved against the config.
struct Plan {
    strategy: Strategy,
    budget: usize,
    seed: u64,
    dir: PathBuf,
}

impl Plan {
    fn new(exp: &Experiment, opts: &Options) -> Result<Plan> {
        let st = &exp.settings;
        let dir = opts.out.clone().unwrap_or_else(|| PathBuf::from("reports").join(&st.name));
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Plan {
            strategy: opts.strategy.unwrap_or(st.search.strategy),
            budget: opts.budget.unwrap_or(st.search.budget),
            seed: opts.seed.unwrap_or(st.seed),
            dir,
        })
    }
}

/// evaluations.csv as it grows (flushed per line: a crash keeps every finished evaluation), and
/// what a resumed run remembers of the earlier one.
struct EvaluationLog {
    file: File,
    path: PathBuf,
    remembered: Vec<rf::EvaluationRow>,
    resuming: bool,
}

impl EvaluationLog {
    fn open(dir: &Path, objectives: &[String], resume: bool) -> Result<EvaluationLog> {
        let path = dir.join("evaluations.csv");
        let resuming = resume && path.exists();
        let (remembered, file) = if resuming {
            // Rewritten from the replay; the old log stays until the new one is whole.
            (rf::read_evaluation_log(&path)?, File::create(dir.join("evaluations.csv.resume"))?)
        } else {
            (Vec::new(), File::create(&path).with_context(|| format!("cannot create {}", path.display()))?)
        };
        writeln!(&file, "{}", rf::evaluations_header(objectives))?;
        Ok(EvaluationLog { file, path, remembered, resuming })
    }

    fn append(&mut self, e: &Evaluation) {
        let _ = self.file.write_all(e.row.to_csv().as_bytes());
        let _ = self.file.flush();
    }

    /// The replayed log replaces the old one.
    fn finish(&self) -> Result<()> {
        let replayed = self.path.with_extension("csv.resume");
        if self.resuming && replayed.exists() {
            std::fs::rename(replayed, &self.path)?;
        }
        Ok(())
    }
}

/// A terminal progress bar over the evaluation budget.
fn progress_bar(budget: usize) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(budget as u64);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} evals, eta {eta}  {msg}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    pb
}

/// What the search left: every evaluation, its counters, and what the choice starts from.
struct Searched {
    evaluations: Vec<Evaluation>,
    /// Indices of the Pareto front over the search loss and every objective.
    front: Vec<usize>,
    /// (bits, loss) of the uniform points scored.
    sweep: Vec<(u32, f64)>,
    /// The cheapest evaluation within the search target (the choice without confirmation).
    best: Option<Evaluation>,
    float_accuracy: f64,
    evaluated: usize,
    nodes_run: usize,
    stopped_early: usize,
    /// Distinct evaluations remembered from the run resumed.
    resumed: usize,
    notes: Vec<String>,
}

/// The uniform sweep, then the strategy, on the search split.
fn search(exp: &Experiment, costing: &Costing, opts: &Options, plan: &Plan, target: f64) -> Result<Searched> {
    let st = &exp.settings;
    let mut log = EvaluationLog::open(&plan.dir, &costing.names, opts.resume)?;
    // The search split, preprocessed once.
    let inputs: Vec<Vec<f64>> = exp.split.search.clone().map(|i| exp.input_f64(i)).collect();
    let labels = &exp.data.labels[exp.split.search.clone()];
    let mut scorer =
        Scorer::new(&exp.graph, &inputs, labels, exp.float_search_outputs(), st.search.loss, st.search.signal);
    scorer.reuse_prefix = !opts.no_prefix_reuse;
    scorer.early_stop = !opts.no_early_stop;
    for r in &log.remembered {
        scorer.remember(r.key.clone(), r.acc_search, r.loss_search);
    }
    let resumed = log.remembered.iter().map(|r| &r.key).collect::<std::collections::HashSet<_>>().len();
    let (names, primary) = (costing.names.clone(), costing.primary);
    // The progress display and the CSV log observe the search (search/mod.rs, `Event`).
    let progress = if opts.progress { progress_bar(plan.budget) } else { indicatif::ProgressBar::hidden() };
    let observer = Box::new(|event: Event| match event {
        Event::Scored => progress.inc(1),
        Event::Recorded { evaluation, new_best } => {
            log.append(evaluation);
            if new_best {
                progress.set_message(format!(
                    "best {} within budget: {:.4e}",
                    names[primary], evaluation.objectives[primary]
                ));
            }
        }
    });
    let mut s = Search::new(scorer, costing.pricer, names.clone(), primary, target, plan.budget, observer);
    let uniform_wba = |w: u32, b: u32, a: u32| {
        let spec = crate::eval::calibrate::UniformSpec {
            weights: w,
            bias: b,
            activations: a,
            input: 8,
            unsigned: st.unsigned,
            per_channel: st.weight_offsets.per_channel(),
        };
        crate::eval::calibrate::uniform(&exp.graph, &exp.ranges, spec, st.arith)
    };
    let space = Space {
        graph: &exp.graph,
        ranges: &exp.ranges,
        uniform: &uniform_wba,
        choose_offsets: st.weight_offsets == WeightOffsets::Choose,
    };
    let uniform_b = |b| exp.uniform(b);
    let sweep = uniform::run(&mut s, &uniform_b);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(plan.seed);
    let budgets = Budgets::default().scaled_to(target);
    let mut ctx =
        Context { search: &mut s, space: &space, budgets, uniform: &uniform_b, rng: &mut rng, notes: Vec::new() };
    plan.strategy.run(&mut ctx);
    let notes = ctx.notes;
    progress.finish_and_clear();
    let searched = Searched {
        resumed,
        front: s.front(),
        best: s.best_within_budget().cloned(),
        float_accuracy: s.scorer.float_accuracy,
        evaluated: s.scorer.evaluated,
        nodes_run: s.scorer.nodes_run,
        stopped_early: s.scorer.stopped_early,
        evaluations: std::mem::take(&mut s.evaluations),
        sweep,
        notes,
    };
    drop(s);
    log.finish()?;
    Ok(searched)
}

/// The choice: the search proposes, the confirmation images bound the loss (search/confirm.rs).
struct Choice {
    /// Every rung of the confirmation ladder; empty when the search loss alone decided.
    confirmed: Vec<Confirmed>,
    /// The rung chosen, if the confirmation decided.
    rung: Option<Confirmed>,
    chosen: Option<Evaluation>,
}

/// Choose the point to report. With confidence 0 (or no confirmation image) the search loss
/// alone decides. The holdout split is measured for reporting only, never to choose.
fn choose(exp: &Experiment, costing: &Costing, searched: &mut Searched) -> Result<Choice> {
    let st = &exp.settings.search;
    let (evals, primary) = (&searched.evaluations, costing.primary);
    if st.confidence == 0.0 || exp.split.confirm.is_empty() {
        if st.confidence > 0.0 {
            searched.notes.push(
                "no confirmation image: the chosen point is the cheapest within budget on the search split".into(),
            );
        }
        return Ok(Choice { confirmed: Vec::new(), rung: None, chosen: searched.best.clone() });
    }
    let baseline_cost = (costing.pricer)(&exp.baseline())[primary];
    let declared: Vec<usize> = searched.sweep.iter().filter_map(|(b, _)| uniform_index(exp, evals, *b)).collect();
    // The ladder ranks by the larger of the signal and the top-1 loss on the search images:
    // a point whose soft loss the quantization lowered (a sharper softmax) while it flipped
    // images would otherwise look lossless and hide the honest points dearer than it.
    let float_acc = searched.float_accuracy;
    let ladder_loss: Vec<f64> =
        evals.iter().map(|e| e.loss_search.max(st.loss.loss(float_acc, e.acc_search))).collect();
    let confirmed = confirm::run(
        evals,
        &ladder_loss,
        primary,
        st.max_loss,
        baseline_cost,
        &declared,
        st.loss,
        st.confidence,
        |a| exp.confirm(a),
    )?;
    let rung = confirm::cheapest_accepted(&confirmed, evals, primary).copied();
    let chosen = rung.map(|c| evals[c.index].clone());
    Ok(Choice { confirmed, rung, chosen })
}

/// The index of the uniform b-bit point among the evaluations, if it was scored.
fn uniform_index(exp: &Experiment, evaluations: &[Evaluation], bits: u32) -> Option<usize> {
    let k = key(&exp.uniform(bits));
    evaluations.iter().position(|e| e.key == k)
}

/// pareto.csv's rows: the front, and the confirmation's rungs that are not on it (a uniform
/// point the ladder tested, perhaps chosen), so every point the choice looked at has its row;
/// cheapest first on the primary objective.
fn front_rows(exp: &Experiment, costing: &Costing, searched: &Searched, choice: &Choice) -> Result<Vec<FrontRow>> {
    let (evals, front) = (&searched.evaluations, &searched.front);
    let mut rows = front.clone();
    rows.extend(choice.confirmed.iter().map(|c| c.index).filter(|i| !front.contains(i)));
    rows.sort_by(|&a, &b| evals[a].objectives[costing.primary].total_cmp(&evals[b].objectives[costing.primary]));
    let float = exp.float_accuracy();
    rows.iter()
        .map(|&i| {
            let e = &evals[i];
            // Only the holdout split: the search accuracy is in the row already.
            let h = exp.holdout(&e.assignment)?.fixed_accuracy();
            let tested = choice.confirmed.iter().find(|c| c.index == i);
            Ok(FrontRow {
                eval: e.row.clone(),
                acc_holdout: Some(h),
                loss_holdout: Some(exp.settings.search.loss.loss(float.holdout, h)),
                loss_confirm: tested.map(|c| c.loss),
                loss_confirm_bound: tested.map(|c| c.bound),
                chosen: choice.chosen.as_ref().is_some_and(|c| c.id == e.id),
            })
        })
        .collect()
}

/// summary.json's `chosen`: the chosen point measured on the holdout split, with its bound.
fn chosen_entry(exp: &Experiment, costing: &Costing, c: &Evaluation, rung: Option<Confirmed>) -> Result<Chosen> {
    let st = &exp.settings.search;
    let float = exp.float_accuracy();
    let (holdout, (lo, hi)) = exp.holdout_accuracy_and_interval(&c.assignment)?;
    let loss_holdout = st.loss.loss(float.holdout, holdout);
    let mut chosen = Chosen {
        source: c.source.clone(),
        loss_search: c.loss_search,
        accuracy_search: c.acc_search,
        accuracy_holdout: holdout,
        loss_holdout,
        loss_holdout_ci95: Some([lo, hi]),
        holdout_within_budget: Some(loss_holdout <= st.max_loss + 1e-12),
        loss_confirm: rung.map(|k| k.loss),
        loss_confirm_bound: rung.map(|k| k.bound),
        loss_confirm_bound_confidence: rung.map(|k| k.confidence),
        flip_rate_confirm: rung.map(|k| k.flip_rate),
        layers: LayerBits::of(&exp.graph, &c.assignment),
        costs: Costs::default(),
    };
    chosen.set_costs(&costing.names, &c.objectives, &(costing.pricer)(&exp.baseline()));
    Ok(chosen)
}

/// summary.json (docs/outputs.md).
fn summarize(
    exp: &Experiment,
    costing: &Costing,
    opts: &Options,
    plan: &Plan,
    target: f64,
    searched: &Searched,
    choice: &Choice,
) -> Result<RunSummary> {
    let st = &exp.settings;
    let baseline = exp.baseline();
    let base_acc = exp.fixed_accuracy(&baseline)?;
    let names = &costing.names;
    let uniform_sweep = searched
        .sweep
        .iter()
        .filter_map(|(b, _)| {
            let e = &searched.evaluations[uniform_index(exp, &searched.evaluations, *b)?];
            let costs = Costs::of(names, &e.objectives);
            Some(rf::SweepPoint { bits: *b, accuracy_search: e.acc_search, loss_search: Some(e.loss_search), costs })
        })
        .collect();
    let rungs = choice
        .confirmed
        .iter()
        .map(|c| rf::Rung {
            id: searched.evaluations[c.index].id,
            loss_search: searched.evaluations[c.index].loss_search,
            loss_confirm: c.loss,
            loss_confirm_bound: c.bound,
            confidence: c.confidence,
            accepted: c.accepted,
        })
        .collect();
    let accepted = choice.confirmed.iter().filter(|c| c.accepted).count();
    let chosen = match &choice.chosen {
        Some(c) => Some(chosen_entry(exp, costing, c, choice.rung)?),
        None => None,
    };
    let count = |n: usize| Some(n as u64);
    Ok(RunSummary {
        name: st.name.clone(),
        strategy: plan.strategy.name(),
        seed: Some(plan.seed),
        evaluations: count(searched.evaluations.len()),
        evaluations_run: count(searched.evaluated),
        evaluations_stopped_early: count(searched.stopped_early),
        evaluations_resumed: count(searched.resumed),
        sample_layers_run: count(searched.nodes_run),
        prefix_reuse: Some(!opts.no_prefix_reuse),
        early_stop: Some(!opts.no_early_stop),
        budget: count(plan.budget),
        wall_seconds: None,
        model: st.model.display().to_string(),
        profile: costing.profile_name.clone(),
        primary: Some(names[costing.primary].clone()),
        objectives: names.clone(),
        max_loss: st.search.max_loss,
        search_target: Some(target),
        loss: st.search.loss,
        samples: Some(rf::Samples {
            search: exp.split.search.len() as u64,
            confirm: Some(exp.split.confirm.len() as u64),
            holdout: exp.split.holdout.len() as u64,
        }),
        signal: Some(st.search.signal),
        confidence: Some(if choice.confirmed.is_empty() { 0.0 } else { st.search.confidence }),
        confirmation: Some(Confirmation { tested: choice.confirmed.len(), accepted, rungs }),
        float_accuracy: exp.float_accuracy(),
        baseline_8bit: Baseline {
            accuracy_search: base_acc.search,
            accuracy_holdout: base_acc.holdout,
            layers: LayerBits::of(&exp.graph, &baseline),
            costs: Costs::of(names, &(costing.pricer)(&baseline)),
        },
        chosen,
        uniform_sweep,
        notes: searched.notes.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// Every file of the run folder but evaluations.csv (written as the search went).
fn write_folder(
    exp: &Experiment,
    costing: &Costing,
    dir: &Path,
    front: &[FrontRow],
    summary: &RunSummary,
    chosen: Option<&Evaluation>,
) -> Result<()> {
    let st = &exp.settings;
    match chosen {
        Some(c) => write_atomic(&dir.join("chosen.toml"), c.assignment.to_toml(&exp.graph).as_bytes()).map(drop)?,
        None => {
            let _ = std::fs::remove_file(dir.join("chosen.toml"));
        }
    }
    let mut pareto = rf::front_header(&costing.names);
    pareto.push('\n');
    pareto.extend(front.iter().map(FrontRow::to_csv));
    write_atomic(&dir.join("pareto.csv"), pareto.as_bytes())?;
    write_atomic(&dir.join("baseline-8bit.toml"), exp.baseline().to_toml(&exp.graph).as_bytes())?;
    let config_text = std::fs::read_to_string(&st.source).unwrap_or_default();
    write_atomic(&dir.join("config.toml"), config_text.as_bytes())?;
    write_atomic(&dir.join("profile.toml"), costing.profile_text.as_bytes())?;
    // Through a JSON value, whose keys are sorted: every run folder lists them in one order.
    let json = serde_json::to_string_pretty(&serde_json::to_value(summary)?)?;
    write_atomic(&dir.join("summary.json"), json.as_bytes())?;
    Ok(())
}

pub struct Outcome {
    pub dir: PathBuf,
    pub summary: RunSummary,
}

pub fn explore(exp: &Experiment, costing: &Costing, opts: &Options) -> Result<Outcome> {
    let plan = Plan::new(exp, opts)?;
    let started = Instant::now();
    let target = search_target(exp)?;
    let mut searched = search(exp, costing, opts, &plan, target)?;
    let choice = choose(exp, costing, &mut searched)?;
    let front = front_rows(exp, costing, &searched, &choice)?;
    if opts.measure_signals {
        write_signals(exp, &searched.evaluations, &plan.dir.join("signals.csv"))?;
    }
    let mut summary = summarize(exp, costing, opts, &plan, target, &searched, &choice)?;
    summary.wall_seconds = Some(started.elapsed().as_secs_f64());
    write_folder(exp, costing, &plan.dir, &front, &summary, choice.chosen.as_ref())?;
    Ok(Outcome { dir: plan.dir, summary })
}
