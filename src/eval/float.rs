//! The float32 reference path: what the model computes before quantization.

use super::depthwise::MaskedTaps;
use super::kernels::{
    convert_row, depthwise, pool_windows, run_offsets, scratch_prefix, ConvGeom, Isa, Phases, SumLayout,
};
use super::permute::PaddedRows;
use super::runner::{run_image, Engine, Scratch, Workspace};
use super::sgemm::{self, Epilogue, FloatIsa, PackedF32, PixelTiles};
use crate::model::{Activation, Graph, Node, Op};

/// Float parameters of one layer, cast once from the IR's f64.
struct Params {
    weight: Vec<f32>,
    bias: Vec<f32>,
    /// A convolution's weights packed for [`sgemm::gemm_runs`], one matrix per group (none for
    /// depthwise convolutions, which run on their own kernel, for convolutions on pixel tiles,
    /// and for other layers).
    packed: Vec<PackedF32>,
    /// A convolution on pixel tiles, where they pay.
    tiled: Option<TileConv>,
    /// A depthwise convolution on the masked-tap kernel, where it applies.
    masked: Option<MaskedTaps>,
}

/// A convolution on pixel tiles ([`PixelTiles::new`]; for every group): all that depends on
/// its geometry alone, computed once, so that an image only lays out its padded input and runs
/// the tiles.
struct TileConv {
    geom: ConvGeom,
    /// Its padded input, read as it lies whatever the stride ([`tile_input`]), laid by whole
    /// rows (pixel tiles and padded rows both run on AVX-512), and that layout's length with
    /// its slack.
    rows: PaddedRows,
    padded_len: usize,
    /// Its activation, applied as the tiles store their sums.
    epilogue: Epilogue,
    tiles: Vec<PixelTiles>,
    /// Each group's run offsets, tap-major as the tiles' weights (see [`tap_major`]).
    offsets: Vec<Vec<usize>>,
    /// The virtual column each output pixel reads.
    cols: Vec<usize>,
}

impl TileConv {
    /// `geom`'s convolution on pixel tiles, where they pay for every group; `weight` as the IR's.
    fn new(geom: &ConvGeom, weight: &[f32], act: Activation, fisa: FloatIsa) -> Option<Self> {
        let (og, k, cg) = (geom.out_c / geom.groups, geom.k(), geom.in_c / geom.groups);
        let hw = geom.pixels();
        let panels = if is_pointwise(geom) { hw } else { Phases::geometry(geom).n };
        let span = |q| tap_rows(geom, q);
        let tiles: Vec<_> = weight
            .chunks_exact(og * k)
            .map_while(|w| PixelTiles::new(og, k, &tap_major(geom, w), hw, panels, fisa, span))
            .collect();
        if tiles.len() != geom.groups {
            return None;
        }
        let padded = tile_input(geom);
        let laid = Phases::geometry(&padded);
        let [sh, sw] = geom.window.stride;
        let cols = (0..hw)
            .map(|q| if is_pointwise(geom) { q } else { q / geom.out_w * sh * laid.wq + q % geom.out_w * sw })
            .collect();
        // A pointwise convolution reads its input as it lies: one run per channel.
        let (chan, taps) =
            if is_pointwise(geom) { (geom.in_h * geom.in_w, vec![0]) } else { (laid.chan, laid.taps.clone()) };
        let offsets = (0..geom.groups)
            .map(|grp| taps.iter().flat_map(|&t| (grp * cg..(grp + 1) * cg).map(move |c| c * chan + t)).collect())
            .collect();
        let (epilogue, padded_len) = (Epilogue::of(act), laid.laid_len(&padded));
        let rows = PaddedRows::new(&padded)?;
        Some(TileConv { geom: *geom, rows, padded_len, epilogue, tiles, offsets, cols })
    }

