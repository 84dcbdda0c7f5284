//! Layer geometry shared by the float and the integer engines: im2col + GEMM convolution,
//! pooling windows. The engines differ only in element type and in what happens to an
//! accumulator, so the loops live here once.

use crate::model::Window;

/// The vector instruction sets the kernels are compiled for, chosen at run time from the CPU's
/// features (ordered: each includes the ones before it). Every kernel computes the same exact
/// integers whichever it runs on; tests force each one the machine has in turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// What every target has: the portable code.
    Baseline,
    /// AVX2: 256-bit vectors, `vpmaddwd` (i16 pairs into i32).
    Avx2,
    /// AVX-512 (F, BW, VL) with VNNI: 512-bit vectors, `vpdpwssd` (the i16 pair dot product and
    /// its accumulation in one instruction).
    Avx512Vnni,
}

impl Isa {
    /// The best instruction set this machine has.
    pub fn best() -> Isa {
        [Isa::Avx512Vnni, Isa::Avx2].into_iter().find(|i| i.supported()).unwrap_or(Isa::Baseline)
    }

    /// Whether this machine can run `self`.
    pub fn supported(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            match self {
                Isa::Baseline => true,
                Isa::Avx2 => has!("avx2"),
                Isa::Avx512Vnni => {
                    has!("avx2") && has!("avx512f") && has!("avx512bw") && has!("avx512vl") && has!("avx512vnni")
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == Isa::Baseline
        }
    }
}

/// `dst[i] = f(src[i])` over the shorter of the two, compiled for `isa` (the code-type
/// conversions between an engine's layers: i64 codes into i16, u8 or i32 lanes vectorize only
/// with AVX2's or AVX-512's packing instructions). `isa` must be one this machine has.
#[inline]
pub fn convert<S: Copy, D>(src: &[S], dst: &mut [D], f: impl Fn(S) -> D, isa: Isa) {
    debug_assert!(isa.supported());
    match isa {
        // SAFETY: the caller's `isa` is one the machine has; the body is safe code compiled for it.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => unsafe { convert_avx512(src, dst, f) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { convert_avx2(src, dst, f) },
        _ => convert_body(src, dst, f),
    }
}

#[inline(always)]
fn convert_body<S: Copy, D>(src: &[S], dst: &mut [D], f: impl Fn(S) -> D) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = f(s);
    }
}

/// [`convert_body`] for one short row (of a 7x7 or 14x14 map): fixed-size chunks of 8 (of 4
/// under 8), the last overlapping the one before, so that every chunk is one vector conversion
/// and no scalar tail runs (a 14-element row's tail of 6 took most of the loop's time).
#[inline(always)]
pub fn convert_row<S: Copy, D>(src: &[S], dst: &mut [D], f: &impl Fn(S) -> D) {
    let n = src.len().min(dst.len());
    if n >= 8 {
        convert_chunks::<8, S, D>(&src[..n], &mut dst[..n], f);
    } else if n >= 4 {
        convert_chunks::<4, S, D>(&src[..n], &mut dst[..n], f);
    } else {
        convert_body(src, dst, f);
    }
}

