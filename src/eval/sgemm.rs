//! The float engine's convolution and dense kernels: f32 multiply-adds (fused on AVX2 with FMA
//! and on AVX-512) over weights packed once per engine and over the runs of an input's stride
//! phases ([`Phases`](super::kernels::Phases)): no im2col and no per-image repacking, which a
//! general GEMM library does on every call (for one image's small layers most of its time).
//! Two shapes of tile: column panels ([`gemm_runs`]: rows of channels by 16 to 64 columns,
//! each weight broadcast) and, on AVX-512 where they compute fewer products, pixel tiles
//! ([`gemm_pixels`]: 16 or 32 channels in vectors by 4 to 9 pixels, each input broadcast).
//!
//! The float path is a reference to within float rounding, not bit-true: the order of the sums
//! (and fused or separate rounding of each product) may differ between instruction sets.

use super::kernels::Isa;
use crate::model::Activation;

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
    /// Rows per block of `m` rows on `isa`: [`MR_WIDE`] on AVX-512 where that pads fewer.
    fn block_rows(m: usize, isa: FloatIsa) -> usize {
        let wide = isa == FloatIsa::Avx512 && m.div_ceil(MR_WIDE) * MR_WIDE < m.div_ceil(MR) * MR;
        if wide {
            MR_WIDE
        } else {
            MR
        }
    }

    /// `w` `[m][k]` packed for `isa`'s kernels.
    pub fn new(m: usize, k: usize, w: &[f32], isa: FloatIsa) -> Self {
        assert!(w.len() >= m * k, "weight matrix smaller than {m} x {k}");
        let mr = Self::block_rows(m, isa);
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

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn gemm_avx512(w: &PackedF32, src: &[f32], offs: &[usize], n: usize, c: &mut [f32]) {
    // Eight rows take at most three vectors each: 24 accumulators, as six rows of four.
    if w.mr == MR_WIDE {
        gemm_avx512_rows::<MR_WIDE, 3>(w, src, offs, n, c);
    } else {
        gemm_avx512_rows::<MR, 4>(w, src, offs, n, c);
    }
}

/// Tiles of the widest `R x 16 V` while whole ones fit (each loaded vector serves `R` rows,
/// each broadcast weight `V` vectors), then one panel of just enough vectors for the columns
/// left: no wider than the columns need, so a map pads at most 15 columns.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn gemm_avx512_rows<const R: usize, const V: usize>(
    w: &PackedF32,
    src: &[f32],
    offs: &[usize],
    n: usize,
    c: &mut [f32],
) {
    let whole = n - n % (16 * V);
    gemm_avx512_tiles::<R, V>(w, src, offs, 0..whole, n, c);
    match (n - whole).div_ceil(16) {
        0 => {}
        1 => gemm_avx512_tiles::<R, 1>(w, src, offs, whole..n, n, c),
        2 => gemm_avx512_tiles::<R, 2>(w, src, offs, whole..n, n, c),
        _ => gemm_avx512_tiles::<R, 3>(w, src, offs, whole..n, n, c),
    }
}

