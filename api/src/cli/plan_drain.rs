//! `quiver plan drain`: would every instance on some hosts find a new
//! home under the current policy, and where.

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use quiver_engine::config::SchedulerConfig;
use quiver_engine::plan::{Drain, DrainInstance, drain, nova_move_order};
use quiver_engine::request::{default_instance_uuid, parse_uuid};
use quiver_engine::{Fleet, Groups, Scheduler};
use serde_json::json;

use super::scheduler_args::SchedulerArgs;

/// Arguments of `quiver plan drain`.
#[derive(Debug, Args)]
#[command(after_help = "Each instance on the drained hosts is moved as Nova's conductor moves it
(a cold or live migration): the scheduler runs its own request (flavor,
image, zone, hints, server group) with every drained host ignored, and
the destination is claimed before the next instance moves. Instances move
host after host, newest first on each, as `openstack server list --host H`
lists them. Printed: each instance's destination and alternates, or the
first stage that kept no host for it (placement, a request filter or a
filter's class name); then the capacity left per availability zone.

A fleet file records which instances run where but not what each asks
for, so with --fleet the instances are the ones --requests boots first
(a nova-sched-requests/v1 stream, placed by the same scheduler). With
--from the running cloud answers (POST /v1/plan/drain) with its own
servers, their RequestSpecs and its own scheduler options.

Examples:
  quiver plan drain --from http://127.0.0.1:8774 --hosts compute-3
  quiver plan drain --from http://127.0.0.1:8774 --zone az2 --json
  quiver plan drain --fleet fleet.json --requests boots.json --aggregate rack-7")]
pub struct DrainArgs {
    /// Fleet file: nova-sched-fleet/v1 JSON, Parquet or Arrow IPC (needs
    /// --requests).
    #[arg(long, conflicts_with = "from", requires = "requests")]
    pub fleet: Option<PathBuf>,
    /// With --fleet: the boots to place first (nova-sched-requests/v1);
    /// their instances are the ones that move.
    #[arg(long)]
    pub requests: Option<PathBuf>,
    /// A running Quiver's Compute API root (e.g. http://127.0.0.1:8774).
    #[arg(long)]
    pub from: Option<String>,
    /// Token for --from (noauth2: `admin`); default: $OS_TOKEN, else admin.
    #[arg(long, requires = "from")]
    pub token: Option<String>,
    /// Hosts to drain, comma separated or repeated.
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["aggregate", "zone"])]
    pub hosts: Vec<String>,
    /// Drain every host of this aggregate.
    #[arg(long, conflicts_with = "zone")]
    pub aggregate: Option<String>,
    /// Drain every host of this availability zone.
    #[arg(long)]
    pub zone: Option<String>,
    #[command(flatten)]
    pub scheduler: SchedulerArgs,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Runs `quiver plan drain`.
///
/// # Errors
/// A fleet or request stream that does not load, unknown hosts, a refusal
/// from --from.
pub fn run(a: DrainArgs) -> Result<()> {
    if a.hosts.is_empty() && a.aggregate.is_none() && a.zone.is_none() {
        bail!("give the hosts to drain: --hosts H1,H2, --aggregate A or --zone Z");
    }
    let d: Drain = match (&a.from, &a.fleet) {
        (Some(url), _) => {
            let body = match (&a.aggregate, &a.zone) {
                (Some(agg), _) => json!({ "aggregate": agg }),
                (None, Some(z)) => json!({ "zone": z }),
                (None, None) => json!({ "hosts": a.hosts }),
            };
            let v = super::remote::post(url, "/v1/plan/drain", &super::remote::token(a.token.as_deref()), &body)?;
            serde_json::from_value(v).context("--from: the answer is not a drain plan")?
        }
        (None, Some(path)) => on_fleet(&a, path)?,
        (None, None) => bail!("give --from URL, or --fleet FILE with --requests FILE"),
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&d)?);
    } else {
        print!("{}", render(&d));
    }
    Ok(())
}

