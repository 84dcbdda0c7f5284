//! Plots with plotters, as SVG and PNG (same drawing code, two backends).
//!
//! plotters draws the frame, mesh and linear tick labels; everything else (points, lines, markers,
//! labels, legend) is drawn in pixel space, so labels can be placed by a small collision-avoiding
//! placer ([`Placer`]) and the x axis can be logarithmic with 1-2-5 ticks.

use super::font::{self, FAMILY};
use super::format::{self, fmt_si, objective_short, objective_title};
use super::raster::PngBackend;
use super::run::{LayerRow, Run, ShownFormats};
use anyhow::{anyhow, Context, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontTransform;

/// Plot size in pixels (PNG) and SVG user units: readable on a slide.
pub const WIDTH: u32 = 1200;
/// See [`WIDTH`].
pub const HEIGHT: u32 = 800;

/// A rendered plot, for embedding in the reports.
#[derive(Debug, Clone)]
pub struct Figure {
    /// File stem: `pareto_memory_bits`, `layers`.
    pub stem: String,
    /// What it shows, for captions: the objective's axis title, or "per-layer bitwidths".
    pub title: String,
    /// The SVG document.
    pub svg: String,
}

const GREY: RGBColor = RGBColor(140, 140, 140);
const DARK: RGBColor = RGBColor(40, 40, 40);
const BLUE: RGBColor = RGBColor(31, 100, 180);
const ORANGE: RGBColor = RGBColor(230, 120, 10);
const RED: RGBColor = RGBColor(205, 30, 35);
const GREEN: RGBColor = RGBColor(44, 150, 44);
const SUBTLE: RGBColor = RGBColor(90, 90, 90);

/// Accuracy vs objective `obj`, as an SVG document.
pub fn pareto_svg(run: &Run, obj: &str) -> Result<String> {
    svg(|root| draw_pareto(root, run, obj))
}

/// Accuracy vs objective `obj`, as PNG bytes.
pub fn pareto_png(run: &Run, obj: &str) -> Result<Vec<u8>> {
    png(|root| draw_pareto(root, run, obj))
}

/// Per-layer bitwidths of the chosen point beside the 8-bit baseline, as an SVG document.
pub fn layers_svg(run: &Run) -> Result<String> {
    svg(|root| draw_layers(root, run))
}

/// Per-layer bitwidths of the chosen point beside the 8-bit baseline, as PNG bytes.
pub fn layers_png(run: &Run) -> Result<Vec<u8>> {
    png(|root| draw_layers(root, run))
}

fn svg(draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<()>) -> Result<String> {
    font::ensure_registered();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root)?;
        root.present().map_err(err)?;
    }
    Ok(out)
}

fn png(draw: impl FnOnce(&DrawingArea<PngBackend, Shift>) -> Result<()>) -> Result<Vec<u8>> {
    font::ensure_registered();
    let mut buf = vec![255u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = PngBackend::with_buffer(&mut buf, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root)?;
        root.present().map_err(err)?;
    }
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, WIDTH, HEIGHT);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().context("PNG encoding failed")?;
        w.write_image_data(&buf).context("PNG encoding failed")?;
    }
    Ok(bytes)
}

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing the plot failed: {e}")
}

type Px = (i32, i32);
/// A data point: (objective value, accuracy in %).
type XY = (f64, f64);

/// An axis-aligned pixel rectangle, `x1`/`y1` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rect {
    x0: i32,
    y0: i32,
    x1: i32,
    y1: i32,
}

impl Rect {
    fn at(x: i32, y: i32, w: i32, h: i32) -> Rect {
        Rect { x0: x, y0: y, x1: x + w, y1: y + h }
    }
    fn around((x, y): Px, r: i32) -> Rect {
        Rect { x0: x - r, y0: y - r, x1: x + r, y1: y + r }
    }
    fn w(&self) -> i32 {
        self.x1 - self.x0
    }
    fn h(&self) -> i32 {
        self.y1 - self.y0
    }
    fn inflate(&self, d: i32) -> Rect {
        Rect { x0: self.x0 - d, y0: self.y0 - d, x1: self.x1 + d, y1: self.y1 + d }
    }
    fn overlap(&self, o: &Rect) -> i64 {
        let w = i64::from((self.x1.min(o.x1) - self.x0.max(o.x0)).max(0));
        let h = i64::from((self.y1.min(o.y1) - self.y0.max(o.y0)).max(0));
        w * h
    }
    fn contains(&self, (x, y): Px) -> bool {
        x >= self.x0 && x < self.x1 && y >= self.y0 && y < self.y1
    }
    fn inside(&self, o: &Rect) -> bool {
        self.x0 >= o.x0 && self.y0 >= o.y0 && self.x1 <= o.x1 && self.y1 <= o.y1
    }
    /// Distance from a point to the rectangle (0 inside).
    fn distance(&self, (x, y): Px) -> f64 {
        let dx = f64::from((self.x0 - x).max(x - self.x1 + 1).max(0));
        let dy = f64::from((self.y0 - y).max(y - self.y1 + 1).max(0));
        dx.hypot(dy)
    }
    /// The point of the rectangle's border nearest to `p`.
    fn nearest(&self, (x, y): Px) -> Px {
        (x.clamp(self.x0, self.x1 - 1), y.clamp(self.y0, self.y1 - 1))
    }
}

/// Greedy label placement: each label takes the candidate position with the least overlap with what is
/// already there (data points, lines, markers, earlier labels), nearest its anchor.
struct Placer {
    area: Rect,
    boxes: Vec<(Rect, f64)>,
    points: Vec<(Px, f64)>,
}

