//! Evaluators: the float32 reference, the bit-true integer engine, calibration, and accuracy
//! over a data split.
pub mod calibrate;
pub mod fixed;
pub mod float;
pub mod int16;
pub mod kernels;
pub mod runner;

use crate::data::{Dataset, Preprocess};
use crate::model::Graph;
use std::ops::Range;

/// Fraction of correctly classified samples.
pub fn accuracy(predictions: &[usize], labels: &[usize]) -> f64 {
    if predictions.is_empty() {
        return 0.0;
    }
    let ok = predictions.iter().zip(labels).filter(|(p, l)| p == l).count();
    ok as f64 / predictions.len() as f64
}

/// Float predictions over `range` of the data set.
pub fn predict_float(graph: &Graph, ds: &Dataset, pre: &Preprocess, range: Range<usize>) -> Vec<usize> {
    let engine = float::FloatEngine::new(graph);
    let n = ds.sample_len();
    runner::predict(graph, &engine, range, |i, input| {
        input.resize(n, 0.0);
        pre.apply_f32(ds, i, input);
    })
}

/// Integer-engine predictions over `range` of the data set.
pub fn predict_fixed(
    engine: &fixed::FixedEngine,
    graph: &Graph,
    ds: &Dataset,
    pre: &Preprocess,
    range: Range<usize>,
) -> Vec<usize> {
    let n = ds.sample_len();
    runner::predict(graph, engine, range, |i, input| {
        let mut x = vec![0f64; n];
        pre.apply_f64(ds, i, &mut x);
        engine.quantize_input(&x, input);
    })
}

/// Throughput of both engines over a whole data set (the `qdse bench` command).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Throughput {
    pub images: usize,
    pub float_images_per_s: f64,
    pub fixed_images_per_s: f64,
    pub float_accuracy: f64,
    pub fixed_accuracy: f64,
    pub threads: usize,
}

/// Time the float engine and the integer engine (assignment `a`) over every sample, best of
/// `repeats` runs each. Preprocessing and input quantization are inside the timed region, as
/// they are in a real evaluation.
pub fn throughput(
    graph: &Graph,
    ds: &Dataset,
    pre: &Preprocess,
    a: &crate::fixed::Assignment,
    repeats: usize,
) -> anyhow::Result<Throughput> {
    use std::time::Instant;
    let engine = fixed::FixedEngine::new(graph, a)?;
    let all = 0..ds.len();
    let time = |f: &dyn Fn() -> Vec<usize>| {
        let mut best = f64::INFINITY;
        let mut preds = Vec::new();
        for _ in 0..repeats.max(1) {
            let t = Instant::now();
            preds = f();
            best = best.min(t.elapsed().as_secs_f64());
        }
        (best, accuracy(&preds, &ds.labels))
    };
    let (tf, af) = time(&|| predict_float(graph, ds, pre, all.clone()));
    let (tq, aq) = time(&|| predict_fixed(&engine, graph, ds, pre, all.clone()));
    Ok(Throughput {
        images: ds.len(),
        float_images_per_s: ds.len() as f64 / tf,
        fixed_images_per_s: ds.len() as f64 / tq,
        float_accuracy: af,
        fixed_accuracy: aq,
        threads: rayon::current_num_threads(),
    })
}
