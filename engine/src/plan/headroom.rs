//! How many more servers of a flavor fit now, exactly: placed one by one
//! with the real scheduler (the simulator's placer: Nova's decisions, its
//! exact fast path where the request allows) until none fits, on a copy of
//! the fleet. Beside it the naive figure planners compute by hand, the
//! fleet's free capacity over the flavor's size, so the capacity that is
//! free but stranded (on hosts where the flavor no longer fits, or that the
//! filters refuse) shows.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

use crate::config::SchedulerConfig;
use crate::error::{EngineError, Result};
use crate::fleet::Fleet;
use crate::request::BootRequest;
use crate::scheduler::{Groups, Scheduler};
use crate::sim::fast::{Outcome, Placer};
use crate::sim::metrics::Capacity;
use crate::sim::workload::{SimRequest, WorkloadBuilder};

/// Headroom of one part of the fleet (a zone, an aggregate).
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct PartHeadroom {
    /// Zone or aggregate name.
    pub name: String,
    /// Live compute hosts in it.
    pub hosts: usize,
    /// Servers the scheduler placed there.
    pub exact: u64,
    /// Its free capacity over the flavor's size (the smallest over the
    /// flavor's resource classes).
    pub naive: u64,
}

/// The headroom of one flavor.
#[derive(Clone, Debug, Serialize)]
pub struct Headroom {
    /// The flavor's name.
    pub flavor: String,
    /// Servers placed one by one until the scheduler found no valid host.
    pub exact: u64,
    /// Free capacity over the flavor's size, fleet-wide, the smallest over
    /// the flavor's resource classes: `min_rc floor(sum_h free / amount)`.
    pub naive: u64,
    /// `naive - exact`: servers' worth of free capacity the flavor cannot
    /// use (fragmented across hosts, or on hosts the filters refuse).
    pub stranded: u64,
    /// What stopped the next one: `placement` or `filters` (and which
    /// filter kept no host), or `limit` when `--limit` was reached.
    pub stopped_by: String,
    /// Per availability zone (hosts in none under `""`).
    pub by_zone: Vec<PartHeadroom>,
    /// Per aggregate.
    pub by_aggregate: Vec<PartHeadroom>,
    /// Placements decided by the simulator's exact fast path.
    pub fast_placements: u64,
    /// Wall time of the placements.
    pub seconds: f64,
}

/// The naive count for one part: `min_rc floor(sum free / amount)`.
fn naive(fleet: &Fleet, cap: &Capacity, demand: &[(usize, i32)], hosts: &[usize]) -> u64 {
    demand
        .iter()
        .filter(|(_, a)| *a > 0)
        .map(|&(rc, a)| {
            let free: i64 = hosts.iter().map(|&h| cap.free(fleet, rc, h).max(0)).sum();
            (free / a as i64) as u64
        })
        .min()
        .unwrap_or(0)
}

/// The most servers of `demand` hosts could take one by one, each host on
/// its own: an upper bound of the exact count.
fn per_host_bound(fleet: &Fleet, cap: &Capacity, demand: &[(usize, i32)], hosts: &[usize]) -> u64 {
    hosts
        .iter()
        .map(|&h| {
            demand
                .iter()
                .filter(|(_, a)| *a > 0)
                .map(|&(rc, a)| (cap.free(fleet, rc, h).max(0) / a as i64) as u64)
                .min()
        })
        .map(|n| n.unwrap_or(0))
        .sum()
}