impl Placer {
    fn new(area: Rect) -> Placer {
        Placer { area, boxes: Vec::new(), points: Vec::new() }
    }
    fn add_point(&mut self, p: Px, weight: f64) {
        self.points.push((p, weight));
    }
    fn add_box(&mut self, r: Rect, weight: f64) {
        self.boxes.push((r, weight));
    }
    /// Sample a polyline every few pixels as weighted points.
    fn add_polyline(&mut self, pts: &[Px], weight: f64) {
        for w in pts.windows(2) {
            let ((x0, y0), (x1, y1)) = (w[0], w[1]);
            let n = (f64::from(x1 - x0).hypot(f64::from(y1 - y0)) / 5.0).ceil().max(1.0) as i32;
            for i in 0..=n {
                let t = f64::from(i) / f64::from(n);
                let p = (x0 + (f64::from(x1 - x0) * t) as i32, y0 + (f64::from(y1 - y0) * t) as i32);
                self.points.push((p, weight));
            }
        }
    }
    fn cost(&self, r: &Rect, anchor: Option<Px>, distance_weight: f64) -> f64 {
        if !r.inside(&self.area) {
            return f64::INFINITY;
        }
        let probe = r.inflate(2);
        let area = f64::from((probe.w() * probe.h()).max(1));
        let mut cost = 0.0;
        for (b, w) in &self.boxes {
            let o = probe.overlap(b);
            if o > 0 {
                cost += w * (0.3 + o as f64 / area);
            }
        }
        cost += self.points.iter().filter(|(p, _)| probe.contains(*p)).map(|(_, w)| w).sum::<f64>();
        if let Some(a) = anchor {
            cost += distance_weight * r.distance(a);
        }
        cost
    }
    /// Pick the best of `candidates` (top-left corners) for a `w`x`h` box; it becomes an obstacle.
    fn place(&mut self, w: i32, h: i32, candidates: &[Px], anchor: Option<Px>, distance_weight: f64) -> Rect {
        let mut best: Option<(f64, Rect)> = None;
        for (i, &(x, y)) in candidates.iter().enumerate() {
            let r = Rect::at(x, y, w, h);
            let c = self.cost(&r, anchor, distance_weight) + i as f64 * 1e-3;
            if best.is_none_or(|(bc, _)| c < bc) {
                best = Some((c, r));
            }
        }
        let r = match best {
            Some((c, r)) if c.is_finite() => r,
            // Nothing fits inside the area: clamp the first candidate into it.
            _ => {
                let (x, y) = candidates.first().copied().unwrap_or((self.area.x0, self.area.y0));
                Rect::at(
                    x.clamp(self.area.x0, (self.area.x1 - w).max(self.area.x0)),
                    y.clamp(self.area.y0, (self.area.y1 - h).max(self.area.y0)),
                    w,
                    h,
                )
            }
        };
        self.add_box(r, 1000.0);
        r
    }
}

/// Candidate positions for a `w`x`h` label around a marker of radius `r` at `p`.
fn around_marker((x, y): Px, r: i32, w: i32, h: i32) -> Vec<Px> {
    let g = r + 4;
    vec![
        (x + g, y - h / 2),
        (x - g - w, y - h / 2),
        (x - w / 2, y - g - h),
        (x - w / 2, y + g),
        (x + g, y - g - h + 4),
        (x + g, y + g - 4),
        (x - g - w, y - g - h + 4),
        (x - g - w, y + g - 4),
        (x + 2 * g, y - h / 2),
        (x - 2 * g - w, y - h / 2),
        (x - w / 2, y - 2 * g - h),
        (x - w / 2, y + 2 * g),
    ]
}

/// Marker shapes, drawn in pixel space.
#[derive(Debug, Clone, Copy)]
enum Marker {
    Dot(i32),
    Ring(i32),
    Triangle(i32),
    Diamond(i32),
    Star(i32),
}

/// Pixel-space drawing on the root area.
struct Canvas<'a, DB: DrawingBackend> {
    root: &'a DrawingArea<DB, Shift>,
}

fn font(size: f64) -> TextStyle<'static> {
    TextStyle::from((FAMILY, size).into_font())
}

impl<DB: DrawingBackend> Canvas<'_, DB> {
    fn measure(&self, text: &str, size: f64) -> Px {
        let (w, h) = self.root.estimate_text_size(text, &font(size)).unwrap_or((text.len() as u32 * 10, 20));
        (w as i32, h as i32 + (size * 0.2) as i32)
    }
    fn text(&self, text: &str, at: Px, size: f64, color: RGBColor, h: HPos, v: VPos) -> Result<()> {
        let style = font(size).color(&color).pos(Pos::new(h, v));
        self.root.draw_text(text, &style, at).map_err(err)
    }
    fn text_rotated(&self, text: &str, at: Px, size: f64, color: RGBColor) -> Result<()> {
        let style =
            font(size).color(&color).pos(Pos::new(HPos::Right, VPos::Center)).transform(FontTransform::Rotate270);
        self.root.draw_text(text, &style, at).map_err(err)
    }
    fn line(&self, pts: Vec<Px>, style: ShapeStyle) -> Result<()> {
        self.root.draw(&PathElement::new(pts, style)).map_err(err)
    }
    fn dashed(&self, from: Px, to: Px, dash: i32, gap: i32, style: ShapeStyle) -> Result<()> {
        let len = f64::from(to.0 - from.0).hypot(f64::from(to.1 - from.1));
        let mut t = 0.0;
        while t < len {
            let e = (t + f64::from(dash)).min(len);
            let at = |s: f64| {
                (
                    from.0 + (f64::from(to.0 - from.0) * s / len) as i32,
                    from.1 + (f64::from(to.1 - from.1) * s / len) as i32,
                )
            };
            self.line(vec![at(t), at(e)], style)?;
            t += f64::from(dash + gap);
        }
        Ok(())
    }
    fn rect(&self, r: Rect, style: ShapeStyle) -> Result<()> {
        self.root.draw(&Rectangle::new([(r.x0, r.y0), (r.x1, r.y1)], style)).map_err(err)
    }
    fn polygon(&self, pts: Vec<Px>, fill: RGBColor, stroke: RGBColor) -> Result<()> {
        self.root.draw(&Polygon::new(pts.clone(), fill.filled())).map_err(err)?;
        let mut closed = pts;
        closed.push(closed[0]);
        self.line(closed, stroke.stroke_width(2))
    }
    fn marker(&self, m: Marker, (x, y): Px, fill: RGBColor, stroke: RGBColor) -> Result<()> {
        match m {
            Marker::Dot(r) => self.root.draw(&Circle::new((x, y), r, fill.filled())).map_err(err),
            Marker::Ring(r) => self.root.draw(&Circle::new((x, y), r, stroke.stroke_width(2))).map_err(err),
            Marker::Triangle(r) => {
                let h = (f64::from(r) * 0.87) as i32;
                self.polygon(vec![(x, y - r), (x + h, y + r / 2), (x - h, y + r / 2)], fill, stroke)
            }
            Marker::Diamond(r) => self.polygon(vec![(x, y - r), (x + r, y), (x, y + r), (x - r, y)], fill, stroke),
            Marker::Star(r) => {
                let pts = (0..10)
                    .map(|i| {
                        let a = -std::f64::consts::FRAC_PI_2 + f64::from(i) * std::f64::consts::PI / 5.0;
                        let rr = if i % 2 == 0 { f64::from(r) } else { f64::from(r) * 0.45 };
                        (x + (rr * a.cos()).round() as i32, y + (rr * a.sin()).round() as i32)
                    })
                    .collect();
                self.polygon(pts, fill, stroke)
            }
        }
    }
    /// A label with a translucent white background, top-left at `r`.
    fn label(&self, r: Rect, text: &str, size: f64, color: RGBColor) -> Result<()> {
        self.rect(r, WHITE.mix(0.75).filled())?;
        self.text(text, (r.x0 + 3, r.y0 + 2), size, color, HPos::Left, VPos::Top)
    }
    fn title(&self, title: &str, subtitle: &str) -> Result<()> {
        self.text(title, (30, 16), 28.0, DARK, HPos::Left, VPos::Top)?;
        self.text(subtitle, (30, 54), 17.0, SUBTLE, HPos::Left, VPos::Top)
    }
}

