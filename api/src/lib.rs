//! The Quiver API crate: the Placement REST API (and the `quiver` binary).
pub mod placement_api;
