//! Moves, as Nova's conductor and compute service run them: cold
//! migration and resize (`migrate`, `resize`, then `confirmResize` or
//! `revertResize`), live migration (`os-migrateLive`: no VERIFY_RESIZE, the
//! source's allocations go when the guest runs on the destination) and
//! evacuation (`evacuate` from a host that is down: the source is asked
//! nothing and gives its allocations back when it returns):
//!
//! 1. the scheduler over the live fleet with the source host ignored (or
//!    only the requested host), the server group's policy kept;
//! 2. one Placement write (Nova's `POST /allocations`) that moves the
//!    instance's source allocations to the migration's consumer and claims
//!    the destination for the instance;
//! 3. the guest powered off on the source, built on the destination
//!    (VERIFY_RESIZE), the next alternate on a build failure;
//! 4. confirm drops the source's guest and the migration's allocations;
//!    revert drops the destination's guest and swaps the allocations back.
//!
//! A move that finds no host, or fails, leaves the server where it was,
//! with its allocations as before; the migration records `error`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use quiver_compute_agent::protocol::Action;
use quiver_placement::ops::{AllocationWriteKind, ConsumerWrite};
use serde_json::Value;

use super::ComputeApi;
use super::conductor::{self, Claims, boot_request, catch_up, decide, groups_for, guest_spec, no_valid_host, update};
use super::http::NovaError;
use super::instance_actions::{self, Requester};
use super::records::{Fault, Flavor, Migration, Records, Server, now_iso, parse_iso};
use super::tree_candidates::Allocations;

/// Migration states a move is still under way in (its consumer may hold
/// the source's allocations, and its guests may be on both hosts).
pub const UNFINISHED: [&str; 8] =
    ["pre-migrating", "migrating", "finished", "confirming", "reverting", "accepted", "preparing", "running"];

/// How often a live migration's memory copy reports its progress and
/// looks for an abort or a force-complete.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

const MIB: u64 = 1024 * 1024;

/// What a `migrate` or `resize` asks for.
pub struct MoveRequest {
    /// `migration`, `resize` or `live-migration`.
    pub kind: &'static str,
    /// The flavor to land with (the current one for a migration).
    pub flavor: Flavor,
    /// A named destination (`migrate` with `host`, 2.56+).
    pub host: Option<String>,
}

impl ComputeApi {
    /// Starts moving server `id` (visible to the caller, checked by the
    /// API): records the migration, puts the server in RESIZE and runs the
    /// move in the background.
    ///
    /// # Errors
    /// The server's state does not allow a move (409), the host is
    /// unknown (400), or the records cannot be written (500).
    pub fn start_move(self: &Arc<Self>, id: &str, req: MoveRequest, by: Requester<'_>) -> Result<Migration, NovaError> {
        let m = {
            let mut r = self.records_mut();
            let mut s = r.servers.get(id).cloned().ok_or_else(|| NovaError::not_found("Instance not found"))?;
            let live = req.kind == "live-migration";
            let evacuation = req.kind == "evacuation";
            let allowed = match req.kind {
                "live-migration" => s.vm_state == "active",
                "evacuation" => matches!(s.vm_state.as_str(), "active" | "stopped" | "error"),
                _ => matches!(s.vm_state.as_str(), "active" | "stopped"),
            };
            if !allowed || s.task_state.is_some() {
                return Err(NovaError::conflict(format!(
                    "Cannot '{}' instance {id} while it is in {}",
                    match req.kind {
                        "resize" => "resize",
                        "live-migration" => "os-migrateLive",
                        _ => "migrate",
                    },
                    match &s.task_state {
                        Some(t) => format!("task_state {t}"),
                        None => format!("vm_state {}", s.vm_state),
                    }
                )));
            }
            if req.kind == "resize" {
                // Under the lock the move's records are written with.
                super::quotas::check_upsize(self, &r, &s.project_id, &s.flavor, &req.flavor)?;
            }
            let Some(source) = s.host.clone() else {
                return Err(NovaError::conflict(format!("Instance {id} is not on a host")));
            };
            if let Some(h) = &req.host {
                if !r.services.contains_key(h) {
                    return Err(NovaError::bad_request(format!("Compute host {h} could not be found.")));
                }
                if *h == source {
                    return Err(NovaError::bad_request(format!("The target host {h} is the host the instance is on.")));
                }
            }
            let now = now_iso();
            let m = Migration {
                id: r.next_id("migration"),
                uuid: uuid::Uuid::new_v4().to_string(),
                instance_uuid: s.id.clone(),
                migration_type: req.kind.into(),
                status: if live || evacuation { "accepted" } else { "pre-migrating" }.into(),
                source_node: s.node.clone().unwrap_or_else(|| source.clone()),
                source_compute: source,
                dest_compute: None,
                dest_node: None,
                old_flavor: s.flavor.clone(),
                new_flavor: req.flavor,
                old_vm_state: s.vm_state.clone(),
                project_id: s.project_id.clone(),
                user_id: s.user_id.clone(),
                created_at: now.clone(),
                updated_at: now.clone(),
                memory_total: None,
                memory_processed: None,
                memory_remaining: None,
                requested: None,
            };
            s.task_state = Some(
                match req.kind {
                    "live-migration" => "migrating",
                    "evacuation" => "rebuilding",
                    _ => "resize_prep",
                }
                .into(),
            );
            s.updated = now;
            instance_actions::begin(&mut s, action_of(&m), by);
            r.save(&m)?;
            r.migrations.insert(m.id, m.clone());
            r.save(&s)?;
            r.put_server(s);
            m
        };
        let api = Arc::clone(self);
        let (mid, host) = (m.id, req.host);
        tokio::task::spawn_blocking(move || run(&api, mid, host.as_deref()));
        Ok(m)
    }

