//! The float engine's convolution and dense kernels: f32 multiply-adds (fused on AVX2 with FMA
//! and on AVX-512) over weights packed once per engine and over the runs of an input's stride
//! phases ([`Phases`](super::kernels::Phases)): no im2col and no per-image repacking, which a
//! general GEMM library does on every call (for one image's small layers most of its time).
//!
//! The float path is a reference to within float rounding, not bit-true: the order of the sums
//! (and fused or separate rounding of each product) may differ between instruction sets.

use super::kernels::Isa;

/// Rows of a microkernel tile: its accumulators are `MR` rows of vectors. AVX-512 tiles may also
/// take [`MR_WIDE`] rows (see [`PackedF32::new`]).
const MR: usize = 6;
/// Rows of an AVX-512 tile where they leave fewer rows padded (16, 32 or 64 channels: 6-row
/// blocks would compute 18, 36 or 66).
const MR_WIDE: usize = 8;

/// Which loops run: chosen once per engine from the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FloatIsa {
    /// Separate multiply and add, 8-column panels: what every target has.
    Portable,
    /// AVX2 with FMA: two 8-lane vectors per row of the tile.
    Avx2Fma,
    /// AVX-512F: two 16-lane vectors per row.
    Avx512,
}

impl FloatIsa {
    /// The best this machine has, within `isa` (the engine's instruction set).
    pub fn for_isa(isa: Isa) -> FloatIsa {
        #[cfg(target_arch = "x86_64")]
        {
            if isa >= Isa::Avx512Vnni {
                return FloatIsa::Avx512;
            }
            if isa >= Isa::Avx2 && std::arch::is_x86_feature_detected!("fma") {
                return FloatIsa::Avx2Fma;
            }
        }
        let _ = isa;
        FloatIsa::Portable
    }
}

/// A weight matrix `[m][k]` packed once for the microkernel: blocks of `mr` rows, within a
/// block for each column `p` the `mr` rows' weights side by side (zero past `m`).
pub struct PackedF32 {
    m: usize,
    k: usize,
    /// Rows per block: [`MR`], or [`MR_WIDE`] on AVX-512 where that pads fewer rows.
    mr: usize,
    data: Vec<f32>,
}

impl PackedF32 {
    /// `w` `[m][k]` packed for `isa`'s kernels.
    pub fn new(m: usize, k: usize, w: &[f32], isa: FloatIsa) -> Self {
        assert!(w.len() >= m * k, "weight matrix smaller than {m} x {k}");
        let wide = isa == FloatIsa::Avx512 && m.div_ceil(MR_WIDE) * MR_WIDE < m.div_ceil(MR) * MR;
        let mr = if wide { MR_WIDE } else { MR };
        let mut data = vec![0.0; m.div_ceil(mr) * k * mr];
        for r in 0..m {
            for p in 0..k {
                data[((r / mr) * k + p) * mr + r % mr] = w[r * k + p];
            }
        }
        PackedF32 { m, k, mr, data }
    }
}

/// `c[r][j] = sum_p w[r][p] * src[offs[p] + j]` for `j < n`: row `p` of the virtual im2col
/// matrix is the run of `src` starting at `offs[p]` (an input's channels, or its stride phases'
/// runs). `src` need hold only the runs themselves: the last panel reads under a mask (or
/// through a copy); `c` holds `m` rows of `n`.
pub fn gemm_runs(w: &PackedF32, src: &[f32], offs: &[usize], n: usize, c: &mut [f32], isa: FloatIsa) {
    assert_eq!(offs.len(), w.k, "one run per weight column");
    let reach = offs.iter().max().map_or(0, |&o| o + n);
    assert!(src.len() >= reach && c.len() >= w.m * n, "GEMM operand sizes");
    match isa {
        // SAFETY: `FloatIsa::for_isa` chose the variant only where the machine has its features;
        // every read is below `reach` (checked): whole vectors up to the last panel, which is
        // read under a mask.
        #[cfg(target_arch = "x86_64")]
        FloatIsa::Avx512 => unsafe { gemm_avx512(w, src, offs, n, c) },
        // SAFETY: as above; the body is safe code compiled for the features.
        #[cfg(target_arch = "x86_64")]
        FloatIsa::Avx2Fma => unsafe { gemm_avx2(w, src, offs, n, c) },
        _ => gemm_body::<8, false>(w, src, offs, n, c),
    }
}

