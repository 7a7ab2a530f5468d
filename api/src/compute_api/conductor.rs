//! The boot flow of DESIGN.md section 2, after the API has recorded the
//! servers in BUILD: the engine's scheduler over the process's live
//! columnar fleet ([`super::live_fleet`], caught up with every committed
//! write before each decision), the claim in Placement (the authority: on a conflict the
//! next alternate is tried), dispatch to the chosen host's agent, and a
//! reschedule to an alternate when a build fails, up to `max_attempts`.
//! Deletes and power actions run here too.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use quiver_compute_agent::GuestSpec;
use quiver_compute_agent::protocol::Action;
use quiver_engine::request::{Flavor as EngineFlavor, Image as EngineImage};
use quiver_engine::{BootRequest, Decision, Fleet, Groups, Scheduler};
use quiver_placement::ops::{AllocationWriteKind, ConsumerWrite};
use serde_json::Value;

use super::live_fleet::LiveFleet;
use super::records::{Fault, Records, Server, now_iso};
use super::tree_candidates::{Allocations, tree_candidates};
use super::{ComputeApi, instance_actions};

/// The scheduler and the live fleet; one boot request schedules and claims
/// at a time (claims are fast; builds run outside the lock).
pub struct Conductor {
    state: std::sync::Mutex<SchedState>,
}

pub(super) struct SchedState {
    scheduler: Scheduler,
    live: LiveFleet,
    requests: usize,
}

impl SchedState {
    /// The scheduler (the rebuild check runs its image filters alone).
    pub(super) fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }
}

impl Conductor {
    pub fn new(scheduler: Scheduler) -> Self {
        Self { state: std::sync::Mutex::new(SchedState { scheduler, live: LiveFleet::default(), requests: 0 }) }
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, SchedState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A snapshot of the live fleet as the scheduler sees it now (for
/// `GET /v1/fleet` and `POST /v1/query`).
///
/// # Errors
/// A host the engine refuses.
pub fn snapshot_fleet(api: &ComputeApi) -> Result<Fleet, String> {
    let mut st = api.conductor.lock();
    catch_up(&mut st, api)?;
    Ok(api.placement.read_with_fleet(|_, f| f.clone()))
}

/// The engine's flavor for a recorded one.
pub(super) fn engine_flavor(f: &super::records::Flavor) -> EngineFlavor {
    EngineFlavor {
        name: f.name.clone(),
        flavorid: Some(f.id.clone()),
        id: None,
        vcpus: f.vcpus,
        memory_mb: f.ram,
        root_gb: f.disk,
        ephemeral_gb: f.ephemeral,
        swap: f.swap,
        extra_specs: f.extra_specs.clone(),
    }
}

/// The engine's request for a batch of servers from one create call.
pub(super) fn boot_request(r: &Records, servers: &[Server]) -> BootRequest {
    let s = &servers[0];
    let f = &s.flavor;
    let image = s.image_id.as_deref().and_then(|i| engine_image(r, i));
    let mut hints = s.hints.clone();
    hints.remove("group");
    if let Some(g) = &s.group {
        hints.insert("group".into(), Value::String(g.clone()));
    }
    BootRequest {
        id: Some(s.reservation_id.clone()),
        flavor: engine_flavor(f),
        image,
        project_id: Some(s.project_id.clone()),
        user_id: Some(s.user_id.clone()),
        availability_zone: s.availability_zone.clone(),
        scheduler_hints: hints,
        num_instances: servers.len() as u32,
        instance_uuids: servers.iter().map(|s| s.id.clone()).collect(),
        is_bfv: false,
    }
}

/// The engine's image for a recorded one (properties as Nova's strings).
pub(super) fn engine_image(r: &Records, id: &str) -> Option<EngineImage> {
    r.images.get(id).map(|img| EngineImage {
        id: Some(img.id.clone()),
        name: img.name.clone(),
        properties: img
            .properties
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())))
            .collect(),
    })
}

