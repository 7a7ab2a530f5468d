//! `GET /os-migrations` (admin) and the server's live migrations in
//! progress (`GET /servers/{id}/migrations[/{mid}]`, with their memory copy's
//! progress; `DELETE` aborts one, `force_complete` finishes it): the moves
//! Quiver recorded ([`super::records::Migration`]), in Nova's views at the
//! caller's microversion.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::ComputeApi;
use super::http::{ApiResult, Ctx, NovaError, action_body, empty, reply};
use super::instance_actions;
use super::records::{Migration, now_iso};

/// A live migration still under way, as `GET /servers/{id}/migrations`
/// lists it (Nova's `queued`, `preparing`, `running`, `post-migrating`).
const IN_PROGRESS: [&str; 3] = ["accepted", "preparing", "running"];

/// The fields both views add at 2.59 (`uuid`) and 2.80 (owner).
fn with_ids(mut v: Value, m: &Migration, ctx: &Ctx) -> Value {
    if ctx.at_least(2, 59) {
        v["uuid"] = json!(m.uuid);
    }
    if ctx.at_least(2, 80) {
        v["project_id"] = json!(m.project_id);
        v["user_id"] = json!(m.user_id);
    }
    v
}

/// Nova's fields for `m` at the caller's microversion.
fn view(m: &Migration, ctx: &Ctx) -> Value {
    let mut v = json!({
        "id": m.id,
        "instance_uuid": m.instance_uuid,
        "status": m.status,
        "source_compute": m.source_compute,
        "source_node": m.source_node,
        "dest_compute": m.dest_compute,
        "dest_node": m.dest_node,
        "dest_host": m.dest_compute,
        "old_instance_type_id": m.old_flavor.id,
        "new_instance_type_id": m.new_flavor.id,
        "created_at": m.created_at,
        "updated_at": m.updated_at,
    });
    if ctx.at_least(2, 23) {
        v["migration_type"] = json!(m.migration_type);
    }
    with_ids(v, m, ctx)
}

/// Newest first, as Nova sorts them (created_at, then id, descending).
fn newest_first(mut ms: Vec<&Migration>) -> Vec<&Migration> {
    ms.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    ms
}

/// `GET /os-migrations` with Nova's filters `host` (source or
/// destination), `status`, `instance_uuid`, `migration_type`,
/// `source_compute`.
pub async fn list(
    State(api): State<Arc<ComputeApi>>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    ctx.require_admin("os_compute_api:os-migrations:index")?;
    let r = api.records();
    let keep = |m: &&Migration| {
        q.get("host").is_none_or(|h| m.source_compute == *h || m.dest_compute.as_deref() == Some(h.as_str()))
            && q.get("status").is_none_or(|s| m.status.eq_ignore_ascii_case(s))
            && q.get("instance_uuid").is_none_or(|i| m.instance_uuid == *i)
            && q.get("migration_type").is_none_or(|t| m.migration_type == *t)
            && q.get("source_compute").is_none_or(|h| m.source_compute == *h)
    };
    let ms: Vec<Value> =
        newest_first(r.migrations.values().filter(keep).collect()).into_iter().map(|m| view(m, &ctx)).collect();
    reply(StatusCode::OK, json!({"migrations": ms}))
}

/// Nova's server-migration fields (`server_migrations.output`).
fn server_view(m: &Migration, ctx: &Ctx) -> Value {
    let v = json!({
        "id": m.id,
        "server_uuid": m.instance_uuid,
        "status": m.status,
        "source_compute": m.source_compute,
        "source_node": m.source_node,
        "dest_compute": m.dest_compute,
        "dest_host": m.dest_compute,
        "dest_node": m.dest_node,
        "memory_total_bytes": m.memory_total,
        "memory_processed_bytes": m.memory_processed,
        "memory_remaining_bytes": m.memory_remaining,
        "disk_total_bytes": null,
        "disk_processed_bytes": null,
        "disk_remaining_bytes": null,
        "created_at": m.created_at,
        "updated_at": m.updated_at,
    });
    with_ids(v, m, ctx)
}

fn live_in_progress(m: &Migration, id: &str) -> bool {
    m.instance_uuid == id && m.migration_type == "live-migration" && IN_PROGRESS.contains(&m.status.as_str())
}

