//! The Nova side of the process's one live fleet (DESIGN.md section 3).
//! Placement owns the fleet and writes every provider's row (tree,
//! inventory, usage, traits, aggregates) right after each commit
//! ([`quiver_placement::fleet`]); what this adds is what only the Nova
//! records know: which provider rows are compute nodes (a service bound to
//! its compute node provider: name, hypervisor facts, service state), zones
//! and host aggregates, and per-host instance and build counters.
//! [`LiveFleet::catch_up`] applies the record changes and the providers
//! created or deleted since the last call, O(changes); nothing here
//! rebuilds the fleet.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use quiver_engine::{Fleet, HostRecord, ServiceRecord};
use quiver_placement::State;
use quiver_placement::model::RpId;

use super::records::{RecordChanges, Records, Service, unix_now};

/// What the Nova side needs to map record writes onto rows.
#[derive(Debug, Default)]
pub struct LiveFleet {
    /// Compute node provider uuid -> service host, for every service.
    host_of_rp: HashMap<String, String>,
    /// Server id -> (host row, still building), as last applied.
    servers: HashMap<String, (usize, bool)>,
    /// Aggregate id -> member hosts, as last applied.
    agg_members: HashMap<i64, BTreeSet<String>>,
    /// False until the first full load.
    loaded: bool,
}

fn engine_aggregate(a: &super::records::Aggregate) -> quiver_engine::Aggregate {
    quiver_engine::Aggregate {
        id: a.id as u32,
        uuid: quiver_engine::request::parse_uuid(&a.uuid).unwrap_or(0),
        name: a.name.clone(),
        metadata: a.metadata.clone(),
    }
}

fn service_record(svc: &Service, now: f64) -> ServiceRecord {
    ServiceRecord {
        disabled: svc.disabled,
        forced_down: svc.forced_down,
        last_seen_up_age_s: (now - svc.last_seen).max(0.0),
        version: 74,
    }
}

/// The aggregate ids a host is in, and its zone.
fn membership(r: &Records, host: &str) -> (Vec<u32>, String) {
    let aggs = r.aggregates.values().filter(|a| a.hosts.iter().any(|h| h == host)).map(|a| a.id as u32).collect();
    (aggs, super::host_zone(r, host))
}

/// The Nova columns of a compute node (inventories and traits are
/// Placement's: the row already has them).
fn host_record(r: &Records, svc: &Service, now: f64) -> HostRecord {
    let (aggregates, zone) = membership(r, &svc.host);
    HostRecord {
        name: svc.host.clone(),
        nodename: Some(svc.hypervisor.nodename.clone()),
        uuid: quiver_engine::request::parse_uuid(&svc.compute_node_uuid).unwrap_or(0),
        cell: "cell1".into(),
        availability_zone: Some(zone),
        aggregates,
        hypervisor_type: svc.hypervisor.hypervisor_type.clone(),
        hypervisor_version: svc.hypervisor.hypervisor_version,
        cpu_info: svc.hypervisor.cpu_info.clone(),
        supported_instances: vec![["x86_64".into(), "qemu".into(), "hvm".into()]],
        stats: BTreeMap::new(),
        service: service_record(svc, now),
        ..Default::default()
    }
}

impl LiveFleet {
    /// Applies every write committed since the last call to Placement's
    /// fleet (the first call binds every compute node). Call with the
    /// records lock held, so the records and Placement are read at one
    /// point in time.
    ///
    /// # Errors
    /// A row the engine refuses (a duplicate host name).
    pub fn catch_up(&mut self, placement: &quiver_placement::Placement, r: &Records) -> Result<(), String> {
        let changes = r.take_changes();
        let now = unix_now();
        placement.update_fleet(|state, fleet, pc| {
            fleet.set_service_clock(now);
            if !self.loaded || pc.resync {
                return self.load(state, fleet, r, now);
            }
            self.apply(state, fleet, r, &changes, &pc.providers, now)
        })
    }

