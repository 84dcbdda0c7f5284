//! Experiment configuration: raw TOML (every key checked, unknown keys rejected with file and
//! line) resolved once into [`Settings`] with paths made absolute and defaults applied.

use crate::fixed::{Arith, Overflow, RangeMode, Rounding};
use crate::search::Strategy;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The config `qdse` runs when none is given.
pub const DEFAULT_CONFIG: &str = "configs/default.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    name: String,
    #[serde(default)]
    seed: Option<u64>,
    model: RawModel,
    data: RawData,
    #[serde(default)]
    cost: Option<RawCost>,
    #[serde(default)]
    search: Option<RawSearch>,
    #[serde(default)]
    quant: Option<RawQuant>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    path: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawData {
    images: PathBuf,
    /// Left out for an image folder (its labels are its class folders).
    labels: Option<PathBuf>,
    layout: Option<crate::data::Layout>,
    /// Image folders: the shorter side images are resized to before the centre crop.
    resize: Option<u32>,
    scale: Option<f64>,
    mean: Option<OneOrMany>,
    std: Option<OneOrMany>,
    /// The legacy split: the first `search_samples` images are the validation split, the rest
    /// the holdout. Exactly one of this and `validation` is given.
    search_samples: Option<usize>,
    validation: Option<RawRole>,
    holdout: Option<RawRole>,
    /// Validation images (the last ones) kept out of the search for the confidence bound.
    confirm_samples: Option<usize>,
    /// Use only the first `limit` samples of the files (quick runs).
    limit: Option<usize>,
}

