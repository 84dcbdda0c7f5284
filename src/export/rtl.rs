//! The export's reference datapath and its testbench: `rtl/qdse_layer.sv` (one parameterized,
//! synthesizable module for the arithmetic of a Conv / Dense / Affine layer, docs/fixed-point.md
//! "A Conv / Dense layer") and `rtl/qdse_tb.sv`, which instantiates it once per such layer with
//! that layer's formats and replays the export's own files (weights, biases, golden inputs)
//! through it, failing on any output code that differs from the golden one in any bit.

use super::table::{value_file, Role, Row};
use crate::fixed::round::quantize;
use crate::fixed::{Arith, Assignment, Format, Overflow, RangeMode, Rounding};
use crate::model::{Activation, Graph, Node, Op};
use anyhow::{bail, Result};
use std::fmt::Write as _;

/// The datapath module's source, written as `rtl/qdse_layer.sv`.
pub const DATAPATH_SV: &str = include_str!("qdse_layer.sv");

/// How to compile and run the testbench from the export folder (Verilator 5).
pub const VERILATOR_CMD: &str =
    "verilator --binary -j 0 -Wno-fatal -Wno-lint -Wno-style --top-module qdse_tb rtl/qdse_layer.sv rtl/qdse_tb.sv \
     -Mdir rtl/obj && rtl/obj/Vqdse_tb";

/// The loop structure that feeds one layer's multiply-accumulates.
enum Shape {
    /// `[in_c, h, w] -> [out_c, oh, ow]`, weights `[out_c][in_c/groups][kh][kw]`.
    Conv {
        in_c: usize,
        h: usize,
        w: usize,
        out_c: usize,
        oh: usize,
        ow: usize,
        groups: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        pads: [usize; 2],
        dilation: [usize; 2],
    },
    /// `[inputs] -> [outputs]`, weights `[outputs][inputs]`.
    Dense { inputs: usize, outputs: usize },
    /// Per channel `y = w[c]*x + b[c]` over `channels` blocks of `per` elements.
    Affine { channels: usize, per: usize },
}

/// One datapath instance: its module parameters and where its data comes from.
struct Layer<'r> {
    row: &'r Row,
    shape: Shape,
    params: Vec<(&'static str, String)>,
    /// The layer's `w_frac`, from which each channel's `w_off = w_frac_c - w_frac` is taken
    /// (per-channel layers only).
    w_frac: Option<i32>,
    /// Width of the `w_off` port (W_OFF_BITS).
    off_bits: u32,
    /// Whether the Clip thresholds fit the module's 64-bit parameters exactly for sums of
    /// `sum_bits` bits.
    thresholds_exact: bool,
    sum_bits: u32,
    a_bits: u32,
    w_bits: u32,
    b_bits: u32,
    out_bits: u32,
    n_w: usize,
    n_b: usize,
    n_in: usize,
    n_out: usize,
}

/// W_OFF_BITS of the module: the bits of an unsigned offset up to `off_max`, at least one.
fn off_bits(off_max: u32) -> u32 {
    (u32::BITS - off_max.leading_zeros()).max(1)
}

/// Bits that hold every value of magnitude up to `m` in two's complement.
fn signed_bits(m: f64) -> u32 {
    (m + 1.0).log2().ceil() as u32 + 1
}

/// The loop geometry of a Conv, Dense or Affine node (None for any other op).
fn shape_of(graph: &Graph, node: &Node) -> Option<Shape> {
    let ishape = graph.shape(node.inputs[0]);
    let oshape = graph.shape(node.output);
    let shape = match &node.op {
        Op::Conv(c) => Shape::Conv {
            in_c: ishape[0],
            h: ishape[1],
            w: ishape[2],
            out_c: oshape[0],
            oh: oshape[1],
            ow: oshape[2],
            groups: c.groups,
            kernel: c.window.kernel,
            stride: c.window.stride,
            pads: [c.window.pads[0], c.window.pads[1]],
            dilation: c.window.dilation,
        },
        Op::Dense(d) => Shape::Dense { inputs: d.in_features, outputs: d.out_features },
        Op::Affine(af) => {
            Shape::Affine { channels: af.channels, per: graph.values[node.inputs[0]].numel() / af.channels }
        }
        _ => return None,
    };
    Some(shape)
}

