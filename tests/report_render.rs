//! `qdse report`: render synthetic run folders (docs/outputs.md) and check the plots and reports.
//!
//! Set QDSE_REPORT_DEMO_DIR=/some/dir to also keep a rendered synthetic run there (for a look in a browser,
//! see docs/report.md).

use qdse::config::LossKind;
use qdse::report::render_run;
use qdse::run_folder::{
    self, reduction_key, Baseline, Chosen, Costs, EvaluationRow, FrontRow, LayerBits, RunSummary, Samples, Split,
    SweepPoint,
};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + (self.next() % u64::from(hi - lo + 1)) as u32
    }
}

/// A layer of the synthetic LeNet-5: name, weights, biases, outputs, MACs, sensitivity.
struct Layer {
    name: &'static str,
    weights: f64,
    biases: f64,
    outputs: f64,
    macs: f64,
    sens: f64,
}

const LAYERS: [Layer; 7] = [
    Layer { name: "/conv1/Conv", weights: 150.0, biases: 6.0, outputs: 4704.0, macs: 29_400.0, sens: 1.6 },
    Layer { name: "/pool1/MaxPool", weights: 0.0, biases: 0.0, outputs: 1176.0, macs: 0.0, sens: 0.0 },
    Layer { name: "/conv2/Conv", weights: 2400.0, biases: 16.0, outputs: 1600.0, macs: 240_000.0, sens: 1.0 },
    Layer { name: "/pool2/MaxPool", weights: 0.0, biases: 0.0, outputs: 400.0, macs: 0.0, sens: 0.0 },
    Layer { name: "/fc1/Gemm", weights: 48_000.0, biases: 120.0, outputs: 120.0, macs: 48_000.0, sens: 0.6 },
    Layer { name: "/fc2/Gemm", weights: 10_080.0, biases: 84.0, outputs: 84.0, macs: 10_080.0, sens: 0.7 },
    Layer {
        name: "/classifier/very_long_layer_name_for_testing/Gemm",
        weights: 840.0,
        biases: 10.0,
        outputs: 10.0,
        macs: 840.0,
        sens: 1.3,
    },
];

const FLOAT_SEARCH: f64 = 0.905;
const FLOAT_HOLDOUT: f64 = 0.904;

/// Bits per layer: (weights, bias, output); layers without parameters only use output.
type Bits = Vec<(u32, u32, u32)>;

struct Point {
    id: usize,
    source: String,
    bits: Bits,
    acc: f64,
    acc_holdout: f64,
    loss: f64,
    loss_holdout: f64,
    costs: Vec<f64>,
}

fn costs(bits: &Bits, objectives: &[&str]) -> Vec<f64> {
    let mut mem = 0.0;
    let mut mult = 0.0;
    let mut in_bits = 8.0;
    for (l, &(w, b, o)) in LAYERS.iter().zip(bits) {
        mem += l.weights * f64::from(w) + l.biases * f64::from(b) + l.outputs * f64::from(o);
        mult += l.macs * f64::from(w) * in_bits;
        in_bits = f64::from(o);
    }
    objectives
        .iter()
        .map(|o| match *o {
            "memory_bits" => mem,
            "mult_cost" => mult,
            "energy_pj" => mult * 0.0021 + mem * 0.013,
            "area_um2" => mult.sqrt() * 3.7 + 1500.0,
            other => panic!("unknown objective {other}"),
        })
        .collect()
}

fn accuracy(bits: &Bits, noise: f64) -> f64 {
    // About 0.1 % lost at 8 bits, 0.5 % at 6, 4 % at 4, 20 % at 2 bits everywhere.
    let mut penalty = 0.0;
    for (l, &(w, _, o)) in LAYERS.iter().zip(bits) {
        if l.weights > 0.0 {
            penalty += 0.2 * l.sens * 2f64.powf(-1.3 * f64::from(w));
        }
        penalty += 0.05 * 2f64.powf(-1.3 * f64::from(o));
    }
    (FLOAT_SEARCH - penalty + noise).clamp(0.08, FLOAT_SEARCH - 0.0003)
}

