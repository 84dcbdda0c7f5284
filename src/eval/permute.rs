//! Byte layouts by permutation: a convolution's u8 input codes laid out as its stride phases
//! (see [`Phases`]) or as the gathered runs of its real columns (see [`Phases::gather`]) with
//! AVX-512 VBMI byte permutes, sixty-four bytes at a time.
//!
//! Both layouts are a fixed map from each output byte of a channel to one input byte of the
//! channel or to the padding, which depends on the geometry alone. Laid out row by row (the
//! general [`Phases::new`]), a stride-2 conv's small rows cost a call and a few scalar moves
//! each: on a 14x14 map, dealing its input took as long as its GEMM. Here each piece of up to
//! sixty-four output bytes is one or two `vpermt2b` over a 256-byte window of the channel's
//! codes, whose indices and masks the layer computes once.

use super::kernels::{ConvGeom, Phases};

/// Bytes per output vector.
const VEC: usize = 64;
/// Bytes of a channel one output vector may draw from (two `vpermt2b` of 128 each).
const WINDOW: usize = 256;

/// Up to one output vector: where it lies in the channel's layout, the window of the channel it
/// draws from, each byte's index in it (the low seven bits within its half), and which bytes
/// come from each half (the rest are padding).
#[derive(Debug, Clone)]
struct Piece {
    at: usize,
    base: usize,
    index: [u8; VEC],
    low: u64,
    high: u64,
}

/// A layer's byte layout (see the module docs).
#[derive(Debug, Clone)]
pub struct BytePermute {
    pieces: Vec<Piece>,
    /// Output bytes per channel.
    per_channel: usize,
    /// Input bytes per channel.
    plane: usize,
    channels: usize,
}

impl BytePermute {
    /// The phase layout of `g`'s input (what [`Phases::new`] lays out, before its slack); None
    /// where the machine has no AVX-512 VBMI.
    pub fn phases(g: &ConvGeom) -> Option<Self> {
        Self::from_map(g, &phase_map(g))
    }

    /// The gathered runs of `g`'s real columns, every channel's taps in order (what
    /// [`Phases::gather`] copies for all runs of all groups): run `(c, t)` at `(c * taps + t)
    /// * pixels`.
    pub fn gathered(g: &ConvGeom) -> Option<Self> {
        let ph = Phases::geometry(g);
        let map = phase_map(g);
        let layout = ph.layout(g);
        let columns: Vec<usize> = (0..ph.n).filter(|&v| v % layout.seg_stride < layout.seg_len).collect();
        let out: Vec<Option<usize>> =
            ph.taps.iter().flat_map(|&t| columns.iter().map(move |&v| t + v)).map(|j| map[j]).collect();
        Self::from_map(g, &out)
    }

    /// The layout whose channel byte `j` is input byte `map[j]` of the channel (None: padding):
    /// pieces of up to 64 output bytes, each drawing from one window (a piece ends early where
    /// the next byte lies outside it: where a vector would cross from one stride phase's last
    /// rows to the next one's first, or on wide maps).
    fn from_map(g: &ConvGeom, map: &[Option<usize>]) -> Option<Self> {
        if !vbmi() {
            return None;
        }
        let mut pieces = Vec::new();
        let mut at = 0;
        while at < map.len() {
            let (mut lo, mut hi) = (usize::MAX, 0);
            let mut len = 0;
            while at + len < map.len() && len < VEC {
                if let Some(s) = map[at + len] {
                    if lo != usize::MAX && (s.max(hi) - s.min(lo)) >= WINDOW {
                        break;
                    }
                    (lo, hi) = (s.min(lo), s.max(hi));
                }
                len += 1;
            }
            let base = if lo == usize::MAX { 0 } else { lo };
            let mut piece = Piece { at, base, index: [0; VEC], low: 0, high: 0 };
            for (i, src) in map[at..at + len].iter().enumerate() {
                if let Some(s) = *src {
                    let off = s - base;
                    piece.index[i] = (off % 128) as u8;
                    if off < 128 {
                        piece.low |= 1 << i;
                    } else {
                        piece.high |= 1 << i;
                    }
                }
            }
            pieces.push(piece);
            at += len;
        }
        Some(BytePermute { pieces, per_channel: map.len(), plane: g.in_h * g.in_w, channels: g.in_c })
    }

