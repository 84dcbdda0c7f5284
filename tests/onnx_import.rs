//! ONNX import: small models built here with the prost types, plus the shipped fixtures (those
//! tests skip with a note when a fixture is missing).
use std::path::{Path, PathBuf};

mod common;

use prost::Message;
use qdse::model::onnx::{import, load, ImportError};
use qdse::model::onnx_proto as pb;
use qdse::model::{inspect_table, Activation, Graph, Op};

// ---------------------------------------------------------------------------------------------
// A tiny model builder

struct Model {
    graph: pb::GraphProto,
    opset: i64,
}

fn dims_proto(dims: &[i64]) -> pb::TypeProto {
    use pb::tensor_shape_proto::{dimension::Value as D, Dimension};
    let dim = dims
        .iter()
        .map(|&d| Dimension {
            value: Some(if d < 0 { D::DimParam("N".into()) } else { D::DimValue(d) }),
            ..Default::default()
        })
        .collect();
    pb::TypeProto {
        value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
            elem_type: 1,
            shape: Some(pb::TensorShapeProto { dim }),
        })),
        ..Default::default()
    }
}

fn value_info(name: &str, dims: &[i64]) -> pb::ValueInfoProto {
    pb::ValueInfoProto { name: name.into(), r#type: Some(dims_proto(dims)), ..Default::default() }
}

/// float32 tensor in raw_data (as PyTorch writes it).
fn tensor_f32(name: &str, dims: &[i64], data: &[f32]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 1,
        raw_data: data.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn tensor_i64(name: &str, dims: &[i64], data: &[i64]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 7,
        int64_data: data.to_vec(),
        ..Default::default()
    }
}

fn a_int(name: &str, i: i64) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: 2, i, ..Default::default() }
}
fn a_ints(name: &str, ints: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: 7, ints: ints.to_vec(), ..Default::default() }
}
fn a_float(name: &str, f: f32) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: 1, f, ..Default::default() }
}
fn a_str(name: &str, s: &str) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: 3, s: s.as_bytes().to_vec(), ..Default::default() }
}
fn a_tensor(name: &str, t: pb::TensorProto) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: 4, t: Some(t), ..Default::default() }
}

impl Model {
    /// A model with one input "x" of the given shape (a negative entry is the symbolic batch).
    fn new(input: &[i64]) -> Model {
        Model { graph: pb::GraphProto { input: vec![value_info("x", input)], ..Default::default() }, opset: 13 }
    }
    fn opset(mut self, v: i64) -> Model {
        self.opset = v;
        self
    }
    fn init(&mut self, name: &str, dims: &[i64], data: &[f32]) -> &mut Self {
        self.graph.initializer.push(tensor_f32(name, dims, data));
        self
    }
    fn init_i64(&mut self, name: &str, dims: &[i64], data: &[i64]) -> &mut Self {
        self.graph.initializer.push(tensor_i64(name, dims, data));
        self
    }
    fn node(
        &mut self,
        op: &str,
        name: &str,
        inputs: &[&str],
        outputs: &[&str],
        attrs: Vec<pb::AttributeProto>,
    ) -> &mut Self {
        self.graph.node.push(pb::NodeProto {
            op_type: op.into(),
            name: name.into(),
            input: inputs.iter().map(std::string::ToString::to_string).collect(),
            output: outputs.iter().map(std::string::ToString::to_string).collect(),
            attribute: attrs,
            ..Default::default()
        });
        self
    }
    fn output(&mut self, name: &str) -> &mut Self {
        self.graph.output.push(pb::ValueInfoProto { name: name.into(), ..Default::default() });
        self
    }
    fn bytes(&self) -> Vec<u8> {
        pb::ModelProto {
            ir_version: 8,
            producer_name: "qdse-test".into(),
            opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: self.opset }],
            graph: Some(self.graph.clone()),
            ..Default::default()
        }
        .encode_to_vec()
    }
    fn import(&self) -> Result<Graph, ImportError> {
        import(&self.bytes())
    }
    fn ok(&self) -> Graph {
        match self.import() {
            Ok(g) => g,
            Err(e) => panic!("import failed: {e}"),
        }
    }
    fn err(&self) -> String {
        match self.import() {
            Ok(g) => panic!("import succeeded unexpectedly:\n{}", inspect_table(&g)),
            Err(e) => e.to_string(),
        }
    }
}

