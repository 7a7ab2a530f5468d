//! The agent: the drivers of its hosts, their registration with the
//! controller, heartbeats, the reconcile task, and the HTTP API the
//! conductor calls.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::controller::Controller;
use crate::driver::{ComputeDriver, DriverError, GuestInfo, GuestSpec, cpu_traits};
use crate::image_cache::{CacheOutcome, ImageCache, ImageFetch};
use quiver_engine::inventory::Inventory;

use crate::protocol::{Action, AgentApi, AgentError, HostReport, InventoryReport};
use crate::provider_config::ProviderConfig;

/// Nova's resource-tracker options, by their Nova names.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// `[DEFAULT] reserved_host_cpus`.
    pub reserved_host_cpus: i64,
    /// `[DEFAULT] reserved_host_memory_mb`.
    pub reserved_host_memory_mb: i64,
    /// `[DEFAULT] reserved_host_disk_mb` (rounded up to whole GB for DISK_GB).
    pub reserved_host_disk_mb: i64,
    /// `[DEFAULT] cpu_allocation_ratio`; unset means `initial_cpu_allocation_ratio` (4.0).
    pub cpu_allocation_ratio: Option<f64>,
    /// `[DEFAULT] ram_allocation_ratio`; unset means `initial_ram_allocation_ratio` (1.0).
    pub ram_allocation_ratio: Option<f64>,
    /// `[DEFAULT] disk_allocation_ratio`; unset means `initial_disk_allocation_ratio` (1.0).
    pub disk_allocation_ratio: Option<f64>,
    /// `[DEFAULT] report_interval`: seconds between heartbeats.
    pub report_interval: f64,
    /// `[DEFAULT] update_resources_interval`: seconds between reconciles.
    pub update_resources_interval: f64,
    /// `[DEFAULT] instances_path`: each host's base-image cache lives in
    /// `<instances_path>/<host>/_base` (unset: no image pre-caching).
    pub instances_path: Option<std::path::PathBuf>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            reserved_host_cpus: 0,
            reserved_host_memory_mb: 512,
            reserved_host_disk_mb: 0,
            cpu_allocation_ratio: None,
            ram_allocation_ratio: None,
            disk_allocation_ratio: None,
            report_interval: 10.0,
            update_resources_interval: 60.0,
            instances_path: None,
        }
    }
}

/// One agent: hosts by service host name, each with its driver.
pub struct Agent {
    hosts: BTreeMap<String, Arc<dyn ComputeDriver>>,
    config: AgentConfig,
    agent_url: Option<String>,
    controller: OnceLock<Arc<dyn Controller>>,
    provider_config: ProviderConfig,
    images: ImageCache,
}

impl Agent {
    /// An agent for `hosts`; `agent_url` is where its HTTP API listens
    /// (`None` when the conductor calls it in process).
    pub fn new(hosts: Vec<(String, Arc<dyn ComputeDriver>)>, config: AgentConfig, agent_url: Option<String>) -> Self {
        Self {
            hosts: hosts.into_iter().collect(),
            images: ImageCache::new(config.instances_path.clone()),
            config,
            agent_url,
            controller: OnceLock::new(),
            provider_config: ProviderConfig::default(),
        }
    }

    /// Adds the inventory and traits of Nova's provider config files
    /// (`[compute] provider_config_location`) to what the hosts report.
    ///
    /// # Errors
    /// A config that does not fit one of the hosts (it would override
    /// inventory the hypervisor reports), or a hypervisor that does not
    /// answer: checked here, so a bad config stops the agent at start-up.
    pub fn with_provider_config(mut self, c: ProviderConfig) -> Result<Self, AgentError> {
        self.provider_config = c;
        if !self.provider_config.is_empty() {
            for host in self.hosts.keys() {
                self.report(host)?;
            }
        }
        Ok(self)
    }

    /// Host names this agent runs.
    pub fn host_names(&self) -> impl Iterator<Item = &str> {
        self.hosts.keys().map(String::as_str)
    }

    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    fn driver(&self, host: &str) -> Result<&Arc<dyn ComputeDriver>, AgentError> {
        self.hosts.get(host).ok_or_else(|| AgentError::NoSuchHost(host.to_owned()))
    }

