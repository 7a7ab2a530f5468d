//! Measurements shared by `quiver bench` and the criterion benches.

use std::time::{Duration, Instant};

use quiver_engine::request::{BootRequest, Flavor};
use quiver_engine::{Fleet, Scheduler, SchedulerConfig};
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

/// One column the floor reads.
enum Column<'a> {
    I32(&'a [i32]),
    U32(&'a [u32]),
    I64(&'a [i64]),
    F64(&'a [f64]),
}

impl Column<'_> {
    /// Its size in bytes.
    fn bytes(&self) -> usize {
        match self {
            Column::I32(s) => s.len() * 4,
            Column::U32(s) => s.len() * 4,
            Column::I64(s) => s.len() * 8,
            Column::F64(s) => s.len() * 8,
        }
    }

    /// Folds every value into a checksum (so the read cannot be elided);
    /// returns it and the bytes read.
    fn fold(&self) -> (u64, usize) {
        let sum = match self {
            Column::I32(s) => s.iter().fold(0u64, |a, &x| a.wrapping_add(x as u64)),
            Column::U32(s) => s.iter().fold(0u64, |a, &x| a.wrapping_add(u64::from(x))),
            Column::I64(s) => s.iter().fold(0u64, |a, &x| a.wrapping_add(x as u64)),
            Column::F64(s) => s.iter().fold(0u64, |a, &x| a.wrapping_add(x.to_bits())),
        };
        (sum, self.bytes())
    }
}

/// The columns of batch `b` a decision under `profile` reads once per
/// host: the Placement query's `avail` per requested class and inventory
/// codes, trait and aggregate sets; ComputeFilter's heartbeat age;
/// ComputeCapabilities' and ImageProperties' dictionary codes and
/// hypervisor version; the weighers' free RAM, free disk, vCPUs used, I/O
/// ops and failed builds. `extended` and `all` add the instance count
/// (NumInstancesFilter), the stats code (MetricsFilter) and the AZ.
fn floor_columns<'a>(fleet: &'a Fleet, b: &'a quiver_engine::fleet::HostBatch, profile: &str) -> Vec<Column<'a>> {
    let r = b.range();
    let u = fleet.usage();
    let mut cols: Vec<Column<'a>> = Vec::with_capacity(24);
    for rc in 0..3.min(u.avail.len()) {
        cols.push(Column::I32(&u.avail[rc][r.clone()]));
        cols.push(Column::U32(&b.rc[rc].code));
    }
    for col in [&u.free_ram_mb, &u.free_disk_mb, &u.num_io_ops, &u.vcpus_used] {
        cols.push(Column::I32(&col[r.clone()]));
    }
    cols.push(Column::I32(&b.failed_builds));
    for col in [&b.traitset, &b.aggset, &b.cpu_info, &b.supported, &b.hypervisor_type] {
        cols.push(Column::U32(col));
    }
    cols.push(Column::F64(&b.service_age_s));
    cols.push(Column::I64(&b.hypervisor_version));
    if profile != "default" {
        cols.push(Column::I32(&u.num_instances[r.clone()]));
        cols.push(Column::U32(&b.stats));
        cols.push(Column::U32(&b.az));
    }
    cols
}

/// Bytes a decision under `profile` reads per host at the least (the
/// floor's columns); 0 for an empty fleet.
pub fn floor_bytes_per_host(fleet: &Fleet, profile: &str) -> f64 {
    let bytes: usize = fleet.batches.iter().flat_map(|b| floor_columns(fleet, b, profile)).map(|c| c.bytes()).sum();
    if fleet.is_empty() { 0.0 } else { bytes as f64 / fleet.len() as f64 }
}

/// One pass of the memory-bandwidth floor: every column byte a decision
/// under `profile` reads, read once, batch by batch on `pool` (the
/// decision's own, so its threads are as warm as the decision's), or on
/// the calling thread when `pool` is `None`. Returns the time and the
/// bytes read.
pub fn floor_pass(fleet: &Fleet, profile: &str, pool: Option<&rayon::ThreadPool>) -> (Duration, usize) {
    let scan = |b: &quiver_engine::fleet::HostBatch| -> (u64, usize) {
        floor_columns(fleet, b, profile)
            .iter()
            .map(Column::fold)
            .fold((0u64, 0usize), |(a, n), (x, m)| (a.wrapping_add(x), n + m))
    };
    let t = Instant::now();
    let (acc, bytes) = match pool {
        Some(p) => p.install(|| {
            fleet.batches.par_iter().map(scan).reduce(|| (0, 0), |(a, n), (x, m)| (a.wrapping_add(x), n + m))
        }),
        None => fleet.batches.iter().map(scan).fold((0u64, 0usize), |(a, n), (x, m)| (a.wrapping_add(x), n + m)),
    };
    let d = t.elapsed();
    std::hint::black_box(acc);
    (d, bytes)
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
