//! Policy sweeps: one workload replayed under every point of a grid of
//! Nova option values (`filter_scheduler.ram_weight_multiplier=-2:2:0.5`
//! and more axes), the points in parallel, and the best point per metric:
//! fewest rejections, fewest hosts in use at the peak, least fragmentation.

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{EngineError, Result};
use crate::fleet::Fleet;
use crate::sim::policy::Policy;
use crate::sim::workload::Workload;
use crate::sim::{SimOptions, run_policy};

/// Most points one sweep may have (each is a whole replay).
pub const MAX_POINTS: usize = 10_000;

/// One axis: a Nova option and the values it takes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SweepAxis {
    /// `group.option`.
    pub option: String,
    /// Values, in order.
    pub values: Vec<f64>,
}

impl SweepAxis {
    /// `group.option=START:STOP:STEP` (STOP included when the steps reach it).
    ///
    /// # Errors
    /// A malformed spec, a step that is not positive, or too many values.
    pub fn parse(spec: &str) -> Result<Self> {
        let bad = |why: &str| EngineError::invalid(format!("--sweep {spec}: {why}"));
        let (option, range) = spec.split_once('=').ok_or_else(|| bad("expected GROUP.OPTION=START:STOP:STEP"))?;
        let nums: Vec<f64> = range
            .split(':')
            .map(|p| p.trim().parse::<f64>().ok().filter(|x| x.is_finite()))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("START, STOP and STEP must be numbers"))?;
        let [start, stop, step] = nums[..] else { return Err(bad("expected START:STOP:STEP")) };
        if step <= 0.0 || stop < start {
            return Err(bad("STEP must be > 0 and STOP >= START"));
        }
        let n = ((stop - start) / step + 1e-9).floor() as usize + 1;
        if n > MAX_POINTS {
            return Err(bad(&format!("{n} values; at most {MAX_POINTS}")));
        }
        // Multiples of the step from the start, rounded to the step's
        // decimals so that 0.1 steps print as 0.3, not 0.30000000000000004.
        let decimals = 10f64.powi(12);
        let values = (0..n).map(|i| ((start + i as f64 * step) * decimals).round() / decimals).collect();
        Ok(Self { option: option.trim().to_owned(), values })
    }
}

/// One grid point's outcome.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SweepPoint {
    /// The value of each axis, in axis order.
    pub values: Vec<f64>,
    /// The point as a policy name (`option=value,...`).
    pub policy: String,
    /// Requests that found no host.
    pub rejected: u64,
    /// Most hosts with an instance at once.
    pub peak_hosts_in_use: u64,
    /// Mean fragmentation over the timeline (share of the pooled free
    /// capacity the most common request shape cannot use).
    pub fragmentation_mean: f64,
    /// Events replayed per second of wall time.
    pub events_per_second: f64,
}

/// A sweep's points and the best per metric.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Sweep {
    /// The axes, in order.
    pub axes: Vec<SweepAxis>,
    /// Every point, in grid order (the last axis varies fastest).
    pub points: Vec<SweepPoint>,
    /// Per metric (`rejected`, `peak_hosts_in_use`, `fragmentation_mean`),
    /// the index of the best point: the least of that metric, ties to the
    /// fewest rejections, then the fewest peak hosts, then grid order.
    pub best: BTreeMap<String, usize>,
    /// Wall time of the whole sweep.
    pub seconds: f64,
}

/// The metrics a sweep ranks points by.
pub const METRICS: [&str; 3] = ["rejected", "peak_hosts_in_use", "fragmentation_mean"];

impl SweepPoint {
    /// The value of metric `m` (one of [`METRICS`]).
    pub fn metric(&self, m: &str) -> f64 {
        match m {
            "rejected" => self.rejected as f64,
            "peak_hosts_in_use" => self.peak_hosts_in_use as f64,
            _ => self.fragmentation_mean,
        }
    }
}

/// Every point of the grid as a policy: `base` with each axis's option set.
///
/// # Errors
/// An option the scheduler does not know, or a value it refuses (named).
pub fn grid(base: &Policy, axes: &[SweepAxis]) -> Result<Vec<(Vec<f64>, Policy)>> {
    let total: usize = axes.iter().map(|a| a.values.len()).product();
    if total > MAX_POINTS {
        return Err(EngineError::invalid(format!("the sweep has {total} points; at most {MAX_POINTS}")));
    }
    let mut out = Vec::with_capacity(total);
    for i in 0..total {
        let mut rest = i;
        let mut values = vec![0.0; axes.len()];
        for (k, a) in axes.iter().enumerate().rev() {
            values[k] = a.values[rest % a.values.len()];
            rest /= a.values.len();
        }
        let mut p = base.clone();
        for (a, &v) in axes.iter().zip(&values) {
            p.conf.set(&a.option, &Value::from(v))?;
        }
        p.name =
            axes.iter().zip(&values).map(|(a, v)| format!("{}={v}", short(&a.option))).collect::<Vec<_>>().join(",");
        // Options the scheduler checks only when it is built.
        crate::scheduler::Scheduler::new(p.conf.clone(), 0)?;
        out.push((values, p));
    }
    Ok(out)
}

/// The option's name without its group.
pub fn short(option: &str) -> &str {
    option.rsplit('.').next().unwrap_or(option)
}

