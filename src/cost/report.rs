//! The `qdse cost` breakdown: per-layer rows and totals of the chosen assignment, side by side
//! with the uniform 8-bit assignment and the float32 model, with reductions in percent.
//! Deterministic text (fixed column order, fixed number formatting) so it can be snapshotted.

use super::price::{Costs, LayerCost};
use super::Objective;
use crate::model::Graph;
use serde_json::{json, Map, Value};

/// Format a number for the table: integers exactly, others with a precision that suits them.
fn num(x: f64) -> String {
    if !x.is_finite() {
        return if x.is_nan() { "nan".into() } else { "inf".into() };
    }
    let a = x.abs();
    if (x.fract() == 0.0 && a < 1e15) || a >= 1000.0 {
        format!("{x:.0}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.4}")
    }
}

/// Reduction of `x` against `base`, in percent (positive: `x` is cheaper).
pub fn reduction_pct(x: f64, base: f64) -> Option<f64> {
    (base != 0.0 && base.is_finite() && x.is_finite()).then(|| (1.0 - x / base) * 100.0)
}

fn pct(x: f64, base: f64) -> String {
    reduction_pct(x, base).map_or_else(|| "n/a".into(), |r| format!("{r:.1}%"))
}

/// Render rows as columns: the first `left` columns left-aligned, the rest right-aligned.
fn render(rows: &[Vec<String>], left: usize, out: &mut String) {
    let ncol = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut width = vec![0; ncol];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = width[i] - c.chars().count();
            if i < left {
                line.push_str(c);
                line.extend(std::iter::repeat_n(' ', pad));
            } else {
                line.extend(std::iter::repeat_n(' ', pad));
                line.push_str(c);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

fn shape(graph: &Graph, l: &LayerCost) -> String {
    graph
        .nodes
        .get(l.node)
        .map(|n| {
            graph.values[n.output].shape.iter().map(std::string::ToString::to_string).collect::<Vec<_>>().join("x")
        })
        .unwrap_or_default()
}

fn dash_or(x: u32) -> String {
    if x == 0 {
        "-".into()
    } else {
        x.to_string()
    }
}

/// The human-readable breakdown: per-layer rows and totals for `chosen`, then every exposed
/// objective for the chosen, uniform 8-bit and float32 assignments with the reductions.
pub fn breakdown_table(graph: &Graph, chosen: &Costs, baseline8: &Costs, float32: &Costs) -> String {
    let extra: Vec<Objective> = [Objective::EnergyPj, Objective::AreaUm2, Objective::Luts, Objective::Dsps]
        .into_iter()
        .filter(|&o| chosen.totals.get(o).is_some())
        .collect();
    let mut rows = layer_rows(graph, chosen, &extra);
    rows.extend(part_rows(chosen, &extra));
    rows.push(total_row(chosen, &extra));
    let mut out = String::new();
    render(&rows, 2, &mut out);
    out.push_str("(memory in bits; totals are allocated storage; mult cost = bw x ba x mults)\n\n");
    render(&comparison_rows(chosen, baseline8, float32), 1, &mut out);
    out.push_str("(vs: reduction of the chosen assignment, positive = cheaper)\n");
    out
}

/// The header and one row per layer, with a column per `extra` objective.
fn layer_rows(graph: &Graph, chosen: &Costs, extra: &[Objective]) -> Vec<Vec<String>> {
    let mut header: Vec<String> =
        ["layer", "op", "output", "bw", "ba", "acc", "weights b", "biases b", "activ. b", "mults", "mult cost"]
            .map(String::from)
            .to_vec();
    for o in extra {
        header.push(
            match o {
                Objective::EnergyPj => "energy pJ",
                Objective::AreaUm2 => "area um2",
                Objective::Luts => "LUTs",
                _ => "DSPs",
            }
            .into(),
        );
    }
    let per_layer = |l: &LayerCost, o: Objective| match o {
        Objective::EnergyPj => l.energy_pj,
        Objective::AreaUm2 => l.area_um2,
        Objective::Luts => l.luts,
        _ => l.dsps,
    };
    let mut rows = vec![header];
    for l in &chosen.layers {
        let mut r = vec![
            l.name.to_string(),
            l.op.to_string(),
            shape(graph, l),
            dash_or(l.bw),
            dash_or(l.ba),
            dash_or(l.acc_bits),
            l.weight_bits.to_string(),
            l.bias_bits.to_string(),
            l.activation_bits.to_string(),
            l.mults.to_string(),
            l.mult_cost.to_string(),
        ];
        r.extend(extra.iter().map(|&o| {
            // a shared array's area is not per layer: it has its own row
            if chosen.array.is_some() && o != Objective::EnergyPj {
                "-".to_string()
            } else {
                num(per_layer(l, o))
            }
        }));
        rows.push(r);
    }
    rows
}

/// The rows of what is priced outside the layers: the storage (when an area-like objective is
/// exposed) and the shared array.
fn part_rows(chosen: &Costs, extra: &[Objective]) -> Vec<Vec<String>> {
    let part_row = |label: &str, part: &super::price::PartCost| {
        let mut r = vec![label.to_string()];
        r.extend(std::iter::repeat_n(String::new(), 10));
        r.extend(extra.iter().map(|&o| match o {
            Objective::EnergyPj => String::new(),
            Objective::AreaUm2 => num(part.area_um2),
            Objective::Luts => num(part.luts),
            _ => num(part.dsps),
        }));
        r
    };
    let mut rows = Vec::new();
    if extra.iter().any(|o| *o != Objective::EnergyPj) {
        rows.push(part_row("storage", &chosen.storage));
    }
    if let (Some(array), Some((bw, ba, acc))) = (&chosen.array, chosen.array_widths) {
        let mut r = part_row("shared array", array);
        r[3] = dash_or(bw);
        r[4] = dash_or(ba);
        r[5] = dash_or(acc);
        rows.push(r);
    }
    rows
}

fn total_row(chosen: &Costs, extra: &[Objective]) -> Vec<String> {
    let mut total = vec![
        "total".to_string(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        chosen.memory.weights.to_string(),
        chosen.memory.biases.to_string(),
        chosen.memory.activations.to_string(),
        chosen.layers.iter().map(|l| l.mults).sum::<u64>().to_string(),
        chosen.layers.iter().map(|l| l.mult_cost).sum::<u64>().to_string(),
    ];
    total.extend(extra.iter().map(|&o| num(chosen.totals.raw(o))));
    total
}

/// Every exposed objective for the chosen, uniform 8-bit and float32 assignments, with the
/// reductions.
fn comparison_rows(chosen: &Costs, baseline8: &Costs, float32: &Costs) -> Vec<Vec<String>> {
    let mut rows =
        vec![["objective", "chosen", "uniform 8-bit", "float32", "vs 8-bit", "vs float32"].map(String::from).to_vec()];
    for (o, v) in chosen.totals.iter() {
        let b8 = baseline8.totals.raw(o);
        let f32 = float32.totals.raw(o);
        rows.push(vec![o.name().to_string(), num(v), num(b8), num(f32), pct(v, b8), pct(v, f32)]);
    }
    rows
}

fn layer_json(graph: &Graph, l: &LayerCost, exposed: &[Objective]) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(&*l.name));
    m.insert("op".into(), json!(l.op));
    m.insert(
        "output_shape".into(),
        json!(graph.nodes.get(l.node).map(|n| graph.values[n.output].shape.clone()).unwrap_or_default()),
    );
    m.insert("bw".into(), json!(l.bw));
    m.insert("ba".into(), json!(l.ba));
    m.insert("acc_bits".into(), json!(l.acc_bits));
    m.insert("weight_bits".into(), json!(l.weight_bits));
    m.insert("bias_bits".into(), json!(l.bias_bits));
    m.insert("activation_bits".into(), json!(l.activation_bits));
    m.insert("mults".into(), json!(l.mults));
    m.insert("mult_cost".into(), json!(l.mult_cost));
    if exposed.contains(&Objective::EnergyPj) {
        m.insert("energy_pj".into(), json!(l.energy_pj));
        m.insert("mult_energy_pj".into(), json!(l.mult_energy_pj));
        m.insert("acc_energy_pj".into(), json!(l.acc_energy_pj));
        m.insert("mem_energy_pj".into(), json!(l.mem_energy_pj));
    }
    if exposed.contains(&Objective::AreaUm2) {
        m.insert("area_um2".into(), json!(l.area_um2));
    }
    if exposed.contains(&Objective::Luts) {
        m.insert("luts".into(), json!(l.luts));
    }
    if exposed.contains(&Objective::Dsps) {
        m.insert("dsps".into(), json!(l.dsps));
    }
    Value::Object(m)
}

fn totals_json(c: &Costs) -> Value {
    Value::Object(c.totals.iter().map(|(o, v)| (o.name().to_string(), json_num(v))).collect())
}

/// JSON has no infinity: uncovered widths become null.
fn json_num(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        Value::Null
    }
}