/// Places servers of `req` one by one on a copy of `fleet` under `conf`
/// until none fits (or `limit` placed), and compares with the naive count.
/// `fast`: the simulator's exact fast path where the request allows (off:
/// every server through the full pipeline, the baseline).
///
/// # Errors
/// Options the scheduler refuses; a flavor that asks for no resource (it
/// would fit forever).
pub fn headroom(
    fleet: &Fleet,
    conf: &SchedulerConfig,
    req: &BootRequest,
    seed: u64,
    limit: Option<u64>,
    fast: bool,
) -> Result<Headroom> {
    let mut sched = Scheduler::new(conf.clone(), seed)?;
    // Per-filter counts, so a rejection names the filter that kept none.
    sched.trace = true;
    let live_hosts: Vec<usize> = (0..fleet.len()).filter(|&h| fleet.is_live(h)).collect();
    let cap = Capacity::of(fleet);
    let mut wb = WorkloadBuilder::new();
    let class = wb.class(req.clone())?;
    let mut workload = wb.finish();
    let demand: Vec<(usize, i32)> = crate::sim::fast::class_demands(&sched, fleet, &workload)[0].clone();
    if demand.iter().all(|(_, a)| *a <= 0) {
        return Err(EngineError::invalid(format!(
            "flavor {}: asks for no resource Placement counts, so it would fit forever",
            req.flavor.name
        )));
    }
    let bound = per_host_bound(fleet, &cap, &demand, &live_hosts);
    // One request per server that could possibly fit and one more to see
    // what stops the next; or `limit` requests when that is fewer.
    let requests = match limit {
        Some(l) if l < bound => l,
        _ => bound + 1,
    };
    workload.requests =
        (0..requests).map(|i| SimRequest { arrival: i as f64, departure: None, class, group: None }).collect();
    let mut copy = fleet.clone();
    let mut groups = Groups::default();
    let mut placer = Placer::new(sched, &copy, &workload, fast);
    let mut placed_on: Vec<usize> = Vec::new();
    let mut fast = 0u64;
    let mut stopped_by = "limit".to_owned();
    let t0 = Instant::now();
    for r in 0..workload.requests.len() {
        match placer.arrive(&mut copy, &mut groups, &workload, r) {
            Outcome::Placed { host, fast: f } => {
                placed_on.push(host);
                fast += f as u64;
            }
            Outcome::Rejected { stage, filter } => {
                stopped_by = match filter {
                    Some(f) => format!("{stage} ({f} kept no host)"),
                    None => stage,
                };
                break;
            }
        }
    }
    let seconds = t0.elapsed().as_secs_f64();
    let exact = placed_on.len() as u64;
    let naive_all = naive(fleet, &cap, &demand, &live_hosts);
    // Parts: zones by the hosts' zone, aggregates by membership.
    let mut zones: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut aggs: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for &h in &live_hosts {
        zones.entry(fleet.zone_of(h).unwrap_or_default().to_owned()).or_default().push(h);
        let (b, r) = fleet.locate(h);
        for &a in &fleet.aggsets[b.aggset[r] as usize] {
            aggs.entry(a).or_default().push(h);
        }
    }
    let mut placed_per_host = vec![0u64; fleet.len()];
    for &h in &placed_on {
        placed_per_host[h] += 1;
    }
    let part = |name: String, hosts: &[usize]| PartHeadroom {
        name,
        hosts: hosts.len(),
        exact: hosts.iter().map(|&h| placed_per_host[h]).sum(),
        naive: naive(fleet, &cap, &demand, hosts),
    };
    let by_zone = zones.iter().map(|(z, hs)| part(z.clone(), hs)).collect();
    let by_aggregate = aggs.iter().map(|(&a, hs)| part(fleet.aggregates[a as usize].name.clone(), hs)).collect();
    Ok(Headroom {
        flavor: req.flavor.name.clone(),
        exact,
        naive: naive_all,
        stranded: naive_all.saturating_sub(exact),
        stopped_by,
        by_zone,
        by_aggregate,
        fast_placements: fast,
        seconds,
    })
}

#[cfg(test)]
mod tests {
    //! Hand-computed headroom on small crafted fleets.

    use std::collections::BTreeMap;

    use super::*;
    use crate::host::{Aggregate, HostRecord, Inventory, ServiceRecord};
    use crate::request::Flavor;

