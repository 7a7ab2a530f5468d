//! Would every instance on some hosts find a new home, and where: the
//! instances moved one by one in Nova's move order with the real scheduler
//! (Nova's RequestSpec for a move: the instance's own request, the hosts
//! being drained ignored, its server group's policy kept), each move
//! claiming its destination and freeing its source before the next, on a
//! copy of the fleet. An instance that finds no host stays, and the stage
//! that stopped it is named (the first that kept no host).

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::config::SchedulerConfig;
use crate::error::{EngineError, Result};
use crate::fleet::Fleet;
use crate::mask::Mask;
use crate::request::{BootRequest, format_uuid};
use crate::scheduler::{Groups, Scheduler};
use crate::sim::metrics::Capacity;

/// One instance to move, with the request it was booted with (its
/// RequestSpec: flavor, image, zone, hints, server group).
#[derive(Clone, Debug)]
pub struct DrainInstance {
    /// The instance's uuid (as the fleet's instance map and server groups
    /// know it).
    pub uuid: u128,
    /// Its display name.
    pub name: String,
    /// The host it is on (a fleet row, one of the drained hosts).
    pub host: usize,
    /// Its request; `num_instances` and `instance_uuids` are set per move.
    pub request: BootRequest,
}

/// Where one instance would go.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Move {
    /// The instance's uuid.
    pub instance: String,
    /// Its display name.
    pub name: String,
    /// The host it is on.
    pub source: String,
    /// The host the scheduler picks, or `None` when none is valid.
    pub destination: Option<String>,
    /// The scheduler's alternates (Nova retries on them when the move
    /// fails on the destination).
    pub alternates: Vec<String>,
    /// For an instance that stays: the first stage that kept no host
    /// (`placement`, a request filter or a filter's class name).
    pub stopped_by: Option<String>,
}

/// Capacity left in one availability zone after the drain.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ZoneCapacity {
    /// Zone name (`""`: hosts in no zone).
    pub name: String,
    /// Live compute hosts in it, the drained ones not counted.
    pub hosts: usize,
    /// Free capacity per resource class (`(total - reserved) * ratio -
    /// used`, summed over its hosts), for VCPU, MEMORY_MB and DISK_GB.
    pub free: BTreeMap<String, i64>,
    /// Used over capacity per resource class, in percent.
    pub used_percent: BTreeMap<String, f64>,
}

/// The plan for draining some hosts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Drain {
    /// The hosts drained.
    pub sources: Vec<String>,
    /// Every instance, in the order it was moved.
    pub moves: Vec<Move>,
    /// Instances that found a host.
    pub moved: usize,
    /// Instances that did not (they keep their host from being emptied).
    pub stuck: usize,
    /// Capacity per zone once the moves are done, the drained hosts left out.
    pub by_zone: Vec<ZoneCapacity>,
    /// Wall time of the moves.
    pub seconds: f64,
}

