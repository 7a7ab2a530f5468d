//! `HostState` attributes by name, for the filters that address them by
//! string (ComputeCapabilitiesFilter scopes, JsonFilter `$variables`).

use serde_json::{Value, json};

use crate::fleet::Fleet;

/// What a host attribute name resolves to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attr {
    /// A value that depends on the host row.
    PerHost(&'static str),
    /// The JSON `cpu_info` string (one value per dictionary code).
    CpuInfo,
    /// The `stats` dict (one value per distinct map).
    Stats,
    /// `supported_instances` (one value per distinct list).
    SupportedInstances,
    /// `hypervisor_type` (one value per dictionary code).
    HypervisorType,
}

/// `HostState` attributes Quiver can resolve.
pub fn lookup(name: &str) -> Option<Attr> {
    Some(match name {
        "cpu_info" => Attr::CpuInfo,
        "stats" => Attr::Stats,
        "supported_instances" => Attr::SupportedInstances,
        "hypervisor_type" => Attr::HypervisorType,
        "host"
        | "nodename"
        | "hypervisor_hostname"
        | "uuid"
        | "free_ram_mb"
        | "free_disk_mb"
        | "vcpus_total"
        | "vcpus_used"
        | "num_instances"
        | "num_io_ops"
        | "failed_builds"
        | "hypervisor_version"
        | "total_usable_ram_mb"
        | "total_usable_disk_gb"
        | "disk_mb_used"
        | "cpu_allocation_ratio"
        | "ram_allocation_ratio"
        | "disk_allocation_ratio"
        | "host_ip"
        | "cell_uuid" => Attr::PerHost(static_name(name)),
        _ => return None,
    })
}

fn static_name(name: &str) -> &'static str {
    const NAMES: [&str; 20] = [
        "host",
        "nodename",
        "hypervisor_hostname",
        "uuid",
        "free_ram_mb",
        "free_disk_mb",
        "vcpus_total",
        "vcpus_used",
        "num_instances",
        "num_io_ops",
        "failed_builds",
        "hypervisor_version",
        "total_usable_ram_mb",
        "total_usable_disk_gb",
        "disk_mb_used",
        "cpu_allocation_ratio",
        "ram_allocation_ratio",
        "disk_allocation_ratio",
        "host_ip",
        "cell_uuid",
    ];
    NAMES.iter().find(|n| **n == name).copied().unwrap_or("host")
}

/// The value of a per-host attribute of host `i`, as Python would hold it.
pub fn per_host(fleet: &Fleet, i: usize, name: &str) -> Value {
    let (b, r) = fleet.locate(i);
    let inv = |n: &str| fleet.rc_index(n).and_then(|c| fleet.inventory(c, i));
    let u = fleet.usage();
    match name {
        "host" => json!(fleet.name(i)),
        "nodename" | "hypervisor_hostname" => json!(fleet.nodename(i)),
        "uuid" => json!(crate::request::format_uuid(fleet.uuid(i))),
        "free_ram_mb" => json!(u.free_ram_mb[i]),
        "free_disk_mb" => json!(u.free_disk_mb[i]),
        "vcpus_total" => json!(inv("VCPU").map_or(0, |p| p.total)),
        "vcpus_used" => json!(u.vcpus_used[i]),
        "num_instances" => json!(u.num_instances[i]),
        "num_io_ops" => json!(u.num_io_ops[i]),
        "failed_builds" => json!(b.failed_builds[r]),
        "hypervisor_version" => json!(b.hypervisor_version[r]),
        "total_usable_ram_mb" => json!(inv("MEMORY_MB").map_or(0, |p| p.total)),
        "total_usable_disk_gb" => json!(inv("DISK_GB").map_or(0, |p| p.total)),
        "disk_mb_used" => {
            let total = inv("DISK_GB").map_or(0, |p| p.total) as i64 * 1024;
            json!(total - u.free_disk_mb[i] as i64)
        }
        "cpu_allocation_ratio" => json!(inv("VCPU").map_or(0.0, |p| p.allocation_ratio)),
        "ram_allocation_ratio" => json!(inv("MEMORY_MB").map_or(0.0, |p| p.allocation_ratio)),
        "disk_allocation_ratio" => json!(inv("DISK_GB").map_or(0.0, |p| p.allocation_ratio)),
        "host_ip" => fleet.host_record_ip(i).map_or(Value::Null, |ip| json!(ip.to_string())),
        "cell_uuid" => json!(fleet.cells.name(fleet.cell_of(i))),
        _ => Value::Null,
    }
}

/// The value of a dictionary-coded attribute for one code.
pub fn coded(fleet: &Fleet, attr: Attr, code: u32) -> Value {
    match attr {
        Attr::CpuInfo => Value::String(fleet.cpu_infos.name(code).to_owned()),
        Attr::Stats => json!(fleet.stats[code as usize].as_ref()),
        Attr::SupportedInstances => json!(fleet.supported[code as usize].as_ref()),
        Attr::HypervisorType => json!(fleet.hypervisor_types.name(code)),
        Attr::PerHost(_) => Value::Null,
    }
}

/// The code column of a dictionary-coded attribute.
pub fn code_column(attr: Attr) -> Option<fn(&crate::fleet::HostBatch) -> &[u32]> {
    Some(match attr {
        Attr::CpuInfo => |b| &b.cpu_info[..],
        Attr::Stats => |b| &b.stats[..],
        Attr::SupportedInstances => |b| &b.supported[..],
        Attr::HypervisorType => |b| &b.hypervisor_type[..],
        Attr::PerHost(_) => return None,
    })
}

/// Number of codes of a dictionary-coded attribute.
pub fn code_count(fleet: &Fleet, attr: Attr) -> usize {
    match attr {
        Attr::CpuInfo => fleet.cpu_infos.len(),
        Attr::Stats => fleet.stats.len(),
        Attr::SupportedInstances => fleet.supported.len(),
        Attr::HypervisorType => fleet.hypervisor_types.len(),
        Attr::PerHost(_) => 0,
    }
}