/// How a legend entry is drawn.
#[derive(Debug, Clone, Copy)]
enum Symbol {
    Marker(Marker, RGBColor, RGBColor),
    LineMarker(RGBColor),
    Line(RGBColor),
    Dashed(RGBColor),
    Swatch(RGBColor, RGBColor),
    None,
}

fn draw_symbol<DB: DrawingBackend>(cv: &Canvas<DB>, s: Symbol, (x, y): Px) -> Result<()> {
    let cx = x + 16;
    match s {
        Symbol::Marker(m, f, st) => cv.marker(m, (cx, y), f, st),
        Symbol::LineMarker(c) => {
            cv.line(vec![(x, y), (x + 32, y)], c.stroke_width(3))?;
            cv.marker(Marker::Dot(5), (cx, y), c, c)
        }
        Symbol::Line(c) => cv.line(vec![(x, y), (x + 32, y)], c.stroke_width(2)),
        Symbol::Dashed(c) => cv.dashed((x, y), (x + 32, y), 7, 5, c.stroke_width(2)),
        Symbol::Swatch(f, st) => {
            cv.rect(Rect::at(x + 6, y - 8, 20, 16), f.filled())?;
            cv.rect(Rect::at(x + 6, y - 8, 20, 16), st.stroke_width(1))
        }
        Symbol::None => Ok(()),
    }
}

const LEGEND_SIZE: f64 = 17.0;

fn legend_size<DB: DrawingBackend>(cv: &Canvas<DB>, entries: &[(Symbol, String)]) -> Px {
    let row = 26;
    let w = entries.iter().map(|(_, t)| cv.measure(t, LEGEND_SIZE).0).max().unwrap_or(0) + 44 + 16;
    (w, entries.len() as i32 * row + 14)
}

fn draw_legend<DB: DrawingBackend>(cv: &Canvas<DB>, r: Rect, entries: &[(Symbol, String)]) -> Result<()> {
    cv.rect(r, WHITE.mix(0.92).filled())?;
    cv.rect(r, RGBColor(180, 180, 180).stroke_width(1))?;
    for (i, (s, t)) in entries.iter().enumerate() {
        let y = r.y0 + 7 + 13 + i as i32 * 26;
        draw_symbol(cv, *s, (r.x0 + 8, y))?;
        let color = if matches!(s, Symbol::None) { SUBTLE } else { DARK };
        cv.text(t, (r.x0 + 50, y), LEGEND_SIZE, color, HPos::Left, VPos::Center)?;
    }
    Ok(())
}

/// Candidate legend positions: corners and edge midpoints of the plot area.
fn legend_candidates(area: Rect, w: i32, h: i32) -> Vec<Px> {
    let m = 10;
    let (l, r) = (area.x0 + m, area.x1 - m - w);
    let (t, b) = (area.y0 + m, area.y1 - m - h);
    let (cx, cy) = ((area.x0 + area.x1 - w) / 2, (area.y0 + area.y1 - h) / 2);
    vec![(r, b), (l, t), (r, t), (l, b), (r, cy), (l, cy), (cx, b), (cx, t)]
}

/// Split the joint Pareto front into the points non-dominated in (x, accuracy), sorted by x, and the rest.
fn front_2d(points: &[XY]) -> (Vec<XY>, Vec<XY>) {
    let mut sorted: Vec<XY> = points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
    let (mut front, mut rest) = (Vec::new(), Vec::new());
    let mut best = f64::NEG_INFINITY;
    for p in sorted {
        if p.1 > best {
            best = p.1;
            front.push(p);
        } else {
            rest.push(p);
        }
    }
    (front, rest)
}

