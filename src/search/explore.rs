//! `qdse explore`: run a strategy on an experiment and write the run folder (docs/outputs.md).

use super::nsga2;
use super::paper::{Budgets, Space};
use super::score::{key, Scorer};
use super::{confirm, descent, independent, paper, uniform, Evaluation, Pricer, Search};
use crate::experiment::Experiment;
use crate::fixed::Assignment;
use crate::report::write_atomic;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub const STRATEGIES: [&str; 5] = ["uniform", "paper", "descent", "independent", "nsga2"];

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub out: Option<PathBuf>,
    pub strategy: Option<String>,
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
    let rows: Vec<String> = evaluations
        .par_iter()
        .map(|e| -> Result<String> {
            let (s, h) = (exp.search(&e.assignment)?, exp.holdout(&e.assignment)?);
            let m = |p: &crate::eval::paired::Paired| {
                format!("{},{},{},{}", p.loss(kind), p.flip_rate(), p.kl(), p.soft_loss(kind))
            };
            Ok(format!("{},{},{}\n", e.id, m(&s), m(&h)))
        })
        .collect::<Result<_>>()?;
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

/// Keys, search accuracies and search losses of an earlier run's evaluations.csv.
fn read_log(path: &Path) -> Result<Vec<(String, f64, f64)>> {
    let mut text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    // A run killed mid-write leaves a last line without its newline: it is not a finished
    // evaluation (and a cut key could even name another assignment), so drop it.
    if !text.ends_with('\n') {
        text.truncate(text.rfind('\n').map_or(0, |i| i + 1));
    }
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let headers = r.headers()?.clone();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let (Some(k), Some(a), Some(l)) = (col("key"), col("acc_search"), col("loss_search")) else {
        bail!("{} has no key/acc_search/loss_search columns", path.display());
    };
    let mut out = Vec::new();
    for row in r.records() {
        let Ok(row) = row else { break };
        let num = |c: usize| row.get(c).and_then(|v| v.parse::<f64>().ok());
        if let (Some(key), Some(acc), Some(loss)) = (row.get(k), num(a), num(l)) {
            out.push((key.to_string(), acc, loss));
        }
    }
    Ok(out)
}

fn csv_row(e: &Evaluation, extra: &[String]) -> String {
    // Full precision: a resumed run must compare remembered accuracies exactly.
    let mut fields = vec![e.id.to_string(), e.source.clone(), e.acc_search.to_string(), e.loss_search.to_string()];
    fields.extend(e.objectives.iter().map(|v| format!("{v}")));
    fields.extend(extra.iter().cloned());
    fields.push(e.key.clone());
    let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
    w.write_record(&fields).expect("in-memory csv");
    String::from_utf8(w.into_inner().expect("in-memory csv")).expect("utf-8")
}

fn per_layer_bits(exp: &Experiment, a: &Assignment) -> Value {
    Value::Array(
        a.layers
            .iter()
            .map(|l| {
                json!({
                    "name": exp.graph.nodes[l.node].name,
                    "weights_bits": l.weights.map(|f| f.bits),
                    "bias_bits": l.bias.map(|f| f.bits),
                    "output_bits": l.output.bits,
                })
            })
            .collect(),
    )
}

pub struct Outcome {
    pub dir: PathBuf,
    pub summary: Value,
}

