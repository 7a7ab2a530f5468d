//! The Quiver API crate: the Placement REST API (and the `quiver` binary).
pub mod auth;
pub mod compute_api;
pub mod http_server;
pub mod openapi;
pub mod placement_api;
pub mod query_output;