    /// Binds every compute node of a fleet Placement has just built (start-up,
    /// or after Placement reloaded its state from the store).
    pub fn load(&mut self, state: &State, fleet: &mut Fleet, r: &Records, now: f64) -> Result<(), String> {
        *self = LiveFleet::default();
        for a in r.aggregates.values() {
            fleet.upsert_aggregate(engine_aggregate(a));
            self.agg_members.insert(a.id, a.hosts.iter().cloned().collect());
        }
        let mut hosts: Vec<&str> = r.services.keys().map(String::as_str).collect();
        hosts.sort_unstable();
        for host in hosts {
            self.bind_service(state, fleet, r, host, now)?;
        }
        for id in r.servers.keys() {
            self.apply_server(fleet, r, id);
        }
        self.loaded = true;
        Ok(())
    }

    /// The host row of compute node provider `rp`, if it is one.
    pub fn row_of_provider(fleet: &Fleet, rp: RpId) -> Option<usize> {
        let row = rp as usize;
        (row < fleet.len() && fleet.is_live(row)).then_some(row)
    }

    /// A compute node leaves the fleet (its service went away or its
    /// provider was deleted): its servers are forgotten (O(servers): node
    /// deletions are rare).
    fn unbind(&mut self, fleet: &mut Fleet, row: usize) {
        fleet.unbind_host(row);
        self.servers.retain(|_, (r, _)| *r != row);
    }

    fn apply(
        &mut self,
        state: &State,
        fleet: &mut Fleet,
        r: &Records,
        changes: &RecordChanges,
        providers: &std::collections::HashSet<RpId>,
        now: f64,
    ) -> Result<(), String> {
        // Aggregates first: hosts' memberships refer to them.
        let mut regroup: BTreeSet<String> = BTreeSet::new();
        for id in &changes.aggregates {
            let old = self.agg_members.remove(id).unwrap_or_default();
            regroup.extend(old);
            match r.aggregates.get(id) {
                Some(a) => {
                    fleet.upsert_aggregate(engine_aggregate(a));
                    regroup.extend(a.hosts.iter().cloned());
                    self.agg_members.insert(*id, a.hosts.iter().cloned().collect());
                }
                // A deleted aggregate keeps its slot, with no zone and no hosts.
                None => fleet.upsert_aggregate(quiver_engine::Aggregate {
                    id: *id as u32,
                    name: String::new(),
                    ..Default::default()
                }),
            }
        }
        for host in &changes.services {
            self.apply_service(state, fleet, r, host, now)?;
        }
        for host in &regroup {
            if let Some(row) = fleet.index_of(host) {
                let (aggs, zone) = membership(r, host);
                fleet.set_aggregates(row, &aggs).map_err(|e| e.to_string())?;
                fleet.set_availability_zone(row, Some(&zone));
            }
        }
        let mut ids: Vec<RpId> = providers.iter().copied().collect();
        ids.sort_unstable();
        for id in ids {
            self.apply_provider(state, fleet, r, id, now)?;
        }
        for id in &changes.servers {
            self.apply_server(fleet, r, id);
        }
        Ok(())
    }

    /// A service written: its compute node provider's row becomes (or stays)
    /// a host with the service's state and hypervisor facts; a deleted
    /// service's row stops being one.
    fn apply_service(
        &mut self,
        state: &State,
        fleet: &mut Fleet,
        r: &Records,
        host: &str,
        now: f64,
    ) -> Result<(), String> {
        let before = fleet.index_of(host);
        self.bind_service(state, fleet, r, host, now)?;
        let after = fleet.index_of(host);
        if let Some(row) = after.filter(|&a| Some(a) != before) {
            // Servers recorded on the host before its row was bound.
            let ids: Vec<String> =
                r.servers.values().filter(|s| s.host.as_deref() == Some(host)).map(|s| s.id.clone()).collect();
            for id in ids {
                if self.servers.get(&id).is_some_and(|&(r, _)| r != row) {
                    self.servers.remove(&id);
                }
                self.apply_server(fleet, r, &id);
            }
        }
        Ok(())
    }

