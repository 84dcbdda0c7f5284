//! ONNX import: decode a `ModelProto` (prost types in [`super::onnx_proto`]) and lower it into
//! the IR of [`super::ir`].
//!
//! Lowering runs in three steps:
//! 1. Decode, collect constants (initializers), find the one graph input and output, order the
//!    nodes topologically (dangling inputs and cycles are errors) and keep the nodes the output
//!    depends on.
//! 2. Walk the nodes in order. Every ONNX tensor becomes either a constant (initializers,
//!    `Constant`, and everything computed from constants and from known shapes: the
//!    `Shape -> Gather -> Unsqueeze -> Concat` chains exporters emit for `Reshape`, folded here
//!    over int64/float tensors) or an activation (an IR value with a per-sample shape). Ops on
//!    activations become pre-IR nodes; shapes are inferred and checked as we go.
//! 3. Fuse, in this order (docs/fixed-point.md, "Which node owns which format"): an `Add` of a
//!    constant into the bias of the Conv/Dense it alone consumes; a BatchNormalization into the
//!    Conv/Dense it alone consumes (else it becomes an `Affine` layer); a Relu/Clip into the
//!    Conv/Dense/Affine/Add it alone consumes (else an `Activation` layer). Unused values are
//!    dropped and the rest renumbered.
//!
//! The batch axis: the graph input is `[N, C, H, W]` or `[N, F]` with any (usually symbolic) N;
//! IR shapes drop it. Shape arithmetic is folded with N = 1, and a `Reshape` must keep the
//! batch axis (its folded target's first entry is 1, or `-1`/`0` resolving to 1).
//!
//! Every float parameter is converted from the model's f32 (or f64/f16/bf16) to f64 and all
//! folding arithmetic is done in f64.
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use ndarray::{ArrayD, Axis, IxDyn};
use prost::Message;

use super::ir::{Activation, Affine, Conv, Dense, Graph, Node, Op, Value, ValueId, Window};
use super::onnx_proto as pb;

/// Why a model could not be imported. Messages name the node (name and op type) where one is
/// at fault.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a (complete) ONNX protobuf.
    #[error("not an ONNX model: {0}")]
    NotOnnx(String),
    #[error("ONNX model has no graph")]
    MissingGraph,
    /// A problem with the graph as a whole: inputs, outputs, opsets.
    #[error("{0}")]
    Graph(String),
    /// An initializer or constant tensor that cannot be read.
    #[error("tensor '{name}': {msg}")]
    Tensor { name: String, msg: String },
    #[error("node '{node}' (op {op}): unsupported op")]
    UnsupportedOp { node: String, op: String },
    #[error("node '{node}' (op {op}): input '{input}' is not produced by any node, initializer or graph input")]
    DanglingInput { node: String, op: String, input: String },
    #[error("node '{node}' (op {op}): the graph has a cycle through this node")]
    Cycle { node: String, op: String },
    /// Anything else wrong with one node: attributes, shapes, non-constant weights, fusing.
    #[error("node '{node}' (op {op}): {msg}")]
    Node { node: String, op: String, msg: String },
}

type Result<T> = std::result::Result<T, ImportError>;

/// Reads and imports an ONNX file, with its external data files if it has any
/// ([`super::external_data`]).
pub fn load(path: &Path) -> Result<Graph> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Io { path: path.to_path_buf(), source })?;
    let mut model = pb::ModelProto::decode(bytes.as_slice()).map_err(|e| ImportError::NotOnnx(e.to_string()))?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    super::external_data::resolve(&mut model, dir)?;
    import_model(&model)
}

/// Imports an ONNX model from its serialized bytes.
pub fn import(bytes: &[u8]) -> Result<Graph> {
    let model = pb::ModelProto::decode(bytes).map_err(|e| ImportError::NotOnnx(e.to_string()))?;
    import_model(&model)
}

/// Imports a decoded ONNX model.
pub fn import_model(model: &pb::ModelProto) -> Result<Graph> {
    let Some(graph) = model.graph.as_ref() else {
        if model.ir_version == 0 && model.opset_import.is_empty() {
            return Err(ImportError::NotOnnx("no graph, IR version or opset (is this an ONNX file?)".into()));
        }
        return Err(ImportError::MissingGraph);
    };
    let opset = model
        .opset_import
        .iter()
        .filter(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .max()
        .ok_or_else(|| ImportError::NotOnnx("no opset_import for the default ONNX domain (truncated file?)".into()))?;
    Lowering::new(opset).run(graph)
}

// ------------------------------------------------------------------------------------------
// Constant tensors

/// Largest constant the folder will materialise (elements), and largest activation (per
/// sample); bigger ones are errors rather than allocations.
const MAX_ELEMS: usize = 1 << 28;
/// Largest spatial attribute value (kernel, stride, pad, dilation) accepted.
const MAX_ATTR: i64 = 1 << 20;

#[derive(Debug, Clone, PartialEq)]
enum Data {
    F(Vec<f64>),
    I(Vec<i64>),
}

/// A constant tensor: floats as f64, integers (and bools) as i64.
#[derive(Debug, Clone, PartialEq)]
struct Tensor {
    dims: Vec<usize>,
    data: Data,
}

impl Tensor {
    fn ints(dims: Vec<usize>, v: Vec<i64>) -> Tensor {
        Tensor { dims, data: Data::I(v) }
    }
    fn floats(dims: Vec<usize>, v: Vec<f64>) -> Tensor {
        Tensor { dims, data: Data::F(v) }
    }
    fn len(&self) -> usize {
        match &self.data {
            Data::F(v) => v.len(),
            Data::I(v) => v.len(),
        }
    }
    fn to_f64(&self) -> Vec<f64> {
        match &self.data {
            Data::F(v) => v.clone(),
            Data::I(v) => v.iter().map(|&x| x as f64).collect(),
        }
    }
    fn as_ints(&self) -> Option<&[i64]> {
        match &self.data {
            Data::I(v) => Some(v),
            Data::F(_) => None,
        }
    }
    fn with_dims(&self, dims: Vec<usize>) -> Tensor {
        Tensor { dims, data: self.data.clone() }
    }
    /// Picks elements by flat index (used by gather/slice/broadcast).
    fn pick(&self, dims: Vec<usize>, idx: &[usize]) -> Tensor {
        let data = match &self.data {
            Data::F(v) => Data::F(idx.iter().map(|&i| v[i]).collect()),
            Data::I(v) => Data::I(idx.iter().map(|&i| v[i]).collect()),
        };
        Tensor { dims, data }
    }
}

fn numel(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

fn shape_str(dims: &[usize]) -> String {
    format!("[{}]", dims.iter().map(std::string::ToString::to_string).collect::<Vec<_>>().join(", "))
}

fn f16_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let frac = f64::from(h & 0x3ff);
    match exp {
        0 => sign * frac * 2f64.powi(-24),
        31 if frac == 0.0 => sign * f64::INFINITY,
        31 => f64::NAN,
        _ => sign * (1.0 + frac / 1024.0) * 2f64.powi(exp - 15),
    }
}

fn bf16_to_f64(h: u16) -> f64 {
    f64::from(f32::from_bits(u32::from(h) << 16))
}

/// Reads a `TensorProto` (raw little-endian data or the typed fields).
fn read_tensor(t: &pb::TensorProto) -> std::result::Result<Tensor, String> {
    use pb::tensor_proto::DataType as D;
    if t.data_location == pb::tensor_proto::DataLocation::External as i32 {
        return Err(
            "external data (a separate weights file) is only read when the model is loaded from its file".into()
        );
    }
    let mut dims = Vec::with_capacity(t.dims.len());
    for &d in &t.dims {
        if d < 0 {
            return Err(format!("negative dimension {d}"));
        }
        dims.push(usize::try_from(d).map_err(|_| format!("dimension {d} too large"))?);
    }
    let n = numel(&dims).filter(|&n| n <= MAX_ELEMS).ok_or_else(|| format!("too many elements (dims {:?})", t.dims))?;
    let raw = &t.raw_data;
    let dt = D::try_from(t.data_type).map_err(|_| format!("unknown data type {}", t.data_type))?;
    // element size in raw_data, and how to decode one element
    let elem = match dt {
        D::Float | D::Int32 | D::Uint32 => 4,
        D::Double | D::Int64 | D::Uint64 => 8,
        D::Float16 | D::Bfloat16 | D::Int16 | D::Uint16 => 2,
        D::Int8 | D::Uint8 | D::Bool => 1,
        other => return Err(format!("data type {} is not supported", other.as_str_name())),
    };
    let typed_len = match dt {
        D::Float => t.float_data.len(),
        D::Double => t.double_data.len(),
        D::Int64 => t.int64_data.len(),
        D::Uint32 | D::Uint64 => t.uint64_data.len(),
        _ => t.int32_data.len(),
    };
    let from_raw = !raw.is_empty() || typed_len == 0;
    let got = if from_raw { raw.len() / elem } else { typed_len };
    if (from_raw && raw.len() != n * elem) || (!from_raw && typed_len != n) {
        return Err(format!(
            "dims {} need {n} values, found {got} ({})",
            shape_str(&dims),
            if from_raw { "raw_data" } else { "typed data" }
        ));
    }
    let chunks = raw.chunks_exact(elem.max(1));
    let le2 = |c: &[u8]| u16::from_le_bytes([c[0], c[1]]);
    let le4 = |c: &[u8]| [c[0], c[1], c[2], c[3]];
    let le8 = |c: &[u8]| [c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]];
    let data = match dt {
        D::Float if from_raw => Data::F(chunks.map(|c| f64::from(f32::from_le_bytes(le4(c)))).collect()),
        D::Float => Data::F(t.float_data.iter().map(|&x| f64::from(x)).collect()),
        D::Double if from_raw => Data::F(chunks.map(|c| f64::from_le_bytes(le8(c))).collect()),
        D::Double => Data::F(t.double_data.clone()),
        D::Float16 if from_raw => Data::F(chunks.map(|c| f16_to_f64(le2(c))).collect()),
        D::Float16 => Data::F(t.int32_data.iter().map(|&x| f16_to_f64(x as u16)).collect()),
        D::Bfloat16 if from_raw => Data::F(chunks.map(|c| bf16_to_f64(le2(c))).collect()),
        D::Bfloat16 => Data::F(t.int32_data.iter().map(|&x| bf16_to_f64(x as u16)).collect()),
        D::Int64 if from_raw => Data::I(chunks.map(|c| i64::from_le_bytes(le8(c))).collect()),
        D::Int64 => Data::I(t.int64_data.clone()),
        D::Uint64 if from_raw => Data::I(chunks.map(|c| u64::from_le_bytes(le8(c)) as i64).collect()),
        D::Uint64 | D::Uint32 if !from_raw => Data::I(t.uint64_data.iter().map(|&x| x as i64).collect()),
        D::Uint32 => Data::I(chunks.map(|c| i64::from(u32::from_le_bytes(le4(c)))).collect()),
        D::Int32 if from_raw => Data::I(chunks.map(|c| i64::from(i32::from_le_bytes(le4(c)))).collect()),
        D::Int16 if from_raw => Data::I(chunks.map(|c| i64::from(le2(c) as i16)).collect()),
        D::Uint16 if from_raw => Data::I(chunks.map(|c| i64::from(le2(c))).collect()),
        D::Int8 if from_raw => Data::I(chunks.map(|c| i64::from(c[0] as i8)).collect()),
        D::Uint8 if from_raw => Data::I(chunks.map(|c| i64::from(c[0])).collect()),
        D::Bool if from_raw => Data::I(chunks.map(|c| i64::from(c[0] != 0)).collect()),
        // int32, int16, uint16, int8, uint8, bool in int32_data
        D::Bool => Data::I(t.int32_data.iter().map(|&x| i64::from(x != 0)).collect()),
        _ => Data::I(t.int32_data.iter().map(|&x| i64::from(x)).collect()),
    };
    Ok(Tensor { dims, data })
}

