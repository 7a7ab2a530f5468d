//! The process's one live columnar fleet (DESIGN.md section 3): a row per
//! compute node (a compute service and its root provider in Placement),
//! kept current in place from what committed writes changed. Placement's
//! writes name the providers they touched ([`quiver_placement::service::ProviderChanges`]);
//! the Nova records name the services, servers and aggregates written
//! ([`RecordChanges`]). [`LiveFleet::catch_up`] applies both, O(changes):
//! usage and inventory re-read for a changed provider, a new compute node
//! appended, a deleted one tombstoned, service state, zones, aggregate
//! membership and per-host instance and build counters rewritten for the
//! rows they touch. Nothing here rebuilds the fleet after start-up.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use quiver_engine::{Fleet, FleetBuilder, HostRecord, ServiceRecord};
use quiver_placement::State;
use quiver_placement::model::{Provider, RpId};

use super::records::{RecordChanges, Records, Service, unix_now};

/// The live fleet and what it needs to map writes onto rows.
#[derive(Debug)]
pub struct LiveFleet {
    /// The fleet itself.
    pub fleet: Fleet,
    /// Placement provider id -> host row, and back.
    rows: HashMap<RpId, usize>,
    row_rp: HashMap<usize, RpId>,
    /// Compute node provider uuid -> service host, for every service.
    host_of_rp: HashMap<String, String>,
    /// Server id -> (host row, still building), as last applied.
    servers: HashMap<String, (usize, bool)>,
    /// Aggregate id -> member hosts, as last applied.
    agg_members: HashMap<i64, BTreeSet<String>>,
    /// False until the first full load.
    loaded: bool,
}

impl Default for LiveFleet {
    fn default() -> Self {
        LiveFleet {
            fleet: Fleet::empty(),
            rows: HashMap::new(),
            row_rp: HashMap::new(),
            host_of_rp: HashMap::new(),
            servers: HashMap::new(),
            agg_members: HashMap::new(),
            loaded: false,
        }
    }
}

fn engine_aggregate(a: &super::records::Aggregate) -> quiver_engine::Aggregate {
    quiver_engine::Aggregate {
        id: a.id as u32,
        uuid: quiver_engine::request::parse_uuid(&a.uuid).unwrap_or(0),
        name: a.name.clone(),
        metadata: a.metadata.clone(),
    }
}

/// A provider's inventories with their usage, as the engine holds them.
fn inventories(state: &State, p: &Provider) -> Vec<quiver_engine::Inventory> {
    p.inventories
        .iter()
        .map(|rec| quiver_engine::Inventory::from_record(state.class_name(rec.class), &rec.inv, rec.used))
        .collect()
}

