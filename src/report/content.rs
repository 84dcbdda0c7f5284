//! What the reports say, independent of HTML or Markdown: run facts, headline, tables.

use super::format::{self, fmt_num, objective_short, objective_title, pct, point_format};
use super::run::{PointFormat, Run, ShownFormats};

/// A table cell; `emphasis` marks a changed value (chosen vs baseline) or the chosen row.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub text: String,
    pub emphasis: bool,
}

impl Cell {
    fn plain(text: impl Into<String>) -> Cell {
        Cell { text: text.into(), emphasis: false }
    }
    fn em(text: impl Into<String>, emphasis: bool) -> Cell {
        Cell { text: text.into(), emphasis }
    }
}

/// A table with an optional note under it.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub headers: Vec<String>,
    /// Column alignment: `true` = right (numbers).
    pub numeric: Vec<bool>,
    pub rows: Vec<Vec<Cell>>,
    pub note: Option<String>,
}

/// One box of the headline.
#[derive(Debug, Clone, PartialEq)]
pub struct Card {
    pub title: String,
    pub value: String,
    pub lines: Vec<String>,
    /// `chosen` cards are highlighted.
    pub highlight: bool,
}

/// The headline: the cards, or the message that no point meets the budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Headline {
    pub cards: Vec<Card>,
    pub no_point: Option<String>,
}

/// The message shown when `"chosen": null`.
pub fn no_point_message(run: &Run) -> String {
    let s = &run.summary;
    format!(
        "No point meets the budget: no evaluated assignment reaches {} on the search split ({} vs float {}). The table and plots show the 8-bit baseline and the evaluated points only.",
        pct(s.budget_accuracy(), 2),
        format::budget(s.max_loss, s.loss),
        pct(s.float_accuracy.search, 2)
    )
}

/// Key facts of the run: model, profile, strategy, seed, evaluations, wall time, version ...
pub fn run_facts(run: &Run) -> Vec<(String, String)> {
    let s = &run.summary;
    let mut v: Vec<(String, String)> = Vec::new();
    let mut push = |k: &str, val: String| {
        if !val.is_empty() {
            v.push((k.to_string(), val));
        }
    };
    push("name", s.name.clone());
    push("model", s.model.clone());
    push("cost profile", s.profile.clone());
    push("objectives", s.objectives.iter().map(|o| objective_title(o)).collect::<Vec<_>>().join(", "));
    push("primary objective", s.primary_objective().map(objective_title).unwrap_or_default());
    push("strategy", s.strategy.clone());
    push("seed", s.seed.map(|x| x.to_string()).unwrap_or_default());
    push("evaluations", s.evaluations.unwrap_or(run.evaluations.len() as u64).to_string());
    push("Pareto front", format!("{} points", run.pareto.len()));
    push("wall time", s.wall_seconds.map(format::duration).unwrap_or_default());
    push("budget", format::budget(s.max_loss, s.loss));
    if let Some(n) = s.samples {
        push("samples", format!("{} search, {} holdout", fmt_num(n.search as f64), fmt_num(n.holdout as f64)));
    }
    push("qdse version", s.version.clone());
    push("run folder", run.dir.display().to_string());
    v
}

fn unit_value(obj: &str, v: f64) -> String {
    let unit = match obj {
        "memory_bits" => " bits",
        "mult_cost" => " bit-ops",
        "energy_pj" => " pJ",
        "area_um2" => " µm²",
        _ => "",
    };
    format!("{}{unit}", fmt_num(v))
}

