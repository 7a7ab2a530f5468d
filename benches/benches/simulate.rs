//! Criterion benches of `quiver simulate` and `quiver query`:
//!
//! - `simulate/*`: events (arrivals + departures) per second of wall time
//!   replaying a seeded synthetic workload on an empty 10,000-host
//!   generated fleet with Nova's default filters and every weigher (spread
//!   and pack), with the fast path and, as the baseline in the same run,
//!   with every request through the full pipeline; and the Alibaba GPU
//!   trace on its 1,523 nodes.
//! - `simulate/100k-hosts/*`: the same on 100,000 hosts; the full
//!   pipeline's baseline replays 1,000 requests (it is O(hosts) a request).
//! - `simulate/10k-hosts-groups/*`: a third of the requests in
//!   anti-affinity groups of five, fast path against full pipeline.
//! - `plan/headroom/100k-hosts`: `quiver plan headroom --flavor m1.large` on
//!   100,000 hosts (every server placed, fast path), and the full pipeline
//!   placing the first 2,000 as the baseline (placements per second).
//! - `query/free_vcpus_per_az`: "free vCPUs per availability zone" in SQL
//!   on a 1,000,000-host fleet, beside a hand-written scan of the same
//!   columns (the floor).
//!
//! `cargo bench -p quiver-benches --bench simulate`

use std::path::Path;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use quiver_datasets::generator::{FleetSpec, generate};
use quiver_datasets::workload_gen::{WorkloadSpec, generate_workload};
use quiver_engine::sim::{Policy, SimOptions, run_policy};

const SPREAD: &str = "[filter_scheduler]\nram_weight_multiplier = 1.0\n";
const PACK: &str = "[filter_scheduler]\nram_weight_multiplier = -1.0\ncpu_weight_multiplier = -1.0\n";

fn simulate(c: &mut Criterion) {
    let mut g = c.benchmark_group("simulate");
    g.sample_size(10);
    let fleet = generate(&FleetSpec { hosts: 10_000, seed: 1, with_instances: false }, |_| {}).expect("fleet");
    let fleet = quiver_engine::sim::policy::emptied(&fleet).expect("empty fleet");
    for (requests, modes) in [(100_000, &[true][..]), (10_000, &[true, false][..])] {
        let spec = WorkloadSpec { requests, rate: 20.0, mean_lifetime: 3600.0, ..Default::default() };
        let w = generate_workload(&spec).expect("workload");
        for (name, text) in [("spread", SPREAD), ("pack", PACK)] {
            let p = Policy::parse(name, text).expect("policy");
            for &fast in modes {
                let opts = SimOptions { seed: 1, sample_interval: None, compaction: false, fast, until: None };
                let events = run_policy(&fleet, &w, &p, &opts, &mut |_| {}).expect("run").counts.events();
                g.throughput(Throughput::Elements(events));
                let id = format!("10k-hosts/{name}/{}", if fast { "fast" } else { "full-pipeline" });
                g.bench_function(BenchmarkId::new(id, requests), |b| {
                    b.iter(|| run_policy(&fleet, &w, &p, &opts, &mut |_| {}).expect("run"))
                });
            }
        }
    }
    // Server groups: every third request joins one of many anti-affinity
    // groups of five.
    let spec = WorkloadSpec { requests: 10_000, rate: 20.0, mean_lifetime: 3600.0, ..Default::default() };
    let mut w = generate_workload(&spec).expect("workload");
    quiver_benches::simulation::with_anti_affinity_groups(&mut w, 3, 5);
    for fast in [true, false] {
        let p = Policy::parse("spread", SPREAD).expect("policy");
        let opts = SimOptions { seed: 1, sample_interval: None, compaction: false, fast, until: None };
        let events = run_policy(&fleet, &w, &p, &opts, &mut |_| {}).expect("run").counts.events();
        g.throughput(Throughput::Elements(events));
        let id = format!("10k-hosts-groups/spread/{}", if fast { "fast" } else { "full-pipeline" });
        g.bench_function(BenchmarkId::new(id, 10_000), |b| {
            b.iter(|| run_policy(&fleet, &w, &p, &opts, &mut |_| {}).expect("run"))
        });
    }
    // 100,000 hosts.
    let big = generate(&FleetSpec { hosts: 100_000, seed: 1, with_instances: false }, |_| {}).expect("fleet");
    let big = quiver_engine::sim::policy::emptied(&big).expect("empty fleet");
    for (requests, fast) in [(100_000, true), (1_000, false)] {
        let spec = WorkloadSpec { requests, rate: 200.0, mean_lifetime: 3600.0, ..Default::default() };
        let w = generate_workload(&spec).expect("workload");
        for (name, text) in [("spread", SPREAD), ("pack", PACK)] {
            let p = Policy::parse(name, text).expect("policy");
            let opts = SimOptions { seed: 1, sample_interval: None, compaction: false, fast, until: None };
            let events = run_policy(&big, &w, &p, &opts, &mut |_| {}).expect("run").counts.events();
            g.throughput(Throughput::Elements(events));
            let id = format!("100k-hosts/{name}/{}", if fast { "fast" } else { "full-pipeline" });
            g.bench_function(BenchmarkId::new(id, requests), |b| {
                b.iter(|| run_policy(&big, &w, &p, &opts, &mut |_| {}).expect("run"))
            });
        }
    }
    g.finish();
    let mut g = c.benchmark_group("plan");
    g.sample_size(10);
    let conf = quiver_engine::SchedulerConfig::default();
    let req = quiver_engine::BootRequest {
        flavor: quiver_datasets::trace::classic_flavor("m1.large").expect("m1.large"),
        ..Default::default()
    };
    for (fast, limit) in [(true, None), (false, Some(2_000))] {
        let h = quiver_engine::plan::headroom(&big, &conf, &req, 0, limit, fast).expect("headroom");
        g.throughput(Throughput::Elements(h.exact));
        let id = format!("headroom/100k-hosts/{}", if fast { "fast" } else { "full-pipeline" });
        g.bench_function(BenchmarkId::new(id, h.exact), |b| {
            b.iter(|| quiver_engine::plan::headroom(&big, &conf, &req, 0, limit, fast).expect("headroom"))
        });
    }
    g.finish();
    let mut g = c.benchmark_group("simulate");
    g.sample_size(10);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/alibaba-gpu-v2023");
    if let Ok((nodes, tasks)) = quiver_datasets::alibaba::read(&dir) {
        for (name, text) in [("spread", SPREAD), ("pack", PACK)] {
            let p = Policy::parse(name, text).expect("policy");
            let opts = SimOptions { seed: 1, sample_interval: None, compaction: false, fast: true, until: None };
            let events = run_policy(&nodes, &tasks, &p, &opts, &mut |_| {}).expect("run").counts.events();
            g.throughput(Throughput::Elements(events));
            g.bench_function(BenchmarkId::new("alibaba", name), |b| {
                b.iter(|| run_policy(&nodes, &tasks, &p, &opts, &mut |_| {}).expect("run"))
            });
        }
    }
    g.finish();
}

