//! One loaded experiment: the model, the data split, preprocessing, calibrated ranges and the
//! uniform 8-bit baseline. Every command starts here, so loading and checking live once.

use crate::config::{DataSettings, Role, Settings};
use crate::data::{self, Dataset, Preprocess, Split};
use crate::eval::calibrate::{uniform, Ranges, UniformSpec};
use crate::eval::paired::Paired;
use crate::eval::{self, fixed::FixedEngine};
use crate::fixed::Assignment;
use crate::model::{onnx, Graph};
use crate::run_folder;
use anyhow::{bail, Context, Result};
use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

pub struct Experiment {
    pub settings: Settings,
    pub graph: Graph,
    pub data: Dataset,
    pub pre: Preprocess,
    pub split: Split,
    pub ranges: Ranges,
    /// The float model's predictions on every split, computed once: the float accuracy, the
    /// confirmation bounds and every holdout interval need them, and on seq14 they take seconds.
    float_predictions: OnceLock<FloatPredictions>,
}

/// The float network's class and softmax for every image of a split.
type FloatOutputs = Vec<(usize, Vec<f64>)>;

struct FloatPredictions {
    search: FloatOutputs,
    confirm: FloatOutputs,
    holdout: FloatOutputs,
}

fn classes(o: &FloatOutputs) -> Vec<usize> {
    o.iter().map(|(c, _)| *c).collect()
}

/// Accuracy on the search and the holdout split.
pub type SplitAccuracy = run_folder::Split<f64>;

impl Experiment {
    pub fn load(settings: Settings) -> Result<Experiment> {
        let graph =
            onnx::load(&settings.model).with_context(|| format!("cannot import model {}", settings.model.display()))?;
        let d = &settings.data;
        let target =
            data::FolderTarget { shape: graph.input_shape().to_vec(), classes: graph.num_classes(), resize: d.resize };
        let (data, split) = load_roles(d, &target)?;
        if data.shape != graph.input_shape() {
            bail!(
                "the data's sample shape {:?} ({}) does not match the model's input shape {:?} ({})",
                data.shape,
                d.images.display(),
                graph.input_shape(),
                settings.model.display()
            );
        }
        let pre = Preprocess { scale: d.scale, mean: d.mean.clone(), std: d.std.clone() };
        pre.validate(&data)?;
        let input_nn = pre.non_negative(&data);
        let inputs: Vec<Vec<f32>> = split
            .search
            .clone()
            .map(|i| {
                let mut x = vec![0f32; data.sample_len()];
                pre.apply_f32(&data, i, &mut x);
                x
            })
            .collect();
        let ranges = Ranges::measure(&graph, &inputs, input_nn);
        Ok(Experiment { settings, graph, data, pre, split, ranges, float_predictions: OnceLock::new() })
    }

    pub fn from_config(path: &Path) -> Result<Experiment> {
        Self::load(Settings::load(path)?)
    }

    /// Sample `i` after preprocessing, in f64 (what the integer engine quantizes).
    pub fn input_f64(&self, i: usize) -> Vec<f64> {
        let mut x = vec![0f64; self.data.sample_len()];
        self.pre.apply_f64(&self.data, i, &mut x);
        x
    }

    /// Every tensor at `bits` with its no-clip offset (unsigned where legal, per-channel weight
    /// offsets, if configured).
    pub fn uniform(&self, bits: u32) -> Assignment {
        let spec =
            UniformSpec::all(bits, self.settings.unsigned).with_per_channel(self.settings.weight_offsets.per_channel());
        uniform(&self.graph, &self.ranges, spec, self.settings.arith)
    }

    /// The baseline every report compares against: uniform 8-bit, no clipping.
    pub fn baseline(&self) -> Assignment {
        self.uniform(8)
    }