/// `dst[i] = f(src[i])` in chunks of `C` (`C <= src.len() == dst.len()`), the last chunk ending
/// at the end (overlapping: `f` is pure, so converting an element twice is harmless).
#[inline(always)]
pub(super) fn convert_chunks<const C: usize, S: Copy, D>(src: &[S], dst: &mut [D], f: &impl Fn(S) -> D) {
    let n = src.len();
    let mut at = 0;
    loop {
        // The chunk read whole before any of it is written: read and written element by
        // element, the copies stayed scalar (after inlining, nothing tells LLVM the two slices
        // cannot overlap).
        let s: [S; C] = src[at..at + C].try_into().expect("a whole chunk");
        let d: &mut [D; C] = (&mut dst[at..at + C]).try_into().expect("a whole chunk");
        for (d, s) in d.iter_mut().zip(s) {
            *d = f(s);
        }
        if at + C == n {
            return;
        }
        at = (at + C).min(n - C);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn convert_avx2<S: Copy, D>(src: &[S], dst: &mut [D], f: impl Fn(S) -> D) {
    convert_body(src, dst, f);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn convert_avx512<S: Copy, D>(src: &[S], dst: &mut [D], f: impl Fn(S) -> D) {
    convert_body(src, dst, f);
}

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

/// How a layer's raw sums lie in memory: rows (channels) of `per_row` sums, of which the real
/// outputs are runs of `seg_len` every `seg_stride` (one run for dense layouts; one per output
/// row where a kernel computes `seg_stride - seg_len` discarded columns per row to keep its
/// reads contiguous).
#[derive(Debug, Clone, Copy)]
pub struct SumLayout {
    pub per_row: usize,
    pub seg_stride: usize,
    pub seg_len: usize,
}

impl SumLayout {
    pub fn dense(per_row: usize) -> Self {
        SumLayout { per_row, seg_stride: per_row, seg_len: per_row }
    }

    /// The real outputs of one row of sums.
    pub fn segments<'a, T>(&self, row: &'a [T]) -> impl Iterator<Item = &'a [T]> + 'a {
        let len = self.seg_len;
        row.chunks(self.seg_stride).map(move |s| &s[..len])
    }

    /// Real outputs per row.
    pub fn outputs(&self) -> usize {
        self.per_row / self.seg_stride * self.seg_len
    }

    /// The real outputs of every row, in order, with their row index.
    pub fn real<'a, T>(&'a self, sums: &'a [T]) -> impl Iterator<Item = (usize, &'a [T])> + 'a {
        sums.chunks_exact(self.per_row).enumerate().flat_map(move |(r, row)| self.segments(row).map(move |s| (r, s)))
    }
}

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

    /// Whether every group reads one input channel (depthwise, with any channel multiplier):
    /// such a layer runs on [`depthwise`], not as one GEMM of a single row per group.
    pub fn is_depthwise(&self) -> bool {
        self.groups > 1 && self.in_c == self.groups
    }
}

/// An element type the depthwise kernel multiplies and adds in: f32 in the float engine; the
/// integer engine's exact carriers (i32, f32, f64, i128) within their bounds.
pub trait Mac: Copy + Default + Send + Sync + std::ops::Mul<Output = Self> + std::ops::Add<Output = Self> {}
impl<T: Copy + Default + Send + Sync + std::ops::Mul<Output = T> + std::ops::Add<Output = T>> Mac for T {}

/// Virtual output columns the depthwise kernel sums at a time: small enough that the block's
/// sums stay in registers through every tap.
const DW_BLOCK: usize = 32;

/// A depthwise convolution (see [`ConvGeom::is_depthwise`]) of one image without im2col. The
/// padded input of each channel is split into its `sh * sw` stride phases (phase `(py, px)`
/// holds padded rows `py, py + sh, ...` and columns `px, px + sw, ...`, `hq x wq` each), so that
/// every kernel tap of every output row reads one contiguous run of one phase: over virtual
/// output columns `oy * wq + ox`, of which only `ox < out_w` are real, a whole channel is one
/// multiply-add sweep per tap. `weight` is `[out_c][kh * kw]`; `out` receives the raw sums laid
/// out as the returned [`SumLayout`] in its first `out_c * per_row` elements (see
/// [`scratch_prefix`]); `phases` is scratch. Products and sums run in `A`'s own
/// arithmetic (exact for the integer engine's carriers within their bounds).
pub fn depthwise<S: Copy, A: Mac>(
    g: &ConvGeom,
    input: &[S],
    weight: &[A],
    conv: impl Fn(S) -> A,
    isa: Isa,
    phases: &mut Vec<A>,
    out: &mut Vec<A>,
) -> SumLayout {
    let ph = Phases::new(g, input, conv, A::default(), isa, phases);
    let out = scratch_prefix(out, g.out_c * ph.n + DW_BLOCK);
    let mult = g.out_c / g.groups;
    let sweep = Sweep { taps: &ph.taps, chan: ph.chan, mult, n: ph.n, phases, weight };
    match isa {
        // SAFETY: the variant is only chosen where the machine has its features (`Isa::supported`).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => unsafe { sweep.avx512(out) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { sweep.avx2(out) },
        _ => sweep.run(out),
    }
    ph.layout(g)
}

/// The first `len` elements of the scratch buffer `buf`, which is grown (zero-filled) only where
/// it is shorter, never shrunk: for kernels that write every element they return. Layers of
/// different sizes share the scratch, so shrinking it to each would refill it at every growth.
/// What follows the prefix is left over from earlier layers: callers read the prefix only.
pub fn scratch_prefix<T: Copy + Default>(buf: &mut Vec<T>, len: usize) -> &mut [T] {
    if buf.len() < len {
        buf.resize(len, T::default());
    }
    &mut buf[..len]
}