    /// The registration of `host`: inventory from the hypervisor with the
    /// configured reserved amounts and ratios, and traits from its CPU.
    ///
    /// # Errors
    /// An unknown host or a hypervisor that does not answer.
    pub fn report(&self, host: &str) -> Result<HostReport, AgentError> {
        let driver = self.driver(host)?;
        let mut info = driver.host_info()?;
        // The node is named after its service host: several agents on one
        // machine (embedded, or libvirt's test driver) share a hostname.
        info.nodename = host.to_owned();
        let c = &self.config;
        let inv = |rc: &str, total: i64, reserved: i64, ratio: f64| InventoryReport {
            resource_class: rc.to_owned(),
            inventory: Inventory { total, reserved, max_unit: total, allocation_ratio: ratio, ..Default::default() },
        };
        let inventory = vec![
            inv("VCPU", info.vcpus as i64, c.reserved_host_cpus, c.cpu_allocation_ratio.unwrap_or(4.0)),
            inv("MEMORY_MB", info.memory_mb as i64, c.reserved_host_memory_mb, c.ram_allocation_ratio.unwrap_or(1.0)),
            inv(
                "DISK_GB",
                info.local_gb as i64,
                (c.reserved_host_disk_mb + 1023) / 1024,
                c.disk_allocation_ratio.unwrap_or(1.0),
            ),
        ]
        .into_iter()
        .filter(|i| i.inventory.total > 0)
        .collect();
        let mut traits = cpu_traits(&info.cpu_features);
        traits.push("COMPUTE_NODE".into());
        let guests = driver.list_guests()?;
        let mut report =
            HostReport { host: host.to_owned(), agent_url: self.agent_url.clone(), info, inventory, traits, guests };
        self.provider_config.apply(&mut report)?;
        Ok(report)
    }

    /// Registers every host with `controller` and keeps it for heartbeats.
    ///
    /// # Errors
    /// The first host that cannot be reported or registered.
    pub fn register(&self, controller: Arc<dyn Controller>) -> Result<(), String> {
        for host in self.hosts.keys() {
            let report = self.report(host).map_err(|e| format!("{host}: {e}"))?;
            controller.register(&report).map_err(|e| format!("{host}: {e}"))?;
            tracing::info!(host, "registered with the controller");
        }
        let _ = self.controller.set(controller);
        self.reconcile_once();
        Ok(())
    }

    /// One heartbeat per host.
    pub fn heartbeat_once(&self) {
        let Some(c) = self.controller.get() else { return };
        for host in self.hosts.keys() {
            if let Err(e) = c.heartbeat(host) {
                tracing::warn!(host, error = %e, "heartbeat failed");
            }
        }
    }

    /// Compares what each hypervisor runs with the controller's records and
    /// destroys guests no live server owns.
    pub fn reconcile_once(&self) {
        let Some(c) = self.controller.get() else { return };
        for (host, driver) in &self.hosts {
            let guests = match driver.list_guests() {
                Ok(g) => g,
                Err(e) => {
                    tracing::warn!(host, error = %e, "cannot list guests");
                    continue;
                }
            };
            match c.reconcile(host, &guests) {
                Ok(reply) => {
                    for uuid in reply.destroy {
                        tracing::warn!(host, uuid, "destroying a guest no server owns");
                        if let Err(e) = driver.destroy(&uuid) {
                            tracing::warn!(host, uuid, error = %e, "cannot destroy");
                        }
                    }
                }
                Err(e) => tracing::warn!(host, error = %e, "reconcile failed"),
            }
        }
    }