/// Tick values 1-2-5 (or 1 only, for wide spans) x 10^k within [lo, hi].
fn log_ticks(lo: f64, hi: f64) -> Vec<(f64, bool)> {
    let (d0, d1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let wide = hi / lo > 10f64.powf(3.5);
    let mut out = Vec::new();
    for d in d0..=d1 {
        for m in 1..10 {
            let v = f64::from(m) * 10f64.powi(d);
            if v >= lo && v <= hi {
                let labelled = m == 1 || (!wide && (m == 2 || m == 5));
                out.push((v, labelled));
            }
        }
    }
    if out.iter().filter(|t| t.1).count() < 2 {
        for t in &mut out {
            t.1 = true;
        }
    }
    out
}

fn subtitle(run: &Run) -> String {
    let s = &run.summary;
    let mut parts = Vec::new();
    if !s.model.is_empty() {
        parts.push(s.model.clone());
    }
    if !s.profile.is_empty() {
        parts.push(format!("profile {}", s.profile));
    }
    if !s.strategy.is_empty() {
        parts.push(format!("strategy {}", s.strategy));
    }
    parts.push(format!("{} evaluations", s.evaluations.unwrap_or(run.evaluations.len() as u64)));
    parts.push(format::budget(s.max_loss, s.loss));
    parts.join(" · ")
}

/// The annotation of the chosen point: "chosen: −53% memory, −77% mult cost vs 8-bit; holdout loss 0.9%".
pub fn chosen_annotation(run: &Run) -> Option<String> {
    let s = &run.summary;
    let c = s.chosen.as_ref()?;
    let parts: Vec<String> = s
        .objectives
        .iter()
        .filter_map(|o| {
            c.reduction(o, &s.baseline_8bit).map(|r| format!("{} {}", format::reduction(r), objective_short(o)))
        })
        .collect();
    let holdout = format!("holdout loss {}", format::loss(c.loss_holdout, s.loss, 1));
    Some(if parts.is_empty() {
        format!("chosen: {holdout}")
    } else {
        format!("chosen: {} vs 8-bit; {holdout}", parts.join(", "))
    })
}

/// What a Pareto plot shows of a run, in (objective value, accuracy %) coordinates.
struct ParetoData {
    /// Every evaluated assignment.
    evals: Vec<XY>,
    /// The 2-D front of pareto.csv's rows, and its other rows (on the front in all objectives).
    front: Vec<XY>,
    others: Vec<XY>,
    /// The same rows on the holdout split: how much of the front holds on images the search
    /// never saw (docs/data-roles.md).
    holdout: Vec<XY>,
    sweep: Vec<(u32, f64, f64)>,
    baseline: Option<XY>,
    chosen: Option<XY>,
    float: f64,
    budget: f64,
}

impl ParetoData {
    fn gather(run: &Run, obj: &str) -> Result<ParetoData> {
        let s = &run.summary;
        let k = run.objective_index(obj).with_context(|| format!("'{obj}' is not an objective of this run"))?;
        let evals = run.evaluations.iter().map(|e| (e.objectives[k], e.acc_search * 100.0)).collect();
        let joint: Vec<XY> = run.pareto.iter().map(|r| (r.eval.objectives[k], r.eval.acc_search * 100.0)).collect();
        let (front, others) = front_2d(&joint);
        let holdout = run.pareto.iter().filter_map(|r| Some((r.eval.objectives[k], r.acc_holdout? * 100.0))).collect();
        let sweep =
            s.uniform_sweep.iter().filter_map(|p| Some((p.bits, p.cost(obj)?, p.accuracy_search * 100.0))).collect();
        Ok(ParetoData {
            evals,
            front,
            others,
            holdout,
            sweep,
            baseline: s.baseline_8bit.cost(obj).map(|c| (c, s.baseline_8bit.accuracy_search * 100.0)),
            chosen: s.chosen.as_ref().and_then(|c| Some((c.cost(obj)?, c.accuracy_search * 100.0))),
            float: s.float_accuracy.search * 100.0,
            budget: s.budget_accuracy() * 100.0,
        })
    }

    /// Every finite point, for the axis ranges.
    fn all(&self) -> Vec<XY> {
        self.evals
            .iter()
            .chain(&self.front)
            .chain(&self.others)
            .chain(&self.holdout)
            .copied()
            .chain(self.sweep.iter().map(|&(_, x, y)| (x, y)))
            .chain(self.baseline)
            .chain(self.chosen)
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect()
    }
}

/// The axis ranges of a Pareto plot.
struct Axes {
    xmin: f64,
    /// Logarithmic x axis (the values span more than 30x).
    log: bool,
    /// The x range in axis units (log10 of the value on a log axis).
    tx0: f64,
    tx1: f64,
    y0: f64,
    y1: f64,
    /// Evaluations below the y range, counted in the legend.
    hidden: usize,
    ydecimals: usize,
}

impl Axes {
    fn fit(d: &ParetoData) -> Axes {
        let all = d.all();
        // x range: every value; logarithmic when it spans more than 30x.
        let (xmin, xmax) = all.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.0), b.max(p.0)));
        let (xmin, xmax) = if xmin.is_finite() { (xmin, xmax) } else { (0.0, 1.0) };
        let log = xmin > 0.0 && xmax / xmin > 30.0;
        let tx = |x: f64| if log { x.log10() } else { x };
        let (t0, t1) = (tx(xmin), tx(xmax));
        let span = if t1 > t0 { t1 - t0 } else { t0.abs().max(1.0) * 0.2 };
        let (mut tx0, tx1) = (t0 - 0.05 * span, t1 + 0.05 * span);
        if !log && xmin >= 0.0 && tx0 < 0.0 {
            tx0 = 0.0;
        }
        // y range: zoom on the region that matters (float, budget, front near the budget);
        // far-off points are counted in the legend instead of squashing the interesting band.
        let (float, budget) = (d.float, d.budget);
        let gap = (float - budget).abs().max(0.1);
        let floor = float - (10.0 * gap).max(6.0);
        let lowest = all.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let highest = all.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
        let bottom = lowest.max(floor).min(budget).min(float);
        let top = highest.max(float).max(budget);
        let yspan = (top - bottom).max(0.5);
        let (y0, y1) = (bottom - 0.04 * yspan, top + 0.08 * yspan);
        let hidden = d.evals.iter().filter(|p| p.1 < y0).count();
        Axes { xmin, log, tx0, tx1, y0, y1, hidden, ydecimals: if yspan < 4.0 { 1 } else { 0 } }
    }

    /// A value in x axis units.
    fn tx(&self, x: f64) -> f64 {
        if self.log {
            x.log10()
        } else {
            x
        }
    }

    fn shown(&self, p: &XY) -> bool {
        p.0.is_finite() && p.1 >= self.y0 && p.1 <= self.y1
    }
}

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The chart frame, mesh and linear tick labels (plotters draws these).
fn pareto_chart<'a, DB: DrawingBackend>(root: &'a DrawingArea<DB, Shift>, obj: &str, ax: &Axes) -> Result<Chart<'a, DB>>
where
    DB::ErrorType: 'static,
{
    let mut chart = ChartBuilder::on(root)
        .margin_top(88)
        .margin_left(20)
        .margin_right(36)
        .margin_bottom(12)
        .x_label_area_size(72)
        .y_label_area_size(92)
        .build_cartesian_2d(ax.tx0..ax.tx1, ax.y0..ax.y1)
        .map_err(err)?;
    let xfmt = |v: &f64| fmt_si(*v);
    let ydecimals = ax.ydecimals;
    let yfmt = |v: &f64| format!("{v:.ydecimals$}");
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(objective_title(obj))
        .y_desc("accuracy (%), search split unless marked holdout")
        .axis_desc_style((FAMILY, 22))
        .label_style((FAMILY, 18))
        .y_label_formatter(&yfmt)
        .y_labels(10)
        .light_line_style(RGBColor(242, 242, 242))
        .bold_line_style(RGBColor(218, 218, 218))
        .axis_style(GREY.stroke_width(1));
    if ax.log {
        mesh.x_labels(0).disable_x_mesh();
    } else {
        mesh.x_labels(9).x_label_formatter(&xfmt);
    }
    mesh.draw().map_err(err)?;
    Ok(chart)
}

