//! `nova-sched-fleet/v1` and `nova-sched-requests/v1` (FORMAT.md sections 1
//! and 2): parsing, and the defaults the parity harness applies when it
//! turns a host object into a `ComputeNode`, a service and a resource
//! provider.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use quiver_engine::host::{Aggregate, HostRecord, Inventory, ServiceRecord};
use quiver_engine::image_props::{canonical_arch, canonical_hv_type, canonical_vm_mode};
use quiver_engine::request::{BootRequest, ServerGroup};
use quiver_engine::{EngineError, Fleet, FleetBuilder, Result};
use serde::Deserialize;
use serde_json::Value;

/// The fleet document's format tag.
pub const FLEET_FORMAT: &str = "nova-sched-fleet/v1";
/// The request stream's format tag.
pub const REQUESTS_FORMAT: &str = "nova-sched-requests/v1";

#[derive(Deserialize)]
struct FleetDoc {
    format: Option<String>,
    #[serde(default)]
    cells: Vec<CellDoc>,
    #[serde(default)]
    aggregates: Vec<AggregateDoc>,
    #[serde(default)]
    nova_conf: Option<BTreeMap<String, Value>>,
    hosts: Vec<Value>,
}

#[derive(Deserialize)]
struct CellDoc {
    name: String,
    uuid: Option<String>,
}

#[derive(Deserialize, Clone)]
struct AggregateDoc {
    id: u32,
    uuid: Option<String>,
    name: Option<String>,
    #[serde(default)]
    metadata: BTreeMap<String, Value>,
}

/// A request stream.
#[derive(Deserialize, Debug, Clone)]
pub struct RequestStream {
    /// Format tag.
    pub format: Option<String>,
    /// Server groups.
    #[serde(default)]
    pub server_groups: Vec<ServerGroup>,
    /// Nova option overrides.
    #[serde(default)]
    pub nova_conf: Option<BTreeMap<String, Value>>,
    /// Requests in order.
    pub requests: Vec<BootRequest>,
}

fn uuid5(name: &str) -> u128 {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, name.as_bytes()).as_u128()
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        other => other.to_string(),
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T> {
    let mut s = String::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_string(&mut s))
        .map_err(|e| EngineError::Io { context: format!("reading {what} {}", path.display()), source: e })?;
    serde_json::from_str(&s).map_err(|e| EngineError::invalid(format!("{what} {}: {e}", path.display())))
}

/// Reads a request stream file.
///
/// # Errors
/// An unreadable file, malformed JSON (with line and column) or a wrong
/// format tag.
pub fn read_requests(path: &Path) -> Result<RequestStream> {
    let s: RequestStream = read_json(path, "request stream")?;
    if let Some(f) = &s.format
        && f != REQUESTS_FORMAT
    {
        return Err(EngineError::invalid(format!("{}: format is {f:?}, expected {REQUESTS_FORMAT:?}", path.display())));
    }
    Ok(s)
}

/// Reads a fleet file into a [`Fleet`].
///
/// # Errors
/// An unreadable file, malformed JSON, a wrong format tag, or a bad host
/// (the message names the host and field).
pub fn read_fleet(path: &Path) -> Result<Fleet> {
    let doc: FleetDoc = read_json(path, "fleet")?;
    build_fleet(doc).map_err(|e| match e {
        EngineError::Invalid(m) => EngineError::Invalid(format!("{}: {m}", path.display())),
        other => other,
    })
}

/// Parses a fleet document from a string.
///
/// # Errors
/// As [`read_fleet`].
pub fn parse_fleet(text: &str) -> Result<Fleet> {
    let doc: FleetDoc = serde_json::from_str(text).map_err(|e| EngineError::invalid(format!("fleet: {e}")))?;
    build_fleet(doc)
}

