//! The Placement domain: resource providers (trees), inventories, resource
//! classes, traits, aggregates, consumers and allocations, kept in memory for
//! fast reads and written through to the store that is the source of truth:
//! embedded SQLite (WAL mode), or PostgreSQL shared by several replicas that
//! follow its change feed. Allocation candidates are answered from the
//! in-memory replica.
//!
//! Names and behaviour follow OpenStack Placement 16.0 (microversions 1.0 to
//! 1.39); error details match Placement's so that its own API test suite can
//! be run against Quiver.

pub mod candidates;
pub mod error;
pub mod fleet;
pub mod follower;
pub mod model;
pub mod ops;
#[cfg(test)]
mod replica_tests;
pub mod request;
pub mod service;
pub mod store;

pub use error::{Error, codes};
pub use model::{Consumer, Inventory, Provider, State};
pub use service::Placement;
