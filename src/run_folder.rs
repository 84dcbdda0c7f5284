//! The run folder's schema (docs/outputs.md), written by `qdse explore` and read by `qdse report`,
//! the CLI and the tests: `summary.json` as [`RunSummary`], the rows of `evaluations.csv` and
//! `pareto.csv` as [`EvaluationRow`] and [`FrontRow`]. Fields that older run folders lack are
//! optional, so every run folder ever written still loads.

use crate::config::{LossKind, Signal};
use crate::fixed::Assignment;
use crate::model::Graph;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// A value on the search and the holdout split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Split<T> {
    pub search: T,
    pub holdout: T,
}

/// Images in each data role (docs/data-roles.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Samples {
    pub search: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm: Option<u64>,
    pub holdout: u64,
}

/// Bitwidths of one layer as `summary.json` lists them (`null`/absent for a layer without parameters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerBits {
    pub name: String,
    #[serde(default)]
    pub weights_bits: Option<u32>,
    #[serde(default)]
    pub bias_bits: Option<u32>,
    #[serde(default)]
    pub output_bits: Option<u32>,
}

impl LayerBits {
    /// The bitwidths of every layer of `a`.
    #[must_use]
    pub fn of(graph: &Graph, a: &Assignment) -> Vec<LayerBits> {
        a.layers
            .iter()
            .map(|l| LayerBits {
                name: graph.nodes[l.node].name.clone(),
                weights_bits: l.weights.map(|f| f.bits),
                bias_bits: l.bias.map(|f| f.bits),
                output_bits: Some(l.output.bits),
            })
            .collect()
    }
}

/// The key of an objective's reduction vs the 8-bit baseline: `memory_bits` ->
/// `memory_reduction_vs_8bit`, any other objective `<objective>_reduction_vs_8bit`.
#[must_use]
pub fn reduction_key(objective: &str) -> String {
    format!("{}_reduction_vs_8bit", objective.strip_suffix("_bits").unwrap_or(objective))
}

/// The fraction by which `value` undercuts `baseline` (0.53 = 53 % less); 0 for a free baseline.
#[must_use]
pub fn reduction(value: f64, baseline: f64) -> f64 {
    if baseline > 0.0 {
        1.0 - value / baseline
    } else {
        0.0
    }
}

/// The numbers keyed by objective in a summary entry: `"<objective>": value` and, for the chosen
/// point, `"<reduction_key>": fraction`. Reading keeps the numbers and skips any other value.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Costs(pub BTreeMap<String, f64>);

impl<'de> Deserialize<'de> for Costs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let all = BTreeMap::<String, Value>::deserialize(d)?;
        Ok(Costs(all.into_iter().filter_map(|(k, v)| Some((k, v.as_f64()?))).collect()))
    }
}

impl Costs {
    /// One value per objective, named by `names`.
    #[must_use]
    pub fn of(names: &[String], values: &[f64]) -> Costs {
        Costs(names.iter().cloned().zip(values.iter().copied()).collect())
    }

    #[must_use]
    pub fn get(&self, key: &str) -> Option<f64> {
        self.0.get(key).copied()
    }
}

/// `summary.json` `"baseline_8bit"`: accuracies, one value per objective, layers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Baseline {
    pub accuracy_search: f64,
    pub accuracy_holdout: f64,
    #[serde(default)]
    pub layers: Vec<LayerBits>,
    #[serde(flatten)]
    pub costs: Costs,
}

impl Baseline {
    /// The baseline's value of cost objective `obj`.
    #[must_use]
    pub fn cost(&self, obj: &str) -> Option<f64> {
        self.costs.get(obj)
    }
}

/// `summary.json` `"chosen"`: the lowest-cost point within the budget.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Chosen {
    #[serde(default)]
    pub source: String,
    pub loss_search: f64,
    pub accuracy_search: f64,
    pub accuracy_holdout: f64,
    pub loss_holdout: f64,
    /// 95% interval of the holdout loss (absent in runs from before it was measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_holdout_ci95: Option<[f64; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holdout_within_budget: Option<bool>,
    /// Loss on the confirmation images, its one-sided bound at its rung's level, and the flip
    /// rate there (docs/data-roles.md); absent when the point was chosen on the search loss alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_confirm: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_confirm_bound: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_confirm_bound_confidence: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flip_rate_confirm: Option<f64>,
    #[serde(default)]
    pub layers: Vec<LayerBits>,
    /// `"<objective>": value` and `"<reduction_key>": fraction`.
    #[serde(flatten)]
    pub costs: Costs,
}