/// The module's activation parameters (ACT, CLIP_LO_T, CLIP_HI_T, CLIP_LO_Q, CLIP_HI_Q), the
/// thresholds at `frac_acc`, and whether they are exact for sums of `sum_bits` bits.
fn activation_params(
    act: Activation,
    frac_acc: i32,
    sum_bits: u32,
    of: Format,
    arith: Arith,
) -> ((i32, i64, i64, i64, i64), bool) {
    match act {
        Activation::None => ((0, 0, 0, 0, 0), true),
        Activation::Relu => ((1, 0, 0, 0, 0), true),
        Activation::Clip { min, max } => {
            // The engine compares the real sum with the bounds: sum < min exactly when the integer
            // sum at frac_acc is below ceil(min * 2^frac_acc), sum > max when above the floor.
            let s = 2f64.powi(frac_acc);
            let (lo, hi) = ((min * s).ceil(), (max * s).floor());
            // A threshold clamped to 2^62 still decides every sum the same way while sums stay
            // below it in magnitude.
            let limit = 2f64.powi(62);
            let exact = sum_bits <= 62 || (lo.abs() <= limit && hi.abs() <= limit);
            let clamp = |x: f64| x.clamp(-limit, limit) as i64;
            ((2, clamp(lo), clamp(hi), quantize(min, of, arith), quantize(max, of, arith)), exact)
        }
    }
}

fn layer<'r>(graph: &Graph, a: &Assignment, row: &'r Row) -> Option<Layer<'r>> {
    let i = row.layer?;
    if row.role != Role::Owner {
        return None;
    }
    let node = &graph.nodes[i];
    let (wf, bf) = (row.weights?, row.bias?);
    let fmts = a.value_formats(graph);
    let fin = fmts[node.inputs[0]];
    let of = row.output;
    let arith = a.arith;
    // Per-channel weight offsets (docs/fixed-point.md, "Per-channel weight offsets"): the
    // module's shifts are those of the coarsest channel (the layer's w_frac, d_c = 0) and each
    // channel adds its w_off >= 0; the widest shift sizes the sum and the Clip thresholds.
    let base = row.w_fracs.as_ref().and_then(|f| f.iter().copied().min()).map_or(wf.frac, |m| m.min(wf.frac));
    let off_max = row.w_fracs.as_ref().and_then(|f| f.iter().max()).map_or(0, |&m| m - base);
    let frac_acc = fin.frac + base;
    let shape = shape_of(graph, node)?;
    let (n_w, n_b) = match &shape {
        Shape::Conv { in_c, out_c, groups, kernel, .. } => (out_c * (in_c / groups) * kernel[0] * kernel[1], *out_c),
        Shape::Dense { inputs, outputs } => (inputs * outputs, *outputs),
        Shape::Affine { channels, .. } => (*channels, *channels),
    };
    // The exact sum's width: fan_in * max|a| * max|w| plus the aligned bias, with room for the
    // product, the accumulator width and the output format (docs/fixed-point.md, "How the engine
    // stays exact and fast" uses the same bound).
    let bias_shift = frac_acc - bf.frac;
    let max_b = bf.max_abs_code(arith.range) as f64 * 2f64.powi((bias_shift + off_max).max(0));
    let bound = row.fan_in as f64 * fin.max_abs_code(arith.range) as f64 * wf.max_abs_code(arith.range) as f64 + max_b;
    let acc_bits = row.acc.filter(|acc| !acc.derived).map_or(0, |acc| acc.bits);
    let acc_w =
        (signed_bits(bound) + 1).max(fin.bits + wf.bits + 2).max(bf.bits + 1).max(acc_bits + 2).max(of.bits + 2);
    // A channel's threshold is the finest scale's shifted down by up to off_max bits: sums of
    // acc_w bits compare exactly with it while acc_w + off_max bits stay below the clamp.
    let sum_bits = acc_w + off_max.unsigned_abs();
    let ((act, lo_t, hi_t, lo_q, hi_q), thresholds_exact) =
        activation_params(node.op.activation(), frac_acc + off_max, sum_bits, of, arith);
    let round = match arith.rounding {
        Rounding::HalfEven => 0,
        Rounding::HalfUp => 1,
        Rounding::Floor => 2,
        Rounding::HalfAway => 3,
    };
    let bit = |b: bool| if b { "1'b1" } else { "1'b0" }.to_string();
    let params = vec![
        ("A_BITS", fin.bits.to_string()),
        ("A_SIGNED", bit(fin.signed)),
        ("W_BITS", wf.bits.to_string()),
        ("B_BITS", bf.bits.to_string()),
        ("ACC_W", acc_w.to_string()),
        ("BIAS_SHIFT", bias_shift.to_string()),
        ("W_OFF_MAX", off_max.to_string()),
        ("ACC_BITS", acc_bits.to_string()),
        ("OUT_SHIFT", (frac_acc - of.frac).to_string()),
        ("OUT_BITS", of.bits.to_string()),
        ("OUT_SIGNED", bit(of.signed)),
        ("ROUND", round.to_string()),
        ("SATURATE", bit(arith.overflow == Overflow::Saturate)),
        ("SYMMETRIC", bit(arith.range == RangeMode::Symmetric)),
        ("ACT", act.to_string()),
        ("CLIP_LO_T", lo_t.to_string()),
        ("CLIP_HI_T", hi_t.to_string()),
        ("CLIP_LO_Q", lo_q.to_string()),
        ("CLIP_HI_Q", hi_q.to_string()),
    ];
    Some(Layer {
        row,
        shape,
        params,
        w_frac: row.w_fracs.as_ref().map(|_| base),
        off_bits: off_bits(off_max.unsigned_abs()),
        thresholds_exact,
        sum_bits,
        a_bits: fin.bits,
        w_bits: wf.bits,
        b_bits: bf.bits,
        out_bits: of.bits,
        n_w,
        n_b,
        n_in: graph.values[node.inputs[0]].numel(),
        n_out: graph.values[node.output].numel(),
    })
}

