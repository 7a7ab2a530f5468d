//! `quiver bench`: decision speed on seeded fleets, with every figure
//! reported beside a baseline measured in the same run.

use std::time::Instant;

use anyhow::{Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use quiver_benches::decision::{self, DecisionSpec};
use quiver_benches::machine::LoadWindow;
use serde_json::json;

/// `quiver bench` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// What Keystone token validation adds to a request with a warm cache.
    Auth(super::bench_auth::AuthBenchArgs),
    /// Boot servers through the Compute API against embedded agents and
    /// report boots per second and the latency of one boot.
    Boot(super::bench_boot::BootBenchArgs),
    /// Time GET /allocation_candidates on Placement's nested or flat perf
    /// shape.
    Candidates(super::bench_candidates::CandidatesBenchArgs),
    /// Placement replicas on one PostgreSQL beside SQLite and the real
    /// Placement: writes per second, read latency, change-feed lag.
    Replicas(super::bench_replicas::ReplicasBenchArgs),
    /// Run named workloads (benches/workloads.toml) and write one JSON
    /// document with every figure and its spread.
    Run(super::bench_run::RunArgs),
    /// Compare two or more run documents: per figure the change, a verdict
    /// that accounts for the spread, and a non-zero exit on a regression.
    Compare(super::bench_compare::CompareArgs),
    /// A run document as Markdown tables (what the README quotes).
    Report(super::bench_report::ReportArgs),
}

/// Arguments of `quiver bench`.
#[derive(Debug, Args)]
#[command(after_help = "Columns (medians; every figure with its spread is in the JSON):
  median ms     one decision (filters, weighers, select, claim) for an m1.small
  hosts/s       fleet size / median
  rowwise ms    the same decision by a row-by-row scheduler (Vec of host structs, one filter
                call per host, full sort), interleaved with the engine's; x = rowwise / quiver
  floor ms      one read of every column byte the decision's profile touches, on the
                decision's own rayon pool, interleaved with the decisions and repeated until
                its median is stable; x = quiver / floor, pair by pair
  1-thread ms   the same read on one thread
  B/host        bytes per host the floor reads (the decision reads at least these)
  claim ns      one claim (capacity check + in-place usage update)
  spread        (p90 - p10) / median of the decision; NOISY (!) above 20% or on a busy machine

The named workloads (benches/workloads.toml) are `quiver bench run`.

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
        Some(BenchCommand::Run(r)) => return super::bench_run::run(r),
        Some(BenchCommand::Compare(c)) => return super::bench_compare::run(c),
        Some(BenchCommand::Report(r)) => return super::bench_report::run(r),
        None => {}
    }
    for p in &a.profiles {
        if quiver_engine::config::profile_filters(p).is_none() {
            bail!("--profiles: unknown profile {p:?}: use default, extended or all");
        }
    }
    if a.sizes.contains(&0) || a.reps == 0 {
        bail!("--sizes and --reps must be positive");
    }
    println!(
        "{:>9} {:<9} {:>9} {:>10} {:>10} {:>6} {:>9} {:>6} {:>11} {:>6} {:>8} {:>7} {:>9}",
        "hosts",
        "profile",
        "median ms",
        "hosts/s",
        "rowwise ms",
        "x",
        "floor ms",
        "x",
        "1-thread ms",
        "B/host",
        "claim ns",
        "spread",
        "peak RSS"
    );
    let mut rows = Vec::new();
    for &n in &a.sizes {
        let t = Instant::now();
        let mut fleet = super::load::generated(n, a.seed)?;
        let gen_s = t.elapsed().as_secs_f64();
        // Every profile starts from the same state: timed decisions consume
        // HostState (free RAM, io ops, instance counts) as Nova does.
        let pristine = fleet.usage().clone();
        let pristine_instances = fleet.instances.clone();
        for (k, p) in a.profiles.iter().enumerate() {
            fleet.set_usage(pristine.clone())?;
            fleet.instances = pristine_instances.clone();
            let spec = DecisionSpec {
                profile: p.clone(),
                flavor: (1, 2048, 20),
                reps: a.reps,
                // the row-by-row side does not depend on the profile
                baseline_reps: if k == 0 { a.baseline_reps } else { 0 },
            };
            let bar = ProgressBar::new(a.reps as u64)
                .with_style(ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len}")?)
                .with_message(format!("{n} hosts, {p}"));
            let window = LoadWindow::open(&[]);
            let figs =
                decision::run(&mut fleet, &spec, &mut |d, _| bar.set_position(d as u64)).map_err(anyhow::Error::msg)?;
            let load = window.close();
            bar.finish_and_clear();
            let med = |k: &str| figs.get(k).map_or(f64::NAN, |f| f.median);
            let d = &figs["decision_ms"];
            let noisy = d.noisy || figs["floor_ms"].noisy || load.busy;
            println!(
                "{:>9} {:<9} {:>9.3} {:>10.3e} {:>10.2} {:>6.1} {:>9.3} {:>6.2} {:>11.3} {:>6.0} {:>8.1} {:>6.0}%{} {:>5.0} MiB",
                n,
                p,
                d.median,
                med("hosts_per_s"),
                med("rowwise_ms"),
                med("speedup_vs_rowwise"),
                med("floor_ms"),
                med("decision_over_floor"),
                med("floor_1thread_ms"),
                med("decision_bytes_per_host"),
                med("claim_ns"),
                100.0 * d.spread,
                if noisy { "!" } else { " " },
                med("peak_rss_mib"),
            );
            if load.busy {
                println!("          ! the machine was busy: {}", load.why);
            }
            rows.push(json!({
                "hosts": n, "profile": p, "fleet_gen_s": gen_s, "noisy": noisy, "load": load,
                "figures": figs,
            }));
        }
    }
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_string_pretty(&rows)?)?;
    }
    Ok(())
}