fn build_fleet(doc: FleetDoc) -> Result<Fleet> {
    if let Some(f) = &doc.format
        && f != FLEET_FORMAT
    {
        return Err(EngineError::invalid(format!("format is {f:?}, expected {FLEET_FORMAT:?}")));
    }
    let mut cell_name: BTreeMap<String, String> = BTreeMap::new();
    for c in &doc.cells {
        cell_name.insert(c.name.clone(), c.name.clone());
        if let Some(u) = &c.uuid {
            cell_name.insert(u.clone(), c.name.clone());
        }
    }
    let mut b = FleetBuilder::new();
    b.nova_conf(doc.nova_conf.unwrap_or_default().into_iter().collect());
    let mut known: BTreeMap<u32, ()> = BTreeMap::new();
    let agg = |a: &AggregateDoc| Aggregate {
        id: a.id,
        uuid: a
            .uuid
            .as_deref()
            .and_then(quiver_engine::request::parse_uuid)
            .unwrap_or_else(|| uuid5(&format!("agg:{}", a.id))),
        name: a.name.clone().unwrap_or_else(|| format!("agg-{}", a.id)),
        metadata: a.metadata.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
    };
    for a in &doc.aggregates {
        b.add_aggregate(agg(a))?;
        known.insert(a.id, ());
    }
    // Inline aggregate objects in hosts are declared on first sight.
    for h in &doc.hosts {
        for a in h.get("aggregates").and_then(Value::as_array).into_iter().flatten() {
            if a.is_object() {
                let ad: AggregateDoc = serde_json::from_value(a.clone())
                    .map_err(|e| EngineError::invalid(format!("inline aggregate {a}: {e}")))?;
                if known.insert(ad.id, ()).is_none() {
                    b.add_aggregate(agg(&ad))?;
                }
            }
        }
    }
    for (i, h) in doc.hosts.iter().enumerate() {
        b.push(host_record(h, i, &cell_name)?)?;
    }
    b.finish()
}

fn get_i64(h: &Value, key: &str, default: Option<i64>, who: &str) -> Result<i64> {
    match h.get(key) {
        None | Some(Value::Null) => {
            default.ok_or_else(|| EngineError::invalid(format!("host {who}: missing required field {key:?}")))
        }
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .ok_or_else(|| EngineError::invalid(format!("host {who}: field {key:?} must be an integer, got {v}"))),
    }
}

fn get_f64(h: &Value, key: &str, default: f64, who: &str) -> Result<f64> {
    match h.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_f64()
            .ok_or_else(|| EngineError::invalid(format!("host {who}: field {key:?} must be a number, got {v}"))),
    }
}