    /// [`LiveFleet::apply_service`] without looking for the host's servers.
    fn bind_service(
        &mut self,
        state: &State,
        fleet: &mut Fleet,
        r: &Records,
        host: &str,
        now: f64,
    ) -> Result<(), String> {
        let bound = fleet.index_of(host);
        let Some(svc) = r.services.get(host) else {
            if let Some(row) = bound {
                self.unbind(fleet, row);
            }
            return Ok(());
        };
        self.host_of_rp.insert(svc.compute_node_uuid.clone(), svc.host.clone());
        let row = state.provider_by_uuid(&svc.compute_node_uuid).map(|p| p.id as usize);
        if let Some(old) = bound.filter(|&b| Some(b) != row) {
            // Re-registered on another provider.
            self.unbind(fleet, old);
        }
        let Some(row) = row else { return Ok(()) };
        if bound == Some(row) {
            let same = {
                let (b, i) = fleet.locate(row);
                fleet.cpu_infos.name(b.cpu_info[i]) == svc.hypervisor.cpu_info
                    && fleet.hypervisor_types.name(b.hypervisor_type[i]) == svc.hypervisor.hypervisor_type
                    && b.hypervisor_version[i] == svc.hypervisor.hypervisor_version
                    && fleet.nodename(row) == svc.hypervisor.nodename
            };
            if same {
                fleet.set_service(row, &service_record(svc, now));
                return Ok(());
            }
        }
        let s = fleet.hoststate(row);
        let mut h = host_record(r, svc, now);
        if bound == Some(row) {
            (h.num_instances, h.num_io_ops) = (i64::from(s[3]), i64::from(s[4]));
        }
        fleet.bind_host(row, &h).map_err(|e| e.to_string())?;
        Ok(())
    }

