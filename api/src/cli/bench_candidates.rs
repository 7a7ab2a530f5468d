//! `quiver bench candidates`: `GET /allocation_candidates` over HTTP on
//! Placement's own perf shapes, timed beside the HTTP floor (`GET /`) in
//! the same run, interleaved:
//! - nested: gate/perfload-nested-runner.sh and
//!   gate/gabbits/nested-perfload.yaml in the Placement repository (per
//!   tree a compute node with DISK_GB and COMPUTE_VOLUME_MULTI_ATTACH, two
//!   NUMA nodes with VCPU and MEMORY_MB, FPGA and VGPU grandchildren);
//! - flat: gate/perfload-runner.sh, whose providers placeload creates (one
//!   provider each with VCPU 32, MEMORY_MB 8192 and DISK_GB 8192, member of
//!   the first one, two or three of three aggregates in turn).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use super::bench_serve::{client, ok, pct, start};

/// Placement's query for the nested shape (perfload-nested-runner.sh).
pub const NESTED_QUERY: &str = "resources=DISK_GB:10&required=COMPUTE_VOLUME_MULTI_ATTACH\
&resources_COMPUTE=VCPU:1,MEMORY_MB:256&required_COMPUTE=CUSTOM_FOO&resources_FPGA=FPGA:1\
&group_policy=none&same_subtree=_COMPUTE,_FPGA";

/// Placement's query for the flat shape (perfload-runner.sh): every
/// provider is a member of the first aggregate.
pub fn flat_query() -> String {
    format!("resources=VCPU:1,DISK_GB:10,MEMORY_MB:256&member_of={}", FLAT_AGGREGATES[0])
}

/// placeload's static aggregate uuids.
pub const FLAT_AGGREGATES: [&str; 3] = [
    "14a5c8a3-5a99-4e8f-88be-00d85fcb1c17",
    "66d98e7c-3c25-485d-a0dc-1cea651884de",
    "a59dbb28-fd98-4c6e-9ec5-ae5f3d04b0aa",
];

/// Arguments of `quiver bench candidates`.
#[derive(Debug, Args)]
#[command(after_help = "Reports, per query (sequential requests, interleaved with the floor):
  p50/p95 ms    one GET /allocation_candidates, client to client (the client
                parses the whole JSON body, as a real client does)
  server p50    the server's own time for it: search and rendering, read from
                quiver_allocation_candidates_seconds_total in /metrics
  candidates    allocation requests in the answer
  x floor       p50 / p50 of GET / (the version document: HTTP and routing alone)

Examples:
  quiver bench candidates --trees 1000
  quiver bench candidates --shape flat --trees 10000
  quiver bench candidates --trees 10000 --repeat 11 --json nested.json")]