/// `HostState`'s `[free_ram_mb, free_disk_mb, vcpus_used]` from Placement's
/// inventory and usage (the resource tracker's view of the node).
fn hoststate_from(invs: &[quiver_engine::Inventory]) -> [i64; 3] {
    let inv = |rc: &str| invs.iter().find(|i| i.resource_class == rc);
    let free = |rc: &str| inv(rc).map_or(0, |i| i.total - i.reserved - i.used);
    [free("MEMORY_MB"), free("DISK_GB") * 1024, inv("VCPU").map_or(0, |i| i.used)]
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

impl LiveFleet {
    /// Applies every write committed since the last call (the first call
    /// loads the whole fleet). Call with the records lock held, so the
    /// records and Placement are read at one point in time.
    ///
    /// # Errors
    /// A row the engine refuses (a malformed trait or class name).
    pub fn catch_up(&mut self, placement: &quiver_placement::Placement, r: &Records) -> Result<(), String> {
        let changes = r.take_changes();
        let now = unix_now();
        placement.read_changes(|state, pc| {
            self.fleet.set_service_clock(now);
            if !self.loaded || pc.resync {
                return self.load(state, r, now);
            }
            self.apply(state, r, &changes, &pc.providers, now)
        })
    }

    /// Builds the fleet from scratch (start-up, or after Placement reloaded
    /// its state from the store).
    fn load(&mut self, state: &State, r: &Records, now: f64) -> Result<(), String> {
        let mut b = FleetBuilder::new();
        for a in r.aggregates.values() {
            b.add_aggregate(engine_aggregate(a)).map_err(|e| e.to_string())?;
        }
        *self = LiveFleet::default();
        let mut on_host: BTreeMap<&str, Vec<&super::records::Server>> = BTreeMap::new();
        for s in r.servers.values() {
            if let Some(h) = &s.host {
                on_host.entry(h.as_str()).or_default().push(s);
            }
        }
        for svc in r.services.values() {
            self.host_of_rp.insert(svc.compute_node_uuid.clone(), svc.host.clone());
            let Some(p) = state.provider_by_uuid(&svc.compute_node_uuid) else { continue };
            let servers = on_host.get(svc.host.as_str()).map(Vec::as_slice).unwrap_or(&[]);
            let mut h = self.host_record(state, r, svc, p, now);
            h.num_instances = servers.len() as i64;
            h.num_io_ops = servers.iter().filter(|s| s.vm_state == "building").count() as i64;
            h.instances = servers.iter().filter_map(|s| quiver_engine::request::parse_uuid(&s.id)).collect();
            let row = b.len();
            b.push(h).map_err(|e| e.to_string())?;
            self.bind(row, p.id);
            for s in servers {
                self.servers.insert(s.id.clone(), (row, s.vm_state == "building"));
            }
        }
        for a in r.aggregates.values() {
            self.agg_members.insert(a.id, a.hosts.iter().cloned().collect());
        }
        self.fleet = b.finish().map_err(|e| e.to_string())?;
        self.fleet.set_service_clock(now);
        for batch in &mut self.fleet.batches {
            for a in &mut batch.service_age_s {
                *a -= now;
            }
        }
        self.loaded = true;
        Ok(())
    }

    /// The host row of compute node provider `rp`.
    pub fn row_of_provider(&self, rp: RpId) -> Option<usize> {
        self.rows.get(&rp).copied()
    }

    /// Row `row` is the compute node of provider `rp` from now on.
    fn bind(&mut self, row: usize, rp: RpId) {
        if let Some(old) = self.row_rp.insert(row, rp) {
            self.rows.remove(&old);
        }
        self.rows.insert(rp, row);
    }

    /// A compute node leaves the fleet: its row becomes a tombstone and its
    /// servers are forgotten (O(servers): node deletions are rare).
    fn remove_row(&mut self, row: usize) {
        if let Some(rp) = self.row_rp.remove(&row) {
            self.rows.remove(&rp);
        }
        self.fleet.remove_host(row);
        self.servers.retain(|_, (r, _)| *r != row);
    }

    fn host_record(&self, state: &State, r: &Records, svc: &Service, p: &Provider, now: f64) -> HostRecord {
        let invs = inventories(state, p);
        let [free_ram_mb, free_disk_mb, vcpus_used] = hoststate_from(&invs);
        let (aggregates, zone) = membership(r, &svc.host);
        HostRecord {
            name: svc.host.clone(),
            nodename: Some(svc.hypervisor.nodename.clone()),
            uuid: quiver_engine::request::parse_uuid(&svc.compute_node_uuid).unwrap_or(0),
            cell: "cell1".into(),
            availability_zone: Some(zone),
            aggregates,
            host_ip: None,
            traits: p.traits.iter().map(|t| state.traits.name(*t).to_owned()).collect(),
            vcpus_used,
            free_ram_mb,
            free_disk_mb,
            num_instances: 0,
            num_io_ops: 0,
            failed_builds: 0,
            hypervisor_type: svc.hypervisor.hypervisor_type.clone(),
            hypervisor_version: svc.hypervisor.hypervisor_version,
            cpu_info: svc.hypervisor.cpu_info.clone(),
            supported_instances: vec![["x86_64".into(), "qemu".into(), "hvm".into()]],
            stats: BTreeMap::new(),
            service: service_record(svc, now),
            metrics: Vec::new(),
            instances: Vec::new(),
            inventories: invs,
        }
    }

    fn apply(
        &mut self,
        state: &State,
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
                    self.fleet.upsert_aggregate(engine_aggregate(a));
                    regroup.extend(a.hosts.iter().cloned());
                    self.agg_members.insert(*id, a.hosts.iter().cloned().collect());
                }
                // A deleted aggregate keeps its slot, with no zone and no hosts.
                None => self.fleet.upsert_aggregate(quiver_engine::Aggregate {
                    id: *id as u32,
                    name: String::new(),
                    ..Default::default()
                }),
            }
        }
        for host in &changes.services {
            self.apply_service(state, r, host, now)?;
        }
        for host in &regroup {
            if let Some(row) = self.fleet.index_of(host) {
                let (aggs, zone) = membership(r, host);
                self.fleet.set_aggregates(row, &aggs).map_err(|e| e.to_string())?;
                self.fleet.set_availability_zone(row, Some(&zone));
            }
        }
        for &id in providers {
            self.apply_provider(state, r, id, now)?;
        }
        for id in &changes.servers {
            self.apply_server(r, id);
        }
        Ok(())
    }

    /// A service written: a new compute node appends its row; an existing
    /// one gets its service state (and, after a re-registration, its
    /// hypervisor facts) rewritten.
    fn apply_service(&mut self, state: &State, r: &Records, host: &str, now: f64) -> Result<(), String> {
        let Some(svc) = r.services.get(host) else {
            // A deleted service: its node leaves the fleet.
            if let Some(row) = self.fleet.index_of(host) {
                self.remove_row(row);
            }
            return Ok(());
        };
        self.host_of_rp.insert(svc.compute_node_uuid.clone(), svc.host.clone());
        let Some(p) = state.provider_by_uuid(&svc.compute_node_uuid) else { return Ok(()) };
        match self.fleet.index_of(host) {
            Some(row) => {
                let same = {
                    let (b, i) = self.fleet.locate(row);
                    let f = &self.fleet;
                    f.cpu_infos.name(b.cpu_info[i]) == svc.hypervisor.cpu_info
                        && f.hypervisor_types.name(b.hypervisor_type[i]) == svc.hypervisor.hypervisor_type
                        && b.hypervisor_version[i] == svc.hypervisor.hypervisor_version
                        && f.nodename(row) == svc.hypervisor.nodename
                        && f.uuid(row) == quiver_engine::request::parse_uuid(&svc.compute_node_uuid).unwrap_or(0)
                };
                if same {
                    self.fleet.set_service(row, &service_record(svc, now));
                } else {
                    let [ni, io] = {
                        let s = self.fleet.hoststate(row);
                        [s[3] as i64, s[4] as i64]
                    };
                    let mut h = self.host_record(state, r, svc, p, now);
                    h.num_instances = ni;
                    h.num_io_ops = io;
                    self.fleet.update_host(row, &h).map_err(|e| e.to_string())?;
                    self.bind(row, p.id);
                }
            }
            None => {
                let h = self.host_record(state, r, svc, p, now);
                let row = self.fleet.append(h).map_err(|e| e.to_string())?;
                self.bind(row, p.id);
                // Servers recorded on the host before its row existed.
                let ids: Vec<String> =
                    r.servers.values().filter(|s| s.host.as_deref() == Some(host)).map(|s| s.id.clone()).collect();
                for id in ids {
                    self.apply_server(r, &id);
                }
            }
        }
        Ok(())
    }

    /// A provider written: inventory, usage and traits of its row re-read;
    /// a deleted compute node provider tombstones its row.
    fn apply_provider(&mut self, state: &State, r: &Records, id: RpId, now: f64) -> Result<(), String> {
        let live = state.providers.get(id as usize).and_then(Option::as_ref);
        match (self.rows.get(&id).copied(), live) {
            (Some(row), Some(p)) => {
                let invs = inventories(state, p);
                self.fleet.set_inventories(row, &invs).map_err(|e| e.to_string())?;
                let traits: Vec<String> = p.traits.iter().map(|t| state.traits.name(*t).to_owned()).collect();
                self.fleet.set_traits(row, &traits).map_err(|e| e.to_string())?;
                let [ram, disk, vcpus] = hoststate_from(&invs);
                let mut s = self.fleet.hoststate(row);
                s[0] = ram.clamp(i32::MIN as i64, i32::MAX as i64) as i32;
                s[1] = disk.clamp(i32::MIN as i64, i32::MAX as i64) as i32;
                s[2] = vcpus.clamp(i32::MIN as i64, i32::MAX as i64) as i32;
                self.fleet.set_hoststate(row, s);
            }
            (Some(row), None) => self.remove_row(row),
            (None, Some(p)) => {
                // A compute node's provider created after its service.
                if let Some(host) = self.host_of_rp.get(&p.uuid).cloned() {
                    self.apply_service(state, r, &host, now)?;
                }
            }
            (None, None) => {}
        }
        Ok(())
    }

    /// A server written or deleted: the instance map and the per-host
    /// `num_instances` / `num_io_ops` (builds in progress) follow it.
    fn apply_server(&mut self, r: &Records, id: &str) {
        let now = r.servers.get(id).and_then(|s| {
            let row = self.fleet.index_of(s.host.as_deref()?)?;
            Some((row, s.vm_state == "building"))
        });
        let before = self.servers.get(id).copied();
        if before == now {
            return;
        }
        let uuid = quiver_engine::request::parse_uuid(id);
        if let Some((row, building)) = before {
            let mut s = self.fleet.hoststate(row);
            s[3] -= 1;
            s[4] -= building as i32;
            self.fleet.set_hoststate(row, s);
        }
        if let Some((row, building)) = now {
            let mut s = self.fleet.hoststate(row);
            s[3] += 1;
            s[4] += building as i32;
            self.fleet.set_hoststate(row, s);
            self.servers.insert(id.to_owned(), (row, building));
        } else {
            self.servers.remove(id);
        }
        if let Some(u) = uuid {
            self.fleet.place_instance(u, now.map(|(row, _)| row));
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
        Service {
            id: 1,
            uuid: format!("svc-{host}"),
            host: host.into(),
            disabled: false,
            disabled_reason: None,
            forced_down: false,
            created_at: String::new(),
            updated_at: String::new(),
            last_seen: unix_now(),
            compute_node_id: 1,
            compute_node_uuid: rp.into(),
            hypervisor: quiver_compute_agent::HostInfo {
                nodename: host.into(),
                vcpus: 16,
                memory_mb: 32768,
                local_gb: 500,
                hypervisor_type: "fake".into(),
                hypervisor_version: 1,
                cpu_info: "{}".into(),
                cpu_features: vec![],
            },
            agent_url: None,
        }
    }

    fn server(id: &str, host: Option<String>, vm_state: &str) -> Server {
        Server {
            id: id.into(),
            name: id.into(),
            project_id: "p".into(),
            user_id: "u".into(),
            flavor: Flavor {
                id: "f".into(),
                name: "f".into(),
                vcpus: 1,
                ram: 512,
                disk: 1,
                ephemeral: 0,
                swap: 0,
                rxtx_factor: 1.0,
                is_public: true,
                description: None,
                extra_specs: Default::default(),
                created_at: String::new(),
            },
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

    #[test]
    fn random_writes_keep_the_live_fleet_equal_to_a_fresh_load() {
        for seed in 0..6u64 {
            let dir = tempfile::tempdir().expect("tempdir");
            let placement = quiver_placement::Placement::open(dir.path(), Durability::Process).expect("placement");
            let mut r = Records::open(dir.path()).expect("records");
            let mut live = LiveFleet::default();
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
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
                let mut fresh = LiveFleet::default();
                fresh.catch_up(&placement, &r).expect("load");
                assert_eq!(hosts(&live.fleet), hosts(&fresh.fleet), "seed {seed}, step {step}");
                let placed = |f: &Fleet| -> BTreeMap<u128, String> {
                    f.instances.iter().map(|(&u, &h)| (u, f.name(h as usize).to_owned())).collect()
                };
                assert_eq!(placed(&live.fleet), placed(&fresh.fleet), "seed {seed}, step {step}");
            }
            assert!(live.fleet.live_len() > 0, "the sequence built some hosts");
        }
    }
}
