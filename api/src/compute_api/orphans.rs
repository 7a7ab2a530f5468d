//! Work a stopped conductor left half done. Here the conductor drives a
//! build and a delete itself (in Nova the compute service finishes them
//! after an RPC cast), so a `kill -9` of `quiver serve` between the
//! acknowledgement and the end leaves a server in BUILD or `deleting`
//! with nobody working on it. Each agent's reconcile finishes that work,
//! as nova-compute's `_init_instance` does for its instances at start-up:
//! a delete is carried out, a build whose guest runs and whose claim holds
//! becomes ACTIVE, one that never reached a host goes to ERROR.

use std::collections::HashSet;

use super::ComputeApi;
use super::conductor::{delete_now, unclaim, update};
use super::records::{Fault, Server, now_iso, parse_iso};

/// Seconds a record must have stood still before it counts as left
/// behind (the window between writing a record and the conductor taking
/// it on).
const ORPHAN_AFTER_S: f64 = 5.0;

/// What to do with one left-behind server.
enum Recovery {
    Delete,
    Activate,
    Fail(&'static str),
}

/// Finishes the left-behind work of servers on `host` (and of builds that
/// never reached a host). `guests`: what the host's hypervisor runs;
/// `in_flight`: the servers some conductor is still working on.
pub(super) fn recover(
    api: &ComputeApi,
    host: &str,
    rp: &str,
    guests: &HashSet<&str>,
    in_flight: &HashSet<String>,
    now: f64,
) {
    let stale = |s: &Server| parse_iso(&s.updated).is_some_and(|t| now - t >= ORPHAN_AFTER_S);
    let todo: Vec<(String, Recovery)> = {
        let r = api.records();
        r.servers
            .values()
            .filter(|s| !in_flight.contains(&s.id) && stale(s))
            .filter_map(|s| {
                let here = s.host.as_deref() == Some(host);
                let recovery = if s.task_state.as_deref() == Some("deleting") && (here || s.host.is_none()) {
                    Recovery::Delete
                } else if s.vm_state != "building" {
                    return None;
                } else if s.host.is_none() {
                    Recovery::Fail("The conductor stopped before the build was placed on a host.")
                } else if here && guests.contains(s.id.as_str()) {
                    let claimed = api.placement.read(|st| {
                        st.provider_by_uuid(rp).is_some_and(|p| st.allocations_on(p.id).keys().any(|c| *c == s.id))
                    });
                    if claimed {
                        Recovery::Activate
                    } else {
                        Recovery::Fail("The guest was built but the claim for it is gone.")
                    }
                } else {
                    // On this host with no guest: the reconcile's lost-guest
                    // check sets it to ERROR and frees its claim.
                    return None;
                };
                Some((s.id.clone(), recovery))
            })
            .collect()
    };
    for (id, recovery) in todo {
        match recovery {
            Recovery::Delete => {
                tracing::warn!(server = %id, host, "finishing a delete the conductor left behind");
                delete_now(api, &id);
            }
            Recovery::Activate => {
                tracing::warn!(server = %id, host, "a build the conductor left behind has its guest: ACTIVE");
                update(api, &id, |s| {
                    s.vm_state = "active".into();
                    s.task_state = None;
                    s.power_state = 1;
                    s.launched_at.get_or_insert_with(now_iso);
                    s.updated = now_iso();
                });
            }
            Recovery::Fail(why) => {
                tracing::warn!(server = %id, host, reason = why, "a build the conductor left behind: ERROR");
                unclaim(api, &id);
                update(api, &id, |s| {
                    s.vm_state = "error".into();
                    s.task_state = None;
                    s.power_state = 0;
                    s.fault = Some(Fault {
                        code: 500,
                        message: why.into(),
                        details: "found by a compute agent's reconcile after the controller restarted".into(),
                        created: now_iso(),
                    });
                    s.updated = now_iso();
                });
            }
        }
    }
}
