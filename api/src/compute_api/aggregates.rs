//! Host aggregates (`/os-aggregates`): create, update, delete, add and
//! remove hosts, metadata (`availability_zone` included). Each aggregate is
//! mirrored in Placement, as Nova does, so `member_of` finds its hosts.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::ComputeApi;
use super::http::{ApiResult, Ctx, NovaError, action_body, body, empty, reply};
use super::records::{Aggregate, Records, now_iso};

fn view(a: &Aggregate, ctx: &Ctx) -> Value {
    let mut v = json!({
        "id": a.id, "name": a.name, "availability_zone": a.availability_zone(),
        "hosts": a.hosts, "metadata": a.metadata, "created_at": a.created_at,
        "updated_at": a.updated_at, "deleted_at": null, "deleted": false,
    });
    if ctx.at_least(2, 41) {
        v["uuid"] = json!(a.uuid);
    }
    v
}

fn parse_id(id: &str) -> Result<i64, NovaError> {
    id.parse().map_err(|_| NovaError::not_found(format!("Aggregate {id} could not be found.")))
}

fn get_agg(r: &Records, id: &str) -> Result<Aggregate, NovaError> {
    r.aggregates
        .get(&parse_id(id)?)
        .cloned()
        .ok_or_else(|| NovaError::not_found(format!("Aggregate {id} could not be found.")))
}

pub async fn list(State(api): State<Arc<ComputeApi>>, Extension(ctx): Extension<Ctx>) -> ApiResult {
    ctx.require_admin("os_compute_api:os-aggregates:index")?;
    let r = api.records();
    let v: Vec<Value> = r.aggregates.values().map(|a| view(a, &ctx)).collect();
    reply(StatusCode::OK, json!({"aggregates": v}))
}

pub async fn show(
    State(api): State<Arc<ComputeApi>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> ApiResult {
    ctx.require_admin("os_compute_api:os-aggregates:show")?;
    let a = get_agg(&api.records(), &id)?;
    reply(StatusCode::OK, json!({"aggregate": view(&a, &ctx)}))
}

fn name_and_zone(b: &Value, create: bool) -> Result<(Option<String>, Option<Option<String>>), NovaError> {
    let Some(a) = b.get("aggregate").and_then(Value::as_object) else {
        return Err(NovaError::bad_request(
            "Invalid input for field/attribute aggregate: 'aggregate' is a required property",
        ));
    };
    let name = match a.get("name") {
        Some(Value::String(n)) if !n.trim().is_empty() && n.len() <= 255 => Some(n.clone()),
        None if !create => None,
        _ => {
            return Err(NovaError::bad_request(
                "Invalid input for field/attribute name: a non-empty string is required.",
            ));
        }
    };
    let zone = match a.get("availability_zone") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(z)) if !z.trim().is_empty() && !z.contains(':') => Some(Some(z.clone())),
        Some(other) => {
            return Err(NovaError::bad_request(format!(
                "Invalid input for field/attribute availability_zone. Value: {other}."
            )));
        }
    };
    Ok((name, zone))
}

/// A host may not be in two aggregates with different zones (Nova's
/// `_check_az_for_host`).
fn check_zone_conflict(r: &Records, a: &Aggregate, host: &str) -> Result<(), NovaError> {
    let Some(z) = a.availability_zone() else { return Ok(()) };
    let other = r
        .aggregates
        .values()
        .filter(|o| o.id != a.id && o.hosts.iter().any(|h| h == host))
        .find_map(|o| o.availability_zone().filter(|oz| *oz != z).map(str::to_owned));
    match other {
        Some(oz) => Err(NovaError::conflict(format!(
            "Cannot add host {host} in aggregate {}: host exists in availability zone {oz}",
            a.id
        ))),
        None => Ok(()),
    }
}

pub async fn create(State(api): State<Arc<ComputeApi>>, Extension(ctx): Extension<Ctx>, raw: Bytes) -> ApiResult {
    ctx.require_admin("os_compute_api:os-aggregates:create")?;
    let (name, zone) = name_and_zone(&body(&raw)?, true)?;
    let name = name.unwrap_or_default();
    let mut r = api.records_mut();
    if r.aggregates.values().any(|a| a.name == name) {
        return Err(NovaError::conflict(format!("Aggregate {name} already exists.")));
    }
    let mut metadata = BTreeMap::new();
    if let Some(Some(z)) = zone {
        metadata.insert("availability_zone".to_owned(), z);
    }
    let a = Aggregate {
        id: r.next_id("aggregate"),
        uuid: uuid::Uuid::new_v4().to_string(),
        name,
        metadata,
        hosts: Vec::new(),
        created_at: now_iso(),
        updated_at: None,
    };
    r.save(&a)?;
    r.aggregates.insert(a.id, a.clone());
    reply(StatusCode::OK, json!({"aggregate": view(&a, &ctx)}))
}

