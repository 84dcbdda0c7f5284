//! Layer geometry shared by the float and the integer engines: im2col + GEMM convolution,
//! pooling windows. The engines differ only in element type and in what happens to an
//! accumulator, so the loops live here once.

use crate::model::Window;

/// A GEMM element type (f32 or f64). Integer codes are carried exactly in these as long as
/// every partial sum stays below 2^24 (f32) or 2^53 (f64); the integer engine checks that
/// bound per layer before choosing one.
pub trait Gemm: Copy + Default + Send + Sync + 'static {
    /// `c[m][n] = a[m][k] * b[k][n]` (row-major, overwriting `c`).
    fn gemm(m: usize, k: usize, n: usize, a: &[Self], b: &[Self], c: &mut [Self]);
}

/// Row-major GEMM through matrixmultiply's `sgemm` / `dgemm`.
macro_rules! blas_gemm {
    ($t:ty, $f:path) => {
        impl Gemm for $t {
            fn gemm(m: usize, k: usize, n: usize, a: &[$t], b: &[$t], c: &mut [$t]) {
                assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
                // SAFETY: the slices hold at least the addressed elements (checked above).
                unsafe {
                    $f(
                        m,
                        k,
                        n,
                        1.0,
                        a.as_ptr(),
                        k as isize,
                        1,
                        b.as_ptr(),
                        n as isize,
                        1,
                        0.0,
                        c.as_mut_ptr(),
                        n as isize,
                        1,
                    )
                }
            }
        }
    };
}

blas_gemm!(f32, matrixmultiply::sgemm);
blas_gemm!(f64, matrixmultiply::dgemm);

/// Shape of one convolution, resolved against its input.
#[derive(Debug, Clone, Copy)]
pub struct ConvGeom {
    pub in_c: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub out_c: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub groups: usize,
    pub window: Window,
}

impl ConvGeom {
    /// Rows of the im2col matrix of one group (= the fan-in of an output).
    pub fn k(&self) -> usize {
        self.in_c / self.groups * self.window.kernel[0] * self.window.kernel[1]
    }
    pub fn pixels(&self) -> usize {
        self.out_h * self.out_w
    }
}

/// Convolve one image: `input` is `[in_c][in_h][in_w]`, `weight` `[out_c][k]` in the GEMM type,
/// `out` receives `[out_c][pixels]` raw accumulators. `conv` maps an input element to the GEMM
/// type; padding contributes zero. `col` is scratch of at least `k * pixels`.
pub fn conv_image<S: Copy, G: Gemm>(
    g: &ConvGeom,
    input: &[S],
    weight: &[G],
    conv: impl Fn(S) -> G,
    col: &mut Vec<G>,
    out: &mut [G],
) {
    let (k, p) = (g.k(), g.pixels());
    let og = g.out_c / g.groups;
    for grp in 0..g.groups {
        im2col(g, grp, input, &conv, col);
        G::gemm(og, k, p, &weight[grp * og * k..(grp + 1) * og * k], col, &mut out[grp * og * p..(grp + 1) * og * p]);
    }
}

