//! Quota sets (`/os-quota-sets`) for instances, cores and ram, with Nova's
//! defaults, and the check a create makes (Nova's
//! `check_num_instances_quota`: as many as fit between min and max count).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::ComputeApi;
use super::http::{ApiResult, Ctx, NovaError, body, reply};
use super::records::{Flavor, QuotaSet, Records};

/// Counted classes, then the fixed ones Nova also shows.
const COUNTED: [&str; 3] = ["instances", "cores", "ram"];
const FIXED: [(&str, i64); 7] = [
    ("metadata_items", 128),
    ("key_pairs", 100),
    ("server_groups", 10),
    ("server_group_members", 10),
    ("injected_files", 5),
    ("injected_file_content_bytes", 10240),
    ("injected_file_path_bytes", 255),
];

fn default_limits(api: &ComputeApi) -> BTreeMap<String, i64> {
    let q = &api.config.quota;
    let mut m: BTreeMap<String, i64> = [("instances", q.instances), ("cores", q.cores), ("ram", q.ram)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    m.extend(FIXED.iter().map(|(k, v)| (k.to_string(), *v)));
    m
}

/// A project's limits and what its servers use.
pub fn usage(api: &ComputeApi, project: &str) -> (BTreeMap<String, i64>, BTreeMap<String, i64>) {
    usage_in(api, &api.records(), project)
}

/// [`usage`] from records the caller holds (under the write lock, so the
/// check and the write that follows are one step).
pub fn usage_in(api: &ComputeApi, r: &Records, project: &str) -> (BTreeMap<String, i64>, BTreeMap<String, i64>) {
    let mut limits = default_limits(api);
    if let Some(q) = r.quotas.get(project) {
        limits.extend(q.limits.clone());
    }
    // project_usage counts in COUNTED's order
    let used = COUNTED.iter().zip(r.project_usage(project)).map(|(k, v)| (k.to_string(), v)).collect();
    (limits, used)
}

/// How many servers of `flavor` the project may create, between `min` and
/// `max`; Nova's 403 when not even `min` fit. Call it with the records'
/// write lock held and insert the servers under the same lock: racing
/// creates for the last slots cannot both pass.
pub fn instances_allowed(
    api: &ComputeApi,
    r: &Records,
    project: &str,
    flavor: &Flavor,
    min: u32,
    max: u32,
) -> Result<u32, NovaError> {
    let (limits, used) = usage_in(api, r, project);
    let per = [("instances", 1i64), ("cores", flavor.vcpus as i64), ("ram", flavor.ram as i64)];
    let mut allowed = max as i64;
    let mut worst = None;
    for (k, each) in per {
        let limit = limits[k];
        if limit < 0 || each == 0 {
            continue;
        }
        let fit = (limit - used[k]).max(0) / each;
        if fit < allowed {
            allowed = fit;
        }
        if fit < min as i64 && worst.is_none() {
            worst = Some((k, each * min as i64, used[k], limit));
        }
    }
    if let Some((k, req, u, l)) = worst {
        return Err(over_quota(k, req, u, l));
    }
    Ok(allowed.clamp(min as i64, max as i64) as u32)
}

/// Nova's `TooManyInstances` (403).
fn over_quota(k: &str, requested: i64, used: i64, limit: i64) -> NovaError {
    NovaError::forbidden(format!(
        "Quota exceeded for {k}: Requested {requested}, but already used {used} of {limit} {k}"
    ))
}

/// Nova's `_check_quota_for_upsize`: a resize may grow the project's
/// cores and ram only within its quota (a smaller flavor always passes).
///
/// Like [`instances_allowed`], under the records' write lock.
///
/// # Errors
/// The growth does not fit (403).
pub fn check_upsize(api: &ComputeApi, r: &Records, project: &str, old: &Flavor, new: &Flavor) -> Result<(), NovaError> {
    let (limits, used) = usage_in(api, r, project);
    let deltas =
        [("cores", i64::from(new.vcpus) - i64::from(old.vcpus)), ("ram", i64::from(new.ram) - i64::from(old.ram))];
    for (k, delta) in deltas {
        let limit = limits[k];
        if delta > 0 && limit >= 0 && used[k] + delta > limit {
            return Err(over_quota(k, delta, used[k], limit));
        }
    }
    Ok(())
}

fn check_project(ctx: &Ctx, project: &str) -> Result<(), NovaError> {
    if ctx.is_admin || ctx.project_id == project {
        Ok(())
    } else {
        Err(NovaError::forbidden("Policy doesn't allow os_compute_api:os-quota-sets:show to be performed."))
    }
}

pub async fn show(
    State(api): State<Arc<ComputeApi>>,
    Extension(ctx): Extension<Ctx>,
    Path(project): Path<String>,
) -> ApiResult {
    check_project(&ctx, &project)?;
    let (limits, _) = usage(&api, &project);
    let mut v = json!(limits);
    v["id"] = json!(project);
    reply(StatusCode::OK, json!({"quota_set": v}))
}

pub async fn defaults(State(api): State<Arc<ComputeApi>>, Path(project): Path<String>) -> ApiResult {
    let mut v = json!(default_limits(&api));
    v["id"] = json!(project);
    reply(StatusCode::OK, json!({"quota_set": v}))
}

pub async fn detail(
    State(api): State<Arc<ComputeApi>>,
    Extension(ctx): Extension<Ctx>,
    Path(project): Path<String>,
) -> ApiResult {
    check_project(&ctx, &project)?;
    let (limits, used) = usage(&api, &project);
    let mut v = serde_json::Map::new();
    for (k, l) in limits {
        v.insert(k.clone(), json!({"limit": l, "in_use": used.get(&k).copied().unwrap_or(0), "reserved": 0}));
    }
    v.insert("id".into(), json!(project));
    reply(StatusCode::OK, json!({"quota_set": v}))
}

pub async fn update(
    State(api): State<Arc<ComputeApi>>,
    Extension(ctx): Extension<Ctx>,
    Path(project): Path<String>,
    raw: Bytes,
) -> ApiResult {
    ctx.require_admin("os_compute_api:os-quota-sets:update")?;
    let b: Value = body(&raw)?;
    let Some(q) = b.get("quota_set").and_then(Value::as_object) else {
        return Err(NovaError::bad_request(
            "Invalid input for field/attribute quota_set: 'quota_set' is a required property",
        ));
    };
    let known = default_limits(&api);
    // Read and written under one guard: another replica's update of the
    // same project cannot land in between.
    let mut r = api.records_mut();
    let mut set =
        r.quotas.get(&project).cloned().unwrap_or(QuotaSet { project: project.clone(), limits: BTreeMap::new() });
    for (k, v) in q {
        if k == "force" {
            continue;
        }
        if !known.contains_key(k) {
            return Err(NovaError::bad_request(format!(
                "Additional properties are not allowed ('{k}' was unexpected)"
            )));
        }
        let n =
            v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())).filter(|n| *n >= -1).ok_or_else(|| {
                NovaError::bad_request(format!(
                    "Invalid input for field/attribute {k}. Value: {v}. It must be an integer >= -1"
                ))
            })?;
        set.limits.insert(k.clone(), n);
    }
    r.save(&set)?;
    r.quotas.insert(project.clone(), set);
    drop(r);
    let (limits, _) = usage(&api, &project);
    reply(StatusCode::OK, json!({"quota_set": limits}))
}
