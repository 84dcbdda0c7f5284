//! `qdse explore` end to end: every strategy writes a whole run folder within its budget, the
//! chosen point is chosen honestly and reproduces under `qdse eval`, nsga2 is deterministic
//! per seed, `--resume` continues a run (also after a half-written last line), and the chosen
//! point exports and reports.
//!
//! Every test runs `qdse explore` at least once (fourteen of them took 106 s together on a
//! shared two-core machine), so all but `strategy_uniform`, one whole run folder checked, are in
//! the slow tier (docs/architecture.md, "Tests").
//!
//! Runs use LeNet-5 on the first images of Fashion-MNIST to stay fast on two cores: 300 images
//! (150 search) for uniform/paper/independent and the resume tests, 60 images (30 search) for
//! nsga2, whose budget must get past the paper search it starts from (about 260 evaluations)
//! before the seed matters.

use qdse::run_folder::{self, EvaluationRow, FrontRow, RunSummary};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

mod common;
use common::{read, root};

/// An experiment config over the shipped LeNet-5 and Fashion-MNIST test set: `search` search
/// images and no confirmation image, the top-1 signal and the search-loss choice (confidence
/// 0), so that check_run can recompute every loss and the choice from the CSVs. The
/// confirmation choice has its own test (`confirmation_choice_is_a_fixed_sequence_test`).
fn config(dir: &Path, limit: usize, search: usize) -> PathBuf {
    config_with(dir, limit, search, "confirm_samples = 0", "signal = \"top1\"\nconfidence = 0")
}

fn config_with(dir: &Path, limit: usize, search: usize, data: &str, search_extra: &str) -> PathBuf {
    let r = root();
    let text = format!(
        "name = \"explore-test\"\nseed = 1\n\n[model]\npath = {:?}\n\n[data]\nimages = {:?}\nlabels = {:?}\n\
         scale = 0.00392156862745098\nsearch_samples = {search}\nlimit = {limit}\n{data}\n\n[cost]\nprofile = \"paper\"\n\n\
         [search]\nstrategy = \"paper\"\nmax_loss = 0.01\nloss = \"relative\"\nbudget = 60\n{search_extra}\n",
        r.join("models/lenet5-fashion.onnx"),
        r.join("data/fashion-mnist/t10k-images-idx3-ubyte.gz"),
        r.join("data/fashion-mnist/t10k-labels-idx1-ubyte.gz"),
    );
    let p = dir.join(format!("lenet5-{limit}-{search}-{}.toml", data.len() + search_extra.len()));
    std::fs::write(&p, text).unwrap();
    p
}

/// 300 images, 150 for the search split.
fn tiny(dir: &Path) -> PathBuf {
    config(dir, 300, 150)
}

/// 60 images, 30 for the search split (nsga2).
fn micro(dir: &Path) -> PathBuf {
    config(dir, 60, 30)
}

/// Run qdse; panics with the whole output unless it exits 0. Returns stdout.
fn qdse(args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
    common::qdse(args).ok().stdout.clone()
}

fn explore(cfg: &Path, out: &Path, strategy: &str, budget: usize, seed: Option<u64>, resume: bool) -> String {
    let budget = budget.to_string();
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
        vec![&"explore", &cfg, &"--out", &out, &"--strategy", &strategy, &"--budget", &budget];
    let seed_s = seed.map(|s| s.to_string());
    if let Some(s) = &seed_s {
        args.extend([&"--seed" as &dyn AsRef<std::ffi::OsStr>, s]);
    }
    if resume {
        args.push(&"--resume");
    }
    qdse(&args)
}