/// The nodes the testbench replays (Conv, Dense and Affine layers), by index.
pub(crate) fn covered(graph: &Graph, a: &Assignment, rows: &[Row]) -> Vec<usize> {
    rows.iter().filter_map(|r| layer(graph, a, r).and_then(|l| l.row.layer)).collect()
}

/// The call that presets layer `p` for output channel `ch` (an index expression): the channel's
/// bias and weight offset `w_off = w_frac_c - w_frac` (0 for a per-tensor layer).
fn start_call(l: &Layer, p: &str, ch: &str) -> String {
    let off = l.w_frac.map_or("0".to_string(), |base| format!("int'($signed({p}_fm[{ch}])) - ({base})"));
    format!("{p}_start({p}_bm[{ch}], {off});")
}

/// The loop nest of one layer: feeds every MAC of output `o` (index expression `oi`).
fn mac_loops(l: &Layer, p: &str) -> String {
    let mut s = String::new();
    let feed = |ai: &str, wi: &str| format!("{p}_mac_step({p}_in[{ai}], {p}_wm[{wi}]);");
    match l.shape {
        Shape::Conv { in_c, h, w, out_c, oh, ow, groups, kernel, stride, pads, dilation } => {
            let (icg, ocg) = (in_c / groups, out_c / groups);
            let _ = writeln!(s, "    for (int oc = 0; oc < {out_c}; oc++)");
            let _ = writeln!(s, "      for (int oy = 0; oy < {oh}; oy++)");
            let _ = writeln!(s, "        for (int ox = 0; ox < {ow}; ox++) begin");
            let _ = writeln!(s, "          {}", start_call(l, p, "oc"));
            let _ = writeln!(s, "          for (int ic = 0; ic < {icg}; ic++)");
            let _ = writeln!(s, "            for (int ky = 0; ky < {}; ky++)", kernel[0]);
            let _ = writeln!(s, "              for (int kx = 0; kx < {}; kx++) begin", kernel[1]);
            let _ = writeln!(s, "                int iy = oy * {} - {} + ky * {};", stride[0], pads[0], dilation[0]);
            let _ = writeln!(s, "                int ix = ox * {} - {} + kx * {};", stride[1], pads[1], dilation[1]);
            let _ = writeln!(s, "                int ci = (oc / {ocg}) * {icg} + ic;");
            let _ = writeln!(s, "                if (iy >= 0 && iy < {h} && ix >= 0 && ix < {w})");
            let ai = format!("(ci * {h} + iy) * {w} + ix");
            let wi = format!("((oc * {icg} + ic) * {} + ky) * {} + kx", kernel[0], kernel[1]);
            let _ = writeln!(s, "                  {}", feed(&ai, &wi));
            let _ = writeln!(s, "              end");
            let _ = writeln!(s, "          {p}_finish_check(\"{}\", s, (oc * {oh} + oy) * {ow} + ox, {p}_out[(oc * {oh} + oy) * {ow} + ox]);", l.row.ident);
            let _ = writeln!(s, "        end");
        }
        Shape::Dense { inputs, outputs } => {
            let _ = writeln!(s, "    for (int o = 0; o < {outputs}; o++) begin");
            let _ = writeln!(s, "      {}", start_call(l, p, "o"));
            let _ = writeln!(s, "      for (int k = 0; k < {inputs}; k++) {}", feed("k", &format!("o * {inputs} + k")));
            let _ = writeln!(s, "      {p}_finish_check(\"{}\", s, o, {p}_out[o]);", l.row.ident);
            let _ = writeln!(s, "    end");
        }
        Shape::Affine { channels, per } => {
            let _ = writeln!(s, "    for (int i = 0; i < {}; i++) begin", channels * per);
            let _ = writeln!(s, "      {}", start_call(l, p, &format!("i / {per}")));
            let _ = writeln!(s, "      {}", feed("i", &format!("i / {per}")));
            let _ = writeln!(s, "      {p}_finish_check(\"{}\", s, i, {p}_out[i]);", l.row.ident);
            let _ = writeln!(s, "    end");
        }
    }
    s
}