fn key(bits: &Bits) -> String {
    let mut k = String::from("in=u8.8");
    for (i, (l, &(w, b, o))) in LAYERS.iter().zip(bits).enumerate() {
        if l.weights > 0.0 {
            let _ = write!(k, ";L{i}=w{w}.{},b{b}.{},o{o}.{}", w - 1, b as i32 - 3, o / 2);
        } else {
            let _ = write!(k, ";L{i}=o{o}.{}", o / 2);
        }
    }
    k
}

fn uniform(b: u32) -> Bits {
    LAYERS.iter().map(|_| (b, b, b)).collect()
}

fn point_toml(bits: &Bits) -> String {
    let mut t = String::from("rounding = \"half-even\"\noverflow = \"saturate\"\nrange = \"twos-complement\"\n\n");
    t.push_str("[input]\nbits = 8\nfrac = 8\nsigned = false\n");
    for (l, &(w, b, o)) in LAYERS.iter().zip(bits) {
        let _ = write!(t, "\n[[layer]]\nname = \"{}\"\n", l.name);
        if l.weights > 0.0 {
            let _ = writeln!(t, "weights = {{ bits = {w}, frac = {} }}", w - 1);
            let _ = writeln!(t, "bias = {{ bits = {b}, frac = {} }}", b as i32 - 3);
        }
        let _ = writeln!(t, "output = {{ bits = {o}, frac = {}, signed = false }}", o / 2);
    }
    t
}

fn layer_bits(bits: &Bits) -> Vec<LayerBits> {
    LAYERS
        .iter()
        .zip(bits)
        .map(|(l, &(w, b, o))| {
            let params = l.weights > 0.0;
            LayerBits {
                name: l.name.into(),
                weights_bits: params.then_some(w),
                bias_bits: params.then_some(b),
                output_bits: Some(o),
            }
        })
        .collect()
}

fn dominates(a: &Point, b: &Point) -> bool {
    let le = a.loss <= b.loss && a.costs.iter().zip(&b.costs).all(|(x, y)| x <= y);
    let lt = a.loss < b.loss || a.costs.iter().zip(&b.costs).any(|(x, y)| x < y);
    le && lt
}

struct Options {
    objectives: Vec<&'static str>,
    evaluations: usize,
    /// Budget; a tiny one leaves no point within it (`"chosen": null`).
    max_loss: f64,
    relative: bool,
    with_config: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            objectives: vec!["memory_bits", "mult_cost"],
            evaluations: 420,
            max_loss: 0.01,
            relative: true,
            with_config: true,
        }
    }
}

/// Write a synthetic run folder; returns its summary.json.
fn make_run(dir: &Path, opt: &Options) -> RunSummary {
    std::fs::create_dir_all(dir).unwrap();
    let points = synthetic_points(opt);
    let names: Vec<String> = opt.objectives.iter().map(std::string::ToString::to_string).collect();
    let chosen = write_csvs(dir, opt, &names, &points);
    let summary = write_summary(dir, opt, &names, &points, chosen);
    if opt.with_config {
        std::fs::write(
            dir.join("config.toml"),
            "name = \"default\"\nseed = 1\n\n[model]\npath = \"../models/lenet5-fashion.onnx\"\n\n[search]\nstrategy = \"paper\"\nmax_loss = 0.01\nloss = \"relative\"\n# a <tag> & ```fence``` to escape\n",
        )
        .unwrap();
        std::fs::write(dir.join("profile.toml"), "name = \"paper\"\n[mult]\ncost = \"wbits * abits\"\n").unwrap();
    }
    summary
}