fn summary(dir: &Path) -> RunSummary {
    RunSummary::load(&dir.join("summary.json")).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Check that a run's CSV has the header the schema gives and only whole lines.
fn check_csv(path: &Path, header: &str) {
    let text = String::from_utf8(read(path)).unwrap();
    assert_eq!(text.lines().next(), Some(header), "{}: header", path.display());
    assert!(text.ends_with('\n'), "{}: a cut-off last line", path.display());
}

/// The rows of a run's evaluations.csv.
fn evaluations(dir: &Path, s: &RunSummary) -> Vec<EvaluationRow> {
    let path = dir.join("evaluations.csv");
    check_csv(&path, &run_folder::evaluations_header(&s.objectives));
    run_folder::read_evaluations(&path, &s.objectives).unwrap()
}

/// The rows of a run's pareto.csv.
fn front(dir: &Path, s: &RunSummary) -> Vec<FrontRow> {
    let path = dir.join("pareto.csv");
    check_csv(&path, &run_folder::front_header(&s.objectives));
    run_folder::read_front(&path, &s.objectives).unwrap()
}

/// The index of the primary objective.
fn primary(s: &RunSummary) -> usize {
    s.objectives.iter().position(|o| s.primary.as_deref() == Some(o.as_str())).expect("primary is an objective")
}

/// Correct answers behind an accuracy printed with 6 decimals: accuracies are `correct / n`.
fn correct_of(acc: f64, n: usize) -> usize {
    let c = (acc * n as f64).round();
    assert!((c / n as f64 - acc).abs() < 1e-6, "{acc} is not a multiple of 1/{n}");
    c as usize
}

/// Everything the run folder promises (docs/outputs.md), and an honest choice.
fn check_run(cfg: &Path, dir: &Path, strategy: &str, budget: usize) -> RunSummary {
    check_run_with(cfg, dir, strategy, budget, true)
}

/// [`check_run`] for a resumed run: the front is not recomputed, because a resumed run compares
/// remembered accuracies rounded to 6 decimals with exact fresh ones (see
/// `resume_keeps_the_pareto_front_exact`).
fn check_resumed_run(cfg: &Path, dir: &Path, strategy: &str, budget: usize) -> RunSummary {
    check_run_with(cfg, dir, strategy, budget, false)
}

fn check_run_with(cfg: &Path, dir: &Path, strategy: &str, budget: usize, exact_front: bool) -> RunSummary {
    let s = summary(dir);
    check_files(dir, &s, strategy);
    assert_eq!(s.strategy, strategy);
    assert_eq!(s.budget, Some(budget as u64));
    let run = s.evaluations_run.unwrap() as usize;
    let early = s.evaluations_stopped_early.unwrap() as usize;
    assert!(run + early <= budget, "{strategy}: {run} run + {early} stopped early > budget {budget}");

    let evals = evaluations(dir, &s);
    assert_eq!(evals.len(), s.evaluations.unwrap() as usize, "{strategy}: summary.evaluations");
    let resumed = s.evaluations_resumed.unwrap() as usize;
    assert!(run + resumed > 0, "{strategy}: nothing evaluated or remembered");
    assert!(evals.len() <= run + resumed, "{strategy}: more rows than evaluations run or resumed");
    for (i, e) in evals.iter().enumerate() {
        assert_eq!(e.id, i, "{strategy}: ids are 0, 1, 2, ...");
    }
    assert_eq!(evals.iter().map(|e| &e.key).collect::<HashSet<_>>().len(), evals.len(), "{strategy}: duplicate keys");
    if strategy != "uniform" {
        assert!(evals.iter().any(|e| e.source == strategy), "{strategy}: no row proposed by the strategy");
    }
    let loss = exact_losses(&s, &evals, strategy);
    let pareto = front(dir, &s);
    check_front(&s, &evals, &loss, &pareto, strategy, exact_front);
    check_choice(cfg, dir, &s, &evals, &loss, &pareto, strategy);
    s
}

/// Every output file is there and whole; chosen.toml exactly when a point was chosen.
fn check_files(dir: &Path, s: &RunSummary, strategy: &str) {
    for f in ["evaluations.csv", "pareto.csv", "summary.json", "baseline-8bit.toml", "report.html", "report.md"] {
        let p = dir.join(f);
        assert!(p.is_file() && std::fs::metadata(&p).unwrap().len() > 0, "{strategy}: {f} missing or empty");
    }
    assert_eq!(dir.join("chosen.toml").is_file(), s.chosen.is_some(), "{strategy}: chosen.toml iff summary.chosen");
    assert!(!dir.read_dir().unwrap().any(|e| e.unwrap().file_name().to_string_lossy().contains(".tmp-")));
    let html = String::from_utf8(read(&dir.join("report.html"))).unwrap();
    assert!(html.contains("</html>"), "{strategy}: report.html is not whole");
}

/// The exact search loss of every row (by id), recomputed: accuracies are correct/n, the loss
/// is relative to the float accuracy; each must equal the row's.
fn exact_losses(s: &RunSummary, evals: &[EvaluationRow], strategy: &str) -> Vec<f64> {
    let n = s.samples.unwrap().search as usize;
    let float_acc = correct_of(s.float_accuracy.search, n) as f64 / n as f64;
    assert_eq!(s.loss, qdse::config::LossKind::Relative);
    let loss: Vec<f64> =
        evals.iter().map(|e| (float_acc - correct_of(e.acc_search, n) as f64 / n as f64) / float_acc).collect();
    for e in evals {
        assert!(
            (loss[e.id] - e.loss_search).abs() < 1e-6,
            "{strategy}: row {} loss {} vs {}",
            e.id,
            e.loss_search,
            loss[e.id]
        );
    }
    loss
}

/// The Pareto front, recomputed over (exact loss, objectives); duplicates keep the first.
fn check_front(
    s: &RunSummary,
    evals: &[EvaluationRow],
    loss: &[f64],
    pareto: &[FrontRow],
    strategy: &str,
    exact_front: bool,
) {
    let pts: Vec<Vec<f64>> =
        evals.iter().map(|e| std::iter::once(loss[e.id]).chain(e.objectives.iter().copied()).collect()).collect();
    let dominates = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| x <= y) && a.iter().zip(b).any(|(x, y)| x < y);
    let front: HashSet<usize> = (0..pts.len())
        .filter(|&i| !(0..pts.len()).any(|j| dominates(&pts[j], &pts[i]) || (j < i && pts[j] == pts[i])))
        .collect();
    let listed: HashSet<usize> = pareto.iter().map(|p| p.eval.id).collect();
    if exact_front {
        assert_eq!(listed, front, "{strategy}: pareto.csv is not the non-dominated set of evaluations.csv");
    }
    assert_eq!(listed.len(), pareto.len(), "{strategy}: pareto.csv lists a row twice");
    for p in pareto {
        assert_eq!(&p.eval, &evals[p.eval.id], "{strategy}: a pareto.csv row differs from its evaluations.csv row");
    }
    let primary = primary(s);
    let cost = |p: &FrontRow| p.eval.objectives[primary];
    assert!(pareto.windows(2).all(|w| cost(&w[0]) <= cost(&w[1])), "sorted by primary");
}

