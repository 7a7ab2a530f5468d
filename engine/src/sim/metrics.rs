//! What the simulator measures at each sample: utilization per resource
//! class, hosts in use, stranded capacity and fragmentation.
//!
//! - *Utilization* of a class is Placement usage over Placement capacity,
//!   `(total - reserved) * allocation_ratio`, summed over the fleet.
//! - *Stranded* capacity of a class is the free amount sitting on hosts
//!   where no request shape of the workload fits any more (something else
//!   ran out), as a fraction of the class's capacity.
//! - *Fragmentation* is the share of the workload's most common request
//!   shape that the free capacity could hold if it were pooled but cannot
//!   hold host by host: `1 - sum_h fits(h) / fits(pooled)`.

use crate::fleet::Fleet;

/// Per-host Placement capacity of every resource class.
#[derive(Clone, Debug)]
pub struct Capacity {
    /// Resource class names, fleet column order.
    pub classes: Vec<String>,
    /// `[class][host]` capacity.
    pub per_host: Vec<Vec<i64>>,
    /// Per class, over the fleet.
    pub total: Vec<i64>,
}

impl Capacity {
    /// Reads a fleet's inventories.
    pub fn of(fleet: &Fleet) -> Self {
        let classes: Vec<String> = fleet.resource_classes.names().to_vec();
        let per_host: Vec<Vec<i64>> = (0..classes.len())
            .map(|rc| (0..fleet.len()).map(|h| fleet.inventory(rc, h).map_or(0, |p| p.capacity())).collect())
            .collect();
        let total = per_host.iter().map(|v| v.iter().sum()).collect();
        Self { classes, per_host, total }
    }

    /// Free amount of `rc` on `h` now.
    #[inline]
    pub fn free(&self, fleet: &Fleet, rc: usize, h: usize) -> i64 {
        self.per_host[rc][h] - fleet.usage().used[rc][h]
    }
}

/// The request shapes the measures are taken against.
#[derive(Clone, Debug, Default)]
pub struct Demands {
    /// Pareto-minimal demand vectors `(class column, amount)`: a host that
    /// fits none of them fits no request of the workload.
    pub minimal: Vec<Vec<(usize, i64)>>,
    /// The most common shape's demand.
    pub reference: Vec<(usize, i64)>,
}

impl Demands {
    /// From each workload class's demand and request count.
    pub fn new(classes: &[(Vec<(usize, i64)>, u64)]) -> Self {
        let used: Vec<&Vec<(usize, i64)>> = classes.iter().filter(|(_, n)| *n > 0).map(|(d, _)| d).collect();
        let amount = |d: &[(usize, i64)], rc: usize| d.iter().find(|(r, _)| *r == rc).map_or(0, |x| x.1);
        let leq = |a: &[(usize, i64)], b: &[(usize, i64)]| a.iter().all(|&(rc, x)| x <= amount(b, rc));
        let mut minimal: Vec<Vec<(usize, i64)>> = Vec::new();
        for (i, d) in used.iter().enumerate() {
            let dominated = used.iter().enumerate().any(|(j, e)| {
                j != i && leq(e, d) && (!leq(d, e) || j < i) // a smaller shape, or an equal one listed first
            });
            if !dominated {
                minimal.push((*d).clone());
            }
        }
        let reference = classes.iter().filter(|(_, n)| *n > 0).max_by_key(|(_, n)| *n).map(|(d, _)| d.clone());
        Self { minimal, reference: reference.unwrap_or_default() }
    }
}

/// One point of a timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Simulated time, seconds.
    pub time: f64,
    /// Arrivals so far.
    pub arrivals: u64,
    /// Accepted so far.
    pub accepted: u64,
    /// Rejected so far.
    pub rejected: u64,
    /// Servers of the workload placed now.
    pub active: u64,
    /// Hosts with at least one instance.
    pub hosts_in_use: u64,
    /// Per resource class, Placement usage over the fleet.
    pub used: Vec<i64>,
    /// Per resource class, usage over capacity.
    pub utilization: Vec<f64>,
    /// Per resource class, stranded free capacity over capacity.
    pub stranded: Vec<f64>,
    /// Fragmentation for the reference shape.
    pub fragmentation: f64,
}

/// Stranded fraction per class and fragmentation, from one pass over the
/// hosts.
pub fn stranded_and_fragmentation(fleet: &Fleet, cap: &Capacity, demands: &Demands) -> (Vec<f64>, f64) {
    let nrc = cap.classes.len();
    let mut stranded = vec![0i64; nrc];
    let mut pooled_free = vec![0i64; nrc];
    let mut fits_sum: i64 = 0;
    let mut free = vec![0i64; nrc];
    for h in 0..fleet.len() {
        for (rc, f) in free.iter_mut().enumerate() {
            *f = cap.free(fleet, rc, h).max(0);
            pooled_free[rc] += *f;
        }
        let fits_any = demands.minimal.iter().any(|d| d.iter().all(|&(rc, a)| free[rc] >= a));
        if !fits_any {
            for rc in 0..nrc {
                stranded[rc] += free[rc];
            }
        }
        if !demands.reference.is_empty() {
            fits_sum += demands.reference.iter().map(|&(rc, a)| free[rc] / a).min().unwrap_or(0);
        }
    }
    let frac = |x: i64, rc: usize| if cap.total[rc] > 0 { x as f64 / cap.total[rc] as f64 } else { 0.0 };
    let stranded = stranded.iter().enumerate().map(|(rc, &s)| frac(s, rc)).collect();
    let pooled = demands.reference.iter().map(|&(rc, a)| pooled_free[rc] / a).min().unwrap_or(0);
    let fragmentation = if pooled > 0 { 1.0 - fits_sum as f64 / pooled as f64 } else { 0.0 };
    (stranded, fragmentation)
}
