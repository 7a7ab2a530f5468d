//! The discrete-event replay: arrivals in trace order and departures from a
//! time-ordered queue go through the scheduler (the same pipeline as
//! `quiver decide` and `quiver serve`, no HTTP, no store) and the fleet's
//! usage columns, sampled into a timeline.
//!
//! Order of events at equal times: departures first (they free capacity),
//! then arrivals in trace order. An arrival whose departure is not after it
//! leaves at its arrival time, before any later arrival of that instant.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use crate::error::Result;
use crate::fleet::Fleet;
use crate::scheduler::{Groups, Scheduler};
use crate::sim::fast::{Outcome, Placer};
use crate::sim::metrics::{Capacity, Demands, Sample, stranded_and_fragmentation};
use crate::sim::workload::Workload;

/// Counters of one replay.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counts {
    /// Arrivals replayed.
    pub arrivals: u64,
    /// Departures replayed.
    pub departures: u64,
    /// Requests placed.
    pub accepted: u64,
    /// Requests that found no host.
    pub rejected: u64,
    /// Rejections by stage: `placement` (no host has the resources and
    /// traits), `filters` (a filter emptied the list), `claim`, `unsupported`.
    pub rejected_by_stage: BTreeMap<String, u64>,
    /// Rejections at the filter stage by the filter that emptied the list.
    pub rejected_by_filter: BTreeMap<String, u64>,
    /// Most hosts with an instance at once.
    pub peak_hosts_in_use: u64,
    /// Requests the fast path decided (the rest went through the full
    /// pipeline).
    pub fast_decisions: u64,
    /// Per resource class, the most Placement usage at once.
    pub peak_used: Vec<i64>,
    /// FNV-1a over every (request, host) placement in order: equal digests
    /// mean the same decisions.
    pub decisions_digest: u64,
}

impl Counts {
    /// Arrivals plus departures.
    pub fn events(&self) -> u64 {
        self.arrivals + self.departures
    }
}

/// Timeline sampling for a replay.
pub struct Sampler {
    /// Seconds between samples.
    pub interval: f64,
    /// Capacity of the fleet replayed.
    pub capacity: Capacity,
    /// Shapes for stranded capacity and fragmentation.
    pub demands: Demands,
    /// Samples taken.
    pub samples: Vec<Sample>,
    next: f64,
}

impl Sampler {
    /// Samples every `interval` seconds from `start`.
    pub fn new(fleet: &Fleet, workload: &Workload, demands: &[Vec<(usize, i32)>], start: f64, interval: f64) -> Self {
        let counts = workload.class_counts();
        let shapes: Vec<(Vec<(usize, i64)>, u64)> =
            demands.iter().zip(counts).map(|(d, n)| (d.iter().map(|&(rc, a)| (rc, a as i64)).collect(), n)).collect();
        Self {
            interval: interval.max(f64::MIN_POSITIVE),
            capacity: Capacity::of(fleet),
            demands: Demands::new(&shapes),
            samples: Vec::new(),
            next: start,
        }
    }

    fn take(&mut self, time: f64, fleet: &Fleet, c: &Counts, active: u64, hosts_in_use: u64) {
        let nrc = self.capacity.classes.len();
        let used: Vec<i64> = (0..nrc).map(|rc| fleet.usage().used[rc].iter().sum()).collect();
        let utilization = used
            .iter()
            .zip(&self.capacity.total)
            .map(|(&u, &t)| if t > 0 { u as f64 / t as f64 } else { 0.0 })
            .collect();
        let (stranded, fragmentation) = stranded_and_fragmentation(fleet, &self.capacity, &self.demands);
        self.samples.push(Sample {
            time,
            arrivals: c.arrivals,
            accepted: c.accepted,
            rejected: c.rejected,
            active,
            hosts_in_use,
            used,
            utilization,
            stranded,
            fragmentation,
        });
    }

    /// Takes every sample due before `time`.
    fn until(&mut self, time: f64, fleet: &Fleet, c: &Counts, active: u64, hosts_in_use: u64) {
        while self.next < time {
            let t = self.next;
            self.take(t, fleet, c, active, hosts_in_use);
            self.next += self.interval;
        }
    }
}