/// Honest selection: lowest primary cost among rows within max_loss; among equal costs the
/// lowest loss, then the lowest other objectives, then the lowest id (a point on the front).
/// And `qdse eval --point chosen.toml` measures exactly what the summary reports.
fn check_choice(
    cfg: &Path,
    dir: &Path,
    s: &RunSummary,
    evals: &[EvaluationRow],
    loss: &[f64],
    pareto: &[FrontRow],
    strategy: &str,
) {
    let (primary, max_loss) = (primary(s), s.max_loss);
    let tie_break =
        |e: &EvaluationRow| -> Vec<f64> { std::iter::once(loss[e.id]).chain(e.objectives.iter().copied()).collect() };
    let best = evals.iter().filter(|e| loss[e.id] <= max_loss + 1e-12).min_by(|a, b| {
        a.objectives[primary]
            .total_cmp(&b.objectives[primary])
            .then(tie_break(a).partial_cmp(&tie_break(b)).unwrap())
            .then(a.id.cmp(&b.id))
    });
    let chosen_rows: Vec<&FrontRow> = pareto.iter().filter(|p| p.chosen).collect();
    let samples = s.samples.unwrap();
    let n = samples.search as usize;
    match (best, &s.chosen) {
        (None, c) => {
            assert!(c.is_none(), "{strategy}: no row is within max_loss, yet a point was chosen");
            assert!(chosen_rows.is_empty());
        }
        (Some(best), None) => panic!("{strategy}: row {} is within max_loss but nothing was chosen", best.id),
        (Some(best), Some(c)) => {
            assert_eq!(chosen_rows.len(), 1, "{strategy}: exactly one pareto row has chosen=true");
            let row = chosen_rows[0];
            assert_eq!(row.eval.key, best.key, "{strategy}: the chosen row is not the cheapest within max_loss");
            assert!(c.loss_search <= max_loss + 1e-12, "{strategy}: chosen loss over budget");
            assert_eq!(c.source, best.source);
            assert_eq!(c.cost(&s.objectives[primary]), Some(best.objectives[primary]));
            assert_eq!(correct_of(c.accuracy_search, n), correct_of(best.acc_search, n));
            let holdout = samples.holdout as usize;
            assert_eq!(correct_of(c.accuracy_holdout, holdout), correct_of(row.acc_holdout.unwrap(), holdout));
            // The holdout interval brackets the holdout loss, and is a real spread unless the point
            // disagrees with the float model on no holdout image.
            let ci = c.loss_holdout_ci95.unwrap();
            let lh = c.loss_holdout;
            assert!(ci[0] <= lh + 1e-12 && lh <= ci[1] + 1e-12, "{strategy}: {ci:?} does not bracket {lh}");
            assert!(ci[1] > ci[0] || lh == 0.0, "{strategy}: a loss of {lh} with no spread {ci:?}");

            let point = dir.join("chosen.toml");
            let v: serde_json::Value =
                serde_json::from_str(&qdse(&[&"eval", &cfg, &"--point", &point, &"--json"])).unwrap();
            assert_eq!(v["fixed"]["search"], c.accuracy_search, "{strategy}: eval of chosen.toml, search split");
            assert_eq!(v["fixed"]["holdout"], c.accuracy_holdout, "{strategy}: eval of chosen.toml, holdout split");
            assert_eq!(v["float"], serde_json::to_value(s.float_accuracy).unwrap());
        }
    }
}

/// The pareto.csv row with chosen=true.
fn chosen_key(dir: &Path, s: &RunSummary) -> Option<String> {
    front(dir, s).into_iter().find(|r| r.chosen).map(|r| r.eval.key)
}

// ---------------------------------------------------------------------------------------------
// Strategies