/// `GET /servers/{id}/migrations`: the server's live migrations in
/// progress (2.23+).
pub async fn of_server(
    State(api): State<Arc<ComputeApi>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> ApiResult {
    ctx.require_admin("os_compute_api:servers:migrations:index")?;
    let r = api.records();
    if !r.servers.contains_key(&id) {
        return Err(super::servers::not_found(&id));
    }
    let ms: Vec<Value> = newest_first(r.migrations.values().filter(|m| live_in_progress(m, &id)).collect())
        .into_iter()
        .map(|m| server_view(m, &ctx))
        .collect();
    reply(StatusCode::OK, json!({"migrations": ms}))
}

fn migration_id(raw: &str) -> Result<i64, NovaError> {
    raw.parse().map_err(|_| NovaError::bad_request(format!("Invalid migration id {raw:?}: it must be an integer")))
}

/// `GET /servers/{id}/migrations/{mid}`: one live migration in progress.
pub async fn show(
    State(api): State<Arc<ComputeApi>>,
    Extension(ctx): Extension<Ctx>,
    Path((id, mid)): Path<(String, String)>,
) -> ApiResult {
    ctx.require_admin("os_compute_api:servers:migrations:show")?;
    let mid = migration_id(&mid)?;
    let r = api.records();
    if !r.servers.contains_key(&id) {
        return Err(super::servers::not_found(&id));
    }
    match r.migrations.get(&mid).filter(|m| live_in_progress(m, &id)) {
        Some(m) => reply(StatusCode::OK, json!({"migration": server_view(m, &ctx)})),
        None => Err(NovaError::not_found(format!("In-progress live migration {mid} is not found for server {id}."))),
    }
}

/// Files `what` (`abort` or `force_complete`) on live migration `mid` of
/// server `id`, for the conductor running it (on any replica) to act on.
/// `allowed`: the migration states it can be asked in.
fn request(api: &ComputeApi, ctx: &Ctx, id: &str, mid: i64, what: &str, allowed: &[&str]) -> Result<(), NovaError> {
    let (method, action) = match what {
        "abort" => ("abort live migration", "live_migration_cancel"),
        _ => ("force complete", "live_migration_force_complete"),
    };
    let mut r = api.records_mut();
    let mut s = r.servers.get(id).cloned().ok_or_else(|| super::servers::not_found(id))?;
    let mut m = r
        .migrations
        .get(&mid)
        .filter(|m| m.instance_uuid == id)
        .cloned()
        .ok_or_else(|| NovaError::not_found(format!("Migration {mid} for instance {id} could not be found.")))?;
    if s.task_state.as_deref() != Some("migrating") {
        return Err(NovaError::conflict(format!(
            "Cannot '{method}' instance {id} while it is in task_state {}",
            s.task_state.as_deref().unwrap_or("None")
        )));
    }
    if !allowed.contains(&m.status.as_str()) || m.requested.is_some() {
        return Err(NovaError::bad_request(format!(
            "Migration {mid} state of instance {id} is {}. Cannot {method} while the migration is in this state.",
            if m.requested.as_deref() == Some("abort") { "cancelling" } else { m.status.as_str() }
        )));
    }
    m.requested = Some(what.into());
    m.updated_at = now_iso();
    instance_actions::begin(&mut s, action, ctx.into());
    r.save(&m)?;
    r.migrations.insert(mid, m);
    r.save(&s)?;
    r.put_server(s);
    Ok(())
}

/// `DELETE /servers/{id}/migrations/{mid}` (2.24+): aborts a running live
/// migration (also a `preparing` one from 2.65); the server stays where
/// it was.
pub async fn abort(
    State(api): State<Arc<ComputeApi>>,
    Extension(ctx): Extension<Ctx>,
    Path((id, mid)): Path<(String, String)>,
) -> ApiResult {
    ctx.require_admin("os_compute_api:servers:migrations:delete")?;
    if !ctx.at_least(2, 24) {
        return Err(NovaError::not_found("The resource could not be found."));
    }
    let allowed: &[&str] = if ctx.at_least(2, 65) { &["preparing", "running"] } else { &["running"] };
    request(&api, &ctx, &id, migration_id(&mid)?, "abort", allowed)?;
    empty(StatusCode::ACCEPTED)
}

/// `POST /servers/{id}/migrations/{mid}/action` with `force_complete`
/// (2.22+): finishes a running live migration's copy at once.
pub async fn action(
    State(api): State<Arc<ComputeApi>>,
    Extension(ctx): Extension<Ctx>,
    Path((id, mid)): Path<(String, String)>,
    raw: Bytes,
) -> ApiResult {
    ctx.require_admin("os_compute_api:servers:migrations:force_complete")?;
    let (name, _) = action_body(&raw)?;
    if name != "force_complete" || !ctx.at_least(2, 22) {
        return Err(NovaError::bad_request(format!("There is no such action: {name}")));
    }
    request(&api, &ctx, &id, migration_id(&mid)?, "force_complete", &["running"])?;
    empty(StatusCode::ACCEPTED)
}
