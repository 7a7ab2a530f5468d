//! The compute agent: registers a host with Placement and runs guests through
//! a `ComputeDriver` (libvirt through the `virt` crate, or a fake driver).
//!
//! Filled in by the boot-servers issue.
