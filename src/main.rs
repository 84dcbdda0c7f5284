use anyhow::{bail, Context, Result};
use clap::Parser;
use qdse::cli::{Cli, Command, ProfileCommand, SynthTarget};
use qdse::config::Settings;
use qdse::cost::synth::{Grid, Target};
use qdse::eval::paired::Paired;
use qdse::experiment::{Experiment, Profile, SplitAccuracy};
use qdse::run_folder::{reduction_key, RunSummary};
use qdse::search::explore;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A closed pipe (`qdse inspect m | head`) is not an error.
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(2)
        }
    }
}

/// Each subcommand checks its flags and the config before it loads a model or data.
fn run(cli: Cli) -> Result<()> {
    let out = &mut std::io::stdout().lock();
    match cli.command {
        Command::Inspect { model } => inspect(out, &model),
        Command::Eval { config, point, json } => eval(out, config.as_deref(), point.as_deref(), json),
        Command::Cost { config, point, profile, json } => {
            cost(out, config.as_deref(), point.as_deref(), profile.as_deref(), json)
        }
        Command::Explore {
            config,
            out: dir,
            strategy,
            budget,
            max_loss,
            seed,
            resume,
            no_prefix_reuse,
            no_early_stop,
            measure_signals,
        } => {
            let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let opts = explore::Options {
                out: dir,
                strategy,
                budget,
                seed,
                resume,
                progress,
                no_prefix_reuse,
                no_early_stop,
                measure_signals,
            };
            explore(out, config.as_deref(), max_loss, &opts)
        }
        Command::Export { config, point, out: dir, samples } => export(out, config.as_deref(), &point, &dir, samples),
        Command::Report { dirs, table } => report(out, &dirs, table),
        Command::Bench { config, repeats, json } => bench(out, config.as_deref(), repeats, json),
        Command::Uniform { config, bits } => uniform(out, config.as_deref(), bits),
        Command::Profile { command } => profile(out, command),
        Command::ImageFolder { images, labels, out: dir, limit } => image_folder(out, &images, &labels, &dir, limit),
    }
}

/// `qdse profile synth | compare`.
fn profile(out: &mut impl Write, command: ProfileCommand) -> Result<()> {
    match command {
        ProfileCommand::Synth {
            target,
            liberty,
            weights,
            activations,
            accumulators,
            unsigned_activations,
            base,
            name,
            um2_per_ge,
            jobs,
            out: file,
        } => {
            let grid = Grid {
                weight_bits: weights.0,
                activation_bits: activations.0,
                accumulator_bits: accumulators.0,
                signed_activations: !unsigned_activations,
            };
            let target = match (target, liberty) {
                (SynthTarget::Liberty, Some(lib)) => Target::Liberty(lib),
                (SynthTarget::Liberty, None) => bail!("--target liberty needs --liberty FILE"),
                (_, Some(_)) => bail!("--liberty applies only to --target liberty"),
                (SynthTarget::Generic, None) => {
                    if !(um2_per_ge.is_finite() && um2_per_ge > 0.0) {
                        bail!("--um2-per-ge {um2_per_ge} must be a positive number");
                    }
                    Target::Generic { um2_per_ge }
                }
                (SynthTarget::Xcup, None) => Target::Xcup,
            };
            profile_synth(out, &target, &grid, base.as_deref(), name.as_deref(), jobs, &file)
        }
        ProfileCommand::Compare { formula, synthesized } => {
            let (f, _) = qdse::cost::CostProfile::resolve(&formula)?;
            let (s, _) = qdse::cost::CostProfile::resolve(&synthesized)?;
            write!(out, "{}", qdse::cost::synth::compare(&f, &s)?)?;
            Ok(())
        }
    }
}

fn image_folder(out: &mut impl Write, images: &Path, labels: &Path, dir: &Path, limit: Option<usize>) -> Result<()> {
    let mut ds = qdse::data::load(images, labels, None)?;
    if let Some(n) = limit {
        ds = ds.subset(0..n.min(ds.len()));
    }
    qdse::data::write_image_folder(&ds, dir)?;
    writeln!(out, "wrote {} images to {}", ds.len(), dir.display())?;
    Ok(())
}

/// A file a flag names must exist before the model and data are loaded for it.
fn check_file(flag: &str, path: &Path) -> Result<()> {
    if path.is_dir() {
        bail!("{flag} {}: a folder, not a file", path.display());
    }
    if !path.is_file() {
        bail!("{flag} {}: no such file", path.display());
    }
    Ok(())
}