/// The request's server group, without the members being scheduled now
/// (the engine adds them, as nova-api did).
pub(super) fn groups_for(r: &Records, servers: &[Server]) -> Groups {
    let ids: Vec<&str> = servers.iter().map(|s| s.id.as_str()).collect();
    servers[0].group.as_deref().map(|g| engine_groups(r, g, &ids)).unwrap_or_default()
}

/// Server group `group` as the engine knows groups, without `placing`
/// (the members being scheduled now); empty when no such group.
pub(super) fn engine_groups(r: &Records, group: &str, placing: &[&str]) -> Groups {
    let Some(g) = r.groups.get(group) else {
        return Groups::default();
    };
    let mut eg = engine_group(g);
    eg.members.retain(|m| !placing.contains(&m.as_str()));
    Groups::new(&[eg]).unwrap_or_default()
}

/// The engine's server group for a recorded one, with all its members.
pub(super) fn engine_group(g: &super::records::ServerGroup) -> quiver_engine::ServerGroup {
    quiver_engine::ServerGroup {
        uuid: g.id.clone(),
        name: Some(g.name.clone()),
        policy: g.policy.clone(),
        rules: g.rules.clone(),
        members: g.members.clone(),
        project_id: Some(g.project_id.clone()),
        user_id: Some(g.user_id.clone()),
    }
}

/// Nova's "No valid host" fault text, with what each stage kept.
pub(super) fn no_valid_host(d: &Decision) -> String {
    let mut msg = "No valid host was found. There are not enough hosts available.".to_owned();
    match d.failed_stage.as_deref() {
        Some("placement") => msg.push_str(" Placement returned no allocation candidates for the flavor's resources."),
        _ => {
            if let Some(trace) = d.instances.last().and_then(|i| i.filter_trace.as_ref()) {
                let mut start = d.placement_candidates.unwrap_or(0);
                let parts: Vec<String> = trace
                    .iter()
                    .map(|(name, end)| {
                        let p = format!("'{name}: (start: {start}, end: {end})'");
                        start = *end;
                        p
                    })
                    .collect();
                msg.push_str(&format!(" Filter results: [{}]", parts.join(", ")));
            }
            if let Some(e) = &d.error {
                msg.push_str(&format!(" {e}"));
            }
        }
    }
    msg
}

/// Claims `allocations` for `s` (a new consumer: a second claim for the
/// same server fails rather than doubling it). The amounts come from the
/// same translation the scheduler's candidate query used, so the claim
/// allocates exactly what was checked (`resources:CUSTOM_GPU=1` and the
/// providers of numbered groups included).
fn claim(api: &ComputeApi, s: &Server, allocations: &Allocations) -> Result<(), String> {
    let w = ConsumerWrite {
        consumer: s.id.clone(),
        project: Some(s.project_id.clone()),
        user: Some(s.user_id.clone()),
        generation_check: Some(None),
        consumer_type: Some("INSTANCE".into()),
        allocations: allocations.clone(),
    };
    api.placement.write(|st| st.write_allocations(&[w], AllocationWriteKind::Put)).map_err(|e| e.detail)
}

/// Removes a server's allocations (none is fine).
pub fn unclaim(api: &ComputeApi, id: &str) {
    let _ = api.placement.write(|st| if st.consumers.contains_key(id) { st.delete_allocations(id) } else { Ok(()) });
}

/// Updates one server record if it still exists.
pub(super) fn update(api: &ComputeApi, id: &str, f: impl FnOnce(&mut Server)) -> Option<Server> {
    let mut r = api.records_mut();
    let mut s = r.servers.get(id).cloned()?;
    let deleting = s.task_state.as_deref() == Some("deleting");
    f(&mut s);
    if deleting {
        // A delete asked for meanwhile (on any replica) wins over every
        // outcome, a failed build included: the work finishes, then sees it.
        s.task_state = Some("deleting".into());
    }
    s.updated = now_iso();
    if let Err(e) = r.save(&s) {
        tracing::error!(server = id, error = %e, "cannot record server state");
    }
    r.put_server(s.clone());
    Some(s)
}

