//! The `README.md` written inside an export: what every file holds and the exact integer
//! arithmetic an implementation must reproduce (docs/fixed-point.md, restated for the RTL team).

use super::table::{activation_str, kebab, Role, Row};
use super::ExportMeta;
use crate::fixed::Assignment;
use crate::model::Graph;
use std::fmt::Write as _;

fn fmt_or_dash(f: Option<crate::fixed::Format>) -> String {
    f.map(|f| f.to_string()).unwrap_or_else(|| "-".into())
}

/// The layer table of the README (a summary of formats.csv).
fn layer_table(graph: &Graph, rows: &[Row]) -> String {
    let mut s = String::from(
        "| row | ident | op | role | inputs (values) | output value | shape | weights | bias | output | accumulator |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let acc = r
            .acc
            .map(|c| format!("{} bits at frac {}{}", c.bits, c.frac, if c.derived { " (derived)" } else { "" }))
            .unwrap_or_else(|| "-".into());
        let shape = graph.shape(r.output_value).iter().map(usize::to_string).collect::<Vec<_>>().join("x");
        let inputs = r.input_values.iter().map(usize::to_string).collect::<Vec<_>>().join(", ");
        let _ = writeln!(
            s,
            "| {} | `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.layer.map(|i| i.to_string()).unwrap_or_else(|| "input".into()),
            r.ident,
            r.op,
            match r.role {
                Role::Input => "input",
                Role::Owner => "owner",
                Role::PassThrough => "pass-through",
            },
            if inputs.is_empty() { "-".into() } else { inputs },
            r.output_value,
            shape,
            fmt_or_dash(r.weights),
            fmt_or_dash(r.bias),
            r.output,
            acc
        );
    }
    s
}

pub(crate) fn readme(graph: &Graph, a: &Assignment, rows: &[Row], meta: &ExportMeta, n_samples: usize) -> String {
    let rounding = kebab(&a.arith.rounding);
    let overflow = kebab(&a.arith.overflow);
    let range = kebab(&a.arith.range);
    let config = meta.config.as_deref().unwrap_or("(none)");
    let fused: Vec<String> = rows
        .iter()
        .filter(|r| r.role == Role::Owner && activation_str(r.activation) != "none")
        .map(|r| format!("`{}`: {}", r.ident, activation_str(r.activation)))
        .collect();
    let fused = if fused.is_empty() { "none".to_string() } else { fused.join(", ") };
    let version = &meta.tool_version;
    let model = &meta.model;
    let mut s = format!(
        r#"# qdse export: {model}

Bit-true hand-off of a fixed-point CNN, written by qdse {version}.
Model: `{model}`. Config: `{config}`.
Arithmetic of the whole network: rounding **{rounding}**, overflow **{overflow}**, signed range
**{range}**. Fused activations: {fused}.

Every tensor of the network is a vector of integer codes; the golden vectors in `golden/` are
the exact codes qdse's bit-true integer engine computes. An implementation that follows the rules
below reproduces every one of them bit for bit.

"#
    );
    s.push_str(&files_section(n_samples, graph.num_classes()));
    s.push_str(ARITHMETIC);
    s.push_str(&datapath_section(graph, a, rows));
    s.push_str("## Layers\n\n");
    s.push_str(&layer_table(graph, rows));
    s
}