    /// Starts the heartbeat and reconcile loops on their own thread.
    pub fn start_periodic(self: &Arc<Self>) -> std::thread::JoinHandle<()> {
        let me = Arc::clone(self);
        std::thread::Builder::new()
            .name("quiver-agent-periodic".into())
            .spawn(move || {
                let beat = Duration::from_secs_f64(me.config.report_interval.max(0.05));
                let every =
                    (me.config.update_resources_interval / me.config.report_interval.max(0.05)).ceil().max(1.0) as u64;
                let mut n = 0u64;
                loop {
                    std::thread::sleep(beat);
                    me.heartbeat_once();
                    n += 1;
                    if n.is_multiple_of(every) {
                        me.reconcile_once();
                    }
                }
            })
            .expect("spawn the agent's periodic thread")
    }
}

impl AgentApi for Agent {
    fn build(&self, host: &str, spec: &GuestSpec) -> Result<GuestInfo, AgentError> {
        let driver = self.driver(host)?;
        // The host's cached copy of the image, when it has one.
        let cached = spec.image_id.as_deref().and_then(|i| self.images.cached(host, i));
        let g = match cached {
            Some(path) => {
                let spec = GuestSpec { image_path: Some(path.display().to_string()), ..spec.clone() };
                driver.spawn(&spec)?
            }
            None => driver.spawn(spec)?,
        };
        tracing::info!(host, uuid = %spec.uuid, vcpus = spec.vcpus, memory_mb = spec.memory_mb, "guest spawned");
        Ok(g)
    }

    fn action(&self, host: &str, uuid: &str, action: Action) -> Result<GuestInfo, AgentError> {
        let d = self.driver(host)?;
        Ok(match action {
            Action::Stop => d.power_off(uuid)?,
            Action::Start => d.power_on(uuid)?,
            Action::Reboot { hard } => d.reboot(uuid, hard)?,
        })
    }

    fn cache_images(&self, host: &str, images: &[ImageFetch]) -> Result<BTreeMap<String, CacheOutcome>, AgentError> {
        self.driver(host)?;
        tracing::info!(host, images = images.len(), "caching images by request");
        Ok(self.images.fetch_all(host, images))
    }

    fn cached_images(&self, host: &str) -> Result<Vec<String>, AgentError> {
        self.driver(host)?;
        Ok(self.images.list(host))
    }

    fn delete(&self, host: &str, uuid: &str) -> Result<(), AgentError> {
        match self.driver(host)?.destroy(uuid) {
            Ok(()) | Err(DriverError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn guests(&self, host: &str) -> Result<Vec<GuestInfo>, AgentError> {
        Ok(self.driver(host)?.list_guests()?)
    }
}

struct ApiError(AgentError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            AgentError::NoSuchHost(_) | AgentError::Driver(DriverError::NotFound(_)) => StatusCode::NOT_FOUND,
            AgentError::Driver(DriverError::Exists(_)) => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, Json(self.0.body())).into_response()
    }
}

async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, AgentError> + Send + 'static,
) -> Result<R, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError(AgentError::Unreachable(format!("agent task failed: {e}"))))?
        .map_err(ApiError)
}

/// The agent's HTTP API:
/// `GET /` (hosts), `GET|POST /hosts/{host}/guests`,
/// `POST /hosts/{host}/guests/{uuid}/action`, `DELETE /hosts/{host}/guests/{uuid}`,
/// `GET|POST /hosts/{host}/images` (the base-image cache).
pub fn router(agent: Arc<Agent>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/hosts/{host}/guests", get(list).post(build))
        .route("/hosts/{host}/guests/{uuid}", axum::routing::delete(delete))
        .route("/hosts/{host}/guests/{uuid}/action", post(action))
        .route("/hosts/{host}/images", get(cached_images).post(cache_images))
        .with_state(agent)
}

async fn cached_images(State(a): State<Arc<Agent>>, Path(host): Path<String>) -> Result<Json<Vec<String>>, ApiError> {
    blocking(move || a.cached_images(&host)).await.map(Json)
}

async fn cache_images(
    State(a): State<Arc<Agent>>,
    Path(host): Path<String>,
    Json(images): Json<Vec<ImageFetch>>,
) -> Result<Json<BTreeMap<String, CacheOutcome>>, ApiError> {
    blocking(move || a.cache_images(&host, &images)).await.map(Json)
}