    fn float_predictions(&self) -> &FloatPredictions {
        self.float_predictions.get_or_init(|| {
            let predict = |r: &Range<usize>| eval::float_outputs(&self.graph, &self.data, &self.pre, r.clone());
            FloatPredictions {
                search: predict(&self.split.search),
                confirm: predict(&self.split.confirm),
                holdout: predict(&self.split.holdout),
            }
        })
    }

    pub fn float_accuracy(&self) -> SplitAccuracy {
        let f = self.float_predictions();
        SplitAccuracy {
            search: eval::accuracy(&classes(&f.search), &self.data.labels[self.split.search.clone()]),
            holdout: eval::accuracy(&classes(&f.holdout), &self.data.labels[self.split.holdout.clone()]),
        }
    }

    pub fn fixed_accuracy(&self, a: &Assignment) -> Result<SplitAccuracy> {
        let engine = FixedEngine::new(&self.graph, a)?;
        let acc = |r: Range<usize>| {
            let p = eval::predict_fixed(&engine, &self.graph, &self.data, &self.pre, r.clone());
            eval::accuracy(&p, &self.data.labels[r])
        };
        Ok(SplitAccuracy { search: acc(self.split.search.clone()), holdout: acc(self.split.holdout.clone()) })
    }

    /// The paired outcomes of `a` against the float model on the confirmation split.
    pub fn confirm(&self, a: &Assignment) -> Result<Paired> {
        self.paired(a, &self.split.confirm, &self.float_predictions().confirm)
    }

    /// The paired outcomes of `a` against the float model on the holdout split.
    pub fn holdout(&self, a: &Assignment) -> Result<Paired> {
        self.paired(a, &self.split.holdout, &self.float_predictions().holdout)
    }

    /// The paired outcomes of `a` against the float model on the search split.
    pub fn search(&self, a: &Assignment) -> Result<Paired> {
        self.paired(a, &self.split.search, &self.float_predictions().search)
    }

    /// The float network's class and softmax on every search image.
    pub fn float_search_outputs(&self) -> &[(usize, Vec<f64>)] {
        &self.float_predictions().search
    }

    fn paired(&self, a: &Assignment, r: &Range<usize>, float: &FloatOutputs) -> Result<Paired> {
        let engine = FixedEngine::new(&self.graph, a)?;
        Ok(eval::compare_fixed(&engine, &self.graph, &self.data, &self.pre, r.clone(), float))
    }

    /// The holdout accuracy of `a` and a 95% interval for its loss against the float model, from
    /// one pass of each engine over the holdout split.
    pub fn holdout_accuracy_and_interval(&self, a: &Assignment) -> Result<(f64, (f64, f64))> {
        let engine = FixedEngine::new(&self.graph, a)?;
        let r = self.split.holdout.clone();
        let labels = &self.data.labels[r.clone()];
        let float = classes(&self.float_predictions().holdout);
        let fixed = eval::predict_fixed(&engine, &self.graph, &self.data, &self.pre, r);
        Ok((eval::accuracy(&fixed, labels), eval::loss_interval95(self.settings.search.loss, &float, &fixed, labels)))
    }

    /// Read a point file over the baseline (a point file may override only some layers).
    pub fn load_point(&self, path: &Path) -> Result<Assignment> {
        Assignment::load(path, &self.graph, &self.baseline(), &self.ranges.non_negative)
    }
}