    /// Confirms (`confirm: true`) or reverts the finished move of server
    /// `id`, in the background.
    ///
    /// # Errors
    /// The server is not in VERIFY_RESIZE (409), or the records cannot be
    /// written.
    pub fn finish_move(self: &Arc<Self>, id: &str, confirm: bool, by: Requester<'_>) -> Result<(), NovaError> {
        let mid = begin_finish(&mut self.records_mut(), id, confirm, by)?;
        let api = Arc::clone(self);
        tokio::task::spawn_blocking(move || if confirm { confirm_now(&api, mid) } else { revert_now(&api, mid) });
        Ok(())
    }
}

/// Moves server `id`'s finished migration to `confirming` or `reverting`
/// and files the action; the migration's id.
///
/// # Errors
/// The server is not in VERIFY_RESIZE (409), or the records cannot be
/// written.
fn begin_finish(r: &mut Records, id: &str, confirm: bool, by: Requester<'_>) -> Result<i64, NovaError> {
    let action = if confirm { "confirmResize" } else { "revertResize" };
    let mut s = r.servers.get(id).cloned().ok_or_else(|| NovaError::not_found("Instance not found"))?;
    let m = r.migrations.values().find(|m| m.instance_uuid == id && m.status == "finished").cloned();
    let (true, Some(mut m)) = (s.vm_state == "resized" && s.task_state.is_none(), m) else {
        return Err(NovaError::conflict(format!(
            "Cannot '{action}' instance {id} while it is in vm_state {}",
            s.vm_state
        )));
    };
    m.status = if confirm { "confirming" } else { "reverting" }.into();
    m.updated_at = now_iso();
    if !confirm {
        s.task_state = Some("resize_reverting".into());
    }
    s.updated = now_iso();
    instance_actions::begin(&mut s, action, by);
    r.save(&s)?;
    r.put_server(s);
    r.save(&m)?;
    let mid = m.id;
    r.migrations.insert(mid, m);
    Ok(mid)
}

/// The instance action a move is filed under.
fn action_of(m: &Migration) -> &'static str {
    match m.migration_type.as_str() {
        "resize" => "resize",
        "live-migration" => "live-migration",
        "evacuation" => "evacuate",
        _ => "migrate",
    }
}

fn migration(api: &ComputeApi, mid: i64) -> Option<(Server, Migration)> {
    let r = api.records();
    let m = r.migrations.get(&mid)?.clone();
    Some((r.servers.get(&m.instance_uuid)?.clone(), m))
}

