//! The scheduling pipeline of one boot request (DESIGN.md section 2 and
//! FORMAT.md section 3): placement candidates, filters per instance, Nova's
//! weighing, top-k selection with `host_subset_size`, the claim walk,
//! consumption in place, and rollback of a failed multi-create.

use std::collections::HashMap;
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;

use crate::candidates::{PlacementQuery, PreparedQuery};
use crate::config::SchedulerConfig;
use crate::error::{EngineError, Result};
use crate::filters::{self, FilterError, GroupView, HostFilter, RequestContext};
use crate::fleet::{BLOCK, Fleet};
use crate::mask::Mask;
use crate::request::{BootRequest, ServerGroup, default_instance_uuid, format_uuid, parse_uuid};
use crate::select::{Scored, TopK, weight_then_index};
use crate::weights::{self, HostWeigher, Multiplier, Raw};

/// One instance's part of a decision.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct InstanceDecision {
    /// Instance uuid.
    pub uuid: String,
    /// Hosts that passed every filter.
    pub passed: usize,
    /// `[filter, hosts left]` after each filter that ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_trace: Option<Vec<(String, usize)>>,
    /// The first five weighed hosts with their weights.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top5: Option<Vec<(String, f64)>>,
    /// The host the claim landed on.
    pub chosen: Option<String>,
    /// Its weight.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    /// Alternates from the same cell (`select_destinations`' alternates).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alternates: Vec<String>,
}

/// A scheduling decision, in FORMAT.md section 4's line format.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Decision {
    /// Request index.
    pub req: usize,
    /// Request id.
    pub id: Option<String>,
    /// Instances asked for.
    pub num_instances: usize,
    /// Hosts entering the filters for instance 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement_candidates: Option<usize>,
    /// `ok`, `no_valid_host`, `unsupported` or `nova_error`.
    pub status: String,
    /// `placement`, `filters` or `claim` on `no_valid_host`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_stage: Option<String>,
    /// Why, for `unsupported` and `nova_error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Chosen hosts, one per instance (empty on failure).
    pub chosen: Vec<String>,
    /// Per instance.
    pub instances: Vec<InstanceDecision>,
}

/// Server groups known to the scheduler, evolving as requests add members.
#[derive(Clone, Debug, Default)]
pub struct Groups {
    groups: HashMap<u128, GroupState>,
}

#[derive(Clone, Debug)]
struct GroupState {
    policy: String,
    max_server_per_host: i64,
    members: Vec<u128>,
}

