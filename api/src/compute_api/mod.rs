//! A subset of the OpenStack Compute API (Nova, microversions 2.1 to 2.90)
//! on Nova's port, and the Glance v2 image calls clients use, over the same
//! state: one route table, one file per resource, Nova's error bodies.
//!
//! Boots flow through [`conductor`] (scheduler, Placement claim, agent);
//! compute agents report through [`agents`].

pub mod agents;
pub mod agents_http;
mod aggregates;
pub mod conductor;
pub mod create;
mod explain;
mod flavors;
pub mod http;
mod hypervisors;
mod images;
pub mod instance_actions;
pub mod live_fleet;
mod migrations;
pub mod moves;
mod orphans;
pub mod panic_guard;
mod plan;
pub use plan::MAX_ADDED as PLAN_MAX_ADDED;
pub mod precache;
pub mod query;
mod quotas;
pub mod rebuild;
pub mod record_store;
pub mod records;
mod server_groups;
mod servers;
mod services;
pub mod shelve;
pub mod tree_candidates;
mod zones;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use quiver_compute_agent::protocol::AgentApi;
use quiver_engine::SchedulerConfig;
use serde_json::json;

use http::{ApiResult, reply};
use quiver_placement::Placement;
use records::{Records, Service};

/// Nova's `[quota]` defaults for the classes Quiver counts.
#[derive(Clone, Debug)]
pub struct QuotaDefaults {
    pub instances: i64,
    pub cores: i64,
    pub ram: i64,
}

impl Default for QuotaDefaults {
    fn default() -> Self {
        Self { instances: 10, cores: 20, ram: 51200 }
    }
}

/// Options of the compute side, by Nova's names.
#[derive(Clone, Debug)]
pub struct ComputeConfig {
    /// `[filter_scheduler]`, `[scheduler]`, `[DEFAULT] service_down_time`...
    pub scheduler: SchedulerConfig,
    /// `[DEFAULT] default_availability_zone`.
    pub default_availability_zone: String,
    /// `[quota]`.
    pub quota: QuotaDefaults,
    /// `[DEFAULT] shelved_offload_time`: seconds a shelved server keeps its
    /// host before it is offloaded (0: at once; -1: never).
    pub shelved_offload_time: i64,
    /// `[libvirt] live_migration_bandwidth`: MiB/s a live migration copies
    /// the guest's memory at (0: as fast as the hosts go). It sets how long
    /// a live migration runs, and so the window to watch its progress,
    /// force it to complete or abort it.
    pub live_migration_bandwidth: u64,
    /// `[DEFAULT] resize_confirm_window`: seconds after which the
    /// destination's agent confirms a resize left in VERIFY_RESIZE (0:
    /// never).
    pub resize_confirm_window: u64,
    /// `[image_cache] precache_concurrency`: hosts an aggregate's image
    /// pre-caching asks at once.
    pub precache_concurrency: usize,
}

/// Counters for `/metrics`.
#[derive(Default)]
pub struct ComputeMetrics {
    pub requests: AtomicU64,
    pub boots_requested: AtomicU64,
    pub boots_active: AtomicU64,
    pub boots_failed: AtomicU64,
    pub build_micros: AtomicU64,
    /// Image pre-caching results per (host, image): cached, existing,
    /// error, unsupported, skipped (host down).
    pub precache: [AtomicU64; 5],
    /// Hosts whose pre-caching request finished.
    pub precache_hosts: AtomicU64,
    /// Handlers that panicked (answered 500 by [`panic_guard`]).
    pub panics: Arc<AtomicU64>,
}