/// Updates one migration record.
pub(super) fn set_migration(api: &ComputeApi, mid: i64, f: impl FnOnce(&mut Migration)) {
    let mut r = api.records_mut();
    let Some(mut m) = r.migrations.get(&mid).cloned() else { return };
    f(&mut m);
    m.updated_at = now_iso();
    if let Err(e) = r.save(&m) {
        tracing::error!(migration = mid, error = %e, "cannot record the migration");
    }
    r.migrations.insert(mid, m);
}

/// The allocations consumer `c` holds now, per provider uuid.
fn allocations_of(st: &quiver_placement::State, c: &str) -> Allocations {
    let mut out: Allocations = Vec::new();
    for a in st.consumers.get(c).map(|c| c.allocations.as_slice()).unwrap_or_default() {
        let rp = st.uuid_of(a.rp).to_owned();
        let class = (st.classes.name(a.class).to_owned(), a.used);
        match out.iter_mut().find(|(u, _)| *u == rp) {
            Some((_, v)) => v.push(class),
            None => out.push((rp, vec![class])),
        }
    }
    out
}

fn write(consumer: &str, s: &Server, kind: &str, allocations: Allocations) -> ConsumerWrite {
    ConsumerWrite {
        consumer: consumer.to_owned(),
        project: Some(s.project_id.clone()),
        user: Some(s.user_id.clone()),
        generation_check: None,
        consumer_type: Some(kind.into()),
        allocations,
    }
}

/// One Placement write: the instance's allocations move to the migration
/// consumer, and the instance claims `dest`.
fn move_claim(api: &ComputeApi, s: &Server, m: &Migration, dest: &Allocations) -> Result<(), String> {
    api.placement
        .write(|st| {
            let source = allocations_of(st, &s.id);
            let mut to_migration = write(&m.uuid, s, "MIGRATION", source);
            to_migration.generation_check = Some(None);
            st.write_allocations(&[to_migration, write(&s.id, s, "INSTANCE", dest.clone())], AllocationWriteKind::Post)
        })
        .map_err(|e| e.detail)
}

/// The reverse of [`move_claim`]: the instance holds the migration's
/// (source) allocations again, and the migration consumer none.
fn move_claim_back(api: &ComputeApi, s: &Server, m: &Migration) -> Result<(), String> {
    api.placement
        .write(|st| {
            if !st.consumers.contains_key(&m.uuid) {
                return Ok(());
            }
            let source = allocations_of(st, &m.uuid);
            st.write_allocations(
                &[write(&s.id, s, "INSTANCE", source), write(&m.uuid, s, "MIGRATION", Vec::new())],
                AllocationWriteKind::Post,
            )
        })
        .map_err(|e| e.detail)
}

/// The hosts the move may land on, best first, with their claims; or why
/// there is none.
fn schedule(
    api: &ComputeApi,
    s: &Server,
    m: &Migration,
    requested: Option<&str>,
) -> Result<Vec<(String, Allocations)>, String> {
    let mut st = api.conductor.lock();
    catch_up(&mut st, api)?;
    let (req, mut groups) = {
        let r = api.records();
        let mut moving = s.clone();
        moving.flavor = m.new_flavor.clone();
        (boot_request(&r, std::slice::from_ref(&moving)), groups_for(&r, std::slice::from_ref(s)))
    };
    // Nova's RequestSpec for a move: the source in ignore_hosts (resizing
    // to the same host is off: `allow_resize_to_same_host = false`), or
    // only the requested destination.
    let source = m.source_compute.clone();
    let restrict =
        move |fleet: &quiver_engine::Fleet| conductor::destination_mask(fleet, requested, Some(source.as_str()));
    let (d, claims): (quiver_engine::Decision, Claims) = decide(&mut st, api, &req, &mut groups, Some(&restrict))?;
    if d.status != "ok" {
        return Err(no_valid_host(&d));
    }
    let max_attempts = api.config.scheduler.max_attempts.max(1);
    Ok(d.instances
        .first()
        .map(|i| {
            i.chosen
                .iter()
                .chain(&i.alternates)
                .filter_map(|h| claims.get(h).map(|a| (h.clone(), a.clone())))
                .take(max_attempts)
                .collect()
        })
        .unwrap_or_default())
}

