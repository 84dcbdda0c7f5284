use super::Graph;
pub fn inspect_table(g: &Graph) -> String {
    format!("{} nodes\n", g.nodes.len())
}