    /// The convolution of one image's `input` into `out` (its sums, biased and activated as
    /// the tiles store them); `padded` is this layer's own buffer, whose padding and slack are
    /// zeroed once (where its length is not the layout's), the interior written every image.
    fn run(&self, input: &[f32], bias: &[f32], padded: &mut Vec<f32>, tmp: &mut Vec<f32>, out: &mut Vec<f32>) {
        let g = &self.geom;
        let src = if is_pointwise(g) {
            input
        } else {
            if padded.len() != self.padded_len {
                padded.clear();
                padded.resize(self.padded_len, 0.0);
            }
            self.rows.lay(input, padded);
            padded.as_slice()
        };
        let (hw, og) = (g.pixels(), g.out_c / g.groups);
        let start = out.len();
        out.resize(start + g.out_c * hw, 0.0);
        for (grp, (wts, offs)) in self.tiles.iter().zip(&self.offsets).enumerate() {
            let (c, b) = (&mut out[start + grp * og * hw..][..og * hw], &bias[grp * og..(grp + 1) * og]);
            sgemm::gemm_pixels(wts, src, offs, &self.cols, b, self.epilogue, c, tmp);
        }
    }
}

pub struct FloatEngine<'g> {
    graph: &'g Graph,
    params: Vec<Option<Params>>,
    /// The instruction set the depthwise kernel's loops run on.
    isa: Isa,
    /// The GEMM kernels' instruction set.
    fisa: FloatIsa,
}

impl<'g> FloatEngine<'g> {
    pub fn new(graph: &'g Graph) -> Self {
        let isa = Isa::best();
        let fisa = FloatIsa::for_isa(isa);
        let params = graph
            .nodes
            .iter()
            .map(|n| {
                n.op.params().map(|(w, b)| {
                    let weight: Vec<f32> = w.iter().map(|&x| x as f32).collect();
                    let geom = matches!(n.op, Op::Conv(_)).then(|| conv_geom(graph, n));
                    let masked = geom.as_ref().and_then(|g| MaskedTaps::new(g, isa));
                    let geom = geom.filter(|g| !g.is_depthwise());
                    let act = match &n.op {
                        Op::Conv(c) => c.activation,
                        _ => Activation::None,
                    };
                    let tiled = geom.as_ref().and_then(|g| TileConv::new(g, &weight, act, fisa));
                    let packed = match geom {
                        Some(g) if tiled.is_none() => {
                            let (og, k) = (g.out_c / g.groups, g.k());
                            weight.chunks_exact(og * k).map(|w| PackedF32::new(og, k, w, fisa)).collect()
                        }
                        _ => Vec::new(),
                    };
                    Params { weight, bias: b.iter().map(|&x| x as f32).collect(), packed, tiled, masked }
                })
            })
            .collect();
        FloatEngine { graph, params, isa, fisa }
    }

    /// Run one sample, returning the logits.
    pub fn forward(&self, input: &[f32]) -> Vec<f32> {
        let mut ws = Workspace::new(self.graph);
        run_image(self.graph, self, &mut ws, input, false).to_vec()
    }

    /// Run one sample keeping every value (for calibration).
    pub fn forward_all(&self, ws: &mut Workspace<f32>, input: &[f32]) {
        run_image(self.graph, self, ws, input, true);
    }
}

pub fn activate(x: f32, act: Activation) -> f32 {
    match act {
        Activation::None => x,
        Activation::Relu => x.max(0.0),
        Activation::Clip { min, max } => x.clamp(min as f32, max as f32),
    }
}

/// Append `activate(x)` for every `x` of `xs`: the activation chosen once per call instead of
/// per value, in one pass (not a copy and then a pass in place, nor a library copy per short
/// segment), so that the loops vectorize.
#[inline(always)]
fn push_activated(out: &mut Vec<f32>, xs: impl Iterator<Item = f32>, act: Activation) {
    match act {
        Activation::None => out.extend(xs),
        Activation::Relu => out.extend(xs.map(|x| x.max(0.0))),
        Activation::Clip { min, max } => {
            let (lo, hi) = (min as f32, max as f32);
            out.extend(xs.map(|x| clip(x, lo, hi)));
        }
    }
}