    /// Bytes of source slack [`BytePermute::lay`] reads past the last channel's codes.
    pub const SOURCE_SLACK: usize = WINDOW;
    /// Bytes [`BytePermute::lay`] writes past the layout.
    pub const WRITE_SLACK: usize = VEC;

    /// Bytes of the layout (every channel's).
    pub fn laid_len(&self) -> usize {
        self.channels * self.per_channel
    }

    /// Lay out `src` (`[channels][plane]` u8 codes followed by [`Self::SOURCE_SLACK`] bytes of
    /// any value) into `out[..channels * per_channel]`, `pad` in the padding; `out` must hold
    /// `VEC` more bytes, which receive stray codes.
    pub fn lay(&self, src: &[u8], pad: u8, out: &mut [u8]) {
        assert!(src.len() >= self.channels * self.plane + WINDOW, "source without its slack");
        assert!(out.len() >= self.laid_len() + VEC, "output without its slack");
        // SAFETY: `BytePermute` exists only where the machine has AVX-512 VBMI (`vbmi`); every
        // read lies within a channel's window (its base is an input byte of the channel, the
        // window ends within the slack) and every write within `out` (checked above).
        #[cfg(target_arch = "x86_64")]
        unsafe {
            avx512::lay(self, src, pad, out)
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("byte permutes exist only on AVX-512 VBMI machines: {pad}")
    }
}

/// A float convolution's input laid into the interior of its zero-padded layout at stride 1
/// (one phase: rows of `wq`, a channel every `chan`; what pixel tiles read): every chunk of
/// sixteen of a padded row one load (the padding lanes masked off, so zero) and one whole store.
/// A store's lanes past the row land in the next row, written after it, or in padding, which
/// they zero again; only the last chunk of the layout stores under a mask. The per-row copies
/// of the general layout cost more than its GEMM on small maps.
#[derive(Debug, Clone)]
pub struct PaddedRows {
    geom: ConvGeom,
    wq: usize,
    chan: usize,
    /// For each chunk of sixteen of a padded row, its lanes inside the input row.
    masks: Vec<u16>,
}

impl PaddedRows {
    /// `g`'s input laid out (`g` at stride 1); None where the machine has no AVX-512.
    pub fn new(g: &ConvGeom) -> Option<Self> {
        if !super::kernels::Isa::Avx512Vnni.supported() || g.window.stride != [1, 1] {
            return None;
        }
        let ph = Phases::geometry(g);
        let pl = g.window.pads[1];
        let masks = (0..ph.wq)
            .step_by(16)
            .map(|j| (0..16).filter(|i| (pl..pl + g.in_w).contains(&(j + i))).fold(0u16, |m, i| m | 1 << i))
            .collect();
        Some(PaddedRows { geom: *g, wq: ph.wq, chan: ph.chan, masks })
    }