/// The experiment of a loaded config, its point file's assignment or else uniform 8-bit.
fn load_with_point(settings: Settings, point: Option<&Path>) -> Result<(Experiment, qdse::fixed::Assignment)> {
    let exp = Experiment::load(settings)?;
    let a = match point {
        Some(p) => exp.load_point(p)?,
        None => exp.baseline(),
    };
    Ok((exp, a))
}

fn inspect(out: &mut impl Write, model: &Path) -> Result<()> {
    let graph = qdse::model::onnx::load(model).with_context(|| format!("cannot import model {}", model.display()))?;
    write!(out, "{}", qdse::model::inspect_table(&graph))?;
    Ok(())
}

fn eval(out: &mut impl Write, config: Option<&Path>, point: Option<&Path>, json: bool) -> Result<()> {
    let settings = Settings::load_or_default(config)?;
    if let Some(p) = point {
        check_file("--point", p)?;
    }
    let (exp, a) = load_with_point(settings, point)?;
    let kind = exp.settings.search.loss;
    // One pass of the integer engine per split gives the accuracy and the paired measures.
    let (ps, ph) = (exp.search(&a)?, exp.holdout(&a)?);
    let float = exp.float_accuracy();
    let fixed = SplitAccuracy { search: ps.fixed_accuracy(), holdout: ph.fixed_accuracy() };
    if json {
        let measures = |p: &Paired| serde_json::json!({"loss": p.loss(kind), "soft_loss": p.soft_loss(kind), "flip_rate": p.flip_rate(), "kl": p.kl()});
        let samples = serde_json::json!({"search": exp.split.search.len(), "confirm": exp.split.confirm.len(), "holdout": exp.split.holdout.len()});
        let v = serde_json::json!({
            "name": exp.settings.name,
            "point": point.map_or_else(|| "uniform-8bit".into(), |p| p.display().to_string()),
            "samples": samples,
            "float": float,
            "fixed": fixed,
            "paired": {"search": measures(&ps), "holdout": measures(&ph)},
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    let what = point.map_or_else(|| "uniform 8-bit (no clipping)".into(), |p| p.display().to_string());
    writeln!(out, "{}: {}", exp.settings.name, exp.settings.model.display())?;
    writeln!(out, "fixed point: {what}")?;
    writeln!(out, "{:<8} {:>10} {:>10}", "", "search", "holdout")?;
    writeln!(out, "{:<8} {:>10} {:>10}", "samples", exp.split.search.len(), exp.split.holdout.len())?;
    writeln!(out, "{:<8} {:>9.2}% {:>9.2}%", "float", 100.0 * float.search, 100.0 * float.holdout)?;
    writeln!(out, "{:<8} {:>9.2}% {:>9.2}%", "fixed", 100.0 * fixed.search, 100.0 * fixed.holdout)?;
    // Paired against the float network on the same images (docs/data-roles.md).
    let row = |name: &str, f: &dyn Fn(&Paired) -> f64, scale: f64, unit: &str| {
        format!("{name:<8} {:>9.3}{unit} {:>9.3}{unit}", scale * f(&ps), scale * f(&ph))
    };
    writeln!(out, "{}", row("loss", &|p| p.loss(kind), 100.0, "%"))?;
    writeln!(out, "{}", row("soft", &|p| p.soft_loss(kind), 100.0, "%"))?;
    writeln!(out, "{}", row("flips", &|p| p.flip_rate(), 100.0, "%"))?;
    writeln!(out, "{}", row("KL mnat", &|p| p.kl(), 1000.0, " "))?;
    Ok(())
}

fn cost(
    out: &mut impl Write,
    config: Option<&Path>,
    point: Option<&Path>,
    profile: Option<&str>,
    json: bool,
) -> Result<()> {
    let settings = Settings::load_or_default(config)?;
    if let Some(p) = point {
        check_file("--point", p)?;
    }
    // The given profile, else every shipped one (and the config's own, if it is a file).
    let specs: Vec<String> = if let Some(p) = profile {
        vec![p.to_string()]
    } else {
        let mut v: Vec<String> = qdse::cost::profile::BUILTIN_NAMES.iter().map(ToString::to_string).collect();
        if !v.contains(&settings.cost_profile) {
            v.insert(0, settings.cost_profile.clone());
        }
        v
    };
    let profiles: Vec<Profile> = specs.iter().map(|s| Profile::resolve(s)).collect::<Result<_>>()?;
    let (exp, a) = load_with_point(settings, point)?;
    let mut all = serde_json::Map::new();
    for p in profiles {
        for w in &p.warnings {
            eprintln!("warning: {w}");
        }
        let model = qdse::cost::CostModel::new(&exp.graph, &p.profile);
        model.check(&a)?;
        let chosen = model.price(&a);
        let base = model.price(&exp.baseline());
        let f32c = qdse::cost::price_float32(&exp.graph, &p.profile);
        if json {
            all.insert(p.profile.name.clone(), qdse::cost::breakdown_json(&exp.graph, &chosen, &base, &f32c));
        } else {
            writeln!(out, "== profile {} ({})", p.profile.name, p.profile.origin)?;
            writeln!(out, "{}", qdse::cost::breakdown_table(&exp.graph, &chosen, &base, &f32c))?;
        }
    }
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&all)?)?;
    }
    Ok(())
}

