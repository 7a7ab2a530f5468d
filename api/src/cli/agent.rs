//! `quiver agent`: a compute agent in its own process, talking to
//! `quiver serve` over HTTP.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use quiver_compute_agent::agent::router;
use quiver_compute_agent::controller::{Controller, HttpController};
use quiver_compute_agent::fake_driver::FakeDriver;
use quiver_compute_agent::libvirt_driver::{DEFAULT_TEST_DISK_GB, DEFAULT_URI, LibvirtDriver};
use quiver_compute_agent::{Agent, AgentConfig, ComputeDriver};

/// Run a compute agent: register this host's compute service and resource
/// provider (inventory from the hypervisor, traits from its CPU) with the
/// controller, heartbeat, reconcile, and build, stop, start, reboot and
/// delete guests when the conductor asks.
///
/// With `--driver libvirt` (the default) guests are libvirt domains on
/// `--connection-uri` (`test:///default`, libvirt's in-process test
/// hypervisor, unless told otherwise; `qemu:///system` on a real host).
/// With `--driver fake --fake-hosts N` one process simulates N hosts.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  quiver agent --controller http://127.0.0.1:8774 --host compute-a
  quiver agent --host kvm-1 --connection-uri qemu:///system --listen 0.0.0.0:8775 --advertise http://10.0.0.5:8775
  quiver agent --driver fake --fake-hosts 1000 --host sim --listen 127.0.0.1:8790

Config file (TOML, Nova's option names; flags override it):
  [DEFAULT]
  reserved_host_memory_mb = 512
  cpu_allocation_ratio = 4.0
  report_interval = 10
  update_resources_interval = 60
  instances_path = \"/var/lib/quiver/instances\"   # base images cached ahead of boots")]
pub struct AgentArgs {
    /// The controller's Compute API (where `quiver serve` listens).
    #[arg(long, default_value = "http://127.0.0.1:8774")]
    pub controller: String,
    /// Token for the controller (admin).
    #[arg(long, default_value = "admin")]
    pub token: String,
    /// Service host name [default: this machine's hostname].
    #[arg(long)]
    pub host: Option<String>,
    /// Where this agent's HTTP API listens.
    #[arg(long, default_value = "127.0.0.1:8775")]
    pub listen: SocketAddr,
    /// The URL the controller should use to reach this agent
    /// [default: http://LISTEN].
    #[arg(long)]
    pub advertise: Option<String>,
    /// Hypervisor driver.
    #[arg(long, default_value = "libvirt", value_parser = ["libvirt", "fake"])]
    pub driver: String,
    /// libvirt connection URI.
    #[arg(long, default_value = DEFAULT_URI)]
    pub connection_uri: String,
    /// Disk to report for the host, GB (libvirt reports none for the test
    /// driver; for `fake` it is the host's disk).
    #[arg(long, default_value_t = DEFAULT_TEST_DISK_GB)]
    pub disk_gb: u64,
    /// Fake driver: simulated hosts in this process (named HOST-1..HOST-N).
    #[arg(long, default_value_t = 1)]
    pub fake_hosts: usize,
    /// Fake driver: vCPUs per host.
    #[arg(long, default_value_t = 32)]
    pub vcpus: u32,
    /// Fake driver: memory per host, MiB.
    #[arg(long, default_value_t = 131072)]
    pub memory_mb: u64,
    /// Fake driver: how long a guest takes to spawn, ms.
    #[arg(long, default_value_t = 0)]
    pub spawn_delay_ms: u64,
    /// Seconds between heartbeats (`report_interval`).
    #[arg(long)]
    pub report_interval: Option<f64>,
    /// Seconds between reconciles (`update_resources_interval`).
    #[arg(long)]
    pub update_resources_interval: Option<f64>,
    /// TOML config file with `[DEFAULT]` and `[compute]` sections.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Directory of Nova provider config files (`[compute]
    /// provider_config_location`): extra inventory and traits per node.
    #[arg(long)]
    pub provider_config_location: Option<PathBuf>,
    /// Where each host keeps its base-image cache, `DIR/<host>/_base`
    /// (`[DEFAULT] instances_path`); without it the agent answers image
    /// pre-caching requests `unsupported`.
    #[arg(long)]
    pub instances_path: Option<PathBuf>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentFile {
    #[serde(default, rename = "DEFAULT")]
    default: AgentConfig,
    #[serde(default)]
    compute: super::serve::ComputeSection,
}

pub fn run(args: AgentArgs) -> Result<()> {
    let file = match &args.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
            toml::from_str::<AgentFile>(&text).with_context(|| format!("config file {}", p.display()))?
        }
        None => AgentFile::default(),
    };
    let (mut config, mut compute) = (file.default, file.compute);
    if let Some(dir) = &args.provider_config_location {
        compute.provider_config_location = Some(dir.clone());
    }
    if let Some(v) = args.report_interval {
        config.report_interval = v;
    }
    if let Some(v) = args.update_resources_interval {
        config.update_resources_interval = v;
    }
    if let Some(dir) = &args.instances_path {
        config.instances_path = Some(dir.clone());
    }
    let host = match &args.host {
        Some(h) => h.clone(),
        None => {
            std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_owned()).unwrap_or_else(|_| "localhost".into())
        }
    };
    let mut hosts: Vec<(String, Arc<dyn ComputeDriver>)> = Vec::new();
    if args.driver == "fake" {
        for i in 1..=args.fake_hosts.max(1) {
            let name = if args.fake_hosts > 1 { format!("{host}-{i}") } else { host.clone() };
            let d = FakeDriver::new(
                &name,
                args.vcpus,
                args.memory_mb,
                args.disk_gb,
                Duration::from_millis(args.spawn_delay_ms),
            );
            hosts.push((name, Arc::new(d)));
        }
    } else {
        let d = LibvirtDriver::open(&args.connection_uri, args.disk_gb).map_err(|e| anyhow::anyhow!("{e}"))?;
        hosts.push((host.clone(), Arc::new(d)));
    }
    let advertise = args.advertise.clone().unwrap_or_else(|| format!("http://{}", args.listen));
    let agent = Arc::new(
        Agent::new(hosts, config, Some(advertise))
            .with_provider_config(compute.provider_config()?)
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("quiver-agent").build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        // The same slow-client limits as the controller's ports.
        let app = router(Arc::clone(&agent));
        let server = tokio::spawn(quiver_api::http_server::serve(
            listener,
            app,
            quiver_api::http_server::Limits::default(),
            std::future::pending(),
        ));
        // Register once the API is up (the controller may call back at once),
        // retrying until the controller answers.
        let a = Arc::clone(&agent);
        let (controller, token) = (args.controller.clone(), args.token.clone());
        tokio::task::spawn_blocking(move || -> Result<()> {
            let c: Arc<dyn Controller> =
                Arc::new(HttpController::new(&controller, &token).map_err(|e| anyhow::anyhow!("{e}"))?);
            loop {
                match a.register(Arc::clone(&c)) {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "registration failed; retrying in 1 s");
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            }
            a.start_periodic();
            eprintln!(
                "quiver: agent for {} registered with {controller}",
                a.host_names().collect::<Vec<_>>().join(", ")
            );
            Ok(())
        })
        .await??;
        server.await??;
        Ok(())
    })
}
