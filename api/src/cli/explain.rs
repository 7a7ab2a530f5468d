//! `quiver explain`: why a request lands where it does, or nowhere, on a
//! fleet file or a running Quiver (`POST /v1/explain`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use quiver_engine::config::SchedulerConfig;
use quiver_engine::request::Flavor;
use quiver_engine::{BootRequest, Groups, Scheduler};
use serde_json::{Value, json};

use super::scheduler_args::SchedulerArgs;

/// Arguments of `quiver explain`.
#[derive(Debug, Args)]
#[command(after_help = "For one request, prints how many hosts each stage kept, in Nova's order:
  request_filter   Nova's scheduler request filters, which shape the Placement query
                   (map_az_to_placement_aggregate, compute_status_filter, owner_nova)
  placement        allocation candidates: the flavor's resources and required traits
  filter           each of [filter_scheduler] enabled_filters
then the decision (nothing is claimed), and for each --host the first stage
that rejected it and why: which resource was short and by how much, which
trait was missing, which aggregate metadata did not match, which server group
member already runs there. Nova logs only the counts, and only at DEBUG.

Examples:
  quiver explain --fleet fleet.json --vcpus 8 --ram-mb 16384 --az az2 --host node-7,node-9
  quiver explain --fleet fleet.json --requests reqs.json --index 41 --profile extended --host h12
  quiver explain --from http://127.0.0.1:8774 --flavor m1.large --host kvm-1 --json
  quiver explain --from http://127.0.0.1:8774 --server 6f1c...  # an existing server's RequestSpec")]
pub struct ExplainArgs {
    /// Fleet file: nova-sched-fleet/v1 JSON, Parquet or Arrow IPC.
    #[arg(long, conflicts_with = "from", required_unless_present = "from")]
    pub fleet: Option<PathBuf>,
    /// A running Quiver's Compute API root (e.g. http://127.0.0.1:8774):
    /// explained there on a snapshot of its live fleet (admin only).
    #[arg(long)]
    pub from: Option<String>,
    /// Token for --from (noauth2: `admin`); default: $OS_TOKEN, else admin.
    #[arg(long)]
    pub token: Option<String>,
    /// With --fleet: a nova-sched-requests/v1 stream; the request at
    /// --index is explained (its server groups come with it).
    #[arg(long, requires = "fleet")]
    pub requests: Option<PathBuf>,
    /// With --requests: which request (0-based).
    #[arg(long, default_value_t = 0)]
    pub index: usize,
    /// With --from: the flavor, by id or name.
    #[arg(long, requires = "from")]
    pub flavor: Option<String>,
    /// With --from: an existing server, explained with its RequestSpec.
    #[arg(long, requires = "from", conflicts_with = "flavor")]
    pub server: Option<String>,
    /// With --from: the image id.
    #[arg(long, requires = "from")]
    pub image: Option<String>,
    /// With --fleet and no --requests: the flavor's vCPUs.
    #[arg(long, default_value_t = 1)]
    pub vcpus: u32,
    /// With --fleet and no --requests: the flavor's RAM in MiB.
    #[arg(long, default_value_t = 512)]
    pub ram_mb: u32,
    /// With --fleet and no --requests: the flavor's root disk in GiB.
    #[arg(long, default_value_t = 1)]
    pub disk_gb: u32,
    /// Flavor extra spec `KEY=VALUE`, repeatable (e.g. `trait:CUSTOM_GPU=required`).
    #[arg(long = "extra-spec", value_name = "KEY=VALUE")]
    pub extra_specs: Vec<String>,
    /// Image property `KEY=VALUE`, repeatable (with --fleet).
    #[arg(long = "image-property", value_name = "KEY=VALUE")]
    pub image_properties: Vec<String>,
    /// Availability zone asked for.
    #[arg(long)]
    pub az: Option<String>,
    /// Scheduler hint `KEY=VALUE`, repeatable (`group=UUID`, `same_host=UUID`, ...).
    #[arg(long = "hint", value_name = "KEY=VALUE")]
    pub hints: Vec<String>,
    /// Servers asked for at once (multi-create).
    #[arg(long, default_value_t = 1)]
    pub num_instances: u32,
    /// Hosts to explain, comma separated or repeated.
    #[arg(long = "host", value_delimiter = ',')]
    pub hosts: Vec<String>,
    /// With --fleet: the filters and options (a running Quiver uses its own).
    #[command(flatten)]
    pub scheduler: SchedulerArgs,
    /// Print the explanation as JSON (the /v1/explain body).
    #[arg(long)]
    pub json: bool,
}

/// `KEY=VALUE` pairs of a repeatable flag, naming the flag when one is bad.
fn pairs(flag: &str, items: &[String]) -> Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => bail!("{flag}: expected KEY=VALUE, got {kv:?}"),
        })
        .collect()
}

/// Runs `quiver explain`.
///
/// # Errors
/// A file that does not load, a bad flag, or a Quiver that refuses.
pub fn run(a: ExplainArgs) -> Result<()> {
    let hints: BTreeMap<String, Value> =
        pairs("--hint", &a.hints)?.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
    let e = match (&a.fleet, &a.from) {
        (Some(path), _) => on_fleet(&a, path, hints)?,
        (None, Some(url)) => on_quiver(&a, url, hints)?,
        (None, None) => bail!("give --fleet FILE or --from URL"),
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&e)?);
    } else {
        print!("{}", render(&e));
    }
    Ok(())
}

