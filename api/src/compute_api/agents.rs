//! The controller's side of the agents: registration (compute service,
//! root resource provider with inventory, traits and aggregates),
//! heartbeats, and the reconcile that keeps Placement, the records and the
//! hypervisors in agreement. In process through [`Controller`]; over HTTP
//! through [`super::agents_http`], which translates and calls in.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use quiver_compute_agent::controller::{Controller, ControllerError};
use quiver_compute_agent::protocol::{HostReport, ReconcileReply, Registered};
use quiver_compute_agent::{GuestInfo, HostInfo};
use quiver_placement::model::Inventory;

use super::ComputeApi;
use super::conductor::{unclaim, update};
use super::records::{Fault, Service, now_iso, parse_iso, unix_now};

/// A server built this recently is left alone by the reconcile: the
/// agent's guest list may predate it.
const RECONCILE_GRACE_S: f64 = 5.0;

/// Traits Nova's compute puts on every compute node provider.
const COMPUTE_TRAITS: [&str; 2] = ["COMPUTE_NODE", "OWNER_NOVA"];

/// Sets a compute node provider's traits inside a Placement write (see
/// [`ComputeApi::sync_provider_traits`]).
fn set_compute_traits(
    st: &mut quiver_placement::State,
    rp: &str,
    reported: Option<&[String]>,
    disabled: bool,
) -> quiver_placement::error::Result<()> {
    let p = st.get_provider(rp)?;
    let generation = p.generation;
    let mut names: BTreeSet<String> = match reported {
        Some(r) => r.iter().cloned().collect(),
        None => p.traits.iter().map(|t| st.traits.name(*t).to_owned()).collect(),
    };
    names.extend(COMPUTE_TRAITS.iter().map(|s| s.to_string()));
    if disabled {
        names.insert("COMPUTE_STATUS_DISABLED".into());
    } else {
        names.remove("COMPUTE_STATUS_DISABLED");
    }
    let known: Vec<String> = names.into_iter().filter(|n| st.traits.get(n).is_some()).collect();
    st.set_provider_traits(rp, generation, &known).map(|_| ())
}

fn cerr(e: impl std::fmt::Display) -> ControllerError {
    ControllerError(e.to_string())
}

impl ComputeApi {
    /// Sets a compute node provider's traits: the hypervisor's, Nova's own,
    /// and `COMPUTE_STATUS_DISABLED` while the service is disabled.
    /// `reported: None` keeps the provider's other traits as they are.
    pub fn sync_provider_traits(&self, rp: &str, reported: Option<&[String]>, disabled: bool) -> Result<(), String> {
        self.placement.write(|st| set_compute_traits(st, rp, reported, disabled)).map_err(|e| e.detail)
    }

    /// Puts a compute node provider in the Placement aggregates of the Nova
    /// aggregates its host belongs to.
    pub fn sync_provider_aggregates(&self, host: &str, rp: &str) -> Result<(), String> {
        let aggs = self.host_aggregate_uuids(host);
        self.placement.write(|st| st.set_provider_aggregates(rp, &aggs, None).map(|_| ())).map_err(|e| e.detail)
    }

    /// Uuids of the Nova aggregates `host` belongs to (its provider's
    /// Placement aggregates).
    fn host_aggregate_uuids(&self, host: &str) -> Vec<String> {
        self.records()
            .aggregates
            .values()
            .filter(|a| a.hosts.iter().any(|h| h == host))
            .map(|a| a.uuid.clone())
            .collect()
    }

