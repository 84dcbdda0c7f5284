//! The per-layer table of an export: one row for the network input and one per graph node, and
//! the three files rendered from it (`formats.csv`, `qdse_formats.svh`, `qdse_formats.h`).

use crate::fixed::{Arith, Assignment, Format, Overflow, RangeMode, Rounding};
use crate::model::{Activation, Graph, Op, Window};
use anyhow::Result;
use std::fmt::Write as _;

/// What a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Input,
    /// The node owns its output format (and weights/bias if it has parameters).
    Owner,
    /// The node owns no format: its output keeps its input's format.
    PassThrough,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Input => "input",
            Role::Owner => "owner",
            Role::PassThrough => "pass-through",
        }
    }
}

/// The accumulator of a layer: width, whether the width is derived (not in the point file, so
/// the integer engine never bounds it), and its fractional offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Acc {
    pub bits: u32,
    pub derived: bool,
    pub frac: i32,
}

#[derive(Debug, Clone)]
pub(crate) struct Row {
    /// Node index; `None` for the network input.
    pub layer: Option<usize>,
    /// Unique identifier for HDL/C constants: `L03_CONV1_CONV`, or `INPUT`.
    pub ident: String,
    /// File stem for weight files: `03_conv1_conv`.
    pub stem: String,
    pub node: String,
    pub op: &'static str,
    pub role: Role,
    pub input_values: Vec<usize>,
    pub output_value: usize,
    pub weights: Option<Format>,
    /// Each output channel's weight offset, for a layer with per-channel offsets
    /// (docs/fixed-point.md, "Per-channel weight offsets").
    pub w_fracs: Option<Vec<i32>>,
    pub bias: Option<Format>,
    pub has_bias: Option<bool>,
    pub output: Format,
    pub acc: Option<Acc>,
    pub fan_in: usize,
    pub activation: Activation,
    pub window: Option<Window>,
    pub groups: Option<usize>,
    pub count_include_pad: Option<bool>,
}

impl Row {
    pub fn weights_file(&self) -> Option<String> {
        self.weights.map(|_| format!("weights/{}.w.mem", self.stem))
    }
    pub fn bias_file(&self) -> Option<String> {
        self.bias.map(|_| format!("weights/{}.b.mem", self.stem))
    }
    /// The per-channel weight offsets' file, for a layer that has them.
    pub fn w_frac_file(&self) -> Option<String> {
        self.w_fracs.as_ref().map(|_| format!("weights/{}.wfrac.mem", self.stem))
    }
}

/// `ceil(log2(n))`, 0 for `n <= 1`.
pub(crate) fn clog2(n: usize) -> u32 {
    if n <= 1 {
        0
    } else {
        usize::BITS - (n - 1).leading_zeros()
    }
}

/// Upper-case identifier from a name: runs of anything but ASCII letters and digits become one
/// `_`, leading/trailing `_` dropped; `NODE` if nothing is left. `/conv1/Conv` -> `CONV1_CONV`.
pub fn sanitize(name: &str) -> String {
    let mut s = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_uppercase());
        } else if !s.is_empty() && !s.ends_with('_') {
            s.push('_');
        }
    }
    while s.ends_with('_') {
        s.pop();
    }
    if s.is_empty() {
        s.push_str("NODE");
    }
    s
}

/// Decimal digits needed to print every index below `n`, at least 2.
pub(crate) fn index_width(n: usize) -> usize {
    n.saturating_sub(1).to_string().len().max(2)
}

