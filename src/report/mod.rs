//! Design-review outputs of a run folder: Pareto plots, per-layer bitwidth plot, `report.html`, `report.md`.
//!
//! [`render_run`] (behind `qdse report DIR`) rebuilds everything from the files `qdse explore` wrote
//! (docs/outputs.md: `summary.json`, `evaluations.csv`, `pareto.csv`, `chosen.toml`,
//! `baseline-8bit.toml`, and the optional `config.toml`/`profile.toml` copies) without searching again.
//!
//! Files written into the run folder, each atomically (temporary name in the same folder, then rename):
//!
//! | file | content |
//! |---|---|
//! | `pareto_<objective>.svg`, `.png` | accuracy (search split) vs each cost objective of the profile |
//! | `layers.svg`, `.png` | per-layer bitwidths of the chosen point beside the 8-bit baseline |
//! | `report.html` | one self-contained page (inline CSS and SVG, no external resource) |
//! | `report.md` | the same content in Markdown, referencing the PNG plots next to it |
//!
//! Plot text uses DejaVu Sans embedded in the binary ([`font`]); no system font library is needed.
pub mod content;
pub mod font;
pub mod format;
pub mod html;
pub mod markdown;
pub mod plot;
pub mod raster;
pub mod results;
pub mod run;

pub use plot::Figure;
pub use run::{LayerRow, PointFile, PointFormat, PointLayer, Run, ShownFormats};

use anyhow::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Rebuild every plot and report of the run folder `dir` from its CSV/JSON files.
/// Returns the files written, in the order written.
pub fn render_run(dir: &Path) -> Result<Vec<PathBuf>> {
    let run = Run::load(dir)?;
    let mut written = Vec::new();
    let mut svgs = Vec::new();
    for obj in &run.summary.objectives {
        let svg = plot::pareto_svg(&run, obj)?;
        let png = plot::pareto_png(&run, obj)?;
        let stem = format!("pareto_{}", file_safe(obj));
        written.push(write_atomic(&dir.join(format!("{stem}.svg")), svg.as_bytes())?);
        written.push(write_atomic(&dir.join(format!("{stem}.png")), &png)?);
        svgs.push(plot::Figure { stem, title: format::objective_title(obj), svg });
    }
    let svg = plot::layers_svg(&run)?;
    let png = plot::layers_png(&run)?;
    written.push(write_atomic(&dir.join("layers.svg"), svg.as_bytes())?);
    written.push(write_atomic(&dir.join("layers.png"), &png)?);
    svgs.push(plot::Figure { stem: "layers".into(), title: "per-layer bitwidths".into(), svg });

    let html = html::render(&run, &svgs);
    written.push(write_atomic(&dir.join("report.html"), html.as_bytes())?);
    let md = markdown::render(&run, &svgs);
    written.push(write_atomic(&dir.join("report.md"), md.as_bytes())?);
    Ok(written)
}

/// A file-name-safe form of an objective name (`[A-Za-z0-9_-]`, anything else becomes `_`).
pub fn file_safe(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect()
}

/// Write `bytes` to `path` atomically: a temporary file in the same folder, flushed, then renamed over `path`.
/// Returns `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().with_context(|| format!("{} has no file name", path.display()))?;
    let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(path.to_path_buf())
}
