//! How many hosts of one shape to add so that a workload replays with no
//! rejection: the workload replayed (the simulator: Nova's decisions) on
//! the fleet plus `k` new hosts, `k` found by doubling then bisection, and
//! the rejections at every `k` tried kept as a curve.
//!
//! The search assumes more hosts never reject more requests, which holds
//! for capacity-bound workloads; the answer is checked both ways (0
//! rejections at `k`, some at `k - 1`). Rejections that no number of hosts
//! of the shape cures (a flavor larger than the shape, a trait or zone the
//! shape lacks) show as rejections left at the largest `k` tried, with the
//! stage or filter that made them.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::fleet::Fleet;
use crate::host::HostRecord;
use crate::scheduler::Scheduler;
use crate::sim::policy::Policy;
use crate::sim::replay::replay;
use crate::sim::workload::Workload;

/// Rejections with `added` hosts of the shape.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SizePoint {
    /// Hosts added.
    pub added: usize,
    /// Requests rejected.
    pub rejected: u64,
    /// Requests placed.
    pub accepted: u64,
}

/// The answer of `plan size`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Size {
    /// The shape, in words (resources and the host its other facts come from).
    pub shape: String,
    /// Hosts in the fleet before any is added.
    pub fleet_hosts: usize,
    /// Requests in the workload.
    pub requests: usize,
    /// The smallest number of hosts to add for zero rejections; `None`
    /// when `max_added` hosts were not enough.
    pub added: Option<usize>,
    /// Rejections at every `k` replayed, by `k`.
    pub curve: Vec<SizePoint>,
    /// At the largest `k` tried, when rejections remain: what made them
    /// (`placement`, `filters: NAME`, ...) and how many.
    pub remaining: BTreeMap<String, u64>,
    /// Replays run.
    pub replays: usize,
    /// Wall time of all replays.
    pub seconds: f64,
}

/// A new host of `vcpus`, `memory_mb` and `disk_gb` (any `None`: as the
/// template has it), with everything else (zone, aggregates, traits,
/// hypervisor, allocation ratios, reserved) copied from `template`, and no
/// usage, instance or service trouble.
///
/// # Errors
/// A resource the template has no inventory of.
pub fn host_shape(
    template: &HostRecord,
    vcpus: Option<i64>,
    memory_mb: Option<i64>,
    disk_gb: Option<i64>,
) -> Result<HostRecord> {
    let mut h = template.clone();
    for (rc, total) in [("VCPU", vcpus), ("MEMORY_MB", memory_mb), ("DISK_GB", disk_gb)] {
        let Some(t) = total else { continue };
        if t < 0 {
            return Err(EngineError::invalid(format!("host shape: {rc} must be 0 or more, not {t}")));
        }
        match h.inventories.iter_mut().find(|i| i.resource_class == rc) {
            Some(inv) => {
                inv.total = t;
                inv.max_unit = t;
            }
            None if t == 0 => {}
            None => {
                let mut inv = crate::host::Inventory::simple(rc, t, 1.0);
                if let Some(like) = template.inventories.first() {
                    inv.allocation_ratio = if rc == "VCPU" { like.allocation_ratio.max(1.0) } else { 1.0 };
                }
                h.inventories.push(inv);
            }
        }
    }
    for inv in &mut h.inventories {
        inv.used = 0;
    }
    let free = |h: &HostRecord, rc: &str| h.inventory(rc).map_or(0, |i| i.total - i.reserved);
    (h.free_ram_mb, h.free_disk_mb) = (free(&h, "MEMORY_MB"), free(&h, "DISK_GB") * 1024);
    h.vcpus_used = 0;
    h.num_instances = 0;
    h.num_io_ops = 0;
    h.failed_builds = 0;
    h.instances.clear();
    h.service.disabled = false;
    h.service.forced_down = false;
    h.service.last_seen_up_age_s = 0.0;
    h.traits.retain(|t| t != "COMPUTE_STATUS_DISABLED");
    Ok(h)
}

/// A shape in words: its VCPU, RAM and disk (with allocation ratios),
/// and the host its other facts come from.
pub fn describe_shape(shape: &HostRecord, like: &str) -> String {
    let part =
        |rc: &str, unit: &str| shape.inventory(rc).map(|i| format!("{} {unit} (x{})", i.total, i.allocation_ratio));
    let parts: Vec<String> =
        [part("VCPU", "VCPU"), part("MEMORY_MB", "MB RAM"), part("DISK_GB", "GB disk")].into_iter().flatten().collect();
    format!("{}, otherwise like {like}", parts.join(", "))
}