/// The kebab-case name serde uses for a unit enum variant (`half-even`, `saturate`, ...).
pub(crate) fn kebab<T: serde::Serialize>(t: &T) -> String {
    serde_json::to_value(t).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

pub(crate) fn activation_str(a: Activation) -> String {
    match a {
        Activation::None => "none".into(),
        Activation::Relu => "relu".into(),
        Activation::Clip { min, max } => format!("clip:{min:?}:{max:?}"),
    }
}

fn activation_code(a: Activation) -> i64 {
    match a {
        Activation::None => 0,
        Activation::Relu => 1,
        Activation::Clip { .. } => 2,
    }
}

fn rounding_code(r: Rounding) -> i64 {
    match r {
        Rounding::HalfEven => 0,
        Rounding::HalfUp => 1,
        Rounding::Floor => 2,
        Rounding::HalfAway => 3,
    }
}

fn overflow_code(o: Overflow) -> i64 {
    match o {
        Overflow::Saturate => 0,
        Overflow::Wrap => 1,
    }
}

fn range_code(r: RangeMode) -> i64 {
    match r {
        RangeMode::TwosComplement => 0,
        RangeMode::Symmetric => 1,
    }
}

/// Width of a value's codes as a signed two's-complement number (an unsigned format needs one
/// more bit).
fn signed_width(f: Format) -> u32 {
    f.bits + u32::from(!f.signed)
}

/// The accumulator of node `i`, if it has one (docs/fixed-point.md, "A Conv / Dense layer").
fn accumulator(graph: &Graph, a: &Assignment, fmts: &[Format], i: usize) -> Option<Acc> {
    let node = &graph.nodes[i];
    let l = a.layer_of(i)?;
    let fin = fmts[node.inputs[0]];
    match &node.op {
        Op::Conv(_) | Op::Dense(_) | Op::Affine(_) => {
            let w = l.weights?;
            let derived = w.bits + fin.bits + clog2(graph.fan_in(node)) + 1;
            Some(Acc {
                bits: l.accumulator.unwrap_or(derived),
                derived: l.accumulator.is_none(),
                frac: fin.frac + w.frac,
            })
        }
        Op::Add { .. } => {
            let fm = node.inputs.iter().map(|&v| fmts[v].frac).max()?;
            let widest =
                node.inputs.iter().map(|&v| i64::from(signed_width(fmts[v])) + i64::from(fm - fmts[v].frac)).max()?;
            let derived = u32::try_from(widest + 1).unwrap_or(u32::MAX);
            Some(Acc { bits: l.accumulator.unwrap_or(derived), derived: l.accumulator.is_none(), frac: fm })
        }
        // The window sum; the engine never bounds it, so its width is always the derived one.
        Op::AvgPool { .. } | Op::GlobalAvgPool => {
            Some(Acc { bits: signed_width(fin) + clog2(graph.fan_in(node)), derived: true, frac: fin.frac })
        }
        Op::Concat | Op::MaxPool(_) | Op::GlobalMaxPool | Op::Activation(_) | Op::Flatten => None,
    }
}

/// The table: the input first, then every node in graph order.
pub(crate) fn rows(graph: &Graph, a: &Assignment) -> Vec<Row> {
    let fmts = a.value_formats(graph);
    let w = index_width(graph.nodes.len());
    let mut rows = vec![Row {
        layer: None,
        ident: "INPUT".into(),
        stem: "input".into(),
        node: graph.values[graph.input].name.clone(),
        op: "Input",
        role: Role::Input,
        input_values: vec![],
        output_value: graph.input,
        weights: None,
        w_fracs: None,
        bias: None,
        has_bias: None,
        output: fmts[graph.input],
        acc: None,
        fan_in: 0,
        activation: Activation::None,
        window: None,
        groups: None,
        count_include_pad: None,
    }];
    for (i, node) in graph.nodes.iter().enumerate() {
        let san = sanitize(&node.name);
        let l = a.layer_of(i);
        let (window, groups, cip) = match &node.op {
            Op::Conv(c) => (Some(c.window), Some(c.groups), None),
            Op::MaxPool(w) => (Some(*w), None, None),
            Op::AvgPool { window, count_include_pad } => (Some(*window), None, Some(*count_include_pad)),
            Op::Dense(_)
            | Op::Affine(_)
            | Op::Add { .. }
            | Op::Concat
            | Op::GlobalAvgPool
            | Op::GlobalMaxPool
            | Op::Activation(_)
            | Op::Flatten => (None, None, None),
        };
        let has_bias = match &node.op {
            Op::Conv(c) => Some(c.has_bias),
            Op::Dense(d) => Some(d.has_bias),
            Op::Affine(_) => Some(true),
            Op::Add { .. }
            | Op::Concat
            | Op::MaxPool(_)
            | Op::AvgPool { .. }
            | Op::GlobalAvgPool
            | Op::GlobalMaxPool
            | Op::Activation(_)
            | Op::Flatten => None,
        };
        rows.push(Row {
            layer: Some(i),
            ident: format!("L{i:0w$}_{san}"),
            stem: format!("{i:0w$}_{}", san.to_ascii_lowercase()),
            node: node.name.clone(),
            op: node.op.kind(),
            role: if l.is_some() { Role::Owner } else { Role::PassThrough },
            input_values: node.inputs.clone(),
            output_value: node.output,
            weights: l.and_then(|l| l.weights),
            w_fracs: l.filter(|l| l.per_channel).and_then(|l| {
                let (w, b) = node.op.params()?;
                Some(l.weight_fracs(w, b.len()))
            }),
            bias: l.and_then(|l| l.bias),
            has_bias,
            output: fmts[node.output],
            acc: accumulator(graph, a, &fmts, i),
            fan_in: graph.fan_in(node),
            activation: node.op.activation(),
            window,
            groups,
            count_include_pad: cip,
        });
    }
    rows
}

/// File name of a value's golden vector inside `golden/sample_<i>/`.
pub(crate) fn value_file(graph: &Graph, v: usize) -> String {
    let w = index_width(graph.values.len());
    format!("{v:0w$}_{}.mem", sanitize(&graph.values[v].name).to_ascii_lowercase())
}

pub(crate) const CSV_HEADER: &[&str] = &[
    "layer",
    "ident",
    "node",
    "op",
    "role",
    "inputs",
    "input_values",
    "output",
    "output_value",
    "output_shape",
    "w_bits",
    "w_frac",
    "b_bits",
    "b_frac",
    "has_bias",
    "o_bits",
    "o_frac",
    "o_signed",
    "o_min",
    "o_max",
    "acc_bits",
    "acc_derived",
    "frac_acc",
    "fan_in",
    "activation",
    "rounding",
    "overflow",
    "range",
    "kernel",
    "stride",
    "pads",
    "dilation",
    "groups",
    "count_include_pad",
    "weights_file",
    "bias_file",
    "golden_file",
    "w_frac_file",
];

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn joined<T: ToString>(v: &[T], sep: &str) -> String {
    v.iter().map(T::to_string).collect::<Vec<_>>().join(sep)
}

/// `formats.csv`.
pub(crate) fn formats_csv(graph: &Graph, a: &Assignment, rows: &[Row]) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_HEADER)?;
    for r in rows {
        let (lo, hi) = r.output.code_range(a.arith.range);
        let names: Vec<&str> = r.input_values.iter().map(|&v| graph.values[v].name.as_str()).collect();
        let win = r.window;
        let rec: Vec<String> = vec![
            r.layer.map(|i| i.to_string()).unwrap_or_else(|| "input".into()),
            r.ident.clone(),
            r.node.clone(),
            r.op.into(),
            r.role.as_str().into(),
            names.join(";"),
            joined(&r.input_values, ";"),
            graph.values[r.output_value].name.clone(),
            r.output_value.to_string(),
            joined(graph.shape(r.output_value), "x"),
            opt(r.weights.map(|f| f.bits)),
            opt(r.weights.map(|f| f.frac)),
            opt(r.bias.map(|f| f.bits)),
            opt(r.bias.map(|f| f.frac)),
            opt(r.has_bias),
            r.output.bits.to_string(),
            r.output.frac.to_string(),
            r.output.signed.to_string(),
            lo.to_string(),
            hi.to_string(),
            opt(r.acc.map(|c| c.bits)),
            opt(r.acc.map(|c| c.derived)),
            opt(r.acc.map(|c| c.frac)),
            r.fan_in.to_string(),
            activation_str(r.activation),
            kebab(&a.arith.rounding),
            kebab(&a.arith.overflow),
            kebab(&a.arith.range),
            opt(win.map(|w| joined(&w.kernel, "x"))),
            opt(win.map(|w| joined(&w.stride, "x"))),
            opt(win.map(|w| joined(&w.pads, "x"))),
            opt(win.map(|w| joined(&w.dilation, "x"))),
            opt(r.groups),
            opt(r.count_include_pad),
            opt(r.weights_file()),
            opt(r.bias_file()),
            value_file(graph, r.output_value),
            opt(r.w_frac_file()),
        ];
        w.write_record(&rec)?;
    }
    w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))
}

