//! The `qdse` binary as a user runs it: real processes, exit codes, stdout and stderr.
//!
//! Every bad-input case checks the same contract (src/main.rs): exit code 2, stderr starts with
//! `error:`, the message names the problem, and nothing panics. Inputs are written to a
//! temporary folder here (configs with absolute paths to the shipped model and data, small IDX
//! and CIFAR-10 files, edited ONNX models), so no test data is committed.

use prost::Message;
use qdse::model::onnx_proto as pb;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use tempfile::TempDir;

mod common;
use common::{fashion_images, fashion_labels, qdse, root, Run, QDSE};

fn lenet() -> PathBuf {
    root().join("models/lenet5-fashion.onnx")
}

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// A config over `model` and the given data files; `extra` is appended to `[data]`, `tail` to
/// the end of the file.
fn config_with(dir: &Path, name: &str, model: &Path, images: &Path, labels: &Path, extra: &str, tail: &str) -> PathBuf {
    let text = format!(
        "name = \"cli-test\"\nseed = 1\n\n[model]\npath = {model:?}\n\n[data]\nimages = {images:?}\nlabels = {labels:?}\n\
         scale = 0.00392156862745098\n{extra}\n{tail}"
    );
    write(dir, name, text)
}

/// The tiny LeNet-5 / Fashion-MNIST experiment: 400 images, 200 for the search split.
fn tiny_config(dir: &Path) -> PathBuf {
    config_with(
        dir,
        "tiny.toml",
        &lenet(),
        &fashion_images(),
        &fashion_labels(),
        "search_samples = 200\nlimit = 400",
        "",
    )
}

/// A u8 IDX file of shape `dims`, element `i` being `fill(i)`.
fn idx_u8(dims: &[u32], fill: impl Fn(usize) -> u8) -> Vec<u8> {
    let n: usize = dims.iter().map(|&d| d as usize).product();
    common::idx(0x08, dims, &(0..n).map(fill).collect::<Vec<_>>())
}

fn idx_images(n: u32) -> Vec<u8> {
    idx_u8(&[n, 28, 28], |i| (i * 7 % 256) as u8)
}

fn idx_labels(n: u32) -> Vec<u8> {
    idx_u8(&[n], |i| (i % 10) as u8)
}

// ---------------------------------------------------------------------------------------------
// Commands that succeed

#[test]
fn inspect_lists_layers_in_order() {
    let r = qdse(&[Path::new("inspect"), &lenet()]);
    r.ok();
    let layers =
        ["/conv1/Conv", "/MaxPool", "/conv2/Conv", "/MaxPool_1", "/Reshape", "/fc1/Gemm", "/fc2/Gemm", "/fc3/Gemm"];
    let mut at = 0;
    for l in layers {
        let found = r.stdout[at..]
            .find(&format!("\n{l} "))
            .unwrap_or_else(|| panic!("{l} missing or out of order\n{}", r.dump()));
        at += found + 1;
    }
    assert!(r.stdout.contains("1x28x28"), "{}", r.dump());
    assert!(r.stdout.contains("total"), "{}", r.dump());
    assert!(r.stderr.is_empty(), "{}", r.dump());
}

#[test]
fn eval_json_reports_both_splits() {
    let t = TempDir::new().unwrap();
    let cfg = tiny_config(t.path());
    let r = qdse(&[Path::new("eval"), &cfg, Path::new("--json")]);
    r.ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}\n{}", r.dump()));
    // search_samples = 200: half of those search, half confirm (docs/data-roles.md).
    assert_eq!(v["samples"]["search"], 100, "{v}");
    assert_eq!(v["samples"]["confirm"], 100, "{v}");
    assert_eq!(v["samples"]["holdout"], 200, "{v}");
    assert_eq!(v["name"], "cli-test");
    assert_eq!(v["point"], "uniform-8bit");
    for what in ["float", "fixed"] {
        for split in ["search", "holdout"] {
            let x = v[what][split].as_f64().unwrap_or_else(|| panic!("{what}.{split} missing: {v}"));
            assert!((0.0..=1.0).contains(&x), "{what}.{split} = {x}");
            // Accuracy over 200 images is a multiple of 1/200.
            assert!((x * 200.0 - (x * 200.0).round()).abs() < 1e-9, "{what}.{split} = {x}");
        }
    }
    // LeNet-5 on Fashion-MNIST is ~90 % accurate; uniform 8-bit is within a few points of float.
    let f = v["float"]["search"].as_f64().unwrap();
    let q = v["fixed"]["search"].as_f64().unwrap();
    assert!(f > 0.8 && (f - q).abs() < 0.05, "float {f} fixed {q}");

    // The table form carries the same numbers.
    let r = qdse(&[Path::new("eval"), &cfg]);
    r.ok();
    assert!(r.stdout.contains("samples") && r.stdout.contains("200"), "{}", r.dump());
    assert!(r.stdout.contains(&format!("{:.2}%", 100.0 * f)), "{}", r.dump());
}