/// Everything the Compute and Image APIs share.
pub struct ComputeApi {
    /// Placement's domain (not its HTTP state): the store, the state and
    /// the live fleet.
    pub placement: Arc<Placement>,
    records: Mutex<Records>,
    agents: RwLock<HashMap<String, Arc<dyn AgentApi>>>,
    pub conductor: conductor::Conductor,
    pub config: ComputeConfig,
    /// Image data lives in `data_dir/images/{id}`.
    pub data_dir: PathBuf,
    in_flight: Mutex<HashSet<String>>,
    pub metrics: ComputeMetrics,
    /// When the last successful catch-up of the records with other
    /// replicas began (ns since `opened`): a request that arrived earlier
    /// needs no check of its own.
    records_fresh_from: AtomicU64,
    opened: std::time::Instant,
    /// Where agents fetch image data (`[glance] endpoint_override`, or the
    /// image API this process serves): set once it listens.
    pub image_endpoint: std::sync::OnceLock<String>,
    /// How callers authenticate; under Keystone, the service user's token
    /// is what this service sends on its own calls (agents' image fetches).
    pub auth: std::sync::OnceLock<crate::auth::AuthStrategy>,
}

impl ComputeApi {
    /// Opens the records in `data_dir` and a scheduler for `config`.
    ///
    /// # Errors
    /// The records cannot be opened, or the scheduler options are bad.
    pub fn open(
        placement: Arc<Placement>,
        data_dir: PathBuf,
        config: ComputeConfig,
        seed: u64,
    ) -> Result<Self, String> {
        let at = quiver_placement::store::Location::Dir(data_dir.clone());
        Self::open_with_records(placement, data_dir, &at, config, seed)
    }

    /// As [`ComputeApi::open`], with the records at `records` (a data
    /// directory, or the PostgreSQL database Placement uses); images stay
    /// in `data_dir`.
    ///
    /// # Errors
    /// The records cannot be opened, or the scheduler options are bad.
    pub fn open_with_records(
        placement: Arc<Placement>,
        data_dir: PathBuf,
        records: &quiver_placement::store::Location,
        config: ComputeConfig,
        seed: u64,
    ) -> Result<Self, String> {
        let records = Records::open_at(records).map_err(|e| e.to_string())?;
        let scheduler = quiver_engine::Scheduler::new(config.scheduler.clone(), seed).map_err(|e| e.to_string())?;
        Ok(Self {
            placement,
            records: Mutex::new(records),
            agents: RwLock::default(),
            conductor: conductor::Conductor::new(scheduler),
            config,
            data_dir,
            in_flight: Mutex::default(),
            metrics: ComputeMetrics::default(),
            records_fresh_from: AtomicU64::new(0),
            opened: std::time::Instant::now(),
            image_endpoint: std::sync::OnceLock::new(),
            auth: std::sync::OnceLock::new(),
        })
    }

    /// The records, to read (lock order: conductor, records, then
    /// Placement), as of the last catch-up with other replicas: the API's
    /// requests and the conductor's decisions call
    /// [`ComputeApi::ensure_records_fresh`] first.
    pub fn records(&self) -> RecordsRead<'_> {
        RecordsRead(self.records.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Makes the records at least as fresh as every write any replica
    /// committed before this call (PostgreSQL; one round trip, shared by
    /// the calls that arrived while it ran). Nothing on SQLite.
    ///
    /// # Errors
    /// The database is unreachable.
    pub fn ensure_records_fresh(&self) -> Result<(), records::StoreError> {
        let arrived = self.opened.elapsed().as_nanos() as u64 + 1;
        let mut r = self.records.lock().unwrap_or_else(|p| p.into_inner());
        if !r.is_shared() || self.records_fresh_from.load(Ordering::Acquire) > arrived {
            return Ok(());
        }
        let began = self.opened.elapsed().as_nanos() as u64 + 1;
        r.acquire(false)?;
        self.records_fresh_from.fetch_max(began, Ordering::AcqRel);
        Ok(())
    }

    /// The records, to change: caught up with other replicas first, and on
    /// PostgreSQL the guard holds the records' lock across replicas (taken
    /// before the catch-up), so nothing it read changes under it before it
    /// writes. Writes fail while the database cannot be reached.
    pub fn records_mut(&self) -> RecordsGuard<'_> {
        let mut r = self.records.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = r.acquire(true) {
            tracing::warn!(error = %e, "compute records not caught up with other replicas");
        }
        RecordsGuard(r)
    }

