//! `quiver serve`: the Placement API on a data directory.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Deserialize;

use quiver_api::placement_api::{Cors, Metrics, PlacementApi, app, policy::Policy};
use quiver_placement::Placement;
use quiver_placement::store::Durability;

/// Serve the OpenStack Placement API (microversions 1.0 to 1.39).
///
/// State lives in DATA/placement.sqlite (SQLite in WAL mode, created and
/// migrated on start); every acknowledged write is committed before the
/// response is sent. Authentication is noauth2, as Placement's development
/// mode: send `X-Auth-Token: admin`, or `user[:project]` with `X-Roles`.
/// Requests are logged with their request id; GET /metrics serves
/// Prometheus counters.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  quiver serve --data /var/lib/quiver
  quiver serve --listen 0.0.0.0:8778 --data ./data --config placement.toml
  curl -H 'X-Auth-Token: admin' http://127.0.0.1:8778/resource_providers

Config file (TOML; every key optional):
  [api]
  listen = \"127.0.0.1:8778\"
  max_body_bytes = 4194304
  [store]
  data = \"./quiver-data\"
  durability = \"process\"   # or \"full\": fsync every commit
  [oslo_policy]
  enforce_new_defaults = false   # true: secure RBAC defaults
  [oslo_policy.rules]            # overrides, Placement's rule names
  \"placement:resource_providers:list\" = \"@\"
  [cors]
  allowed_origin = [\"http://valid.example.com\"]
  allow_headers = [\"openstack-api-version\"]")]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8778, Placement's port].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Data directory (holds placement.sqlite) [default: ./quiver-data].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// TOML configuration file; command-line flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    api: ApiSection,
    #[serde(default)]
    store: StoreSection,
    #[serde(default)]
    oslo_policy: PolicySection,
    #[serde(default)]
    cors: CorsSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiSection {
    listen: Option<SocketAddr>,
    max_body_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreSection {
    data: Option<PathBuf>,
    durability: Option<String>,
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

fn load_config(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("config file {}", path.display()))
}

pub fn run(args: ServeArgs) -> Result<()> {
    let config = match &args.config {
        Some(p) => load_config(p)?,
        None => Config::default(),
    };
    let listen = args.listen.or(config.api.listen).unwrap_or_else(|| "127.0.0.1:8778".parse().expect("literal"));
    let data = args.data.or(config.store.data).unwrap_or_else(|| PathBuf::from("quiver-data"));
    let durability = match config.store.durability.as_deref() {
        None | Some("process") => Durability::Process,
        Some("full") => Durability::Full,
        Some(other) => bail!("config [store] durability: expected \"process\" or \"full\", got {other:?}"),
    };
    let placement = Placement::open(&data, durability)
        .map_err(|e| anyhow::anyhow!("cannot open data directory {}: {e}", data.display()))?;
    let cors = (!config.cors.allowed_origin.is_empty()).then_some(Cors {
        allowed_origins: config.cors.allowed_origin,
        allow_headers: config.cors.allow_headers,
        expose_headers: config.cors.expose_headers,
        allow_methods: config.cors.allow_methods,
        max_age: config.cors.max_age,
        allow_credentials: config.cors.allow_credentials,
    });
    let api = Arc::new(PlacementApi {
        placement,
        policy: Policy {
            enforce_new_defaults: config.oslo_policy.enforce_new_defaults,
            overrides: config.oslo_policy.rules,
        },
        cors,
        metrics: Metrics::default(),
        max_body_bytes: config.api.max_body_bytes.unwrap_or(4 << 20),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("quiver-http").build()?;
    runtime.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
        tracing::info!(%listen, data = %data.display(), "placement API ready");
        eprintln!("quiver: Placement API on http://{listen} (data in {})", data.display());
        axum::serve(listener, app(api)).with_graceful_shutdown(shutdown()).await?;
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
