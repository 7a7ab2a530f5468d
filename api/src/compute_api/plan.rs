//! `POST /v1/plan/{drain,headroom,size}` (admin): capacity-planning
//! questions answered on a snapshot of the live fleet (a copy taken under
//! the conductor's lock, so it is the fleet its next decision would see),
//! with the conductor's scheduler options. Nothing live is claimed or
//! changed; the planning runs on the copy.
//!
//! - drain: `{"hosts": [names]}`, `{"aggregate": name}` or `{"zone": name}`:
//!   every server on those hosts moved in Nova's move order (newest first,
//!   as `openstack server list --host` lists them), each with its own
//!   RequestSpec and server group, the drained hosts ignored.
//! - headroom: `{"flavors": [id or name], "limit": N}`.
//! - size: `{"trace_csv": CSV text, "host_shape": {"like": host, "vcpus":
//!   N, "memory_mb": N, "disk_gb": N}, "max_added": N}`.

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use quiver_engine::config::SchedulerConfig;
use quiver_engine::plan::{DrainInstance, describe_shape, drain, headroom, host_shape, nova_move_order, size};
use quiver_engine::request::parse_uuid;
use quiver_engine::sim::policy::Policy;
use quiver_engine::{Fleet, Groups};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::ComputeApi;
use super::conductor::{boot_request, catch_up, engine_flavor, engine_group};
use super::http::Ctx;
use super::query::{Refusal, forbidden};

/// Most hosts one size call may add: every replay builds the fleet with
/// them.
pub const MAX_ADDED: usize = 10_000;

