//! One compute host as the outside world describes it: the row a fleet is
//! built from, and what an export gives back. Every format (nova-sched JSON,
//! generators, later the Placement store) produces these.

use std::collections::BTreeMap;
use std::net::IpAddr;

/// A Placement inventory of one resource class on a host's root provider,
/// as a fleet row holds it: the class, Placement's record
/// ([`crate::inventory::Inventory`], see [`Inventory::from_record`]) and
/// the usage against it.
#[derive(Clone, Debug, PartialEq)]
pub struct Inventory {
    /// Resource class name (`VCPU`, `MEMORY_MB`, `CUSTOM_*` ...).
    pub resource_class: String,
    /// Total amount.
    pub total: i64,
    /// Reserved for the host itself.
    pub reserved: i64,
    /// Smallest amount one allocation may take.
    pub min_unit: i64,
    /// Largest amount one allocation may take.
    pub max_unit: i64,
    /// Allocations must be a multiple of this.
    pub step_size: i64,
    /// Overcommit ratio.
    pub allocation_ratio: f64,
    /// Amount allocated now (Placement usage).
    pub used: i64,
}

impl Inventory {
    /// The row of `resource_class` from Placement's record and its usage.
    pub fn from_record(resource_class: &str, record: &crate::inventory::Inventory, used: i64) -> Self {
        let crate::inventory::Inventory { total, reserved, min_unit, max_unit, step_size, allocation_ratio } = *record;
        Self {
            resource_class: resource_class.to_owned(),
            total,
            reserved,
            min_unit,
            max_unit,
            step_size,
            allocation_ratio,
            used,
        }
    }

    /// Placement's record of this row (its usage aside).
    pub fn record(&self) -> crate::inventory::Inventory {
        crate::inventory::Inventory {
            total: self.total,
            reserved: self.reserved,
            min_unit: self.min_unit,
            max_unit: self.max_unit,
            step_size: self.step_size,
            allocation_ratio: self.allocation_ratio,
        }
    }

    /// An inventory with Placement's defaults: no reservation, units of 1,
    /// `max_unit = total`.
    pub fn simple(resource_class: &str, total: i64, allocation_ratio: f64) -> Self {
        Self {
            resource_class: resource_class.to_owned(),
            total,
            reserved: 0,
            min_unit: 1,
            max_unit: total,
            step_size: 1,
            allocation_ratio,
            used: 0,
        }
    }
}

/// The nova-compute service record of a host.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceRecord {
    /// Disabled by an operator.
    pub disabled: bool,
    /// Forced down by an operator.
    pub forced_down: bool,
    /// Seconds since the last heartbeat.
    pub last_seen_up_age_s: f64,
    /// nova-compute service version.
    pub version: i32,
}

impl Default for ServiceRecord {
    fn default() -> Self {
        Self { disabled: false, forced_down: false, last_seen_up_age_s: 10.0, version: 74 }
    }
}

/// One compute host: Placement's root provider plus Nova's `HostState`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct HostRecord {
    /// Service host name (unique).
    pub name: String,
    /// Hypervisor node name, when it differs from `name`.
    pub nodename: Option<String>,
    /// Root resource provider uuid.
    pub uuid: u128,
    /// Cell name.
    pub cell: String,
    /// Availability zone as the source described it (informational: the
    /// engine derives AZs from aggregate metadata, as Nova does).
    pub availability_zone: Option<String>,
    /// Ids of the aggregates the host belongs to.
    pub aggregates: Vec<u32>,
    /// Management IP (SimpleCIDRAffinityFilter).
    pub host_ip: Option<IpAddr>,
    /// Placement inventories of the root provider.
    pub inventories: Vec<Inventory>,
    /// Placement traits of the root provider.
    pub traits: Vec<String>,
    /// `HostState.vcpus_used`.
    pub vcpus_used: i64,
    /// `HostState.free_ram_mb` (physical, may be negative).
    pub free_ram_mb: i64,
    /// `HostState.free_disk_mb`.
    pub free_disk_mb: i64,
    /// `HostState.num_instances`.
    pub num_instances: i64,
    /// `HostState.num_io_ops`.
    pub num_io_ops: i64,
    /// `HostState.failed_builds`.
    pub failed_builds: i64,
    /// Hypervisor type (`QEMU` ...).
    pub hypervisor_type: String,
    /// Hypervisor version, `major*1e6 + minor*1e3 + micro`.
    pub hypervisor_version: i64,
    /// CPU description as the JSON string Nova stores.
    pub cpu_info: String,
    /// Supported `[arch, hv_type, vm_mode]` triples, canonical.
    pub supported_instances: Vec<[String; 3]>,
    /// Extra compute node stats.
    pub stats: BTreeMap<String, String>,
    /// Compute service.
    pub service: ServiceRecord,
    /// Monitor metrics `(name, value)`; percent metrics already scaled.
    pub metrics: Vec<(String, f64)>,
    /// Instances on the host.
    pub instances: Vec<u128>,
}

impl HostRecord {
    /// The inventory of `rc`, if the host has one.
    pub fn inventory(&self, rc: &str) -> Option<&Inventory> {
        self.inventories.iter().find(|i| i.resource_class == rc)
    }
}

/// A Nova host aggregate.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Aggregate {
    /// Nova aggregate id.
    pub id: u32,
    /// Placement aggregate uuid.
    pub uuid: u128,
    /// Name.
    pub name: String,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
}