    /// Servers whose build is under way (scheduling, claiming, spawning).
    pub fn in_flight(&self) -> MutexGuard<'_, HashSet<String>> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn agents_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<dyn AgentApi>>> {
        self.agents.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Connects `host` to an agent in this process.
    pub fn attach_local_agent(&self, host: &str, agent: Arc<dyn AgentApi>) {
        self.agents_mut().insert(host.to_owned(), agent);
    }

    /// The agent running `host`: in process, or over HTTP at the URL it
    /// registered with (reconnected after a controller restart). Blocking.
    pub fn agent(&self, host: &str) -> Option<Arc<dyn AgentApi>> {
        if let Some(a) = self.agents.read().unwrap_or_else(|p| p.into_inner()).get(host) {
            return Some(Arc::clone(a));
        }
        let url = self.records().services.get(host)?.agent_url.clone()?;
        let client: Arc<dyn AgentApi> = Arc::new(quiver_compute_agent::client::AgentClient::new(&url).ok()?);
        self.agents_mut().insert(host.to_owned(), Arc::clone(&client));
        Some(client)
    }

    /// Where an image's data is kept.
    pub fn image_path(&self, id: &str) -> PathBuf {
        self.data_dir.join("images").join(id)
    }
}

/// The records while a caller reads them ([`ComputeApi::records`]).
pub struct RecordsRead<'a>(MutexGuard<'a, Records>);

impl std::ops::Deref for RecordsRead<'_> {
    type Target = Records;
    fn deref(&self) -> &Records {
        &self.0
    }
}

/// The records while a caller changes them ([`ComputeApi::records_mut`]);
/// dropping it lets other replicas write.
pub struct RecordsGuard<'a>(MutexGuard<'a, Records>);

impl std::ops::Deref for RecordsGuard<'_> {
    type Target = Records;
    fn deref(&self) -> &Records {
        &self.0
    }
}

impl std::ops::DerefMut for RecordsGuard<'_> {
    fn deref_mut(&mut self) -> &mut Records {
        &mut self.0
    }
}

impl Drop for RecordsGuard<'_> {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// Whether a compute service counts as down (Nova's servicegroup API).
pub fn is_down(s: &Service, down_time: f64) -> bool {
    s.forced_down || records::unix_now() - s.last_seen > down_time
}

/// The availability zone of `host`: that of an aggregate it is in, else
/// the default zone.
pub fn host_zone(r: &Records, host: &str) -> String {
    r.aggregates
        .values()
        .filter(|a| a.hosts.iter().any(|h| h == host))
        .find_map(|a| a.availability_zone().map(str::to_owned))
        .unwrap_or_else(|| "nova".to_owned())
}

/// Zones a server can ask for: those of aggregates and, while some host
/// is in none, the default.
pub fn zones(r: &Records) -> BTreeSet<String> {
    let mut z: BTreeSet<String> =
        r.aggregates.values().filter_map(|a| a.availability_zone().map(str::to_owned)).collect();
    if r.services.keys().any(|h| host_zone(r, h) == "nova") || r.services.is_empty() {
        z.insert("nova".into());
    }
    z
}

fn version_doc(href: &str) -> serde_json::Value {
    json!({
        "id": "v2.1", "status": "CURRENT",
        "version": format!("{}.{}", http::MAX_VERSION.0, http::MAX_VERSION.1),
        "min_version": format!("{}.{}", http::MIN_VERSION.0, http::MIN_VERSION.1),
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": href}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"}],
    })
}

async fn versions(headers: axum::http::HeaderMap) -> ApiResult {
    let base = base_url(&headers);
    reply(StatusCode::OK, json!({"versions": [version_doc(&format!("{base}/v2.1/"))]}))
}