pub struct CandidatesBenchArgs {
    /// Placement's perf shape: nested (trees of 7 providers) or flat (one
    /// provider per compute node).
    #[arg(long, default_value = "nested", value_parser = ["nested", "flat"])]
    pub shape: String,
    /// Provider trees to create (7 providers each when nested, 1 when flat).
    #[arg(long, default_value_t = 1000)]
    pub trees: usize,
    /// Timed requests per query.
    #[arg(long, default_value_t = 21)]
    pub repeat: usize,
    /// Client threads that create the trees.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Write the results as JSON here.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

/// One tree of the nested shape, as nested-perfload.yaml builds it.
fn create_tree(http: &reqwest::blocking::Client, base: &str) -> Result<()> {
    let new = || uuid::Uuid::new_v4().to_string();
    let provider = |uuid: &str, name: &str, parent: Option<&str>| -> Result<()> {
        let mut body = json!({"uuid": uuid, "name": name});
        if let Some(p) = parent {
            body["parent_provider_uuid"] = json!(p);
        }
        ok(http.post(format!("{base}/resource_providers")).json(&body).send()?).map(|_| ())
    };
    let inventory = |uuid: &str, inv: Value| -> Result<()> {
        let body = json!({"resource_provider_generation": 0, "inventories": inv});
        ok(http.put(format!("{base}/resource_providers/{uuid}/inventories")).json(&body).send()?).map(|_| ())
    };
    let traits = |uuid: &str, t: &[&str]| -> Result<()> {
        let body = json!({"resource_provider_generation": 1, "traits": t});
        ok(http.put(format!("{base}/resource_providers/{uuid}/traits")).json(&body).send()?).map(|_| ())
    };
    let cn = new();
    provider(&cn, &cn, None)?;
    inventory(&cn, json!({"DISK_GB": {"total": 20480}}))?;
    traits(&cn, &["COMPUTE_VOLUME_MULTI_ATTACH"])?;
    let n0 = new();
    provider(&n0, &format!("numa 0-{n0}"), Some(&cn))?;
    inventory(
        &n0,
        json!({"VCPU": {"total": 4, "reserved": 2}, "MEMORY_MB": {"total": 2048, "min_unit": 512, "step_size": 256}}),
    )?;
    traits(&n0, &["HW_NUMA_ROOT"])?;
    let (f00, g00) = (new(), new());
    provider(&f00, &format!("fpga0-0-{f00}"), Some(&n0))?;
    inventory(&f00, json!({"FPGA": {"total": 1}}))?;
    provider(&g00, &format!("pgpu0-0-{g00}"), Some(&n0))?;
    inventory(&g00, json!({"VGPU": {"total": 8}}))?;
    let n1 = new();
    provider(&n1, &format!("numa 1-{n1}"), Some(&cn))?;
    inventory(&n1, json!({"VCPU": {"total": 4}, "MEMORY_MB": {"total": 2048, "min_unit": 256, "max_unit": 1024}}))?;
    traits(&n1, &["HW_NUMA_ROOT", "CUSTOM_FOO"])?;
    for i in 0..2 {
        let f = new();
        provider(&f, &format!("fpga1-{i}-{f}"), Some(&n1))?;
        inventory(&f, json!({"FPGA": {"total": 1}}))?;
    }
    Ok(())
}

/// One provider of the flat shape, as placeload creates it: the `i`th
/// joins the first `i % 3 + 1` aggregates.
fn create_flat_provider(http: &reqwest::blocking::Client, base: &str, i: usize) -> Result<()> {
    let uuid = uuid::Uuid::new_v4().to_string();
    ok(http.post(format!("{base}/resource_providers")).json(&json!({"uuid": uuid, "name": uuid})).send()?)?;
    let inv = json!({
        "MEMORY_MB": {"total": 8192, "min_unit": 128, "max_unit": 8192},
        "DISK_GB": {"total": 8192, "min_unit": 5, "max_unit": 8192},
        "VCPU": {"total": 32, "min_unit": 1, "max_unit": 16},
    });
    let body = json!({"resource_provider_generation": 0, "inventories": inv});
    ok(http.put(format!("{base}/resource_providers/{uuid}/inventories")).json(&body).send()?)?;
    let body = json!({"resource_provider_generation": 1, "aggregates": FLAT_AGGREGATES[..i % 3 + 1]});
    ok(http.put(format!("{base}/resource_providers/{uuid}/aggregates")).json(&body).send()?)?;
    Ok(())
}

/// Builds `n` trees (nested) or providers (flat) of Placement's perf
/// shape on the Placement at `base` with `concurrency` clients; returns
/// the seconds it took.
///
/// # Errors
/// An unknown shape, or a request Placement refused.
pub(super) fn load_shape(base: &str, shape: &str, n: usize, concurrency: usize, bar: &ProgressBar) -> Result<f64> {
    if !matches!(shape, "nested" | "flat") {
        anyhow::bail!("unknown shape {shape:?}: use nested or flat");
    }
    if shape == "nested" {
        ok(client()?.put(format!("{base}/traits/CUSTOM_FOO")).send()?)?;
    }
    let next = AtomicUsize::new(0);
    let t0 = Instant::now();
    std::thread::scope(|sc| -> Result<()> {
        let mut workers = Vec::new();
        for _ in 0..concurrency.max(1) {
            let http = client()?;
            let next = &next;
            workers.push(sc.spawn(move || -> Result<()> {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return Ok(());
                    }
                    if shape == "nested" {
                        create_tree(&http, base)?
                    } else {
                        create_flat_provider(&http, base, i)?
                    }
                    bar.inc(1);
                }
            }));
        }
        for w in workers {
            w.join().map_err(|_| anyhow::anyhow!("a loader thread panicked"))??;
        }
        Ok(())
    })?;
    bar.finish();
    Ok(t0.elapsed().as_secs_f64())
}