/// Deterministic, non-trivial parameter values.
fn vals(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let x = (i as u32).wrapping_mul(2654435761).wrapping_add(seed.wrapping_mul(40503)) >> 8;
            (x % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
}

fn kinds(g: &Graph) -> Vec<String> {
    g.nodes.iter().map(qdse::model::summary::op_label).collect()
}

fn conv(g: &Graph, i: usize) -> &qdse::model::ir::Conv {
    match &g.nodes[i].op {
        Op::Conv(c) => c,
        op => panic!("node {i} is {op:?}, not Conv"),
    }
}

fn dense(g: &Graph, i: usize) -> &qdse::model::ir::Dense {
    match &g.nodes[i].op {
        Op::Dense(d) => d,
        op => panic!("node {i} is {op:?}, not Dense"),
    }
}

const BN_GAMMA: [f32; 3] = [0.9, 1.3, 0.55];
const BN_BETA: [f32; 3] = [0.1, -0.25, 0.05];
const BN_MEAN: [f32; 3] = [0.2, -0.1, 0.35];
const BN_VAR: [f32; 3] = [0.8, 1.7, 0.45];
const BN_EPS: f32 = 1e-3;

/// x [N,2,5,5] -> Conv 2->3, 3x3, pad 1 (weight "w", bias "b"); BN params "g","be","m","v".
fn conv_model() -> Model {
    let mut m = Model::new(&[-1, 2, 5, 5]);
    m.init("w", &[3, 2, 3, 3], &vals(54, 1))
        .init("b", &[3], &vals(3, 2))
        .init("g", &[3], &BN_GAMMA)
        .init("be", &[3], &BN_BETA)
        .init("m", &[3], &BN_MEAN)
        .init("v", &[3], &BN_VAR)
        .node(
            "Conv",
            "conv",
            &["x", "w", "b"],
            &["c"],
            vec![a_ints("kernel_shape", &[3, 3]), a_ints("pads", &[1, 1, 1, 1])],
        );
    m
}

fn bn_scale(o: usize) -> f64 {
    f64::from(BN_GAMMA[o]) / (f64::from(BN_VAR[o]) + f64::from(BN_EPS)).sqrt()
}

// ---------------------------------------------------------------------------------------------
// Folding and fusing

#[test]
fn conv_bn_relu_folds_into_one_conv() {
    let mut m = conv_model();
    m.node("BatchNormalization", "bn", &["c", "g", "be", "m", "v"], &["n"], vec![a_float("epsilon", BN_EPS)])
        .node("Relu", "relu", &["n"], &["y"], vec![])
        .output("y");
    let g = m.ok();
    assert_eq!(kinds(&g), ["Conv+Relu"]);
    assert_eq!(g.nodes[0].name, "conv");
    assert_eq!(g.values[g.nodes[0].output].name, "y");
    assert_eq!(g.shape(g.output), &[3, 5, 5]);
    assert_eq!(g.input_shape(), &[2, 5, 5]);
    let c = conv(&g, 0);
    assert!(c.has_bias);
    let (w, b) = (vals(54, 1), vals(3, 2));
    for o in 0..3 {
        let s = bn_scale(o);
        for k in 0..18 {
            assert_eq!(c.weight[o * 18 + k], f64::from(w[o * 18 + k]) * s, "weight {o},{k}");
        }
        let want = (f64::from(b[o]) - f64::from(BN_MEAN[o])) * s + f64::from(BN_BETA[o]);
        assert_eq!(c.bias[o], want, "bias {o}");
    }
    // hand-computed for channel 0: gamma 0.9, var 0.8, eps 1e-3 (all as f32 -> f64)
    let s0 = f64::from(0.9f32) / (f64::from(0.8f32) + f64::from(1e-3f32)).sqrt();
    assert!((s0 - 1.005_602_250_578_841).abs() < 1e-12, "{s0}");
    assert_eq!(c.weight[0], f64::from(w[0]) * s0);
}

#[test]
fn conv_without_bias_gets_folded_bias() {
    let mut m = conv_model();
    m.graph.node[0].input.truncate(2);
    m.node("BatchNormalization", "bn", &["c", "g", "be", "m", "v"], &["y"], vec![a_float("epsilon", BN_EPS)])
        .output("y");
    let g = m.ok();
    let c = conv(&g, 0);
    assert!(c.has_bias);
    for o in 0..3 {
        let s = bn_scale(o);
        assert_eq!(c.bias[o], (0.0 - f64::from(BN_MEAN[o])) * s + f64::from(BN_BETA[o]));
    }
}

#[test]
fn conv_relu_bn_gives_conv_relu_and_affine() {
    let mut m = conv_model();
    m.node("Relu", "relu", &["c"], &["r"], vec![])
        .node("BatchNormalization", "bn", &["r", "g", "be", "m", "v"], &["y"], vec![a_float("epsilon", BN_EPS)])
        .output("y");
    let g = m.ok();
    assert_eq!(kinds(&g), ["Conv+Relu", "Affine"]);
    assert_eq!(g.nodes[1].name, "bn");
    assert_eq!(conv(&g, 0).bias, vals(3, 2).iter().map(|&b| f64::from(b)).collect::<Vec<_>>());
    let Op::Affine(a) = &g.nodes[1].op else { panic!() };
    assert_eq!(a.channels, 3);
    for o in 0..3 {
        let s = bn_scale(o);
        assert_eq!(a.scale[o], s);
        assert_eq!(a.shift[o], f64::from(BN_BETA[o]) - f64::from(BN_MEAN[o]) * s);
    }
    assert_eq!(g.nodes[1].inputs, vec![g.nodes[0].output]);
    assert_eq!(g.values[g.nodes[0].output].name, "r");
}

#[test]
fn bn_after_conv_with_two_consumers_stays_affine() {
    let mut m = conv_model();
    m.node("BatchNormalization", "bn", &["c", "g", "be", "m", "v"], &["n"], vec![])
        .node("Add", "add", &["n", "c"], &["y"], vec![])
        .output("y");
    let g = m.ok();
    assert_eq!(kinds(&g), ["Conv", "Affine", "Add"]);
}

#[test]
fn relu_whose_input_has_two_consumers_stays_separate() {
    let mut m = conv_model();
    m.node("Relu", "relu", &["c"], &["r"], vec![]).node("Add", "add", &["c", "r"], &["y"], vec![]).output("y");
    let g = m.ok();
    assert_eq!(kinds(&g), ["Conv", "Activation(Relu)", "Add"]);
    assert_eq!(g.nodes[1].op, Op::Activation(Activation::Relu));
    assert_eq!(g.nodes[2].inputs, vec![g.nodes[0].output, g.nodes[1].output]);
}

#[test]
fn relu_whose_output_has_two_consumers_still_fuses() {
    let mut m = conv_model();
    m.node("Relu", "relu", &["c"], &["r"], vec![])
        .node("Add", "add", &["r", "r2"], &["a"], vec![])
        .node("Relu", "relu2", &["r"], &["r2"], vec![])
        .node("Relu", "relu3", &["a"], &["y"], vec![])
        .output("y");
    // (nodes deliberately out of order: the importer sorts them)
    let g = m.ok();
    assert_eq!(kinds(&g), ["Conv+Relu", "Activation(Relu)", "Add+Relu"]);
    assert_eq!(g.nodes[2].name, "add");
}

#[test]
fn add_of_constant_becomes_conv_bias() {
    let mut m = conv_model();
    m.init("cb", &[1, 3, 1, 1], &[1.0, 2.0, 3.0]).node("Add", "addb", &["c", "cb"], &["y"], vec![]).output("y");
    let g = m.ok();
    assert_eq!(kinds(&g), ["Conv"]);
    let b = vals(3, 2);
    assert_eq!(conv(&g, 0).bias, (0..3).map(|o| f64::from(b[o]) + (o + 1) as f64).collect::<Vec<_>>());
    assert_eq!(g.values[g.output].name, "y");
}

#[test]
fn add_of_constant_not_after_conv_is_an_error() {
    let mut m = conv_model();
    m.init("cb", &[3, 1, 1], &[1.0, 2.0, 3.0])
        .node("Relu", "r", &["c"], &["r"], vec![])
        .node("MaxPool", "pool", &["r"], &["p"], vec![a_ints("kernel_shape", &[2, 2])])
        .node("Add", "addb", &["p", "cb"], &["y"], vec![])
        .output("y");
    let e = m.err();
    assert!(e.contains("node 'addb' (op Add)") && e.contains("bias"), "{e}");
}

#[test]
fn gemm_trans_b_alpha_beta() {
    // transB = 0: B is [in, out]
    let bmat = vals(12, 3); // [4, 3]
    let cvec = vals(3, 4);
    let mut m = Model::new(&[-1, 4]);
    m.init("B", &[4, 3], &bmat)
        .init("C", &[3], &cvec)
        .node("Gemm", "fc", &["x", "B", "C"], &["y"], vec![a_float("alpha", 0.5), a_float("beta", 2.0)])
        .output("y");
    let g = m.ok();
    let d = dense(&g, 0);
    assert_eq!((d.in_features, d.out_features), (4, 3));
    for o in 0..3 {
        for i in 0..4 {
            assert_eq!(d.weight[o * 4 + i], 0.5 * f64::from(bmat[i * 3 + o]));
        }
        assert_eq!(d.bias[o], 2.0 * f64::from(cvec[o]));
    }
    assert_eq!(g.shape(g.output), &[3]);

    // transB = 1: B is [out, in], alpha 1.5, no C
    let mut m = Model::new(&[-1, 4]);
    m.init("B", &[3, 4], &bmat)
        .node("Gemm", "fc", &["x", "B"], &["y"], vec![a_int("transB", 1), a_float("alpha", 1.5)])
        .output("y");
    let g = m.ok();
    let d = dense(&g, 0);
    assert!(!d.has_bias);
    assert_eq!(d.weight, bmat.iter().map(|&v| 1.5 * f64::from(v)).collect::<Vec<_>>());
    assert_eq!(d.bias, vec![0.0; 3]);

    // in_features mismatch
    let mut m = Model::new(&[-1, 5]);
    m.init("B", &[3, 4], &bmat).node("Gemm", "fc", &["x", "B"], &["y"], vec![a_int("transB", 1)]).output("y");
    let e = m.err();
    assert!(e.contains("node 'fc' (op Gemm)") && e.contains("in_features"), "{e}");
}

#[test]
fn matmul_add_becomes_dense_with_bias() {
    let w = vals(12, 5); // [4, 3]
    let b = vals(3, 6);
    let mut m = Model::new(&[-1, 4]);
    m.init("W", &[4, 3], &w)
        .init("b", &[3], &b)
        .node("MatMul", "mm", &["x", "W"], &["h"], vec![])
        .node("Add", "add", &["h", "b"], &["y"], vec![])
        .output("y");
    let g = m.ok();
    assert_eq!(kinds(&g), ["Dense"]);
    assert_eq!(g.nodes[0].name, "mm");
    let d = dense(&g, 0);
    assert!(d.has_bias);
    assert_eq!(d.bias, b.iter().map(|&v| f64::from(v)).collect::<Vec<_>>());
    for o in 0..3 {
        for i in 0..4 {
            assert_eq!(d.weight[o * 4 + i], f64::from(w[i * 3 + o]));
        }
    }
    assert_eq!(g.values[g.output].name, "y");
}

/// PyTorch's `x.view(x.size(0), -1)`: Shape -> Gather -> Unsqueeze -> Concat -> Reshape.
fn view_flatten_model(opset: i64) -> Model {
    let mut m = Model::new(&[-1, 2, 3, 3]).opset(opset);
    m.init("W", &[4, 18], &vals(72, 7))
        .node("Relu", "relu", &["x"], &["r"], vec![])
        .node("Shape", "/Shape", &["r"], &["s"], vec![])
        .node("Constant", "/Constant", &[], &["zero"], vec![a_tensor("value", tensor_i64("", &[], &[0]))])
        .node("Gather", "/Gather", &["s", "zero"], &["n"], vec![a_int("axis", 0)]);
    if opset >= 13 {
        m.node("Constant", "Constant_9", &[], &["ax"], vec![a_tensor("value", tensor_i64("", &[1], &[0]))]).node(
            "Unsqueeze",
            "/Unsqueeze",
            &["n", "ax"],
            &["n1"],
            vec![],
        );
    } else {
        m.node("Unsqueeze", "/Unsqueeze", &["n"], &["n1"], vec![a_ints("axes", &[0])]);
    }
    m.node("Constant", "/Constant_1", &[], &["m1"], vec![a_tensor("value", tensor_i64("", &[1], &[-1]))])
        .node("Concat", "/Concat", &["n1", "m1"], &["shape"], vec![a_int("axis", 0)])
        .node("Reshape", "/Reshape", &["r", "shape"], &["f"], vec![])
        .node("Gemm", "/fc/Gemm", &["f", "W"], &["y"], vec![a_int("transB", 1)])
        .output("y");
    m
}

#[test]
fn pytorch_view_shape_subgraph_folds_to_flatten() {
    for opset in [11, 13] {
        let g = view_flatten_model(opset).ok();
        assert_eq!(kinds(&g), ["Activation(Relu)", "Flatten", "Dense"], "opset {opset}");
        assert_eq!(g.nodes[1].name, "/Reshape");
        assert_eq!(g.shape(g.nodes[1].output), &[18]);
        assert_eq!(g.values[g.nodes[1].output].name, "f");
        assert_eq!(dense(&g, 2).in_features, 18);
        assert_eq!(g.values.len(), 4, "no constant or shape values left: {:?}", g.values);
    }
}

#[test]
fn reshape_from_initializer_and_flatten_op() {
    // dynamo style: shape initializer [-1, 18] with allowzero=1
    let mut m = Model::new(&[-1, 2, 3, 3]);
    m.init_i64("sh", &[2], &[-1, 18])
        .node("Reshape", "rs", &["x", "sh"], &["y"], vec![a_int("allowzero", 1)])
        .output("y");
    assert_eq!(kinds(&m.ok()), ["Flatten"]);
    // [0, -1]: 0 copies the batch axis
    let mut m = Model::new(&[-1, 2, 3, 3]);
    m.init_i64("sh", &[2], &[0, -1]).node("Reshape", "rs", &["x", "sh"], &["y"], vec![]).output("y");
    assert_eq!(m.ok().shape(1), &[18]);
    // Flatten node
    let mut m = Model::new(&[-1, 2, 3, 3]);
    m.node("Flatten", "fl", &["x"], &["y"], vec![a_int("axis", 1)]).output("y");
    assert_eq!(kinds(&m.ok()), ["Flatten"]);
    // reshape to something that is not a flatten
    let mut m = Model::new(&[-1, 2, 3, 3]);
    m.init_i64("sh", &[3], &[-1, 6, 3]).node("Reshape", "rs", &["x", "sh"], &["y"], vec![]).output("y");
    let e = m.err();
    assert!(e.contains("node 'rs' (op Reshape)") && e.contains("flatten"), "{e}");
    // reshape that folds the batch axis away
    let mut m = Model::new(&[-1, 2, 3, 3]);
    m.init_i64("sh", &[1], &[-1]).node("Reshape", "rs", &["x", "sh"], &["y"], vec![]).output("y");
    assert!(m.err().contains("batch"));
}

#[test]
fn squeeze_after_global_pool_is_a_flatten() {
    let mut m = Model::new(&[-1, 3, 4, 4]);
    m.init_i64("axes", &[2], &[2, 3])
        .node("GlobalAveragePool", "gap", &["x"], &["p"], vec![])
        .node("Squeeze", "sq", &["p", "axes"], &["y"], vec![])
        .output("y");
    let g = m.ok();
    assert_eq!(kinds(&g), ["GlobalAvgPool", "Flatten"]);
    assert_eq!(g.shape(g.nodes[0].output), &[3, 1, 1]);
    assert_eq!(g.shape(g.output), &[3]);
}

#[test]
fn clip_bounds_from_inputs_and_attributes() {
    // opset 13: min/max as (constant) inputs
    let mut m = conv_model();
    m.node("Constant", "lo", &[], &["lo"], vec![a_tensor("value", tensor_f32("", &[], &[0.0]))])
        .init("hi", &[], &[6.0])
        .node("Clip", "clip", &["c", "lo", "hi"], &["y"], vec![])
        .output("y");
    assert_eq!(conv(&m.ok(), 0).activation, Activation::Clip { min: 0.0, max: 6.0 });
    // min only, 0 -> Relu
    let mut m = conv_model();
    m.init("lo", &[], &[0.0]).node("Clip", "clip", &["c", "lo"], &["y"], vec![]).output("y");
    assert_eq!(conv(&m.ok(), 0).activation, Activation::Relu);
    // max only (empty name for the missing min)
    let mut m = conv_model();
    m.init("hi", &[], &[1.0]).node("Clip", "clip", &["c", "", "hi"], &["y"], vec![]).output("y");
    assert_eq!(conv(&m.ok(), 0).activation, Activation::Clip { min: f64::NEG_INFINITY, max: 1.0 });
    // opset 6: attributes
    let mut m = conv_model().opset(6);
    m.node("Clip", "clip", &["c"], &["y"], vec![a_float("min", -1.0), a_float("max", 1.0)]).output("y");
    assert_eq!(conv(&m.ok(), 0).activation, Activation::Clip { min: -1.0, max: 1.0 });
    // a clip bound that is computed at run time
    let mut m = conv_model();
    m.node("Clip", "clip", &["c", "x"], &["y"], vec![]).output("y");
    assert!(m.err().contains("node 'clip' (op Clip)"));
}

#[test]
fn reduce_mean_and_max_over_spatial_axes() {
    // opset 13: axes attribute, keepdims 0
    let mut m = Model::new(&[-1, 3, 4, 4]);
    m.node("ReduceMean", "rm", &["x"], &["y"], vec![a_ints("axes", &[2, 3]), a_int("keepdims", 0)]).output("y");
    let g = m.ok();
    assert_eq!(g.nodes[0].op, Op::GlobalAvgPool);
    assert_eq!(g.shape(g.output), &[3]);
    // opset 18: axes input, negative axes, keepdims default 1
    let mut m = Model::new(&[-1, 3, 4, 4]).opset(18);
    m.init_i64("axes", &[2], &[-1, -2]).node("ReduceMax", "rx", &["x", "axes"], &["y"], vec![]).output("y");
    let g = m.ok();
    assert_eq!(g.nodes[0].op, Op::GlobalMaxPool);
    assert_eq!(g.shape(g.output), &[3, 1, 1]);
    // not the spatial axes
    let mut m = Model::new(&[-1, 3, 4, 4]);
    m.node("ReduceMean", "rm", &["x"], &["y"], vec![a_ints("axes", &[1])]).output("y");
    let e = m.err();
    assert!(e.contains("node 'rm' (op ReduceMean)") && e.contains("[2, 3]"), "{e}");
}

#[test]
fn concat_on_channels() {
    for axis in [1, -3] {
        let mut m = conv_model();
        m.init("w2", &[4, 2, 1, 1], &vals(8, 9))
            .node("Conv", "conv2", &["x", "w2"], &["c2"], vec![])
            .node("Concat", "cat", &["c", "c2"], &["y"], vec![a_int("axis", axis)])
            .output("y");
        let g = m.ok();
        assert_eq!(kinds(&g), ["Conv", "Conv", "Concat"]);
        assert_eq!(g.shape(g.output), &[7, 5, 5]);
        assert_eq!(g.nodes[2].inputs.len(), 2);
    }
    // spatial mismatch
    let mut m = conv_model();
    m.init("w2", &[4, 2, 1, 1], &vals(8, 9))
        .node("Conv", "conv2", &["x", "w2"], &["c2"], vec![a_ints("strides", &[2, 2])])
        .node("Concat", "cat", &["c", "c2"], &["y"], vec![a_int("axis", 1)])
        .output("y");
    let e = m.err();
    assert!(e.contains("node 'cat' (op Concat)") && e.contains("[3, 5, 5]") && e.contains("[4, 3, 3]"), "{e}");
    // spatial axis
    let mut m = conv_model();
    m.node("Concat", "cat", &["c", "c"], &["y"], vec![a_int("axis", 2)]).output("y");
    assert!(m.err().contains("channel axis"));
}

#[test]
fn final_softmax_is_dropped() {
    for op in ["Softmax", "LogSoftmax"] {
        let mut m = Model::new(&[-1, 4]);
        m.init("B", &[3, 4], &vals(12, 1))
            .node("Gemm", "fc", &["x", "B"], &["logits"], vec![a_int("transB", 1)])
            .node(op, "sm", &["logits"], &["probs"], vec![a_int("axis", 1)])
            .output("probs");
        let g = m.ok();
        assert_eq!(kinds(&g), ["Dense"]);
        assert_eq!(g.values[g.output].name, "logits");
        assert_eq!(g.num_classes(), 3);
    }
    // Softmax in the middle
    let mut m = Model::new(&[-1, 4]);
    m.init("B", &[3, 4], &vals(12, 1))
        .node("Softmax", "sm", &["x"], &["p"], vec![])
        .node("Gemm", "fc", &["p", "B"], &["y"], vec![a_int("transB", 1)])
        .output("y");
    assert!(m.err().contains("node 'sm' (op Softmax)"));
}

#[test]
fn identity_and_dropout_disappear() {
    let mut m = conv_model();
    m.node("Identity", "id", &["c"], &["i"], vec![])
        .node("Dropout", "drop", &["i"], &["d"], vec![])
        .node("Relu", "relu", &["d"], &["y"], vec![])
        .output("y");
    let g = m.ok();
    assert_eq!(kinds(&g), ["Conv+Relu"]);
}

#[test]
fn depthwise_conv_and_auto_pad() {
    let mut m = Model::new(&[-1, 4, 5, 5]);
    m.init("w", &[4, 1, 3, 3], &vals(36, 3))
        .node(
            "Conv",
            "dw",
            &["x", "w"],
            &["y"],
            vec![a_int("group", 4), a_str("auto_pad", "SAME_UPPER"), a_ints("strides", &[2, 2])],
        )
        .output("y");
    let g = m.ok();
    assert_eq!(kinds(&g), ["DepthwiseConv"]);
    let c = conv(&g, 0);
    assert_eq!((c.groups, c.in_channels, c.out_channels), (4, 4, 4));
    assert_eq!(c.window.pads, [1, 1, 1, 1]);
    assert_eq!(g.shape(g.output), &[4, 3, 3]);
    assert_eq!(c.window.output_hw(5, 5), Some([3, 3]));

    // even kernel: SAME_UPPER pads at the end, SAME_LOWER at the beginning
    for (mode, pads) in [("SAME_UPPER", [0, 0, 1, 1]), ("SAME_LOWER", [1, 1, 0, 0]), ("VALID", [0, 0, 0, 0])] {
        let mut m = Model::new(&[-1, 1, 4, 4]);
        m.init("w", &[2, 1, 2, 2], &vals(8, 3))
            .node("Conv", "c", &["x", "w"], &["y"], vec![a_str("auto_pad", mode), a_ints("dilations", &[1, 1])])
            .output("y");
        let g = m.ok();
        assert_eq!(conv(&g, 0).window.pads, pads, "{mode}");
        let hw = if mode == "VALID" { 3 } else { 4 };
        assert_eq!(g.shape(g.output), &[2, hw, hw], "{mode}");
    }
    let mut m = Model::new(&[-1, 1, 4, 4]);
    m.init("w", &[2, 1, 2, 2], &vals(8, 3))
        .node("Conv", "c", &["x", "w"], &["y"], vec![a_str("auto_pad", "FOO")])
        .output("y");
    let e = m.err();
    assert!(e.contains("node 'c' (op Conv)") && e.contains("auto_pad 'FOO'"), "{e}");
}

#[test]
fn pools() {
    let mut m = Model::new(&[-1, 2, 7, 7]);
    m.node(
        "MaxPool",
        "mp",
        &["x"],
        &["a"],
        vec![a_ints("kernel_shape", &[3, 3]), a_ints("strides", &[2, 2]), a_ints("pads", &[1, 1, 1, 1])],
    )
    .node("AveragePool", "ap", &["a"], &["y"], vec![a_ints("kernel_shape", &[2, 2]), a_int("count_include_pad", 1)])
    .output("y");
    let g = m.ok();
    assert_eq!(g.shape(g.nodes[0].output), &[2, 4, 4]);
    assert_eq!(g.shape(g.output), &[2, 3, 3]);
    let Op::AvgPool { window, count_include_pad } = g.nodes[1].op else { panic!() };
    assert!(count_include_pad);
    assert_eq!(window.stride, [1, 1]);
    // ceil_mode that changes the size
    let mut m = Model::new(&[-1, 2, 7, 7]);
    m.node(
        "MaxPool",
        "mp",
        &["x"],
        &["y"],
        vec![a_ints("kernel_shape", &[2, 2]), a_ints("strides", &[2, 2]), a_int("ceil_mode", 1)],
    )
    .output("y");
    assert!(m.err().contains("ceil_mode"));
}

#[test]
fn tensor_encodings() {
    // typed float_data, float64 and float16 initializers give the same weights
    let w = [0.5f32, -1.25, 2.0, 0.0, 3.5, -0.75];
    let mut variants = Vec::new();
    let typed = pb::TensorProto {
        name: "B".into(),
        dims: vec![2, 3],
        data_type: 1,
        float_data: w.to_vec(),
        ..Default::default()
    };
    let double = pb::TensorProto {
        name: "B".into(),
        dims: vec![2, 3],
        data_type: 11,
        raw_data: w.iter().flat_map(|&x| f64::from(x).to_le_bytes()).collect(),
        ..Default::default()
    };
    // these values are exact in f16: 0.5=0x3800, -1.25=0xBD00, 2=0x4000, 0, 3.5=0x4300, -0.75=0xBA00
    let half = pb::TensorProto {
        name: "B".into(),
        dims: vec![2, 3],
        data_type: 10,
        raw_data: [0x3800u16, 0xBD00, 0x4000, 0, 0x4300, 0xBA00].iter().flat_map(|h| h.to_le_bytes()).collect(),
        ..Default::default()
    };
    for t in [tensor_f32("B", &[2, 3], &w), typed, double, half] {
        let mut m = Model::new(&[-1, 3]);
        m.graph.initializer.push(t);
        m.node("Gemm", "fc", &["x", "B"], &["y"], vec![a_int("transB", 1)]).output("y");
        variants.push(dense(&m.ok(), 0).weight.clone());
    }
    for v in &variants {
        assert_eq!(v, &w.iter().map(|&x| f64::from(x)).collect::<Vec<_>>());
    }
    // wrong element count
    let mut m = Model::new(&[-1, 3]);
    m.init("B", &[2, 3], &w[..5]).node("Gemm", "fc", &["x", "B"], &["y"], vec![a_int("transB", 1)]).output("y");
    let e = m.err();
    assert!(e.contains("tensor 'B'") && e.contains("6 values"), "{e}");
}

#[test]
fn unnamed_nodes_get_synthesized_names() {
    let mut m = conv_model();
    m.graph.node[0].name.clear();
    m.node("MaxPool", "", &["c"], &["y"], vec![a_ints("kernel_shape", &[2, 2])]).output("y");
    let g = m.ok();
    let names: Vec<&str> = g.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["Conv_0", "MaxPool_1"]);
}