/// One named integer constant of a row.
struct Const {
    name: String,
    value: i64,
    /// Needs 64 bits (`longint` / `LL`).
    wide: bool,
}

fn constants(a: &Assignment, r: &Row) -> Vec<Const> {
    let mut c = Vec::new();
    let mut push =
        |suffix: &str, value: i64, wide: bool| c.push(Const { name: format!("{}_{suffix}", r.ident), value, wide });
    if let (Some(wf), Some(bf)) = (r.weights, r.bias) {
        push("W_BITS", wf.bits.into(), false);
        push("W_FRAC", wf.frac.into(), false);
        push("W_PER_CHANNEL", r.w_fracs.is_some().into(), false);
        push("B_BITS", bf.bits.into(), false);
        push("B_FRAC", bf.frac.into(), false);
    }
    let (lo, hi) = r.output.code_range(a.arith.range);
    push("O_BITS", r.output.bits.into(), false);
    push("O_FRAC", r.output.frac.into(), false);
    push("O_SIGNED", r.output.signed.into(), false);
    push("O_MIN", lo, true);
    push("O_MAX", hi, true);
    if let Some(acc) = r.acc {
        push("ACC_BITS", acc.bits.into(), false);
        push("ACC_FRAC", acc.frac.into(), false);
        push("ACC_DERIVED", acc.derived.into(), false);
    }
    push("ACT", activation_code(r.activation), false);
    push("ROUNDING", rounding_code(a.arith.rounding), false);
    push("OVERFLOW", overflow_code(a.arith.overflow), false);
    push("RANGE", range_code(a.arith.range), false);
    c
}

