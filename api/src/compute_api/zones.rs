//! Availability zones (`/os-availability-zone`): the zones of aggregates,
//! and the default zone while some host is in none.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::http::{ApiResult, Ctx, reply};
use super::records::iso;
use super::{ComputeApi, host_zone, is_down, zones};

pub async fn list(State(api): State<Arc<ComputeApi>>) -> ApiResult {
    let r = api.records();
    let v: Vec<Value> = zones(&r)
        .into_iter()
        .map(|z| json!({"zoneName": z, "zoneState": {"available": true}, "hosts": null}))
        .collect();
    reply(StatusCode::OK, json!({"availabilityZoneInfo": v}))
}

pub async fn detail(State(api): State<Arc<ComputeApi>>, Extension(ctx): Extension<Ctx>) -> ApiResult {
    ctx.require_admin("os_compute_api:os-availability-zone:detail")?;
    let r = api.records();
    let down_time = api.config.scheduler.service_down_time;
    let v: Vec<Value> = zones(&r)
        .into_iter()
        .map(|z| {
            let mut hosts = Map::new();
            for s in r.services.values().filter(|s| host_zone(&r, &s.host) == z) {
                hosts.insert(
                    s.host.clone(),
                    json!({"nova-compute": {"available": !is_down(s, down_time), "active": !s.disabled,
                                            "updated_at": iso(s.last_seen)}}),
                );
            }
            json!({"zoneName": z, "zoneState": {"available": true}, "hosts": hosts})
        })
        .collect();
    reply(StatusCode::OK, json!({"availabilityZoneInfo": v}))
}
