//! `qdse profile synth`: a cost profile measured by synthesis instead of taken from a formula
//! (docs/cost-models.md, "Synthesized profiles"). Yosys synthesizes a multiplier for every
//! (weight, activation) width of a grid and an accumulator for every width of a list; the
//! results become a `table` multiplier model and a per-bit `[accumulator]` in the profile schema,
//! with their provenance (Yosys version, script, target, date) in comments. Storage, memory and
//! datapath come from a base profile, so the profile differs from its formula counterpart only
//! in the arithmetic.

use super::mult::MultiplierModel;
use super::profile::CostProfile;
use anyhow::{anyhow, bail, Context, Result};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// NAND2-equivalent weights of the generic gate cells `abc -g` and `synth` leave, from the
/// NanGate 45 nm Open Cell Library (typical corner) areas divided by NAND2_X1's 0.798 um^2:
/// INV_X1 0.532, NAND2/NOR2_X1 0.798, AND2/OR2_X1 1.064, XOR2/XNOR2_X1 1.596, MUX2_X1 1.862,
/// DFF_X1 4.522 um^2 (docs/cost-models.md, "Synthesized profiles").
pub const GATE_WEIGHTS: [(&str, f64); 9] = [
    ("$_NOT_", 0.532 / 0.798),
    ("$_NAND_", 1.0),
    ("$_NOR_", 1.0),
    ("$_AND_", 1.064 / 0.798),
    ("$_OR_", 1.064 / 0.798),
    ("$_XOR_", 1.596 / 0.798),
    ("$_XNOR_", 1.596 / 0.798),
    ("$_MUX_", 1.862 / 0.798),
    ("$_DFF_P_", 4.522 / 0.798),
];

/// um^2 of one NAND2 equivalent by default: NanGate 45 nm NAND2_X1.
pub const DEFAULT_UM2_PER_GE: f64 = 0.798;

/// The cell library the generic target maps to (`abc -g`; inverters are always allowed).
const GENERIC_GATES: &str = "AND,NAND,OR,NOR,XOR,XNOR,MUX";

/// What the arithmetic is synthesized to.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Yosys' generic gates, area in NAND2 equivalents times `um2_per_ge`.
    Generic { um2_per_ge: f64 },
    /// A Liberty cell library: area in its units (um^2 for the usual libraries).
    Liberty(PathBuf),
    /// AMD UltraScale+ (`synth_xilinx -family xcup`): LUTs with `-nodsp`, DSP48E2 blocks without.
    Xcup,
}

impl Target {
    /// The base profile whose storage, memory and datapath a target's profile keeps by default.
    pub fn default_base(&self) -> &'static str {
        match self {
            Target::Generic { .. } | Target::Liberty(_) => "asic-45nm",
            Target::Xcup => "fpga-dsp48e2",
        }
    }

    fn describe(&self) -> String {
        match self {
            Target::Generic { um2_per_ge } => {
                format!("generic gates ({GENERIC_GATES}, NOT), area in NAND2 equivalents x {um2_per_ge} um^2")
            }
            Target::Liberty(p) => format!("Liberty library {}", p.display()),
            Target::Xcup => "AMD UltraScale+ (synth_xilinx -family xcup)".into(),
        }
    }
}

/// The widths to synthesize.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    pub weight_bits: Vec<u32>,
    pub activation_bits: Vec<u32>,
    /// Accumulator widths the per-bit accumulator cost is fitted over.
    pub accumulator_bits: Vec<u32>,
    /// Signed activation operand (else unsigned, as after a ReLU). Weights are always signed.
    pub signed_activations: bool,
}

/// A list of widths from the command line, sorted and without repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Widths(pub Vec<u32>);

/// Parse a width list: comma-separated widths and inclusive ranges, e.g. `2..8,10,12,16`.
pub fn parse_widths(s: &str) -> Result<Widths, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        let num = |t: &str| -> Result<u32, String> {
            match t.trim().parse::<u32>() {
                Ok(n) if (1..=64).contains(&n) => Ok(n),
                Ok(n) => Err(format!("width {n} is out of range 1..=64")),
                Err(_) => Err(format!("'{t}' is not a width (expected e.g. 2..8,10,16)")),
            }
        };
        match part.split_once("..") {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("range {part} is empty"));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(Widths(out))
}