/// Columns of a GEMM panel: the float and integer kernels' tile width (16 f32 or i32 lanes of
/// an AVX-512 vector), in which padding columns cost whole panels.
pub const PANEL: usize = 16;

/// Virtual output columns a kernel may read past the last one: the depthwise kernel's block,
/// at least the integer GEMM's panel width.
const READ_PAST: usize = DW_BLOCK;

/// A convolution's zero-padded input split into its `sh * sw` stride phases (see [`depthwise`]):
/// over virtual output columns `oy * wq + ox`, the input under kernel tap `t` of channel `c` is
/// the contiguous run starting at `c * chan + taps[t]`, for every stride, dilation and padding.
/// Kernels read these runs instead of an im2col matrix.
pub struct Phases {
    /// Columns of a phase (virtual columns per output row).
    pub wq: usize,
    /// Elements per input channel (all its phases).
    pub chan: usize,
    /// Offset of each kernel tap (`ky * kw + kx`) within a channel.
    pub taps: Vec<usize>,
    /// Virtual output columns: `out_h * wq`, of which `ox < out_w` of each row are real.
    pub n: usize,
}

impl Phases {
    /// Where `g`'s phases lie (what [`Phases::new`] returns), without laying any out: it
    /// depends on the geometry alone, so run offsets can be computed once per layer.
    pub fn geometry(g: &ConvGeom) -> Phases {
        let ([sh, sw], [dh, dw], [kh, kw]) = (g.window.stride, g.window.dilation, g.window.kernel);
        let [pt, pl, pb, pr] = g.window.pads;
        let (hq, wq) = ((pt + g.in_h + pb).div_ceil(sh), (pl + g.in_w + pr).div_ceil(sw));
        let plane = hq * wq;
        let chan = sh * sw * plane;
        let taps: Vec<usize> = (0..kh * kw)
            .map(|t| {
                let (dy, dx) = (t / kw * dh, t % kw * dw);
                ((dy % sh) * sw + dx % sw) * plane + dy / sh * wq + dx / sw
            })
            .collect();
        Phases { wq, chan, taps, n: g.out_h * wq }
    }

    /// Lay `input` (`[in_c][in_h][in_w]`) out as phases in `out` (converted by `conv`), with
    /// `pad` (the lane code of a zero input) in the padding and `READ_PAST` virtual columns of
    /// slack after the last run.
    pub fn new<S: Copy, A: Copy + Default>(
        g: &ConvGeom,
        input: &[S],
        conv: impl Fn(S) -> A,
        pad: A,
        isa: Isa,
        out: &mut Vec<A>,
    ) -> Self {
        let ph = Self::geometry(g);
        ph.lay(g, input, conv, pad, isa, out);
        ph
    }

