//! Our float32 path (ONNX import + `FloatEngine`) against independent ONNX engines:
//! tract (run here, straight from the `.onnx` file) and onnxruntime (logits committed under
//! `tests/fixtures/`). Every shipped model runs on real test images; the zoo fixtures run on
//! `zoo-input.npy`.
//!
//! Tolerance, per sample: `max_j |ours_j - theirs_j| <= 1e-4 * (1 + max_j |theirs_j|)`. Both
//! sides compute in f32 with different summation orders (and our importer folds BatchNorm into
//! the conv weights in f64 before casting), so a few ulps of the largest logit per layer is
//! the expected gap; 1e-4 relative leaves a wide margin while still catching any wrong weight,
//! layout, padding or fused op. The predicted class must agree on every sample.

mod common;

use common::{argmax, inputs_f32, read_npy_f32, repo_file, shipped_model, shipped_test_data, SHIPPED_MODELS};
use qdse::eval::float::FloatEngine;
use qdse::model::Graph;
use std::path::Path;
use tract_onnx::prelude::*;

/// Relative tolerance of the logit comparison (see the module comment).
const REL_TOL: f64 = 1e-4;

/// Images of each shipped model's test split compared sample by sample.
const BATCH: usize = 64;

/// Runs `inputs` (one CHW sample each) through tract as a single batch; one logit row per sample.
/// The file's intermediate `value_info` and output shapes are ignored: they are only hints, and
/// the dynamo export declares them with a symbolic batch `N` that would not unify with the
/// concrete batch size given to the input (tract infers every shape itself anyway).
fn tract_logits(path: &Path, sample_shape: &[usize], inputs: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let run = || -> TractResult<Vec<Vec<f32>>> {
        let mut shape = vec![inputs.len()];
        shape.extend_from_slice(sample_shape);
        let model = tract_onnx::onnx()
            .with_ignore_value_info(true)
            .with_ignore_output_shapes(true)
            .model_for_path(path)?
            .with_input_fact(0, f32::fact(shape.clone()).into())?
            .into_optimized()?
            .into_runnable()?;
        let flat: Vec<f32> = inputs.iter().flatten().copied().collect();
        let out = model.run(tvec!(Tensor::from_shape(&shape, &flat)?.into()))?;
        let view = out[0].try_as_plain_ram()?;
        let logits = view.as_slice::<f32>()?;
        anyhow::ensure!(logits.len() % inputs.len() == 0, "tract output has {} values", logits.len());
        Ok(logits.chunks(logits.len() / inputs.len()).map(<[f32]>::to_vec).collect())
    };
    run().unwrap_or_else(|e| panic!("tract on {}: {e:?}", path.display()))
}

fn float_logits(g: &Graph, inputs: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let engine = FloatEngine::new(g);
    inputs.iter().map(|x| engine.forward(x)).collect()
}

/// Asserts the tolerance and (if `classes`) argmax agreement of `ours` against `theirs`, sample
/// by sample; prints the largest differences and the smallest top-2 logit gap of `theirs`.
fn compare(what: &str, ours: &[Vec<f32>], theirs: &[Vec<f32>], classes: bool) {
    assert_eq!(ours.len(), theirs.len(), "{what}: sample count");
    let (mut worst_abs, mut worst_ratio, mut min_gap) = (0f64, 0f64, f64::INFINITY);
    for (s, (o, t)) in ours.iter().zip(theirs).enumerate() {
        assert_eq!(o.len(), t.len(), "{what}: sample {s}: logit count");
        let scale = t.iter().fold(0f64, |m, &v| m.max(f64::from(v).abs()));
        let diff = o.iter().zip(t).fold(0f64, |m, (&a, &b)| m.max((f64::from(a) - f64::from(b)).abs()));
        let tol = REL_TOL * (1.0 + scale);
        assert!(diff <= tol, "{what}: sample {s}: max |diff| = {diff:e} > {tol:e}\n  ours:   {o:?}\n  theirs: {t:?}");
        worst_abs = worst_abs.max(diff);
        worst_ratio = worst_ratio.max(diff / (1.0 + scale));
        if classes {
            let (ko, kt) = (argmax(o), argmax(t));
            assert_eq!(ko, kt, "{what}: sample {s}: predicted class differs\n  ours:   {o:?}\n  theirs: {t:?}");
            let mut sorted: Vec<f32> = t.clone();
            sorted.sort_by(|a, b| b.total_cmp(a));
            min_gap = min_gap.min(f64::from(sorted[0] - sorted[1]));
        }
    }
    println!(
        "{what}: {} samples, max |diff| = {worst_abs:.3e}, max |diff|/(1+max|logit|) = {worst_ratio:.3e} \
         (tolerance {REL_TOL:e}){}",
        ours.len(),
        if classes { format!(", smallest top-2 logit gap {min_gap:.3e}") } else { String::new() }
    );
}