/// One synthesis job's result: the metrics it measured.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Measured {
    /// Area in the profile's unit (um^2).
    pub area: f64,
    pub luts: f64,
    pub dsps: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Design {
    Mult { w: u32, a: u32, signed_a: bool },
    Acc { bits: u32 },
}

impl Design {
    fn verilog(&self) -> String {
        match *self {
            Design::Mult { w, a, signed_a } => {
                let act = if signed_a { "$signed(a)".to_string() } else { "$signed({1'b0, a})".to_string() };
                format!(
                    "module top(input signed [{}:0] w, input {}[{}:0] a, output signed [{}:0] y);\n  \
                     assign y = w * {act};\nendmodule\n",
                    w - 1,
                    if signed_a { "signed " } else { "" },
                    a - 1,
                    w + a - 1
                )
            }
            Design::Acc { bits } => format!(
                "module top(input clk, input signed [{m}:0] x, output reg signed [{m}:0] q);\n  \
                 always @(posedge clk) q <= q + x;\nendmodule\n",
                m = bits - 1
            ),
        }
    }
}

/// The Yosys script lines after `read_verilog` for one target and pass (`dsp`: allow DSPs).
fn script(target: &Target, dsp: bool) -> Vec<String> {
    match target {
        Target::Generic { .. } => vec!["synth -top top".into(), format!("abc -g {GENERIC_GATES}"), "opt_clean".into()],
        Target::Liberty(lib) => {
            let l = lib.display();
            vec![
                "synth -top top".into(),
                format!("dfflibmap -liberty {l}"),
                format!("abc -liberty {l}"),
                "opt_clean".into(),
            ]
        }
        Target::Xcup => {
            vec![format!("synth_xilinx -family xcup{} -top top", if dsp { "" } else { " -nodsp" })]
        }
    }
}

/// The statistics command: JSON cell counts, or for a Liberty library the text report whose
/// "Chip area" line is the area (Yosys 0.23's `stat -json` leaves the area out).
fn stat_cmd(target: &Target) -> String {
    match target {
        Target::Liberty(lib) => format!("stat -liberty {}", lib.display()),
        _ => "stat -json".into(),
    }
}

/// The installed Yosys' version line, or an error naming the package to install.
pub fn yosys_version() -> Result<String> {
    let out = Command::new("yosys").arg("-V").output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow!("yosys is not installed (not on PATH): install the 'yosys' package (Debian/Ubuntu: apt-get install yosys)")
        } else {
            anyhow!("cannot run yosys: {e}")
        }
    })?;
    if !out.status.success() {
        bail!("yosys -V failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Synthesize one design with one script and return what the statistics command wrote.
fn run_yosys(dir: &Path, tag: &str, design: Design, target: &Target, dsp: bool) -> Result<String> {
    let v = dir.join(format!("{tag}.v"));
    let json = dir.join(format!("{tag}.stat"));
    std::fs::write(&v, design.verilog()).with_context(|| format!("cannot write {}", v.display()))?;
    let mut cmds = vec![format!("read_verilog -sv {}", v.display())];
    cmds.extend(script(target, dsp));
    cmds.push(format!("tee -q -o {} {}", json.display(), stat_cmd(target)));
    let out = Command::new("yosys")
        .arg("-q")
        .arg("-p")
        .arg(cmds.join("; "))
        .output()
        .with_context(|| "cannot run yosys".to_string())?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect();
        bail!("yosys failed on {tag}: {}", tail.join("\n"));
    }
    std::fs::read_to_string(&json).with_context(|| format!("yosys wrote no {}", json.display()))
}

/// The `design` part of `stat -json` output.
fn design_stats(tag: &str, text: &str) -> Result<serde_json::Value> {
    let parsed: serde_json::Value =
        serde_json::from_str(text).with_context(|| format!("{tag}: cannot parse yosys stat output"))?;
    parsed.get("design").cloned().with_context(|| format!("{tag}: no 'design' in yosys stat output"))
}

/// The area of `stat -liberty`'s text report: its last "Chip area for module ...: X" line.
fn chip_area(tag: &str, text: &str) -> Result<f64> {
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("Chip area for ")?.rsplit(':').next()?.trim().parse::<f64>().ok())
        .with_context(|| format!("{tag}: yosys reported no chip area for the library"))
}

