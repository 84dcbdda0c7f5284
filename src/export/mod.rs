//! `qdse export`: the hand-off to an RTL team. One folder holding everything needed to build
//! and check a bit-true implementation of a network at a given fixed-point assignment:
//!
//! * `formats.csv`: one row for the input and one per node (owners and pass-through nodes);
//! * `qdse_formats.svh` / `qdse_formats.h`: the same formats as SystemVerilog localparams
//!   (package `qdse_formats_pkg`) and C `#define`s;
//! * `weights/<idx>_<name>.w.mem` / `.b.mem`: weight and bias codes as `$readmemh` files;
//! * `golden/sample_<i>/...`: the integer codes of every tensor for a few samples, and
//!   `golden/expected.csv` with the integer logits and predicted classes;
//! * `rtl/qdse_layer.sv`: the reference datapath of a Conv / Dense / Affine layer, and
//!   `rtl/qdse_tb.sv`, a Verilator testbench that replays the golden vectors through it;
//! * `point.toml` (the assignment as a point file), `manifest.json` and `README.md`.
//!
//! The folder is written next to its destination (`<out>.tmp-<pid>`) and renamed into place
//! once complete, so a reader sees either the previous export or the new one, never a mix.

mod mem;
mod readme;
pub mod rtl;
mod table;

pub use mem::{hex_digits, mem_word, read_mem, write_mem};
pub use table::sanitize;

use crate::eval::fixed::FixedEngine;
use crate::eval::runner::argmax;
use crate::fixed::round::quantize;
use crate::fixed::Assignment;
use crate::model::Graph;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use table::{kebab, value_file, Row};

/// Golden samples an export carries unless the caller chooses otherwise.
pub const DEFAULT_GOLDEN_SAMPLES: usize = 16;

/// Marker in `manifest.json` that identifies a folder as a qdse export (and so safe to replace).
const MANIFEST_FORMAT: &str = "qdse-export";
const MANIFEST_VERSION: u32 = 1;

/// Provenance written into `manifest.json` and the README.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportMeta {
    /// The model (its name or ONNX path).
    pub model: String,
    /// The experiment config the export was made from, if any.
    pub config: Option<String>,
    /// Version of the tool that wrote the export.
    pub tool_version: String,
}

impl ExportMeta {
    /// Provenance with this build's version.
    pub fn new(model: impl Into<String>, config: Option<String>) -> Self {
        ExportMeta { model: model.into(), config, tool_version: env!("CARGO_PKG_VERSION").into() }
    }
}

/// Write the export of `graph` at assignment `a` into the folder `out`, atomically.
///
/// `samples` are preprocessed inputs (as the float engine sees them) with their labels; each
/// becomes a golden vector set. An existing `out` is replaced only once the new export is
/// complete, and only if it is a previous qdse export or an empty folder.
pub fn export(
    graph: &Graph,
    a: &Assignment,
    samples: &[(Vec<f64>, usize)],
    out: &Path,
    meta: &ExportMeta,
) -> Result<()> {
    a.validate(graph, &graph.non_negative(!a.input.signed)).context("the assignment does not fit the model")?;
    let n_in = graph.values[graph.input].numel();
    for (i, (x, _)) in samples.iter().enumerate() {
        if x.len() != n_in {
            bail!("golden sample {i} has {} values, the model's input has {n_in}", x.len());
        }
    }
    let name = out.file_name().with_context(|| format!("export folder {} has no name", out.display()))?;
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    check_replaceable(out)?;
    std::fs::create_dir_all(parent).with_context(|| format!("cannot create folder {}", parent.display()))?;
    let pid = std::process::id();
    let sibling = |tag: &str| {
        let mut n = name.to_os_string();
        n.push(format!(".{tag}-{pid}"));
        parent.join(n)
    };
    let tmp = sibling("tmp");
    if tmp.symlink_metadata().is_ok() {
        remove(&tmp)?;
    }
    std::fs::create_dir(&tmp).with_context(|| format!("cannot create folder {}", tmp.display()))?;
    let result = write_export(graph, a, samples, &tmp, meta).and_then(|()| publish(&tmp, out, &sibling("old")));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result.with_context(|| format!("cannot write the export {}", out.display()))
}

fn remove(p: &Path) -> Result<()> {
    let meta = p.symlink_metadata().with_context(|| format!("cannot inspect {}", p.display()))?;
    if meta.is_dir() { std::fs::remove_dir_all(p) } else { std::fs::remove_file(p) }
        .with_context(|| format!("cannot remove {}", p.display()))
}