/// Replays `workload` on `fleet` (changed in place) with `sched`, up to
/// and including the events at time `until` when given.
/// `progress` is called with the events replayed so far, every 4,096 events.
///
/// # Errors
/// A server group the engine rejects.
pub fn replay(
    fleet: &mut Fleet,
    workload: &Workload,
    sched: Scheduler,
    fast: bool,
    until: Option<f64>,
    mut sampler: Option<&mut Sampler>,
    progress: &mut dyn FnMut(u64),
) -> Result<Counts> {
    let mut groups = Groups::new(&workload.groups)?;
    // Per-filter counts, so a rejection names the filter that kept no host
    // (the kernels count their survivors anyway).
    let mut sched = sched;
    sched.trace = true;
    let mut placer = Placer::new(sched, fleet, workload, fast);
    let mut c = Counts { decisions_digest: 0xcbf2_9ce4_8422_2325, ..Counts::default() };
    let mut hosts_in_use = fleet.usage().num_instances.iter().filter(|&&n| n > 0).count() as u64;
    c.peak_hosts_in_use = hosts_in_use;
    let mut used: Vec<i64> = fleet.usage().used.iter().map(|v| v.iter().sum()).collect();
    c.peak_used = used.clone();
    let mut active: u64 = 0;
    // (time, sequence) -> (request, host)
    let mut departures: BinaryHeap<Reverse<(Time, u64, u32, u32)>> = BinaryHeap::new();
    let mut seq: u64 = 0;
    let mut next = 0usize;
    let mut last_time = workload.requests.first().map_or(0.0, |r| r.arrival);
    loop {
        let arrival = workload.requests.get(next).map(|r| r.arrival);
        let departure = departures.peek().map(|Reverse((t, ..))| t.0);
        let (time, is_departure) = match (arrival, departure) {
            (None, None) => break,
            (Some(a), Some(d)) if d <= a => (d, true),
            (Some(a), _) => (a, false),
            (None, Some(d)) => (d, true),
        };
        if until.is_some_and(|u| time > u) {
            break;
        }
        if let Some(s) = sampler.as_deref_mut() {
            s.until(time, fleet, &c, active, hosts_in_use);
        }
        last_time = time;
        if is_departure {
            let Some(Reverse((_, _, r, host))) = departures.pop() else { break };
            let class = workload.requests[r as usize].class as usize;
            placer.depart(fleet, r as usize, host as usize, class);
            for &(rc, a) in placer.demand(class) {
                used[rc] -= a as i64;
            }
            active -= 1;
            if fleet.usage().num_instances[host as usize] == 0 {
                hosts_in_use -= 1;
            }
            c.departures += 1;
        } else {
            let r = next;
            next += 1;
            c.arrivals += 1;
            match placer.arrive(fleet, &mut groups, workload, r) {
                Outcome::Placed { host, fast } => {
                    c.accepted += 1;
                    for x in [r as u64, host as u64] {
                        c.decisions_digest = (c.decisions_digest ^ x).wrapping_mul(0x0100_0000_01b3);
                    }
                    c.fast_decisions += fast as u64;
                    active += 1;
                    if fleet.usage().num_instances[host] == 1 {
                        hosts_in_use += 1;
                        c.peak_hosts_in_use = c.peak_hosts_in_use.max(hosts_in_use);
                    }
                    let req = &workload.requests[r];
                    for &(rc, a) in placer.demand(req.class as usize) {
                        used[rc] += a as i64;
                        c.peak_used[rc] = c.peak_used[rc].max(used[rc]);
                    }
                    let leave = req.departure.map(|d| d.max(req.arrival));
                    if let Some(d) = leave {
                        departures.push(Reverse((Time(d), seq, r as u32, host as u32)));
                        seq += 1;
                    }
                }
                Outcome::Rejected { stage, filter } => {
                    c.rejected += 1;
                    *c.rejected_by_stage.entry(stage).or_default() += 1;
                    if let Some(f) = filter {
                        *c.rejected_by_filter.entry(f).or_default() += 1;
                    }
                }
            }
        }
        let events = c.events();
        if events.is_multiple_of(4096) {
            progress(events);
        }
    }
    progress(c.events());
    if let Some(s) = sampler {
        // the final state, at the last event
        s.until(last_time, fleet, &c, active, hosts_in_use);
        if s.samples.last().is_none_or(|x| x.time < last_time) {
            s.take(last_time, fleet, &c, active, hosts_in_use);
        }
    }
    Ok(c)
}

/// A total order on event times.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Time(f64);

impl Eq for Time {}

impl PartialOrd for Time {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Time {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}