// ---------------------------------------------------------------------------------------------
// Errors

#[test]
fn garbage_bytes_are_not_onnx() {
    for bytes in [&b"\xff\xff\xff\xff\xff garbage"[..], b"hello world, not a model", b""] {
        let e = import(bytes).unwrap_err();
        assert!(matches!(e, ImportError::NotOnnx(_)), "{e:?}");
        assert!(e.to_string().starts_with("not an ONNX model"), "{e}");
    }
    let e = load(Path::new("/nonexistent/model.onnx")).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/model.onnx"), "{e}");
}

#[test]
fn truncated_model_is_not_onnx() {
    let mut m = conv_model();
    m.node("Relu", "relu", &["c"], &["y"], vec![]).output("y");
    let bytes = m.bytes();
    for cut in [bytes.len() / 2, bytes.len() - 1, 10] {
        let e = import(&bytes[..cut]).unwrap_err();
        assert!(matches!(e, ImportError::NotOnnx(_)), "cut {cut}: {e:?}");
    }
    if let Some(p) = fixture("tests/fixtures/zoo-legacy.onnx") {
        let bytes = std::fs::read(p).unwrap();
        for cut in [bytes.len() / 2, bytes.len() - 3, 100] {
            let e = import(&bytes[..cut]).unwrap_err();
            assert!(e.to_string().starts_with("not an ONNX model"), "cut {cut}: {e}");
        }
    }
}