impl Chosen {
    /// The chosen point's value of cost objective `obj`.
    #[must_use]
    pub fn cost(&self, obj: &str) -> Option<f64> {
        self.costs.get(obj)
    }

    /// Record the objective values and each one's reduction vs the baseline's.
    pub fn set_costs(&mut self, names: &[String], values: &[f64], baseline: &[f64]) {
        self.costs = Costs::of(names, values);
        for (name, (v, b)) in names.iter().zip(values.iter().zip(baseline)) {
            self.costs.0.insert(reduction_key(name), reduction(*v, *b));
        }
    }

    /// Reduction of `obj` vs the 8-bit baseline, as a fraction (0.53 = 53 % less): the
    /// [`reduction_key`] entry, else computed from the two values.
    #[must_use]
    pub fn reduction(&self, obj: &str, baseline: &Baseline) -> Option<f64> {
        self.costs.get(&reduction_key(obj)).or_else(|| {
            let (c, b) = (self.cost(obj)?, baseline.cost(obj)?);
            (b != 0.0).then(|| 1.0 - c / b)
        })
    }
}

/// One point of the uniform b-bit sweep.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepPoint {
    pub bits: u32,
    pub accuracy_search: f64,
    #[serde(default)]
    pub loss_search: Option<f64>,
    #[serde(flatten)]
    pub costs: Costs,
}

impl SweepPoint {
    /// The sweep point's value of cost objective `obj`.
    #[must_use]
    pub fn cost(&self, obj: &str) -> Option<f64> {
        self.costs.get(obj)
    }
}

/// One rung of the confirmation ladder: a candidate, its level and its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rung {
    pub id: usize,
    pub loss_search: f64,
    pub loss_confirm: f64,
    pub loss_confirm_bound: f64,
    pub confidence: f64,
    pub accepted: bool,
}

/// What the confirmation tested (search/confirm.rs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Confirmation {
    pub tested: usize,
    pub accepted: usize,
    pub rungs: Vec<Rung>,
}

/// `summary.json`, as docs/outputs.md specifies it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSummary {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub strategy: String,
    #[serde(default)]
    pub seed: Option<u64>,
    /// Rows of evaluations.csv.
    #[serde(default)]
    pub evaluations: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluations_run: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluations_stopped_early: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluations_resumed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_layers_run: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_reuse: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stop: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<u64>,
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
    /// The loss the strategies aimed at (docs/data-roles.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_target: Option<f64>,
    pub loss: LossKind,
    #[serde(default)]
    pub samples: Option<Samples>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<Signal>,
    /// Confidence of the choice's bound (0 or absent: chosen on the search loss alone).
    #[serde(default)]
    pub confidence: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<Confirmation>,
    pub float_accuracy: Split<f64>,
    pub baseline_8bit: Baseline,
    /// `None` (`null`) when no evaluated point meets the budget.
    #[serde(default)]
    pub chosen: Option<Chosen>,
    #[serde(default)]
    pub uniform_sweep: Vec<SweepPoint>,
    #[serde(default)]
    pub notes: Vec<String>,
    #[serde(default)]
    pub version: String,
}

impl RunSummary {
    /// Read `summary.json`.
    pub fn load(path: &Path) -> Result<RunSummary> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("invalid {}", path.display()))
    }

    /// The lowest accuracy on the search split that meets the budget.
    #[must_use]
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

/// One row of `evaluations.csv`: a scored assignment.
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluationRow {
    pub id: usize,
    /// What proposed it (`uniform-8`, `paper`, `descent`, ...).
    pub source: String,
    pub acc_search: f64,
    pub loss_search: f64,
    /// One value per objective, in the order of [`RunSummary::objectives`].
    pub objectives: Vec<f64>,
    /// The assignment, compact (search/score.rs, `key`).
    pub key: String,
}

