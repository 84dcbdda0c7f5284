//! Reading a run folder (docs/outputs.md) into memory: summary, evaluations, Pareto front, point files.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// How the loss vs float is measured (`summary.json` `"loss"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LossKind {
    /// `(float - acc) / float`
    Relative,
    /// `float - acc` (accuracy points, as a fraction)
    Absolute,
}

/// A value on the search and the holdout split.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Split<T> {
    pub search: T,
    pub holdout: T,
}

/// Bitwidths of one layer as `summary.json` lists them (`null`/absent for a layer without parameters).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LayerBits {
    pub name: String,
    #[serde(default)]
    pub weights_bits: Option<u32>,
    #[serde(default)]
    pub bias_bits: Option<u32>,
    #[serde(default)]
    pub output_bits: Option<u32>,
}

/// `summary.json` `"baseline_8bit"`: accuracies, one value per objective, layers.
#[derive(Debug, Clone, Deserialize)]
pub struct Baseline {
    pub accuracy_search: f64,
    pub accuracy_holdout: f64,
    #[serde(default)]
    pub layers: Vec<LayerBits>,
    /// Everything else: `"<objective>": value`.
    #[serde(flatten)]
    pub values: BTreeMap<String, Value>,
}

/// `summary.json` `"chosen"`: the lowest-cost point within the budget.
#[derive(Debug, Clone, Deserialize)]
pub struct Chosen {
    pub loss_search: f64,
    pub loss_holdout: f64,
    /// 95% interval of the holdout loss (absent in runs from before it was measured).
    #[serde(default)]
    pub loss_holdout_ci95: Option<[f64; 2]>,
    pub accuracy_search: f64,
    pub accuracy_holdout: f64,
    /// Loss on the confirmation images and its one-sided bound (docs/data-roles.md); absent when
    /// the point was chosen on the search loss alone.
    #[serde(default)]
    pub loss_confirm: Option<f64>,
    #[serde(default)]
    pub loss_confirm_bound: Option<f64>,
    #[serde(default)]
    pub layers: Vec<LayerBits>,
    /// Everything else: `"<objective>": value`, `"<objective>_reduction_vs_8bit": fraction`.
    #[serde(flatten)]
    pub values: BTreeMap<String, Value>,
}

/// One point of the uniform b-bit sweep.
#[derive(Debug, Clone, Deserialize)]
pub struct SweepPoint {
    pub bits: u32,
    pub accuracy_search: f64,
    #[serde(default)]
    pub loss_search: Option<f64>,
    #[serde(flatten)]
    pub values: BTreeMap<String, Value>,
}

/// `summary.json`, as docs/outputs.md specifies it.
#[derive(Debug, Clone, Deserialize)]
pub struct Summary {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub strategy: String,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub evaluations: Option<u64>,
    #[serde(default)]
    pub wall_seconds: Option<f64>,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub profile: String,
    #[serde(default)]
    pub primary: Option<String>,
    /// The cost objectives (lower is better), in the profile's order; each is a column of the CSVs.
    pub objectives: Vec<String>,
    pub max_loss: f64,
    pub loss: LossKind,
    #[serde(default)]
    pub samples: Option<Split<u64>>,
    pub float_accuracy: Split<f64>,
    /// Confidence of the choice's bound (0 or absent: chosen on the search loss alone).
    #[serde(default)]
    pub confidence: Option<f64>,
    pub baseline_8bit: Baseline,
    /// `None` when no evaluated point meets the budget.
    #[serde(default)]
    pub chosen: Option<Chosen>,
    #[serde(default)]
    pub uniform_sweep: Vec<SweepPoint>,
    #[serde(default)]
    pub version: String,
}

fn number(values: &BTreeMap<String, Value>, key: &str) -> Option<f64> {
    values.get(key).and_then(Value::as_f64)
}

/// Short stem of an objective used by some reduction keys: `memory_bits` -> `memory`, `energy_pj` -> `energy`.
fn objective_stem(obj: &str) -> &str {
    for suffix in ["_bits", "_pj", "_um2", "_cost"] {
        if let Some(s) = obj.strip_suffix(suffix) {
            if !s.is_empty() {
                return s;
            }
        }
    }
    obj
}

impl Baseline {
    /// The baseline's value of cost objective `obj`.
    pub fn cost(&self, obj: &str) -> Option<f64> {
        number(&self.values, obj)
    }
}

impl SweepPoint {
    /// The sweep point's value of cost objective `obj`.
    pub fn cost(&self, obj: &str) -> Option<f64> {
        number(&self.values, obj)
    }
}

impl Chosen {
    /// The chosen point's value of cost objective `obj`.
    pub fn cost(&self, obj: &str) -> Option<f64> {
        number(&self.values, obj)
    }