#[test]
fn model_without_graph() {
    let bytes = pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 13 }],
        ..Default::default()
    }
    .encode_to_vec();
    assert!(matches!(import(&bytes), Err(ImportError::MissingGraph)));
}

#[test]
fn unsupported_op_names_the_node() {
    let mut m = conv_model();
    m.node("LeakyRelu", "/act/LeakyRelu", &["c"], &["y"], vec![]).output("y");
    assert_eq!(m.err(), "node '/act/LeakyRelu' (op LeakyRelu): unsupported op");
}

#[test]
fn conv_3d_is_rejected() {
    let mut m = Model::new(&[-1, 1, 4, 4, 4]);
    m.init("w", &[2, 1, 3, 3, 3], &vals(54, 1)).node("Conv", "c3", &["x", "w"], &["y"], vec![]).output("y");
    let e = m.err();
    // the 5-D input itself is rejected first
    assert!(e.contains("graph input 'x'"), "{e}");
    let mut m = conv_model();
    m.init("w3", &[2, 3, 3, 3, 3], &vals(162, 1)).node("Conv", "c3", &["c", "w3"], &["y"], vec![]).output("y");
    assert_eq!(m.err(), "node 'c3' (op Conv): 3-D convolution is not supported");
}

#[test]
fn channel_mismatch() {
    let mut m = Model::new(&[-1, 3, 5, 5]);
    m.init("w", &[4, 2, 3, 3], &vals(72, 1)).node("Conv", "convX", &["x", "w"], &["y"], vec![]).output("y");
    let e = m.err();
    assert!(e.starts_with("node 'convX' (op Conv): input has 3 channels"), "{e}");
}