#[test]
fn uniform_point_file_round_trips_through_eval() {
    let t = TempDir::new().unwrap();
    let cfg = tiny_config(t.path());
    let r = qdse(&[Path::new("uniform"), &cfg, Path::new("--bits"), Path::new("8")]);
    r.ok();
    let p = write(t.path(), "u8.toml", &r.stdout);
    let base = qdse(&[Path::new("eval"), &cfg, Path::new("--json")]);
    let point = qdse(&[Path::new("eval"), &cfg, Path::new("--point"), &p, Path::new("--json")]);
    let (a, b): (serde_json::Value, serde_json::Value) =
        (serde_json::from_str(&base.ok().stdout).unwrap(), serde_json::from_str(&point.ok().stdout).unwrap());
    assert_eq!(a["fixed"], b["fixed"], "uniform --bits 8 is the baseline");

    qdse(&[Path::new("uniform"), &cfg, Path::new("--bits"), Path::new("0")]).fails_with(&["--bits 0", "1..=32"]);
}

/// `[quant] weight_offsets = "per-channel"`: the uniform point marks every weighted layer
/// per-channel, is the config's baseline, and is a different operating point from the
/// per-tensor one (read under the per-tensor config, it measures what the per-channel config
/// does).
#[test]
fn per_channel_uniform_point_round_trips_and_differs_from_per_tensor() {
    let t = TempDir::new().unwrap();
    let per_tensor = tiny_config(t.path());
    let mk = |name: &str, tail: &str| {
        config_with(
            t.path(),
            name,
            &lenet(),
            &fashion_images(),
            &fashion_labels(),
            "search_samples = 200\nlimit = 400",
            tail,
        )
    };
    let per_channel = mk("pc.toml", "[quant]\nweight_offsets = \"per-channel\"\n");
    let point = |cfg: &Path, bits: &str| {
        let r = qdse(&[Path::new("uniform"), cfg, Path::new("--bits"), Path::new(bits)]);
        r.ok();
        r.stdout.clone()
    };
    let pc4 = point(&per_channel, "4");
    assert_eq!(pc4.matches("per_channel = true").count(), 5, "LeNet-5 has 5 weighted layers\n{pc4}");
    assert!(!point(&per_tensor, "4").contains("per_channel"));
    let eval = |cfg: &Path, p: Option<&Path>| -> serde_json::Value {
        let mut args = vec![Path::new("eval"), cfg, Path::new("--json")];
        if let Some(p) = p {
            args.extend([Path::new("--point"), p]);
        }
        serde_json::from_str(&qdse(&args).ok().stdout).unwrap()
    };
    let pc4_file = write(t.path(), "pc4.toml", &pc4);
    let pt4_file = write(t.path(), "pt4.toml", point(&per_tensor, "4"));
    let (pc, pt) = (eval(&per_tensor, Some(&pc4_file)), eval(&per_tensor, Some(&pt4_file)));
    assert_eq!(pc, eval(&per_channel, Some(&pc4_file)), "the point file, not the config, decides");
    assert_ne!(pc["fixed"], pt["fixed"], "per-channel offsets change the 4-bit point's accuracy");
    let pc8 = write(t.path(), "pc8.toml", point(&per_channel, "8"));
    assert_eq!(
        eval(&per_channel, None)["fixed"],
        eval(&per_tensor, Some(&pc8))["fixed"],
        "the baseline is per-channel"
    );
    mk("bad.toml", "[quant]\nweight_offsets = \"per-layer\"\n");
    qdse(&[Path::new("eval"), &t.path().join("bad.toml")]).fails_with(&["bad.toml", "weight_offsets", "per-layer"]);
}

