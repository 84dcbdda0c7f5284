//! The float engine's own f32 kernels: a convolution GEMM whose weights are packed once and
//! whose input columns are read as contiguous runs of a once-padded (stride-phased) input, so
//! that neither operand is copied per image beyond one padding pass; a matrix-vector product
//! over weights laid out column-major once; bias and activation applied to the tile while it is
//! still in registers.
//!
//! Every output is `bias + sum_t w[t] * x[t]` summed in order of `t`, one fused multiply-add per
//! term on instruction sets with FMA (AVX2 + FMA, AVX-512) and a separate multiply and add on
//! the portable path: the kernels are bit-identical to the plain loops in the tests, whichever
//! instruction set runs them.

use super::kernels::{ConvGeom, Isa, SumLayout};
use crate::model::Activation;

/// Columns of the AVX-512 tile (two 16-lane vectors) and rows that keep its 12 accumulators in
/// the 32 vector registers.
const NR_512: usize = 32;
const MR_512: usize = 6;
/// The AVX2 tile: two 8-lane vectors by six rows, 12 of the 16 registers.
const NR_256: usize = 16;
const MR_256: usize = 6;
/// The portable tile (what SSE2 can hold).
const NR_BASE: usize = 8;
const MR_BASE: usize = 4;
/// Output columns of a dense layer summed at a time: enough independent accumulators to hide
/// the latency of a multiply-add chain.
const DENSE_BLOCK: usize = 64;
/// The narrower block for the last columns of a dense layer.
const DENSE_TAIL: usize = 16;

/// The instruction set the f32 kernels run on, with FMA checked separately: `Isa::Avx2` does not
/// promise it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    Portable,
    Avx2Fma,
    Avx512,
}

impl Kernel {
    /// The best kernel for `isa` on this machine.
    pub fn for_isa(isa: Isa) -> Kernel {
        match isa {
            Isa::Avx512Vnni if isa.supported() => Kernel::Avx512,
            Isa::Avx2 | Isa::Avx512Vnni if isa.supported() && fma_supported() => Kernel::Avx2Fma,
            _ => Kernel::Portable,
        }
    }

    /// Every kernel this machine can run (for the tests).
    pub fn available() -> Vec<Kernel> {
        let mut v = vec![Kernel::Portable];
        for k in [Kernel::for_isa(Isa::Avx2), Kernel::for_isa(Isa::Avx512Vnni)] {
            if !v.contains(&k) {
                v.push(k);
            }
        }
        v
    }

    /// Whether products are fused with their accumulation.
    pub fn fused(self) -> bool {
        self != Kernel::Portable
    }

    /// Rows of this kernel's tile (the block height weights are packed in).
    fn mr(self) -> usize {
        match self {
            Kernel::Portable => MR_BASE,
            Kernel::Avx2Fma => MR_256,
            Kernel::Avx512 => MR_512,
        }
    }

    /// Columns of this kernel's tile.
    fn nr(self) -> usize {
        match self {
            Kernel::Portable => NR_BASE,
            Kernel::Avx2Fma => NR_256,
            Kernel::Avx512 => NR_512,
        }
    }
}

fn fma_supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `acc + a * b`, fused or not: the one place the kernels' rounding is decided.
#[inline(always)]
fn mac<const FMA: bool>(acc: f32, a: f32, b: f32) -> f32 {
    if FMA {
        a.mul_add(b, acc)
    } else {
        acc + a * b
    }
}

/// The activation as the clamp the epilogue applies.
#[inline(always)]
fn act(x: f32, a: Activation) -> f32 {
    super::float::activate(x, a)
}

/// A weight matrix `[m][k]` packed once for `kernel`: blocks of `mr` rows, each `[k][mr]` so
/// that a tile's weights for one term are adjacent; rows past `m` are zero.
pub struct PackedWeights {
    m: usize,
    k: usize,
    kernel: Kernel,
    data: Vec<f32>,
}