#[test]
fn add_shape_mismatch() {
    let mut m = conv_model();
    m.node("Add", "add", &["c", "x"], &["y"], vec![]).output("y");
    let e = m.err();
    assert!(e.contains("node 'add' (op Add)") && e.contains("[3, 5, 5] vs [2, 5, 5]"), "{e}");
}

#[test]
fn dangling_input_missing_initializer_and_cycle() {
    let mut m = Model::new(&[-1, 2, 5, 5]);
    m.node("Conv", "conv", &["x", "w_missing"], &["y"], vec![]).output("y");
    assert_eq!(
        m.err(),
        "node 'conv' (op Conv): input 'w_missing' is not produced by any node, initializer or graph input"
    );
    let mut m = Model::new(&[-1, 2]);
    m.node("Relu", "a", &["x2"], &["x1"], vec![]).node("Relu", "b", &["x1"], &["x2"], vec![]).output("x2");
    let e = m.err();
    assert!(e.contains("cycle"), "{e}");
    assert!(matches!(m.import(), Err(ImportError::Cycle { .. })));
}

#[test]
fn graph_inputs_and_outputs() {
    let mut m = conv_model();
    m.node("Relu", "relu", &["c"], &["y"], vec![]).output("y").output("c");
    assert!(m.err().contains("exactly one output"));
    let mut m = conv_model();
    m.graph.input.push(value_info("x2", &[-1, 2]));
    m.output("c");
    assert!(m.err().contains("exactly one input"));
    // an initializer listed as input (IR < 4) is fine
    let mut m = conv_model();
    m.graph.input.push(value_info("w", &[3, 2, 3, 3]));
    m.output("c");
    assert_eq!(kinds(&m.ok()), ["Conv"]);
    // bad input rank
    let mut m = Model::new(&[-1, 2, 5]);
    m.node("Relu", "r", &["x"], &["y"], vec![]).output("y");
    assert!(m.err().contains("graph input 'x'"));
    // symbolic spatial size
    let mut m = Model::new(&[-1, 2, -1, 5]);
    m.node("Relu", "r", &["x"], &["y"], vec![]).output("y");
    assert!(m.err().contains("fixed positive"));
}