/// Only weights have output channels to offset: per_channel anywhere else is an error.
#[test]
fn per_channel_outside_weights_is_an_error() {
    eval_point("[[layer]]\nname = \"/fc1/Gemm\"\nbias = { bits = 8, per_channel = true }\n").fails_with(&[
        "point.toml",
        "/fc1/Gemm",
        "per_channel",
        "bias",
    ]);
    eval_point("[input]\nbits = 8\nper_channel = true\n").fails_with(&["point.toml", "[input]", "per_channel"]);
}

// ---------------------------------------------------------------------------------------------
// Bad models

#[test]
fn truncated_onnx_is_an_error() {
    let t = TempDir::new().unwrap();
    let bytes = std::fs::read(lenet()).unwrap();
    let m = write(t.path(), "truncated.onnx", &bytes[..1000]);
    qdse(&[Path::new("inspect"), &m]).fails_with(&["not an ONNX model"]);
    // Through a config, the message names the file.
    let cfg = config_with(
        t.path(),
        "c.toml",
        &m,
        &fashion_images(),
        &fashion_labels(),
        "search_samples = 10\nlimit = 20",
        "",
    );
    qdse(&[Path::new("eval"), &cfg]).fails_with(&["cannot import model", "truncated.onnx", "not an ONNX model"]);
}

#[test]
fn inspect_error_names_the_file() {
    let t = TempDir::new().unwrap();
    let m = write(t.path(), "truncated.onnx", &std::fs::read(lenet()).unwrap()[..1000]);
    qdse(&[Path::new("inspect"), &m]).fails_with(&["truncated.onnx", "not an ONNX model"]);
}

#[test]
fn text_file_is_not_onnx() {
    let t = TempDir::new().unwrap();
    let m = write(t.path(), "notes.onnx", "# a text file, not a model\nlayers = 3\n");
    qdse(&[Path::new("inspect"), &m]).fails_with(&["not an ONNX model"]);
    let missing = t.path().join("missing.onnx");
    qdse(&[Path::new("inspect"), &missing]).fails_with(&["cannot read", "missing.onnx"]);
}

#[test]
fn io_error_cause_is_not_repeated() {
    let t = TempDir::new().unwrap();
    let missing = t.path().join("missing.onnx");
    let r = qdse(&[Path::new("inspect"), &missing]);
    r.fails_with(&["missing.onnx"]);
    assert_eq!(r.stderr.matches("No such file").count(), 1, "{}", r.dump());
}

/// LeNet-5 with one node's op type changed.
fn lenet_with_op(node: &str, op: &str) -> Vec<u8> {
    let mut m = pb::ModelProto::decode(std::fs::read(lenet()).unwrap().as_slice()).unwrap();
    let g = m.graph.as_mut().unwrap();
    let n = g.node.iter_mut().find(|n| n.name == node).unwrap_or_else(|| panic!("no node {node}"));
    n.op_type = op.into();
    m.encode_to_vec()
}

#[test]
fn unsupported_op_names_node_and_op() {
    let t = TempDir::new().unwrap();
    let m = write(t.path(), "foo.onnx", lenet_with_op("/conv2/Conv", "Foo"));
    qdse(&[Path::new("inspect"), &m]).fails_with(&["/conv2/Conv", "Foo", "unsupported"]);
    let cfg = config_with(
        t.path(),
        "c.toml",
        &m,
        &fashion_images(),
        &fashion_labels(),
        "search_samples = 10\nlimit = 20",
        "",
    );
    qdse(&[Path::new("eval"), &cfg]).fails_with(&["foo.onnx", "/conv2/Conv", "Foo", "unsupported"]);
}

// ---------------------------------------------------------------------------------------------
// Bad data

#[test]
fn data_shape_must_match_model_input() {
    // CIFAR-10 binary: label byte + 3x32x32 pixels per record; images and labels in one file.
    let t = TempDir::new().unwrap();
    let rec: Vec<u8> =
        (0..4u8).flat_map(|k| std::iter::once(k).chain((0..3072).map(move |i| (i as u8).wrapping_add(k)))).collect();
    let bin = write(t.path(), "test_batch.bin", rec);
    let cfg = config_with(t.path(), "c.toml", &lenet(), &bin, &bin, "search_samples = 2", "");
    qdse(&[Path::new("eval"), &cfg]).fails_with(&["[3, 32, 32]", "[1, 28, 28]", "does not match", "test_batch.bin"]);
}

