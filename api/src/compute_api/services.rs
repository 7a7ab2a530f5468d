//! Compute services (`/os-services`): list, disable and enable (which sets
//! `COMPUTE_STATUS_DISABLED` on the node's provider, so the pre-filter
//! skips it), forced down, delete.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{ApiResult, Ctx, NovaError, body, empty, reply};
use super::records::{Service, iso, now_iso};
use super::{ComputeApi, host_zone, is_down};

fn view(api: &ComputeApi, s: &Service, zone: String, ctx: &Ctx) -> Value {
    let mut v = json!({
        "id": if ctx.at_least(2, 53) { json!(s.uuid) } else { json!(s.id) },
        "binary": "nova-compute", "host": s.host, "zone": zone,
        "status": if s.disabled { "disabled" } else { "enabled" },
        "state": if is_down(s, api.config.scheduler.service_down_time) { "down" } else { "up" },
        "updated_at": iso(s.last_seen), "disabled_reason": s.disabled_reason,
    });
    if ctx.at_least(2, 11) {
        v["forced_down"] = json!(s.forced_down);
    }
    v
}

#[derive(Deserialize)]
pub struct ListQuery {
    host: Option<String>,
    binary: Option<String>,
}

pub async fn list(
    State(api): State<Arc<ComputeApi>>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<ListQuery>,
) -> ApiResult {
    ctx.require_admin("os_compute_api:os-services:list")?;
    let r = api.records();
    let v: Vec<Value> = r
        .services
        .values()
        .filter(|s| q.host.as_deref().is_none_or(|h| h == s.host))
        .filter(|_| q.binary.as_deref().is_none_or(|b| b == "nova-compute"))
        .map(|s| view(&api, s, host_zone(&r, &s.host), &ctx))
        .collect();
    reply(StatusCode::OK, json!({"services": v}))
}

/// Applies a status / forced_down change and mirrors it in Placement.
fn change(api: &ComputeApi, host: &str, f: impl FnOnce(&mut Service)) -> Result<Service, NovaError> {
    let mut r = api.records_mut();
    let mut s = r
        .services
        .get(host)
        .cloned()
        .ok_or_else(|| NovaError::not_found(format!("Host {host} could not be found.")))?;
    f(&mut s);
    s.updated_at = now_iso();
    r.save(&s)?;
    r.services.insert(s.host.clone(), s.clone());
    drop(r);
    api.sync_provider_traits(&s.compute_node_uuid, None, s.disabled).map_err(NovaError::internal)?;
    Ok(s)
}

pub async fn update(
    State(api): State<Arc<ComputeApi>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    raw: Bytes,
) -> ApiResult {
    ctx.require_admin("os_compute_api:os-services:update")?;
    let b: Value = body(&raw)?;
    let str_field = |k: &str| b.get(k).and_then(Value::as_str).map(str::to_owned);
    // Before 2.53: PUT /os-services/{disable,enable,disable-log-reason,force-down}
    // with {"host", "binary"}.
    if matches!(id.as_str(), "disable" | "enable" | "disable-log-reason" | "force-down") && !ctx.at_least(2, 53) {
        let host =
            str_field("host").ok_or_else(|| NovaError::bad_request("Invalid input for field/attribute host."))?;
        let reason = str_field("disabled_reason");
        let forced = b.get("forced_down").and_then(Value::as_bool);
        if id == "force-down" && forced.is_none() {
            return Err(NovaError::bad_request("Invalid input for field/attribute forced_down."));
        }
        let op = id.clone();
        let s = change(&api, &host, |s| match op.as_str() {
            "disable" => s.disabled = true,
            "enable" => {
                s.disabled = false;
                s.disabled_reason = None;
            }
            "disable-log-reason" => {
                s.disabled = true;
                s.disabled_reason = reason;
            }
            _ => s.forced_down = forced.unwrap_or(false),
        })?;
        let mut out = json!({"host": s.host, "binary": "nova-compute"});
        if id == "force-down" {
            out["forced_down"] = json!(s.forced_down);
        } else {
            out["status"] = json!(if s.disabled { "disabled" } else { "enabled" });
            if id == "disable-log-reason" {
                out["disabled_reason"] = json!(s.disabled_reason);
            }
        }
        return reply(StatusCode::OK, json!({"service": out}));
    }
    if !ctx.at_least(2, 53) {
        return Err(NovaError::not_found(format!("Service {id} could not be found.")));
    }
    let host = api.records().services.values().find(|s| s.uuid == id).map(|s| s.host.clone());
    let host = host.ok_or_else(|| NovaError::not_found(format!("Service {id} could not be found.")))?;
    let status = str_field("status");
    let reason = str_field("disabled_reason");
    let forced = b
        .get("forced_down")
        .map(|v| v.as_bool().ok_or_else(|| NovaError::bad_request("Invalid input for field/attribute forced_down.")))
        .transpose()?;
    if status.is_none() && forced.is_none() {
        return Err(NovaError::bad_request("At least one of 'status' or 'forced_down' must be specified."));
    }
    let disabled = match status.as_deref() {
        None => None,
        Some("disabled") => Some(true),
        Some("enabled") => Some(false),
        Some(other) => {
            return Err(NovaError::bad_request(format!("Invalid input for field/attribute status. Value: {other}.")));
        }
    };
    if reason.is_some() && disabled != Some(true) {
        return Err(NovaError::bad_request("Specifying 'disabled_reason' with status 'enabled' is invalid."));
    }
    let s = change(&api, &host, |s| {
        if let Some(d) = disabled {
            s.disabled = d;
            s.disabled_reason = if d { reason } else { None };
        }
        if let Some(f) = forced {
            s.forced_down = f;
        }
    })?;
    let zone = host_zone(&api.records(), &s.host);
    reply(StatusCode::OK, json!({"service": view(&api, &s, zone, &ctx)}))
}

pub async fn delete(
    State(api): State<Arc<ComputeApi>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> ApiResult {
    ctx.require_admin("os_compute_api:os-services:delete")?;
    let mut r = api.records_mut();
    let s = r
        .services
        .values()
        .find(|s| s.uuid == id || s.id.to_string() == id)
        .cloned()
        .ok_or_else(|| NovaError::not_found(format!("Service {id} could not be found.")))?;
    if r.servers.values().any(|x| x.host.as_deref() == Some(s.host.as_str())) {
        return Err(NovaError::conflict(
            "Unable to delete compute service that is hosting instances. Migrate or delete the instances first.",
        ));
    }
    r.remove("service", &s.host)?;
    r.services.remove(&s.host);
    drop(r);
    let _ = api.placement.write(|st| st.delete_provider(&s.compute_node_uuid));
    empty(StatusCode::NO_CONTENT)
}