impl PackedWeights {
    pub fn new(m: usize, k: usize, w: &[f32], kernel: Kernel) -> Self {
        assert!(w.len() >= m * k, "weight matrix smaller than {m}x{k}");
        let mr = kernel.mr();
        let mut data = vec![0.0; m.div_ceil(mr) * k * mr];
        for r in 0..m {
            for t in 0..k {
                data[((r / mr) * k + t) * mr + r % mr] = w[r * k + t];
            }
        }
        PackedWeights { m, k, kernel, data }
    }
}

/// The B operand of a convolution GEMM: row `t` of the virtual im2col matrix is
/// `src[offsets[t]..][..n]`.
pub struct Runs<'a> {
    pub offsets: &'a [usize],
    pub src: &'a [f32],
    pub n: usize,
}

/// `c[r][j] = act(bias[r] + sum_t w[r][t] * runs[t][j])` for the `m x n` output, on the kernel
/// the weights were packed for. `runs.src` must reach a whole tile past every run's start.
pub fn gemm(w: &PackedWeights, runs: &Runs, bias: &[f32], a: Activation, c: &mut [f32]) {
    let nr = w.kernel.nr();
    let reach = runs.offsets.iter().max().map_or(0, |&o| o + runs.n.div_ceil(nr) * nr);
    assert!(runs.offsets.len() == w.k && runs.src.len() >= reach, "GEMM runs out of their source");
    assert!(bias.len() >= w.m && c.len() >= w.m * runs.n, "GEMM output sizes");
    match w.kernel {
        // SAFETY: `Kernel::for_isa` only chooses these where the machine has the features.
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 => unsafe { x86::gemm512(w, runs, bias, a, c) },
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2Fma => unsafe { x86::gemm256(w, runs, bias, a, c) },
        _ => gemm_body::<MR_BASE, NR_BASE, false>(w, runs, bias, a, c),
    }
}

/// The GEMM for one tile shape: column panels outermost, so that a panel's runs stay in L1
/// while every block of weight rows passes over them.
#[inline(always)]
fn gemm_body<const MR: usize, const NR: usize, const FMA: bool>(
    w: &PackedWeights,
    runs: &Runs,
    bias: &[f32],
    a: Activation,
    c: &mut [f32],
) {
    let (k, n) = (w.k, runs.n);
    for col in (0..n).step_by(NR) {
        let width = (n - col).min(NR);
        for (blk, wb) in w.data.chunks_exact(k * MR).enumerate() {
            let acc = tile::<MR, NR, FMA>(wb, runs, col);
            let r0 = blk * MR;
            for (r, acc_r) in acc.iter().enumerate().take(w.m - r0) {
                let b = bias[r0 + r];
                let dst = &mut c[(r0 + r) * n + col..][..width];
                for (d, &v) in dst.iter_mut().zip(acc_r) {
                    *d = act(b + v, a);
                }
            }
        }
    }
}

/// One `MR x NR` tile of sums, in registers for fixed `MR`, `NR`.
#[inline(always)]
fn tile<const MR: usize, const NR: usize, const FMA: bool>(wb: &[f32], runs: &Runs, col: usize) -> [[f32; NR]; MR] {
    let mut acc = [[0.0f32; NR]; MR];
    for (wt, &off) in wb.chunks_exact(MR).zip(runs.offsets) {
        let x: &[f32; NR] = runs.src[off + col..][..NR].try_into().expect("tile run");
        for (acc_r, &wr) in acc.iter_mut().zip(wt) {
            for (s, &xv) in acc_r.iter_mut().zip(x) {
                *s = mac::<FMA>(*s, wr, xv);
            }
        }
    }
    acc
}

/// A dense layer's weights `[m][k]` laid out once as `[k][m_pad]` (zero columns past `m`), so
/// that each input element multiplies a contiguous row of outputs.
pub struct DenseWeights {
    m: usize,
    k: usize,
    m_pad: usize,
    kernel: Kernel,
    data: Vec<f32>,
}

