//! `quiver plan`: capacity-planning questions answered with the real
//! scheduler on a copy of a fleet (a file, a generated fleet, or a
//! snapshot of a running Quiver).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use quiver_engine::config::SchedulerConfig;
use quiver_engine::plan::{Headroom, headroom};
use quiver_engine::request::Flavor;
use quiver_engine::{BootRequest, Fleet};
use serde_json::Value;

use super::scheduler_args::SchedulerArgs;

/// `quiver plan` subcommands.
#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// How many more servers of each flavor fit now, exactly, placed one
    /// by one with the real scheduler until none fits, beside the naive
    /// "free capacity / flavor size" (the difference is stranded capacity);
    /// per availability zone and per aggregate.
    Headroom(HeadroomArgs),
    /// Would every instance on some hosts find a new home under the
    /// current policy, and where (in Nova's move order, server groups
    /// kept); which would not, and the first filter that stops each;
    /// capacity left per availability zone.
    Drain(super::plan_drain::DrainArgs),
    /// The fewest hosts of a shape to add so that a trace replays with no
    /// rejection, and the rejections per host added as a curve.
    Size(super::plan_size::SizeArgs),
}

/// Where the fleet comes from, and the scheduler's options.
#[derive(Debug, Args)]
pub struct FleetSource {
    /// Fleet file: nova-sched-fleet/v1 JSON, Parquet or Arrow IPC.
    #[arg(long, conflicts_with_all = ["from", "hosts"])]
    pub fleet: Option<PathBuf>,
    /// A running Quiver's Compute API root (e.g. http://127.0.0.1:8774): a
    /// snapshot of its live fleet (GET /v1/fleet, admin); nothing there is
    /// touched.
    #[arg(long, conflicts_with = "hosts")]
    pub from: Option<String>,
    /// Token for --from (noauth2: `admin`); default: $OS_TOKEN, else admin.
    #[arg(long, requires = "from")]
    pub token: Option<String>,
    /// Generate a seeded fleet of this many hosts (with its usage).
    #[arg(long)]
    pub hosts: Option<usize>,
    /// Seed of the generated fleet.
    #[arg(long, default_value_t = 1)]
    pub fleet_seed: u64,
    #[command(flatten)]
    pub scheduler: SchedulerArgs,
    /// Seed of the scheduler's random choices (`host_subset_size`).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl FleetSource {
    pub(super) fn token(&self) -> String {
        super::remote::token(self.token.as_deref())
    }

    pub(super) fn load(&self) -> Result<Fleet> {
        match (&self.fleet, &self.from, self.hosts) {
            (Some(p), _, _) => super::load::fleet(p),
            (None, Some(url), _) => super::simulate::fetch_fleet(url, &self.token()),
            (None, None, Some(n)) => super::load::generated(n, self.fleet_seed),
            (None, None, None) => bail!("give --fleet FILE, --from URL or --hosts N"),
        }
    }

    pub(super) fn scheduler_conf(&self, fleet: &Fleet) -> Result<SchedulerConfig> {
        let mut conf = SchedulerConfig::default();
        for (k, v) in fleet.nova_conf.clone() {
            conf.set(&k, &v).context("the fleet's nova_conf")?;
        }
        self.scheduler.apply(&mut conf)?;
        Ok(conf)
    }
}

/// Arguments of `quiver plan headroom`.
#[derive(Debug, Args)]
#[command(after_help = "Each flavor is placed on its own copy of the fleet, one server at a time,
through the scheduler's filters and weighers (Nova's decisions; the
simulator's exact fast path where the request allows), until the scheduler
finds no valid host. Printed per flavor:
  exact       servers placed before the first No valid host
  naive       the fleet's free capacity over the flavor's size, the smallest
              over its resource classes: what a spreadsheet says
  stranded    naive - exact: free capacity the flavor cannot use (spread
              over hosts too full for it, or on hosts the filters refuse)
  stopped by  placement (no candidate left) or the filter that kept none
then the same per availability zone and per aggregate.

Flavors: NAME:VCPUS:RAM_MB[:DISK_GB], a classic name (m1.tiny ... m1.xlarge),
or with --from any flavor of that cloud by name or id.

Examples:
  quiver plan headroom --hosts 100000 --flavor m1.large --flavor gpu:8:65536:100
  quiver plan headroom --fleet fleet.parquet --flavor m1.small --profile extended --json
  quiver plan headroom --from http://127.0.0.1:8774 --flavor m1.medium")]