fn global_constants(graph: &Graph, arith: Arith, n_samples: usize) -> Vec<Const> {
    let n = |name: &str, value: i64| Const { name: name.into(), value, wide: false };
    vec![
        n("QDSE_ROUND_HALF_EVEN", 0),
        n("QDSE_ROUND_HALF_UP", 1),
        n("QDSE_ROUND_FLOOR", 2),
        n("QDSE_ROUND_HALF_AWAY", 3),
        n("QDSE_OVF_SATURATE", 0),
        n("QDSE_OVF_WRAP", 1),
        n("QDSE_RANGE_TWOS_COMPLEMENT", 0),
        n("QDSE_RANGE_SYMMETRIC", 1),
        n("QDSE_ACT_NONE", 0),
        n("QDSE_ACT_RELU", 1),
        n("QDSE_ACT_CLIP", 2),
        n("QDSE_ROUNDING", rounding_code(arith.rounding)),
        n("QDSE_OVERFLOW", overflow_code(arith.overflow)),
        n("QDSE_RANGE", range_code(arith.range)),
        n("QDSE_NUM_NODES", graph.nodes.len() as i64),
        n("QDSE_NUM_CLASSES", graph.num_classes() as i64),
        n("QDSE_GOLDEN_SAMPLES", n_samples as i64),
    ]
}

/// A one-line comment describing a row, safe in both `//` and `/* */` comments.
fn describe(graph: &Graph, r: &Row) -> String {
    let v = r.output_value;
    let text = format!(
        "{} ({}, {}): node \"{}\", output value {} \"{}\" [{}]",
        r.ident,
        r.op,
        r.role.as_str(),
        r.node,
        v,
        graph.values[v].name,
        joined(graph.shape(v), "x")
    );
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>().replace("*/", "* /")
}

fn sv_literal(c: &Const) -> String {
    if c.wide {
        let mag = c.value.unsigned_abs();
        format!("{}64'sd{mag}", if c.value < 0 { "-" } else { "" })
    } else {
        c.value.to_string()
    }
}