#[test]
fn label_count_must_match_image_count() {
    let t = TempDir::new().unwrap();
    let img = write(t.path(), "img-idx3-ubyte", idx_images(5));
    let lab = write(t.path(), "lab-idx1-ubyte", idx_labels(4));
    let cfg = config_with(t.path(), "c.toml", &lenet(), &img, &lab, "search_samples = 2", "");
    qdse(&[Path::new("eval"), &cfg]).fails_with(&["4 labels", "5 images", "lab-idx1-ubyte", "img-idx3-ubyte"]);
}

#[test]
fn empty_data_set_is_an_error() {
    let t = TempDir::new().unwrap();
    let img = write(t.path(), "img-idx3-ubyte", idx_images(0));
    let lab = write(t.path(), "lab-idx1-ubyte", idx_labels(0));
    let cfg = config_with(t.path(), "c.toml", &lenet(), &img, &lab, "search_samples = 1", "");
    let r = qdse(&[Path::new("eval"), &cfg]);
    r.fails_with(&[]);
    let e = r.stderr.to_lowercase();
    assert!(e.contains("no images") || e.contains("0 images") || e.contains("empty"), "{}", r.dump());
}

#[test]
fn search_split_must_leave_a_holdout() {
    let t = TempDir::new().unwrap();
    let cfg = config_with(
        t.path(),
        "c.toml",
        &lenet(),
        &fashion_images(),
        &fashion_labels(),
        "search_samples = 50\nlimit = 50",
        "",
    );
    qdse(&[Path::new("eval"), &cfg]).fails_with(&["holdout", "none of the 50 images", "leaves none"]);
}

// ---------------------------------------------------------------------------------------------
// Bad configs

#[test]
fn unknown_config_key_names_file_line_and_key() {
    let t = TempDir::new().unwrap();
    let cfg = config_with(
        t.path(),
        "typo.toml",
        &lenet(),
        &fashion_images(),
        &fashion_labels(),
        "search_samples = 10\nlimit = 20",
        "[search]\nmax_loss = 0.01\nbudgte = 5\n",
    );
    let line = std::fs::read_to_string(&cfg).unwrap().lines().position(|l| l.starts_with("budgte")).unwrap() + 1;
    qdse(&[Path::new("eval"), &cfg]).fails_with(&["typo.toml", &format!("line {line}"), "budgte"]);
}

#[test]
fn config_without_model_is_an_error() {
    let t = TempDir::new().unwrap();
    let text = format!(
        "name = \"x\"\n[data]\nimages = {:?}\nlabels = {:?}\nsearch_samples = 10\n",
        fashion_images(),
        fashion_labels()
    );
    let cfg = write(t.path(), "nomodel.toml", text);
    qdse(&[Path::new("eval"), &cfg]).fails_with(&["nomodel.toml", "model"]);
    let r = qdse(&[Path::new("eval"), &cfg]);
    assert!(r.stderr.contains("missing field `model`"), "{}", r.dump());
}

#[test]
fn missing_config_file_is_an_error() {
    let t = TempDir::new().unwrap();
    qdse(&[Path::new("eval"), &t.path().join("nope.toml")]).fails_with(&["cannot read config", "nope.toml"]);
}

// ---------------------------------------------------------------------------------------------
// Bad point files

fn eval_point(point: &str) -> Run {
    let t = TempDir::new().unwrap();
    let cfg = config_with(
        t.path(),
        "c.toml",
        &lenet(),
        &fashion_images(),
        &fashion_labels(),
        "search_samples = 20\nlimit = 40",
        "",
    );
    let p = write(t.path(), "point.toml", point);
    qdse(&[Path::new("eval"), &cfg, Path::new("--point"), &p])
}

/// A point file naming a layer twice would let one entry silently win.
#[test]
fn point_naming_a_layer_twice_is_an_error() {
    eval_point(
        "[[layer]]\nname = \"/conv1/Conv\"\nweights = { bits = 6 }\n\n\
         [[layer]]\nname = \"/conv2/Conv\"\n\n\
         [[layer]]\nname = \"/conv1/Conv\"\noutput = { bits = 4 }\n",
    )
    .fails_with(&["point.toml", "'/conv1/Conv'", "listed twice", "entries 1 and 3"]);
}

