//! The graph walk shared by both engines: value storage, freeing after last use, the ops that
//! are exact in any number type (max-pooling, flattening), and parallel scoring over images.

use super::kernels::pool_windows;
use crate::model::{Graph, Node, Op, Window};
use rayon::prelude::*;
use std::ops::Range;
use std::sync::Mutex;

/// What an engine must provide: every op whose arithmetic depends on the number system.
pub trait Engine: Sync {
    type T: Copy + PartialOrd + Default + Send + Sync + 'static;
    /// Compute node `idx` for one image. `inputs` are the node's input tensors.
    fn compute(&self, idx: usize, node: &Node, inputs: &[&[Self::T]], out: &mut Vec<Self::T>, scratch: &mut Scratch);

    /// Whether node `idx` is computed for several images at once ([`Engine::compute_images`]):
    /// where one image's pass would read more weights than it computes with (dense layers).
    fn by_images(&self, _idx: usize, _node: &Node) -> bool {
        false
    }

    /// Compute node `idx`, one of [`Engine::by_images`]'s (one input), for several images:
    /// `inputs[b]` is image `b`'s input, `outs[b]` receives its output.
    fn compute_images(
        &self,
        idx: usize,
        node: &Node,
        inputs: &[&[Self::T]],
        outs: &mut [Vec<Self::T>],
        scratch: &mut Scratch,
    ) {
        for (x, out) in inputs.iter().zip(outs) {
            self.compute(idx, node, &[x], out, scratch);
        }
    }
}

/// Images per [`Batch`] in parallel passes: a dense layer's weights are read once per batch instead
/// of once per image, and a batch's activations still fit the core's caches.
pub const BATCH: usize = 8;

/// Per-thread scratch buffers reused across images.
#[derive(Default)]
pub struct Scratch {
    pub f32: Vec<f32>,
    pub f32_b: Vec<f32>,
    /// A convolution's gathered columns (see `Phases::gather`), of the float and integer lanes.
    pub f32_c: Vec<f32>,
    pub i16_c: Vec<i16>,
    pub u8_c: Vec<u8>,
    pub f64: Vec<f64>,
    pub f64_b: Vec<f64>,
    pub i128: Vec<i128>,
    pub i128_b: Vec<i128>,
    pub i16: Vec<i16>,
    pub i16_b: Vec<i16>,
    pub u8: Vec<u8>,
    pub u8_b: Vec<u8>,
    pub i32: Vec<i32>,
    pub i32_b: Vec<i32>,
    pub i64: Vec<i64>,
    pub offsets: Vec<usize>,
    /// Each layer's padded input, by node, kept between images: its padding is written once
    /// (see `permute::PaddedRows`).
    pub padded_f32: Vec<Vec<f32>>,
}

/// Reusable storage for one image's pass.
pub struct Workspace<T> {
    values: Vec<Vec<T>>,
    scratch: Scratch,
    /// Values to drop after each node (computed once per workspace, not per image).
    dead: Vec<Vec<usize>>,
}

impl<T> Workspace<T> {
    /// A workspace for no graph (a placeholder).
    fn empty() -> Self {
        Workspace { values: Vec::new(), scratch: Scratch::default(), dead: Vec::new() }
    }

    pub fn new(graph: &Graph) -> Self {
        Workspace {
            values: (0..graph.values.len()).map(|_| Vec::new()).collect(),
            scratch: Scratch::default(),
            dead: last_uses(graph),
        }
    }
}

/// Batches kept between parallel passes over one graph: each rayon job leases one (made the
/// first time) and gives it back when it ends, so that a search does not allocate a batch's
/// buffers again for each of its many short jobs.
pub struct Pool<T>(Mutex<Vec<Batch<T>>>);

impl<T> Default for Pool<T> {
    fn default() -> Self {
        Pool(Mutex::new(Vec::new()))
    }
}

impl<T> Pool<T> {
    pub fn lease(&self, graph: &Graph) -> Lease<'_, T> {
        let kept = self.0.lock().ok().and_then(|mut p| p.pop());
        Lease { pool: self, batch: kept.unwrap_or_else(|| Batch::new(graph)) }
    }
}