/// The 1-2-5 grid and tick labels of a logarithmic x axis.
fn draw_log_ticks<DB: DrawingBackend>(f: &Frame<DB>) -> Result<()> {
    let Frame { cv, ax, area, px } = *f;
    for (v, labelled) in log_ticks(ax.xmin.min(10f64.powf(ax.tx0)), 10f64.powf(ax.tx1)) {
        let x = px((v, ax.y0)).0;
        if x < area.x0 || x >= area.x1 {
            continue;
        }
        let grid = if labelled { RGBColor(218, 218, 218) } else { RGBColor(242, 242, 242) };
        cv.line(vec![(x, area.y0), (x, area.y1 - 1)], grid.stroke_width(1))?;
        if labelled {
            cv.line(vec![(x, area.y1), (x, area.y1 + 6)], GREY.stroke_width(1))?;
            cv.text(&fmt_si(v), (x, area.y1 + 9), 18.0, DARK, HPos::Center, VPos::Top)?;
        }
    }
    cv.text("(log scale)", (area.x1, area.y1 + 44), 15.0, SUBTLE, HPos::Right, VPos::Top)
}

/// Where the drawn marks landed, in pixels, for their labels.
struct Marks {
    /// The budget and float lines' y.
    yb: i32,
    yf: i32,
    sweep: Vec<(u32, Px)>,
    baseline: Option<Px>,
    chosen: Option<Px>,
}

/// The plotting area of a Pareto plot: where to draw and how values map to pixels.
struct Frame<'a, DB: DrawingBackend> {
    cv: &'a Canvas<'a, DB>,
    ax: &'a Axes,
    area: Rect,
    px: &'a dyn Fn(XY) -> Px,
}

/// Every point, line and marker of the plot, each registered with the label placer.
fn draw_marks<DB: DrawingBackend>(f: &Frame<DB>, d: &ParetoData, placer: &mut Placer) -> Result<Marks>
where
    DB::ErrorType: 'static,
{
    let Frame { cv, ax, area, px } = *f;
    // Every evaluated assignment, faint.
    for p in d.evals.iter().filter(|p| ax.shown(p)) {
        let q = px(*p);
        cv.root.draw(&Circle::new(q, 3, GREY.mix(0.3).filled())).map_err(err)?;
        placer.add_point(q, 1.0);
    }
    // Budget and float lines.
    let yb = px((ax.xmin, d.budget)).1;
    let yf = px((ax.xmin, d.float)).1;
    cv.line(vec![(area.x0, yb), (area.x1 - 1, yb)], RED.mix(0.85).stroke_width(2))?;
    cv.dashed((area.x0, yf), (area.x1 - 1, yf), 10, 6, DARK.stroke_width(2))?;
    placer.add_polyline(&[(area.x0, yb), (area.x1 - 1, yb)], 6.0);
    placer.add_polyline(&[(area.x0, yf), (area.x1 - 1, yf)], 6.0);

    draw_front(f, d, placer)?;
    for p in d.holdout.iter().filter(|p| ax.shown(p)) {
        cv.marker(Marker::Ring(4), px(*p), GREEN, GREEN)?;
        placer.add_box(Rect::around(px(*p), 4), 20.0);
    }

    // Uniform sweep, 8-bit baseline, chosen point.
    let sweep: Vec<(u32, Px)> =
        d.sweep.iter().filter(|&&(_, x, y)| ax.shown(&(x, y))).map(|&(b, x, y)| (b, px((x, y)))).collect();
    for &(_, q) in &sweep {
        cv.marker(Marker::Triangle(9), q, ORANGE, RGBColor(150, 70, 0))?;
        placer.add_box(Rect::around(q, 9), 200.0);
    }
    let baseline = d.baseline.filter(|p| ax.shown(p)).map(px);
    if let Some(q) = baseline {
        cv.marker(Marker::Diamond(11), q, DARK, WHITE)?;
        placer.add_box(Rect::around(q, 11), 300.0);
    }
    let chosen = d.chosen.filter(|p| ax.shown(p)).map(px);
    if let Some(q) = chosen {
        cv.marker(Marker::Star(17), q, RED, RGBColor(110, 0, 0))?;
        placer.add_box(Rect::around(q, 15), 400.0);
    }
    Ok(Marks { yb, yf, sweep, baseline, chosen })
}

/// The front: a line with markers, clipped to the y range; then the other front rows.
fn draw_front<DB: DrawingBackend>(f: &Frame<DB>, d: &ParetoData, placer: &mut Placer) -> Result<()> {
    let Frame { cv, ax, area, px } = *f;
    let front = &d.front;
    let fpx: Vec<Px> = front.iter().map(|&p| px(p)).collect();
    let clip_y = area.y1 - 1;
    let mut segments: Vec<Vec<Px>> = vec![Vec::new()];
    for (i, p) in front.iter().enumerate() {
        if ax.shown(p) {
            if i > 0 && !ax.shown(&front[i - 1]) && segments.last().is_some_and(Vec::is_empty) {
                let (a, b) = (fpx[i - 1], fpx[i]);
                if a.1 != b.1 {
                    let t = f64::from(clip_y - b.1) / f64::from(a.1 - b.1);
                    segments.last_mut().unwrap().push((b.0 + (f64::from(a.0 - b.0) * t) as i32, clip_y));
                }
            }
            segments.last_mut().unwrap().push(fpx[i]);
        } else if !segments.last().unwrap().is_empty() {
            segments.push(Vec::new());
        }
    }
    for seg in segments.iter().filter(|s| s.len() > 1) {
        cv.line(seg.clone(), BLUE.stroke_width(3))?;
        placer.add_polyline(seg, 12.0);
    }
    for p in d.others.iter().filter(|p| ax.shown(p)) {
        cv.marker(Marker::Ring(5), px(*p), BLUE, BLUE)?;
        placer.add_box(Rect::around(px(*p), 5), 20.0);
    }
    for (_, q) in front.iter().zip(&fpx).filter(|(p, _)| ax.shown(p)) {
        cv.marker(Marker::Dot(5), *q, BLUE, BLUE)?;
        placer.add_box(Rect::around(*q, 5), 40.0);
    }
    Ok(())
}