/// The move fails before the server left its host: it stays as it was,
/// with the failure recorded.
fn fail(api: &ComputeApi, s: &Server, m: &Migration, message: String) {
    tracing::warn!(server = %s.id, migration = m.id, %message, "move failed");
    set_migration(api, m.id, |x| x.status = "error".into());
    update(api, &s.id, |x| {
        x.task_state = None;
        x.vm_state = m.old_vm_state.clone();
        // Recorded as Nova records an instance fault; the server view
        // shows it only in ERROR.
        let event = match m.migration_type.as_str() {
            "live-migration" => "conductor_live_migrate_instance",
            // Nova's conductor files both rebuild and evacuate under one event.
            "evacuation" => "rebuild_server",
            _ => "conductor_migrate_server",
        };
        instance_actions::event(x, action_of(m), event, None, Err(&message));
        x.fault = Some(Fault { code: 500, message, details: String::new(), created: now_iso() });
    });
}

fn run(api: &Arc<ComputeApi>, mid: i64, requested: Option<&str>) {
    let Some((s, m)) = migration(api, mid) else { return };
    let mut hosts = match schedule(api, &s, &m, requested) {
        Ok(h) if !h.is_empty() => h,
        Ok(_) => return fail(api, &s, &m, "No valid host was found. No host can take the instance.".into()),
        Err(e) => return fail(api, &s, &m, e),
    };
    let source = m.source_compute.clone();
    let source_agent = api.agent(&source);
    if source_agent.is_none() && m.migration_type != "evacuation" {
        return fail(api, &s, &m, format!("no agent is connected for the source host {source}"));
    }
    let was_active = m.old_vm_state == "active";
    // A live migration keeps the guest running: the destination starts it,
    // then the source hands over (destroys its copy); the libvirt test
    // driver cannot migrate between connections, so it is define and
    // start there, destroy here, as for a cold move.
    let live = m.migration_type == "live-migration";
    // An evacuation's source is down: nothing is asked of it; it cleans up
    // when it comes back (see the agents' reconcile).
    let evacuation = m.migration_type == "evacuation";
    let mut errors = Vec::new();
    let mut powered_off = false;
    while !hosts.is_empty() {
        let (dest, claim) = hosts.remove(0);
        {
            let _st = api.conductor.lock();
            if let Err(e) = move_claim(api, &s, &m, &claim) {
                errors.push(format!("{dest}: claim: {e}"));
                continue;
            }
        }
        set_migration(api, mid, |x| {
            x.status = match (live, evacuation) {
                (true, _) => "preparing",
                (_, true) => "running",
                _ => "migrating",
            }
            .into()
        });
        if !live && !evacuation {
            update(api, &s.id, |x| x.task_state = Some("resize_migrating".into()));
        }
        // The source powers the guest off first (Nova's
        // migrate_disk_and_power_off), then the destination builds it.
        if was_active && !powered_off && !live && !evacuation {
            let stopped = source_agent.as_ref().map(|a| a.action(&source, &s.id, Action::Stop));
            if let Some(Err(e)) = stopped {
                let _ = move_claim_back(api, &s, &m);
                return fail(api, &s, &m, format!("cannot power off the guest on {source}: {e}"));
            }
            powered_off = true;
        }
        if !live && !evacuation {
            update(api, &s.id, |x| x.task_state = Some("resize_finish".into()));
        }
        let mut moved = s.clone();
        moved.flavor = m.new_flavor.clone();
        let built = match api.agent(&dest) {
            Some(agent) => agent.build(&dest, &guest_spec(api, &moved)).map_err(|e| e.to_string()).and_then(|g| {
                if was_active {
                    Ok(g)
                } else {
                    // A stopped server lands stopped.
                    agent.action(&dest, &s.id, Action::Stop).map_err(|e| e.to_string())
                }
            }),
            None => Err(format!("no agent is connected for host {dest}")),
        };
        match built {
            Ok(guest) => {
                if live && !copy_memory(api, mid, moved.flavor.ram.into()) {
                    return cancel_live(api, &s, &m, &dest);
                }
                if live {
                    // The source hands over: its copy and its allocations go.
                    if let Some(Err(e)) = source_agent.as_ref().map(|a| a.delete(&source, &s.id)) {
                        // The agent's reconcile destroys it once the move is over.
                        tracing::warn!(server = %s.id, %source, error = %e, "cannot destroy the source guest");
                    }
                    conductor::unclaim(api, &m.uuid);
                }
                // An evacuation is `done` while the source still holds the
                // migration's allocations (until it comes back: `completed`);
                // a cold move `finished` until it is confirmed or reverted.
                let status = match (live, evacuation) {
                    (true, _) => "completed",
                    (_, true) => "done",
                    _ => "finished",
                };
                let node = api.records().services.get(&dest).map(|svc| svc.hypervisor.nodename.clone());
                let forced = api
                    .records()
                    .migrations
                    .get(&mid)
                    .is_some_and(|x| x.requested.as_deref() == Some("force_complete"));
                set_migration(api, mid, |x| {
                    x.status = status.into();
                    x.dest_compute = Some(dest.clone());
                    x.dest_node = node.clone();
                });
                update(api, &s.id, |x| {
                    x.host = Some(dest.clone());
                    x.node = node.clone();
                    x.task_state = None;
                    x.power_state = guest.state.code();
                    if live {
                        instance_actions::event(x, "live-migration", "conductor_live_migrate_instance", None, Ok(()));
                        instance_actions::event(x, "live-migration", "compute_live_migration", Some(&source), Ok(()));
                        if forced {
                            instance_actions::event(
                                x,
                                "live_migration_force_complete",
                                "compute_live_migration_force_complete",
                                Some(&source),
                                Ok(()),
                            );
                        }
                    } else if evacuation {
                        x.vm_state = if m.old_vm_state == "stopped" { "stopped" } else { "active" }.into();
                        x.fault = None;
                        instance_actions::event(x, "evacuate", "compute_rebuild_instance", Some(&dest), Ok(()));
                    } else {
                        x.flavor = m.new_flavor.clone();
                        x.vm_state = "resized".into();
                        instance_actions::event(x, action_of(&m), "conductor_migrate_server", None, Ok(()));
                        instance_actions::event(x, action_of(&m), "compute_finish_resize", Some(&dest), Ok(()));
                    }
                });
                return;
            }
            Err(e) => {
                tracing::warn!(server = %s.id, %dest, error = %e, "move build failed; next alternate");
                errors.push(format!("{dest}: {e}"));
                if let Some(agent) = api.agent(&dest) {
                    let _ = agent.delete(&dest, &s.id);
                }
                if let Err(e) = move_claim_back(api, &s, &m) {
                    tracing::error!(server = %s.id, error = %e, "cannot give the source its allocations back");
                }
            }
        }
    }
    if powered_off && let Some(a) = &source_agent {
        let _ = a.action(&source, &s.id, Action::Start);
    }
    fail(api, &s, &m, format!("No valid host was found. The move failed on every host tried: {}", errors.join("; ")));
}

