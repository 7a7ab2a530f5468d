//! `quiver bench boot`: servers from API request to ACTIVE per second, and
//! the latency of one boot, against a `quiver serve` with embedded agents
//! started for the run; beside it, in the same run, the rate of bare
//! Placement claims over HTTP (the floor a boot's claim alone costs).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::bench_serve::{client, ok, pct, start};

/// Arguments of `quiver bench boot`.
#[derive(Debug, Args)]
#[command(after_help = "Reports:
  boots/s       servers ACTIVE per second of wall time, from the first POST /servers
                to the last server seen ACTIVE (clients poll each server every 5 ms)
  p50/p99 ms    one server's time from its POST to ACTIVE
  claims/s      bare PUT /allocations/{consumer} on the same server, same concurrency
                (Placement alone: the floor under a boot's claim); x = claims/s / boots/s
  churn         with --churn, a second boot phase in the same run where each client
                deletes the oldest ACTIVE server before each create once 64 are live;
                churn cost = 1 - churn boots/s / boots/s

Examples:
  quiver bench boot --hosts 1000 --driver fake --servers 2000
  quiver bench boot --hosts 10 --driver libvirt --servers 500 --json boot.json
  quiver bench boot --hosts 100000 --driver fake --servers 3000 --churn
  quiver bench boot --hosts 100 --servers 1000 --postgres postgresql://me@127.0.0.1:5432/ --replicas 1,3")]
pub struct BootBenchArgs {
    /// Compute hosts (embedded agents).
    #[arg(long, default_value_t = 1000)]
    pub hosts: usize,
    /// Driver of the agents: fake or libvirt (the test driver).
    #[arg(long, default_value = "fake", value_parser = ["fake", "libvirt"])]
    pub driver: String,
    /// Servers to boot.
    #[arg(long, default_value_t = 2000)]
    pub servers: usize,
    /// Concurrent API clients.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// vCPUs per host.
    #[arg(long, default_value_t = 64)]
    pub host_vcpus: u32,
    /// Memory per host, MiB.
    #[arg(long, default_value_t = 262_144)]
    pub host_memory_mb: u64,
    /// Also time boots with churn: a delete before each create once 64
    /// servers are live (same run, after the plain boots).
    #[arg(long)]
    pub churn: bool,
    /// Write the results as JSON here.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
    /// Boot against replicas on PostgreSQL instead: the server's base URL
    /// (`postgresql://USER@HOST:PORT/`; a fresh database per setup is made
    /// there), the hosts in one `quiver agent --driver fake` process.
    #[arg(long, value_name = "BASE_URL")]
    pub postgres: Option<String>,
    /// With `--postgres`: replica counts to run, one setup each.
    #[arg(long, value_delimiter = ',', default_value = "1,3", requires = "postgres")]
    pub replicas: Vec<usize>,
}

/// Runs `n` jobs on `k` client threads; returns wall seconds and each
/// job's latency in ms (or its error).
pub(super) fn drive(
    n: usize,
    k: usize,
    bar: &ProgressBar,
    job: impl Fn(&reqwest::blocking::Client, usize) -> Result<f64> + Sync,
) -> Result<(f64, Vec<f64>, usize)> {
    let next = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let lat = std::sync::Mutex::new(Vec::with_capacity(n));
    let start = Instant::now();
    std::thread::scope(|sc| -> Result<()> {
        for _ in 0..k {
            let http = client()?;
            sc.spawn(|| {
                let http = http;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    match job(&http, i) {
                        Ok(ms) => lat.lock().unwrap_or_else(|p| p.into_inner()).push(ms),
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    bar.inc(1);
                }
            });
        }
        Ok(())
    })?;
    let wall = start.elapsed().as_secs_f64();
    let mut v = lat.into_inner().unwrap_or_else(|p| p.into_inner());
    v.sort_by(f64::total_cmp);
    Ok((wall, v, failed.into_inner()))
}

/// Servers kept live in churn mode before each create deletes one.
const CHURN_LIVE: usize = 64;

/// One boot from POST to ACTIVE, in ms. With `churn`, first deletes the
/// oldest server it booted once [`CHURN_LIVE`] are live.
pub(super) fn boot_one(
    http: &reqwest::blocking::Client,
    compute: &str,
    i: usize,
    churn: Option<&std::sync::Mutex<std::collections::VecDeque<String>>>,
) -> Result<f64> {
    let t0 = Instant::now();
    if let Some(live) = churn {
        let victim = {
            let mut q = live.lock().unwrap_or_else(|p| p.into_inner());
            if q.len() >= CHURN_LIVE { q.pop_front() } else { None }
        };
        if let Some(id) = victim {
            ok(http.delete(format!("{compute}/servers/{id}")).send()?)?;
        }
    }
    let v = ok(http
        .post(format!("{compute}/servers"))
        .json(&json!({"server": {"name": format!("b{i}"), "flavorRef": "bench", "networks": "none"}}))
        .send()?)?;
    let id = v["server"]["id"].as_str().context("no server id")?.to_owned();
    loop {
        let v = ok(http.get(format!("{compute}/servers/{id}")).send()?)?;
        match v["server"]["status"].as_str() {
            Some("ACTIVE") => break,
            Some("ERROR") => bail!("server {id} went to ERROR: {}", v["server"]["fault"]),
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    if let Some(live) = churn {
        live.lock().unwrap_or_else(|p| p.into_inner()).push_back(id);
    }
    Ok(t0.elapsed().as_secs_f64() * 1e3)
}

/// One bare claim of a bench server's resources on provider `rp`
/// (`PUT /allocations/{new consumer}`), in ms.
pub(super) fn claim_one(http: &reqwest::blocking::Client, placement: &str, rp: &str) -> Result<f64> {
    let t0 = Instant::now();
    let consumer = uuid::Uuid::new_v4().to_string();
    let body = json!({"allocations": {rp: {"resources": {"VCPU": 1, "MEMORY_MB": 512, "DISK_GB": 1}}},
                      "project_id": "bench", "user_id": "bench", "consumer_generation": null,
                      "consumer_type": "INSTANCE"});
    ok(http.put(format!("{placement}/allocations/{consumer}")).json(&body).send()?)?;
    Ok(t0.elapsed().as_secs_f64() * 1e3)
}

/// The uuids of every resource provider of the Placement at `placement`.
pub(super) fn provider_uuids(http: &reqwest::blocking::Client, placement: &str) -> Result<Vec<String>> {
    Ok(ok(http.get(format!("{placement}/resource_providers")).send()?)?["resource_providers"]
        .as_array()
        .context("providers")?
        .iter()
        .filter_map(|p| p["uuid"].as_str().map(str::to_owned))
        .collect())
}

/// Starts `quiver serve` with `hosts` embedded agents of `driver`, and
/// makes the `bench` flavor (1 vCPU, 512 MiB, 1 GB) and unlimited quotas.
pub(super) fn start_cloud(
    hosts: usize,
    driver: &str,
    vcpus: u32,
    memory_mb: u64,
) -> Result<super::bench_serve::Server> {
    let s = start(&[
        "--with-agents".into(),
        hosts.to_string(),
        "--agent-driver".into(),
        driver.to_owned(),
        "--agent-vcpus".into(),
        vcpus.to_string(),
        "--agent-memory-mb".into(),
        memory_mb.to_string(),
    ])?;
    let http = client()?;
    ok(http
        .post(format!("{}/flavors", s.compute))
        .json(&json!({"flavor": {"name": "bench.small", "ram": 512, "vcpus": 1, "disk": 1, "id": "bench"}}))
        .send()?)?;
    ok(http
        .put(format!("{}/os-quota-sets/admin", s.compute))
        .json(&json!({"quota_set": {"instances": -1, "cores": -1, "ram": -1}}))
        .send()?)?;
    Ok(s)
}

pub fn run(a: BootBenchArgs) -> Result<()> {
    if let Some(base) = &a.postgres {
        return super::bench_boot_replicas::run(&a, base);
    }
    eprintln!("starting quiver serve with {} {} hosts ...", a.hosts, a.driver);
    let t = Instant::now();
    let s = Arc::new(start_cloud(a.hosts, &a.driver, a.host_vcpus, a.host_memory_mb)?);
    eprintln!("  ready in {:.1} s", t.elapsed().as_secs_f64());
    let http = client()?;
    let style = ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} {per_sec}").expect("template");
    // 1. boots
    let bar = ProgressBar::new(a.servers as u64).with_style(style.clone()).with_message("boots");
    let (wall, lat, failed) = drive(a.servers, a.concurrency, &bar, |http, i| boot_one(http, &s.compute, i, None))?;
    bar.finish();
    let boots_per_s = lat.len() as f64 / wall;
    // 1b. boots with churn: the oldest live server deleted before each create
    let churn = if a.churn {
        let live = std::sync::Mutex::new(std::collections::VecDeque::new());
        let bar = ProgressBar::new(a.servers as u64).with_style(style.clone()).with_message("churn");
        let (wall, lat, failed) =
            drive(a.servers, a.concurrency, &bar, |http, i| boot_one(http, &s.compute, a.servers + i, Some(&live)))?;
        bar.finish();
        Some((lat.len() as f64 / wall, lat, failed))
    } else {
        None
    };
    // 2. bare claims on one provider per host, same concurrency
    let rps = provider_uuids(&http, &s.placement)?;
    let bar = ProgressBar::new(a.servers as u64).with_style(style).with_message("claims");
    let (cwall, clat, cfailed) =
        drive(a.servers, a.concurrency, &bar, |http, i| claim_one(http, &s.placement, &rps[i % rps.len()]))?;
    bar.finish();
    let claims_per_s = clat.len() as f64 / cwall;
    if let Some((rate, lat, failed)) = &churn {
        println!(
            "  churn:  {:>8.1} /s  p50 {:>7.2} ms  p99 {:>7.2} ms  ({} failed)  churn cost {:.1}% of the boot rate",
            rate,
            pct(lat, 0.5),
            pct(lat, 0.99),
            failed,
            100.0 * (1.0 - rate / boots_per_s)
        );
    }
    println!(
        "hosts {} ({}), servers {}, clients {}\n  boots:  {:>8.1} /s  p50 {:>7.2} ms  p99 {:>7.2} ms  ({} failed)\n  claims: {:>8.1} /s  p50 {:>7.2} ms  p99 {:>7.2} ms  ({} failed)\n  claims/s / boots/s = {:.1}x",
        a.hosts,
        a.driver,
        a.servers,
        a.concurrency,
        boots_per_s,
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        failed,
        claims_per_s,
        pct(&clat, 0.5),
        pct(&clat, 0.99),
        cfailed,
        claims_per_s / boots_per_s
    );
    if let Some(p) = &a.json {
        let out = json!({
            "hosts": a.hosts, "driver": a.driver, "servers": a.servers, "concurrency": a.concurrency,
            "boots_per_second": boots_per_s, "boot_p50_ms": pct(&lat, 0.5), "boot_p99_ms": pct(&lat, 0.99),
            "boots_failed": failed, "claims_per_second": claims_per_s, "claim_p50_ms": pct(&clat, 0.5),
            "claim_p99_ms": pct(&clat, 0.99),
            "churn_boots_per_second": churn.as_ref().map(|c| c.0),
            "churn_boot_p50_ms": churn.as_ref().map(|c| pct(&c.1, 0.5)),
            "churn_boot_p99_ms": churn.as_ref().map(|c| pct(&c.1, 0.99)),
            "churn_boots_failed": churn.as_ref().map(|c| c.2),
        });
        std::fs::write(p, serde_json::to_string_pretty(&out)?)?;
    }
    Ok(())
}