fn query(c: &mut Criterion) {
    let mut g = c.benchmark_group("query");
    g.sample_size(20);
    let n = std::env::var("QUIVER_QUERY_HOSTS").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let fleet = Arc::new(generate(&FleetSpec { hosts: n, seed: 1, with_instances: false }, |_| {}).expect("fleet"));
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let sql = "SELECT availability_zone, SUM(vcpu_free) AS free_vcpus FROM hosts GROUP BY availability_zone";
    g.bench_function(BenchmarkId::new("free_vcpus_per_az/sql", n), |b| {
        b.iter(|| {
            let s = quiver_engine::sql::FleetSql::new(fleet.clone()).expect("session");
            rt.block_on(s.query(sql)).expect("query")
        })
    });
    // the floor: one pass over the same columns, no SQL
    let vcpu = fleet.rc_index("VCPU").expect("VCPU");
    g.bench_function(BenchmarkId::new("free_vcpus_per_az/hand-written-scan", n), |b| {
        b.iter(|| {
            let mut per_az: std::collections::BTreeMap<String, i64> = Default::default();
            let used = &fleet.usage().used[vcpu];
            for batch in &fleet.batches {
                let mut sums = vec![0i64; fleet.azs.len() + 1];
                for h in batch.range() {
                    let Some(p) = fleet.inventory(vcpu, h) else { continue };
                    let cap = p.capacity();
                    let code = batch.az[h - batch.start];
                    let k = if code == quiver_engine::fleet::NO_AZ { 0 } else { code as usize + 1 };
                    sums[k] += cap - used[h];
                }
                for (k, s) in sums.into_iter().enumerate() {
                    let name = if k == 0 { String::new() } else { fleet.azs.name(k as u32 - 1).to_owned() };
                    *per_az.entry(name).or_default() += s;
                }
            }
            per_az
        })
    });
    g.finish();
}

criterion_group!(benches, simulate, query);
criterion_main!(benches);
