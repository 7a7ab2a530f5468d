//! Hypervisors (`/os-hypervisors`): one per compute node, with its size
//! from the agent and its usage from Placement.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::http::{ApiResult, Ctx, NovaError, reply};
use super::records::{Records, Service};
use super::{ComputeApi, is_down};

fn view(api: &ComputeApi, r: &Records, s: &Service, ctx: &Ctx, detail: bool) -> Value {
    let id = if ctx.at_least(2, 53) { json!(s.compute_node_uuid) } else { json!(s.compute_node_id) };
    let state = if is_down(s, api.config.scheduler.service_down_time) { "down" } else { "up" };
    let status = if s.disabled { "disabled" } else { "enabled" };
    let mut v = json!({"id": id, "hypervisor_hostname": s.hypervisor.nodename, "state": state, "status": status});
    if !detail {
        return v;
    }
    let (used, total) = api.placement.read(|st| {
        let mut used = [0i64; 3];
        let mut total = [0i64; 3];
        if let Some(p) = st.provider_by_uuid(&s.compute_node_uuid) {
            for rec in &p.inventories {
                let i = match st.class_name(rec.class) {
                    "VCPU" => 0,
                    "MEMORY_MB" => 1,
                    "DISK_GB" => 2,
                    _ => continue,
                };
                used[i] = rec.used;
                total[i] = rec.inv.total;
                if i > 0 {
                    used[i] += rec.inv.reserved;
                }
            }
        }
        (used, total)
    });
    let running = r.servers.values().filter(|x| x.host.as_deref() == Some(s.host.as_str())).count();
    let service_id = if ctx.at_least(2, 53) { json!(s.uuid) } else { json!(s.id) };
    v["hypervisor_type"] = json!(s.hypervisor.hypervisor_type);
    v["hypervisor_version"] = json!(s.hypervisor.hypervisor_version);
    v["host_ip"] = json!("127.0.0.1");
    v["service"] = json!({"id": service_id, "host": s.host, "disabled_reason": s.disabled_reason});
    if !ctx.at_least(2, 88) {
        v["vcpus"] = json!(total[0]);
        v["memory_mb"] = json!(total[1]);
        v["local_gb"] = json!(total[2]);
        v["vcpus_used"] = json!(used[0]);
        v["memory_mb_used"] = json!(used[1]);
        v["local_gb_used"] = json!(used[2]);
        v["free_ram_mb"] = json!(total[1] - used[1]);
        v["free_disk_gb"] = json!(total[2] - used[2]);
        v["current_workload"] = json!(0);
        v["running_vms"] = json!(running);
        v["disk_available_least"] = json!(total[2] - used[2]);
        v["cpu_info"] = if ctx.at_least(2, 28) {
            serde_json::from_str(&s.hypervisor.cpu_info).unwrap_or(json!({}))
        } else {
            json!(s.hypervisor.cpu_info)
        };
    } else {
        v["uptime"] = json!(null);
    }
    v
}

fn listing(api: &ComputeApi, ctx: &Ctx, detail: bool) -> ApiResult {
    ctx.require_admin("os_compute_api:os-hypervisors:list")?;
    let r = api.records();
    let v: Vec<Value> = r.services.values().map(|s| view(api, &r, s, ctx, detail)).collect();
    reply(StatusCode::OK, json!({"hypervisors": v}))
}

pub async fn list(State(api): State<Arc<ComputeApi>>, Extension(ctx): Extension<Ctx>) -> ApiResult {
    listing(&api, &ctx, false)
}

pub async fn detail(State(api): State<Arc<ComputeApi>>, Extension(ctx): Extension<Ctx>) -> ApiResult {
    listing(&api, &ctx, true)
}

pub async fn show(
    State(api): State<Arc<ComputeApi>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> ApiResult {
    ctx.require_admin("os_compute_api:os-hypervisors:show")?;
    let r = api.records();
    let s = r
        .services
        .values()
        .find(|s| s.compute_node_uuid == id || s.compute_node_id.to_string() == id)
        .ok_or_else(|| NovaError::not_found(format!("Hypervisor with ID '{id}' could not be found.")))?;
    reply(StatusCode::OK, json!({"hypervisor": view(&api, &r, s, &ctx, true)}))
}
