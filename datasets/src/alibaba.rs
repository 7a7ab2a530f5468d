//! The Alibaba GPU cluster trace (cluster-trace-gpu-v2023, "openb"): its
//! nodes as a fleet and its tasks as a workload, mapped as
//! `../shared/data/alibaba-gpu-v2023/SOURCE.md` describes.
//!
//! - a node is a compute host with `VCPU = cpu_milli / 1000`, `MEMORY_MB =
//!   memory_mib` and, with GPUs, `CUSTOM_GPU_MILLI = gpu * 1000` plus the
//!   trait `CUSTOM_GPU_<MODEL>`;
//! - a task asks for `VCPU = ceil(cpu_milli / 1000)`, `MEMORY_MB =
//!   memory_mib` and `CUSTOM_GPU_MILLI = num_gpu * gpu_milli` (whole GPUs are
//!   1,000 thousandths; shared-GPU tasks take a fraction), arriving at
//!   `creation_time` and leaving at `deletion_time`.
//!
//! GPU capacity is one pool per node: a shared-GPU task is not pinned to one
//! physical GPU (the finer packing the FGD paper studies is not modelled).

use std::path::Path;

use quiver_engine::host::{HostRecord, Inventory};
use quiver_engine::request::{BootRequest, Flavor};
use quiver_engine::sim::{SimRequest, Workload, WorkloadBuilder};
use quiver_engine::{EngineError, Fleet, FleetBuilder, Result};

/// The node list's file name.
pub const NODES: &str = "openb_node_list_all_node.csv";
/// The task list's file name.
pub const TASKS: &str = "openb_pod_list_default.csv";
/// The resource class of GPU thousandths.
pub const GPU_MILLI: &str = "CUSTOM_GPU_MILLI";

/// Reads the fleet and workload from a folder holding [`NODES`] and
/// [`TASKS`].
///
/// # Errors
/// Missing files, or a bad row (file and row number named).
pub fn read(dir: &Path) -> Result<(Fleet, Workload)> {
    Ok((read_nodes(&dir.join(NODES))?, read_tasks(&dir.join(TASKS))?))
}

fn open(path: &Path) -> Result<csv::Reader<std::fs::File>> {
    csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| EngineError::invalid(format!("{}: {e}", path.display())))
}

/// Column lookup by name with row-numbered errors.
struct Row<'a> {
    path: &'a Path,
    n: usize,
    header: &'a csv::StringRecord,
    rec: &'a csv::StringRecord,
}

impl Row<'_> {
    fn str(&self, col: &str) -> Result<&str> {
        let i = self
            .header
            .iter()
            .position(|h| h == col)
            .ok_or_else(|| EngineError::invalid(format!("{}: no column {col:?}", self.path.display())))?;
        Ok(self.rec.get(i).unwrap_or(""))
    }

    fn int(&self, col: &str) -> Result<i64> {
        let v = self.str(col)?;
        v.parse::<i64>().ok().filter(|x| *x >= 0).ok_or_else(|| {
            EngineError::invalid(format!(
                "{} row {}: column {col}: {v:?} is not a non-negative integer",
                self.path.display(),
                self.n
            ))
        })
    }
}

/// Reads the node list as a fleet.
///
/// # Errors
/// A missing file or a bad row.
pub fn read_nodes(path: &Path) -> Result<Fleet> {
    let mut r = open(path)?;
    let header = r.headers().map_err(|e| EngineError::invalid(format!("{}: {e}", path.display())))?.clone();
    let mut b = FleetBuilder::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| EngineError::invalid(format!("{} row {}: {e}", path.display(), i + 1)))?;
        let row = Row { path, n: i + 1, header: &header, rec: &rec };
        let name = row.str("sn")?.to_owned();
        let vcpus = row.int("cpu_milli")? / 1000;
        let memory = row.int("memory_mib")?;
        let gpus = row.int("gpu")?;
        let model = row.str("model")?;
        let mut inventories = vec![Inventory::simple("VCPU", vcpus, 1.0), Inventory::simple("MEMORY_MB", memory, 1.0)];
        let mut traits = vec!["COMPUTE_NODE".to_owned(), "OWNER_NOVA".to_owned()];
        if gpus > 0 {
            inventories.push(Inventory::simple(GPU_MILLI, gpus * 1000, 1.0));
            if !model.is_empty() {
                let t: String = model
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' })
                    .collect();
                traits.push(format!("CUSTOM_GPU_{t}"));
            }
        }
        b.push(HostRecord {
            uuid: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).as_u128(),
            name,
            cell: "cell1".into(),
            inventories,
            traits,
            free_ram_mb: memory,
            hypervisor_type: "QEMU".into(),
            hypervisor_version: 8_002_000,
            cpu_info: "{}".into(),
            supported_instances: vec![["x86_64".into(), "qemu".into(), "hvm".into()]],
            ..Default::default()
        })?;
    }
    b.finish()
}

fn read_tasks(path: &Path) -> Result<Workload> {
    let mut r = open(path)?;
    let header = r.headers().map_err(|e| EngineError::invalid(format!("{}: {e}", path.display())))?.clone();
    let mut w = WorkloadBuilder::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| EngineError::invalid(format!("{} row {}: {e}", path.display(), i + 1)))?;
        let row = Row { path, n: i + 1, header: &header, rec: &rec };
        let cpu_milli = row.int("cpu_milli")?;
        let memory = row.int("memory_mib")?;
        let gpu = row.int("num_gpu")? * row.int("gpu_milli")?;
        let arrival = row.int("creation_time")? as f64;
        let departure = match row.str("deletion_time")? {
            "" => None,
            _ => Some(row.int("deletion_time")? as f64),
        };
        let mut flavor = Flavor {
            name: format!("openb-{cpu_milli}m-{memory}Mi-{gpu}g"),
            vcpus: (cpu_milli as u64).div_ceil(1000) as u32,
            memory_mb: memory as u32,
            ..Default::default()
        };
        if gpu > 0 {
            flavor.extra_specs.insert(format!("resources:{GPU_MILLI}"), gpu.to_string());
        }
        let class = w.class(BootRequest { flavor, ..Default::default() })?;
        w.push(SimRequest { arrival, departure, class, group: None });
    }
    Ok(w.finish())
}