// ------------------------------------------------------------------------------------------
// Constant folding helpers (shape subgraphs)

/// Numpy-style broadcast of two shapes.
fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i + a.len() >= r { a[i + a.len() - r] } else { 1 };
        let db = if i + b.len() >= r { b[i + b.len() - r] } else { 1 };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

/// The flat index of every element of a tensor of shape `dims`, plus `offset`, as an n-d array.
/// The folds that only move elements (broadcast, gather, slice, concat) move these positions
/// with ndarray, and [`Tensor::pick`] then moves the values, of either type, the same way.
fn positions(dims: &[usize], offset: usize) -> ArrayD<usize> {
    let n = numel(dims).unwrap_or(0);
    ArrayD::from_shape_vec(IxDyn(dims), (offset..offset + n).collect()).expect("numel(dims) positions")
}

/// For each flat index of `out`, the flat index into a tensor of shape `src` broadcast to it
/// (None: `src` does not broadcast to `out`).
fn broadcast_positions(out: &[usize], src: &[usize]) -> Option<Vec<usize>> {
    Some(positions(src, 0).broadcast(IxDyn(out))?.iter().copied().collect())
}

fn norm_axis(axis: i64, rank: usize) -> Option<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    (0..r).contains(&a).then_some(a as usize)
}

// ------------------------------------------------------------------------------------------
// Lowering state

#[derive(Debug, Clone)]
enum Sym {
    Const(Rc<Tensor>),
    Act(ValueId),
}

#[derive(Debug, Clone)]
struct Bn {
    gamma: Vec<f64>,
    beta: Vec<f64>,
    mean: Vec<f64>,
    var: Vec<f64>,
    eps: f64,
}

impl Bn {
    fn scale(&self) -> Vec<f64> {
        self.gamma.iter().zip(&self.var).map(|(g, v)| g / (v + self.eps).sqrt()).collect()
    }
}

#[derive(Debug, Clone)]
enum POp {
    Ir(Op),
    /// BatchNormalization: folded into its producer or turned into `Affine`.
    Bn(Bn),
    /// Activation + per-channel constant (one entry per channel, or one for all): a bias.
    AddConst(Vec<f64>),
}

#[derive(Debug, Clone)]
struct PNode {
    name: String,
    onnx_op: String,
    op: POp,
    inputs: Vec<ValueId>,
    output: ValueId,
}

impl PNode {
    fn err(&self, msg: impl Into<String>) -> ImportError {
        ImportError::Node { node: self.name.clone(), op: self.onnx_op.clone(), msg: msg.into() }
    }
}

/// Error context of the node being lowered.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    name: &'a str,
    op: &'a str,
}

impl Ctx<'_> {
    fn err(&self, msg: impl fmt::Display) -> ImportError {
        ImportError::Node { node: self.name.into(), op: self.op.into(), msg: msg.to_string() }
    }
}

struct Lowering {
    opset: i64,
    syms: HashMap<String, Sym>,
    values: Vec<Value>,
    nodes: Vec<PNode>,
    names: HashSet<String>,
}

fn attr<'n>(node: &'n pb::NodeProto, name: &str) -> Option<&'n pb::AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn attr_int(node: &pb::NodeProto, name: &str, default: i64) -> i64 {
    attr(node, name).map_or(default, |a| a.i)
}

fn attr_float(node: &pb::NodeProto, name: &str) -> Option<f64> {
    attr(node, name).map(|a| f64::from(a.f))
}

fn attr_ints<'n>(node: &'n pb::NodeProto, name: &str) -> Option<&'n [i64]> {
    attr(node, name).map(|a| a.ints.as_slice())
}