/// Turns one host object into a [`HostRecord`] with the harness's defaults.
fn host_record(h: &Value, index: usize, cells: &BTreeMap<String, String>) -> Result<HostRecord> {
    let name = h
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| EngineError::invalid(format!("host #{index}: missing required field \"name\"")))?
        .to_owned();
    let who = format!("{name:?}");
    let nodename = h.get("nodename").and_then(Value::as_str).map(String::from);
    let node = nodename.clone().unwrap_or_else(|| name.clone());
    let uuid = match h.get("uuid").and_then(Value::as_str) {
        Some(u) => quiver_engine::request::parse_uuid(u)
            .ok_or_else(|| EngineError::invalid(format!("host {who}: uuid {u:?} is not a uuid")))?,
        None => uuid5(&format!("node:{node}")),
    };
    let cell = h.get("cell").and_then(Value::as_str).unwrap_or("cell1");
    let cell = cells.get(cell).cloned().unwrap_or_else(|| cell.to_owned());
    let vcpus = get_i64(h, "vcpus_total", None, &who)?;
    let vcpus_used = get_i64(h, "vcpus_used", Some(0), &who)?;
    let mem = get_i64(h, "memory_mb_total", None, &who)?;
    let mem_used = get_i64(h, "memory_mb_used", Some(0), &who)?;
    let mem_res = get_i64(h, "memory_mb_reserved", Some(512), &who)?;
    let disk = get_i64(h, "disk_gb_total", None, &who)?;
    let disk_used = get_i64(h, "disk_gb_used", Some(0), &who)?;
    let free_ram = get_i64(h, "free_ram_mb", Some(mem - mem_used), &who)?;
    let free_disk_gb = get_i64(h, "free_disk_gb", Some(disk - disk_used), &who)?;
    let least = match h.get("disk_available_least") {
        None | Some(Value::Null) => None,
        Some(_) => Some(get_i64(h, "disk_available_least", None, &who)?),
    };
    let free_disk_mb = least.map_or(free_disk_gb, |l| l.min(free_disk_gb)) * 1024;
    let cpu_r = get_f64(h, "cpu_allocation_ratio", 4.0, &who)?;
    let ram_r = get_f64(h, "ram_allocation_ratio", 1.0, &who)?;
    let disk_r = get_f64(h, "disk_allocation_ratio", 1.0, &who)?;
    let instances_v: Vec<Value> = h.get("instances").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut instances = Vec::with_capacity(instances_v.len());
    for i in &instances_v {
        let u = i.get("uuid").and_then(Value::as_str).or_else(|| i.as_str()).unwrap_or("");
        instances.push(
            quiver_engine::request::parse_uuid(u)
                .ok_or_else(|| EngineError::invalid(format!("host {who}: instance {i} has no valid uuid")))?,
        );
    }
    let num_instances = get_i64(h, "num_instances", Some(instances.len() as i64), &who)?;
    let pu = h.get("placement_usage").cloned().unwrap_or(Value::Null);
    let usage = |rc: &str, default: i64| -> Result<i64> { get_i64(&pu, rc, Some(default), &who) };
    let mut inventories = vec![
        Inventory {
            reserved: get_i64(h, "vcpus_reserved", Some(0), &who)?,
            used: usage("VCPU", vcpus_used)?,
            ..Inventory::simple("VCPU", vcpus, cpu_r)
        },
        Inventory {
            reserved: mem_res,
            used: usage("MEMORY_MB", (mem_used - mem_res).max(0))?,
            ..Inventory::simple("MEMORY_MB", mem, ram_r)
        },
        Inventory {
            reserved: get_i64(h, "disk_gb_reserved", Some(0), &who)?,
            used: usage("DISK_GB", disk_used)?,
            ..Inventory::simple("DISK_GB", disk, disk_r)
        },
    ];
    inventories.retain(|i| i.total > 0);
    let svc = h.get("service").cloned().unwrap_or(Value::Null);
    let up = svc.get("up").and_then(Value::as_bool).unwrap_or(true);
    let service = ServiceRecord {
        disabled: svc.get("disabled").and_then(Value::as_bool).unwrap_or(false),
        forced_down: svc.get("forced_down").and_then(Value::as_bool).unwrap_or(false),
        last_seen_up_age_s: svc.get("last_seen_up_age_s").and_then(Value::as_f64).unwrap_or(if up {
            10.0
        } else {
            3600.0
        }),
        version: svc.get("version").and_then(Value::as_i64).unwrap_or(74) as i32,
    };
    let mut traits: Vec<String> = h
        .get("traits")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(String::from))
        .collect();
    // What nova-compute reports on its own (FORMAT.md, `traits`).
    if service.version >= 73 {
        traits.push("OWNER_NOVA".into());
    }
    if service.disabled {
        traits.push("COMPUTE_STATUS_DISABLED".into());
    }
    traits.sort();
    traits.dedup();
    let metrics = h
        .get("metrics")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let name = m.get("name")?.as_str()?.to_owned();
            let v = m.get("value")?.as_f64()?;
            // MonitorMetricList.from_json: percent metrics * 100, stored as int.
            let v = if name.ends_with(".percent") { (v * 100.0).trunc() } else { v };
            Some((name, v))
        })
        .collect();
    let host_ip = match h.get("host_ip").and_then(Value::as_str) {
        Some(s) => Some(
            s.parse().map_err(|_| EngineError::invalid(format!("host {who}: host_ip {s:?} is not an IP address")))?,
        ),
        None => None,
    };
    let aggregates = h
        .get("aggregates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|a| {
            a.as_u64().or_else(|| a.get("id").and_then(Value::as_u64)).map(|x| x as u32).ok_or_else(|| {
                EngineError::invalid(format!("host {who}: aggregate {a} is neither an id nor an object with one"))
            })
        })
        .collect::<Result<Vec<u32>>>()?;
    let supported_instances = h
        .get("supported_instances")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let t = t.as_array()?;
            let s = |i: usize| t.get(i).and_then(Value::as_str).unwrap_or("").to_owned();
            Some([canonical_arch(&s(0)), canonical_hv_type(&s(1)), canonical_vm_mode(&s(2))])
        })
        .collect();
    let mut stats: BTreeMap<String, String> =
        h.get("stats").and_then(Value::as_object).into_iter().flatten().map(|(k, v)| (k.clone(), text(v))).collect();
    stats.insert("num_instances".into(), num_instances.to_string());
    stats.insert("io_workload".into(), get_i64(h, "num_io_ops", Some(0), &who)?.to_string());
    stats.insert("failed_builds".into(), get_i64(h, "failed_builds", Some(0), &who)?.to_string());
    Ok(HostRecord {
        name,
        nodename,
        uuid,
        cell,
        availability_zone: h.get("availability_zone").and_then(Value::as_str).map(String::from),
        aggregates,
        host_ip,
        inventories,
        traits,
        vcpus_used,
        free_ram_mb: free_ram,
        free_disk_mb,
        num_instances,
        num_io_ops: get_i64(h, "num_io_ops", Some(0), &who)?,
        failed_builds: get_i64(h, "failed_builds", Some(0), &who)?,
        hypervisor_type: h.get("hypervisor_type").and_then(Value::as_str).unwrap_or("QEMU").to_owned(),
        hypervisor_version: get_i64(h, "hypervisor_version", Some(0), &who)?,
        cpu_info: match h.get("cpu_info") {
            Some(Value::String(s)) => s.clone(),
            Some(v @ Value::Object(_)) => v.to_string(),
            _ => "{}".into(),
        },
        supported_instances,
        stats,
        service,
        metrics,
        instances,
    })
}