    /// A provider created or deleted: a compute node's provider created
    /// after its service binds now; a deleted one's host row is already a
    /// tombstone (Placement dropped it), so its servers are forgotten.
    fn apply_provider(
        &mut self,
        state: &State,
        fleet: &mut Fleet,
        r: &Records,
        id: RpId,
        now: f64,
    ) -> Result<(), String> {
        match state.providers.get(id as usize).and_then(Option::as_ref) {
            None => self.servers.retain(|_, (row, _)| *row != id as usize),
            Some(p) if !fleet.is_live(id as usize) => {
                if let Some(host) = self.host_of_rp.get(&p.uuid).cloned() {
                    self.apply_service(state, fleet, r, &host, now)?;
                }
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// A server written or deleted: the instance map and the per-host
    /// `num_instances` / `num_io_ops` (builds in progress) follow it.
    fn apply_server(&mut self, fleet: &mut Fleet, r: &Records, id: &str) {
        let now = r.servers.get(id).and_then(|s| {
            let row = fleet.index_of(s.host.as_deref()?)?;
            Some((row, s.vm_state == "building"))
        });
        let before = self.servers.get(id).copied();
        if before == now {
            return;
        }
        let uuid = quiver_engine::request::parse_uuid(id);
        if let Some((row, building)) = before {
            let mut s = fleet.hoststate(row);
            s[3] -= 1;
            s[4] -= building as i32;
            fleet.set_hoststate(row, s);
        }
        if let Some((row, building)) = now {
            let mut s = fleet.hoststate(row);
            s[3] += 1;
            s[4] += building as i32;
            fleet.set_hoststate(row, s);
            self.servers.insert(id.to_owned(), (row, building));
        } else {
            self.servers.remove(id);
        }
        if let Some(u) = uuid {
            fleet.place_instance(u, now.map(|(row, _)| row));
        }
    }
}

#[cfg(test)]
mod tests {
    //! Issue 11's property: after every step of a random sequence of
    //! Placement writes and Nova record changes, the live fleet equals a
    //! fleet loaded from scratch from the same store.

    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::compute_api::records::{Aggregate, Flavor, Server};
    use quiver_placement::Inventory;
    use quiver_placement::ops::{AllocationWriteKind, ConsumerWrite};
    use quiver_placement::store::Durability;

    fn service(host: &str, rp: &str) -> Service {
        Service::for_test(host, rp, unix_now())
    }

    fn server(id: &str, host: Option<String>, vm_state: &str) -> Server {
        Server {
            id: id.into(),
            name: id.into(),
            project_id: "p".into(),
            user_id: "u".into(),
            flavor: Flavor::for_test("f", 1, 512, 1),
            image_id: None,
            availability_zone: None,
            metadata: Default::default(),
            hints: Default::default(),
            key_name: None,
            description: None,
            reservation_id: "r".into(),
            vm_state: vm_state.into(),
            task_state: None,
            power_state: 1,
            host,
            node: None,
            fault: None,
            group: None,
            created: String::new(),
            updated: String::new(),
            launched_at: None,
            actions: Vec::new(),
            requested_host: None,
        }
    }

    fn uuid(i: usize) -> String {
        format!("00000000-0000-4000-8000-{i:012}")
    }

    /// The live fleet's hosts, comparable with a fresh load (heartbeat ages
    /// are read at different instants, so they are compared apart).
    fn hosts(f: &Fleet) -> Vec<HostRecord> {
        let mut v: Vec<HostRecord> = f
            .host_records()
            .map(|mut h| {
                assert!(h.service.last_seen_up_age_s < 60.0, "{}: {}", h.name, h.service.last_seen_up_age_s);
                h.service.last_seen_up_age_s = 0.0;
                h
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    fn placed(f: &Fleet) -> BTreeMap<u128, String> {
        f.instances.iter().map(|(&u, &h)| (u, f.name(h as usize).to_owned())).collect()
    }

    #[test]
    fn random_writes_keep_the_live_fleet_equal_to_a_fresh_load() {
        for seed in 0..6u64 {
            let dir = tempfile::tempdir().expect("tempdir");
            let placement = quiver_placement::Placement::open(dir.path(), Durability::Process).expect("placement");
            let mut r = Records::open(dir.path()).expect("records");
            let mut live = LiveFleet::default();
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut built = false;
            placement.write(|s| s.ensure_class("CUSTOM_GPU").map(|_| ())).expect("class");
            for step in 0..150 {
                let n = rng.random_range(0..8usize);
                let (host, rp) = (format!("h{n}"), uuid(n));
                match rng.random_range(0..10) {
                    // a compute node registers (provider, inventory, service)
                    0 | 1 => {
                        let _ = placement.write(|s| {
                            if s.provider_by_uuid(&rp).is_none() {
                                s.create_provider(rp.clone(), host.clone(), None)?;
                            }
                            let g = s.get_provider(&rp)?.generation;
                            let mut inv = vec![("VCPU".to_string(), Inventory { total: 16, ..Default::default() })];
                            inv.push(("MEMORY_MB".into(), Inventory { total: 32768, ..Default::default() }));
                            if rng.random_bool(0.5) {
                                inv.push(("CUSTOM_GPU".into(), Inventory { total: 2, ..Default::default() }));
                            }
                            s.set_inventories(&rp, g, &inv, false).map(|_| ())
                        });
                        let svc = service(&host, &rp);
                        r.save(&svc).expect("save");
                        r.services.insert(host.clone(), svc);
                    }
                    // traits
                    2 => {
                        let _ = placement.write(|s| {
                            let g = s.get_provider(&rp)?.generation;
                            let t = if rng.random_bool(0.5) { "HW_CPU_X86_AVX2" } else { "COMPUTE_STATUS_DISABLED" };
                            s.set_provider_traits(&rp, g, &[t.to_string()]).map(|_| ())
                        });
                    }
                    // an allocation, or its removal
                    3 | 4 => {
                        let consumer = uuid(100 + rng.random_range(0..6usize));
                        let w = ConsumerWrite {
                            consumer: consumer.clone(),
                            project: Some("p".into()),
                            user: Some("u".into()),
                            generation_check: None,
                            consumer_type: None,
                            allocations: if rng.random_bool(0.7) {
                                vec![(rp.clone(), vec![("VCPU".into(), rng.random_range(1..5))])]
                            } else {
                                vec![]
                            },
                        };
                        let _ = placement.write(|s| s.write_allocations(&[w], AllocationWriteKind::Put));
                    }
                    // a provider deleted (refused while it has allocations)
                    5 => {
                        let _ = placement.write(|s| s.delete_provider(&rp));
                    }
                    // service disabled / forced down / heartbeat
                    6 => {
                        if let Some(mut svc) = r.services.get(&host).cloned() {
                            svc.disabled = rng.random_bool(0.5);
                            svc.forced_down = rng.random_bool(0.2);
                            r.save(&svc).expect("save");
                            r.services.insert(host.clone(), svc);
                        }
                        r.heartbeat(&format!("h{}", rng.random_range(0..8usize)), unix_now());
                    }
                    // servers created on a host, finishing their build, deleted
                    7 | 8 => {
                        let id = uuid(200 + rng.random_range(0..10usize));
                        if rng.random_bool(0.3) {
                            r.remove("server", &id).expect("remove");
                            r.drop_server(&id);
                        } else {
                            let state = if rng.random_bool(0.5) { "building" } else { "active" };
                            let s = server(&id, Some(host.clone()), state);
                            r.save(&s).expect("save");
                            r.put_server(s);
                        }
                    }
                    // an aggregate with a zone, hosts joining and leaving it
                    _ => {
                        let id = rng.random_range(1..3i64);
                        if rng.random_bool(0.15) {
                            r.remove("aggregate", &id.to_string()).expect("remove");
                            r.aggregates.remove(&id);
                        } else {
                            let mut a = r.aggregates.get(&id).cloned().unwrap_or(Aggregate {
                                id,
                                uuid: uuid(300 + id as usize),
                                name: format!("agg{id}"),
                                metadata: [("availability_zone".to_string(), format!("az{id}"))].into(),
                                hosts: vec![],
                                created_at: String::new(),
                                updated_at: None,
                            });
                            if a.hosts.contains(&host) {
                                a.hosts.retain(|h| h != &host);
                            } else {
                                a.hosts.push(host.clone());
                            }
                            r.save(&a).expect("save");
                            r.aggregates.insert(id, a);
                        }
                    }
                }
                live.catch_up(&placement, &r).expect("catch up");
                let (live_hosts, fresh_hosts, live_placed, fresh_placed, rows_agree) =
                    placement.read_with_fleet(|s, f| {
                        let mut fresh = quiver_placement::fleet::build(s);
                        let now = unix_now();
                        fresh.set_service_clock(now);
                        LiveFleet::default().load(s, &mut fresh, &r, now).expect("load");
                        let rows_agree = f.len() == fresh.len()
                            && (0..f.len()).all(|i| f.provider_view(i) == fresh.provider_view(i));
                        (hosts(f), hosts(&fresh), placed(f), placed(&fresh), rows_agree)
                    });
                assert_eq!(live_hosts, fresh_hosts, "seed {seed}, step {step}");
                assert_eq!(live_placed, fresh_placed, "seed {seed}, step {step}");
                assert!(rows_agree, "seed {seed}, step {step}: provider rows");
                built |= !live_hosts.is_empty();
            }
            assert!(built, "the sequence built some hosts");
        }
    }
}
