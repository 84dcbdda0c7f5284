//! ONNX external data (src/model/external_data.rs): what `torch.onnx.export` writes by default
//! today, the dynamo exporter with the weights in `<model>.onnx.data` (tests/float_vs_onnx.rs
//! checks that such exports of the shipped nets compute what their legacy exports and
//! onnxruntime compute). A missing or short weights file and a location leaving the model's
//! folder are errors naming the file.
mod common;

use common::repo_file;
use prost::Message;
use qdse::model::onnx_proto as pb;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// The dynamo exports of the shipped nets (tests/fixtures/README.md).
const DYNAMO: [&str; 2] = ["mbv2-fashion", "resnet-fashion"];

fn fixture(name: &str) -> PathBuf {
    repo_file(&format!("tests/fixtures/{name}-dynamo.onnx"))
}

fn decode(path: &Path) -> pb::ModelProto {
    pb::ModelProto::decode(std::fs::read(path).unwrap().as_slice()).unwrap()
}

/// The number of initializers stored in an external file, and the file names they use.
fn external(m: &pb::ModelProto) -> (usize, Vec<String>) {
    let ext = pb::tensor_proto::DataLocation::External as i32;
    let g = m.graph.as_ref().unwrap();
    let tensors: Vec<&pb::TensorProto> = g.initializer.iter().filter(|t| t.data_location == ext).collect();
    let mut files: Vec<String> = tensors
        .iter()
        .flat_map(|t| t.external_data.iter().filter(|e| e.key == "location").map(|e| e.value.clone()))
        .collect();
    files.dedup();
    (tensors.len(), files)
}

/// Each dynamo fixture really keeps its weights outside the model file, in the file beside it
/// (tests/float_vs_onnx.rs checks what they compute).
#[test]
fn dynamo_fixtures_keep_their_weights_in_a_separate_file() {
    for name in DYNAMO {
        let (n, files) = external(&decode(&fixture(name)));
        assert!(n > 0, "{name}: the fixture has no external data, so it tests nothing");
        assert_eq!(files, vec![format!("{name}-dynamo.onnx.data")]);
        qdse::model::onnx::load(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// A copy of the resnet dynamo fixture in a scratch folder, its weights file beside it.
fn scratch_copy() -> (TempDir, PathBuf, PathBuf) {
    let tmp = TempDir::new().unwrap();
    let model = tmp.path().join("models").join("net.onnx");
    std::fs::create_dir(model.parent().unwrap()).unwrap();
    let mut m = decode(&fixture("resnet-fashion"));
    set_location(&mut m, "net.onnx.data");
    std::fs::write(&model, m.encode_to_vec()).unwrap();
    let data = model.with_file_name("net.onnx.data");
    std::fs::copy(repo_file("tests/fixtures/resnet-fashion-dynamo.onnx.data"), &data).unwrap();
    (tmp, model, data)
}

fn set_location(m: &mut pb::ModelProto, location: &str) {
    for t in &mut m.graph.as_mut().unwrap().initializer {
        for e in &mut t.external_data {
            if e.key == "location" {
                e.value = location.to_string();
            }
        }
    }
}

fn load_err(path: &Path) -> String {
    qdse::model::onnx::load(path).unwrap_err().to_string()
}

#[test]
fn missing_short_and_escaping_weights_files_are_errors_naming_the_file() {
    let (tmp, model, data) = scratch_copy();
    qdse::model::onnx::load(&model).expect("the renamed copy loads");

    // Short: the last tensor reaches past the end.
    let bytes = std::fs::read(&data).unwrap();
    std::fs::write(&data, &bytes[..bytes.len() - 4]).unwrap();
    let e = load_err(&model);
    assert!(e.contains(&data.display().to_string()) && e.contains("shorter than the model says"), "{e}");

    // Missing.
    std::fs::remove_file(&data).unwrap();
    let e = load_err(&model);
    assert!(e.contains(&data.display().to_string()) && e.contains("cannot open external data file"), "{e}");

    // Locations leaving the model's folder: '..', an absolute path, a symbolic link.
    let outside = tmp.path().join("net.onnx.data");
    std::fs::write(&outside, &bytes).unwrap();
    let mut m = decode(&model);
    for location in ["../net.onnx.data", outside.to_str().unwrap(), "./sub/../../net.onnx.data"] {
        set_location(&mut m, location);
        std::fs::write(&model, m.encode_to_vec()).unwrap();
        let e = load_err(&model);
        assert!(e.contains(location) && e.contains("not a relative path inside the model's folder"), "{location}: {e}");
    }
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&outside, &data).unwrap();
        set_location(&mut m, "net.onnx.data");
        std::fs::write(&model, m.encode_to_vec()).unwrap();
        let e = load_err(&model);
        assert!(e.contains(&data.display().to_string()) && e.contains("leads outside the model's folder"), "{e}");
    }

    // A bad offset, and no location at all.
    let mut m = decode(&fixture("resnet-fashion"));
    let t = &mut m.graph.as_mut().unwrap().initializer[0];
    t.external_data.retain(|e| e.key != "offset");
    t.external_data.push(pb::StringStringEntryProto { key: "offset".into(), value: "-3".into() });
    let name = t.name.clone();
    let e = qdse::model::onnx::import_model(&m).unwrap_err().to_string();
    assert!(e.contains(&name), "{e}");
    std::fs::write(&model, m.encode_to_vec()).unwrap();
    let e = load_err(&model);
    assert!(e.contains(&name) && e.contains("offset '-3' is not a byte count"), "{e}");
    let t = &mut m.graph.as_mut().unwrap().initializer[0];
    t.external_data.clear();
    std::fs::write(&model, m.encode_to_vec()).unwrap();
    let e = load_err(&model);
    assert!(e.contains("without a 'location' entry"), "{e}");
}

/// Imported from bytes, a model has no folder to read its weights from: an error saying so.
#[test]
fn external_data_needs_the_model_file() {
    let bytes = std::fs::read(fixture("resnet-fashion")).unwrap();
    let e = qdse::model::onnx::import(&bytes).unwrap_err().to_string();
    assert!(e.contains("only read when the model is loaded from its file"), "{e}");
}
