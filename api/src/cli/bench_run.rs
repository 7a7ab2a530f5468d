//! `quiver bench run`: the named workloads of a workloads file (by default
//! the one Quiver ships, benches/workloads.toml), each run the same way
//! every time, with progress bars, into one JSON document: the workload,
//! Quiver's version, the machine and how busy it was, and every figure
//! with its median, extremes and spread.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use quiver_benches::decision::{self, DecisionSpec};
use quiver_benches::machine::{Load, LoadWindow, Machine};
use quiver_benches::run_document::{FORMAT, RunDocument, WorkloadResult, now_rfc3339};
use quiver_benches::simulation;
use quiver_benches::stats::{Better, Figure, Role};
use quiver_benches::workloads::{BUILTIN, Kind, Workload, WorkloadFile};
use quiver_engine::sim::Policy;

use super::bench_boot::{boot_one, claim_one, drive, provider_uuids, start_cloud};
use super::bench_candidates::{load_shape, shape_query};
use super::bench_reference as reference;
use super::bench_serve::{client, ok};

/// Arguments of `quiver bench run`.
#[derive(Debug, Args)]
#[command(after_help = "Every workload times its headline figure beside its baselines in the same run,
interleaved (A, B, A, B ...), so background load hits both sides alike:
  decision      one scheduling decision; beside it the row-by-row scheduler and the
                memory-bandwidth floor (on the decision's own pool, and on one thread)
  simulate      a replay's events/s on the fast path; beside it the full pipeline
                (and the check that both decide alike)
  boots         servers ACTIVE per second over the Compute API (fake agents); beside
                it bare PUT /allocations claims on the same server
  candidates    GET /allocation_candidates on Placement's flat or nested perf shape;
                beside it GET / (HTTP and routing alone)

Each figure: median, min, max, p10, p90 and spread = (p90 - p10) / median. A
figure whose spread is above 20%, or a run while other processes took more than
15% of the CPUs (or the hypervisor stole more than 5%), is flagged noisy, in the
output and in the JSON.

Examples:
  quiver bench run --list
  quiver bench run Decision/10kHosts_default --out before.json
  quiver bench run --tag quick
  quiver bench run Decision AllocationCandidates --out run.json
  quiver bench compare before.json run.json")]
pub struct RunArgs {
    /// Workloads to run: exact names, or group prefixes such as `Decision`
    /// (default: every workload, or those `--tag` picks).
    pub names: Vec<String>,
    /// Also run the workloads with this tag (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// A workloads file in benches/workloads.toml's shape (default: that
    /// file, as built into this binary).
    #[arg(long, value_name = "FILE")]
    pub workloads: Option<PathBuf>,
    /// Where to write the run's JSON document (default:
    /// bench-runs/run-<time>.json).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// List the workloads and exit.
    #[arg(long)]
    pub list: bool,
}

/// Runs `quiver bench run`.
///
/// # Errors
/// A bad workloads file or name, an unwritable output; a workload that
/// fails is reported in the document and makes the exit status non-zero
/// after the others ran.
pub fn run(a: RunArgs) -> Result<()> {
    let file = match &a.workloads {
        Some(p) => WorkloadFile::read(p),
        None => WorkloadFile::parse(BUILTIN).map_err(|e| format!("benches/workloads.toml: {e}")),
    }
    .map_err(anyhow::Error::msg)?;
    let chosen = file.select(&a.names, &a.tags).map_err(anyhow::Error::msg)?;
    if a.list {
        let mut t = comfy_table::Table::new();
        t.load_preset(comfy_table::presets::NOTHING).set_header(["workload", "kind", "size", "tags", "what"]);
        for w in &chosen {
            t.add_row([
                w.name.clone(),
                format!("{:?}", w.kind).to_lowercase(),
                w.hosts.to_string(),
                w.tags.join(","),
                w.description.clone(),
            ]);
        }
        println!("{t}");
        return Ok(());
    }
    if chosen.is_empty() {
        bail!("no workload has any of the tags {:?}", a.tags);
    }
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("bench-runs").join(format!("run-{}.json", now_rfc3339().replace(':', ""))));
    let mut doc = RunDocument {
        format: FORMAT,
        quiver_version: env!("CARGO_PKG_VERSION").to_owned(),
        git_commit: git_commit(),
        started: now_rfc3339(),
        machine: Machine::describe(),
        noisy: false,
        results: Vec::new(),
    };
    let multi = MultiProgress::new();
    let overall = multi.add(
        ProgressBar::new(chosen.len() as u64)
            .with_style(ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} workloads {elapsed}")?)
            .with_message("bench run"),
    );
    let style = ProgressStyle::with_template("{msg:>40} [{bar:30}] {pos}/{len} {elapsed}")?;
    for w in &chosen {
        let bar = multi.add(ProgressBar::new(w.reps as u64).with_style(style.clone()).with_message(w.name.clone()));
        let t = Instant::now();
        let outcome = run_one(w, &bar);
        bar.finish_and_clear();
        let mut r = WorkloadResult {
            name: w.name.clone(),
            workload: w.clone(),
            threshold: file.threshold(w),
            figures: BTreeMap::new(),
            load: Load::default(),
            noisy: false,
            notes: Vec::new(),
            seconds: 0.0,
            error: None,
        };
        match outcome {
            Ok((figures, load, notes)) => {
                r.figures = figures;
                r.load = load;
                r.notes = notes;
                r.judge_noise();
            }
            Err(e) => r.error = Some(format!("{e:#}")),
        }
        r.seconds = t.elapsed().as_secs_f64();
        multi.suspend(|| print_result(&r));
        doc.results.push(r);
        overall.inc(1);
    }
    overall.finish();
    doc.noisy = doc.results.iter().any(|r| r.noisy);
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("--out: cannot create {}", dir.display()))?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&doc)?)
        .with_context(|| format!("--out: cannot write {}", out.display()))?;
    println!("wrote {}", out.display());
    if doc.noisy {
        println!("! this run is flagged noisy: distrust its absolute figures (ratios were measured interleaved)");
    }
    let failed: Vec<&str> = doc.results.iter().filter(|r| r.error.is_some()).map(|r| r.name.as_str()).collect();
    if !failed.is_empty() {
        bail!("{} workload(s) failed: {}", failed.len(), failed.join(", "));
    }
    Ok(())
}