pub struct HeadroomArgs {
    #[command(flatten)]
    pub source: FleetSource,
    /// A flavor to place, repeatable (see below).
    #[arg(long = "flavor", required = true)]
    pub flavors: Vec<String>,
    /// Flavor extra spec `KEY=VALUE` for every flavor, repeatable.
    #[arg(long = "extra-spec", value_name = "KEY=VALUE")]
    pub extra_specs: Vec<String>,
    /// Stop after this many servers of one flavor (bounds time and memory:
    /// about 40 bytes a server).
    #[arg(long, default_value_t = 10_000_000)]
    pub limit: u64,
    /// Place every server through the full pipeline (no fast path; same
    /// count, slower: the baseline for the fast path's speed).
    #[arg(long)]
    pub full_pipeline: bool,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// A flavor from `NAME:VCPUS:RAM_MB[:DISK_GB]`, a classic name, or (with
/// `catalog`) a flavor of a running cloud.
fn parse_flavor(spec: &str, catalog: &[Value]) -> Result<Flavor> {
    let parts: Vec<&str> = spec.split(':').collect();
    if parts.len() >= 3 {
        let num = |i: usize, what: &str| -> Result<u32> {
            parts
                .get(i)
                .map_or(Ok(0), |p| p.trim().parse())
                .with_context(|| format!("--flavor {spec}: {what} must be a whole number"))
        };
        return Ok(Flavor {
            name: parts[0].to_owned(),
            flavorid: Some(parts[0].to_owned()),
            vcpus: num(1, "VCPUS")?,
            memory_mb: num(2, "RAM_MB")?,
            root_gb: num(3, "DISK_GB")?,
            ..Default::default()
        });
    }
    if let Some(f) = catalog.iter().find(|f| f["name"] == spec || f["id"] == spec) {
        let n = |k: &str| f[k].as_u64().unwrap_or(0) as u32;
        let extra_specs = f["extra_specs"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect())
            .unwrap_or_default();
        return Ok(Flavor {
            name: f["name"].as_str().unwrap_or(spec).to_owned(),
            flavorid: f["id"].as_str().map(str::to_owned),
            vcpus: n("vcpus"),
            memory_mb: n("ram"),
            root_gb: n("disk"),
            ephemeral_gb: n("OS-FLV-EXT-DATA:ephemeral"),
            extra_specs,
            ..Default::default()
        });
    }
    quiver_datasets::trace::classic_flavor(spec).with_context(|| {
        format!("--flavor {spec}: not NAME:VCPUS:RAM_MB[:DISK_GB], a classic flavor (m1.tiny ... m1.xlarge), or a flavor of --from")
    })
}

/// The flavors of a running cloud (`GET /v2.1/flavors/detail`).
fn catalog(url: &str, token: &str) -> Result<Vec<Value>> {
    let url = format!("{}/v2.1/flavors/detail?is_public=None", url.trim_end_matches('/'));
    let v: Value = reqwest::blocking::Client::new()
        .get(&url)
        .header("X-Auth-Token", token)
        .header("OpenStack-API-Version", "compute 2.61")
        .send()
        .and_then(|r| r.error_for_status())
        .and_then(|r| r.json())
        .with_context(|| format!("--from: GET {url}"))?;
    Ok(v["flavors"].as_array().cloned().unwrap_or_default())
}

/// Runs `quiver plan`.
///
/// # Errors
/// A fleet that does not load, a bad flavor or option.
pub fn run(c: PlanCommand) -> Result<()> {
    match c {
        PlanCommand::Headroom(a) => run_headroom(a),
        PlanCommand::Drain(a) => super::plan_drain::run(a),
        PlanCommand::Size(a) => super::plan_size::run(a),
    }
}

fn run_headroom(a: HeadroomArgs) -> Result<()> {
    let fleet = a.source.load()?;
    let conf = a.source.scheduler_conf(&fleet)?;
    let cat = match &a.source.from {
        Some(url) => catalog(url, &a.source.token())?,
        None => Vec::new(),
    };
    let extra: Vec<(String, String)> = a
        .extra_specs
        .iter()
        .map(|kv| kv.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect::<Option<_>>()
        .with_context(|| "--extra-spec: expected KEY=VALUE")?;
    let bar = ProgressBar::new(a.flavors.len() as u64);
    bar.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} flavors  {msg}").expect("template"));
    let mut results: Vec<Headroom> = Vec::new();
    for spec in &a.flavors {
        let mut flavor = parse_flavor(spec, &cat)?;
        flavor.extra_specs.extend(extra.iter().cloned());
        bar.set_message(flavor.name.clone());
        let req = BootRequest { flavor, ..Default::default() };
        results.push(headroom(&fleet, &conf, &req, a.source.seed, Some(a.limit), !a.full_pipeline)?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
        return Ok(());
    }
    println!("{} live hosts", (0..fleet.len()).filter(|&h| fleet.is_live(h)).count());
    print!("{}", render(&results));
    Ok(())
}

/// The per-flavor table, then per zone and per aggregate.
pub fn render(results: &[Headroom]) -> String {
    let table = |header: [&str; 6]| {
        let mut t = comfy_table::Table::new();
        t.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
        t.set_header(header);
        t
    };
    let mut t = table(["flavor", "exact", "naive", "stranded", "stopped by", "seconds"]);
    for h in results {
        t.add_row([
            h.flavor.clone(),
            h.exact.to_string(),
            h.naive.to_string(),
            h.stranded.to_string(),
            h.stopped_by.clone(),
            format!("{:.2}", h.seconds),
        ]);
    }
    let mut out = format!("{t}\n");
    for (what, parts) in [("zone", 0), ("aggregate", 1)] {
        let mut t = table(["flavor", what, "hosts", "exact", "naive", "stranded"]);
        let mut any = false;
        for h in results {
            for p in if parts == 0 { &h.by_zone } else { &h.by_aggregate } {
                any = true;
                let name = if p.name.is_empty() { "(none)".to_owned() } else { p.name.clone() };
                t.add_row([
                    h.flavor.clone(),
                    name,
                    p.hosts.to_string(),
                    p.exact.to_string(),
                    p.naive.to_string(),
                    p.naive.saturating_sub(p.exact).to_string(),
                ]);
            }
        }
        if any {
            out.push_str(&format!("{t}\n"));
        }
    }
    out
}
