//! Quiver's columnar scheduling engine: the fleet as Arrow batches, Nova's
//! filters and weighers as kernels over packed masks, and selection.

pub mod candidates;
pub mod config;
pub mod error;
pub mod extra_specs_ops;
pub mod filters;
pub mod fleet;
pub mod host;
pub mod host_attrs;
pub mod image_props;
pub mod inventory;
pub mod io;
pub mod mask;
pub mod plan;
pub mod pyvalue;
pub mod request;
pub mod resource_request;
pub mod scheduler;
pub mod select;
pub mod sim;
#[cfg(feature = "sql")]
pub mod sql;
pub mod vocab;
pub mod weights;

pub use config::SchedulerConfig;
pub use error::{EngineError, Result};
pub use fleet::{Fleet, FleetBuilder};
pub use host::{Aggregate, HostRecord, Inventory, ServiceRecord};
pub use mask::Mask;
pub use request::{BootRequest, ServerGroup};
pub use scheduler::{Decision, Groups, Scheduler};