/// A data role: an index range `[start, end)` into the `[data]` files, or files of its own.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawRole {
    Range([usize; 2]),
    Files(RawFiles),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFiles {
    images: PathBuf,
    labels: Option<PathBuf>,
    layout: Option<crate::data::Layout>,
    /// `[start, end)` within these files; default: all of them.
    range: Option<[usize; 2]>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(f64),
    Many(Vec<f64>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<f64> {
        match self {
            OneOrMany::One(x) => vec![x],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCost {
    profile: Option<String>,
    /// The profile's primary objective replaced (e.g. "memory_bits").
    primary: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSearch {
    strategy: Option<Strategy>,
    max_loss: Option<f64>,
    loss: Option<LossKind>,
    budget: Option<usize>,
    /// Confidence of the chosen point's loss bound on the confirmation images; 0: choose on the
    /// search loss alone.
    confidence: Option<f64>,
    signal: Option<Signal>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuant {
    rounding: Option<Rounding>,
    overflow: Option<Overflow>,
    range: Option<RangeMode>,
    /// Allow unsigned formats for tensors that are never negative.
    unsigned: Option<bool>,
    weight_offsets: Option<WeightOffsets>,
}

/// Whether weights carry one fractional offset per tensor or per output channel
/// (docs/fixed-point.md, "Per-channel weight offsets").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum WeightOffsets {
    /// One offset per weight tensor.
    #[default]
    PerTensor,
    /// One offset per output channel in every layer.
    PerChannel,
    /// Per-channel at the start; the strategies may switch single layers to per-tensor (and
    /// back) where that pays on the cost objectives.
    Choose,
}

impl WeightOffsets {
    /// Whether starting points (and the uniform sweep) have per-channel offsets.
    pub fn per_channel(self) -> bool {
        self != WeightOffsets::PerTensor
    }
}

/// How accuracy loss is measured against the float model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LossKind {
    /// (acc_float - acc_q) / acc_float, the seed paper's definition.
    #[default]
    Relative,
    /// acc_float - acc_q.
    Absolute,
}

impl LossKind {
    /// What turns an absolute loss (accuracy points lost) into this kind: 1, or 1 / the float
    /// accuracy (0 when that is 0: nothing to lose).
    pub fn scale(&self, float_acc: f64) -> f64 {
        match self {
            LossKind::Relative if float_acc > 0.0 => 1.0 / float_acc,
            LossKind::Relative => 0.0,
            LossKind::Absolute => 1.0,
        }
    }

    pub fn loss(&self, float_acc: f64, q_acc: f64) -> f64 {
        match self {
            LossKind::Relative if float_acc > 0.0 => (float_acc - q_acc) / float_acc,
            LossKind::Relative => 0.0,
            LossKind::Absolute => float_acc - q_acc,
        }
    }
}

/// The loss a search decides by on its images (docs/data-roles.md, "The search signal"). Both
/// are accuracy losses against the float network, so the budget keeps its meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Signal {
    /// Softmax probability of the true class lost: every image counts a little, so neighbouring
    /// candidates are told apart by information rather than by which few images flip.
    #[default]
    Soft,
    /// Top-1 accuracy lost: every image counts 0 or 1.
    Top1,
}

#[derive(Debug, Clone)]
pub struct DataSettings {
    pub images: PathBuf,
    /// The labels file; for an image folder, the folder itself (its class folders are the labels).
    pub labels: PathBuf,
    pub layout: Option<crate::data::Layout>,
    /// Image folders: the shorter side to resize to before the centre crop (None: just enough
    /// to cover the model's input).
    pub resize: Option<u32>,
    pub scale: f64,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    pub validation: Role,
    pub holdout: Role,
    /// Validation images kept for confirmation; None: half of them (docs/data-roles.md).
    pub confirm_samples: Option<usize>,
    pub limit: Option<usize>,
}

/// Image files of a data role other than the `[data]` ones.
#[derive(Debug, Clone, PartialEq)]
pub struct DataFiles {
    pub images: PathBuf,
    pub labels: PathBuf,
    pub layout: Option<crate::data::Layout>,
}

/// Where one data role's images come from.
#[derive(Debug, Clone, PartialEq)]
pub struct Role {
    /// None: the `[data]` files.
    pub files: Option<DataFiles>,
    pub start: usize,
    /// None: to the end of the files.
    pub end: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct SearchSettings {
    pub strategy: Strategy,
    pub max_loss: f64,
    pub loss: LossKind,
    pub budget: usize,
    pub confidence: f64,
    pub signal: Signal,
}

/// A resolved experiment: every path absolute, every default applied.
#[derive(Debug, Clone)]
pub struct Settings {
    pub source: PathBuf,
    pub name: String,
    pub seed: u64,
    pub model: PathBuf,
    pub data: DataSettings,
    /// A shipped profile name (e.g. "paper") or a path to a profile TOML.
    pub cost_profile: String,
    /// `[cost] primary`: the objective the search minimises and the chosen point is the
    /// cheapest on, in place of the profile's own primary (checked against the profile's
    /// objectives when it is resolved).
    pub cost_primary: Option<crate::cost::Objective>,
    pub search: SearchSettings,
    pub arith: Arith,
    pub unsigned: bool,
    pub weight_offsets: WeightOffsets,
}

impl Settings {
    /// Load a config file. Relative paths inside it are relative to the file's folder.
    pub fn load(path: &Path) -> Result<Settings> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config {}", path.display()))?;
        Self::parse(&text, path)
    }

    /// The config to use: the one given, else `configs/default.toml` from the working
    /// directory, else the one shipped beside the sources.
    pub fn resolve_default(given: Option<&Path>) -> PathBuf {
        if let Some(p) = given {
            return p.to_path_buf();
        }
        let local = PathBuf::from(DEFAULT_CONFIG);
        if local.exists() {
            return local;
        }
        Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_CONFIG)
    }

    /// Load the config given, else the default one ([`Settings::resolve_default`]).
    pub fn load_or_default(given: Option<&Path>) -> Result<Settings> {
        Self::load(&Self::resolve_default(given))
    }

    pub fn parse(text: &str, path: &Path) -> Result<Settings> {
        let raw: RawConfig = toml::from_str(text).with_context(|| format!("invalid config {}", path.display()))?;
        let o = Origin { path, base: path.parent().map(Path::to_path_buf).unwrap_or_default() };
        let q = raw.quant.unwrap_or(RawQuant {
            rounding: None,
            overflow: None,
            range: None,
            unsigned: None,
            weight_offsets: None,
        });
        check_name(&raw.name, &o)?;
        let cost = raw.cost.unwrap_or(RawCost { profile: None, primary: None });
        let data = data_settings(raw.data, &o)?;
        let search = search_settings(raw.search, data.confirm_samples, &o)?;
        Ok(Settings {
            source: path.to_path_buf(),
            name: raw.name,
            seed: raw.seed.unwrap_or(0),
            model: o.abs(&raw.model.path),
            data,
            cost_profile: cost_profile(cost.profile, &o)?,
            cost_primary: cost_primary(cost.primary, &o)?,
            search,
            arith: Arith {
                rounding: q.rounding.unwrap_or_default(),
                overflow: q.overflow.unwrap_or_default(),
                range: q.range.unwrap_or_default(),
            },
            unsigned: q.unsigned.unwrap_or(true),
            weight_offsets: q.weight_offsets.unwrap_or_default(),
        })
    }
}

/// `name` names the run folder (`reports/<name>`): refuse what cannot be a plain folder name.
fn check_name(name: &str, o: &Origin) -> Result<()> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(o.err(format!("name = '{name}' must be a plain folder name (it names the run folder)")));
    }
    Ok(())
}