/// A batch out of a [`Pool`], returned to it when dropped.
pub struct Lease<'p, T> {
    pool: &'p Pool<T>,
    pub batch: Batch<T>,
}

impl<T> Drop for Lease<'_, T> {
    fn drop(&mut self) {
        if let Ok(mut p) = self.pool.0.lock() {
            let empty = Batch { shared: Workspace::empty(), images: Vec::new() };
            p.push(std::mem::replace(&mut self.batch, empty));
        }
    }
}

/// Passes of several images at once ([`Batch::run`]). Each image's workspace holds its values
/// between the nodes computed by images; the runs of other nodes between them take place in one
/// shared workspace, image after image, so that their buffers stay in cache from one image to
/// the next (a workspace per image, eight sets of buffers, made the convolutional nets 2-5 %
/// slower).
pub struct Batch<T> {
    shared: Workspace<T>,
    images: Vec<Workspace<T>>,
}

impl<T> Batch<T> {
    pub fn new(graph: &Graph) -> Self {
        Batch { shared: Workspace::new(graph), images: Vec::new() }
    }

    /// The first `n` images' workspaces (to load their values before a run and read them after).
    pub fn images(&mut self, graph: &Graph, n: usize) -> &mut [Workspace<T>] {
        if self.images.len() < n {
            self.images.resize_with(n, || Workspace::new(graph));
        }
        &mut self.images[..n]
    }

    /// Run nodes `range` for the first `n` images (their values at `range.start` already in
    /// [`Batch::images`]; after the run, the values live at `range.end` are, or every value
    /// with `keep`). Nodes the engine computes by images run once for the batch.
    pub fn run<E: Engine<T = T>>(&mut self, graph: &Graph, engine: &E, n: usize, range: Range<usize>, keep: bool) {
        let Batch { shared, images } = self;
        let images = &mut images[..n];
        let mut i = range.start;
        while i < range.end {
            let node = &graph.nodes[i];
            if n > 1 && engine.by_images(i, node) {
                let mut outs: Vec<Vec<T>> =
                    images.iter_mut().map(|ws| std::mem::take(&mut ws.values[node.output])).collect();
                let ins: Vec<&[T]> = images.iter().map(|ws| ws.values[node.inputs[0]].as_slice()).collect();
                outs.iter_mut().for_each(Vec::clear);
                engine.compute_images(i, node, &ins, &mut outs, &mut shared.scratch);
                for (ws, out) in images.iter_mut().zip(outs) {
                    ws.values[node.output] = out;
                    ws.drop_dead(i, keep);
                }
                i += 1;
                continue;
            }
            let end = (i + 1..range.end).find(|&j| n > 1 && engine.by_images(j, &graph.nodes[j])).unwrap_or(range.end);
            if keep {
                // Every value of every image is wanted: each image runs in its own workspace.
                for ws in images.iter_mut() {
                    run_nodes(graph, engine, ws, i..end, true);
                }
            } else {
                // The values an image brings in and takes out are swapped, not copied.
                let (live_in, live_out) = (live_at(graph, i), live_at(graph, end));
                for ws in images.iter_mut() {
                    for &v in &live_in {
                        std::mem::swap(&mut ws.values[v], &mut shared.values[v]);
                    }
                    run_nodes(graph, engine, shared, i..end, false);
                    for &v in &live_out {
                        std::mem::swap(&mut ws.values[v], &mut shared.values[v]);
                    }
                }
            }
            i = end;
        }
    }
}

/// For each node, the values whose last consumer it is (they can be dropped after it runs).
pub fn last_uses(graph: &Graph) -> Vec<Vec<usize>> {
    let mut last = vec![None; graph.values.len()];
    for (i, n) in graph.nodes.iter().enumerate() {
        for &v in &n.inputs {
            last[v] = Some(i);
        }
    }
    let mut per_node = vec![Vec::new(); graph.nodes.len()];
    for (v, l) in last.into_iter().enumerate() {
        if let Some(i) = l {
            if v != graph.output {
                per_node[i].push(v);
            }
        }
    }
    per_node
}