fn fail(api: &ComputeApi, id: &str, message: String, details: String) {
    tracing::warn!(server = id, %message, "build failed");
    api.metrics.boots_failed.fetch_add(1, Ordering::Relaxed);
    update(api, id, |s| {
        s.requested_host = None;
        if newest_action(s) == Some("unshelve") {
            // Nothing takes it: it stays offloaded, as Nova leaves it.
            instance_actions::event(s, "unshelve", "conductor_unshelve_instance", None, Err(&message));
            s.vm_state = "shelved_offloaded".into();
            s.task_state = None;
            s.host = None;
            s.node = None;
            return;
        }
        instance_actions::event(s, "create", "conductor_schedule_and_build_instances", None, Err(&message));
        s.vm_state = "error".into();
        s.task_state = None;
        s.power_state = 0;
        s.fault = Some(Fault { code: 500, message, details, created: now_iso() });
    });
}

/// The action a build runs for: `create`, or `unshelve` of an offloaded
/// server (which goes back to SHELVED_OFFLOADED if nothing takes it).
fn newest_action(s: &Server) -> Option<&str> {
    s.actions.last().map(|a| a.action.as_str())
}

/// Starts building `ids` (one create call) in the background.
pub fn start_build(api: &Arc<ComputeApi>, ids: Vec<String>) {
    api.in_flight().extend(ids.iter().cloned());
    let api = Arc::clone(api);
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        build(&api, &ids);
        let mut f = api.in_flight();
        for id in &ids {
            f.remove(id);
        }
        drop(f);
        for id in &ids {
            finish_if_deleting(&api, id);
        }
        api.metrics.build_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    });
}

/// What to claim on each chosen host and alternate of a decision.
pub(super) type Claims = BTreeMap<String, Allocations>;

/// Rounds of scheduling again for one server whose every candidate was
/// claimed first by someone else (another replica's conductor): Nova tries
/// every weighed host in turn; here each round sees the fleet as it is now.
const CLAIM_ROUNDS: usize = 3;

/// One decision for `req` over the live fleet, and the claim for each host
/// it names.
pub(super) fn decide(
    st: &mut SchedState,
    api: &ComputeApi,
    req: &BootRequest,
    groups: &mut Groups,
    restrict: Option<&dyn Fn(&Fleet) -> quiver_engine::Mask>,
) -> Result<(Decision, Claims), String> {
    st.requests += 1;
    let index = st.requests;
    let SchedState { scheduler, .. } = st;
    scheduler.trace = true;
    let rr = quiver_engine::resource_request::from_flavor(&req.flavor, req.is_bfv);
    // What to claim on each chosen host and alternate (not a map of
    // every service per request): the tree's allocation request, or
    // the unnumbered group on the compute node's provider.
    let unnumbered: Vec<(String, i64)> = match &rr {
        Ok(rr) => rr.unnumbered.resources.iter().map(|&(rc, n)| (rc.to_owned(), n)).collect(),
        Err(_) => Vec::new(),
    };
    // One pass over the live fleet: numbered groups go through
    // Placement's candidates first (Nova's flow), then the decision.
    api.placement.with_fleet(|state, fleet| {
        let tree = match rr.as_ref().ok().filter(|rr| !rr.numbered.is_empty()) {
            Some(rr) => Some(tree_candidates(state, fleet, rr)?),
            None => None,
        };
        // The hosts a move may go to (Nova's ignore_hosts and
        // requested_destination), with the tree's candidates.
        let within = match (restrict.map(|f| f(fleet)), tree.as_ref().map(|t| &t.within)) {
            (Some(mut m), Some(t)) => {
                m.and_assign(t);
                Some(m)
            }
            (Some(m), None) => Some(m),
            (None, t) => t.cloned(),
        };
        // A decision only: the fleet takes the usage from the claims
        // below when Placement commits them.
        let d = scheduler.select(fleet, groups, req, index, within.as_ref());
        let claims: Claims = d
            .instances
            .iter()
            .flat_map(|i| i.chosen.iter().chain(&i.alternates))
            .filter_map(|h| {
                let row = fleet.index_of(h)?;
                let a = match &tree {
                    Some(t) => t.allocations.get(&row)?.clone(),
                    None => vec![(state.uuid_of(row as u32).to_owned(), unnumbered.clone())],
                };
                Some((h.clone(), a))
            })
            .collect();
        Ok::<_, String>((d, claims))
    })
}