    /// Reduction of `obj` vs the 8-bit baseline, as a fraction (0.53 = 53 % less): the
    /// `<obj>_reduction_vs_8bit` key (or its short form, `memory_reduction_vs_8bit` for `memory_bits`),
    /// else computed from the two values.
    pub fn reduction(&self, obj: &str, baseline: &Baseline) -> Option<f64> {
        number(&self.values, &format!("{obj}_reduction_vs_8bit"))
            .or_else(|| number(&self.values, &format!("{}_reduction_vs_8bit", objective_stem(obj))))
            .or_else(|| {
                let (c, b) = (self.cost(obj)?, baseline.cost(obj)?);
                (b != 0.0).then(|| 1.0 - c / b)
            })
    }
}

impl Summary {
    /// The lowest accuracy on the search split that meets the budget.
    pub fn budget_accuracy(&self) -> f64 {
        match self.loss {
            LossKind::Relative => self.float_accuracy.search * (1.0 - self.max_loss),
            LossKind::Absolute => self.float_accuracy.search - self.max_loss,
        }
    }

    /// The primary objective: `"primary"` if it is one of the objectives, else the first objective.
    pub fn primary_objective(&self) -> Option<&str> {
        self.primary
            .as_deref()
            .filter(|p| self.objectives.iter().any(|o| o == p))
            .or(self.objectives.first().map(String::as_str))
    }
}

/// One row of `evaluations.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub id: u64,
    pub source: String,
    pub acc_search: f64,
    pub loss_search: f64,
    /// One value per objective, in the order of [`Summary::objectives`].
    pub costs: Vec<f64>,
    pub key: String,
}

/// One row of `pareto.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct ParetoRow {
    pub eval: Evaluation,
    pub acc_holdout: Option<f64>,
    pub loss_holdout: Option<f64>,
    pub chosen: bool,
}

/// A format in a point file; absent keys are `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub struct PointFormat {
    pub bits: Option<u32>,
    pub frac: Option<i32>,
    pub signed: Option<bool>,
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

/// Formats of one layer for display: from a point file, or bits only from `summary.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LayerFormats {
    pub weights: Option<PointFormat>,
    pub bias: Option<PointFormat>,
    pub output: Option<PointFormat>,
}

/// A layer of the per-layer table and plot: the baseline's and the chosen point's formats.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerRow {
    pub name: String,
    pub baseline: Option<LayerFormats>,
    pub chosen: Option<LayerFormats>,
}

/// Everything a report is made of.
#[derive(Debug, Clone)]
pub struct Run {
    pub dir: PathBuf,
    pub summary: Summary,
    pub evaluations: Vec<Evaluation>,
    pub pareto: Vec<ParetoRow>,
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
        let text = std::fs::read_to_string(&summary_path)
            .with_context(|| format!("cannot read {}", summary_path.display()))?;
        let summary: Summary =
            serde_json::from_str(&text).with_context(|| format!("invalid {}", summary_path.display()))?;
        if summary.objectives.is_empty() {
            bail!("{}: \"objectives\" is empty", summary_path.display());
        }
        let evaluations = read_evaluations(&dir.join("evaluations.csv"), &summary.objectives)?;
        let pareto = read_pareto(&dir.join("pareto.csv"), &summary.objectives)?;
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

    /// Index of objective `obj` in [`Summary::objectives`] (and in [`Evaluation::costs`]).
    pub fn objective_index(&self, obj: &str) -> Option<usize> {
        self.summary.objectives.iter().position(|o| o == obj)
    }