/// One row of `pareto.csv`: an evaluation with its holdout measures and confirmation outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct FrontRow {
    pub eval: EvaluationRow,
    pub acc_holdout: Option<f64>,
    pub loss_holdout: Option<f64>,
    /// For the candidates the confirmation tested.
    pub loss_confirm: Option<f64>,
    pub loss_confirm_bound: Option<f64>,
    pub chosen: bool,
}

const LEAD: [&str; 4] = ["id", "source", "acc_search", "loss_search"];
const FRONT_EXTRA: [&str; 5] = ["acc_holdout", "loss_holdout", "loss_confirm", "loss_confirm_bound", "chosen"];

/// The header line of `evaluations.csv` (no newline).
#[must_use]
pub fn evaluations_header(objectives: &[String]) -> String {
    header(objectives, &[])
}

/// The header line of `pareto.csv` (no newline).
#[must_use]
pub fn front_header(objectives: &[String]) -> String {
    header(objectives, &FRONT_EXTRA)
}

fn header(objectives: &[String], extra: &[&str]) -> String {
    let mut h: Vec<&str> = LEAD.to_vec();
    h.extend(objectives.iter().map(String::as_str));
    h.extend(extra);
    h.push("key");
    h.join(",")
}

fn csv_line(e: &EvaluationRow, extra: &[String]) -> String {
    // Full precision: a resumed run must compare remembered accuracies exactly.
    let mut fields = vec![e.id.to_string(), e.source.clone(), e.acc_search.to_string(), e.loss_search.to_string()];
    fields.extend(e.objectives.iter().map(|v| format!("{v}")));
    fields.extend(extra.iter().cloned());
    fields.push(e.key.clone());
    let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
    w.write_record(&fields).expect("in-memory csv");
    String::from_utf8(w.into_inner().expect("in-memory csv")).expect("utf-8")
}

impl EvaluationRow {
    /// The row as a CSV line of `evaluations.csv`, newline included.
    #[must_use]
    pub fn to_csv(&self) -> String {
        csv_line(self, &[])
    }
}