/// The "Files" section: what every file of the export holds.
fn files_section(n_samples: usize, classes: usize) -> String {
    format!(
        r#"## Files

| file | content |
|---|---|
| `README.md` | this file |
| `manifest.json` | provenance (model, config, tool version), arithmetic, the assignment (as in a point file), input/output tensors, layer list, golden sample count, and every other file of the export with its size in bytes |
| `point.toml` | the assignment as a qdse point file (`qdse eval --point`, `qdse cost`, `qdse export` accept it) |
| `formats.csv` | one row for the network input and one per graph node, in topological order (columns below) |
| `qdse_formats.svh` | SystemVerilog package `qdse_formats_pkg`: the formats as `localparam`s |
| `qdse_formats.h` | the same constants as C `#define`s (include guard `QDSE_FORMATS_H`) |
| `weights/<idx>_<name>.w.mem` | weight codes of layer `<idx>` (Conv, Dense, Affine), `$readmemh` format |
| `weights/<idx>_<name>.b.mem` | bias codes of layer `<idx>` **at the bias format** (see "bias alignment") |
| `weights/<idx>_<name>.wfrac.mem` | layers with per-channel weight offsets only: `w_frac_c` of each output channel, 8-bit two's complement (see "Conv, Dense, Affine") |
| `golden/sample_<i>/input.mem` | input codes of sample `<i>` at the input format |
| `golden/sample_<i>/<v>_<name>.mem` | codes of value (tensor) `<v>` for sample `<i>`, at that value's format; one file per value, the input included |
| `rtl/qdse_layer.sv` | the reference datapath: one parameterized, synthesizable SystemVerilog module for the arithmetic of a Conv / Dense / Affine layer (see "Reference datapath") |
| `rtl/qdse_tb.sv` | a Verilator testbench: one `qdse_layer` per such layer, replaying the golden vectors through it |
| `golden/expected.csv` | per sample: `sample`, `label`, `predicted` (argmax of the integer logits), `logit_0..logit_{{C-1}}` (logit codes at the output format) |

There are {n_samples} golden samples and {classes} classes.

"#
    )
}

/// The "Reference datapath" section: which layers the exported SystemVerilog module and its
/// testbench cover, and the command that checks them.
fn datapath_section(graph: &Graph, a: &Assignment, rows: &[Row]) -> String {
    let covered = super::rtl::covered(graph, a, rows);
    let datapath_layers = if covered.is_empty() {
        "no layer (this network has no Conv, Dense or Affine layer)".to_string()
    } else {
        let names: Vec<String> = rows
            .iter()
            .filter(|r| r.layer.is_some_and(|i| covered.contains(&i)))
            .map(|r| format!("`{}`", r.ident))
            .collect();
        names.join(", ")
    };
    let verilator = super::rtl::VERILATOR_CMD;
    format!(
        r#"## Reference datapath

`rtl/qdse_layer.sv` implements the "Conv, Dense, Affine" rules above in hardware, one
multiply-accumulate per clock: `load` presets the accumulator with the aligned bias, each `mac`
adds `a * w` exactly, and `y` is the requantized output code (accumulator width, fused
activation, rounding, saturate or wrap). Its parameters are a layer's formats, with the shifts
of its coarsest channel (`w_frac`); a layer with per-channel weight offsets (`W_PER_CHANNEL = 1`)
also gives `load` each output channel's `w_off = w_frac_c - w_frac` (line `c` of its
`.wfrac.mem` minus `w_frac`; `W_OFF_MAX` is the largest), which the module adds to the bias
alignment and the requantization shift of that channel, and by which it shifts the Clip
thresholds (given at the finest channel's scale) down to the channel's: one small shift amount per
output channel. `rtl/qdse_tb.sv` instantiates it for each of {datapath_layers} with this export's
formats, reads the layer's weights, biases, weight offsets and golden input codes, and compares
every output code with the golden file.
Run it from this folder with Verilator 5:

```
{verilator}
```

It prints `PASS` and exits 0 when every output code of every sample matches bit for bit, and
stops with an error naming the first mismatches otherwise; `+samples=N` replays N samples only.
Add, Concat, pooling and pass-through layers are not part of the datapath module.

"#
    )
}

/// The formats, the file layouts and the integer arithmetic an implementation must reproduce
/// (docs/fixed-point.md, restated), and how to check one: the same in every export.
const ARITHMETIC: &str = r#"## Number format

A tensor's format is `(bits, frac, signed)`. A code `k` stands for the real value **`k * 2^-frac`**.
`frac` may be negative (a step larger than 1) or larger than `bits` (all values below 1).

- signed, `twos-complement` range: `k in [-2^(bits-1), 2^(bits-1) - 1]`
- signed, `symmetric` range: `k in [-(2^(bits-1) - 1), 2^(bits-1) - 1]` (1-bit symmetric holds only 0)
- unsigned: `k in [0, 2^bits - 1]` (only for tensors that are never negative)