#[test]
fn strategy_uniform() {
    let t = TempDir::new().unwrap();
    let cfg = tiny(t.path());
    let out = t.path().join("run");
    let stdout = explore(&cfg, &out, "uniform", 60, None, false);
    assert!(stdout.contains("report.html"), "{stdout}");
    let s = check_run(&cfg, &out, "uniform", 60);
    // The sweep covers 2..=16 bits and lists each in summary.uniform_sweep.
    let sweep: Vec<u32> = s.uniform_sweep.iter().map(|u| u.bits).collect();
    assert_eq!(sweep, (2..=16).collect::<Vec<u32>>());
    assert_eq!(s.evaluations, Some(15));

    // The baseline point file reproduces the baseline accuracies.
    let base = out.join("baseline-8bit.toml");
    let v: serde_json::Value = serde_json::from_str(&qdse(&[&"eval", &cfg, &"--point", &base, &"--json"])).unwrap();
    assert_eq!(v["fixed"]["search"], s.baseline_8bit.accuracy_search);
    assert_eq!(v["fixed"]["holdout"], s.baseline_8bit.accuracy_holdout);
}

#[test]
#[ignore = "slow tier: cargo test -- --ignored"]
fn strategy_paper_then_export_and_report() {
    let t = TempDir::new().unwrap();
    let cfg = tiny(t.path());
    let out = t.path().join("run");
    explore(&cfg, &out, "paper", 30, None, false);
    let s = check_run(&cfg, &out, "paper", 30);
    assert!(s.chosen.is_some(), "a tiny LeNet-5 run finds a point within 1 %");

    // Export the chosen point.
    let ex = t.path().join("rtl");
    let point = out.join("chosen.toml");
    qdse(&[&"export", &cfg, &"--point", &point, &"--out", &ex, &"--samples", &"5"]);
    let formats = String::from_utf8(read(&ex.join("formats.csv"))).unwrap();
    for l in ["/conv1/Conv", "/conv2/Conv", "/fc1/Gemm", "/fc2/Gemm", "/fc3/Gemm"] {
        assert!(formats.contains(l), "formats.csv lacks {l}");
    }
    let mut g = csv::Reader::from_path(ex.join("golden/expected.csv")).unwrap();
    let h: Vec<String> = g.headers().unwrap().iter().map(str::to_string).collect();
    assert_eq!(&h[..3], ["sample", "label", "predicted"]);
    assert_eq!(h.len(), 3 + 10, "ten logits");
    let golden: Vec<csv::StringRecord> = g.records().map(Result::unwrap).collect();
    assert_eq!(golden.len(), 5);
    // The golden samples are the first holdout images (after the 150 search images).
    let labels = fashion_label_values();
    for (i, r) in golden.iter().enumerate() {
        assert_eq!(r[0].parse::<usize>().unwrap(), i);
        assert_eq!(r[1].parse::<usize>().unwrap(), labels[150 + i], "golden sample {i}: label");
        let logits: Vec<i64> = (3..13).map(|j| r[j].parse().unwrap()).collect();
        let p: usize = r[2].parse().unwrap();
        assert_eq!(logits[p], *logits.iter().max().unwrap(), "golden sample {i}: predicted is an argmax");
    }
    // Exporting again over an earlier export is allowed.
    qdse(&[&"export", &cfg, &"--point", &point, &"--out", &ex, &"--samples", &"5"]);

    // `qdse report` rebuilds the report from the folder alone.
    let html = out.join("report.html");
    let before = read(&html);
    std::fs::remove_file(&html).unwrap();
    std::fs::remove_file(out.join("report.md")).unwrap();
    let listed = qdse(&[&"report", &out]);
    assert!(listed.lines().any(|l| l.ends_with("report.html")), "{listed}");
    let after = read(&html);
    assert!(String::from_utf8(after.clone()).unwrap().contains("</html>"));
    assert_eq!(before, after, "the report depends only on the run folder");
    assert!(out.join("report.md").is_file());
}

/// Labels of the Fashion-MNIST test set (IDX, gzipped).
fn fashion_label_values() -> Vec<usize> {
    use std::io::Read;
    let f = std::fs::File::open(common::fashion_labels()).unwrap();
    let mut b = Vec::new();
    flate2::read::GzDecoder::new(f).read_to_end(&mut b).unwrap();
    assert_eq!(&b[..4], &[0, 0, 8, 1]);
    b[8..].iter().map(|&x| x as usize).collect()
}

#[test]
#[ignore = "slow tier: cargo test -- --ignored"]
fn strategy_independent() {
    let t = TempDir::new().unwrap();
    let cfg = tiny(t.path());
    let out = t.path().join("run");
    explore(&cfg, &out, "independent", 30, None, false);
    check_run(&cfg, &out, "independent", 30);
}