#[test]
fn mul_on_activations_is_rejected() {
    let mut m = conv_model();
    m.init("k", &[], &[2.0]).node("Mul", "scale", &["c", "k"], &["y"], vec![]).output("y");
    assert!(m.err().starts_with("node 'scale' (op Mul)"));
}

#[test]
fn malformed_attributes_do_not_panic() {
    let cases: Vec<Vec<pb::AttributeProto>> = vec![
        vec![a_ints("strides", &[0, 1])],
        vec![a_ints("strides", &[1])],
        vec![a_ints("pads", &[-1, 0, 0, 0])],
        vec![a_ints("dilations", &[i64::MAX, 1])],
        vec![a_int("group", 0)],
        vec![a_int("group", -5)],
        vec![a_ints("kernel_shape", &[5, 5])],
        vec![a_ints("dilations", &[4, 4])],
    ];
    for attrs in cases {
        let mut m = Model::new(&[-1, 2, 5, 5]);
        m.init("w", &[3, 2, 3, 3], &vals(54, 1)).node("Conv", "c", &["x", "w"], &["y"], attrs.clone()).output("y");
        let e = m.err();
        assert!(e.starts_with("node 'c' (op Conv)"), "{attrs:?}: {e}");
    }
    // a Gather with an out of range index in a shape subgraph
    let mut m = view_flatten_model(13);
    m.graph.node[2].attribute[0].t = Some(tensor_i64("", &[], &[7]));
    assert!(m.err().contains("node '/Gather' (op Gather)"));
}

/// Flips bytes of a valid model at pseudo-random places: import must return, never panic.
fn mutate_and_import(bytes: &[u8], rounds: usize, seed: u64) -> (usize, usize) {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    let (mut ok, mut err) = (0, 0);
    for _ in 0..rounds {
        let mut b = bytes.to_vec();
        for _ in 0..1 + next() % 4 {
            let i = next() % b.len();
            b[i] = match next() % 3 {
                0 => b[i] ^ (1 << (next() % 8)),
                1 => 0xff,
                _ => next() as u8,
            };
        }
        match import(&b) {
            Ok(g) => {
                let _ = inspect_table(&g);
                ok += 1;
            }
            Err(e) => {
                let _ = e.to_string();
                err += 1;
            }
        }
    }
    (ok, err)
}