/// Run one image through `graph`. When `keep` is false, intermediate values are cleared as soon
/// as they are dead; the output value is always left in `ws`. Returns the output tensor.
pub fn run_image<'w, E: Engine>(
    graph: &Graph,
    engine: &E,
    ws: &'w mut Workspace<E::T>,
    input: &[E::T],
    keep: bool,
) -> &'w [E::T] {
    ws.set(graph.input, input);
    run_nodes(graph, engine, ws, 0..graph.nodes.len(), keep);
    &ws.values[graph.output]
}

/// Run nodes `range` (in order) on the values already in `ws`: a whole pass, or the part of
/// one after a cached prefix.
pub fn run_nodes<E: Engine>(
    graph: &Graph,
    engine: &E,
    ws: &mut Workspace<E::T>,
    range: std::ops::Range<usize>,
    keep: bool,
) {
    for i in range {
        let node = &graph.nodes[i];
        let mut out = std::mem::take(&mut ws.values[node.output]);
        out.clear();
        if matches!(node.op, Op::Flatten) && !keep && ws.dead[i].contains(&node.inputs[0]) {
            // The same values: the dead input's storage becomes the output (no copy), and the
            // output's old storage is left for the input's next image.
            std::mem::swap(&mut out, &mut ws.values[node.inputs[0]]);
        } else {
            // The inputs' slices on the stack (a Vec per node per image was an allocation).
            let mut few: [&[E::T]; 4] = [&[]; 4];
            let many: Vec<&[E::T]>;
            let ins: &[&[E::T]] = if node.inputs.len() <= few.len() {
                for (s, &v) in few.iter_mut().zip(&node.inputs) {
                    *s = ws.values[v].as_slice();
                }
                &few[..node.inputs.len()]
            } else {
                many = node.inputs.iter().map(|&v| ws.values[v].as_slice()).collect();
                &many
            };
            match &node.op {
                Op::MaxPool(w) if w.dilation == [1, 1] && (0..4).all(|i| w.pads[i] < w.kernel[i % 2]) => {
                    max_pool(ins[0], graph.shape(node.inputs[0]), w, graph.shape(node.output), &mut out);
                }
                Op::MaxPool(w) => {
                    let shape = graph.shape(node.inputs[0]);
                    let o = graph.shape(node.output);
                    out.resize(o.iter().product(), E::T::default());
                    pool_windows(ins[0], shape, w, [o[1], o[2]], |c, p, vals, _| {
                        out[c * o[1] * o[2] + p] = max_of(vals);
                    });
                }
                Op::GlobalMaxPool => {
                    let shape = graph.shape(node.inputs[0]);
                    let hw = shape[1] * shape[2];
                    out.extend(ins[0].chunks(hw).map(max_of));
                }
                Op::Flatten => out.extend_from_slice(ins[0]),
                Op::Conv(_)
                | Op::Dense(_)
                | Op::Affine(_)
                | Op::Add { .. }
                | Op::Concat
                | Op::AvgPool { .. }
                | Op::GlobalAvgPool
                | Op::Activation(_) => engine.compute(i, node, ins, &mut out, &mut ws.scratch),
            }
        }
        ws.values[node.output] = out;
        ws.drop_dead(i, keep);
    }
}

impl<T> Workspace<T> {
    /// Unless `keep`, clear the values node `i` was the last to read.
    fn drop_dead(&mut self, i: usize, keep: bool) {
        if !keep {
            for &v in &self.dead[i] {
                self.values[v].clear();
            }
        }
    }
}