impl DenseWeights {
    pub fn new(m: usize, k: usize, w: &[f32], kernel: Kernel) -> Self {
        assert!(w.len() >= m * k, "weight matrix smaller than {m}x{k}");
        let m_pad = m.div_ceil(DENSE_TAIL) * DENSE_TAIL;
        let mut data = vec![0.0; k * m_pad];
        for r in 0..m {
            for t in 0..k {
                data[t * m_pad + r] = w[r * k + t];
            }
        }
        DenseWeights { m, k, m_pad, kernel, data }
    }
}

/// `y[r] = act(bias[r] + sum_t w[r][t] * x[t])`.
pub fn gemv(w: &DenseWeights, x: &[f32], bias: &[f32], a: Activation, y: &mut [f32]) {
    assert!(x.len() >= w.k && bias.len() >= w.m && y.len() >= w.m, "dense operand sizes");
    match w.kernel {
        // SAFETY: `Kernel::for_isa` only chooses these where the machine has the features.
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 => unsafe { x86::gemv512(w, x, bias, a, y) },
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2Fma => unsafe { x86::gemv256(w, x, bias, a, y) },
        _ => gemv_body::<false>(w, x, bias, a, y),
    }
}

#[inline(always)]
fn gemv_body<const FMA: bool>(w: &DenseWeights, x: &[f32], bias: &[f32], a: Activation, y: &mut [f32]) {
    let mut store = |col: usize, sums: &[f32]| {
        let end = (col + sums.len()).min(w.m);
        for ((d, &s), &b) in y[col..end].iter_mut().zip(sums).zip(&bias[col..end]) {
            *d = act(b + s, a);
        }
    };
    let mut col = 0;
    while col < w.m {
        // Wide blocks while they fit the padded width, then sixteen at a time.
        if w.m_pad - col >= DENSE_BLOCK {
            store(col, &gemv_block::<DENSE_BLOCK, FMA>(w, x, col));
            col += DENSE_BLOCK;
        } else {
            store(col, &gemv_block::<DENSE_TAIL, FMA>(w, x, col));
            col += DENSE_TAIL;
        }
    }
}

#[inline(always)]
fn gemv_block<const B: usize, const FMA: bool>(w: &DenseWeights, x: &[f32], col: usize) -> [f32; B] {
    let mut acc = [0.0f32; B];
    for (row, &xv) in w.data.chunks_exact(w.m_pad).zip(&x[..w.k]) {
        let wr: &[f32; B] = row[col..col + B].try_into().expect("dense block");
        for (s, &wv) in acc.iter_mut().zip(wr) {
            *s = mac::<FMA>(*s, wv, xv);
        }
    }
    acc
}

/// A convolution input padded once and split into its stride phases (the layout of
/// `kernels::depthwise`): phase `(py, px)` of channel `c` holds padded rows `py, py + sh, ...`
/// and columns `px, px + sw, ...`, `hq x wq` each. Over virtual output columns
/// `oy * wq + ox` (real where `ox < out_w`), the im2col row of tap `(c, ky, kx)` is then one
/// contiguous run.
pub struct Phased {
    pub wq: usize,
    /// Elements per channel (all its phases).
    pub chan: usize,
    /// Run start of each tap of one group's first channel, `(c, ky, kx)` order.
    pub offsets: Vec<usize>,
}

