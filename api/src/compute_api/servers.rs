//! Servers: create (with min/max count, availability zone, metadata and
//! scheduler hints), list, detail, show, delete, and the stop, start and
//! reboot actions. Building and the actions run in the background
//! ([`super::conductor`]); the API answers 202 as Nova does.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha224};

use super::create::CreateRequest;
use super::http::{ApiResult, Ctx, NovaError, action_body, body, empty, int_field, reply};
use super::records::{Records, Server, now_iso};
use super::{ComputeApi, conductor, moves};

fn links(id: &str) -> Value {
    json!([{"rel": "self", "href": format!("/v2.1/servers/{id}")}, {"rel": "bookmark", "href": format!("/servers/{id}")}])
}

/// Nova's `hostId`: sha224 of project id and host, empty when unplaced.
pub fn host_id_of(project_id: &str, host: Option<&str>) -> String {
    match host {
        Some(h) => format!("{:x}", Sha224::digest(format!("{project_id}{h}").as_bytes())),
        None => String::new(),
    }
}

fn host_id(s: &Server) -> String {
    host_id_of(&s.project_id, s.host.as_deref())
}

/// A server as `GET /servers/{id}` shows it at the caller's microversion.
pub fn view(r: &Records, s: &Server, ctx: &Ctx, down_time: f64) -> Value {
    let f = &s.flavor;
    let flavor = if ctx.at_least(2, 47) {
        json!({"vcpus": f.vcpus, "ram": f.ram, "disk": f.disk, "ephemeral": f.ephemeral, "swap": f.swap,
               "original_name": f.name, "extra_specs": f.extra_specs})
    } else {
        json!({"id": f.id, "links": [{"rel": "bookmark", "href": format!("/flavors/{}", f.id)}]})
    };
    let image = match &s.image_id {
        Some(id) => json!({"id": id, "links": [{"rel": "bookmark", "href": format!("/images/{id}")}]}),
        None => json!(""),
    };
    let az = match &s.host {
        Some(h) => super::host_zone(r, h),
        None => s.availability_zone.clone().unwrap_or_default(),
    };
    let status = s.status();
    let mut v = json!({
        "id": s.id, "name": s.name, "status": status, "tenant_id": s.project_id, "user_id": s.user_id,
        "metadata": s.metadata, "hostId": host_id(s), "image": image, "flavor": flavor,
        "created": s.created, "updated": s.updated, "addresses": {}, "accessIPv4": "", "accessIPv6": "",
        "links": links(&s.id), "OS-DCF:diskConfig": "MANUAL", "OS-EXT-AZ:availability_zone": az,
        "config_drive": "", "key_name": s.key_name,
        "OS-SRV-USG:launched_at": s.launched_at, "OS-SRV-USG:terminated_at": null,
        "OS-EXT-STS:task_state": s.task_state, "OS-EXT-STS:vm_state": s.vm_state,
        "OS-EXT-STS:power_state": s.power_state,
        "os-extended-volumes:volumes_attached": [], "security_groups": [{"name": "default"}],
    });
    if matches!(status, "BUILD" | "ACTIVE") {
        v["progress"] = json!(if status == "ACTIVE" { 100 } else { 0 });
    }
    if let Some(fault) = &s.fault {
        let mut fv = json!({"code": fault.code, "message": fault.message, "created": fault.created});
        if ctx.is_admin {
            fv["details"] = json!(fault.details);
        }
        v["fault"] = fv;
    }
    if ctx.is_admin {
        v["OS-EXT-SRV-ATTR:host"] = json!(s.host);
        v["OS-EXT-SRV-ATTR:hypervisor_hostname"] = json!(s.node);
        v["OS-EXT-SRV-ATTR:instance_name"] = json!(quiver_compute_agent::libvirt_driver::domain_name(&s.id));
        if ctx.at_least(2, 3) {
            v["OS-EXT-SRV-ATTR:reservation_id"] = json!(s.reservation_id);
            v["OS-EXT-SRV-ATTR:launch_index"] = json!(0);
            v["OS-EXT-SRV-ATTR:hostname"] = json!(s.name);
            v["OS-EXT-SRV-ATTR:root_device_name"] = json!("/dev/vda");
            v["OS-EXT-SRV-ATTR:kernel_id"] = json!("");
            v["OS-EXT-SRV-ATTR:ramdisk_id"] = json!("");
            v["OS-EXT-SRV-ATTR:user_data"] = json!(null);
        }
    }
    if ctx.at_least(2, 9) {
        v["locked"] = json!(false);
    }
    if ctx.at_least(2, 16) && ctx.is_admin {
        v["host_status"] = json!(match s.host.as_ref().and_then(|h| r.services.get(h)) {
            Some(svc) if svc.forced_down || super::is_down(svc, down_time) => "DOWN",
            Some(svc) if svc.disabled => "MAINTENANCE",
            Some(_) => "UP",
            None => "",
        });
    }
    if ctx.at_least(2, 19) {
        v["description"] = json!(s.description);
    }
    if ctx.at_least(2, 26) {
        v["tags"] = json!([]);
    }
    if ctx.at_least(2, 63) {
        v["trusted_image_certificates"] = json!(null);
    }
    if ctx.at_least(2, 71) {
        v["server_groups"] = json!(s.group.iter().collect::<Vec<_>>());
    }
    if ctx.at_least(2, 73) {
        v["locked_reason"] = json!(null);
    }
    if ctx.at_least(2, 90) {
        v["OS-EXT-SRV-ATTR:hostname"] = json!(s.name);
    }
    v
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    name: Option<String>,
    status: Option<String>,
    host: Option<String>,
    all_tenants: Option<String>,
    project_id: Option<String>,
    tenant_id: Option<String>,
    limit: Option<usize>,
    marker: Option<String>,
    flavor: Option<String>,
    image: Option<String>,
}

