// qdse reference datapath: the arithmetic of one Conv / Dense / Affine layer, bit for bit as
// docs/fixed-point.md ("A Conv / Dense layer") defines it. Synthesizable; written by `qdse export`
// (rtl/qdse_layer.sv) and parameterized per layer by the export's testbench (rtl/qdse_tb.sv).
//
// One multiply-accumulate per clock: `load` presets the accumulator with the bias aligned to the
// accumulator's scale (step 3), each `mac` adds one exact product a*w (step 2). `y` is the
// output code of what has been accumulated so far: accumulator width (step 4), fused
// activation (step 5) and requantization into the output format (step 6), combinational.
module qdse_layer #(
    parameter int A_BITS = 8,        // input activation code width
    parameter bit A_SIGNED = 1'b0,   // input activation signedness
    parameter int W_BITS = 8,        // weight code width (signed)
    parameter int B_BITS = 8,        // bias code width (signed)
    parameter int ACC_W = 32,        // exact width of the running sum (no overflow inside)
    parameter int BIAS_SHIFT = 0,    // frac_acc - frac_bias: >= 0 shifts left, < 0 rounds right
    parameter int ACC_BITS = 0,      // accumulator width (step 4); 0: none
    parameter int OUT_SHIFT = 0,     // frac_acc - frac_out: >= 0 rounds right, < 0 shifts left
    parameter int OUT_BITS = 8,      // output code width
    parameter bit OUT_SIGNED = 1'b0, // output signedness
    parameter int ROUND = 0,         // 0 half-even, 1 half-up, 2 floor, 3 half-away
    parameter bit SATURATE = 1'b1,   // 1 saturate, 0 wrap
    parameter bit SYMMETRIC = 1'b0,  // signed range [-(2^(b-1)-1), 2^(b-1)-1]
    parameter int ACT = 0,           // 0 none, 1 ReLU, 2 Clip
    parameter longint CLIP_LO_T = 0, // Clip: sums below this (at frac_acc) give CLIP_LO_Q
    parameter longint CLIP_HI_T = 0, // Clip: sums above this give CLIP_HI_Q
    parameter longint CLIP_LO_Q = 0,
    parameter longint CLIP_HI_Q = 0
) (
    input  logic                     clk,
    input  logic                     load,
    input  logic signed [B_BITS-1:0] bias,
    input  logic                     mac,
    input  logic        [A_BITS-1:0] a,
    input  logic signed [W_BITS-1:0] w,
    output logic      [OUT_BITS-1:0] y
);
  localparam int ROUND_HALF_EVEN = 0, ROUND_HALF_UP = 1, ROUND_FLOOR = 2, ROUND_HALF_AWAY = 3;
  // Working width: the sum, the bias before a right shift, and headroom for rounding.
  localparam int RW = ACC_W + 2;
  // The requantize stage: the sum shifted left when the output is finer than the sum.
  localparam int LSH = (OUT_SHIFT < 0) ? -OUT_SHIFT : 0;
  localparam int YW = RW + LSH;
  localparam int BIAS_LSH = (BIAS_SHIFT > 0) ? BIAS_SHIFT : 0;

  // round(v / 2^s) in the rounding mode (docs/fixed-point.md, "Quantizing a real x").
  function automatic logic signed [RW-1:0] round_shift(input logic signed [RW-1:0] v, input int s);
    logic signed [RW-1:0] q, r, half;
    logic up;
    if (s <= 0) return v;
    // |v| < 2^(RW-2): below one half of 2^s in magnitude.
    if (s >= RW - 1) return (ROUND == ROUND_FLOOR && v < 0) ? -1 : 0;
    q = v >>> s;
    r = v - (q <<< s);
    half = RW'(1) <<< (s - 1);
    case (ROUND)
      ROUND_HALF_UP: up = (r >= half);
      ROUND_FLOOR: up = 1'b0;
      ROUND_HALF_AWAY: up = (r > half) || (r == half && v >= 0);
      default: up = (r > half) || (r == half && q[0]);
    endcase
    return q + $signed({{(RW - 1) {1'b0}}, up});
  endfunction

  // Bring v into a bits-wide code range: saturate, or wrap to the bits (two's complement); a
  // wrap onto the code a symmetric range lacks saturates (docs/fixed-point.md, "fit").
  function automatic logic signed [YW-1:0] fit(input logic signed [YW-1:0] v, input int bits, input bit signed_,
                                                input bit symmetric);
    logic signed [YW-1:0] lo, hi, m;
    m  = YW'(1) <<< bits;
    hi = signed_ ? (m >>> 1) - 1 : m - 1;
    lo = signed_ ? -(m >>> 1) + (symmetric ? 1 : 0) : 0;
    if (!SATURATE) begin
      v = v & (m - 1);
      if (signed_ && v >= (m >>> 1)) v = v - m;
    end
    return (v < lo) ? lo : (v > hi) ? hi : v;
  endfunction

  logic signed [ACC_W-1:0] acc;
  logic signed [A_BITS:0] a_s;
  logic signed [A_BITS+W_BITS:0] prod;
  logic signed [RW-1:0] bias_aligned;

  assign a_s  = A_SIGNED ? $signed({a[A_BITS-1], a}) : $signed({1'b0, a});
  assign prod = a_s * w;  // exact: A_BITS+1 x W_BITS signed fits A_BITS+W_BITS+1 bits
  assign bias_aligned = (BIAS_SHIFT >= 0) ? (RW'(bias) <<< BIAS_LSH) : round_shift(RW'(bias), -BIAS_SHIFT);

  always_ff @(posedge clk) begin
    if (load) acc <= ACC_W'(bias_aligned);
    else if (mac) acc <= acc + ACC_W'(prod);
  end

  logic signed [YW-1:0] bounded, act, scaled, code;
  always_comb begin
    // Step 4: the accumulator width (two's complement, the assignment's overflow mode).
    bounded = (ACC_BITS > 0) ? fit(YW'(acc), ACC_BITS, 1'b1, 1'b0) : YW'(acc);
    // Steps 5 and 6: the activation on the exact value, then round and fit into the output.
    act = (ACT == 1 && bounded < 0) ? '0 : bounded;
    scaled = (OUT_SHIFT >= 0) ? YW'(round_shift(RW'(act), OUT_SHIFT)) : (act <<< LSH);
    code = fit(scaled, OUT_BITS, OUT_SIGNED, SYMMETRIC);
    if (ACT == 2 && bounded < YW'(CLIP_LO_T)) code = YW'(CLIP_LO_Q);
    else if (ACT == 2 && bounded > YW'(CLIP_HI_T)) code = YW'(CLIP_HI_Q);
    y = code[OUT_BITS-1:0];
  end
endmodule