/// The uniform sweep, then random independent and nsga2 points up to `opt.evaluations`.
fn synthetic_points(opt: &Options) -> Vec<Point> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let loss_of = |acc: f64, float: f64| if opt.relative { (float - acc) / float } else { float - acc };
    let mut points: Vec<Point> = Vec::new();
    let push = |source: String, bits: Bits, rng: &mut Rng, points: &mut Vec<Point>| {
        let acc = accuracy(&bits, (rng.unit() - 0.5) * 0.004);
        let acc_holdout = acc - 0.001 + (rng.unit() - 0.5) * 0.003;
        points.push(Point {
            id: points.len(),
            source,
            costs: costs(&bits, &opt.objectives),
            loss: loss_of(acc, FLOAT_SEARCH),
            loss_holdout: loss_of(acc_holdout, FLOAT_HOLDOUT),
            bits,
            acc,
            acc_holdout,
        });
    };
    let sweep_bits = [2u32, 3, 4, 5, 6, 7, 8, 10, 12, 16];
    for b in sweep_bits {
        push(format!("uniform-{b}"), uniform(b), &mut rng, &mut points);
    }
    while points.len() < opt.evaluations {
        let source = if points.len().is_multiple_of(3) { "independent" } else { "nsga2" };
        let bits: Bits = LAYERS
            .iter()
            .map(|l| {
                if l.weights > 0.0 {
                    (rng.range(2, 9), rng.range(4, 12), rng.range(3, 10))
                } else {
                    let o = rng.range(3, 10);
                    (o, o, o)
                }
            })
            .collect();
        push(source.into(), bits, &mut rng, &mut points);
    }
    points
}

fn row(p: &Point) -> EvaluationRow {
    EvaluationRow {
        id: p.id,
        source: p.source.clone(),
        acc_search: p.acc,
        loss_search: p.loss,
        objectives: p.costs.clone(),
        key: key(&p.bits),
    }
}

/// evaluations.csv and pareto.csv; returns the chosen point (the lowest primary cost within
/// budget on the front).
fn write_csvs<'p>(dir: &Path, opt: &Options, names: &[String], points: &'p [Point]) -> Option<&'p Point> {
    let mut csv = format!("{}\n", run_folder::evaluations_header(names));
    csv.extend(points.iter().map(|p| row(p).to_csv()));
    std::fs::write(dir.join("evaluations.csv"), csv).unwrap();

    // Front, chosen point (lowest primary cost within budget).
    let front: Vec<&Point> = points.iter().filter(|p| !points.iter().any(|q| dominates(q, p))).collect();
    let primary = opt.objectives.len() - 1;
    let chosen = front
        .iter()
        .filter(|p| p.loss <= opt.max_loss)
        .min_by(|a, b| a.costs[primary].total_cmp(&b.costs[primary]))
        .copied();
    let mut pareto = format!("{}\n", run_folder::front_header(names));
    for p in &front {
        let r = FrontRow {
            eval: row(p),
            acc_holdout: Some(p.acc_holdout),
            loss_holdout: Some(p.loss_holdout),
            loss_confirm: None,
            loss_confirm_bound: None,
            chosen: chosen.is_some_and(|c| c.id == p.id),
        };
        pareto.push_str(&r.to_csv());
    }
    std::fs::write(dir.join("pareto.csv"), pareto).unwrap();
    chosen
}