/// A label the model has no class for (here 1-based labels for a 10-class model) would count as
/// a wrong answer without a word.
#[test]
fn labels_outside_the_models_classes_are_an_error() {
    let t = TempDir::new().unwrap();
    let images = write(t.path(), "images.idx", idx_images(40));
    let labels = write(t.path(), "labels.idx", idx_u8(&[40], |i| (i % 10 + 1) as u8));
    let cfg = config_with(t.path(), "c.toml", &lenet(), &images, &labels, "search_samples = 20", "");
    qdse(&[Path::new("eval"), &cfg]).fails_with(&["labels.idx", "label 10 of sample 9", "has 10 (0 to 9)"]);
}

/// `qdse image-folder` writes a folder an image-folder config reads (tests/image_folder.rs
/// compares its predictions with the IDX files'); a folder the writer would overwrite, an RGB
/// image for a greyscale model and a config without labels for a file are errors naming the path.
#[test]
fn image_folder_round_trip_and_errors() {
    let t = TempDir::new().unwrap();
    let folder = t.path().join("imgs");
    let made = qdse(&[
        Path::new("image-folder"),
        &fashion_images(),
        &fashion_labels(),
        Path::new("--out"),
        &folder,
        Path::new("--limit"),
        Path::new("300"),
    ]);
    assert!(made.ok().stdout.contains("wrote 300 images"), "{}", made.dump());
    qdse(&[Path::new("image-folder"), &fashion_images(), &fashion_labels(), Path::new("--out"), &folder])
        .fails_with(&["imgs", "not empty"]);
    let text = format!(
        "name = \"f\"\n[model]\npath = {:?}\n[data]\nimages = {folder:?}\nscale = 0.00392156862745098\nvalidation = [0, 200]\n",
        lenet()
    );
    let r = qdse(&[Path::new("eval"), &write(t.path(), "folder.toml", text)]);
    assert!(r.ok().stdout.contains("samples         100        100"), "{}", r.dump());
    let rgb = folder.join("3").join("colour.png");
    image::RgbImage::new(28, 28).save(&rgb).unwrap();
    let text =
        format!("name = \"f\"\n[model]\npath = {:?}\n[data]\nimages = {folder:?}\nvalidation = [0, 200]\n", lenet());
    qdse(&[Path::new("eval"), &write(t.path(), "rgb.toml", text)])
        .fails_with(&["colour.png", "RGB image (3 channels)"]);
    let text = format!(
        "name = \"f\"\n[model]\npath = {:?}\n[data]\nimages = {:?}\nvalidation = [0, 200]\n",
        lenet(),
        fashion_images()
    );
    qdse(&[Path::new("eval"), &write(t.path(), "nolabels.toml", text)])
        .fails_with(&["nolabels.toml", "labels is missing"]);
}

/// A count of 0 (evaluations, golden samples, timed repetitions) would run nothing and report
/// as if it had: an error, before anything is loaded.
#[test]
fn zero_counts_are_errors() {
    qdse(&["explore", "--budget", "0", "--out", "/nonexistent/never-written"]).fails_with(&["--budget", "at least 1"]);
    qdse(&["bench", "--repeats", "0"]).fails_with(&["--repeats", "at least 1"]);
    qdse(&["export", "--point", "p.toml", "--out", "/nonexistent/never-written", "--samples", "0"])
        .fails_with(&["--samples", "at least 1"]);
    let t = TempDir::new().unwrap();
    let cfg = config_with(
        t.path(),
        "budget0.toml",
        &lenet(),
        &fashion_images(),
        &fashion_labels(),
        "search_samples = 200\nlimit = 400",
        "[search]\nbudget = 0\n",
    );
    qdse(&[Path::new("eval"), &cfg]).fails_with(&["budget0.toml", "budget = 0", "at least 1"]);
}

/// `qdse eval` on the tiny experiment with `tail` appended to its config, after `edit` on the
/// whole text.
fn eval_config(edit: impl Fn(String) -> String, tail: &str) -> Run {
    let t = TempDir::new().unwrap();
    let cfg = config_with(
        t.path(),
        "c.toml",
        &lenet(),
        &fashion_images(),
        &fashion_labels(),
        "search_samples = 200\nlimit = 400\nconfirm_samples = 0",
        tail,
    );
    std::fs::write(&cfg, edit(std::fs::read_to_string(&cfg).unwrap())).unwrap();
    qdse(&[Path::new("eval"), &cfg])
}