fn explore(out: &mut impl Write, config: Option<&Path>, max_loss: Option<f64>, opts: &explore::Options) -> Result<()> {
    let mut settings = Settings::load_or_default(config)?;
    if let Some(m) = max_loss {
        if !(0.0..1.0).contains(&m) {
            bail!("--max-loss {m} must be in [0, 1) (a fraction: 0.005 = 0.5 %)");
        }
        settings.search.max_loss = m;
    }
    let p = Profile::for_settings(&settings)?;
    for w in &p.warnings {
        eprintln!("warning: {w}");
    }
    let exp = Experiment::load(settings)?;
    let model = qdse::cost::CostModel::new(&exp.graph, &p.profile);
    let names: Vec<String> = p.profile.objectives.iter().map(|o| o.name().to_string()).collect();
    let primary = p.profile.objectives.iter().position(|o| *o == p.profile.primary).unwrap_or(0);
    let pricer = |a: &qdse::fixed::Assignment| -> Vec<f64> { model.objectives(a).iter().map(|(_, v)| v).collect() };
    let costing = explore::Costing {
        names,
        primary,
        pricer: &pricer,
        profile_name: p.profile.name.clone(),
        profile_text: p.text.clone(),
    };
    let outcome = explore::explore(&exp, &costing, opts)?;
    let files = qdse::report::render_run(&outcome.dir)?;
    writeln!(out, "run folder: {}", outcome.dir.display())?;
    print_summary(out, &outcome.summary)?;
    writeln!(out, "report: {} ({} files)", outcome.dir.join("report.html").display(), files.len())?;
    Ok(())
}

fn export(out: &mut impl Write, config: Option<&Path>, point: &Path, dir: &Path, samples: usize) -> Result<()> {
    let cfg = Settings::resolve_default(config);
    let settings = Settings::load(&cfg)?;
    check_file("--point", point)?;
    let exp = Experiment::load(settings)?;
    let a = exp.load_point(point)?;
    if samples > exp.split.holdout.len() {
        bail!(
            "--samples {samples} is more than the {} holdout images of {} (golden vectors come from the holdout split)",
            exp.split.holdout.len(),
            cfg.display()
        );
    }
    let golden: Vec<(Vec<f64>, usize)> =
        exp.split.holdout.clone().take(samples).map(|i| (exp.input_f64(i), exp.data.labels[i])).collect();
    let meta = qdse::export::ExportMeta::new(exp.settings.model.display().to_string(), Some(cfg.display().to_string()));
    qdse::export::export(&exp.graph, &a, &golden, dir, &meta)?;
    writeln!(out, "exported {} ({} golden samples) to {}", point.display(), golden.len(), dir.display())?;
    Ok(())
}

fn report(out: &mut impl Write, dirs: &[PathBuf], table: bool) -> Result<()> {
    if table {
        write!(out, "{}", qdse::report::results::results_table(dirs)?)?;
        return Ok(());
    }
    for dir in dirs {
        for f in qdse::report::render_run(dir)? {
            writeln!(out, "{}", f.display())?;
        }
    }
    Ok(())
}

