//! `quiver plan size`: the fewest hosts of one shape to add so that a
//! trace replays with no rejection, and the rejections per host added.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use quiver_engine::plan::{Size, describe_shape, host_shape, size};
use quiver_engine::sim::policy::Policy;
use serde_json::json;

use super::plan::FleetSource;

/// Arguments of `quiver plan size`.
#[derive(Debug, Args)]
#[command(after_help = "The trace is replayed with the simulator (Nova's decisions, the exact fast
path where a request allows) on the fleet plus k new hosts of the shape,
k found by doubling (1, 2, 4, ...) then bisection, and checked both ways:
no rejection at k, some at k - 1. Every k replayed is a point of the curve
(plotted with --out). Rejections that no number of such hosts cures (a
flavor larger than the shape, a trait or zone the shape lacks) remain at
--max-added and are listed with the stage or filter that made them.

Host shape: VCPUS:RAM_MB:DISK_GB[@HOST], or HOST alone. The new hosts have
those resources, and HOST's zone, aggregates, traits, hypervisor and
allocation ratios (default HOST: the fleet's first host).

Trace: CSV or Parquet with the columns of quiver simulate --trace
(arrival, departure or lifetime, flavor or vcpus/memory_mb/disk_gb, ...).
With --from, a CSV trace is sent to the cloud (POST /v1/plan/size), which
sizes its own live fleet with its own scheduler options.

Examples:
  quiver plan size --hosts 1000 --trace week.csv --host-shape 64:262144:2000
  quiver plan size --fleet fleet.parquet --trace week.parquet --host-shape compute-17 --out size/
  quiver plan size --from http://127.0.0.1:8774 --trace week.csv --host-shape 32:131072:500")]
pub struct SizeArgs {
    #[command(flatten)]
    pub source: FleetSource,
    /// The workload to replay (.csv or .parquet).
    #[arg(long)]
    pub trace: PathBuf,
    /// The shape of the hosts to add (see below).
    #[arg(long)]
    pub host_shape: String,
    /// Most hosts to try adding (default: 10 times the fleet, at least 100).
    #[arg(long)]
    pub max_added: Option<usize>,
    /// Send every request through the full pipeline (no fast path).
    #[arg(long)]
    pub full_pipeline: bool,
    /// Write size.json and the curve (size.png, size.svg) here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `VCPUS:RAM_MB:DISK_GB[@HOST]` or `HOST`: the resources and the host to
/// copy the rest from.
fn parse_shape(spec: &str) -> Result<(Option<[i64; 3]>, Option<String>)> {
    let (res, like) = match spec.split_once('@') {
        Some((r, h)) => (Some(r), Some(h.to_owned())),
        None if spec.contains(':') => (Some(spec), None),
        None => (None, Some(spec.to_owned())),
    };
    let Some(res) = res else { return Ok((None, like)) };
    let parts: Vec<&str> = res.split(':').collect();
    if parts.len() != 3 {
        bail!("--host-shape {spec}: expected VCPUS:RAM_MB:DISK_GB[@HOST] or HOST");
    }
    let mut v = [0i64; 3];
    for (slot, (p, what)) in v.iter_mut().zip(parts.iter().zip(["VCPUS", "RAM_MB", "DISK_GB"])) {
        *slot = p
            .trim()
            .parse()
            .ok()
            .filter(|n| *n >= 0)
            .with_context(|| format!("--host-shape {spec}: {what} must be a whole number >= 0"))?;
    }
    Ok((Some(v), like))
}

/// Runs `quiver plan size`.
///
/// # Errors
/// A fleet, trace or shape that does not load; a refusal from --from.
pub fn run(a: SizeArgs) -> Result<()> {
    let (res, like) = parse_shape(&a.host_shape)?;
    let s: Size = match &a.source.from {
        Some(url) => {
            let text = std::fs::read_to_string(&a.trace).with_context(|| format!("--trace {}", a.trace.display()))?;
            if !a.trace.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
                bail!("--trace {}: with --from the trace must be CSV", a.trace.display());
            }
            let mut shape = json!({ "like": like });
            if let Some([v, r, d]) = res {
                shape["vcpus"] = json!(v);
                shape["memory_mb"] = json!(r);
                shape["disk_gb"] = json!(d);
            }
            let body = json!({"trace_csv": text, "host_shape": shape, "max_added": a.max_added});
            let v = super::remote::post(url, "/v1/plan/size", &a.source.token(), &body)?;
            serde_json::from_value(v).context("--from: the answer is not a size plan")?
        }
        None => local(&a, res, like)?,
    };
    if let Some(out) = &a.out {
        std::fs::create_dir_all(out).with_context(|| format!("--out {}", out.display()))?;
        std::fs::write(out.join("size.json"), serde_json::to_string_pretty(&s)?)?;
        super::plot_size::size_curve(&s, &out.join("size.png"), &out.join("size.svg"))?;
        eprintln!("wrote {0}/size.json, {0}/size.png, {0}/size.svg", out.display());
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{}", render(&s));
    }
    Ok(())
}

fn local(a: &SizeArgs, res: Option<[i64; 3]>, like: Option<String>) -> Result<Size> {
    let fleet = a.source.load()?;
    let conf = a.source.scheduler_conf(&fleet)?;
    let workload = quiver_datasets::trace::read_trace(&a.trace)?;
    if workload.requests.is_empty() {
        bail!("--trace {}: no request", a.trace.display());
    }
    let template = match &like {
        Some(h) => {
            fleet.index_of(h).filter(|&r| fleet.is_live(r)).with_context(|| format!("--host-shape: no host {h}"))?
        }
        None => (0..fleet.len()).find(|&h| fleet.is_live(h)).context("--host-shape: the fleet has no host to copy")?,
    };
    let [v, r, d] = res.map_or([None; 3], |x| x.map(Some));
    let shape = host_shape(&fleet.host_record(template), v, r, d)?;
    let described = describe_shape(&shape, fleet.name(template));
    let max_added = a.max_added.unwrap_or_else(|| (fleet.live_len() * 10).max(100));
    let policy = Policy { name: "plan".into(), conf, ratios: Default::default() };
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {elapsed} replays: {pos}  {msg}").expect("template"));
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let s = size(
        &fleet,
        &policy,
        &workload,
        &shape,
        &described,
        max_added,
        a.source.seed,
        !a.full_pipeline,
        &mut |k, rej| {
            bar.inc(1);
            bar.set_message(format!("{k} added: {rej} rejected"));
        },
    )?;
    bar.finish_and_clear();
    Ok(s)
}

/// The answer, the curve and what is left.
pub fn render(s: &Size) -> String {
    let mut out = format!("fleet: {} hosts; trace: {} requests; shape: {}\n", s.fleet_hosts, s.requests, s.shape);
    out.push_str(&match s.added {
        Some(0) => "no host to add: the trace replays with no rejection as the fleet is\n".to_owned(),
        Some(k) => format!("add {k} host(s): the trace then replays with no rejection ({k} - 1 leave some)\n"),
        None => format!(
            "no number of hosts up to {} of this shape removes every rejection\n",
            s.curve.last().map_or(0, |p| p.added)
        ),
    });
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
    t.set_header(["hosts added", "rejected", "accepted"]);
    for p in &s.curve {
        t.add_row([p.added.to_string(), p.rejected.to_string(), p.accepted.to_string()]);
    }
    out.push_str(&format!("{t}\n"));
    if !s.remaining.is_empty() {
        let why: Vec<String> = s.remaining.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        out.push_str(&format!("rejections left, by what made them: {}\n", why.join(", ")));
    }
    out.push_str(&format!("{} replays in {:.2} s\n", s.curve.len(), s.seconds));
    out
}