/// A name that cannot be a run folder is refused when the config is read, by every subcommand,
/// not only by the explore that would write the folder.
#[test]
fn config_name_that_is_no_folder_name_is_an_error() {
    for bad in ["", "a/b", ".hidden"] {
        eval_config(|t| t.replace("name = \"cli-test\"", &format!("name = {bad:?}")), "").fails_with(&[
            "c.toml",
            &format!("name = '{bad}'"),
            "plain folder name",
        ]);
    }
}

/// A cost profile that is neither a shipped name nor a file was accepted until a subcommand
/// priced something.
#[test]
fn config_cost_profile_must_be_shipped_or_a_file() {
    eval_config(|t| t, "[cost]\nprofile = \"papr\"\n").fails_with(&[
        "c.toml",
        "[cost] profile = 'papr'",
        "paper, asic-45nm",
        "does not exist",
    ]);
    let folder = root().join("cost-models");
    eval_config(|t| t, &format!("[cost]\nprofile = {folder:?}\n")).fails_with(&[
        "c.toml",
        "[cost] profile",
        "is a folder",
    ]);
    eval_config(|t| t, &format!("[cost]\nprofile = {:?}\n", folder.join("asic-45nm.toml"))).ok();
}

/// A confidence bound asked for with no confirmation image to bound on was quietly dropped.
#[test]
fn confidence_without_confirmation_images_is_an_error() {
    eval_config(|t| t, "[search]\nconfidence = 0.9\n").fails_with(&[
        "c.toml",
        "[search] confidence = 0.9",
        "confirm_samples = 0",
    ]);
    eval_config(|t| t, "[search]\nconfidence = 0\n").ok();
}

/// An empty point file (a truncated or wrong file) was the uniform 8-bit point without a word.
#[test]
fn empty_point_file_is_an_error() {
    for text in ["", "# only a comment\n"] {
        eval_point(text).fails_with(&["point.toml", "sets nothing"]);
    }
}

#[test]
fn point_that_is_a_folder_is_an_error() {
    qdse(&["eval", "--point", "configs"]).fails_with(&["--point configs", "a folder, not a file"]);
}

/// More golden samples than the holdout split has were cut to what there was.
#[test]
fn export_more_samples_than_the_holdout_is_an_error() {
    let t = TempDir::new().unwrap();
    let cfg = tiny_config(t.path());
    let point = write(t.path(), "p.toml", "rounding = \"floor\"\n");
    let out = t.path().join("export");
    qdse(&[
        Path::new("export"),
        &cfg,
        Path::new("--point"),
        &point,
        Path::new("--out"),
        &out,
        Path::new("--samples"),
        Path::new("201"),
    ])
    .fails_with(&["--samples 201", "200 holdout images", "tiny.toml"]);
    assert!(!out.exists(), "nothing written");
}

#[test]
fn max_loss_out_of_range_is_an_error() {
    qdse(&["explore", "--max-loss", "1.5", "--out", "/nonexistent/never-written"]).fails_with(&[
        "--max-loss",
        "1.5",
        "[0, 1)",
    ]);
}

#[test]
fn point_bits_zero_is_an_error() {
    eval_point("[[layer]]\nname = \"/fc1/Gemm\"\nweights = { bits = 0 }\n").fails_with(&[
        "point.toml",
        "/fc1/Gemm",
        "weights",
        "bits = 0",
        "out of range",
    ]);
}

#[test]
fn point_bits_forty_is_an_error() {
    eval_point("[[layer]]\nname = \"/conv1/Conv\"\noutput = { bits = 40 }\n").fails_with(&[
        "point.toml",
        "/conv1/Conv",
        "output",
        "bits = 40",
        "out of range",
    ]);
}

#[test]
fn point_huge_frac_is_an_error() {
    eval_point("[[layer]]\nname = \"/fc2/Gemm\"\nbias = { bits = 8, frac = 1000 }\n").fails_with(&[
        "point.toml",
        "/fc2/Gemm",
        "bias",
        "frac = 1000",
        "out of range",
    ]);
}

