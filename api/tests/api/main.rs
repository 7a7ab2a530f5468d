//! The `api` crate through its public interfaces: the `quiver` command
//! line and the Placement REST API served by `quiver serve`.

mod bench;
mod cli;
mod compute;
mod faults;
mod fuzz;
mod keystone;
mod placement;
mod replicas;