/// NAND2 equivalents of a generic-gate design; an unknown cell type is an error.
pub fn gate_equivalents(cells: &BTreeMap<String, f64>) -> Result<f64> {
    let mut ge = 0.0;
    for (cell, &n) in cells {
        let Some((_, w)) = GATE_WEIGHTS.iter().find(|(c, _)| c == cell) else {
            bail!("yosys left a cell '{cell}' that has no NAND2-equivalent weight");
        };
        ge += n * w;
    }
    Ok(ge)
}

fn cells(design: &serde_json::Value) -> BTreeMap<String, f64> {
    design["num_cells_by_type"]
        .as_object()
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_f64()?))).collect())
        .unwrap_or_default()
}

/// Measure one design on a target (Xcup: two passes, LUTs without DSPs and DSPs with).
fn measure(dir: &Path, tag: &str, design: Design, target: &Target) -> Result<Measured> {
    match target {
        Target::Generic { um2_per_ge } => {
            let d = design_stats(tag, &run_yosys(dir, tag, design, target, false)?)?;
            Ok(Measured { area: gate_equivalents(&cells(&d))? * um2_per_ge, ..Measured::default() })
        }
        Target::Liberty(_) => {
            let area = chip_area(tag, &run_yosys(dir, tag, design, target, false)?)?;
            Ok(Measured { area, ..Measured::default() })
        }
        Target::Xcup => {
            let count = |tag: &str, dsp: bool, pre: &str| -> Result<f64> {
                let d = design_stats(tag, &run_yosys(dir, tag, design, target, dsp)?)?;
                Ok(cells(&d).iter().filter(|(c, _)| c.starts_with(pre)).map(|(_, n)| n).sum())
            };
            let luts = count(&format!("{tag}-nodsp"), false, "LUT")?;
            let dsps = match design {
                Design::Mult { .. } => count(&format!("{tag}-dsp"), true, "DSP48E2")?,
                Design::Acc { .. } => 0.0,
            };
            Ok(Measured { luts, dsps, ..Measured::default() })
        }
    }
}

/// Every measurement of a grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Synthesized {
    pub yosys: String,
    /// Row-major over (weight_bits, activation_bits).
    pub mult: Vec<Measured>,
    pub acc: Vec<Measured>,
}

