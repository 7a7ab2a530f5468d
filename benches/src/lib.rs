//! Measurement code behind `quiver bench` and the criterion benches: the
//! named workloads and their runners, the row-by-row baseline, the
//! memory-bandwidth floor, figures with their spread, machine load, and
//! the comparison of two runs.

pub mod compare;
pub mod decision;
pub mod machine;
pub mod measure;
pub mod rowwise;
pub mod run_document;
pub mod simulation;
pub mod stats;
pub mod workloads;
