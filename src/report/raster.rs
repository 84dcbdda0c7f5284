//! The PNG drawing backend: plotters' `BitMapBackend` with its own text drawing.
//!
//! plotters 0.3.7 draws `ab_glyph` text without the glyphs' side bearings (digits like "10" come out as
//! "1 0") and at a larger size than the SVG it writes for the same style. This wrapper draws text with
//! `ab_glyph` directly: proper bearings and kerning, the SVG backend's font size (`size / 1.24` px per em)
//! and its anchor conventions (`dy` 0.76em for top, 0.5ex for centre), so PNG and SVG look alike.
//! Everything else is delegated to the bitmap backend; text size estimates stay plotters' own, so label
//! layout is the same for both backends.

use super::font::DEJAVU_SANS;
use ab_glyph::{point, Font, FontRef, GlyphId, PxScale, ScaleFont};
use plotters::backend::BitMapBackend;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind, FontTransform,
};

/// Bitmap backend with correct text rendering (see the module docs).
pub struct PngBackend<'a> {
    inner: BitMapBackend<'a>,
    font: FontRef<'static>,
}

impl<'a> PngBackend<'a> {
    /// Draw into an RGB buffer of `size.0 * size.1 * 3` bytes.
    pub fn with_buffer(buf: &'a mut [u8], size: (u32, u32)) -> PngBackend<'a> {
        PngBackend {
            inner: BitMapBackend::with_buffer(buf, size),
            font: FontRef::try_from_slice(DEJAVU_SANS).expect("the embedded DejaVu Sans font parses"),
        }
    }
}

type Res<E> = Result<(), DrawingErrorKind<E>>;
type BitmapError = <BitMapBackend<'static> as DrawingBackend>::ErrorType;

impl DrawingBackend for PngBackend<'_> {
    type ErrorType = BitmapError;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }
    fn ensure_prepared(&mut self) -> Res<BitmapError> {
        self.inner.ensure_prepared()
    }
    fn present(&mut self) -> Res<BitmapError> {
        self.inner.present()
    }
    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> Res<BitmapError> {
        self.inner.draw_pixel(point, color)
    }
    fn draw_line<S: BackendStyle>(&mut self, from: BackendCoord, to: BackendCoord, style: &S) -> Res<BitmapError> {
        self.inner.draw_line(from, to, style)
    }
    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Res<BitmapError> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }
    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Res<BitmapError> {
        self.inner.draw_path(path, style)
    }
    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Res<BitmapError> {
        self.inner.draw_circle(center, radius, style, fill)
    }
    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Res<BitmapError> {
        self.inner.fill_polygon(vert, style)
    }
    fn blit_bitmap(&mut self, pos: BackendCoord, size: (u32, u32), src: &[u8]) -> Res<BitmapError> {
        self.inner.blit_bitmap(pos, size, src)
    }

    fn draw_text<TStyle: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &TStyle,
        pos: BackendCoord,
    ) -> Res<BitmapError> {
        let color = style.color();
        if color.alpha == 0.0 || text.is_empty() {
            return Ok(());
        }
        let font = &self.font;
        let em = (style.size() / 1.24) as f32;
        let units = font.units_per_em().unwrap_or(2048.0);
        let scale = PxScale::from(em * font.height_unscaled() / units);
        let sf = font.as_scaled(scale);

        // Lay out on a baseline at y = 0, caret from x = 0.
        let mut glyphs = Vec::new();
        let mut caret = 0.0f32;
        let mut prev: Option<GlyphId> = None;
        for c in text.chars() {
            let id = sf.glyph_id(c);
            if let Some(p) = prev {
                caret += sf.kern(p, id);
            }
            glyphs.push(id.with_scale_and_position(scale, point(caret, 0.0)));
            caret += sf.h_advance(id);
            prev = Some(id);
        }
        let dx = match style.anchor().h_pos {
            HPos::Left => 0.0,
            HPos::Center => -caret / 2.0,
            HPos::Right => -caret,
        };
        // As the SVG backend: dy = 0.76em (top), 0.5ex (centre), -0.5ex (bottom).
        let ex = 0.55 * em;
        let dy = match style.anchor().v_pos {
            VPos::Top => 0.76 * em,
            VPos::Center => 0.5 * ex,
            VPos::Bottom => -0.5 * ex,
        };
        let trans: FontTransform = style.transform();
        let (w, h) = self.inner.get_size();
        for g in glyphs {
            let Some(outline) = font.outline_glyph(g) else { continue };
            let b = outline.px_bounds();
            let mut pixels = Vec::new();
            outline.draw(|x, y, cov| {
                if cov > 0.0 {
                    pixels.push((x, y, cov.min(1.0)));
                }
            });
            for (x, y, cov) in pixels {
                let ox = (dx + b.min.x + x as f32).round() as i32;
                let oy = (dy + b.min.y + y as f32).round() as i32;
                let (rx, ry) = trans.transform(ox, oy);
                let (px, py) = (pos.0 + rx, pos.1 + ry);
                if px >= 0 && py >= 0 && (px as u32) < w && (py as u32) < h {
                    let c = BackendColor { alpha: color.alpha * f64::from(cov), rgb: color.rgb };
                    self.inner.draw_pixel((px, py), c)?;
                }
            }
        }
        Ok(())
    }
}