pub async fn update(
    State(api): State<Arc<ComputeApi>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    raw: Bytes,
) -> ApiResult {
    ctx.require_admin("os_compute_api:os-aggregates:update")?;
    let (name, zone) = name_and_zone(&body(&raw)?, false)?;
    let mut r = api.records_mut();
    let mut a = get_agg(&r, &id)?;
    if let Some(n) = name {
        if r.aggregates.values().any(|o| o.name == n && o.id != a.id) {
            return Err(NovaError::conflict(format!("Aggregate {n} already exists.")));
        }
        a.name = n;
    }
    match zone {
        Some(Some(z)) => {
            a.metadata.insert("availability_zone".into(), z);
        }
        Some(None) => {
            a.metadata.remove("availability_zone");
        }
        None => {}
    }
    a.updated_at = Some(now_iso());
    r.save(&a)?;
    r.aggregates.insert(a.id, a.clone());
    reply(StatusCode::OK, json!({"aggregate": view(&a, &ctx)}))
}

pub async fn delete(
    State(api): State<Arc<ComputeApi>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> ApiResult {
    ctx.require_admin("os_compute_api:os-aggregates:delete")?;
    let mut r = api.records_mut();
    let a = get_agg(&r, &id)?;
    if !a.hosts.is_empty() {
        return Err(NovaError::bad_request(format!(
            "Cannot remove aggregate {}: it still has hosts {:?}",
            a.id, a.hosts
        )));
    }
    r.remove("aggregate", &a.id.to_string())?;
    r.aggregates.remove(&a.id);
    empty(StatusCode::OK)
}

pub async fn action(
    State(api): State<Arc<ComputeApi>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    raw: Bytes,
) -> ApiResult {
    let (name, arg) = action_body(&raw)?;
    let mut r = api.records_mut();
    let mut a = get_agg(&r, &id)?;
    let host_arg = || -> Result<String, NovaError> {
        arg.get("host").and_then(Value::as_str).map(str::to_owned).ok_or_else(|| {
            NovaError::bad_request("Invalid input for field/attribute host: 'host' is a required property")
        })
    };
    let mut touched_host = None;
    match name.as_str() {
        "add_host" => {
            ctx.require_admin("os_compute_api:os-aggregates:add_host")?;
            let host = host_arg()?;
            if !r.services.contains_key(&host) {
                return Err(NovaError::not_found(format!("Compute host {host} could not be found.")));
            }
            if a.hosts.contains(&host) {
                return Err(NovaError::conflict(format!("Aggregate {} already has host {host}.", a.id)));
            }
            check_zone_conflict(&r, &a, &host)?;
            a.hosts.push(host.clone());
            touched_host = Some(host);
        }
        "remove_host" => {
            ctx.require_admin("os_compute_api:os-aggregates:remove_host")?;
            let host = host_arg()?;
            let Some(pos) = a.hosts.iter().position(|h| *h == host) else {
                return Err(NovaError::not_found(format!(
                    "Cannot remove host {host} in aggregate {}: not found",
                    a.id
                )));
            };
            a.hosts.remove(pos);
            touched_host = Some(host);
        }
        "set_metadata" => {
            ctx.require_admin("os_compute_api:os-aggregates:set_metadata")?;
            let Some(md) = arg.get("metadata").and_then(Value::as_object) else {
                return Err(NovaError::bad_request("Invalid input for field/attribute metadata: must be an object."));
            };
            for (k, v) in md {
                match v {
                    Value::Null => {
                        a.metadata.remove(k);
                    }
                    Value::String(s) => {
                        a.metadata.insert(k.clone(), s.clone());
                    }
                    Value::Number(n) => {
                        a.metadata.insert(k.clone(), n.to_string());
                    }
                    other => {
                        return Err(NovaError::bad_request(format!(
                            "Invalid input for field/attribute metadata. Value: {other}."
                        )));
                    }
                }
            }
            for h in a.hosts.clone() {
                check_zone_conflict(&r, &a, &h)?;
            }
        }
        other => return Err(NovaError::bad_request(format!("There is no such action: {other}"))),
    }
    a.updated_at = Some(now_iso());
    r.save(&a)?;
    r.aggregates.insert(a.id, a.clone());
    let rp = touched_host.as_ref().and_then(|h| r.services.get(h)).map(|s| s.compute_node_uuid.clone());
    drop(r);
    if let (Some(h), Some(rp)) = (touched_host, rp) {
        api.sync_provider_aggregates(&h, &rp).map_err(NovaError::internal)?;
    }
    reply(StatusCode::OK, json!({"aggregate": view(&a, &ctx)}))
}