/// The hosts a request may land on (Nova's `requested_destination` and
/// `ignore_hosts`): `only` alone when given, else every host; never
/// `ignore`.
pub(super) fn destination_mask(fleet: &Fleet, only: Option<&str>, ignore: Option<&str>) -> quiver_engine::Mask {
    let mut mask = match only {
        Some(_) => quiver_engine::Mask::zeros(fleet.len()),
        None => quiver_engine::Mask::ones(fleet.len()),
    };
    if let Some(row) = only.and_then(|h| fleet.index_of(h)) {
        mask.set(row, true);
    }
    if let Some(row) = ignore.and_then(|h| fleet.index_of(h)) {
        mask.set(row, false);
    }
    mask
}

/// Brings Placement (other replicas' commits) and the records into the
/// live fleet.
pub(super) fn catch_up(st: &mut SchedState, api: &ComputeApi) -> Result<(), String> {
    api.placement.ensure_fresh().map_err(|e| e.detail)?;
    api.ensure_records_fresh().map_err(|e| e.to_string())?;
    let r = api.records();
    st.live.catch_up(&api.placement, &r)
}

/// Claims the first of `hosts` that can still be claimed, dropping the
/// ones that cannot.
fn claim_first(api: &ComputeApi, s: &Server, hosts: &mut Vec<(String, Allocations)>) -> bool {
    while !hosts.is_empty() {
        match claim(api, s, &hosts[0].1) {
            Ok(()) => return true,
            Err(e) => {
                tracing::info!(server = %s.id, host = %hosts[0].0, error = %e, "claim failed; next alternate");
                hosts.remove(0);
            }
        }
    }
    false
}

/// Schedules, claims and dispatches the servers of one create call.
fn build(api: &Arc<ComputeApi>, ids: &[String]) {
    // 1. schedule and claim, one request at a time
    let mut placed: Vec<(Server, Vec<(String, Allocations)>)> = Vec::new(); // server, [(host, claim)] chosen first
    {
        let mut st = api.conductor.lock();
        let servers: Vec<Server> = {
            let r = api.records();
            ids.iter().filter_map(|i| r.servers.get(i).cloned()).collect()
        };
        if servers.is_empty() {
            return;
        }
        if let Err(e) = catch_up(&mut st, api) {
            drop(st);
            for s in &servers {
                fail(api, &s.id, "No valid host was found. ".into(), format!("cannot update the fleet: {e}"));
            }
            return;
        }
        let (req, mut groups) = {
            let r = api.records();
            (boot_request(&r, &servers), groups_for(&r, &servers))
        };
        // An unshelve to a named host (2.91): that host alone, still
        // through the filters.
        let requested = servers[0].requested_host.clone();
        let only = |fleet: &Fleet| destination_mask(fleet, requested.as_deref(), None);
        let restrict: Option<&dyn Fn(&Fleet) -> quiver_engine::Mask> = requested.is_some().then_some(&only);
        let (d, claims) = match decide(&mut st, api, &req, &mut groups, restrict) {
            Ok(v) => v,
            Err(e) => {
                drop(st);
                for s in &servers {
                    fail(api, &s.id, format!("No valid host was found. {e}"), "Placement refused the request".into());
                }
                return;
            }
        };
        if d.status != "ok" {
            drop(st);
            let msg = no_valid_host(&d);
            for s in &servers {
                fail(api, &s.id, msg.clone(), format!("status {} at stage {:?}", d.status, d.failed_stage));
            }
            return;
        }
        let max_attempts = api.config.scheduler.max_attempts.max(1);
        let hosts_of =
            |inst: &quiver_engine::scheduler::InstanceDecision, claims: &Claims| -> Vec<(String, Allocations)> {
                inst.chosen
                    .iter()
                    .chain(&inst.alternates)
                    .filter_map(|h| claims.get(h).map(|a| (h.clone(), a.clone())))
                    .take(max_attempts)
                    .collect()
            };
        for (s, inst) in servers.into_iter().zip(&d.instances) {
            // The claim is the authority: on a conflict, the next alternate.
            let mut hosts = hosts_of(inst, &claims);
            let mut claimed = claim_first(api, &s, &mut hosts);
            // Every candidate taken meanwhile (by another replica): schedule
            // this one again on the fleet as it is now. Not for a group
            // member: its peers chosen above are not on their hosts yet.
            let mut round = 0;
            while !claimed && s.group.is_none() && round < CLAIM_ROUNDS {
                round += 1;
                if catch_up(&mut st, api).is_err() {
                    break;
                }
                let one = {
                    let r = api.records();
                    boot_request(&r, std::slice::from_ref(&s))
                };
                match decide(&mut st, api, &one, &mut Groups::default(), None) {
                    Ok((d, claims)) if d.status == "ok" => {
                        hosts = d.instances.first().map(|i| hosts_of(i, &claims)).unwrap_or_default();
                        claimed = claim_first(api, &s, &mut hosts);
                    }
                    _ => break,
                }
            }
            if claimed {
                placed.push((s, hosts));
            } else {
                fail(
                    api,
                    &s.id,
                    "No valid host was found. Exhausted all hosts available for claiming resources.".into(),
                    String::new(),
                );
            }
        }
    }
    // 2. dispatch each to its host's agent; reschedule on failure
    for (s, hosts) in placed {
        dispatch(api, s, hosts);
    }
}