/// Panels of `16 V` of the columns `cols` (of `n`), outermost: a panel's runs stay in cache
/// while every block of `R` weight rows passes over them.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn gemm_avx512_tiles<const R: usize, const V: usize>(
    w: &PackedF32,
    src: &[f32],
    offs: &[usize],
    cols: std::ops::Range<usize>,
    n: usize,
    c: &mut [f32],
) {
    let panel = 16 * V;
    for j in cols.clone().step_by(panel) {
        let width = (cols.end - j).min(panel);
        // Lanes `l` of vector `v` with `16 v + l < width`: all of them but in a short panel.
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

/// A weight matrix `[m][k]` packed for pixel tiles ([`gemm_pixels`]): output channels in
/// blocks of `16 v`, within a block for each column `p` the block's weights side by side (zero
/// past `m`): one vector load per `16` channels and column.
pub struct PixelTiles {
    m: usize,
    k: usize,
    /// Vectors of 16 channels per block (1 or 2).
    v: usize,
    /// Pixels per tile.
    r: usize,
    /// The columns each tile reads (the others read only padding for all its pixels).
    spans: Vec<std::ops::Range<usize>>,
    data: Vec<f32>,
}

/// Pixels per pixel tile the kernels are compiled for.
const PIXEL_ROWS: [usize; 5] = [4, 6, 7, 8, 9];

impl PixelTiles {
    /// `w` `[m][k]` packed for a map of `pixels` outputs, where pixel tiles compute at least a
    /// tenth fewer products than the column panels of [`gemm_runs`] over `cols` virtual columns:
    /// their channels pad to 16 and their pixels to a tile of 4 to 9, and a tile skips the
    /// columns that read only padding for all its pixels (`span(pixels)`: the columns a run of
    /// pixels reads), where panels pad channels to a block of rows but columns to 16 (a 7x7
    /// map: 49 pixels, 63 virtual columns in 64) and read every column. The tile height is the
    /// one of fewest products, then the tallest. None where tiles do not pay, or where a
    /// reduction of fewer than 8 products leaves the transposition of their sums
    /// (`[pixel][channel]`) too large a share (from 8 on, measured: a 3x3 stem conv on one
    /// input channel gains, mostly from reading its strided input undealt).
    pub fn new(
        m: usize,
        k: usize,
        w: &[f32],
        pixels: usize,
        cols: usize,
        isa: FloatIsa,
        span: impl Fn(std::ops::Range<usize>) -> std::ops::Range<usize>,
    ) -> Option<Self> {
        if isa != FloatIsa::Avx512 || k < 8 || pixels == 0 {
            return None;
        }
        let v = if m > 16 { 2 } else { 1 };
        let pad = |n: usize, to: usize| n.div_ceil(to) * to;
        // Each tile height with its tiles' spans and the products they take.
        let (r, spans, products) = PIXEL_ROWS
            .iter()
            .rev()
            .map(|&r| {
                let spans: Vec<_> = (0..pixels).step_by(r).map(|q| span(q..(q + r).min(pixels))).collect();
                let products = spans.iter().map(|s| r * s.len()).sum::<usize>();
                (r, spans, products)
            })
            .min_by_key(|&(_, _, products)| products)
            .expect("tile heights");
        let mr = PackedF32::block_rows(m, isa);
        let (tiles, panels) = (pad(m, 16 * v) * products, pad(m, mr) * pad(cols, 16) * k);
        (tiles * 10 <= panels * 9).then(|| Self::packed(m, k, w, v, r, spans))
    }

    /// `w` `[m][k]` packed for tiles of `r` pixels by `16 v` channels, reading `spans`.
    fn packed(m: usize, k: usize, w: &[f32], v: usize, r: usize, spans: Vec<std::ops::Range<usize>>) -> Self {
        assert!(w.len() >= m * k, "weight matrix smaller than {m} x {k}");
        assert!(spans.iter().all(|s| s.end <= k), "spans within the columns");
        let block = 16 * v;
        let mut data = vec![0.0; m.div_ceil(block) * block * k];
        for ch in 0..m {
            for p in 0..k {
                data[((ch / block) * k + p) * block + ch % block] = w[ch * k + p];
            }
        }
        PixelTiles { m, k, v, r, spans, data }
    }

    /// Rows of the scratch a block of channels takes in [`gemm_pixels`]: every pixel of whole
    /// tiles, and of whole 16-pixel transposition blocks.
    fn scratch_rows(&self, pixels: usize) -> usize {
        (pixels.div_ceil(self.r) * self.r).max(pixels.div_ceil(16) * 16)
    }
}

/// What [`gemm_pixels`] applies to each sum, after adding its channel's bias, as it stores it:
/// the layer's activation, with [`activate`](super::float::activate)'s NaN rules (ReLU maps NaN
/// to 0, a clip passes it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Epilogue {
    Linear,
    Relu,
    Clip(f32, f32),
}

impl Epilogue {
    /// The layer's activation as an epilogue.
    pub fn of(act: Activation) -> Self {
        match act {
            Activation::None => Epilogue::Linear,
            Activation::Relu => Epilogue::Relu,
            Activation::Clip { min, max } => Epilogue::Clip(min as f32, max as f32),
        }
    }

    /// The activation of sixteen biased sums.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn apply_avx512(self, x: std::arch::x86_64::__m512) -> std::arch::x86_64::__m512 {
        use std::arch::x86_64::*;
        // `max(x, lo)` takes `lo` where x is NaN, `max(lo, x)` takes x.
        match self {
            Epilogue::Linear => x,
            Epilogue::Relu => _mm512_max_ps(x, _mm512_setzero_ps()),
            Epilogue::Clip(lo, hi) => _mm512_min_ps(_mm512_set1_ps(hi), _mm512_max_ps(_mm512_set1_ps(lo), x)),
        }
    }
}