fn truthy(s: &str) -> bool {
    !matches!(s.to_ascii_lowercase().as_str(), "0" | "false" | "no" | "off" | "f" | "n")
}

fn listed(api: &ComputeApi, ctx: &Ctx, q: &ListQuery, detail: bool) -> Result<Value, NovaError> {
    let r = api.records();
    let all_projects = ctx.is_admin && q.all_tenants.as_deref().is_some_and(truthy);
    let project = if ctx.is_admin { q.project_id.clone().or(q.tenant_id.clone()) } else { None };
    if let Some(s) = &q.status
        && !["BUILD", "ACTIVE", "SHUTOFF", "ERROR", "REBOOT", "HARD_REBOOT", "DELETED", "UNKNOWN"]
            .contains(&s.to_ascii_uppercase().as_str())
    {
        // Nova answers an unknown status with an empty list.
        return Ok(json!({"servers": []}));
    }
    let mut servers: Vec<&Server> = r
        .servers
        .values()
        .filter(|s| match &project {
            Some(p) => &s.project_id == p,
            None => all_projects || s.project_id == ctx.project_id,
        })
        .filter(|s| q.name.as_deref().is_none_or(|n| s.name.contains(n)))
        .filter(|s| q.status.as_deref().is_none_or(|st| s.status().eq_ignore_ascii_case(st)))
        .filter(|s| q.host.as_deref().is_none_or(|h| s.host.as_deref() == Some(h)))
        .filter(|s| q.flavor.as_deref().is_none_or(|f| s.flavor.id == f))
        .filter(|s| q.image.as_deref().is_none_or(|i| s.image_id.as_deref() == Some(i)))
        .collect();
    // Nova's default order: newest first.
    servers.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| b.id.cmp(&a.id)));
    if let Some(m) = &q.marker {
        let pos = servers
            .iter()
            .position(|s| &s.id == m)
            .ok_or_else(|| NovaError::bad_request(format!("marker [{m}] not found")))?;
        servers.drain(..=pos);
    }
    if let Some(l) = q.limit {
        servers.truncate(l);
    }
    let down = api.config.scheduler.service_down_time;
    let v: Vec<Value> =
        servers
            .iter()
            .map(|s| {
                if detail { view(&r, s, ctx, down) } else { json!({"id": s.id, "name": s.name, "links": links(&s.id)}) }
            })
            .collect();
    Ok(json!({"servers": v}))
}