/// Vectors of 16 columns per AVX-512 tile row for `n` columns: the fewest padded columns (a
/// panel past the last column is computed for nothing), the wider tile on a tie. Narrow tiles
/// lose no speed (six rows of one vector already keep the FMA unit busy), so small maps (a 7x7
/// map's 63 virtual columns, a 3x3's 15) are not rounded up to 64.
fn panel_vectors(n: usize, most: usize) -> usize {
    (1..=most).min_by_key(|&v| (n.div_ceil(16 * v) * 16 * v, most - v)).expect("a width")
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn gemm_avx512(w: &PackedF32, src: &[f32], offs: &[usize], n: usize, c: &mut [f32]) {
    // Eight rows take at most three vectors each: 24 accumulators, as six rows of four.
    match (w.mr, panel_vectors(n, if w.mr == MR_WIDE { 3 } else { 4 })) {
        (MR_WIDE, 1) => gemm_avx512_tiles::<MR_WIDE, 1>(w, src, offs, n, c),
        (MR_WIDE, 2) => gemm_avx512_tiles::<MR_WIDE, 2>(w, src, offs, n, c),
        (MR_WIDE, _) => gemm_avx512_tiles::<MR_WIDE, 3>(w, src, offs, n, c),
        (_, 1) => gemm_avx512_tiles::<MR, 1>(w, src, offs, n, c),
        (_, 2) => gemm_avx512_tiles::<MR, 2>(w, src, offs, n, c),
        (_, 3) => gemm_avx512_tiles::<MR, 3>(w, src, offs, n, c),
        _ => gemm_avx512_tiles::<MR, 4>(w, src, offs, n, c),
    }
}

/// Panels of `16 V` columns outermost: a panel's runs stay in cache while every block of `R`
/// weight rows passes over them.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn gemm_avx512_tiles<const R: usize, const V: usize>(
    w: &PackedF32,
    src: &[f32],
    offs: &[usize],
    n: usize,
    c: &mut [f32],
) {
    let panel = 16 * V;
    for j in (0..n).step_by(panel) {
        let width = (n - j).min(panel);
        // Lanes `l` of vector `v` with `16 v + l < width`: all of them but in the last panel.
        let masks: [u16; V] = std::array::from_fn(|v| {
            let live = width.saturating_sub(16 * v).min(16);
            ((1u32 << live) - 1) as u16
        });
        for (blk, a) in w.data.chunks_exact(w.k * R).enumerate() {
            let rows = (w.m - blk * R).min(R);
            let dst = c.as_mut_ptr().add(blk * R * n + j);
            if width == panel {
                avx512_tile::<R, V, false>(a, src, offs, j, &masks, dst, n, rows);
            } else {
                avx512_tile::<R, V, true>(a, src, offs, j, &masks, dst, n, rows);
            }
        }
    }
}