type Label = (Rect, String, f64, RGBColor);

/// Labels of the float and budget lines, the baseline and the sweep, most important first.
fn place_labels<DB: DrawingBackend>(
    cv: &Canvas<DB>,
    run: &Run,
    marks: &Marks,
    area: Rect,
    placer: &mut Placer,
) -> Vec<Label> {
    let s = &run.summary;
    let mut labels: Vec<Label> = Vec::new();
    let pad = |(w, h): Px| (w + 6, h + 4);
    let float_text = format!("float {}", format::pct(s.float_accuracy.search, 2));
    let budget_text =
        format!("budget {} ({})", format::pct(s.budget_accuracy(), 2), format::budget_inline(s.max_loss, s.loss));
    for (text, y, color, below_first) in [(float_text, marks.yf, DARK, false), (budget_text, marks.yb, RED, true)] {
        let (w, h) = pad(cv.measure(&text, 17.0));
        let (above, below) = (y - h - 3, y + 4);
        let (l, r) = (area.x0 + 8, area.x1 - 8 - w);
        let cands = if below_first {
            vec![(l, below), (r, below), (l, above), (r, above)]
        } else {
            vec![(l, above), (r, above), (l, below), (r, below)]
        };
        let rect = placer.place(w, h, &cands, None, 0.0);
        labels.push((rect, text, 17.0, color));
    }
    if let Some(q) = marks.baseline {
        let text = "8-bit baseline".to_string();
        let (w, h) = pad(cv.measure(&text, 18.0));
        let rect = placer.place(w, h, &around_marker(q, 11, w, h), Some(q), 0.5);
        labels.push((rect, text, 18.0, DARK));
    }
    for &(b, q) in &marks.sweep {
        if b == 8 && marks.baseline.is_some_and(|bq| (bq.0 - q.0).abs() < 12 && (bq.1 - q.1).abs() < 12) {
            continue; // the baseline's label says it
        }
        let text = format!("{b}-bit");
        let (w, h) = pad(cv.measure(&text, 16.0));
        let rect = placer.place(w, h, &around_marker(q, 9, w, h), Some(q), 0.5);
        labels.push((rect, text, 16.0, RGBColor(150, 70, 0)));
    }
    labels
}

/// The legend's entries: what is drawn, with counts.
fn legend_entries(d: &ParetoData, ax: &Axes) -> Vec<(Symbol, String)> {
    let mut entries: Vec<(Symbol, String)> = vec![
        (Symbol::Marker(Marker::Dot(4), GREY, GREY), format!("evaluated assignments ({})", d.evals.len())),
        (Symbol::LineMarker(BLUE), format!("Pareto front ({})", d.front.len())),
    ];
    if !d.others.is_empty() {
        entries.push((
            Symbol::Marker(Marker::Ring(5), BLUE, BLUE),
            format!("other points of the front in all objectives ({})", d.others.len()),
        ));
    }
    if !d.holdout.is_empty() {
        entries.push((
            Symbol::Marker(Marker::Ring(4), GREEN, GREEN),
            format!("front points on the holdout split ({})", d.holdout.len()),
        ));
    }
    if !d.sweep.is_empty() {
        entries.push((Symbol::Marker(Marker::Triangle(9), ORANGE, RGBColor(150, 70, 0)), "uniform b-bit".into()));
    }
    if d.baseline.is_some() {
        entries.push((Symbol::Marker(Marker::Diamond(10), DARK, WHITE), "8-bit baseline".into()));
    }
    if d.chosen.is_some() {
        entries.push((Symbol::Marker(Marker::Star(13), RED, RGBColor(110, 0, 0)), "chosen".into()));
    }
    entries.push((Symbol::Dashed(DARK), "float".into()));
    entries.push((Symbol::Line(RED), "budget".into()));
    if ax.hidden > 0 {
        let what = if ax.hidden == 1 { "evaluation" } else { "evaluations" };
        entries.push((Symbol::None, format!("{} {what} below {:.0}% not shown", ax.hidden, ax.y0)));
    }
    entries
}

/// The chosen point's annotation (or the "no point meets the budget" message): its lines and box.
fn place_note<DB: DrawingBackend>(
    cv: &Canvas<DB>,
    run: &Run,
    area: Rect,
    chosen: Option<Px>,
    placer: &mut Placer,
) -> (Vec<String>, Rect) {
    let s = &run.summary;
    let lines = match chosen_annotation(run) {
        Some(a) => split_annotation(cv, &a, f64::from(area.w()) * 0.42, 19.0),
        None => {
            vec!["no point meets the budget".to_string(), format!("({})", format::budget_inline(s.max_loss, s.loss))]
        }
    };
    let line_h = cv.measure("Hg", 19.0).1 + 2;
    let note_w = lines.iter().map(|l| cv.measure(l, 19.0).0).max().unwrap_or(0) + 20;
    let note_h = lines.len() as i32 * line_h + 14;
    let mut cands = Vec::new();
    if let Some(q) = chosen {
        cands.extend(around_marker(q, 20, note_w, note_h));
    }
    for i in 0..=12 {
        for j in 0..=12 {
            let x = area.x0 + 10 + (area.w() - note_w - 20) * i / 12;
            let y = area.y0 + 10 + (area.h() - note_h - 20) * j / 12;
            cands.push((x, y));
        }
    }
    let rect = placer.place(note_w, note_h, &cands, chosen.or(Some((area.x0 + area.w() / 2, area.y0))), 0.06);
    (lines, rect)
}