/// descent: a whole run folder; it refines the point of the paper search (with cost-weighted
/// budgets), so its chosen point is at least as cheap as that search's best within budget, and
/// on this run strictly cheaper.
#[test]
#[ignore = "slow tier: cargo test -- --ignored"]
fn strategy_descent_refines_the_paper_point() {
    let t = TempDir::new().unwrap();
    let cfg = tiny(t.path());
    let out = t.path().join("run");
    let budget = 400;
    explore(&cfg, &out, "descent", budget, None, false);
    let s = check_run(&cfg, &out, "descent", budget);
    let primary = primary(&s);
    let r = evaluations(&out, &s);
    let best = |src: &str| {
        r.iter()
            .filter(|x| x.source == src && x.loss_search <= 0.01 + 1e-12)
            .map(|x| x.objectives[primary])
            .fold(f64::INFINITY, f64::min)
    };
    let (paper, descent) = (best("paper-weighted"), best("descent"));
    assert!(paper.is_finite(), "the paper search finds a point within 1 %");
    assert!(descent < paper, "descent {descent} not below the paper point {paper}");
    assert_eq!(s.chosen.unwrap().source, "descent");
}

/// `--max-loss` replaces the config's budget: the choice is judged against it (check_run reads
/// it back from the summary), and the descent works within it even when the paper schedule,
/// scaled to it, ends over it.
#[test]
#[ignore = "slow tier: cargo test -- --ignored"]
fn max_loss_flag_tightens_the_budget() {
    let t = TempDir::new().unwrap();
    let cfg = tiny(t.path());
    let out = t.path().join("run");
    qdse(&[&"explore", &cfg, &"--out", &out, &"--strategy", &"descent", &"--budget", &"400", &"--max-loss", &"0.004"]);
    let s = check_run(&cfg, &out, "descent", 400);
    assert_eq!(s.max_loss, 0.004);
    assert!(s.chosen.as_ref().unwrap().loss_search <= 0.004 + 1e-12);
    let r = evaluations(&out, &s);
    assert!(
        r.iter().any(|x| x.source == "descent" && x.loss_search <= 0.004 + 1e-12),
        "the descent found points within the tighter budget"
    );
}

/// The measuring switches change the work, not the search: without prefix reuse or early
/// stopping the paper search visits the same candidates in the same order.
#[test]
#[ignore = "slow tier: cargo test -- --ignored"]
fn measuring_switches_keep_the_search_path() {
    let t = TempDir::new().unwrap();
    let cfg = tiny(t.path());
    let dirs = ["default", "no-prefix", "no-stop"].map(|d| t.path().join(d));
    explore(&cfg, &dirs[0], "paper", 80, None, false);
    qdse(&[&"explore", &cfg, &"--out", &dirs[1], &"--strategy", &"paper", &"--budget", &"80", &"--no-prefix-reuse"]);
    qdse(&[&"explore", &cfg, &"--out", &dirs[2], &"--strategy", &"paper", &"--budget", &"80", &"--no-early-stop"]);
    let s: Vec<RunSummary> = dirs.iter().map(|d| summary(d)).collect();
    let keys = |i: usize| evaluations(&dirs[i], &s[i]).into_iter().map(|r| r.key).collect::<Vec<_>>();
    assert_eq!(read(&dirs[0].join("evaluations.csv")), read(&dirs[1].join("evaluations.csv")));
    assert!(s[1].sample_layers_run > s[0].sample_layers_run);
    // Without early stopping the rows are a superset, in the same order.
    assert_eq!(s[2].evaluations_stopped_early, Some(0));
    assert!(s[0].evaluations_stopped_early.unwrap() > 0, "the run stops some candidates early");
    let (with, without) = (keys(0), keys(2));
    let mut it = without.iter();
    assert!(with.iter().all(|k| it.any(|w| w == k)), "early stopping changed the order of the search");
}

/// nsga2: a whole run folder, and the same seed gives the same bytes; another seed, another run.
#[test]
#[ignore = "slow tier: cargo test -- --ignored"]
fn strategy_nsga2_is_deterministic_per_seed() {
    let t = TempDir::new().unwrap();
    let cfg = micro(t.path());
    let budget = 450;
    let (a, b, c) = (t.path().join("seed1-a"), t.path().join("seed1-b"), t.path().join("seed2"));
    explore(&cfg, &a, "nsga2", budget, Some(1), false);
    let s = check_run(&cfg, &a, "nsga2", budget);
    assert_eq!(s.seed, Some(1));
    explore(&cfg, &b, "nsga2", budget, Some(1), false);
    explore(&cfg, &c, "nsga2", budget, Some(2), false);

    for f in ["evaluations.csv", "pareto.csv", "chosen.toml", "baseline-8bit.toml"] {
        assert!(read(&a.join(f)) == read(&b.join(f)), "seed 1 twice: {f} differs");
    }
    let strip = |dir: &Path| {
        let mut v: serde_json::Value = serde_json::from_slice(&read(&dir.join("summary.json"))).unwrap();
        v.as_object_mut().unwrap().remove("wall_seconds");
        v
    };
    assert_eq!(strip(&a), strip(&b), "seed 1 twice: summary.json differs beyond wall_seconds");

    // The seed only steers nsga2: the uniform sweep and the paper searches and descents it
    // starts from are the same, the nsga2 part differs.
    let (ra, rc) = (evaluations(&a, &s), evaluations(&c, &s));
    let first_nsga2 = ra.iter().position(|r| r.source == "nsga2").expect("the budget reaches nsga2");
    assert!(ra.len() - first_nsga2 >= 10, "only {} nsga2 evaluations", ra.len() - first_nsga2);
    let keys = |r: &[EvaluationRow]| r.iter().map(|r| r.key.clone()).collect::<Vec<_>>();
    assert_eq!(keys(&ra[..first_nsga2]), keys(&rc[..first_nsga2]), "the paper prefix does not depend on the seed");
    assert_ne!(read(&a.join("evaluations.csv")), read(&c.join("evaluations.csv")), "seeds 1 and 2 gave the same run");
    check_run(&cfg, &c, "nsga2", budget);
}