/// `[cost] profile`: a shipped profile's name stays a name; anything else is a profile file,
/// relative to the config, that must exist.
fn cost_profile(profile: Option<String>, o: &Origin) -> Result<String> {
    match profile {
        None => Ok("paper".into()),
        Some(p) if crate::cost::profile::builtin(&p).is_some() => Ok(p),
        Some(p) => {
            let path = o.abs(Path::new(&p));
            if !path.is_file() {
                return Err(o.err(format!(
                    "[cost] profile = '{p}' is neither a shipped profile ({}) nor a profile file ({} {})",
                    crate::cost::profile::BUILTIN_NAMES.join(", "),
                    path.display(),
                    if path.is_dir() { "is a folder" } else { "does not exist" }
                )));
            }
            Ok(path.display().to_string())
        }
    }
}

/// `[cost] primary`: the name of an objective.
fn cost_primary(primary: Option<String>, o: &Origin) -> Result<Option<crate::cost::Objective>> {
    use crate::cost::Objective;
    primary
        .map(|p| {
            Objective::from_name(&p).ok_or_else(|| {
                let names: Vec<&str> = Objective::ALL.iter().map(|o| o.name()).collect();
                o.err(format!("[cost] primary = '{p}' is not an objective ({})", names.join(", ")))
            })
        })
        .transpose()
}

/// Where a config came from: its relative paths and its errors name it.
struct Origin<'p> {
    path: &'p Path,
    base: PathBuf,
}

impl Origin<'_> {
    /// A path of the config, relative to its folder unless absolute.
    fn abs(&self, p: &Path) -> PathBuf {
        normalize(&if p.is_absolute() { p.to_path_buf() } else { self.base.join(p) })
    }

    fn err(&self, msg: String) -> anyhow::Error {
        anyhow::anyhow!("invalid config {}: {msg}", self.path.display())
    }
}