/// The im2col matrix of group `grp` of one image: `col[k][pixels]`, row `(c, ky, kx)` holding
/// the input element under that kernel tap for every output pixel (zero in the padding).
pub fn im2col<S: Copy, G: Copy + Default>(
    g: &ConvGeom,
    grp: usize,
    input: &[S],
    conv: impl Fn(S) -> G,
    col: &mut Vec<G>,
) {
    let p = g.pixels();
    let cg = g.in_c / g.groups;
    col.resize(g.k() * p, G::default());
    let [kh, kw] = g.window.kernel;
    let [sh, sw] = g.window.stride;
    let [dh, dw] = g.window.dilation;
    let (pt, pl) = (g.window.pads[0] as isize, g.window.pads[1] as isize);
    let mut row = 0;
    for c in grp * cg..(grp + 1) * cg {
        let plane = &input[c * g.in_h * g.in_w..(c + 1) * g.in_h * g.in_w];
        for ky in 0..kh {
            for kx in 0..kw {
                let dst = &mut col[row * p..(row + 1) * p];
                // Output columns whose input column ox*sw + kx*dw - pl lies inside the row.
                let off = (kx * dw) as isize - pl;
                let ox_lo = if off >= 0 { 0 } else { ((-off) as usize).div_ceil(sw) }.min(g.out_w);
                let ox_hi = if (g.in_w as isize) <= off {
                    0
                } else {
                    ((g.in_w as isize - off) as usize).div_ceil(sw).min(g.out_w)
                }
                .max(ox_lo);
                for oy in 0..g.out_h {
                    let iy = (oy * sh + ky * dh) as isize - pt;
                    let d = &mut dst[oy * g.out_w..(oy + 1) * g.out_w];
                    if iy < 0 || iy >= g.in_h as isize {
                        d.fill(G::default());
                        continue;
                    }
                    let src = &plane[iy as usize * g.in_w..(iy as usize + 1) * g.in_w];
                    d[..ox_lo].fill(G::default());
                    d[ox_hi..].fill(G::default());
                    let start = (ox_lo * sw) as isize + off;
                    if sw == 1 {
                        let s0 = start as usize;
                        for (v, &x) in d[ox_lo..ox_hi].iter_mut().zip(&src[s0..s0 + (ox_hi - ox_lo)]) {
                            *v = conv(x);
                        }
                    } else {
                        for (j, v) in d[ox_lo..ox_hi].iter_mut().enumerate() {
                            *v = conv(src[start as usize + j * sw]);
                        }
                    }
                }
                row += 1;
            }
        }
    }
}

/// Visit every pooling window of one image: `f(channel, out_index, window_values, count_in_pad)`
/// where `window_values` are the in-bounds elements and `count_in_pad` the full window size.
pub fn pool_windows<T: Copy>(
    input: &[T],
    shape: &[usize],
    w: &Window,
    out_hw: [usize; 2],
    mut f: impl FnMut(usize, usize, &[T], usize),
) {
    let (c, h, wd) = (shape[0], shape[1], shape[2]);
    let mut buf = Vec::with_capacity(w.kernel[0] * w.kernel[1]);
    if w.pads == [0; 4] && w.dilation == [1, 1] {
        // Every window lies inside the image: no bounds checks.
        let full = w.kernel[0] * w.kernel[1];
        for ch in 0..c {
            let plane = &input[ch * h * wd..(ch + 1) * h * wd];
            for oy in 0..out_hw[0] {
                for ox in 0..out_hw[1] {
                    buf.clear();
                    for ky in 0..w.kernel[0] {
                        let row = (oy * w.stride[0] + ky) * wd + ox * w.stride[1];
                        buf.extend_from_slice(&plane[row..row + w.kernel[1]]);
                    }
                    f(ch, oy * out_hw[1] + ox, &buf, full);
                }
            }
        }
        return;
    }
    for ch in 0..c {
        let plane = &input[ch * h * wd..(ch + 1) * h * wd];
        for oy in 0..out_hw[0] {
            for ox in 0..out_hw[1] {
                buf.clear();
                let mut in_pad = 0;
                for ky in 0..w.kernel[0] {
                    let iy = (oy * w.stride[0] + ky * w.dilation[0]) as isize - w.pads[0] as isize;
                    for kx in 0..w.kernel[1] {
                        let ix = (ox * w.stride[1] + kx * w.dilation[1]) as isize - w.pads[1] as isize;
                        // ONNX counts pad positions inside the padded extent only.
                        let inside_padded = iy < (h + w.pads[2]) as isize && ix < (wd + w.pads[3]) as isize;
                        if inside_padded {
                            in_pad += 1;
                        }
                        if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd {
                            buf.push(plane[iy as usize * wd + ix as usize]);
                        }
                    }
                }
                f(ch, oy * out_hw[1] + ox, &buf, in_pad);
            }
        }
    }
}