pub async fn list(
    State(api): State<Arc<ComputeApi>>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<ListQuery>,
) -> ApiResult {
    reply(StatusCode::OK, listed(&api, &ctx, &q, false)?)
}

pub async fn detail(
    State(api): State<Arc<ComputeApi>>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<ListQuery>,
) -> ApiResult {
    reply(StatusCode::OK, listed(&api, &ctx, &q, true)?)
}

pub fn not_found(id: &str) -> NovaError {
    NovaError::not_found(format!("Instance {id} could not be found."))
}

/// The server `id` if the caller may see it.
fn visible(r: &Records, ctx: &Ctx, id: &str) -> Result<Server, NovaError> {
    match r.servers.get(id) {
        Some(s) if ctx.is_admin || s.project_id == ctx.project_id => Ok(s.clone()),
        _ => Err(not_found(id)),
    }
}

pub async fn show(
    State(api): State<Arc<ComputeApi>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> ApiResult {
    let r = api.records();
    let s = visible(&r, &ctx, &id)?;
    reply(StatusCode::OK, json!({"server": view(&r, &s, &ctx, api.config.scheduler.service_down_time)}))
}

/// The last path segment of a reference (`http://x/flavors/1` -> `1`).
fn reference(v: &Value) -> Option<String> {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let s = s.trim_end_matches('/');
    Some(s.rsplit('/').next().unwrap_or(s).to_owned())
}

fn count(v: Option<&Value>, name: &str) -> Result<Option<u32>, NovaError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => int_field(name, v, 1).map(Some),
    }
}

/// Metadata items a server may have (Nova's `[quota] metadata_items`).
pub const METADATA_ITEMS: usize = 128;

/// A `metadata` field (string values only); `None` when absent or null.
///
/// # Errors
/// A value that is not an object of strings (400).
pub fn metadata_field(v: Option<&Value>) -> Result<Option<BTreeMap<String, String>>, NovaError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        // Nova's default `[quota] metadata_items`.
        Some(Value::Object(m)) if m.len() > METADATA_ITEMS => Err(NovaError::forbidden(format!(
            "Quota exceeded, too many metadata items: {} given, at most {METADATA_ITEMS}.",
            m.len()
        ))),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(v) if !k.is_empty() && k.len() <= 255 && v.len() <= 255 => Ok((k.clone(), v.clone())),
                other => Err(NovaError::bad_request(format!(
                    "Invalid input for field/attribute metadata. Value: {other}. {other} is not of type 'string'"
                ))),
            })
            .collect::<Result<_, _>>()
            .map(Some),
        Some(other) => {
            Err(NovaError::bad_request(format!("Invalid input for field/attribute metadata. Value: {other}.")))
        }
    }
}

