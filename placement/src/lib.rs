//! The Placement domain: resource providers (trees), inventories, resource
//! classes, traits, aggregates, consumers and allocations, kept in memory for
//! fast reads and written through to an embedded SQLite store (WAL mode) that
//! is the source of truth. Allocation candidates are answered from the
//! in-memory replica.
//!
//! Names and behaviour follow OpenStack Placement 16.0 (microversions 1.0 to
//! 1.39); error details match Placement's so that its own API test suite can
//! be run against Quiver.

pub mod candidates;
pub mod error;
pub mod fleet;
pub mod model;
pub mod ops;
pub mod request;
pub mod service;
pub mod store;

pub use error::{Error, codes};
pub use model::{Consumer, Inventory, Provider, State};
pub use service::Placement;
