//! Placing one simulated arrival: the full scheduler pipeline, or an exact
//! incremental shortcut for requests whose answer depends on the fleet only
//! through per-host state.
//!
//! A simulation sends the same request shapes again and again at a fleet in
//! which one host changes per event. For a shape with one instance and no
//! tie shuffling, every filter Quiver knows to be static in a simulation
//! (service state, traits, aggregates, image properties) gives the same
//! answer for the whole replay; the counter filters (IoOps, NumInstances)
//! depend on one host's counter; the host-set filters (server groups,
//! `same_host`, `different_host`) name a few hosts per request; and the
//! remaining per-host test is Placement's capacity check. So per shape the
//! fast path keeps:
//!
//! - the static survivors (placement's trait, aggregate and unit checks and
//!   the static filters' kernels, run once), stage by stage, so that a
//!   request no host takes is named as the full pipeline names it;
//! - a segment tree over hosts holding, per weigher, the minimum and maximum
//!   clamped raw value of the hosts that pass and fit now, updated in
//!   O(weighers x log hosts) for each host an event changed (a journal of
//!   changed hosts, replayed lazily per shape), the counter filters checked
//!   for that host then;
//! - per request, the host sets of its group and hints: dropped hosts leave
//!   the tree for the decision and come back after it; a kept set is
//!   weighed on its own.
//!
//! The tree's root gives Nova's normalization bounds; the best host is then
//! found by branch and bound over the tree: a node's upper bound is the
//! weight formula evaluated at each weigher's best extreme in the node,
//! which, because every term is monotone in its raw value in floating
//! point too, is never below the weight of any host inside. Leaves use the
//! engine's exact formula and tie-break (higher weight, then lower index),
//! so the fast path picks exactly the host the full pipeline picks (the best
//! `host_subset_size` of them, and the pick drawn from the scheduler's own
//! generator); tests replay workloads both ways and compare every decision.
//! Soft group policies (their weighers depend on the group), other hints,
//! multi-instance requests and a group or hint request that no host takes
//! go through the full pipeline.

use std::collections::{HashMap, HashSet};

use crate::candidates::PreparedQuery;
use crate::filters::{CounterBelow, RequestContext};
use crate::fleet::Fleet;
use crate::request::{BootRequest, default_instance_uuid};
use crate::scheduler::{Groups, Scheduler};
use crate::sim::workload::Workload;
use crate::weights::{Multiplier, Raw};

/// What happened to one arrival.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Placed on `host`; `fast` when the shortcut decided it.
    Placed {
        /// Host index.
        host: usize,
        /// Decided by the fast path.
        fast: bool,
    },
    /// No host.
    Rejected {
        /// `placement`, `filters`, `claim` or `unsupported`.
        stage: String,
        /// The filter that emptied the list, at the `filters` stage.
        filter: Option<String>,
    },
}

/// Request `r` as the scheduler sees it: its class, with its group's hint
/// when it joins one (`with_group` holds those, made on first use).
fn request_of<'a>(
    workload: &'a Workload,
    with_group: &'a HashMap<(u32, u32), BootRequest>,
    r: usize,
) -> &'a BootRequest {
    let req = workload.requests[r];
    match req.group {
        None => &workload.classes[req.class as usize],
        Some(g) => &with_group[&(req.class, g)],
    }
}

/// The host sets of `req`'s server group and hints for instance `uuid`;
/// `None` when the fast path does not model them (a soft policy, whose
/// weighers depend on the group; a group the scheduler does not know).
fn request_sets(
    sched: &Scheduler,
    fleet: &Fleet,
    groups: &Groups,
    req: &BootRequest,
    uuid: u128,
) -> Option<RequestSets> {
    let view = groups.view(fleet, req, &[uuid]).ok()?;
    if view.as_ref().is_some_and(|g| g.policy.starts_with("soft-")) {
        return None;
    }
    let ctx = RequestContext {
        fleet,
        conf: sched.config(),
        request: req,
        group: view.as_ref(),
        instance_uuid: uuid,
        index: 0,
    };
    let mut drop: HashSet<u32> = HashSet::new();
    let mut keep_only: Option<HashSet<u32>> = None;
    for (_, f) in sched.filters() {
        match f.host_set(&ctx) {
            Some(Some((set, true))) => {
                keep_only = Some(match keep_only {
                    None => set,
                    Some(k) => k.intersection(&set).copied().collect(),
                });
            }
            Some(Some((set, false))) => drop.extend(set),
            _ => {}
        }
    }
    Some(RequestSets { drop: drop.into_iter().collect(), keep_only })
}

/// What a request's host-set filters (server groups, `same_host`,
/// `different_host`) say for this decision.
struct RequestSets {
    /// Hosts no filter lets through.
    drop: Vec<u32>,
    /// The only hosts allowed, when a filter keeps a listed set.
    keep_only: Option<HashSet<u32>>,
}

/// The fast path's answer for one arrival.
enum Choice {
    /// Nova's host.
    Host(usize),
    /// No host: the stage (and filter) the full pipeline would name.
    Rejected { stage: &'static str, filter: &'static str },
}

/// Filters whose answer for a host cannot change during a replay: they read
/// only what a simulation never changes (service state, traits, aggregates,
/// hypervisor facts, image properties).
const STATIC_FILTERS: [&str; 9] = [
    "AllHostsFilter",
    "ComputeFilter",
    "ImagePropertiesFilter",
    "AggregateInstanceExtraSpecsFilter",
    "AggregateMultiTenancyIsolation",
    "AggregateImagePropertiesIsolation",
    "AggregateTypeAffinityFilter",
    "IsolatedHostsFilter",
    "MetricsFilter",
];