fn attr_str(node: &pb::NodeProto, name: &str) -> Option<String> {
    attr(node, name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

/// Spatial attribute list of exactly `n` entries, each in `min..=MAX_ATTR`.
fn spatial(ctx: Ctx, node: &pb::NodeProto, name: &str, n: usize, min: i64, default: usize) -> Result<Vec<usize>> {
    let Some(v) = attr_ints(node, name) else {
        return Ok(vec![default; n]);
    };
    if v.len() != n {
        return Err(ctx.err(format!("attribute {name} must have {n} entries, got {v:?}")));
    }
    v.iter()
        .map(|&x| {
            if (min..=MAX_ATTR).contains(&x) {
                Ok(x as usize)
            } else {
                Err(ctx.err(format!("attribute {name} = {v:?} is out of range")))
            }
        })
        .collect()
}

/// Output size of one spatial axis (floor mode), checked.
fn out_dim(inp: usize, k: usize, s: usize, d: usize, pb: usize, pe: usize) -> Option<usize> {
    let eff = (k.checked_sub(1)?).checked_mul(d)?.checked_add(1)?;
    let padded = inp.checked_add(pb)?.checked_add(pe)?;
    if padded < eff || s == 0 {
        return None;
    }
    Some((padded - eff) / s + 1)
}

/// Window geometry of a Conv/pool node on an `[h, w]` input: kernel from `kernel`, strides,
/// dilations, pads or auto_pad. Checks that the output is non-empty; handles `ceil_mode` when
/// it does not change the output size.
fn window(
    ctx: Ctx,
    node: &pb::NodeProto,
    kernel: [usize; 2],
    hw: [usize; 2],
    pool: bool,
) -> Result<(Window, [usize; 2])> {
    let stride = spatial(ctx, node, "strides", 2, 1, 1)?;
    let dilation = spatial(ctx, node, "dilations", 2, 1, 1)?;
    let auto_pad = attr_str(node, "auto_pad").unwrap_or_else(|| "NOTSET".into());
    let pads: [usize; 4] = match auto_pad.as_str() {
        "NOTSET" | "" => {
            let p = spatial(ctx, node, "pads", 4, 0, 0)?;
            [p[0], p[1], p[2], p[3]]
        }
        "VALID" => [0; 4],
        "SAME_UPPER" | "SAME_LOWER" => {
            let mut p = [0usize; 4];
            for ax in 0..2 {
                let out = hw[ax].div_ceil(stride[ax]);
                let eff = (kernel[ax] - 1) * dilation[ax] + 1;
                let total = ((out.max(1) - 1) * stride[ax] + eff).saturating_sub(hw[ax]);
                let (small, big) = (total / 2, total - total / 2);
                if auto_pad == "SAME_UPPER" {
                    (p[ax], p[ax + 2]) = (small, big);
                } else {
                    (p[ax], p[ax + 2]) = (big, small);
                }
            }
            p
        }
        other => return Err(ctx.err(format!("auto_pad '{other}' is not supported"))),
    };
    let win = Window { kernel, stride: [stride[0], stride[1]], pads, dilation: [dilation[0], dilation[1]] };
    let mut out = [0usize; 2];
    for ax in 0..2 {
        out[ax] = out_dim(hw[ax], kernel[ax], stride[ax], dilation[ax], pads[ax], pads[ax + 2]).ok_or_else(|| {
            ctx.err(format!(
                "kernel {}x{} (dilation {:?}) does not fit the padded input {}x{} (pads {:?})",
                kernel[0], kernel[1], win.dilation, hw[0], hw[1], pads
            ))
        })?;
    }
    if pool && attr_int(node, "ceil_mode", 0) != 0 {
        // ceil mode gives one more output where the last window would start inside the input
        for ax in 0..2 {
            let eff = (kernel[ax] - 1) * dilation[ax] + 1;
            let span = hw[ax] + pads[ax] + pads[ax + 2] - eff;
            if !span.is_multiple_of(stride[ax]) {
                return Err(ctx.err(format!(
                    "ceil_mode=1 changes the output size here ({}x{} input); not supported",
                    hw[0], hw[1]
                )));
            }
        }
    }
    Ok((win, out))
}

impl Lowering {
    fn new(opset: i64) -> Self {
        Lowering { opset, syms: HashMap::new(), values: Vec::new(), nodes: Vec::new(), names: HashSet::new() }
    }

    fn new_value(&mut self, name: &str, shape: Vec<usize>) -> ValueId {
        self.values.push(Value { name: name.to_string(), shape });
        self.values.len() - 1
    }

    fn shape(&self, v: ValueId) -> &[usize] {
        &self.values[v].shape
    }

    fn run(mut self, g: &pb::GraphProto) -> Result<Graph> {
        // constants
        let mut init_names = HashSet::new();
        for t in &g.initializer {
            let tensor = read_tensor(t).map_err(|msg| ImportError::Tensor { name: t.name.clone(), msg })?;
            init_names.insert(t.name.clone());
            self.syms.insert(t.name.clone(), Sym::Const(Rc::new(tensor)));
        }
        if !g.sparse_initializer.is_empty() {
            return Err(ImportError::Graph("sparse initializers are not supported".into()));
        }

        // the one input
        let inputs: Vec<&pb::ValueInfoProto> = g.input.iter().filter(|i| !init_names.contains(&i.name)).collect();
        let [input] = inputs.as_slice() else {
            let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
            return Err(ImportError::Graph(format!(
                "the graph must have exactly one input that is not an initializer, found {}: {names:?}",
                inputs.len()
            )));
        };
        let in_shape = input_shape(input)?;
        let in_id = self.new_value(&input.name, in_shape);
        self.syms.insert(input.name.clone(), Sym::Act(in_id));

        // the one output
        let [output] = g.output.as_slice() else {
            let names: Vec<&str> = g.output.iter().map(|o| o.name.as_str()).collect();
            return Err(ImportError::Graph(format!(
                "the graph must have exactly one output, found {}: {names:?}",
                g.output.len()
            )));
        };

        let order = topo_order(g, &init_names, &input.name, &output.name)?;
        // every name that something reads (to reject used secondary outputs)
        let mut read: HashSet<&str> = g.node.iter().flat_map(|n| n.input.iter().map(String::as_str)).collect();
        read.insert(output.name.as_str());

        for &i in &order {
            let node = &g.node[i];
            let name = if node.name.is_empty() { format!("{}_{i}", node.op_type) } else { node.name.clone() };
            let name = self.unique_name(name, i);
            let ctx = Ctx { name: &name, op: &node.op_type };
            if !(node.domain.is_empty() || node.domain == "ai.onnx") {
                return Err(ImportError::UnsupportedOp {
                    node: name.clone(),
                    op: format!("{}::{}", node.domain, node.op_type),
                });
            }
            if node.output.first().is_none_or(std::string::String::is_empty) {
                return Err(ctx.err("node has no output"));
            }
            let keep = if node.op_type == "Dropout" || node.op_type == "BatchNormalization" || node.op_type == "MaxPool"
            {
                1
            } else {
                usize::MAX
            };
            if let Some(extra) = node
                .output
                .iter()
                .skip(keep.min(node.output.len()))
                .find(|o| !o.is_empty() && read.contains(o.as_str()))
            {
                return Err(
                    ctx.err(format!("secondary output '{extra}' is used; only inference-mode outputs are supported"))
                );
            }
            if (node.op_type == "Softmax" || node.op_type == "LogSoftmax") && node.output[0] != output.name {
                return Err(ctx.err(
                    "Softmax/LogSoftmax is supported only as the last node (its output must be the graph output)",
                ));
            }
            self.lower(ctx, node)?;
        }

        let out_id = match self.syms.get(&output.name) {
            Some(Sym::Act(v)) => *v,
            Some(Sym::Const(_)) => {
                return Err(ImportError::Graph(format!("graph output '{}' is a constant", output.name)));
            }
            None => {
                return Err(ImportError::Graph(format!("graph output '{}' is not produced by any node", output.name)));
            }
        };
        self.finish(in_id, out_id)
    }

    fn unique_name(&mut self, name: String, index: usize) -> String {
        let mut n = name.clone();
        let mut k = 0;
        while self.names.contains(&n) {
            n = if k == 0 { format!("{name}_{index}") } else { format!("{name}_{index}_{k}") };
            k += 1;
        }
        self.names.insert(n.clone());
        n
    }

    // --- input accessors -------------------------------------------------------------------

    fn input(&self, ctx: Ctx, node: &pb::NodeProto, i: usize) -> Result<Option<Sym>> {
        match node.input.get(i) {
            None => Ok(None),
            Some(n) if n.is_empty() => Ok(None),
            Some(n) => {
                self.syms.get(n).cloned().map(Some).ok_or_else(|| ctx.err(format!("input '{n}' is not available")))
            }
        }
    }

    fn act(&self, ctx: Ctx, node: &pb::NodeProto, i: usize) -> Result<ValueId> {
        match self.input(ctx, node, i)? {
            Some(Sym::Act(v)) => Ok(v),
            Some(Sym::Const(_)) => {
                Err(ctx
                    .err(format!("input {i} ('{}') is a constant; an activation tensor was expected", node.input[i])))
            }
            None => Err(ctx.err(format!("missing input {i}"))),
        }
    }

    fn opt_const(&self, ctx: Ctx, node: &pb::NodeProto, i: usize, what: &str) -> Result<Option<Rc<Tensor>>> {
        match self.input(ctx, node, i)? {
            Some(Sym::Const(t)) => Ok(Some(t)),
            Some(Sym::Act(_)) => Err(ctx.err(format!(
                "{what} ('{}') must be a constant (initializer or foldable), not a computed tensor",
                node.input[i]
            ))),
            None => Ok(None),
        }
    }

    fn konst(&self, ctx: Ctx, node: &pb::NodeProto, i: usize, what: &str) -> Result<Rc<Tensor>> {
        self.opt_const(ctx, node, i, what)?.ok_or_else(|| ctx.err(format!("missing {what} (input {i})")))
    }

    /// Integer list from a constant input (shape, axes, ...).
    fn const_ints(&self, ctx: Ctx, node: &pb::NodeProto, i: usize, what: &str) -> Result<Option<Vec<i64>>> {
        match self.opt_const(ctx, node, i, what)? {
            None => Ok(None),
            Some(t) => t
                .as_ints()
                .map(|v| Some(v.to_vec()))
                .ok_or_else(|| ctx.err(format!("{what} must be an integer tensor"))),
        }
    }

    /// Axes from the attribute (older opsets) or the given input (newer ones).
    fn axes(&self, ctx: Ctx, node: &pb::NodeProto, input: usize) -> Result<Option<Vec<i64>>> {
        if let Some(a) = attr_ints(node, "axes") {
            return Ok(Some(a.to_vec()));
        }
        self.const_ints(ctx, node, input, "axes")
    }

    fn set(&mut self, node: &pb::NodeProto, sym: Sym) {
        self.syms.insert(node.output[0].clone(), sym);
    }

    fn set_const(&mut self, node: &pb::NodeProto, t: Tensor) {
        self.set(node, Sym::Const(Rc::new(t)));
    }

    fn emit(&mut self, ctx: Ctx, node: &pb::NodeProto, op: POp, inputs: Vec<ValueId>, shape: Vec<usize>) -> Result<()> {
        if numel(&shape).is_none_or(|n| n > MAX_ELEMS) {
            return Err(ctx.err(format!("output shape {} is too large", shape_str(&shape))));
        }
        let out = self.new_value(&node.output[0], shape);
        self.nodes.push(PNode { name: ctx.name.to_string(), onnx_op: ctx.op.to_string(), op, inputs, output: out });
        self.set(node, Sym::Act(out));
        Ok(())
    }

    /// An activation reshaped to `per_sample`: the same value when the shape is unchanged, a
    /// `Flatten` when it becomes 1-D, else an error.
    fn reshape_act(&mut self, ctx: Ctx, node: &pb::NodeProto, x: ValueId, per_sample: Vec<usize>) -> Result<()> {
        let from = self.shape(x).to_vec();
        if per_sample == from {
            self.set(node, Sym::Act(x));
            return Ok(());
        }
        if per_sample.len() == 1 && numel(&from) == Some(per_sample[0]) {
            return self.emit(ctx, node, POp::Ir(Op::Flatten), vec![x], per_sample);
        }
        Err(ctx.err(format!(
            "only flattening reshapes are supported: per-sample shape {} -> {}",
            shape_str(&from),
            shape_str(&per_sample)
        )))
    }

    // --- the ops ---------------------------------------------------------------------------

    fn lower(&mut self, ctx: Ctx, node: &pb::NodeProto) -> Result<()> {
        match node.op_type.as_str() {
            "Constant" => {
                let t = constant_value(ctx, node)?;
                self.set_const(node, t);
            }
            "Identity" | "Dropout" => {
                let x = self.input(ctx, node, 0)?.ok_or_else(|| ctx.err("missing input 0"))?;
                self.set(node, x);
            }
            "Softmax" | "LogSoftmax" => {
                // dropped: argmax of the logits is the same
                let x = self.act(ctx, node, 0)?;
                self.set(node, Sym::Act(x));
            }
            "Conv" => self.conv(ctx, node)?,
            "Gemm" => self.gemm(ctx, node)?,
            "MatMul" => self.matmul(ctx, node)?,
            "Add" | "Sub" | "Mul" | "Div" => self.binary(ctx, node)?,
            "Relu" => {
                let x = self.act(ctx, node, 0)?;
                let s = self.shape(x).to_vec();
                self.emit(ctx, node, POp::Ir(Op::Activation(Activation::Relu)), vec![x], s)?;
            }
            "Clip" => self.clip(ctx, node)?,
            "MaxPool" | "AveragePool" => self.pool(ctx, node)?,
            "GlobalAveragePool" | "GlobalMaxPool" => {
                let x = self.act(ctx, node, 0)?;
                let s = self.chw(ctx, x)?;
                let op = if node.op_type == "GlobalMaxPool" { Op::GlobalMaxPool } else { Op::GlobalAvgPool };
                self.emit(ctx, node, POp::Ir(op), vec![x], vec![s[0], 1, 1])?;
            }
            "ReduceMean" | "ReduceMax" => self.reduce(ctx, node)?,
            "BatchNormalization" => self.batchnorm(ctx, node)?,
            "Flatten" => {
                let x = self.act(ctx, node, 0)?;
                let rank = self.shape(x).len() + 1;
                let axis = attr_int(node, "axis", 1);
                if norm_axis(axis, rank) != Some(1) {
                    return Err(ctx.err(format!("Flatten axis {axis} is not supported (only 1: keep the batch axis)")));
                }
                let n = numel(self.shape(x)).unwrap_or(0);
                self.reshape_act(ctx, node, x, vec![n])?;
            }
            "Reshape" => self.reshape(ctx, node)?,
            "Squeeze" | "Unsqueeze" => self.squeeze(ctx, node)?,
            "Concat" => self.concat(ctx, node)?,
            "Shape" => {
                let full = match self.input(ctx, node, 0)? {
                    Some(Sym::Act(x)) => std::iter::once(1).chain(self.shape(x).iter().copied()).collect::<Vec<_>>(),
                    Some(Sym::Const(t)) => t.dims.clone(),
                    None => return Err(ctx.err("missing input 0")),
                };
                let r = full.len() as i64;
                let clampi = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
                let start = clampi(attr_int(node, "start", 0));
                let end = clampi(attr_int(node, "end", r));
                let v: Vec<i64> = full.iter().map(|&d| d as i64).collect();
                let v = if start < end { v[start..end].to_vec() } else { Vec::new() };
                self.set_const(node, Tensor::ints(vec![v.len()], v));
            }
            "Gather" => {
                let data = self.konst(ctx, node, 0, "data")?;
                let idx = self.konst(ctx, node, 1, "indices")?;
                let t = gather(&data, &idx, attr_int(node, "axis", 0)).map_err(|m| ctx.err(m))?;
                self.set_const(node, t);
            }
            "Slice" => self.slice(ctx, node)?,
            "Cast" => self.cast(ctx, node)?,
            "ConstantOfShape" => {
                let dims = self.const_ints(ctx, node, 0, "shape")?.ok_or_else(|| ctx.err("missing shape"))?;
                let dims: Vec<usize> = dims
                    .iter()
                    .map(|&d| usize::try_from(d).map_err(|_| ctx.err(format!("negative dimension in {dims:?}"))))
                    .collect::<Result<_>>()?;
                let n = numel(&dims).filter(|&n| n <= MAX_ELEMS).ok_or_else(|| ctx.err("shape too large"))?;
                let value = match attr(node, "value").and_then(|a| a.t.as_ref()) {
                    Some(t) => read_tensor(t).map_err(|m| ctx.err(format!("attribute value: {m}")))?,
                    None => Tensor::floats(vec![1], vec![0.0]),
                };
                if value.len() != 1 {
                    return Err(ctx.err("attribute value must hold one element"));
                }
                let t = value.pick(dims, &vec![0; n]);
                self.set_const(node, t);
            }
            _ => {
                return Err(ImportError::UnsupportedOp { node: ctx.name.into(), op: ctx.op.into() });
            }
        }
        Ok(())
    }

    /// The `[C, H, W]` per-sample shape of a feature map.
    fn chw(&self, ctx: Ctx, x: ValueId) -> Result<[usize; 3]> {
        match *self.shape(x) {
            [c, h, w] => Ok([c, h, w]),
            ref s => Err(ctx.err(format!(
                "input '{}' must be a 4-D feature map [N, C, H, W], got per-sample shape {}",
                self.values[x].name,
                shape_str(s)
            ))),
        }
    }

    fn conv(&mut self, ctx: Ctx, node: &pb::NodeProto) -> Result<()> {
        let w = self.konst(ctx, node, 1, "weight")?;
        match w.dims.len() {
            4 => {}
            5 => return Err(ctx.err("3-D convolution is not supported")),
            3 => return Err(ctx.err("1-D convolution is not supported")),
            n => return Err(ctx.err(format!("weight must be 4-D [M, C/group, kH, kW], got rank {n}"))),
        }
        let x = self.act(ctx, node, 0)?;
        if self.shape(x).len() != 3 {
            let s = self.shape(x).len() + 1;
            return Err(ctx.err(if s == 5 {
                "3-D convolution is not supported".to_string()
            } else {
                format!("input must be 4-D [N, C, H, W], got rank {s}")
            }));
        }
        let [c, h, wd] = self.chw(ctx, x)?;
        let (m, cg, kh, kw) = (w.dims[0], w.dims[1], w.dims[2], w.dims[3]);
        if m == 0 || cg == 0 || kh == 0 || kw == 0 {
            return Err(ctx.err(format!("weight has an empty dimension: {}", shape_str(&w.dims))));
        }
        if let Some(k) = attr_ints(node, "kernel_shape") {
            if k != [kh as i64, kw as i64] {
                return Err(ctx.err(format!("kernel_shape {k:?} does not match the weight {}", shape_str(&w.dims))));
            }
        }
        let group = attr_int(node, "group", 1);
        if group < 1 || group > c as i64 {
            return Err(ctx.err(format!("group {group} is invalid for {c} input channels")));
        }
        let group = group as usize;
        if cg * group != c {
            return Err(ctx.err(format!(
                "input has {c} channels but the weight {} with group {group} expects {}",
                shape_str(&w.dims),
                cg * group
            )));
        }
        if m % group != 0 {
            return Err(ctx.err(format!("{m} output channels are not divisible by group {group}")));
        }
        let (win, [oh, ow]) = window(ctx, node, [kh, kw], [h, wd], false)?;
        let (bias, has_bias) = match self.opt_const(ctx, node, 2, "bias")? {
            Some(b) => {
                if b.len() != m {
                    return Err(ctx.err(format!("bias has {} values, expected {m}", b.len())));
                }
                (b.to_f64(), true)
            }
            None => (vec![0.0; m], false),
        };
        let conv = Conv {
            in_channels: c,
            out_channels: m,
            groups: group,
            window: win,
            weight: w.to_f64(),
            bias,
            has_bias,
            activation: Activation::None,
        };
        self.emit(ctx, node, POp::Ir(Op::Conv(conv)), vec![x], vec![m, oh, ow])
    }

    /// The feature count of a `[N, K]` activation.
    fn flat_features(&self, ctx: Ctx, x: ValueId) -> Result<usize> {
        match *self.shape(x) {
            [k] => Ok(k),
            ref s => Err(ctx.err(format!(
                "input '{}' must be 2-D [N, K], got per-sample shape {} (flatten it first)",
                self.values[x].name,
                shape_str(s)
            ))),
        }
    }

    fn gemm(&mut self, ctx: Ctx, node: &pb::NodeProto) -> Result<()> {
        if attr_int(node, "transA", 0) != 0 {
            return Err(ctx.err("transA=1 is not supported"));
        }
        let trans_b = attr_int(node, "transB", 0) != 0;
        let alpha = attr_float(node, "alpha").unwrap_or(1.0);
        let beta = attr_float(node, "beta").unwrap_or(1.0);
        let x = self.act(ctx, node, 0)?;
        let k = self.flat_features(ctx, x)?;
        let b = self.konst(ctx, node, 1, "weight B")?;
        let [r, cdim] = *b.dims.as_slice() else {
            return Err(ctx.err(format!("weight B must be 2-D, got {}", shape_str(&b.dims))));
        };
        let (kin, m) = if trans_b { (cdim, r) } else { (r, cdim) };
        if kin != k {
            return Err(ctx.err(format!(
                "in_features mismatch: input has {k} features, weight {} (transB={}) expects {kin}",
                shape_str(&b.dims),
                i32::from(trans_b)
            )));
        }
        let bv = b.to_f64();
        let weight: Vec<f64> = if trans_b {
            bv.iter().map(|&v| alpha * v).collect()
        } else {
            (0..m).flat_map(|o| (0..k).map(move |i| (o, i))).map(|(o, i)| alpha * bv[i * m + o]).collect()
        };
        let (bias, has_bias) = match self.opt_const(ctx, node, 2, "bias C")? {
            Some(c) => {
                let cv = c.to_f64();
                let per_out = match (c.dims.iter().filter(|&&d| d != 1).count(), cv.len()) {
                    (_, 1) => vec![cv[0]; m],
                    (1, n) if n == m && c.dims.last() == Some(&m) => cv,
                    _ => {
                        return Err(ctx.err(format!(
                            "bias C of shape {} does not broadcast to [N, {m}] per output",
                            shape_str(&c.dims)
                        )));
                    }
                };
                (per_out.iter().map(|&v| beta * v).collect(), true)
            }
            None => (vec![0.0; m], false),
        };
        let d = Dense { in_features: k, out_features: m, weight, bias, has_bias, activation: Activation::None };
        self.emit(ctx, node, POp::Ir(Op::Dense(d)), vec![x], vec![m])
    }

    fn matmul(&mut self, ctx: Ctx, node: &pb::NodeProto) -> Result<()> {
        let x = self.act(ctx, node, 0)?;
        let k = self.flat_features(ctx, x)?;
        let b = self.konst(ctx, node, 1, "weight")?;
        let [kin, m] = *b.dims.as_slice() else {
            return Err(ctx.err(format!("weight must be 2-D [K, M], got {}", shape_str(&b.dims))));
        };
        if kin != k {
            return Err(ctx.err(format!(
                "in_features mismatch: input has {k} features, weight {} expects {kin}",
                shape_str(&b.dims)
            )));
        }
        let bv = b.to_f64();
        let bv = &bv;
        let weight = (0..m).flat_map(|o| (0..k).map(move |i| bv[i * m + o])).collect();
        let d = Dense {
            in_features: k,
            out_features: m,
            weight,
            bias: vec![0.0; m],
            has_bias: false,
            activation: Activation::None,
        };
        self.emit(ctx, node, POp::Ir(Op::Dense(d)), vec![x], vec![m])
    }

    fn binary(&mut self, ctx: Ctx, node: &pb::NodeProto) -> Result<()> {
        let a = self.input(ctx, node, 0)?.ok_or_else(|| ctx.err("missing input 0"))?;
        let b = self.input(ctx, node, 1)?.ok_or_else(|| ctx.err("missing input 1"))?;
        match (a, b) {
            (Sym::Const(a), Sym::Const(b)) => {
                let t = elementwise(node.op_type.as_str(), &a, &b).map_err(|m| ctx.err(m))?;
                self.set_const(node, t);
                Ok(())
            }
            (Sym::Act(a), Sym::Act(b)) if node.op_type == "Add" => {
                let (sa, sb) = (self.shape(a).to_vec(), self.shape(b).to_vec());
                if sa != sb {
                    return Err(ctx.err(format!(
                        "Add operands must have equal shapes (no broadcasting): {} vs {}",
                        shape_str(&sa),
                        shape_str(&sb)
                    )));
                }
                self.emit(ctx, node, POp::Ir(Op::Add { activation: Activation::None }), vec![a, b], sa)
            }
            (Sym::Act(x), Sym::Const(c)) | (Sym::Const(c), Sym::Act(x)) if node.op_type == "Add" => {
                let s = self.shape(x).to_vec();
                let ch = s.first().copied().unwrap_or(1);
                // the constant must broadcast per channel: [.., ch, 1, 1] for [C, H, W], [.., F] for [F]
                let mut dims: &[usize] = &c.dims;
                while dims.len() > s.len() && dims.first() == Some(&1) {
                    dims = &dims[1..];
                }
                let per_channel =
                    !dims.is_empty() && dims.len() == s.len() && dims[0] == ch && dims[1..].iter().all(|&d| d == 1);
                if c.len() != 1 && !per_channel {
                    return Err(ctx.err(format!(
                        "constant of shape {} does not broadcast per channel over {}",
                        shape_str(&c.dims),
                        shape_str(&s)
                    )));
                }
                self.emit(ctx, node, POp::AddConst(c.to_f64()), vec![x], s)
            }
            _ => Err(ctx.err(format!("{} on activation tensors is not supported (only on constants)", node.op_type))),
        }
    }

    fn clip(&mut self, ctx: Ctx, node: &pb::NodeProto) -> Result<()> {
        let x = self.act(ctx, node, 0)?;
        let bound = |i: usize, name: &str| -> Result<Option<f64>> {
            if let Some(v) = attr_float(node, name) {
                return Ok(Some(v));
            }
            match self.opt_const(ctx, node, i, name)? {
                None => Ok(None),
                Some(t) if t.len() == 1 => Ok(Some(t.to_f64()[0])),
                Some(t) => Err(ctx.err(format!("{name} must be a scalar, got shape {}", shape_str(&t.dims)))),
            }
        };
        let min = bound(1, "min")?.unwrap_or(f64::NEG_INFINITY);
        let max = bound(2, "max")?.unwrap_or(f64::INFINITY);
        if min.is_nan() || max.is_nan() || min > max {
            return Err(ctx.err(format!("invalid clip range [{min}, {max}]")));
        }
        if min == f64::NEG_INFINITY && max == f64::INFINITY {
            self.set(node, Sym::Act(x));
            return Ok(());
        }
        let act = if min == 0.0 && max == f64::INFINITY { Activation::Relu } else { Activation::Clip { min, max } };
        let s = self.shape(x).to_vec();
        self.emit(ctx, node, POp::Ir(Op::Activation(act)), vec![x], s)
    }

    fn pool(&mut self, ctx: Ctx, node: &pb::NodeProto) -> Result<()> {
        let x = self.act(ctx, node, 0)?;
        let [c, h, w] = self.chw(ctx, x)?;
        if attr_ints(node, "kernel_shape").is_none() {
            return Err(ctx.err("missing attribute kernel_shape"));
        }
        let k = spatial(ctx, node, "kernel_shape", 2, 1, 1)?;
        if attr_int(node, "storage_order", 0) != 0 {
            return Err(ctx.err("storage_order=1 is not supported"));
        }
        let (win, [oh, ow]) = window(ctx, node, [k[0], k[1]], [h, w], true)?;
        let op = if node.op_type == "MaxPool" {
            Op::MaxPool(win)
        } else {
            Op::AvgPool { window: win, count_include_pad: attr_int(node, "count_include_pad", 0) != 0 }
        };
        self.emit(ctx, node, POp::Ir(op), vec![x], vec![c, oh, ow])
    }

    fn reduce(&mut self, ctx: Ctx, node: &pb::NodeProto) -> Result<()> {
        let x = self.act(ctx, node, 0)?;
        let [c, _, _] = self.chw(ctx, x)?;
        let axes = self.axes(ctx, node, 1)?.unwrap_or_default();
        let norm: BTreeSet<Option<usize>> = axes.iter().map(|&a| norm_axis(a, 4)).collect();
        if norm != BTreeSet::from([Some(2), Some(3)]) {
            return Err(ctx.err(format!(
                "only reductions over exactly the spatial axes [2, 3] are supported, got axes {axes:?}"
            )));
        }
        let keep = attr_int(node, "keepdims", 1) != 0;
        let op = if node.op_type == "ReduceMax" { Op::GlobalMaxPool } else { Op::GlobalAvgPool };
        self.emit(ctx, node, POp::Ir(op), vec![x], if keep { vec![c, 1, 1] } else { vec![c] })
    }

    fn batchnorm(&mut self, ctx: Ctx, node: &pb::NodeProto) -> Result<()> {
        if attr_int(node, "training_mode", 0) != 0 {
            return Err(ctx.err("training_mode=1 is not supported"));
        }
        let x = self.act(ctx, node, 0)?;
        let s = self.shape(x).to_vec();
        let Some(&ch) = s.first() else {
            return Err(ctx.err("input has no channel axis"));
        };
        let mut p = Vec::with_capacity(4);
        for (i, what) in [(1, "scale"), (2, "bias"), (3, "mean"), (4, "var")] {
            let t = self.konst(ctx, node, i, what)?;
            if t.len() != ch {
                return Err(ctx.err(format!("{what} has {} values, the input has {ch} channels", t.len())));
            }
            p.push(t.to_f64());
        }
        let eps = attr_float(node, "epsilon").unwrap_or(1e-5);
        let [gamma, beta, mean, var]: [Vec<f64>; 4] = p.try_into().map_err(|_| ctx.err("internal: parameter count"))?;
        if let Some(v) = var.iter().find(|&&v| v + eps <= 0.0 || v.is_nan()) {
            return Err(ctx.err(format!("variance {v} + epsilon is not positive")));
        }
        self.emit(ctx, node, POp::Bn(Bn { gamma, beta, mean, var, eps }), vec![x], s)
    }

    fn reshape(&mut self, ctx: Ctx, node: &pb::NodeProto) -> Result<()> {
        let target = match self.input(ctx, node, 1)? {
            Some(Sym::Const(t)) => {
                t.as_ints().map(<[i64]>::to_vec).ok_or_else(|| ctx.err("shape must be an integer tensor"))?
            }
            Some(Sym::Act(_)) => {
                return Err(ctx.err(format!("the target shape '{}' could not be folded to a constant", node.input[1])));
            }
            None => match attr_ints(node, "shape") {
                Some(s) => s.to_vec(), // opset 1-4
                None => return Err(ctx.err("missing target shape")),
            },
        };
        let allowzero = attr_int(node, "allowzero", 0) != 0;
        match self.input(ctx, node, 0)?.ok_or_else(|| ctx.err("missing input 0"))? {
            Sym::Const(t) => {
                let dims = reshape_dims(&t.dims, &target, allowzero).map_err(|m| ctx.err(m))?;
                self.set_const(node, t.with_dims(dims));
                Ok(())
            }
            Sym::Act(x) => {
                let full: Vec<usize> = std::iter::once(1).chain(self.shape(x).iter().copied()).collect();
                let dims = reshape_dims(&full, &target, allowzero).map_err(|m| ctx.err(m))?;
                if dims.first() != Some(&1) {
                    return Err(ctx.err(format!(
                        "reshape to {target:?} does not keep the batch axis (input {})",
                        shape_str(&full)
                    )));
                }
                self.reshape_act(ctx, node, x, dims[1..].to_vec())
            }
        }
    }

    fn squeeze(&mut self, ctx: Ctx, node: &pb::NodeProto) -> Result<()> {
        let axes = self.axes(ctx, node, 1)?;
        let x = self.input(ctx, node, 0)?.ok_or_else(|| ctx.err("missing input 0"))?;
        let full: Vec<usize> = match &x {
            Sym::Const(t) => t.dims.clone(),
            Sym::Act(v) => std::iter::once(1).chain(self.shape(*v).iter().copied()).collect(),
        };
        let dims = if node.op_type == "Squeeze" {
            let r = full.len();
            let drop: BTreeSet<usize> = match &axes {
                None => (0..r).filter(|&i| full[i] == 1).collect(),
                Some(a) => a
                    .iter()
                    .map(|&ax| match norm_axis(ax, r) {
                        Some(i) if full[i] == 1 => Ok(i),
                        _ => Err(ctx.err(format!("cannot squeeze axis {ax} of shape {}", shape_str(&full)))),
                    })
                    .collect::<Result<_>>()?,
            };
            (0..r).filter(|i| !drop.contains(i)).map(|i| full[i]).collect::<Vec<_>>()
        } else {
            let axes = axes.ok_or_else(|| ctx.err("missing axes"))?;
            let r = full.len() + axes.len();
            let add: BTreeSet<usize> = axes
                .iter()
                .map(|&ax| norm_axis(ax, r).ok_or_else(|| ctx.err(format!("axis {ax} out of range"))))
                .collect::<Result<_>>()?;
            if add.len() != axes.len() {
                return Err(ctx.err(format!("repeated axes {axes:?}")));
            }
            let mut src = full.iter();
            (0..r).map(|i| if add.contains(&i) { 1 } else { src.next().copied().unwrap_or(1) }).collect()
        };
        match x {
            Sym::Const(t) => {
                self.set_const(node, t.with_dims(dims));
                Ok(())
            }
            Sym::Act(v) => {
                if dims.first() != Some(&1) || full.first() != Some(&1) {
                    return Err(ctx.err("squeezing or unsqueezing the batch axis is not supported"));
                }
                self.reshape_act(ctx, node, v, dims[1..].to_vec())
            }
        }
    }

    fn concat(&mut self, ctx: Ctx, node: &pb::NodeProto) -> Result<()> {
        let axis = attr(node, "axis").map(|a| a.i).ok_or_else(|| ctx.err("missing attribute axis"))?;
        let mut syms = Vec::new();
        for i in 0..node.input.len() {
            if let Some(s) = self.input(ctx, node, i)? {
                syms.push(s);
            }
        }
        if syms.is_empty() {
            return Err(ctx.err("no inputs"));
        }
        if syms.iter().all(|s| matches!(s, Sym::Const(_))) {
            let ts: Vec<Rc<Tensor>> =
                syms.into_iter().filter_map(|s| if let Sym::Const(t) = s { Some(t) } else { None }).collect();
            let t = concat_const(&ts, axis).map_err(|m| ctx.err(m))?;
            self.set_const(node, t);
            return Ok(());
        }
        let mut ids = Vec::new();
        for (i, s) in syms.iter().enumerate() {
            match s {
                Sym::Act(v) => ids.push(*v),
                Sym::Const(_) => {
                    return Err(ctx.err(format!(
                        "concatenating a constant ('{}') with activations is not supported",
                        node.input.get(i).map_or("", String::as_str)
                    )));
                }
            }
        }
        let first = self.shape(ids[0]).to_vec();
        if norm_axis(axis, first.len() + 1) != Some(1) {
            return Err(ctx.err(format!("only concatenation on the channel axis (1) is supported, got axis {axis}")));
        }
        let mut out = first.clone();
        out[0] = 0;
        for &v in &ids {
            let s = self.shape(v);
            if s.len() != first.len() || s[1..] != first[1..] {
                return Err(ctx.err(format!(
                    "inputs differ outside the channel axis: {} vs {} ('{}')",
                    shape_str(&first),
                    shape_str(s),
                    self.values[v].name
                )));
            }
            out[0] += s[0];
        }
        self.emit(ctx, node, POp::Ir(Op::Concat), ids, out)
    }

    fn slice(&mut self, ctx: Ctx, node: &pb::NodeProto) -> Result<()> {
        let data = self.konst(ctx, node, 0, "data")?;
        let (starts, ends, axes, steps) = if self.opset < 10 || attr(node, "starts").is_some() {
            let s = attr_ints(node, "starts").ok_or_else(|| ctx.err("missing starts"))?.to_vec();
            let e = attr_ints(node, "ends").ok_or_else(|| ctx.err("missing ends"))?.to_vec();
            (s, e, attr_ints(node, "axes").map(<[i64]>::to_vec), None)
        } else {
            let s = self.const_ints(ctx, node, 1, "starts")?.ok_or_else(|| ctx.err("missing starts"))?;
            let e = self.const_ints(ctx, node, 2, "ends")?.ok_or_else(|| ctx.err("missing ends"))?;
            (s, e, self.const_ints(ctx, node, 3, "axes")?, self.const_ints(ctx, node, 4, "steps")?)
        };
        let t = slice_const(&data, &starts, &ends, axes.as_deref(), steps.as_deref()).map_err(|m| ctx.err(m))?;
        self.set_const(node, t);
        Ok(())
    }

    fn cast(&mut self, ctx: Ctx, node: &pb::NodeProto) -> Result<()> {
        use pb::tensor_proto::DataType as D;
        let to = attr(node, "to").map(|a| a.i).ok_or_else(|| ctx.err("missing attribute to"))?;
        let to = i32::try_from(to)
            .ok()
            .and_then(|t| D::try_from(t).ok())
            .ok_or_else(|| ctx.err(format!("unknown type {to}")))?;
        let is_float = matches!(to, D::Float | D::Double | D::Float16 | D::Bfloat16);
        match self.input(ctx, node, 0)?.ok_or_else(|| ctx.err("missing input 0"))? {
            Sym::Act(x) if is_float => {
                self.set(node, Sym::Act(x));
                Ok(())
            }
            Sym::Act(_) => Err(ctx.err(format!("casting an activation to {} is not supported", to.as_str_name()))),
            Sym::Const(t) => {
                let data = match (&t.data, to) {
                    (_, D::Float) => Data::F(t.to_f64().into_iter().map(|v| f64::from(v as f32)).collect()),
                    (_, D::Double | D::Float16 | D::Bfloat16) => Data::F(t.to_f64()),
                    (Data::I(v), D::Bool) => Data::I(v.iter().map(|&x| i64::from(x != 0)).collect()),
                    (Data::F(v), D::Bool) => Data::I(v.iter().map(|&x| i64::from(x != 0.0)).collect()),
                    (
                        Data::I(v),
                        D::Int64 | D::Int32 | D::Int16 | D::Int8 | D::Uint8 | D::Uint16 | D::Uint32 | D::Uint64,
                    ) => Data::I(v.clone()),
                    (
                        Data::F(v),
                        D::Int64 | D::Int32 | D::Int16 | D::Int8 | D::Uint8 | D::Uint16 | D::Uint32 | D::Uint64,
                    ) => Data::I(v.iter().map(|&x| x.trunc() as i64).collect()),
                    _ => return Err(ctx.err(format!("cast to {} is not supported", to.as_str_name()))),
                };
                self.set_const(node, Tensor { dims: t.dims.clone(), data });
                Ok(())
            }
        }
    }

    // --- fusing ----------------------------------------------------------------------------

    fn finish(self, input: ValueId, output: ValueId) -> Result<Graph> {
        let Lowering { values, nodes, .. } = self;
        let mut f = Fusion { nodes: nodes.into_iter().map(Some).collect(), nv: values.len(), output };
        f.fold_bias_adds()?;
        f.fold_batch_norms();
        f.fuse_activations();
        compact(values, f.nodes, input, output)
    }
}

/// The lowered nodes while they are fused; a fused node is `None`.
struct Fusion {
    nodes: Vec<Option<PNode>>,
    nv: usize,
    output: ValueId,
}

impl Fusion {
    /// Consumers per value (the graph output counts as one).
    fn uses(&self) -> Vec<usize> {
        let mut u = vec![0usize; self.nv];
        for n in self.nodes.iter().flatten() {
            for &v in &n.inputs {
                u[v] += 1;
            }
        }
        u[self.output] += 1;
        u
    }

    /// The node producing each value.
    fn producers(&self) -> Vec<Option<usize>> {
        let mut p = vec![None; self.nv];
        for (i, n) in self.nodes.iter().enumerate() {
            if let Some(n) = n {
                p[n.output] = Some(i);
            }
        }
        p
    }

    /// The producer of node i's first input if it has no other consumer.
    fn sole_producer(&self, i: usize) -> Option<usize> {
        let n = self.nodes[i].as_ref()?;
        let v = *n.inputs.first()?;
        if self.uses()[v] != 1 {
            return None;
        }
        self.producers()[v]
    }

    /// Merges node i into its producer p: p takes over i's output value.
    fn merge(&mut self, p: usize, i: usize) {
        if let Some(n) = self.nodes[i].take() {
            if let Some(pn) = self.nodes[p].as_mut() {
                pn.output = n.output;
            }
        }
    }

    /// Activation + constant -> bias of the Conv/Dense it alone consumes.
    fn fold_bias_adds(&mut self) -> Result<()> {
        for i in 0..self.nodes.len() {
            let Some(POp::AddConst(c)) = self.nodes[i].as_ref().map(|n| n.op.clone()) else {
                continue;
            };
            let p = self.sole_producer(i);
            let folded = match p.and_then(|p| self.nodes[p].as_mut()).map(|pn| &mut pn.op) {
                Some(POp::Ir(Op::Conv(Conv { bias, has_bias, .. }) | Op::Dense(Dense { bias, has_bias, .. }))) => {
                    for (o, b) in bias.iter_mut().enumerate() {
                        *b += if c.len() == 1 { c[0] } else { c[o] };
                    }
                    *has_bias = true;
                    true
                }
                _ => false,
            };
            match (folded, p, self.nodes[i].as_ref()) {
                (true, Some(p), _) => self.merge(p, i),
                (_, _, Some(n)) => {
                    return Err(n.err(
                        "adding a constant is only supported as the bias of a Conv/Gemm/MatMul whose output only this Add reads",
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// BatchNormalization -> folded into the Conv/Dense it alone consumes, else Affine.
    fn fold_batch_norms(&mut self) {
        for i in 0..self.nodes.len() {
            let Some(POp::Bn(bn)) = self.nodes[i].as_ref().map(|n| n.op.clone()) else {
                continue;
            };
            let s = bn.scale();
            let p = self.sole_producer(i);
            let target = p.and_then(|p| self.nodes[p].as_mut()).map(|pn| &mut pn.op);
            let folded = match target {
                Some(POp::Ir(Op::Conv(conv)))
                    if conv.activation == Activation::None && conv.out_channels == s.len() =>
                {
                    let per_out = conv.weight.len() / conv.out_channels;
                    fold_bn(&mut conv.weight, &mut conv.bias, per_out, &bn, &s);
                    conv.has_bias = true;
                    true
                }
                Some(POp::Ir(Op::Dense(d))) if d.activation == Activation::None && d.out_features == s.len() => {
                    fold_bn(&mut d.weight, &mut d.bias, d.in_features, &bn, &s);
                    d.has_bias = true;
                    true
                }
                _ => false,
            };
            if folded {
                if let Some(p) = p {
                    self.merge(p, i);
                }
            } else if let Some(n) = self.nodes[i].as_mut() {
                let shift = bn.beta.iter().zip(&bn.mean).zip(&s).map(|((b, m), s)| b - m * s).collect();
                n.op = POp::Ir(Op::Affine(Affine { channels: s.len(), scale: s, shift, activation: Activation::None }));
            }
        }
    }

    /// Relu/Clip -> fused into the Conv/Dense/Affine/Add it alone consumes.
    fn fuse_activations(&mut self) {
        for i in 0..self.nodes.len() {
            let Some(POp::Ir(Op::Activation(a))) = self.nodes[i].as_ref().map(|n| n.op.clone()) else {
                continue;
            };
            let Some(p) = self.sole_producer(i) else {
                continue;
            };
            let slot = match self.nodes[p].as_mut().map(|pn| &mut pn.op) {
                Some(POp::Ir(Op::Conv(Conv { activation, .. })))
                | Some(POp::Ir(Op::Dense(Dense { activation, .. })))
                | Some(POp::Ir(Op::Affine(Affine { activation, .. })))
                | Some(POp::Ir(Op::Add { activation })) => Some(activation),
                _ => None,
            };
            if let Some(slot) = slot.filter(|s| **s == Activation::None) {
                *slot = a;
                self.merge(p, i);
            }
        }
    }
}

/// The graph of the fused nodes: keeps the values the nodes, input and output use, renumbered in
/// order.
fn compact(values: Vec<Value>, nodes: Vec<Option<PNode>>, input: ValueId, output: ValueId) -> Result<Graph> {
    let nv = values.len();
    let mut used = vec![false; nv];
    used[input] = true;
    used[output] = true;
    for n in nodes.iter().flatten() {
        used[n.output] = true;
        for &v in &n.inputs {
            used[v] = true;
        }
    }
    let mut remap = vec![usize::MAX; nv];
    let mut new_values = Vec::new();
    for (v, value) in values.into_iter().enumerate() {
        if used[v] {
            remap[v] = new_values.len();
            new_values.push(value);
        }
    }
    let mut out_nodes = Vec::new();
    for n in nodes.into_iter().flatten() {
        let op = match n.op {
            POp::Ir(op) => op,
            POp::Bn(_) | POp::AddConst(_) => return Err(n.err("internal: unfused node")),
        };
        out_nodes.push(Node {
            name: n.name,
            op,
            inputs: n.inputs.iter().map(|&v| remap[v]).collect(),
            output: remap[n.output],
        });
    }
    Ok(Graph { values: new_values, nodes: out_nodes, input: remap[input], output: remap[output] })
}

/// Folds a BatchNormalization into a layer whose `weight` has `per_out` entries per output
/// channel: `w' = w * s`, `b' = (b - mean) * s + beta`, in f64.
fn fold_bn(weight: &mut [f64], bias: &mut [f64], per_out: usize, bn: &Bn, s: &[f64]) {
    for (o, &so) in s.iter().enumerate() {
        for w in weight.iter_mut().skip(o * per_out).take(per_out) {
            *w *= so;
        }
        if let Some(b) = bias.get_mut(o) {
            *b = (*b - bn.mean[o]) * so + bn.beta[o];
        }
    }
}

/// The per-sample shape of the graph input (`[N, C, H, W]` -> `[C, H, W]`, `[N, F]` -> `[F]`).
fn input_shape(input: &pb::ValueInfoProto) -> Result<Vec<usize>> {
    use pb::tensor_shape_proto::dimension::Value as Dim;
    use pb::type_proto::Value as T;
    let err = |msg: String| ImportError::Graph(format!("graph input '{}': {msg}", input.name));
    let Some(T::TensorType(tt)) = input.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return Err(err("not a tensor".into()));
    };
    use pb::tensor_proto::DataType as D;
    if ![D::Undefined, D::Float, D::Double, D::Float16, D::Bfloat16].iter().any(|&d| d as i32 == tt.elem_type) {
        return Err(err(format!("element type {} is not a float type", tt.elem_type)));
    }
    let Some(shape) = tt.shape.as_ref() else {
        return Err(err("has no shape".into()));
    };
    let dims: Vec<String> = shape
        .dim
        .iter()
        .map(|d| match &d.value {
            Some(Dim::DimValue(v)) => v.to_string(),
            Some(Dim::DimParam(p)) => p.clone(),
            None => "?".into(),
        })
        .collect();
    if dims.len() != 4 && dims.len() != 2 {
        return Err(err(format!("shape [{}] must be [N, C, H, W] or [N, F]", dims.join(", "))));
    }
    let per_sample: Vec<usize> = shape.dim[1..]
        .iter()
        .map(|d| match d.value {
            Some(Dim::DimValue(v)) if v > 0 && v <= MAX_ELEMS as i64 => Ok(v as usize),
            _ => Err(err(format!("shape [{}]: all but the batch axis must be fixed positive sizes", dims.join(", ")))),
        })
        .collect::<Result<_>>()?;
    if numel(&per_sample).is_none_or(|n| n > MAX_ELEMS) {
        return Err(err(format!("shape [{}] is too large", dims.join(", "))));
    }
    Ok(per_sample)
}

/// Node indices in a topological order (file order where free), restricted to the nodes the
/// graph output depends on. Checks for dangling inputs, duplicate outputs and cycles.
fn topo_order(g: &pb::GraphProto, inits: &HashSet<String>, input: &str, output: &str) -> Result<Vec<usize>> {
    let name_of = |i: usize| {
        let n = &g.node[i];
        (if n.name.is_empty() { format!("{}_{i}", n.op_type) } else { n.name.clone() }, n.op_type.clone())
    };
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in g.node.iter().enumerate() {
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            if producer.insert(o.as_str(), i).is_some() || inits.contains(o) || o == input {
                let (node, op) = name_of(i);
                return Err(ImportError::Node { node, op, msg: format!("output '{o}' is defined twice") });
            }
        }
    }
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); g.node.len()];
    for (i, n) in g.node.iter().enumerate() {
        for inp in n.input.iter().filter(|s| !s.is_empty()) {
            if let Some(&p) = producer.get(inp.as_str()) {
                deps[i].push(p);
            } else if !(inits.contains(inp) || inp == input) {
                let (node, op) = name_of(i);
                return Err(ImportError::DanglingInput { node, op, input: inp.clone() });
            }
        }
    }
    // Kahn's algorithm, smallest index first
    let mut indeg: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); g.node.len()];
    for (i, d) in deps.iter().enumerate() {
        for &p in d {
            users[p].push(i);
        }
    }
    let mut ready: BTreeSet<usize> = (0..g.node.len()).filter(|&i| indeg[i] == 0).collect();
    let mut order = Vec::with_capacity(g.node.len());
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &u in &users[i] {
            indeg[u] -= 1;
            if indeg[u] == 0 {
                ready.insert(u);
            }
        }
    }
    if order.len() != g.node.len() {
        let stuck = (0..g.node.len()).find(|&i| indeg[i] > 0).unwrap_or(0);
        let (node, op) = name_of(stuck);
        return Err(ImportError::Cycle { node, op });
    }
    // keep what the output needs
    let mut live = vec![false; g.node.len()];
    let mut stack: Vec<usize> = producer.get(output).copied().into_iter().collect();
    while let Some(i) = stack.pop() {
        if !std::mem::replace(&mut live[i], true) {
            stack.extend(deps[i].iter().copied());
        }
    }
    Ok(order.into_iter().filter(|&i| live[i]).collect())
}

/// The value of a `Constant` node.
fn constant_value(ctx: Ctx, node: &pb::NodeProto) -> Result<Tensor> {
    let a = node.attribute.first().ok_or_else(|| ctx.err("Constant without a value attribute"))?;
    match a.name.as_str() {
        "value" => {
            let t = a.t.as_ref().ok_or_else(|| ctx.err("attribute value holds no tensor"))?;
            read_tensor(t).map_err(|m| ctx.err(format!("attribute value: {m}")))
        }
        "value_float" => Ok(Tensor::floats(vec![], vec![f64::from(a.f)])),
        "value_floats" => Ok(Tensor::floats(vec![a.floats.len()], a.floats.iter().map(|&f| f64::from(f)).collect())),
        "value_int" => Ok(Tensor::ints(vec![], vec![a.i])),
        "value_ints" => Ok(Tensor::ints(vec![a.ints.len()], a.ints.clone())),
        other => Err(ctx.err(format!("Constant attribute '{other}' is not supported"))),
    }
}

fn elementwise(op: &str, a: &Tensor, b: &Tensor) -> std::result::Result<Tensor, String> {
    let dims = broadcast_shape(&a.dims, &b.dims)
        .ok_or_else(|| format!("shapes {} and {} do not broadcast", shape_str(&a.dims), shape_str(&b.dims)))?;
    if numel(&dims).is_none_or(|n| n > MAX_ELEMS) {
        return Err("result too large".into());
    }
    let (Some(ia), Some(ib)) = (broadcast_positions(&dims, &a.dims), broadcast_positions(&dims, &b.dims)) else {
        return Err(format!("shapes {} and {} do not broadcast", shape_str(&a.dims), shape_str(&b.dims)));
    };
    let data = match (&a.data, &b.data) {
        (Data::I(x), Data::I(y)) => {
            let mut out = Vec::with_capacity(ia.len());
            for (&i, &j) in ia.iter().zip(&ib) {
                let (p, q) = (x[i], y[j]);
                out.push(match op {
                    "Add" => p.wrapping_add(q),
                    "Sub" => p.wrapping_sub(q),
                    "Mul" => p.wrapping_mul(q),
                    _ if q == 0 => return Err("integer division by zero".into()),
                    _ => p.wrapping_div(q),
                });
            }
            Data::I(out)
        }
        _ => {
            let (x, y) = (a.to_f64(), b.to_f64());
            Data::F(
                ia.iter()
                    .zip(&ib)
                    .map(|(&i, &j)| match op {
                        "Add" => x[i] + y[j],
                        "Sub" => x[i] - y[j],
                        "Mul" => x[i] * y[j],
                        _ => x[i] / y[j],
                    })
                    .collect(),
            )
        }
    };
    Ok(Tensor { dims, data })
}

fn gather(data: &Tensor, idx: &Tensor, axis: i64) -> std::result::Result<Tensor, String> {
    let ax = norm_axis(axis, data.dims.len()).ok_or_else(|| format!("axis {axis} out of range"))?;
    let ind = idx.as_ints().ok_or("indices must be integers")?;
    let n = data.dims[ax];
    let outer: usize = data.dims[..ax].iter().product();
    let inner: usize = data.dims[ax + 1..].iter().product();
    if numel(&[outer, ind.len(), inner]).is_none_or(|n| n > MAX_ELEMS) {
        return Err("result too large".into());
    }
    let ind = ind
        .iter()
        .map(|&j| {
            let j = if j < 0 { j + n as i64 } else { j };
            usize::try_from(j)
                .ok()
                .filter(|&j| j < n)
                .ok_or_else(|| format!("index {j} out of range for axis of size {n}"))
        })
        .collect::<std::result::Result<Vec<usize>, String>>()?;
    let picks: Vec<usize> = positions(&data.dims, 0).select(Axis(ax), &ind).iter().copied().collect();
    let dims = data.dims[..ax].iter().chain(&idx.dims).chain(&data.dims[ax + 1..]).copied().collect();
    Ok(data.pick(dims, &picks))
}

fn concat_const(ts: &[Rc<Tensor>], axis: i64) -> std::result::Result<Tensor, String> {
    let first = &ts[0].dims;
    let ax = norm_axis(axis, first.len()).ok_or_else(|| format!("axis {axis} out of range"))?;
    for t in ts {
        if t.dims.len() != first.len() || t.dims.iter().enumerate().any(|(i, &d)| i != ax && d != first[i]) {
            return Err(format!("shapes {} and {} cannot be concatenated", shape_str(first), shape_str(&t.dims)));
        }
    }
    // Every tensor's values one after the other, then picked in the concatenated order.
    let mut offset = 0;
    let mut parts = Vec::new();
    for t in ts {
        parts.push(positions(&t.dims, offset));
        offset += t.len();
    }
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    let order = ndarray::concatenate(Axis(ax), &views).map_err(|e| e.to_string())?;
    let all = if ts.iter().all(|t| t.as_ints().is_some()) {
        Tensor::ints(vec![offset], ts.iter().filter_map(|t| t.as_ints()).flatten().copied().collect())
    } else {
        Tensor::floats(vec![offset], ts.iter().flat_map(|t| t.to_f64()).collect())
    };
    let picks: Vec<usize> = order.iter().copied().collect();
    Ok(all.pick(order.shape().to_vec(), &picks))
}

fn slice_const(
    data: &Tensor,
    starts: &[i64],
    ends: &[i64],
    axes: Option<&[i64]>,
    steps: Option<&[i64]>,
) -> std::result::Result<Tensor, String> {
    let r = data.dims.len();
    if starts.len() != ends.len() {
        return Err("starts and ends differ in length".into());
    }
    let axes: Vec<i64> = axes.map_or_else(|| (0..starts.len() as i64).collect(), <[i64]>::to_vec);
    if axes.len() != starts.len() || steps.is_some_and(|s| s.len() != starts.len()) {
        return Err("starts, ends, axes and steps differ in length".into());
    }
    let mut sel: Vec<Vec<usize>> = data.dims.iter().map(|&d| (0..d).collect()).collect();
    for (k, &ax) in axes.iter().enumerate() {
        let a = norm_axis(ax, r).ok_or_else(|| format!("axis {ax} out of range"))?;
        let d = data.dims[a] as i64;
        let step = steps.map_or(1, |s| s[k]);
        if step == 0 {
            return Err("step 0".into());
        }
        let fix = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
        let (s, e) = (fix(starts[k]), fix(ends[k]));
        let mut idx = Vec::new();
        if step > 0 {
            let (mut i, e) = (s.clamp(0, d), e.clamp(0, d));
            while i < e {
                idx.push(i as usize);
                i = i.saturating_add(step);
            }
        } else {
            let (mut i, e) = (s.clamp(-1, d - 1), e.clamp(-1, d - 1));
            while i > e {
                idx.push(i as usize);
                i = i.saturating_add(step);
            }
        }
        sel[a] = idx;
    }
    let mut picks = positions(&data.dims, 0);
    for (a, idx) in sel.iter().enumerate() {
        picks = picks.select(Axis(a), idx);
    }
    let dims = picks.shape().to_vec();
    Ok(data.pick(dims, &picks.iter().copied().collect::<Vec<_>>()))
}

/// Resolves a Reshape target (`-1` inferred once, `0` copies the input unless `allowzero`).
fn reshape_dims(from: &[usize], target: &[i64], allowzero: bool) -> std::result::Result<Vec<usize>, String> {
    let total = numel(from).ok_or("input too large")?;
    let mut out = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &t) in target.iter().enumerate() {
        match t {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            0 if !allowzero => out.push(
                *from.get(i).ok_or_else(|| format!("target {target:?}: 0 at axis {i} has no input axis to copy"))?,
            ),
            t if t > 0 => out.push(usize::try_from(t).map_err(|_| "dimension too large")?),
            _ => return Err(format!("target shape {target:?} is invalid")),
        }
    }
    let known = numel(&out).ok_or("target too large")?;
    if let Some(i) = infer {
        if known == 0 || total % known != 0 {
            return Err(format!("cannot reshape {} to {target:?}", shape_str(from)));
        }
        out[i] = total / known;
    }
    if numel(&out) != Some(total) {
        return Err(format!("cannot reshape {} ({total} elements) to {target:?}", shape_str(from)));
    }
    Ok(out)
}