async fn index(State(a): State<Arc<Agent>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({"hosts": a.host_names().collect::<Vec<_>>()}))
}

async fn list(State(a): State<Arc<Agent>>, Path(host): Path<String>) -> Result<Json<Vec<GuestInfo>>, ApiError> {
    blocking(move || a.guests(&host)).await.map(Json)
}

async fn build(
    State(a): State<Arc<Agent>>,
    Path(host): Path<String>,
    Json(spec): Json<GuestSpec>,
) -> Result<(StatusCode, Json<GuestInfo>), ApiError> {
    blocking(move || a.build(&host, &spec)).await.map(|g| (StatusCode::CREATED, Json(g)))
}

async fn action(
    State(a): State<Arc<Agent>>,
    Path((host, uuid)): Path<(String, String)>,
    Json(act): Json<Action>,
) -> Result<Json<GuestInfo>, ApiError> {
    blocking(move || a.action(&host, &uuid, act)).await.map(Json)
}

async fn delete(
    State(a): State<Arc<Agent>>,
    Path((host, uuid)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    blocking(move || a.delete(&host, &uuid)).await.map(|()| StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::driver::HostInfo;
    use crate::fake_driver::FakeDriver;

    /// The fake driver, remembering the specs it was asked to spawn.
    struct Recording(FakeDriver, Mutex<Vec<GuestSpec>>);

    impl ComputeDriver for Recording {
        fn host_info(&self) -> Result<HostInfo, DriverError> {
            self.0.host_info()
        }
        fn spawn(&self, spec: &GuestSpec) -> Result<GuestInfo, DriverError> {
            self.1.lock().unwrap().push(spec.clone());
            self.0.spawn(spec)
        }
        fn power_off(&self, uuid: &str) -> Result<GuestInfo, DriverError> {
            self.0.power_off(uuid)
        }
        fn power_on(&self, uuid: &str) -> Result<GuestInfo, DriverError> {
            self.0.power_on(uuid)
        }
        fn reboot(&self, uuid: &str, hard: bool) -> Result<GuestInfo, DriverError> {
            self.0.reboot(uuid, hard)
        }
        fn destroy(&self, uuid: &str) -> Result<(), DriverError> {
            self.0.destroy(uuid)
        }
        fn list_guests(&self) -> Result<Vec<GuestInfo>, DriverError> {
            self.0.list_guests()
        }
    }

    #[test]
    fn a_boot_uses_the_hosts_cached_image_when_it_has_one() {
        let dir = tempfile::tempdir().unwrap();
        let driver = Arc::new(Recording(FakeDriver::new("h1", 8, 8192, 100, Duration::ZERO), Mutex::default()));
        let config = AgentConfig { instances_path: Some(dir.path().into()), ..AgentConfig::default() };
        let agent = Agent::new(vec![("h1".into(), Arc::clone(&driver) as Arc<dyn ComputeDriver>)], config, None);
        let base = dir.path().join("h1/_base");
        std::fs::create_dir_all(&base).unwrap();
        std::fs::write(base.join("img-warm"), b"bytes").unwrap();
        let spec = |uuid: &str, image: &str| GuestSpec {
            uuid: uuid.into(),
            display_name: uuid.into(),
            flavor_name: "m1".into(),
            vcpus: 1,
            memory_mb: 512,
            root_gb: 1,
            image_id: Some(image.into()),
            image_path: Some("/controller/images/x".into()),
        };
        agent.build("h1", &spec("a", "img-warm")).unwrap();
        agent.build("h1", &spec("b", "img-cold")).unwrap();
        let seen = driver.1.lock().unwrap();
        assert_eq!(seen[0].image_path.as_deref(), Some(base.join("img-warm").to_str().unwrap()));
        assert_eq!(seen[1].image_path.as_deref(), Some("/controller/images/x"), "not cached: the given path");
        assert_eq!(agent.cached_images("h1").unwrap(), ["img-warm"]);
        assert!(matches!(agent.cached_images("h9"), Err(AgentError::NoSuchHost(_))));
    }
}