/// A Keystone v3 version document (no token needed), for
/// `identity_endpoint_override`: openstackclient's compute commands build
/// an identity v3 client before they call Nova, even with no Keystone.
async fn identity_version(headers: axum::http::HeaderMap) -> ApiResult {
    let href = format!("{}/identity/v3/", base_url(&headers));
    let v = json!({"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
                   "links": [{"rel": "self", "href": href}],
                   "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]});
    reply(StatusCode::OK, json!({"version": v}))
}

/// With noauth2 a project is whatever name a token carries; these answer
/// the project lookups openstackclient makes (`quota show PROJECT`).
async fn identity_project(axum::extract::Path(id): axum::extract::Path<String>) -> ApiResult {
    reply(StatusCode::OK, json!({"project": noauth_project(&id)}))
}

async fn identity_projects(
    axum::extract::Query(q): axum::extract::Query<std::collections::BTreeMap<String, String>>,
) -> ApiResult {
    let v: Vec<serde_json::Value> = q.get("name").map(|n| noauth_project(n)).into_iter().collect();
    reply(StatusCode::OK, json!({"projects": v}))
}

fn noauth_project(id: &str) -> serde_json::Value {
    json!({"id": id, "name": id, "domain_id": "default", "enabled": true, "is_domain": false,
           "parent_id": "default", "description": "", "tags": [], "options": {}})
}

async fn version(headers: axum::http::HeaderMap) -> ApiResult {
    reply(StatusCode::OK, json!({"version": version_doc(&format!("{}/v2.1/", base_url(&headers)))}))
}

fn base_url(headers: &axum::http::HeaderMap) -> String {
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("localhost:8774");
    format!("http://{host}")
}

async fn limits(State(api): State<Arc<ComputeApi>>, axum::Extension(ctx): axum::Extension<http::Ctx>) -> ApiResult {
    let (limits, used) = quotas::usage(&api, &ctx.project_id);
    let g = |k: &str| limits.get(k).copied().unwrap_or(-1);
    let u = |k: &str| used.get(k).copied().unwrap_or(0);
    reply(
        StatusCode::OK,
        json!({"limits": {"rate": [], "absolute": {
            "maxTotalInstances": g("instances"), "maxTotalCores": g("cores"), "maxTotalRAMSize": g("ram"),
            "totalInstancesUsed": u("instances"), "totalCoresUsed": u("cores"), "totalRAMUsed": u("ram"),
            "maxServerMeta": 128, "maxImageMeta": 128, "maxPersonality": 5, "maxPersonalitySize": 10240,
            "maxTotalKeypairs": 100, "maxServerGroups": 10, "maxServerGroupMembers": 10,
            "totalServerGroupsUsed": 0}}}),
    )
}

async fn metrics(State(api): State<Arc<ComputeApi>>) -> String {
    let m = &api.metrics;
    let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let (by_state, services, down) = {
        let r = api.records();
        let mut by: std::collections::BTreeMap<&'static str, u64> = Default::default();
        for s in r.servers.values() {
            *by.entry(s.status()).or_default() += 1;
        }
        let down = r.services.values().filter(|s| is_down(s, api.config.scheduler.service_down_time)).count();
        (by, r.services.len(), down)
    };
    let mut out = format!(
        "# HELP quiver_compute_requests_total HTTP requests served by the Compute and Image APIs.\n\
         # TYPE quiver_compute_requests_total counter\nquiver_compute_requests_total {}\n\
         # HELP quiver_boots_total Servers asked for, built ACTIVE, and failed to ERROR.\n\
         # TYPE quiver_boots_total counter\n\
         quiver_boots_total{{outcome=\"requested\"}} {}\nquiver_boots_total{{outcome=\"active\"}} {}\n\
         quiver_boots_total{{outcome=\"error\"}} {}\n\
         # HELP quiver_build_seconds_total Wall time spent in build flows.\n\
         # TYPE quiver_build_seconds_total counter\nquiver_build_seconds_total {:.6}\n\
         # HELP quiver_compute_services Compute services registered, and how many are down.\n\
         # TYPE quiver_compute_services gauge\nquiver_compute_services{{state=\"all\"}} {services}\n\
         quiver_compute_services{{state=\"down\"}} {down}\n\
         # HELP quiver_servers Servers by status.\n# TYPE quiver_servers gauge\n",
        g(&m.requests),
        g(&m.boots_requested),
        g(&m.boots_active),
        g(&m.boots_failed),
        g(&m.build_micros) as f64 / 1e6,
    );
    for (state, n) in by_state {
        out.push_str(&format!("quiver_servers{{status=\"{state}\"}} {n}\n"));
    }
    out.push_str(
        "# HELP quiver_image_precache_total Image pre-caching results, one per host and image.\n\
         # TYPE quiver_image_precache_total counter\n",
    );
    for (outcome, n) in precache::OUTCOMES.iter().zip(&m.precache) {
        out.push_str(&format!("quiver_image_precache_total{{outcome=\"{outcome}\"}} {}\n", g(n)));
    }
    out.push_str(&format!(
        "# HELP quiver_handler_panics_total Requests whose handler panicked (answered 500).\n\
         # TYPE quiver_handler_panics_total counter\nquiver_handler_panics_total {}\n",
        g(&m.panics)
    ));
    out.push_str(&format!(
        "# HELP quiver_image_precache_hosts_total Hosts whose pre-caching request finished.\n\
         # TYPE quiver_image_precache_hosts_total counter\nquiver_image_precache_hosts_total {}\n",
        g(&m.precache_hosts)
    ));
    out
}

async fn count_requests(
    State(api): State<Arc<ComputeApi>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    api.metrics.requests.fetch_add(1, Ordering::Relaxed);
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    tracing::info!(%method, %path, status = resp.status().as_u16(), micros = started.elapsed().as_micros() as u64, "compute request");
    resp
}

/// Before a Compute API request reads Placement's state (the scheduler's
/// fleet, usages), the replica applies every change other replicas
/// committed before it arrived (nothing to do on SQLite); a database it
/// cannot reach is a 503, never a stale answer.
async fn fresh_placement(
    State(api): State<Arc<ComputeApi>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let path = req.uri().path();
    if path.starts_with("/v2.1/") || path.starts_with("/v1/") {
        let fresh = api.placement.ensure_fresh().map_err(|e| e.detail).and_then(|()| {
            api.ensure_records_fresh()
                .map_err(|e| format!("this replica cannot confirm it is current with the compute records: {e}"))
        });
        if let Err(e) = fresh {
            return axum::response::IntoResponse::into_response(http::NovaError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                e,
            ));
        }
    }
    next.run(req).await
}

/// Image requests see every image record another replica committed.
async fn fresh_records(
    State(api): State<Arc<ComputeApi>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if req.uri().path().starts_with("/v2/")
        && let Err(e) = api.ensure_records_fresh()
    {
        return axum::response::IntoResponse::into_response(http::NovaError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("this replica cannot confirm it is current with the image records: {e}"),
        ));
    }
    next.run(req).await
}

