//! The `decision` workload: one scheduling decision (filters, weighers,
//! select, claim) on a generated fleet, interleaved in the same run with
//! its baselines so background load hits every side alike: the row-by-row
//! scheduler, and the memory-bandwidth floor on the decision's own warm
//! pool and on one thread.

use std::collections::BTreeMap;
use std::time::Instant;

use quiver_engine::request::BootRequest;
use quiver_engine::{Fleet, Groups};

use crate::measure::{self, floor_pass};
use crate::rowwise::{Req, RowScheduler};
use crate::stats::{Better, Figure, Role};

/// What a decision run measures.
#[derive(Debug, Clone)]
pub struct DecisionSpec {
    /// Filter profile (`default`, `extended`, `all`).
    pub profile: String,
    /// Flavor `(vcpus, memory_mb, root_gb)`.
    pub flavor: (u32, u32, u32),
    /// Timed decisions (each paired with a floor pass on the pool and one
    /// on a single thread).
    pub reps: usize,
    /// Row-by-row decisions, spread evenly among the reps (0: none).
    pub baseline_reps: usize,
}

/// The request a decision bench times: the flavor alone, no constraints,
/// so every filter and weigher sees nearly every host.
pub fn request(flavor: (u32, u32, u32)) -> BootRequest {
    let mut r = measure::plain_request();
    (r.flavor.vcpus, r.flavor.memory_mb, r.flavor.root_gb) = flavor;
    r.flavor.name = format!("bench.{}c{}m{}g", flavor.0, flavor.1, flavor.2);
    r
}

/// Extra rounds of floor passes (each paired with a decision) are added,
/// `max(5, reps / 2)` at a time and at most this many times, while the
/// floor's median still moves by more than [`FLOOR_STABLE`].
pub const FLOOR_EXTRA_ROUNDS: usize = 3;
/// The floor is stable when one more round moves its median by less than
/// this (relative).
pub const FLOOR_STABLE: f64 = 0.02;