/// The headline: float accuracy, 8-bit baseline accuracy and costs, chosen point (holdout accuracy and
/// loss, search loss), and each objective of the chosen point with its reduction vs 8-bit.
pub fn headline(run: &Run) -> Headline {
    let s = &run.summary;
    let b = &s.baseline_8bit;
    let mut cards = vec![Card {
        title: "float model".into(),
        value: pct(s.float_accuracy.search, 2),
        lines: vec!["accuracy, search split".into(), format!("holdout {}", pct(s.float_accuracy.holdout, 2))],
        highlight: false,
    }];
    let mut lines = vec!["accuracy, search split".into(), format!("holdout {}", pct(b.accuracy_holdout, 2))];
    for o in &s.objectives {
        if let Some(v) = b.cost(o) {
            lines.push(format!("{}: {}", objective_short(o), unit_value(o, v)));
        }
    }
    cards.push(Card {
        title: "uniform 8-bit baseline".into(),
        value: pct(b.accuracy_search, 2),
        lines,
        highlight: false,
    });
    let Some(c) = &s.chosen else {
        return Headline { cards, no_point: Some(no_point_message(run)) };
    };
    cards.push(Card {
        title: "chosen, holdout accuracy".into(),
        value: pct(c.accuracy_holdout, 2),
        lines: vec![
            format!("holdout loss {}", format::loss(c.loss_holdout, s.loss, 2)),
            c.loss_holdout_ci95
                .map_or_else(String::new, |ci| format!("95% interval {}", format::interval(ci, s.loss, 2))),
            match (c.loss_confirm, c.loss_confirm_bound) {
                (Some(l), Some(b)) => format!(
                    "confirmation loss {}, bound {} at {:.0}%",
                    format::loss(l, s.loss, 2),
                    format::loss(b, s.loss, 2),
                    100.0 * s.confidence.unwrap_or(0.0)
                ),
                _ => String::new(),
            },
            format!("search loss {}", format::loss(c.loss_search, s.loss, 2)),
            format!("search accuracy {}", pct(c.accuracy_search, 2)),
        ]
        .into_iter()
        .filter(|l| !l.is_empty())
        .collect(),
        highlight: true,
    });
    for o in &s.objectives {
        let Some(v) = c.cost(o) else { continue };
        let red = c.reduction(o, b);
        let mut lines = vec![format!("chosen {}", unit_value(o, v))];
        if let Some(bv) = b.cost(o) {
            lines.push(format!("8-bit {}", unit_value(o, bv)));
        }
        cards.push(Card {
            title: format!("{} vs 8-bit", objective_short(o)),
            value: red.map(format::reduction).unwrap_or_else(|| "n/a".into()),
            lines,
            highlight: true,
        });
    }
    Headline { cards, no_point: None }
}

/// 8-bit baseline vs chosen: accuracies, losses, every objective.
pub fn baseline_vs_chosen(run: &Run) -> Table {
    let s = &run.summary;
    let b = &s.baseline_8bit;
    let c = s.chosen.as_ref();
    let dash = || Cell::plain("–");
    let mut rows = Vec::new();
    let acc_change = |base: f64, ch: f64| format!("{:+.2} pp", (ch - base) * 100.0).replace('-', "\u{2212}");
    rows.push(vec![
        Cell::plain("accuracy, search split"),
        Cell::plain(pct(b.accuracy_search, 2)),
        c.map_or_else(dash, |c| Cell::plain(pct(c.accuracy_search, 2))),
        c.map_or_else(dash, |c| Cell::plain(acc_change(b.accuracy_search, c.accuracy_search))),
    ]);
    rows.push(vec![
        Cell::plain("accuracy, holdout split"),
        Cell::plain(pct(b.accuracy_holdout, 2)),
        c.map_or_else(dash, |c| Cell::plain(pct(c.accuracy_holdout, 2))),
        c.map_or_else(dash, |c| Cell::plain(acc_change(b.accuracy_holdout, c.accuracy_holdout))),
    ]);
    rows.push(vec![
        Cell::plain("loss vs float, search split"),
        Cell::plain(format::loss(s.loss.loss(s.float_accuracy.search, b.accuracy_search), s.loss, 2)),
        c.map_or_else(dash, |c| Cell::plain(format::loss(c.loss_search, s.loss, 2))),
        dash(),
    ]);
    rows.push(vec![
        Cell::plain("loss vs float, holdout split"),
        Cell::plain(format::loss(s.loss.loss(s.float_accuracy.holdout, b.accuracy_holdout), s.loss, 2)),
        c.map_or_else(dash, |c| {
            let ci =
                c.loss_holdout_ci95.map_or_else(String::new, |ci| format!(" ({})", format::interval(ci, s.loss, 2)));
            Cell::plain(format!("{}{ci}", format::loss(c.loss_holdout, s.loss, 2)))
        }),
        dash(),
    ]);
    for o in &s.objectives {
        rows.push(vec![
            Cell::plain(objective_title(o)),
            b.cost(o).map_or_else(dash, |v| Cell::plain(fmt_num(v))),
            c.and_then(|c| c.cost(o)).map_or_else(dash, |v| Cell::plain(fmt_num(v))),
            c.and_then(|c| c.reduction(o, b)).map_or_else(dash, |r| Cell::em(format::reduction_precise(r), true)),
        ]);
    }
    Table {
        headers: vec!["".into(), "uniform 8-bit baseline".into(), "chosen".into(), "change vs 8-bit".into()],
        numeric: vec![false, true, true, true],
        rows,
        note: c.is_none().then(|| no_point_message(run)),
    }
}