    /// Per-layer formats of the baseline and of the chosen point, in layer order: from the point files
    /// where present (bits, frac, signedness), else from `summary.json` (bits only).
    pub fn layer_rows(&self) -> Vec<LayerRow> {
        let from_point = |p: &PointFile| -> Vec<(String, LayerFormats)> {
            p.layer
                .iter()
                .map(|l| (l.name.clone(), LayerFormats { weights: l.weights, bias: l.bias, output: l.output }))
                .collect()
        };
        let from_bits = |ls: &[LayerBits]| -> Vec<(String, LayerFormats)> {
            let f = |b: Option<u32>| b.map(|bits| PointFormat { bits: Some(bits), frac: None, signed: None });
            ls.iter()
                .map(|l| {
                    (
                        l.name.clone(),
                        LayerFormats { weights: f(l.weights_bits), bias: f(l.bias_bits), output: f(l.output_bits) },
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

/// Column positions of a CSV by header name.
struct Columns {
    index: HashMap<String, usize>,
    origin: String,
}

impl Columns {
    fn new(headers: &csv::StringRecord, origin: &str) -> Columns {
        Columns {
            index: headers.iter().enumerate().map(|(i, h)| (h.trim().to_string(), i)).collect(),
            origin: origin.to_string(),
        }
    }
    fn require(&self, name: &str) -> Result<usize> {
        self.index.get(name).copied().with_context(|| {
            let mut have: Vec<&str> = self.index.keys().map(String::as_str).collect();
            have.sort_unstable();
            format!("{} has no column '{name}' (columns: {})", self.origin, have.join(", "))
        })
    }
    fn optional(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }
}

fn field(rec: &csv::StringRecord, col: usize) -> &str {
    rec.get(col).unwrap_or("").trim()
}

fn parse_f64(rec: &csv::StringRecord, col: usize, name: &str, line: u64, origin: &str) -> Result<f64> {
    let s = field(rec, col);
    s.parse::<f64>().with_context(|| format!("{origin} line {line}: column '{name}' is not a number: '{s}'"))
}

fn parse_opt_f64(rec: &csv::StringRecord, col: Option<usize>) -> Option<f64> {
    col.map(|c| field(rec, c)).filter(|s| !s.is_empty()).and_then(|s| s.parse().ok())
}

/// Read the records of a CSV file; a short last record (a line cut off by an interrupted run) is dropped.
fn read_records(path: &Path) -> Result<(csv::StringRecord, Vec<(u64, csv::StringRecord)>)> {
    let origin = path.display().to_string();
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .with_context(|| format!("cannot read {origin} (expected in a run folder of `qdse explore`)"))?;
    let headers = reader.headers().with_context(|| format!("cannot read the header of {origin}"))?.clone();
    let mut records = Vec::new();
    for rec in reader.records() {
        let rec = rec.with_context(|| format!("invalid CSV in {origin}"))?;
        let line = rec.position().map_or(0, |p| p.line());
        records.push((line, rec));
    }
    let n = records.len();
    for (i, (line, rec)) in records.iter().enumerate() {
        if rec.len() != headers.len() && i + 1 < n {
            bail!("{origin} line {line}: {} fields, the header has {}", rec.len(), headers.len());
        }
    }
    if records.last().is_some_and(|(_, r)| r.len() != headers.len()) {
        records.pop();
    }
    Ok((headers, records))
}

fn parse_evaluation(
    cols: &Columns,
    rec: &csv::StringRecord,
    line: u64,
    row: usize,
    objectives: &[(String, usize)],
) -> Result<Evaluation> {
    let origin = &cols.origin;
    let (acc, loss) = (cols.require("acc_search")?, cols.require("loss_search")?);
    let id = match cols.optional("id") {
        Some(c) => {
            let s = field(rec, c);
            s.parse().with_context(|| format!("{origin} line {line}: id is not an integer: '{s}'"))?
        }
        None => row as u64,
    };
    Ok(Evaluation {
        id,
        source: cols.optional("source").map(|c| field(rec, c).to_string()).unwrap_or_default(),
        acc_search: parse_f64(rec, acc, "acc_search", line, origin)?,
        loss_search: parse_f64(rec, loss, "loss_search", line, origin)?,
        costs: objectives.iter().map(|(name, c)| parse_f64(rec, *c, name, line, origin)).collect::<Result<_>>()?,
        key: cols.optional("key").map(|c| field(rec, c).to_string()).unwrap_or_default(),
    })
}

fn objective_columns(cols: &Columns, objectives: &[String]) -> Result<Vec<(String, usize)>> {
    objectives
        .iter()
        .map(|o| {
            cols.require(o)
                .map(|c| (o.clone(), c))
                .with_context(|| format!("objective '{o}' of summary.json is not a column of {}", cols.origin))
        })
        .collect()
}

/// Read `evaluations.csv`; objective columns are those named in `objectives`.
pub fn read_evaluations(path: &Path, objectives: &[String]) -> Result<Vec<Evaluation>> {
    let (headers, records) = read_records(path)?;
    let cols = Columns::new(&headers, &path.display().to_string());
    let objs = objective_columns(&cols, objectives)?;
    records.iter().enumerate().map(|(i, (line, rec))| parse_evaluation(&cols, rec, *line, i, &objs)).collect()
}

/// Read `pareto.csv`: the columns of `evaluations.csv` plus `acc_holdout`, `loss_holdout`, `chosen`.
pub fn read_pareto(path: &Path, objectives: &[String]) -> Result<Vec<ParetoRow>> {
    let (headers, records) = read_records(path)?;
    let cols = Columns::new(&headers, &path.display().to_string());
    let objs = objective_columns(&cols, objectives)?;
    let (acc_h, loss_h, chosen) =
        (cols.optional("acc_holdout"), cols.optional("loss_holdout"), cols.optional("chosen"));
    records
        .iter()
        .enumerate()
        .map(|(i, (line, rec))| {
            Ok(ParetoRow {
                eval: parse_evaluation(&cols, rec, *line, i, &objs)?,
                acc_holdout: parse_opt_f64(rec, acc_h),
                loss_holdout: parse_opt_f64(rec, loss_h),
                chosen: chosen
                    .is_some_and(|c| matches!(field(rec, c).to_ascii_lowercase().as_str(), "true" | "1" | "yes")),
            })
        })
        .collect()
}
