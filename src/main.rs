use anyhow::{Context, Result};
use clap::Parser;
use qdse::cli::{Cli, Command};
use qdse::config::Settings;
use qdse::experiment::{Experiment, Profile, SplitAccuracy};
use qdse::search::explore;
use std::io::Write;
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

fn run(cli: Cli) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Inspect { model } => {
            let graph =
                qdse::model::onnx::load(&model).with_context(|| format!("cannot import model {}", model.display()))?;
            write!(out, "{}", qdse::model::inspect_table(&graph))?;
        }
        Command::Eval { config, point, json } => {
            let exp = Experiment::from_config(&Settings::resolve_default(config.as_deref()))?;
            let a = match &point {
                Some(p) => exp.load_point(p)?,
                None => exp.baseline(),
            };
            let float = exp.float_accuracy();
            let kind = exp.settings.search.loss;
            // One pass of the integer engine per split gives the accuracy and the paired measures.
            let (ps, ph) = (exp.search(&a)?, exp.holdout(&a)?);
            let fixed = SplitAccuracy { search: ps.fixed_accuracy(), holdout: ph.fixed_accuracy() };
            let measures = |p: &qdse::eval::paired::Paired| serde_json::json!({"loss": p.loss(kind), "soft_loss": p.soft_loss(kind), "flip_rate": p.flip_rate(), "kl": p.kl()});
            let samples = serde_json::json!({"search": exp.split.search.len(), "confirm": exp.split.confirm.len(), "holdout": exp.split.holdout.len()});
            if json {
                let v = serde_json::json!({
                    "name": exp.settings.name,
                    "point": point.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "uniform-8bit".into()),
                    "samples": samples,
                    "float": float,
                    "fixed": fixed,
                    "paired": {"search": measures(&ps), "holdout": measures(&ph)},
                });
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                let what = point
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "uniform 8-bit (no clipping)".into());
                writeln!(out, "{}: {}", exp.settings.name, exp.settings.model.display())?;
                writeln!(out, "fixed point: {what}")?;
                writeln!(out, "{:<8} {:>10} {:>10}", "", "search", "holdout")?;
                writeln!(out, "{:<8} {:>10} {:>10}", "samples", exp.split.search.len(), exp.split.holdout.len())?;
                writeln!(out, "{:<8} {:>9.2}% {:>9.2}%", "float", 100.0 * float.search, 100.0 * float.holdout)?;
                writeln!(out, "{:<8} {:>9.2}% {:>9.2}%", "fixed", 100.0 * fixed.search, 100.0 * fixed.holdout)?;
                // Paired against the float network on the same images (docs/data-roles.md).
                let row = |name: &str, f: &dyn Fn(&qdse::eval::paired::Paired) -> f64, scale: f64, unit: &str| {
                    format!("{name:<8} {:>9.3}{unit} {:>9.3}{unit}", scale * f(&ps), scale * f(&ph))
                };
                writeln!(out, "{}", row("loss", &|p| p.loss(kind), 100.0, "%"))?;
                writeln!(out, "{}", row("soft", &|p| p.soft_loss(kind), 100.0, "%"))?;
                writeln!(out, "{}", row("flips", &|p| p.flip_rate(), 100.0, "%"))?;
                writeln!(out, "{}", row("KL mnat", &|p| p.kl(), 1000.0, " "))?;
            }
        }
        Command::Cost { config, point, profile, json } => {
            let exp = Experiment::from_config(&Settings::resolve_default(config.as_deref()))?;
            let a = match &point {
                Some(p) => exp.load_point(p)?,
                None => exp.baseline(),
            };
            let specs: Vec<String> = match profile {
                Some(p) => vec![p],
                None => {
                    let mut v: Vec<String> = qdse::cost::profile::BUILTIN_NAMES.iter().map(|s| s.to_string()).collect();
                    if !v.contains(&exp.settings.cost_profile) {
                        v.insert(0, exp.settings.cost_profile.clone());
                    }
                    v
                }
            };
            let mut all = serde_json::Map::new();
            for spec in specs {
                let p = Profile::resolve(&spec)?;
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
            let mut exp = Experiment::from_config(&Settings::resolve_default(config.as_deref()))?;
            if let Some(m) = max_loss {
                if !(0.0..1.0).contains(&m) {
                    anyhow::bail!("--max-loss {m} must be in [0, 1) (a fraction: 0.005 = 0.5 %)");
                }
                exp.settings.search.max_loss = m;
            }
            let p = Profile::resolve(&exp.settings.cost_profile)?;
            for w in &p.warnings {
                eprintln!("warning: {w}");
            }
            let model = qdse::cost::CostModel::new(&exp.graph, &p.profile);
            let names: Vec<String> = p.profile.objectives.iter().map(|o| o.name().to_string()).collect();
            let primary = p.profile.objectives.iter().position(|o| *o == p.profile.primary).unwrap_or(0);
            let pricer =
                |a: &qdse::fixed::Assignment| -> Vec<f64> { model.objectives(a).iter().map(|(_, v)| v).collect() };
            let costing = explore::Costing {
                names,
                primary,
                pricer: &pricer,
                profile_name: p.profile.name.clone(),
                profile_text: p.text.clone(),
            };
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
            let outcome = explore::explore(&exp, &costing, &opts)?;
            let files = qdse::report::render_run(&outcome.dir)?;
            print_outcome(&mut out, &outcome)?;
            writeln!(out, "report: {} ({} files)", outcome.dir.join("report.html").display(), files.len())?;
        }
        Command::Export { config, point, out: dir, samples } => {
            let cfg = Settings::resolve_default(config.as_deref());
            let exp = Experiment::from_config(&cfg)?;
            let a = exp.load_point(&point)?;
            let golden: Vec<(Vec<f64>, usize)> =
                exp.split.holdout.clone().take(samples).map(|i| (exp.input_f64(i), exp.data.labels[i])).collect();
            let meta = qdse::export::ExportMeta::new(
                exp.settings.model.display().to_string(),
                Some(cfg.display().to_string()),
            );
            qdse::export::export(&exp.graph, &a, &golden, &dir, &meta)?;
            writeln!(out, "exported {} ({} golden samples) to {}", point.display(), golden.len(), dir.display())?;
        }
        Command::Report { dirs, table } => {
            if table {
                write!(out, "{}", qdse::report::results::results_table(&dirs)?)?;
            } else {
                for dir in &dirs {
                    for f in qdse::report::render_run(dir)? {
                        writeln!(out, "{}", f.display())?;
                    }
                }
            }
        }
        Command::Bench { config, repeats, json } => {
            let exp = Experiment::from_config(&Settings::resolve_default(config.as_deref()))?;
            let t = qdse::eval::throughput(&exp.graph, &exp.data, &exp.pre, &exp.baseline(), repeats)?;
            if json {
                let v = serde_json::json!({"model": exp.settings.model.display().to_string(), "throughput": t});
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                writeln!(out, "{} over {} images, {} threads", exp.settings.model.display(), t.images, t.threads)?;
                writeln!(
                    out,
                    "float32     {:>10.0} images/s  (accuracy {:.2}%)",
                    t.float_images_per_s,
                    100.0 * t.float_accuracy
                )?;
                writeln!(
                    out,
                    "fixed 8-bit {:>10.0} images/s  (accuracy {:.2}%)",
                    t.fixed_images_per_s,
                    100.0 * t.fixed_accuracy
                )?;
            }
        }
        Command::Uniform { config, bits } => {
            let exp = Experiment::from_config(&Settings::resolve_default(config.as_deref()))?;
            if !(1..=qdse::fixed::format::MAX_BITS).contains(&bits) {
                anyhow::bail!("--bits {bits} is out of range 1..=32");
            }
            write!(out, "{}", exp.uniform(bits).to_toml(&exp.graph))?;
        }
    }
    Ok(())
}

