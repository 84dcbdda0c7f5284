use anyhow::Result;
use clap::Parser;
use qdse::cli::{Cli, Command};
use qdse::config::Settings;
use qdse::experiment::Experiment;
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
            let graph = qdse::model::onnx::load(&model)?;
            write!(out, "{}", qdse::model::summary::inspect_table(&graph))?;
        }
        Command::Eval { config, point, json } => {
            let exp = Experiment::from_config(&Settings::resolve_default(config.as_deref()))?;
            let a = match &point {
                Some(p) => exp.load_point(p)?,
                None => exp.baseline(),
            };
            let float = exp.float_accuracy();
            let fixed = exp.fixed_accuracy(&a)?;
            let samples = serde_json::json!({"search": exp.split.search.len(), "holdout": exp.split.holdout.len()});
            if json {
                let v = serde_json::json!({
                    "name": exp.settings.name,
                    "point": point.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "uniform-8bit".into()),
                    "samples": samples,
                    "float": float,
                    "fixed": fixed,
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