/// Synthesize the grid on the target, in parallel (the current rayon pool), ticking `progress`
/// once per design.
pub fn synthesize(target: &Target, grid: &Grid, progress: &indicatif::ProgressBar) -> Result<Synthesized> {
    if grid.weight_bits.is_empty() || grid.activation_bits.is_empty() || grid.accumulator_bits.is_empty() {
        bail!("the synthesis grid needs at least one weight, activation and accumulator width");
    }
    if let Some(&b) = grid.accumulator_bits.iter().find(|&&b| b < 2) {
        bail!("accumulator width {b} is too narrow (at least 2 bits)");
    }
    if let Target::Liberty(lib) = target {
        if !lib.is_file() {
            bail!("--liberty {}: no such file", lib.display());
        }
    }
    let yosys = yosys_version()?;
    let mut designs = Vec::new();
    for &w in &grid.weight_bits {
        for &a in &grid.activation_bits {
            designs.push((format!("mul{w}x{a}"), Design::Mult { w, a, signed_a: grid.signed_activations }));
        }
    }
    for &bits in &grid.accumulator_bits {
        designs.push((format!("acc{bits}"), Design::Acc { bits }));
    }
    let dir = std::env::temp_dir().join(format!("qdse-synth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    progress.set_length(designs.len() as u64);
    // Every result kept, so that a failure reported is the first design's in grid order, not
    // whichever a thread met first.
    let results: Vec<Result<Measured>> = designs
        .par_iter()
        .map(|(tag, d)| {
            let r = measure(&dir, tag, *d, target);
            progress.inc(1);
            r
        })
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    progress.finish_and_clear();
    let mut all = results.into_iter().collect::<Result<Vec<_>>>()?;
    let acc = all.split_off(grid.weight_bits.len() * grid.activation_bits.len());
    Ok(Synthesized { yosys, mult: all, acc })
}

/// Least-squares `y = k*w + c` over the accumulator widths, with `c >= 0` (else through 0).
fn fit_line(ws: &[u32], ys: &[f64]) -> (f64, f64) {
    let n = ws.len() as f64;
    let xs: Vec<f64> = ws.iter().map(|&w| f64::from(w)).collect();
    let (sx, sy) = (xs.iter().sum::<f64>(), ys.iter().sum::<f64>());
    let sxx: f64 = xs.iter().map(|x| x * x).sum();
    let sxy: f64 = xs.iter().zip(ys).map(|(x, y)| x * y).sum();
    let den = n * sxx - sx * sx;
    if ws.len() >= 2 && den > 0.0 {
        let k = (n * sxy - sx * sy) / den;
        let c = (sy - k * sx) / n;
        if c >= 0.0 && k >= 0.0 {
            return (k, c);
        }
    }
    (through_origin(ws, ys), 0.0)
}

/// Least-squares `y = k*w`.
fn through_origin(ws: &[u32], ys: &[f64]) -> f64 {
    let xs = ws.iter().map(|&w| f64::from(w));
    let sxy: f64 = xs.clone().zip(ys).map(|(x, y)| x * y).sum();
    sxy / xs.map(|x| x * x).sum::<f64>()
}

/// The cheapest measured multiplier at least as wide in both operands, per cell (row-major,
/// `cols` per row): synthesis results are not monotone in width (a 16 x 16 multiplier can come
/// out smaller than a 16 x 15 one), but a wider multiplier computes a narrower product, so the
/// narrower never needs to cost more. Returns the cells and the indices that were lowered.
fn envelope(raw: &[f64], cols: usize) -> (Vec<f64>, Vec<usize>) {
    let rows = raw.len() / cols;
    let mut out = raw.to_vec();
    for i in (0..rows).rev() {
        for j in (0..cols).rev() {
            let k = i * cols + j;
            if i + 1 < rows {
                out[k] = out[k].min(out[k + cols]);
            }
            if j + 1 < cols {
                out[k] = out[k].min(out[k + 1]);
            }
        }
    }
    let lowered = (0..raw.len()).filter(|&k| out[k] < raw[k]).collect();
    (out, lowered)
}

/// A number as the profile writes it: 4 decimals, trailing zeros dropped, always a float.
fn num(x: f64) -> String {
    // An empty sum is -0.0: a count of nothing is written as 0.
    let x = if x == 0.0 { 0.0 } else { x };
    let s = format!("{x:.4}");
    let s = s.trim_end_matches('0');
    if s.ends_with('.') {
        format!("{s}0")
    } else {
        s.to_string()
    }
}

fn list(v: &[u32]) -> String {
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

/// Today's date (UTC) as YYYY-MM-DD, from the system clock.
fn today() -> String {
    // RFC 3339 in UTC begins with the date: `2026-11-27T...`.
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()[..10].to_string()
}

/// How the profile's objectives follow from the base's and what the synthesis measured.
fn objectives(base: &toml::Table, target: &Target) -> (Vec<String>, String) {
    let measured: &[&str] = match target {
        Target::Generic { .. } | Target::Liberty(_) => &["area_um2"],
        Target::Xcup => &["dsps", "luts"],
    };
    let keep = |o: &str| ["memory_bits", "mult_cost"].contains(&o) || measured.contains(&o);
    let mut objs: Vec<String> = base
        .get("objectives")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str()).filter(|o| keep(o)).map(String::from).collect())
        .unwrap_or_default();
    for m in measured {
        if !objs.iter().any(|o| o == m) {
            objs.push((*m).to_string());
        }
    }
    let primary = base
        .get("primary")
        .and_then(|v| v.as_str())
        .filter(|p| objs.iter().any(|o| o == p))
        .map_or_else(|| measured[0].to_string(), String::from);
    (objs, primary)
}

/// What `profile_text` needs besides the measurements.
pub struct Provenance<'a> {
    pub name: &'a str,
    /// The base profile's name or path, and its text.
    pub base: (&'a str, &'a str),
    /// The command line that made it, for the header.
    pub command: &'a str,
}

/// The profile file: provenance comments, the base's top-level keys and storage/memory/datapath,
/// and the synthesized `[multiplier.table]` and `[accumulator]`.
pub fn profile_text(target: &Target, grid: &Grid, s: &Synthesized, p: &Provenance) -> Result<String> {
    let base: toml::Table =
        toml::from_str(p.base.1).with_context(|| format!("cannot parse the base profile {}", p.base.0))?;
    let mut t = String::new();
    provenance_comments(&mut t, target, grid, s, p)?;
    top_level_keys(&mut t, target, &base, s, p)?;
    multiplier_table(&mut t, target, grid, s)?;
    accumulator_fit(&mut t, target, grid, s, &base)?;
    // The text must be a valid profile: check it before anyone writes it.
    CostProfile::from_str(&t, p.name).with_context(|| "the synthesized profile does not validate")?;
    Ok(t)
}