fn on_fleet(a: &ExplainArgs, path: &std::path::Path, hints: BTreeMap<String, Value>) -> Result<Value> {
    let mut fleet = super::load::fleet(path)?;
    let mut conf = SchedulerConfig::default();
    for (k, v) in fleet.nova_conf.clone() {
        conf.set(&k, &v).with_context(|| format!("nova_conf of {}", path.display()))?;
    }
    let (req, groups, index) = match &a.requests {
        Some(p) => {
            let stream = quiver_datasets::nova_json::read_requests(p)?;
            for (k, v) in stream.nova_conf.clone().unwrap_or_default() {
                conf.set(&k, &v).with_context(|| format!("nova_conf of {}", p.display()))?;
            }
            let Some(req) = stream.requests.get(a.index).cloned() else {
                bail!("--index {}: {} has {} requests", a.index, p.display(), stream.requests.len());
            };
            (req, Groups::new(&stream.server_groups)?, a.index)
        }
        None => {
            let flavor = Flavor {
                name: "explain".into(),
                vcpus: a.vcpus,
                memory_mb: a.ram_mb,
                root_gb: a.disk_gb,
                extra_specs: pairs("--extra-spec", &a.extra_specs)?,
                ..Default::default()
            };
            let image = (!a.image_properties.is_empty())
                .then(|| -> Result<_> {
                    Ok(quiver_engine::request::Image {
                        properties: pairs("--image-property", &a.image_properties)?,
                        ..Default::default()
                    })
                })
                .transpose()?;
            let req = BootRequest {
                flavor,
                image,
                availability_zone: a.az.clone(),
                scheduler_hints: hints,
                num_instances: a.num_instances.max(1),
                ..Default::default()
            };
            (req, Groups::default(), 0)
        }
    };
    a.scheduler.apply(&mut conf)?;
    let mut scheduler = Scheduler::new(conf, 0)?;
    let e = scheduler.explain(&mut fleet, &groups, &req, index, &a.hosts, None);
    Ok(serde_json::to_value(&e)?)
}

fn on_quiver(a: &ExplainArgs, url: &str, hints: BTreeMap<String, Value>) -> Result<Value> {
    if a.flavor.is_none() && a.server.is_none() {
        bail!("--from needs --flavor ID|NAME or --server UUID");
    }
    let mut body = json!({"hosts": a.hosts});
    if let Some(s) = &a.server {
        body["server"] = json!(s);
    } else {
        body["flavor"] = json!(a.flavor);
        body["num_instances"] = json!(a.num_instances.max(1));
        if let Some(i) = &a.image {
            body["image"] = json!(i);
        }
        if let Some(z) = &a.az {
            body["availability_zone"] = json!(z);
        }
    }
    if !hints.is_empty() {
        body["scheduler_hints"] = json!(hints);
    }
    super::remote::post(url, "/v1/explain", &super::remote::token(a.token.as_deref()), &body)
}

/// The explanation as tables: stages, the decision, the named hosts.
pub fn render(e: &Value) -> String {
    let mut out = String::new();
    let mut stages = comfy_table::Table::new();
    stages.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
    stages.set_header(["stage", "kind", "hosts kept"]);
    stages.add_row(["(live compute hosts)".to_owned(), String::new(), e["hosts"].to_string()]);
    for s in e["stages"].as_array().into_iter().flatten() {
        let kind = s["kind"].as_str().unwrap_or("").replace('_', " ");
        stages.add_row([s["name"].as_str().unwrap_or("").to_owned(), kind, s["kept"].to_string()]);
    }
    out.push_str(&format!("{stages}\n"));
    let d = &e["decision"];
    match d["status"].as_str() {
        Some("ok") => {
            let first = &d["instances"][0];
            out.push_str(&format!(
                "Decision: {} (weight {:.4})",
                d["chosen"].as_array().into_iter().flatten().filter_map(Value::as_str).collect::<Vec<_>>().join(", "),
                first["weight"].as_f64().unwrap_or(0.0)
            ));
            let alts: Vec<&str> =
                first["alternates"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            if !alts.is_empty() {
                out.push_str(&format!("; alternates {}", alts.join(", ")));
            }
            out.push('\n');
        }
        Some("no_valid_host") => out
            .push_str(&format!("Decision: No valid host (stopped at {})\n", d["failed_stage"].as_str().unwrap_or("?"))),
        other => out.push_str(&format!("Decision: {} ({})\n", other.unwrap_or("?"), d["error"].as_str().unwrap_or(""))),
    }
    let named = e["named"].as_array().cloned().unwrap_or_default();
    if !named.is_empty() {
        let mut hosts = comfy_table::Table::new();
        hosts.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
        hosts.set_header(["host", "verdict", "rejected by", "why"]);
        for v in &named {
            let by = match (v["stage"].as_str(), v["rejected_by"].as_str()) {
                (Some(stage), Some(by)) => format!("{by} ({})", stage.replace('_', " ")),
                _ => String::new(),
            };
            hosts.add_row([
                v["host"].as_str().unwrap_or("").to_owned(),
                v["verdict"].as_str().unwrap_or("").to_owned(),
                by,
                v["reason"].as_str().unwrap_or("").to_owned(),
            ]);
        }
        out.push_str(&format!("{hosts}\n"));
    }
    out
}