Weights and biases are always signed. `o_min`/`o_max` in formats.csv (`_O_MIN`/`_O_MAX` in the
headers) give each tensor's code range under this export's range mode.

## The `.mem` files

One word per line, no address directives, no comments; lower-case hexadecimal with exactly
`ceil(bits/4)` digits. A word is the code's two's-complement bit pattern **truncated to `bits`
bits** and zero-padded to whole hex digits: the unused high bits of the first digit are always 0,
never sign copies. Example, 5-bit signed: -1 is `1f`, -16 is `10`, 3 is `03`. Unsigned codes are
plain binary. To read a word back, take its low `bits` bits and, for a signed format,
sign-extend from bit `bits-1`. `$readmemh` into `logic [BITS-1:0] mem [N]` (or `logic signed`)
loads them directly. The word width of each file is the format of what it holds: `w_bits` /
`b_bits` for weights/biases, the value's `o_bits`/`o_signed` (its row in formats.csv, found by
`output_value`) for golden vectors.

Tensor order in every golden file is the flattened row-major order of the value's shape:
feature maps are `C x H x W` (channel-major, then rows, then columns), flat vectors `[F]`. There
is no batch axis.

Weight order:
- Conv (including depthwise/grouped): `[out_c][in_c/groups][kh][kw]`, row-major (ONNX order);
  output channel `o` belongs to group `o / (out_c/groups)` and reads input channels
  `group*(in_c/groups) .. (group+1)*(in_c/groups) - 1`.
- Dense: `[out][in]`, row-major; `in` indexes the flattened `C x H x W` input.
- Affine (a BatchNormalization that could not be folded into a preceding Conv/Dense): the
  per-channel scale `[c]` in `.w.mem` and the per-channel offset `[c]` in `.b.mem`.

Bias: one word per output channel (Conv), output (Dense) or channel (Affine). A model layer
without a bias (`has_bias = false`) has a file of zeros.

## formats.csv