/// baseline-8bit.toml, chosen.toml and summary.json.
fn write_summary(dir: &Path, opt: &Options, names: &[String], points: &[Point], chosen: Option<&Point>) -> RunSummary {
    let primary = opt.objectives.len() - 1;
    let base = &points[6]; // uniform-8
    assert_eq!(base.source, "uniform-8");
    std::fs::write(dir.join("baseline-8bit.toml"), point_toml(&base.bits)).unwrap();
    let baseline = Baseline {
        accuracy_search: base.acc,
        accuracy_holdout: base.acc_holdout,
        layers: layer_bits(&base.bits),
        costs: Costs::of(names, &base.costs),
    };
    let chosen = chosen.map(|c| {
        std::fs::write(dir.join("chosen.toml"), point_toml(&c.bits)).unwrap();
        let mut chosen = Chosen {
            source: c.source.clone(),
            loss_search: c.loss,
            accuracy_search: c.acc,
            accuracy_holdout: c.acc_holdout,
            loss_holdout: c.loss_holdout,
            loss_holdout_ci95: None,
            holdout_within_budget: None,
            loss_confirm: None,
            loss_confirm_bound: None,
            loss_confirm_bound_confidence: None,
            flip_rate_confirm: None,
            layers: layer_bits(&c.bits),
            costs: Costs::default(),
        };
        chosen.set_costs(names, &c.costs, &base.costs);
        chosen
    });
    let uniform_sweep = points
        .iter()
        .filter(|p| p.source.starts_with("uniform-"))
        .map(|p| SweepPoint {
            bits: p.bits[0].0,
            accuracy_search: p.acc,
            loss_search: Some(p.loss),
            costs: Costs::of(names, &p.costs),
        })
        .collect();
    let summary = RunSummary {
        name: "default".into(),
        strategy: "paper".into(),
        seed: Some(1),
        evaluations: Some(points.len() as u64),
        evaluations_run: None,
        evaluations_stopped_early: None,
        evaluations_resumed: None,
        sample_layers_run: None,
        prefix_reuse: None,
        early_stop: None,
        budget: None,
        wall_seconds: Some(37.2),
        model: "models/lenet5-fashion.onnx".into(),
        profile: "paper".into(),
        primary: Some(names[primary].clone()),
        objectives: names.to_vec(),
        max_loss: opt.max_loss,
        search_target: None,
        loss: if opt.relative { LossKind::Relative } else { LossKind::Absolute },
        samples: Some(Samples { search: 2000, confirm: None, holdout: 8000 }),
        signal: None,
        confidence: None,
        confirmation: None,
        float_accuracy: Split { search: FLOAT_SEARCH, holdout: FLOAT_HOLDOUT },
        baseline_8bit: baseline,
        chosen,
        uniform_sweep,
        notes: Vec::new(),
        version: "0.1.0".into(),
    };
    std::fs::write(dir.join("summary.json"), serde_json::to_string_pretty(&summary).unwrap()).unwrap();
    summary
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn check_png(p: &Path) {
    let bytes = std::fs::read(p).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{} is not a PNG", p.display());
    assert_eq!(&bytes[12..16], b"IHDR");
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert!(w >= 1000 && h >= 600, "{}: {w}x{h}", p.display());
    assert!(bytes.len() > 10_000, "{}: suspiciously small", p.display());
}

fn pct(v: f64) -> String {
    format!("{:.2}%", v * 100.0)
}

/// Names of the files the renderer leaves in `dir` (temporary files would start with '.').
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn renders_all_outputs_of_a_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("default");
    let summary = make_run(&dir, &Options::default());
    let written = render_run(&dir).unwrap();

    let expected: Vec<PathBuf> = [
        "pareto_memory_bits.svg",
        "pareto_memory_bits.png",
        "pareto_mult_cost.svg",
        "pareto_mult_cost.png",
        "layers.svg",
        "layers.png",
        "report.html",
        "report.md",
    ]
    .iter()
    .map(|f| dir.join(f))
    .collect();
    assert_eq!(written, expected);
    for f in &expected {
        assert!(f.is_file(), "{} missing", f.display());
    }
    assert!(listing(&dir).iter().all(|f| !f.starts_with('.')), "temporary files left: {:?}", listing(&dir));
    for png in ["pareto_memory_bits.png", "pareto_mult_cost.png", "layers.png"] {
        check_png(&dir.join(png));
    }
    let mem = check_plots(&dir, &summary);
    check_html(&dir, &summary);
    check_markdown(&dir, &summary);

    // Rendering again replaces the files (atomic rename over existing ones).
    let again = render_run(&dir).unwrap();
    assert_eq!(again, expected);
    assert_eq!(read(&dir.join("pareto_memory_bits.svg")), mem);

    if let Some(demo) = std::env::var_os("QDSE_REPORT_DEMO_DIR") {
        render_demo(&PathBuf::from(demo));
    }
}

/// `−53%`: the chosen point's reduction of objective `o` against the 8-bit baseline.
fn reduction(c: &Chosen, o: &str) -> String {
    format!("\u{2212}{:.0}%", c.costs.get(&reduction_key(o)).unwrap() * 100.0)
}