impl Groups {
    /// Registers groups from a request stream.
    ///
    /// # Errors
    /// A bad uuid, policy or rule, naming the group.
    pub fn new(groups: &[ServerGroup]) -> Result<Self> {
        let mut out = Groups::default();
        for g in groups {
            let uuid = parse_uuid(&g.uuid)
                .ok_or_else(|| EngineError::invalid(format!("server group uuid {:?} is not a uuid", g.uuid)))?;
            if !["affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity"].contains(&g.policy.as_str()) {
                return Err(EngineError::invalid(format!("server group {}: unknown policy {:?}", g.uuid, g.policy)));
            }
            let max = match g.rules.get("max_server_per_host") {
                None => 1,
                Some(v) => v
                    .as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                    .filter(|&n| n >= 1)
                    .ok_or_else(|| {
                        EngineError::invalid(format!(
                            "server group {}: max_server_per_host must be a positive integer",
                            g.uuid
                        ))
                    })?,
            };
            let members = g.members.iter().filter_map(|m| parse_uuid(m)).collect();
            out.groups.insert(uuid, GroupState { policy: g.policy.clone(), max_server_per_host: max, members });
        }
        Ok(out)
    }
}

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
    filters: Vec<Box<dyn HostFilter>>,
    weighers: Vec<Box<dyn HostWeigher>>,
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
    pub(crate) fn filters(&self) -> &[Box<dyn HostFilter>] {
        &self.filters
    }

    /// The weighers, in order.
    pub(crate) fn weighers(&self) -> &[Box<dyn HostWeigher>] {
        &self.weighers
    }

    /// The configuration.
    pub fn config(&self) -> &SchedulerConfig {
        &self.conf
    }

    /// Filter class names in order.
    pub fn filter_names(&self) -> Vec<&'static str> {
        self.filters.iter().map(|f| f.name()).collect()
    }

    /// Dotted weigher class paths in weighing order.
    pub fn weigher_paths(&self) -> Vec<String> {
        self.weighers.iter().map(|w| format!("{}.{}", w.module(), w.name())).collect()
    }

    /// The placement query Nova would send for `req` (its pre-filters
    /// included: AZ to `member_of`, `!COMPUTE_STATUS_DISABLED`, `OWNER_NOVA`
    /// once every compute is new enough).
    ///
    /// # Errors
    /// A request Quiver's placement emulation does not model.
    pub fn placement_query(
        &self,
        fleet: &Fleet,
        req: &BootRequest,
    ) -> std::result::Result<PlacementQuery, FilterError> {
        self.placement_query_for(fleet, req, false)
    }

    /// [`Scheduler::placement_query`]; `numbered_ok`: the caller restricts
    /// the hosts to Placement's candidates for the numbered groups, so the
    /// fleet checks the unnumbered group on the root only.
    fn placement_query_for(
        &self,
        fleet: &Fleet,
        req: &BootRequest,
        numbered_ok: bool,
    ) -> std::result::Result<PlacementQuery, FilterError> {
        let rr = crate::resource_request::from_flavor(&req.flavor, req.is_bfv)?;
        if !rr.numbered.is_empty() && !numbered_ok {
            return Err(FilterError::Unsupported(
                "numbered request groups (resourcesN:) need Placement's allocation candidates for provider trees: \
                 schedule them through quiver serve"
                    .into(),
            ));
        }
        let mut q = PlacementQuery::default();
        q.required.extend(rr.unnumbered.required.iter().map(|t| t.to_string()));
        q.forbidden.extend(rr.unnumbered.forbidden.iter().map(|t| t.to_string()));
        if fleet.min_service_version >= 73 {
            q.required.push("OWNER_NOVA".into());
        }
        q.forbidden.push("COMPUTE_STATUS_DISABLED".into());
        for &(rc, a) in &rr.unnumbered.resources {
            match fleet.rc_index(rc) {
                Some(i) => q.resources.push((i, a)),
                None => q.unknown_resources.push(rc.to_owned()),
            }
        }
        if let Some(az) = req.availability_zone.as_deref().filter(|a| !a.is_empty()) {
            let aggs: Vec<u32> = fleet
                .aggregates
                .iter()
                .enumerate()
                .filter(|(_, a)| a.metadata.get("availability_zone").is_some_and(|v| v == az))
                .map(|(i, _)| i as u32)
                .collect();
            if !aggs.is_empty() {
                q.member_of.push(aggs);
            }
        }
        Ok(q)
    }

    /// Schedules request `index` against `fleet`, claiming and consuming in
    /// place; a failed request leaves the fleet as it was.
    pub fn schedule(&mut self, fleet: &mut Fleet, groups: &mut Groups, req: &BootRequest, index: usize) -> Decision {
        self.schedule_with(fleet, groups, req, index, true, None)
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
        let uuids: Vec<u128> = (0..n)
            .map(|k| {
                req.instance_uuids.get(k).and_then(|u| parse_uuid(u)).unwrap_or_else(|| default_instance_uuid(index, k))
            })
            .collect();
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
        let mut group: Option<GroupView> = None;
        if let Some(g) = req.hint_str("group") {
            match parse_uuid(&g).and_then(|u| groups.groups.get_mut(&u)) {
                Some(state) => {
                    state.members.extend(uuids.iter().copied());
                    let mut hosts: Vec<u32> =
                        state.members.iter().filter_map(|m| fleet.instances.get(m).copied()).collect();
                    hosts.sort_unstable();
                    hosts.dedup();
                    group = Some(GroupView {
                        policy: state.policy.clone(),
                        members: state.members.clone(),
                        hosts,
                        max_server_per_host: state.max_server_per_host,
                    });
                }
                None => {
                    d.status = "unsupported".into();
                    d.error = Some(format!("scheduler hint group={g} names no known server group"));
                    return d;
                }
            }
        }
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
                    let f = &req.flavor;
                    fleet.consume(
                        host,
                        f.memory_mb as i32,
                        ((f.root_gb + f.ephemeral_gb) * 1024) as i32,
                        f.vcpus as i32,
                    );
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
        for f in &self.filters {
            if k > 0 && f.run_filter_once_per_request() {
                continue;
            }
            kernels.push((f.name(), f.prepare(&ctx)?));
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
            for w in &self.weighers {
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
            let pick = if subset > 1 { self.rng.random_range(0..subset) } else { 0 };
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

fn fail_with(mut d: Decision, e: FilterError) -> Decision {
    d.status = match e {
        FilterError::Unsupported(_) => "unsupported".into(),
        FilterError::NovaError(_) => "nova_error".into(),
    };
    d.error = Some(e.to_string());
    d.chosen.clear();
    d
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
mod tests {
    use super::*;
    use crate::host::{HostRecord, Inventory};
    use crate::request::Flavor;

    fn fleet(n: usize, vcpus: i64) -> Fleet {
        let mut b = crate::FleetBuilder::new();
        for i in 0..n {
            b.push(HostRecord {
                name: format!("h{i}"),
                inventories: vec![Inventory::simple("VCPU", vcpus, 1.0), Inventory::simple("MEMORY_MB", 8192, 1.0)],
                free_ram_mb: 8192 - i as i64, // a strict order: h0 is the best for RAMWeigher
                traits: vec!["OWNER_NOVA".into()],
                hypervisor_type: "QEMU".into(),
                cpu_info: "{}".into(),
                ..Default::default()
            })
            .unwrap();
        }
        b.finish().unwrap()
    }

    fn req(n: u32, vcpus: u32) -> BootRequest {
        BootRequest {
            flavor: Flavor { vcpus, memory_mb: 1024, ..Default::default() },
            num_instances: n,
            ..Default::default()
        }
    }

    #[test]
    fn select_decides_within_the_given_hosts_and_leaves_the_fleet_as_it_was() {
        let mut f = fleet(3, 4);
        let before = (f.usage().used.clone(), f.usage().free_ram_mb.clone(), f.instances.len());
        let mut s = Scheduler::new(SchedulerConfig::default(), 0).unwrap();
        let d = s.select(&mut f, &mut Groups::default(), &req(2, 1), 0, None);
        assert_eq!(d.chosen, vec!["h0", "h1"], "the second instance saw the first one's consumption");
        let within = Mask::from_fn(3, |h| h == 2);
        let d = s.select(&mut f, &mut Groups::default(), &req(1, 1), 1, Some(&within));
        assert_eq!(d.chosen, vec!["h2"]);
        assert_eq!((f.usage().used.clone(), f.usage().free_ram_mb.clone(), f.instances.len()), before);
        // Numbered groups: only with Placement's hosts.
        let mut numbered = req(1, 1);
        numbered.flavor.extra_specs.insert("resources1:VGPU".into(), "1".into());
        assert_eq!(s.select(&mut f, &mut Groups::default(), &numbered, 2, None).status, "unsupported");
        let d = s.select(&mut f, &mut Groups::default(), &numbered, 3, Some(&within));
        assert_eq!(d.chosen, vec!["h2"]);
    }

    #[test]
    fn failed_multi_create_rolls_back_every_claim() {
        let mut f = fleet(3, 4);
        let before =
            (f.usage().used.clone(), f.usage().avail.clone(), f.usage().free_ram_mb.clone(), f.instances.len());
        let mut s = Scheduler::new(SchedulerConfig::default(), 0).unwrap();
        // 3 hosts x 4 vCPU = 12; ask for 4 x 4 vCPU: the fourth cannot fit.
        let d = s.schedule(&mut f, &mut Groups::default(), &req(4, 4), 0);
        assert_eq!(d.status, "no_valid_host");
        assert_eq!(d.instances.len(), 4);
        assert_eq!(d.instances[3].chosen, None);
        assert_eq!(
            (f.usage().used.clone(), f.usage().avail.clone(), f.usage().free_ram_mb.clone(), f.instances.len()),
            before
        );
        // Three fit, one per host, best first.
        let d = s.schedule(&mut f, &mut Groups::default(), &req(3, 4), 1);
        assert_eq!(d.status, "ok");
        assert_eq!(d.chosen, vec!["h0", "h1", "h2"]);
        assert!((0..3).all(|h| f.usage().avail[0][h] == 0));
        assert_eq!(f.instances.len(), 3);
    }

    #[test]
    fn cached_block_extremes_never_change_a_decision() {
        // 10,000 hosts = 3 weighing blocks; some hosts disabled or down so
        // the extreme hosts of a block are sometimes filtered out.
        let mut b = crate::FleetBuilder::new();
        let mut x: u64 = 12345;
        let mut rnd = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        for i in 0..10_000 {
            let mut vcpu = Inventory::simple("VCPU", 8 + rnd(56) as i64, 4.0);
            vcpu.used = rnd(8) as i64;
            b.push(HostRecord {
                name: format!("h{i}"),
                inventories: vec![
                    vcpu,
                    Inventory::simple("MEMORY_MB", 65536, 1.0),
                    Inventory::simple("DISK_GB", 1000, 1.0),
                ],
                traits: vec!["OWNER_NOVA".into()],
                free_ram_mb: rnd(65536) as i64,
                free_disk_mb: rnd(1_000_000) as i64,
                num_io_ops: rnd(4) as i64,
                failed_builds: (rnd(50) == 0) as i64,
                hypervisor_version: [6_002_000, 8_002_002, 9_001_000][rnd(3) as usize],
                service: crate::host::ServiceRecord { disabled: rnd(10) == 0, ..Default::default() },
                hypervisor_type: "QEMU".into(),
                cpu_info: "{}".into(),
                ..Default::default()
            })
            .unwrap();
        }
        let fleet = b.finish().unwrap();
        // All weighers; then RAMWeigher alone, where the chosen host holds the
        // fleet's largest free RAM, so a stale cached maximum would change
        // every reported weight.
        let ram_only = SchedulerConfig { weight_classes: vec!["RAMWeigher".into()], ..Default::default() };
        for conf in [SchedulerConfig::default(), ram_only] {
            let mut warm_fleet = fleet.clone();
            let mut cold_fleet = fleet.clone();
            let mut warm = Scheduler::new(conf.clone(), 0).unwrap();
            for i in 0..60 {
                let r = req(1 + (i % 3) as u32, 1 + (i % 4) as u32);
                let d1 = warm.schedule(&mut warm_fleet, &mut Groups::default(), &r, i);
                let d2 =
                    Scheduler::new(conf.clone(), 0).unwrap().schedule(&mut cold_fleet, &mut Groups::default(), &r, i);
                assert_eq!(d1, d2, "request {i}");
                assert_eq!(d1.status, "ok");
            }
        }
    }

    #[test]
    fn host_subset_size_is_random_but_seeded() {
        let pick = |seed| {
            let mut f = fleet(50, 64);
            let conf = SchedulerConfig { host_subset_size: 10, ..Default::default() };
            let mut s = Scheduler::new(conf, seed).unwrap();
            (0..8)
                .map(|i| s.schedule(&mut f, &mut Groups::default(), &req(1, 1), i).chosen[0].clone())
                .collect::<Vec<_>>()
        };
        let a = pick(7);
        assert_eq!(a, pick(7));
        assert_ne!(a, pick(8));
        assert!(a.iter().collect::<std::collections::HashSet<_>>().len() > 1, "{a:?}");
    }

    #[test]
    fn shuffle_best_same_weighed_hosts_spreads_over_the_tie_group() {
        // 40 identical hosts: every one ties for best.
        let mut b = crate::FleetBuilder::new();
        for i in 0..40 {
            b.push(HostRecord {
                name: format!("t{i}"),
                inventories: vec![Inventory::simple("VCPU", 64, 1.0), Inventory::simple("MEMORY_MB", 65536, 1.0)],
                traits: vec!["OWNER_NOVA".into()],
                hypervisor_type: "QEMU".into(),
                cpu_info: "{}".into(),
                ..Default::default()
            })
            .unwrap();
        }
        let fleet = b.finish().unwrap();
        let run = |shuffle: bool, seed: u64| {
            let mut f = fleet.clone();
            let conf = SchedulerConfig { shuffle_best_same_weighed_hosts: shuffle, ..Default::default() };
            let mut s = Scheduler::new(conf, seed).unwrap();
            // Restore usage after each request so every one sees the same 40-way tie.
            let pristine = f.usage().clone();
            (0..20)
                .map(|i| {
                    let d = s.schedule(&mut f, &mut Groups::default(), &req(1, 1), i);
                    f.set_usage(pristine.clone()).unwrap();
                    d.chosen[0].clone()
                })
                .collect::<Vec<_>>()
        };
        assert!(run(false, 1).iter().all(|h| h == "t0"), "without shuffling the first host wins every tie");
        let shuffled = run(true, 1);
        assert_eq!(shuffled, run(true, 1));
        let distinct: std::collections::HashSet<_> = shuffled.iter().collect();
        assert!(distinct.len() > 5, "{shuffled:?}");
        // Hosts beyond the first top-k window are reachable too.
        assert!(shuffled.iter().any(|h| h[1..].parse::<usize>().unwrap() >= TOP_K), "{shuffled:?}");
    }

    #[test]
    fn numa_requests_are_rejected_not_ignored() {
        let mut f = fleet(2, 4);
        let mut conf = SchedulerConfig::default();
        conf.enabled_filters.push("NUMATopologyFilter".into());
        let mut s = Scheduler::new(conf, 0).unwrap();
        let mut r = req(1, 1);
        r.flavor.extra_specs.insert("hw:numa_nodes".into(), "2".into());
        let d = s.schedule(&mut f, &mut Groups::default(), &r, 0);
        assert_eq!(d.status, "unsupported");
        assert!(d.error.unwrap().contains("not supported yet"));
        assert!(f.instances.is_empty());
    }
}