/// The values live between node `cut - 1` and node `cut`: produced before the cut (or the
/// input) and read at or after it; the output itself once every node has run.
pub fn live_at(graph: &Graph, cut: usize) -> Vec<usize> {
    if cut >= graph.nodes.len() {
        return vec![graph.output];
    }
    let mut produced_before = vec![false; graph.values.len()];
    produced_before[graph.input] = true;
    for n in &graph.nodes[..cut] {
        produced_before[n.output] = true;
    }
    let mut live: Vec<usize> =
        graph.nodes[cut..].iter().flat_map(|n| n.inputs.iter().copied()).filter(|&v| produced_before[v]).collect();
    live.sort_unstable();
    live.dedup();
    live
}

impl<T: Copy> Workspace<T> {
    /// Put saved values back (to resume a pass at a cut), each element through `conv` (saved
    /// values may be kept in another type).
    pub fn load<S: Copy>(&mut self, ids: &[usize], vals: &[Vec<S>], conv: impl Fn(S) -> T)
    where
        T: Default,
    {
        let isa = super::kernels::Isa::best();
        for (&v, x) in ids.iter().zip(vals) {
            // Converted in a loop compiled for the machine's vectors (a search loads a saved
            // prefix's codes for every image of every candidate).
            self.values[v].clear();
            self.values[v].resize(x.len(), T::default());
            super::kernels::convert(x, &mut self.values[v], &conv, isa);
        }
    }

    /// Copy values out (to save a pass at a cut), each element through `conv`.
    pub fn save<S>(&self, ids: &[usize], conv: impl Fn(T) -> S) -> Vec<Vec<S>> {
        ids.iter().map(|&v| self.values[v].iter().map(|&k| conv(k)).collect()).collect()
    }

    /// Value `v` becomes a copy of `x` (an image's input).
    pub fn set(&mut self, v: usize, x: &[T]) {
        self.values[v].clear();
        self.values[v].extend_from_slice(x);
    }

    pub fn value(&self, v: usize) -> &[T] {
        &self.values[v]
    }
}

/// All values of the last `run_image` with `keep = true`.
pub fn values<T>(ws: &Workspace<T>) -> &[Vec<T>] {
    &ws.values
}

