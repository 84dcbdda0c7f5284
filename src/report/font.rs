//! The plot font: DejaVu Sans, embedded in the binary (assets/DejaVuSans.ttf, licence in
//! assets/DejaVuSans-LICENSE.txt) and registered with plotters' `ab_glyph` text renderer, so plots need
//! no system font library (no fontconfig/freetype) and look the same on every machine.

use plotters::style::{register_font, FontStyle};
use std::sync::Once;

/// The embedded TTF.
pub static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// The font family the plots use. plotters writes the family name verbatim into SVG `font-family`,
/// so it is a CSS fallback list: browsers use DejaVu Sans if installed, else Verdana (near-identical
/// metrics), else their sans-serif. The PNGs always use the embedded DejaVu Sans.
pub const FAMILY: &str = "DejaVu Sans, Verdana, sans-serif";

static REGISTER: Once = Once::new();

/// Register the embedded font (once per process) under [`FAMILY`] and `sans-serif`.
pub fn ensure_registered() {
    REGISTER.call_once(|| {
        for name in [FAMILY, "sans-serif"] {
            for style in [FontStyle::Normal, FontStyle::Bold] {
                if register_font(name, style, DEJAVU_SANS).is_err() {
                    panic!("the embedded DejaVu Sans font does not parse");
                }
            }
        }
    });
}