    /// `(name, zone, vcpus total, vcpus used, ram MB, disabled)`.
    fn fleet(hosts: &[(&str, &str, i64, i64, i64, bool)]) -> Fleet {
        let mut b = crate::FleetBuilder::new();
        let mut zones: Vec<&str> = hosts.iter().map(|h| h.1).collect();
        zones.dedup();
        for (i, z) in zones.iter().enumerate() {
            b.add_aggregate(Aggregate {
                id: i as u32 + 1,
                uuid: i as u128 + 1,
                name: format!("agg-{z}"),
                metadata: BTreeMap::from([("availability_zone".into(), (*z).into())]),
            })
            .unwrap();
        }
        for &(name, zone, vcpus, used, ram, disabled) in hosts {
            let mut vcpu = Inventory::simple("VCPU", vcpus, 1.0);
            vcpu.used = used;
            let mut traits = vec!["OWNER_NOVA".to_string()];
            if disabled {
                traits.push("COMPUTE_STATUS_DISABLED".into());
            }
            b.push(HostRecord {
                name: name.into(),
                availability_zone: Some(zone.into()),
                aggregates: vec![zones.iter().position(|z| *z == zone).unwrap() as u32 + 1],
                inventories: vec![vcpu, Inventory::simple("MEMORY_MB", ram, 1.0)],
                vcpus_used: used,
                free_ram_mb: ram,
                traits,
                hypervisor_type: "QEMU".into(),
                cpu_info: "{}".into(),
                service: ServiceRecord { disabled, ..Default::default() },
                ..Default::default()
            })
            .unwrap();
        }
        b.finish().unwrap()
    }

    fn flavor(vcpus: u32, ram: u32) -> BootRequest {
        BootRequest {
            flavor: Flavor { name: "f".into(), vcpus, memory_mb: ram, ..Default::default() },
            ..Default::default()
        }
    }

    #[test]
    fn stranded_capacity_is_the_free_capacity_no_host_can_use() {
        // 4-VCPU flavor. h1: 7 free -> 1 fits, 3 stranded; h2: 8 free -> 2;
        // h3: 3 free -> none. Naive: 18 free / 4 = 4; exact 3.
        let f = fleet(&[
            ("h1", "az1", 8, 1, 65536, false),
            ("h2", "az1", 8, 0, 65536, false),
            ("h3", "az2", 8, 5, 65536, false),
        ]);
        let h = headroom(&f, &SchedulerConfig::default(), &flavor(4, 512), 0, None, true).unwrap();
        assert_eq!((h.exact, h.naive, h.stranded), (3, 4, 1));
        assert_eq!(h.stopped_by, "placement");
        let zones: Vec<(&str, u64, u64)> = h.by_zone.iter().map(|z| (z.name.as_str(), z.exact, z.naive)).collect();
        assert_eq!(zones, vec![("az1", 3, 3), ("az2", 0, 0)]);
        assert_eq!(h.by_aggregate.iter().map(|a| a.exact).sum::<u64>(), 3);
        // The fleet it was given is untouched.
        assert_eq!(f.usage().used[0], vec![1, 0, 5]);
    }

    #[test]
    fn the_binding_resource_and_a_disabled_host_limit_the_exact_count() {
        // RAM binds: 4096 MB per host, 1024 MB flavor -> 4 per host; the
        // disabled host's capacity counts in the naive figure only.
        let f = fleet(&[("a", "az1", 64, 0, 4096, false), ("b", "az1", 64, 0, 4096, true)]);
        let h = headroom(&f, &SchedulerConfig::default(), &flavor(1, 1024), 0, None, true).unwrap();
        assert_eq!((h.exact, h.naive, h.stranded), (4, 8, 4));
        // A limit stops early and says so.
        let h = headroom(&f, &SchedulerConfig::default(), &flavor(1, 1024), 0, Some(2), true).unwrap();
        assert_eq!((h.exact, h.stopped_by.as_str()), (2, "limit"));
    }
}