/// The declarations, the `qdse_layer` instance and the drive tasks of datapath layer `l`
/// (signal prefix `p`): `run_<p>(s)` replays sample `s` through it.
fn layer_block(graph: &Graph, l: &Layer, p: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s);
    let _ = writeln!(s, "  // {} ({}): {}", l.row.node, l.row.op, l.row.ident);
    let _ = writeln!(s, "  logic {p}_load = 1'b0, {p}_mac = 1'b0;");
    let _ = writeln!(s, "  logic signed [{}:0] {p}_bias;", l.b_bits - 1);
    let _ = writeln!(s, "  logic [{}:0] {p}_off;", l.off_bits - 1);
    let _ = writeln!(s, "  logic [{}:0] {p}_a;", l.a_bits - 1);
    let _ = writeln!(s, "  logic signed [{}:0] {p}_w;", l.w_bits - 1);
    let _ = writeln!(s, "  logic [{}:0] {p}_y;", l.out_bits - 1);
    let _ = writeln!(s, "  logic [{}:0] {p}_wm[{}];", l.w_bits - 1, l.n_w);
    let _ = writeln!(s, "  logic [{}:0] {p}_bm[{}];", l.b_bits - 1, l.n_b);
    if l.w_frac.is_some() {
        let _ = writeln!(s, "  logic [7:0] {p}_fm[{}];", l.n_b);
    }
    let _ = writeln!(s, "  logic [{}:0] {p}_in[{}];", l.a_bits - 1, l.n_in);
    let _ = writeln!(s, "  logic [{}:0] {p}_out[{}];", l.out_bits - 1, l.n_out);
    let params: Vec<String> = l.params.iter().map(|(k, v)| format!(".{k}({v})")).collect();
    let _ = writeln!(s, "  qdse_layer #({}) u_{p} (", params.join(", "));
    let _ = writeln!(
        s,
        "      .clk(clk), .load({p}_load), .bias({p}_bias), .w_off({p}_off), .mac({p}_mac), .a({p}_a), .w({p}_w), \
         .y({p}_y));"
    );
    let node = &graph.nodes[l.row.layer.expect("a datapath layer is a node")];
    let (fin, fout) = (value_file(graph, node.inputs[0]), value_file(graph, node.output));
    // The per-layer drive tasks: preset with the bias and the channel's weight offset, one
    // MAC per clock, then compare.
    let _ = writeln!(s, "  task automatic {p}_start(input logic [{}:0] b, input int off);", l.b_bits - 1);
    let _ = writeln!(
        s,
        "    @(negedge clk); {p}_mac = 1'b0; {p}_bias = b; {p}_off = {}'(off); {p}_load = 1'b1;",
        l.off_bits
    );
    let _ = writeln!(s, "  endtask");
    let _ = writeln!(
        s,
        "  task automatic {p}_mac_step(input logic [{}:0] x, input logic [{}:0] k);",
        l.a_bits - 1,
        l.w_bits - 1
    );
    let _ = writeln!(s, "    @(negedge clk); {p}_load = 1'b0; {p}_a = x; {p}_w = k; {p}_mac = 1'b1;");
    let _ = writeln!(s, "  endtask");
    let _ = writeln!(
        s,
        "  task automatic {p}_finish_check(input string node, input int s, input int i, input logic [{}:0] want);",
        l.out_bits - 1
    );
    let _ = writeln!(s, "    @(negedge clk); {p}_load = 1'b0; {p}_mac = 1'b0;");
    let _ = writeln!(s, "    checked++;");
    let _ = writeln!(s, "    if ({p}_y !== want) begin");
    let _ = writeln!(s, "      errors++;");
    let _ = writeln!(s, "      if (errors <= 20) $display(\"MISMATCH %s sample %0d output %0d: datapath %h, golden %h\", node, s, i, {p}_y, want);");
    let _ = writeln!(s, "    end");
    let _ = writeln!(s, "  endtask");
    let _ = writeln!(s, "  task automatic run_{p}(input int s);");
    let _ = writeln!(s, "    $readmemh(\"{}\", {p}_wm);", l.row.weights_file().unwrap_or_default());
    let _ = writeln!(s, "    $readmemh(\"{}\", {p}_bm);", l.row.bias_file().unwrap_or_default());
    if let Some(file) = l.row.w_frac_file().filter(|_| l.w_frac.is_some()) {
        let _ = writeln!(s, "    $readmemh(\"{file}\", {p}_fm);");
    }
    let _ = writeln!(s, "    $readmemh($sformatf(\"golden/sample_%0d/{fin}\", s), {p}_in);");
    let _ = writeln!(s, "    $readmemh($sformatf(\"golden/sample_%0d/{fout}\", s), {p}_out);");
    s.push_str(&mac_loops(l, p));
    let _ = writeln!(s, "  endtask");
    s
}