/// `x = activate(x + b)` for every `x` of `xs`.
fn activate_in_place(xs: &mut [f32], b: f32, act: Activation) {
    match act {
        Activation::None => xs.iter_mut().for_each(|x| *x += b),
        Activation::Relu => xs.iter_mut().for_each(|x| *x = (*x + b).max(0.0)),
        Activation::Clip { min, max } => {
            let (lo, hi) = (min as f32, max as f32);
            xs.iter_mut().for_each(|x| *x = clip(*x + b, lo, hi));
        }
    }
}

/// `x.clamp(lo, hi)` spelled as selects (NaN passes, as through `clamp`): `clamp`'s own check
/// of its bounds keeps a loop from vectorizing.
#[inline(always)]
fn clip(x: f32, lo: f32, hi: f32) -> f32 {
    if x < lo {
        lo
    } else if x > hi {
        hi
    } else {
        x
    }
}

/// Whether a convolution reads its input as it lies (1x1, stride 1, no padding): its runs are
/// the input's channels, no phases.
fn is_pointwise(g: &ConvGeom) -> bool {
    let w = &g.window;
    w.kernel == [1, 1] && w.stride == [1, 1] && w.pads == [0; 4]
}

/// The geometry whose phases are the padded input of `g` as it lies (one phase): `g` at
/// stride 1, for pixel tiles, which find each pixel's column themselves.
fn tile_input(g: &ConvGeom) -> ConvGeom {
    let window = crate::model::Window { stride: [1, 1], ..g.window };
    let [out_h, out_w] = window.output_hw(g.in_h, g.in_w).expect("a stride-1 window fits where a strided one does");
    ConvGeom { out_h, out_w, window, ..*g }
}

/// One group's weights `[og][cg * taps]` (channel-major, as the IR's) in tap-major order,
/// `[og][taps * cg]`: the columns of a row of kernel taps lie together, so that a pixel tile
/// can skip those a whole tile reads only padding for (see [`tap_rows`]).
fn tap_major(g: &ConvGeom, w: &[f32]) -> Vec<f32> {
    let (taps, cg) = (g.window.kernel[0] * g.window.kernel[1], g.in_c / g.groups);
    let k = taps * cg;
    let mut out = vec![0.0; w.len()];
    for (row, dst) in w.chunks_exact(k).zip(out.chunks_exact_mut(k)) {
        for c in 0..cg {
            for t in 0..taps {
                dst[t * cg + c] = row[c * taps + t];
            }
        }
    }
    out
}

/// The tap-major columns ([`tap_major`]) output pixels `q` read outside the padding: rows of
/// kernel taps that lie in the top or bottom padding for every one of them are left out.
fn tap_rows(g: &ConvGeom, q: std::ops::Range<usize>) -> std::ops::Range<usize> {
    let ([kh, kw], [sh, _], [dh, _]) = (g.window.kernel, g.window.stride, g.window.dilation);
    let (cg, top) = (g.in_c / g.groups, g.window.pads[0]);
    let rows = q.start / g.out_w..=(q.end - 1) / g.out_w;
    let inside = |ky: usize| rows.clone().any(|oy| (top..top + g.in_h).contains(&(oy * sh + ky * dh)));
    let lo = (0..kh).find(|&ky| inside(ky)).unwrap_or(kh);
    let hi = (0..kh).rev().find(|&ky| inside(ky)).map_or(lo, |ky| ky + 1);
    lo * kw * cg..hi.max(lo) * kw * cg
}

/// The geometry of a Conv node against the graph's shapes.
pub fn conv_geom(graph: &Graph, node: &Node) -> ConvGeom {
    let Op::Conv(c) = &node.op else { unreachable!("conv_geom on {}", node.op.kind()) };
    let i = graph.shape(node.inputs[0]);
    let o = graph.shape(node.output);
    ConvGeom {
        in_c: i[0],
        in_h: i[1],
        in_w: i[2],
        out_c: o[0],
        out_h: o[1],
        out_w: o[2],
        groups: c.groups,
        window: c.window,
    }
}