/// `weight_offsets = "choose"`: NSGA-II carries a per-channel gene, so the run scores the same
/// widths with per-channel and with per-tensor weights, and the run folder stays consistent.
#[test]
#[ignore = "slow tier: cargo test -- --ignored"]
fn choosing_weight_offsets_searches_both() {
    let t = TempDir::new().unwrap();
    let cfg = config_with(
        t.path(),
        60,
        30,
        "confirm_samples = 0",
        "signal = \"top1\"\nconfidence = 0\n\n[quant]\nweight_offsets = \"choose\"",
    );
    let out = t.path().join("run");
    let budget = 450;
    explore(&cfg, &out, "nsga2", budget, Some(1), false);
    let s = check_run(&cfg, &out, "nsga2", budget);
    let rows = evaluations(&out, &s);
    // LeNet-5 has 5 weighted layers; `/c` marks a per-channel one in the key.
    let per_channel = |r: &EvaluationRow| r.key.matches("/c,").count();
    assert_eq!(per_channel(&rows[0]), 5, "the uniform sweep starts per-channel: {}", rows[0].key);
    assert!(rows.iter().any(|r| r.source == "nsga2" && per_channel(r) < 5), "no nsga2 row with a per-tensor layer");
}

// ---------------------------------------------------------------------------------------------
// Resume

/// Rows of `before` (an interrupted or finished run) are replayed in the same order by a
/// resumed run, with the same values (accuracies to the 6 decimals the CSV holds).
fn assert_replayed(before: &[EvaluationRow], after: &[EvaluationRow]) {
    assert!(after.len() >= before.len());
    for (x, y) in before.iter().zip(after) {
        assert_eq!((x.id, &x.key, &x.source, &x.objectives), (y.id, &y.key, &y.source, &y.objectives));
        assert!((x.acc_search - y.acc_search).abs() <= 1e-6 && (x.loss_search - y.loss_search).abs() <= 2e-6);
    }
}

#[test]
#[ignore = "slow tier: cargo test -- --ignored"]
fn resume_continues_a_run_and_survives_a_half_written_line() {
    let t = TempDir::new().unwrap();
    let cfg = tiny(t.path());
    let budget = 30;
    let first = t.path().join("first");
    explore(&cfg, &first, "paper", budget, None, false);
    let s1 = check_run(&cfg, &first, "paper", budget);
    let objective = &s1.objectives[primary(&s1)];
    let rows1 = evaluations(&first, &s1);
    let key1 = chosen_key(&first, &s1).expect("a chosen point");

    // Resume a copy with the same budget: the remembered evaluations spend it as they did in the
    // first run, so the resumed run replays it.
    let second = t.path().join("second");
    copy_dir(&first, &second);
    explore(&cfg, &second, "paper", budget, None, true);
    let s2 = check_resumed_run(&cfg, &second, "paper", budget);
    assert_eq!(s2.evaluations_resumed.unwrap() as usize, rows1.len(), "every row is remembered");
    let rows2 = evaluations(&second, &s2);
    assert_replayed(&rows1, &rows2);
    // The chosen point is the same one, unless a new evaluation is cheaper within max_loss, or as
    // cheap and better on loss or another objective.
    let key2 = chosen_key(&second, &s2).expect("a chosen point");
    let p = |s: &RunSummary| s.chosen.as_ref().unwrap().cost(objective).unwrap();
    assert!(key2 == key1 || (p(&s2) <= p(&s1) && !rows1.iter().any(|r| r.key == key2)), "chosen {key1} -> {key2}");
    // Currently it is the same point (a deterministic run).
    assert_eq!(key2, key1, "resumed run chose another point");
    let holdout = |s: &RunSummary| s.chosen.as_ref().unwrap().accuracy_holdout;
    assert_eq!(holdout(&s2), holdout(&s1));

    // A crash mid-line: cut the last line of evaluations.csv in half, then resume.
    let third = t.path().join("third");
    copy_dir(&first, &third);
    let log = third.join("evaluations.csv");
    let text = String::from_utf8(read(&log)).unwrap();
    let body = text.strip_suffix('\n').unwrap();
    let cut = body.rfind('\n').unwrap() + 1;
    let last = &body[cut..];
    std::fs::write(&log, &body[..cut + last.len() / 2]).unwrap();
    explore(&cfg, &third, "paper", budget, None, true);
    let s3 = check_resumed_run(&cfg, &third, "paper", budget);
    let whole = rows1.len() - 1;
    let resumed = s3.evaluations_resumed.unwrap() as usize;
    assert!(resumed == whole || resumed == whole + 1, "resumed {resumed}, {whole} whole rows");
    let rows3 = evaluations(&third, &s3);
    // The cut candidate is scored again, so the new log holds it whole, in the same place.
    assert_replayed(&rows1, &rows3);
    assert!(!String::from_utf8(read(&log)).unwrap().contains(&format!("{}\n", &last[..last.len() / 2])));
    assert_eq!(chosen_key(&third, &s3).expect("a chosen point"), key2);
    assert!(!third.join("evaluations.csv.resume").exists());
}

