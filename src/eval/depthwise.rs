//! The masked-tap depthwise kernel: a depthwise convolution of any window on AVX-512, read
//! straight from the unpadded input through masked loads.
//!
//! A block is sixteen lanes of one vector. Lane `j` of a block stands for a position whose input
//! under kernel tap `(ky, kx)` lies at `base + j + dy * w + dx` (`dy = ky * dh - top`,
//! `dx = kx * dw - left`, `w` the input's width): consecutive for every tap. The inputs a tap
//! reads in the padding (or in the wrong row, where a block crosses a row end) are exactly the
//! lanes outside the image, which a masked load leaves zero without touching memory. So there
//! is no padded copy and no stride phase to lay out (the general [`super::kernels::depthwise`]
//! spends as long laying out its phases as summing), and the sums come out dense: no virtual
//! columns to skip when requantizing. Two ways to cover the output:
//!
//! - **Flat** (stride 1, output rows as wide as the input's): lane `j` of block `b` is output
//!   pixel `16 b + j`, reading input pixel `16 b + j + dy * w + dx` across row ends; every lane
//!   is an output.
//! - **Rows** (any other): each output row `oy` is covered by blocks of input columns `c`
//!   (`0 <= c < sw * out_w`) on input row `sh * oy`; the lanes with `c = sw * ox` are the row's
//!   outputs, compressed together (`vpcompressd`) before the store. A stride-2 conv sums twice
//!   the columns it keeps, still cheaper than dealing its input into phases.
//!
//! The masks depend on the geometry alone and are computed once per layer.

use super::kernels::{scratch_prefix, ConvGeom, Isa, SumLayout};

/// Lanes per block: one AVX-512 vector of f32 or i32 lanes.
const LANES: usize = 16;

/// A layer's taps as the masked kernel reads them (see the module docs).
#[derive(Debug, Clone)]
pub struct MaskedTaps {
    /// Input offset of each tap relative to a lane's position: `dy * w + dx`.
    offsets: Vec<isize>,
    /// Each block's place: where its lane 0 lies in the input channel, where its first output
    /// goes in the output channel, and which lanes are outputs (all, or the row's `c = sw * ox`).
    blocks: Vec<Block>,
    /// `[block][tap]`: the lanes whose input under the tap lies inside the image.
    masks: Vec<u16>,
    /// Output pixels of a channel.
    pixels: usize,
    /// Input pixels of a channel.
    plane: usize,
    /// Output channels per input channel.
    mult: usize,
}

#[derive(Debug, Clone, Copy)]
struct Block {
    src: usize,
    dst: usize,
    keep: u16,
}

impl MaskedTaps {
    /// The masked form of `g` where it applies: a depthwise convolution on a machine that runs
    /// AVX-512 (`isa`).
    pub fn new(g: &ConvGeom, isa: Isa) -> Option<Self> {
        let win = g.window;
        if isa != Isa::Avx512Vnni || !g.is_depthwise() || g.pixels() == 0 {
            return None;
        }
        let ([kh, kw], [sh, sw], [dh, dw], [top, left, ..]) = (win.kernel, win.stride, win.dilation, win.pads);
        let taps: Vec<(isize, isize)> = (0..kh * kw)
            .map(|t| ((t / kw * dh) as isize - top as isize, (t % kw * dw) as isize - left as isize))
            .collect();
        let (h, w) = (g.in_h as isize, g.in_w as isize);
        // Each block's lanes as (input row, input column) of lane 0's tap-free position, and
        // whether a lane is an output.
        let mut blocks = Vec::new();
        let mut lanes: Vec<[Option<(isize, isize)>; LANES]> = Vec::new();
        if win.stride == [1, 1] && g.out_w == g.in_w {
            for b in 0..g.pixels().div_ceil(LANES) {
                let keep = (0..LANES).filter(|j| b * LANES + j < g.pixels()).fold(0u16, |m, j| m | 1 << j);
                blocks.push(Block { src: b * LANES, dst: b * LANES, keep: u16::MAX });
                lanes.push(std::array::from_fn(|j| {
                    let p = b * LANES + j;
                    (keep >> j & 1 == 1).then(|| ((p / g.out_w) as isize, (p % g.out_w) as isize))
                }));
            }
        } else {
            let cols = sw * g.out_w;
            for oy in 0..g.out_h {
                let mut dst = oy * g.out_w;
                for c0 in (0..cols).step_by(LANES) {
                    let used = |j: usize| c0 + j < cols;
                    let keep = (0..LANES).filter(|&j| used(j) && (c0 + j) % sw == 0).fold(0u16, |m, j| m | 1 << j);
                    blocks.push(Block { src: sh * oy * g.in_w + c0, dst, keep });
                    dst += keep.count_ones() as usize;
                    lanes.push(std::array::from_fn(|j| used(j).then(|| ((sh * oy) as isize, (c0 + j) as isize))));
                }
            }
        }
        let mut masks = Vec::with_capacity(blocks.len() * taps.len());
        for lane in &lanes {
            for &(dy, dx) in &taps {
                let inside =
                    |j: usize| lane[j].is_some_and(|(y, x)| (0..h).contains(&(y + dy)) && (0..w).contains(&(x + dx)));
                masks.push((0..LANES).filter(|&j| inside(j)).fold(0u16, |m, j| m | 1 << j));
            }
        }
        let offsets = taps.iter().map(|&(dy, dx)| dy * w + dx).collect();
        Some(MaskedTaps {
            offsets,
            blocks,
            masks,
            pixels: g.pixels(),
            plane: g.in_h * g.in_w,
            mult: g.out_c / g.groups,
        })
    }