/// Per-layer formats of the baseline and the chosen point.
pub fn layer_formats(run: &Run) -> Table {
    let has_chosen = run.summary.chosen.is_some();
    let fmt = |f: Option<ShownFormats>, k: usize| -> (String, Option<PointFormat>) {
        let p = f.and_then(|f| match k {
            0 => f.weights,
            1 => f.bias,
            _ => f.output,
        });
        let default_signed = if k < 2 { Some(true) } else { None };
        (point_format(p, default_signed), p)
    };
    let mut rows = Vec::new();
    let input = |p: &Option<super::run::PointFile>| p.as_ref().and_then(|p| p.input);
    let (bi, ci) = (input(&run.baseline_point), if has_chosen { input(&run.chosen_point) } else { None });
    if bi.is_some() || ci.is_some() {
        let mut row =
            vec![Cell::plain("input"), Cell::plain("–"), Cell::plain("–"), Cell::plain(point_format(bi, None))];
        if has_chosen {
            row.extend([Cell::plain("–"), Cell::plain("–"), Cell::em(point_format(ci, None), ci != bi)]);
        }
        rows.push(row);
    }
    for r in run.layer_rows() {
        let mut row = vec![Cell::plain(r.name.clone())];
        for k in 0..3 {
            row.push(Cell::plain(fmt(r.baseline, k).0));
        }
        if has_chosen {
            for k in 0..3 {
                let (text, p) = fmt(r.chosen, k);
                row.push(Cell::em(text, p != fmt(r.baseline, k).1));
            }
        }
        rows.push(row);
    }
    let mut headers: Vec<String> =
        vec!["layer".into(), "8-bit: weights".into(), "8-bit: bias".into(), "8-bit: output".into()];
    if has_chosen {
        headers.extend(["chosen: weights".into(), "chosen: bias".into(), "chosen: output".into()]);
    }
    let n = headers.len();
    Table {
        headers,
        numeric: (0..n).map(|i| i > 0).collect(),
        rows,
        note: Some(
            "sB.F = signed, B bits of which F fractional; uB.F = unsigned; – = none (layer without parameters). Changed formats are highlighted.".into(),
        ),
    }
}

/// Maximum number of Pareto rows shown in the reports (the full front is in pareto.csv).
pub const PARETO_ROWS: usize = 25;

/// The Pareto front sorted by the primary objective; at most [`PARETO_ROWS`] rows, around the chosen one.
pub fn pareto(run: &Run) -> Table {
    let s = &run.summary;
    let k = s.primary_objective().and_then(|p| run.objective_index(p)).unwrap_or(0);
    let mut rows: Vec<&crate::run_folder::FrontRow> = run.pareto.iter().collect();
    rows.sort_by(|a, b| {
        let (x, y) =
            (a.eval.objectives.get(k).copied().unwrap_or(0.0), b.eval.objectives.get(k).copied().unwrap_or(0.0));
        x.total_cmp(&y).then(a.eval.loss_search.total_cmp(&b.eval.loss_search))
    });
    let total = rows.len();
    let (start, end) = if total <= PARETO_ROWS {
        (0, total)
    } else {
        let at = rows.iter().position(|r| r.chosen).unwrap_or(0);
        let start = at.saturating_sub(PARETO_ROWS / 2).min(total - PARETO_ROWS);
        (start, start + PARETO_ROWS)
    };
    let mut headers: Vec<String> = vec![
        "id".into(),
        "source".into(),
        "acc. search".into(),
        "loss search".into(),
        "acc. holdout".into(),
        "loss holdout".into(),
    ];
    headers.extend(s.objectives.iter().map(|o| objective_title(o)));
    headers.push("within budget".into());
    let body = rows[start..end]
        .iter()
        .map(|r| {
            let e = &r.eval;
            let em = r.chosen;
            let mut row = vec![
                Cell::em(if r.chosen { format!("{} (chosen)", e.id) } else { e.id.to_string() }, em),
                Cell::em(e.source.clone(), em),
                Cell::em(pct(e.acc_search, 2), em),
                Cell::em(format::loss(e.loss_search, s.loss, 2), em),
                Cell::em(r.acc_holdout.map_or("–".into(), |a| pct(a, 2)), em),
                Cell::em(r.loss_holdout.map_or("–".into(), |l| format::loss(l, s.loss, 2)), em),
            ];
            row.extend(e.objectives.iter().map(|v| Cell::em(fmt_num(*v), em)));
            row.push(Cell::em(if e.loss_search <= s.max_loss + 1e-12 { "yes" } else { "no" }, em));
            row
        })
        .collect();
    let n = headers.len();
    let primary = s.primary_objective().map(objective_title).unwrap_or_default();
    Table {
        headers,
        numeric: (0..n).map(|i| i != 1).collect(),
        rows: body,
        note: Some(if total > end - start {
            format!("Rows {}–{} of {total}, sorted by {primary}; the full front is in pareto.csv.", start + 1, end)
        } else {
            format!("{total} points, sorted by {primary}. Holdout accuracy is reported, never used to choose.")
        }),
    }
}
