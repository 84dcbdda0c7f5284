//! Network representation: our own IR and the ONNX importer that lowers into it.
pub mod ir;
pub mod onnx;

pub use ir::{Activation, Graph, Node, Op, Value, ValueId, Window};
pub mod summary;
