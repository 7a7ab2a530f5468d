//! Flavors and their extra specs (`/flavors`, `/flavors/{id}/os-extra_specs`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ComputeApi;
use super::http::{ApiResult, Ctx, NovaError, body, empty, int_field, reply};
use super::records::{Flavor, now_iso};

fn links(id: &str) -> Value {
    json!([{"rel": "self", "href": format!("/v2.1/flavors/{id}")}, {"rel": "bookmark", "href": format!("/flavors/{id}")}])
}

/// A flavor as `GET /flavors/{id}` shows it at the caller's microversion.
pub fn view(f: &Flavor, ctx: &Ctx) -> Value {
    let mut v = json!({
        "id": f.id, "name": f.name, "ram": f.ram, "vcpus": f.vcpus, "disk": f.disk,
        "OS-FLV-EXT-DATA:ephemeral": f.ephemeral,
        "swap": if f.swap == 0 && !ctx.at_least(2, 75) { json!("") } else { json!(f.swap) },
        "rxtx_factor": f.rxtx_factor,
        "os-flavor-access:is_public": f.is_public,
        "OS-FLV-DISABLED:disabled": false,
        "links": links(&f.id),
    });
    if ctx.at_least(2, 55) {
        v["description"] = json!(f.description);
    }
    if ctx.at_least(2, 61) {
        v["extra_specs"] = json!(f.extra_specs);
    }
    v
}

fn brief(f: &Flavor, ctx: &Ctx) -> Value {
    let mut v = json!({"id": f.id, "name": f.name, "links": links(&f.id)});
    if ctx.at_least(2, 55) {
        v["description"] = json!(f.description);
    }
    v
}

#[derive(Deserialize)]
pub struct ListQuery {
    is_public: Option<String>,
    #[serde(rename = "minRam")]
    min_ram: Option<u32>,
    #[serde(rename = "minDisk")]
    min_disk: Option<u32>,
}

fn listed<'a>(all: impl Iterator<Item = &'a Flavor>, q: &ListQuery, ctx: &Ctx) -> Vec<&'a Flavor> {
    // Nova: admins see all with is_public=None, public ones by default.
    let public = match q.is_public.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("none") if ctx.is_admin => None,
        Some("false" | "0" | "no") => Some(false),
        _ => Some(true),
    };
    let mut out: Vec<&Flavor> = all
        .filter(|f| public.is_none_or(|p| f.is_public == p))
        .filter(|f| q.min_ram.is_none_or(|m| f.ram >= m) && q.min_disk.is_none_or(|m| f.disk >= m))
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

pub async fn list(
    State(api): State<Arc<ComputeApi>>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<ListQuery>,
) -> ApiResult {
    let r = api.records();
    let v: Vec<Value> = listed(r.flavors.values(), &q, &ctx).into_iter().map(|f| brief(f, &ctx)).collect();
    reply(StatusCode::OK, json!({"flavors": v}))
}

pub async fn detail(
    State(api): State<Arc<ComputeApi>>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<ListQuery>,
) -> ApiResult {
    let r = api.records();
    let v: Vec<Value> = listed(r.flavors.values(), &q, &ctx).into_iter().map(|f| view(f, &ctx)).collect();
    reply(StatusCode::OK, json!({"flavors": v}))
}

pub fn not_found(id: &str) -> NovaError {
    NovaError::not_found(format!("Flavor {id} could not be found."))
}