#[test]
fn corrupted_models_never_panic() {
    let mut m = view_flatten_model(13);
    m.node("BatchNormalization", "bn", &["y", "g", "be", "m", "v"], &["z"], vec![]);
    m.graph.output[0].name = "z".into();
    m.init("g", &[4], &[1.0, 2.0, 3.0, 4.0]).init("be", &[4], &[0.0; 4]).init("m", &[4], &[0.5; 4]).init(
        "v",
        &[4],
        &[1.0; 4],
    );
    assert!(m.import().is_ok());
    // ONNX_MUTATION_ROUNDS=100000 for a longer run
    let rounds: usize = std::env::var("ONNX_MUTATION_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(3000);
    let (ok, err) = mutate_and_import(&m.bytes(), rounds, 1);
    println!("small model: {ok} imported, {err} rejected");
    if let Some(p) = fixture("tests/fixtures/zoo-legacy.onnx") {
        let bytes = std::fs::read(p).unwrap();
        let (ok, err) = mutate_and_import(&bytes, rounds / 10, 2);
        println!("zoo-legacy: {ok} imported, {err} rejected");
    }
}

// ---------------------------------------------------------------------------------------------
// Shipped models and fixtures

fn fixture(rel: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("note: {rel} is missing; skipping the part of this test that needs it");
        None
    }
}

#[test]
fn zoo_legacy_imports() {
    let Some(p) = fixture("tests/fixtures/zoo-legacy.onnx") else {
        return;
    };
    let g = load(&p).unwrap();
    println!("{}", inspect_table(&g));
    let got: Vec<(String, String)> =
        g.nodes.iter().map(|n| (n.name.clone(), qdse::model::summary::op_label(n))).collect();
    let want = [
        ("/conv1/Conv", "Conv+Relu"),
        ("/conv2/Conv", "Conv+Clip(0,6)"),
        ("/dw/Conv", "DepthwiseConv+Relu"),
        ("/bn3/BatchNormalization", "Affine"),
        ("/Add", "Add+Relu"),
        ("/maxpool/MaxPool", "MaxPool"),
        ("/conv_s2/Conv", "Conv+Relu"),
        ("/Concat", "Concat"),
        ("/conv4/Conv", "Conv+Relu"),
        ("/avgpool/AveragePool", "AvgPool"),
        ("/ReduceMean", "GlobalAvgPool"),
        ("/Reshape", "Flatten"),
        ("/fc1/Gemm", "Dense+Relu"),
        ("/MatMul", "Dense"),
        ("/Add_2", "Add+Relu"),
        ("/fc2/Gemm", "Dense"),
    ];
    let want: Vec<(String, String)> = want.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    assert_eq!(got, want);
    assert!(conv(&g, 1).has_bias, "BN folded into conv2 gives it a bias");
    assert!(dense(&g, 13).has_bias, "the Add of b became the MatMul's bias");
    assert_eq!(g.input_shape(), &[1, 12, 12]);
    assert_eq!(g.values[g.output].name, "logits");
    assert_eq!(g.num_classes(), 10);
    check_logits(&g, "zoo-input.npy", "zoo-legacy-logits.npy", 1e-4);
}

#[test]
fn zoo_dynamo_imports() {
    let Some(p) = fixture("tests/fixtures/zoo-dynamo.onnx") else {
        return;
    };
    let g = load(&p).unwrap();
    println!("{}", inspect_table(&g));
    let labels: Vec<String> = kinds(&g);
    assert_eq!(
        labels,
        [
            "Conv+Relu",
            "Conv+Clip(0,6)",
            "DepthwiseConv+Relu",
            "Affine",
            "Add+Relu",
            "MaxPool",
            "Conv+Relu",
            "Concat",
            "Conv+Relu",
            "AvgPool",
            "GlobalAvgPool",
            "Flatten",
            "Dense+Relu",
            "Dense",
            "Add+Relu",
            "Dense"
        ]
    );
    assert_eq!(g.nodes[0].name, "node_conv2d");
    assert_eq!(g.nodes[13].name, "node_matmul");
    check_logits(&g, "zoo-input.npy", "zoo-dynamo-logits.npy", 1e-4);
}

#[test]
fn lenet5_fashion_imports() {
    let Some(p) = fixture("models/lenet5-fashion.onnx") else {
        return;
    };
    let g = load(&p).unwrap();
    let table = inspect_table(&g);
    println!("{table}");
    assert_eq!(
        kinds(&g),
        ["Conv+Relu", "MaxPool", "Conv+Relu", "MaxPool", "Flatten", "Dense+Relu", "Dense+Relu", "Dense"]
    );
    assert_eq!(g.input_shape(), &[1, 28, 28]);
    assert_eq!(g.shape(g.nodes[4].output), &[400]);
    let params: usize = g.nodes.iter().map(|n| g.param_counts(n).0 + g.param_counts(n).1).sum();
    assert_eq!(params, 61_706);
    let macs: u64 = g.nodes.iter().map(|n| g.macs(n)).sum();
    assert_eq!(macs, 117_600 + 240_000 + 48_000 + 10_080 + 840);
    assert!(table.contains("/conv1/Conv") && table.contains("Conv+Relu") && table.contains("61,706"), "{table}");
    check_mnist_logits(&g, "lenet5-fashion");
}

#[test]
fn other_shipped_models_import() {
    for name in ["seq14-fashion", "branched-fashion", "lenet5-mnist", "seq14-mnist", "branched-mnist"] {
        let Some(p) = fixture(&format!("models/{name}.onnx")) else {
            continue;
        };
        let g = load(&p).unwrap_or_else(|e| panic!("{name}: {e}"));
        println!("{name}\n{}", inspect_table(&g));
        assert_eq!(g.num_classes(), 10, "{name}");
        assert!(!g.nodes.iter().any(|n| matches!(n.op, Op::Affine(_))), "{name}: every BN follows a conv");
        check_mnist_logits(&g, name);
    }
}

// ---------------------------------------------------------------------------------------------
// A naive float64 reference interpreter of the IR (test only), to check the imported weights,
// layouts and folding against onnxruntime's logits.

fn act(a: Activation, x: f64) -> f64 {
    match a {
        Activation::None => x,
        Activation::Relu => x.max(0.0),
        Activation::Clip { min, max } => x.clamp(min, max),
    }
}