/// The plots: axis titles, the chosen point, the 8-bit baseline, float and budget lines, sweep
/// labels, the annotation. Returns the memory plot's SVG.
fn check_plots(dir: &Path, summary: &RunSummary) -> String {
    // Plots: axis titles, the chosen point, the 8-bit baseline, float and budget lines, sweep labels.
    let mem = read(&dir.join("pareto_memory_bits.svg"));
    let mult = read(&dir.join("pareto_mult_cost.svg"));
    for (svg, title) in [(&mem, "memory (bits)"), (&mult, "multiplication cost (bit-ops)")] {
        assert!(svg.starts_with("<svg"), "not an SVG document");
        for needle in [
            title,
            "accuracy (%), search split unless marked holdout",
            "front points on the holdout split",
            "chosen",
            "8-bit",
            "float",
            "budget",
            "4-bit",
        ] {
            assert!(svg.contains(needle), "SVG lacks {needle:?}");
        }
    }
    assert!(mult.contains("(log scale)"), "mult_cost spans > 30x: log scale expected");
    assert!(!mem.contains("(log scale)"), "memory spans < 30x: linear scale expected");
    let c = summary.chosen.as_ref().unwrap();
    let red = |o: &str| reduction(c, o);
    // "chosen: −53% memory, −77% mult cost vs 8-bit; holdout loss 0.9%", broken after "; " if long.
    let annotation = [
        format!("chosen: {} memory, {} mult cost vs 8-bit;", red("memory_bits"), red("mult_cost")),
        format!("holdout loss {:.1}%", c.loss_holdout * 100.0),
    ];
    for a in &annotation {
        assert!(mem.contains(a.as_str()) && mult.contains(a.as_str()), "annotation {a:?} missing");
    }
    let layers = read(&dir.join("layers.svg"));
    for needle in ["conv1/Conv", "fc2/Gemm", "weights, chosen", "8-bit baseline", "bits"] {
        assert!(layers.contains(needle), "layers.svg lacks {needle:?}");
    }
    mem
}

/// report.html: self-contained, plots inline, headline numbers from summary.json.
fn check_html(dir: &Path, summary: &RunSummary) {
    let c = summary.chosen.as_ref().unwrap();
    let red = |o: &str| reduction(c, o);
    let html = read(&dir.join("report.html"));
    assert!(html.starts_with("<!DOCTYPE html>"));
    for bad in ["src=\"http", "href=\"http", "src='http", "href='http", "url(", "@import", "<link", "<script", "<img"] {
        assert!(!html.contains(bad), "report.html references an external resource: {bad}");
    }
    assert_eq!(html.matches("<svg").count(), 3, "three inline SVG plots");
    let headline = &html[html.find("id=\"headline\"").unwrap()..html.find("id=\"run\"").unwrap()];
    for needle in [
        pct(summary.float_accuracy.search),
        pct(summary.float_accuracy.holdout),
        pct(summary.baseline_8bit.accuracy_search),
        pct(c.accuracy_holdout),
        format!("holdout loss {:.2}%", c.loss_holdout * 100.0),
        format!("search loss {:.2}%", c.loss_search * 100.0),
        red("memory_bits"),
        red("mult_cost"),
    ] {
        assert!(headline.contains(&needle), "headline lacks {needle:?}");
    }
    for needle in [
        "models/lenet5-fashion.onnx",
        "37.2 s",
        "0.1.0",
        "/classifier/very_long_layer_name_for_testing/Gemm",
        "u8.8",
        "Pareto front",
        "&lt;tag&gt; &amp;",
        "name = &quot;paper&quot;",
    ] {
        assert!(html.contains(needle), "report.html lacks {needle:?}");
    }
}

/// report.md: the same tables, PNGs referenced.
fn check_markdown(dir: &Path, summary: &RunSummary) {
    let red = |o: &str| reduction(summary.chosen.as_ref().unwrap(), o);
    let md = read(&dir.join("report.md"));
    for needle in [
        "## Headline",
        "| layer | 8-bit: weights |",
        "| id | source | acc. search |",
        "| memory (bits) |",
        "![memory (bits)](pareto_memory_bits.png)",
        "![per-layer bitwidths](layers.png)",
        "(layers.png)",
        "````toml",
        &pct(summary.float_accuracy.search),
    ] {
        assert!(md.contains(needle), "report.md lacks {needle:?}");
    }
    assert!(md.contains(&red("mult_cost")));
}

