//! The OpenStack Placement API over HTTP (axum): one route table, one file
//! per resource, microversions negotiated at the edge, and every error
//! rendered as Placement's JSON error body.

mod aggregates;
mod allocations;
mod candidates;
mod classes;
mod http;
mod inventories;
pub mod policy;
mod providers;
mod reshaper;
pub mod schemas;
mod traits;
mod usages;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, Response};

pub use http::{ApiError, Req, Resp, Version};
use quiver_placement::Placement;

/// Oldest and newest microversions served.
pub const MIN_VERSION: Version = (1, 0);
pub const MAX_VERSION: Version = (1, 39);

/// Everything a request handler needs.
pub struct PlacementApi {
    pub placement: std::sync::Arc<Placement>,
    pub policy: policy::Policy,
    pub cors: Option<Cors>,
    pub metrics: Metrics,
    /// Bodies above this many bytes are refused with a 400.
    pub max_body_bytes: usize,
}

/// CORS as oslo.middleware configures it: allowed origins and headers.
#[derive(Clone, Debug, Default)]
pub struct Cors {
    pub allowed_origins: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub allow_methods: Vec<String>,
    pub max_age: Option<u64>,
    pub allow_credentials: bool,
}

/// Request counters for `/metrics` (Prometheus text format).
#[derive(Default)]
pub struct Metrics {
    pub requests: AtomicU64,
    pub errors_4xx: AtomicU64,
    pub errors_5xx: AtomicU64,
    pub candidates_requests: AtomicU64,
    pub candidates_micros: AtomicU64,
    pub write_requests: AtomicU64,
    /// Handlers that panicked (answered 500).
    pub panics: AtomicU64,
}

impl Metrics {
    pub fn render(&self, api: &PlacementApi) -> String {
        let (providers, consumers, epoch) =
            api.placement.read(|s| (s.live_providers().count(), s.consumers.len(), s.epoch));
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let feed = if api.placement.has_change_feed() {
            change_feed_metrics(&api.placement.feed_stats().status())
        } else {
            String::new()
        };
        format!(
            "# HELP quiver_placement_requests_total HTTP requests served by the Placement API.\n\
             # TYPE quiver_placement_requests_total counter\n\
             quiver_placement_requests_total {}\n\
             # HELP quiver_placement_responses_total Responses by status class.\n\
             # TYPE quiver_placement_responses_total counter\n\
             quiver_placement_responses_total{{class=\"4xx\"}} {}\n\
             quiver_placement_responses_total{{class=\"5xx\"}} {}\n\
             # HELP quiver_placement_writes_total Write requests (POST, PUT, DELETE).\n\
             # TYPE quiver_placement_writes_total counter\n\
             quiver_placement_writes_total {}\n\
             # HELP quiver_allocation_candidates_requests_total GET /allocation_candidates served.\n\
             # TYPE quiver_allocation_candidates_requests_total counter\n\
             quiver_allocation_candidates_requests_total {}\n\
             # HELP quiver_allocation_candidates_seconds_total Time spent answering them.\n\
             # TYPE quiver_allocation_candidates_seconds_total counter\n\
             quiver_allocation_candidates_seconds_total {}\n\
             # HELP quiver_placement_resource_providers Resource providers in the store.\n\
             # TYPE quiver_placement_resource_providers gauge\n\
             quiver_placement_resource_providers {providers}\n\
             # HELP quiver_placement_consumers Consumers with allocations.\n\
             # TYPE quiver_placement_consumers gauge\n\
             quiver_placement_consumers {consumers}\n\
             # HELP quiver_placement_state_epoch Committed writes since start.\n\
             # TYPE quiver_placement_state_epoch counter\n\
             quiver_placement_state_epoch {epoch}\n\
             # HELP quiver_handler_panics_total Requests whose handler panicked (answered 500).\n\
             # TYPE quiver_handler_panics_total counter\n\
             quiver_handler_panics_total {}\n{feed}",
            g(&self.requests),
            g(&self.errors_4xx),
            g(&self.errors_5xx),
            g(&self.write_requests),
            g(&self.candidates_requests),
            g(&self.candidates_micros) as f64 / 1e6,
            g(&self.panics),
        )
    }
}

/// This replica's place in the change feed of a shared database.
fn change_feed_metrics(s: &quiver_placement::follower::FeedStatus) -> String {
    let mut out = format!(
        "# HELP quiver_change_feed_applied_seq The newest change of the shared database this replica's memory holds.\n\
         # TYPE quiver_change_feed_applied_seq gauge\n\
         quiver_change_feed_applied_seq {}\n\
         # HELP quiver_change_feed_lag_changes Changes committed that this replica has seen but not applied yet.\n\
         # TYPE quiver_change_feed_lag_changes gauge\n\
         quiver_change_feed_lag_changes {}\n\
         # HELP quiver_change_feed_applied_total Other replicas' changes applied since start.\n\
         # TYPE quiver_change_feed_applied_total counter\n\
         quiver_change_feed_applied_total {}\n\
         # HELP quiver_change_feed_freshness_checks_total Reads of the newest change made before answering requests.\n\
         # TYPE quiver_change_feed_freshness_checks_total counter\n\
         quiver_change_feed_freshness_checks_total {}\n\
         # HELP quiver_change_feed_freshness_seconds_total Time those reads took.\n\
         # TYPE quiver_change_feed_freshness_seconds_total counter\n\
         quiver_change_feed_freshness_seconds_total {}\n",
        s.applied,
        (s.latest - s.applied).max(0),
        s.applied_total,
        s.freshness_checks,
        s.freshness_seconds,
    );
    if let (Some(p50), Some(p99)) = (s.lag_p50_ms, s.lag_p99_ms) {
        out.push_str(&format!(
            "# HELP quiver_change_feed_lag_seconds Commit-to-apply delay of other replicas' recent changes.\n\
             # TYPE quiver_change_feed_lag_seconds summary\n\
             quiver_change_feed_lag_seconds{{quantile=\"0.5\"}} {}\n\
             quiver_change_feed_lag_seconds{{quantile=\"0.99\"}} {}\n",
            p50 / 1e3,
            p99 / 1e3
        ));
    }
    out
}