/// A Conv in plain f64 on input `x` of shape `is`.
fn run_conv(c: &qdse::model::ir::Conv, x: &[f64], is: &[usize], os: &[usize]) -> Vec<f64> {
    let (h, w) = (is[1], is[2]);
    let (oh, ow) = (os[1], os[2]);
    let [kh, kw] = c.window.kernel;
    let cg = c.in_channels / c.groups;
    let og = c.out_channels / c.groups;
    let mut y = vec![0.0; c.out_channels * oh * ow];
    for o in 0..c.out_channels {
        let gi = o / og;
        for oy in 0..oh {
            for ox in 0..ow {
                let mut s = c.bias[o];
                for ci in 0..cg {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let iy = (oy * c.window.stride[0] + ky * c.window.dilation[0]) as isize
                                - c.window.pads[0] as isize;
                            let ix = (ox * c.window.stride[1] + kx * c.window.dilation[1]) as isize
                                - c.window.pads[1] as isize;
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                continue;
                            }
                            let xi = ((gi * cg + ci) * h + iy as usize) * w + ix as usize;
                            s += x[xi] * c.weight[((o * cg + ci) * kh + ky) * kw + kx];
                        }
                    }
                }
                y[(o * oh + oy) * ow + ox] = act(c.activation, s);
            }
        }
    }
    y
}

/// A MaxPool or AvgPool in plain f64 on input `x` of shape `is`.
fn run_pool(op: &Op, win: &qdse::model::Window, x: &[f64], is: &[usize], os: &[usize]) -> Vec<f64> {
    let (h, w) = (is[1], is[2]);
    let (oh, ow) = (os[1], os[2]);
    let mut y = Vec::with_capacity(os.iter().product());
    for c in 0..is[0] {
        for oy in 0..oh {
            for ox in 0..ow {
                let (mut m, mut s, mut cnt) = (f64::NEG_INFINITY, 0.0, 0usize);
                for ky in 0..win.kernel[0] {
                    for kx in 0..win.kernel[1] {
                        let iy = (oy * win.stride[0] + ky * win.dilation[0]) as isize - win.pads[0] as isize;
                        let ix = (ox * win.stride[1] + kx * win.dilation[1]) as isize - win.pads[1] as isize;
                        if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                            continue;
                        }
                        let v = x[(c * h + iy as usize) * w + ix as usize];
                        m = m.max(v);
                        s += v;
                        cnt += 1;
                    }
                }
                y.push(match op {
                    Op::AvgPool { count_include_pad: true, .. } => s / (win.kernel[0] * win.kernel[1]) as f64,
                    Op::AvgPool { .. } => s / cnt as f64,
                    _ => m,
                });
            }
        }
    }
    y
}

fn run(g: &Graph, input: &[f64]) -> Vec<f64> {
    let mut vals: Vec<Vec<f64>> = vec![Vec::new(); g.values.len()];
    vals[g.input] = input.to_vec();
    for n in &g.nodes {
        let x = &vals[n.inputs[0]];
        let is = g.shape(n.inputs[0]);
        let os = g.shape(n.output);
        let out: Vec<f64> = match &n.op {
            Op::Conv(c) => run_conv(c, x, is, os),
            Op::Dense(d) => (0..d.out_features)
                .map(|o| {
                    act(
                        d.activation,
                        d.bias[o] + (0..d.in_features).map(|i| d.weight[o * d.in_features + i] * x[i]).sum::<f64>(),
                    )
                })
                .collect(),
            Op::Affine(a) => {
                let per = x.len() / a.channels;
                x.iter().enumerate().map(|(i, &v)| act(a.activation, a.scale[i / per] * v + a.shift[i / per])).collect()
            }
            Op::Add { activation } => x.iter().zip(&vals[n.inputs[1]]).map(|(a, b)| act(*activation, a + b)).collect(),
            Op::Concat => n.inputs.iter().flat_map(|&v| vals[v].iter().copied()).collect(),
            Op::Activation(a) => x.iter().map(|&v| act(*a, v)).collect(),
            Op::Flatten => x.clone(),
            Op::GlobalAvgPool | Op::GlobalMaxPool => {
                let per = is[1] * is[2];
                (0..is[0])
                    .map(|c| {
                        let s = &x[c * per..(c + 1) * per];
                        if n.op == Op::GlobalMaxPool {
                            s.iter().copied().fold(f64::NEG_INFINITY, f64::max)
                        } else {
                            s.iter().sum::<f64>() / per as f64
                        }
                    })
                    .collect()
            }
            Op::MaxPool(win) | Op::AvgPool { window: win, .. } => run_pool(&n.op, win, x, is, os),
        };
        assert_eq!(out.len(), g.values[n.output].numel(), "{}", n.name);
        vals[n.output] = out;
    }
    vals[g.output].clone()
}

fn compare(g: &Graph, inputs: &[Vec<f64>], want: &[f32], tol: f64, what: &str) {
    let k = g.num_classes();
    let mut worst = 0f64;
    for (s, x) in inputs.iter().enumerate() {
        let y = run(g, x);
        for (j, &v) in y.iter().enumerate() {
            worst = worst.max((v - f64::from(want[s * k + j])).abs());
        }
    }
    println!("{what}: max |ours - onnxruntime| = {worst:.2e} over {} samples", inputs.len());
    assert!(worst < tol, "{what}: max abs difference {worst}");
}

fn check_logits(g: &Graph, input: &str, logits: &str, tol: f64) {
    let (Some(xi), Some(yi)) =
        (fixture(&format!("tests/fixtures/{input}")), fixture(&format!("tests/fixtures/{logits}")))
    else {
        return;
    };
    let (xs, x) = common::read_npy_f32(&xi);
    let (_, y) = common::read_npy_f32(&yi);
    let per: usize = xs[1..].iter().product();
    let inputs: Vec<Vec<f64>> = x.chunks(per).map(|c| c.iter().map(|&v| f64::from(v)).collect()).collect();
    compare(g, &inputs, &y, tol, logits);
}

/// The first 64 Fashion-MNIST test images (pixel / 255) against `<model>-ort-logits.npy`.
fn check_mnist_logits(g: &Graph, model: &str) {
    use std::io::Read;
    if !model.ends_with("-fashion") {
        return;
    }
    let (Some(img), Some(lg)) = (
        fixture("data/fashion-mnist/t10k-images-idx3-ubyte.gz"),
        fixture(&format!("tests/fixtures/{model}-ort-logits.npy")),
    ) else {
        return;
    };
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(img).unwrap()).read_to_end(&mut raw).unwrap();
    let inputs: Vec<Vec<f64>> = raw[16..16 + 64 * 784]
        .chunks(784)
        .map(|c| c.iter().map(|&p| f64::from(f32::from(p) / 255.0)).collect())
        .collect();
    let (_, y) = common::read_npy_f32(&lg);
    compare(g, &inputs, &y, 1e-3, model);
}