/// The same breakdown as JSON:
/// `{objectives, layers: [...], memory: {weights, biases, activations}, totals: {chosen,
/// uniform8, float32}, reduction_pct: {vs_uniform8, vs_float32}}`.
pub fn breakdown_json(graph: &Graph, chosen: &Costs, baseline8: &Costs, float32: &Costs) -> Value {
    let exposed: Vec<Objective> = chosen.totals.iter().map(|(o, _)| o).collect();
    let red = |base: &Costs| -> Value {
        Value::Object(
            chosen
                .totals
                .iter()
                .map(|(o, v)| {
                    let r = reduction_pct(v, base.totals.raw(o));
                    (o.name().to_string(), r.map_or(Value::Null, |r| json!(r)))
                })
                .collect(),
        )
    };
    let part = |p: &super::price::PartCost| json!({"area_um2": p.area_um2, "luts": p.luts, "dsps": p.dsps});
    let mut v = json!({
        "objectives": exposed.iter().map(|o| o.name()).collect::<Vec<_>>(),
        "layers": chosen.layers.iter().map(|l| layer_json(graph, l, &exposed)).collect::<Vec<_>>(),
        "memory": {
            "weights": chosen.memory.weights,
            "biases": chosen.memory.biases,
            "activations": chosen.memory.activations,
        },
        "storage": part(&chosen.storage),
        "totals": {
            "chosen": totals_json(chosen),
            "uniform8": totals_json(baseline8),
            "float32": totals_json(float32),
        },
        "reduction_pct": {
            "vs_uniform8": red(baseline8),
            "vs_float32": red(float32),
        },
    });
    if let (Some(a), Some((bw, ba, acc))) = (&chosen.array, chosen.array_widths) {
        let mut p = part(a);
        p["bw"] = json!(bw);
        p["ba"] = json!(ba);
        p["acc_bits"] = json!(acc);
        v["shared_array"] = p;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_format() {
        assert_eq!(num(12.0), "12");
        assert_eq!(num(0.2), "0.2000");
        assert_eq!(num(4.5678), "4.57");
        assert_eq!(num(12345.6), "12346");
        assert_eq!(num(f64::INFINITY), "inf");
    }

    #[test]
    fn reductions() {
        assert_eq!(reduction_pct(25.0, 100.0), Some(75.0));
        assert_eq!(reduction_pct(150.0, 100.0), Some(-50.0));
        assert_eq!(reduction_pct(1.0, 0.0), None);
        assert_eq!(pct(47.0, 100.0), "53.0%");
    }
}
