//! ONNX import (in progress).
use super::Graph;
pub fn load(path: &std::path::Path) -> anyhow::Result<Graph> {
    anyhow::bail!("ONNX import is not wired yet: {}", path.display())
}
