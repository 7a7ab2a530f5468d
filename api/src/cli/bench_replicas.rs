//! `quiver bench replicas`: Placement on one PostgreSQL database served by
//! 1, 2 and 3 Quiver replicas, beside one Quiver on SQLite and the real
//! OpenStack Placement on the same PostgreSQL server, in one run: allocation
//! writes per second from concurrent clients spread round robin over the
//! replicas, `GET /allocation_candidates` and one provider `GET` (whose
//! difference to SQLite is the per-request freshness check), each beside
//! the HTTP floor (`GET /`), and the change feed's commit-to-apply lag.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::bench_serve::{client, ok, pct};

/// Arguments of `quiver bench replicas`.
#[derive(Debug, Args)]
#[command(after_help = "Each setup gets a fresh database and the same fleet, built through its first
endpoint. Columns:
  writes/s      PUT /allocations/{new consumer} acknowledged per second, --clients
                threads for --seconds, each request to the next endpoint in turn
  write p50     one such write, client to client (ms)
  cands p50     GET /allocation_candidates?resources=VCPU:1,MEMORY_MB:512 (ms)
  get p50       GET /resource_providers/{uuid} (ms): on PostgreSQL it includes
                the freshness check (the newest change's sequence, one round trip)
  floor p50     GET / (ms), interleaved with the two above: HTTP alone
  fresh ms      the mean freshness check of those reads (reading the newest
                change's sequence), from /metrics (Quiver on PostgreSQL)
  lag p50/p99   commit-to-apply delay of other replicas' changes (ms), from
                /metrics (Quiver replicas only)

Example (a throwaway PostgreSQL; the reference needs psycopg2-binary in its venv):
  scripts/pg-throwaway start /tmp/pgbench    # prints the base URL
  /tmp/placement-ref/venv/bin/pip install psycopg2-binary
  quiver bench replicas --postgres postgresql://quiver@127.0.0.1:PORT/ --json replicas.json")]
pub struct ReplicasBenchArgs {
    /// A PostgreSQL server's base URL (`postgresql://USER@HOST:PORT/`);
    /// each setup creates a fresh database there.
    #[arg(long, value_name = "URL")]
    pub postgres: String,
    /// Quiver replica counts on PostgreSQL, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    pub replicas: Vec<usize>,
    /// Root providers in the fleet (VCPU, MEMORY_MB, DISK_GB each).
    #[arg(long, default_value_t = 200)]
    pub providers: usize,
    /// Concurrent writer threads.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Seconds of writes per setup.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Timed reads per query and setup.
    #[arg(long, default_value_t = 51)]
    pub repeat: usize,
    /// Virtualenv of the real Placement (openstack-placement, gunicorn,
    /// psycopg2-binary); its setups are skipped when it is missing.
    #[arg(long, default_value = "/tmp/placement-ref/venv")]
    pub reference_venv: PathBuf,
    /// gunicorn worker processes of the real Placement, comma separated
    /// (none: skip it).
    #[arg(long, value_delimiter = ',', default_value = "1,3")]
    pub reference_workers: Vec<usize>,
    /// Write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// The processes of one setup; killed when dropped.
struct Setup {
    name: String,
    children: Vec<Child>,
    endpoints: Vec<String>,
    quiver: bool,
    _dir: tempfile::TempDir,
}

impl Drop for Setup {
    fn drop(&mut self) {
        // SIGTERM first: gunicorn's master stops its workers only then.
        for c in &mut self.children {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        }
        for c in &mut self.children {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub(super) fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_ready(endpoint: &str) -> Result<()> {
    let http = client()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if http.get(format!("{endpoint}/")).send().is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("{endpoint} did not come up")
}

pub(super) fn fresh_database(base: &str, name: &str) -> Result<String> {
    let mut c = postgres::Client::connect(&format!("{base}postgres"), postgres::NoTls)
        .with_context(|| format!("cannot connect to {base}postgres"))?;
    c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
    c.batch_execute(&format!("CREATE DATABASE {name}"))?;
    Ok(format!("{base}{name}"))
}

/// `n` Quiver replicas, Placement only, on `database` (SQLite when None).
fn quiver(name: &str, database: Option<&str>, n: usize) -> Result<Setup> {
    let dir = tempfile::tempdir()?;
    let mut children = vec![];
    let mut endpoints = vec![];
    for i in 0..n {
        let port = free_port()?;
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.args(["serve", "--placement-only", "--listen", &format!("127.0.0.1:{port}"), "--data"])
            .arg(dir.path().join(format!("replica-{i}")));
        if let Some(url) = database {
            cmd.args(["--database", url]);
        }
        children.push(
            cmd.env("QUIVER_LOG", "warn")
                .env("QUIVER_REPLICA_NAME", format!("bench-{i}"))
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .context("cannot start quiver serve")?,
        );
        endpoints.push(format!("http://127.0.0.1:{port}"));
    }
    let s = Setup { name: name.to_owned(), children, endpoints, quiver: true, _dir: dir };
    for e in &s.endpoints {
        wait_ready(e)?;
    }
    Ok(s)
}

/// The real Placement under gunicorn with `workers` processes on `database`.
fn reference(venv: &Path, database: &str, workers: usize) -> Result<Setup> {
    let dir = tempfile::tempdir()?;
    let conf = dir.path().join("placement.conf");
    let sqlalchemy = database.replacen("postgresql://", "postgresql+psycopg2://", 1);
    std::fs::write(
        &conf,
        format!(
            "[DEFAULT]\nlog_file = {}/placement.log\n[api]\nauth_strategy = noauth2\n\
             [placement_database]\nconnection = {sqlalchemy}\nsync_on_startup = false\n\
             [oslo_policy]\nenforce_new_defaults = false\n",
            dir.path().display()
        ),
    )?;
    let status = Command::new(venv.join("bin/placement-manage"))
        .args(["--config-file"])
        .arg(&conf)
        .args(["db", "sync"])
        .stdout(Stdio::null())
        .status()
        .context("placement-manage db sync")?;
    if !status.success() {
        bail!("placement-manage db sync failed (is psycopg2-binary installed in {}?)", venv.display());
    }
    let port = free_port()?;
    let child = Command::new(venv.join("bin/gunicorn"))
        .args(["--bind", &format!("127.0.0.1:{port}"), "--workers", &workers.to_string(), "--preload"])
        .args(["--timeout", "900", "--log-level", "warning", "placement.wsgi.api:application"])
        .env("OS_PLACEMENT_CONFIG_DIR", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start gunicorn")?;
    let endpoint = format!("http://127.0.0.1:{port}");
    let s = Setup {
        name: format!("placement pg w{workers}"),
        children: vec![child],
        endpoints: vec![endpoint.clone()],
        quiver: false,
        _dir: dir,
    };
    wait_ready(&endpoint)?;
    Ok(s)
}

/// The fleet: `n` root providers, built over `endpoint` by 4 threads.
fn build_fleet(endpoint: &str, n: usize, bar: &ProgressBar) -> Result<Vec<String>> {
    let uuids: Vec<String> = (0..n).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    let http = client()?;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(u) = uuids.get(i) else { return Ok(()) };
                        ok(http
                            .post(format!("{endpoint}/resource_providers"))
                            .json(&json!({"uuid": u, "name": format!("bench-{i}")}))
                            .send()?)?;
                        let inv = json!({"resource_provider_generation": 0, "inventories": {
                            "VCPU": {"total": 64, "allocation_ratio": 16.0},
                            "MEMORY_MB": {"total": 262_144, "allocation_ratio": 1.5},
                            "DISK_GB": {"total": 2000}}});
                        ok(http.put(format!("{endpoint}/resource_providers/{u}/inventories")).json(&inv).send()?)?;
                        bar.inc(1);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().map_err(|_| anyhow::anyhow!("a fleet builder panicked"))??;
        }
        Ok(())
    })?;
    Ok(uuids)
}

#[derive(Debug)]
struct Figures {
    writes_per_s: f64,
    write_p50_ms: f64,
    refused: usize,
    cands_p50_ms: f64,
    get_p50_ms: f64,
    floor_p50_ms: f64,
    fresh_ms: Option<f64>,
    lag_ms: Option<(f64, f64)>,
}

/// Writers over every endpoint in turn for `seconds`.
fn write_load(s: &Setup, providers: &[String], clients: usize, seconds: u64) -> Result<(f64, f64, usize)> {
    let turn = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let began = Instant::now();
    let results: Vec<(Vec<f64>, usize)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..clients)
            .map(|_| {
                let (turn, stop) = (&turn, &stop);
                scope.spawn(move || -> Result<(Vec<f64>, usize)> {
                    let http = client()?;
                    let (mut lat, mut refused) = (vec![], 0);
                    while !stop.load(Ordering::Relaxed) {
                        let i = turn.fetch_add(1, Ordering::Relaxed);
                        let endpoint = &s.endpoints[i % s.endpoints.len()];
                        let rp = &providers[(i * 7919) % providers.len()];
                        let body = json!({"allocations": {rp: {"resources": {"VCPU": 1, "MEMORY_MB": 512}}},
                            "project_id": "bench", "user_id": "bench", "consumer_generation": null,
                            "consumer_type": "INSTANCE"});
                        let t = Instant::now();
                        let r =
                            http.put(format!("{endpoint}/allocations/{}", uuid::Uuid::new_v4())).json(&body).send()?;
                        if r.status().as_u16() == 204 {
                            lat.push(t.elapsed().as_secs_f64() * 1e3);
                        } else {
                            if refused == 0 {
                                tracing::warn!(status = r.status().as_u16(), body = %r.text().unwrap_or_default(), "a write was refused");
                            }
                            refused += 1;
                        }
                    }
                    Ok((lat, refused))
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs(seconds));
        stop.store(true, Ordering::Relaxed);
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a writer panicked"))))
            .collect::<Vec<Result<(Vec<f64>, usize)>>>()
    })
    .into_iter()
    .collect::<Result<_>>()?;
    let elapsed = began.elapsed().as_secs_f64();
    let refused = results.iter().map(|r| r.1).sum();
    let mut lat: Vec<f64> = results.into_iter().flat_map(|r| r.0).collect();
    lat.sort_by(f64::total_cmp);
    Ok((lat.len() as f64 / elapsed, pct(&lat, 0.5), refused))
}

/// Sequential reads, interleaved with the floor, each to the next endpoint.
fn reads(s: &Setup, providers: &[String], repeat: usize) -> Result<(f64, f64, f64)> {
    let http = client()?;
    let (mut cands, mut get, mut floor) = (vec![], vec![], vec![]);
    let time = |url: String| -> Result<f64> {
        let t = Instant::now();
        ok(http.get(url).send()?)?;
        Ok(t.elapsed().as_secs_f64() * 1e3)
    };
    for i in 0..repeat + 2 {
        let e = &s.endpoints[i % s.endpoints.len()];
        let samples = (
            time(format!("{e}/allocation_candidates?resources=VCPU:1,MEMORY_MB:512"))?,
            time(format!("{e}/resource_providers/{}", providers[i % providers.len()]))?,
            time(format!("{e}/"))?,
        );
        if i >= 2 {
            cands.push(samples.0);
            get.push(samples.1);
            floor.push(samples.2);
        }
    }
    for v in [&mut cands, &mut get, &mut floor] {
        v.sort_by(f64::total_cmp);
    }
    Ok((pct(&cands, 0.5), pct(&get, 0.5), pct(&floor, 0.5)))
}

/// Freshness checks and their seconds, summed over the Quiver replicas'
/// /metrics (PostgreSQL only).
fn freshness(s: &Setup) -> Result<Option<(f64, f64)>> {
    if !s.quiver {
        return Ok(None);
    }
    let http = client()?;
    let mut sum: Option<(f64, f64)> = None;
    for e in &s.endpoints {
        let text = http.get(format!("{e}/metrics")).send()?.text()?;
        let value =
            |name: &str| text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<f64>().ok());
        if let (Some(n), Some(secs)) =
            (value("quiver_change_feed_freshness_checks_total"), value("quiver_change_feed_freshness_seconds_total"))
        {
            let (a, b) = sum.unwrap_or_default();
            sum = Some((a + n, b + secs));
        }
    }
    Ok(sum)
}

/// The worst replica's lag quantiles from /metrics.
fn lag(s: &Setup) -> Result<Option<(f64, f64)>> {
    if !s.quiver || s.endpoints.len() < 2 {
        return Ok(None);
    }
    let http = client()?;
    let mut worst: Option<(f64, f64)> = None;
    for e in &s.endpoints {
        let text = http.get(format!("{e}/metrics")).send()?.text()?;
        let q = |quantile: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("quiver_change_feed_lag_seconds{{quantile=\"{quantile}\"}} ")))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .map(|s| s * 1e3)
        };
        if let (Some(p50), Some(p99)) = (q("0.5"), q("0.99")) {
            worst = Some(worst.map_or((p50, p99), |(a, b)| (a.max(p50), b.max(p99))));
        }
    }
    Ok(worst)
}

