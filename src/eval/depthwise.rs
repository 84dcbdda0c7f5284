//! The masked-tap depthwise kernel: a stride-1 depthwise convolution whose output rows are as
//! wide as its input's ("same" padding across), on AVX-512, read straight from the unpadded
//! input.
//!
//! Output pixel `p` (row-major, `p = oy * w + ox`) under kernel tap `(ky, kx)` reads input pixel
//! `p + dy * w + dx` (`dy = ky * dh - top`, `dx = kx * dw - left`): with input and output rows of
//! the same width `w`, sixteen consecutive output pixels read sixteen consecutive input pixels
//! for every tap, across row ends. The inputs a tap reads in the padding (or in the wrong row,
//! where a block crosses a row end) are exactly the lanes outside the image, which a masked load
//! leaves zero without touching memory. So there is no padded copy and no stride phase to lay
//! out (the general [`super::kernels::depthwise`] spends as long laying out its phases as
//! summing), and the sums come out dense: no virtual columns to skip when requantizing. The
//! masks depend on the geometry alone and are computed once per layer.

use super::kernels::{scratch_prefix, ConvGeom, Isa, SumLayout};

/// Output pixels per block: one AVX-512 vector of f32 or i32 lanes.
const LANES: usize = 16;

/// A layer's taps as the masked kernel reads them (see the module docs).
#[derive(Debug, Clone)]
pub struct MaskedTaps {
    /// Input offset of each tap relative to the output pixel: `dy * w + dx`.
    offsets: Vec<isize>,
    /// `[block][tap]`: the lanes whose input under the tap lies inside the image.
    masks: Vec<u16>,
    /// Output pixels of a channel (`out_h * w`).
    pixels: usize,
    /// Input pixels of a channel (`in_h * w`).
    plane: usize,
    /// Output channels per input channel.
    mult: usize,
}

impl MaskedTaps {
    /// The masked form of `g` where it applies: a depthwise, stride-1 convolution whose output
    /// rows are as wide as its input's, on a machine that runs AVX-512 (`isa`).
    pub fn new(g: &ConvGeom, isa: Isa) -> Option<Self> {
        let w = g.window;
        if isa != Isa::Avx512Vnni || !g.is_depthwise() || w.stride != [1, 1] || g.out_w != g.in_w || g.in_w == 0 {
            return None;
        }
        let ([kh, kw], [dh, dw], [top, left, ..]) = (w.kernel, w.dilation, w.pads);
        let width = g.in_w as isize;
        let taps: Vec<(isize, isize)> = (0..kh * kw)
            .map(|t| ((t / kw * dh) as isize - top as isize, (t % kw * dw) as isize - left as isize))
            .collect();
        let pixels = g.out_h * g.out_w;
        let blocks = pixels.div_ceil(LANES);
        let mut masks = Vec::with_capacity(blocks * taps.len());
        for b in 0..blocks {
            for &(dy, dx) in &taps {
                let mut mask = 0u16;
                for j in 0..LANES {
                    let p = b * LANES + j;
                    let (y, x) = ((p / g.out_w) as isize + dy, (p % g.out_w) as isize + dx);
                    if p < pixels && (0..g.in_h as isize).contains(&y) && (0..width).contains(&x) {
                        mask |= 1 << j;
                    }
                }
                masks.push(mask);
            }
        }
        let offsets = taps.iter().map(|&(dy, dx)| dy * width + dx).collect();
        Some(MaskedTaps { offsets, masks, pixels, plane: g.in_h * g.in_w, mult: g.out_c / g.groups })
    }