/// Moves `instances` (in the order given, which should be Nova's: see
/// [`nova_move_order`]) off `sources` on a copy of `fleet` under `conf`;
/// `groups` holds every server group with all its members.
///
/// # Errors
/// Options the scheduler refuses; an instance whose host is not one of
/// `sources`.
pub fn drain(
    fleet: &Fleet,
    conf: &SchedulerConfig,
    groups: &Groups,
    sources: &[usize],
    instances: &[DrainInstance],
    seed: u64,
) -> Result<Drain> {
    // Nova's ignore_hosts: a drained host takes nothing (operators disable
    // its service first, so an instance moved off one drained host never
    // lands on another).
    let mut allowed = Mask::ones(fleet.len());
    for &h in sources {
        allowed.set(h, false);
    }
    if let Some(i) = instances.iter().find(|i| allowed.get(i.host)) {
        return Err(EngineError::invalid(format!(
            "instance {} is on {}, which is not being drained",
            format_uuid(i.uuid),
            fleet.name(i.host)
        )));
    }
    let mut sched = Scheduler::new(conf.clone(), seed)?;
    let mut copy = fleet.clone();
    let mut groups = groups.clone();
    let t0 = Instant::now();
    let mut moves = Vec::with_capacity(instances.len());
    for (k, inst) in instances.iter().enumerate() {
        let mut req = inst.request.clone();
        req.num_instances = 1;
        req.instance_uuids = vec![format_uuid(inst.uuid)];
        // The instance is a member already; the scheduler adds the ones it
        // places, as nova-api does for a boot.
        groups.forget(inst.uuid);
        let d = sched.schedule_within(&mut copy, &mut groups, &req, k, Some(&allowed));
        let source = copy.name(inst.host).to_owned();
        let chosen = d.chosen.first().and_then(|n| copy.index_of(n)).filter(|_| d.status == "ok");
        let mv = match chosen {
            Some(dest) => {
                copy.finish_build(dest);
                // Confirmed: the source's allocation and usage go.
                let resources = sched
                    .placement_query(&copy, &req)
                    .map(|q| q.prepare(&copy).resources().to_vec())
                    .unwrap_or_default();
                copy.release(inst.host, &resources);
                let (memory_mb, disk_mb, vcpus) = req.flavor.host_usage();
                copy.unconsume(inst.host, memory_mb, disk_mb, vcpus);
                copy.instances.insert(inst.uuid, dest as u32);
                Move {
                    instance: format_uuid(inst.uuid),
                    name: inst.name.clone(),
                    source,
                    destination: Some(copy.name(dest).to_owned()),
                    alternates: d.instances.first().map(|i| i.alternates.clone()).unwrap_or_default(),
                    stopped_by: None,
                }
            }
            None => {
                // The member stays where it is (the scheduler's join put it
                // back); explain joins a copy of the groups once more.
                let mut again = groups.clone();
                again.forget(inst.uuid);
                let e = sched.explain(&mut copy, &again, &req, k, &[], Some(&allowed));
                let stopped_by = e
                    .stages
                    .iter()
                    .find(|s| s.kept == 0)
                    .map(|s| s.name.clone())
                    .or_else(|| d.error.clone())
                    .unwrap_or_else(|| d.failed_stage.clone().unwrap_or(d.status.clone()));
                Move {
                    instance: format_uuid(inst.uuid),
                    name: inst.name.clone(),
                    source,
                    destination: None,
                    alternates: Vec::new(),
                    stopped_by: Some(stopped_by),
                }
            }
        };
        moves.push(mv);
    }
    let seconds = t0.elapsed().as_secs_f64();
    let moved = moves.iter().filter(|m| m.destination.is_some()).count();
    Ok(Drain {
        sources: sources.iter().map(|&h| fleet.name(h).to_owned()).collect(),
        stuck: moves.len() - moved,
        moved,
        moves,
        by_zone: zone_capacity(&copy, &allowed),
        seconds,
    })
}

/// Free and used capacity per zone, over the hosts in `counted`.
fn zone_capacity(fleet: &Fleet, counted: &Mask) -> Vec<ZoneCapacity> {
    let cap = Capacity::of(fleet);
    let rcs: Vec<(String, usize)> = ["VCPU", "MEMORY_MB", "DISK_GB"]
        .iter()
        .filter_map(|rc| fleet.rc_index(rc).map(|i| ((*rc).to_owned(), i)))
        .collect();
    let mut zones: BTreeMap<String, (usize, Vec<i64>, Vec<i64>)> = BTreeMap::new();
    for h in (0..fleet.len()).filter(|&h| fleet.is_live(h) && counted.get(h)) {
        let name = fleet.zone_of(h).unwrap_or_default().to_owned();
        let z = zones.entry(name).or_insert_with(|| (0, vec![0; rcs.len()], vec![0; rcs.len()]));
        z.0 += 1;
        for (k, (_, rc)) in rcs.iter().enumerate() {
            if let Some(p) = fleet.inventory(*rc, h) {
                z.1[k] += cap.free(fleet, *rc, h).max(0);
                z.2[k] += p.capacity();
            }
        }
    }
    zones
        .into_iter()
        .map(|(name, (hosts, free, capacity))| ZoneCapacity {
            name,
            hosts,
            free: rcs.iter().zip(&free).map(|((rc, _), &f)| (rc.clone(), f)).collect(),
            used_percent: rcs
                .iter()
                .zip(free.iter().zip(&capacity))
                .map(|((rc, _), (&f, &c))| (rc.clone(), if c > 0 { 100.0 * (c - f) as f64 / c as f64 } else { 0.0 }))
                .collect(),
        })
        .collect()
}

