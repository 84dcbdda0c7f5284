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
    /// Cost profiles: `qdse profile synth` measures one with Yosys.
    Profile {
        #[command(subcommand)]
        command: ProfileCommand,
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

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Synthesize the arithmetic with Yosys (multipliers over a grid of weight x activation
    /// widths, accumulators over a list of widths) and write a cost profile with a `table`
    /// multiplier model, its provenance in comments (docs/cost-models.md, "Synthesized profiles").
    Synth {
        /// What to synthesize to: generic gates (NAND2-equivalent area), a Liberty library, or
        /// UltraScale+ LUTs and DSP48E2 blocks.
        #[arg(long, value_enum)]
        target: SynthTarget,
        /// Liberty file (--target liberty): your process's cells.
        #[arg(long)]
        liberty: Option<PathBuf>,
        /// Weight widths, e.g. 2..16 or 2..8,10,12,16.
        #[arg(long, default_value = "2..16", value_parser = crate::cost::synth::parse_widths)]
        weights: crate::cost::synth::Widths,
        /// Activation widths.
        #[arg(long, default_value = "2..16", value_parser = crate::cost::synth::parse_widths)]
        activations: crate::cost::synth::Widths,
        /// Accumulator widths the per-bit accumulator cost is fitted over.
        #[arg(long, default_value = "8,12,16,20,24,28,32", value_parser = crate::cost::synth::parse_widths)]
        accumulators: crate::cost::synth::Widths,
        /// Unsigned activations (as after a ReLU) instead of signed; weights are always signed.
        #[arg(long)]
        unsigned_activations: bool,
        /// Profile (file or shipped name) whose storage, memory and datapath are kept; default:
        /// asic-45nm for gates and Liberty, fpga-dsp48e2 for UltraScale+.
        #[arg(long)]
        base: Option<String>,
        /// The profile's name; default: the output file's stem.
        #[arg(long)]
        name: Option<String>,
        /// um^2 per NAND2 equivalent (--target generic); default: NanGate 45 nm NAND2_X1.
        #[arg(long, default_value_t = crate::cost::synth::DEFAULT_UM2_PER_GE)]
        um2_per_ge: f64,
        /// Parallel Yosys runs; default: one per core.
        #[arg(long, value_parser = at_least_one)]
        jobs: Option<usize>,
        /// The profile file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Compare a formula profile's multipliers and accumulators with a synthesized profile's
    /// on the synthesized grid (Markdown tables: relative errors, where the formula is off most).
    Compare {
        /// The formula profile (file or shipped name).
        formula: String,
        /// The synthesized profile (file or shipped name), with a [multiplier.table].
        synthesized: String,
    },
}

/// `qdse profile synth --target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SynthTarget {
    Generic,
    Liberty,
    Xcup,
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