/// Max-pooling without dilation, each window clipped to the image (ONNX pads max-pooling with
/// -inf), without gathering windows: the hot op after the convolutions once those are fast.
/// Every window holds at least one element: every pad is below the kernel. Each output row first
/// takes the elementwise maximum of its window's input rows (contiguous, so it vectorizes), then
/// the maximum of each window's columns of that row.
fn max_pool<T: Copy + PartialOrd + 'static>(input: &[T], shape: &[usize], w: &Window, o: &[usize], out: &mut Vec<T>) {
    #[cfg(target_arch = "x86_64")]
    if !input.is_empty() && pool2x2::fits(shape, w) && super::kernels::Isa::best() == super::kernels::Isa::Avx512Vnni {
        use std::any::TypeId;
        let (t, start) = (TypeId::of::<T>(), out.len());
        let float = t == TypeId::of::<f32>();
        if float || t == TypeId::of::<i32>() {
            out.resize(start + input.len() / 4, input[0]);
            // SAFETY: `T` is f32 or i32 (checked), read as its 4-byte pattern; the machine has
            // AVX-512 (checked); `out` holds an output for every input window (sized above).
            unsafe {
                let src = std::slice::from_raw_parts(input.as_ptr().cast::<u32>(), input.len());
                let dst = std::slice::from_raw_parts_mut(out[start..].as_mut_ptr().cast::<u32>(), input.len() / 4);
                pool2x2::run(src, shape, float, dst);
            }
            return;
        }
    }
    if super::kernels::Isa::best() >= super::kernels::Isa::Avx2 {
        // SAFETY: AVX2 is present (checked); the body is safe code compiled for it.
        unsafe { max_pool_avx2(input, shape, w, o, out) };
        return;
    }
    max_pool_body(input, shape, w, o, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn max_pool_avx2<T: Copy + PartialOrd>(input: &[T], shape: &[usize], w: &Window, o: &[usize], out: &mut Vec<T>) {
    max_pool_body(input, shape, w, o, out);
}

// Every loop below writes into slices sized beforehand: `Vec::extend` from an iterator runs in
// a separate function, compiled without the caller's AVX2, where the maxima stay scalar.
#[inline(always)]
fn max_pool_body<T: Copy + PartialOrd>(input: &[T], shape: &[usize], w: &Window, o: &[usize], out: &mut Vec<T>) {
    let (h, wd) = (shape[1], shape[2]);
    let ([kh, kw], [sh, sw]) = (w.kernel, w.stride);
    let (n, per_plane) = (input.len(), o[1] * o[2]);
    if n == 0 || per_plane == 0 {
        return;
    }
    if [sh, sw] == [1, 1] && [o[1], o[2]] == [h, wd] && n >= (kh - 1) * wd && n >= kw - 1 {
        return max_pool_same(input, (h, wd), w, out);
    }
    let clip = |o: usize, s: usize, pad: usize, k: usize, n: usize| {
        let lo = (o * s).saturating_sub(pad);
        (lo, (o * s + k).saturating_sub(pad).min(n))
    };
    let cols: Vec<(usize, usize)> = (0..o[2]).map(|ox| clip(ox, sw, w.pads[1], kw, wd)).collect();
    // Windows of two columns side by side (2x2, stride 2: the common case) pair up directly.
    let pairs = kw == 2 && sw == 2 && cols.iter().enumerate().all(|(ox, &c)| c == (2 * ox, 2 * ox + 2));
    let start = out.len();
    out.resize(start + n / (h * wd) * per_plane, input[0]);
    if pairs && wd == 2 * o[2] {
        // Every output row's window rows first, then the pairs of the whole tensor in one long
        // loop (row by row, a 12- or 14-wide output row's pairs stayed scalar).
        let rows = n / (h * wd) * o[1];
        let mut maxima = vec![input[0]; rows * wd];
        for (r, dst) in maxima.chunks_exact_mut(wd).enumerate() {
            let (y0, y1) = clip(r % o[1], sh, w.pads[0], kh, h);
            max_rows(&input[r / o[1] * h * wd..], wd, y0..y1, dst);
        }
        for (d, p) in out[start..].iter_mut().zip(maxima.chunks_exact(2)) {
            *d = larger(p[0], p[1]);
        }
        return;
    }
    let mut row_max = input[..wd].to_vec();
    for (plane, dst) in input.chunks_exact(h * wd).zip(out[start..].chunks_exact_mut(per_plane)) {
        for (oy, dst) in dst.chunks_exact_mut(o[2]).enumerate() {
            let (y0, y1) = clip(oy, sh, w.pads[0], kh, h);
            max_rows(plane, wd, y0..y1, &mut row_max);
            if pairs {
                for (d, p) in dst.iter_mut().zip(row_max.chunks_exact(2)) {
                    *d = larger(p[0], p[1]);
                }
            } else {
                for (d, &(x0, x1)) in dst.iter_mut().zip(&cols) {
                    *d = max_of(&row_max[x0..x1]);
                }
            }
        }
    }
}

/// 2x2 stride-2 max-pooling without padding over maps of even height and even width up to 32,
/// on 4-byte lanes (f32 or i32) with AVX-512: every output row four masked loads (its two
/// input rows, two vectors each), their maxima, and the maxima of their even and odd lanes
/// (two permutes), stored under a mask. The general loops spent their time on per-row
/// bookkeeping over rows this short (LeNet-5's: a tenth of a search's profile).
#[cfg(target_arch = "x86_64")]
mod pool2x2 {
    use crate::model::Window;
    use std::arch::x86_64::*;

    /// Whether a pool of `w` over a map of `shape` is one this kernel runs.
    pub fn fits(shape: &[usize], w: &Window) -> bool {
        let (h, wd) = (shape[1], shape[2]);
        w.kernel == [2, 2]
            && w.stride == [2, 2]
            && w.pads == [0; 4]
            && w.dilation == [1, 1]
            && h % 2 == 0
            && wd % 2 == 0
            && (2..=32).contains(&wd)
            && h > 0
    }

    /// The pool of `src` (`shape`, values as 4-byte patterns: f32 where `float`, else i32) into
    /// `dst`; maxima as `larger` takes them (the first of ties and of unordered pairs).
    ///
    /// # Safety
    /// The machine has AVX-512F; `shape` fits ([`fits`]) and `src` holds it, `dst` a quarter.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn run(src: &[u32], shape: &[usize], float: bool, dst: &mut [u32]) {
        let (h, wd) = (shape[1], shape[2]);
        let rows = src.len() / wd / 2;
        assert!(src.len() == shape[0] * h * wd && dst.len() >= rows * wd / 2, "pool operand sizes");
        // `larger(a, b)`: `b` where `b > a`, else `a` (`max_ps(b, a)` keeps `a` on NaN and ties).
        let larger = |a: __m512i, b: __m512i| {
            if float {
                _mm512_castps_si512(_mm512_max_ps(_mm512_castsi512_ps(b), _mm512_castsi512_ps(a)))
            } else {
                _mm512_max_epi32(a, b)
            }
        };
        let live = |v: usize| ((1u32 << wd.saturating_sub(16 * v).min(16)) - 1) as u16;
        let masks = [live(0), live(1)];
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
        let store = ((1u32 << (wd / 2)) - 1) as u16;
        for g in 0..rows {
            let top = src.as_ptr().add(2 * g * wd);
            // Lanes past the row are masked off: the pointers to them may lie past `src`.
            let load =
                |p: *const u32, v: usize| _mm512_maskz_loadu_epi32(masks[v], p.wrapping_add(16 * v) as *const i32);
            let bottom = top.add(wd);
            let v: [__m512i; 2] = std::array::from_fn(|k| larger(load(top, k), load(bottom, k)));
            let pairs = larger(_mm512_permutex2var_epi32(v[0], even, v[1]), _mm512_permutex2var_epi32(v[0], odd, v[1]));
            _mm512_mask_storeu_epi32(dst.as_mut_ptr().add(g * wd / 2) as *mut i32, store, pairs);
        }
    }
}

