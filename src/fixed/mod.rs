//! The fixed-point core: formats, rounding/overflow, and per-layer assignments (point files).
pub mod assignment;
pub mod format;
pub mod round;

pub use assignment::{Assignment, LayerFormats};
pub use format::{Format, RangeMode};
pub use round::{Arith, Overflow, Rounding};
