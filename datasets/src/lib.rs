//! Fleet and request formats and seeded generators.
//!
//! - [`nova_json`]: the `nova-sched-fleet/v1` and `nova-sched-requests/v1`
//!   documents of `../shared/nova-parity/FORMAT.md`, with their loading
//!   semantics (what the parity harness derives from each host object).
//! - [`generator`]: seeded synthetic fleets shaped like the parity kit's
//!   `fleet-gen.py`, built straight into the engine without a file.
//! - [`trace`]: workload traces (CSV, Parquet) for `quiver simulate`.
//! - [`alibaba`]: the Alibaba GPU cluster trace as a fleet and a workload.
//! - [`workload_gen`]: seeded synthetic workloads (Poisson arrivals).

pub mod alibaba;
pub mod generator;
pub mod nova_json;
pub mod trace;
pub mod workload_gen;
