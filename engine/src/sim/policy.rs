//! A scheduler policy for the simulator: a TOML file in `nova.conf`'s shape
//! (`[filter_scheduler] enabled_filters`, `weight_classes`,
//! `ram_weight_multiplier`, `host_subset_size`, ...; `[DEFAULT]
//! cpu_allocation_ratio`, `ram_allocation_ratio`, `disk_allocation_ratio`).
//! Everything is checked when the file is read, so a typo fails before a
//! replay starts.

use std::path::Path;

use crate::config::SchedulerConfig;
use crate::error::{EngineError, Result};
use crate::fleet::{Fleet, FleetBuilder};
use crate::host::HostRecord;

/// Nova's compute-node overcommit options, applied to every host's
/// inventory of the class when set.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AllocationRatios {
    /// `[DEFAULT] cpu_allocation_ratio` (VCPU).
    pub cpu: Option<f64>,
    /// `[DEFAULT] ram_allocation_ratio` (MEMORY_MB).
    pub ram: Option<f64>,
    /// `[DEFAULT] disk_allocation_ratio` (DISK_GB).
    pub disk: Option<f64>,
}

impl AllocationRatios {
    fn is_empty(&self) -> bool {
        self.cpu.is_none() && self.ram.is_none() && self.disk.is_none()
    }

    fn for_class(&self, rc: &str) -> Option<f64> {
        match rc {
            "VCPU" => self.cpu,
            "MEMORY_MB" => self.ram,
            "DISK_GB" => self.disk,
            _ => None,
        }
    }
}

/// A named scheduler policy.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Name (a file's name without its extension).
    pub name: String,
    /// Filter scheduler options.
    pub conf: SchedulerConfig,
    /// Overcommit overrides.
    pub ratios: AllocationRatios,
}

impl Policy {
    /// Nova's defaults under `name`.
    pub fn default_named(name: &str) -> Self {
        Self { name: name.to_owned(), conf: SchedulerConfig::default(), ratios: AllocationRatios::default() }
    }

    /// Reads a policy file; its name is the file stem.
    ///
    /// # Errors
    /// An unreadable file, bad TOML, an unknown section, option or filter or
    /// weigher name, or a value of the wrong type; the message names the file
    /// and the option.
    pub fn from_file(path: &Path) -> Result<Self> {
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("policy").to_owned();
        let text = std::fs::read_to_string(path)
            .map_err(|e| EngineError::invalid(format!("policy {}: {e}", path.display())))?;
        Self::parse(&name, &text).map_err(|e| EngineError::invalid(format!("policy {}: {e}", path.display())))
    }

    /// Parses policy text.
    ///
    /// # Errors
    /// As [`Policy::from_file`].
    pub fn parse(name: &str, text: &str) -> Result<Self> {
        let table: toml::Table = toml::from_str(text).map_err(|e| EngineError::invalid(e.to_string()))?;
        let mut p = Self::default_named(name);
        for (section, body) in &table {
            let toml::Value::Table(body) = body else {
                return Err(EngineError::invalid(format!(
                    "{section:?} is not a section: options go under [DEFAULT], [filter_scheduler], [scheduler] or [metrics]"
                )));
            };
            if !["DEFAULT", "filter_scheduler", "scheduler", "metrics"].contains(&section.as_str()) {
                return Err(EngineError::invalid(format!(
                    "unknown section [{section}] (known: [DEFAULT], [filter_scheduler], [scheduler], [metrics])"
                )));
            }
            for (k, v) in body {
                let json = serde_json::to_value(v).map_err(|e| EngineError::invalid(format!("{section}.{k}: {e}")))?;
                let ratio = || {
                    json.as_f64()
                        .filter(|r| *r > 0.0)
                        .ok_or_else(|| EngineError::invalid(format!("[{section}] {k} = {v}: expected a number > 0")))
                };
                match (section.as_str(), k.as_str()) {
                    ("DEFAULT", "cpu_allocation_ratio") => p.ratios.cpu = Some(ratio()?),
                    ("DEFAULT", "ram_allocation_ratio") => p.ratios.ram = Some(ratio()?),
                    ("DEFAULT", "disk_allocation_ratio") => p.ratios.disk = Some(ratio()?),
                    _ => p.conf.set(&format!("{section}.{k}"), &json)?,
                }
            }
        }
        // Unknown filter and weigher names fail here, not mid-replay.
        crate::Scheduler::new(p.conf.clone(), 0)?;
        Ok(p)
    }

    /// The fleet this policy sees: `fleet` itself, or a copy with the
    /// allocation ratios overridden.
    ///
    /// # Errors
    /// A host the builder rejects (not for a fleet that was built once).
    pub fn apply(&self, fleet: &Fleet) -> Result<Fleet> {
        if self.ratios.is_empty() {
            return Ok(fleet.clone());
        }
        rebuild(
            fleet,
            |_| true,
            |rec| {
                for inv in &mut rec.inventories {
                    if let Some(r) = self.ratios.for_class(&inv.resource_class) {
                        inv.allocation_ratio = r;
                    }
                }
            },
        )
    }
}

/// A new fleet of the hosts `keep` selects (in fleet order), each host
/// passed through `edit`; aggregates and options carried over.
///
/// # Errors
/// A host the builder rejects.
pub fn rebuild(fleet: &Fleet, keep: impl Fn(usize) -> bool, edit: impl Fn(&mut HostRecord)) -> Result<Fleet> {
    let mut b = FleetBuilder::new();
    for a in &fleet.aggregates {
        b.add_aggregate(a.clone())?;
    }
    b.nova_conf(fleet.nova_conf.clone());
    for h in 0..fleet.len() {
        if !keep(h) {
            continue;
        }
        let mut rec = fleet.host_record(h);
        edit(&mut rec);
        b.push(rec)?;
    }
    b.finish()
}

/// The fleet with no usage at all: every inventory unused, no instances
/// (a simulation that starts from empty hosts).
///
/// # Errors
/// A host the builder rejects.
pub fn emptied(fleet: &Fleet) -> Result<Fleet> {
    rebuild(
        fleet,
        |_| true,
        |rec| {
            let free = |rec: &HostRecord, rc: &str| rec.inventory(rc).map_or(0, |i| i.total - i.reserved);
            rec.free_ram_mb = free(rec, "MEMORY_MB");
            rec.free_disk_mb = free(rec, "DISK_GB") * 1024;
            rec.vcpus_used = 0;
            rec.num_instances = 0;
            rec.num_io_ops = 0;
            rec.instances.clear();
            rec.inventories.iter_mut().for_each(|i| i.used = 0);
        },
    )
}
