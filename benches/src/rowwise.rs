//! A straightforward row-by-row scheduler, built the way Nova is: a `Vec`
//! of host structs, one filter object called per host, weighers called per
//! host with Nova's normalization, then a full stable sort. It implements the
//! default filter profile and the weighers that are active at Nova's
//! defaults, and is the baseline `quiver bench` measures the engine against
//! (on the same fleet, in the same run). Not used for scheduling.

use quiver_engine::Fleet;

/// One host as a plain struct.
#[derive(Clone, Debug)]
pub struct Host {
    /// Name.
    pub name: String,
    /// Per class (VCPU, MEMORY_MB, DISK_GB): total, reserved, ratio, max_unit, used.
    pub inv: [(i64, i64, f64, i64, i64); 3],
    /// Trait names.
    pub traits: Vec<String>,
    /// Service disabled.
    pub disabled: bool,
    /// Seconds since the last heartbeat.
    pub age_s: f64,
    /// Forced down.
    pub forced_down: bool,
    /// HostState fields.
    pub free_ram_mb: i64,
    /// HostState fields.
    pub free_disk_mb: i64,
    /// HostState fields.
    pub vcpus_used: i64,
    /// HostState fields.
    pub num_io_ops: i64,
    /// HostState fields.
    pub failed_builds: i64,
    /// HostState fields.
    pub hypervisor_version: i64,
    /// Per-host multipliers from aggregate metadata: ram, cpu.
    pub ram_mult: f64,
    /// Per-host multipliers from aggregate metadata.
    pub cpu_mult: f64,
}

/// A request: resources and required/forbidden traits.
#[derive(Clone, Debug)]
pub struct Req {
    /// VCPU, MEMORY_MB, DISK_GB amounts.
    pub amounts: [i64; 3],
    /// Required traits.
    pub required: Vec<String>,
    /// Forbidden traits.
    pub forbidden: Vec<String>,
}

/// A host filter called once per host.
pub trait RowFilter {
    /// Whether the host passes.
    fn host_passes(&self, h: &Host, r: &Req) -> bool;
}

/// A weigher called once per host.
pub trait RowWeigher {
    /// Raw value.
    fn weigh(&self, h: &Host) -> f64;
    /// Nova's `minval`.
    fn minval(&self) -> Option<f64>;
    /// Per-host multiplier.
    fn multiplier(&self, h: &Host) -> f64;
}

struct Placement;
impl RowFilter for Placement {
    fn host_passes(&self, h: &Host, r: &Req) -> bool {
        h.inv.iter().zip(r.amounts).all(|(&(t, res, ratio, max_unit, used), a)| {
            a == 0 || (t > 0 && a <= max_unit && (used + a) as f64 <= (t - res) as f64 * ratio)
        }) && r.required.iter().all(|t| h.traits.contains(t))
            && !r.forbidden.iter().any(|t| h.traits.contains(t))
    }
}
struct ComputeFilter;
impl RowFilter for ComputeFilter {
    fn host_passes(&self, h: &Host, _r: &Req) -> bool {
        !h.disabled && !h.forced_down && h.age_s.abs() <= 60.0
    }
}
struct Field(fn(&Host) -> f64, Option<f64>, fn(&Host) -> f64);
impl RowWeigher for Field {
    fn weigh(&self, h: &Host) -> f64 {
        (self.0)(h)
    }
    fn minval(&self) -> Option<f64> {
        self.1
    }
    fn multiplier(&self, h: &Host) -> f64 {
        (self.2)(h)
    }
}

/// The baseline scheduler.
pub struct RowScheduler {
    /// Hosts.
    pub hosts: Vec<Host>,
    filters: Vec<Box<dyn RowFilter>>,
    weighers: Vec<Box<dyn RowWeigher>>,
}

impl RowScheduler {
    /// Copies the fleet into host structs.
    pub fn from_fleet(fleet: &Fleet) -> Self {
        let mult = |h: &quiver_engine::HostRecord, key: &str, default: f64| {
            h.aggregates
                .iter()
                .filter_map(|id| fleet.aggregates.iter().find(|a| a.id == *id))
                .filter_map(|a| a.metadata.get(key).and_then(|v| v.parse::<f64>().ok()))
                .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.min(x))))
                .unwrap_or(default)
        };
        let hosts = (0..fleet.len())
            .map(|i| {
                let r = fleet.host_record(i);
                let inv = |rc: &str| {
                    r.inventory(rc)
                        .map_or((0, 0, 1.0, 0, 0), |i| (i.total, i.reserved, i.allocation_ratio, i.max_unit, i.used))
                };
                Host {
                    name: r.name.clone(),
                    inv: [inv("VCPU"), inv("MEMORY_MB"), inv("DISK_GB")],
                    traits: r.traits.clone(),
                    disabled: r.service.disabled,
                    age_s: r.service.last_seen_up_age_s,
                    forced_down: r.service.forced_down,
                    free_ram_mb: r.free_ram_mb,
                    free_disk_mb: r.free_disk_mb,
                    vcpus_used: r.vcpus_used,
                    num_io_ops: r.num_io_ops,
                    failed_builds: r.failed_builds,
                    hypervisor_version: r.hypervisor_version,
                    ram_mult: mult(&r, "ram_weight_multiplier", 1.0),
                    cpu_mult: mult(&r, "cpu_weight_multiplier", 1.0),
                }
            })
            .collect();
        let weighers: Vec<Box<dyn RowWeigher>> = vec![
            Box::new(Field(|h| h.failed_builds as f64, None, |_| -1e6)),
            Box::new(Field(|h| h.inv[0].0 as f64 * h.inv[0].2 - h.vcpus_used as f64, Some(0.0), |h| h.cpu_mult)),
            Box::new(Field(|h| h.free_disk_mb as f64, Some(0.0), |_| 1.0)),
            Box::new(Field(|h| h.hypervisor_version as f64, None, |_| 1.0)),
            Box::new(Field(|h| h.num_io_ops as f64, Some(0.0), |_| -1.0)),
            Box::new(Field(|h| h.free_ram_mb as f64, Some(0.0), |h| h.ram_mult)),
        ];
        Self { hosts, filters: vec![Box::new(Placement), Box::new(ComputeFilter)], weighers }
    }

    /// One decision: the best host's index and weight.
    pub fn decide(&self, r: &Req) -> Option<(usize, f64)> {
        let mut cands: Vec<usize> = (0..self.hosts.len()).collect();
        for f in &self.filters {
            cands.retain(|&i| f.host_passes(&self.hosts[i], r));
        }
        if cands.is_empty() {
            return None;
        }
        let mut weights = vec![0.0f64; cands.len()];
        if cands.len() > 1 {
            for w in &self.weighers {
                let raw: Vec<f64> = cands
                    .iter()
                    .map(|&i| {
                        let x = w.weigh(&self.hosts[i]);
                        match w.minval() {
                            Some(m) if x < m => m,
                            _ => x,
                        }
                    })
                    .collect();
                let lo = w.minval().unwrap_or_else(|| raw.iter().copied().fold(f64::INFINITY, f64::min));
                let hi = raw.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                if lo == hi {
                    continue;
                }
                for (k, &i) in cands.iter().enumerate() {
                    weights[k] += w.multiplier(&self.hosts[i]) * ((raw[k] - lo) / (hi - lo));
                }
            }
        }
        let mut order: Vec<usize> = (0..cands.len()).collect();
        order.sort_by(|&a, &b| weights[b].total_cmp(&weights[a]));
        Some((cands[order[0]], weights[order[0]]))
    }
}