/// Servers one headroom call places per flavor unless it says otherwise.
const DEFAULT_HEADROOM_LIMIT: u64 = 10_000_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DrainBody {
    #[serde(default)]
    hosts: Vec<String>,
    aggregate: Option<String>,
    zone: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeadroomBody {
    flavors: Vec<String>,
    limit: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SizeBody {
    trace_csv: String,
    #[serde(default)]
    host_shape: ShapeBody,
    max_added: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShapeBody {
    like: Option<String>,
    vcpus: Option<i64>,
    memory_mb: Option<i64>,
    disk_gb: Option<i64>,
}

fn bad(detail: impl Into<String>) -> Refusal {
    Refusal(StatusCode::BAD_REQUEST, "quiver.plan.invalid", detail.into())
}

fn not_found(detail: impl Into<String>) -> Refusal {
    Refusal(StatusCode::NOT_FOUND, "quiver.plan.not_found", detail.into())
}

fn internal(detail: impl Into<String>) -> Refusal {
    Refusal(StatusCode::INTERNAL_SERVER_ERROR, "quiver.internal", detail.into())
}

/// A copy of the live fleet as the conductor's next decision would see it,
/// and the conductor's scheduler options.
fn snapshot(api: &ComputeApi) -> Result<(Fleet, SchedulerConfig), Refusal> {
    let mut st = api.conductor.lock();
    catch_up(&mut st, api).map_err(internal)?;
    let conf = st.scheduler().config().clone();
    Ok((api.placement.read_with_fleet(|_, f| f.clone()), conf))
}

/// The drained hosts' rows, from exactly one of hosts, aggregate, zone.
fn sources(fleet: &Fleet, b: &DrainBody) -> Result<Vec<usize>, Refusal> {
    let given = [!b.hosts.is_empty(), b.aggregate.is_some(), b.zone.is_some()];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(bad("Give exactly one of hosts (a non-empty list), aggregate or zone."));
    }
    if let Some(name) = &b.aggregate {
        return fleet.hosts_in_aggregate(name).ok_or_else(|| not_found(format!("No aggregate {name}.")));
    }
    if let Some(zone) = &b.zone {
        let rows = fleet.hosts_in_zone(zone);
        if rows.is_empty() {
            return Err(not_found(format!("No compute host in availability zone {zone}.")));
        }
        return Ok(rows);
    }
    let mut rows = Vec::with_capacity(b.hosts.len());
    for h in &b.hosts {
        match fleet.index_of(h).filter(|&r| fleet.is_live(r)) {
            Some(r) if !rows.contains(&r) => rows.push(r),
            Some(_) => return Err(bad(format!("Host {h} is named twice."))),
            None => return Err(not_found(format!("Compute host {h} could not be found."))),
        }
    }
    Ok(rows)
}

fn drain_now(api: &ComputeApi, body: &DrainBody) -> Result<Value, Refusal> {
    let (fleet, conf) = snapshot(api)?;
    let rows = sources(&fleet, body)?;
    let names: HashSet<&str> = rows.iter().map(|&h| fleet.name(h)).collect();
    let (mut instances, groups) = {
        let r = api.records();
        let instances: Vec<(DrainInstance, (String, String))> = r
            .servers
            .values()
            .filter_map(|s| {
                let host = fleet.index_of(s.host.as_deref().filter(|h| names.contains(h))?)?;
                let inst = DrainInstance {
                    uuid: parse_uuid(&s.id)?,
                    name: s.name.clone(),
                    host,
                    request: boot_request(&r, std::slice::from_ref(s)),
                };
                Some((inst, (s.created.clone(), s.id.clone())))
            })
            .collect();
        let groups: Vec<quiver_engine::ServerGroup> = r.groups.values().map(engine_group).collect();
        (instances, Groups::new(&groups).map_err(|e| internal(e.to_string()))?)
    };
    nova_move_order(&mut instances, &rows);
    let instances: Vec<DrainInstance> = instances.into_iter().map(|(i, _)| i).collect();
    let d = drain(&fleet, &conf, &groups, &rows, &instances, 0).map_err(|e| bad(e.to_string()))?;
    serde_json::to_value(&d).map_err(|e| internal(e.to_string()))
}

fn headroom_now(api: &ComputeApi, body: &HeadroomBody) -> Result<Value, Refusal> {
    if body.flavors.is_empty() {
        return Err(bad("flavors: give at least one flavor id or name."));
    }
    let requests = {
        let r = api.records();
        body.flavors
            .iter()
            .map(|f| {
                let flavor = r.flavors.get(f).or_else(|| r.flavors.values().find(|x| &x.name == f));
                flavor
                    .map(|x| quiver_engine::BootRequest { flavor: engine_flavor(x), ..Default::default() })
                    .ok_or_else(|| not_found(format!("No flavor {f}.")))
            })
            .collect::<Result<Vec<_>, _>>()?
    };
    let (fleet, conf) = snapshot(api)?;
    let limit = body.limit.unwrap_or(DEFAULT_HEADROOM_LIMIT);
    let results = requests
        .iter()
        .map(|req| headroom(&fleet, &conf, req, 0, Some(limit), true).map_err(|e| bad(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!({ "flavors": results }))
}

fn size_now(api: &ComputeApi, body: &SizeBody) -> Result<Value, Refusal> {
    let workload =
        quiver_datasets::trace::parse_trace_csv(&body.trace_csv, "trace_csv").map_err(|e| bad(e.to_string()))?;
    if workload.requests.is_empty() {
        return Err(bad("trace_csv: the trace has no request."));
    }
    let (fleet, conf) = snapshot(api)?;
    let shape = &body.host_shape;
    let template = match &shape.like {
        Some(h) => fleet
            .index_of(h)
            .filter(|&r| fleet.is_live(r))
            .ok_or_else(|| not_found(format!("host_shape.like: compute host {h} could not be found.")))?,
        None => (0..fleet.len())
            .find(|&h| fleet.is_live(h))
            .ok_or_else(|| bad("host_shape.like: the fleet has no host to copy; name one."))?,
    };
    let rec = host_shape(&fleet.host_record(template), shape.vcpus, shape.memory_mb, shape.disk_gb)
        .map_err(|e| bad(e.to_string()))?;
    let described = describe_shape(&rec, fleet.name(template));
    let max_added = body.max_added.unwrap_or_else(|| (fleet.live_len() * 10).clamp(100, MAX_ADDED));
    if max_added > MAX_ADDED {
        return Err(bad(format!("max_added must be at most {MAX_ADDED}, not {max_added}.")));
    }
    let policy = Policy { name: "live".into(), conf, ratios: Default::default() };
    let s = size(&fleet, &policy, &workload, &rec, &described, max_added, 0, true, &mut |_, _| {})
        .map_err(|e| bad(e.to_string()))?;
    serde_json::to_value(&s).map_err(|e| internal(e.to_string()))
}

/// Parses the body, then runs `work` off the async runtime; admins only.
async fn answer<B: DeserializeOwned + Send + 'static>(
    api: Arc<ComputeApi>,
    ctx: &Ctx,
    body: &[u8],
    rule: &str,
    work: fn(&ComputeApi, &B) -> Result<Value, Refusal>,
) -> Response {
    if !ctx.is_admin {
        return forbidden(rule);
    }
    let body: B = match serde_json::from_slice(body) {
        Ok(b) => b,
        Err(e) => return bad(format!("The request body is not valid for {rule}: {e}")).into_response(),
    };
    match tokio::task::spawn_blocking(move || work(&api, &body)).await {
        Ok(Ok(v)) => axum::Json(v).into_response(),
        Ok(Err(r)) => r.into_response(),
        Err(e) => internal(e.to_string()).into_response(),
    }
}

/// `POST /v1/plan/drain`.
pub async fn plan_drain(
    State(api): State<Arc<ComputeApi>>,
    axum::Extension(ctx): axum::Extension<Ctx>,
    body: Bytes,
) -> Response {
    answer(api, &ctx, &body, "quiver:plan:drain", drain_now).await
}

/// `POST /v1/plan/headroom`.
pub async fn plan_headroom(
    State(api): State<Arc<ComputeApi>>,
    axum::Extension(ctx): axum::Extension<Ctx>,
    body: Bytes,
) -> Response {
    answer(api, &ctx, &body, "quiver:plan:headroom", headroom_now).await
}

/// `POST /v1/plan/size`.
pub async fn plan_size(
    State(api): State<Arc<ComputeApi>>,
    axum::Extension(ctx): axum::Extension<Ctx>,
    body: Bytes,
) -> Response {
    answer(api, &ctx, &body, "quiver:plan:size", size_now).await
}
