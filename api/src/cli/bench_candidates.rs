//! `quiver bench candidates`: `GET /allocation_candidates` over HTTP on
//! Placement's own nested perf shape (gate/perfload-nested-runner.sh and
//! gate/gabbits/nested-perfload.yaml in the Placement repository: per tree
//! a compute node with DISK_GB and COMPUTE_VOLUME_MULTI_ATTACH, two NUMA
//! nodes with VCPU and MEMORY_MB, FPGA and VGPU grandchildren), timed
//! beside the HTTP floor (`GET /`) in the same run, interleaved.

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
  quiver bench candidates --trees 10000 --repeat 11 --json nested.json")]
pub struct CandidatesBenchArgs {
    /// Provider trees to create (7 providers each).
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

pub fn run(a: CandidatesBenchArgs) -> Result<()> {
    let s = start(&[])?;
    let http = client()?;
    ok(http.put(format!("{}/traits/CUSTOM_FOO", s.placement)).send()?)?;
    let style = ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} {per_sec}").expect("template");
    let bar = ProgressBar::new(a.trees as u64).with_style(style).with_message("trees");
    let next = AtomicUsize::new(0);
    let t0 = Instant::now();
    std::thread::scope(|sc| -> Result<()> {
        let mut workers = Vec::new();
        for _ in 0..a.concurrency.max(1) {
            let http = client()?;
            let (next, bar, base) = (&next, &bar, s.placement.as_str());
            workers.push(sc.spawn(move || -> Result<()> {
                while next.fetch_add(1, Ordering::Relaxed) < a.trees {
                    create_tree(&http, base)?;
                    bar.inc(1);
                }
                Ok(())
            }));
        }
        for w in workers {
            w.join().map_err(|_| anyhow::anyhow!("a loader thread panicked"))??;
        }
        Ok(())
    })?;
    bar.finish();
    let load_s = t0.elapsed().as_secs_f64();
    let queries = [("nested", NESTED_QUERY.to_owned()), ("nested limit=5", format!("{NESTED_QUERY}&limit=5"))];
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
    println!(
        "{} trees ({} providers), created in {:.1} s; {} timed requests per query",
        a.trees,
        a.trees * 7,
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
        let doc = json!({"trees": a.trees, "providers": a.trees * 7, "load_seconds": load_s,
                         "floor_p50_ms": floor, "queries": out});
        std::fs::write(p, serde_json::to_string_pretty(&doc)?)?;
    }
    Ok(())
}
