//! Criterion benches of the engine on seeded fleets (10k, 100k, 1M hosts):
//! whole decisions (default and extended filter profiles, all weighers),
//! the placement-candidate kernel, top-k selection and claims.
//!
//! `cargo bench -p quiver-benches --bench engine` (set QUIVER_BENCH_SIZES=10000
//! for a quick run).

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use quiver_benches::measure;
use quiver_datasets::generator::{FleetSpec, generate};
use quiver_engine::select::{Scored, TopK, weight_then_index};
use quiver_engine::{Groups, Mask};

fn sizes() -> Vec<usize> {
    std::env::var("QUIVER_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000, 1_000_000])
}

fn decisions(c: &mut Criterion) {
    let mut g = c.benchmark_group("decision");
    g.sample_size(20);
    let req = measure::plain_request();
    for n in sizes() {
        let mut fleet = generate(&FleetSpec { hosts: n, seed: 1, with_instances: false }, |_| {}).expect("fleet");
        for profile in ["default", "extended"] {
            let mut sched = measure::scheduler(profile);
            let q = sched.placement_query(&fleet, &req).expect("query").prepare(&fleet);
            g.bench_with_input(BenchmarkId::new(profile, n), &n, |b, _| {
                let mut groups = Groups::default();
                b.iter(|| {
                    let d = sched.schedule(&mut fleet, &mut groups, &req, 0);
                    if let Some(h) = d.chosen.first().and_then(|h| fleet.index_of(h)) {
                        fleet.release(h, q.resources());
                    }
                });
            });
        }
        g.bench_with_input(BenchmarkId::new("candidates", n), &n, |b, _| {
            let sched = measure::scheduler("default");
            let q = sched.placement_query(&fleet, &req).expect("query").prepare(&fleet);
            b.iter(|| {
                let mut total = 0;
                for batch in &fleet.batches {
                    let mut m = Mask::zeros(batch.len());
                    q.candidates(&fleet, batch, m.words_mut());
                    total += m.count();
                }
                total
            });
        });
        g.bench_with_input(BenchmarkId::new("claim_release", n), &n, |b, _| {
            let res = [(0usize, 1i32), (1, 512), (2, 1)];
            let mut h = 0usize;
            b.iter(|| {
                h = (h + 7919) % n;
                if fleet.claim(h, &res) {
                    fleet.release(h, &res);
                }
            });
        });
    }
    g.finish();
}

fn select(c: &mut Criterion) {
    let mut g = c.benchmark_group("select");
    for n in [10_000usize, 1_000_000] {
        let mut x: u64 = 42;
        let scored: Vec<Scored> = (0..n as u32)
            .map(|h| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                Scored { weight: (x % 100_000) as f64 / 1000.0, host: h }
            })
            .collect();
        g.bench_with_input(BenchmarkId::new("top16", n), &n, |b, _| {
            b.iter(|| {
                let mut t = TopK::new(16);
                for s in &scored {
                    t.push(*s, &weight_then_index);
                }
                t.into_vec()
            });
        });
        g.bench_with_input(BenchmarkId::new("full_sort_baseline", n), &n, |b, _| {
            b.iter(|| {
                let mut v = scored.clone();
                v.sort_by(|a, b| b.weight.total_cmp(&a.weight));
                v.truncate(16);
                v
            });
        });
    }
    g.finish();
}

criterion_group!(benches, decisions, select);
criterion_main!(benches);
