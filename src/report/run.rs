//! Reading a run folder (docs/outputs.md) into memory: summary, evaluations, Pareto front, point files.

use crate::run_folder::{read_evaluations, read_front, EvaluationRow, FrontRow, LayerBits, RunSummary};
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A format in a point file; absent keys are `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub struct PointFormat {
    pub bits: Option<u32>,
    pub frac: Option<i32>,
    pub signed: Option<bool>,
    /// Weights with per-channel offsets (`frac` is then the widest channel's).
    #[serde(default)]
    pub per_channel: bool,
}

/// A `[[layer]]` of a point file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PointLayer {
    pub name: String,
    #[serde(default)]
    pub weights: Option<PointFormat>,
    #[serde(default)]
    pub bias: Option<PointFormat>,
    #[serde(default)]
    pub output: Option<PointFormat>,
    #[serde(default)]
    pub accumulator: Option<u32>,
}

/// A point file (`chosen.toml`, `baseline-8bit.toml`), read without the model: for display only.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct PointFile {
    #[serde(default)]
    pub rounding: Option<String>,
    #[serde(default)]
    pub overflow: Option<String>,
    #[serde(default)]
    pub range: Option<String>,
    #[serde(default)]
    pub input: Option<PointFormat>,
    #[serde(default)]
    pub layer: Vec<PointLayer>,
}

impl PointFile {
    /// Parse point-file text (`origin` names it in errors).
    pub fn parse(text: &str, origin: &str) -> Result<PointFile> {
        toml::from_str(text).with_context(|| format!("invalid point file {origin}"))
    }
}

/// Formats of one layer as a report shows them: from a point file, or bits only from `summary.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShownFormats {
    pub weights: Option<PointFormat>,
    pub bias: Option<PointFormat>,
    pub output: Option<PointFormat>,
}

/// A layer of the per-layer table and plot: the baseline's and the chosen point's formats.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerRow {
    pub name: String,
    pub baseline: Option<ShownFormats>,
    pub chosen: Option<ShownFormats>,
}

/// Everything a report is made of.
#[derive(Debug, Clone)]
pub struct Run {
    pub dir: PathBuf,
    pub summary: RunSummary,
    pub evaluations: Vec<EvaluationRow>,
    pub pareto: Vec<FrontRow>,
    /// `chosen.toml`, if present (ignored when `summary.json` has `"chosen": null`).
    pub chosen_point: Option<PointFile>,
    /// `baseline-8bit.toml`, if present.
    pub baseline_point: Option<PointFile>,
    /// Text of the `config.toml` copy, if the run folder has one.
    pub config_text: Option<String>,
    /// Text of the `profile.toml` copy, if the run folder has one.
    pub profile_text: Option<String>,
}

impl Run {
    /// Read the run folder `dir`.
    pub fn load(dir: &Path) -> Result<Run> {
        if !dir.is_dir() {
            bail!("run folder {} does not exist (expected the output folder of `qdse explore`)", dir.display());
        }
        let summary_path = dir.join("summary.json");
        if !summary_path.is_file() {
            bail!(
                "{} has no summary.json: not a finished run folder of `qdse explore` (summary.json is written last; rerun or resume the search)",
                dir.display()
            );
        }
        let summary = RunSummary::load(&summary_path)?;
        if summary.objectives.is_empty() {
            bail!("{}: \"objectives\" is empty", summary_path.display());
        }
        let evaluations = read_evaluations(&dir.join("evaluations.csv"), &summary.objectives)?;
        let pareto = read_front(&dir.join("pareto.csv"), &summary.objectives)?;
        let chosen_point = if summary.chosen.is_some() { read_point(&dir.join("chosen.toml"))? } else { None };
        let baseline_point = read_point(&dir.join("baseline-8bit.toml"))?;
        let config_text = read_optional(&dir.join("config.toml"))?;
        let profile_text = read_optional(&dir.join("profile.toml"))?;
        Ok(Run {
            dir: dir.to_path_buf(),
            summary,
            evaluations,
            pareto,
            chosen_point,
            baseline_point,
            config_text,
            profile_text,
        })
    }

    /// Index of objective `obj` in [`RunSummary::objectives`] (and in [`EvaluationRow::objectives`]).
    pub fn objective_index(&self, obj: &str) -> Option<usize> {
        self.summary.objectives.iter().position(|o| o == obj)
    }

    /// Per-layer formats of the baseline and of the chosen point, in layer order: from the point files
    /// where present (bits, frac, signedness), else from `summary.json` (bits only).
    pub fn layer_rows(&self) -> Vec<LayerRow> {
        let from_point = |p: &PointFile| -> Vec<(String, ShownFormats)> {
            p.layer
                .iter()
                .map(|l| (l.name.clone(), ShownFormats { weights: l.weights, bias: l.bias, output: l.output }))
                .collect()
        };
        let from_bits = |ls: &[LayerBits]| -> Vec<(String, ShownFormats)> {
            let f = |b: Option<u32>| {
                b.map(|bits| PointFormat { bits: Some(bits), frac: None, signed: None, per_channel: false })
            };
            ls.iter()
                .map(|l| {
                    (
                        l.name.clone(),
                        ShownFormats { weights: f(l.weights_bits), bias: f(l.bias_bits), output: f(l.output_bits) },
                    )
                })
                .collect()
        };
        let baseline = match &self.baseline_point {
            Some(p) if !p.layer.is_empty() => from_point(p),
            _ => from_bits(&self.summary.baseline_8bit.layers),
        };
        let chosen = match (&self.summary.chosen, &self.chosen_point) {
            (None, _) => Vec::new(),
            (Some(_), Some(p)) if !p.layer.is_empty() => from_point(p),
            (Some(c), _) => from_bits(&c.layers),
        };
        let mut rows: Vec<LayerRow> =
            baseline.into_iter().map(|(name, f)| LayerRow { name, baseline: Some(f), chosen: None }).collect();
        let index: HashMap<String, usize> = rows.iter().enumerate().map(|(i, r)| (r.name.clone(), i)).collect();
        for (name, f) in chosen {
            match index.get(&name) {
                Some(&i) => rows[i].chosen = Some(f),
                None => rows.push(LayerRow { name, baseline: None, chosen: Some(f) }),
            }
        }
        rows
    }
}

fn read_optional(path: &Path) -> Result<Option<String>> {
    if !path.is_file() {
        return Ok(None);
    }
    std::fs::read_to_string(path).map(Some).with_context(|| format!("cannot read {}", path.display()))
}

fn read_point(path: &Path) -> Result<Option<PointFile>> {
    read_optional(path)?.map(|t| PointFile::parse(&t, &path.display().to_string())).transpose()
}