/// A run stopped by its evaluation budget resumes to the same run: the remembered evaluations
/// count against the budget as they did when they were run, so the replay ends where the first
/// run ended instead of searching on; a larger budget continues it.
#[test]
#[ignore = "slow tier: cargo test -- --ignored"]
fn resume_of_a_run_that_spent_its_budget_replays_it() {
    let t = TempDir::new().unwrap();
    let cfg = tiny(t.path());
    let budget = 300;
    let first = t.path().join("first");
    explore(&cfg, &first, "descent", budget, None, false);
    let s1 = check_run(&cfg, &first, "descent", budget);
    let spent = |s: &RunSummary| s.evaluations_run.unwrap() + s.evaluations_stopped_early.unwrap();
    assert_eq!(spent(&s1), budget as u64, "the descent must spend its budget for this test to mean anything");
    let rows1 = evaluations(&first, &s1);

    let second = t.path().join("second");
    copy_dir(&first, &second);
    explore(&cfg, &second, "descent", budget, None, true);
    let s2 = check_resumed_run(&cfg, &second, "descent", budget);
    let rows2 = evaluations(&second, &s2);
    assert_eq!(rows2.len(), rows1.len(), "the replay searched on");
    assert_replayed(&rows1, &rows2);
    assert_eq!(chosen_key(&second, &s2), chosen_key(&first, &s1));

    let third = t.path().join("third");
    copy_dir(&first, &third);
    explore(&cfg, &third, "descent", budget + 60, None, true);
    let rows3 = evaluations(&third, &summary(&third));
    assert_replayed(&rows1, &rows3);
    assert!(rows3.len() > rows1.len(), "a larger budget continues the run");
}

#[test]
#[ignore = "slow tier: cargo test -- --ignored"]
fn resume_of_a_finished_run_is_byte_identical() {
    let t = TempDir::new().unwrap();
    let cfg = tiny(t.path());
    let a = t.path().join("a");
    explore(&cfg, &a, "uniform", 60, None, false);
    let b = t.path().join("b");
    copy_dir(&a, &b);
    explore(&cfg, &b, "uniform", 60, None, true);
    let s = summary(&b);
    assert_eq!((s.evaluations_resumed, s.evaluations_run), (Some(15), Some(0)));
    for f in ["evaluations.csv", "pareto.csv", "chosen.toml"] {
        assert!(read(&a.join(f)) == read(&b.join(f)), "{f} differs after resuming a finished run");
    }
}

#[test]
#[ignore = "slow tier: cargo test -- --ignored"]
fn resume_keeps_the_pareto_front_exact() {
    let t = TempDir::new().unwrap();
    let cfg = tiny(t.path());
    let a = t.path().join("a");
    explore(&cfg, &a, "paper", 30, None, false);
    explore(&cfg, &a, "paper", 30, None, true);
    check_run(&cfg, &a, "paper", 30);
}

#[test]
#[ignore = "slow tier: cargo test -- --ignored"]
fn resume_ignores_a_half_written_line() {
    let t = TempDir::new().unwrap();
    let cfg = tiny(t.path());
    let a = t.path().join("a");
    explore(&cfg, &a, "uniform", 60, None, false);
    let log = a.join("evaluations.csv");
    let text = String::from_utf8(read(&log)).unwrap();
    let body = text.strip_suffix('\n').unwrap();
    let cut = body.rfind('\n').unwrap() + 1;
    std::fs::write(&log, &body[..cut + (body.len() - cut) * 3 / 4]).unwrap();
    explore(&cfg, &a, "uniform", 60, None, true);
    let s = summary(&a);
    assert_eq!(s.evaluations_resumed, Some(14), "14 whole rows");
    assert_eq!(s.evaluations_run, Some(1), "the cut row is scored again");
}

