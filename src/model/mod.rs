//! Network representation: our own IR and the ONNX importer that lowers into it.
pub mod external_data;
pub mod ir;
pub mod onnx;
pub mod onnx_proto;
pub mod summary;

pub use ir::{Activation, Graph, Node, Op, Value, ValueId, Window};
pub use onnx::ImportError;
pub use summary::inspect_table;
