//! Image pre-caching for an aggregate (`POST /os-aggregates/{id}/images`,
//! 2.81, Nova's conductor `cache_images`): every up host of the aggregate
//! has its agent fetch the images into the host's base-image cache ahead
//! of boots, `[image_cache] precache_concurrency` hosts at a time. Hosts
//! that are down are skipped. Progress is reported as Nova's
//! `aggregate.cache_progress` notifications report it, one structured log
//! line per host finished (with the host's per-image results), and in
//! `/metrics` (`quiver_image_precache_total`, by outcome).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use quiver_compute_agent::image_cache::ImageFetch;
use serde_json::Value;

use super::ComputeApi;
use super::http::{ApiResult, Ctx, NovaError, body, empty};

/// The outcomes counted in `/metrics`, in [`super::ComputeMetrics::precache`]'s order.
pub const OUTCOMES: [&str; 5] = ["cached", "existing", "error", "unsupported", "skipped"];

/// The token agents fetch image data with under noauth2: its admin.
const NOAUTH_IMAGE_TOKEN: &str = "admin";

/// The token agents fetch image data with: under Keystone the service
/// user's (renewed when due), else noauth2's admin token.
async fn image_token(api: &ComputeApi) -> Result<String, NovaError> {
    match api.auth.get().and_then(|a| a.keystone()) {
        Some(k) => k.service_token(false).await.map_err(|e| {
            NovaError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("Cannot get a service token for the image fetches: {e}"),
            )
        }),
        None => Ok(NOAUTH_IMAGE_TOKEN.to_owned()),
    }
}

/// The request's image ids: Nova's `{"cache": [{"id": ...}, ...]}`, at
/// least one, no duplicates.
fn parse(raw: &[u8]) -> Result<Vec<String>, NovaError> {
    let b: Value = body(raw)?;
    let bad = |m: &str| NovaError::bad_request(format!("Invalid input for field/attribute cache. {m}"));
    let Value::Object(o) = &b else { return Err(bad("The body must be an object")) };
    if let Some(k) = o.keys().find(|k| *k != "cache") {
        return Err(bad(&format!("Additional properties are not allowed ('{k}' was unexpected)")));
    }
    let Some(Value::Array(items)) = o.get("cache") else { return Err(bad("'cache' is a required array")) };
    if items.is_empty() {
        return Err(bad("[] is too short"));
    }
    let mut ids = Vec::with_capacity(items.len());
    for item in items {
        let id = match item {
            Value::Object(i) if i.len() == 1 => i.get("id").and_then(Value::as_str),
            _ => None,
        };
        match id {
            Some(id) if uuid::Uuid::parse_str(id).is_ok() => ids.push(id.to_owned()),
            _ => return Err(bad(&format!("{item} is not {{\"id\": <image uuid>}}"))),
        }
    }
    if ids.iter().collect::<BTreeSet<_>>().len() != ids.len() {
        return Err(NovaError::bad_request("Duplicate images in request"));
    }
    Ok(ids)
}

/// `POST /os-aggregates/{id}/images` (admin, 2.81+): 202, then the hosts
/// fetch in the background.
pub async fn images(
    State(api): State<Arc<ComputeApi>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    raw: Bytes,
) -> ApiResult {
    if !ctx.at_least(2, 81) {
        return Err(NovaError::not_found("The resource could not be found."));
    }
    ctx.require_admin("os_compute_api:os-aggregates:images")?;
    let agg: i64 = id.parse().map_err(|_| NovaError::bad_request(format!("Invalid aggregate id {id:?}")))?;
    let ids = parse(&raw)?;
    let Some(endpoint) = api.image_endpoint.get().cloned() else {
        return Err(NovaError::bad_request("This server has no image API for the agents to fetch from."));
    };
    let token = image_token(&api).await?;
    let (hosts, fetches) = {
        let r = api.records();
        let a = r
            .aggregates
            .get(&agg)
            .ok_or_else(|| NovaError::not_found(format!("Aggregate {id} could not be found.")))?;
        let mut fetches = Vec::with_capacity(ids.len());
        for i in &ids {
            match r.images.get(i) {
                Some(img) if img.status == "active" => fetches.push(ImageFetch {
                    id: i.clone(),
                    url: format!("{endpoint}/v2/images/{i}/file"),
                    token: Some(token.clone()),
                    checksum: img.checksum.clone(),
                }),
                Some(img) => {
                    return Err(NovaError::bad_request(format!("Image {i} is not active (status {}).", img.status)));
                }
                None => return Err(NovaError::bad_request(format!("Image {i} could not be found."))),
            }
        }
        (a.hosts.clone(), fetches)
    };
    let api = Arc::clone(&api);
    tokio::task::spawn_blocking(move || cache_images(&api, agg, &hosts, &fetches));
    empty(StatusCode::ACCEPTED)
}

/// Nova's conductor `cache_images`: each up host of the aggregate fetches
/// `images`; the results are logged per host as they come and in all at
/// the end.
fn cache_images(api: &ComputeApi, aggregate: i64, hosts: &[String], images: &[ImageFetch]) {
    let started = Instant::now();
    let ids: Vec<&str> = images.iter().map(|f| f.id.as_str()).collect();
    tracing::info!(aggregate, hosts = hosts.len(), images = ?ids, "pre-caching images on the aggregate's hosts");
    let down_time = api.config.scheduler.service_down_time;
    let completed = AtomicUsize::new(0);
    let totals: std::sync::Mutex<[u64; 5]> = Default::default();
    let one_host = |host: &String| {
        let up = api.records().services.get(host).is_some_and(|s| !super::is_down(s, down_time));
        let every = |outcome: &'static str| images.iter().map(|f| (f.id.clone(), outcome)).collect();
        let results: BTreeMap<String, &str> = if !up {
            every("skipped")
        } else {
            match api.agent(host).map(|a| a.cache_images(host, images)) {
                Some(Ok(r)) => r.into_iter().map(|(k, o)| (k, o.as_str())).collect(),
                Some(Err(e)) => {
                    tracing::warn!(aggregate, host, error = %e, "the agent could not cache images");
                    every("error")
                }
                None => every("error"),
            }
        };
        {
            let mut t = totals.lock().unwrap_or_else(|p| p.into_inner());
            for outcome in results.values() {
                if let Some(i) = OUTCOMES.iter().position(|o| o == outcome) {
                    t[i] += 1;
                    api.metrics.precache[i].fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        api.metrics.precache_hosts.fetch_add(1, Ordering::Relaxed);
        let done = completed.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(
            event = "aggregate.cache_progress",
            aggregate,
            host,
            index = done,
            total = hosts.len(),
            results = ?results,
            "image pre-cache progress"
        );
    };
    let width = api.config.precache_concurrency.max(1);
    for chunk in hosts.chunks(width) {
        std::thread::scope(|s| {
            for host in chunk {
                s.spawn(|| one_host(host));
            }
        });
    }
    let t = *totals.lock().unwrap_or_else(|p| p.into_inner());
    tracing::info!(
        aggregate,
        seconds = started.elapsed().as_secs_f64(),
        cached = t[0],
        existing = t[1],
        error = t[2],
        unsupported = t[3],
        skipped = t[4],
        "image pre-cache finished"
    );
}