| column | meaning |
|---|---|
| `layer` | node index (`input` for the network input); the `<idx>` of weight file names |
| `ident` | identifier of the row's constants in the headers: `L<idx>_<NAME>`, or `INPUT` |
| `node` | ONNX node name (the name point files use); for the input row, the input tensor's name |
| `op` | Conv, DepthwiseConv, Dense, Affine, Add, Concat, AvgPool, GlobalAvgPool, MaxPool, GlobalMaxPool, Activation, Flatten, Input |
| `role` | `owner` (owns its output format, and weights/bias for Conv/Dense/Affine), `pass-through` (owns nothing: output keeps the format of its first input), `input` |
| `inputs` / `input_values` | input tensor names / value indices, `;`-separated, in operand order |
| `output` / `output_value` | output tensor name / value index (the `<v>` of golden file names) |
| `output_shape` | `C x H x W` or `F`, `x`-separated |
| `w_bits`, `w_frac`, `b_bits`, `b_frac` | weight and bias formats (Conv, Dense, Affine only) |
| `has_bias` | whether the model layer has a bias (else its bias codes are 0) |
| `o_bits`, `o_frac`, `o_signed`, `o_min`, `o_max` | output format and its code range |
| `acc_bits` | accumulator width (two's complement) |
| `acc_derived` | `false`: the width comes from the assignment and the accumulator **is** saturated/wrapped to it (the golden vectors include that); `true`: the width is derived (sufficient for the sum of products) and the golden vectors assume an unbounded accumulator |
| `frac_acc` | fractional offset of the accumulator (`frac_in + w_frac` for Conv/Dense/Affine, the larger operand frac for Add, the input frac for average pools) |
| `fan_in` | terms summed per output (products for Conv/Dense, window size for pools, 2 for Add) |
| `activation` | fused activation applied before requantization: `none`, `relu`, or `clip:<min>:<max>` (reals); for an `Activation` (unfused) row, the operation itself |
| `rounding`, `overflow`, `range` | the arithmetic (the same for every row) |
| `kernel`, `stride`, `dilation` | window geometry `h x w` (Conv, MaxPool, AvgPool) |
| `pads` | `top x left x bottom x right` zero padding (ONNX `pads` order `[x1_begin, x2_begin, x1_end, x2_end]`) |
| `groups` | Conv groups (`= in_c` for depthwise) |
| `count_include_pad` | AvgPool divisor rule (ONNX attribute) |
| `weights_file`, `bias_file` | paths of the layer's `.mem` files |
| `golden_file` | the name of this row's output file inside `golden/sample_<i>/` |
| `w_frac_file` | layers with per-channel weight offsets: the path of their `.wfrac.mem` file (then `w_frac` and `frac_acc` are those of the widest channel) |

Derived accumulator widths: Conv/Dense/Affine `w_bits + bits_in + ceil(log2(fan_in)) + 1`
(the `+1` is for the bias; a bias whose aligned value is wider than the sum of products would
need more); Add `max over operands of (bits + [unsigned] + frac_acc - frac) + 1`; average pools
`bits_in + [unsigned] + ceil(log2(window))`.

## Header constants

For every row `<ID>` (its `ident`): `<ID>_W_BITS`, `<ID>_W_FRAC`, `<ID>_W_PER_CHANNEL` (0/1),
`<ID>_B_BITS`, `<ID>_B_FRAC` (parameterised layers only), `<ID>_O_BITS`, `<ID>_O_FRAC`, `<ID>_O_SIGNED` (0/1), `<ID>_O_MIN`,
`<ID>_O_MAX` (64-bit), `<ID>_ACC_BITS`, `<ID>_ACC_FRAC`, `<ID>_ACC_DERIVED` (layers with an
accumulator), `<ID>_ACT` (`QDSE_ACT_NONE`/`_RELU`/`_CLIP` = 0/1/2), `<ID>_ROUNDING`,
`<ID>_OVERFLOW`, `<ID>_RANGE`. Global: `QDSE_ROUND_HALF_EVEN`/`_HALF_UP`/`_FLOOR`/`_HALF_AWAY`
= 0/1/2/3, `QDSE_OVF_SATURATE`/`_WRAP` = 0/1, `QDSE_RANGE_TWOS_COMPLEMENT`/`_SYMMETRIC` = 0/1,
`QDSE_ROUNDING`, `QDSE_OVERFLOW`, `QDSE_RANGE`, `QDSE_NUM_NODES`, `QDSE_NUM_CLASSES`,
`QDSE_GOLDEN_SAMPLES`.

## Integer arithmetic

All sums and products are exact (use wide enough registers); rounding happens only where stated.

**round(v / 2^s)**, `s > 0`, in the configured mode: `q = v >>> s` (arithmetic shift = floor),
`r = v - (q << s)`, `h = 2^(s-1)`:
- `floor`: `q` (drop bits)
- `half-up`: `q + (r >= h)` (= floor(v/2^s + 1/2))
- `half-even`: `q + (r > h || (r == h && q is odd))`
- `half-away`: `q + (r > h || (r == h && v >= 0))`

The same with a general divisor `n > 0` (pool means): `q = floor(v / n)`, `r = v - q*n`, compare
`2r` with `n` instead of `r` with `h`.

**fit(v)** into a format: `saturate` clamps to `[o_min, o_max]`; `wrap` keeps the low `bits` bits
(reinterpreted as signed for a signed format); in the symmetric range a wrap that lands on
`-2^(bits-1)` becomes `-(2^(bits-1)-1)`.

**requantize(v, from_frac -> out)**: `s = from_frac - o_frac`; if `s > 0`, `round(v / 2^s)`; else
`v << -s` (exact); then `fit`.

**Q(x)** (quantizing a real): `fit(round(x * 2^frac))`, used for the input and constants.

### Network input
`k = Q(x)` of the preprocessed float input at the input format (`INPUT_*`). `input.mem` holds
these codes; an implementation is checked from them, not from the float data.

### Conv, Dense, Affine
1. `acc = sum(a * w)` over the window / row, exactly, at `frac_acc = frac_in + w_frac`. Zero
   padding contributes code 0. Affine: `acc = a * w[c]` for channel `c`. A layer with
   per-channel weight offsets (`W_PER_CHANNEL = 1`) has its weights of output channel `c` at
   `w_frac_c` (line `c` of its `.wfrac.mem`): every step below uses that channel's
   `frac_acc = frac_in + w_frac_c`, so the bias alignment and the requantization shift are per
   channel.
2. **Bias alignment** (the `.b.mem` codes are at the bias format, `b_frac`): if
   `b_frac <= frac_acc`, `bias_acc = b << (frac_acc - b_frac)` (exact); else
   `bias_acc = round(b / 2^(b_frac - frac_acc))` with the rounding mode (no saturation). Then
   `acc = acc + bias_acc`. The alignment is a constant per bias; it can be done offline.
3. If `acc_derived` is `false`: `acc = fit(acc)` into `acc_bits` two's-complement bits (the full
   `[-2^(acc_bits-1), 2^(acc_bits-1)-1]` range even in symmetric mode) with the overflow mode.