/// ComputeCapabilitiesFilter is static unless the flavor compares a usage
/// attribute of `HostState`.
fn capabilities_static(req: &BootRequest) -> bool {
    const USAGE: [&str; 6] = ["free_ram_mb", "free_disk_mb", "vcpus_used", "num_instances", "num_io_ops", "num_"];
    !req.flavor.extra_specs.keys().any(|k| USAGE.iter().any(|u| k.contains(u)))
}

/// Per workload class: what departures give back, and the fast path state.
struct Class {
    resources: Vec<(usize, i32)>,
    memory_mb: i32,
    disk_mb: i32,
    vcpus: i32,
    fast: FastState,
}

enum FastState {
    Untried,
    Ineligible,
    Ready(Box<ShapeTree>),
}

/// Places arrivals and takes departures back.
pub struct Placer {
    sched: Scheduler,
    classes: Vec<Class>,
    with_group: HashMap<(u32, u32), BootRequest>,
    fast: bool,
    /// Keep `Fleet::instances` for every placed server (needed when a
    /// request may look at other servers: groups and hints).
    track_instances: bool,
    /// Requests placed by the full pipeline (it records their instance).
    full_placed: Vec<bool>,
    /// Hosts changed by events, in order; `journal_base` is the absolute
    /// index of its first entry.
    journal: Vec<u32>,
    journal_base: usize,
}

impl Placer {
    /// A placer for `workload` on `fleet`; `fast` enables the shortcut.
    pub fn new(sched: Scheduler, fleet: &Fleet, workload: &Workload, fast: bool) -> Self {
        let classes = workload
            .classes
            .iter()
            .zip(class_demands(&sched, fleet, workload))
            .map(|(req, resources)| {
                let (memory_mb, disk_mb, vcpus) = req.flavor.host_usage();
                Class { resources, memory_mb, disk_mb, vcpus, fast: FastState::Untried }
            })
            .collect();
        let track_instances = !workload.groups.is_empty()
            || workload.requests.iter().any(|r| r.group.is_some())
            || workload.classes.iter().any(|c| !c.scheduler_hints.is_empty());
        Self {
            sched,
            classes,
            with_group: HashMap::new(),
            fast,
            track_instances,
            full_placed: vec![false; workload.requests.len()],
            journal: Vec::new(),
            journal_base: 0,
        }
    }

    /// What one request of class `c` claims in Placement.
    pub fn demand(&self, c: usize) -> &[(usize, i32)] {
        &self.classes[c].resources
    }

    /// Places request `r`.
    pub fn arrive(&mut self, fleet: &mut Fleet, groups: &mut Groups, workload: &Workload, r: usize) -> Outcome {
        let req = workload.requests[r];
        let c = req.class as usize;
        if let Some(g) = req.group {
            self.with_group.entry((req.class, g)).or_insert_with(|| {
                let mut b = workload.classes[c].clone();
                b.scheduler_hints.insert("group".into(), workload.groups[g as usize].uuid.clone().into());
                b
            });
        }
        if self.fast {
            if matches!(self.classes[c].fast, FastState::Untried) {
                let seen = self.journal_base + self.journal.len();
                self.classes[c].fast = match ShapeTree::new(&self.sched, fleet, &workload.classes[c], seen) {
                    Some(t) => FastState::Ready(Box::new(t)),
                    None => FastState::Ineligible,
                };
            }
            if let FastState::Ready(tree) = &mut self.classes[c].fast {
                let breq = request_of(workload, &self.with_group, r);
                // Groups and hints: the sets their filters keep or drop, from
                // a view of the group with this instance added (as nova-api
                // adds it); the group itself changes only if the fast path
                // places it.
                let with_sets = req.group.is_some() || !breq.scheduler_hints.is_empty();
                // (a SHA-1 per arrival: only when a group, a hint or a
                // later request can look the instance up)
                let uuid = if with_sets || self.track_instances { default_instance_uuid(r, 0) } else { 0 };
                let sets = if with_sets {
                    match request_sets(&self.sched, fleet, groups, breq, uuid) {
                        Some(s) => Some(s),
                        None => return self.full(fleet, groups, workload, r),
                    }
                } else {
                    None
                };
                match tree.choose(
                    &mut self.sched,
                    fleet,
                    &workload.classes[c],
                    &self.journal,
                    self.journal_base,
                    sets.as_ref(),
                ) {
                    Some(Choice::Host(host)) => {
                        if sets.is_some() {
                            let joined = groups.join(fleet, breq, &[uuid]);
                            debug_assert!(joined.is_ok(), "request_sets saw the group");
                        }
                        let class = &self.classes[c];
                        let claimed = fleet.claim(host, &class.resources);
                        debug_assert!(claimed, "the fast path picked a host that does not fit");
                        fleet.consume(host, class.memory_mb, class.disk_mb, class.vcpus);
                        fleet.finish_build(host);
                        if self.track_instances {
                            // Where the full pipeline records it: groups and
                            // hints of later requests look it up.
                            fleet.instances.insert(uuid, host as u32);
                        }
                        self.note(host);
                        return Outcome::Placed { host, fast: true };
                    }
                    // As the full pipeline reports it (the filter only
                    // when it traces).
                    Some(Choice::Rejected { stage, filter }) => {
                        let filter = (stage == "filters" && self.sched.trace).then(|| filter.to_owned());
                        return Outcome::Rejected { stage: stage.to_owned(), filter };
                    }
                    None => {}
                }
            }
        }
        self.full(fleet, groups, workload, r)
    }