/// The shape's query, as its gate script asks it.
pub(super) fn shape_query(shape: &str) -> String {
    if shape == "flat" { flat_query() } else { NESTED_QUERY.to_owned() }
}

pub fn run(a: CandidatesBenchArgs) -> Result<()> {
    let s = start(&[])?;
    let http = client()?;
    let style = ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} {per_sec}").expect("template");
    let bar = ProgressBar::new(a.trees as u64).with_style(style).with_message("trees");
    let load_s = load_shape(&s.placement, &a.shape, a.trees, a.concurrency, &bar)?;
    let q = shape_query(&a.shape);
    let queries = [(a.shape.clone(), q.clone()), (format!("{} limit=5", a.shape), format!("{q}&limit=5"))];
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); queries.len() + 1];
    let mut server: Vec<Vec<f64>> = vec![Vec::new(); queries.len()];
    let server_seconds = || -> Result<f64> {
        let text = http.get(format!("{}/metrics", s.placement)).send()?.text()?;
        text.lines()
            .find_map(|l| l.strip_prefix("quiver_allocation_candidates_seconds_total "))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| anyhow::anyhow!("/metrics has no quiver_allocation_candidates_seconds_total"))
    };
    let mut counts = vec![0usize; queries.len()];
    let time = |url: &str| -> Result<(f64, Value)> {
        let t = Instant::now();
        let v = ok(http.get(url).send()?)?;
        Ok((t.elapsed().as_secs_f64() * 1e3, v))
    };
    for rep in 0..a.repeat.max(1) + 1 {
        // interleaved: floor, then each query; the first round warms up
        let (floor, _) = time(&format!("{}/", s.placement))?;
        if rep > 0 {
            samples[queries.len()].push(floor);
        }
        for (qi, (_, q)) in queries.iter().enumerate() {
            let before = server_seconds()?;
            let (ms, v) = time(&format!("{}/allocation_candidates?{q}", s.placement))?;
            let server_ms = (server_seconds()? - before) * 1e3;
            counts[qi] = v["allocation_requests"].as_array().map_or(0, Vec::len);
            if rep > 0 {
                samples[qi].push(ms);
                server[qi].push(server_ms);
            }
        }
    }
    for v in samples.iter_mut().chain(server.iter_mut()) {
        v.sort_by(f64::total_cmp);
    }
    let floor = pct(&samples[queries.len()], 0.5);
    let per_tree = if a.shape == "nested" { 7 } else { 1 };
    println!(
        "{} trees ({} providers), created in {:.1} s; {} timed requests per query",
        a.trees,
        a.trees * per_tree,
        load_s,
        a.repeat
    );
    println!(
        "{:<16} {:>9} {:>9} {:>11} {:>11} {:>9}",
        "query", "p50 ms", "p95 ms", "server p50", "candidates", "x floor"
    );
    let mut out = Vec::new();
    for (qi, (name, _)) in queries.iter().enumerate() {
        let (p50, p95, sp50) = (pct(&samples[qi], 0.5), pct(&samples[qi], 0.95), pct(&server[qi], 0.5));
        println!("{name:<16} {p50:>9.2} {p95:>9.2} {sp50:>11.2} {:>11} {:>8.1}x", counts[qi], p50 / floor);
        out.push(json!({"query": name, "p50_ms": p50, "p95_ms": p95, "server_p50_ms": sp50,
                        "candidates": counts[qi]}));
    }
    println!("{:<16} {:>9.2} {:>9.2}", "floor (GET /)", floor, pct(&samples[queries.len()], 0.95));
    if let Some(p) = &a.json {
        let doc = json!({"shape": a.shape, "trees": a.trees, "providers": a.trees * per_tree, "load_seconds": load_s,
                         "floor_p50_ms": floor, "queries": out});
        std::fs::write(p, serde_json::to_string_pretty(&doc)?)?;
    }
    Ok(())
}
