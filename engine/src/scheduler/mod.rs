//! The scheduling pipeline of one boot request (DESIGN.md section 2 and
//! FORMAT.md section 3): placement candidates, filters per instance, Nova's
//! weighing, top-k selection with `host_subset_size`, the claim walk,
//! consumption in place, and rollback of a failed multi-create.

use std::collections::HashMap;
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::candidates::PreparedQuery;
use crate::config::SchedulerConfig;
use crate::error::{EngineError, Result};
use crate::filters::{self, FilterError, GroupView, HostFilter, RequestContext};
use crate::fleet::{BLOCK, Fleet};
use crate::mask::Mask;
use crate::request::{BootRequest, default_instance_uuid, format_uuid, parse_uuid};
use crate::select::{Scored, TopK, weight_then_index};
use crate::weights::{self, HostWeigher, Multiplier, Named, Raw};

mod decision;
mod explain;
mod groups;
mod placement_query;
mod rebuild;

use decision::fail_with;
pub use decision::{Decision, InstanceDecision};
pub use explain::{Explanation, HostVerdict, Stage};
pub use groups::Groups;

/// What instance `k` must remember of instance `j < k` to order ties as
/// Nova does: candidates of `k` arrive in `j`'s sorted order.
struct PriorOrder {
    weights: Vec<f64>,
    picked: u32,
}

/// Minimum and maximum of one weigher's raw values over all hosts of one
/// block, with the rows that attain them, valid while the block's epoch is.
#[derive(Clone, Copy, Debug)]
struct BlockStat {
    epoch: u64,
    min: f64,
    argmin: u32,
    max: f64,
    argmax: u32,
}

/// Per cache key, per global block.
type StatCache = HashMap<&'static str, Vec<Option<BlockStat>>>;