/// `[data]` resolved: preprocessing checked, the data roles laid out (docs/data-roles.md).
fn data_settings(d: RawData, o: &Origin) -> Result<DataSettings> {
    let scale = d.scale.unwrap_or(1.0);
    if !scale.is_finite() || scale == 0.0 {
        return Err(o.err(format!("[data] scale = {scale} must be finite and non-zero")));
    }
    let mean = d.mean.map_or_else(|| vec![0.0], OneOrMany::into_vec);
    let std = d.std.map_or_else(|| vec![1.0], OneOrMany::into_vec);
    if mean.iter().any(|m| !m.is_finite()) {
        return Err(o.err("[data] mean must be finite".into()));
    }
    if std.iter().any(|s| !s.is_finite() || *s <= 0.0) {
        return Err(o.err("[data] std must be finite and > 0".into()));
    }
    if d.resize == Some(0) {
        return Err(o.err("[data] resize = 0 must be at least 1".into()));
    }
    // An image folder's labels are its class folders; any other images need a labels file.
    let labels_of = |key: &str, images: &Path, labels: Option<PathBuf>| -> Result<PathBuf> {
        match labels {
            Some(l) => Ok(o.abs(&l)),
            // A missing path is reported when it is read ("cannot read ...").
            None if images.is_dir() || !images.exists() => Ok(images.to_path_buf()),
            None => Err(o.err(format!(
                "{key}: labels is missing ({} is a file, not an image folder with one subfolder per \
                 class, the only source that needs none)",
                images.display()
            ))),
        }
    };
    let range = |key: &str, r: [usize; 2]| -> Result<(usize, Option<usize>)> {
        if r[0] >= r[1] {
            return Err(o.err(format!("[data] {key}: range [{}, {}] is empty (start must be below end)", r[0], r[1])));
        }
        Ok((r[0], Some(r[1])))
    };
    let role = |key: &str, r: RawRole| -> Result<Role> {
        Ok(match r {
            RawRole::Range(r) => {
                let (start, end) = range(key, r)?;
                Role { files: None, start, end }
            }
            RawRole::Files(f) => {
                let (start, end) = f.range.map_or(Ok((0, None)), |r| range(key, r))?;
                let images = o.abs(&f.images);
                let labels = labels_of(&format!("[data] {key}"), &images, f.labels)?;
                let files = DataFiles { images, labels, layout: f.layout };
                Role { files: Some(files), start, end }
            }
        })
    };
    let validation = match (d.search_samples, d.validation) {
        (Some(_), Some(_)) => return Err(o.err("[data] has both search_samples and validation: give one".into())),
        (None, None) => return Err(o.err("[data] needs validation = [start, end] (or search_samples = N)".into())),
        (Some(0), None) => return Err(o.err("[data] search_samples must be at least 1".into())),
        (Some(n), None) => Role { files: None, start: 0, end: Some(n) },
        (None, Some(v)) => role("validation", v)?,
    };
    let holdout = match d.holdout {
        Some(h) => role("holdout", h)?,
        // Default: the [data] images the validation split leaves after it.
        None => Role {
            files: None,
            start: if validation.files.is_none() { validation.end.unwrap_or(0) } else { 0 },
            end: None,
        },
    };
    let images = o.abs(&d.images);
    Ok(DataSettings {
        labels: labels_of("[data]", &images, d.labels)?,
        images,
        layout: d.layout,
        resize: d.resize,
        scale,
        mean,
        std,
        validation,
        holdout,
        confirm_samples: d.confirm_samples,
        limit: d.limit,
    })
}

/// `[search]` resolved, with its defaults.
fn search_settings(raw: Option<RawSearch>, confirm_samples: Option<usize>, o: &Origin) -> Result<SearchSettings> {
    let s = raw.unwrap_or(RawSearch {
        strategy: None,
        max_loss: None,
        loss: None,
        budget: None,
        confidence: None,
        signal: None,
    });
    let max_loss = s.max_loss.unwrap_or(0.01);
    if !(0.0..1.0).contains(&max_loss) {
        return Err(o.err(format!("[search] max_loss = {max_loss} must be in [0, 1)")));
    }
    let budget = s.budget.unwrap_or(2000);
    if budget == 0 {
        return Err(o.err("[search] budget = 0 must be at least 1".to_string()));
    }
    let confidence = s.confidence.unwrap_or(0.95);
    if !(0.0..1.0).contains(&confidence) {
        return Err(o.err(format!("[search] confidence = {confidence} must be in [0, 1)")));
    }
    // A bound asked for in so many words needs images to bound on (docs/data-roles.md); the
    // default confidence quietly falls back to the search-loss choice.
    if s.confidence.is_some_and(|c| c > 0.0) && confirm_samples == Some(0) {
        return Err(o.err(format!(
            "[search] confidence = {confidence} needs confirmation images, but [data] confirm_samples = 0 \
             (set confidence = 0 to choose on the search loss alone)"
        )));
    }
    Ok(SearchSettings {
        strategy: s.strategy.unwrap_or(Strategy::Paper),
        max_loss,
        loss: s.loss.unwrap_or_default(),
        budget,
        confidence,
        signal: s.signal.unwrap_or_default(),
    })
}

/// Remove `.` and `name/..` pairs without touching the file system, so that paths in reports
/// read `models/x.onnx` rather than `configs/../models/x.onnx`.
fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.components().next_back(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::normalize;
    use std::path::Path;

    #[test]
    fn normalize_folds_parent_and_current_dirs() {
        assert_eq!(normalize(Path::new("configs/../models/a.onnx")), Path::new("models/a.onnx"));
        assert_eq!(normalize(Path::new("./a/./b")), Path::new("a/b"));
        assert_eq!(normalize(Path::new("../x")), Path::new("../x"), "a leading .. stays");
        assert_eq!(normalize(Path::new("/r/c/../m")), Path::new("/r/m"));
    }
}