fn parse_create(api: &ComputeApi, ctx: &Ctx, raw: &[u8]) -> Result<CreateRequest, NovaError> {
    let b: Value = body(raw)?;
    let Some(s) = b.get("server").and_then(Value::as_object) else {
        return Err(NovaError::bad_request(
            "Invalid input for field/attribute server: 'server' is a required property",
        ));
    };
    let name = match s.get("name") {
        Some(Value::String(n)) if !n.trim().is_empty() && n.len() <= 255 => n.clone(),
        Some(other) => {
            return Err(NovaError::bad_request(format!("Invalid input for field/attribute name. Value: {other}.")));
        }
        None => {
            return Err(NovaError::bad_request(
                "Invalid input for field/attribute server: 'name' is a required property",
            ));
        }
    };
    let flavor_ref = s.get("flavorRef").and_then(reference).ok_or_else(|| {
        NovaError::bad_request("Invalid input for field/attribute server: 'flavorRef' is a required property")
    })?;
    let mut image_id = s.get("imageRef").and_then(reference).filter(|i| !i.is_empty());
    if image_id.is_none()
        && let Some(Value::Array(bdms)) = s.get("block_device_mapping_v2")
    {
        image_id = bdms
            .iter()
            .find(|d| d.get("source_type").and_then(Value::as_str) == Some("image"))
            .and_then(|d| d.get("uuid"))
            .and_then(reference);
    }
    let min_count = count(s.get("min_count"), "min_count")?.unwrap_or(1);
    let max_count = count(s.get("max_count"), "max_count")?.unwrap_or(min_count);
    if min_count > max_count {
        return Err(NovaError::bad_request("min_count must be <= max_count"));
    }
    let metadata = metadata_field(s.get("metadata"))?.unwrap_or_default();
    let hints: BTreeMap<String, Value> = match b.get("OS-SCH-HNT:scheduler_hints").or(b.get("os:scheduler_hints")) {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        Some(other) => {
            return Err(NovaError::bad_request(format!(
                "Invalid input for field/attribute scheduler_hints. Value: {other}."
            )));
        }
    };
    let availability_zone = match s.get("availability_zone") {
        None | Some(Value::Null) => None,
        Some(Value::String(z)) if z.is_empty() => None,
        Some(Value::String(z)) => {
            if z.contains(':') {
                return Err(NovaError::bad_request(format!(
                    "Forcing a host with availability_zone {z:?} is not supported; ask for the zone alone."
                )));
            }
            Some(z.clone())
        }
        Some(other) => {
            return Err(NovaError::bad_request(format!(
                "Invalid input for field/attribute availability_zone. Value: {other}."
            )));
        }
    };
    let r = api.records();
    let flavor = r
        .flavors
        .get(&flavor_ref)
        .cloned()
        .ok_or_else(|| NovaError::bad_request(format!("Flavor {flavor_ref} could not be found.")))?;
    if let Some(i) = &image_id {
        match r.images.get(i) {
            Some(img) if img.status == "active" || img.status == "queued" => {}
            Some(img) => {
                return Err(NovaError::bad_request(format!("Image {i} is not active (status {}).", img.status)));
            }
            None => return Err(NovaError::bad_request(format!("Image {i} could not be found."))),
        }
    }
    if let Some(z) = &availability_zone
        && !super::zones(&r).contains(z)
    {
        return Err(NovaError::bad_request("The requested availability zone is not available"));
    }
    if let Some(g) = hints.get("group") {
        let g = g.as_str().or_else(|| g.as_array().and_then(|a| a.first()).and_then(Value::as_str)).unwrap_or("");
        match r.groups.get(g) {
            Some(grp) if ctx.is_admin || grp.project_id == ctx.project_id => {}
            _ => return Err(NovaError::bad_request(format!("Invalid server group: {g} could not be found."))),
        }
    }
    Ok(CreateRequest {
        name,
        flavor,
        image_id,
        availability_zone,
        metadata,
        hints,
        key_name: s.get("key_name").and_then(Value::as_str).map(str::to_owned),
        description: s.get("description").and_then(Value::as_str).map(str::to_owned),
        min_count,
        max_count,
        return_reservation_id: s.get("return_reservation_id").is_some_and(|v| v.as_bool() == Some(true)),
        request_id: ctx.request_id.clone(),
    })
}

