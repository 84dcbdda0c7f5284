// qdse reference datapath: the arithmetic of one Conv / Dense / Affine layer, bit for bit as
// docs/fixed-point.md ("A Conv / Dense layer") defines it. Synthesizable; written by `qdse export`
// (rtl/qdse_layer.sv) and parameterized per layer by the export's testbench (rtl/qdse_tb.sv).
//
// One multiply-accumulate per clock: `load` presets the accumulator with the bias aligned to the
// accumulator's scale (step 3), each `mac` adds one exact product a*w (step 2). `y` is the
// output code of what has been accumulated so far: accumulator width (step 4), fused
// activation (step 5) and requantization into the output format (step 6), combinational.
//
// Per-channel weight offsets (docs/fixed-point.md, "Per-channel weight offsets"): channel c's
// weights sit w_off = w_frac_c - w_frac bits finer than the layer's, so its sum is at
// frac_acc + w_off. `load` also takes that channel's w_off (0 for a per-tensor layer) and keeps
// it while the channel accumulates: the bias alignment and the requantization shift each add it
// to the layer's shift (a barrel shifter, one small shift amount per output channel), and the
// Clip thresholds, given at the finest channel's scale, are shifted down to the channel's.
module qdse_layer #(
    parameter int A_BITS = 8,        // input activation code width
    parameter bit A_SIGNED = 1'b0,   // input activation signedness
    parameter int W_BITS = 8,        // weight code width (signed)
    parameter int B_BITS = 8,        // bias code width (signed)
    parameter int ACC_W = 32,        // exact width of the running sum (no overflow inside)
    parameter int BIAS_SHIFT = 0,    // frac_acc - frac_bias: >= 0 shifts left, < 0 rounds right
    parameter int W_OFF_MAX = 0,     // largest per-channel weight offset w_off; 0: per-tensor
    parameter int W_OFF_BITS = (W_OFF_MAX > 0) ? $clog2(W_OFF_MAX + 1) : 1,
    parameter int ACC_BITS = 0,      // accumulator width (step 4); 0: none
    parameter int OUT_SHIFT = 0,     // frac_acc - frac_out: >= 0 rounds right, < 0 shifts left
    parameter int OUT_BITS = 8,      // output code width
    parameter bit OUT_SIGNED = 1'b0, // output signedness
    parameter int ROUND = 0,         // 0 half-even, 1 half-up, 2 floor, 3 half-away
    parameter bit SATURATE = 1'b1,   // 1 saturate, 0 wrap
    parameter bit SYMMETRIC = 1'b0,  // signed range [-(2^(b-1)-1), 2^(b-1)-1]
    parameter int ACT = 0,           // 0 none, 1 ReLU, 2 Clip
    parameter longint CLIP_LO_T = 0, // Clip: sums below this (at frac_acc + W_OFF_MAX) give CLIP_LO_Q
    parameter longint CLIP_HI_T = 0, // Clip: sums above this (same scale) give CLIP_HI_Q
    parameter longint CLIP_LO_Q = 0,
    parameter longint CLIP_HI_Q = 0
) (
    input  logic                     clk,
    input  logic                     load,
    input  logic signed [B_BITS-1:0] bias,
    input  logic    [W_OFF_BITS-1:0] w_off,  // the channel's weight offset, taken with load
    input  logic                     mac,
    input  logic        [A_BITS-1:0] a,
    input  logic signed [W_BITS-1:0] w,
    output logic      [OUT_BITS-1:0] y
);
  localparam int ROUND_HALF_EVEN = 0, ROUND_HALF_UP = 1, ROUND_FLOOR = 2, ROUND_HALF_AWAY = 3;
  // Working width: the sum, the bias before a right shift, and headroom for rounding.
  localparam int RW = ACC_W + 2;
  // The requantize stage: the sum shifted left when the output is finer than the sum (most
  // for the coarsest channel, w_off = 0).
  localparam int LSH = (OUT_SHIFT < 0) ? -OUT_SHIFT : 0;
  localparam int YW = RW + LSH;
  // The Clip comparison: the sum and the 64-bit thresholds, both sign-extended.
  localparam int CW = (YW > 64) ? YW : 64;

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
  logic [W_OFF_BITS-1:0] off_q;  // the offset of the channel being accumulated
  int bias_sh, out_sh;

  assign a_s  = A_SIGNED ? $signed({a[A_BITS-1], a}) : $signed({1'b0, a});
  assign prod = a_s * w;  // exact: A_BITS+1 x W_BITS signed fits A_BITS+W_BITS+1 bits
  // Step 3 at the loading channel's frac_acc: the bias shift grows by its offset.
  assign bias_sh = BIAS_SHIFT + int'(w_off);
  assign bias_aligned = (bias_sh >= 0) ? (RW'(bias) <<< bias_sh) : round_shift(RW'(bias), -bias_sh);

  always_ff @(posedge clk) begin
    if (load) begin
      acc   <= ACC_W'(bias_aligned);
      off_q <= w_off;
    end else if (mac) acc <= acc + ACC_W'(prod);
  end

  logic signed [YW-1:0] bounded, act, scaled, code;
  logic signed [CW-1:0] lo_t, hi_t;
  always_comb begin
    // Step 4: the accumulator width (two's complement, the assignment's overflow mode).
    bounded = (ACC_BITS > 0) ? fit(YW'(acc), ACC_BITS, 1'b1, 1'b0) : YW'(acc);
    // Steps 5 and 6: the activation on the exact value, then round and fit into the output, by
    // the channel's shift frac_acc + off_q - frac_out.
    act = (ACT == 1 && bounded < 0) ? '0 : bounded;
    out_sh = OUT_SHIFT + int'(off_q);
    scaled = (out_sh >= 0) ? YW'(round_shift(RW'(act), out_sh)) : (act <<< -out_sh);
    code = fit(scaled, OUT_BITS, OUT_SIGNED, SYMMETRIC);
    // The channel's thresholds: ceil / floor of the finest scale's divided by 2^(W_OFF_MAX -
    // off_q), exact because ceil(ceil(x) / 2^k) = ceil(x / 2^k) (and so for floor).
    lo_t = -((-CW'(CLIP_LO_T)) >>> (W_OFF_MAX - int'(off_q)));
    hi_t = CW'(CLIP_HI_T) >>> (W_OFF_MAX - int'(off_q));
    if (ACT == 2 && CW'(bounded) < lo_t) code = YW'(CLIP_LO_Q);
    else if (ACT == 2 && CW'(bounded) > hi_t) code = YW'(CLIP_HI_Q);
    y = code[OUT_BITS-1:0];
  end
endmodule