#[test]
fn point_unknown_layer_is_an_error() {
    eval_point("[[layer]]\nname = \"/fc9/Gemm\"\noutput = { bits = 8 }\n").fails_with(&[
        "point.toml",
        "/fc9/Gemm",
        "not a node",
    ]);
    // A node that exists but owns no formats.
    eval_point("[[layer]]\nname = \"/MaxPool\"\noutput = { bits = 8 }\n").fails_with(&["/MaxPool", "owns no formats"]);
    // A misspelt key.
    eval_point("[[layer]]\nname = \"/fc1/Gemm\"\noutputs = { bits = 8 }\n").fails_with(&["point.toml", "outputs"]);
}

#[test]
fn point_unsigned_output_that_can_be_negative() {
    // fc3 is the logits layer: no ReLU, so its output can be negative.
    eval_point("[[layer]]\nname = \"/fc3/Gemm\"\noutput = { bits = 8, frac = 4, signed = false }\n").fails_with(&[
        "point.toml",
        "/fc3/Gemm",
        "unsigned",
        "negative",
    ]);
    // After a ReLU it is legal.
    eval_point("[[layer]]\nname = \"/fc2/Gemm\"\noutput = { bits = 8, frac = 4, signed = false }\n").ok();
}

// ---------------------------------------------------------------------------------------------
// Bad explore / cost options

#[test]
fn explore_unknown_strategy() {
    let t = TempDir::new().unwrap();
    let cfg = config_with(
        t.path(),
        "c.toml",
        &lenet(),
        &fashion_images(),
        &fashion_labels(),
        "search_samples = 20\nlimit = 40",
        "",
    );
    let out = t.path().join("run");
    qdse(&[
        Path::new("explore"),
        &cfg,
        Path::new("--strategy"),
        Path::new("simulated-annealing"),
        Path::new("--out"),
        &out,
    ])
    .fails_with(&[
        "invalid value 'simulated-annealing'",
        "--strategy",
        "uniform",
        "paper",
        "independent",
        "nsga2",
    ]);
}

/// A strategy is checked when the config is read, so a typo fails every subcommand, not only
/// `explore`, and before the model or data is loaded.
#[test]
fn config_with_an_unknown_strategy_fails_every_subcommand() {
    let t = TempDir::new().unwrap();
    let missing = t.path().join("no-such-model.onnx");
    let tail = "[search]\nstrategy = \"nsga3\"\n";
    let cfg =
        config_with(t.path(), "typo.toml", &missing, &fashion_images(), &fashion_labels(), "search_samples = 20", tail);
    for cmd in ["eval", "cost", "explore", "uniform"] {
        qdse(&[Path::new(cmd), &cfg]).fails_with(&["typo.toml", "nsga3", "uniform", "paper", "descent", "nsga2"]);
    }
}

fn cost_with_profile(profile: &str) -> (Run, PathBuf, TempDir) {
    let t = TempDir::new().unwrap();
    let cfg = config_with(
        t.path(),
        "c.toml",
        &lenet(),
        &fashion_images(),
        &fashion_labels(),
        "search_samples = 20\nlimit = 40",
        "",
    );
    let p = write(t.path(), "myhw.toml", profile);
    (qdse(&[Path::new("cost"), &cfg, Path::new("--profile"), &p]), p, t)
}

#[test]
fn cost_profile_unknown_key_names_file_and_line() {
    let (r, p, _t) = cost_with_profile(
        "name = \"t\"\nobjectives = [\"memory_bits\", \"mult_cost\"]\n\n[accumulator]\nguard_bitz = 3\n",
    );
    r.fails_with(&["myhw.toml", "guard_bitz"]);
    // `file:line:column` or `line N`.
    let at_line = format!("{}:5:", p.display());
    assert!(r.stderr.contains(&at_line) || r.stderr.contains("line 5"), "line 5 not named\n{}", r.dump());
}

#[test]
fn cost_profile_negative_cost() {
    let (r, p, _t) = cost_with_profile(
        "name = \"t\"\nobjectives = [\"memory_bits\", \"mult_cost\"]\n[storage.sram]\nread_pj_per_bit = -0.5\n",
    );
    r.fails_with(&["myhw.toml", "read_pj_per_bit", "-0.5", "negative"]);
    let at_line = format!("{}:4:", p.display());
    assert!(r.stderr.contains(&at_line) || r.stderr.contains("line 4"), "line 4 not named\n{}", r.dump());
}