/// What an agent needs to build `s`'s guest (its flavor, its image).
pub(super) fn guest_spec(api: &ComputeApi, s: &Server) -> GuestSpec {
    let image_path = s.image_id.as_ref().map(|i| api.image_path(i)).filter(|p| p.exists());
    GuestSpec {
        uuid: s.id.clone(),
        display_name: s.name.clone(),
        flavor_name: s.flavor.name.clone(),
        vcpus: s.flavor.vcpus,
        memory_mb: s.flavor.ram as u64,
        root_gb: s.flavor.disk as u64,
        image_id: s.image_id.clone(),
        image_path: image_path.map(|p| p.display().to_string()),
    }
}

/// Builds `s` on `hosts[0]` (already claimed), moving to the next
/// alternate on a build failure.
fn dispatch(api: &Arc<ComputeApi>, s: Server, mut hosts: Vec<(String, Allocations)>) {
    let mut errors = Vec::new();
    let spec = guest_spec(api, &s);
    loop {
        let (host, _rp) = hosts[0].clone();
        let node = api.records().services.get(&host).map(|svc| svc.hypervisor.nodename.clone());
        update(api, &s.id, |x| {
            x.host = Some(host.clone());
            x.node = node.clone();
            x.task_state = Some("spawning".into());
        });
        let result = match api.agent(&host) {
            Some(agent) => agent.build(&host, &spec).map_err(|e| e.to_string()),
            None => Err(format!("no agent is connected for host {host}")),
        };
        match result {
            Ok(guest) => {
                api.metrics.boots_active.fetch_add(1, Ordering::Relaxed);
                update(api, &s.id, |x| {
                    x.vm_state = "active".into();
                    x.task_state = None;
                    x.requested_host = None;
                    x.power_state = guest.state.code();
                    x.launched_at = Some(now_iso());
                    match newest_action(x) {
                        Some("unshelve") => {
                            instance_actions::event(x, "unshelve", "compute_unshelve_instance", Some(&host), Ok(()))
                        }
                        _ => {
                            instance_actions::event(x, "create", "compute_build_and_run_instance", Some(&host), Ok(()))
                        }
                    }
                });
                return;
            }
            Err(e) => {
                tracing::warn!(server = %s.id, %host, error = %e, "build failed; rescheduling");
                errors.push(format!("{host}: {e}"));
                unclaim(api, &s.id);
                hosts.remove(0);
                // the next alternate that can still be claimed
                let next = {
                    let _st = api.conductor.lock();
                    claim_first(api, &s, &mut hosts)
                };
                if !next {
                    update(api, &s.id, |x| {
                        x.host = None;
                        x.node = None;
                    });
                    fail(
                        api,
                        &s.id,
                        format!(
                            "Exceeded maximum number of retries. Exhausted all hosts available for retrying build failures for instance {}.",
                            s.id
                        ),
                        errors.join("; "),
                    );
                    return;
                }
            }
        }
    }
}