    /// Lay `input` out as [`Phases::new`] does, for this geometry (`Phases::geometry(g)`,
    /// computed once per layer by callers that keep it).
    pub fn lay<S: Copy, A: Copy + Default>(
        &self,
        g: &ConvGeom,
        input: &[S],
        conv: impl Fn(S) -> A,
        pad: A,
        isa: Isa,
        out: &mut Vec<A>,
    ) {
        debug_assert!(isa.supported());
        match isa {
            // SAFETY: the caller's `isa` is one the machine has; the body is safe code compiled
            // for it (the zero fill, row copies and column deals vectorize on it).
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => unsafe { self.lay_avx512(g, input, conv, pad, isa, out) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { self.lay_avx2(g, input, conv, pad, isa, out) },
            _ => self.lay_body(g, input, conv, pad, isa, out),
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn lay_avx2<S: Copy, A: Copy + Default>(
        &self,
        g: &ConvGeom,
        input: &[S],
        conv: impl Fn(S) -> A,
        pad: A,
        isa: Isa,
        out: &mut Vec<A>,
    ) {
        self.lay_body(g, input, conv, pad, isa, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn lay_avx512<S: Copy, A: Copy + Default>(
        &self,
        g: &ConvGeom,
        input: &[S],
        conv: impl Fn(S) -> A,
        pad: A,
        isa: Isa,
        out: &mut Vec<A>,
    ) {
        self.lay_body(g, input, conv, pad, isa, out)
    }

    #[inline(always)]
    fn lay_body<S: Copy, A: Copy + Default>(
        &self,
        g: &ConvGeom,
        input: &[S],
        conv: impl Fn(S) -> A,
        pad: A,
        isa: Isa,
        out: &mut Vec<A>,
    ) {
        let len = self.laid_len(g);
        let (wq, chan) = (self.wq, self.chan);
        let ([sh, sw], [pt, pl, pb, pr]) = (g.window.stride, g.window.pads);
        let plane = chan / (sh * sw);
        let (hw, w) = (g.in_h * g.in_w, g.in_w);
        if [sh, sw] == [1, 1] && [pt, pl, pb, pr] == [0; 4] {
            // No padding at all (a pointwise convolution): the channels lie back to back as in
            // the input, converted in one pass; only the slack after them is zeroed.
            out.resize(len.max(out.len()), pad);
            out.truncate(len);
            convert_body(input, out, &conv);
            out[input.len()..].fill(pad);
            return;
        }
        out.clear();
        out.resize(len, pad);
        if [sh, sw] == [1, 1] && pl + pr == 0 {
            // No column padding, one phase: each channel's rows are one run (a long loop
            // vectorizes).
            for (c, src) in input.chunks_exact(hw).enumerate() {
                convert(src, &mut out[c * chan + pt * wq..][..hw], &conv, isa);
            }
            return;
        }
        if sw == 1 {
            // Rows converted straight into place (inlined here: no call per row).
            for (c, src) in input.chunks_exact(hw).enumerate() {
                // Row y lies in row phase py = (y + pt) % sh, at phase row r = (y + pt) / sh.
                let (mut py, mut r) = (pt % sh, pt / sh);
                for row in src.chunks_exact(w) {
                    convert_row(row, &mut out[c * chan + py * plane + r * wq + pl..][..w], &conv);
                    py += 1;
                    if py == sh {
                        (py, r) = (0, r + 1);
                    }
                }
            }
            return;
        }
        // Each row dealt into its column phases, converted on the way (inlined: no call per
        // row): column phase px holds input columns x0, x0 + sw, ... at q0, q0 + 1, ...
        let cols: Vec<(usize, usize, usize)> = (0..sw)
            .map(|px| {
                let x0 = (px + sw - pl % sw) % sw;
                (x0, (x0 + pl) / sw, w.saturating_sub(x0).div_ceil(sw))
            })
            .collect();
        for (c, src) in input.chunks_exact(hw).enumerate() {
            // Row y lies in row phase py = (y + pt) % sh, at phase row r = (y + pt) / sh.
            let (mut py, mut r) = (pt % sh, pt / sh);
            for row in src.chunks_exact(w) {
                let at = c * chan + py * sw * plane + r * wq;
                for (px, &(x0, q0, count)) in cols.iter().enumerate() {
                    deal_row(&row[x0..], sw, &mut out[at + px * plane + q0..][..count], &conv);
                }
                py += 1;
                if py == sh {
                    (py, r) = (0, r + 1);
                }
            }
        }
    }

    /// Elements [`Phases::new`] lays out: every channel's phases and the slack the runs read
    /// past them (virtual columns read on past their phase, into the next one or this tail:
    /// only discarded sums see those values).
    pub fn laid_len(&self, g: &ConvGeom) -> usize {
        let reach =
            (g.in_c - 1) * self.chan + self.taps.iter().max().unwrap_or(&0) + self.n.div_ceil(READ_PAST) * READ_PAST;
        (g.in_c * self.chan).max(reach)
    }

    /// How sums over the virtual columns lie: one segment of `out_w` real outputs per `wq`.
    pub fn layout(&self, g: &ConvGeom) -> SumLayout {
        SumLayout { per_row: self.n, seg_stride: self.wq, seg_len: g.out_w }
    }

    /// Whether a GEMM over `g`'s real output columns ([`Phases::gather`]) computes at most half
    /// the [`PANEL`]s it computes over the virtual ones: on the smallest maps the columns
    /// between rows cost whole panels (a 4x4 output: 24 virtual columns, two panels, for 16
    /// real ones, one), which outweighs the gather's row-by-row copies; on a 10x10 map (nine
    /// panels for seven) the copies cost more than the two panels, measured (LeNet-5's integer
    /// engine 11 % slower).
    pub fn gather_pays(&self, g: &ConvGeom) -> bool {
        g.pixels().div_ceil(PANEL) * 2 <= self.n.div_ceil(PANEL)
    }

    /// The real columns of the runs at `offs` (of the phases this geometry laid out in `src`),
    /// gathered: run `p`'s outputs become `dst[p * out_h * out_w..]`, in output order (so the
    /// GEMM's sums are dense), followed by `tail` elements for kernels that read whole panels.
    pub fn gather<T: Copy + Default>(&self, g: &ConvGeom, src: &[T], offs: &[usize], tail: usize, dst: &mut Vec<T>) {
        let n = g.pixels();
        let dst = scratch_prefix(dst, offs.len() * n + tail);
        let layout = self.layout(g);
        for (&o, row) in offs.iter().zip(dst.chunks_exact_mut(n)) {
            for (seg, d) in layout.segments(&src[o..o + self.n]).zip(row.chunks_exact_mut(g.out_w)) {
                convert_row(seg, d, &|v| v);
            }
        }
    }
}

/// The run offsets of the virtual im2col rows `rows` of channels `chans`, in `(channel, tap)`
/// order: row `(c, t)` starts at `c * chan + taps[t]`. A plain double loop: the equivalent
/// `flat_map(..).skip(..).take(..)` chain cost a few percent of a convolution's time.
pub fn run_offsets(
    chans: std::ops::Range<usize>,
    chan: usize,
    taps: &[usize],
    rows: std::ops::Range<usize>,
    out: &mut Vec<usize>,
) {
    out.clear();
    let per = taps.len();
    for (i, c) in chans.enumerate() {
        let (first, last) = (i * per, (i + 1) * per);
        if last <= rows.start || first >= rows.end {
            continue;
        }
        let t = rows.start.max(first) - first..rows.end.min(last) - first;
        out.extend(taps[t].iter().map(|&t| c * chan + t));
    }
}

/// `dst[q] = f(src[q * step])`: one column phase of a row (stride 2, the common case, in whole
/// vector chunks).
#[inline(always)]
fn deal_row<S: Copy, D>(src: &[S], step: usize, dst: &mut [D], f: &impl Fn(S) -> D) {
    if step == 2 && dst.len() >= 8 {
        deal_pairs::<8, S, D>(src, dst, f);
    } else if step == 2 && dst.len() >= 4 {
        deal_pairs::<4, S, D>(src, dst, f);
    } else {
        for (d, &x) in dst.iter_mut().zip(src.iter().step_by(step)) {
            *d = f(x);
        }
    }
}

/// `dst[q] = f(src[2 q])` in chunks of `C <= dst.len()`, the last overlapping the one before
/// (see [`convert_chunks`]); `src` holds at least `2 dst.len() - 1` elements.
#[inline(always)]
fn deal_pairs<const C: usize, S: Copy, D>(src: &[S], dst: &mut [D], f: &impl Fn(S) -> D) {
    let n = dst.len();
    let mut at = 0;
    loop {
        // A fixed-length window (2C - 1 elements) and chunk: no bounds checks, one shuffle.
        let s = &src[2 * at..2 * at + 2 * C - 1];
        let d: &mut [D; C] = (&mut dst[at..at + C]).try_into().expect("a whole chunk");
        for (j, d) in d.iter_mut().enumerate() {
            *d = f(s[2 * j]);
        }
        if at + C == n {
            return;
        }
        at = (at + C).min(n - C);
    }
}

/// The multiply-add sweeps of [`depthwise`] over prepared phases.
struct Sweep<'a, A> {
    taps: &'a [usize],
    chan: usize,
    mult: usize,
    n: usize,
    phases: &'a [A],
    weight: &'a [A],
}

impl<A: Mac> Sweep<'_, A> {
    /// `out` holds the rows' sums back to back and `DW_BLOCK` elements of slack after them.
    #[inline(always)]
    fn run(&self, out: &mut [A]) {
        let t = self.taps.len();
        for o in 0..self.weight.len() / t {
            let src = &self.phases[o / self.mult * self.chan..];
            let w = &self.weight[o * t..(o + 1) * t];
            for b in (0..self.n).step_by(DW_BLOCK) {
                let mut acc = [A::default(); DW_BLOCK];
                for (&off, &wt) in self.taps.iter().zip(w) {
                    let x: &[A; DW_BLOCK] = src[off + b..][..DW_BLOCK].try_into().expect("block");
                    for (a, &v) in acc.iter_mut().zip(x) {
                        *a = *a + wt * v;
                    }
                }
                // Whole blocks only, one fixed-size store: a row's last block runs on into the
                // next row's first columns (which that row's blocks overwrite after) or into the
                // slack. Storing part of `acc` would take a slice of it, which keeps it in memory
                // (a zmm store and reload per block, a stall wherever it straddles a cache line).
                let dst: &mut [A; DW_BLOCK] = (&mut out[o * self.n + b..][..DW_BLOCK]).try_into().expect("block");
                *dst = acc;
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn avx2(&self, out: &mut [A]) {
        self.run(out);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn avx512(&self, out: &mut [A]) {
        self.run(out);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `Phases::gather` against the im2col matrix spelled out (input `c, y, x` under tap
    /// `ky, kx` of output `oy, ox`, zero in the padding), over strides, dilations, asymmetric
    /// pads and rectangular kernels; and which maps gather at all.
    #[test]
    fn gathered_columns_are_the_im2col_rows() {
        let cases = [
            // (in_c, in_h, in_w, kernel, stride, pads, dilation, gather pays)
            (3, 7, 7, [3, 3], [2, 2], [1, 1, 1, 1], [1, 1], true), // 4x4 out, 20 virtual columns
            (2, 4, 4, [3, 3], [1, 1], [1, 1, 1, 1], [1, 1], true), // 4x4 out, 24 virtual
            (2, 7, 7, [1, 1], [2, 2], [0; 4], [1, 1], false),      // 1x1 stride 2: 16 virtual
            (2, 5, 9, [2, 3], [1, 2], [0, 1, 1, 0], [2, 1], true), // 4x4 out, dilated, 24 virtual
            (2, 7, 7, [3, 3], [1, 1], [1, 1, 1, 1], [1, 1], false), // 7x7: 63 virtual, 49 real
            (1, 14, 14, [3, 3], [1, 1], [1, 1, 1, 1], [1, 1], false),
        ];
        for (in_c, in_h, in_w, kernel, stride, pads, dilation, pays) in cases {
            let window = Window { kernel, stride, pads, dilation };
            let [out_h, out_w] = window.output_hw(in_h, in_w).unwrap();
            let g = ConvGeom { in_c, in_h, in_w, out_c: 1, out_h, out_w, groups: 1, window };
            let input: Vec<i32> = (1..=(in_c * in_h * in_w) as i32).collect();
            let mut buf = Vec::new();
            let ph = Phases::new(&g, &input, |x| x, 0, Isa::best(), &mut buf);
            assert_eq!(ph.gather_pays(&g), pays, "{g:?}");
            let mut offs = Vec::new();
            run_offsets(0..in_c, ph.chan, &ph.taps, 0..g.k(), &mut offs);
            let mut got = vec![-1; 3];
            ph.gather(&g, &buf, &offs, 5, &mut got);
            assert_eq!(got.len(), g.k() * g.pixels() + 5);
            let (kh, kw) = (kernel[0], kernel[1]);
            for (row, want_row) in got.chunks_exact(g.pixels()).zip(0..g.k()) {
                let (c, ky, kx) = (want_row / (kh * kw), want_row % (kh * kw) / kw, want_row % kw);
                for (j, &v) in row.iter().enumerate() {
                    let y = (j / out_w * stride[0] + ky * dilation[0]) as isize - pads[0] as isize;
                    let x = (j % out_w * stride[1] + kx * dilation[1]) as isize - pads[1] as isize;
                    let inside = (0..in_h as isize).contains(&y) && (0..in_w as isize).contains(&x);
                    let want = if inside { input[(c * in_h + y as usize) * in_w + x as usize] } else { 0 };
                    assert_eq!(v, want, "{g:?}: row {want_row}, column {j}");
                }
            }
        }
    }

    /// `run_offsets` against the `(channel, tap)` rows spelled out, for every sub-range of rows
    /// (the blocks of taps of a blocked layer start and end inside a channel's taps).
    #[test]
    fn run_offsets_are_the_rows_in_order() {
        let (taps, chan) = ([0, 1, 2, 7, 8, 9], 40);
        for chans in [0..3, 2..5] {
            let all: Vec<usize> = chans.clone().flat_map(|c| taps.iter().map(move |t| c * chan + t)).collect();
            for start in 0..=all.len() {
                for end in start..=all.len() {
                    let mut got = vec![usize::MAX];
                    run_offsets(chans.clone(), chan, &taps, start..end, &mut got);
                    assert_eq!(got, all[start..end], "channels {chans:?}, rows {start}..{end}");
                }
            }
        }
    }
}