/// `dst = max(src[y * len ..][..len] for y in rows)` (`rows` not empty), every element written
/// fresh from the first two rows: `*m = larger(*m, v)` compiles to slow masked stores.
#[inline(always)]
fn max_rows<T: Copy + PartialOrd>(src: &[T], len: usize, rows: Range<usize>, dst: &mut [T]) {
    let row = |y: usize| &src[y * len..(y + 1) * len];
    if rows.len() == 1 {
        dst.copy_from_slice(row(rows.start));
        return;
    }
    for ((m, &a), &b) in dst.iter_mut().zip(row(rows.start)).zip(row(rows.start + 1)) {
        *m = larger(a, b);
    }
    for y in rows.start + 2..rows.end {
        for (m, &v) in dst.iter_mut().zip(row(y)) {
            *m = larger(*m, v);
        }
    }
}

/// Unit-stride max-pooling whose output keeps the input's size (an inception branch's 3x3/s1
/// pool), separably and over the whole tensor at once: the maxima down each full window's rows
/// in one long loop over every plane, then along the rows the same way, then the windows the
/// padding clips (the first and last rows and columns of each plane) redone one by one. Plane by
/// plane or row by row, a 7x7 or 14x14 map's loops are too short to vectorize.
#[inline(always)]
fn max_pool_same<T: Copy + PartialOrd>(input: &[T], (h, wd): (usize, usize), w: &Window, out: &mut Vec<T>) {
    let ([kh, kw], [pt, pl, pb, pr]) = (w.kernel, w.pads);
    let n = input.len();
    let clip = |o: usize, pad: usize, k: usize, len: usize| o.saturating_sub(pad)..(o + k).saturating_sub(pad).min(len);
    let clipped = |o: usize, pad: usize, k: usize, len: usize| o < pad || o + k > len + pad;
    // Down the columns: `cols[i] = max(input[i + (d - pt) * wd] for d < kh)`, over every plane
    // at once; the rows whose window the padding clips are redone plane by plane.
    let mut cols = input.to_vec();
    max_shifted(input, wd, kh, &mut cols[pt * wd..n - pb * wd]);
    let edge_rows: Vec<(usize, Range<usize>)> =
        (0..h).filter(|&oy| clipped(oy, pt, kh, h)).map(|oy| (oy, clip(oy, pt, kh, h))).collect();
    for (plane, maxima) in input.chunks_exact(h * wd).zip(cols.chunks_exact_mut(h * wd)) {
        for (oy, rows) in &edge_rows {
            max_rows(plane, wd, rows.clone(), &mut maxima[oy * wd..(oy + 1) * wd]);
        }
    }
    // Along the rows, the same way.
    let start = out.len();
    out.extend_from_slice(&cols);
    max_shifted(&cols, 1, kw, &mut out[start + pl..start + n - pr]);
    let edges: Vec<(usize, Range<usize>)> =
        (0..wd).filter(|&ox| clipped(ox, pl, kw, wd)).map(|ox| (ox, clip(ox, pl, kw, wd))).collect();
    for (row, maxima) in cols.chunks_exact(wd).zip(out[start..].chunks_exact_mut(wd)) {
        for (ox, x) in &edges {
            maxima[*ox] = max_of(&row[x.clone()]);
        }
    }
}