    /// Places request `r` through the full pipeline.
    fn full(&mut self, fleet: &mut Fleet, groups: &mut Groups, workload: &Workload, r: usize) -> Outcome {
        let breq = request_of(workload, &self.with_group, r);
        let d = self.sched.schedule(fleet, groups, breq, r);
        if d.status == "ok"
            && let Some(host) = d.chosen.first().and_then(|n| fleet.index_of(n))
        {
            fleet.finish_build(host);
            self.full_placed[r] = true;
            self.note(host);
            return Outcome::Placed { host, fast: false };
        }
        let stage = d.failed_stage.clone().unwrap_or_else(|| d.status.clone());
        let filter = (stage == "filters")
            .then(|| {
                d.instances
                    .last()
                    .and_then(|i| i.filter_trace.as_ref())
                    .and_then(|t| t.iter().find(|(_, n)| *n == 0).map(|(name, _)| name.clone()))
            })
            .flatten();
        Outcome::Rejected { stage, filter }
    }

    /// Takes request `r`'s server off `host`.
    pub fn depart(&mut self, fleet: &mut Fleet, r: usize, host: usize, class: usize) {
        let c = &self.classes[class];
        fleet.release(host, &c.resources);
        fleet.unconsume(host, c.memory_mb, c.disk_mb, c.vcpus);
        if self.track_instances || self.full_placed[r] {
            fleet.instances.remove(&default_instance_uuid(r, 0));
        }
        self.note(host);
    }

    fn note(&mut self, host: usize) {
        self.journal.push(host as u32);
        // Keep the journal short: shapes that fell this far behind rebuild.
        if self.journal.len() > 1 << 16 {
            let drop = self.journal.len() / 2;
            self.journal.drain(..drop);
            self.journal_base += drop;
        }
    }
}

/// What one request of each workload class claims in Placement
/// (`(resource class column, amount)`; empty for a request Quiver cannot
/// express as a placement query).
pub fn class_demands(sched: &Scheduler, fleet: &Fleet, workload: &Workload) -> Vec<Vec<(usize, i32)>> {
    workload
        .classes
        .iter()
        .map(|req| sched.placement_query(fleet, req).map(|q| q.prepare(fleet).resources().to_vec()).unwrap_or_default())
        .collect()
}

/// One weigher as the tree sees it.
#[derive(Clone, Debug, PartialEq)]
struct WeigherSlot {
    index: usize,
    minval: Option<f64>,
    maxval: Option<f64>,
    multiplier: Multiplier,
}

impl WeigherSlot {
    /// Host `h`'s multiplier (aggregate metadata override, else the option).
    #[inline]
    fn multiplier_of(&self, fleet: &Fleet, h: usize) -> f64 {
        match &self.multiplier {
            Multiplier::Const(m) => *m,
            Multiplier::PerAggset(ms) => {
                let (b, row) = fleet.locate(h);
                ms[b.aggset[row] as usize]
            }
        }
    }
}

/// The fast path's state for one request shape.
pub(crate) struct ShapeTree {
    query: PreparedQuery,
    /// The pipeline's stages for a rejection: placement's static checks,
    /// then after each filter with a kernel (named in `stage_names`), as
    /// fleet-wide masks; `scount[node * stages + k]` counts the node's
    /// hosts that fit now and pass stage `k`.
    stages: Vec<Vec<u64>>,
    stage_names: Vec<&'static str>,
    scount: Vec<u32>,
    /// Filters that compare a per-host counter with a limit (checked per
    /// host when it changes), and how many of them apply at each stage.
    dynamic: Vec<CounterBelow>,
    stage_dynamic: Vec<usize>,
    slots: Vec<WeigherSlot>,
    /// Leaves start at `size` (a power of two >= hosts).
    size: usize,
    /// Leaf position of each host: hosts of one hardware profile and
    /// aggregate set sit side by side, so a subtree's per-weigher extremes
    /// come from similar hosts and its bound is tight.
    pos: Vec<u32>,
    /// The host at each leaf position.
    perm: Vec<u32>,
    count: Vec<u32>,
    /// Lowest host index among a node's members (for Nova's tie-break).
    minidx: Vec<u32>,
    /// `[node * slots + w]`: extremes of the clamped raw values of the
    /// node's members, and the largest multiplier of any host under the
    /// node (members or not: still an upper bound).
    lo: Vec<f64>,
    hi: Vec<f64>,
    mmax: Vec<f64>,
    /// `[node * slots + w]`: the smallest multiplier under the node.
    mmin: Vec<f64>,
    /// A reference normalization, `(lo, range)` per slot (range 0: the
    /// weigher adds nothing). `rmax[node]`: the largest weight of the
    /// node's members under it, in the engine's own arithmetic. While the
    /// current normalization is the reference, that is the node's exact
    /// best weight (ties pruned by index too); otherwise a member's weight
    /// differs from its reference weight by `m * (a * x + b)` per weigher
    /// (`a`, `b` from the two normalizations), bounded per node from its
    /// extremes, so the bound stays tight while the normalization stays
    /// near the reference, and the reference moves when searches grow.
    ref_norm: Vec<(f64, f64)>,
    rmax: Vec<f64>,
    /// The error allowed for the reference sum against the engine's own
    /// arithmetic (it only loosens the bound).
    ref_eps: f64,
    /// The weighing set changed since the multipliers were laid out.
    multipliers_stale: bool,
    /// Absolute journal position replayed so far.
    seen: usize,
}

