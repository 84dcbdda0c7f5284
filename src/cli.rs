//! Command-line interface. The doc comments are the `--help` text.

use crate::search::Strategy;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// qdse: how few bits can each layer of a CNN use on your hardware before accuracy suffers,
/// and what does that save? Post-training per-layer fixed-point quantization, scored bit-true.
#[derive(Debug, Parser)]
#[command(name = "qdse", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a model's layers: op, input/output shape, parameters, MACs.
    Inspect {
        /// ONNX model file.
        model: PathBuf,
    },
    /// Float and fixed-point accuracy on the search and holdout splits.
    Eval {
        /// Experiment config (TOML); default: configs/default.toml.
        config: Option<PathBuf>,
        /// Point file with per-layer formats; default: uniform 8-bit, no clipping.
        #[arg(long)]
        point: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Price an assignment with a hardware cost profile: per-layer breakdown and totals beside the
    /// uniform 8-bit assignment and the float32 model.
    Cost {
        /// Experiment config (TOML); default: configs/default.toml.
        config: Option<PathBuf>,
        /// Point file to price; default: uniform 8-bit.
        #[arg(long)]
        point: Option<PathBuf>,
        /// A profile file or shipped profile name; default: every shipped profile (and the
        /// config's own, if it is a file).
        #[arg(long)]
        profile: Option<String>,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Search per-layer formats and write the run folder: evaluations.csv, pareto.csv,
    /// chosen.toml, baseline-8bit.toml, summary.json, plots and reports.
    Explore {
        /// Experiment config (TOML); default: configs/default.toml.
        config: Option<PathBuf>,
        /// Output folder; default: reports/<name>/.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Search strategy (default: the config's).
        #[arg(long, value_enum)]
        strategy: Option<Strategy>,
        /// Most evaluations to run (default: the config's).
        #[arg(long, value_parser = at_least_one)]
        budget: Option<usize>,
        /// Loss budget on the search split, a fraction (default: the config's `max_loss`). A
        /// smaller one buys margin on the holdout split.
        #[arg(long)]
        max_loss: Option<f64>,
        /// Random seed (default: the config's).
        #[arg(long)]
        seed: Option<u64>,
        /// Continue from the folder's evaluations.csv: remembered evaluations are not re-run.
        #[arg(long)]
        resume: bool,
        /// Recompute every candidate from the input instead of reusing the layers it shares with
        /// the previous one (for measuring that speedup; results are identical).
        #[arg(long, hide = true)]
        no_prefix_reuse: bool,
        /// Score every candidate on the whole search split instead of stopping once it cannot
        /// meet its loss limit (for measuring that speedup; the search takes the same path).
        #[arg(long, hide = true)]
        no_early_stop: bool,
        /// After the search, score every evaluation on the search and the holdout images with
        /// every paired measure and write signals.csv (to measure which measure predicts the
        /// holdout loss; slow on large nets).
        #[arg(long, hide = true)]
        measure_signals: bool,
    },
    /// Hand an operating point to the RTL team: formats table, SystemVerilog package, C header,
    /// integer weights and biases ($readmemh), golden vectors of every layer.
    Export {
        /// Experiment config (TOML); default: configs/default.toml.
        config: Option<PathBuf>,
        /// Point file to export (e.g. a run's chosen.toml).
        #[arg(long)]
        point: PathBuf,
        /// Output folder (replaced only if it is empty or an earlier export).
        #[arg(long)]
        out: PathBuf,
        /// Golden-vector samples, taken from the start of the holdout split.
        #[arg(long, default_value_t = crate::export::DEFAULT_GOLDEN_SAMPLES, value_parser = at_least_one)]
        samples: usize,
    },
    /// Rebuild a run folder's plots and reports from its CSV/JSON, without searching again.
    Report {
        /// Run folders written by `qdse explore`.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Print one Markdown results table over the runs instead (reports/README.md).
        #[arg(long)]
        table: bool,
    },
    /// Throughput of the float and the integer engine over the config's whole data set.
    Bench {
        /// Experiment config (TOML); default: configs/default.toml.
        config: Option<PathBuf>,
        /// Timed repetitions (the best is reported).
        #[arg(long, default_value_t = 3, value_parser = at_least_one)]
        repeats: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write labelled images (IDX, .npy or CIFAR-10 files) as an image folder: one subfolder per
    /// class, named by its label, and one PNG per image (to try an image-folder `[data]`).
    ImageFolder {
        /// Images file.
        images: PathBuf,
        /// Labels file (the images file again for a CIFAR-10 binary).
        labels: PathBuf,
        /// Folder to create (it must not exist, or be empty).
        #[arg(long)]
        out: PathBuf,
        /// Write only the first N images.
        #[arg(long, value_parser = at_least_one)]
        limit: Option<usize>,
    },
    /// Write a point file of the uniform b-bit no-clip assignment (a starting point to edit).
    Uniform {
        /// Experiment config (TOML); default: configs/default.toml.
        config: Option<PathBuf>,
        /// Bits for every tensor.
        #[arg(long, default_value_t = 8)]
        bits: u32,
    },
}

/// A count flag that must be at least 1: a budget, a number of samples or of repetitions of 0
/// would run nothing and report as if it had.
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}