#[test]
fn cost_unknown_profile_name() {
    let t = TempDir::new().unwrap();
    let cfg = config_with(
        t.path(),
        "c.toml",
        &lenet(),
        &fashion_images(),
        &fashion_labels(),
        "search_samples = 20\nlimit = 40",
        "",
    );
    qdse(&[Path::new("cost"), &cfg, Path::new("--profile"), Path::new("no-such-profile")])
        .fails_with(&["no-such-profile"]);
}

// ---------------------------------------------------------------------------------------------
// Pipes

/// `qdse inspect model | head -1`: the reader goes away after one line.
#[test]
fn closed_stdout_after_one_line_is_not_a_panic() {
    let mut child = Command::new(QDSE)
        .args([Path::new("inspect"), &lenet()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.starts_with("input "), "{first}");
    // The BufReader (and the pipe's read end) is dropped here.
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let status = child.wait().unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(status.code(), Some(0), "stderr: {err}");
}

/// The read end is closed before qdse writes anything: its first write fails with EPIPE.
#[test]
fn closed_stdout_before_any_output_is_not_a_panic() {
    for args in [vec!["inspect".into(), lenet()], vec!["--help".into()]] {
        let mut child = Command::new(QDSE)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let mut err = String::new();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        let status = child.wait().unwrap();
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(!err.contains("error:"), "{args:?}: a closed pipe is not an error: {err}");
        // Killed by SIGPIPE would be `None`; Rust ignores SIGPIPE, so the write fails instead.
        assert!(status.code().is_some(), "{args:?}: {status:?}");
        if args[0] == Path::new("inspect") {
            assert_eq!(status.code(), Some(0), "{args:?}: {err}");
        }
    }
}

/// `--help` lists every subcommand; `--version`; an unknown subcommand is a usage error.
#[test]
fn help_and_version() {
    let r = qdse(&["--help"]);
    r.ok();
    for c in ["inspect", "eval", "cost", "explore", "export", "report", "bench", "uniform"] {
        assert!(r.stdout.contains(c), "--help lacks {c}\n{}", r.dump());
    }
    let r = qdse(&["--version"]);
    r.ok();
    assert!(r.stdout.contains(env!("CARGO_PKG_VERSION")), "{}", r.dump());
    // Usage errors are clap's (exit code 2 as well).
    let r = qdse(&["frobnicate"]);
    assert_eq!(r.code, Some(2), "{}", r.dump());
    assert!(r.stderr.starts_with("error:") && !r.stderr.contains("panicked"), "{}", r.dump());
}

/// `[cost] primary` replaces the profile's primary objective for the search and the chosen
/// point: a name that is no objective fails when the config is read, one the profile lacks when
/// the profile is resolved, and the run folder records the one used (its profile copy says so).
#[test]
fn config_cost_primary_replaces_the_profiles() {
    eval_config(|t| t, "[cost]\nprimary = \"memroy_bits\"\n").fails_with(&[
        "c.toml",
        "[cost] primary = 'memroy_bits'",
        "memory_bits, mult_cost",
    ]);
    let t = TempDir::new().unwrap();
    let explore = |primary: &str| {
        let tail = format!("[search]\nstrategy = \"uniform\"\n[cost]\nprimary = \"{primary}\"\n");
        let cfg = config_with(
            t.path(),
            &format!("{primary}.toml"),
            &lenet(),
            &fashion_images(),
            &fashion_labels(),
            "search_samples = 20\nlimit = 40\nconfirm_samples = 0",
            &tail,
        );
        let out = t.path().join(primary);
        (qdse(&[Path::new("explore"), &cfg, Path::new("--out"), &out]), out)
    };
    explore("luts").0.fails_with(&["luts.toml", "[cost] primary = 'luts'", "profile paper", "memory_bits, mult_cost"]);
    assert!(!t.path().join("luts").exists(), "no run folder for a refused config");
    let (run, out) = explore("memory_bits");
    run.ok();
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["primary"], "memory_bits", "{summary}");
    let profile = std::fs::read_to_string(out.join("profile.toml")).unwrap();
    assert!(profile.starts_with("# The run's config replaces") && profile.contains("primary = \"mult_cost\""));
}