impl FrontRow {
    /// The row as a CSV line of `pareto.csv`, newline included.
    #[must_use]
    pub fn to_csv(&self) -> String {
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
        let extra = [
            opt(self.acc_holdout),
            opt(self.loss_holdout),
            opt(self.loss_confirm),
            opt(self.loss_confirm_bound),
            self.chosen.to_string(),
        ];
        csv_line(&self.eval, &extra)
    }
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

type Records = (csv::StringRecord, Vec<(u64, csv::StringRecord)>);

/// The records of a CSV text; a short last record (a line cut off by an interrupted run) is dropped.
fn read_records(text: &str, origin: &str) -> Result<Records> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
    let headers = reader.headers().with_context(|| format!("cannot read the header of {origin}"))?.clone();
    let mut records = Vec::new();
    for rec in reader.records() {
        let rec = rec.with_context(|| format!("invalid CSV in {origin}"))?;
        let line = rec.position().map_or(0, csv::Position::line);
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

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {} (expected in a run folder of `qdse explore`)", path.display()))
}

fn parse_evaluation(
    cols: &Columns,
    rec: &csv::StringRecord,
    line: u64,
    row: usize,
    objectives: &[(String, usize)],
) -> Result<EvaluationRow> {
    let origin = &cols.origin;
    let (acc, loss) = (cols.require("acc_search")?, cols.require("loss_search")?);
    let id = match cols.optional("id") {
        Some(c) => {
            let s = field(rec, c);
            s.parse().with_context(|| format!("{origin} line {line}: id is not an integer: '{s}'"))?
        }
        None => row,
    };
    Ok(EvaluationRow {
        id,
        source: cols.optional("source").map(|c| field(rec, c).to_string()).unwrap_or_default(),
        acc_search: parse_f64(rec, acc, "acc_search", line, origin)?,
        loss_search: parse_f64(rec, loss, "loss_search", line, origin)?,
        objectives: objectives.iter().map(|(name, c)| parse_f64(rec, *c, name, line, origin)).collect::<Result<_>>()?,
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

fn parse_evaluations(text: &str, origin: &str, objectives: &[String]) -> Result<Vec<EvaluationRow>> {
    let (headers, records) = read_records(text, origin)?;
    let cols = Columns::new(&headers, origin);
    let objs = objective_columns(&cols, objectives)?;
    records.iter().enumerate().map(|(i, (line, rec))| parse_evaluation(&cols, rec, *line, i, &objs)).collect()
}

/// Read `evaluations.csv`; objective columns are those named in `objectives`.
pub fn read_evaluations(path: &Path, objectives: &[String]) -> Result<Vec<EvaluationRow>> {
    parse_evaluations(&read_text(path)?, &path.display().to_string(), objectives)
}

/// Read the `evaluations.csv` of a run to resume: only its finished lines (a run killed
/// mid-write leaves a last line without its newline, and a cut key could even name another
/// assignment), and no objective (a resumed run prices its points again).
pub fn read_evaluation_log(path: &Path) -> Result<Vec<EvaluationRow>> {
    let mut text = read_text(path)?;
    if !text.ends_with('\n') {
        text.truncate(text.rfind('\n').map_or(0, |i| i + 1));
    }
    let origin = path.display().to_string();
    let rows = parse_evaluations(&text, &origin, &[])?;
    if rows.iter().any(|r| r.key.is_empty()) {
        bail!("{origin} has no key column");
    }
    Ok(rows)
}

/// Read `pareto.csv`: the columns of `evaluations.csv` plus those of [`FrontRow`].
pub fn read_front(path: &Path, objectives: &[String]) -> Result<Vec<FrontRow>> {
    let origin = path.display().to_string();
    let (headers, records) = read_records(&read_text(path)?, &origin)?;
    let cols = Columns::new(&headers, &origin);
    let objs = objective_columns(&cols, objectives)?;
    let col = |name: &str| cols.optional(name);
    let (acc_h, loss_h, loss_c, bound_c, chosen) =
        (col("acc_holdout"), col("loss_holdout"), col("loss_confirm"), col("loss_confirm_bound"), col("chosen"));
    records
        .iter()
        .enumerate()
        .map(|(i, (line, rec))| {
            Ok(FrontRow {
                eval: parse_evaluation(&cols, rec, *line, i, &objs)?,
                acc_holdout: parse_opt_f64(rec, acc_h),
                loss_holdout: parse_opt_f64(rec, loss_h),
                loss_confirm: parse_opt_f64(rec, loss_c),
                loss_confirm_bound: parse_opt_f64(rec, bound_c),
                chosen: chosen
                    .is_some_and(|c| matches!(field(rec, c).to_ascii_lowercase().as_str(), "true" | "1" | "yes")),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduction_keys_follow_one_rule() {
        assert_eq!(reduction_key("memory_bits"), "memory_reduction_vs_8bit");
        assert_eq!(reduction_key("mult_cost"), "mult_cost_reduction_vs_8bit");
        assert_eq!(reduction_key("energy_pj"), "energy_pj_reduction_vs_8bit");
    }

    #[test]
    fn rows_round_trip_through_their_csv() {
        let objectives = vec!["memory_bits".to_string(), "mult_cost".to_string()];
        let eval = EvaluationRow {
            id: 3,
            source: "paper".into(),
            acc_search: 0.9,
            loss_search: 0.001,
            objectives: vec![1e6, 2.5],
            key: "in=u8.8;L0=w6.7,b8.5,o6.3".into(),
        };
        let row = FrontRow {
            eval: eval.clone(),
            acc_holdout: Some(0.89),
            loss_holdout: Some(0.002),
            loss_confirm: None,
            loss_confirm_bound: Some(0.01),
            chosen: true,
        };
        let text = format!("{}\n{}", front_header(&objectives), row.to_csv());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pareto.csv"), text).unwrap();
        assert_eq!(read_front(&dir.path().join("pareto.csv"), &objectives).unwrap(), vec![row]);
        let log = format!("{}\n{}{}", evaluations_header(&objectives), eval.to_csv(), "4,paper,0.5");
        std::fs::write(dir.path().join("evaluations.csv"), log).unwrap();
        let back = read_evaluation_log(&dir.path().join("evaluations.csv")).unwrap();
        assert_eq!(back.len(), 1, "the unfinished last line is dropped");
        assert_eq!((back[0].acc_search, &back[0].key), (eval.acc_search, &eval.key));
    }
}