/// `fleet` with `k` copies of `shape` appended (named `added-00001`...).
fn with_added(fleet: &Fleet, shape: &HostRecord, k: usize) -> Result<Fleet> {
    if k == 0 {
        return Ok(fleet.clone());
    }
    let mut b = crate::FleetBuilder::new();
    for a in &fleet.aggregates {
        b.add_aggregate(a.clone())?;
    }
    b.nova_conf(fleet.nova_conf.clone());
    for rec in fleet.host_records() {
        b.push(rec)?;
    }
    for i in 1..=k {
        let mut h = shape.clone();
        h.name = format!("added-{i:05}");
        h.nodename = None;
        // Unique and stable: the uuid space above any generated host's.
        h.uuid = (0xadd5_u128 << 112) | i as u128;
        b.push(h)?;
    }
    b.finish()
}

/// The fewest hosts of `shape` to add to `fleet` so that `workload`
/// replays under `policy` with no rejection, trying at most `max_added`.
/// `progress` gets each `(k, rejected)` as it is replayed.
///
/// # Errors
/// A policy or workload the engine refuses; a shape the fleet builder
/// refuses.
#[allow(clippy::too_many_arguments)]
pub fn size(
    fleet: &Fleet,
    policy: &Policy,
    workload: &Workload,
    shape: &HostRecord,
    shape_name: &str,
    max_added: usize,
    seed: u64,
    fast: bool,
    progress: &mut dyn FnMut(usize, u64),
) -> Result<Size> {
    let t0 = Instant::now();
    let mut tried: BTreeMap<usize, (u64, u64, BTreeMap<String, u64>)> = BTreeMap::new();
    let mut rejections = |k: usize| -> Result<u64> {
        if let Some(t) = tried.get(&k) {
            return Ok(t.0);
        }
        let mut f = policy.apply(&with_added(fleet, shape, k)?)?;
        let sched = Scheduler::new(policy.conf.clone(), seed)?;
        let c = replay(&mut f, workload, sched, fast, None, None, &mut |_| {})?;
        let mut why: BTreeMap<String, u64> =
            c.rejected_by_filter.iter().map(|(f, n)| (format!("filters: {f}"), *n)).collect();
        for (stage, n) in &c.rejected_by_stage {
            if stage != "filters" {
                why.insert(stage.clone(), *n);
            }
        }
        progress(k, c.rejected);
        tried.insert(k, (c.rejected, c.accepted, why));
        Ok(c.rejected)
    };
    // Doubling: the first k with no rejection (or max_added).
    let mut fails = 0usize;
    let mut passes = None;
    if rejections(0)? == 0 {
        passes = Some(0);
    } else {
        let mut k = 1usize;
        loop {
            let k_now = k.min(max_added);
            if rejections(k_now)? == 0 {
                passes = Some(k_now);
                break;
            }
            fails = k_now;
            if k_now == max_added {
                break;
            }
            k *= 2;
        }
    }
    // Bisection between the last k that rejects and the first that does not.
    if let Some(mut hi) = passes {
        let mut lo = fails;
        while hi > 0 && hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if rejections(mid)? == 0 {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        passes = Some(hi);
        // The curve: a few evenly spaced points below the answer.
        let step = (hi / 8).max(1);
        for k in (0..hi).step_by(step) {
            rejections(k)?;
        }
    }
    let remaining = match passes {
        Some(_) => BTreeMap::new(),
        None => tried.values().next_back().map(|t| t.2.clone()).unwrap_or_default(),
    };
    let replays = tried.len();
    Ok(Size {
        shape: shape_name.to_owned(),
        fleet_hosts: fleet.live_len(),
        requests: workload.requests.len(),
        added: passes,
        curve: tried
            .into_iter()
            .map(|(added, (rejected, accepted, _))| SizePoint { added, rejected, accepted })
            .collect(),
        remaining,
        replays,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    //! Hand-computed sizes: servers that never leave, on hosts they fill.

    use super::*;
    use crate::host::Inventory;
    use crate::request::{BootRequest, Flavor};
    use crate::sim::workload::{SimRequest, WorkloadBuilder};

    fn host(name: &str, vcpus: i64, zone: Option<&str>, traits: &[&str]) -> HostRecord {
        let mut t = vec!["OWNER_NOVA".to_string()];
        t.extend(traits.iter().map(|s| (*s).to_string()));
        HostRecord {
            name: name.into(),
            availability_zone: zone.map(str::to_owned),
            inventories: vec![Inventory::simple("VCPU", vcpus, 1.0), Inventory::simple("MEMORY_MB", 65536, 1.0)],
            free_ram_mb: 65536,
            traits: t,
            hypervisor_type: "QEMU".into(),
            cpu_info: "{}".into(),
            ..Default::default()
        }
    }

    fn fleet(hosts: &[HostRecord]) -> Fleet {
        let mut b = crate::FleetBuilder::new();
        for h in hosts {
            b.push(h.clone()).unwrap();
        }
        b.finish().unwrap()
    }

    /// `n` servers of `vcpus` each that never leave; `extra` flavor extra specs.
    fn workload(n: usize, vcpus: u32, extra: &[(&str, &str)]) -> Workload {
        let mut wb = WorkloadBuilder::new();
        let mut flavor = Flavor { name: "f".into(), vcpus, memory_mb: 1024, ..Default::default() };
        flavor.extra_specs = extra.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        let class = wb.class(BootRequest { flavor, ..Default::default() }).unwrap();
        let mut w = wb.finish();
        w.requests = (0..n).map(|i| SimRequest { arrival: i as f64, departure: None, class, group: None }).collect();
        w
    }

    #[test]
    fn the_fewest_added_hosts_that_take_every_request_and_the_curve_below() {
        // Two 8-VCPU hosts take 4 servers of 4 VCPU; 21 servers need 21
        // slots, so 17 more slots: 2 per 8-VCPU host -> 9 hosts (18 slots).
        let f = fleet(&[host("h1", 8, None, &[]), host("h2", 8, None, &[])]);
        let shape = host_shape(&f.host_record(0), Some(8), None, None).unwrap();
        let mut seen = Vec::new();
        let s = size(
            &f,
            &Policy::default_named("p"),
            &workload(21, 4, &[]),
            &shape,
            "8 VCPU",
            100,
            0,
            true,
            &mut |k, r| seen.push((k, r)),
        )
        .unwrap();
        assert_eq!(s.added, Some(9));
        let at = |k: usize| s.curve.iter().find(|p| p.added == k).map(|p| p.rejected);
        // 17 rejected with none added, 2 fewer per host added, 0 from 9 on.
        assert_eq!(at(0), Some(17));
        assert_eq!(at(8), Some(1));
        assert_eq!(at(9), Some(0));
        for p in &s.curve {
            assert_eq!(p.rejected, 17u64.saturating_sub(2 * p.added as u64), "at {}", p.added);
            assert_eq!(p.accepted + p.rejected, 21);
        }
        assert!(s.remaining.is_empty());
        assert_eq!(s.replays, seen.len());
        assert_eq!(s.fleet_hosts, 2);
    }

    #[test]
    fn rejections_no_shape_cures_are_named_and_a_fitting_fleet_adds_none() {
        // Only h1 has CUSTOM_GPU; the shape is copied from h2, which has none.
        let f = fleet(&[host("h1", 8, None, &["CUSTOM_GPU"]), host("h2", 8, None, &[])]);
        let shape = host_shape(&f.host_record(1), None, None, None).unwrap();
        let w = workload(3, 4, &[("trait:CUSTOM_GPU", "required")]);
        let s = size(&f, &Policy::default_named("p"), &w, &shape, "like h2", 4, 0, true, &mut |_, _| {}).unwrap();
        assert_eq!(s.added, None);
        // 0, 1, 2, 4 added: one of three rejected every time.
        assert_eq!(s.curve.iter().map(|p| (p.added, p.rejected)).collect::<Vec<_>>(), [(0, 1), (1, 1), (2, 1), (4, 1)]);
        assert_eq!(s.remaining, BTreeMap::from([("placement".to_string(), 1)]));
        // Two servers fit on the fleet as it is.
        let s =
            size(&f, &Policy::default_named("p"), &workload(4, 4, &[]), &shape, "like h2", 4, 0, true, &mut |_, _| {})
                .unwrap();
        assert_eq!((s.added, s.replays), (Some(0), 1));
        // A shape with a negative size is refused.
        assert!(host_shape(&f.host_record(1), Some(-1), None, None).is_err());
    }
}