/// `rtl/qdse_tb.sv`: one `qdse_layer` per Conv / Dense / Affine layer, each replaying the
/// export's weights, biases and golden input codes of every sample and comparing every output
/// code with the golden one. `+samples=N` replays the first N samples only.
pub(crate) fn testbench(graph: &Graph, a: &Assignment, rows: &[Row], samples: usize) -> Result<String> {
    let layers: Vec<Layer> = rows.iter().filter_map(|r| layer(graph, a, r)).collect();
    if let Some(l) = layers.iter().find(|l| !l.thresholds_exact) {
        bail!(
            "layer {}: its Clip bounds at the finest channel's scale do not fit the reference datapath's \
             64-bit thresholds for its {}-bit sums",
            l.row.ident,
            l.sum_bits
        );
    }
    let mut s = String::new();
    let _ = writeln!(s, "// qdse export testbench: replays the golden vectors through rtl/qdse_layer.sv, one instance");
    let _ = writeln!(s, "// per Conv / Dense / Affine layer, and fails on any output code that differs in any bit.");
    let _ = writeln!(s, "// Run from the export folder: {VERILATOR_CMD}");
    let _ = writeln!(s, "// Written by qdse; see README.md, \"Reference datapath\".");
    let _ = writeln!(s, "`timescale 1ns / 1ps");
    let _ = writeln!(s, "module qdse_tb;");
    let _ = writeln!(s, "  logic clk = 1'b0;");
    let _ = writeln!(s, "  always #5 clk = ~clk;");
    let _ = writeln!(s, "  int errors = 0;");
    let _ = writeln!(s, "  longint checked = 0;");
    let _ = writeln!(s, "  int samples = {samples};");
    for (n, l) in layers.iter().enumerate() {
        s.push_str(&layer_block(graph, l, &format!("l{n}")));
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "  initial begin");
    let _ = writeln!(s, "    void'($value$plusargs(\"samples=%d\", samples));");
    let _ = writeln!(s, "    if (samples > {samples}) samples = {samples};");
    let _ = writeln!(s, "    for (int s = 0; s < samples; s++) begin");
    for n in 0..layers.len() {
        let _ = writeln!(s, "      run_l{n}(s);");
    }
    let _ = writeln!(s, "    end");
    let _ = writeln!(s, "    if (errors != 0 || checked == 0) begin");
    let _ = writeln!(
        s,
        "      $display(\"FAIL: %0d of %0d output codes differ from the golden vectors\", errors, checked);"
    );
    let _ = writeln!(s, "      $fatal(1, \"qdse datapath check failed\");");
    let _ = writeln!(s, "    end");
    let _ = writeln!(
        s,
        "    $display(\"PASS: %0d output codes of {} layers over %0d samples match the golden vectors bit for bit\", checked, samples);",
        layers.len()
    );
    let _ = writeln!(s, "    $finish;");
    let _ = writeln!(s, "  end");
    let _ = writeln!(s, "endmodule");
    Ok(s)
}
