//! One loaded experiment: the model, the data split, preprocessing, calibrated ranges and the
//! uniform 8-bit baseline. Every command starts here, so loading and checking live once.

use crate::config::Settings;
use crate::data::{self, Dataset, Preprocess, Split};
use crate::eval::calibrate::{uniform, Ranges, UniformSpec};
use crate::eval::{self, fixed::FixedEngine};
use crate::fixed::Assignment;
use crate::model::{onnx, Graph};
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::sync::OnceLock;

pub struct Experiment {
    pub settings: Settings,
    pub graph: Graph,
    pub data: Dataset,
    pub pre: Preprocess,
    pub split: Split,
    pub ranges: Ranges,
    /// The float model's predictions on the search and the holdout split, computed once: the
    /// float accuracy and every holdout interval need them, and on seq14 they take seconds.
    float_predictions: OnceLock<(Vec<usize>, Vec<usize>)>,
}

/// Accuracy on both splits.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct SplitAccuracy {
    pub search: f64,
    pub holdout: f64,
}

impl Experiment {
    pub fn load(settings: Settings) -> Result<Experiment> {
        let graph =
            onnx::load(&settings.model).with_context(|| format!("cannot import model {}", settings.model.display()))?;
        let d = &settings.data;
        let mut data = data::load(&d.images, &d.labels, d.layout)?;
        if let Some(limit) = d.limit {
            data = data.subset(0..limit.min(data.len()));
        }
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
        let split = data::split(data.len(), d.search_samples)?;
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

    /// Every tensor at `bits` with its no-clip offset (unsigned where legal, if configured).
    pub fn uniform(&self, bits: u32) -> Assignment {
        uniform(&self.graph, &self.ranges, UniformSpec::all(bits, self.settings.unsigned), self.settings.arith)
    }

    /// The baseline every report compares against: uniform 8-bit, no clipping.
    pub fn baseline(&self) -> Assignment {
        self.uniform(8)
    }

    fn float_predictions(&self) -> &(Vec<usize>, Vec<usize>) {
        self.float_predictions.get_or_init(|| {
            let predict = |r: std::ops::Range<usize>| eval::predict_float(&self.graph, &self.data, &self.pre, r);
            (predict(self.split.search.clone()), predict(self.split.holdout.clone()))
        })
    }

    pub fn float_accuracy(&self) -> SplitAccuracy {
        let (search, holdout) = self.float_predictions();
        SplitAccuracy {
            search: eval::accuracy(search, &self.data.labels[self.split.search.clone()]),
            holdout: eval::accuracy(holdout, &self.data.labels[self.split.holdout.clone()]),
        }
    }

    pub fn fixed_accuracy(&self, a: &Assignment) -> Result<SplitAccuracy> {
        let engine = FixedEngine::new(&self.graph, a)?;
        let acc = |r: std::ops::Range<usize>| {
            let p = eval::predict_fixed(&engine, &self.graph, &self.data, &self.pre, r.clone());
            eval::accuracy(&p, &self.data.labels[r])
        };
        Ok(SplitAccuracy { search: acc(self.split.search.clone()), holdout: acc(self.split.holdout.clone()) })
    }

    /// The holdout accuracy of `a` and a 95% interval for its loss against the float model, from
    /// one pass of each engine over the holdout split.
    pub fn holdout_accuracy_and_interval(&self, a: &Assignment) -> Result<(f64, (f64, f64))> {
        let engine = FixedEngine::new(&self.graph, a)?;
        let r = self.split.holdout.clone();
        let labels = &self.data.labels[r.clone()];
        let float = &self.float_predictions().1;
        let fixed = eval::predict_fixed(&engine, &self.graph, &self.data, &self.pre, r);
        Ok((eval::accuracy(&fixed, labels), eval::loss_interval95(self.settings.search.loss, float, &fixed, labels)))
    }

    /// Read a point file over the baseline (a point file may override only some layers).
    pub fn load_point(&self, path: &Path) -> Result<Assignment> {
        Assignment::load(path, &self.graph, &self.baseline(), &self.ranges.non_negative)
    }
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
}