/// Synthetic runs rendered into `demo` for a look in a browser (QDSE_REPORT_DEMO_DIR).
fn render_demo(demo: &Path) {
    make_run(&demo.join("default"), &Options::default());
    render_run(&demo.join("default")).unwrap();
    let none = demo.join("no-point");
    make_run(&none, &Options { max_loss: 1e-5, ..Options::default() });
    render_run(&none).unwrap();
    let four = demo.join("four-objectives");
    make_run(
        &four,
        &Options {
            objectives: vec!["memory_bits", "energy_pj", "area_um2", "mult_cost"],
            relative: false,
            ..Options::default()
        },
    );
    render_run(&four).unwrap();
}

#[test]
fn missing_summary_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    make_run(tmp.path(), &Options::default());
    std::fs::remove_file(tmp.path().join("summary.json")).unwrap();
    let e = format!("{:#}", render_run(tmp.path()).unwrap_err());
    assert!(e.contains("summary.json") && e.contains("qdse explore"), "{e}");
    assert!(!tmp.path().join("report.html").exists());

    let e = format!("{:#}", render_run(&tmp.path().join("nope")).unwrap_err());
    assert!(e.contains("does not exist"), "{e}");
}

#[test]
fn objective_missing_from_csv_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    make_run(tmp.path(), &Options::default());
    let p = tmp.path().join("evaluations.csv");
    std::fs::write(&p, read(&p).replacen("mult_cost", "mults", 1)).unwrap();
    let e = format!("{:#}", render_run(tmp.path()).unwrap_err());
    assert!(e.contains("mult_cost") && e.contains("evaluations.csv"), "{e}");
}

#[test]
fn no_point_within_budget_renders_a_message() {
    let tmp = tempfile::tempdir().unwrap();
    let summary = make_run(tmp.path(), &Options { max_loss: 1e-5, with_config: false, ..Options::default() });
    assert!(summary.chosen.is_none());
    // A stale chosen.toml of an earlier run must not be shown.
    std::fs::write(tmp.path().join("chosen.toml"), "[[layer]]\nname = \"/conv1/Conv\"\nweights = { bits = 3 }\n")
        .unwrap();
    let written = render_run(tmp.path()).unwrap();
    assert_eq!(written.len(), 8);
    let html = read(&tmp.path().join("report.html"));
    assert!(html.contains("No point meets the budget"), "report.html lacks the message");
    assert!(!html.contains("chosen: weights"));
    let md = read(&tmp.path().join("report.md"));
    assert!(md.contains("No point meets the budget"));
    let svg = read(&tmp.path().join("pareto_mult_cost.svg"));
    assert!(svg.contains("no point meets the budget"));
    assert!(!svg.contains("chosen:"));
    check_png(&tmp.path().join("pareto_mult_cost.png"));
    check_png(&tmp.path().join("layers.png"));
}

#[test]
fn other_objectives_absolute_loss_and_truncated_last_line() {
    let tmp = tempfile::tempdir().unwrap();
    let opt = Options {
        objectives: vec!["memory_bits", "energy_pj", "area_um2", "mult_cost"],
        relative: false,
        evaluations: 150,
        ..Options::default()
    };
    make_run(tmp.path(), &opt);
    // An interrupted search leaves a cut-off last line in evaluations.csv.
    let p = tmp.path().join("evaluations.csv");
    std::fs::write(&p, format!("{}151,nsga2,0.8", read(&p))).unwrap();
    let written = render_run(tmp.path()).unwrap();
    assert_eq!(written.len(), 4 * 2 + 4);
    assert!(read(&tmp.path().join("pareto_energy_pj.svg")).contains("energy per inference (pJ)"));
    assert!(read(&tmp.path().join("pareto_area_um2.svg")).contains("area (µm²)"));
    let html = read(&tmp.path().join("report.html"));
    assert!(html.contains(" pp"), "absolute losses are in accuracy points");
    assert!(html.contains("150"), "evaluations count");
}
