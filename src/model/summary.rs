//! Human-readable summary of a graph (backs `qdse inspect MODEL`).
use super::ir::{Activation, Graph, Node, Op};

/// `8x6x6` for a per-sample shape (`-` for a scalar).
pub fn shape_str(shape: &[usize]) -> String {
    if shape.is_empty() {
        return "-".into();
    }
    shape.iter().map(std::string::ToString::to_string).collect::<Vec<_>>().join("x")
}

fn activation_str(a: Activation) -> Option<String> {
    match a {
        Activation::None => None,
        Activation::Relu => Some("Relu".into()),
        Activation::Clip { min, max } => Some(format!("Clip({min},{max})")),
    }
}

/// Op column: the op kind plus a fused activation, e.g. `Conv+Relu`, `Activation(Relu)`.
pub fn op_label(node: &Node) -> String {
    let act = activation_str(node.op.activation());
    match (&node.op, act) {
        (Op::Activation(_), Some(a)) => format!("Activation({a})"),
        (op, Some(a)) => format!("{}+{a}", op.kind()),
        (op, None) => op.kind().to_string(),
    }
}

/// Thousands separators: `1234567` -> `1,234,567`.
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A table of the layers: name, op (with fused activation), input and output shapes (per sample,
/// batch axis omitted), parameters (weights + bias) and MACs per sample, then totals.
pub fn inspect_table(graph: &Graph) -> String {
    let header = ["layer", "op", "input", "output", "params", "MACs"];
    let mut rows: Vec<[String; 6]> = Vec::with_capacity(graph.nodes.len());
    let (mut total_params, mut total_macs) = (0u64, 0u64);
    for node in &graph.nodes {
        let (w, b) = graph.param_counts(node);
        let params = (w + b) as u64;
        let macs = graph.macs(node);
        total_params += params;
        total_macs += macs;
        let inputs: Vec<String> = node.inputs.iter().map(|&v| shape_str(graph.shape(v))).collect();
        rows.push([
            node.name.clone(),
            op_label(node),
            inputs.join(" + "),
            shape_str(graph.shape(node.output)),
            if params == 0 { "-".into() } else { group(params) },
            if macs == 0 { "-".into() } else { group(macs) },
        ]);
    }
    let total_row =
        ["total".to_string(), String::new(), String::new(), String::new(), group(total_params), group(total_macs)];
    let mut width = header.map(str::len);
    for r in rows.iter().chain(std::iter::once(&total_row)) {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String; 6]| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(width).enumerate() {
            let pad = w - c.chars().count();
            if i >= 4 {
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(pad));
            }
            if i < 5 {
                s.push_str("  ");
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let input = &graph.values[graph.input];
    let output = &graph.values[graph.output];
    let mut out = format!(
        "input '{}' {}   output '{}' {}   {} layers\n",
        input.name,
        shape_str(&input.shape),
        output.name,
        shape_str(&output.shape),
        graph.nodes.len()
    );
    out.push_str(&line(&header.map(String::from)));
    out.push_str(&line(&width.map(|w| "-".repeat(w))));
    for r in &rows {
        out.push_str(&line(r));
    }
    out.push_str(&line(&width.map(|w| "-".repeat(w))));
    out.push_str(&line(&total_row));
    out
}

#[cfg(test)]
mod tests {
    use super::group;

    #[test]
    fn thousands() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1234567), "1,234,567");
    }
}