/// The checkout's commit when run inside one.
fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

type Outcome = (BTreeMap<String, Figure>, Load, Vec<String>);

fn run_one(w: &Workload, bar: &ProgressBar) -> Result<Outcome> {
    match w.kind {
        Kind::Decision => decision_kind(w, bar),
        Kind::Simulate => simulate_kind(w, bar),
        Kind::Boots => boots_kind(w, bar),
        Kind::Candidates => candidates_kind(w, bar),
    }
}

fn decision_kind(w: &Workload, bar: &ProgressBar) -> Result<Outcome> {
    let nova_fleet = w.fleet.as_deref() == Some("nova-parity");
    let mut fleet = if nova_fleet {
        bar.set_message(format!("{}: fleet-gen.py --hosts {}", w.name, w.hosts));
        reference::nova_parity_fleet(w.hosts, w.seed)?
    } else {
        super::load::generated(w.hosts, w.seed)?
    };
    bar.set_message(w.name.clone());
    let spec = DecisionSpec {
        profile: w.profile.clone().unwrap_or_else(|| "default".into()),
        flavor: w.flavor_amounts().map_err(anyhow::Error::msg)?,
        reps: w.reps,
        // the row-by-row scheduler knows the generated fleet's conventions
        // (OWNER_NOVA, COMPUTE_STATUS_DISABLED), not the kit's
        baseline_reps: if nova_fleet { 0 } else { w.baseline_reps() },
    };
    let window = LoadWindow::open(&[]);
    let mut figs =
        decision::run(&mut fleet, &spec, &mut |d, _| bar.set_position(d as u64)).map_err(anyhow::Error::msg)?;
    let load = window.close();
    let mut notes = Vec::new();
    if let Some(k) = w.nova_requests {
        bar.set_message(format!("{}: Nova's own scheduler (nova-bench.py)", w.name));
        match reference::nova_bench(w.hosts, &spec.profile, k, w.seed)? {
            Ok(nova) => {
                let quiver = figs["decision_ms"].median;
                let mut f = Figure::of(&[nova.median_ms], "ms", Better::Lower).role(Role::Baseline);
                // nova-bench.py reports a median and a p90 only
                f.n = nova.requests;
                f.p90 = nova.p90_ms;
                f.max = nova.p90_ms;
                f.spread = (nova.p90_ms - nova.median_ms) / nova.median_ms;
                f.noisy = f.spread > quiver_benches::stats::NOISY_SPREAD;
                figs.insert("nova_ms".into(), f);
                figs.insert("nova_cpu_ms".into(), Figure::exact(nova.median_cpu_ms, "ms", Better::Lower));
                figs.insert(
                    "speedup_vs_nova".into(),
                    Figure::exact(nova.median_ms / quiver, "x", Better::Higher).role(Role::Ratio),
                );
                notes.push(format!(
                    "Nova {}: filter and weigh pass of {} plain requests on the same fleet, by nova-bench.py \
                     after Quiver's repetitions (its own process; median and p90 only)",
                    nova.version, nova.requests
                ));
            }
            Err(why) => notes.push(format!("no Nova baseline: {why}")),
        }
    }
    Ok((figs, load, notes))
}