pub async fn create(State(api): State<Arc<ComputeApi>>, Extension(ctx): Extension<Ctx>, raw: Bytes) -> ApiResult {
    let req = parse_create(&api, &ctx, &raw)?;
    let created = api.create_servers(&ctx.project_id, &ctx.user_id, &req)?;
    let first = &created.ids[0];
    if req.return_reservation_id {
        return reply(StatusCode::ACCEPTED, json!({"reservation_id": created.reservation_id}));
    }
    let pass: String = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    reply(
        StatusCode::ACCEPTED,
        json!({"server": {"id": first, "links": links(first), "OS-DCF:diskConfig": "MANUAL",
                          "security_groups": [{"name": "default"}], "adminPass": pass}}),
    )
}

pub async fn delete(
    State(api): State<Arc<ComputeApi>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> ApiResult {
    {
        let mut r = api.records_mut();
        let mut s = visible(&r, &ctx, &id)?;
        s.task_state = Some("deleting".into());
        s.updated = now_iso();
        r.save(&s)?;
        r.put_server(s);
    }
    conductor::start_delete(&api, id);
    empty(StatusCode::NO_CONTENT)
}

/// `shelve`, `shelveOffload` (admin), `unshelve` (see [`super::shelve`]),
/// and `os-resetState` (admin: `active` or `error`, task state cleared).
fn shelve_action(api: &Arc<ComputeApi>, ctx: &Ctx, id: &str, name: &str, arg: &Value) -> ApiResult {
    visible(&api.records(), ctx, id)?;
    match name {
        "shelve" => api.shelve(id, ctx.into())?,
        "shelveOffload" => {
            ctx.require_admin("os_compute_api:os-shelve:shelve_offload")?;
            api.shelve_offload(id, ctx.into())?;
        }
        "unshelve" => {
            // 2.77: `availability_zone`; 2.91: also `host` (admin) and a
            // null zone, which unpins the server from its zone.
            let allowed: &[&str] = if ctx.at_least(2, 91) {
                &["availability_zone", "host"]
            } else if ctx.at_least(2, 77) {
                &["availability_zone"]
            } else {
                &[]
            };
            let (zone, host) = match arg {
                Value::Null => (None, None),
                Value::Object(o) if o.keys().all(|k| allowed.contains(&k.as_str())) => {
                    let zone = match o.get("availability_zone") {
                        None => None,
                        Some(Value::Null) if ctx.at_least(2, 91) => Some(None),
                        Some(Value::String(z)) => Some(Some(z.clone())),
                        Some(v) => {
                            return Err(NovaError::bad_request(format!(
                                "Invalid input for field/attribute availability_zone. Value: {v}."
                            )));
                        }
                    };
                    let host = match o.get("host") {
                        None => None,
                        Some(Value::String(h)) if !h.is_empty() && h.len() <= 255 => {
                            ctx.require_admin("os_compute_api:os-shelve:unshelve_to_host")?;
                            Some(h.clone())
                        }
                        Some(v) => {
                            return Err(NovaError::bad_request(format!(
                                "Invalid input for field/attribute host. Value: {v}."
                            )));
                        }
                    };
                    (zone, host)
                }
                other => {
                    return Err(NovaError::bad_request(format!(
                        "Invalid input for field/attribute unshelve. Value: {other}."
                    )));
                }
            };
            api.unshelve(id, zone, host, ctx.into())?;
        }
        _ => {
            ctx.require_admin("os_compute_api:os-admin-actions:reset_state")?;
            let state = match arg.get("state").and_then(Value::as_str) {
                Some("active") => "active",
                Some("error") => "error",
                _ => {
                    return Err(NovaError::bad_request(
                        "Invalid input for field/attribute state. Value must be one of 'active', 'error'.",
                    ));
                }
            };
            let mut r = api.records_mut();
            let mut s = r.servers.get(id).cloned().ok_or_else(|| not_found(id))?;
            s.vm_state = state.into();
            s.task_state = None;
            s.updated = now_iso();
            r.save(&s)?;
            r.put_server(s);
        }
    }
    empty(StatusCode::ACCEPTED)
}

/// `migrate` (admin), `resize`, `confirmResize`, `revertResize`: see
/// [`super::moves`].
fn move_action(api: &Arc<ComputeApi>, ctx: &Ctx, id: &str, name: &str, arg: &Value) -> ApiResult {
    visible(&api.records(), ctx, id)?;
    match name {
        "migrate" => {
            ctx.require_admin("os_compute_api:os-migrate-server:migrate")?;
            let host = moves::migrate_host(arg, ctx.at_least(2, 56))?;
            let flavor = api.records().servers.get(id).map(|s| s.flavor.clone()).ok_or_else(|| not_found(id))?;
            api.start_move(id, moves::MoveRequest { kind: "migration", flavor, host }, ctx.into())?;
        }
        "evacuate" => {
            ctx.require_admin("os_compute_api:os-evacuate")?;
            let Value::Object(o) = arg else {
                return Err(NovaError::bad_request(format!(
                    "Invalid input for field/attribute evacuate. Value: {arg}."
                )));
            };
            let mut allowed = vec!["host", "adminPass"];
            if !ctx.at_least(2, 14) {
                allowed.push("onSharedStorage");
            }
            if ctx.at_least(2, 29) && !ctx.at_least(2, 68) {
                allowed.push("force");
            }
            if let Some(k) = o.keys().find(|k| !allowed.contains(&k.as_str())) {
                return Err(NovaError::bad_request(format!(
                    "Invalid input for field/attribute evacuate. Additional properties are not allowed ('{k}' was unexpected)"
                )));
            }
            let host = match o.get("host") {
                None | Some(Value::Null) => None,
                Some(Value::String(h)) if !h.is_empty() => Some(h.clone()),
                Some(v) => {
                    return Err(NovaError::bad_request(format!("Invalid input for field/attribute host. Value: {v}.")));
                }
            };
            // Only a host that is down (or forced down) is evacuated from.
            let (flavor, source_up) = {
                let r = api.records();
                let s = r.servers.get(id).ok_or_else(|| not_found(id))?;
                let up = s
                    .host
                    .as_ref()
                    .and_then(|h| r.services.get(h))
                    .map(|svc| (svc.host.clone(), !super::is_down(svc, api.config.scheduler.service_down_time)));
                (s.flavor.clone(), up)
            };
            if let Some((h, true)) = source_up {
                return Err(NovaError::conflict(format!("Compute service of {h} is still in use.")));
            }
            api.start_move(id, moves::MoveRequest { kind: "evacuation", flavor, host }, ctx.into())?;
            if !ctx.at_least(2, 14) {
                let pass = o
                    .get("adminPass")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..12].to_owned());
                return reply(StatusCode::OK, json!({"adminPass": pass}));
            }
            return empty(StatusCode::OK);
        }
        "os-migrateLive" => {
            ctx.require_admin("os_compute_api:os-migrate-server:migrate_live")?;
            let host = moves::migrate_live_host(arg, ctx.version)?;
            let flavor = api.records().servers.get(id).map(|s| s.flavor.clone()).ok_or_else(|| not_found(id))?;
            api.start_move(id, moves::MoveRequest { kind: "live-migration", flavor, host }, ctx.into())?;
        }
        "resize" => {
            let Some(fref) = arg
                .get("flavorRef")
                .and_then(|f| f.as_str().map(str::to_owned).or_else(|| f.as_i64().map(|n| n.to_string())))
            else {
                return Err(NovaError::bad_request(
                    "Invalid input for field/attribute resize. Value: {}. 'flavorRef' is a required property",
                ));
            };
            let (flavor, server) = {
                let r = api.records();
                let f = r
                    .flavors
                    .get(&fref)
                    .cloned()
                    .ok_or_else(|| NovaError::bad_request(format!("Flavor {fref} could not be found.")))?;
                (f, r.servers.get(id).cloned().ok_or_else(|| not_found(id))?)
            };
            if server.flavor.id == flavor.id {
                return Err(NovaError::bad_request("When resizing, instances must change flavor!"));
            }
            api.start_move(id, moves::MoveRequest { kind: "resize", flavor, host: None }, ctx.into())?;
        }
        _ => api.finish_move(id, name == "confirmResize", ctx.into())?,
    }
    empty(if name == "confirmResize" { StatusCode::NO_CONTENT } else { StatusCode::ACCEPTED })
}

