//! What-if simulation: replay a workload of arrivals and departures against
//! a fleet under a scheduler policy, through the engine's own pipeline, and
//! measure acceptance, utilization, hosts in use, stranded capacity,
//! fragmentation and the compaction figure.

pub mod compaction;
pub mod fast;
pub mod metrics;
pub mod policy;
pub mod replay;
pub mod sweep;
pub mod timeline;
pub mod workload;

use std::time::Instant;

use serde_json::{Value, json};

pub use metrics::Sample;
pub use policy::Policy;
pub use replay::Counts;
pub use workload::{SimRequest, Workload, WorkloadBuilder};

use crate::error::Result;
use crate::fleet::Fleet;
use crate::scheduler::Scheduler;

/// Options of a simulation run.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Seed of the scheduler's random choices (`host_subset_size`).
    pub seed: u64,
    /// Seconds between timeline samples (default: 1/200 of the span).
    pub sample_interval: Option<f64>,
    /// Compute the compaction figure (one replay per probe).
    pub compaction: bool,
    /// Use the exact incremental fast path where a request allows it.
    pub fast: bool,
    /// Stop after the events at this time (default: replay everything).
    pub until: Option<f64>,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self { seed: 0, sample_interval: None, compaction: true, fast: true, until: None }
    }
}

/// The result of one policy.
#[derive(Clone, Debug)]
pub struct PolicyRun {
    /// Policy name.
    pub policy: String,
    /// Counters.
    pub counts: Counts,
    /// Timeline.
    pub timeline: Vec<Sample>,
    /// Resource class names, in the timeline's order.
    pub resource_classes: Vec<String>,
    /// Hosts in the fleet.
    pub fleet_hosts: usize,
    /// Smallest part of the fleet that held the workload.
    pub compaction_hosts: Option<usize>,
    /// Wall time of the replay.
    pub wall_seconds: f64,
    /// Wall time of the compaction search.
    pub compaction_seconds: f64,
}

impl PolicyRun {
    /// Events per second of wall time in the replay.
    pub fn events_per_second(&self) -> f64 {
        if self.wall_seconds > 0.0 { self.counts.events() as f64 / self.wall_seconds } else { 0.0 }
    }

    /// The `summary.json` entry.
    pub fn summary(&self) -> Value {
        let c = &self.counts;
        let n = self.timeline.len().max(1) as f64;
        let per_rc = |f: &dyn Fn(&Sample, usize) -> f64, agg: &dyn Fn(&mut dyn Iterator<Item = f64>) -> f64| {
            self.resource_classes
                .iter()
                .enumerate()
                .map(|(rc, name)| (name.clone(), json!(agg(&mut self.timeline.iter().map(|s| f(s, rc))))))
                .collect::<serde_json::Map<String, Value>>()
        };
        let mean = |it: &mut dyn Iterator<Item = f64>| it.sum::<f64>() / n;
        let max = |it: &mut dyn Iterator<Item = f64>| it.fold(0.0, f64::max);
        json!({
            "events": c.events(),
            "arrivals": c.arrivals,
            "departures": c.departures,
            "accepted": c.accepted,
            "rejected": c.rejected,
            "rejected_by_stage": c.rejected_by_stage,
            "rejected_by_filter": c.rejected_by_filter,
            "peak_hosts_in_use": c.peak_hosts_in_use,
            "fleet_hosts": self.fleet_hosts,
            "compaction_hosts": self.compaction_hosts,
            "utilization_mean": per_rc(&|s, rc| s.utilization[rc], &mean),
            "utilization_peak": per_rc(&|s, rc| s.utilization[rc], &max),
            "stranded_mean": per_rc(&|s, rc| s.stranded[rc], &mean),
            "fragmentation_mean": self.timeline.iter().map(|s| s.fragmentation).sum::<f64>() / n,
            "fast_decisions": c.fast_decisions,
            "decisions_digest": format!("{:016x}", c.decisions_digest),
            "wall_seconds": self.wall_seconds,
            "events_per_second": self.events_per_second(),
            "compaction_seconds": self.compaction_seconds,
        })
    }
}

/// Resource classes (timeline column order) that any run used at any sample:
/// what tables and plots show.
pub fn classes_in_use(runs: &[PolicyRun]) -> Vec<usize> {
    let n = runs.first().map_or(0, |r| r.resource_classes.len());
    (0..n).filter(|&rc| runs.iter().any(|r| r.timeline.iter().any(|s| s.used[rc] != 0))).collect()
}

/// Replays `workload` on `fleet` under `policy`. `progress` gets the events
/// replayed so far.
///
/// # Errors
/// A policy the engine rejects, a bad server group, a fleet that cannot be
/// rebuilt with the policy's allocation ratios.
pub fn run_policy(
    fleet: &Fleet,
    workload: &Workload,
    policy: &Policy,
    opts: &SimOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<PolicyRun> {
    let base = policy.apply(fleet)?;
    let mut live = base.clone();
    let sched = Scheduler::new(policy.conf.clone(), opts.seed)?;
    let start = workload.requests.first().map_or(0.0, |r| r.arrival);
    let end = opts.until.map_or(workload.end_time(), |u| u.min(workload.end_time()));
    let span = (end - start).max(0.0);
    let interval = opts.sample_interval.unwrap_or(if span > 0.0 { span / 200.0 } else { 1.0 });
    let demands = fast::class_demands(&sched, &live, workload);
    let mut sampler = replay::Sampler::new(&live, workload, &demands, start, interval);
    let t0 = Instant::now();
    let counts = replay::replay(&mut live, workload, sched, opts.fast, opts.until, Some(&mut sampler), progress)?;
    let wall_seconds = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let compaction_hosts = if opts.compaction {
        Some(compaction::compaction_hosts(
            &base,
            workload,
            policy,
            opts.seed,
            opts.fast,
            opts.until,
            counts.accepted,
            &counts.peak_used,
        )?)
    } else {
        None
    };
    Ok(PolicyRun {
        policy: policy.name.clone(),
        counts,
        timeline: sampler.samples,
        resource_classes: sampler.capacity.classes,
        fleet_hosts: base.len(),
        compaction_hosts,
        wall_seconds,
        compaction_seconds: t1.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests;
