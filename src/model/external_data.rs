//! ONNX external data: tensors whose bytes are kept in a separate file beside the model (what
//! `torch.onnx.export` writes by default since the dynamo exporter: `model.onnx` plus
//! `model.onnx.data`).
//!
//! A tensor with `data_location = EXTERNAL` names its bytes with `external_data` entries:
//! `location` (a path relative to the model's folder), `offset` and `length` (bytes, decimal
//! strings; default 0 and "to the end of the file"). [`resolve`] reads them into `raw_data`
//! before lowering, so the importer sees an ordinary tensor. The location must stay inside the
//! model's folder: an absolute path, a `..` component or a symbolic link leading out of it is an
//! error (docs/architecture.md, "Model files"), as is a missing file or one shorter than
//! `offset + length`. Every error names the tensor and the file.
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use super::onnx::ImportError;
use super::onnx_proto as pb;

/// Replace the external data of every tensor in `model` (graph initializers and `Constant`
/// attribute tensors, subgraphs included) with its bytes, read from files in `dir`, the
/// folder the model file is in.
pub fn resolve(model: &mut pb::ModelProto, dir: &Path) -> Result<(), ImportError> {
    let Some(graph) = model.graph.as_mut() else { return Ok(()) };
    let mut files = Files { dir: dir.to_path_buf(), root: None, open: HashMap::new() };
    resolve_graph(graph, &mut files)
}

fn resolve_graph(g: &mut pb::GraphProto, files: &mut Files) -> Result<(), ImportError> {
    for t in &mut g.initializer {
        resolve_tensor(t, files)?;
    }
    for node in &mut g.node {
        for a in &mut node.attribute {
            for t in a.t.iter_mut().chain(a.tensors.iter_mut()) {
                resolve_tensor(t, files)?;
            }
            for sub in a.g.iter_mut().chain(a.graphs.iter_mut()) {
                resolve_graph(sub, files)?;
            }
        }
    }
    Ok(())
}

fn resolve_tensor(t: &mut pb::TensorProto, files: &mut Files) -> Result<(), ImportError> {
    if t.data_location != pb::tensor_proto::DataLocation::External as i32 {
        return Ok(());
    }
    let err = |msg: String| ImportError::Tensor { name: t.name.clone(), msg };
    let key = |k: &str| t.external_data.iter().find(|e| e.key == k).map(|e| e.value.as_str());
    let location = key("location").ok_or_else(|| err("external data without a 'location' entry".into()))?;
    let number = |k: &str| -> Result<Option<u64>, ImportError> {
        key(k)
            .map(|v| v.trim().parse::<u64>().map_err(|_| err(format!("external data {k} '{v}' is not a byte count"))))
            .transpose()
    };
    let (offset, length) = (number("offset")?.unwrap_or(0), number("length")?);
    let (path, file) = files.open(location).map_err(err)?;
    let size =
        file.metadata().map_err(|e| err(format!("cannot read external data file {}: {e}", path.display())))?.len();
    let length = match length {
        Some(l) => l,
        None => size.checked_sub(offset).ok_or_else(|| {
            err(format!("external data file {} holds {size} bytes, fewer than the offset {offset}", path.display()))
        })?,
    };
    if offset.checked_add(length).is_none_or(|end| end > size) {
        return Err(err(format!(
            "external data file {} holds {size} bytes, but the tensor's bytes are [{offset}, {offset} + {length}): \
             the file is shorter than the model says",
            path.display()
        )));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(length).map_err(|_| err("external data too large".into()))?);
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.take(length).read_to_end(&mut bytes))
        .map_err(|e| err(format!("cannot read external data file {}: {e}", path.display())))?;
    if bytes.len() as u64 != length {
        return Err(err(format!(
            "external data file {} ended early (read {} of {length} bytes)",
            path.display(),
            bytes.len()
        )));
    }
    t.raw_data = bytes;
    t.external_data.clear();
    t.data_location = pb::tensor_proto::DataLocation::Default as i32;
    Ok(())
}

/// The external data files of one model, each opened once.
struct Files {
    /// The model's folder, as given.
    dir: PathBuf,
    /// The model's folder with symbolic links resolved (computed on first use).
    root: Option<PathBuf>,
    open: HashMap<String, (PathBuf, File)>,
}

impl Files {
    /// The file a `location` names, checked to lie inside the model's folder.
    fn open(&mut self, location: &str) -> Result<(PathBuf, &mut File), String> {
        if !self.open.contains_key(location) {
            let entry = self.check_and_open(location)?;
            self.open.insert(location.to_string(), entry);
        }
        let (path, file) = self.open.get_mut(location).expect("inserted above");
        Ok((path.clone(), file))
    }

    fn check_and_open(&mut self, location: &str) -> Result<(PathBuf, File), String> {
        let rel = Path::new(location);
        let path = self.dir.join(rel);
        let inside = !location.is_empty()
            && !location.contains('\\')
            && rel.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !inside {
            return Err(format!(
                "external data location '{location}' is not a relative path inside the model's folder {} \
                 (absolute paths and '..' are refused)",
                self.dir.display()
            ));
        }
        let missing = |e: std::io::Error| format!("cannot open external data file {}: {e}", path.display());
        let real = std::fs::canonicalize(&path).map_err(missing)?;
        if self.root.is_none() {
            let root = std::fs::canonicalize(&self.dir)
                .map_err(|e| format!("cannot resolve the model's folder {}: {e}", self.dir.display()))?;
            self.root = Some(root);
        }
        let root = self.root.as_ref().expect("set above");
        if !real.starts_with(root) {
            return Err(format!(
                "external data file {} leads outside the model's folder {} (to {})",
                path.display(),
                self.dir.display(),
                real.display()
            ));
        }
        if !real.is_file() {
            return Err(format!("external data file {} is not a file", path.display()));
        }
        let file = File::open(&real).map_err(missing)?;
        Ok((path, file))
    }
}
