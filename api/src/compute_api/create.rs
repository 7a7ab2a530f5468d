//! Creating servers, apart from HTTP: the quota check (as many as fit
//! between `min_count` and `max_count`), the records in BUILD (the group's
//! new members with them, as nova-api does), then the conductor's build in
//! the background. `POST /servers` parses and validates the body, then
//! calls [`ComputeApi::create_servers`].

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::http::NovaError;
use super::records::{Server, now_iso};
use super::{ComputeApi, conductor, instance_actions, quotas};

/// What a create request asks for, validated.
pub struct CreateRequest {
    pub name: String,
    pub flavor: super::records::Flavor,
    pub image_id: Option<String>,
    pub availability_zone: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub hints: BTreeMap<String, Value>,
    pub key_name: Option<String>,
    pub description: Option<String>,
    pub min_count: u32,
    pub max_count: u32,
    pub return_reservation_id: bool,
    /// The API request's id: each server's `create` action is filed under it.
    pub request_id: String,
}

/// The servers one create call recorded.
#[derive(Clone, Debug)]
pub struct Created {
    /// Server ids, in creation order.
    pub ids: Vec<String>,
    /// `reservation_id` shared by them.
    pub reservation_id: String,
}

impl ComputeApi {
    /// Records the servers of `req` for `project_id`/`user_id` in BUILD and
    /// starts building them.
    ///
    /// # Errors
    /// Over quota (403), or the records cannot be written (500).
    pub fn create_servers(
        self: &Arc<Self>,
        project_id: &str,
        user_id: &str,
        req: &CreateRequest,
    ) -> Result<Created, NovaError> {
        // Quota: as many as fit between min_count and max_count (Nova's
        // `check_num_instances_quota`), checked under the records' write
        // lock (all replicas') that the insert below holds too.
        let mut r = self.records_mut();
        let n = quotas::instances_allowed(self, &r, project_id, &req.flavor, req.min_count, req.max_count)?;
        let reservation_id = format!("r-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let now = now_iso();
        let group = req.hints.get("group").and_then(|g| {
            g.as_str().or_else(|| g.as_array().and_then(|a| a.first()).and_then(Value::as_str)).map(str::to_owned)
        });
        let servers: Vec<Server> = (0..n)
            .map(|i| Server {
                id: uuid::Uuid::new_v4().to_string(),
                name: if n > 1 { format!("{}-{}", req.name, i + 1) } else { req.name.clone() },
                project_id: project_id.to_owned(),
                user_id: user_id.to_owned(),
                flavor: req.flavor.clone(),
                image_id: req.image_id.clone(),
                availability_zone: req.availability_zone.clone(),
                metadata: req.metadata.clone(),
                hints: req.hints.clone(),
                key_name: req.key_name.clone(),
                description: req.description.clone(),
                reservation_id: reservation_id.clone(),
                vm_state: "building".into(),
                task_state: Some("scheduling".into()),
                power_state: 0,
                host: None,
                node: None,
                fault: None,
                group: group.clone(),
                created: now.clone(),
                updated: now.clone(),
                launched_at: None,
                actions: Vec::new(),
                requested_host: None,
            })
            .collect();
        let mut servers = servers;
        for s in &mut servers {
            let by = instance_actions::Requester { request_id: &req.request_id, user_id, project_id };
            instance_actions::begin(s, "create", by);
        }
        let ids: Vec<String> = servers.iter().map(|s| s.id.clone()).collect();
        {
            // The group's new members are recorded with the servers, as nova-api does.
            let mut grp = group.as_ref().and_then(|g| r.groups.get(g).cloned());
            if let Some(g) = grp.as_mut() {
                g.members.extend(ids.iter().cloned());
                r.save(g)?;
            }
            r.save_all(&servers.iter().collect::<Vec<_>>())?;
            if let Some(g) = grp {
                r.groups.insert(g.id.clone(), g);
            }
            for s in servers {
                r.put_server(s);
            }
            drop(r);
        }
        self.metrics.boots_requested.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        conductor::start_build(self, ids.clone());
        Ok(Created { ids, reservation_id })
    }
}

#[cfg(test)]
mod tests {
    //! The control plane with no HTTP in the loop: Placement, the records and
    //! an in-process agent on narrow handles. Hosts register (one Placement
    //! transaction each), servers are created and built, and Placement holds
    //! exactly their allocations on the hosts the records name.

    use std::time::{Duration, Instant};

    use quiver_compute_agent::controller::Controller;
    use quiver_compute_agent::fake_driver::FakeDriver;
    use quiver_compute_agent::protocol::AgentApi;
    use quiver_compute_agent::{Agent, AgentConfig, ComputeDriver};
    use quiver_placement::Placement;
    use quiver_placement::store::Durability;

    use super::*;
    use crate::compute_api::records::Flavor;
    use crate::compute_api::{ComputeConfig, QuotaDefaults};