fn simulate_kind(w: &Workload, bar: &ProgressBar) -> Result<Outcome> {
    let stream = (w.requests.unwrap_or(0), w.rate.unwrap_or(10.0), w.mean_lifetime.unwrap_or(3600.0));
    let (fleet, mut workload) = simulation::inputs(w.trace.as_deref(), w.hosts, w.seed, stream, w.flavors.as_deref())
        .map_err(anyhow::Error::msg)?;
    if let Some(every) = w.group_every {
        simulation::with_anti_affinity_groups(&mut workload, every, w.group_size.unwrap_or(5));
    }
    let policy = match &w.policy {
        Some(p) => Policy::parse(&w.name, &toml::to_string(p)?)?,
        None => Policy::default_named("nova-defaults"),
    };
    let base = w.baseline_reps();
    bar.set_length((w.reps + base) as u64);
    let window = LoadWindow::open(&[]);
    let figs = simulation::run(&fleet, &workload, &policy, w.reps, base, &mut |d, _| bar.set_position(d as u64))
        .map_err(anyhow::Error::msg)?;
    Ok((figs, window.close(), Vec::new()))
}

/// Boots (with churn when asked) and bare claims, `reps` rounds of each,
/// alternating, on one server.
fn boots_kind(w: &Workload, bar: &ProgressBar) -> Result<Outcome> {
    let servers = w.servers.unwrap_or(0);
    let conc = w.concurrency.unwrap_or(16).max(1);
    bar.set_message(format!("{}: starting {} fake hosts", w.name, w.hosts));
    let s = start_cloud(w.hosts, "fake", 64, 262_144)?;
    bar.set_message(w.name.clone());
    let http = client()?;
    let rps = provider_uuids(&http, &s.placement)?;
    if rps.is_empty() {
        bail!("the server has no resource providers");
    }
    let live = std::sync::Mutex::new(std::collections::VecDeque::new());
    let quiet = ProgressBar::hidden();
    let (mut boots, mut claims, mut lat, mut failed) = (Vec::new(), Vec::new(), Vec::new(), 0usize);
    let window = LoadWindow::open(&[s.pid()]);
    for rep in 0..w.reps {
        let churn = w.churn.then_some(&live);
        let (wall, l, f) =
            drive(servers, conc, &quiet, |http, i| boot_one(http, &s.compute, rep * servers + i, churn))?;
        boots.push(l.len() as f64 / wall);
        lat.extend(l);
        failed += f;
        let (cwall, cl, cf) =
            drive(servers, conc, &quiet, |http, i| claim_one(http, &s.placement, &rps[i % rps.len()]))?;
        claims.push(cl.len() as f64 / cwall);
        failed += cf;
        bar.set_position(rep as u64 + 1);
    }
    let load = window.close();
    let mut figs = BTreeMap::new();
    figs.insert("boots_per_s".into(), Figure::of(&boots, "boots/s", Better::Higher).role(Role::Headline));
    figs.insert("boot_ms".into(), Figure::of(&lat, "ms", Better::Lower));
    figs.insert("claims_per_s".into(), Figure::of(&claims, "claims/s", Better::Higher).role(Role::Baseline));
    figs.insert("claims_over_boots".into(), Figure::ratio_of_pairs(&claims, &boots, Better::Lower).role(Role::Ratio));
    let mut notes = Vec::new();
    if failed > 0 {
        notes.push(format!("{failed} boots or claims failed"));
    }
    Ok((figs, load, notes))
}