    fn register_host(&self, report: &HostReport) -> Result<Registered, String> {
        let now = unix_now();
        let (svc, fresh) = {
            let mut r = self.records_mut();
            match r.services.get(&report.host) {
                Some(old) => (old.clone(), false),
                None => {
                    let id = r.next_id("service");
                    let svc = Service {
                        id,
                        uuid: uuid::Uuid::new_v4().to_string(),
                        host: report.host.clone(),
                        disabled: false,
                        disabled_reason: None,
                        forced_down: false,
                        created_at: now_iso(),
                        updated_at: now_iso(),
                        last_seen: now,
                        compute_node_id: id,
                        compute_node_uuid: uuid::Uuid::new_v4().to_string(),
                        hypervisor: report.info.clone(),
                        agent_url: report.agent_url.clone(),
                    };
                    // Recorded at once, under the records' lock: the id is
                    // taken before another replica can hand it out too.
                    r.save(&svc).map_err(|e| e.to_string())?;
                    r.services.insert(svc.host.clone(), svc.clone());
                    (svc, true)
                }
            }
        };
        let rp = svc.compute_node_uuid.clone();
        let name = report.info.nodename.clone();
        let inventory: Vec<(String, Inventory)> =
            report.inventory.iter().map(|i| (i.resource_class.clone(), i.inventory.clone())).collect();
        let aggs = self.host_aggregate_uuids(&report.host);
        // One Placement transaction: provider, inventory, traits, aggregates.
        let mut inventory_refused = None;
        self.placement
            .write(|st| {
                if st.provider_by_uuid(&rp).is_none() {
                    st.create_provider(rp.clone(), name.clone(), None)?;
                }
                // Custom classes and traits the node reports (provider config
                // files) are created, as Nova's report client does.
                for (rc, _) in &inventory {
                    if rc.starts_with("CUSTOM_") {
                        st.ensure_class(rc)?;
                    }
                }
                for t in report.traits.iter().filter(|t| t.starts_with("CUSTOM_")) {
                    st.ensure_trait(t);
                }
                let generation = st.get_provider(&rp)?.generation;
                // Validated before it changes anything: a refusal (inventory
                // in use) keeps the old inventory, as Nova's resource tracker does.
                if let Err(e) = st.set_inventories(&rp, generation, &inventory, false) {
                    inventory_refused = Some(e.detail);
                }
                set_compute_traits(st, &rp, Some(&report.traits), svc.disabled)?;
                st.set_provider_aggregates(&rp, &aggs, None).map(|_| ())
            })
            .map_err(|e| e.detail)?;
        if let Some(e) = inventory_refused {
            tracing::warn!(host = %report.host, error = %e, "inventory not updated");
        }
        let mut svc = svc;
        svc.hypervisor = HostInfo { ..report.info.clone() };
        svc.agent_url = report.agent_url.clone();
        svc.last_seen = now;
        svc.updated_at = now_iso();
        {
            let mut r = self.records_mut();
            r.save(&svc).map_err(|e| e.to_string())?;
            r.services.insert(svc.host.clone(), svc.clone());
        }
        if let Some(url) = &report.agent_url {
            let client = quiver_compute_agent::client::AgentClient::new(url).map_err(|e| e.to_string())?;
            self.agents_mut().insert(report.host.clone(), Arc::new(client));
        }
        tracing::info!(host = %report.host, rp = %rp, new = fresh, "compute service registered");
        Ok(Registered { compute_node_uuid: rp, disabled: svc.disabled })
    }