/// `dst[i] = max(src[d * step + i] for d < count)`.
#[inline(always)]
fn max_shifted<T: Copy + PartialOrd>(src: &[T], step: usize, count: usize, dst: &mut [T]) {
    let len = dst.len();
    let at = |d: usize| &src[d * step..d * step + len];
    match count {
        1 => dst.copy_from_slice(at(0)),
        2 => {
            for ((m, &a), &b) in dst.iter_mut().zip(at(0)).zip(at(1)) {
                *m = larger(a, b);
            }
        }
        _ => {
            for (((m, &a), &b), &c) in dst.iter_mut().zip(at(0)).zip(at(1)).zip(at(2)) {
                *m = larger(larger(a, b), c);
            }
        }
    }
    for d in 3..count {
        for (m, &v) in dst.iter_mut().zip(at(d)) {
            *m = larger(*m, v);
        }
    }
}

/// `b` if it is larger, else `a` (the first wins ties and unordered pairs, as in [`max_of`]).
#[inline(always)]
fn larger<T: PartialOrd>(a: T, b: T) -> T {
    if b > a {
        b
    } else {
        a
    }
}

fn max_of<T: Copy + PartialOrd>(vals: &[T]) -> T {
    let mut m = vals[0];
    for &v in &vals[1..] {
        if v > m {
            m = v;
        }
    }
    m
}

/// Index of the largest logit; ties go to the lowest index (docs/fixed-point.md, "Other operators").
pub fn argmax<T: Copy + PartialOrd>(logits: &[T]) -> usize {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best
}

/// Predicted class of every sample in `samples`, in parallel. `make_input` fills the engine's
/// input tensor for sample `i`.
pub fn predict<E: Engine>(
    graph: &Graph,
    engine: &E,
    samples: std::ops::Range<usize>,
    make_input: impl Fn(usize, &mut Vec<E::T>) + Sync,
) -> Vec<usize> {
    map_outputs(graph, engine, samples, make_input, |_, out| argmax(out))
}