/// The headline of a finished run.
fn print_outcome(out: &mut impl Write, o: &explore::Outcome) -> Result<()> {
    let s = &o.summary;
    let pct = |v: &serde_json::Value| v.as_f64().map(|x| format!("{:.2}%", 100.0 * x)).unwrap_or_else(|| "-".into());
    writeln!(out, "run folder: {}", o.dir.display())?;
    writeln!(
        out,
        "{} evaluations ({} run, {} stopped early) in {:.1} s",
        s["evaluations"],
        s["evaluations_run"],
        s["evaluations_stopped_early"],
        s["wall_seconds"].as_f64().unwrap_or(0.0)
    )?;
    writeln!(
        out,
        "float accuracy: search {} holdout {}",
        pct(&s["float_accuracy"]["search"]),
        pct(&s["float_accuracy"]["holdout"])
    )?;
    let b = &s["baseline_8bit"];
    writeln!(out, "uniform 8-bit:  search {} holdout {}", pct(&b["accuracy_search"]), pct(&b["accuracy_holdout"]))?;
    let c = &s["chosen"];
    if c.is_null() {
        writeln!(out, "no evaluated point meets the loss budget of {}", pct(&s["max_loss"]))?;
        return Ok(());
    }
    writeln!(
        out,
        "chosen ({}): loss search {} holdout {} (95% interval {} to {}; holdout accuracy {})",
        c["source"].as_str().unwrap_or("?"),
        pct(&c["loss_search"]),
        pct(&c["loss_holdout"]),
        pct(&c["loss_holdout_ci95"][0]),
        pct(&c["loss_holdout_ci95"][1]),
        pct(&c["accuracy_holdout"])
    )?;
    if c.get("loss_confirm_bound").is_some() {
        writeln!(
            out,
            "  confirmation: loss {} bound {} (its rung at {:.1}%; overall {:.0}% confidence; {} rungs tested, {} accepted)",
            pct(&c["loss_confirm"]),
            pct(&c["loss_confirm_bound"]),
            100.0 * c["loss_confirm_bound_confidence"].as_f64().unwrap_or(0.0),
            100.0 * s["confidence"].as_f64().unwrap_or(0.0),
            s["confirmation"]["tested"],
            s["confirmation"]["accepted"]
        )?;
    }
    for name in s["objectives"].as_array().into_iter().flatten().filter_map(|n| n.as_str()) {
        let short = name.strip_suffix("_bits").unwrap_or(name);
        writeln!(
            out,
            "  {name:<12} {:>14.6e} vs 8-bit {:>14.6e}  reduction {}",
            c[name].as_f64().unwrap_or(f64::NAN),
            b[name].as_f64().unwrap_or(f64::NAN),
            pct(&c[format!("{short}_reduction_vs_8bit")])
        )?;
    }
    Ok(())
}