    /// The sums of one image (`input`: `[in_c][in_h][in_w]`; `weight`: `[out_c][taps]`), dense
    /// `[out_c][pixels]` in the first `out_c * pixels` elements of `out` (see
    /// [`scratch_prefix`]), in `L`'s arithmetic (exact for the integer engine's codes within
    /// the bounds it checked).
    pub fn run<L: MaskedLane>(&self, input: &[L], weight: &[L::Weight], out: &mut Vec<L::Sum>) -> SumLayout {
        let taps = self.offsets.len();
        let out_c = weight.len() / taps;
        assert!(input.len() >= out_c / self.mult * self.plane, "a depthwise input shorter than its channels");
        // Whole vectors are stored: a block's stray lanes land on outputs a later block of the
        // channel (or the next channel) writes after, or in this slack.
        let sums = scratch_prefix(out, out_c * self.pixels + LANES);
        // SAFETY: `MaskedTaps` exists only where the machine has AVX-512 (`Isa::Avx512Vnni`);
        // every unmasked lane reads an input pixel of its channel (the masks admit only pixels
        // inside the image) and every store lies within `sums`.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            L::sweep(self, input, weight, sums);
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("masked taps exist only on AVX-512 machines: {}", sums.len());
        SumLayout::dense(self.pixels)
    }
}

/// An input lane type of the masked kernel: f32 (the float engine) or i16 (the integer
/// engine's codes, summed in i32).
pub trait MaskedLane: Copy + Default {
    /// The weights as the kernel broadcasts them.
    type Weight: Copy;
    /// The sums' type.
    type Sum: Copy + Default;
    /// # Safety
    /// The machine has AVX-512 and `sums` holds `out_c * pixels + 16` elements.
    #[cfg(target_arch = "x86_64")]
    unsafe fn sweep(t: &MaskedTaps, input: &[Self], weight: &[Self::Weight], sums: &mut [Self::Sum]);
}

/// The i32 kernel's weight: a code that fits i16, held as the i32 whose low half it is and
/// whose high half is zero. `vpdpwssd` then adds `x * w` for every i32 lane `x` within i16 (its
/// high half times zero adds nothing): one instruction per tap instead of a multiply and an add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairWeight(i32);