/// The annotation box, with a leader line to the chosen point when it is not beside it.
fn draw_note<DB: DrawingBackend>(cv: &Canvas<DB>, lines: &[String], rect: Rect, chosen: Option<Px>) -> Result<()> {
    if let Some(q) = chosen {
        if rect.distance(q) > 18.0 {
            cv.line(vec![rect.nearest(q), q], RED.stroke_width(2))?;
        }
    }
    let line_h = cv.measure("Hg", 19.0).1 + 2;
    cv.rect(rect, WHITE.mix(0.95).filled())?;
    cv.rect(rect, RED.stroke_width(2))?;
    for (i, l) in lines.iter().enumerate() {
        cv.text(l, (rect.x0 + 10, rect.y0 + 7 + i as i32 * line_h), 19.0, RED, HPos::Left, VPos::Top)?;
    }
    Ok(())
}

/// Accuracy vs one objective: every evaluation, the front (and its holdout points), the uniform
/// sweep, the baseline and the chosen point, with labels placed clear of the marks.
fn draw_pareto<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, run: &Run, obj: &str) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let s = &run.summary;
    let data = ParetoData::gather(run, obj)?;
    let cv = Canvas { root };
    root.fill(&WHITE).map_err(err)?;
    let ax = Axes::fit(&data);
    let title = format!("{}: accuracy vs {}", if s.name.is_empty() { "qdse" } else { &s.name }, objective_title(obj));
    cv.title(&title, &subtitle(run))?;

    let chart = pareto_chart(root, obj, &ax)?;
    let (xr, yr) = chart.plotting_area().get_pixel_range();
    let area = Rect { x0: xr.start, y0: yr.start, x1: xr.end, y1: yr.end };
    let px = |(x, y): XY| chart.backend_coord(&(ax.tx(x), y));
    let frame = Frame { cv: &cv, ax: &ax, area, px: &px };
    if ax.log {
        draw_log_ticks(&frame)?;
    }
    let mut placer = Placer::new(area);
    let marks = draw_marks(&frame, &data, &mut placer)?;
    let labels = place_labels(&cv, run, &marks, area, &mut placer);
    // The legend before the annotation: it has a few corner spots, the annotation many.
    let entries = legend_entries(&data, &ax);
    let (lw, lh) = legend_size(&cv, &entries);
    let legend_rect = placer.place(lw, lh, &legend_candidates(area, lw, lh), None, 0.0);
    let (note_lines, note_rect) = place_note(&cv, run, area, marks.chosen, &mut placer);

    // The labels, annotation and legend on top of everything.
    for (r, text, size, color) in &labels {
        cv.label(*r, text, *size, *color)?;
    }
    draw_note(&cv, &note_lines, note_rect, marks.chosen)?;
    draw_legend(&cv, legend_rect, &entries)
}

/// Break the annotation after "; " when it is wider than `max_w` pixels.
fn split_annotation<DB: DrawingBackend>(cv: &Canvas<DB>, text: &str, max_w: f64, size: f64) -> Vec<String> {
    if f64::from(cv.measure(text, size).0) <= max_w {
        return vec![text.to_string()];
    }
    let mut lines: Vec<String> = Vec::new();
    for part in text.split_inclusive("; ") {
        for piece in part.split_inclusive(", ") {
            match lines.last_mut() {
                Some(last)
                    if f64::from(cv.measure(&format!("{last}{piece}"), size).0) <= max_w && !last.ends_with("; ") =>
                {
                    last.push_str(piece);
                }
                _ => lines.push(piece.to_string()),
            }
        }
    }
    lines.into_iter().map(|l| l.trim_end().to_string()).collect()
}

/// Shorten a layer name for an axis label: drop a leading '/', keep the last two path components,
/// cut the middle of anything longer than `max` characters.
pub fn short_layer_name(name: &str, max: usize) -> String {
    let parts: Vec<&str> = name.split('/').filter(|p| !p.is_empty()).collect();
    let s = match parts.len() {
        0 => name.to_string(),
        1 => parts[0].to_string(),
        n => format!("{}/{}", parts[n - 2], parts[n - 1]),
    };
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= max {
        return s;
    }
    let keep = max.saturating_sub(1);
    let head = keep / 2;
    let tail = keep - head;
    let mut out: String = chars[..head].iter().collect();
    out.push('…');
    out.extend(&chars[chars.len() - tail..]);
    out
}

fn lighten(c: RGBColor, t: f64) -> RGBColor {
    let m = |v: u8| (f64::from(v) + (255.0 - f64::from(v)) * t).round() as u8;
    RGBColor(m(c.0), m(c.1), m(c.2))
}

fn bits_of(f: &ShownFormats, kind: usize) -> Option<u32> {
    match kind {
        0 => f.weights,
        1 => f.bias,
        _ => f.output,
    }
    .and_then(|p| p.bits)
}

fn draw_layers<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, run: &Run) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let s = &run.summary;
    let cv = Canvas { root };
    root.fill(&WHITE).map_err(err)?;
    let rows = run.layer_rows();
    let name = if s.name.is_empty() { "qdse" } else { &s.name };
    let title = if s.chosen.is_some() {
        format!("{name}: per-layer bitwidths, chosen vs 8-bit baseline")
    } else {
        format!("{name}: per-layer bitwidths of the 8-bit baseline (no point meets the budget)")
    };
    cv.title(&title, &subtitle(run))?;

    draw_layer_legend(&cv, s.chosen.is_some())?;

    let n = rows.len().max(1);
    let max_bits = rows
        .iter()
        .flat_map(|r| {
            (0..3).flat_map(move |k| [r.baseline.and_then(|f| bits_of(&f, k)), r.chosen.and_then(|f| bits_of(&f, k))])
        })
        .flatten()
        .max()
        .unwrap_or(8);
    let ymax = (max_bits + 2).max(10);

    let (names, rotate) = layer_names(&cv, &rows);
    let widest = names.iter().map(|n| cv.measure(n, LAYER_LABEL_SIZE).0).max().unwrap_or(0);
    let x_area = if rotate { widest + 50 } else { 60 };

    let mut chart = ChartBuilder::on(root)
        .margin_top(125)
        .margin_left(20)
        .margin_right(36)
        .margin_bottom(12)
        .x_label_area_size(x_area.min(HEIGHT as i32 / 3))
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..n as f64, 0f64..f64::from(ymax))
        .map_err(err)?;
    let yfmt = |v: &f64| format!("{v:.0}");
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_labels(ymax as usize + 1)
        .y_label_formatter(&yfmt)
        .y_desc("bits")
        .x_desc("layer")
        .axis_desc_style((FAMILY, 22))
        .label_style((FAMILY, 18))
        .light_line_style(RGBColor(245, 245, 245))
        .bold_line_style(RGBColor(222, 222, 222))
        .axis_style(GREY.stroke_width(1))
        .draw()
        .map_err(err)?;
    let (xr, yr) = chart.plotting_area().get_pixel_range();
    let area = Rect { x0: xr.start, y0: yr.start, x1: xr.end, y1: yr.end };
    let px = |x: f64, y: f64| chart.backend_coord(&(x, y));

    if rows.is_empty() {
        return cv.text(
            "no per-layer formats in this run folder",
            ((area.x0 + area.x1) / 2, (area.y0 + area.y1) / 2),
            20.0,
            SUBTLE,
            HPos::Center,
            VPos::Center,
        );
    }
    draw_layer_bars(&cv, &rows, &names, rotate, s.chosen.is_some(), area, &px)
}

