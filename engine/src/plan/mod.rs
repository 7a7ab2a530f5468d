//! Capacity planning on a copy of a fleet: questions a replay alone does
//! not answer, each answered with the real scheduler's decisions.

pub mod headroom;

pub use headroom::{Headroom, PartHeadroom, headroom};