/// The live migration's memory copy at `[libvirt] live_migration_bandwidth`
/// (the libvirt test driver has no memory to copy: this is the time a copy
/// at that rate takes), its progress in the migration record. `false`: it
/// was aborted; a force-complete finishes it at once (Nova pauses the
/// guest for the last copy).
fn copy_memory(api: &ComputeApi, mid: i64, memory_mb: u64) -> bool {
    let total = memory_mb * MIB;
    let rate = api.config.live_migration_bandwidth * MIB;
    let started = Instant::now();
    set_migration(api, mid, |x| x.status = "running".into());
    loop {
        let mut done =
            if rate == 0 { total } else { total.min((started.elapsed().as_secs_f64() * rate as f64) as u64) };
        // What the API asked for meanwhile, on any replica.
        if let Err(e) = api.ensure_records_fresh() {
            tracing::warn!(migration = mid, error = %e, "cannot read the records; the copy goes on");
        }
        match api.records().migrations.get(&mid).and_then(|m| m.requested.clone()).as_deref() {
            Some("abort") => return false,
            Some("force_complete") => done = total,
            _ => {}
        }
        set_migration(api, mid, |x| {
            x.memory_total = Some(total);
            x.memory_processed = Some(done);
            x.memory_remaining = Some(total - done);
        });
        if done >= total {
            return true;
        }
        std::thread::sleep(PROGRESS_INTERVAL);
    }
}