pub async fn show(
    State(api): State<Arc<ComputeApi>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> ApiResult {
    let r = api.records();
    let f = r.flavors.get(&id).ok_or_else(|| not_found(&id))?;
    reply(StatusCode::OK, json!({"flavor": view(f, &ctx)}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    flavor: CreateFlavor,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateFlavor {
    name: String,
    ram: Value,
    vcpus: Value,
    disk: Value,
    id: Option<Value>,
    #[serde(rename = "OS-FLV-EXT-DATA:ephemeral")]
    ephemeral: Option<Value>,
    swap: Option<Value>,
    rxtx_factor: Option<f64>,
    #[serde(rename = "os-flavor-access:is_public")]
    is_public: Option<bool>,
    description: Option<String>,
}

pub async fn create(State(api): State<Arc<ComputeApi>>, Extension(ctx): Extension<Ctx>, raw: Bytes) -> ApiResult {
    ctx.require_admin("os_compute_api:os-flavor-manage:create")?;
    let b: CreateBody = body(&raw)?;
    let c = b.flavor;
    let name = c.name.trim().to_owned();
    if name.is_empty() || name.len() > 255 {
        return Err(NovaError::bad_request("Invalid input for field/attribute name: must be 1 to 255 characters."));
    }
    let id = match c.id {
        None | Some(Value::Null) => uuid::Uuid::new_v4().to_string(),
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => {
            return Err(NovaError::bad_request(format!("Invalid input for field/attribute id. Value: {other}.")));
        }
    };
    let f = Flavor {
        id: id.clone(),
        name: name.clone(),
        ram: int_field("ram", &c.ram, 1)?,
        vcpus: int_field("vcpus", &c.vcpus, 1)?,
        disk: int_field("disk", &c.disk, 0)?,
        ephemeral: c.ephemeral.as_ref().map(|v| int_field("OS-FLV-EXT-DATA:ephemeral", v, 0)).transpose()?.unwrap_or(0),
        swap: c
            .swap
            .as_ref()
            .filter(|v| !v.as_str().is_some_and(str::is_empty))
            .map(|v| int_field("swap", v, 0))
            .transpose()?
            .unwrap_or(0),
        rxtx_factor: c.rxtx_factor.unwrap_or(1.0),
        is_public: c.is_public.unwrap_or(true),
        description: c.description,
        extra_specs: BTreeMap::new(),
        created_at: now_iso(),
    };
    let mut r = api.records_mut();
    if r.flavors.contains_key(&id) {
        return Err(NovaError::conflict(format!("Flavor with ID {id} already exists.")));
    }
    if r.flavors.values().any(|x| x.name == name) {
        return Err(NovaError::conflict(format!("Flavor with name {name} already exists.")));
    }
    r.save(&f)?;
    let v = view(&f, &ctx);
    r.flavors.insert(id, f);
    reply(StatusCode::OK, json!({"flavor": v}))
}

pub async fn delete(
    State(api): State<Arc<ComputeApi>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> ApiResult {
    ctx.require_admin("os_compute_api:os-flavor-manage:delete")?;
    let mut r = api.records_mut();
    if !r.flavors.contains_key(&id) {
        return Err(not_found(&id));
    }
    r.remove("flavor", &id)?;
    r.flavors.remove(&id);
    empty(StatusCode::ACCEPTED)
}

// ----- extra specs -----------------------------------------------------------

pub async fn specs_list(State(api): State<Arc<ComputeApi>>, Path(id): Path<String>) -> ApiResult {
    let r = api.records();
    let f = r.flavors.get(&id).ok_or_else(|| not_found(&id))?;
    reply(StatusCode::OK, json!({"extra_specs": f.extra_specs}))
}

fn spec_value(v: &Value) -> Result<String, NovaError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(if *b { "True" } else { "False" }.into()),
        other => Err(NovaError::bad_request(format!("Invalid input for field/attribute extra_specs. Value: {other}."))),
    }
}

pub async fn specs_create(
    State(api): State<Arc<ComputeApi>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    raw: Bytes,
) -> ApiResult {
    ctx.require_admin("os_compute_api:os-flavor-extra-specs:create")?;
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct B {
        extra_specs: BTreeMap<String, Value>,
    }
    let b: B = body(&raw)?;
    let mut specs = BTreeMap::new();
    for (k, v) in &b.extra_specs {
        if k.is_empty() || k.len() > 255 {
            return Err(NovaError::bad_request("Invalid input for field/attribute extra_specs: bad key length."));
        }
        specs.insert(k.clone(), spec_value(v)?);
    }
    let mut r = api.records_mut();
    let mut f = r.flavors.get(&id).cloned().ok_or_else(|| not_found(&id))?;
    f.extra_specs.extend(specs.clone());
    r.save(&f)?;
    r.flavors.insert(id, f);
    reply(StatusCode::OK, json!({"extra_specs": specs}))
}

pub async fn spec_show(State(api): State<Arc<ComputeApi>>, Path((id, key)): Path<(String, String)>) -> ApiResult {
    let r = api.records();
    let f = r.flavors.get(&id).ok_or_else(|| not_found(&id))?;
    let v = f
        .extra_specs
        .get(&key)
        .ok_or_else(|| NovaError::not_found(format!("Flavor {id} has no extra specs with key {key}.")))?;
    reply(StatusCode::OK, json!({ key: v }))
}

pub async fn spec_update(
    State(api): State<Arc<ComputeApi>>,
    Extension(ctx): Extension<Ctx>,
    Path((id, key)): Path<(String, String)>,
    raw: Bytes,
) -> ApiResult {
    ctx.require_admin("os_compute_api:os-flavor-extra-specs:update")?;
    let b: BTreeMap<String, Value> = body(&raw)?;
    if b.len() != 1 || !b.contains_key(&key) {
        return Err(NovaError::bad_request("Request body and URI mismatch"));
    }
    let value = spec_value(&b[&key])?;
    let mut r = api.records_mut();
    let mut f = r.flavors.get(&id).cloned().ok_or_else(|| not_found(&id))?;
    f.extra_specs.insert(key.clone(), value.clone());
    r.save(&f)?;
    r.flavors.insert(id, f);
    reply(StatusCode::OK, json!({ key: value }))
}

pub async fn spec_delete(
    State(api): State<Arc<ComputeApi>>,
    Extension(ctx): Extension<Ctx>,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult {
    ctx.require_admin("os_compute_api:os-flavor-extra-specs:delete")?;
    let mut r = api.records_mut();
    let mut f = r.flavors.get(&id).cloned().ok_or_else(|| not_found(&id))?;
    if f.extra_specs.remove(&key).is_none() {
        return Err(NovaError::not_found(format!("Flavor {id} has no extra specs with key {key}.")));
    }
    r.save(&f)?;
    r.flavors.insert(id, f);
    empty(StatusCode::OK)
}
