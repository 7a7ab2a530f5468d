//! `quiver bench`: decision speed on seeded fleets, with every figure
//! reported beside a baseline measured in the same run.

use std::time::Instant;

use anyhow::{Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use quiver_benches::{measure, rowwise::RowScheduler};
use quiver_datasets::generator::{FleetSpec, generate};
use serde_json::json;

/// `quiver bench` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// What Keystone token validation adds to a request with a warm cache.
    Auth(super::bench_auth::AuthBenchArgs),
    /// Boot servers through the Compute API against embedded agents and
    /// report boots per second and the latency of one boot.
    Boot(super::bench_boot::BootBenchArgs),
    /// Time GET /allocation_candidates on Placement's nested perf shape.
    Candidates(super::bench_candidates::CandidatesBenchArgs),
    /// Placement replicas on one PostgreSQL beside SQLite and the real
    /// Placement: writes per second, read latency, change-feed lag.
    Replicas(super::bench_replicas::ReplicasBenchArgs),
}

/// Arguments of `quiver bench`.
#[derive(Debug, Args)]
#[command(after_help = "Columns:
  median ms     median time of one decision (filters, weighers, select, claim) for an m1.small
  hosts/s       fleet size / median
  rowwise ms    the same decision by a row-by-row scheduler (Vec of host structs, one filter
                call per host, full sort), on the same fleet in the same run; x = rowwise / quiver
  floor ms      time to read once every column byte the decision touches; x = quiver / floor
  claim ns      one claim (capacity check + in-place usage update), averaged over 1M claims
  B/host        fleet memory (columns and side tables) per host; peak RSS of the process

Example:
  quiver bench --sizes 10000,100000,1000000 --json bench.json")]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: Option<BenchCommand>,
    /// Fleet sizes, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
    pub sizes: Vec<usize>,
    /// Filter profiles to time, comma separated (default, extended, all).
    #[arg(long, value_delimiter = ',', default_value = "default,extended")]
    pub profiles: Vec<String>,
    /// Decisions timed per size and profile.
    #[arg(long, default_value_t = 21)]
    pub reps: usize,
    /// Row-by-row baseline decisions timed per size (the slow side).
    #[arg(long, default_value_t = 3)]
    pub baseline_reps: usize,
    /// Fleet seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also write the results as JSON.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

/// Runs the bench.
///
/// # Errors
/// A bad profile or size, or an unwritable JSON file.
pub fn run(a: BenchArgs) -> Result<()> {
    match a.command {
        Some(BenchCommand::Auth(x)) => return super::bench_auth::run(x),
        Some(BenchCommand::Boot(b)) => return super::bench_boot::run(b),
        Some(BenchCommand::Candidates(c)) => return super::bench_candidates::run(c),
        Some(BenchCommand::Replicas(r)) => return super::bench_replicas::run(r),
        None => {}
    }
    for p in &a.profiles {
        if quiver_engine::config::profile_filters(p).is_none() {
            bail!("unknown profile {p:?}: use default, extended or all");
        }
    }
    if a.sizes.contains(&0) || a.reps == 0 {
        bail!("--sizes and --reps must be positive");
    }
    println!(
        "{:>9} {:<9} {:>9} {:>12} {:>11} {:>7} {:>9} {:>6} {:>8} {:>7} {:>10}",
        "hosts",
        "profile",
        "median ms",
        "hosts/s",
        "rowwise ms",
        "x",
        "floor ms",
        "x",
        "claim ns",
        "B/host",
        "peak RSS"
    );
    let mut rows = Vec::new();
    let req = measure::plain_request();
    for &n in &a.sizes {
        let bar = ProgressBar::new(n as u64)
            .with_style(ProgressStyle::with_template("{spinner} fleet {pos}/{len} [{bar:30}]")?);
        let t = Instant::now();
        let mut fleet =
            generate(&FleetSpec { hosts: n, seed: a.seed, with_instances: false }, |k| bar.set_position(k as u64))?;
        bar.finish_and_clear();
        let gen_s = t.elapsed().as_secs_f64();
        let bytes_per_host = fleet.memory_bytes() as f64 / n as f64;
        // Baseline on the same fleet.
        let row = RowScheduler::from_fleet(&fleet);
        let rreq = quiver_benches::rowwise::Req {
            amounts: [req.flavor.vcpus as i64, req.flavor.memory_mb as i64, req.flavor.root_gb as i64],
            required: vec!["OWNER_NOVA".into()],
            forbidden: vec!["COMPUTE_STATUS_DISABLED".into()],
        };
        let mut base_times = Vec::new();
        let mut base_pick = None;
        for _ in 0..a.baseline_reps.max(1) {
            let t = Instant::now();
            base_pick = row.decide(&rreq);
            base_times.push(t.elapsed());
        }
        drop(row);
        let base = measure::median(base_times);
        let (floor, floor_bytes) = measure::bandwidth_floor(&fleet, a.reps);
        let claim = measure::claim_ns(&mut fleet, 1_000_000);
        // Every profile starts from the same state: timed decisions consume
        // HostState (free RAM, io ops, instance counts) as Nova does.
        let pristine = fleet.usage().clone();
        let pristine_instances = fleet.instances.clone();
        for p in &a.profiles {
            fleet.set_usage(pristine.clone())?;
            fleet.instances = pristine_instances.clone();
            let mut sched = measure::scheduler(p);
            // Warm-up decision, and the sanity check that both implementations agree.
            let mut groups = quiver_engine::Groups::default();
            let d = sched.schedule(&mut fleet, &mut groups, &req, 0);
            if let (Some(h), Some((bh, _))) = (d.chosen.first(), base_pick)
                && p == "default"
                && fleet.index_of(h) != Some(bh)
            {
                bail!("baseline and engine disagree at {n} hosts: {h} vs {}", fleet.name(bh));
            }
            fleet.set_usage(pristine.clone())?;
            fleet.instances = pristine_instances.clone();
            let med = measure::median(measure::time_decisions(&mut fleet, &mut sched, &req, a.reps));
            let ms = med.as_secs_f64() * 1e3;
            let base_ms = base.as_secs_f64() * 1e3;
            let floor_ms = floor.as_secs_f64() * 1e3;
            let peak = measure::peak_rss().unwrap_or(0) as f64 / (1 << 20) as f64;
            println!(
                "{:>9} {:<9} {:>9.3} {:>12.3e} {:>11.2} {:>7.1} {:>9.3} {:>6.2} {:>8.1} {:>7.0} {:>7.0} MiB",
                n,
                p,
                ms,
                n as f64 / med.as_secs_f64(),
                base_ms,
                base_ms / ms,
                floor_ms,
                ms / floor_ms,
                claim,
                bytes_per_host,
                peak
            );
            rows.push(json!({
                "hosts": n, "profile": p, "median_ms": ms, "hosts_per_s": n as f64 / med.as_secs_f64(),
                "rowwise_ms": base_ms, "speedup_vs_rowwise": base_ms / ms, "floor_ms": floor_ms,
                "floor_bytes": floor_bytes, "ratio_to_floor": ms / floor_ms, "claim_ns": claim,
                "bytes_per_host": bytes_per_host, "peak_rss_mib": peak, "fleet_gen_s": gen_s,
                "threads": rayon::current_num_threads(),
            }));
        }
    }
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_string_pretty(&rows)?)?;
    }
    Ok(())
}