impl PairWeight {
    /// The weight code `k`, if it fits i16.
    pub fn new(k: i64) -> Option<Self> {
        i16::try_from(k).ok().map(|k| PairWeight(i32::from(k as u16)))
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{MaskedTaps, LANES};
    use std::arch::x86_64::*;

    /// A lane type's vector operations.
    pub trait Ops<T, S, W> {
        type V: Copy;
        unsafe fn zero() -> Self::V;
        unsafe fn load(mask: u16, at: *const T) -> Self::V;
        unsafe fn mac(acc: Self::V, x: Self::V, w: W) -> Self::V;
        unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
        /// Store the lanes `keep` together at `at` (all sixteen lanes are written).
        unsafe fn store(at: *mut S, keep: u16, v: Self::V);
        /// One channel of `k` taps (see [`channel`]).
        #[inline(always)]
        unsafe fn channel(t: &MaskedTaps, src: *const T, w: &[W], dst: *mut S, k: usize)
        where
            Self: Sized,
            T: Copy,
            S: Copy,
            W: Copy,
        {
            channel::<T, S, W, Self>(t, src, w, dst, k)
        }
    }

    /// The sweep over every channel and block.
    #[inline(always)]
    pub unsafe fn sweep<T: Copy, S: Copy, W: Copy, O: Ops<T, S, W>>(
        t: &MaskedTaps,
        input: &[T],
        weight: &[W],
        sums: &mut [S],
    ) {
        let taps = t.offsets.len();
        debug_assert!(sums.len() >= weight.len() / taps * t.pixels + LANES);
        for (o, w) in weight.chunks_exact(taps).enumerate() {
            let src = input.as_ptr().add(o / t.mult * t.plane);
            let dst = sums.as_mut_ptr().add(o * t.pixels);
            // The common windows with their tap counts known to the compiler (unrolled, offsets
            // and weights in registers).
            match taps {
                9 => O::channel(t, src, w, dst, 9),
                25 => O::channel(t, src, w, dst, 25),
                k => O::channel(t, src, w, dst, k),
            }
        }
    }

    /// One channel of a window of `k` taps: each block's taps summed in two chains (one would
    /// wait on its previous multiply-add at every tap), the blocks independent.
    #[inline(always)]
    unsafe fn channel<T: Copy, S: Copy, W: Copy, O: Ops<T, S, W>>(
        t: &MaskedTaps,
        src: *const T,
        w: &[W],
        dst: *mut S,
        k: usize,
    ) {
        let (offs, w) = (&t.offsets[..k], &w[..k]);
        for (blk, masks) in t.blocks.iter().zip(t.masks.chunks_exact(k)) {
            let at = src.wrapping_add(blk.src);
            let (mut even, mut odd) = (O::zero(), O::zero());
            for (i, ((&off, &m), &wt)) in offs.iter().zip(masks).zip(w).enumerate() {
                // Lanes outside the image are masked off: their addresses are never read.
                let x = O::load(m, at.wrapping_offset(off));
                if i % 2 == 0 {
                    even = O::mac(even, x, wt);
                } else {
                    odd = O::mac(odd, x, wt);
                }
            }
            O::store(dst.add(blk.dst), blk.keep, O::add(even, odd));
        }
    }

    pub struct F32;
    impl Ops<f32, f32, f32> for F32 {
        type V = __m512;
        #[inline(always)]
        unsafe fn zero() -> __m512 {
            _mm512_setzero_ps()
        }
        #[inline(always)]
        unsafe fn load(mask: u16, at: *const f32) -> __m512 {
            _mm512_maskz_loadu_ps(mask, at)
        }
        #[inline(always)]
        unsafe fn mac(acc: __m512, x: __m512, w: f32) -> __m512 {
            _mm512_fmadd_ps(x, _mm512_set1_ps(w), acc)
        }
        #[inline(always)]
        unsafe fn add(a: __m512, b: __m512) -> __m512 {
            _mm512_add_ps(a, b)
        }
        #[inline(always)]
        unsafe fn store(at: *mut f32, keep: u16, v: __m512) {
            let v = if keep == u16::MAX { v } else { _mm512_maskz_compress_ps(keep, v) };
            _mm512_storeu_ps(at, v)
        }
    }

    pub struct I32;
    impl Ops<i16, i32, super::PairWeight> for I32 {
        type V = __m512i;
        #[inline(always)]
        unsafe fn zero() -> __m512i {
            _mm512_setzero_si512()
        }
        #[inline(always)]
        unsafe fn load(mask: u16, at: *const i16) -> __m512i {
            _mm512_cvtepi16_epi32(_mm256_maskz_loadu_epi16(mask, at))
        }
        #[inline(always)]
        unsafe fn mac(acc: __m512i, x: __m512i, w: super::PairWeight) -> __m512i {
            _mm512_dpwssd_epi32(acc, x, _mm512_set1_epi32(w.0))
        }
        #[inline(always)]
        unsafe fn add(a: __m512i, b: __m512i) -> __m512i {
            _mm512_add_epi32(a, b)
        }
        #[inline(always)]
        unsafe fn store(at: *mut i32, keep: u16, v: __m512i) {
            let v = if keep == u16::MAX { v } else { _mm512_maskz_compress_epi32(keep, v) };
            _mm512_storeu_si512(at as *mut _, v)
        }
        /// Taps in pairs: the two taps' sixteen codes interleaved (one `vpermt2w`) into i32
        /// lanes `(x_a, x_b)`, against the weight word `(w_a, w_b)`, so that one `vpdpwssd`
        /// adds both products: per pair of taps two loads, a permute and a multiply-add, where
        /// one tap at a time took a load, a widening and a multiply-add each. The products
        /// wrap as i32 adds do: the sum is exact wherever it fits i32 (the layer's bound).
        #[inline(always)]
        unsafe fn channel(t: &MaskedTaps, src: *const i16, w: &[super::PairWeight], dst: *mut i32, k: usize) {
            let (offs, w) = (&t.offsets[..k], &w[..k]);
            // Word 2j from the first operand's word j, word 2j + 1 from the second's.
            let interleave = _mm512_loadu_si512(INTERLEAVE.as_ptr().cast());
            for (blk, masks) in t.blocks.iter().zip(t.masks.chunks_exact(k)) {
                let at = src.wrapping_add(blk.src);
                let load = |i: usize| _mm256_maskz_loadu_epi16(masks[i], at.wrapping_offset(offs[i]));
                let (mut even, mut odd) = (Self::zero(), Self::zero());
                for p in 0..k / 2 {
                    let (a, b) = (2 * p, 2 * p + 1);
                    let x = _mm512_permutex2var_epi16(
                        _mm512_zextsi256_si512(load(a)),
                        interleave,
                        _mm512_zextsi256_si512(load(b)),
                    );
                    let pair = _mm512_set1_epi32(w[a].0 | w[b].0 << 16);
                    if p % 2 == 0 {
                        even = _mm512_dpwssd_epi32(even, x, pair);
                    } else {
                        odd = _mm512_dpwssd_epi32(odd, x, pair);
                    }
                }
                if k % 2 == 1 {
                    odd = Self::mac(odd, _mm512_cvtepi16_epi32(load(k - 1)), w[k - 1]);
                }
                Self::store(dst.add(blk.dst), blk.keep, Self::add(even, odd));
            }
        }
    }

    /// The word indices of [`I32::channel`]'s interleave.
    static INTERLEAVE: [i16; 32] = {
        let mut idx = [0i16; 32];
        let mut j = 0;
        while j < 16 {
            idx[2 * j] = j as i16;
            idx[2 * j + 1] = 32 + j as i16;
            j += 1;
        }
        idx
    };

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    pub unsafe fn sweep_f32(t: &MaskedTaps, input: &[f32], weight: &[f32], sums: &mut [f32]) {
        if t.offsets.len() != 9 {
            return sweep::<f32, f32, f32, F32>(t, input, weight, sums);
        }
        // 3x3 windows two channels at a time: each block's nine masks loaded once for both (a
        // mask and an input load per multiply-add made the loads the limit), the eighteen
        // weights in registers. Each channel's sums in the single channel's order.
        let channels = weight.len() / 9;
        let pairs = channels / 2;
        for o in (0..2 * pairs).step_by(2) {
            let src = [o, o + 1].map(|c| input.as_ptr().add(c / t.mult * t.plane));
            let dst = [o, o + 1].map(|c| sums.as_mut_ptr().add(c * t.pixels));
            let w: [[__m512; 9]; 2] =
                std::array::from_fn(|c| std::array::from_fn(|i| _mm512_set1_ps(weight[(o + c) * 9 + i])));
            let offs: &[isize; 9] = t.offsets[..9].try_into().expect("nine taps");
            for (blk, masks) in t.blocks.iter().zip(t.masks.chunks_exact(9)) {
                let mut acc = [[_mm512_setzero_ps(); 2]; 2];
                for i in 0..9 {
                    let m = masks[i];
                    for c in 0..2 {
                        let x = _mm512_maskz_loadu_ps(m, src[c].wrapping_add(blk.src).wrapping_offset(offs[i]));
                        acc[c][i % 2] = _mm512_fmadd_ps(x, w[c][i], acc[c][i % 2]);
                    }
                }
                let sums = acc.map(|a| _mm512_add_ps(a[0], a[1]));
                F32::store(dst[1].add(blk.dst), blk.keep, sums[1]);
                if blk.dst + LANES <= t.pixels {
                    F32::store(dst[0].add(blk.dst), blk.keep, sums[0]);
                } else {
                    // The stray lanes would land on the next channel's first outputs, written
                    // already: keep the store within the channel.
                    let v = if blk.keep == u16::MAX { sums[0] } else { _mm512_maskz_compress_ps(blk.keep, sums[0]) };
                    _mm512_mask_storeu_ps(dst[0].add(blk.dst), ((1u32 << (t.pixels - blk.dst)) - 1) as u16, v);
                }
            }
        }
        if channels % 2 == 1 {
            let o = channels - 1;
            let src = input.as_ptr().add(o / t.mult * t.plane);
            F32::channel(t, src, &weight[o * 9..], sums.as_mut_ptr().add(o * t.pixels), 9);
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    pub unsafe fn sweep_i16(t: &MaskedTaps, input: &[i16], weight: &[super::PairWeight], sums: &mut [i32]) {
        sweep::<i16, i32, super::PairWeight, I32>(t, input, weight, sums);
    }
}

impl MaskedLane for f32 {
    type Weight = f32;
    type Sum = f32;
    #[cfg(target_arch = "x86_64")]
    unsafe fn sweep(t: &MaskedTaps, input: &[f32], weight: &[f32], sums: &mut [f32]) {
        avx512::sweep_f32(t, input, weight, sums);
    }
}

/// Codes that fit i16 (the integer engine checks the layer's input format before it builds
/// the kernel), read sixteen at a time (32 bytes: half the cache lines an i32 vector crosses)
/// and widened to i32 lanes.
impl MaskedLane for i16 {
    type Weight = PairWeight;
    type Sum = i32;
    #[cfg(target_arch = "x86_64")]
    unsafe fn sweep(t: &MaskedTaps, input: &[i16], weight: &[PairWeight], sums: &mut [i32]) {
        avx512::sweep_i16(t, input, weight, sums);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Window;

    /// The sums of a depthwise convolution spelled out, in f64.
    fn reference(g: &ConvGeom, input: &[f64], weight: &[f64]) -> Vec<f64> {
        let ([kh, kw], [sh, sw], [dh, dw], [top, left, ..]) =
            (g.window.kernel, g.window.stride, g.window.dilation, g.window.pads);
        let mult = g.out_c / g.groups;
        let mut out = Vec::new();
        for o in 0..g.out_c {
            for oy in 0..g.out_h {
                for ox in 0..g.out_w {
                    let mut s = 0.0;
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let (y, x) = (
                                (oy * sh + ky * dh) as isize - top as isize,
                                (ox * sw + kx * dw) as isize - left as isize,
                            );
                            if (0..g.in_h as isize).contains(&y) && (0..g.in_w as isize).contains(&x) {
                                let v = input[(o / mult * g.in_h + y as usize) * g.in_w + x as usize];
                                s += v * weight[o * kh * kw + ky * kw + kx];
                            }
                        }
                    }
                    out.push(s);
                }
            }
        }
        out
    }

    fn geom(
        c: usize,
        mult: usize,
        [h, w]: [usize; 2],
        kernel: [usize; 2],
        pads: [usize; 4],
        dilation: [usize; 2],
    ) -> ConvGeom {
        strided(c, mult, [h, w], kernel, [1, 1], pads, dilation)
    }

    fn strided(
        c: usize,
        mult: usize,
        [h, w]: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        pads: [usize; 4],
        dilation: [usize; 2],
    ) -> ConvGeom {
        let window = Window { kernel, stride, pads, dilation };
        let [out_h, out_w] = window.output_hw(h, w).expect("a valid window");
        ConvGeom { in_c: c, in_h: h, in_w: w, out_c: c * mult, out_h, out_w, groups: c, window }
    }

    #[test]
    fn masked_sums_equal_the_convolution() {
        if !Isa::Avx512Vnni.supported() {
            eprintln!("skipped: this machine has no AVX-512 VNNI");
            return;
        }
        let cases = [
            geom(3, 1, [14, 14], [3, 3], [1, 1, 1, 1], [1, 1]),
            geom(2, 2, [7, 7], [3, 3], [1, 1, 1, 1], [1, 1]),
            geom(2, 1, [5, 9], [5, 5], [2, 2, 2, 2], [1, 1]),
            // Asymmetric pads, a rectangular kernel, dilation, and rows fewer than the output's.
            geom(2, 1, [6, 4], [3, 1], [0, 0, 0, 0], [1, 1]),
            geom(2, 3, [9, 11], [3, 3], [2, 1, 0, 1], [2, 1]),
            geom(2, 1, [1, 1], [3, 3], [1, 1, 1, 1], [1, 1]),
            geom(2, 1, [4, 17], [1, 3], [0, 2, 0, 0], [1, 1]),
            // The row-by-row blocks: strided, or output rows narrower or wider than the input's,
            // rows of several blocks, strides that leave a block's outputs uneven (3).
            strided(2, 1, [14, 14], [3, 3], [2, 2], [1, 1, 1, 1], [1, 1]),
            strided(2, 2, [7, 7], [3, 3], [2, 2], [0, 1, 1, 0], [1, 1]),
            geom(2, 1, [8, 8], [3, 3], [0; 4], [1, 1]),
            geom(2, 1, [3, 4], [3, 3], [2, 3, 2, 3], [1, 1]),
            strided(2, 1, [9, 40], [3, 5], [1, 3], [1, 2, 1, 2], [2, 1]),
            strided(2, 1, [6, 21], [2, 3], [2, 1], [0, 0, 1, 1], [1, 2]),
            strided(2, 1, [5, 5], [5, 5], [4, 4], [0; 4], [1, 1]),
        ];
        for g in &cases {
            let taps = MaskedTaps::new(g, Isa::Avx512Vnni).expect("a masked geometry");
            let k = g.window.kernel[0] * g.window.kernel[1];
            let x: Vec<i16> = (0..g.in_c * g.in_h * g.in_w).map(|i| (i as i32 * 7919 % 511 - 255) as i16).collect();
            let w: Vec<i64> = (0..g.out_c * k).map(|i| (i as i64 * 104_729 % 65_535) - 32_768).collect();
            let expect = reference(
                g,
                &x.iter().map(|&v| v as f64).collect::<Vec<_>>(),
                &w.iter().map(|&v| v as f64).collect::<Vec<_>>(),
            );
            let pw: Vec<PairWeight> = w.iter().map(|&k| PairWeight::new(k).expect("i16")).collect();
            // A scratch left dirty by an earlier layer.
            let mut out = vec![i32::MIN; 3];
            let layout = taps.run(&x, &pw, &mut out);
            assert_eq!(layout.per_row, g.pixels());
            let got: Vec<f64> = out[..expect.len()].iter().map(|&v| v as f64).collect();
            assert_eq!(got, expect, "{g:?}");
            // Float: small integers, so the f32 sums are exact too.
            let xf: Vec<f32> = x.iter().map(|&v| (v % 16) as f32).collect();
            let wf: Vec<f32> = w.iter().map(|&v| (v % 16) as f32).collect();
            let expect = reference(
                g,
                &xf.iter().map(|&v| v as f64).collect::<Vec<_>>(),
                &wf.iter().map(|&v| v as f64).collect::<Vec<_>>(),
            );
            let mut out = Vec::new();
            taps.run(&xf, &wf, &mut out);
            let got: Vec<f64> = out[..expect.len()].iter().map(|&v| v as f64).collect();
            assert_eq!(got, expect, "{g:?}");
        }
        assert!(MaskedTaps::new(&cases[0], Isa::Avx2).is_none());
    }
}
