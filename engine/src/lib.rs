//! Quiver's columnar scheduling engine: the fleet as Arrow batches, Nova's
//! filters and weighers as kernels over packed masks, and selection.

pub mod error;
pub mod fleet;
pub mod host;
pub mod mask;
pub mod vocab;

pub use error::{EngineError, Result};
pub use fleet::{Fleet, FleetBuilder};
pub use host::{Aggregate, HostRecord, Inventory, ServiceRecord};
pub use mask::Mask;