impl Engine for FloatEngine<'_> {
    type T = f32;

    fn compute(&self, idx: usize, node: &Node, ins: &[&[f32]], out: &mut Vec<f32>, s: &mut Scratch) {
        match self.isa {
            // SAFETY: `Isa::best` chose the variant only where the machine has its features; the
            // body is safe code compiled for them (its elementwise loops vectorize on them).
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => unsafe { self.compute_avx512(idx, node, ins, out, s) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { self.compute_avx2(idx, node, ins, out, s) },
            _ => self.compute_body(idx, node, ins, out, s),
        }
    }

    /// Dense layers: one batched product reads their weights once for several images (each
    /// image's sums the same bits as alone, see `sgemm::gemv_images`).
    fn by_images(&self, _idx: usize, node: &Node) -> bool {
        matches!(node.op, Op::Dense(_))
    }

    fn compute_images(&self, idx: usize, node: &Node, ins: &[&[f32]], outs: &mut [Vec<f32>], s: &mut Scratch) {
        let (Op::Dense(d), Some(p)) = (&node.op, self.params[idx].as_ref()) else { unreachable!("dense layer") };
        let (k, m) = (d.in_features, d.out_features);
        let (x, y) = (&mut s.f32, &mut s.f32_b);
        x.clear();
        for input in ins {
            x.extend_from_slice(input);
        }
        y.resize(ins.len() * m, 0.0);
        sgemm::gemv_images(k, m, &p.weight, x, y, self.fisa);
        for (out, sums) in outs.iter_mut().zip(y.chunks_exact(m)) {
            out.extend(sums.iter().zip(&p.bias).map(|(&v, b)| activate(v + b, d.activation)));
        }
    }
}