const LAYER_KINDS: [(&str, RGBColor); 3] = [("weights", BLUE), ("bias", GREEN), ("activations", ORANGE)];
const LAYER_LABEL_SIZE: f64 = 16.0;

/// The legend row under the title: a swatch per kind of tensor, baseline and chosen.
fn draw_layer_legend<DB: DrawingBackend>(cv: &Canvas<DB>, chosen: bool) -> Result<()> {
    let mut entries: Vec<(Symbol, String)> = Vec::new();
    for (k, c) in LAYER_KINDS {
        entries.push((Symbol::Swatch(lighten(c, 0.6), c), format!("{k}, 8-bit baseline")));
        if chosen {
            entries.push((Symbol::Swatch(c, c), format!("{k}, chosen")));
        }
    }
    let mut x = 30;
    for (sym, text) in &entries {
        draw_symbol(cv, *sym, (x, 100))?;
        cv.text(text, (x + 36, 100), 16.0, DARK, HPos::Left, VPos::Center)?;
        x += 36 + cv.measure(text, 16.0).0 + 22;
    }
    Ok(())
}

/// The layer names under the bars, and whether they are set vertically: horizontal if the names,
/// shortened to no fewer than 8 characters, fit under their bars.
fn layer_names<DB: DrawingBackend>(cv: &Canvas<DB>, rows: &[LayerRow]) -> (Vec<String>, bool) {
    let n = rows.len().max(1);
    let plot_w_guess = WIDTH as i32 - 20 - 36 - 70;
    let group_w = plot_w_guess / n as i32 - 8;
    let widest = |names: &[String]| names.iter().map(|n| cv.measure(n, LAYER_LABEL_SIZE).0).max().unwrap_or(0);
    let horizontal = (8..=22)
        .rev()
        .map(|m| rows.iter().map(|r| short_layer_name(&r.name, m)).collect::<Vec<_>>())
        .find(|names| widest(names) <= group_w);
    let rotate = horizontal.is_none();
    (horizontal.unwrap_or_else(|| rows.iter().map(|r| short_layer_name(&r.name, 22)).collect()), rotate)
}

/// Per layer, a pair of bars (baseline, chosen) per kind of tensor, and the layer's name.
fn draw_layer_bars<DB: DrawingBackend>(
    cv: &Canvas<DB>,
    rows: &[LayerRow],
    names: &[String],
    rotate: bool,
    chosen: bool,
    area: Rect,
    px: &dyn Fn(f64, f64) -> Px,
) -> Result<()> {
    let pair_w = 0.84 / 3.0;
    let bar_w = pair_w * 0.42;
    for (i, row) in rows.iter().enumerate() {
        for (k, (_, color)) in LAYER_KINDS.iter().enumerate() {
            let x0 = i as f64 + 0.08 + k as f64 * pair_w + pair_w * 0.08;
            let bars = [(row.baseline, lighten(*color, 0.6), x0), (row.chosen, *color, x0 + bar_w)];
            for (fmt, fill, bx) in bars {
                let Some(bits) = fmt.and_then(|f| bits_of(&f, k)) else { continue };
                let (a, b) = (px(bx, f64::from(bits)), px(bx + bar_w, 0.0));
                let r = Rect { x0: a.0, y0: a.1, x1: b.0.max(a.0 + 1), y1: b.1 };
                cv.rect(r, fill.filled())?;
                cv.rect(r, color.stroke_width(1))?;
                if fill == *color && chosen {
                    let t = bits.to_string();
                    let (tw, _) = cv.measure(&t, 13.0);
                    if tw <= r.w() + 4 {
                        cv.text(&t, ((r.x0 + r.x1) / 2, r.y0 - 3), 13.0, DARK, HPos::Center, VPos::Bottom)?;
                    }
                }
            }
        }
        let cx = px(i as f64 + 0.5, 0.0).0;
        if rotate {
            cv.text_rotated(&names[i], (cx, area.y1 + 8), LAYER_LABEL_SIZE, DARK)?;
        } else {
            cv.text(&names[i], (cx, area.y1 + 8), LAYER_LABEL_SIZE, DARK, HPos::Center, VPos::Top)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_and_ticks() {
        let (f, o) = front_2d(&[(3.0, 90.0), (1.0, 80.0), (2.0, 79.0), (2.5, 85.0), (4.0, 89.0)]);
        assert_eq!(f, vec![(1.0, 80.0), (2.5, 85.0), (3.0, 90.0)]);
        assert_eq!(o.len(), 2);
        let t = log_ticks(150.0, 30_000.0);
        assert!(t.contains(&(1000.0, true)) && t.contains(&(200.0, true)) && t.contains(&(300.0, false)));
        assert_eq!(short_layer_name("/conv1/Conv", 22), "conv1/Conv");
        assert_eq!(short_layer_name("/features/features.10/block/Conv", 12), "block/Conv");
        assert_eq!(short_layer_name("/features/block_with_long_name/Conv", 12), "block…e/Conv");
    }

    #[test]
    fn placer_avoids_boxes() {
        let mut p = Placer::new(Rect::at(0, 0, 100, 100));
        p.add_box(Rect::at(0, 0, 50, 50), 1000.0);
        let r = p.place(20, 10, &[(5, 5), (60, 5)], None, 0.0);
        assert_eq!((r.x0, r.y0), (60, 5));
    }
}