/// The header: how the profile was made (command, Yosys version, date, target, scripts).
fn provenance_comments(w: &mut String, target: &Target, grid: &Grid, s: &Synthesized, p: &Provenance) -> Result<()> {
    writeln!(w, "# Synthesized cost profile: made by `{}`", p.command)?;
    writeln!(w, "# {}, {}, target: {}", s.yosys, today(), target.describe())?;
    writeln!(
        w,
        "# Multiplier: signed {{bw}}-bit weight x {} {{ba}}-bit activation, full {{bw+ba}}-bit product, combinational.",
        if grid.signed_activations { "signed" } else { "unsigned" }
    )?;
    writeln!(
        w,
        "# Accumulator: a {{n}}-bit register q <= q + x (adder and flip-flops), fitted per bit over {{n}} = {}.",
        list(&grid.accumulator_bits)
    )?;
    writeln!(
        w,
        "# Yosys script: read_verilog -sv DESIGN.v; {}; {}",
        script(target, false).join("; "),
        stat_cmd(target)
    )?;
    if *target == Target::Xcup {
        writeln!(
            w,
            "#   luts: that script (-nodsp: the multiplier in LUTs); dsps: the same without -nodsp (DSP48E2 cells)."
        )?;
    }
    if let Target::Generic { .. } = target {
        let ws: Vec<String> = GATE_WEIGHTS.iter().map(|(c, g)| format!("{c} {g:.3}")).collect();
        writeln!(w, "# NAND2 equivalents per cell (NanGate 45 nm areas / NAND2_X1): {}", ws.join(", "))?;
    }
    writeln!(w, "# Storage, memory and datapath: from the base profile {}.", p.base.0)?;
    writeln!(w, "# Energy is not measured by synthesis, so energy_pj is not an objective of this profile.")?;
    writeln!(w)?;
    Ok(())
}

/// Name, description, objectives, and the base profile's storage, memory and datapath tables.
fn top_level_keys(w: &mut String, target: &Target, base: &toml::Table, s: &Synthesized, p: &Provenance) -> Result<()> {
    let (objs, primary) = objectives(base, target);
    let q = |s: &str| toml::Value::String(s.into()).to_string();
    writeln!(w, "name = {}", q(p.name))?;
    let desc = format!("{} synthesized with {}; storage and datapath of {}", target.describe(), s.yosys, p.base.0);
    writeln!(w, "description = {}", q(&desc))?;
    writeln!(w, "objectives = [{}]", objs.iter().map(|o| q(o)).collect::<Vec<_>>().join(", "))?;
    writeln!(w, "primary = {}", q(&primary))?;
    if let Some(v) = base.get("activation_operand") {
        writeln!(w, "activation_operand = {v}")?;
    }
    let mut rest = toml::Table::new();
    for key in ["storage", "memory", "datapath"] {
        if let Some(v) = base.get(key) {
            rest.insert(key.into(), v.clone());
        }
    }
    writeln!(w)?;
    w.push_str(&toml::to_string(&rest).context("cannot write the base profile's tables")?);
    writeln!(w)?;
    Ok(())
}