/// `c[ch][q] = act(bias[ch] + sum_p w[ch][p] * src[offs[p] + cols[q]])` for every pixel `q`
/// (`cols[q]`: its virtual column), `act` the [`Epilogue`]: tiles of `r` pixels by `16 v`
/// channels, each loaded weight vector serving `r` pixels and each broadcast input `v` vectors.
/// Each block of channels' sums (`[pixel][channel]`) pass through `tmp` and are transposed into
/// `c`'s `[channel][pixel]` in 16x16 blocks, biased and activated on the way.
#[allow(clippy::too_many_arguments)]
pub fn gemm_pixels(
    w: &PixelTiles,
    src: &[f32],
    offs: &[usize],
    cols: &[usize],
    bias: &[f32],
    act: Epilogue,
    c: &mut [f32],
    tmp: &mut Vec<f32>,
) {
    assert_eq!(offs.len(), w.k, "one run per weight column");
    assert_eq!(bias.len(), w.m, "a bias per channel");
    assert_eq!(w.spans.len(), cols.len().div_ceil(w.r), "a span per tile");
    let reach = offs.iter().max().map_or(0, |&o| o + cols.iter().max().map_or(0, |&q| q + 1));
    assert!(src.len() >= reach && c.len() >= w.m * cols.len() && !cols.is_empty(), "GEMM operand sizes");
    let tmp = super::kernels::scratch_prefix(tmp, w.scratch_rows(cols.len()) * 16 * w.v);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `PixelTiles::new` packs only for `FloatIsa::Avx512`, which `FloatIsa::for_isa`
    // chose only where the machine has it; every read is below `reach` (checked; a last, short
    // tile repeats the last pixel) or inside `tmp` (sized above), every write inside `tmp` or
    // under a mask within `c`'s first `m` rows (checked).
    unsafe {
        match (w.v, w.r) {
            (1, 4) => gemm_pixels_avx512::<4, 1>(w, src, offs, cols, bias, act, c, tmp),
            (1, 6) => gemm_pixels_avx512::<6, 1>(w, src, offs, cols, bias, act, c, tmp),
            (1, 7) => gemm_pixels_avx512::<7, 1>(w, src, offs, cols, bias, act, c, tmp),
            (1, 8) => gemm_pixels_avx512::<8, 1>(w, src, offs, cols, bias, act, c, tmp),
            (1, _) => gemm_pixels_avx512::<9, 1>(w, src, offs, cols, bias, act, c, tmp),
            (_, 4) => gemm_pixels_avx512::<4, 2>(w, src, offs, cols, bias, act, c, tmp),
            (_, 6) => gemm_pixels_avx512::<6, 2>(w, src, offs, cols, bias, act, c, tmp),
            (_, 7) => gemm_pixels_avx512::<7, 2>(w, src, offs, cols, bias, act, c, tmp),
            (_, 8) => gemm_pixels_avx512::<8, 2>(w, src, offs, cols, bias, act, c, tmp),
            (_, _) => gemm_pixels_avx512::<9, 2>(w, src, offs, cols, bias, act, c, tmp),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("pixel tiles are packed only for AVX-512");
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_pixels_avx512<const R: usize, const V: usize>(
    w: &PixelTiles,
    src: &[f32],
    offs: &[usize],
    cols: &[usize],
    bias: &[f32],
    act: Epilogue,
    c: &mut [f32],
    tmp: &mut [f32],
) {
    use std::arch::x86_64::*;
    let (block, n) = (16 * V, cols.len());
    for (blk, a) in w.data.chunks_exact(w.k * block).enumerate() {
        let out = tmp.as_mut_ptr();
        for (q0, span) in (0..n).step_by(R).zip(&w.spans) {
            // The tile's pixels; a last, short tile repeats the last one.
            let xs: [*const f32; R] = std::array::from_fn(|i| src.as_ptr().add(cols[(q0 + i).min(n - 1)]));
            let mut acc = [[_mm512_setzero_ps(); V]; R];
            for (&o, ap) in offs[span.clone()].iter().zip(a[span.start * block..].chunks_exact(block)) {
                let wv: [__m512; V] = std::array::from_fn(|v| _mm512_loadu_ps(ap.as_ptr().add(16 * v)));
                for (row, x) in acc.iter_mut().zip(&xs) {
                    let b = _mm512_set1_ps(*x.add(o));
                    for (s, &wv) in row.iter_mut().zip(&wv) {
                        *s = _mm512_fmadd_ps(wv, b, *s);
                    }
                }
            }
            for (i, row) in acc.iter().enumerate() {
                for (v, &s) in row.iter().enumerate() {
                    _mm512_storeu_ps(out.add((q0 + i) * block + 16 * v), s);
                }
            }
        }
        // Channels `blk * block + 16 v + j` of pixels `q0 ..`: rows of `c`, 16 pixels at a time.
        for q0 in (0..n).step_by(16) {
            let mask = ((1u32 << (n - q0).min(16)) - 1) as u16;
            for v in 0..V {
                let t = transpose16(std::array::from_fn(|i| _mm512_loadu_ps(out.add((q0 + i) * block + 16 * v))));
                for (j, &row) in t.iter().enumerate() {
                    let ch = blk * block + 16 * v + j;
                    if ch < w.m {
                        let y = act.apply_avx512(_mm512_add_ps(row, _mm512_set1_ps(bias[ch])));
                        _mm512_mask_storeu_ps(c.as_mut_ptr().add(ch * n + q0), mask, y);
                    }
                }
            }
        }
    }
}

/// The transpose of a 16x16 block held as 16 row vectors: 32-bit then 64-bit interleaves
/// within 128-bit lanes, then two rounds of lane shuffles.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn transpose16(r: [std::arch::x86_64::__m512; 16]) -> [std::arch::x86_64::__m512; 16] {
    use std::arch::x86_64::*;
    // Lane `l` of t[2i]: rows 2i, 2i + 1 of columns 4l, 4l + 1; of t[2i + 1]: of 4l + 2, 4l + 3.
    let t: [__m512; 16] = std::array::from_fn(|i| {
        let (a, b) = (r[i & !1], r[i | 1]);
        if i % 2 == 0 {
            _mm512_unpacklo_ps(a, b)
        } else {
            _mm512_unpackhi_ps(a, b)
        }
    });
    // Lane `l` of u[4i + j]: rows 4i .. 4i + 3 of column 4l + j.
    let u: [__m512; 16] = std::array::from_fn(|x| {
        let (i, j) = (x / 4, x % 4);
        let (a, b) = (_mm512_castps_pd(t[4 * i + j / 2]), _mm512_castps_pd(t[4 * i + 2 + j / 2]));
        _mm512_castpd_ps(if j % 2 == 0 { _mm512_unpacklo_pd(a, b) } else { _mm512_unpackhi_pd(a, b) })
    });
    // v[j] (j < 4): columns j, j + 8 of rows 0 .. 7; v[4 + j]: columns 4 + j, 12 + j; v[8 ..]: rows 8 .. 15.
    let v: [__m512; 16] = std::array::from_fn(|x| {
        let (half, j) = (x / 8, x % 8);
        let (a, b) = (u[8 * half + j % 4], u[8 * half + 4 + j % 4]);
        if j < 4 {
            _mm512_shuffle_f32x4::<0x88>(a, b)
        } else {
            _mm512_shuffle_f32x4::<0xdd>(a, b)
        }
    });
    // Column k: lanes of v holding rows 0 .. 15 of it.
    std::array::from_fn(|k| {
        let (j, hi) = (k % 8, k >= 8);
        let (a, b) = (v[j], v[8 + j]);
        if hi {
            _mm512_shuffle_f32x4::<0xdd>(a, b)
        } else {
            _mm512_shuffle_f32x4::<0x88>(a, b)
        }
    })
}

/// `y[r] = w[r] · x` for `w` `[m][k]` row-major (dense layers): sixteen independent partial
/// sums per row, so that the loop vectorizes (one float sum in order would not).
pub fn gemv(k: usize, w: &[f32], x: &[f32], y: &mut [f32], isa: FloatIsa) {
    let m = y.len();
    gemv_images(k, m, w, &x[..k], y, isa);
}

/// `y[b][r] = w[r] · x[b]` for several images at once: `x` holds the images' inputs (`k` each),
/// `y` their sums (`m` each). On AVX-512 each weight vector loaded serves up to four images,
/// and every sum is added in the same order whatever the batch (an image's outputs do not
/// depend on the images beside it); elsewhere image after image.
pub fn gemv_images(k: usize, m: usize, w: &[f32], x: &[f32], y: &mut [f32], isa: FloatIsa) {
    let images = x.len() / k.max(1);
    assert!(w.len() >= m * k && x.len() == images * k && y.len() == images * m, "matrix-vector operand sizes");
    match isa {
        // SAFETY: as in `gemm_runs`; the operand sizes are checked above.
        #[cfg(target_arch = "x86_64")]
        FloatIsa::Avx512 if k > 0 => unsafe { gemv_avx512(k, m, w, x, y) },
        _ => {
            for (x, y) in x.chunks_exact(k.max(1)).zip(y.chunks_exact_mut(m)) {
                match isa {
                    // SAFETY: as in `gemm_runs`.
                    #[cfg(target_arch = "x86_64")]
                    FloatIsa::Avx2Fma => unsafe { gemv_avx2(k, w, x, y) },
                    _ => gemv_body::<false>(k, w, x, y),
                }
            }
        }
    }
}

/// Blocks of rows by images: one image alone in blocks of four rows (then two, one), several in
/// blocks of two rows by four images (then two, one). Each loaded input vector serves every row
/// of a block and each loaded weight vector every image; each (row, image) has two vectors of
/// partial sums (independent chains; a single one waited on its own adds). The same blocks in
/// plain code compiled to a loop of bounds checks and spills, slower than one row at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn gemv_avx512(k: usize, m: usize, w: &[f32], x: &[f32], y: &mut [f32]) {
    let images = y.len() / m;
    let mut r = 0;
    while r < m {
        let left = m - r;
        if images == 1 {
            r += match left {
                4.. => gemv_block::<4, 1>(k, m, r, w, x, 0, y).0,
                2 | 3 => gemv_block::<2, 1>(k, m, r, w, x, 0, y).0,
                _ => gemv_block::<1, 1>(k, m, r, w, x, 0, y).0,
            };
            continue;
        }
        let rows = left.min(2);
        let mut b = 0;
        // A block of rows stays in L1 while every image passes it.
        while b < images {
            b += match (rows, images - b) {
                (2, 4..) => gemv_block::<2, 4>(k, m, r, w, x, b, y).1,
                (2, 2 | 3) => gemv_block::<2, 2>(k, m, r, w, x, b, y).1,
                (2, _) => gemv_block::<2, 1>(k, m, r, w, x, b, y).1,
                (_, 4..) => gemv_block::<1, 4>(k, m, r, w, x, b, y).1,
                (_, 2 | 3) => gemv_block::<1, 2>(k, m, r, w, x, b, y).1,
                _ => gemv_block::<1, 1>(k, m, r, w, x, b, y).1,
            };
        }
        r += rows;
    }
}

/// Rows `r0..r0 + R` of images `b0..b0 + I`, in 32-column steps, a last partial step under
/// masks; each (row, image)'s two partial-sum vectors added, then their lanes by [`lane_sums`]
/// (the same order for every block shape). Returns the block's rows and images.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
#[inline]
unsafe fn gemv_block<const R: usize, const I: usize>(
    k: usize,
    m: usize,
    r0: usize,
    w: &[f32],
    x: &[f32],
    b0: usize,
    y: &mut [f32],
) -> (usize, usize) {
    use std::arch::x86_64::*;
    assert!(w.len() >= (r0 + R) * k && x.len() >= (b0 + I) * k && y.len() >= (b0 + I - 1) * m + r0 + R, "sizes");
    let (w, x) = (w.as_ptr().add(r0 * k), x.as_ptr().add(b0 * k));
    let mut acc = [[[_mm512_setzero_ps(); 2]; R]; I];
    let mut step = |j: usize, masks: [u16; 2]| {
        let wv: [[__m512; 2]; R] = std::array::from_fn(|r| {
            std::array::from_fn(|v| _mm512_maskz_loadu_ps(masks[v], w.add(r * k + j + 16 * v)))
        });
        for (b, acc) in acc.iter_mut().enumerate() {
            for v in 0..2 {
                let xv = _mm512_maskz_loadu_ps(masks[v], x.add(b * k + j + 16 * v));
                for (a, wv) in acc.iter_mut().zip(&wv) {
                    a[v] = _mm512_fmadd_ps(wv[v], xv, a[v]);
                }
            }
        }
    };
    let whole = k - k % 32;
    for j in (0..whole).step_by(32) {
        step(j, [u16::MAX; 2]);
    }
    if whole < k {
        let live = |v: usize| ((1u32 << (k - whole).saturating_sub(16 * v).min(16)) - 1) as u16;
        step(whole, [live(0), live(1)]);
    }
    let mut all = [_mm512_setzero_ps(); 16];
    for (b, acc) in acc.iter().enumerate() {
        for (r, a) in acc.iter().enumerate() {
            all[b * R + r] = _mm512_add_ps(a[0], a[1]);
        }
    }
    let mut sums = [0f32; 16];
    _mm512_storeu_ps(sums.as_mut_ptr(), lane_sums(all));
    for b in 0..I {
        y[(b0 + b) * m + r0..][..R].copy_from_slice(&sums[b * R..(b + 1) * R]);
    }
    (R, I)
}

/// Lane `j` of the result is the sum of `v[j]`'s sixteen lanes, in an order that involves no
/// other vector: pairs of vectors interleaved and added (32-bit, then 64-bit halves), then the
/// four 128-bit blocks; 45 instructions where sixteen separate reductions take about 150.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn lane_sums(v: [std::arch::x86_64::__m512; 16]) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let pairs: [__m512; 8] = std::array::from_fn(|j| {
        let (a, b) = (v[2 * j], v[2 * j + 1]);
        _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b))
    });
    let quads: [__m512; 4] = std::array::from_fn(|j| {
        let (a, b) = (_mm512_castps_pd(pairs[2 * j]), _mm512_castps_pd(pairs[2 * j + 1]));
        _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)))
    });
    let blocks = |a, b| _mm512_add_ps(_mm512_shuffle_f32x4::<0x88>(a, b), _mm512_shuffle_f32x4::<0xDD>(a, b));
    blocks(blocks(quads[0], quads[1]), blocks(quads[2], quads[3]))
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

    /// Pixel tiles of every height and width against a plain f64 sum over each tile's span of
    /// columns, biased and activated by each epilogue in turn, over channel counts that leave
    /// partial blocks (and pixels short of a tile and of a 16-pixel transposition block),
    /// virtual columns with gaps between rows, and runs at arbitrary offsets.
    #[test]
    fn pixel_tiles_match_a_plain_sum() {
        if FloatIsa::for_isa(Isa::best()) != FloatIsa::Avx512 {
            return;
        }
        let val = |i: usize| ((i * 7919 % 113) as f32 - 56.0) / 16.0;
        let acts = [Epilogue::Linear, Epilogue::Relu, Epilogue::Clip(-3.0, 5.5)];
        for &(m, k, out_w, out_h) in
            &[(5, 32, 3, 3), (16, 40, 4, 4), (20, 33, 7, 7), (33, 64, 7, 3), (64, 36, 14, 14), (40, 300, 4, 4)]
        {
            let w: Vec<f32> = (0..m * k).map(|i| val(i + 3)).collect();
            let bias: Vec<f32> = (0..m).map(|i| val(i * 5 + 1)).collect();
            let cols: Vec<usize> = (0..out_w * out_h).map(|q| q / out_w * (out_w + 2) + q % out_w).collect();
            let offs: Vec<usize> = (0..k).map(|p| (p * 37) % 101).collect();
            let src: Vec<f32> = (0..offs.iter().max().unwrap() + cols.last().unwrap() + 1).map(val).collect();
            let n = cols.len();
            for v in [1, 2] {
                for (i, r) in PIXEL_ROWS.into_iter().enumerate() {
                    let act = acts[(i + v) % acts.len()];
                    // Tiles that skip a third of the columns at either end, at both (reading
                    // none), or none.
                    let spans: Vec<_> = (0..n.div_ceil(r)).map(|t| t % 3 * k / 3..k - t % 2 * k / 3).collect();
                    let want: Vec<f64> = (0..m * n)
                        .map(|i| {
                            let (ch, q) = (i / n, i % n);
                            let sum = spans[q / r]
                                .clone()
                                .map(|p| f64::from(w[ch * k + p]) * f64::from(src[offs[p] + cols[q]]));
                            let x = f64::from(bias[ch]) + sum.sum::<f64>();
                            match act {
                                Epilogue::Linear => x,
                                Epilogue::Relu => x.max(0.0),
                                Epilogue::Clip(lo, hi) => x.clamp(lo.into(), hi.into()),
                            }
                        })
                        .collect();
                    let tiles = PixelTiles::packed(m, k, &w, v, r, spans);
                    let (mut c, mut tmp) = (vec![f32::NAN; m * n + 7], vec![f32::NAN; 3]);
                    gemm_pixels(&tiles, &src, &offs, &cols, &bias, act, &mut c, &mut tmp);
                    for (i, (&got, &want)) in c.iter().zip(&want).enumerate() {
                        assert!(
                            (f64::from(got) - want).abs() < 1e-3,
                            "{m}x{k}x{n}, v {v}, r {r}, {act:?} [{i}]: {got} vs {want}"
                        );
                    }
                    assert!(c[m * n..].iter().all(|x| x.is_nan()), "wrote past the sums");
                }
            }
        }
    }

    /// Every kernel this machine has against a plain f64 sum, over shapes that leave partial
    /// tiles (rows past a block of `MR`, columns past a panel), runs at arbitrary offsets, and
    /// every AVX-512 tile width (a last panel of one to three vectors, whole or masked).
    #[test]
    fn kernels_match_a_plain_sum() {
        let isas: Vec<FloatIsa> = [FloatIsa::Portable, FloatIsa::Avx2Fma, FloatIsa::Avx512]
            .into_iter()
            .filter(|&i| i <= FloatIsa::for_isa(Isa::best()))
            .collect();
        let val = |i: usize| ((i * 7919 % 113) as f32 - 56.0) / 16.0;
        for &(m, k, n) in &[
            (1, 1, 1),
            (6, 25, 784),
            (7, 9, 33),
            (13, 150, 100),
            (16, 3, 47),
            (5, 30, 64),
            (9, 20, 224),
            (8, 12, 224),
            (8, 5, 80),
            (6, 7, 112),
            (24, 4, 95),
        ] {
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

    /// Several images at once: every image's sums equal its sums alone, bit for bit (an image's
    /// outputs must not depend on the batch it is in), and a plain f64 sum; rows (blocks of four,
    /// two and one alone; two and one in a batch) times images 1 to 9 (blocks of four, two,
    /// one), rows short of a 16-lane vector, of a 32-column step, exactly one, and longer.
    #[test]
    fn gemv_images_equal_each_image_alone() {
        let isas: Vec<FloatIsa> = [FloatIsa::Portable, FloatIsa::Avx2Fma, FloatIsa::Avx512]
            .into_iter()
            .filter(|&i| i <= FloatIsa::for_isa(Isa::best()))
            .collect();
        let val = |i: usize| ((i * 7919 % 113) as f32 - 56.0) / 16.0;
        for k in [1, 5, 16, 31, 32, 33, 100, 400] {
            for m in [1, 2, 3, 5, 7, 10] {
                let w: Vec<f32> = (0..m * k).map(|i| val(i + 3)).collect();
                for images in 1..=9 {
                    let x: Vec<f32> = (0..images * k).map(|i| val(i * 3 + 1)).collect();
                    for &isa in &isas {
                        let mut y = vec![f32::NAN; images * m];
                        gemv_images(k, m, &w, &x, &mut y, isa);
                        for (b, ys) in y.chunks_exact(m).enumerate() {
                            let mut alone = vec![f32::NAN; m];
                            gemv(k, &w, &x[b * k..(b + 1) * k], &mut alone, isa);
                            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                            assert_eq!(bits(ys), bits(&alone), "{isa:?} {m}x{k}, image {b} of {images}");
                            for (r, &got) in ys.iter().enumerate() {
                                let want: f64 = (0..k).map(|p| f64::from(w[r * k + p]) * f64::from(x[b * k + p])).sum();
                                assert!((f64::from(got) - want).abs() < 1e-3, "{isa:?} {m}x{k} image {b} row {r}");
                            }
                        }
                    }
                }
            }
        }
    }
}