impl ShapeTree {
    /// Builds the tree for `req`, or `None` when the shape needs the full
    /// pipeline.
    fn new(sched: &Scheduler, fleet: &Fleet, req: &BootRequest, seen: usize) -> Option<Self> {
        let conf = sched.config();
        if conf.shuffle_best_same_weighed_hosts || req.num_instances > 1 {
            return None;
        }
        let query = sched.placement_query(fleet, req).ok()?.prepare(fleet);
        let ctx = RequestContext { fleet, conf, request: req, group: None, instance_uuid: 0, index: 0 };
        // Per stage after placement: a static kernel (None: a counter
        // filter, checked per host).
        let mut kernels = Vec::new();
        let mut stage_names = Vec::new();
        let mut dynamic = Vec::new();
        let mut stage_dynamic = vec![0];
        for &(name, ref f) in sched.filters() {
            // Applied per request (see `RequestSets`).
            if f.host_set(&ctx).is_some() {
                continue;
            }
            if let Some(c) = f.counter_below(&ctx) {
                dynamic.push(c);
                kernels.push(None);
            } else {
                let Some(k) = f.prepare(&ctx).ok()? else { continue };
                let ok =
                    STATIC_FILTERS.contains(&name) || (name == "ComputeCapabilitiesFilter" && capabilities_static(req));
                if !ok {
                    return None;
                }
                kernels.push(Some(k));
            }
            stage_names.push(name);
            stage_dynamic.push(dynamic.len());
        }
        let words_len = fleet.len().div_ceil(64);
        let mut stages: Vec<Vec<u64>> = vec![Vec::with_capacity(words_len); kernels.len() + 1];
        for b in &fleet.batches {
            let mut words = vec![0u64; b.len().div_ceil(64)];
            query.static_candidates(fleet, b, &mut words);
            stages[0].extend_from_slice(&words);
            for (i, k) in kernels.iter().enumerate() {
                if let Some(k) = k {
                    k(b, &mut words);
                }
                stages[i + 1].extend_from_slice(&words);
            }
        }
        drop(kernels);

        let size = fleet.len().next_power_of_two().max(1);
        let mut perm: Vec<u32> = (0..fleet.len() as u32).collect();
        perm.sort_by_key(|&h| {
            let (b, row) = fleet.locate(h as usize);
            let codes: Vec<u32> = b.rc.iter().map(|c| c.code[row]).collect();
            (codes, b.aggset[row], b.hypervisor_version[row], b.failed_builds[row], h)
        });
        let mut pos = vec![0u32; fleet.len()];
        for (p, &h) in perm.iter().enumerate() {
            pos[h as usize] = p as u32;
        }
        let mut t = Self {
            query,
            stages,
            stage_names,
            scount: Vec::new(),
            dynamic,
            stage_dynamic,
            slots: Vec::new(),
            size,
            pos,
            perm,
            count: Vec::new(),
            minidx: Vec::new(),
            lo: Vec::new(),
            hi: Vec::new(),
            mmax: Vec::new(),
            mmin: Vec::new(),
            ref_norm: Vec::new(),
            rmax: Vec::new(),
            ref_eps: 0.0,
            multipliers_stale: true,
            seen,
        };
        let raws = prepare_weighers(sched, &ctx)?;
        t.slots = slots_of(&raws)?;
        t.rebuild(fleet, &raws);
        Some(t)
    }

    /// Brings the tree up to date and picks the host, names why there is
    /// none, or `None` when the shape must go through the full pipeline
    /// this time.
    ///
    /// `sets`: the request's host-set filters (server groups, `same_host`,
    /// `different_host`), hosts to drop and hosts to keep only; a request
    /// with them that finds no host goes to the full pipeline, which names
    /// the filter in its order.
    fn choose(
        &mut self,
        sched: &mut Scheduler,
        fleet: &Fleet,
        req: &BootRequest,
        journal: &[u32],
        base: usize,
        sets: Option<&RequestSets>,
    ) -> Option<Choice> {
        let ctx = RequestContext { fleet, conf: sched.config(), request: req, group: None, instance_uuid: 0, index: 0 };
        let raws = prepare_weighers(sched, &ctx)?;
        let end = base + journal.len();
        // The weighing set changes only when a weigher's answer for the
        // shape does; compare in place rather than building new slots.
        let same = slots_match(&self.slots, &raws)?;
        if !same || self.seen < base || end - self.seen > fleet.len() / 8 + 64 {
            if !same {
                self.slots = slots_of(&raws)?;
                self.multipliers_stale = true;
            }
            self.rebuild(fleet, &raws);
        } else {
            let mut buf = [0.0f64; 1];
            for &h in &journal[self.seen - base..] {
                self.update(fleet, &raws, h as usize, &mut buf);
            }
        }
        self.seen = end;
        let Some(sets) = sets else {
            let members = self.count[1] as usize;
            if members == 0 {
                let (stage, filter) = self.rejection();
                return Some(Choice::Rejected { stage, filter });
            }
            // Nova's host_subset_size pick among the best, drawn from the
            // scheduler's own generator exactly as the full pipeline draws.
            let subset = sched.config().host_subset_size.min(members).max(1);
            let top = self.best(subset);
            drop(raws);
            let pick = sched.subset_pick(subset);
            return top.get(pick).map(|&h| Choice::Host(h));
        };
        // Dropped hosts leave the tree for this decision (the normalization
        // bounds are over the survivors), and come back after it.
        let mut out = Vec::with_capacity(sets.drop.len());
        for &h in &sets.drop {
            let leaf = self.size + self.pos[h as usize] as usize;
            if self.count[leaf] == 1 {
                self.clear_leaf(leaf);
                out.push(h as usize);
            }
        }
        let top = match &sets.keep_only {
            None => {
                let members = self.count[1] as usize;
                let subset = sched.config().host_subset_size.min(members).max(1);
                (members > 0).then(|| (subset, self.best(subset)))
            }
            Some(keep) => {
                let mut cands: Vec<usize> = keep
                    .iter()
                    .map(|&h| h as usize)
                    .filter(|&h| self.count[self.size + self.pos[h] as usize] == 1)
                    .collect();
                cands.sort_unstable();
                let subset = sched.config().host_subset_size.min(cands.len()).max(1);
                (!cands.is_empty()).then(|| (subset, self.best_among(&cands, subset)))
            }
        };
        let mut buf = [0.0f64; 1];
        for h in out {
            self.update(fleet, &raws, h, &mut buf);
        }
        drop(raws);
        let (subset, top) = top?;
        let pick = sched.subset_pick(subset);
        top.get(pick).map(|&h| Choice::Host(h))
    }

