//! Command-line interface. The doc comments are the `--help` text.

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
    /// Write a point file of the uniform b-bit no-clip assignment (a starting point to edit).
    Uniform {
        /// Experiment config (TOML); default: configs/default.toml.
        config: Option<PathBuf>,
        /// Bits for every tensor.
        #[arg(long, default_value_t = 8)]
        bits: u32,
    },
}