#[test]
#[ignore = "slow tier: cargo test -- --ignored"]
fn budget_stops_the_uniform_sweep() {
    let t = TempDir::new().unwrap();
    let cfg = tiny(t.path());
    let out = t.path().join("run");
    explore(&cfg, &out, "uniform", 8, None, false);
    let s = check_run(&cfg, &out, "uniform", 8);
    assert_eq!(s.evaluations, Some(8), "budget 8 stops the 2..=16-bit sweep after 8 evaluations");
    let r = evaluations(&out, &s);
    let sources: Vec<&str> = r.iter().map(|r| r.source.as_str()).collect();
    assert_eq!(sources, (2..=9).map(|b| format!("uniform-{b}")).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------------------------
// The choice with a confidence bound

/// With the default signal and confidence, the chosen point is the cheapest accepted rung of
/// the confirmation ladder: the tested candidates (pareto.csv rows with a bound) are the rungs
/// summary.json lists, dearest first; each rung's level is its share of the error rate
/// plus what an accepted rung just before passed on (never over the whole); a rung is accepted
/// exactly when its bound is within the budget; the chosen point is the cheapest accepted one.
/// The run reproduces byte for byte.
#[test]
#[ignore = "slow tier: cargo test -- --ignored"]
fn confirmation_choice_is_a_fallback_test_over_the_ladder() {
    let t = TempDir::new().unwrap();
    let cfg = config_with(t.path(), 1000, 600, "confirm_samples = 300", "");
    let a = t.path().join("a");
    explore(&cfg, &a, "descent", 150, None, false);
    let s = summary(&a);
    assert_eq!((s.signal, s.confidence), (Some(qdse::config::Signal::Soft), Some(0.95)));
    let samples = s.samples.unwrap();
    assert_eq!((samples.search, samples.confirm, samples.holdout), (300, Some(300), 400));
    assert!(s.search_target.unwrap() < s.max_loss);
    let primary = primary(&s);
    let max_loss = s.max_loss;
    let pareto = front(&a, &s);
    let confirmation = s.confirmation.clone().unwrap();
    let rungs = &confirmation.rungs;
    assert_eq!(rungs.len(), confirmation.tested);
    assert!(!rungs.is_empty(), "the uniform sweep alone gives candidates within 1 %");
    assert_eq!(pareto.iter().filter(|r| r.loss_confirm_bound.is_some()).count(), rungs.len());
    let shares = qdse::search::confirm::error_shares(0.05, rungs.len());
    let mut carried = 0.0;
    let mut last_cost = f64::INFINITY;
    let base = s.baseline_8bit.cost(&s.objectives[primary]).unwrap();
    for (r, share) in rungs.iter().zip(&shares) {
        let level = share + carried;
        let row = pareto.iter().find(|p| p.eval.id == r.id).expect("a rung has a pareto.csv row");
        // Dearest first, each rung at least 5 % cheaper than the one before.
        let cost = row.eval.objectives[primary];
        assert!(cost <= 0.95 * last_cost + 1e-9 && row.eval.loss_search <= max_loss + 1e-12 && cost <= base);
        last_cost = cost;
        let bound = r.loss_confirm_bound;
        // (summary.json's floats may be a unit in the last place off the CSV's exact ones.)
        assert!((row.loss_confirm_bound.unwrap() - bound).abs() <= 1e-15, "rung bound");
        assert!((1.0 - r.confidence - level).abs() < 1e-12, "rung level");
        assert_eq!(r.accepted, bound <= max_loss + 1e-12);
        carried = if r.accepted { level } else { 0.0 };
    }
    let cheapest = rungs
        .iter()
        .filter(|r| r.accepted)
        .filter_map(|r| pareto.iter().find(|p| p.eval.id == r.id))
        .min_by(|x, y| x.eval.objectives[primary].total_cmp(&y.eval.objectives[primary]));
    match (cheapest, &s.chosen) {
        (None, c) => assert!(c.is_none()),
        (Some(_), None) => panic!("an accepted rung, and nothing chosen"),
        (Some(best), Some(c)) => {
            assert_eq!(chosen_key(&a, &s).as_deref(), Some(best.eval.key.as_str()));
            let bound = c.loss_confirm_bound.unwrap();
            assert!(bound <= max_loss + 1e-12 && bound >= c.loss_confirm.unwrap());
            assert!((best.loss_confirm_bound.unwrap() - bound).abs() <= 1e-15);
        }
    }
    // Deterministic: the same config and seed give the same files.
    let b = t.path().join("b");
    explore(&cfg, &b, "descent", 150, None, false);
    for f in ["evaluations.csv", "pareto.csv"] {
        assert!(read(&a.join(f)) == read(&b.join(f)), "{f} differs between two identical runs");
    }
}