/// An aborted live migration (Nova's `_rollback_live_migration`): the
/// destination's guest goes, the source keeps running and gets its
/// allocations back; the migration is `cancelled`.
fn cancel_live(api: &ComputeApi, s: &Server, m: &Migration, dest: &str) {
    if let Some(agent) = api.agent(dest)
        && let Err(e) = agent.delete(dest, &s.id)
    {
        // The agent's reconcile destroys it once the move is over.
        tracing::warn!(server = %s.id, host = %dest, error = %e, "cannot destroy the destination guest");
    }
    if let Err(e) = move_claim_back(api, s, m) {
        tracing::error!(server = %s.id, error = %e, "cannot give the source its allocations back");
    }
    set_migration(api, m.id, |x| x.status = "cancelled".into());
    update(api, &s.id, |x| {
        x.task_state = None;
        x.vm_state = m.old_vm_state.clone();
        let aborted = "the live migration was aborted";
        instance_actions::event(x, "live-migration", "compute_live_migration", Some(&m.source_compute), Err(aborted));
        instance_actions::event(
            x,
            "live_migration_cancel",
            "compute_live_migration_abort",
            Some(&m.source_compute),
            Ok(()),
        );
    });
}

/// Nova's `_poll_unconfirmed_resizes`, run by the destination's agent on
/// each reconcile: the moves to `host` left in VERIFY_RESIZE for
/// `[DEFAULT] resize_confirm_window` seconds are confirmed.
pub(super) fn confirm_unconfirmed(api: &ComputeApi, host: &str, now: f64) {
    let window = api.config.resize_confirm_window;
    if window == 0 {
        return;
    }
    let due: Vec<Migration> = api
        .records()
        .migrations
        .values()
        .filter(|m| m.status == "finished" && m.dest_compute.as_deref() == Some(host))
        .filter(|m| parse_iso(&m.updated_at).is_some_and(|t| now - t >= window as f64))
        .cloned()
        .collect();
    for m in due {
        let request_id = format!("req-{}", uuid::Uuid::new_v4());
        let by = Requester { request_id: &request_id, user_id: &m.user_id, project_id: &m.project_id };
        // Confirmed or reverted meanwhile: a 409 here, and nothing to do.
        // (The records' lock is let go before the confirm takes it again.)
        let begun = begin_finish(&mut api.records_mut(), &m.instance_uuid, true, by);
        match begun {
            Ok(mid) => {
                tracing::info!(migration = mid, host, window, "confirming a resize left unconfirmed");
                confirm_now(api, mid);
            }
            Err(e) => tracing::debug!(migration = m.id, error = %e.message, "the resize is no longer unconfirmed"),
        }
    }
}

fn confirm_now(api: &ComputeApi, mid: i64) {
    let Some((s, m)) = migration(api, mid) else { return };
    if let Some(agent) = api.agent(&m.source_compute)
        && let Err(e) = agent.delete(&m.source_compute, &s.id)
    {
        // The agent's reconcile destroys it later.
        tracing::warn!(server = %s.id, host = %m.source_compute, error = %e, "cannot delete the source guest");
    }
    conductor::unclaim(api, &m.uuid);
    set_migration(api, mid, |x| x.status = "confirmed".into());
    update(api, &s.id, |x| {
        x.vm_state = m.old_vm_state.clone();
        x.task_state = None;
        instance_actions::event(x, "confirmResize", "compute_confirm_resize", Some(&m.source_compute), Ok(()));
    });
}