/// Rows of a `[N, K]` logits fixture.
fn fixture_logits(name: &str) -> Vec<Vec<f32>> {
    let (shape, data) = read_npy_f32(&repo_file(&format!("tests/fixtures/{name}")));
    assert_eq!(shape.len(), 2, "{name}: shape {shape:?}");
    data.chunks(shape[1]).map(<[f32]>::to_vec).collect()
}

#[test]
fn shipped_models_float_equals_tract() {
    for name in SHIPPED_MODELS {
        let path = repo_file(&format!("models/{name}.onnx"));
        let g = shipped_model(name);
        let ds = shipped_test_data(name);
        let inputs = inputs_f32(&ds, BATCH);
        assert_eq!(inputs.len(), BATCH);
        let ours = float_logits(&g, &inputs);
        let theirs = tract_logits(&path, &ds.shape, &inputs);
        compare(&format!("{name} vs tract"), &ours, &theirs, true);
    }
}

/// The benchmark nets beyond the shipped ones against tract: the depthwise-separable net
/// (`models/mbv2-fashion.onnx`: depthwise 3x3 on the direct kernel, ReLU6, residual Adds), the
/// strided net (three stride-2 convs, the last two on pixel tiles over the undealt padded
/// input) and the stand-alone BatchNorm net.
#[test]
fn benchmark_nets_float_equals_tract() {
    for name in ["mbv2-fashion", "strided-fashion", "bnrelu-fashion"] {
        let g = shipped_model(name);
        let ds = shipped_test_data(name);
        let inputs = inputs_f32(&ds, BATCH);
        let theirs = tract_logits(&repo_file(&format!("models/{name}.onnx")), &ds.shape, &inputs);
        compare(&format!("{name} vs tract"), &float_logits(&g, &inputs), &theirs, true);
    }
}

/// Our float path, and tract, against onnxruntime's logits on the first 64 Fashion-MNIST test
/// images. (The fixtures were made from `np.float32(pixel) / 255`; our inputs are pixel/255 in
/// f64 rounded to f32, which can differ by one ulp: far below the tolerance.)
#[test]
fn shipped_models_float_equals_onnxruntime_fixtures() {
    for name in ["lenet5-fashion", "seq14-fashion", "branched-fashion", "mbv2-fashion", "resnet-fashion"] {
        let g = shipped_model(name);
        let ds = shipped_test_data(name);
        let inputs = inputs_f32(&ds, BATCH);
        let ort = fixture_logits(&format!("{name}-ort-logits.npy"));
        assert_eq!(ort.len(), BATCH, "{name}: fixture rows");
        compare(&format!("{name} vs onnxruntime"), &float_logits(&g, &inputs), &ort, true);
        let tract = tract_logits(&repo_file(&format!("models/{name}.onnx")), &ds.shape, &inputs);
        compare(&format!("{name}: tract vs onnxruntime (oracle sanity)"), &tract, &ort, true);
    }
}