fn c_literal(c: &Const) -> String {
    match (c.wide, c.value < 0) {
        // -2^63 has no positive literal.
        (true, true) if c.value == i64::MIN => "(-9223372036854775807LL - 1)".into(),
        (true, true) => format!("({}LL)", c.value),
        (true, false) => format!("{}LL", c.value),
        (false, true) => format!("({})", c.value),
        (false, false) => c.value.to_string(),
    }
}

/// `qdse_formats.svh`: a SystemVerilog package of localparams.
pub(crate) fn svh(graph: &Graph, a: &Assignment, rows: &[Row], model: &str, n_samples: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "// Generated by qdse export: per-layer fixed-point formats of {}",
        model.replace(['\n', '\r'], " ")
    );
    let _ = writeln!(s, "// A value is k * 2^-FRAC with integer code k in [O_MIN, O_MAX]. See README.md.");
    let _ = writeln!(s, "`ifndef QDSE_FORMATS_SVH\n`define QDSE_FORMATS_SVH\n\npackage qdse_formats_pkg;");
    let emit = |s: &mut String, c: &Const| {
        let ty = if c.wide { "longint" } else { "int" };
        let _ = writeln!(s, "  localparam {ty} {} = {};", c.name, sv_literal(c));
    };
    for c in global_constants(graph, a.arith, n_samples) {
        emit(&mut s, &c);
    }
    for r in rows {
        let _ = writeln!(s, "\n  // {}", describe(graph, r));
        for c in constants(a, r) {
            emit(&mut s, &c);
        }
    }
    s.push_str("endpackage\n\n`endif // QDSE_FORMATS_SVH\n");
    s
}

/// `qdse_formats.h`: the same constants as C `#define`s.
pub(crate) fn c_header(graph: &Graph, a: &Assignment, rows: &[Row], model: &str, n_samples: usize) -> String {
    let mut s = String::new();
    let model = model.replace(['\n', '\r'], " ").replace("*/", "* /");
    let _ = writeln!(s, "/* Generated by qdse export: per-layer fixed-point formats of {model}");
    let _ = writeln!(s, " * A value is k * 2^-FRAC with integer code k in [O_MIN, O_MAX]. See README.md. */");
    let _ = writeln!(s, "#ifndef QDSE_FORMATS_H\n#define QDSE_FORMATS_H\n");
    let emit = |s: &mut String, c: &Const| {
        let _ = writeln!(s, "#define {} {}", c.name, c_literal(c));
    };
    for c in global_constants(graph, a.arith, n_samples) {
        emit(&mut s, &c);
    }
    for r in rows {
        let _ = writeln!(s, "\n/* {} */", describe(graph, r));
        for c in constants(a, r) {
            emit(&mut s, &c);
        }
    }
    s.push_str("\n#endif /* QDSE_FORMATS_H */\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitized_names() {
        assert_eq!(sanitize("/conv1/Conv"), "CONV1_CONV");
        assert_eq!(sanitize("/layer1/layer1.0/conv1/Conv"), "LAYER1_LAYER1_0_CONV1_CONV");
        assert_eq!(sanitize("node_linear"), "NODE_LINEAR");
        assert_eq!(sanitize("//"), "NODE");
        assert_eq!(sanitize("ü-x"), "X");
    }

    #[test]
    fn ceil_log2() {
        assert_eq!([0, 1, 2, 3, 4, 5, 8, 9, 25].map(clog2), [0, 0, 1, 2, 2, 3, 3, 4, 5]);
    }

    #[test]
    fn literals() {
        let c = |value, wide| Const { name: "X".into(), value, wide };
        assert_eq!(sv_literal(&c(-128, true)), "-64'sd128");
        assert_eq!(sv_literal(&c(4294967295, true)), "64'sd4294967295");
        assert_eq!(sv_literal(&c(-3, false)), "-3");
        assert_eq!(c_literal(&c(-3, false)), "(-3)");
        assert_eq!(c_literal(&c(255, true)), "255LL");
        assert_eq!(c_literal(&c(-2147483648, true)), "(-2147483648LL)");
    }
}