/// The validation images, then the holdout images, as one data set, with the split into search,
/// confirmation and holdout (docs/data-roles.md). Roles from the same files must not overlap,
/// and every label must be one of the model's classes. Image folders are read for `target`.
fn load_roles(d: &DataSettings, target: &data::FolderTarget) -> Result<(Dataset, Split)> {
    let classes = target.classes;
    let mut main = data::load_for(&d.images, &d.labels, d.layout, target)?;
    if let Some(limit) = d.limit {
        main = main.subset(0..limit.min(main.len()));
    }
    let files_of = |r: &Role| r.files.as_ref().map_or(d.images.as_path(), |f| f.images.as_path()).to_path_buf();
    let labels_of = |r: &Role| r.files.as_ref().map_or(d.labels.as_path(), |f| f.labels.as_path()).to_path_buf();
    let part = |key: &str, r: &Role| -> Result<(Dataset, std::ops::Range<usize>)> {
        let own;
        let ds = match &r.files {
            None => &main,
            Some(f) => {
                own = data::load_for(&f.images, &f.labels, f.layout, target)?;
                &own
            }
        };
        let end = r.end.unwrap_or(ds.len());
        if r.start >= end && end == ds.len() {
            bail!(
                "[data] {key}: images [{}, {end}) hold none of the {} images of {} (the validation split leaves none for it)",
                r.start,
                ds.len(),
                files_of(r).display()
            );
        }
        if r.start >= end || end > ds.len() {
            bail!(
                "[data] {key}: images [{}, {end}) are not within the {} images of {}",
                r.start,
                ds.len(),
                files_of(r).display()
            );
        }
        // A label the model cannot predict would count as a wrong answer without a word (1-based
        // labels would silently cost a tenth of the accuracy).
        if let Some((i, label)) = ds.labels[r.start..end].iter().enumerate().find(|(_, &l)| l >= classes) {
            bail!(
                "{}: label {label} of sample {} is not a class of the model, which has {classes} (0 to {})",
                labels_of(r).display(),
                r.start + i,
                classes.saturating_sub(1)
            );
        }
        Ok((ds.subset(r.start..end), r.start..end))
    };
    let (validation, v) = part("validation", &d.validation)?;
    let (holdout, h) = part("holdout", &d.holdout)?;
    if files_of(&d.validation) == files_of(&d.holdout) && v.start < h.end && h.start < v.end {
        bail!(
            "[data] the validation images [{}, {}) and the holdout images [{}, {}) of {} overlap: \
             the holdout must be images the search never saw",
            v.start,
            v.end,
            h.start,
            h.end,
            files_of(&d.holdout).display()
        );
    }
    let confirm = d.confirm_samples.unwrap_or(validation.len() / 2);
    let split = data::split(validation.len(), confirm, holdout.len())?;
    Ok((Dataset::concat(&[&validation, &holdout])?, split))
}

/// A resolved cost profile with the text it came from (copied into run folders).
pub struct Profile {
    pub profile: crate::cost::CostProfile,
    pub text: String,
    pub warnings: Vec<String>,
}

impl Profile {
    /// A shipped profile's name, or a path to a profile file.
    pub fn resolve(spec: &str) -> Result<Profile> {
        let (profile, warnings) = crate::cost::CostProfile::resolve(spec)?;
        let text = match crate::cost::profile::builtin(spec) {
            Some(t) if !Path::new(spec).exists() => t.to_string(),
            _ => std::fs::read_to_string(spec).unwrap_or_default(),
        };
        Ok(Profile { profile, text, warnings })
    }

    /// The config's profile with its `[cost] primary`, if it names one, in place of the
    /// profile's own (an objective the profile lacks is an error). The copy of the profile's
    /// text says so, since the run folder keeps it.
    pub fn for_settings(settings: &crate::config::Settings) -> Result<Profile> {
        let mut p = Self::resolve(&settings.cost_profile)?;
        if let Some(primary) = settings.cost_primary {
            let have: Vec<&str> = p.profile.objectives.iter().map(|o| o.name()).collect();
            anyhow::ensure!(
                p.profile.objectives.contains(&primary),
                "config {}: [cost] primary = '{}' is not one of profile {}'s objectives ({})",
                settings.source.display(),
                primary.name(),
                p.profile.name,
                have.join(", ")
            );
            if primary != p.profile.primary {
                p.text = format!(
                    "# The run's config replaces this profile's primary objective: [cost] primary = \"{}\"\n{}",
                    primary.name(),
                    p.text
                );
                p.profile.primary = primary;
            }
        }
        Ok(p)
    }
}