/// `rebuild` (see [`super::rebuild`]): 202 with the server as it is now
/// (REBUILD) and, as Nova's `enable_instance_password` default does, the
/// admin password.
fn rebuild_action(api: &Arc<ComputeApi>, ctx: &Ctx, id: &str, arg: &Value) -> ApiResult {
    visible(&api.records(), ctx, id)?;
    let req = super::rebuild::parse(arg, ctx)?;
    let pass = req.admin_pass.clone().unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..12].to_owned());
    let s = api.rebuild(id, req, ctx.into())?;
    let mut v = view(&api.records(), &s, ctx, api.config.scheduler.service_down_time);
    v["adminPass"] = Value::String(pass);
    reply(StatusCode::ACCEPTED, json!({"server": v}))
}

pub async fn action(
    State(api): State<Arc<ComputeApi>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    raw: Bytes,
) -> ApiResult {
    let (name, arg) = action_body(&raw)?;
    if matches!(name.as_str(), "migrate" | "os-migrateLive" | "resize" | "confirmResize" | "revertResize" | "evacuate")
    {
        return move_action(&api, &ctx, &id, &name, &arg);
    }
    if matches!(name.as_str(), "shelve" | "shelveOffload" | "unshelve" | "os-resetState") {
        return shelve_action(&api, &ctx, &id, &name, &arg);
    }
    if name == "rebuild" {
        return rebuild_action(&api, &ctx, &id, &arg);
    }
    let (act, task, needs) = match name.as_str() {
        "os-stop" => (quiver_compute_agent::protocol::Action::Stop, "powering-off", "active"),
        "os-start" => (quiver_compute_agent::protocol::Action::Start, "powering-on", "stopped"),
        "reboot" => {
            let hard = match arg.get("type").and_then(Value::as_str).map(str::to_ascii_uppercase).as_deref() {
                Some("HARD") => true,
                Some("SOFT") => false,
                _ => {
                    return Err(NovaError::bad_request(
                        "Invalid input for field/attribute type. Value must be one of 'SOFT', 'HARD'.",
                    ));
                }
            };
            (
                quiver_compute_agent::protocol::Action::Reboot { hard },
                if hard { "rebooting_hard" } else { "rebooting" },
                "active",
            )
        }
        other => return Err(NovaError::bad_request(format!("There is no such action: {other}"))),
    };
    {
        let mut r = api.records_mut();
        let mut s = visible(&r, &ctx, &id)?;
        let ok_state = s.vm_state == needs || (name == "reboot" && s.vm_state == "stopped" && task.ends_with("hard"));
        if !ok_state || s.task_state.is_some() {
            return Err(NovaError::conflict(format!(
                "Cannot '{}' instance {id} while it is in {}",
                name.trim_start_matches("os-"),
                if s.task_state.is_some() {
                    format!("task_state {}", s.task_state.as_deref().unwrap_or(""))
                } else {
                    format!("vm_state {}", s.vm_state)
                }
            )));
        }
        s.task_state = Some(task.into());
        s.updated = now_iso();
        super::instance_actions::begin(&mut s, name.trim_start_matches("os-"), (&ctx).into());
        r.save(&s)?;
        r.put_server(s);
    }
    conductor::start_action(&api, id, act);
    empty(StatusCode::ACCEPTED)
}

pub async fn metadata(
    State(api): State<Arc<ComputeApi>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> ApiResult {
    let r = api.records();
    let s = visible(&r, &ctx, &id)?;
    reply(StatusCode::OK, json!({"metadata": s.metadata}))
}
