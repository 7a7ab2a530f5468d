//! Capacity planning on a copy of a fleet: questions a replay alone does
//! not answer, each answered with the real scheduler's decisions.

pub mod drain;
pub mod headroom;
pub mod size;

pub use drain::{Drain, DrainInstance, Move, ZoneCapacity, drain, nova_move_order};
pub use headroom::{Headroom, PartHeadroom, headroom};
pub use size::{Size, SizePoint, describe_shape, host_shape, size};