/// Replays `workload` on `fleet` under every point of the grid of `axes`
/// over `base`, in parallel; `done` is called after each point.
///
/// # Errors
/// A bad axis (see [`grid`]) or a replay error.
pub fn sweep(
    fleet: &Fleet,
    workload: &Workload,
    base: &Policy,
    axes: &[SweepAxis],
    opts: &SimOptions,
    done: &(dyn Fn(&SweepPoint) + Sync),
) -> Result<Sweep> {
    let t0 = std::time::Instant::now();
    let points = grid(base, axes)?;
    let opts = SimOptions { compaction: false, ..opts.clone() };
    let points: Vec<SweepPoint> = points
        .into_par_iter()
        .map(|(values, policy)| {
            let run = run_policy(fleet, workload, &policy, &opts, &mut |_| {})?;
            let n = run.timeline.len().max(1) as f64;
            let p = SweepPoint {
                values,
                policy: policy.name.clone(),
                rejected: run.counts.rejected,
                peak_hosts_in_use: run.counts.peak_hosts_in_use,
                fragmentation_mean: run.timeline.iter().map(|s| s.fragmentation).sum::<f64>() / n,
                events_per_second: run.events_per_second(),
            };
            done(&p);
            Ok(p)
        })
        .collect::<Result<_>>()?;
    let best = METRICS
        .iter()
        .filter_map(|&m| {
            let key = |p: &SweepPoint| (p.metric(m), p.rejected, p.peak_hosts_in_use);
            let i = (0..points.len()).min_by(|&a, &b| {
                let (x, y) = (key(&points[a]), key(&points[b]));
                x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)).then(a.cmp(&b))
            })?;
            Some((m.to_owned(), i))
        })
        .collect();
    Ok(Sweep { axes: axes.to_vec(), points, best, seconds: t0.elapsed().as_secs_f64() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{HostRecord, Inventory};
    use crate::request::{BootRequest, Flavor};
    use crate::sim::workload::{SimRequest, WorkloadBuilder};

    #[test]
    fn axes_parse_and_refuse_what_they_cannot_sweep() {
        let a = SweepAxis::parse("filter_scheduler.ram_weight_multiplier=-2:2:0.5").unwrap();
        assert_eq!(a.option, "filter_scheduler.ram_weight_multiplier");
        assert_eq!(a.values, [-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0]);
        assert_eq!(SweepAxis::parse("x.y=0:0.3:0.1").unwrap().values, [0.0, 0.1, 0.2, 0.3]);
        for bad in ["x.y", "x.y=1:0:1", "x.y=0:1:0", "x.y=a:1:1", "x.y=0:1"] {
            assert!(SweepAxis::parse(bad).is_err(), "{bad}");
        }
        let unknown = SweepAxis::parse("filter_scheduler.no_such_option=0:1:1").unwrap();
        let e = grid(&Policy::default_named("p"), &[unknown]).unwrap_err();
        assert!(e.to_string().contains("no_such_option"), "{e}");
    }

    /// Two empty hosts of 8 VCPU, servers of 2 VCPU that never leave:
    /// spreading (RAM multiplier > 0, Nova's default) puts the first two on
    /// two hosts; stacking (< 0) keeps the first four on one.
    #[test]
    fn the_grid_replays_every_point_and_names_the_best_per_metric() {
        let mut b = crate::FleetBuilder::new();
        for name in ["h1", "h2"] {
            b.push(HostRecord {
                name: name.into(),
                inventories: vec![Inventory::simple("VCPU", 8, 1.0), Inventory::simple("MEMORY_MB", 8192, 1.0)],
                free_ram_mb: 8192,
                traits: vec!["OWNER_NOVA".into()],
                hypervisor_type: "QEMU".into(),
                cpu_info: "{}".into(),
                ..Default::default()
            })
            .unwrap();
        }
        let fleet = b.finish().unwrap();
        let mut wb = WorkloadBuilder::new();
        let flavor = Flavor { name: "f".into(), vcpus: 2, memory_mb: 1024, ..Default::default() };
        let class = wb.class(BootRequest { flavor, ..Default::default() }).unwrap();
        let mut w = wb.finish();
        w.requests = (0..3).map(|i| SimRequest { arrival: i as f64, departure: None, class, group: None }).collect();
        let axes = [
            SweepAxis::parse("filter_scheduler.ram_weight_multiplier=-1:1:1").unwrap(),
            SweepAxis::parse("filter_scheduler.cpu_weight_multiplier=0:0:1").unwrap(),
        ];
        let mut base = Policy::default_named("base");
        base.conf.cpu_weight_multiplier = 0.0;
        base.conf.disk_weight_multiplier = 0.0;
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let s = sweep(&fleet, &w, &base, &axes, &SimOptions::default(), &|_| {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        })
        .unwrap();
        assert_eq!(calls.into_inner(), 3);
        let got: Vec<(&str, u64, u64)> =
            s.points.iter().map(|p| (p.policy.as_str(), p.rejected, p.peak_hosts_in_use)).collect();
        assert_eq!(
            got,
            [
                ("ram_weight_multiplier=-1,cpu_weight_multiplier=0", 0, 1),
                ("ram_weight_multiplier=0,cpu_weight_multiplier=0", 0, 1),
                ("ram_weight_multiplier=1,cpu_weight_multiplier=0", 0, 2),
            ]
        );
        // Stacking wins on peak hosts (the first such point); none rejects.
        assert_eq!(s.best["peak_hosts_in_use"], 0);
        assert_eq!(s.best["rejected"], 0);
    }
}