    /// Lay `src` (`[in_c][in_h][in_w]`) into `out`, whose padding holds zeros (an earlier
    /// laying, or a fill): the padding is zeroed again or left, the interior written.
    pub fn lay(&self, src: &[f32], out: &mut [f32]) {
        let g = &self.geom;
        assert!(src.len() >= g.in_c * g.in_h * g.in_w, "source smaller than its channels");
        assert!(out.len() >= g.in_c * self.chan, "output smaller than the layout");
        // SAFETY: `PaddedRows` exists only where the machine has AVX-512; every read lies in an
        // input row under its chunk's mask, every whole store ends within `out` (checked per
        // store; the others are masked to it).
        #[cfg(target_arch = "x86_64")]
        unsafe {
            avx512::lay_rows(self, src, out)
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("padded rows exist only on AVX-512 machines")
    }
}

/// Whether the machine has the AVX-512 byte permutes (with the rest of the integer kernels'
/// AVX-512).
fn vbmi() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        super::kernels::Isa::Avx512Vnni.supported() && std::arch::is_x86_feature_detected!("avx512vbmi")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Each byte of one channel's phase layout (see [`Phases`]): the input byte it holds, None in
/// the padding. Phase `(py, px)` lies at `(py * sw + px) * hq * wq`; its row `r`, column `q`
/// hold padded row `r * sh + py`, column `q * sw + px`.
fn phase_map(g: &ConvGeom) -> Vec<Option<usize>> {
    let ph = Phases::geometry(g);
    let ([sh, sw], [pt, pl, ..]) = (g.window.stride, g.window.pads);
    let plane = ph.chan / (sh * sw);
    (0..ph.chan)
        .map(|j| {
            let (p, r, q) = (j / plane, j % plane / ph.wq, j % ph.wq);
            let (y, x) = ((r * sh + p / sw).checked_sub(pt)?, (q * sw + p % sw).checked_sub(pl)?);
            (y < g.in_h && x < g.in_w).then_some(y * g.in_w + x)
        })
        .collect()
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{BytePermute, PaddedRows};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub unsafe fn lay_rows(t: &PaddedRows, src: &[f32], out: &mut [f32]) {
        let g = &t.geom;
        let ([pt, pl, ..], w) = (g.window.pads, g.in_w);
        if let [m] = t.masks[..] {
            // Rows of one chunk (maps up to 16 padded columns wide): pointers stepped, no
            // per-row index arithmetic.
            let mut row = src.as_ptr().wrapping_sub(pl);
            for c in 0..g.in_c {
                let mut d = c * t.chan + pt * t.wq;
                for _ in 0..g.in_h {
                    store_within(out, d, _mm512_maskz_loadu_ps(m, row));
                    (row, d) = (row.wrapping_add(w), d + t.wq);
                }
            }
            return;
        }
        for c in 0..g.in_c {
            for y in 0..g.in_h {
                // Padded column j + i of this row is input column j + i - pl.
                let row = src.as_ptr().add((c * g.in_h + y) * w).wrapping_sub(pl);
                let at = c * t.chan + (pt + y) * t.wq;
                for (k, &m) in t.masks.iter().enumerate() {
                    store_within(out, at + 16 * k, _mm512_maskz_loadu_ps(m, row.wrapping_add(16 * k)));
                }
            }
        }
    }

    /// `v` into `out[d..d + 16]`, whole, or under a mask where the layout ends first (`d` lies
    /// within `out`).
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn store_within(out: &mut [f32], d: usize, v: __m512) {
        let to = out.as_mut_ptr().add(d);
        match out.len() - d {
            16.. => _mm512_storeu_ps(to, v),
            left => _mm512_mask_storeu_ps(to, ((1u32 << left) - 1) as u16, v),
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi")]
    pub unsafe fn lay(t: &BytePermute, src: &[u8], pad: u8, out: &mut [u8]) {
        let fill = _mm512_set1_epi8(pad as i8);
        for c in 0..t.channels {
            let from = src.as_ptr().add(c * t.plane);
            let to = out.as_mut_ptr().add(c * t.per_channel);
            for p in &t.pieces {
                let at = from.add(p.base);
                let index = _mm512_loadu_si512(p.index.as_ptr() as *const _);
                let low = _mm512_permutex2var_epi8(
                    _mm512_loadu_si512(at as *const _),
                    index,
                    _mm512_loadu_si512(at.add(64) as *const _),
                );
                let mut v = _mm512_mask_mov_epi8(fill, p.low, low);
                if p.high != 0 {
                    let high = _mm512_permutex2var_epi8(
                        _mm512_loadu_si512(at.add(128) as *const _),
                        index,
                        _mm512_loadu_si512(at.add(192) as *const _),
                    );
                    v = _mm512_mask_mov_epi8(v, p.high, high);
                }
                // Whole vectors: a piece's stray bytes land where the next piece (or the next
                // channel's first) writes after, or in the slack.
                _mm512_storeu_si512(to.add(p.at) as *mut _, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::kernels::Isa;
    use crate::model::Window;

    fn geom(c: usize, [h, w]: [usize; 2], kernel: [usize; 2], stride: [usize; 2], pads: [usize; 4]) -> ConvGeom {
        let window = Window { kernel, stride, pads, dilation: [1, 1] };
        let [out_h, out_w] = window.output_hw(h, w).expect("a valid window");
        ConvGeom { in_c: c, in_h: h, in_w: w, out_c: 4, out_h, out_w, groups: 1, window }
    }

    #[test]
    fn permuted_layouts_equal_phases_and_gather() {
        if !vbmi() {
            eprintln!("skipped: this machine has no AVX-512 VBMI");
            return;
        }
        for g in [
            geom(3, [14, 14], [3, 3], [2, 2], [1, 1, 1, 1]),
            geom(2, [7, 7], [3, 3], [2, 2], [1, 1, 1, 1]),
            // Wide maps, whose pieces end where a vector would span more than a window.
            geom(2, [28, 28], [3, 3], [2, 2], [1, 1, 1, 1]),
            geom(1, [20, 150], [5, 5], [3, 2], [2, 2, 2, 2]),
            geom(3, [9, 5], [3, 2], [2, 1], [0, 1, 1, 0]),
            geom(2, [6, 6], [3, 3], [1, 1], [1, 1, 1, 1]),
        ] {
            let plane = g.in_h * g.in_w;
            let src: Vec<u8> = (0..g.in_c * plane + BytePermute::SOURCE_SLACK).map(|i| (i * 37 % 251) as u8).collect();
            let pad = 128;
            let mut want = Vec::new();
            let ph = Phases::new(&g, &src[..g.in_c * plane], |x| x, pad, Isa::Baseline, &mut want);
            let t = BytePermute::phases(&g).unwrap_or_else(|| panic!("phases {g:?}"));
            let mut got = vec![7u8; g.in_c * ph.chan + VEC];
            t.lay(&src, pad, &mut got);
            assert_eq!(got[..g.in_c * ph.chan], want[..g.in_c * ph.chan], "{g:?}");
            // The gathered runs of every channel and tap.
            let runs: Vec<usize> = (0..g.in_c).flat_map(|c| ph.taps.iter().map(move |&t| c * ph.chan + t)).collect();
            let mut gathered = Vec::new();
            ph.gather(&g, &want, &runs, 0, &mut gathered);
            let t = BytePermute::gathered(&g).unwrap_or_else(|| panic!("gathered {g:?}"));
            let n = runs.len() * g.pixels();
            let mut got = vec![7u8; n + VEC];
            t.lay(&src, pad, &mut got);
            assert_eq!(got[..n], gathered[..n], "{g:?}");
        }
    }

    /// Padded rows equal [`Phases::new`]'s layout at stride 1, laid over a buffer holding an
    /// earlier image's layout, from an input with no slack after it, and write nothing past the
    /// buffer (laid to its very end).
    #[test]
    fn padded_rows_equal_phases() {
        if !Isa::Avx512Vnni.supported() {
            eprintln!("skipped: this machine has no AVX-512");
            return;
        }
        for g in [
            geom(3, [14, 14], [3, 3], [1, 1], [1, 1, 1, 1]),
            geom(2, [7, 7], [3, 3], [1, 1], [1, 1, 1, 1]),
            geom(1, [28, 28], [5, 5], [1, 1], [2, 2, 2, 2]),
            geom(2, [20, 37], [5, 5], [1, 1], [2, 0, 2, 4]),
            geom(3, [9, 5], [3, 2], [1, 1], [0, 1, 1, 0]),
            geom(2, [3, 2], [3, 3], [1, 1], [2, 0, 1, 3]),
            geom(2, [4, 3], [3, 3], [1, 1], [0, 0, 0, 0]),
        ] {
            let t = PaddedRows::new(&g).expect("AVX-512");
            let mut want = Vec::new();
            let mut got = Vec::new();
            for image in 0..2 {
                let src: Vec<f32> = (0..g.in_c * g.in_h * g.in_w).map(|i| (i * (image + 1)) as f32 + 0.5).collect();
                let ph = Phases::new(&g, &src, |x| x, 0.0, Isa::Baseline, &mut want);
                let n = g.in_c * ph.chan;
                if image == 0 {
                    got = vec![0.0; n];
                }
                t.lay(&src, &mut got);
                assert_eq!(got[..n], want[..n], "{g:?}, image {image}");
            }
        }
    }
}
