//! The compaction figure: the smallest part of the fleet that would still
//! have held the workload under the same policy.
//!
//! Hosts are ranked largest first (capacity summed over resource classes,
//! each as a share of the fleet's total of that class; ties by fleet
//! order), and the workload is replayed on the first `k` of them (kept in
//! fleet order) for a binary search on `k`: the answer is the smallest `k`
//! whose replay accepts at least as many requests as the whole fleet did.
//! The search assumes more hosts never accept fewer requests, which holds
//! for the capacity-bound workloads it is meant for; it starts from the
//! lower bound the peak demand gives.

use crate::error::Result;
use crate::fleet::Fleet;
use crate::scheduler::Scheduler;
use crate::sim::metrics::Capacity;
use crate::sim::policy::{Policy, rebuild};
use crate::sim::replay::replay;
use crate::sim::workload::Workload;

/// Hosts ranked largest first.
pub fn ranking(fleet: &Fleet) -> Vec<usize> {
    let cap = Capacity::of(fleet);
    let score = |h: usize| -> f64 {
        (0..cap.classes.len())
            .filter(|&rc| cap.total[rc] > 0)
            .map(|rc| cap.per_host[rc][h] as f64 / cap.total[rc] as f64)
            .sum()
    };
    let mut order: Vec<(f64, usize)> = (0..fleet.len()).map(|h| (score(h), h)).collect();
    order.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    order.into_iter().map(|(_, h)| h).collect()
}

/// The smallest `k` such that the `k` largest hosts accept `accepted`
/// requests of `workload` under `policy`. `peak_used` (per resource class,
/// the workload's peak usage on top of the fleet's own) gives the lower
/// bound. `fleet` is the policy's fleet before the replay.
///
/// # Errors
/// A fleet that cannot be rebuilt, or a replay error.
#[allow(clippy::too_many_arguments)]
pub fn compaction_hosts(
    fleet: &Fleet,
    workload: &Workload,
    policy: &Policy,
    seed: u64,
    fast: bool,
    until: Option<f64>,
    accepted: u64,
    peak_used: &[i64],
) -> Result<usize> {
    let order = ranking(fleet);
    let cap = Capacity::of(fleet);
    // lower bound: the largest hosts must hold the peak usage of each class
    let mut lo = 0usize;
    for (rc, &peak) in peak_used.iter().enumerate() {
        let mut sum = 0i64;
        let mut k = 0usize;
        while sum < peak && k < order.len() {
            sum += cap.per_host[rc][order[k]];
            k += 1;
        }
        lo = lo.max(k);
    }
    let mut hi = fleet.len();
    let holds = |k: usize| -> Result<bool> {
        let mut keep = vec![false; fleet.len()];
        for &h in &order[..k] {
            keep[h] = true;
        }
        let mut sub = rebuild(fleet, |h| keep[h], |_| {})?;
        let sched = Scheduler::new(policy.conf.clone(), seed)?;
        let c = replay(&mut sub, workload, sched, fast, until, None, &mut |_| {})?;
        Ok(c.accepted >= accepted)
    };
    // invariant: hi holds; everything below lo does not
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if mid > 0 && holds(mid)? {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(hi)
}