/// The Compute API's route table.
pub fn app(api: Arc<ComputeApi>) -> Router {
    let v = Router::new()
        .route("/os-migrations", get(migrations::list))
        .route("/servers/{id}/os-instance-actions", get(instance_actions::list))
        .route("/servers/{id}/os-instance-actions/{request_id}", get(instance_actions::show))
        .route("/servers/{id}/migrations", get(migrations::of_server))
        .route("/servers/{id}/migrations/{mid}", get(migrations::show).delete(migrations::abort))
        .route("/servers/{id}/migrations/{mid}/action", post(migrations::action))
        .route("/flavors", get(flavors::list).post(flavors::create))
        .route("/flavors/detail", get(flavors::detail))
        .route("/flavors/{id}", get(flavors::show).delete(flavors::delete))
        .route("/flavors/{id}/os-extra_specs", get(flavors::specs_list).post(flavors::specs_create))
        .route(
            "/flavors/{id}/os-extra_specs/{key}",
            get(flavors::spec_show).put(flavors::spec_update).delete(flavors::spec_delete),
        )
        .route("/servers", get(servers::list).post(servers::create))
        .route("/servers/detail", get(servers::detail))
        .route("/servers/{id}", get(servers::show).delete(servers::delete))
        .route("/servers/{id}/action", post(servers::action))
        .route("/servers/{id}/metadata", get(servers::metadata))
        .route("/os-server-groups", get(server_groups::list).post(server_groups::create))
        .route("/os-server-groups/{id}", get(server_groups::show).delete(server_groups::delete))
        .route("/os-aggregates", get(aggregates::list).post(aggregates::create))
        .route("/os-aggregates/{id}", get(aggregates::show).put(aggregates::update).delete(aggregates::delete))
        .route("/os-aggregates/{id}/action", post(aggregates::action))
        .route("/os-aggregates/{id}/images", post(precache::images))
        .route("/os-availability-zone", get(zones::list))
        .route("/os-availability-zone/detail", get(zones::detail))
        .route("/os-hypervisors", get(hypervisors::list))
        .route("/os-hypervisors/detail", get(hypervisors::detail))
        .route("/os-hypervisors/{id}", get(hypervisors::show))
        .route("/os-services", get(services::list))
        .route("/os-services/{id}", put(services::update).delete(services::delete))
        .route("/os-quota-sets/{project}", get(quotas::show).put(quotas::update))
        .route("/os-quota-sets/{project}/defaults", get(quotas::defaults))
        .route("/os-quota-sets/{project}/detail", get(quotas::detail))
        .route("/limits", get(limits))
        .route("/quiver-agent/register", post(agents_http::register))
        .route("/quiver-agent/heartbeat", post(agents_http::heartbeat))
        .route("/quiver-agent/reconcile", post(agents_http::reconcile));
    Router::new()
        .route("/", get(versions))
        .route("/v2.1", get(version))
        .route("/v2.1/", get(version))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(crate::openapi::handler("compute")))
        .route("/v1/fleet", get(query::fleet))
        .route("/v1/query", axum::routing::post(query::query))
        .route("/v1/explain", axum::routing::post(explain::explain))
        .route("/v1/plan/drain", axum::routing::post(plan::plan_drain))
        .route("/v1/plan/headroom", axum::routing::post(plan::plan_headroom))
        .route("/v1/plan/size", axum::routing::post(plan::plan_size))
        .route("/identity", get(identity_version))
        .route("/identity/v3", get(identity_version))
        .route("/identity/v3/", get(identity_version))
        .route("/identity/v3/projects", get(identity_projects))
        .route("/identity/v3/projects/{id}", get(identity_project))
        .nest("/v2.1", v)
        .fallback(http::not_found)
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&api), fresh_placement))
        .layer(axum::middleware::from_fn(http::edge))
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&api), count_requests))
        .layer(DefaultBodyLimit::max(1 << 20))
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&api.metrics.panics), panic_guard::catch_panics))
        .with_state(api)
}

/// The Glance v2 image API (on its own port, as Glance's 9292).
pub fn image_app(api: Arc<ComputeApi>) -> Router {
    let fresh = axum::middleware::from_fn_with_state(Arc::clone(&api), fresh_records);
    let guard = axum::middleware::from_fn_with_state(Arc::clone(&api.metrics.panics), panic_guard::catch_panics);
    let count = axum::middleware::from_fn_with_state(Arc::clone(&api), count_requests);
    images::app(api).layer(fresh).layer(count).layer(guard)
}
