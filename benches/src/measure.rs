//! Measurements shared by `quiver bench` and the criterion benches.

use std::time::{Duration, Instant};

use quiver_engine::request::{BootRequest, Flavor};
use quiver_engine::{Fleet, Groups, Scheduler, SchedulerConfig};
use rayon::prelude::*;

/// The plain request the headline figures use: an m1.small with no
/// constraints, so every filter and weigher sees nearly every host.
pub fn plain_request() -> BootRequest {
    BootRequest {
        id: Some("bench".into()),
        flavor: Flavor { name: "m1.small".into(), vcpus: 1, memory_mb: 2048, root_gb: 20, ..Default::default() },
        num_instances: 1,
        ..Default::default()
    }
}

/// Median of durations.
pub fn median(mut d: Vec<Duration>) -> Duration {
    d.sort();
    d.get(d.len() / 2).copied().unwrap_or_default()
}

/// Times `reps` decisions of `req`, returning per-decision durations. Each
/// decision claims and consumes its host as Nova does; the Placement claim
/// is released again so capacity does not run out over many repetitions.
pub fn time_decisions(fleet: &mut Fleet, sched: &mut Scheduler, req: &BootRequest, reps: usize) -> Vec<Duration> {
    let mut groups = Groups::default();
    let q = sched.placement_query(fleet, req).ok().map(|q| q.prepare(fleet));
    let mut out = Vec::with_capacity(reps);
    for i in 0..reps {
        let t = Instant::now();
        let d = sched.schedule(fleet, &mut groups, req, i);
        out.push(t.elapsed());
        if let (Some(q), Some(h)) = (&q, d.chosen.first().and_then(|h| fleet.index_of(h))) {
            fleet.release(h, q.resources());
        }
    }
    out
}

/// The memory-bandwidth floor of a default-profile decision: the time to
/// read once, on the same thread pool, every column byte the decision
/// touches (capacity `avail` per requested class, trait and aggregate set
/// codes, service flags and heartbeat age, and the weighers' columns).
/// Returns `(duration, bytes read)`.
pub fn bandwidth_floor(fleet: &Fleet, reps: usize) -> (Duration, usize) {
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..reps {
        let t = Instant::now();
        let sums: Vec<(u64, usize)> = fleet
            .batches
            .par_iter()
            .map(|b| {
                let r = b.range();
                let u = fleet.usage();
                let mut acc = 0u64;
                let mut n = 0usize;
                let mut add32 = |s: &[i32]| {
                    acc = acc.wrapping_add(s.iter().fold(0u64, |a, &x| a.wrapping_add(x as u64)));
                    n += s.len() * 4;
                };
                for rc in 0..3 {
                    add32(&u.avail[rc][r.clone()]);
                }
                for col in [&u.free_ram_mb, &u.free_disk_mb, &u.num_io_ops, &u.vcpus_used] {
                    add32(&col[r.clone()]);
                }
                add32(&b.failed_builds);
                let mut add_u32 = |s: &[u32]| {
                    acc = acc.wrapping_add(s.iter().fold(0u64, |a, &x| a.wrapping_add(x as u64)));
                    n += s.len() * 4;
                };
                add_u32(&b.traitset);
                add_u32(&b.aggset);
                add_u32(&b.rc[0].code);
                let mut add64 = |s: &[f64]| {
                    acc = acc.wrapping_add(s.iter().fold(0u64, |a, &x| a.wrapping_add(x.to_bits())));
                    n += s.len() * 8;
                };
                add64(&b.service_age_s);
                acc = acc.wrapping_add(b.hypervisor_version.iter().fold(0u64, |a, &x| a.wrapping_add(x as u64)));
                n += b.len() * 8;
                (acc, n)
            })
            .collect();
        times.push(t.elapsed());
        bytes = sums.iter().map(|s| s.1).sum();
        std::hint::black_box(sums);
    }
    (median(times), bytes)
}

/// Nanoseconds per claim (a claim plus its release, halved), over `n`
/// pseudo-random hosts.
pub fn claim_ns(fleet: &mut Fleet, n: usize) -> f64 {
    let res = [(0usize, 1i32), (1, 512), (2, 1)];
    let len = fleet.len();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let hosts: Vec<usize> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % len as u64) as usize
        })
        .collect();
    let t = Instant::now();
    let mut ok = 0;
    for &h in &hosts {
        if fleet.claim(h, &res) {
            fleet.release(h, &res);
            ok += 1;
        }
    }
    std::hint::black_box(ok);
    t.elapsed().as_nanos() as f64 / (2 * n) as f64
}

/// Peak resident memory of this process so far, bytes (Linux `VmHWM`).
pub fn peak_rss() -> Option<u64> {
    rss_field("VmHWM:")
}

/// Current resident memory, bytes (Linux `VmRSS`).
pub fn current_rss() -> Option<u64> {
    rss_field("VmRSS:")
}

fn rss_field(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A scheduler with the given filter profile and all weighers.
pub fn scheduler(profile: &str) -> Scheduler {
    let conf = SchedulerConfig {
        enabled_filters: quiver_engine::config::profile_filters(profile).expect("known profile"),
        ..Default::default()
    };
    Scheduler::new(conf, 0).expect("valid profile")
}