/// The Placement API as an axum router (tests call it with `oneshot`).
pub fn app(api: Arc<PlacementApi>) -> Router {
    Router::new().fallback(serve).with_state(api)
}

async fn serve(State(api): State<Arc<PlacementApi>>, req: Request<Body>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let limit = api.max_body_bytes;
    let body = match axum::body::to_bytes(body, limit + 1).await {
        Ok(b) => b,
        Err(_) => {
            return http::too_large(limit);
        }
    };
    let api2 = api.clone();
    let (method, path) = (parts.method.clone(), parts.uri.path().to_owned());
    match tokio::task::spawn_blocking(move || http::handle(&api2, parts, body)).await {
        Ok(r) => r,
        Err(e) => {
            let request_id = format!("req-{}", uuid::Uuid::new_v4());
            api.metrics.panics.fetch_add(1, Ordering::Relaxed);
            api.metrics.errors_5xx.fetch_add(1, Ordering::Relaxed);
            tracing::error!(%request_id, %method, path, error = %e, "handler panicked");
            let mut r = http::internal_error();
            if let Ok(v) = axum::http::HeaderValue::from_str(&request_id) {
                r.headers_mut().insert("x-openstack-request-id", v);
            }
            r
        }
    }
}

/// Dispatches one request to its handler (the route table).
pub(crate) fn route(req: &mut Req) -> Result<Resp, ApiError> {
    let segs: Vec<String> = req.segments.clone();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = req.method.as_str();
    macro_rules! methods {
        ($($meth:literal => $h:expr),+ $(,)?) => {{
            match m {
                $($meth => $h,)+
                _ => Err(ApiError::method_not_allowed(m, &[$($meth),+])),
            }
        }};
    }
    match s.as_slice() {
        [] => methods!("GET" => http::home(req)),
        ["resource_classes"] => methods!("GET" => classes::list(req), "POST" => classes::create(req)),
        ["resource_classes", name] => {
            methods!("GET" => classes::show(req, name), "PUT" => classes::update(req, name), "DELETE" => classes::delete(req, name))
        }
        ["resource_providers"] => methods!("GET" => providers::list(req), "POST" => providers::create(req)),
        ["resource_providers", uuid] => methods!(
            "GET" => providers::show(req, uuid),
            "DELETE" => providers::delete(req, uuid),
            "PUT" => providers::update(req, uuid)
        ),
        ["resource_providers", uuid, "inventories"] => methods!(
            "GET" => inventories::list(req, uuid),
            "POST" => inventories::create(req, uuid),
            "PUT" => inventories::set_all(req, uuid),
            "DELETE" => inventories::delete_all(req, uuid)
        ),
        ["resource_providers", uuid, "inventories", rc] => methods!(
            "GET" => inventories::show(req, uuid, rc),
            "PUT" => inventories::update(req, uuid, rc),
            "DELETE" => inventories::delete(req, uuid, rc)
        ),
        ["resource_providers", uuid, "usages"] => methods!("GET" => usages::for_provider(req, uuid)),
        ["resource_providers", uuid, "aggregates"] => {
            methods!("GET" => aggregates::list(req, uuid), "PUT" => aggregates::set(req, uuid))
        }
        ["resource_providers", uuid, "allocations"] => methods!("GET" => allocations::for_provider(req, uuid)),
        ["resource_providers", uuid, "traits"] => methods!(
            "GET" => traits::for_provider(req, uuid),
            "PUT" => traits::set_for_provider(req, uuid),
            "DELETE" => traits::delete_for_provider(req, uuid)
        ),
        ["allocations"] => methods!("POST" => allocations::post(req)),
        ["allocations", consumer] => methods!(
            "GET" => allocations::for_consumer(req, consumer),
            "PUT" => allocations::put(req, consumer),
            "DELETE" => allocations::delete(req, consumer)
        ),
        ["allocation_candidates"] => methods!("GET" => candidates::list(req)),
        ["traits"] => methods!("GET" => traits::list(req)),
        ["traits", name] => {
            methods!("GET" => traits::show(req, name), "PUT" => traits::put(req, name), "DELETE" => traits::delete(req, name))
        }
        ["usages"] => methods!("GET" => usages::totals(req)),
        ["reshaper"] => methods!("POST" => reshaper::reshape(req)),
        _ => Err(ApiError::not_found("The resource could not be found.")),
    }
}