    /// Takes a leaf out of the members (its ancestors follow).
    fn clear_leaf(&mut self, leaf: usize) {
        let nw = self.slots.len();
        let ns = self.stages.len();
        let before = self.snapshot(leaf);
        self.count[leaf] = 0;
        self.scount[leaf * ns..(leaf + 1) * ns].fill(0);
        self.minidx[leaf] = u32::MAX;
        self.lo[leaf * nw..(leaf + 1) * nw].fill(f64::INFINITY);
        self.hi[leaf * nw..(leaf + 1) * nw].fill(f64::NEG_INFINITY);
        self.rmax[leaf] = f64::NEG_INFINITY;
        self.climb(leaf, before);
    }

    /// The best `n` of `hosts` (current members, in index order) in Nova's
    /// order, normalized over them alone.
    fn best_among(&self, hosts: &[usize], n: usize) -> Vec<usize> {
        let nw = self.slots.len();
        let leaves: Vec<usize> = hosts.iter().map(|&h| self.size + self.pos[h] as usize).collect();
        let mut norm = vec![(0.0, 0.0); nw];
        if hosts.len() > 1 {
            for (w, s) in self.slots.iter().enumerate() {
                let lo = s
                    .minval
                    .unwrap_or_else(|| leaves.iter().map(|&l| self.lo[l * nw + w]).fold(f64::INFINITY, f64::min));
                let hi = s
                    .maxval
                    .unwrap_or_else(|| leaves.iter().map(|&l| self.hi[l * nw + w]).fold(f64::NEG_INFINITY, f64::max));
                if lo != hi {
                    norm[w] = (lo, hi - lo);
                }
            }
        }
        let mut scored: Vec<(f64, usize)> =
            hosts.iter().zip(&leaves).map(|(&h, &leaf)| (self.leaf_weight(leaf, &norm), h)).collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        scored.into_iter().take(n).map(|(_, h)| h).collect()
    }