    #[test]
    fn servers_boot_through_the_control_plane_without_http() {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let _in_rt = rt.enter();
        let dir = tempfile::tempdir().expect("tempdir");
        let placement = Arc::new(Placement::open(dir.path(), Durability::Process).expect("placement"));
        let config = ComputeConfig {
            scheduler: quiver_engine::SchedulerConfig::default(),
            default_availability_zone: "nova".into(),
            quota: QuotaDefaults::default(),
            shelved_offload_time: 0,
            live_migration_bandwidth: 0,
            resize_confirm_window: 0,
            precache_concurrency: 1,
        };
        let api = Arc::new(ComputeApi::open(Arc::clone(&placement), dir.path().into(), config, 7).expect("open"));
        let hosts: Vec<(String, Arc<dyn ComputeDriver>)> = (1..=3)
            .map(|i| {
                let h = format!("c{i}");
                let d: Arc<dyn ComputeDriver> = Arc::new(FakeDriver::new(&h, 4, 8192, 100, Duration::ZERO));
                (h, d)
            })
            .collect();
        // RAM is the binding limit: 8,192 MiB at ratio 1.0, nothing reserved,
        // so two 4,096 MiB servers per host.
        let conf =
            AgentConfig { reserved_host_memory_mb: 0, ram_allocation_ratio: Some(1.0), ..AgentConfig::default() };
        let agent = Arc::new(Agent::new(hosts, conf, None));
        for h in agent.host_names() {
            api.attach_local_agent(h, Arc::clone(&agent) as Arc<dyn AgentApi>);
        }
        agent.register(Arc::clone(&api) as Arc<dyn Controller>).expect("register");
        let req = CreateRequest {
            name: "vm".into(),
            flavor: Flavor::for_test("m1.small", 2, 4096, 10),
            image_id: None,
            availability_zone: None,
            metadata: BTreeMap::new(),
            hints: BTreeMap::new(),
            key_name: None,
            description: None,
            min_count: 6,
            max_count: 6,
            return_reservation_id: false,
            request_id: "req-test".into(),
        };
        let created = api.create_servers("p", "u", &req).expect("create");
        assert_eq!(created.ids.len(), 6);
        let started = Instant::now();
        let servers = loop {
            let done: Vec<Server> = {
                let r = api.records();
                created
                    .ids
                    .iter()
                    .filter_map(|id| r.servers.get(id).cloned())
                    .filter(|s| s.vm_state != "building")
                    .collect()
            };
            if done.len() == created.ids.len() {
                break done;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "builds did not finish");
            std::thread::sleep(Duration::from_millis(20));
        };
        let r = api.records();
        let mut per_host: BTreeMap<String, i64> = BTreeMap::new();
        for s in &servers {
            assert_eq!(s.vm_state, "active", "{:?}", s.fault);
            *per_host.entry(s.host.clone().expect("a host")).or_default() += 4096;
        }
        // Exactly two servers on each host, and Placement's usage on each
        // compute node says the same.
        for (host, ram_mb) in &per_host {
            let rp = &r.services[host].compute_node_uuid;
            let used = placement.read(|st| {
                let p = st.provider_by_uuid(rp).expect("provider");
                let ram = st.classes.get("MEMORY_MB").expect("MEMORY_MB");
                p.inventory(ram).map_or(0, |i| i.used)
            });
            assert_eq!((host.as_str(), used), (host.as_str(), *ram_mb));
        }
        assert_eq!(per_host.values().sum::<i64>(), 6 * 4096);
        assert_eq!(per_host.len(), 3);
        drop(r);
        // The seventh does not fit: No valid host, and nothing is allocated.
        let one = CreateRequest { min_count: 1, max_count: 1, ..req };
        let late = api.create_servers("p", "u", &one).expect("create");
        let id = &late.ids[0];
        let started = Instant::now();
        let s = loop {
            let s = api.records().servers.get(id).cloned().expect("recorded");
            if s.vm_state != "building" {
                break s;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "the build did not finish");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(s.vm_state, "error");
        assert!(s.fault.as_ref().is_some_and(|f| f.message.starts_with("No valid host")), "{:?}", s.fault);
        assert!(placement.read(|st| !st.consumers.contains_key(id)), "a failed boot holds no allocation");

        // A delete asked for while such a build runs (as the API's DELETE
        // does: `deleting` recorded, then the conductor told) is carried
        // out even though the build ends in ERROR: the failure must not
        // clear `deleting` (regression: the faults test saw an
        // acknowledged delete lost this way).
        let doomed = api.create_servers("p", "u", &one).expect("create");
        let id = doomed.ids[0].clone();
        {
            let mut r = api.records_mut();
            let mut s = r.servers.get(&id).cloned().expect("recorded");
            s.task_state = Some("deleting".into());
            r.save(&s).expect("save");
            r.put_server(s);
        }
        conductor::start_delete(&api, id.clone());
        let started = Instant::now();
        while api.records().servers.contains_key(&id) {
            let s = api.records().servers.get(&id).cloned();
            assert!(started.elapsed() < Duration::from_secs(30), "acknowledged delete lost: {s:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(placement.read(|st| !st.consumers.contains_key(&id)), "a deleted server holds no allocation");
    }
}
