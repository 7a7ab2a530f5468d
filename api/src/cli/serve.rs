//! `quiver serve`: Placement, the Compute API subset, images, scheduler and
//! conductor on one data directory, optionally with embedded agents.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Deserialize;

use quiver_api::auth::{
    AuthStrategy, COMPUTE_PUBLIC, IMAGE_PUBLIC, KeystoneAuth, KeystoneConfig, PLACEMENT_PUBLIC, protect,
};
use quiver_api::compute_api::{ComputeApi, ComputeConfig, QuotaDefaults, app as compute_app, image_app};
use quiver_api::http_server::{Limits, serve as serve_http};
use quiver_api::placement_api::{Cors, Metrics, PlacementApi, app, policy::Policy};
use quiver_compute_agent::agent::router as agent_router;
use quiver_compute_agent::controller::Controller;
use quiver_compute_agent::fake_driver::FakeDriver;
use quiver_compute_agent::libvirt_driver::{LibvirtDriver, test_node_xml};
use quiver_compute_agent::protocol::AgentApi;
use quiver_compute_agent::{Agent, AgentConfig, ComputeDriver};
use quiver_engine::SchedulerConfig;
use quiver_placement::Placement;
use quiver_placement::store::{Durability, Location};
use std::time::Duration;

/// Serve Placement, the Compute API subset and the image API, with the
/// scheduler and conductor, on one data directory.
///
/// State lives in DATA/placement.sqlite and DATA/compute.sqlite (SQLite in
/// WAL mode, created and migrated on start), or both in PostgreSQL with
/// `--database postgresql://...`; every acknowledged write is
/// committed before the response is sent. Authentication is noauth2 by
/// default, as in Nova's and Placement's development mode: send
/// `X-Auth-Token: admin`, or `user:project`. With `[api] auth_strategy =
/// "keystone"` every token is validated with Keystone (`[keystone_authtoken]`,
/// keystonemiddleware's options) and the policies read its roles and
/// project. `--with-agents N` starts N compute agents in this
/// process (libvirt's test driver by default), so one command is a working
/// cloud. GET /metrics on each API serves Prometheus counters.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  quiver serve --data ./quiver-data --with-agents 3
  quiver serve --listen 0.0.0.0:8778 --compute-listen 0.0.0.0:8774 --config quiver.toml
  curl -H 'X-Auth-Token: admin' http://127.0.0.1:8774/v2.1/os-hypervisors
  curl -H 'X-Auth-Token: admin' http://127.0.0.1:8778/resource_providers