/// Starts one setup's servers on a fresh database.
type StartSetup = Box<dyn Fn() -> Result<Setup>>;

/// Runs the bench.
///
/// # Errors
/// The database server cannot be reached, or a server fails to start.
pub fn run(a: ReplicasBenchArgs) -> Result<()> {
    if !a.postgres.ends_with('/') {
        bail!("--postgres: expected a base URL ending in '/', such as postgresql://quiver@127.0.0.1:5432/");
    }
    if a.replicas.contains(&0) || a.providers == 0 || a.clients == 0 || a.repeat == 0 {
        bail!("--replicas, --providers, --clients and --repeat must be positive");
    }
    let mut plans: Vec<(String, StartSetup)> = vec![];
    plans.push(("quiver sqlite x1".into(), Box::new(|| quiver("quiver sqlite x1", None, 1))));
    for &n in &a.replicas {
        let base = a.postgres.clone();
        plans.push((
            format!("quiver pg x{n}"),
            Box::new(move || {
                quiver(&format!("quiver pg x{n}"), Some(&fresh_database(&base, &format!("bench_quiver_{n}"))?), n)
            }),
        ));
    }
    let reference_ready = a.reference_venv.join("bin/gunicorn").exists();
    if !reference_ready && !a.reference_workers.is_empty() {
        eprintln!(
            "quiver bench replicas: no {} (run ../shared/placement-suite/setup-reference.sh): the real Placement is skipped",
            a.reference_venv.display()
        );
    }
    for &w in a.reference_workers.iter().filter(|_| reference_ready) {
        let (base, venv) = (a.postgres.clone(), a.reference_venv.clone());
        plans.push((
            format!("placement pg w{w}"),
            Box::new(move || reference(&venv, &fresh_database(&base, &format!("bench_placement_{w}"))?, w)),
        ));
    }
    println!(
        "{:<20} {:>9} {:>10} {:>8} {:>10} {:>8} {:>10} {:>9} {:>9} {:>9}",
        "setup",
        "writes/s",
        "write p50",
        "refused",
        "cands p50",
        "get p50",
        "floor p50",
        "fresh ms",
        "lag p50",
        "lag p99"
    );
    let mut rows = vec![];
    for (name, start) in plans {
        let setup = match start() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{name}: skipped: {e:#}");
                continue;
            }
        };
        let bar = ProgressBar::new(a.providers as u64).with_style(
            ProgressStyle::with_template("{msg:<20} {bar:30} {pos}/{len} providers")
                .unwrap_or(ProgressStyle::default_bar()),
        );
        bar.set_message(setup.name.clone());
        let providers = build_fleet(&setup.endpoints[0], a.providers, &bar)?;
        bar.finish_and_clear();
        let (writes_per_s, write_p50_ms, refused) = write_load(&setup, &providers, a.clients, a.seconds)?;
        let before = freshness(&setup)?;
        let (cands_p50_ms, get_p50_ms, floor_p50_ms) = reads(&setup, &providers, a.repeat)?;
        // The mean freshness check of the read phase (the /metrics reads
        // themselves make none).
        let fresh_ms = match (before, freshness(&setup)?) {
            (Some((n0, s0)), Some((n1, s1))) if n1 > n0 => Some((s1 - s0) / (n1 - n0) * 1e3),
            _ => None,
        };
        let f = Figures {
            writes_per_s,
            write_p50_ms,
            refused,
            cands_p50_ms,
            get_p50_ms,
            floor_p50_ms,
            fresh_ms,
            lag_ms: lag(&setup)?,
        };
        let lag_cell = |v: Option<f64>| v.map_or("-".to_owned(), |x| format!("{x:.1}"));
        println!(
            "{:<20} {:>9.0} {:>10.2} {:>8} {:>10.2} {:>8.2} {:>10.2} {:>9} {:>9} {:>9}",
            setup.name,
            f.writes_per_s,
            f.write_p50_ms,
            f.refused,
            f.cands_p50_ms,
            f.get_p50_ms,
            f.floor_p50_ms,
            f.fresh_ms.map_or("-".to_owned(), |x| format!("{x:.3}")),
            lag_cell(f.lag_ms.map(|l| l.0)),
            lag_cell(f.lag_ms.map(|l| l.1)),
        );
        rows.push(json!({
            "setup": setup.name, "endpoints": setup.endpoints.len(), "writes_per_s": f.writes_per_s,
            "write_p50_ms": f.write_p50_ms, "refused": f.refused, "candidates_p50_ms": f.cands_p50_ms,
            "get_provider_p50_ms": f.get_p50_ms, "floor_p50_ms": f.floor_p50_ms, "freshness_check_mean_ms": f.fresh_ms,
            "lag_p50_ms": f.lag_ms.map(|l| l.0), "lag_p99_ms": f.lag_ms.map(|l| l.1),
        }));
    }
    if let Some(path) = a.json {
        let doc = json!({"providers": a.providers, "clients": a.clients, "seconds": a.seconds, "repeat": a.repeat, "setups": rows});
        std::fs::write(&path, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
