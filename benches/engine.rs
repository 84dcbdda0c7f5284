//! Criterion benchmarks of the two engines over 500 Fashion-MNIST images (`cargo bench`) on the
//! shipped LeNet-5 and 14-conv nets, the MobileNet-v2-style depthwise-separable net, the strided
//! 3-conv net (stride-2 convolutions, no pooling, a Shape/Reshape flatten head) and the net with a
//! stand-alone BatchNorm after each ReLU (imported as an affine layer): the kinds of net the
//! engine-speed issue found slow.
//! `qdse bench CONFIG` times a whole data set and `training/bench_ort.py` times ONNX Runtime on
//! the same model for comparison.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use qdse::config::Settings;
use qdse::eval::fixed::FixedEngine;
use qdse::eval::{predict_fixed, predict_float};
use qdse::experiment::Experiment;
use std::path::Path;

fn engines(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for model in ["lenet5-fashion", "seq14-fashion", "mbv2-fashion", "strided-fashion", "bnrelu-fashion"] {
        let mut settings = Settings::load(&root.join(format!("configs/{model}.toml"))).expect("shipped config");
        // 500 images to calibrate on, the next 500 timed, all from the config's [data] files.
        let role = |start, end| qdse::config::Role { files: None, start, end: Some(end) };
        settings.data.limit = Some(1000);
        (settings.data.validation, settings.data.holdout) = (role(0, 500), role(500, 1000));
        settings.data.confirm_samples = Some(0);
        let exp = Experiment::load(settings).expect("shipped model and data");
        let images = exp.split.holdout.clone();
        let baseline = exp.baseline();
        let engine = FixedEngine::new(&exp.graph, &baseline).expect("valid baseline");
        let mut g = c.benchmark_group(model);
        g.sample_size(10);
        g.throughput(Throughput::Elements(images.len() as u64));
        g.bench_function("float32", |b| b.iter(|| predict_float(&exp.graph, &exp.data, &exp.pre, images.clone())));
        g.bench_function("fixed-8bit", |b| {
            b.iter(|| predict_fixed(&engine, &exp.graph, &exp.data, &exp.pre, images.clone()));
        });
        g.finish();
    }
}

criterion_group!(benches, engines);
criterion_main!(benches);