Config file (TOML; every key optional; Nova's and Placement's option names):
  [api]
  listen = \"127.0.0.1:8778\"          # Placement
  compute_listen = \"127.0.0.1:8774\"  # Compute API (/v2.1)
  image_listen = \"127.0.0.1:9292\"    # Glance v2 images
  max_body_bytes = 4194304
  header_read_timeout = 30           # seconds to send a request head
  body_read_timeout = 60             # seconds to send a body (image uploads: 1 h or more)
  max_header_bytes = 65536
  auth_strategy = \"noauth2\"         # or \"keystone\": validate tokens with Keystone
  [keystone_authtoken]               # with auth_strategy = \"keystone\"
  www_authenticate_uri = \"http://keystone.example.com:5000/v3\"
  auth_url = \"http://keystone.example.com:5000/v3\"
  username = \"quiver\"                # the service user (admin and service roles)
  password = \"secret\"
  project_name = \"service\"
  user_domain_name = \"Default\"
  project_domain_name = \"Default\"
  service_token_roles = [\"service\"]  # an X-Service-Token with one lets expired user tokens through
  token_cache_time = 300             # seconds a validation is reused
  [store]
  data = \"./quiver-data\"
  durability = \"process\"   # or \"full\": fsync every commit
  [database]
  connection = \"postgresql://quiver@db.example.com/quiver\"   # Placement and the compute records in PostgreSQL
  [DEFAULT]
  service_down_time = 60
  default_availability_zone = \"nova\"
  reserved_host_memory_mb = 512     # embedded agents
  cpu_allocation_ratio = 4.0
  report_interval = 10
  [filter_scheduler]
  enabled_filters = [\"ComputeFilter\", \"ComputeCapabilitiesFilter\", \"ImagePropertiesFilter\",
                     \"ServerGroupAntiAffinityFilter\", \"ServerGroupAffinityFilter\",
                     \"SameHostFilter\", \"DifferentHostFilter\", \"JsonFilter\"]
  ram_weight_multiplier = 1.0
  host_subset_size = 1
  [scheduler]
  max_attempts = 3
  [compute]
  provider_config_location = \"/etc/nova/provider_config/\"   # Nova provider.yaml files: extra inventory, traits
  [quota]
  instances = 10
  cores = 20
  ram = 51200
  [oslo_policy]
  enforce_new_defaults = false   # true: secure RBAC defaults
  [oslo_policy.rules]            # overrides, Placement's rule names
  \"placement:resource_providers:list\" = \"@\"
  [cors]
  allowed_origin = [\"http://valid.example.com\"]")]
pub struct ServeArgs {
    /// Placement API address [default: 127.0.0.1:8778, Placement's port].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Compute API address [default: 127.0.0.1:8774, Nova's port].
    #[arg(long)]
    pub compute_listen: Option<SocketAddr>,
    /// Image API address [default: 127.0.0.1:9292, Glance's port].
    #[arg(long)]
    pub image_listen: Option<SocketAddr>,
    /// Data directory [default: ./quiver-data].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Keep the stores in this PostgreSQL database
    /// (`postgresql://USER[:PASSWORD]@HOST[:PORT]/DB`, as Nova's and
    /// Placement's `[database] connection`) instead of SQLite in the data
    /// directory: Placement's tables (migrated on start) and the compute
    /// records. Images stay in the data directory.
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
    /// TOML configuration file; command-line flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Start N compute agents in this process (hosts compute-1..compute-N).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub with_agents: usize,
    /// Driver of the embedded agents: `libvirt` (the test driver, one node
    /// file per host under DATA/agents) or `fake` (in memory).
    #[arg(long, default_value = "libvirt", value_parser = ["libvirt", "fake"])]
    pub agent_driver: String,
    /// vCPUs of each embedded agent's host.
    #[arg(long, default_value_t = 16)]
    pub agent_vcpus: u32,
    /// Memory of each embedded agent's host, MiB.
    #[arg(long, default_value_t = 65536)]
    pub agent_memory_mb: u64,
    /// Disk of each embedded agent's host, GB.
    #[arg(long, default_value_t = 1000)]
    pub agent_disk_gb: u64,
    /// Also serve the embedded agents' HTTP API here (to look at their
    /// guests: GET /hosts/{host}/guests).
    #[arg(long)]
    pub agent_listen: Option<SocketAddr>,
    /// Seed of the scheduler's `host_subset_size` picks.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Serve only the Placement API: a Placement-only replica of a cloud
    /// shared through one PostgreSQL database (`--database`). Replicas
    /// follow each other's writes, the Compute API's records included, so
    /// any number may also serve the Compute and image APIs.
    #[arg(long, conflicts_with_all = ["with_agents", "compute_listen", "image_listen", "agent_listen"])]
    pub placement_only: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    api: ApiSection,
    #[serde(default)]
    store: StoreSection,
    #[serde(default)]
    database: DatabaseSection,
    #[serde(default)]
    oslo_policy: PolicySection,
    #[serde(default)]
    cors: CorsSection,
    #[serde(default, rename = "DEFAULT")]
    default: toml::Table,
    #[serde(default)]
    filter_scheduler: toml::Table,
    #[serde(default)]
    scheduler: toml::Table,
    #[serde(default)]
    metrics: toml::Table,
    #[serde(default)]
    quota: QuotaSection,
    #[serde(default)]
    compute: ComputeSection,
    #[serde(default)]
    libvirt: LibvirtSection,
    #[serde(default)]
    glance: GlanceSection,
    #[serde(default)]
    image_cache: ImageCacheSection,
    /// keystonemiddleware's options (`auth_strategy = "keystone"`).
    keystone_authtoken: Option<KeystoneConfig>,
}

/// Nova's `[glance]`: where agents fetch image data.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GlanceSection {
    /// The image API's URL as the agents reach it [default: the one this
    /// process serves].
    endpoint_override: Option<String>,
}