/// Writes a fleet as `nova-sched-fleet/v1` JSON, one host per line.
///
/// # Errors
/// An I/O failure.
pub fn write_fleet(fleet: &Fleet, path: &Path) -> Result<()> {
    use std::io::Write;
    let io = |e: std::io::Error| EngineError::Io { context: format!("writing {}", path.display()), source: e };
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    let aggs: Vec<Value> = fleet
        .aggregates
        .iter()
        .map(|a| serde_json::json!({"id": a.id, "uuid": quiver_engine::request::format_uuid(a.uuid), "name": a.name, "metadata": a.metadata}))
        .collect();
    let conf: serde_json::Map<String, Value> = fleet.nova_conf.iter().cloned().collect();
    writeln!(
        w,
        "{{\n\"format\": \"{FLEET_FORMAT}\",\n\"aggregates\": {},\n\"nova_conf\": {},\n\"hosts\": [",
        Value::Array(aggs),
        Value::Object(conf)
    )
    .map_err(io)?;
    for (i, h) in fleet.host_records().enumerate() {
        let inv = |rc: &str| h.inventory(rc).cloned().unwrap_or_else(|| Inventory::simple(rc, 0, 1.0));
        let (v, m, d) = (inv("VCPU"), inv("MEMORY_MB"), inv("DISK_GB"));
        let mut stats = h.stats.clone();
        for k in ["num_instances", "io_workload", "failed_builds"] {
            stats.remove(k);
        }
        let obj = serde_json::json!({
            "name": h.name, "nodename": h.nodename, "uuid": quiver_engine::request::format_uuid(h.uuid), "cell": h.cell,
            "availability_zone": h.availability_zone, "aggregates": h.aggregates,
            "host_ip": h.host_ip.map(|ip| ip.to_string()),
            "vcpus_total": v.total, "vcpus_used": h.vcpus_used, "vcpus_reserved": v.reserved,
            "memory_mb_total": m.total, "memory_mb_reserved": m.reserved, "memory_mb_used": m.total - h.free_ram_mb,
            "free_ram_mb": h.free_ram_mb,
            "disk_gb_total": d.total, "disk_gb_reserved": d.reserved, "disk_gb_used": d.total - h.free_disk_mb / 1024,
            "free_disk_gb": h.free_disk_mb / 1024,
            "cpu_allocation_ratio": v.allocation_ratio, "ram_allocation_ratio": m.allocation_ratio,
            "disk_allocation_ratio": d.allocation_ratio,
            "num_instances": h.num_instances, "num_io_ops": h.num_io_ops, "failed_builds": h.failed_builds,
            "stats": stats, "hypervisor_type": h.hypervisor_type, "hypervisor_version": h.hypervisor_version,
            "cpu_info": serde_json::from_str::<Value>(&h.cpu_info).unwrap_or(Value::String(h.cpu_info.clone())),
            "supported_instances": h.supported_instances,
            "service": {"disabled": h.service.disabled, "forced_down": h.service.forced_down,
                        "last_seen_up_age_s": h.service.last_seen_up_age_s, "version": h.service.version},
            "traits": h.traits.iter().filter(|t| *t != "OWNER_NOVA" && *t != "COMPUTE_STATUS_DISABLED").collect::<Vec<_>>(),
            "metrics": h.metrics.iter().map(|(n, v)| serde_json::json!({"name": n, "value": if n.ends_with(".percent") { v / 100.0 } else { *v }})).collect::<Vec<_>>(),
            "instances": h.instances.iter().map(|u| quiver_engine::request::format_uuid(*u)).collect::<Vec<_>>(),
            "placement_usage": {"VCPU": v.used, "MEMORY_MB": m.used, "DISK_GB": d.used},
        });
        let sep = if i + 1 < fleet.len() { "," } else { "" };
        writeln!(w, "{obj}{sep}").map_err(io)?;
    }
    writeln!(w, "]}}").map_err(io)?;
    w.flush().map_err(io)
}