    /// The sums of one image (`input`: `[in_c][in_h][w]`; `weight`: `[out_c][taps]`), dense
    /// `[out_c][pixels]` in the first `out_c * pixels` elements of `out` (see
    /// [`scratch_prefix`]), in `L`'s arithmetic (exact for the integer engine's codes within
    /// the bounds it checked).
    pub fn run<L: MaskedLane>(&self, input: &[L], weight: &[L::Weight], out: &mut Vec<L>) -> SumLayout {
        let taps = self.offsets.len();
        let out_c = weight.len() / taps;
        assert!(input.len() >= out_c / self.mult * self.plane, "a depthwise input shorter than its channels");
        // Whole blocks are stored: a channel's last one runs on into the next channel's first
        // pixels (overwritten after) or into this slack.
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

/// A lane type of the masked kernel: f32 (the float engine) or i32 (the integer engine's codes).
pub trait MaskedLane: Copy + Default {
    /// The weights as the kernel broadcasts them.
    type Weight: Copy;
    /// # Safety
    /// The machine has AVX-512 and `sums` holds `out_c * pixels + 16` elements.
    #[cfg(target_arch = "x86_64")]
    unsafe fn sweep(t: &MaskedTaps, input: &[Self], weight: &[Self::Weight], sums: &mut [Self]);
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

    /// The sweep, generic over the lane arithmetic: `mac(acc, load(mask, at), w)`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn sweep<T: Copy, W: Copy, V: Copy>(
        t: &MaskedTaps,
        input: &[T],
        weight: &[W],
        sums: &mut [T],
        zero: V,
        load: impl Fn(u16, *const T) -> V,
        mac: impl Fn(V, V, W) -> V,
        store: impl Fn(*mut T, V),
    ) {
        let taps = t.offsets.len();
        let blocks = t.pixels.div_ceil(LANES);
        debug_assert!(sums.len() >= weight.len() / taps * t.pixels + LANES);
        for (o, w) in weight.chunks_exact(taps).enumerate() {
            let src = input.as_ptr().add(o / t.mult * t.plane);
            let dst = sums.as_mut_ptr().add(o * t.pixels);
            for b in 0..blocks {
                let masks = &t.masks[b * taps..(b + 1) * taps];
                let at = src.wrapping_add(b * LANES);
                let mut acc = zero;
                for ((&off, &m), &wt) in t.offsets.iter().zip(masks).zip(w) {
                    // Lanes outside the image are masked off: their addresses are never read.
                    acc = mac(acc, load(m, at.wrapping_offset(off)), wt);
                }
                store(dst.add(b * LANES), acc);
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    pub unsafe fn sweep_f32(t: &MaskedTaps, input: &[f32], weight: &[f32], sums: &mut [f32]) {
        sweep(
            t,
            input,
            weight,
            sums,
            _mm512_setzero_ps(),
            |m, p| _mm512_maskz_loadu_ps(m, p),
            |acc, x, w| _mm512_fmadd_ps(x, _mm512_set1_ps(w), acc),
            |p, v| _mm512_storeu_ps(p, v),
        );
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    pub unsafe fn sweep_i32(t: &MaskedTaps, input: &[i32], weight: &[super::PairWeight], sums: &mut [i32]) {
        sweep(
            t,
            input,
            weight,
            sums,
            _mm512_setzero_si512(),
            |m, p| _mm512_maskz_loadu_epi32(m, p),
            |acc, x, w| _mm512_dpwssd_epi32(acc, x, _mm512_set1_epi32(w.0)),
            |p, v| _mm512_storeu_si512(p as *mut _, v),
        );
    }
}

impl MaskedLane for f32 {
    type Weight = f32;
    #[cfg(target_arch = "x86_64")]
    unsafe fn sweep(t: &MaskedTaps, input: &[f32], weight: &[f32], sums: &mut [f32]) {
        avx512::sweep_f32(t, input, weight, sums);
    }
}

/// Input codes must lie within i16 (see [`PairWeight`]): the integer engine checks that of the
/// layer's input format before it builds the kernel.
impl MaskedLane for i32 {
    type Weight = PairWeight;
    #[cfg(target_arch = "x86_64")]
    unsafe fn sweep(t: &MaskedTaps, input: &[i32], weight: &[PairWeight], sums: &mut [i32]) {
        avx512::sweep_i32(t, input, weight, sums);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Window;

    /// The sums of a depthwise convolution spelled out, in f64.
    fn reference(g: &ConvGeom, input: &[f64], weight: &[f64]) -> Vec<f64> {
        let ([kh, kw], [dh, dw], [top, left, ..]) = (g.window.kernel, g.window.dilation, g.window.pads);
        let mult = g.out_c / g.groups;
        let mut out = Vec::new();
        for o in 0..g.out_c {
            for oy in 0..g.out_h {
                for ox in 0..g.out_w {
                    let mut s = 0.0;
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let (y, x) =
                                ((oy + ky * dh) as isize - top as isize, (ox + kx * dw) as isize - left as isize);
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
        let window = Window { kernel, stride: [1, 1], pads, dilation };
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
        ];
        for g in &cases {
            let taps = MaskedTaps::new(g, Isa::Avx512Vnni).expect("a masked geometry");
            let k = g.window.kernel[0] * g.window.kernel[1];
            let x: Vec<i32> = (0..g.in_c * g.in_h * g.in_w).map(|i| (i as i32 * 7919 % 511) - 255).collect();
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
        // Not masked: strided, or output rows narrower than the input's.
        let mut strided = cases[0];
        strided.window.stride = [2, 2];
        assert!(MaskedTaps::new(&strided, Isa::Avx512Vnni).is_none());
        assert!(MaskedTaps::new(&geom(2, 1, [8, 8], [3, 3], [0; 4], [1, 1]), Isa::Avx512Vnni).is_none());
        assert!(MaskedTaps::new(&cases[0], Isa::Avx2).is_none());
    }
}
