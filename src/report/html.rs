//! `report.html`: one self-contained page (inline CSS, inline SVG plots, no external resources).

use super::content::{self, Headline, Table};
use super::plot::Figure;
use super::run::Run;
use std::fmt::Write;

/// Escape text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = r#"
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg2: #f6f8fa; --accent: #cd1e23; --blue: #1f64b4; }
* { box-sizing: border-box; }
body { font-family: "DejaVu Sans", Verdana, "Segoe UI", Helvetica, Arial, sans-serif; color: var(--fg);
       margin: 0 auto; max-width: 1280px; padding: 24px 32px 48px; line-height: 1.45; font-size: 15px; }
h1 { font-size: 28px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 36px 0 12px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
.sub { color: var(--muted); margin: 0 0 20px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(210px, 1fr)); gap: 12px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; background: var(--bg2); }
.card.hl { border-color: var(--accent); background: #fff5f5; }
.card .t { font-size: 13px; color: var(--muted); text-transform: uppercase; letter-spacing: .03em; }
.card .v { font-size: 28px; font-weight: bold; margin: 2px 0 4px; font-variant-numeric: tabular-nums; }
.card.hl .v { color: var(--accent); }
.card .l { font-size: 13px; color: var(--muted); font-variant-numeric: tabular-nums; }
.nopoint { border: 2px solid var(--accent); background: #fff5f5; color: var(--accent); border-radius: 8px;
           padding: 14px 16px; font-weight: bold; margin-top: 12px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 14px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: 4px 10px; }
th { background: var(--bg2); text-align: left; vertical-align: bottom; }
td.n { text-align: right; white-space: nowrap; }
td.em { background: #fff0d9; font-weight: bold; }
table.kv th { width: 190px; }
.note { color: var(--muted); font-size: 13px; margin: 4px 0 0; }
.scroll { overflow-x: auto; }
figure { margin: 16px 0 28px; }
figure svg { width: 100%; height: auto; display: block; border: 1px solid var(--line); border-radius: 6px; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
pre { background: var(--bg2); border: 1px solid var(--line); border-radius: 6px; padding: 12px; overflow-x: auto;
      font-size: 13px; line-height: 1.35; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
@media print { body { max-width: none; padding: 0; } figure { break-inside: avoid; } }
"#;

fn table(out: &mut String, t: &Table) {
    out.push_str("<div class=\"scroll\"><table>\n<thead><tr>");
    for h in &t.headers {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in &t.rows {
        out.push_str("<tr>");
        for (i, c) in row.iter().enumerate() {
            let mut class = Vec::new();
            if t.numeric.get(i).copied().unwrap_or(false) {
                class.push("n");
            }
            if c.emphasis {
                class.push("em");
            }
            if class.is_empty() {
                let _ = write!(out, "<td>{}</td>", escape(&c.text));
            } else {
                let _ = write!(out, "<td class=\"{}\">{}</td>", class.join(" "), escape(&c.text));
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table></div>\n");
    if let Some(n) = &t.note {
        let _ = writeln!(out, "<p class=\"note\">{}</p>", escape(n));
    }
}

fn headline(out: &mut String, h: &Headline) {
    out.push_str("<div class=\"cards\">\n");
    for c in &h.cards {
        let _ = write!(
            out,
            "<div class=\"card{}\"><div class=\"t\">{}</div><div class=\"v\">{}</div>",
            if c.highlight { " hl" } else { "" },
            escape(&c.title),
            escape(&c.value)
        );
        for l in &c.lines {
            let _ = write!(out, "<div class=\"l\">{}</div>", escape(l));
        }
        out.push_str("</div>\n");
    }
    out.push_str("</div>\n");
    if let Some(m) = &h.no_point {
        let _ = writeln!(out, "<div class=\"nopoint\">{}</div>", escape(m));
    }
}

/// The SVG document as an inline `<svg>` element (no XML declaration or doctype).
fn inline_svg(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(i) => svg[i..].trim_end(),
        None => svg,
    }
}

/// Render `report.html`.
pub fn render(run: &Run, figures: &[Figure]) -> String {
    let s = &run.summary;
    let name = if s.name.is_empty() { "run" } else { &s.name };
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>qdse report: {}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        escape(name)
    );
    let _ = writeln!(out, "<h1>qdse report: {}</h1>", escape(name));
    let sub: Vec<String> = [s.model.as_str(), s.profile.as_str(), s.strategy.as_str()]
        .iter()
        .zip(["model", "profile", "strategy"])
        .filter(|(v, _)| !v.is_empty())
        .map(|(v, k)| format!("{k} {v}"))
        .collect();
    let _ = writeln!(out, "<p class=\"sub\">{}</p>", escape(&sub.join(" · ")));

    out.push_str("<h2 id=\"headline\">Headline</h2>\n");
    headline(&mut out, &content::headline(run));

    out.push_str("<h2 id=\"run\">Run</h2>\n<table class=\"kv\">\n");
    for (k, v) in content::run_facts(run) {
        let _ = writeln!(out, "<tr><th>{}</th><td>{}</td></tr>", escape(&k), escape(&v));
    }
    out.push_str("</table>\n");

    out.push_str("<h2 id=\"plots\">Plots</h2>\n");
    for f in figures {
        let _ = writeln!(
            out,
            "<figure id=\"fig-{}\">\n{}\n<figcaption>{} ({}.svg, {}.png)</figcaption>\n</figure>",
            escape(&f.stem),
            inline_svg(&f.svg),
            escape(&f.title),
            escape(&f.stem),
            escape(&f.stem)
        );
    }

    out.push_str("<h2 id=\"baseline-vs-chosen\">Uniform 8-bit baseline vs chosen</h2>\n");
    table(&mut out, &content::baseline_vs_chosen(run));
    out.push_str("<h2 id=\"layers\">Per-layer formats</h2>\n");
    table(&mut out, &content::layer_formats(run));
    out.push_str("<h2 id=\"pareto\">Pareto front</h2>\n");
    table(&mut out, &content::pareto(run));

    if run.config_text.is_some() || run.profile_text.is_some() {
        out.push_str("<h2 id=\"config\">Configuration</h2>\n");
        for (file, text) in [("config.toml", &run.config_text), ("profile.toml", &run.profile_text)] {
            if let Some(t) = text {
                let _ = writeln!(out, "<h3>{file}</h3>\n<pre>{}</pre>", escape(t.trim_end()));
            }
        }
    }
    let _ = writeln!(
        out,
        "<footer>Generated by qdse {} (<code>qdse report</code>) from summary.json, evaluations.csv and pareto.csv of {}.</footer>\n</body>\n</html>",
        env!("CARGO_PKG_VERSION"),
        escape(&run.dir.display().to_string())
    );
    out
}
