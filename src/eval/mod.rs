//! Evaluators: the float32 reference, the bit-true integer engine, calibration, and accuracy
//! over a data split.
pub mod calibrate;
pub mod depthwise;
pub mod fixed;
pub mod float;
pub mod int16;
pub mod kernels;
pub mod paired;
pub mod permute;
pub mod runner;
pub mod sgemm;

use crate::config::LossKind;
use crate::data::{Dataset, Preprocess};
use crate::model::Graph;
use int16::Code;
use std::ops::Range;

/// Fraction of correctly classified samples.
pub fn accuracy(predictions: &[usize], labels: &[usize]) -> f64 {
    if predictions.is_empty() {
        return 0.0;
    }
    let ok = predictions.iter().zip(labels).filter(|(p, l)| p == l).count();
    ok as f64 / predictions.len() as f64
}

/// A 95% interval for the accuracy loss of `fixed` against `float` predictions on the same
/// samples: a normal approximation over the paired per-sample differences (right in one, wrong
/// in the other), so the samples both get right or both get wrong add no spread. The float
/// accuracy a relative loss divides by is taken as exact: it is the reference being measured
/// against, not an estimate.
pub fn loss_interval95(kind: LossKind, float: &[usize], fixed: &[usize], labels: &[usize]) -> (f64, f64) {
    let n = labels.len().min(float.len()).min(fixed.len());
    if n == 0 {
        return (0.0, 0.0);
    }
    let d: Vec<f64> = (0..n).map(|i| f64::from(float[i] == labels[i]) - f64::from(fixed[i] == labels[i])).collect();
    let mean = d.iter().sum::<f64>() / n as f64;
    let var = d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n.max(2) - 1) as f64;
    let half = 1.959964 * (var / n as f64).sqrt();
    let float_acc = accuracy(&float[..n], &labels[..n]);
    let loss = kind.loss(float_acc, float_acc - mean);
    let scale = kind.scale(float_acc);
    (loss - half * scale, loss + half * scale)
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

/// The float network's class and softmax for every sample of `range`: the reference the
/// paired measures compare against.
pub fn float_outputs(graph: &Graph, ds: &Dataset, pre: &Preprocess, range: Range<usize>) -> Vec<(usize, Vec<f64>)> {
    let engine = float::FloatEngine::new(graph);
    let n = ds.sample_len();
    runner::map_outputs(
        graph,
        &engine,
        range,
        |i, input| {
            input.resize(n, 0.0);
            pre.apply_f32(ds, i, input);
        },
        |_, out| (runner::argmax(out), paired::softmax(out)),
    )
}

/// The paired outcomes of the integer engine against `float` (from [`float_outputs`] over the
/// same `range`).
pub fn compare_fixed(
    engine: &fixed::FixedEngine,
    graph: &Graph,
    ds: &Dataset,
    pre: &Preprocess,
    range: Range<usize>,
    float: &[(usize, Vec<f64>)],
) -> paired::Paired {
    let step = 2f64.powi(-engine.formats()[graph.output].frac);
    let start = range.start;
    fixed_outputs(engine, graph, ds, pre, range, |i, out| {
        let (class, p) = &float[i - start];
        paired::compare(p, *class, out.iter().map(|&c| c as f64 * step), ds.labels[i])
    })
    .into_iter()
    .sum()
}

/// Integer-engine predictions over `range` of the data set.
pub fn predict_fixed(
    engine: &fixed::FixedEngine,
    graph: &Graph,
    ds: &Dataset,
    pre: &Preprocess,
    range: Range<usize>,
) -> Vec<usize> {
    fixed_outputs(engine, graph, ds, pre, range, |_, out| runner::argmax(out))
}

/// `f(i, output codes)` of the integer engine for every sample `i` in `range`, in parallel, on
/// the engine's code storage (the few output codes handed to `f` as i64).
fn fixed_outputs<R: Send>(
    engine: &fixed::FixedEngine,
    graph: &Graph,
    ds: &Dataset,
    pre: &Preprocess,
    range: Range<usize>,
    f: impl Fn(usize, &[i64]) -> R + Sync,
) -> Vec<R> {
    if engine.stores_i32() {
        fixed_outputs_as::<i32, R>(engine, graph, ds, pre, range, &f)
    } else {
        fixed_outputs_as::<i64, R>(engine, graph, ds, pre, range, &f)
    }
}

fn fixed_outputs_as<C: Code, R: Send>(
    engine: &fixed::FixedEngine,
    graph: &Graph,
    ds: &Dataset,
    pre: &Preprocess,
    range: Range<usize>,
    f: &(impl Fn(usize, &[i64]) -> R + Sync),
) -> Vec<R> {
    let n = ds.sample_len();
    let quantized = |i, input: &mut Vec<C>| {
        let mut x = vec![0f64; n];
        pre.apply_f64(ds, i, &mut x);
        engine.quantize_input(&x, input);
    };
    runner::map_outputs(graph, &engine.storing::<C>(), range, quantized, |i, out| {
        f(i, &out.iter().map(|k| k.load()).collect::<Vec<_>>())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_interval_spreads_only_over_disagreements() {
        let labels = vec![0; 100];
        // Identical predictions: no loss and no spread, whatever the accuracy.
        let same: Vec<usize> = (0..100).map(|i| usize::from(i % 3 == 0)).collect();
        assert_eq!(loss_interval95(LossKind::Absolute, &same, &same, &labels), (0.0, 0.0));
        // Float right on all, fixed wrong on 10: loss 0.10, d has variance 0.1 * 0.9 * 100 / 99.
        let float = vec![0; 100];
        let fixed: Vec<usize> = (0..100).map(|i| usize::from(i < 10)).collect();
        let (lo, hi) = loss_interval95(LossKind::Absolute, &float, &fixed, &labels);
        let half = 1.959964 * (0.09_f64 * 100.0 / 99.0 / 100.0).sqrt();
        assert!((lo - (0.10 - half)).abs() < 1e-12 && (hi - (0.10 + half)).abs() < 1e-12, "{lo} {hi}");
        // Relative loss divides both ends by the float accuracy (here 0.5): fixed is wrong on 5 of
        // the 50 images float gets right, a loss of 0.05 absolute, 0.10 relative.
        let float: Vec<usize> = (0..100).map(|i| usize::from(i % 2 == 0)).collect();
        let fixed: Vec<usize> = (0..100).map(|i| usize::from(i % 2 == 0 || i < 10)).collect();
        let (ra, rb) = loss_interval95(LossKind::Relative, &float, &fixed, &labels);
        let (aa, ab) = loss_interval95(LossKind::Absolute, &float, &fixed, &labels);
        assert!((ra - aa / 0.5).abs() < 1e-12 && (rb - ab / 0.5).abs() < 1e-12);
        assert!(aa < 0.05 && 0.05 < ab && ra < 0.10 && 0.10 < rb, "{aa} {ab} {ra} {rb}");
    }
}
