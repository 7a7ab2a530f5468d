//! Server groups (`/os-server-groups`): affinity, anti-affinity and their
//! soft forms, with `max_server_per_host` (2.64+).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ComputeApi;
use super::http::{ApiResult, Ctx, NovaError, body, empty, reply};
use super::records::ServerGroup;

const POLICIES: [&str; 4] = ["affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity"];

fn view(g: &ServerGroup, ctx: &Ctx) -> Value {
    let mut v = json!({"id": g.id, "name": g.name, "members": g.members});
    if ctx.at_least(2, 64) {
        v["policy"] = json!(g.policy);
        v["rules"] = json!(g.rules);
    } else {
        v["policies"] = json!([g.policy]);
        v["metadata"] = json!({});
    }
    if ctx.at_least(2, 13) {
        v["project_id"] = json!(g.project_id);
        v["user_id"] = json!(g.user_id);
    }
    v
}

#[derive(Deserialize)]
pub struct ListQuery {
    all_projects: Option<String>,
}

pub async fn list(
    State(api): State<Arc<ComputeApi>>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<ListQuery>,
) -> ApiResult {
    let all = ctx.is_admin && q.all_projects.as_deref().is_some_and(|v| !matches!(v, "0" | "false" | "False"));
    let r = api.records();
    let v: Vec<Value> =
        r.groups.values().filter(|g| all || g.project_id == ctx.project_id).map(|g| view(g, &ctx)).collect();
    reply(StatusCode::OK, json!({"server_groups": v}))
}

fn get_group(api: &ComputeApi, ctx: &Ctx, id: &str) -> Result<ServerGroup, NovaError> {
    match api.records().groups.get(id) {
        Some(g) if ctx.is_admin || g.project_id == ctx.project_id => Ok(g.clone()),
        _ => Err(NovaError::not_found(format!("Instance group {id} could not be found."))),
    }
}

pub async fn show(
    State(api): State<Arc<ComputeApi>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> ApiResult {
    let g = get_group(&api, &ctx, &id)?;
    reply(StatusCode::OK, json!({"server_group": view(&g, &ctx)}))
}

pub async fn create(State(api): State<Arc<ComputeApi>>, Extension(ctx): Extension<Ctx>, raw: Bytes) -> ApiResult {
    let b: Value = body(&raw)?;
    let Some(g) = b.get("server_group").and_then(Value::as_object) else {
        return Err(NovaError::bad_request(
            "Invalid input for field/attribute server_group: 'server_group' is a required property",
        ));
    };
    let name = match g.get("name") {
        Some(Value::String(n)) if !n.trim().is_empty() && n.len() <= 255 => n.clone(),
        _ => {
            return Err(NovaError::bad_request(
                "Invalid input for field/attribute name: a non-empty string is required.",
            ));
        }
    };
    let policy = if ctx.at_least(2, 64) {
        g.get("policy").and_then(Value::as_str).map(str::to_owned)
    } else {
        match g.get("policies") {
            Some(Value::Array(p)) if p.len() == 1 => p[0].as_str().map(str::to_owned),
            _ => None,
        }
    };
    let policy = match policy {
        Some(p) if POLICIES.contains(&p.as_str()) => p,
        other => {
            return Err(NovaError::bad_request(format!(
                "Invalid input for field/attribute policy. Value: {}. It must be one of {POLICIES:?}",
                other.unwrap_or_default()
            )));
        }
    };
    let mut rules: BTreeMap<String, Value> = BTreeMap::new();
    if let Some(r) = g.get("rules") {
        if !ctx.at_least(2, 64) {
            return Err(NovaError::bad_request("Additional properties are not allowed ('rules' was unexpected)"));
        }
        let Some(obj) = r.as_object() else {
            return Err(NovaError::bad_request("Invalid input for field/attribute rules: must be an object."));
        };
        for (k, v) in obj {
            if k != "max_server_per_host" {
                return Err(NovaError::bad_request(format!(
                    "Additional properties are not allowed ('{k}' was unexpected)"
                )));
            }
            if v.as_i64().is_none_or(|n| n < 1) {
                return Err(NovaError::bad_request(format!(
                    "Invalid input for field/attribute max_server_per_host. Value: {v}. It must be an integer >= 1"
                )));
            }
            if policy != "anti-affinity" {
                return Err(NovaError::bad_request("Only anti-affinity policy supports rules."));
            }
            rules.insert(k.clone(), v.clone());
        }
    }
    let sg = ServerGroup {
        id: uuid::Uuid::new_v4().to_string(),
        name,
        policy,
        rules,
        members: Vec::new(),
        project_id: ctx.project_id.clone(),
        user_id: ctx.user_id.clone(),
    };
    let mut r = api.records_mut();
    r.save(&sg)?;
    let v = view(&sg, &ctx);
    r.groups.insert(sg.id.clone(), sg);
    reply(StatusCode::OK, json!({"server_group": v}))
}

pub async fn delete(
    State(api): State<Arc<ComputeApi>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> ApiResult {
    get_group(&api, &ctx, &id)?;
    let mut r = api.records_mut();
    r.remove("server_group", &id)?;
    r.groups.remove(&id);
    empty(StatusCode::NO_CONTENT)
}