    fn reconcile_host(&self, host: &str, guests: &[GuestInfo]) -> Result<ReconcileReply, String> {
        let now = unix_now();
        let mut in_flight: HashSet<String> = self.in_flight().clone();
        {
            let r = self.records();
            // On shared records, builds other replicas run count too.
            if r.is_shared() {
                in_flight.extend(r.servers.values().filter(|s| s.building_recently(now)).map(|s| s.id.clone()));
            }
            // A server being moved to or from this host may have a guest
            // and allocations on both hosts, and its migration's consumer
            // holds the source's: all of them are the move's until it ends.
            // (The destination is known only once the move lands, so every
            // moving server counts, on every host.)
            for m in r.migrations.values().filter(|m| super::moves::UNFINISHED.contains(&m.status.as_str())) {
                in_flight.insert(m.instance_uuid.clone());
                in_flight.insert(m.uuid.clone());
            }
        }
        let have: HashSet<&str> = guests.iter().map(|g| g.uuid.as_str()).collect();
        let recent = |launched: &Option<String>| {
            launched.as_deref().and_then(parse_iso).is_some_and(|t| now - t < RECONCILE_GRACE_S)
        };
        let mut reply = ReconcileReply::default();
        let mut lost = Vec::new();
        let rp;
        {
            let r = self.records();
            let Some(svc) = r.services.get(host) else {
                return Err(format!("host {host} is not registered"));
            };
            rp = svc.compute_node_uuid.clone();
            for g in guests {
                let owned = r
                    .servers
                    .get(&g.uuid)
                    .is_some_and(|s| s.host.as_deref() == Some(host) && s.task_state.as_deref() != Some("deleting"));
                if !owned && !in_flight.contains(&g.uuid) {
                    reply.destroy.push(g.uuid.clone());
                }
            }
            for s in r.servers.values() {
                if s.host.as_deref() == Some(host)
                    && !in_flight.contains(&s.id)
                    && !have.contains(s.id.as_str())
                    && matches!(s.vm_state.as_str(), "active" | "stopped" | "building")
                    && s.task_state.as_deref() != Some("deleting")
                    && !recent(&s.launched_at)
                {
                    lost.push(s.id.clone());
                }
            }
        }
        super::orphans::recover(self, host, &rp, &have, &in_flight, now);
        for id in &lost {
            tracing::warn!(server = %id, host, "guest gone from the hypervisor; server set to ERROR");
            unclaim(self, id);
            // Through `update`: a delete that arrived since the scan above
            // keeps its `deleting` and is carried out.
            update(self, id, |s| {
                s.vm_state = "error".into();
                s.task_state = None;
                s.power_state = 0;
                s.fault = Some(Fault {
                    code: 500,
                    message: format!("The guest of instance {id} is gone from the hypervisor on {host}."),
                    details: "found by the compute agent's reconcile (agent or hypervisor restarted?)".into(),
                    created: now_iso(),
                });
            });
        }
        // Allocations against this node that no live guest explains.
        let consumers: Vec<String> = self.placement.read(|st| {
            st.provider_by_uuid(&rp)
                .map(|p| st.allocations_on(p.id).keys().map(|c| c.to_string()).collect())
                .unwrap_or_default()
        });
        let stale: Vec<String> = {
            let r = self.records();
            consumers
                .into_iter()
                .filter(|c| !in_flight.contains(c))
                .filter(|c| match r.servers.get(c) {
                    Some(s) => {
                        s.host.as_deref() != Some(host)
                            || (!have.contains(c.as_str()) && !recent(&s.launched_at) && s.vm_state != "building")
                            || s.vm_state == "error"
                    }
                    None => true,
                })
                .collect()
        };
        for c in &stale {
            tracing::warn!(consumer = %c, host, "removing allocations no guest explains");
            unclaim(self, c);
        }
        // An evacuated server's source came back: its guest is destroyed
        // (above) and the migration's allocations here are gone.
        let evacuated: Vec<_> = {
            let r = self.records();
            let done = |m: &&super::records::Migration| m.migration_type == "evacuation" && m.status == "done";
            r.migrations.values().filter(done).filter(|m| m.source_compute == host).cloned().collect()
        };
        for m in evacuated {
            unclaim(self, &m.uuid);
            super::moves::set_migration(self, m.id, |x| x.status = "completed".into());
        }
        super::moves::confirm_unconfirmed(self, host, now);
        Ok(reply)
    }
}

impl Controller for ComputeApi {
    fn register(&self, report: &HostReport) -> Result<Registered, ControllerError> {
        self.register_host(report).map_err(cerr)
    }

    fn heartbeat(&self, host: &str) -> Result<(), ControllerError> {
        // Not under the records' lock: a heartbeat changes no document
        // (its own table, newest wins).
        let mut r = self.records.lock().unwrap_or_else(|p| p.into_inner());
        if r.heartbeat(host, unix_now()) { Ok(()) } else { Err(cerr(format!("host {host} is not registered"))) }
    }

    fn reconcile(&self, host: &str, guests: &[GuestInfo]) -> Result<ReconcileReply, ControllerError> {
        self.reconcile_host(host, guests).map_err(cerr)
    }
}
