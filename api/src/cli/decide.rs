//! `quiver decide`: replay a request stream, print decisions.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use quiver_engine::config::{SchedulerConfig, profile_filters};
use quiver_engine::{Groups, Scheduler};
use serde_json::json;

/// Filter profiles of the parity kit.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Profile {
    /// Nova's default enabled_filters.
    Default,
    /// Default plus the aggregate, host, counter, JSON, metrics, PCI and NUMA filters.
    Extended,
    /// Extended plus AggregateImagePropertiesIsolation,
    /// AggregateTypeAffinityFilter, SimpleCIDRAffinityFilter, AllHostsFilter.
    All,
}

impl Profile {
    /// The filter class names of the profile, in order.
    pub fn filters(self) -> Vec<String> {
        let name = match self {
            Profile::Default => "default",
            Profile::Extended => "extended",
            Profile::All => "all",
        };
        profile_filters(name).expect("known profile")
    }
}

/// Arguments of `quiver decide`.
#[derive(Debug, Args)]
#[command(after_help = "The output is the decision format of ../shared/nova-parity (FORMAT.md section 4): \
a header line, then one JSON object per request with status, chosen hosts, the top five weighed \
hosts and their weights. Diff it against Nova with compare-decisions.py.

Example:
  quiver decide --fleet fleet.json --requests reqs.json --profile extended \\
      --conf filter_scheduler.ram_weight_multiplier=-1.0 -o mine.jsonl")]
pub struct DecideArgs {
    /// Fleet file: nova-sched-fleet/v1 JSON, Parquet or Arrow IPC.
    #[arg(long)]
    pub fleet: PathBuf,
    /// Request stream: nova-sched-requests/v1 JSON.
    #[arg(long)]
    pub requests: PathBuf,
    /// Filter profile (ignored when --filters is given).
    #[arg(long, value_enum, default_value_t = Profile::Default)]
    pub profile: Profile,
    /// Explicit filter list, Nova class names, comma separated.
    #[arg(long, value_delimiter = ',')]
    pub filters: Option<Vec<String>>,
    /// Explicit weigher list, Nova class names, comma separated (default: all 13).
    #[arg(long, value_delimiter = ',')]
    pub weighers: Option<Vec<String>>,
    /// Nova option override `group.option=value`, repeatable, e.g.
    /// `filter_scheduler.ram_weight_multiplier=-1.0`.
    #[arg(long = "conf", value_name = "GROUP.OPTION=VALUE")]
    pub conf: Vec<String>,
    /// Include per-filter host counts in every decision.
    #[arg(long)]
    pub trace: bool,
    /// Seed for host_subset_size picks.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output file (default: standard output).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// Runs `quiver decide`.
///
/// # Errors
/// A file that does not load, or a bad filter, weigher or option name.
pub fn run(a: DecideArgs) -> Result<()> {
    let mut fleet = super::load::fleet(&a.fleet)?;
    let stream = quiver_datasets::nova_json::read_requests(&a.requests)?;
    let mut conf = SchedulerConfig::default();
    for (k, v) in fleet.nova_conf.clone() {
        conf.set(&k, &v).with_context(|| format!("nova_conf of {}", a.fleet.display()))?;
    }
    for (k, v) in stream.nova_conf.clone().unwrap_or_default() {
        conf.set(&k, &v).with_context(|| format!("nova_conf of {}", a.requests.display()))?;
    }
    conf.enabled_filters = a.filters.clone().unwrap_or_else(|| a.profile.filters());
    if let Some(w) = &a.weighers {
        conf.set("filter_scheduler.weight_classes", &json!(w))?;
    }
    for c in &a.conf {
        conf.set_override(c)?;
    }
    let mut scheduler = Scheduler::new(conf, a.seed)?;
    scheduler.trace = a.trace;
    let mut groups = Groups::new(&stream.server_groups)?;
    let out: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::new(out);
    let header = json!({
        "header": true,
        "engine": "quiver",
        "quiver_version": env!("CARGO_PKG_VERSION"),
        "hosts": fleet.len(),
        "requests": stream.requests.len(),
        "filters": scheduler.filter_names(),
        "weighers": scheduler.weigher_paths(),
        "placement_emulation": true,
        "placement_limit": false,
        "conf_overrides": a.conf,
    });
    writeln!(out, "{header}")?;
    let started = std::time::Instant::now();
    for (i, req) in stream.requests.iter().enumerate() {
        let d = scheduler.schedule(&mut fleet, &mut groups, req, i);
        serde_json::to_writer(&mut out, &d)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    tracing::info!(
        requests = stream.requests.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "decisions written"
    );
    Ok(())
}