/// Nova's order for moving a host's instances: as `openstack server list
/// --host H` lists them (newest first: `created_at` then id, descending),
/// host after host in the order given. `created` is each instance's
/// creation key (any order-preserving string or number).
pub fn nova_move_order<K: Ord>(instances: &mut [(DrainInstance, K)], sources: &[usize]) {
    let order: HashMap<usize, usize> = sources.iter().enumerate().map(|(i, &h)| (h, i)).collect();
    let pos = |h: usize| order.get(&h).copied().unwrap_or(usize::MAX);
    instances.sort_by(|(a, ka), (b, kb)| {
        pos(a.host).cmp(&pos(b.host)).then_with(|| kb.cmp(ka)).then_with(|| b.uuid.cmp(&a.uuid))
    });
}

#[cfg(test)]
mod tests {
    //! Hand-computed drains on a crafted fleet: a zone, an anti-affinity
    //! group and a host that is the only one with a trait.

    use std::collections::BTreeMap;

    use super::*;
    use crate::host::{Aggregate, HostRecord, Inventory};
    use crate::request::{Flavor, ServerGroup};

    const G: u128 = 0xa0;
    const W: u128 = 0xb1;
    const U: u128 = 0xb2;
    const X: u128 = 1;
    const Y: u128 = 2;
    const Q: u128 = 3;
    const Z: u128 = 4;

    /// Four hosts of 8 VCPU and 8192 MB: a1 and a2 in zone az1, b1 and b2
    /// in az2. a1 runs x (2 VCPU, asked for az1), y and q (2 VCPU each,
    /// anti-affinity group G) and z (1 VCPU, needs `CUSTOM_GPU`, which only
    /// a1 has). a2 runs w (G) and 4 VCPU more; b2 runs u (G).
    fn fleet() -> Fleet {
        let mut b = crate::FleetBuilder::new();
        for (id, z) in [(1, "az1"), (2, "az2")] {
            b.add_aggregate(Aggregate {
                id,
                uuid: id as u128,
                name: format!("agg-{z}"),
                metadata: BTreeMap::from([("availability_zone".into(), z.into())]),
            })
            .unwrap();
        }
        for (name, agg, vcpus, instances, gpu) in [
            ("a1", 1, 7, vec![X, Y, Q, Z], true),
            ("a2", 1, 6, vec![W], false),
            ("b1", 2, 0, vec![], false),
            ("b2", 2, 2, vec![U], false),
        ] {
            let mut vcpu = Inventory::simple("VCPU", 8, 1.0);
            vcpu.used = vcpus;
            let ram_used = 512 * instances.len() as i64;
            let mut ram = Inventory::simple("MEMORY_MB", 8192, 1.0);
            ram.used = ram_used;
            let mut traits = vec!["OWNER_NOVA".to_string()];
            if gpu {
                traits.push("CUSTOM_GPU".into());
            }
            b.push(HostRecord {
                name: name.into(),
                availability_zone: Some(if agg == 1 { "az1" } else { "az2" }.into()),
                aggregates: vec![agg],
                inventories: vec![vcpu, ram],
                vcpus_used: vcpus,
                free_ram_mb: 8192 - ram_used,
                num_instances: instances.len() as i64,
                traits,
                hypervisor_type: "QEMU".into(),
                cpu_info: "{}".into(),
                instances,
                ..Default::default()
            })
            .unwrap();
        }
        b.finish().unwrap()
    }

    fn groups() -> Groups {
        Groups::new(&[ServerGroup {
            uuid: format_uuid(G),
            policy: "anti-affinity".into(),
            members: [W, U, Y, Q].iter().map(|&m| format_uuid(m)).collect(),
            ..Default::default()
        }])
        .unwrap()
    }

    fn instance(f: &Fleet, uuid: u128, name: &str, vcpus: u32) -> DrainInstance {
        DrainInstance {
            uuid,
            name: name.into(),
            host: f.index_of("a1").unwrap(),
            request: BootRequest {
                flavor: Flavor { name: format!("{vcpus}cpu"), vcpus, memory_mb: 512, ..Default::default() },
                ..Default::default()
            },
        }
    }

    /// a1's instances with their creation keys (x newest).
    fn a1(f: &Fleet) -> Vec<(DrainInstance, u32)> {
        let mut x = instance(f, X, "x", 2);
        x.request.availability_zone = Some("az1".into());
        let mut y = instance(f, Y, "y", 2);
        y.request.scheduler_hints.insert("group".into(), format_uuid(G).into());
        let mut q = instance(f, Q, "q", 2);
        q.request.scheduler_hints = y.request.scheduler_hints.clone();
        let mut z = instance(f, Z, "z", 1);
        z.request.flavor.extra_specs.insert("trait:CUSTOM_GPU".into(), "required".into());
        vec![(z, 1), (q, 2), (x, 4), (y, 3)]
    }