/// `out` may be replaced if it is absent, an empty folder, or a previous export.
fn check_replaceable(out: &Path) -> Result<()> {
    let Ok(meta) = out.symlink_metadata() else { return Ok(()) };
    if !meta.is_dir() {
        bail!("{} exists and is not a folder; refusing to replace it", out.display());
    }
    let empty = std::fs::read_dir(out).with_context(|| format!("cannot read {}", out.display()))?.next().is_none();
    let is_export = std::fs::read_to_string(out.join("manifest.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v["format"] == MANIFEST_FORMAT);
    if !empty && !is_export {
        bail!("{} exists and is not a qdse export; refusing to replace it", out.display());
    }
    Ok(())
}

/// Move the finished `tmp` to `out`, replacing a previous export (moved aside to `old` first
/// and restored if the final rename fails).
fn publish(tmp: &Path, out: &Path, old: &Path) -> Result<()> {
    check_replaceable(out)?;
    if out.symlink_metadata().is_err() {
        return std::fs::rename(tmp, out)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), out.display()));
    }
    if old.symlink_metadata().is_ok() {
        remove(old)?;
    }
    std::fs::rename(out, old).with_context(|| format!("cannot move the previous export {} aside", out.display()))?;
    if let Err(e) = std::fs::rename(tmp, out) {
        let _ = std::fs::rename(old, out);
        return Err(e).with_context(|| format!("cannot rename {} to {}", tmp.display(), out.display()));
    }
    std::fs::remove_dir_all(old).with_context(|| format!("cannot remove the previous export {}", old.display()))
}

fn write_file(dir: &Path, rel: &str, bytes: &[u8]) -> Result<()> {
    let p = dir.join(rel);
    std::fs::write(&p, bytes).with_context(|| format!("cannot write {}", p.display()))
}

fn mkdir(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).with_context(|| format!("cannot create folder {}", p.display()))
}

/// The integer codes, logits and prediction of one golden sample.
struct Golden {
    values: Vec<Vec<i64>>,
    label: usize,
    predicted: usize,
}

fn write_export(
    graph: &Graph,
    a: &Assignment,
    samples: &[(Vec<f64>, usize)],
    dir: &Path,
    meta: &ExportMeta,
) -> Result<()> {
    let rows = table::rows(graph, a);
    let n = samples.len();
    write_file(dir, "formats.csv", &table::formats_csv(graph, a, &rows)?)?;
    write_file(dir, "qdse_formats.svh", table::svh(graph, a, &rows, &meta.model, n).as_bytes())?;
    write_file(dir, "qdse_formats.h", table::c_header(graph, a, &rows, &meta.model, n).as_bytes())?;
    write_file(dir, "point.toml", a.to_toml(graph).as_bytes())?;
    write_weights(graph, a, &rows, dir)?;
    let golden = run_golden(graph, a, samples)?;
    write_golden(graph, a, &golden, dir)?;
    mkdir(&dir.join("rtl"))?;
    write_file(dir, "rtl/qdse_layer.sv", rtl::DATAPATH_SV.as_bytes())?;
    write_file(dir, "rtl/qdse_tb.sv", rtl::testbench(graph, a, &rows, n)?.as_bytes())?;
    write_file(dir, "README.md", readme::readme(graph, a, &rows, meta, n).as_bytes())?;
    write_manifest(graph, a, &rows, meta, &golden, dir)
}

/// Weight and bias codes of every parameterised layer, quantized exactly as the engine does.
fn write_weights(graph: &Graph, a: &Assignment, rows: &[Row], dir: &Path) -> Result<()> {
    mkdir(&dir.join("weights"))?;
    for r in rows {
        let (Some(i), Some(wf), Some(bf)) = (r.layer, r.weights, r.bias) else { continue };
        let (w, b) = graph.nodes[i].op.params().context("a layer with weight formats has parameters")?;
        let l = a.layer_of(i).context("a layer with weight formats owns them")?;
        let wq = l.weight_codes(w, &l.weight_fracs(w, b.len()), a.arith);
        let bq: Vec<i64> = b.iter().map(|&x| quantize(x, bf, a.arith)).collect();
        write_mem(&dir.join(r.weights_file().unwrap_or_default()), &wq, wf.bits, true)?;
        write_mem(&dir.join(r.bias_file().unwrap_or_default()), &bq, bf.bits, true)?;
        if let (Some(file), Some(fracs)) = (r.w_frac_file(), &r.w_fracs) {
            // Offsets lie in -64..=64: 8-bit two's complement words.
            let codes: Vec<i64> = fracs.iter().map(|&f| i64::from(f)).collect();
            write_mem(&dir.join(file), &codes, 8, true)?;
        }
    }
    Ok(())
}

