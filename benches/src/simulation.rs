//! The `simulate` workload: a request stream replayed in the simulator,
//! the exact fast path interleaved with the full pipeline (Nova's every
//! stage per request) in the same run, and the check that both decide
//! alike.

use std::collections::BTreeMap;
use std::path::Path;

use quiver_datasets::workload_gen::{WorkloadSpec, generate_workload};
use quiver_engine::Fleet;
use quiver_engine::sim::{Policy, SimOptions, Workload, run_policy};

use crate::stats::{Better, Figure, Role};

/// Loads a simulate workload's fleet and request stream: `trace`
/// (`alibaba:DIR`: its nodes are the fleet; else a trace file on a
/// generated fleet), or a seeded Poisson stream of the classic flavors on
/// `hosts` generated hosts; every host starts empty.
///
/// # Errors
/// An unreadable trace, bad stream parameters.
pub fn inputs(
    trace: Option<&str>,
    hosts: usize,
    seed: u64,
    stream: (usize, f64, f64),
    flavors: Option<&str>,
) -> Result<(Fleet, Workload), String> {
    let generated = || {
        quiver_datasets::generator::generate(
            &quiver_datasets::generator::FleetSpec { hosts, seed, with_instances: false },
            |_| {},
        )
        .map_err(|e| e.to_string())
    };
    let (fleet, workload) = match trace {
        Some(t) if t.starts_with("alibaba:") => {
            quiver_datasets::alibaba::read(Path::new(&t["alibaba:".len()..])).map_err(|e| format!("{t}: {e}"))?
        }
        Some(t) => (generated()?, quiver_datasets::trace::read_trace(Path::new(t)).map_err(|e| format!("{t}: {e}"))?),
        None => {
            let (requests, rate, mean_lifetime) = stream;
            let mut spec = WorkloadSpec { requests, rate, mean_lifetime, seed, ..Default::default() };
            if let Some(f) = flavors {
                spec.flavors = parse_flavor_mix(f)?;
            }
            (generated()?, generate_workload(&spec).map_err(|e| e.to_string())?)
        }
    };
    let fleet = quiver_engine::sim::policy::emptied(&fleet).map_err(|e| e.to_string())?;
    Ok((fleet, workload))
}

/// `NAME:WEIGHT,...` (a name alone weighs 1).
///
/// # Errors
/// A weight that is not a positive number.
pub fn parse_flavor_mix(text: &str) -> Result<Vec<(String, f64)>, String> {
    text.split(',')
        .map(|f| {
            let (n, w) = f.split_once(':').unwrap_or((f, "1"));
            match w.trim().parse::<f64>() {
                Ok(x) if x > 0.0 => Ok((n.trim().to_owned(), x)),
                _ => Err(format!("flavors: weight of {n:?} is {w:?}, not a number > 0")),
            }
        })
        .collect()
}

/// Puts every `every`th request of `w` in an anti-affinity server group of
/// `size` members (in arrival order; `requests / (every * size)` groups).
pub fn with_anti_affinity_groups(w: &mut Workload, every: usize, size: usize) {
    let (every, size) = (every.max(1), size.max(1));
    let n = (w.requests.len() / (every * size)).max(1);
    w.groups = (0..n)
        .map(|i| quiver_engine::ServerGroup {
            uuid: format!("00000000-0000-4000-8000-{i:012}"),
            policy: "anti-affinity".into(),
            ..Default::default()
        })
        .collect();
    for (i, r) in w.requests.iter_mut().enumerate().filter(|(i, _)| i % every == 0) {
        r.group = Some(((i / every) / size % n) as u32);
    }
}

/// Replays `workload` `reps` times on the fast path and `baseline_reps`
/// times through the full pipeline, the full replays spread evenly among
/// the fast ones; `progress(done, total)` after each replay.
///
/// # Errors
/// A policy the engine rejects, or a fast replay whose decisions differ
/// from the full pipeline's (the speed-up would not be for the same work).
pub fn run(
    fleet: &Fleet,
    workload: &Workload,
    policy: &Policy,
    reps: usize,
    baseline_reps: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<BTreeMap<String, Figure>, String> {
    let opts = |fast| SimOptions { seed: 0, sample_interval: None, compaction: false, fast, until: None };
    let total = reps + baseline_reps;
    let (mut fast, mut full, mut pairs_fast) = (Vec::new(), Vec::new(), Vec::new());
    let (mut events, mut fast_share) = (0u64, 0.0f64);
    let mut next_full = 0usize;
    let mut done = 0;
    for i in 0..reps.max(1) {
        let r = run_policy(fleet, workload, policy, &opts(true), &mut |_| {}).map_err(|e| e.to_string())?;
        fast.push(r.events_per_second());
        events = r.counts.events();
        fast_share = r.counts.fast_decisions as f64 / r.counts.arrivals.max(1) as f64;
        let digest = r.counts.decisions_digest;
        done += 1;
        progress(done, total);
        if baseline_reps > 0 && i * baseline_reps / reps.max(1) >= next_full {
            next_full += 1;
            let b = run_policy(fleet, workload, policy, &opts(false), &mut |_| {}).map_err(|e| e.to_string())?;
            if b.counts.decisions_digest != digest {
                return Err(format!(
                    "the fast path and the full pipeline decided differently (digests {:016x} and {:016x})",
                    digest, b.counts.decisions_digest
                ));
            }
            full.push(b.events_per_second());
            pairs_fast.push(*fast.last().unwrap_or(&0.0));
            done += 1;
            progress(done, total);
        }
    }
    let mut out = BTreeMap::new();
    out.insert("events_per_s".into(), Figure::of(&fast, "events/s", Better::Higher).role(Role::Headline));
    out.insert("events".into(), Figure::exact(events as f64, "events", Better::Higher));
    out.insert("fast_share".into(), Figure::exact(fast_share, "of arrivals", Better::Higher));
    if !full.is_empty() {
        out.insert("full_events_per_s".into(), Figure::of(&full, "events/s", Better::Higher).role(Role::Baseline));
        out.insert(
            "speedup_vs_full".into(),
            Figure::ratio_of_pairs(&pairs_fast, &full, Better::Higher).role(Role::Ratio),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_stream_replays_fast_and_full_alike() {
        let (fleet, mut workload) =
            inputs(None, 200, 3, (2000, 10.0, 600.0), Some("m1.small:3,m1.large")).expect("inputs");
        with_anti_affinity_groups(&mut workload, 3, 5);
        assert_eq!(workload.groups.len(), 2000 / 15);
        assert!(workload.classes.len() <= 2, "{}", workload.classes.len());
        let mut seen = Vec::new();
        let figs = run(&fleet, &workload, &Policy::default_named("spread"), 3, 1, &mut |d, t| seen.push((d, t)))
            .expect("replays");
        assert_eq!(seen.last(), Some(&(4, 4)));
        assert_eq!(figs["events_per_s"].n, 3);
        assert_eq!(figs["full_events_per_s"].n, 1);
        assert!(figs["events"].median >= 2000.0);
        assert!(figs["fast_share"].median > 0.5, "{:?}", figs["fast_share"]);
    }
}