/// The shipped nets as `torch.onnx.export` writes them by default today (the dynamo exporter,
/// which folds BN into the convs itself, weights in `<name>-dynamo.onnx.data`; the importer reads
/// them through src/model/external_data.rs) against the same nets' legacy exports, tract and
/// onnxruntime.
#[test]
fn dynamo_exports_with_external_weights_equal_legacy_tract_and_onnxruntime() {
    for name in ["mbv2-fashion", "resnet-fashion"] {
        let path = repo_file(&format!("tests/fixtures/{name}-dynamo.onnx"));
        let g = qdse::model::onnx::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let ds = shipped_test_data(name);
        let inputs = inputs_f32(&ds, BATCH);
        let ours = float_logits(&g, &inputs);
        compare(&format!("{name}-dynamo vs legacy export"), &ours, &float_logits(&shipped_model(name), &inputs), true);
        compare(&format!("{name}-dynamo vs tract"), &ours, &tract_logits(&path, &ds.shape, &inputs), true);
        let ort = fixture_logits(&format!("{name}-dynamo-ort-logits.npy"));
        compare(&format!("{name}-dynamo vs onnxruntime"), &ours, &ort, true);
    }
}

/// The zoo fixtures (every op the importer lowers: BN folding and an unfolded BN, Clip, depthwise,
/// residual Add, Concat, AvgPool, ReduceMean, MatMul+Add, two exporters) against tract,
/// onnxruntime and PyTorch. The 8 inputs are noise and the logits nearly equal across samples,
/// so values are compared, not classes (tests/fixtures/README.md).
#[test]
fn zoo_fixtures_float_equals_tract_and_onnxruntime() {
    let (shape, data) = read_npy_f32(&repo_file("tests/fixtures/zoo-input.npy"));
    assert_eq!(shape, [8, 1, 12, 12]);
    let inputs: Vec<Vec<f32>> = data.chunks(shape[1..].iter().product()).map(<[f32]>::to_vec).collect();
    let torch = fixture_logits("zoo-torch-logits.npy");
    for zoo in ["zoo-legacy", "zoo-dynamo"] {
        let path = repo_file(&format!("tests/fixtures/{zoo}.onnx"));
        let g = qdse::model::onnx::load(&path).unwrap_or_else(|e| panic!("{zoo}: {e}"));
        let ours = float_logits(&g, &inputs);
        compare(&format!("{zoo} vs tract"), &ours, &tract_logits(&path, &shape[1..], &inputs), false);
        compare(&format!("{zoo} vs onnxruntime"), &ours, &fixture_logits(&format!("{zoo}-logits.npy")), false);
        compare(&format!("{zoo} vs pytorch"), &ours, &torch, false);
    }
}

/// On the first 1000 Fashion-MNIST test images, lenet5-fashion predicts exactly the classes
/// tract predicts, so the two accuracies are equal.
#[test]
fn lenet5_fashion_accuracy_equals_tract() {
    const N: usize = 1000;
    let name = "lenet5-fashion";
    let g = shipped_model(name);
    let ds = shipped_test_data(name);
    let inputs = inputs_f32(&ds, N);
    let ours_logits = float_logits(&g, &inputs);
    let theirs_logits = tract_logits(&repo_file(&format!("models/{name}.onnx")), &ds.shape, &inputs);
    compare(&format!("{name} vs tract, {N} images"), &ours_logits, &theirs_logits, true);
    let ours: Vec<usize> = ours_logits.iter().map(|l| argmax(l)).collect();
    let theirs: Vec<usize> = theirs_logits.iter().map(|l| argmax(l)).collect();
    let differ: Vec<usize> = (0..N).filter(|&i| ours[i] != theirs[i]).collect();
    assert!(differ.is_empty(), "predicted classes differ on images {differ:?}");
    let acc = |p: &[usize]| qdse::eval::accuracy(p, &ds.labels[..N]);
    println!("{name}: accuracy on the first {N} test images: ours {:.4}, tract {:.4}", acc(&ours), acc(&theirs));
    assert_eq!(acc(&ours), acc(&theirs));
}