impl Phased {
    /// Lay `input` out into `buf` for `g`, with zeros past the last channel as far as
    /// `kernel`'s tiles read on.
    pub fn new(g: &ConvGeom, input: &[f32], kernel: Kernel, buf: &mut Vec<f32>) -> Self {
        let ([sh, sw], [dh, dw], [kh, kw]) = (g.window.stride, g.window.dilation, g.window.kernel);
        let (pt, pl) = (g.window.pads[0], g.window.pads[1]);
        let hq = (pt + g.in_h + g.window.pads[2]).div_ceil(sh);
        let wq = (pl + g.in_w + g.window.pads[3]).div_ceil(sw);
        let plane = hq * wq;
        let chan = sh * sw * plane;
        let cg = g.in_c / g.groups;
        let offsets: Vec<usize> = (0..cg * kh * kw)
            .map(|i| {
                let (c, t) = (i / (kh * kw), i % (kh * kw));
                let (dy, dx) = (t / kw * dh, t % kw * dw);
                c * chan + ((dy % sh) * sw + dx % sw) * plane + dy / sh * wq + dx / sw
            })
            .collect();
        let n = g.out_h * wq;
        let reach = (g.in_c - cg) * chan + offsets.iter().max().unwrap_or(&0) + n.div_ceil(kernel.nr()) * kernel.nr();
        buf.clear();
        buf.resize((g.in_c * chan).max(reach), 0.0);
        for (c, src) in input.chunks_exact(g.in_h * g.in_w).take(g.in_c).enumerate() {
            for (y, row) in src.chunks_exact(g.in_w).enumerate() {
                let (py, r) = ((y + pt) % sh, (y + pt) / sh);
                for px in 0..sw {
                    // Column phase px holds input columns x0, x0 + sw, ... at q0, q0 + 1, ...
                    let x0 = (px + sw - pl % sw) % sw;
                    let q0 = (x0 + pl) / sw;
                    let dst = &mut buf[c * chan + (py * sw + px) * plane + r * wq + q0..];
                    for (d, &v) in dst.iter_mut().zip(row.iter().skip(x0).step_by(sw)) {
                        *d = v;
                    }
                }
            }
        }
        Phased { wq, chan, offsets }
    }
}

/// A (non-depthwise) convolution of one image: `input` `[in_c][in_h][in_w]`, `weights` one
/// packed `[out_c / groups][k]` matrix per group, `out` the activated `[out_c][pixels]`.
/// `buf` and `sums` are scratch.
#[allow(clippy::too_many_arguments)]
pub fn conv(
    g: &ConvGeom,
    input: &[f32],
    weights: &[PackedWeights],
    bias: &[f32],
    a: Activation,
    buf: &mut Vec<f32>,
    sums: &mut Vec<f32>,
    out: &mut Vec<f32>,
) {
    assert!(weights.len() == g.groups && input.len() >= g.in_c * g.in_h * g.in_w, "conv operands");
    let kernel = weights[0].kernel;
    let ph = Phased::new(g, input, kernel, buf);
    let n = g.out_h * ph.wq;
    let (og, cg) = (g.out_c / g.groups, g.in_c / g.groups);
    // Without discarded columns the GEMM writes the output itself.
    let direct = ph.wq == g.out_w;
    let dst = if direct { &mut *out } else { &mut *sums };
    dst.clear();
    dst.resize(g.out_c * n, 0.0);
    for (grp, w) in weights.iter().enumerate() {
        let runs = Runs { offsets: &ph.offsets, src: &buf[grp * cg * ph.chan..], n };
        gemm(w, &runs, &bias[grp * og..], a, &mut dst[grp * og * n..(grp + 1) * og * n]);
    }
    if !direct {
        let layout = SumLayout { per_row: n, seg_stride: ph.wq, seg_len: g.out_w };
        out.clear();
        for (_, seg) in layout.real(sums) {
            out.extend_from_slice(seg);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn gemm256(w: &PackedWeights, runs: &Runs, bias: &[f32], a: Activation, c: &mut [f32]) {
        gemm_body::<MR_256, NR_256, true>(w, runs, bias, a, c);
    }

    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    pub unsafe fn gemm512(w: &PackedWeights, runs: &Runs, bias: &[f32], a: Activation, c: &mut [f32]) {
        gemm_body::<MR_512, NR_512, true>(w, runs, bias, a, c);
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn gemv256(w: &DenseWeights, x: &[f32], bias: &[f32], a: Activation, y: &mut [f32]) {
        gemv_body::<true>(w, x, bias, a, y);
    }

    #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
    pub unsafe fn gemv512(w: &DenseWeights, x: &[f32], bias: &[f32], a: Activation, y: &mut [f32]) {
        gemv_body::<true>(w, x, bias, a, y);
    }
}
