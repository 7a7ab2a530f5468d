//! `quiver simulate`: replay a workload against a fleet under one or more
//! scheduler policies, in parallel, and compare them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use quiver_datasets::workload_gen::{WorkloadSpec, generate_workload};
use quiver_engine::Fleet;
use quiver_engine::sim::{Policy, PolicyRun, SimOptions, Workload, run_policy};

/// Arguments of `quiver simulate`.
#[derive(Debug, Args)]
#[command(after_help = SIMULATE_HELP)]
pub struct SimulateArgs {
    /// Fleet file (.json, .parquet, .arrow), or `alibaba:DIR` for the
    /// Alibaba trace's nodes. Default: a generated fleet of --hosts hosts
    /// (or the trace's own nodes with --trace alibaba:DIR).
    #[arg(long, conflicts_with = "from")]
    pub fleet: Option<PathBuf>,
    /// Snapshot the fleet of a running Quiver (its Placement URL, e.g.
    /// http://127.0.0.1:8778; fetched from GET /v1/fleet as admin).
    #[arg(long)]
    pub from: Option<String>,
    /// Hosts of the generated fleet.
    #[arg(long, default_value_t = 10_000)]
    pub hosts: usize,
    /// Seed of the generated fleet.
    #[arg(long, default_value_t = 1)]
    pub fleet_seed: u64,
    /// Start from empty hosts (drop the fleet's own usage and instances).
    #[arg(long)]
    pub empty: bool,
    /// Workload: a trace file (.csv or .parquet; see the columns below), or
    /// `alibaba:DIR` for the Alibaba GPU trace (its nodes become the fleet
    /// unless --fleet or --from is given). Default: a synthetic workload.
    #[arg(long)]
    pub trace: Option<String>,
    /// Replay arrivals K times faster: arrival times are divided by K and
    /// lifetimes kept, so about K times as many servers live at once (a
    /// what-if on demand growth). 1 replays the trace as recorded.
    #[arg(long, default_value_t = 1.0, value_name = "K")]
    pub arrival_speedup: f64,
    /// Synthetic workload: number of requests.
    #[arg(long, default_value_t = 100_000)]
    pub requests: usize,
    /// Synthetic workload: mean arrivals per second (Poisson).
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Synthetic workload: mean server lifetime in seconds (exponential).
    #[arg(long, default_value_t = 3600.0)]
    pub mean_lifetime: f64,
    /// Synthetic workload: flavors and weights, `name:weight,...` (Nova's
    /// classic m1.tiny .. m1.xlarge).
    #[arg(long, default_value = "m1.tiny:0.1,m1.small:0.35,m1.medium:0.3,m1.large:0.2,m1.xlarge:0.05")]
    pub flavors: String,
    /// Synthetic workload: seed.
    #[arg(long, default_value_t = 1)]
    pub workload_seed: u64,
    /// A policy file (TOML with Nova's option names); repeat for several,
    /// replayed in parallel. A policy's name is its file name without the
    /// extension. Default: Nova's defaults, named `default`.
    #[arg(long = "policy", value_name = "FILE")]
    pub policies: Vec<PathBuf>,
    /// Seed of the scheduler's random choices (host_subset_size).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Seconds of simulated time between timeline samples (default: 1/200
    /// of the trace's span).
    #[arg(long)]
    pub sample_interval: Option<f64>,
    /// Stop the replay at this simulated time (seconds, after the
    /// speed-up), or at `last-arrival`: departures after it are not
    /// replayed and the timeline ends there.
    #[arg(long, value_name = "SECONDS|last-arrival")]
    pub until: Option<String>,
    /// Skip the compaction search (it replays the workload about
    /// log2(hosts) more times per policy).
    #[arg(long)]
    pub no_compaction: bool,
    /// Send every request through the full pipeline (no incremental fast
    /// path; same decisions, slower: for checking and for baselines).
    #[arg(long)]
    pub full_pipeline: bool,
    /// Sweep Nova options over a grid instead of comparing --policy files:
    /// `GROUP.OPTION=START:STOP:STEP`, comma separated or repeated (the
    /// grid is every combination, on top of the one --policy or Nova's
    /// defaults). Points replay in parallel; the best per metric is named.
    #[arg(long = "sweep", value_delimiter = ',', value_name = "GROUP.OPTION=START:STOP:STEP")]
    pub sweeps: Vec<String>,
    /// Write summary.json, timeline.parquet, timeline.csv and plots
    /// (simulation.png, simulation.svg) here; with --sweep, sweep.json and
    /// the heat map (sweep.png, sweep.svg).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

const SIMULATE_HELP: &str = "\
Trace columns (CSV header or Parquet field names; only arrival is required):
  arrival                 seconds from the trace's origin
  departure | lifetime    absolute departure or lifetime in seconds; empty: stays
  flavor                  m1.tiny .. m1.xlarge, or a label when resources are given
  vcpus, memory_mb, disk_gb   explicit resources
  resources               more Placement amounts: RC=N;RC=N
  project, availability_zone
  server_group, server_group_policy   group name (created on first use), policy
  required_traits         TRAIT;TRAIT

A policy file:
  [filter_scheduler]
  enabled_filters = [\"ComputeFilter\", \"ComputeCapabilitiesFilter\", \"ImagePropertiesFilter\"]
  ram_weight_multiplier = -1.0      # pack by RAM (Nova's default 1.0 spreads)
  host_subset_size = 1
  [DEFAULT]
  cpu_allocation_ratio = 4.0

Examples:
  quiver simulate --trace alibaba:../shared/data/alibaba-gpu-v2023 \\
      --policy config/policies/spread.toml --policy config/policies/pack.toml --out out/alibaba
  quiver simulate --hosts 10000 --empty --requests 1000000 --rate 50 --mean-lifetime 3600 \\
      --policy config/policies/spread.toml --out out/synthetic
  quiver simulate --fleet fleet.parquet --trace trace.csv --policy a.toml --policy b.toml
  quiver simulate --hosts 1000 --requests 20000 --out out/sweep \\
      --sweep filter_scheduler.ram_weight_multiplier=-2:2:0.5,filter_scheduler.cpu_weight_multiplier=-1:1:1";

/// Runs `quiver simulate`.
///
/// # Errors
/// Bad arguments, files, policies or traces (named in the message).
pub fn run(a: SimulateArgs) -> Result<()> {
    // Policies first: a typo fails before anything is loaded or replayed.
    let policies: Vec<Policy> = if a.policies.is_empty() {
        vec![Policy::default_named("default")]
    } else {
        a.policies.iter().map(|p| Policy::from_file(p).map_err(anyhow::Error::from)).collect::<Result<_>>()?
    };
    let mut names: Vec<&str> = policies.iter().map(|p| p.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        bail!("two policies are named {:?} (a policy's name is its file name without the extension)", w[0]);
    }
    if !(a.arrival_speedup.is_finite() && a.arrival_speedup > 0.0) {
        bail!("--arrival-speedup must be a number > 0");
    }
    let (fleet, mut workload) = load_inputs(&a)?;
    if a.arrival_speedup != 1.0 {
        for r in &mut workload.requests {
            let life = r.departure.map(|d| d - r.arrival);
            r.arrival /= a.arrival_speedup;
            r.departure = life.map(|l| r.arrival + l);
        }
    }
    let fleet = if a.empty { quiver_engine::sim::policy::emptied(&fleet)? } else { fleet };
    eprintln!(
        "fleet: {} hosts; workload: {} requests in {} shapes; policies: {}",
        fleet.len(),
        workload.requests.len(),
        workload.classes.len(),
        policies.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
    );
    let until = match a.until.as_deref() {
        None => None,
        Some("last-arrival") => workload.requests.iter().map(|r| r.arrival).reduce(f64::max),
        Some(s) => Some(
            s.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .with_context(|| format!("--until {s:?}: expected seconds or last-arrival"))?,
        ),
    };
    let opts = SimOptions {
        seed: a.seed,
        sample_interval: a.sample_interval,
        compaction: !a.no_compaction,
        fast: !a.full_pipeline,
        until,
    };
    if !a.sweeps.is_empty() {
        let [base] = &policies[..] else { bail!("--sweep takes at most one --policy (the base of the grid)") };
        return super::sweep::run(&a, &fleet, &workload, base, &opts);
    }
    let runs = replay_all(&fleet, &workload, &policies, &opts)?;
    println!("{}", summary_table(&runs));
    if let Some(out) = &a.out {
        write_outputs(out, &runs)?;
        eprintln!(
            "wrote {}/summary.json, timeline.parquet, timeline.csv, simulation.png, simulation.svg",
            out.display()
        );
    }
    Ok(())
}

fn load_inputs(a: &SimulateArgs) -> Result<(Fleet, Workload)> {
    let explicit_fleet = || -> Result<Option<Fleet>> {
        if let Some(p) = &a.fleet {
            return Ok(Some(super::load::fleet(p)?));
        }
        let token = std::env::var("OS_TOKEN").unwrap_or_else(|_| "admin".into());
        a.from.as_deref().map(|url| fetch_fleet(url, &token)).transpose()
    };
    let generated = || super::load::generated(a.hosts, a.fleet_seed);
    match a.trace.as_deref() {
        Some(t) if t.starts_with("alibaba:") => {
            let dir = Path::new(&t["alibaba:".len()..]);
            let (nodes, tasks) = quiver_datasets::alibaba::read(dir)?;
            Ok((explicit_fleet()?.unwrap_or(nodes), tasks))
        }
        Some(t) => {
            let w = quiver_datasets::trace::read_trace(Path::new(t))?;
            Ok((explicit_fleet()?.map_or_else(generated, Ok)?, w))
        }
        None => {
            let flavors = a
                .flavors
                .split(',')
                .map(|f| {
                    let (n, w) = f.split_once(':').unwrap_or((f, "1"));
                    let w: f64 = w.trim().parse().with_context(|| format!("--flavors: weight of {n:?}"))?;
                    Ok((n.trim().to_owned(), w))
                })
                .collect::<Result<Vec<_>>>()?;
            let spec = WorkloadSpec {
                requests: a.requests,
                rate: a.rate,
                mean_lifetime: a.mean_lifetime,
                flavors,
                seed: a.workload_seed,
            };
            let w = generate_workload(&spec).context("synthetic workload")?;
            Ok((explicit_fleet()?.map_or_else(generated, Ok)?, w))
        }
    }
}

/// GET `URL/v1/fleet` (Arrow IPC) from a running Quiver, as `token`.
///
/// # Errors
/// An unreachable Quiver, a refusal (its error shown), a bad answer.
pub fn fetch_fleet(url: &str, token: &str) -> Result<Fleet> {
    let url = format!("{}/v1/fleet", url.trim_end_matches('/'));
    let resp = reqwest::blocking::Client::new()
        .get(&url)
        .header("X-Auth-Token", token)
        .send()
        .with_context(|| format!("--from: GET {url}"))?;
    if !resp.status().is_success() {
        bail!("--from: GET {url} answered {}: {}", resp.status(), resp.text().unwrap_or_default());
    }
    let bytes = resp.bytes().with_context(|| format!("--from: reading {url}"))?;
    quiver_engine::io::read_ipc_bytes(bytes.to_vec()).with_context(|| format!("--from: {url}"))
}

/// Replays every policy on its own thread with a progress bar each.
fn replay_all(fleet: &Fleet, workload: &Workload, policies: &[Policy], opts: &SimOptions) -> Result<Vec<PolicyRun>> {
    let expected =
        workload.requests.len() as u64 + workload.requests.iter().filter(|r| r.departure.is_some()).count() as u64;
    let multi = MultiProgress::new();
    let style =
        ProgressStyle::with_template("{msg:>12} [{bar:30}] {human_pos}/{human_len} events {per_sec} {elapsed}")?;
    let fleet = Arc::new(fleet.clone());
    std::thread::scope(|s| {
        let handles: Vec<_> = policies
            .iter()
            .map(|p| {
                let bar = multi.add(ProgressBar::new(expected).with_style(style.clone()).with_message(p.name.clone()));
                let fleet = fleet.clone();
                s.spawn(move || {
                    let t = Instant::now();
                    let run = run_policy(&fleet, workload, p, opts, &mut |n| bar.set_position(n));
                    bar.finish();
                    tracing::info!(policy = %p.name, seconds = t.elapsed().as_secs_f64(), "policy replayed");
                    run
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(r) => r.map_err(anyhow::Error::from),
                Err(_) => Err(anyhow::anyhow!("a policy's replay panicked")),
            })
            .collect()
    })
}

/// The side-by-side table: one column per policy.
pub fn summary_table(runs: &[PolicyRun]) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
    let mut header = vec!["".to_owned()];
    header.extend(runs.iter().map(|r| r.policy.clone()));
    t.set_header(header);
    let s: Vec<serde_json::Value> = runs.iter().map(PolicyRun::summary).collect();
    let int = |v: &serde_json::Value| v.as_u64().map_or("-".to_owned(), group_digits);
    let pct = |v: &serde_json::Value| v.as_f64().map_or("-".to_owned(), |x| format!("{:.1}%", x * 100.0));
    let mut row = |label: &str, f: &dyn Fn(&serde_json::Value) -> String| {
        let mut r = vec![label.to_owned()];
        r.extend(s.iter().map(f));
        t.add_row(r);
    };
    row("events", &|x| int(&x["events"]));
    row("accepted", &|x| int(&x["accepted"]));
    row("rejected", &|x| int(&x["rejected"]));
    let mut stages: Vec<String> =
        s.iter().flat_map(|x| x["rejected_by_stage"].as_object().into_iter().flat_map(|m| m.keys().cloned())).collect();
    stages.sort();
    stages.dedup();
    for st in &stages {
        row(&format!("  at {st}"), &|x| int(&x["rejected_by_stage"][st]).replace('-', "0"));
    }
    let mut filters: Vec<String> = s
        .iter()
        .flat_map(|x| x["rejected_by_filter"].as_object().into_iter().flat_map(|m| m.keys().cloned()))
        .collect();
    filters.sort();
    filters.dedup();
    for f in &filters {
        row(&format!("    by {f}"), &|x| int(&x["rejected_by_filter"][f]).replace('-', "0"));
    }
    row("peak hosts in use", &|x| int(&x["peak_hosts_in_use"]));
    row("compaction hosts", &|x| int(&x["compaction_hosts"]));
    row("fleet hosts", &|x| int(&x["fleet_hosts"]));
    let names = runs.first().map(|r| r.resource_classes.clone()).unwrap_or_default();
    for rc in quiver_engine::sim::classes_in_use(runs).into_iter().map(|i| &names[i]) {
        row(&format!("mean util {rc}"), &|x| pct(&x["utilization_mean"][rc]));
        row(&format!("peak util {rc}"), &|x| pct(&x["utilization_peak"][rc]));
        row(&format!("stranded {rc}"), &|x| pct(&x["stranded_mean"][rc]));
    }
    row("fragmentation", &|x| pct(&x["fragmentation_mean"]));
    row("replay seconds", &|x| format!("{:.2}", x["wall_seconds"].as_f64().unwrap_or(0.0)));
    row("events/s", &|x| group_digits(x["events_per_second"].as_f64().unwrap_or(0.0) as u64));
    t
}

fn group_digits(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// summary.json, the timeline (Parquet and CSV) and the plots.
fn write_outputs(out: &Path, runs: &[PolicyRun]) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let summary: serde_json::Map<String, serde_json::Value> =
        runs.iter().map(|r| (r.policy.clone(), r.summary())).collect();
    std::fs::write(out.join("summary.json"), serde_json::to_string_pretty(&summary)? + "\n")?;
    let batch = quiver_engine::sim::timeline::timeline_batch(runs)?;
    let file = std::fs::File::create(out.join("timeline.parquet"))?;
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None)?;
    w.write(&batch)?;
    w.close()?;
    let file = std::fs::File::create(out.join("timeline.csv"))?;
    let mut w = arrow_csv::Writer::new(file);
    w.write(&batch)?;
    super::plots::simulation(runs, &out.join("simulation.png"), &out.join("simulation.svg"))?;
    Ok(())
}