/// `[multiplier]`: the measured table (LUTs and DSPs, or area), each cell the cheapest
/// multiplier at least as wide.
fn multiplier_table(w: &mut String, target: &Target, grid: &Grid, s: &Synthesized) -> Result<()> {
    writeln!(w, "[multiplier]")?;
    writeln!(w, "model = \"table\"")?;
    writeln!(w, "[multiplier.table]")?;
    writeln!(w, "weight_bits = [{}]", list(&grid.weight_bits))?;
    writeln!(w, "activation_bits = [{}]", list(&grid.activation_bits))?;
    type Metric = fn(&Measured) -> f64;
    let metrics: Vec<(&str, Metric)> = match target {
        Target::Xcup => vec![("luts", |m| m.luts), ("dsps", |m| m.dsps)],
        _ => vec![("area_um2", |m| m.area)],
    };
    let cols = grid.activation_bits.len();
    for (key, get) in &metrics {
        let raw: Vec<f64> = s.mult.iter().map(get).collect();
        let (cells, lowered) = envelope(&raw, cols);
        if !lowered.is_empty() {
            writeln!(
                w,
                "# {key}: {} of {} cells hold a wider multiplier's smaller figure (a wider multiplier computes the narrower \
                 product; measured there: {})",
                lowered.len(),
                raw.len(),
                lowered
                    .iter()
                    .map(|&i| format!("{} x {} {}", grid.weight_bits[i / cols], grid.activation_bits[i % cols], num(raw[i])))
                    .collect::<Vec<_>>()
                    .join(", ")
            )?;
        }
        writeln!(w, "{key} = [")?;
        for (i, bw) in grid.weight_bits.iter().enumerate() {
            let row: Vec<String> = cells[i * cols..(i + 1) * cols].iter().map(|&x| num(x)).collect();
            writeln!(w, "  [{}],  # {bw}-bit weights", row.join(", "))?;
        }
        writeln!(w, "]")?;
    }
    writeln!(w)?;
    Ok(())
}

/// `[accumulator]`: the base profile's width rule and a per-bit fit of the measured registers.
fn accumulator_fit(w: &mut String, target: &Target, grid: &Grid, s: &Synthesized, base: &toml::Table) -> Result<()> {
    writeln!(w, "[accumulator]")?;
    if let Some(acc) = base.get("accumulator").and_then(|v| v.as_table()) {
        for key in ["bits", "guard_bits"] {
            if let Some(v) = acc.get(key) {
                writeln!(w, "{key} = {v}")?;
            }
        }
    }
    let (ys, per_bit, fixed): (Vec<f64>, &str, Option<&str>) = match target {
        Target::Xcup => (s.acc.iter().map(|m| m.luts).collect(), "luts_per_bit", None),
        _ => (s.acc.iter().map(|m| m.area).collect(), "area_um2_per_bit", Some("area_um2")),
    };
    let measured: Vec<String> =
        grid.accumulator_bits.iter().zip(&ys).map(|(b, y)| format!("{b}: {}", num(*y))).collect();
    writeln!(w, "# measured per width: {}", measured.join(", "))?;
    let (k, c) = match fixed {
        Some(_) => fit_line(&grid.accumulator_bits, &ys),
        // LUTs: the schema has a per-bit figure only: least squares through 0.
        None => (through_origin(&grid.accumulator_bits, &ys), 0.0),
    };
    writeln!(w, "{per_bit} = {}", num(k))?;
    if let Some(f) = fixed {
        writeln!(w, "{f} = {}", num(c))?;
    }
    Ok(())
}

/// A formula profile's figure for one multiplier metric, per product: its own model, or for a
/// `dsp` model's LUTs the `[multiplier.lut]` formula it parameterises (FINN-R by default) and
/// for its DSPs the DSP operations per product (packing included).
fn formula_metric(p: &CostProfile, metric: &str, bw: u32, ba: u32) -> f64 {
    let c = p.multiplier.cost(bw, ba, 1);
    match (&p.multiplier, metric) {
        (MultiplierModel::Dsp(d), "luts") => d.lut.luts(bw, ba),
        (MultiplierModel::Dsp(d), "dsps") => d.dsp_ops(bw, ba),
        (_, "area_um2") => c.area_um2,
        (_, "luts") => c.luts,
        _ => c.dsps,
    }
}