/// One batch's pass A: per weigher `(min, max)` over its survivors, and the
/// block summaries it computed afresh.
type PassA = (Vec<(f64, f64)>, Vec<(&'static str, usize, BlockStat)>);

/// An undo record for one consumed instance.
struct Undo {
    host: usize,
    hoststate: [i32; 5],
    stubbed: Option<u128>,
}

/// Undoes the claims and consumption of placed instances, last first.
fn rollback(fleet: &mut Fleet, undo: Vec<Undo>, resources: &[(usize, i32)]) {
    for u in undo.into_iter().rev() {
        fleet.release(u.host, resources);
        fleet.set_hoststate(u.host, u.hoststate);
        if let Some(stub) = u.stubbed {
            fleet.instances.remove(&stub);
        }
    }
}

/// The scheduler: Nova's configured filters and weighers over a fleet.
pub struct Scheduler {
    conf: SchedulerConfig,
    /// Filters with their registered names, in order.
    filters: Vec<Named<dyn HostFilter>>,
    /// Weighers with their registered names, in weighing order.
    weighers: Vec<Named<dyn HostWeigher>>,
    rng: ChaCha8Rng,
    pool: Arc<rayon::ThreadPool>,
    /// Pass A's per-block summaries of request-independent weighers.
    stats: std::sync::Mutex<StatCache>,
    /// Include per-filter traces in decisions.
    pub trace: bool,
}

/// Hosts kept per batch by the top-k pass: enough for the top five, the
/// `host_subset_size` pick and alternates; the claim walk widens it when
/// every kept host is full.
const TOP_K: usize = 16;

impl Scheduler {
    /// A scheduler for `conf`, with a seed for `host_subset_size` picks.
    ///
    /// # Errors
    /// An unknown filter or weigher name (listing the known ones).
    pub fn new(conf: SchedulerConfig, seed: u64) -> Result<Self> {
        let filters = conf.enabled_filters.iter().map(|n| filters::by_name(n)).collect::<Result<Vec<_>>>()?;
        let weighers = weights::from_config(&conf)?;
        let pool = kernel_pool()?;
        Ok(Self {
            conf,
            filters,
            weighers,
            rng: ChaCha8Rng::seed_from_u64(seed),
            pool,
            stats: Default::default(),
            trace: false,
        })
    }

    /// The filters, in order (the simulator's fast path prepares them).
    pub(crate) fn filters(&self) -> &[Named<dyn HostFilter>] {
        &self.filters
    }

    /// The weighers, in order.
    pub(crate) fn weighers(&self) -> &[Named<dyn HostWeigher>] {
        &self.weighers
    }

    /// The configuration.
    pub fn config(&self) -> &SchedulerConfig {
        &self.conf
    }

    /// The rayon pool the kernels run on: a bench that compares with a
    /// decision measures its floor on the same threads.
    pub fn pool(&self) -> &rayon::ThreadPool {
        &self.pool
    }

    /// Filter class names in order.
    pub fn filter_names(&self) -> Vec<&'static str> {
        self.filters.iter().map(|(name, _)| *name).collect()
    }

    /// Dotted weigher class paths in weighing order.
    pub fn weigher_paths(&self) -> Vec<String> {
        self.weighers.iter().map(|(name, w)| format!("{}.{name}", w.module())).collect()
    }

    /// Schedules request `index` against `fleet`, claiming and consuming in
    /// place; a failed request leaves the fleet as it was.
    pub fn schedule(&mut self, fleet: &mut Fleet, groups: &mut Groups, req: &BootRequest, index: usize) -> Decision {
        self.schedule_with(fleet, groups, req, index, true, None)
    }

    /// Nova's `host_subset_size` draw among `subset` best hosts, from this
    /// scheduler's generator (the simulator's fast path draws as the
    /// full pipeline does, so both pick alike).
    pub(crate) fn subset_pick(&mut self, subset: usize) -> usize {
        subset_pick(&mut self.rng, subset)
    }

    /// [`Scheduler::schedule`] over the hosts in `within` only (Nova's
    /// `ignore_hosts` for a move: the hosts a planned move may land on).
    pub fn schedule_within(
        &mut self,
        fleet: &mut Fleet,
        groups: &mut Groups,
        req: &BootRequest,
        index: usize,
        within: Option<&Mask>,
    ) -> Decision {
        self.schedule_with(fleet, groups, req, index, true, within)
    }

    /// Decides request `index` as [`Scheduler::schedule`] does (instances of
    /// a multi-create see each other's consumption) but leaves the fleet as
    /// it was: a live fleet takes the usage from the claim that the store
    /// commits, not from the decision.
    ///
    /// `within`: the hosts Placement's allocation candidates returned for a
    /// request with numbered groups (provider trees the fleet's root rows
    /// cannot check); the fleet still checks the unnumbered group, traits,
    /// aggregates and every filter.
    pub fn select(
        &mut self,
        fleet: &mut Fleet,
        groups: &mut Groups,
        req: &BootRequest,
        index: usize,
        within: Option<&Mask>,
    ) -> Decision {
        self.schedule_with(fleet, groups, req, index, false, within)
    }

    fn schedule_with(
        &mut self,
        fleet: &mut Fleet,
        groups: &mut Groups,
        req: &BootRequest,
        index: usize,
        keep: bool,
        within: Option<&Mask>,
    ) -> Decision {
        let n = req.num_instances.max(1) as usize;
        let uuids: Vec<u128> = (0..n).map(|k| instance_uuid(req, index, k)).collect();
        let mut d = Decision {
            req: index,
            id: req.id.clone(),
            num_instances: n,
            placement_candidates: None,
            status: "ok".into(),
            failed_stage: None,
            error: None,
            chosen: Vec::new(),
            instances: Vec::new(),
        };
        // 1. server group: members first, as nova-api adds them.
        let mut group = match groups.join(fleet, req, &uuids) {
            Ok(g) => g,
            Err(e) => {
                d.status = "unsupported".into();
                d.error = Some(e);
                return d;
            }
        };
        // 2. placement
        let query = match self.placement_query_for(fleet, req, within.is_some()) {
            Ok(q) => q.prepare(fleet),
            Err(e) => return fail_with(d, e),
        };
        let mut candidates = self.candidate_masks(fleet, &query);
        if let Some(w) = within {
            for (b, m) in fleet.batches.iter().zip(&mut candidates) {
                let first = b.start / 64;
                // Hosts past the end of `within` are not allowed.
                for (i, word) in m.words_mut().iter_mut().enumerate() {
                    *word &= w.words().get(first + i).copied().unwrap_or(0);
                }
            }
        }
        let count: usize = candidates.iter().map(Mask::count).sum();
        d.placement_candidates = Some(count);
        if count == 0 {
            d.status = "no_valid_host".into();
            d.failed_stage = Some("placement".into());
            return d;
        }
        // 3. per instance
        let mut undo: Vec<Undo> = Vec::new();
        let mut prior: Vec<PriorOrder> = Vec::new();
        let mut failed: Option<(&'static str, Option<FilterError>)> = None;
        for (k, &uuid) in uuids.iter().enumerate() {
            let outcome = self.place_one(fleet, &query, req, group.as_ref(), uuid, k, n, &mut candidates, &mut prior);
            match outcome {
                Ok((io, Some(host))) => {
                    // claim + consume in place (the walk checked that it fits)
                    let claimed = fleet.claim(host, query.resources());
                    debug_assert!(claimed, "claim walk picked a host that does not fit");
                    let saved = fleet.hoststate(host);
                    let (memory_mb, disk_mb, vcpus) = req.flavor.host_usage();
                    fleet.consume(host, memory_mb, disk_mb, vcpus);
                    let mut stubbed = None;
                    if let Some(g) = group.as_mut() {
                        g.hosts.push(host as u32);
                        if let std::collections::hash_map::Entry::Vacant(e) = fleet.instances.entry(uuid) {
                            e.insert(host as u32);
                            stubbed = Some(uuid);
                        }
                    }
                    undo.push(Undo { host, hoststate: saved, stubbed });
                    d.instances.push(io);
                }
                Ok((io, None)) => {
                    let stage = if io.top5.is_some() { "claim" } else { "filters" };
                    d.instances.push(io);
                    failed = Some((stage, None));
                    break;
                }
                Err(e) => {
                    failed = Some(("error", Some(e)));
                    break;
                }
            }
        }
        if !keep && failed.is_none() {
            // A decision only: undo the consumption, keep the choices.
            rollback(fleet, undo, query.resources());
            d.chosen = d.instances.iter().filter_map(|i| i.chosen.clone()).collect();
            return d;
        }
        match failed {
            None => {
                for (&u, placed) in uuids.iter().zip(&undo) {
                    fleet.instances.entry(u).or_insert(placed.host as u32);
                }
                d.chosen = d.instances.iter().filter_map(|i| i.chosen.clone()).collect();
            }
            Some((stage, err)) => {
                rollback(fleet, undo, query.resources());
                match err {
                    Some(e) => {
                        d.instances.clear();
                        return fail_with(d, e);
                    }
                    None => {
                        d.status = "no_valid_host".into();
                        d.failed_stage = Some(stage.into());
                    }
                }
            }
        }
        d
    }

    fn candidate_masks(&self, fleet: &Fleet, query: &PreparedQuery) -> Vec<Mask> {
        self.pool.install(|| {
            fleet
                .batches
                .par_iter()
                .map(|b| {
                    let mut m = Mask::zeros(b.len());
                    query.candidates(fleet, b, m.words_mut());
                    m
                })
                .collect()
        })
    }

    /// Filters, weighs and picks a host for instance `k`; `candidates` holds
    /// the hosts entering the filters and is left holding the survivors.
    #[allow(clippy::too_many_arguments)]
    fn place_one(
        &mut self,
        fleet: &Fleet,
        query: &PreparedQuery,
        req: &BootRequest,
        group: Option<&GroupView>,
        uuid: u128,
        k: usize,
        n: usize,
        candidates: &mut [Mask],
        prior: &mut Vec<PriorOrder>,
    ) -> std::result::Result<(InstanceDecision, Option<usize>), FilterError> {
        let ctx = RequestContext { fleet, conf: &self.conf, request: req, group, instance_uuid: uuid, index: k };
        // filters
        let mut kernels = Vec::new();
        for (name, f) in &self.filters {
            if k > 0 && f.run_filter_once_per_request() {
                continue;
            }
            kernels.push((*name, f.prepare(&ctx)?));
        }
        let per_batch: Vec<Vec<usize>> = self.pool.install(|| {
            candidates
                .par_iter_mut()
                .zip(fleet.batches.par_iter())
                .map(|(mask, batch)| {
                    let mut counts = Vec::with_capacity(kernels.len());
                    for (_, kernel) in &kernels {
                        if let Some(kernel) = kernel
                            && !mask.none()
                        {
                            kernel(batch, mask.words_mut());
                        }
                        counts.push(mask.count());
                    }
                    counts
                })
                .collect()
        });
        let mut trace = Vec::new();
        // With no filter to run, the candidates are the survivors.
        let mut passed = if kernels.is_empty() { candidates.iter().map(Mask::count).sum() } else { 0 };
        for (fi, (name, _)) in kernels.iter().enumerate() {
            let c: usize = per_batch.iter().map(|v| v[fi]).sum();
            trace.push((name.to_string(), c));
            passed = c;
            if c == 0 {
                break;
            }
        }
        let mut io = InstanceDecision {
            uuid: format_uuid(uuid),
            passed,
            filter_trace: self.trace.then_some(trace),
            top5: None,
            chosen: None,
            weight: None,
            alternates: Vec::new(),
        };
        if passed == 0 {
            return Ok((io, None));
        }
        // weighers
        // The survivors as one fleet-wide mask, built only for a weigher
        // that checks them (MetricsWeigher).
        let mut survivors: Option<Mask> = None;
        let mut raws: Vec<Raw<'_>> = Vec::new();
        if passed > 1 {
            for (_, w) in &self.weighers {
                if let Some(r) = w.prepare(&ctx)? {
                    if let Some(check) = &r.check {
                        let all = survivors.get_or_insert_with(|| {
                            Mask::from_words(
                                candidates.iter().flat_map(|m| m.words().iter().copied()).collect(),
                                fleet.len().div_ceil(64) * 64,
                            )
                        });
                        check(all)?;
                    }
                    raws.push(r);
                }
            }
        }
        let need_weights = k + 1 < n;
        let mut kk = TOP_K.max(self.conf.host_subset_size + self.conf.max_attempts + 5);
        // The tie-break order of later instances assumes `order` is the
        // weighed order with one pick moved to the front, as Nova's is.
        loop {
            let (top, dense) = self.weigh_and_select(fleet, candidates, &raws, prior, kk, need_weights, passed);
            let mut order = top.clone();
            if self.conf.shuffle_best_same_weighed_hosts {
                // Nova shuffles every host tied with the best weight: widen
                // until the whole tie group is in hand.
                let ties = order.iter().take_while(|s| s.weight == order[0].weight).count();
                if ties == order.len() && order.len() < passed {
                    kk *= 16;
                    continue;
                }
                rand::seq::SliceRandom::shuffle(&mut order[..ties], &mut self.rng);
            }
            // Nova's host_subset_size pick, then the rest in weight order.
            let subset = self.conf.host_subset_size.min(order.len()).max(1);
            let pick = subset_pick(&mut self.rng, subset);
            let picked = order.remove(pick);
            order.insert(0, picked);
            io.top5 = Some(top.iter().take(5).map(|s| (fleet.name(s.host as usize).to_owned(), s.weight)).collect());
            let chosen = order.iter().position(|s| query.fits(fleet, s.host as usize));
            if chosen.is_none() && top.len() < passed {
                kk *= 16;
                continue;
            }
            if need_weights {
                prior.push(PriorOrder { weights: dense, picked: picked.host });
            }
            let Some(ci) = chosen else { return Ok((io, None)) };
            let host = order[ci].host as usize;
            io.chosen = Some(fleet.name(host).to_owned());
            io.weight = Some(order[ci].weight);
            let cell = |h: usize| fleet.cell_of(h);
            io.alternates = order[ci + 1..]
                .iter()
                .map(|s| s.host as usize)
                .filter(|&h| cell(h) == cell(host) && query.fits(fleet, h))
                .take(self.conf.max_attempts.saturating_sub(1))
                .map(|h| fleet.name(h).to_owned())
                .collect();
            return Ok((io, Some(host)));
        }
    }

    /// Weighs the survivors (Nova's normalization) and keeps the best `k`.
    /// Returns the dense weights too when a later instance needs them for
    /// its tie-break order.
    #[allow(clippy::too_many_arguments)]
    fn weigh_and_select(
        &self,
        fleet: &Fleet,
        survivors: &[Mask],
        raws: &[Raw<'_>],
        prior: &[PriorOrder],
        k: usize,
        need_weights: bool,
        passed: usize,
    ) -> (Vec<Scored>, Vec<f64>) {
        // pass A: min and max of each weigher over the survivors
        let nw = raws.len();
        let bounds: Vec<(f64, f64)> =
            raws.iter().map(|r| (r.minval.unwrap_or(f64::NEG_INFINITY), r.maxval.unwrap_or(f64::INFINITY))).collect();
        let ranges: Vec<(f64, f64)> = if passed > 1 && nw > 0 {
            let mut cache = self.stats.lock().unwrap_or_else(|p| p.into_inner());
            let blocks = fleet.len().div_ceil(BLOCK);
            for r in raws {
                if let Some(k) = r.cache_key {
                    cache.entry(k).or_default().resize(blocks, None);
                }
            }
            let snapshot: &StatCache = &cache;
            let per_batch: Vec<PassA> = self.pool.install(|| {
                survivors
                    .par_iter()
                    .zip(fleet.batches.par_iter())
                    .map(|(mask, batch)| {
                        let mut mm = vec![(f64::INFINITY, f64::NEG_INFINITY); nw];
                        let mut updates = Vec::new();
                        let mut buf = vec![0.0f64; BLOCK];
                        let mut sel = vec![0u8; BLOCK];
                        for (blk, words) in mask.words().chunks(BLOCK / 64).enumerate() {
                            if words.iter().all(|&w| w == 0) {
                                continue;
                            }
                            let row0 = blk * BLOCK;
                            let len = (batch.len() - row0).min(BLOCK);
                            let gb = batch.start / BLOCK + blk;
                            let epoch = fleet.block_epoch(gb);
                            let alive = |row: u32| (words[row as usize / 64] >> (row % 64)) & 1 == 1;
                            let mut expanded = false;
                            for (wi, r) in raws.iter().enumerate() {
                                let (minc, maxc) = bounds[wi];
                                let mut filled = false;
                                // The block's extremes over all hosts; when the hosts
                                // attaining them survived, they are the survivors'
                                // extremes too (the clamp is monotone).
                                let stat = match r.cache_key {
                                    None => None,
                                    Some(k) => match snapshot.get(k).and_then(|v| v[gb]).filter(|s| s.epoch == epoch) {
                                        Some(s) => Some(s),
                                        None => {
                                            (r.values)(batch, row0, &mut buf[..len]);
                                            filled = true;
                                            let (min, argmin, max, argmax) = weights::kernels::min_max_arg(&buf[..len]);
                                            let s = BlockStat { epoch, min, argmin, max, argmax };
                                            updates.push((k, gb, s));
                                            Some(s)
                                        }
                                    },
                                };
                                if let Some(s) = stat
                                    && (r.minval.is_some() || alive(s.argmin))
                                    && (r.maxval.is_some() || alive(s.argmax))
                                {
                                    let lo = s.min.clamp(minc, maxc);
                                    let hi = s.max.clamp(minc, maxc);
                                    mm[wi] = (mm[wi].0.min(lo), mm[wi].1.max(hi));
                                    continue;
                                }
                                if !filled {
                                    (r.values)(batch, row0, &mut buf[..len]);
                                }
                                if !expanded {
                                    weights::kernels::expand_mask(words, &mut sel[..len]);
                                    expanded = true;
                                }
                                if r.minval.is_some() || r.maxval.is_some() {
                                    weights::kernels::clamp(&mut buf[..len], minc, maxc);
                                }
                                let (lo, hi) = weights::kernels::masked_min_max(&buf[..len], &sel[..len]);
                                mm[wi] = (mm[wi].0.min(lo), mm[wi].1.max(hi));
                            }
                        }
                        (mm, updates)
                    })
                    .collect()
            });
            for (_, updates) in &per_batch {
                for &(k, gb, s) in updates {
                    if let Some(v) = cache.get_mut(k) {
                        v[gb] = Some(s);
                    }
                }
            }
            drop(cache);
            (0..nw)
                .map(|wi| {
                    let lo = per_batch.iter().map(|v| v.0[wi].0).fold(f64::INFINITY, f64::min);
                    let hi = per_batch.iter().map(|v| v.0[wi].1).fold(f64::NEG_INFINITY, f64::max);
                    (raws[wi].minval.unwrap_or(lo), raws[wi].maxval.unwrap_or(hi))
                })
                .collect()
        } else {
            Vec::new()
        };
        // Weighers whose range is empty add `multiplier * 0` to every host.
        let active: Vec<(usize, f64, f64)> =
            ranges.iter().enumerate().filter(|(_, (lo, hi))| lo != hi).map(|(i, &(lo, hi))| (i, lo, hi - lo)).collect();
        let better = |a: &Scored, b: &Scored| -> bool {
            if a.weight != b.weight {
                return a.weight > b.weight;
            }
            for p in prior.iter().rev() {
                let (ha, hb) = (a.host, b.host);
                if (ha == p.picked) != (hb == p.picked) {
                    return ha == p.picked;
                }
                let (wa, wb) = (p.weights[ha as usize], p.weights[hb as usize]);
                if wa != wb {
                    return wa > wb;
                }
            }
            a.host < b.host
        };
        let fast = prior.is_empty();
        // pass B: fused scoring and per-batch top-k
        let results: Vec<(TopK, Vec<(u32, f64)>)> = self.pool.install(|| {
            survivors
                .par_iter()
                .zip(fleet.batches.par_iter())
                .map(|(mask, batch)| {
                    let mut top = TopK::new(k);
                    let mut dense = Vec::new();
                    let mut buf = vec![0.0f64; BLOCK];
                    let mut acc = vec![0.0f64; BLOCK];
                    let mut mult = vec![0.0f64; BLOCK];
                    for (blk, words) in mask.words().chunks(BLOCK / 64).enumerate() {
                        if words.iter().all(|&w| w == 0) {
                            continue;
                        }
                        let row0 = blk * BLOCK;
                        let len = (batch.len() - row0).min(BLOCK);
                        acc[..len].fill(0.0);
                        for &(wi, lo, range) in &active {
                            let r = &raws[wi];
                            (r.values)(batch, row0, &mut buf[..len]);
                            if r.minval.is_some() || r.maxval.is_some() {
                                weights::kernels::clamp(&mut buf[..len], bounds[wi].0, bounds[wi].1);
                            }
                            match &r.multiplier {
                                Multiplier::Const(m) => {
                                    weights::kernels::accumulate(&mut acc[..len], &buf[..len], *m, lo, range)
                                }
                                Multiplier::PerAggset(ms) => weights::kernels::accumulate_coded(
                                    &mut acc[..len],
                                    &buf[..len],
                                    ms,
                                    &batch.aggset[row0..row0 + len],
                                    lo,
                                    range,
                                    &mut mult[..len],
                                ),
                            }
                        }
                        // A full top-k that no host of this block can enter:
                        // skip the per-host loop. Ties lose in the fast order
                        // (higher index), so `<=` is exact there.
                        if !need_weights && let Some(t) = top.threshold() {
                            let m = weights::kernels::max(&acc[..len]);
                            if m < t || (fast && m == t) {
                                continue;
                            }
                        }
                        for (w, &word) in words.iter().enumerate() {
                            let mut bits = word;
                            while bits != 0 {
                                let b = w * 64 + bits.trailing_zeros() as usize;
                                bits &= bits - 1;
                                let s = Scored { weight: acc[b], host: (batch.start + row0 + b) as u32 };
                                if fast {
                                    top.push(s, &weight_then_index);
                                } else {
                                    top.push(s, &better);
                                }
                                if need_weights {
                                    dense.push((s.host, s.weight));
                                }
                            }
                        }
                    }
                    (top, dense)
                })
                .collect()
        });
        let mut weights = Vec::new();
        if need_weights {
            weights = vec![0.0; fleet.len()];
            for (_, d) in &results {
                for &(h, w) in d {
                    weights[h as usize] = w;
                }
            }
        }
        let mut all = TopK::new(k);
        for (t, _) in results {
            all = if fast { all.merge(t, &weight_then_index) } else { all.merge(t, &better) };
        }
        (all.into_vec(), weights)
    }
}

/// Nova's `random.choice` among the best `subset` hosts (no draw for one).
fn subset_pick(rng: &mut ChaCha8Rng, subset: usize) -> usize {
    if subset > 1 { rng.random_range(0..subset) } else { 0 }
}

/// The uuid of instance `k` of request `index`: the one the request names,
/// else FORMAT.md's default.
fn instance_uuid(req: &BootRequest, index: usize, k: usize) -> u128 {
    req.instance_uuids.get(k).and_then(|u| parse_uuid(u)).unwrap_or_else(|| default_instance_uuid(index, k))
}

/// The one rayon pool every scheduler's kernels run on (CONVENTIONS.md
/// rule 6), one thread per core, named `quiver-kernel-N`.
fn kernel_pool() -> Result<Arc<rayon::ThreadPool>> {
    static POOL: std::sync::OnceLock<Arc<rayon::ThreadPool>> = std::sync::OnceLock::new();
    if let Some(p) = POOL.get() {
        return Ok(p.clone());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("quiver-kernel-{i}"))
        .build()
        .map_err(|e| EngineError::Internal(format!("rayon pool: {e}")))?;
    Ok(POOL.get_or_init(|| Arc::new(pool)).clone())
}

#[cfg(test)]
mod tests;