/// Runs the decision bench on `fleet`; `progress(done, total)` after each
/// timed round. Returns the figures by name.
///
/// # Errors
/// An unknown profile, or a row-by-row scheduler that disagrees with the
/// engine on the default profile (the baseline would not be doing the same
/// work).
pub fn run(
    fleet: &mut Fleet,
    spec: &DecisionSpec,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<BTreeMap<String, Figure>, String> {
    if quiver_engine::config::profile_filters(&spec.profile).is_none() {
        return Err(format!("unknown profile {:?}", spec.profile));
    }
    let n = fleet.len();
    let req = request(spec.flavor);
    let mut sched = measure::scheduler(&spec.profile);
    let q = sched.placement_query(fleet, &req).map_err(|e| e.to_string())?.prepare(fleet);
    let row = (spec.baseline_reps > 0).then(|| RowScheduler::from_fleet(fleet));
    let rreq = Req {
        amounts: [req.flavor.vcpus as i64, req.flavor.memory_mb as i64, req.flavor.root_gb as i64],
        required: vec!["OWNER_NOVA".into()],
        forbidden: vec!["COMPUTE_STATUS_DISABLED".into()],
    };
    let mut groups = Groups::default();
    // Warm-up: one of each, and the check that both schedulers agree.
    let d = sched.schedule(fleet, &mut groups, &req, 0);
    let engine_pick = d.chosen.first().and_then(|h| fleet.index_of(h));
    if let Some(h) = engine_pick {
        fleet.release(h, q.resources());
    }
    if let Some(row) = &row
        && spec.profile == "default"
    {
        let base = row.decide(&rreq).map(|p| p.0);
        if base != engine_pick {
            return Err(format!(
                "the row-by-row baseline and the engine disagree at {n} hosts: {:?} vs {:?}",
                base.map(|h| fleet.name(h).to_owned()),
                engine_pick.map(|h| fleet.name(h).to_owned())
            ));
        }
    }
    let _ = floor_pass(fleet, &spec.profile, Some(sched.pool()));
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    let (mut dec, mut floor, mut floor1, mut rows, mut rows_dec) = (vec![], vec![], vec![], vec![], vec![]);
    let mut floor_bytes = 0usize;
    // One round: the row-by-row decision (sometimes) and the one-thread
    // floor first, then the pool's floor and the decision, each right
    // after a broadcast that wakes the pool's threads, so both time their
    // work on warm threads and caches rather than a wake-up.
    let mut round = |i: usize, fleet: &mut Fleet, with_row: bool, dec: &mut Vec<f64>, floor: &mut Vec<f64>| {
        let row_ms = match (&row, with_row) {
            (Some(row), true) => {
                let t = Instant::now();
                std::hint::black_box(row.decide(&rreq));
                Some(ms(t.elapsed()))
            }
            _ => None,
        };
        floor1.push(ms(floor_pass(fleet, &spec.profile, None).0));
        sched.pool().broadcast(|_| ());
        let (f, bytes) = floor_pass(fleet, &spec.profile, Some(sched.pool()));
        floor.push(ms(f));
        floor_bytes = bytes;
        sched.pool().broadcast(|_| ());
        let t = Instant::now();
        let d = sched.schedule(fleet, &mut groups, &req, i + 1);
        let dm = ms(t.elapsed());
        dec.push(dm);
        if let Some(h) = d.chosen.first().and_then(|h| fleet.index_of(h)) {
            fleet.release(h, q.resources());
        }
        if let Some(r) = row_ms {
            rows.push(r);
            rows_dec.push(dm);
        }
    };
    let total = spec.reps;
    let mut next_row = 0usize;
    for i in 0..spec.reps {
        // the baseline's reps spread evenly over the run
        let with_row = spec.baseline_reps > 0 && i * spec.baseline_reps / spec.reps >= next_row;
        if with_row {
            next_row += 1;
        }
        round(i, fleet, with_row, &mut dec, &mut floor);
        progress(i + 1, total);
    }
    // Repeated until the floor's median is stable.
    let mut extra_rounds = 0;
    let chunk = (spec.reps / 2).max(5);
    while extra_rounds < FLOOR_EXTRA_ROUNDS {
        let before = Figure::of(&floor, "ms", Better::Lower).median;
        for k in 0..chunk {
            round(spec.reps + extra_rounds * chunk + k, fleet, false, &mut dec, &mut floor);
        }
        extra_rounds += 1;
        let after = Figure::of(&floor, "ms", Better::Lower).median;
        if ((after - before) / before).abs() < FLOOR_STABLE {
            break;
        }
    }
    let claims: Vec<f64> = (0..5).map(|_| measure::claim_ns(fleet, 200_000)).collect();
    let gbps: Vec<f64> = floor.iter().map(|&f| floor_bytes as f64 / (f / 1e3) / 1e9).collect();
    let mut out = BTreeMap::new();
    out.insert("decision_ms".into(), Figure::of(&dec, "ms", Better::Lower).role(Role::Headline));
    out.insert(
        "hosts_per_s".into(),
        Figure::of(&dec.iter().map(|&d| n as f64 / (d / 1e3)).collect::<Vec<_>>(), "hosts/s", Better::Higher),
    );
    out.insert("floor_ms".into(), Figure::of(&floor, "ms", Better::Lower).role(Role::Baseline));
    out.insert("floor_1thread_ms".into(), Figure::of(&floor1, "ms", Better::Lower).role(Role::Baseline));
    out.insert("decision_over_floor".into(), Figure::ratio_of_pairs(&dec, &floor, Better::Lower).role(Role::Ratio));
    out.insert("floor_gb_per_s".into(), Figure::of(&gbps, "GB/s", Better::Higher));
    out.insert("floor_bytes".into(), Figure::exact(floor_bytes as f64, "B", Better::Lower));
    out.insert(
        "decision_bytes_per_host".into(),
        Figure::exact(floor_bytes as f64 / n.max(1) as f64, "B/host", Better::Lower),
    );
    out.insert("floor_rounds".into(), Figure::exact((floor.len()) as f64, "passes", Better::Higher));
    if !rows.is_empty() {
        out.insert("rowwise_ms".into(), Figure::of(&rows, "ms", Better::Lower).role(Role::Baseline));
        out.insert(
            "speedup_vs_rowwise".into(),
            Figure::ratio_of_pairs(&rows, &rows_dec, Better::Higher).role(Role::Ratio),
        );
    }
    out.insert("claim_ns".into(), Figure::of(&claims, "ns", Better::Lower));
    out.insert(
        "fleet_bytes_per_host".into(),
        Figure::exact(fleet.memory_bytes() as f64 / n.max(1) as f64, "B/host", Better::Lower),
    );
    if let Some(peak) = measure::peak_rss() {
        out.insert("peak_rss_mib".into(), Figure::exact(peak as f64 / (1 << 20) as f64, "MiB", Better::Lower));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quiver_datasets::generator::{FleetSpec, generate};

    fn fleet(hosts: usize) -> Fleet {
        generate(&FleetSpec { hosts, seed: 1, with_instances: false }, |_| {}).expect("fleet")
    }

    #[test]
    fn every_figure_has_its_repetitions_and_the_baselines_are_paired() {
        let mut f = fleet(500);
        let spec = DecisionSpec { profile: "default".into(), flavor: (1, 2048, 20), reps: 7, baseline_reps: 3 };
        let mut calls = 0;
        let figs = run(&mut f, &spec, &mut |_, _| calls += 1).expect("runs");
        assert_eq!(calls, 7);
        let d = &figs["decision_ms"];
        assert_eq!(d.role, Role::Headline);
        assert!(d.n >= 7 && d.min <= d.median && d.median <= d.max, "{d:?}");
        // floor passes pair with decisions one for one, extra rounds included
        assert_eq!(figs["floor_ms"].n, d.n);
        assert_eq!(figs["floor_rounds"].median as usize, d.n);
        assert_eq!(figs["rowwise_ms"].n, 3);
        assert_eq!(figs["speedup_vs_rowwise"].n, 3);
        // the floor reads exactly its columns' bytes: 22 four- or eight-byte
        // columns on the default profile
        let per_host = figs["decision_bytes_per_host"].median;
        assert_eq!(figs["floor_bytes"].median, per_host * 500.0);
        assert_eq!(per_host, (6 * 4 + 5 * 4 + 5 * 4 + 8 + 8) as f64);
    }

    #[test]
    fn the_extended_profile_reads_more_bytes_per_host_and_a_bad_profile_is_refused() {
        let f = fleet(100);
        assert!(measure::floor_bytes_per_host(&f, "extended") > measure::floor_bytes_per_host(&f, "default"));
        let mut f = f;
        let spec = DecisionSpec { profile: "fastest".into(), flavor: (1, 512, 1), reps: 1, baseline_reps: 0 };
        assert!(run(&mut f, &spec, &mut |_, _| {}).unwrap_err().contains("fastest"));
    }

    #[test]
    fn floor_bytes_grow_with_the_fleet() {
        let (small, big) = (fleet(1000), fleet(10_000));
        let (_, a) = floor_pass(&small, "default", None);
        let (_, b) = floor_pass(&big, "default", None);
        assert_eq!(b, 10 * a);
    }
}