fn bench(out: &mut impl Write, config: Option<&Path>, repeats: usize, json: bool) -> Result<()> {
    let exp = Experiment::load(Settings::load_or_default(config)?)?;
    let t = qdse::eval::throughput(&exp.graph, &exp.data, &exp.pre, &exp.baseline(), repeats)?;
    if json {
        let v = serde_json::json!({"model": exp.settings.model.display().to_string(), "throughput": t});
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    writeln!(out, "{} over {} images, {} threads", exp.settings.model.display(), t.images, t.threads)?;
    let line =
        |what: &str, per_s: f64, acc: f64| format!("{what:<11} {per_s:>10.0} images/s  (accuracy {:.2}%)", 100.0 * acc);
    writeln!(out, "{}", line("float32", t.float_images_per_s, t.float_accuracy))?;
    writeln!(out, "{}", line("fixed 8-bit", t.fixed_images_per_s, t.fixed_accuracy))?;
    Ok(())
}

fn uniform(out: &mut impl Write, config: Option<&Path>, bits: u32) -> Result<()> {
    let settings = Settings::load_or_default(config)?;
    if !(1..=qdse::fixed::format::MAX_BITS).contains(&bits) {
        bail!("--bits {bits} is out of range 1..={}", qdse::fixed::format::MAX_BITS);
    }
    let exp = Experiment::load(settings)?;
    write!(out, "{}", exp.uniform(bits).to_toml(&exp.graph))?;
    Ok(())
}

/// The headline of a finished run.
fn print_summary(out: &mut impl Write, s: &RunSummary) -> Result<()> {
    let pct = |v: Option<f64>| v.map_or_else(|| "-".into(), |x| format!("{:.2}%", 100.0 * x));
    let count = |v: Option<u64>| v.map_or_else(|| "null".into(), |n| n.to_string());
    writeln!(
        out,
        "{} evaluations ({} run, {} stopped early) in {:.1} s",
        count(s.evaluations),
        count(s.evaluations_run),
        count(s.evaluations_stopped_early),
        s.wall_seconds.unwrap_or(0.0)
    )?;
    let float = s.float_accuracy;
    writeln!(out, "float accuracy: search {} holdout {}", pct(Some(float.search)), pct(Some(float.holdout)))?;
    let b = &s.baseline_8bit;
    writeln!(out, "uniform 8-bit:  search {} holdout {}", pct(Some(b.accuracy_search)), pct(Some(b.accuracy_holdout)))?;
    let Some(c) = &s.chosen else {
        writeln!(out, "no evaluated point meets the loss budget of {}", pct(Some(s.max_loss)))?;
        return Ok(());
    };
    let ci = c.loss_holdout_ci95;
    writeln!(
        out,
        "chosen ({}): loss search {} holdout {} (95% interval {} to {}; holdout accuracy {})",
        c.source,
        pct(Some(c.loss_search)),
        pct(Some(c.loss_holdout)),
        pct(ci.map(|i| i[0])),
        pct(ci.map(|i| i[1])),
        pct(Some(c.accuracy_holdout))
    )?;
    if c.loss_confirm_bound.is_some() {
        let confirmation = s.confirmation.clone().unwrap_or_default();
        writeln!(
            out,
            "  confirmation: loss {} bound {} (its rung at {:.1}%; overall {:.0}% confidence; {} rungs tested, {} accepted)",
            pct(c.loss_confirm),
            pct(c.loss_confirm_bound),
            100.0 * c.loss_confirm_bound_confidence.unwrap_or(0.0),
            100.0 * s.confidence.unwrap_or(0.0),
            confirmation.tested,
            confirmation.accepted
        )?;
    }
    for name in &s.objectives {
        writeln!(
            out,
            "  {name:<12} {:>14.6e} vs 8-bit {:>14.6e}  reduction {}",
            c.cost(name).unwrap_or(f64::NAN),
            b.cost(name).unwrap_or(f64::NAN),
            pct(c.costs.get(&reduction_key(name)))
        )?;
    }
    Ok(())
}

fn profile_synth(
    out: &mut impl Write,
    target: &Target,
    grid: &Grid,
    base: Option<&str>,
    name: Option<&str>,
    jobs: Option<usize>,
    file: &Path,
) -> Result<()> {
    let base = base.unwrap_or(target.default_base());
    // The base must be a valid profile; its text is what the new one keeps.
    qdse::cost::CostProfile::resolve(base)?;
    let base_text = if Path::new(base).exists() {
        std::fs::read_to_string(base).with_context(|| format!("cannot read {base}"))?
    } else {
        qdse::cost::builtin(base).context("a resolved profile that is not a file is built in")?.to_string()
    };
    let stem = file.file_stem().map(|s| s.to_string_lossy().to_string());
    let name = name.map(String::from).or(stem).with_context(|| format!("--out {} has no file name", file.display()))?;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(jobs.unwrap_or(0)).build()?;
    let progress = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let pb = indicatif::ProgressBar::new(0);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} designs, eta {eta}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        pb
    } else {
        indicatif::ProgressBar::hidden()
    };
    let s = pool.install(|| qdse::cost::synth::synthesize(target, grid, &progress))?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = format!("qdse {}", args.join(" "));
    let prov = qdse::cost::synth::Provenance { name: &name, base: (base, &base_text), command: &command };
    let text = qdse::cost::synth::profile_text(target, grid, &s, &prov)?;
    qdse::report::write_atomic(file, text.as_bytes())?;
    writeln!(
        out,
        "wrote {} ({} multipliers, {} accumulators, {})",
        file.display(),
        s.mult.len(),
        s.acc.len(),
        s.yosys
    )?;
    Ok(())
}
