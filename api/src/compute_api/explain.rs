//! `POST /v1/explain` (admin): where a request would land on the running
//! cloud and why not elsewhere: the hosts each request filter, Placement's
//! query and each filter kept, and for named hosts the first stage that
//! rejected each one, in words. Answered on the live fleet under its lock
//! (a consistent view, as the conductor's decisions see it; nothing is
//! copied, claimed or changed) with a scheduler of its own (same options,
//! seed 0), so the conductor's scheduler (its `host_subset_size` draws) is
//! not touched.
//!
//! Body: `{"flavor": ID or name, "image": ID, "availability_zone": Z,
//! "scheduler_hints": {...}, "num_instances": N, "hosts": [names]}`, or
//! `{"server": UUID, "hosts": [...]}` for an existing server's RequestSpec
//! (its flavor, image, zone, hints and group).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use quiver_engine::{BootRequest, Groups, Scheduler};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::ComputeApi;
use super::conductor::{boot_request, catch_up, engine_flavor, engine_groups, engine_image, groups_for};
use super::http::Ctx;
use super::query::{Refusal, error, forbidden};
use super::tree_candidates::tree_candidates;

/// Most hosts one explain may name (each is checked stage by stage).
const MAX_NAMED_HOSTS: usize = 1000;

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExplainBody {
    flavor: Option<String>,
    image: Option<String>,
    availability_zone: Option<String>,
    #[serde(default)]
    scheduler_hints: Map<String, Value>,
    num_instances: Option<u32>,
    server: Option<String>,
    #[serde(default)]
    hosts: Vec<String>,
}

fn bad(detail: impl Into<String>) -> Refusal {
    Refusal(StatusCode::BAD_REQUEST, "quiver.explain.invalid", detail.into())
}

fn not_found(detail: String) -> Refusal {
    Refusal(StatusCode::NOT_FOUND, "quiver.explain.not_found", detail)
}

/// The engine's request and groups for `body`, as the conductor would
/// build them.
fn request(api: &ComputeApi, ctx: &Ctx, body: &ExplainBody) -> Result<(BootRequest, Groups), Refusal> {
    let r = api.records();
    if let Some(id) = &body.server {
        if body.flavor.is_some() || body.image.is_some() || body.availability_zone.is_some() {
            return Err(bad("Give either server or flavor (with image, availability_zone), not both."));
        }
        let Some(s) = r.servers.get(id) else {
            return Err(not_found(format!("No server {id}.")));
        };
        let servers = [s.clone()];
        let mut req = boot_request(&r, &servers);
        req.scheduler_hints.extend(body.scheduler_hints.clone());
        return Ok((req, groups_for(&r, &servers)));
    }
    let Some(flavor) = &body.flavor else {
        return Err(bad("flavor (an id or name) or server is required."));
    };
    let Some(f) = r.flavors.get(flavor).or_else(|| r.flavors.values().find(|f| &f.name == flavor)) else {
        return Err(not_found(format!("No flavor {flavor}.")));
    };
    let image = match &body.image {
        Some(id) => Some(engine_image(&r, id).ok_or_else(|| not_found(format!("No image {id}.")))?),
        None => None,
    };
    let n = body.num_instances.unwrap_or(1);
    if !(1..=1000).contains(&n) {
        return Err(bad(format!("num_instances must be 1 to 1000, not {n}.")));
    }
    let group = body.scheduler_hints.get("group").and_then(|g| {
        g.as_str().or_else(|| g.as_array().and_then(|a| a.first()).and_then(Value::as_str)).map(str::to_owned)
    });
    let groups = match &group {
        Some(g) if !r.groups.contains_key(g) => {
            return Err(not_found(format!("No server group {g}.")));
        }
        Some(g) => engine_groups(&r, g, &[]),
        None => Groups::default(),
    };
    let mut hints: std::collections::BTreeMap<String, Value> = body.scheduler_hints.clone().into_iter().collect();
    if let Some(g) = group {
        hints.insert("group".into(), Value::String(g));
    }
    let req = BootRequest {
        id: Some("explain".into()),
        flavor: engine_flavor(f),
        image,
        project_id: Some(ctx.project_id.clone()),
        user_id: Some(ctx.user_id.clone()),
        availability_zone: body.availability_zone.clone().filter(|z| !z.is_empty()),
        scheduler_hints: hints,
        num_instances: n,
        instance_uuids: Vec::new(),
        is_bfv: false,
    };
    Ok((req, groups))
}

/// Explains `body` on a snapshot of the live fleet.
fn explain_now(api: &ComputeApi, ctx: &Ctx, body: &ExplainBody) -> Result<Value, Refusal> {
    let internal = |e: String| Refusal(StatusCode::INTERNAL_SERVER_ERROR, "quiver.internal", e);
    let conf = {
        let mut st = api.conductor.lock();
        catch_up(&mut st, api).map_err(internal)?;
        st.scheduler().config().clone()
    };
    let (req, groups) = request(api, ctx, body)?;
    let rr = quiver_engine::resource_request::from_flavor(&req.flavor, req.is_bfv);
    let mut scheduler = Scheduler::new(conf, 0).map_err(|e| internal(e.to_string()))?;
    // On the one live fleet, under its lock, as the conductor decides: no
    // copy of the fleet per request; the decision leaves it as it was.
    let e = api.placement.with_fleet(|state, fleet| {
        let numbered = rr.as_ref().ok().filter(|rr| !rr.numbered.is_empty());
        let within = numbered.map(|rr| tree_candidates(state, fleet, rr).map(|t| t.within)).transpose().map_err(bad)?;
        Ok(scheduler.explain(fleet, &groups, &req, 0, &body.hosts, within.as_ref()))
    })?;
    serde_json::to_value(&e).map_err(|e| internal(e.to_string()))
}

/// `POST /v1/explain`.
pub async fn explain(
    State(api): State<Arc<ComputeApi>>,
    axum::Extension(ctx): axum::Extension<Ctx>,
    body: Bytes,
) -> Response {
    if !ctx.is_admin {
        return forbidden("quiver:explain");
    }
    let body: ExplainBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return bad(format!("The request body is not a valid explain request: {e}")).into_response(),
    };
    if body.hosts.len() > MAX_NAMED_HOSTS {
        return bad(format!("At most {MAX_NAMED_HOSTS} hosts may be named, not {}.", body.hosts.len())).into_response();
    }
    match tokio::task::spawn_blocking(move || explain_now(&api, &ctx, &body)).await {
        Ok(Ok(v)) => axum::Json(v).into_response(),
        Ok(Err(r)) => r.into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "quiver.internal", e.to_string()),
    }
}
