//! Shelving (Nova's `shelve`, `shelveOffload`, `unshelve`): a shelved
//! server's guest is powered off and keeps its host and allocations until
//! it is offloaded (`[DEFAULT] shelved_offload_time` later, at once by
//! default), which destroys the guest and frees the host in Placement.
//! Unshelving an offloaded server schedules and builds it again, as a boot
//! does; if nothing takes it, it stays SHELVED_OFFLOADED with the fault.

use std::sync::Arc;
use std::time::Duration;

use quiver_compute_agent::protocol::Action;

use super::ComputeApi;
use super::conductor::{self, update};
use super::http::NovaError;
use super::instance_actions::{self, Requester};
use super::records::now_iso;

impl ComputeApi {
    /// Shelves server `id` (ACTIVE or SHUTOFF), in the background.
    ///
    /// # Errors
    /// The server's state does not allow it (409), or the records fail.
    pub fn shelve(self: &Arc<Self>, id: &str, by: Requester<'_>) -> Result<(), NovaError> {
        self.begin(id, "shelve", &["active", "stopped"], "shelving", by)?;
        let api = Arc::clone(self);
        let id = id.to_owned();
        tokio::task::spawn_blocking(move || shelve_now(&api, &id));
        Ok(())
    }

    /// Offloads a SHELVED server now, in the background.
    ///
    /// # Errors
    /// The server is not SHELVED (409), or the records fail.
    pub fn shelve_offload(self: &Arc<Self>, id: &str, by: Requester<'_>) -> Result<(), NovaError> {
        self.begin(id, "shelveOffload", &["shelved"], "shelving_offloading", by)?;
        let api = Arc::clone(self);
        let id = id.to_owned();
        tokio::task::spawn_blocking(move || offload_now(&api, &id));
        Ok(())
    }

    /// Unshelves server `id`: powers it on where it is (SHELVED), or
    /// schedules and builds it again (SHELVED_OFFLOADED), in `zone` if given
    /// (2.77+; `Some(None)` unpins it, 2.91+) and on `host` if given (2.91+,
    /// the scheduler still checks it).
    ///
    /// # Errors
    /// The server is not shelved, or a host is asked for a server that is
    /// not offloaded (409); an unknown zone or host, or a host outside the
    /// zone (400); the records fail.
    pub fn unshelve(
        self: &Arc<Self>,
        id: &str,
        zone: Option<Option<String>>,
        host: Option<String>,
        by: Requester<'_>,
    ) -> Result<(), NovaError> {
        let offloaded = self.records().servers.get(id).is_some_and(|s| s.vm_state == "shelved_offloaded");
        if host.is_some() && !offloaded {
            return Err(NovaError::conflict(format!(
                "The unshelve action with a host is only supported for a shelved offloaded server ({id})."
            )));
        }
        if offloaded && (zone.is_some() || host.is_some()) {
            let r = self.records();
            if let Some(Some(z)) = &zone
                && !super::zones(&r).contains(z)
            {
                return Err(NovaError::bad_request(format!("The requested availability zone is not available: {z}")));
            }
            if let Some(h) = &host {
                if !r.services.contains_key(h) {
                    return Err(NovaError::bad_request(format!("Compute host {h} could not be found.")));
                }
                let pinned = match &zone {
                    Some(z) => z.clone(),
                    None => r.servers.get(id).and_then(|s| s.availability_zone.clone()),
                };
                if let Some(z) = pinned.filter(|z| super::host_zone(&r, h) != *z) {
                    return Err(NovaError::bad_request(format!(
                        "Host {h} is not in the availability zone {z} the server is in."
                    )));
                }
            }
            drop(r);
            let mut r = self.records_mut();
            if let Some(mut s) = r.servers.get(id).cloned() {
                if let Some(z) = zone {
                    s.availability_zone = z;
                }
                s.requested_host = host;
                r.save(&s)?;
                r.put_server(s);
            }
        }
        self.begin(id, "unshelve", &["shelved", "shelved_offloaded"], "unshelving", by)?;
        let api = Arc::clone(self);
        let id = id.to_owned();
        if offloaded {
            conductor::start_build(&api, vec![id]);
        } else {
            tokio::task::spawn_blocking(move || power_on_in_place(&api, &id));
        }
        Ok(())
    }

