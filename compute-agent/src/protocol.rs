//! What crosses between the conductor and an agent, in process or as JSON
//! over HTTP: the agent's operations ([`AgentApi`]) and what an agent reports
//! to the controller ([`HostReport`] and friends).

use quiver_engine::inventory::Inventory;
use serde::{Deserialize, Serialize};

use crate::driver::{DriverError, GuestInfo, GuestSpec, HostInfo};

/// One Placement inventory record the agent reports for its root provider:
/// the class and Placement's own record type (flattened on the wire).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InventoryReport {
    pub resource_class: String,
    #[serde(flatten)]
    pub inventory: Inventory,
}

/// An agent's registration of one host: its compute service, hypervisor
/// and root resource provider (inventory and traits), and its guests.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostReport {
    /// Service host name, unique in the cloud.
    pub host: String,
    /// Where the agent's HTTP API listens; `None` for an in-process agent.
    pub agent_url: Option<String>,
    pub info: HostInfo,
    pub inventory: Vec<InventoryReport>,
    /// Traits the hypervisor gives (CPU features, `COMPUTE_NODE`); the
    /// controller adds `COMPUTE_STATUS_DISABLED` while the service is.
    pub traits: Vec<String>,
    pub guests: Vec<GuestInfo>,
}

/// The controller's answer to a registration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Registered {
    /// The compute node's uuid, also its root resource provider's.
    pub compute_node_uuid: String,
    pub disabled: bool,
}

/// A heartbeat (Nova's service `report_state`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub host: String,
}

/// What the hypervisor runs, for the controller to compare with its records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReconcileRequest {
    pub host: String,
    pub guests: Vec<GuestInfo>,
}

/// Guests the agent must destroy: no live server on this host owns them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReconcileReply {
    pub destroy: Vec<String>,
}

/// A power action on a guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Action {
    Stop,
    Start,
    Reboot { hard: bool },
}

/// Error body of the agent's HTTP API.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub kind: ErrorKind,
}

/// Which [`AgentError`] an [`ErrorBody`] carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    NoSuchHost,
    NotFound,
    Exists,
    Hypervisor,
}

/// Why an agent operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("this agent runs no host named {0}")]
    NoSuchHost(String),
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// The agent could not be reached or answered nonsense: the guest's
    /// fate is unknown to the caller.
    #[error("agent unreachable: {0}")]
    Unreachable(String),
    /// A provider config file that does not fit the host.
    #[error(transparent)]
    ProviderConfig(#[from] crate::provider_config::ProviderConfigError),
}

impl AgentError {
    pub fn body(&self) -> ErrorBody {
        let kind = match self {
            AgentError::NoSuchHost(_) => ErrorKind::NoSuchHost,
            AgentError::Driver(DriverError::NotFound(_)) => ErrorKind::NotFound,
            AgentError::Driver(DriverError::Exists(_)) => ErrorKind::Exists,
            _ => ErrorKind::Hypervisor,
        };
        ErrorBody { error: self.to_string(), kind }
    }

    /// The error an [`ErrorBody`] describes.
    pub fn from_body(b: ErrorBody, uuid: &str) -> AgentError {
        match b.kind {
            ErrorKind::NoSuchHost => AgentError::NoSuchHost(b.error),
            ErrorKind::NotFound => AgentError::Driver(DriverError::NotFound(uuid.to_owned())),
            ErrorKind::Exists => AgentError::Driver(DriverError::Exists(uuid.to_owned())),
            ErrorKind::Hypervisor => AgentError::Driver(DriverError::Hypervisor(b.error)),
        }
    }
}

/// What the conductor asks of the agent that runs `host`; implemented by
/// [`crate::Agent`] (in process) and [`crate::client::AgentClient`] (HTTP).
/// Calls block.
pub trait AgentApi: Send + Sync {
    fn build(&self, host: &str, spec: &GuestSpec) -> Result<GuestInfo, AgentError>;
    fn action(&self, host: &str, uuid: &str, action: Action) -> Result<GuestInfo, AgentError>;
    /// Destroys a guest; one that does not exist is not an error.
    fn delete(&self, host: &str, uuid: &str) -> Result<(), AgentError>;
    fn guests(&self, host: &str) -> Result<Vec<GuestInfo>, AgentError>;
    /// Fetches images into `host`'s base-image cache (Nova's
    /// `cache_images`), one result per image.
    fn cache_images(
        &self,
        host: &str,
        images: &[crate::image_cache::ImageFetch],
    ) -> Result<std::collections::BTreeMap<String, crate::image_cache::CacheOutcome>, AgentError>;
    /// The image ids in `host`'s cache.
    fn cached_images(&self, host: &str) -> Result<Vec<String>, AgentError>;
}