/// Starts deleting server `id` in the background.
pub fn start_delete(api: &Arc<ComputeApi>, id: String) {
    if api.in_flight().contains(&id) {
        // The build finishes first and then sees `deleting`.
        return;
    }
    let elsewhere = {
        let r = api.records();
        r.is_shared() && r.servers.get(&id).is_some_and(|s| s.building_recently(super::records::unix_now()))
    };
    if elsewhere {
        // Another replica's conductor is building it: it sees `deleting`
        // when the build ends, as this one would.
        return;
    }
    let api = Arc::clone(api);
    tokio::task::spawn_blocking(move || delete_now(&api, &id));
}

fn finish_if_deleting(api: &Arc<ComputeApi>, id: &str) {
    let deleting = api.records().servers.get(id).is_some_and(|s| s.task_state.as_deref() == Some("deleting"));
    if deleting {
        delete_now(api, id);
    }
}

/// Destroys the guest, removes the allocations and the record.
pub fn delete_now(api: &ComputeApi, id: &str) {
    let Some(s) = api.records().servers.get(id).cloned() else { return };
    if let Some(host) = &s.host
        && let Some(agent) = api.agent(host)
        && let Err(e) = agent.delete(host, id)
    {
        // Local delete, as Nova does when the compute is unreachable; the
        // agent's reconcile destroys the guest later.
        tracing::warn!(server = id, %host, error = %e, "agent delete failed; deleting locally");
    }
    unclaim(api, id);
    // A server deleted in VERIFY_RESIZE (or mid-move) has a guest and the
    // migration's allocations on its source too.
    let moving: Vec<super::records::Migration> = {
        let r = api.records();
        let unfinished = |m: &&super::records::Migration| super::moves::UNFINISHED.contains(&m.status.as_str());
        r.migrations.values().filter(|m| m.instance_uuid == id).filter(unfinished).cloned().collect()
    };
    for m in moving {
        if s.host.as_deref() != Some(m.source_compute.as_str())
            && let Some(agent) = api.agent(&m.source_compute)
        {
            let _ = agent.delete(&m.source_compute, id);
        }
        unclaim(api, &m.uuid);
        super::moves::set_migration(api, m.id, |x| x.status = "error".into());
    }
    let mut r = api.records_mut();
    if let Some(g) = s.group.as_ref().and_then(|g| r.groups.get(g).cloned()) {
        let mut g = g;
        g.members.retain(|m| m != id);
        if r.save(&g).is_ok() {
            r.groups.insert(g.id.clone(), g);
        }
    }
    if let Err(e) = r.remove("server", id) {
        tracing::error!(server = id, error = %e, "cannot delete server record");
        return;
    }
    r.drop_server(id);
}

/// Starts a power action in the background.
pub fn start_action(api: &Arc<ComputeApi>, id: String, action: Action) {
    let api = Arc::clone(api);
    tokio::task::spawn_blocking(move || {
        let Some(host) = api.records().servers.get(&id).and_then(|s| s.host.clone()) else { return };
        let result = match api.agent(&host) {
            Some(agent) => agent.action(&host, &id, action).map_err(|e| e.to_string()),
            None => Err(format!("no agent is connected for host {host}")),
        };
        update(&api, &id, |s| {
            s.task_state = None;
            let (name, event) = match action {
                Action::Stop => ("stop", "compute_stop_instance"),
                Action::Start => ("start", "compute_start_instance"),
                Action::Reboot { .. } => ("reboot", "compute_reboot_instance"),
            };
            instance_actions::event(s, name, event, Some(&host), result.as_ref().map(|_| ()).map_err(String::as_str));
            match &result {
                Ok(g) => {
                    s.power_state = g.state.code();
                    s.vm_state = if matches!(action, Action::Stop) { "stopped" } else { "active" }.into();
                }
                Err(e) => tracing::warn!(server = %s.id, error = %e, "power action failed"),
            }
        });
    });
}