fn on_fleet(a: &DrainArgs, path: &std::path::Path) -> Result<Drain> {
    let mut fleet = super::load::fleet(path)?;
    let mut conf = SchedulerConfig::default();
    for (k, v) in fleet.nova_conf.clone() {
        conf.set(&k, &v).with_context(|| format!("nova_conf of {}", path.display()))?;
    }
    let rpath = a.requests.as_ref().context("--fleet needs --requests")?;
    let stream = quiver_datasets::nova_json::read_requests(rpath)?;
    for (k, v) in stream.nova_conf.clone().unwrap_or_default() {
        conf.set(&k, &v).with_context(|| format!("nova_conf of {}", rpath.display()))?;
    }
    a.scheduler.apply(&mut conf)?;
    let rows = sources(&fleet, a)?;
    let groups = Groups::new(&stream.server_groups)?;
    // The boots first, with the same scheduler, in order.
    let mut sched = Scheduler::new(conf.clone(), 0)?;
    let mut booted = groups.clone();
    let drained: HashSet<usize> = rows.iter().copied().collect();
    let mut placed: Vec<(DrainInstance, (usize, usize))> = Vec::new();
    for (index, req) in stream.requests.iter().enumerate() {
        let d = sched.schedule(&mut fleet, &mut booted, req, index);
        if d.status != "ok" {
            continue;
        }
        for (k, host) in d.chosen.iter().enumerate() {
            let Some(row) = fleet.index_of(host) else { continue };
            // Running by the time the host is drained: the build is over.
            fleet.finish_build(row);
            if !drained.contains(&row) {
                continue;
            }
            let uuid = req.instance_uuids.get(k).and_then(|u| parse_uuid(u)).unwrap_or(default_instance_uuid(index, k));
            let name = req.id.clone().unwrap_or_else(|| format!("request-{index}"));
            let name = if d.chosen.len() > 1 { format!("{name}-{k}") } else { name };
            placed.push((DrainInstance { uuid, name, host: row, request: req.clone() }, (index, k)));
        }
    }
    let planned: HashSet<u128> = placed.iter().map(|(i, _)| i.uuid).collect();
    let unknown =
        fleet.instances.iter().filter(|&(u, &at)| drained.contains(&(at as usize)) && !planned.contains(u)).count();
    if unknown > 0 {
        eprintln!(
            "note: {unknown} instance(s) on the drained hosts come from the fleet file, which does not say what \
             they ask for; they are not planned (their usage stays on the drained hosts)"
        );
    }
    nova_move_order(&mut placed, &rows);
    let instances: Vec<DrainInstance> = placed.into_iter().map(|(i, _)| i).collect();
    // Server groups as the boots left them.
    Ok(drain(&fleet, &conf, &booted, &rows, &instances, 0)?)
}

/// The drained hosts' rows in a fleet file.
fn sources(fleet: &Fleet, a: &DrainArgs) -> Result<Vec<usize>> {
    let rows: Vec<usize> = if let Some(name) = &a.aggregate {
        fleet.hosts_in_aggregate(name).with_context(|| format!("--aggregate {name}: no such aggregate in the fleet"))?
    } else if let Some(zone) = &a.zone {
        fleet.hosts_in_zone(zone)
    } else {
        let mut seen = BTreeSet::new();
        a.hosts
            .iter()
            .filter(|h| seen.insert(h.as_str()))
            .map(|h| fleet.index_of(h).filter(|&r| fleet.is_live(r)).with_context(|| format!("--hosts: no host {h}")))
            .collect::<Result<_>>()?
    };
    if rows.is_empty() {
        bail!("no live host to drain in {}", a.zone.as_deref().or(a.aggregate.as_deref()).unwrap_or("--hosts"));
    }
    Ok(rows)
}

/// The moves, then the capacity per zone.
pub fn render(d: &Drain) -> String {
    let table = |header: Vec<&str>| {
        let mut t = comfy_table::Table::new();
        t.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
        t.set_header(header);
        t
    };
    let mut t = table(vec!["instance", "name", "from", "to", "alternates / stopped by"]);
    for m in &d.moves {
        t.add_row([
            m.instance.clone(),
            m.name.clone(),
            m.source.clone(),
            m.destination.clone().unwrap_or_else(|| "-".into()),
            m.stopped_by.clone().unwrap_or_else(|| m.alternates.join(", ")),
        ]);
    }
    let mut out = format!(
        "draining {}: {} instance(s), {} would move, {} would stay ({:.2} s)\n",
        d.sources.join(", "),
        d.moves.len(),
        d.moved,
        d.stuck,
        d.seconds
    );
    if !d.moves.is_empty() {
        out.push_str(&format!("{t}\n"));
    }
    let rcs: Vec<String> = d.by_zone.first().map(|z| z.free.keys().cloned().collect()).unwrap_or_default();
    let mut header = vec!["zone after the drain".to_owned(), "hosts".to_owned()];
    header.extend(rcs.iter().map(|rc| format!("{rc} free (used %)")));
    let mut t = table(header.iter().map(String::as_str).collect());
    for z in &d.by_zone {
        let mut row = vec![if z.name.is_empty() { "(none)".to_owned() } else { z.name.clone() }, z.hosts.to_string()];
        row.extend(rcs.iter().map(|rc| {
            format!("{} ({:.1}%)", z.free.get(rc).copied().unwrap_or(0), z.used_percent.get(rc).copied().unwrap_or(0.0))
        }));
        t.add_row(row);
    }
    out.push_str(&format!("{t}\n"));
    out
}