    fn rebuild(&mut self, fleet: &Fleet, raws: &[Option<Raw<'_>>]) {
        let nw = self.slots.len();
        let nodes = 2 * self.size;
        // The arrays keep their allocations from one rebuild to the next.
        refill(&mut self.count, nodes, 0);
        refill(&mut self.scount, nodes * self.stages.len(), 0);
        refill(&mut self.minidx, nodes, u32::MAX);
        refill(&mut self.lo, nodes * nw, f64::INFINITY);
        refill(&mut self.hi, nodes * nw, f64::NEG_INFINITY);
        refill(&mut self.rmax, nodes, f64::NEG_INFINITY);
        refill(&mut self.ref_norm, nw, (0.0, 0.0));
        // Multipliers depend only on the weighing set.
        if self.mmax.len() != nodes * nw || self.multipliers_stale {
            refill(&mut self.mmax, nodes * nw, f64::NEG_INFINITY);
            refill(&mut self.mmin, nodes * nw, f64::INFINITY);
            for h in 0..fleet.len() {
                let leaf = self.size + self.pos[h] as usize;
                for (w, s) in self.slots.iter().enumerate() {
                    let m = s.multiplier_of(fleet, h);
                    self.mmax[leaf * nw + w] = m;
                    self.mmin[leaf * nw + w] = m;
                }
            }
            self.pull_multipliers();
            self.multipliers_stale = false;
        }
        let mut buf = vec![0.0f64; crate::fleet::BLOCK];
        for b in &fleet.batches {
            for row0 in (0..b.len()).step_by(crate::fleet::BLOCK) {
                let len = (b.len() - row0).min(crate::fleet::BLOCK);
                for h in b.start + row0..b.start + row0 + len {
                    let leaf = self.size + self.pos[h] as usize;
                    let member = self.set_leaf_counts(fleet, h, leaf);
                    self.minidx[leaf] = if member { h as u32 } else { u32::MAX };
                }
                for (w, s) in self.slots.iter().enumerate() {
                    let Some(r) = &raws[s.index] else { continue };
                    (r.values)(b, row0, &mut buf[..len]);
                    for (i, &x) in buf[..len].iter().enumerate() {
                        let leaf = self.size + self.pos[b.start + row0 + i] as usize;
                        if self.count[leaf] == 1 {
                            let x = clamp(x, s);
                            self.lo[leaf * nw + w] = x;
                            self.hi[leaf * nw + w] = x;
                        }
                    }
                }
            }
        }
        for node in (1..self.size).rev() {
            self.pull(node);
        }
        self.set_reference();
    }

    /// The current normalization, `(lo, range)` per slot (see `ref_norm`).
    fn current_norm(&self) -> Vec<(f64, f64)> {
        let nw = self.slots.len();
        let mut out = vec![(0.0, 0.0); nw];
        if self.count[1] > 1 {
            for (w, s) in self.slots.iter().enumerate() {
                let lo = s.minval.unwrap_or(self.lo[nw + w]);
                let hi = s.maxval.unwrap_or(self.hi[nw + w]);
                if lo != hi {
                    out[w] = (lo, hi - lo);
                }
            }
        }
        out
    }

    /// A member leaf's weight under the reference normalization.
    #[inline]
    fn leaf_ref_sum(&self, leaf: usize) -> f64 {
        if self.count[leaf] == 0 {
            return f64::NEG_INFINITY;
        }
        self.leaf_weight(leaf, &self.ref_norm)
    }

    /// A member leaf's weight under normalization `norm` (`(lo, range)` per
    /// slot), computed as the engine computes a weight: the same terms, in
    /// the same order.
    #[inline]
    fn leaf_weight(&self, leaf: usize, norm: &[(f64, f64)]) -> f64 {
        let nw = self.slots.len();
        let mut acc = 0.0;
        for (w, &(lo, range)) in norm.iter().enumerate() {
            if range != 0.0 {
                acc += self.mmax[leaf * nw + w] * ((self.lo[leaf * nw + w] - lo) / range);
            }
        }
        acc
    }

    /// Makes the current normalization the reference: every leaf's sum
    /// again, O(hosts x weighers).
    fn set_reference(&mut self) {
        let nw = self.slots.len();
        self.ref_norm = self.current_norm();
        // Terms are at most |m| * (|x| + |lo|) / range in size; allow a
        // relative 1e-9 of the largest.
        let mut scale = 0.0;
        for (w, &(lo, range)) in self.ref_norm.iter().enumerate() {
            let m = self.mmax[nw + w].abs().max(self.mmin[nw + w].abs());
            let x = self.lo[nw + w].abs().max(self.hi[nw + w].abs());
            if range != 0.0 && m.is_finite() && x.is_finite() {
                scale += m * (x + lo.abs()) / range;
            }
        }
        self.ref_eps = 1e-9 * (1.0 + scale);
        for leaf in self.size..2 * self.size {
            self.rmax[leaf] = self.leaf_ref_sum(leaf);
        }
        for node in (1..self.size).rev() {
            self.rmax[node] = self.rmax[2 * node].max(self.rmax[2 * node + 1]);
        }
    }

    fn update(&mut self, fleet: &Fleet, raws: &[Option<Raw<'_>>], h: usize, buf: &mut [f64; 1]) {
        let nw = self.slots.len();
        let leaf = self.size + self.pos[h] as usize;
        let before = self.snapshot(leaf);
        let member = self.set_leaf_counts(fleet, h, leaf);
        self.minidx[leaf] = if member { h as u32 } else { u32::MAX };
        let (b, row) = fleet.locate(h);
        for (w, s) in self.slots.iter().enumerate() {
            let x = match (&raws[s.index], member) {
                (Some(r), true) => {
                    (r.values)(b, row, buf);
                    clamp(buf[0], s)
                }
                _ => f64::NAN,
            };
            self.lo[leaf * nw + w] = if member { x } else { f64::INFINITY };
            self.hi[leaf * nw + w] = if member { x } else { f64::NEG_INFINITY };
        }
        self.rmax[leaf] = self.leaf_ref_sum(leaf);
        self.climb(leaf, before);
    }

    /// Sets leaf `leaf`'s stage counts for host `h`; whether it is a member
    /// (passes every static stage and fits now).
    fn set_leaf_counts(&mut self, fleet: &Fleet, h: usize, leaf: usize) -> bool {
        let ns = self.stages.len();
        let fits = self.query.fits(fleet, h);
        let mut member = fits;
        // Counter filters passed so far, in order.
        let mut dyn_ok = 0usize;
        for k in 0..ns {
            while dyn_ok < self.stage_dynamic[k] && self.dynamic[dyn_ok].passes(fleet, h) {
                dyn_ok += 1;
            }
            let pass = fits && dyn_ok >= self.stage_dynamic[k] && (self.stages[k][h / 64] >> (h % 64)) & 1 == 1;
            self.scount[leaf * ns + k] = pass as u32;
            member = pass;
        }
        self.count[leaf] = member as u32;
        member
    }

    /// Why nothing is a member now, as the full pipeline says it: the
    /// `placement` stage when no host passes placement's checks and fits,
    /// else `filters` and the first filter that keeps no host.
    fn rejection(&self) -> (&'static str, &'static str) {
        let ns = self.stages.len();
        match (0..ns).find(|&k| self.scount[ns + k] == 0) {
            Some(0) | None => ("placement", ""),
            Some(k) => ("filters", self.stage_names[k - 1]),
        }
    }

    fn pull(&mut self, node: usize) {
        let nw = self.slots.len();
        let ns = self.stages.len();
        let (l, r) = (2 * node, 2 * node + 1);
        for k in 0..ns {
            self.scount[node * ns + k] = self.scount[l * ns + k] + self.scount[r * ns + k];
        }
        self.count[node] = self.count[l] + self.count[r];
        self.minidx[node] = self.minidx[l].min(self.minidx[r]);
        self.rmax[node] = self.rmax[l].max(self.rmax[r]);
        for w in 0..nw {
            self.lo[node * nw + w] = self.lo[l * nw + w].min(self.lo[r * nw + w]);
            self.hi[node * nw + w] = self.hi[l * nw + w].max(self.hi[r * nw + w]);
        }
    }

    /// Recomputes a node's extremes, lowest index and best reference sum
    /// from its children; whether any changed (when none did, no ancestor's
    /// does either).
    fn pull_values(&mut self, node: usize) -> bool {
        let nw = self.slots.len();
        let (l, r) = (2 * node, 2 * node + 1);
        let mut changed = false;
        let m = self.minidx[l].min(self.minidx[r]);
        changed |= m != self.minidx[node];
        self.minidx[node] = m;
        let x = self.rmax[l].max(self.rmax[r]);
        changed |= x.to_bits() != self.rmax[node].to_bits();
        self.rmax[node] = x;
        for w in 0..nw {
            let lo = self.lo[l * nw + w].min(self.lo[r * nw + w]);
            let hi = self.hi[l * nw + w].max(self.hi[r * nw + w]);
            changed |=
                lo.to_bits() != self.lo[node * nw + w].to_bits() || hi.to_bits() != self.hi[node * nw + w].to_bits();
            self.lo[node * nw + w] = lo;
            self.hi[node * nw + w] = hi;
        }
        changed
    }

    /// A leaf's member flag and stage counts (the first 16), before it
    /// changes.
    fn snapshot(&self, leaf: usize) -> (u32, [u32; 16]) {
        let ns = self.stages.len().min(16);
        let mut stages = [0u32; 16];
        stages[..ns].copy_from_slice(&self.scount[leaf * self.stages.len()..][..ns]);
        (self.count[leaf], stages)
    }

    /// Brings a changed leaf's ancestors up to date: the counts by their
    /// change from `before` (its [`ShapeTree::snapshot`]), the extremes
    /// until a node's stay as they were. A shape of more than 16 stages
    /// recomputes every ancestor.
    fn climb(&mut self, leaf: usize, before: (u32, [u32; 16])) {
        let ns = self.stages.len();
        if ns > 16 {
            let mut node = leaf / 2;
            while node >= 1 {
                self.pull(node);
                node /= 2;
            }
            return;
        }
        let dcount = self.count[leaf] as i64 - before.0 as i64;
        let mut dstage = [0i64; 16];
        for (k, d) in dstage[..ns].iter_mut().enumerate() {
            *d = self.scount[leaf * ns + k] as i64 - before.1[k] as i64;
        }
        let counts = dcount != 0 || dstage[..ns].iter().any(|&d| d != 0);
        let mut values = true;
        let mut node = leaf / 2;
        while node >= 1 {
            if counts {
                self.count[node] = (self.count[node] as i64 + dcount) as u32;
                for (c, d) in self.scount[node * ns..(node + 1) * ns].iter_mut().zip(&dstage) {
                    *c = (*c as i64 + d) as u32;
                }
            }
            if values {
                values = self.pull_values(node);
            }
            if !values && !counts {
                break;
            }
            node /= 2;
        }
    }

    fn pull_multipliers(&mut self) {
        let nw = self.slots.len();
        for node in (1..self.size).rev() {
            let (l, r) = (2 * node, 2 * node + 1);
            for w in 0..nw {
                self.mmax[node * nw + w] = self.mmax[l * nw + w].max(self.mmax[r * nw + w]);
                self.mmin[node * nw + w] = self.mmin[l * nw + w].min(self.mmin[r * nw + w]);
            }
        }
    }

    /// The best `n` current members in Nova's order (higher weight, then
    /// lower index), by branch and bound.
    fn best(&mut self, n: usize) -> Vec<usize> {
        let nw = self.slots.len();
        let members = self.count[1];
        if members == 0 || n == 0 {
            return Vec::new();
        }
        // Nova's normalization bounds over the survivors; weighers whose
        // range is empty add nothing (the engine skips them too).
        let now = self.current_norm();
        let active: Vec<(usize, f64, f64)> =
            now.iter().enumerate().filter(|(_, n)| n.1 != 0.0).map(|(w, &(lo, range))| (w, lo, range)).collect();
        // The engine's term is `m * ((x - lo) / range)` with the normalized
        // value in [0, 1]: the largest multiplier times the best extreme
        // bounds it (for a leaf, it is the term).
        let bound = |node: usize| -> f64 {
            let mut acc = 0.0;
            for &(w, lo, range) in &active {
                let m = self.mmax[node * nw + w];
                let x = if m >= 0.0 { self.hi[node * nw + w] } else { self.lo[node * nw + w] };
                acc += m * ((x - lo) / range);
            }
            acc
        };
        // The second bound: the node's best reference sum, moved by the
        // most the change from the reference to the current normalization
        // can add to any member's sum (checked over the corners of its
        // multipliers and values), plus the arithmetic's slack.
        let exact = now
            .iter()
            .zip(&self.ref_norm)
            .all(|(a, b)| a.0.to_bits() == b.0.to_bits() && a.1.to_bits() == b.1.to_bits());
        // Term `m * (x - lo) / range` as `m * (c1 * x + c0)`.
        let coef = |(lo, range): (f64, f64)| if range != 0.0 { (1.0 / range, -lo / range) } else { (0.0, 0.0) };
        let shift: Vec<(usize, f64, f64)> = if exact {
            Vec::new()
        } else {
            (0..nw)
                .map(|w| {
                    let ((c1, c0), (r1, r0)) = (coef(now[w]), coef(self.ref_norm[w]));
                    (w, c1 - r1, c0 - r0)
                })
                .filter(|&(_, a, b)| a != 0.0 || b != 0.0)
                .collect()
        };
        let slack = if exact { 0.0 } else { self.ref_eps };
        let rbound = |node: usize| -> f64 {
            let mut acc = self.rmax[node] + slack;
            for &(w, a, b) in &shift {
                let (m1, m2) = (self.mmin[node * nw + w], self.mmax[node * nw + w]);
                let (v1, v2) = (a * self.lo[node * nw + w] + b, a * self.hi[node * nw + w] + b);
                let most = (m1 * v1).max(m1 * v2).max(m2 * v1).max(m2 * v2);
                acc += most + 1e-9 * (m1.abs().max(m2.abs()) * v1.abs().max(v2.abs()));
            }
            acc
        };
        // The best found so far, in order; a node is pruned when it cannot
        // beat the last of `n`.
        let mut top: Vec<(f64, usize)> = Vec::with_capacity(n + 1);
        let mut stack: Vec<(usize, f64, f64)> = vec![(1, bound(1), rbound(1))];
        let mut opened = 0usize;
        while let Some((node, b, rb)) = stack.pop() {
            if self.count[node] == 0 {
                continue;
            }
            if top.len() == n {
                let (lw, lh) = top[n - 1];
                let tie_loses = self.minidx[node] as usize > lh;
                if b < lw || rb < lw || (b == lw && tie_loses) || (exact && rb == lw && tie_loses) {
                    continue;
                }
            }
            opened += 1;
            if node >= self.size {
                // a leaf: its bound is its weight
                let h = self.perm[node - self.size] as usize;
                let at = top.partition_point(|&(w, x)| w > b || (w == b && x < h));
                if at < n {
                    top.insert(at, (b, h));
                    top.truncate(n);
                }
                continue;
            }
            let (l, r) = (2 * node, 2 * node + 1);
            let (bl, br) = (bound(l), bound(r));
            let (rl, rr) = (rbound(l), rbound(r));
            // pop the more promising child first (on a tie, the one holding
            // the lower host index)
            let (kl, kr) = (bl.min(rl), br.min(rr));
            if kl > kr || (kl == kr && self.minidx[l] <= self.minidx[r]) {
                stack.push((r, br, rr));
                stack.push((l, bl, rl));
            } else {
                stack.push((l, bl, rl));
                stack.push((r, br, rr));
            }
        }
        // A search that opened many nodes: the reference has drifted; the
        // next searches start from the current normalization.
        if !exact && opened > 64 + 8 * self.size.trailing_zeros() as usize {
            self.set_reference();
        }
        top.into_iter().map(|(_, h)| h).collect()
    }
}

/// Sets `v` to `n` copies of `x`, keeping its allocation.
fn refill<T: Copy>(v: &mut Vec<T>, n: usize, x: T) {
    v.clear();
    v.resize(n, x);
}

fn clamp(x: f64, s: &WeigherSlot) -> f64 {
    if s.minval.is_some() || s.maxval.is_some() {
        x.clamp(s.minval.unwrap_or(f64::NEG_INFINITY), s.maxval.unwrap_or(f64::INFINITY))
    } else {
        x
    }
}

/// Every weigher prepared for the shape; `None` when one fails (the full
/// pipeline then reports it).
fn prepare_weighers<'a>(sched: &Scheduler, ctx: &RequestContext<'a>) -> Option<Vec<Option<Raw<'a>>>> {
    sched.weighers().iter().map(|(_, w)| w.prepare(ctx).ok()).collect()
}

/// Whether `slots` describe `raws`; `None` when a weigher needs what the
/// tree does not model (a check of the survivors).
fn slots_match(slots: &[WeigherSlot], raws: &[Option<Raw<'_>>]) -> Option<bool> {
    let mut it = slots.iter();
    for (index, r) in raws.iter().enumerate() {
        let Some(r) = r else { continue };
        if r.check.is_some() {
            return None;
        }
        let same = it.next().is_some_and(|s| {
            s.index == index && s.minval == r.minval && s.maxval == r.maxval && s.multiplier == r.multiplier
        });
        if !same {
            return Some(false);
        }
    }
    Some(it.next().is_none())
}

/// The slots of the weighers that weigh; `None` when one needs what the
/// tree does not model (a check of the survivors).
fn slots_of(raws: &[Option<Raw<'_>>]) -> Option<Vec<WeigherSlot>> {
    let mut out = Vec::new();
    for (index, r) in raws.iter().enumerate() {
        let Some(r) = r else { continue };
        if r.check.is_some() {
            return None;
        }
        out.push(WeigherSlot { index, minval: r.minval, maxval: r.maxval, multiplier: r.multiplier.clone() });
    }
    Some(out)
}