fn revert_now(api: &ComputeApi, mid: i64) {
    let Some((s, m)) = migration(api, mid) else { return };
    if let Some(dest) = &m.dest_compute
        && let Some(agent) = api.agent(dest)
        && let Err(e) = agent.delete(dest, &s.id)
    {
        tracing::warn!(server = %s.id, host = %dest, error = %e, "cannot delete the destination guest");
    }
    let mut back = s.clone();
    back.flavor = m.old_flavor.clone();
    if let Err(e) = move_claim_back(api, &back, &m) {
        tracing::error!(server = %s.id, error = %e, "cannot give the source its allocations back");
    }
    let power = if m.old_vm_state == "active" {
        api.agent(&m.source_compute).and_then(|a| a.action(&m.source_compute, &s.id, Action::Start).ok())
    } else {
        None
    };
    set_migration(api, mid, |x| x.status = "reverted".into());
    update(api, &s.id, |x| {
        x.host = Some(m.source_compute.clone());
        x.node = Some(m.source_node.clone());
        x.flavor = m.old_flavor.clone();
        x.vm_state = m.old_vm_state.clone();
        x.task_state = None;
        instance_actions::event(x, "revertResize", "compute_revert_resize", m.dest_compute.as_deref(), Ok(()));
        if let Some(g) = &power {
            x.power_state = g.state.code();
        }
    });
}

/// The `migrate` action's body: `null`, `{}` or, with `host_allowed`
/// (2.56+), `{"host": "h"}`.
///
/// # Errors
/// A bad body (400).
pub fn migrate_host(arg: &Value, host_allowed: bool) -> Result<Option<String>, NovaError> {
    match arg {
        Value::Null => Ok(None),
        Value::Object(o) => {
            if let Some(k) = o.keys().find(|k| *k != "host" || !host_allowed) {
                return Err(NovaError::bad_request(format!(
                    "Invalid input for field/attribute migrate. Value: {arg}. Additional properties are not allowed ('{k}' was unexpected)"
                )));
            }
            match o.get("host") {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(h)) if !h.is_empty() && h.len() <= 255 => Ok(Some(h.clone())),
                Some(v) => Err(NovaError::bad_request(format!("Invalid input for field/attribute host. Value: {v}."))),
            }
        }
        other => Err(NovaError::bad_request(format!("Invalid input for field/attribute migrate. Value: {other}."))),
    }
}

/// The `os-migrateLive` action's body: `host` (null: the scheduler picks),
/// `block_migration` (`"auto"` or a boolean; required from 2.25),
/// `disk_over_commit` (before 2.25), `force` (2.30 to 2.67: accepted; the
/// filters still check the named host).
///
/// # Errors
/// A bad body (400).
pub fn migrate_live_host(arg: &Value, version: (u32, u32)) -> Result<Option<String>, NovaError> {
    let bad = |m: String| Err(NovaError::bad_request(format!("Invalid input for field/attribute os-migrateLive. {m}")));
    let Value::Object(o) = arg else { return bad(format!("Value: {arg}. It must be an object")) };
    let mut allowed = vec!["host", "block_migration"];
    if version < (2, 25) {
        allowed.push("disk_over_commit");
    }
    if ((2, 30)..(2, 68)).contains(&version) {
        allowed.push("force");
    }
    if let Some(k) = o.keys().find(|k| !allowed.contains(&k.as_str())) {
        return bad(format!("Additional properties are not allowed ('{k}' was unexpected)"));
    }
    match o.get("block_migration") {
        None => return bad("'block_migration' is a required property".into()),
        Some(Value::Bool(_)) => {}
        Some(Value::String(v)) if v == "auto" && version >= (2, 25) => {}
        Some(v) => return bad(format!("block_migration: {v} is not one of true, false or 'auto'")),
    }
    if version < (2, 25) && !o.contains_key("disk_over_commit") {
        return bad("'disk_over_commit' is a required property".into());
    }
    if let Some(f) = o.get("force").filter(|f| !f.is_boolean()) {
        return bad(format!("force: {f} is not a boolean"));
    }
    match o.get("host") {
        None if version >= (2, 25) => bad("'host' is a required property".into()),
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(h)) if !h.is_empty() && h.len() <= 255 => Ok(Some(h.clone())),
        Some(v) => bad(format!("host: {v} is not a valid host name")),
    }
}