/// The shape's query and `GET /`, alternating, `reps` times each after
/// one warm-up round.
fn candidates_kind(w: &Workload, bar: &ProgressBar) -> Result<Outcome> {
    let shape = w.shape.as_deref().unwrap_or("nested");
    let s = super::bench_serve::start(&[])?;
    let load_bar = ProgressBar::hidden();
    bar.set_message(format!("{}: loading {} {shape}", w.name, w.hosts));
    let load_s = load_shape(&s.placement, shape, w.hosts, w.concurrency.unwrap_or(8), &load_bar)?;
    bar.set_message(w.name.clone());
    let http = client()?;
    let url = format!("{}/allocation_candidates?{}", s.placement, shape_query(shape));
    let root = format!("{}/", s.placement);
    let time = |u: &str| -> Result<(f64, serde_json::Value)> {
        let t = Instant::now();
        let v = ok(http.get(u).send()?)?;
        Ok((t.elapsed().as_secs_f64() * 1e3, v))
    };
    let (_, first) = time(&url)?;
    time(&root)?;
    let count = first["allocation_requests"].as_array().map_or(0, Vec::len);
    let mut notes = Vec::new();
    // The real Placement with the same shape, when its venv is there.
    let reference = if w.placement {
        match reference::start_placement()? {
            Ok(r) => {
                bar.set_message(format!("{}: loading the real Placement", w.name));
                load_shape(&r.base, shape, w.hosts, w.concurrency.unwrap_or(8), &load_bar)?;
                bar.set_message(w.name.clone());
                let rurl = format!("{}/allocation_candidates?{}", r.base, shape_query(shape));
                let (_, v) = time(&rurl)?;
                let rcount = v["allocation_requests"].as_array().map_or(0, Vec::len);
                if rcount != count {
                    notes.push(format!("the real Placement answers {rcount} candidates, Quiver {count}"));
                }
                Some((r, rurl))
            }
            Err(why) => {
                notes.push(format!("no real Placement baseline: {why}"));
                None
            }
        }
    } else {
        None
    };
    let (mut q, mut floor, mut real) = (Vec::new(), Vec::new(), Vec::new());
    let mut pids = vec![s.pid()];
    pids.extend(reference.as_ref().map(|r| r.0.pid()));
    let window = LoadWindow::open(&pids);
    for rep in 0..w.reps {
        q.push(time(&url)?.0);
        if let Some((_, rurl)) = &reference {
            real.push(time(rurl)?.0);
        }
        floor.push(time(&root)?.0);
        bar.set_position(rep as u64 + 1);
    }
    let load = window.close();
    drop(reference);
    let mut figs = BTreeMap::new();
    figs.insert("candidates_ms".into(), Figure::of(&q, "ms", Better::Lower).role(Role::Headline));
    figs.insert("floor_ms".into(), Figure::of(&floor, "ms", Better::Lower).role(Role::Baseline));
    figs.insert("over_floor".into(), Figure::ratio_of_pairs(&q, &floor, Better::Lower).role(Role::Ratio));
    figs.insert("allocation_requests".into(), Figure::exact(count as f64, "candidates", Better::Higher));
    figs.insert("load_s".into(), Figure::exact(load_s, "s", Better::Lower));
    if !real.is_empty() {
        figs.insert("placement_ms".into(), Figure::of(&real, "ms", Better::Lower).role(Role::Baseline));
        figs.insert("speedup_vs_placement".into(), Figure::ratio_of_pairs(&real, &q, Better::Higher).role(Role::Ratio));
    }
    // every provider of the flat shape answers the query once; a nested
    // tree twice (its CUSTOM_FOO NUMA node with either of its two FPGAs)
    let expected = if shape == "nested" { 2 * w.hosts } else { w.hosts };
    if count != expected {
        notes.push(format!("{count} candidates where the shape should give {expected}"));
    }
    Ok((figs, load, notes))
}

/// One workload's figures as a table, headline first.
fn print_result(r: &WorkloadResult) {
    println!("\n{}{}", r.name, if r.noisy { "  [NOISY]" } else { "" });
    if let Some(e) = &r.error {
        println!("  FAILED: {e}");
        return;
    }
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING)
        .set_header(["figure", "role", "median", "min", "max", "spread", "unit", "n"]);
    let order = |f: &Figure| match f.role {
        Role::Headline => 0,
        Role::Baseline => 1,
        Role::Ratio => 2,
        Role::Detail => 3,
    };
    let mut figs: Vec<(&String, &Figure)> = r.figures.iter().collect();
    figs.sort_by_key(|(_, f)| order(f));
    for (name, f) in figs {
        t.add_row([
            name.clone(),
            format!("{:?}", f.role).to_lowercase(),
            num(f.median),
            num(f.min),
            num(f.max),
            format!("{:.1}%{}", 100.0 * f.spread, if f.noisy { " !" } else { "" }),
            f.unit.clone(),
            f.n.to_string(),
        ]);
    }
    println!("{t}");
    for n in &r.notes {
        println!("  ! {n}");
    }
    println!(
        "  machine: other processes {:.0}% of the CPUs, steal {:.1}%, load average {:.2} before; {:.1} s",
        100.0 * r.load.others_cpu_share,
        100.0 * r.load.steal_share,
        r.load.load_average_before,
        r.seconds
    );
}

/// A number with as many digits as it needs.
pub(super) fn num(x: f64) -> String {
    let a = x.abs();
    if !x.is_finite() {
        "-".into()
    } else if x.fract() == 0.0 && a < 1e9 {
        format!("{x:.0}")
    } else if a >= 1e6 {
        format!("{x:.3e}")
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.4}")
    }
}