/// `f(i, output)` for every sample `i` in `samples`, in parallel.
pub fn map_outputs<E: Engine, R: Send>(
    graph: &Graph,
    engine: &E,
    samples: std::ops::Range<usize>,
    make_input: impl Fn(usize, &mut Vec<E::T>) + Sync,
    f: impl Fn(usize, &[E::T]) -> R + Sync,
) -> Vec<R> {
    let batches: Vec<Vec<R>> = samples
        .clone()
        .into_par_iter()
        .step_by(BATCH)
        .map_init(
            || (Batch::new(graph), Vec::new()),
            |(b, input), start| {
                let ids = start..(start + BATCH).min(samples.end);
                for (ws, i) in b.images(graph, ids.len()).iter_mut().zip(ids.clone()) {
                    input.clear();
                    make_input(i, input);
                    ws.set(graph.input, input);
                }
                b.run(graph, engine, ids.len(), 0..graph.nodes.len(), false);
                b.images(graph, ids.len()).iter().zip(ids).map(|(ws, i)| f(i, ws.value(graph.output))).collect()
            },
        )
        .collect();
    batches.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The fast max-pool (rows first, then columns: in pairs or window by window)
        /// against every window gathered by `pool_windows` and reduced by `max_of`, for every
        /// kernel, stride and padding it takes (each pad below its kernel).
        #[test]
        fn max_pool_equals_the_windows_maxima(
            (kh, kw) in (1usize..5, 1usize..5),
            (sh, sw) in (1usize..4, 1usize..4),
            pads in (0usize..4, 0usize..4, 0usize..4, 0usize..4),
            (c, h, wd) in (1usize..3, 1usize..9, 1usize..12),
            seed in any::<u64>(),
        ) {
            let pads = [pads.0 % kh, pads.1 % kw, pads.2 % kh, pads.3 % kw];
            let w = Window { kernel: [kh, kw], stride: [sh, sw], pads, dilation: [1, 1] };
            prop_assume!(h + pads[0] + pads[2] >= kh && wd + pads[1] + pads[3] >= kw);
            let [oh, ow] = w.output_hw(h, wd).unwrap();
            // Few distinct values, so that ties are common.
            let input: Vec<i64> =
                (0..c * h * wd).map(|i| ((i as u64 ^ seed).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 61) as i64 - 3).collect();
            let mut want = vec![0; c * oh * ow];
            pool_windows(&input, &[c, h, wd], &w, [oh, ow], |ch, p, vals, _| want[ch * oh * ow + p] = max_of(vals));
            let mut got = Vec::new();
            max_pool(&input, &[c, h, wd], &w, &[c, oh, ow], &mut got);
            prop_assert_eq!(got, want);
        }
    }

    /// The 2x2 stride-2 pool on i32 and f32 lanes (the AVX-512 kernel, where the machine has
    /// it; past 32 columns the loops) against every window reduced by `max_of` (i32), and
    /// against the portable loops bit for bit (f32, with NaN, +0 and -0 among ties), over even
    /// widths and heights.
    #[test]
    fn pool_2x2_on_four_byte_lanes_equals_the_windows_maxima() {
        let w = Window { kernel: [2, 2], stride: [2, 2], pads: [0; 4], dilation: [1, 1] };
        for (c, h, wd) in
            [(1, 2, 2), (2, 4, 6), (3, 6, 14), (2, 28, 28), (1, 2, 16), (2, 4, 18), (1, 8, 30), (2, 2, 32), (1, 4, 34)]
        {
            let (oh, ow) = (h / 2, wd / 2);
            let ints: Vec<i32> =
                (0..c * h * wd).map(|i| ((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 61) as i32 - 3).collect();
            let special = [f32::NAN, 0.0, -0.0, 1.5, -2.0];
            let floats: Vec<f32> =
                ints.iter().enumerate().map(|(i, &k)| if i % 7 == 3 { special[i % 5] } else { k as f32 }).collect();
            let mut want = vec![0; c * oh * ow];
            pool_windows(&ints, &[c, h, wd], &w, [oh, ow], |ch, p, vals, _| want[ch * oh * ow + p] = max_of(vals));
            let mut got = vec![7];
            max_pool(&ints, &[c, h, wd], &w, &[c, oh, ow], &mut got);
            assert_eq!(got[1..], want[..], "i32 {c}x{h}x{wd}");
            // Floats against the portable loops, which take the same maxima in the same order
            // (down, then across: +0 and -0, or a NaN, may come out otherwise in another order).
            let mut want = Vec::new();
            max_pool_body(&floats, &[c, h, wd], &w, &[c, oh, ow], &mut want);
            let mut got = vec![7.0];
            max_pool(&floats, &[c, h, wd], &w, &[c, oh, ow], &mut got);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got[1..]), bits(&want), "f32 {c}x{h}x{wd}");
        }
    }
}