/// Nova's `[image_cache]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageCacheSection {
    /// Hosts asked at once by an aggregate's image pre-caching (Nova: 1).
    precache_concurrency: Option<usize>,
}

/// Nova's `[libvirt]` options the conductor's moves read.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LibvirtSection {
    /// MiB/s a live migration copies memory at (0: unlimited).
    #[serde(default)]
    live_migration_bandwidth: u64,
}

/// Nova's `[compute]` options the embedded agents read.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComputeSection {
    /// `provider_config_location`: a directory of provider config YAML
    /// files (Nova's default `/etc/nova/provider_config/`).
    pub provider_config_location: Option<PathBuf>,
}

impl ComputeSection {
    /// The provider configs of `provider_config_location`, read and checked.
    ///
    /// # Errors
    /// A file that cannot be used (it names the file and the reason).
    pub fn provider_config(&self) -> Result<quiver_compute_agent::provider_config::ProviderConfig> {
        let dir = self
            .provider_config_location
            .clone()
            .unwrap_or_else(|| PathBuf::from(quiver_compute_agent::provider_config::DEFAULT_LOCATION));
        Ok(quiver_compute_agent::provider_config::ProviderConfig::load_dir(&dir)?)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiSection {
    listen: Option<SocketAddr>,
    compute_listen: Option<SocketAddr>,
    image_listen: Option<SocketAddr>,
    max_body_bytes: Option<usize>,
    /// Seconds a client has to send a request head (default 30).
    header_read_timeout: Option<f64>,
    /// Seconds a client has to send a request body (default 60; the image
    /// API's uploads get at least an hour).
    body_read_timeout: Option<f64>,
    /// Bytes a request head may take (default 65536, at least 8192).
    max_header_bytes: Option<usize>,
    /// `noauth2` (default: identity from headers, for development) or
    /// `keystone` (every token validated; `[keystone_authtoken]`).
    auth_strategy: Option<String>,
}

impl ApiSection {
    /// The per-connection limits, checked.
    fn limits(&self) -> Result<Limits> {
        let d = Limits::default();
        let secs = |v: Option<f64>, name: &str, default: Duration| -> Result<Duration> {
            match v {
                None => Ok(default),
                Some(s) if s.is_finite() && s > 0.0 => Ok(Duration::from_secs_f64(s)),
                Some(s) => bail!("config [api] {name}: expected seconds > 0, got {s}"),
            }
        };
        let max_header_bytes = self.max_header_bytes.unwrap_or(d.max_header_bytes);
        if max_header_bytes < 8192 {
            bail!("config [api] max_header_bytes: expected at least 8192, got {max_header_bytes}");
        }
        Ok(Limits {
            header_read_timeout: secs(self.header_read_timeout, "header_read_timeout", d.header_read_timeout)?,
            body_read_timeout: secs(self.body_read_timeout, "body_read_timeout", d.body_read_timeout)?,
            max_header_bytes,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaSection {
    instances: Option<i64>,
    cores: Option<i64>,
    ram: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreSection {
    data: Option<PathBuf>,
    durability: Option<String>,
}

/// `[database]`, as Nova and Placement name it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DatabaseSection {
    /// `connection`: a `postgresql://` URL.
    connection: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicySection {
    #[serde(default)]
    enforce_new_defaults: bool,
    #[serde(default)]
    rules: HashMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CorsSection {
    #[serde(default)]
    allowed_origin: Vec<String>,
    #[serde(default)]
    allow_headers: Vec<String>,
    #[serde(default)]
    expose_headers: Vec<String>,
    #[serde(default)]
    allow_methods: Vec<String>,
    max_age: Option<u64>,
    #[serde(default)]
    allow_credentials: bool,
}

/// Nova's filters plus the hint filters (same_host, different_host, query),
/// so every scheduler hint the Compute API takes works out of the box.
const SERVE_FILTERS: [&str; 8] = [
    "ComputeFilter",
    "ComputeCapabilitiesFilter",
    "ImagePropertiesFilter",
    "ServerGroupAntiAffinityFilter",
    "ServerGroupAffinityFilter",
    "SameHostFilter",
    "DifferentHostFilter",
    "JsonFilter",
];

/// `[DEFAULT]` options that belong to the embedded agents.
const AGENT_OPTIONS: [&str; 9] = [
    "reserved_host_cpus",
    "reserved_host_memory_mb",
    "reserved_host_disk_mb",
    "cpu_allocation_ratio",
    "ram_allocation_ratio",
    "disk_allocation_ratio",
    "report_interval",
    "update_resources_interval",
    "instances_path",
];

/// `[api] auth_strategy` and `[keystone_authtoken]`, checked.
fn auth_strategy(config: &Config) -> Result<AuthStrategy> {
    match (config.api.auth_strategy.as_deref(), &config.keystone_authtoken) {
        (None | Some("noauth2"), _) => Ok(AuthStrategy::NoAuth2),
        (Some("keystone"), Some(k)) => {
            let auth = KeystoneAuth::new(k.clone()).map_err(|e| anyhow::anyhow!("config: {e}"))?;
            Ok(AuthStrategy::Keystone(Arc::new(auth)))
        }
        (Some("keystone"), None) => {
            bail!("config [api] auth_strategy = \"keystone\" needs a [keystone_authtoken] section")
        }
        (Some(other), _) => bail!("config [api] auth_strategy: expected \"keystone\" or \"noauth2\", got {other:?}"),
    }
}

/// The compute options, the embedded agents' options, from the config.
fn compute_config(config: &Config) -> Result<(ComputeConfig, AgentConfig)> {
    let mut sched = SchedulerConfig {
        enabled_filters: SERVE_FILTERS.iter().map(|s| s.to_string()).collect(),
        ..SchedulerConfig::default()
    };
    let mut agent_table = toml::Table::new();
    let mut default_az = "nova".to_owned();
    let mut shelved_offload_time = 0;
    let mut resize_confirm_window = 0;
    for (k, v) in &config.default {
        if AGENT_OPTIONS.contains(&k.as_str()) {
            agent_table.insert(k.clone(), v.clone());
        } else if k == "shelved_offload_time" {
            shelved_offload_time =
                v.as_integer().context("[DEFAULT] shelved_offload_time: expected an integer (seconds; -1: never)")?;
        } else if k == "resize_confirm_window" {
            resize_confirm_window = v
                .as_integer()
                .and_then(|n| u64::try_from(n).ok())
                .context("[DEFAULT] resize_confirm_window: expected seconds (0: never)")?;
        } else if k == "default_availability_zone" {
            default_az =
                v.as_str().map(str::to_owned).context("[DEFAULT] default_availability_zone: expected a string")?;
        } else {
            sched
                .set(&format!("DEFAULT.{k}"), &serde_json::to_value(v)?)
                .map_err(|e| anyhow::anyhow!("config: {e}"))?;
        }
    }
    for (section, table) in
        [("filter_scheduler", &config.filter_scheduler), ("scheduler", &config.scheduler), ("metrics", &config.metrics)]
    {
        for (k, v) in table {
            sched
                .set(&format!("{section}.{k}"), &serde_json::to_value(v)?)
                .map_err(|e| anyhow::anyhow!("config: {e}"))?;
        }
    }
    let agent: AgentConfig = agent_table.try_into().context("config [DEFAULT] agent options")?;
    let q = &config.quota;
    let d = QuotaDefaults::default();
    let quota = QuotaDefaults {
        instances: q.instances.unwrap_or(d.instances),
        cores: q.cores.unwrap_or(d.cores),
        ram: q.ram.unwrap_or(d.ram),
    };
    Ok((
        ComputeConfig {
            scheduler: sched,
            default_availability_zone: default_az,
            quota,
            shelved_offload_time,
            live_migration_bandwidth: config.libvirt.live_migration_bandwidth,
            resize_confirm_window,
            precache_concurrency: config.image_cache.precache_concurrency.unwrap_or(1).max(1),
        },
        agent,
    ))
}

/// The embedded agents' hosts: `compute-1..N`, each its own libvirt test
/// node (a node file under DATA/agents) or a fake host.
fn embedded_hosts(args: &ServeArgs, data: &Path) -> Result<Vec<(String, Arc<dyn ComputeDriver>)>> {
    let mut hosts: Vec<(String, Arc<dyn ComputeDriver>)> = Vec::new();
    for i in 1..=args.with_agents {
        let host = format!("compute-{i}");
        let driver: Arc<dyn ComputeDriver> = if args.agent_driver == "fake" {
            Arc::new(FakeDriver::new(&host, args.agent_vcpus, args.agent_memory_mb, args.agent_disk_gb, Duration::ZERO))
        } else {
            let dir = data.join("agents");
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            let node = std::path::absolute(dir.join(format!("{host}.xml")))?;
            std::fs::write(&node, test_node_xml(args.agent_vcpus, args.agent_memory_mb))?;
            let uri = format!("test://{}", node.display());
            Arc::new(LibvirtDriver::open(&uri, args.agent_disk_gb).map_err(|e| anyhow::anyhow!("{host}: {e}"))?)
        };
        hosts.push((host, driver));
    }
    Ok(hosts)
}

fn load_config(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("config file {}", path.display()))
}

pub fn run(args: ServeArgs) -> Result<()> {
    let config = match &args.config {
        Some(p) => load_config(p)?,
        None => Config::default(),
    };
    let addr = |flag: Option<SocketAddr>, file: Option<SocketAddr>, default: &str| {
        flag.or(file).unwrap_or_else(|| default.parse().expect("literal"))
    };
    let listen = addr(args.listen, config.api.listen, "127.0.0.1:8778");
    let compute_listen = addr(args.compute_listen, config.api.compute_listen, "127.0.0.1:8774");
    let image_listen = addr(args.image_listen, config.api.image_listen, "127.0.0.1:9292");
    let data = args.data.clone().or(config.store.data.clone()).unwrap_or_else(|| PathBuf::from("quiver-data"));
    let durability = match config.store.durability.as_deref() {
        None | Some("process") => Durability::Process,
        Some("full") => Durability::Full,
        Some(other) => bail!("config [store] durability: expected \"process\" or \"full\", got {other:?}"),
    };
    let (compute_config, agent_config) = compute_config(&config)?;
    let limits = config.api.limits()?;
    let auth = auth_strategy(&config)?;
    let image_endpoint_override = config.glance.endpoint_override.clone();
    let (placement, records_at) = match args.database.clone().or(config.database.connection.clone()) {
        Some(url) => {
            let at = Location::parse(&url);
            if !matches!(at, Location::Postgres(_)) {
                bail!("--database / [database] connection: expected a postgresql:// URL, got {url:?}");
            }
            let p =
                Placement::open_at(&at, durability).map_err(|e| anyhow::anyhow!("cannot open the database: {e}"))?;
            (p, at)
        }
        None => {
            let p = Placement::open(&data, durability)
                .map_err(|e| anyhow::anyhow!("cannot open data directory {}: {e}", data.display()))?;
            (p, Location::Dir(data.clone()))
        }
    };
    let cors = (!config.cors.allowed_origin.is_empty()).then_some(Cors {
        allowed_origins: config.cors.allowed_origin,
        allow_headers: config.cors.allow_headers,
        expose_headers: config.cors.expose_headers,
        allow_methods: config.cors.allow_methods,
        max_age: config.cors.max_age,
        allow_credentials: config.cors.allow_credentials,
    });
    let placement = Arc::new(placement);
    // Other replicas on the same database: apply their writes as they land.
    placement.follow_changes().context("cannot start the change-feed follower")?;
    let api = Arc::new(PlacementApi {
        placement: Arc::clone(&placement),
        policy: Policy {
            enforce_new_defaults: config.oslo_policy.enforce_new_defaults,
            overrides: config.oslo_policy.rules,
        },
        cors,
        metrics: Metrics::default(),
        max_body_bytes: config.api.max_body_bytes.unwrap_or(4 << 20),
    });
    if args.placement_only {
        return serve_placement_only(listen, protect(app(api), &auth, PLACEMENT_PUBLIC), limits);
    }
    let compute = Arc::new(
        ComputeApi::open_with_records(Arc::clone(&placement), data.clone(), &records_at, compute_config, args.seed)
            .map_err(|e| anyhow::anyhow!("cannot open the compute records in {}: {e}", data.display()))?,
    );
    let agent = if args.with_agents > 0 {
        let hosts = embedded_hosts(&args, &data)?;
        let mut agent_config = agent_config;
        // The embedded hosts cache base images in the data directory.
        agent_config.instances_path.get_or_insert_with(|| data.join("instances"));
        let agent = Arc::new(
            Agent::new(hosts, agent_config, None)
                .with_provider_config(config.compute.provider_config()?)
                .map_err(|e| anyhow::anyhow!("agent: {e}"))?,
        );
        for host in agent.host_names() {
            compute.attach_local_agent(host, Arc::clone(&agent) as Arc<dyn AgentApi>);
        }
        agent.register(Arc::clone(&compute) as Arc<dyn Controller>).map_err(|e| anyhow::anyhow!("agent: {e}"))?;
        agent.start_periodic();
        Some(agent)
    } else {
        None
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("quiver-http").build()?;
    runtime.block_on(async move {
        let bind = |a: SocketAddr| async move {
            tokio::net::TcpListener::bind(a).await.with_context(|| format!("cannot listen on {a}"))
        };
        let (pl, cl, il) = (bind(listen).await?, bind(compute_listen).await?, bind(image_listen).await?);
        // The addresses bound, which differ from the asked ones for port 0.
        let (listen, compute_listen, image_listen) = (pl.local_addr()?, cl.local_addr()?, il.local_addr()?);
        let image_endpoint = image_endpoint_override.unwrap_or_else(|| {
            let mut at = image_listen;
            if at.ip().is_unspecified() {
                at.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            format!("http://{at}")
        });
        let _ = compute.image_endpoint.set(image_endpoint);
        let _ = compute.auth.set(auth.clone());
        let mut servers = tokio::task::JoinSet::new();
        servers.spawn(serve_http(pl, protect(app(api), &auth, PLACEMENT_PUBLIC), limits, shutdown()));
        let c = Arc::clone(&compute);
        servers.spawn(serve_http(cl, protect(compute_app(c), &auth, COMPUTE_PUBLIC), limits, shutdown()));
        let uploads = Limits { body_read_timeout: limits.body_read_timeout.max(Duration::from_secs(3600)), ..limits };
        servers.spawn(serve_http(il, protect(image_app(compute), &auth, IMAGE_PUBLIC), uploads, shutdown()));
        if let (Some(agent), Some(a)) = (agent, args.agent_listen) {
            let l = bind(a).await?;
            let a = l.local_addr()?;
            servers.spawn(serve_http(l, agent_router(agent), limits, shutdown()));
            eprintln!("quiver: embedded agents' API on http://{a}");
        }
        tracing::info!(%listen, %compute_listen, %image_listen, data = %data.display(), "APIs ready");
        eprintln!(
            "quiver: Placement on http://{listen}, Compute on http://{compute_listen}/v2.1, images on http://{image_listen} \
             ({} embedded agents; data in {})",
            args.with_agents,
            data.display()
        );
        while let Some(done) = servers.join_next().await {
            done??;
        }
        Ok(())
    })
}

/// `--placement-only`: the Placement API alone.
fn serve_placement_only(listen: SocketAddr, app: axum::Router, limits: Limits) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("quiver-http").build()?;
    runtime.block_on(async move {
        let l = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
        let listen = l.local_addr()?;
        tracing::info!(%listen, "Placement API ready (placement only)");
        eprintln!("quiver: Placement on http://{listen} (placement only)");
        serve_http(l, app, limits, shutdown()).await?;
        Ok(())
    })
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
