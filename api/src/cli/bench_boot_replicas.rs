//! `quiver bench boot --postgres URL --replicas 1,3`: the boot stream of
//! `quiver bench boot` against several `quiver serve` replicas on one
//! PostgreSQL database (a fresh database per setup), with the hosts in one
//! `quiver agent --driver fake` process reporting to the first replica and
//! the clients spread round robin over every replica. Each setup in the
//! same run, so the replicas' figures read against the one-replica one.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use super::bench_boot::{BootBenchArgs, boot_one, drive};
use super::bench_replicas::{free_port, fresh_database};
use super::bench_serve::{client, ok, pct};

/// One setup's processes, killed when dropped.
struct Cloud {
    children: Vec<Child>,
    computes: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Drop for Cloud {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn(args: &[String], replica: &str) -> Result<Child> {
    Command::new(std::env::current_exe()?)
        .args(args)
        .env("QUIVER_LOG", "warn")
        .env("QUIVER_REPLICA_NAME", replica)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start quiver")
}

/// `n` replicas with the Compute API on `database` and one fake agent
/// process of `a.hosts` hosts; ready when every replica sees every host.
fn start(a: &BootBenchArgs, database: &str, n: usize) -> Result<Cloud> {
    let dir = tempfile::tempdir()?;
    let mut cloud = Cloud { children: vec![], computes: vec![], _dir: dir };
    for i in 0..n {
        let (p, c, img) = (free_port()?, free_port()?, free_port()?);
        let data = cloud._dir.path().join(format!("replica-{i}"));
        let args: Vec<String> = [
            "serve",
            "--database",
            database,
            "--data",
            data.to_str().context("utf8 path")?,
            "--listen",
            &format!("127.0.0.1:{p}"),
            "--compute-listen",
            &format!("127.0.0.1:{c}"),
            "--image-listen",
            &format!("127.0.0.1:{img}"),
        ]
        .map(str::to_owned)
        .to_vec();
        cloud.children.push(spawn(&args, &format!("boot-{i}"))?);
        cloud.computes.push(format!("http://127.0.0.1:{c}/v2.1"));
    }
    let http = client()?;
    let up = |url: &str| http.get(format!("{url}/flavors")).send().is_ok_and(|r| r.status().is_success());
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cloud.computes.iter().all(|c| up(c)) {
        if Instant::now() > deadline {
            bail!("the replicas did not come up");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let listen = format!("127.0.0.1:{}", free_port()?);
    let controller = cloud.computes[0].trim_end_matches("/v2.1").to_owned();
    let args: Vec<String> = [
        "agent",
        "--driver",
        "fake",
        "--controller",
        &controller,
        "--host",
        "bench",
        "--fake-hosts",
        &a.hosts.to_string(),
        "--vcpus",
        &a.host_vcpus.to_string(),
        "--memory-mb",
        &a.host_memory_mb.to_string(),
        "--listen",
        &listen,
    ]
    .map(str::to_owned)
    .to_vec();
    cloud.children.push(spawn(&args, "agent")?);
    let deadline = Instant::now() + Duration::from_secs(600);
    let hosts = |url: &str| -> usize {
        http.get(format!("{url}/os-hypervisors"))
            .send()
            .ok()
            .and_then(|r| r.json::<Value>().ok())
            .and_then(|v| v["hypervisors"].as_array().map(Vec::len))
            .unwrap_or(0)
    };
    while !cloud.computes.iter().all(|c| hosts(c) == a.hosts) {
        if Instant::now() > deadline {
            bail!("the hosts did not register with every replica");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(cloud)
}

/// One setup's figures.
struct Figures {
    replicas: usize,
    boots_per_s: f64,
    lat: Vec<f64>,
    failed: usize,
}

pub fn run(a: &BootBenchArgs, base: &str) -> Result<()> {
    let base = if base.ends_with('/') { base.to_owned() } else { format!("{base}/") };
    let style = ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} {per_sec}").expect("template");
    let mut figures = vec![];
    for &n in &a.replicas {
        eprintln!("{n} replica(s) on PostgreSQL, {} fake hosts in one agent process ...", a.hosts);
        let database = fresh_database(&base, &format!("quiver_boot_{n}"))?;
        let cloud = start(a, &database, n)?;
        let http = client()?;
        let first = &cloud.computes[0];
        ok(http
            .post(format!("{first}/flavors"))
            .json(&json!({"flavor": {"name": "bench.small", "ram": 512, "vcpus": 1, "disk": 1, "id": "bench"}}))
            .send()?)?;
        ok(http
            .put(format!("{first}/os-quota-sets/admin"))
            .json(&json!({"quota_set": {"instances": -1, "cores": -1, "ram": -1}}))
            .send()?)?;
        let bar = ProgressBar::new(a.servers as u64).with_style(style.clone()).with_message(format!("{n} replicas"));
        let computes = &cloud.computes;
        let (wall, lat, failed) =
            drive(a.servers, a.concurrency, &bar, |http, i| boot_one(http, &computes[i % computes.len()], i, None))?;
        bar.finish();
        figures.push(Figures { replicas: n, boots_per_s: lat.len() as f64 / wall, lat, failed });
    }
    let one = figures.first().map_or(1.0, |f| f.boots_per_s);
    println!("hosts {} (fake, one agent process), servers {}, clients {}", a.hosts, a.servers, a.concurrency);
    for f in &figures {
        println!(
            "  {} replica(s): {:>8.1} boots/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ({} failed)  {:.2}x the first setup",
            f.replicas,
            f.boots_per_s,
            pct(&f.lat, 0.5),
            pct(&f.lat, 0.99),
            f.failed,
            f.boots_per_s / one
        );
    }
    if let Some(p) = &a.json {
        let out: Vec<Value> = figures
            .iter()
            .map(|f| {
                json!({"replicas": f.replicas, "boots_per_second": f.boots_per_s, "boot_p50_ms": pct(&f.lat, 0.5),
                       "boot_p99_ms": pct(&f.lat, 0.99), "boots_failed": f.failed})
            })
            .collect();
        let doc = json!({"hosts": a.hosts, "servers": a.servers, "concurrency": a.concurrency, "setups": out});
        std::fs::write(p, serde_json::to_string_pretty(&doc)?)?;
    }
    Ok(())
}