impl FloatEngine<'_> {
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn compute_avx2(&self, idx: usize, node: &Node, ins: &[&[f32]], out: &mut Vec<f32>, s: &mut Scratch) {
        self.compute_body(idx, node, ins, out, s);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,fma")]
    unsafe fn compute_avx512(&self, idx: usize, node: &Node, ins: &[&[f32]], out: &mut Vec<f32>, s: &mut Scratch) {
        self.compute_body(idx, node, ins, out, s);
    }

    #[inline(always)]
    fn compute_body(&self, idx: usize, node: &Node, ins: &[&[f32]], out: &mut Vec<f32>, s: &mut Scratch) {
        let g = self.graph;
        let n_out = g.values[node.output].numel();
        match &node.op {
            Op::Conv(c) => {
                let p = self.params[idx].as_ref().unwrap();
                if let Some(t) = &p.tiled {
                    if s.padded_f32.len() <= idx {
                        s.padded_f32.resize_with(idx + 1, Vec::new);
                    }
                    t.run(ins[0], &p.bias, &mut s.padded_f32[idx], &mut s.f32_c, out);
                    return;
                }
                let geom = conv_geom(g, node);
                let layout = if let Some(masked) = &p.masked {
                    masked.run(ins[0], &p.weight, &mut s.f32_b)
                } else if geom.is_depthwise() {
                    depthwise(&geom, ins[0], &p.weight, |x| x, self.isa, &mut s.f32, &mut s.f32_b)
                } else {
                    // Rows of the virtual im2col matrix: a pointwise convolution's are its input's
                    // channels as they lie, any other's the runs of its input's stride phases.
                    let ph =
                        (!is_pointwise(&geom)).then(|| Phases::new(&geom, ins[0], |x| x, 0.0, self.isa, &mut s.f32));
                    let hw = geom.pixels();
                    let (src, chan, taps, n) = match &ph {
                        Some(ph) => (s.f32.as_slice(), ph.chan, ph.taps.as_slice(), ph.n),
                        None => (ins[0], hw, &[0][..], hw),
                    };
                    let cg = geom.in_c / geom.groups;
                    let og = geom.out_c / geom.groups;
                    let gathered = ph.as_ref().filter(|ph| ph.gather_pays(&geom));
                    let n = if gathered.is_some() { hw } else { n };
                    let all = scratch_prefix(&mut s.f32_b, geom.out_c * n);
                    for (grp, wts) in p.packed.iter().enumerate() {
                        run_offsets(grp * cg..(grp + 1) * cg, chan, taps, 0..cg * taps.len(), &mut s.offsets);
                        let sums = &mut all[grp * og * n..(grp + 1) * og * n];
                        let src = match gathered {
                            Some(ph) => {
                                ph.gather(&geom, src, &s.offsets, 0, &mut s.f32_c);
                                let runs = s.offsets.len();
                                s.offsets.clear();
                                s.offsets.extend((0..runs).map(|p| p * n));
                                &s.f32_c
                            }
                            None => src,
                        };
                        sgemm::gemm_runs(wts, src, &s.offsets, n, sums, self.fisa);
                    }
                    match ph {
                        Some(ph) if gathered.is_none() => ph.layout(&geom),
                        _ => SumLayout::dense(hw),
                    }
                };
                // Activated over whole rows in place (long loops vectorize; extending by a map
                // over a row, or over a 7- or 14-column segment, ran scalar), then copied: the
                // real segments in whole vector chunks.
                let (per_row, len) = (layout.per_row, layout.seg_len);
                let sums = &mut s.f32_b[..geom.out_c * per_row];
                for (row, &b) in sums.chunks_exact_mut(per_row).zip(&p.bias) {
                    activate_in_place(row, b, c.activation);
                }
                if len == layout.seg_stride {
                    out.extend_from_slice(sums);
                } else {
                    let start = out.len();
                    out.resize(start + geom.out_c * layout.outputs(), 0.0);
                    let dst = &mut out[start..];
                    for (i, at) in (0..sums.len()).step_by(layout.seg_stride).enumerate() {
                        convert_row(&sums[at..at + len], &mut dst[i * len..(i + 1) * len], &|v| v);
                    }
                }
            }
            Op::Dense(_) => self.compute_images(idx, node, ins, std::slice::from_mut(out), s),
            Op::Affine(a) => {
                let p = self.params[idx].as_ref().unwrap();
                let per = ins[0].len() / a.channels;
                for ((xs, &w), &b) in ins[0].chunks_exact(per).zip(&p.weight).zip(&p.bias) {
                    push_activated(out, xs.iter().map(|&x| w * x + b), a.activation);
                }
            }
            Op::Add { activation } => {
                push_activated(out, ins[0].iter().zip(ins[1]).map(|(a, b)| a + b), *activation);
            }
            Op::Concat => {
                for x in ins {
                    out.extend_from_slice(x);
                }
            }
            Op::AvgPool { window, count_include_pad } => {
                let o = g.shape(node.output);
                out.resize(n_out, 0.0);
                pool_windows(ins[0], g.shape(node.inputs[0]), window, [o[1], o[2]], |c, i, vals, padded| {
                    let n = if *count_include_pad { padded } else { vals.len() };
                    out[c * o[1] * o[2] + i] = vals.iter().sum::<f32>() / n as f32;
                });
            }
            Op::GlobalAvgPool => {
                let shape = g.shape(node.inputs[0]);
                let hw = shape[1] * shape[2];
                out.extend(ins[0].chunks(hw).map(|ch| ch.iter().sum::<f32>() / hw as f32));
            }
            Op::Activation(a) => {
                push_activated(out, ins[0].iter().copied(), *a);
            }
            Op::MaxPool(_) | Op::GlobalMaxPool | Op::Flatten => unreachable!("handled by the runner"),
        }
    }
}
