//! The uniform sweep: every tensor at b bits with its no-clip offset, b = 2..=16. b = 8 is the
//! baseline every report compares against.

use super::{Context, Search};
use crate::fixed::Assignment;

pub const BITS: std::ops::RangeInclusive<u32> = 2..=16;

/// Score the uniform assignment at every width; returns (bits, loss) of those scored.
pub fn run(s: &mut Search, uniform: &dyn Fn(u32) -> Assignment) -> Vec<(u32, f64)> {
    BITS.filter_map(|b| s.evaluate(&uniform(b), &format!("uniform-{b}"), None).map(|l| (b, l))).collect()
}

/// The `uniform` strategy: the sweep every run starts with, and nothing more.
pub fn strategy(_: &mut Context) {}