    /// Checks the server's state, sets `task` and files action `action`.
    fn begin(&self, id: &str, action: &str, states: &[&str], task: &str, by: Requester<'_>) -> Result<(), NovaError> {
        let mut r = self.records_mut();
        let mut s = r.servers.get(id).cloned().ok_or_else(|| NovaError::not_found("Instance not found"))?;
        if !states.contains(&s.vm_state.as_str()) || s.task_state.is_some() {
            return Err(NovaError::conflict(format!(
                "Cannot '{action}' instance {id} while it is in {}",
                match &s.task_state {
                    Some(t) => format!("task_state {t}"),
                    None => format!("vm_state {}", s.vm_state),
                }
            )));
        }
        s.task_state = Some(task.into());
        s.updated = now_iso();
        instance_actions::begin(&mut s, action, by);
        r.save(&s)?;
        r.put_server(s);
        Ok(())
    }
}

fn shelve_now(api: &Arc<ComputeApi>, id: &str) {
    let Some(host) = api.records().servers.get(id).and_then(|s| s.host.clone()) else { return };
    let result = match api.agent(&host) {
        Some(agent) => agent.action(&host, id, Action::Stop).map(|_| ()).map_err(|e| e.to_string()),
        None => Err(format!("no agent is connected for host {host}")),
    };
    let ok = result.is_ok();
    update(api, id, |s| {
        instance_actions::event(
            s,
            "shelve",
            "compute_shelve_instance",
            Some(&host),
            result.as_ref().map(|_| ()).map_err(String::as_str),
        );
        s.task_state = None;
        if ok {
            s.vm_state = "shelved".into();
            s.power_state = 4;
        }
    });
    let delay = api.config.shelved_offload_time;
    if !ok || delay < 0 {
        return;
    }
    if delay > 0 {
        std::thread::sleep(Duration::from_secs(delay as u64));
    }
    // Still shelved (not unshelved meanwhile): offload.
    let still = {
        let mut r = api.records_mut();
        match r.servers.get(id).cloned().filter(|s| s.vm_state == "shelved" && s.task_state.is_none()) {
            Some(mut s) => {
                s.task_state = Some("shelving_offloading".into());
                r.save(&s).is_ok() && {
                    r.put_server(s);
                    true
                }
            }
            None => false,
        }
    };
    if still {
        offload_now(api, id);
    }
}

/// Destroys the guest and frees the host: SHELVED_OFFLOADED.
fn offload_now(api: &ComputeApi, id: &str) {
    let Some(host) = api.records().servers.get(id).and_then(|s| s.host.clone()) else { return };
    if let Some(agent) = api.agent(&host)
        && let Err(e) = agent.delete(&host, id)
    {
        // The agent's reconcile destroys it later: the record no longer
        // names the host.
        tracing::warn!(server = id, %host, error = %e, "cannot destroy the shelved guest");
    }
    conductor::unclaim(api, id);
    update(api, id, |s| {
        instance_actions::event(s, "shelve", "compute_shelve_offload_instance", Some(&host), Ok(()));
        s.vm_state = "shelved_offloaded".into();
        s.task_state = None;
        s.host = None;
        s.node = None;
        s.power_state = 4;
    });
}

fn power_on_in_place(api: &ComputeApi, id: &str) {
    let Some(host) = api.records().servers.get(id).and_then(|s| s.host.clone()) else { return };
    let result = match api.agent(&host) {
        Some(agent) => agent.action(&host, id, Action::Start).map_err(|e| e.to_string()),
        None => Err(format!("no agent is connected for host {host}")),
    };
    update(api, id, |s| {
        s.task_state = None;
        match &result {
            Ok(g) => {
                s.vm_state = "active".into();
                s.power_state = g.state.code();
                instance_actions::event(s, "unshelve", "compute_unshelve_instance", Some(&host), Ok(()));
            }
            Err(e) => instance_actions::event(s, "unshelve", "compute_unshelve_instance", Some(&host), Err(e)),
        }
    });
}