/// One `R x 16 V` tile (`R` rows of `V` vectors: up to 24 of the 32 registers), each
/// broadcast weight serving `16 V` columns and each loaded vector `R` rows. `MASKED`: the
/// last panel, whose loads and stores keep to `masks` (masked-off lanes are never touched, so
/// they may lie past the end of `src` or `c`). Writes `rows` rows of `dst`, `ldc` apart.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn avx512_tile<const R: usize, const V: usize, const MASKED: bool>(
    a: &[f32],
    src: &[f32],
    offs: &[usize],
    j: usize,
    masks: &[u16; V],
    dst: *mut f32,
    ldc: usize,
    rows: usize,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    for (&o, ap) in offs.iter().zip(a.chunks_exact(R)) {
        let x = src.as_ptr().add(o + j);
        let xv: [__m512; V] = std::array::from_fn(|v| {
            if MASKED {
                _mm512_maskz_loadu_ps(masks[v], x.add(16 * v))
            } else {
                _mm512_loadu_ps(x.add(16 * v))
            }
        });
        for (row, &wt) in acc.iter_mut().zip(ap) {
            let b = _mm512_set1_ps(wt);
            for (s, &xv) in row.iter_mut().zip(&xv) {
                *s = _mm512_fmadd_ps(b, xv, *s);
            }
        }
    }
    for (r, row) in acc.iter().enumerate().take(rows) {
        for (v, &s) in row.iter().enumerate() {
            let d = dst.add(r * ldc + 16 * v);
            if MASKED {
                _mm512_mask_storeu_ps(d, masks[v], s);
            } else {
                _mm512_storeu_ps(d, s);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gemm_avx2(w: &PackedF32, src: &[f32], offs: &[usize], n: usize, c: &mut [f32]) {
    gemm_body::<16, true>(w, src, offs, n, c);
}

/// `a * b + acc`, fused where `FUSED` (only compiled with FMA: without it `mul_add` is a
/// library call).
#[inline(always)]
fn mac<const FUSED: bool>(a: f32, b: f32, acc: f32) -> f32 {
    if FUSED {
        a.mul_add(b, acc)
    } else {
        acc + a * b
    }
}

/// Panels of `W` columns outermost (see [`gemm_avx512_tiles`]); each tile's `MR x W` sums stay
/// in registers through all `k`. A last, short panel reads its runs through a zero-padded copy.
#[inline(always)]
fn gemm_body<const W: usize, const FUSED: bool>(w: &PackedF32, src: &[f32], offs: &[usize], n: usize, c: &mut [f32]) {
    assert_eq!(w.mr, MR, "weights packed for the AVX-512 kernel");
    for j in (0..n).step_by(W) {
        let width = (n - j).min(W);
        for (blk, a) in w.data.chunks_exact(w.k * MR).enumerate() {
            let mut acc = [[0f32; W]; MR];
            for (&o, ap) in offs.iter().zip(a.chunks_exact(MR)) {
                let mut short = [0f32; W];
                let x: &[f32; W] = match src.get(o + j..o + j + W) {
                    Some(run) => run.try_into().expect("panel"),
                    None => {
                        short[..width].copy_from_slice(&src[o + j..o + j + width]);
                        &short
                    }
                };
                for (row, &wt) in acc.iter_mut().zip(ap) {
                    for (s, &v) in row.iter_mut().zip(x) {
                        *s = mac::<FUSED>(wt, v, *s);
                    }
                }
            }
            let rows = (w.m - blk * MR).min(MR);
            for (r, row) in acc.iter().enumerate().take(rows) {
                c[(blk * MR + r) * n + j..][..width].copy_from_slice(&row[..width]);
            }
        }
    }
}

/// `y[r] = w[r] · x` for `w` `[m][k]` row-major (dense layers): sixteen independent partial
/// sums per row, so that the loop vectorizes (one float sum in order would not).
pub fn gemv(k: usize, w: &[f32], x: &[f32], y: &mut [f32], isa: FloatIsa) {
    assert!(w.len() >= y.len() * k && x.len() >= k, "matrix-vector operand sizes");
    match isa {
        // SAFETY: as in `gemm_runs`.
        #[cfg(target_arch = "x86_64")]
        FloatIsa::Avx512 => unsafe { gemv_avx512(k, w, x, y) },
        #[cfg(target_arch = "x86_64")]
        FloatIsa::Avx2Fma => unsafe { gemv_avx2(k, w, x, y) },
        _ => gemv_body::<false>(k, w, x, y),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn gemv_avx512(k: usize, w: &[f32], x: &[f32], y: &mut [f32]) {
    gemv_body::<true>(k, w, x, y);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gemv_avx2(k: usize, w: &[f32], x: &[f32], y: &mut [f32]) {
    gemv_body::<true>(k, w, x, y);
}

#[inline(always)]
fn gemv_body<const FUSED: bool>(k: usize, w: &[f32], x: &[f32], y: &mut [f32]) {
    const L: usize = 16;
    let x = &x[..k];
    for (row, out) in w.chunks_exact(k).zip(y.iter_mut()) {
        let mut acc = [0f32; L];
        for (wc, xc) in row.chunks_exact(L).zip(x.chunks_exact(L)) {
            for ((s, &a), &b) in acc.iter_mut().zip(wc).zip(xc) {
                *s = mac::<FUSED>(a, b, *s);
            }
        }
        let tail = k - k % L;
        let mut sum: f32 = acc.iter().sum();
        for (&a, &b) in row[tail..].iter().zip(&x[tail..]) {
            sum = mac::<FUSED>(a, b, sum);
        }
        *out = sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kernel this machine has against a plain f64 sum, over shapes that leave partial
    /// tiles (rows past a block of `MR`, columns past a panel), runs at arbitrary offsets, and
    /// every AVX-512 tile width.
    #[test]
    fn tile_widths_follow_the_columns() {
        let widths: Vec<usize> = [1, 15, 33, 63, 64, 100, 224, 784].iter().map(|&n| panel_vectors(n, 4)).collect();
        assert_eq!(widths, [1, 1, 3, 4, 4, 1, 2, 1]);
        let eight_rows: Vec<usize> = [1, 33, 63, 64, 224].iter().map(|&n| panel_vectors(n, 3)).collect();
        assert_eq!(eight_rows, [1, 3, 2, 2, 2]);
    }

    #[test]
    fn kernels_match_a_plain_sum() {
        let isas: Vec<FloatIsa> = [FloatIsa::Portable, FloatIsa::Avx2Fma, FloatIsa::Avx512]
            .into_iter()
            .filter(|&i| i <= FloatIsa::for_isa(Isa::best()))
            .collect();
        let val = |i: usize| ((i * 7919 % 113) as f32 - 56.0) / 16.0;
        for &(m, k, n) in
            &[(1, 1, 1), (6, 25, 784), (7, 9, 33), (13, 150, 100), (16, 3, 47), (5, 30, 64), (9, 20, 224), (8, 12, 224)]
        {
            let w: Vec<f32> = (0..m * k).map(|i| val(i + 3)).collect();
            let offs: Vec<usize> = (0..k).map(|p| (p * 37) % 101).collect();
            // Exactly as long as the runs: the last panel must not read past it.
            let src: Vec<f32> = (0..offs.iter().max().unwrap() + n).map(val).collect();
            let want: Vec<f64> = (0..m * n)
                .map(|i| (0..k).map(|p| f64::from(w[i / n * k + p]) * f64::from(src[offs[p] + i % n])).sum())
                .collect();
            for &isa in &isas {
                let packed = PackedF32::new(m, k, &w, isa);
                let mut c = vec![f32::NAN; m * n];
                gemm_runs(&packed, &src, &offs, n, &mut c, isa);
                for (i, (&got, &want)) in c.iter().zip(&want).enumerate() {
                    assert!((f64::from(got) - want).abs() < 1e-3, "{isa:?} {m}x{k}x{n} [{i}]: {got} vs {want}");
                }
                let mut y = vec![f32::NAN; m];
                gemv(k, &w, &src, &mut y, isa);
                for r in 0..m {
                    let want: f64 = (0..k).map(|p| f64::from(w[r * k + p]) * f64::from(src[p])).sum();
                    assert!((f64::from(y[r]) - want).abs() < 1e-3, "{isa:?} gemv {m}x{k} [{r}]");
                }
            }
        }
    }
}
