//! The Placement domain and its durable store.
//!
//! Filled in by the Placement issue: resource providers, inventories,
//! allocations and the SQLite store that feeds the engine's columnar replica.