pub fn explore(exp: &Experiment, costing: &Costing, opts: &Options) -> Result<Outcome> {
    let st = &exp.settings;
    st.check_name()?;
    let strategy = opts.strategy.clone().unwrap_or_else(|| st.search.strategy.clone());
    if !STRATEGIES.contains(&strategy.as_str()) {
        bail!("unknown strategy '{strategy}' (expected one of: {})", STRATEGIES.join(", "));
    }
    let budget = opts.budget.unwrap_or(st.search.budget);
    let seed = opts.seed.unwrap_or(st.seed);
    let dir = opts.out.clone().unwrap_or_else(|| PathBuf::from("reports").join(&st.name));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let started = Instant::now();

    // The search split, preprocessed once.
    let inputs: Vec<Vec<f64>> = exp.split.search.clone().map(|i| exp.input_f64(i)).collect();
    let labels = &exp.data.labels[exp.split.search.clone()];
    let float = exp.float_accuracy();
    let mut scorer =
        Scorer::new(&exp.graph, &inputs, labels, exp.float_search_outputs(), st.search.loss, st.search.signal);
    scorer.reuse_prefix = !opts.no_prefix_reuse;
    scorer.early_stop = !opts.no_early_stop;

    // The log grows as evaluations finish, so an interrupted run loses nothing.
    let log_path = dir.join("evaluations.csv");
    let header = {
        let mut h = vec!["id".to_string(), "source".into(), "acc_search".into(), "loss_search".into()];
        h.extend(costing.names.iter().cloned());
        h.push("key".into());
        h.join(",")
    };
    let mut already = std::collections::HashSet::new();
    let mut log = if opts.resume && log_path.exists() {
        for (k, acc, loss) in read_log(&log_path)? {
            scorer.remember(k.clone(), acc, loss);
            already.insert(k);
        }
        // Rewrite the log from the replay below; the old one stays until the new one is whole.
        let f = File::create(dir.join("evaluations.csv.resume"))?;
        writeln!(&f, "{header}")?;
        f
    } else {
        let f = File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
        writeln!(&f, "{header}")?;
        f
    };
    let resumed = already.len();
    let observer = Box::new(|e: &Evaluation| {
        // Flushed per line: a crash keeps every finished evaluation.
        let _ = log.write_all(csv_row(e, &[]).as_bytes());
        let _ = log.flush();
    });
    let target = search_target(exp)?;
    let mut s = Search::new(scorer, costing.pricer, costing.names.clone(), costing.primary, target, budget, observer);
    if opts.progress {
        let pb = indicatif::ProgressBar::new(budget as u64);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} evals, eta {eta}  {msg}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        s.progress = pb;
    }

    let unsigned = st.unsigned;
    let arith = st.arith;
    let uniform_wba = |w: u32, b: u32, a: u32| {
        let spec = crate::eval::calibrate::UniformSpec { weights: w, bias: b, activations: a, input: 8, unsigned };
        crate::eval::calibrate::uniform(&exp.graph, &exp.ranges, spec, arith)
    };
    let space = Space { graph: &exp.graph, ranges: &exp.ranges, uniform: &uniform_wba };
    let budgets = Budgets::default().scaled_to(target);

    let sweep = uniform::run(&mut s, &|b| exp.uniform(b));
    let mut notes = Vec::new();
    match strategy.as_str() {
        "uniform" => {}
        "paper" => {
            paper::run(&mut s, &space, &budgets, "paper");
        }
        "descent" => {
            let weighted = Budgets { cost_weighted: true, ..budgets };
            let p = paper::run(&mut s, &space, &weighted, "paper-weighted");
            descent::run(&mut s, p, "descent", usize::MAX);
        }
        "independent" => {
            let (_, loss) = independent::run(&mut s, &space, &budgets);
            notes.push(match loss {
                Some(l) => format!("independent: the combined assignment loses {:.2}% on the search split", 100.0 * l),
                None => "independent: the evaluation budget ran out before the combination was scored".into(),
            });
        }
        "nsga2" => {
            // NSGA-II starts from what the sequential strategies find: the paper point and the
            // cost-weighted one, each refined by a descent with at most half of what is left.
            // Its front is over every evaluation, so it holds the `paper` and `descent` results.
            let weighted = Budgets { cost_weighted: true, ..budgets };
            let mut seeds: Vec<Assignment> = uniform::BITS.map(|b| exp.uniform(b)).collect();
            for (b, src) in [(&budgets, "paper"), (&weighted, "paper-weighted")] {
                let p = paper::run(&mut s, &space, b, src);
                let left = budget.saturating_sub(s.scorer.scored());
                let d = descent::run(&mut s, p.clone(), "descent", left / 2);
                seeds.extend([p, d]);
            }
            let cap = (4.0 * target).max(0.05);
            nsga2::run(
                &mut s,
                &space,
                &seeds,
                nsga2::Settings { population: 24, seed, loss_cap: cap, max_loss: target, primary: costing.primary },
            );
        }
        _ => unreachable!("checked above"),
    }
    s.progress.finish_and_clear();
    let evaluated = s.scorer.evaluated;
    let nodes_run = s.scorer.nodes_run;
    let stopped_early = s.scorer.stopped_early;

    // Choose: the search proposes, the confirmation images bound the loss (search/confirm.rs);
    // with confidence 0 (or no confirmation image), the search loss alone decides. The holdout
    // split is measured for reporting only.
    let front = s.front();
    let confidence = st.search.confidence;
    let confirmed = if confidence > 0.0 && !exp.split.confirm.is_empty() {
        let baseline_cost = s.price(&exp.baseline())[s.primary];
        let declared: Vec<usize> = sweep
            .iter()
            .filter_map(|(b, _)| {
                let k = key(&exp.uniform(*b));
                s.evaluations.iter().position(|e| e.key == k)
            })
            .collect();
        // The ladder ranks by the larger of the signal and the top-1 loss on the search images:
        // a point whose soft loss the quantization lowered (a sharper softmax) while it flipped
        // images would otherwise look lossless and hide the honest points dearer than it.
        let (e, p, m, l) = (&s.evaluations, s.primary, st.search.max_loss, st.search.loss);
        let float_acc = s.scorer.float_accuracy;
        let ladder_loss: Vec<f64> = e.iter().map(|e| e.loss_search.max(l.loss(float_acc, e.acc_search))).collect();
        confirm::run(e, &ladder_loss, p, m, baseline_cost, &declared, l, confidence, |a| exp.confirm(a))?
    } else {
        if confidence > 0.0 {
            notes.push(
                "no confirmation image: the chosen point is the cheapest within budget on the search split".into(),
            );
        }
        Vec::new()
    };
    let chosen_confirm = confirm::cheapest_accepted(&confirmed, &s.evaluations, s.primary).copied();
    let chosen = if confirmed.is_empty() {
        s.best_within_budget().cloned()
    } else {
        chosen_confirm.map(|c| s.evaluations[c.index].clone())
    };
    let baseline = exp.baseline();
    let base_acc = exp.fixed_accuracy(&baseline)?;
    let base_cost = s.price(&baseline);
    let loss_of = |acc: f64, float_acc: f64| st.search.loss.loss(float_acc, acc);

    let mut pareto = String::new();
    {
        let mut h = vec!["id".to_string(), "source".into(), "acc_search".into(), "loss_search".into()];
        h.extend(costing.names.iter().cloned());
        h.extend(["acc_holdout".into(), "loss_holdout".into(), "loss_confirm".into(), "loss_confirm_bound".into()]);
        h.extend(["chosen".into(), "key".into()]);
        pareto.push_str(&h.join(","));
        pareto.push('\n');
    }
    // The front, and the confirmation's rungs that are not on it (a uniform point the ladder
    // tested, perhaps chosen): every point the choice looked at has its row.
    let mut sorted_front = front.clone();
    sorted_front.extend(confirmed.iter().map(|c| c.index).filter(|i| !front.contains(i)));
    sorted_front
        .sort_by(|&a, &b| s.evaluations[a].objectives[s.primary].total_cmp(&s.evaluations[b].objectives[s.primary]));
    for &i in &sorted_front {
        let e = &s.evaluations[i];
        // Only the holdout split: the search accuracy is in the row already.
        let h = exp.holdout(&e.assignment)?.fixed_accuracy();
        let is_chosen = chosen.as_ref().is_some_and(|c| c.id == e.id);
        let tested = confirmed.iter().find(|c| c.index == i);
        let extra = [
            h.to_string(),
            loss_of(h, float.holdout).to_string(),
            tested.map_or(String::new(), |c| c.loss.to_string()),
            tested.map_or(String::new(), |c| c.bound.to_string()),
            is_chosen.to_string(),
        ];
        pareto.push_str(&csv_row(e, &extra));
    }
    let all_evals = s.evaluations.clone();
    drop(s);
    if opts.measure_signals {
        write_signals(exp, &all_evals, &dir.join("signals.csv"))?;
    }
    if opts.resume && dir.join("evaluations.csv.resume").exists() {
        std::fs::rename(dir.join("evaluations.csv.resume"), &log_path)?;
    }

    let objectives_json = |vals: &[f64]| -> serde_json::Map<String, Value> {
        costing.names.iter().zip(vals).map(|(n, v)| (n.clone(), json!(v))).collect()
    };
    let mut base_json = objectives_json(&base_cost);
    base_json.insert("accuracy_search".into(), json!(base_acc.search));
    base_json.insert("accuracy_holdout".into(), json!(base_acc.holdout));
    base_json.insert("layers".into(), per_layer_bits(exp, &baseline));

    let chosen_json = match &chosen {
        Some(c) => {
            let (holdout, (lo, hi)) = exp.holdout_accuracy_and_interval(&c.assignment)?;
            let mut m = objectives_json(&c.objectives);
            for (name, (v, b)) in costing.names.iter().zip(c.objectives.iter().zip(&base_cost)) {
                let short = name.strip_suffix("_bits").unwrap_or(name);
                let r = if *b > 0.0 { 1.0 - v / b } else { 0.0 };
                m.insert(format!("{short}_reduction_vs_8bit"), json!(r));
            }
            m.insert("loss_search".into(), json!(c.loss_search));
            m.insert("accuracy_search".into(), json!(c.acc_search));
            m.insert("accuracy_holdout".into(), json!(holdout));
            m.insert("loss_holdout".into(), json!(loss_of(holdout, float.holdout)));
            m.insert("loss_holdout_ci95".into(), json!([lo, hi]));
            m.insert(
                "holdout_within_budget".into(),
                json!(loss_of(holdout, float.holdout) <= st.search.max_loss + 1e-12),
            );
            if let Some(k) = chosen_confirm {
                m.insert("loss_confirm".into(), json!(k.loss));
                m.insert("loss_confirm_bound".into(), json!(k.bound));
                m.insert("loss_confirm_bound_confidence".into(), json!(k.confidence));
                m.insert("flip_rate_confirm".into(), json!(k.flip_rate));
            }
            m.insert("source".into(), json!(c.source));
            m.insert("layers".into(), per_layer_bits(exp, &c.assignment));
            write_atomic(&dir.join("chosen.toml"), c.assignment.to_toml(&exp.graph).as_bytes())?;
            Value::Object(m)
        }
        None => {
            let _ = std::fs::remove_file(dir.join("chosen.toml"));
            Value::Null
        }
    };
    let sweep_json: Vec<Value> = sweep
        .iter()
        .filter_map(|(b, _)| {
            let k = key(&exp.uniform(*b));
            all_evals.iter().find(|e| e.key == k).map(|e| {
                let mut m = objectives_json(&e.objectives);
                m.insert("bits".into(), json!(b));
                m.insert("accuracy_search".into(), json!(e.acc_search));
                m.insert("loss_search".into(), json!(e.loss_search));
                Value::Object(m)
            })
        })
        .collect();
    // What the confirmation tested: every rung of the ladder, its level and outcome.
    let confirmation_json = {
        let rungs: Vec<Value> = confirmed
            .iter()
            .map(|c| {
                let e = &all_evals[c.index];
                json!({"id": e.id, "loss_search": e.loss_search, "loss_confirm": c.loss,
                       "loss_confirm_bound": c.bound, "confidence": c.confidence, "accepted": c.accepted})
            })
            .collect();
        json!({
            "tested": confirmed.len(),
            "accepted": confirmed.iter().filter(|c| c.accepted).count(),
            "rungs": rungs,
        })
    };
    let summary = json!({
        "name": st.name,
        "strategy": strategy,
        "seed": seed,
        "evaluations": all_evals.len(),
        "evaluations_run": evaluated,
        "evaluations_stopped_early": stopped_early,
        "evaluations_resumed": resumed,
        "sample_layers_run": nodes_run,
        "prefix_reuse": !opts.no_prefix_reuse,
        "early_stop": !opts.no_early_stop,
        "budget": budget,
        "wall_seconds": started.elapsed().as_secs_f64(),
        "model": st.model.display().to_string(),
        "profile": costing.profile_name,
        "primary": costing.names[costing.primary],
        "objectives": costing.names,
        "max_loss": st.search.max_loss,
        "search_target": target,
        "loss": match st.search.loss { crate::config::LossKind::Relative => "relative", crate::config::LossKind::Absolute => "absolute" },
        "samples": {"search": exp.split.search.len(), "confirm": exp.split.confirm.len(), "holdout": exp.split.holdout.len()},
        "signal": match st.search.signal { crate::config::Signal::Soft => "soft", crate::config::Signal::Top1 => "top1" },
        "confidence": if confirmed.is_empty() { 0.0 } else { confidence },
        "confirmation": confirmation_json,
        "float_accuracy": float,
        "baseline_8bit": base_json,
        "chosen": chosen_json,
        "uniform_sweep": sweep_json,
        "notes": notes,
        "version": env!("CARGO_PKG_VERSION"),
    });
    write_atomic(&dir.join("pareto.csv"), pareto.as_bytes())?;
    write_atomic(&dir.join("baseline-8bit.toml"), baseline.to_toml(&exp.graph).as_bytes())?;
    let config_text = std::fs::read_to_string(&st.source).unwrap_or_default();
    write_atomic(&dir.join("config.toml"), config_text.as_bytes())?;
    write_atomic(&dir.join("profile.toml"), costing.profile_text.as_bytes())?;
    write_atomic(&dir.join("summary.json"), serde_json::to_string_pretty(&summary)?.as_bytes())?;
    Ok(Outcome { dir, summary })
}
