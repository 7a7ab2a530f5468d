//! `GET /os-migrations` (admin) and `GET /servers/{id}/migrations`: the
//! moves Quiver recorded ([`super::records::Migration`]), in Nova's view
//! at the caller's microversion.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::ComputeApi;
use super::http::{ApiResult, Ctx, reply};
use super::records::Migration;

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
    if ctx.at_least(2, 59) {
        v["uuid"] = json!(m.uuid);
    }
    if ctx.at_least(2, 80) {
        v["project_id"] = json!(m.project_id);
        v["user_id"] = json!(m.user_id);
    }
    v
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
    let running = |m: &&Migration| {
        m.instance_uuid == id
            && m.migration_type == "live-migration"
            && super::moves::UNFINISHED.contains(&m.status.as_str())
    };
    let ms: Vec<Value> =
        newest_first(r.migrations.values().filter(running).collect()).into_iter().map(|m| view(m, &ctx)).collect();
    reply(StatusCode::OK, json!({"migrations": ms}))
}