4. Fused activation: `relu`: `acc = max(acc, 0)`. `clip:<min>:<max>`: if the real value
   `acc * 2^-frac_acc < min`, the output is `Q(min)`; if `> max`, `Q(max)` (both at the output
   format); otherwise go on with `acc`. Integer thresholds: `acc < ceil(min * 2^frac_acc)` and
   `acc > floor(max * 2^frac_acc)`.
5. `y = requantize(acc, frac_acc -> output format)`.

### Add (residual)
`fm = max(frac_a, frac_b)`; `acc = (a << (fm - frac_a)) + (b << (fm - frac_b))` exactly, at
`frac_acc = fm`; then steps 3 (only when an accumulator width is given), 4 and 5 as above.

### Concat
Along the channel axis, operands in `input_values` order; every operand's codes are
requantized on their own, `requantize(k, frac_operand -> output format)` (round, then fit), even
when the formats already agree (then it is the identity).

### AvgPool, GlobalAvgPool
`S = sum` of the window's codes (exact, at `frac_in`), `n` = the divisor: with
`count_include_pad = false` the number of window positions inside the input; with `true` the
positions inside the padded extent (ONNX semantics: positions past the bottom/right `pads` do not
count). GlobalAvgPool: `n = H*W`. The output is the exact mean rounded into the output format:
`d = o_frac - frac_in`; `y = fit(round(S * 2^d / n))`, i.e. `round((S << d) / n)` when `d >= 0`,
`round(S / (n << -d))` when `d < 0`, with the rounding mode on the exact rational.

### MaxPool, GlobalMaxPool, Flatten, unfused Activation (pass-through)
Exact on codes; the output keeps the input's format. Max pools take the max over the window
positions inside the input (padding never wins). Flatten keeps the code order. An unfused
activation clamps codes: `relu`: `max(k, 0)`; `clip:<min>:<max>`: `clamp(k, Q(min), Q(max))` with
`Q` at the input's format, saturating (a bound outside the format saturates even under wrap).

### Classification
`predicted = argmax` of the final integer codes (logits); ties go to the lowest index.

## Checking an implementation

1. Load the weights and biases from `weights/` and the formats from `qdse_formats.svh` (or `.h`).
2. For each `golden/sample_<i>/`: feed `input.mem`, run the network, and compare every tensor
   with `<v>_<name>.mem` (`v` = the tensor's `output_value` in formats.csv), word for word, at
   the value's width. Compare the logits and the class with `golden/expected.csv`.
3. To localise a mismatch, test one layer at a time: feed it the golden files of its
   `input_values` and compare its output with the golden file of its `output_value`. Every layer
   can be verified in isolation this way; the first mismatching layer is the faulty one.

`expected.csv`'s `label` is the data set's label: a mismatch between `label` and `predicted` is a
misclassification of the quantized model, not an implementation error.

"#;