fn run_golden(graph: &Graph, a: &Assignment, samples: &[(Vec<f64>, usize)]) -> Result<Vec<Golden>> {
    let engine = FixedEngine::new(graph, a)?;
    Ok(samples
        .iter()
        .map(|(x, label)| {
            let mut codes = Vec::with_capacity(x.len());
            engine.quantize_input(x, &mut codes);
            let values = engine.forward_all(&codes);
            let predicted = argmax(&values[graph.output]);
            Golden { values, label: *label, predicted }
        })
        .collect())
}

fn write_golden(graph: &Graph, a: &Assignment, golden: &[Golden], dir: &Path) -> Result<()> {
    let gdir = dir.join("golden");
    mkdir(&gdir)?;
    let fmts = a.value_formats(graph);
    for (i, g) in golden.iter().enumerate() {
        let sdir = gdir.join(format!("sample_{i}"));
        mkdir(&sdir)?;
        let fin = fmts[graph.input];
        write_mem(&sdir.join("input.mem"), &g.values[graph.input], fin.bits, fin.signed)?;
        for (v, codes) in g.values.iter().enumerate() {
            write_mem(&sdir.join(value_file(graph, v)), codes, fmts[v].bits, fmts[v].signed)?;
        }
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    let classes = graph.num_classes();
    let mut header = vec!["sample".to_string(), "label".into(), "predicted".into()];
    header.extend((0..classes).map(|c| format!("logit_{c}")));
    w.write_record(&header)?;
    for (i, g) in golden.iter().enumerate() {
        let mut rec = vec![i.to_string(), g.label.to_string(), g.predicted.to_string()];
        rec.extend(g.values[graph.output].iter().map(i64::to_string));
        w.write_record(&rec)?;
    }
    let bytes = w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
    write_file(dir, "golden/expected.csv", &bytes)
}

/// Every file under `dir` (relative, `/`-separated, sorted) with its size in bytes.
fn list_files(dir: &Path) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("cannot read {}", d.display()))? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                let rel = entry
                    .path()
                    .strip_prefix(dir)?
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push((rel, meta.len()));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn format_json(f: crate::fixed::Format) -> serde_json::Value {
    serde_json::json!({"bits": f.bits, "frac": f.frac, "signed": f.signed})
}

fn write_manifest(
    graph: &Graph,
    a: &Assignment,
    rows: &[Row],
    meta: &ExportMeta,
    golden: &[Golden],
    dir: &Path,
) -> Result<()> {
    let point: serde_json::Value = toml::from_str(&a.to_toml(graph)).context("the point file reads back")?;
    let fmts = a.value_formats(graph);
    let value = |v: usize| {
        serde_json::json!({
            "value": v,
            "name": graph.values[v].name,
            "shape": graph.shape(v),
            "format": format_json(fmts[v]),
            "golden_file": value_file(graph, v),
        })
    };
    let layers: Vec<serde_json::Value> = rows
        .iter()
        .filter_map(|r| {
            let i = r.layer?;
            Some(serde_json::json!({
                "layer": i,
                "ident": r.ident,
                "node": r.node,
                "op": r.op,
                "owns_formats": r.role == table::Role::Owner,
                "inputs": r.input_values,
                "output": r.output_value,
                "weights_file": r.weights_file(),
                "w_frac_file": r.w_frac_file(),
                "bias_file": r.bias_file(),
            }))
        })
        .collect();
    let correct = golden.iter().filter(|g| g.label == g.predicted).count();
    let files: Vec<serde_json::Value> =
        list_files(dir)?.into_iter().map(|(path, bytes)| serde_json::json!({"path": path, "bytes": bytes})).collect();
    let m = serde_json::json!({
        "format": MANIFEST_FORMAT,
        "format_version": MANIFEST_VERSION,
        "model": meta.model,
        "config": meta.config,
        "tool": "qdse",
        "tool_version": meta.tool_version,
        "arith": {
            "rounding": kebab(&a.arith.rounding),
            "overflow": kebab(&a.arith.overflow),
            "range": kebab(&a.arith.range),
        },
        "assignment": point,
        "input": value(graph.input),
        "output": value(graph.output),
        "num_classes": graph.num_classes(),
        "layers": layers,
        "golden": {"samples": golden.len(), "correct": correct},
        "files": files,
    });
    write_file(dir, "manifest.json", format!("{}\n", serde_json::to_string_pretty(&m)?).as_bytes())
}