/// `qdse profile compare`: a formula profile against a synthesized one on the synthesized
/// table's grid, per multiplier metric the table has: the relative error `formula/synth - 1`
/// (mean and median of its magnitude, range, worst cell), the ratio at a few widths, and the
/// accumulators side by side. Markdown, for docs/cost-models.md.
pub fn compare(formula: &CostProfile, synth: &CostProfile) -> Result<String> {
    let MultiplierModel::Table(t) = &synth.multiplier else {
        bail!("{}: the synthesized profile must have a [multiplier.table]", synth.origin);
    };
    let mut s = String::new();
    let w = &mut s;
    writeln!(w, "Multipliers, `{}` (formula) against `{}` (synthesized), per multiplier:\n", formula.name, synth.name)?;
    writeln!(w, "| metric | cells | mean abs. error | median abs. error | formula / synth | worst cell |")?;
    writeln!(w, "|---|---|---|---|---|---|")?;
    let metrics: Vec<(&str, &Vec<f64>)> =
        [("area_um2", &t.area_um2), ("luts", &t.luts), ("dsps", &t.dsps), ("energy_pj", &t.energy_pj)]
            .into_iter()
            .filter_map(|(m, v)| Some((m, v.as_ref()?)))
            .filter(|(m, _)| *m != "energy_pj")
            .collect();
    let mut grids = String::new();
    for (metric, values) in &metrics {
        let mut errs = Vec::new();
        let mut skipped = 0;
        let mut worst = (0.0f64, 0, 0, 0.0, 0.0);
        for (i, &bw) in t.weight_bits.iter().enumerate() {
            for (j, &ba) in t.activation_bits.iter().enumerate() {
                let y = values[i * t.activation_bits.len() + j];
                let f = formula_metric(formula, metric, bw, ba);
                if y <= 0.0 {
                    skipped += 1;
                    continue;
                }
                let e = f / y - 1.0;
                if e.abs() > worst.0.abs() || errs.is_empty() {
                    worst = (e, bw, ba, f, y);
                }
                errs.push(e);
            }
        }
        if errs.is_empty() {
            writeln!(w, "| {metric} | 0 | - | - | - | every synthesized value is 0 |")?;
            continue;
        }
        let mut abs: Vec<f64> = errs.iter().map(|e| e.abs()).collect();
        abs.sort_by(f64::total_cmp);
        let mean = abs.iter().sum::<f64>() / abs.len() as f64;
        let median = abs[abs.len() / 2];
        let (lo, hi) = errs.iter().fold((f64::MAX, f64::MIN), |(l, h), &e| (l.min(e), h.max(e)));
        let skip = if skipped > 0 { format!(" ({skipped} cells with synthesized 0 left out)") } else { String::new() };
        writeln!(
            w,
            "| {metric} | {}{skip} | {:.0}% | {:.0}% | {:.2} .. {:.2} | {} x {}: {} vs {} ({:+.0}%) |",
            errs.len(),
            100.0 * mean,
            100.0 * median,
            1.0 + lo,
            1.0 + hi,
            worst.1,
            worst.2,
            num(worst.3),
            num(worst.4),
            100.0 * worst.0
        )?;
        // The ratio at a few widths: where the formula is off.
        let pick: Vec<u32> = [2, 4, 8, 12, 16].into_iter().filter(|b| t.weight_bits.contains(b)).collect();
        let pick_a: Vec<u32> = [2, 4, 8, 12, 16].into_iter().filter(|b| t.activation_bits.contains(b)).collect();
        writeln!(grids, "\n{metric}, formula / synthesized (rows: weight bits, columns: activation bits):\n")?;
        writeln!(grids, "| bw \\ ba | {} |", pick_a.iter().map(u32::to_string).collect::<Vec<_>>().join(" | "))?;
        writeln!(grids, "|---|{}", "---|".repeat(pick_a.len()))?;
        for &bw in &pick {
            let cells: Vec<String> = pick_a
                .iter()
                .map(|&ba| {
                    let y = synth.multiplier.cost(bw, ba, 1);
                    let y = match *metric {
                        "area_um2" => y.area_um2,
                        "luts" => y.luts,
                        _ => y.dsps,
                    };
                    let f = formula_metric(formula, metric, bw, ba);
                    if y > 0.0 {
                        format!("{:.2}", f / y)
                    } else {
                        format!("{} / 0", num(f))
                    }
                })
                .collect();
            writeln!(grids, "| {bw} | {} |", cells.join(" | "))?;
        }
    }
    w.push_str(&grids);
    writeln!(w, "\nAccumulators (one per multiplier), formula against synthesized:\n")?;
    writeln!(w, "| width | {} | {} |", formula.name, synth.name)?;
    writeln!(w, "|---|---|---|")?;
    let (fa, sa) = (&formula.accumulator, &synth.accumulator);
    let luts = metrics.iter().any(|(m, _)| *m == "luts");
    for bits in [8u32, 16, 24, 32] {
        let (f, y) = if luts { (fa.luts(bits), sa.luts(bits)) } else { (fa.area(bits), sa.area(bits)) };
        writeln!(w, "| {bits} | {} | {} |", num(f), num(y))?;
    }
    Ok(s)
}