    #[test]
    fn each_instance_goes_where_the_scheduler_sends_it_or_names_what_stops_it() {
        let f = fleet();
        let mut order = a1(&f);
        let a1_row = f.index_of("a1").unwrap();
        nova_move_order(&mut order, &[a1_row]);
        let names: Vec<&str> = order.iter().map(|(i, _)| i.name.as_str()).collect();
        // Newest first, as `openstack server list --host a1` lists them.
        assert_eq!(names, ["x", "y", "q", "z"]);
        let instances: Vec<DrainInstance> = order.into_iter().map(|(i, _)| i).collect();
        let before = f.usage().clone();
        let d = drain(&f, &SchedulerConfig::default(), &groups(), &[a1_row], &instances, 0).unwrap();
        let got: Vec<(&str, Option<&str>, Option<&str>)> =
            d.moves.iter().map(|m| (m.name.as_str(), m.destination.as_deref(), m.stopped_by.as_deref())).collect();
        assert_eq!(
            got,
            [
                // az1 without a1 is a2, with exactly 2 VCPU free.
                ("x", Some("a2"), None),
                // a2 runs w (G); b1 has more free VCPU and RAM than b2.
                ("y", Some("b1"), None),
                // a2 is full now; b1 runs y and b2 runs u.
                ("q", None, Some("ServerGroupAntiAffinityFilter")),
                // Only a1 has CUSTOM_GPU, and a1 is being drained.
                ("z", None, Some("allocation_candidates")),
            ]
        );
        assert_eq!((d.moved, d.stuck), (2, 2));
        assert_eq!(d.sources, ["a1"]);
        // a2: 0 free; b1: 6; b2: 6. a1 is left out.
        let zones: Vec<(&str, usize, i64)> =
            d.by_zone.iter().map(|z| (z.name.as_str(), z.hosts, z.free["VCPU"])).collect();
        assert_eq!(zones, [("az1", 1, 0), ("az2", 2, 12)]);
        assert_eq!(d.by_zone[0].used_percent["VCPU"], 100.0);
        // The plan ran on a copy.
        assert_eq!(f.usage(), &before);
    }

    #[test]
    fn draining_two_hosts_lands_on_neither_and_an_instance_off_them_is_refused() {
        // Draining a1 and b1 together: nothing lands on either.
        let f = fleet();
        let rows = [f.index_of("a1").unwrap(), f.index_of("b1").unwrap()];
        let x = a1(&f).into_iter().find(|(i, _)| i.name == "x").unwrap().0;
        let mut y = a1(&f).into_iter().find(|(i, _)| i.name == "y").unwrap().0;
        // Without its group y could go anywhere but a1 and b1: b2 (6 free)
        // beats a2 (2 free) on VCPU.
        y.request.scheduler_hints.clear();
        let d = drain(&f, &SchedulerConfig::default(), &groups(), &rows, &[x.clone(), y], 0).unwrap();
        let got: Vec<Option<&str>> = d.moves.iter().map(|m| m.destination.as_deref()).collect();
        assert_eq!(got, [Some("a2"), Some("b2")]);
        assert_eq!(d.by_zone.iter().map(|z| z.hosts).collect::<Vec<_>>(), [1, 1]);
        // What --zone and --aggregate drain.
        let at = |names: &[&str]| names.iter().map(|n| f.index_of(n).unwrap()).collect::<Vec<_>>();
        assert_eq!(f.hosts_in_zone("az2"), at(&["b1", "b2"]));
        assert_eq!(f.hosts_in_aggregate("agg-az1"), Some(at(&["a1", "a2"])));
        assert_eq!((f.hosts_in_aggregate("nope"), f.hosts_in_zone("nope")), (None, vec![]));
        let mut off = x;
        off.host = f.index_of("a2").unwrap();
        let e = drain(&f, &SchedulerConfig::default(), &groups(), &rows, &[off], 0).unwrap_err();
        assert!(e.to_string().contains("a2, which is not being drained"), "{e}");
    }
}
