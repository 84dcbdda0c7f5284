//! The cross-run results table of `reports/README.md`: one row per run folder.

use super::run::Run;
use anyhow::Result;
use std::fmt::Write;
use std::path::PathBuf;

/// The seed paper's reported reductions vs uniform 8-bit, by (network, data set) (docs/paper.md, "Their results").
fn paper_figures(model: &str) -> Option<&'static str> {
    let m = model.to_ascii_lowercase();
    let net = if m.contains("seq14") {
        "seq"
    } else if m.contains("branched") {
        "branched"
    } else {
        return None;
    };
    let data = if m.contains("fashion") { "fashion" } else { "mnist" };
    Some(match (net, data) {
        ("seq", "fashion") => "52.6% / 70.2% (0.908%)",
        ("seq", _) => "62.7% / 84.9% (0.985%)",
        ("branched", "fashion") => "57.0% / 85.2% (0.966%)",
        _ => "57.3% / 87.1% (0.989%)",
    })
}

/// A Markdown table over run folders: float accuracy, chosen point's holdout loss, memory and
/// multiplication-cost reductions vs 8-bit, beside the paper's figures where it has them.
pub fn results_table(dirs: &[PathBuf]) -> Result<String> {
    let mut t = String::new();
    t.push_str("| run | strategy | profile (primary) | float acc. (holdout) | 8-bit acc. (holdout) | chosen: loss search / confirm (bound) / holdout (95% interval) | holdout loss <= budget | memory red. | mult-cost red. | evaluations, s | paper: memory / mult-cost red. (loss) |\n");
    t.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
    for dir in dirs {
        let run = Run::load(dir)?;
        let s = &run.summary;
        let pct = |x: Option<f64>| x.map_or_else(|| "-".to_string(), |v| format!("{:.1}%", 100.0 * v));
        let pct2 = |x: f64| format!("{:.2}%", 100.0 * x);
        let (loss, within, mem, mult) = match &s.chosen {
            Some(c) => {
                let confirm = match (c.loss_confirm, c.loss_confirm_bound) {
                    (Some(l), Some(b)) => format!("{} ({}) / ", pct2(l), pct2(b)),
                    _ => "- / ".into(),
                };
                let holdout = match c.loss_holdout_ci95 {
                    Some([lo, hi]) => format!("{} ({:.1}–{:.1})", pct2(c.loss_holdout), 100.0 * lo, 100.0 * hi),
                    None => pct2(c.loss_holdout),
                };
                (
                    format!("{} / {confirm}{holdout}", pct2(c.loss_search)),
                    if c.loss_holdout <= s.max_loss + 1e-12 { "yes" } else { "**no**" },
                    pct(c.reduction("memory_bits", &s.baseline_8bit)),
                    pct(c.reduction("mult_cost", &s.baseline_8bit)),
                )
            }
            None => ("none within budget".into(), "-", "-".into(), "-".into()),
        };
        // The primary beside the profile: a config may replace the profile's own.
        let profile = match s.primary_objective() {
            Some(p) => format!("{} ({p})", s.profile),
            None => s.profile.clone(),
        };
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {}, {:.0} | {} |",
            // The folder: several runs of one config (strategies) share its name.
            dir.file_name().map_or_else(|| s.name.clone(), |f| f.to_string_lossy().into_owned()),
            s.strategy,
            profile,
            pct2(s.float_accuracy.holdout),
            pct2(s.baseline_8bit.accuracy_holdout),
            loss,
            within,
            mem,
            mult,
            s.evaluations.unwrap_or(0),
            s.wall_seconds.unwrap_or(0.0),
            paper_figures(&s.model).unwrap_or("-"),
        );
    }
    Ok(t)
}
