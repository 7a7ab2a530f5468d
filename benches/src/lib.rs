//! Measurement code behind `quiver bench` and the criterion benches: the
//! row-by-row baseline, the memory-bandwidth floor, claim cost and memory.

pub mod measure;
pub mod rowwise;
