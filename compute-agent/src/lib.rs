//! Quiver's compute agent: one process per hypervisor host (or one process
//! for many simulated hosts), as Nova's nova-compute.
//!
//! - [`driver`]: the [`ComputeDriver`] trait every hypervisor backend
//!   implements, with [`libvirt_driver::LibvirtDriver`] (the `virt` crate;
//!   `test:///default` by default, `qemu:///system` on a real host) and
//!   [`fake_driver::FakeDriver`] (in memory, thousands per process);
//! - [`agent`]: the [`Agent`] that owns the drivers of its hosts, registers
//!   them with the controller, heartbeats and reconciles, and the HTTP API
//!   (`router`) the conductor calls to build, stop, start, reboot and delete;
//! - [`controller`]: what the agent needs from `quiver serve` (register,
//!   heartbeat, reconcile), in process or over HTTP;
//! - [`client`]: the conductor's side of the agent's HTTP API;
//! - [`image_cache`]: each host's base images, fetched ahead of boots.

pub mod agent;
pub mod client;
pub mod controller;
pub mod driver;
pub mod fake_driver;
pub mod image_cache;
pub mod libvirt_driver;
pub mod protocol;
pub mod provider_config;

pub use agent::{Agent, AgentConfig};
pub use driver::{ComputeDriver, DriverError, GuestInfo, GuestSpec, HostInfo, PowerState};
