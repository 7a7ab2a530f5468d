//! The test oracle: Placement's search (objects/allocation_candidate.py
//! and research_context.py) transcribed set by set over the in-memory
//! maps, as Quiver answered `GET /allocation_candidates` before the
//! columnar search. Per request group it finds providers with capacity
//! (single providers, or whole trees plus sharing providers for the
//! unnumbered group), then merges the groups per anchor root with
//! group_policy, same_subtree and capacity checks. Only tests call it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::merge::{consolidate, isolated};
use super::{AllocationRequest, Candidates, Resource, Summary};
use crate::error::{Error, Result};
use crate::model::{AggId, ClassId, RpId, State, TraitId};
use crate::request::{RequestGroup, RequestWide};

struct Wide<'a> {
    limit: Option<usize>,
    group_policy: Option<&'a str>,
    same_subtrees: &'a [BTreeSet<String>],
    anchor_roots: Option<HashSet<RpId>>,
    has_trees: bool,
    summaries: BTreeMap<RpId, Summary>,
    /// (rp, class) -> (capacity, used, max_unit)
    psum: HashMap<(RpId, ClassId), (i64, i64, i64)>,
    multi_group_rcs: BTreeSet<ClassId>,
    rcs_amounts: BTreeMap<ClassId, i64>,
    sharing: BTreeSet<RpId>,
}

impl Wide<'_> {
    fn in_anchors(&self, root: RpId) -> bool {
        self.anchor_roots.as_ref().is_none_or(|a| a.contains(&root))
    }
}

struct Group<'a> {
    g: &'a RequestGroup,
    resources: Vec<(ClassId, i64)>,
    rps_in_aggs: BTreeSet<RpId>,
    member_of: bool,
    forbidden_aggs: BTreeSet<AggId>,
    required: Vec<BTreeSet<TraitId>>,
    forbidden: BTreeSet<TraitId>,
    tree_root: Option<RpId>,
    with_resource: BTreeMap<ClassId, BTreeSet<(RpId, RpId)>>,
}

/// Allocation requests per request-group suffix, in first-seen order.
type SuffixLists = Vec<(String, Vec<AllocationRequest>)>;

struct FlatPredicates {
    resources: Vec<(ClassId, i64)>,
    required: Vec<BTreeSet<TraitId>>,
    forbidden: BTreeSet<TraitId>,
    root_required: BTreeSet<TraitId>,
    root_forbidden: BTreeSet<TraitId>,
    tree_root: Option<RpId>,
    member_of: Vec<BTreeSet<AggId>>,
    forbidden_aggs: BTreeSet<AggId>,
}

/// Raised internally when a group cannot match anything.
struct NoResults;

impl State {
    /// What the old search answers for `GET /allocation_candidates`.
    pub fn allocation_candidates_oracle(
        &self,
        groups: &[RequestGroup],
        wide: &RequestWide,
        nested_aware: bool,
    ) -> Result<Candidates> {
        self.check_classes(groups)?;
        if let Some(fast) = self.flat_single_group(groups, wide) {
            return fast;
        }
        match self.candidates_inner(groups, wide, nested_aware) {
            Ok(c) => Ok(c),
            Err(Ok(NoResults)) => Ok(Candidates::default()),
            Err(Err(e)) => Err(e),
        }
    }

    fn candidates_inner(
        &self,
        groups: &[RequestGroup],
        rq: &RequestWide,
        nested_aware: bool,
    ) -> std::result::Result<Candidates, std::result::Result<NoResults, Error>> {
        let mut w = Wide {
            limit: rq.limit,
            group_policy: rq.group_policy.as_deref(),
            same_subtrees: &rq.same_subtrees,
            anchor_roots: None,
            has_trees: self.nested > 0,
            summaries: BTreeMap::new(),
            psum: HashMap::new(),
            multi_group_rcs: BTreeSet::new(),
            rcs_amounts: BTreeMap::new(),
            sharing: BTreeSet::new(),
        };
        if !rq.root_required.is_empty() || !rq.root_forbidden.is_empty() {
            let req = self.trait_set(&rq.root_required).map_err(Err)?;
            let forb = self.trait_set(&rq.root_forbidden).map_err(Err)?;
            let roots: HashSet<RpId> = self
                .live_providers()
                .filter(|p| p.parent.is_none())
                .filter(|p| req.iter().all(|t| p.traits.contains(t)) && !forb.iter().any(|t| p.traits.contains(t)))
                .map(|p| p.id)
                .collect();
            if roots.is_empty() {
                return Err(Ok(NoResults));
            }
            w.anchor_roots = Some(roots);
        }
        if let Some(shares) = self.traits.get("MISC_SHARES_VIA_AGGREGATE") {
            w.sharing = self.live_providers().filter(|p| p.traits.contains(&shares)).map(|p| p.id).collect();
        }
        let mut by_suffix: Vec<(String, Vec<AllocationRequest>)> = vec![];
        for g in groups {
            let ctx = self.group_context(g).map_err(|e| match e {
                None => Ok(NoResults),
                Some(e) => Err(e),
            })?;
            for &(c, amount) in &ctx.resources {
                if w.rcs_amounts.contains_key(&c) {
                    w.multi_group_rcs.insert(c);
                }
                *w.rcs_amounts.entry(c).or_default() += amount;
            }
            let mut areqs = self.one_group(&ctx, &mut w);
            if areqs.is_empty() {
                return Err(Ok(NoResults));
            }
            for a in &mut areqs {
                a.use_same_provider = g.use_same_provider;
            }
            by_suffix.push((g.suffix.clone(), areqs));
        }
        let (mut reqs, mut sums) = self.merge(by_suffix, &w);
        if !nested_aware && w.has_trees {
            let mut kept_rps = BTreeSet::new();
            reqs.retain(|a| {
                let rps: BTreeSet<RpId> = a.resources.iter().map(|r| r.rp).collect();
                let roots: BTreeSet<RpId> = rps.iter().map(|&rp| self.provider(rp).root).collect();
                let keep = rps.len() == roots.len();
                if keep {
                    kept_rps.extend(rps);
                }
                keep
            });
            sums.retain(|s| kept_rps.contains(&s.rp));
        }
        if let Some(limit) = w.limit
            && limit < reqs.len()
        {
            reqs.truncate(limit);
            let roots: BTreeSet<RpId> =
                reqs.iter().flat_map(|a| a.resources.iter().map(|r| self.provider(r.rp).root)).collect();
            sums.retain(|s| roots.contains(&s.root));
        }
        Ok(Candidates { requests: reqs, summaries: sums })
    }

    /// The common case in one pass: one unnumbered group on a fleet with
    /// no nested providers and no sharing providers. Placement's search then
    /// reduces to "each provider that passes every predicate is one
    /// candidate", in provider order, so the pass stops at `limit` and only
    /// the kept providers are summarized. Returns `None` when the request
    /// needs the general search.
    fn flat_single_group(&self, groups: &[RequestGroup], rq: &RequestWide) -> Option<Result<Candidates>> {
        let [g] = groups else { return None };
        if !g.suffix.is_empty() || self.nested > 0 || !rq.same_subtrees.is_empty() {
            return None;
        }
        if let Some(shares) = self.traits.get("MISC_SHARES_VIA_AGGREGATE")
            && self.live_providers().any(|p| p.traits.contains(&shares))
        {
            return None;
        }
        let ctx = match self.flat_predicates(g, rq) {
            Ok(Some(c)) => c,
            Ok(None) => return Some(Ok(Candidates::default())),
            Err(e) => return Some(Err(e)),
        };
        let limit = rq.limit.unwrap_or(usize::MAX);
        let mut out = Candidates::default();
        for p in self.live_providers() {
            if out.requests.len() >= limit {
                break;
            }
            if !ctx.resources.iter().all(|&(c, n)| p.inventory(c).is_some_and(|r| r.inv.fits(r.used, n)))
                || !ctx.required.iter().all(|any| any.iter().any(|t| p.traits.contains(t)))
                || p.traits.iter().any(|t| ctx.forbidden.contains(t) || ctx.root_forbidden.contains(t))
                || !ctx.root_required.iter().all(|t| p.traits.contains(t))
                || ctx.tree_root.is_some_and(|r| r != p.root)
                || !ctx.member_of.iter().all(|any| any.iter().any(|a| p.aggregates.contains(a)))
                || p.aggregates.iter().any(|a| ctx.forbidden_aggs.contains(a))
            {
                continue;
            }
            out.requests.push(AllocationRequest {
                anchor: p.id,
                use_same_provider: false,
                resources: ctx.resources.iter().map(|&(class, amount)| Resource { rp: p.id, class, amount }).collect(),
                mappings: BTreeMap::from([(String::new(), BTreeSet::from([p.id]))]),
            });
            out.summaries.push(Summary {
                rp: p.id,
                root: p.root,
                parent: None,
                resources: p.inventories.iter().map(|r| (r.class, r.inv.capacity(), r.used, r.inv.max_unit)).collect(),
                traits: p.traits.iter().copied().collect(),
            });
        }
        Some(Ok(out))
    }

    /// The predicates of the flat path; `Ok(None)` when nothing can match
    /// (an in_tree provider or member_of aggregates that do not exist).
    fn flat_predicates(&self, g: &RequestGroup, rq: &RequestWide) -> Result<Option<FlatPredicates>> {
        let resources: Vec<(ClassId, i64)> =
            g.resources.iter().map(|(rc, n)| (self.classes.get(rc).expect("checked"), *n)).collect();
        // Placement's order: root traits, member_of, traits, in_tree.
        let root_required = self.trait_set(&rq.root_required)?;
        let root_forbidden = self.trait_set(&rq.root_forbidden)?;
        let member_of = self.agg_groups(&g.member_of);
        if member_of.iter().any(|any| any.is_empty()) {
            return Ok(None);
        }
        let required = self.trait_groups(&g.required_traits)?;
        let forbidden = self.trait_set(&g.forbidden_traits)?;
        let tree_root = match &g.in_tree {
            Some(u) => match self.provider_by_uuid(u) {
                Some(p) => Some(p.root),
                None => return Ok(None),
            },
            None => None,
        };
        Ok(Some(FlatPredicates {
            resources,
            required,
            forbidden,
            root_required,
            root_forbidden,
            tree_root,
            member_of,
            forbidden_aggs: g.forbidden_aggs.iter().filter_map(|a| self.aggs.get(a)).collect(),
        }))
    }

    fn providers_in_all_aggs(&self, member_of: &[BTreeSet<AggId>]) -> BTreeSet<RpId> {
        let mut out: Option<BTreeSet<RpId>> = None;
        for g in member_of {
            let mut members = BTreeSet::new();
            for a in g {
                if let Some(m) = self.agg_members.get(a) {
                    members.extend(m.iter().copied());
                }
            }
            out = Some(match out {
                None => members,
                Some(prev) => prev.intersection(&members).copied().collect(),
            });
        }
        out.unwrap_or_default()
    }

    fn group_context<'a>(&self, g: &'a RequestGroup) -> std::result::Result<Group<'a>, Option<Error>> {
        let resources: Vec<(ClassId, i64)> =
            g.resources.iter().map(|(rc, n)| (self.classes.get(rc).expect("checked"), *n)).collect();
        let member_of_ids = self.agg_groups(&g.member_of);
        let rps_in_aggs = if g.member_of.is_empty() {
            BTreeSet::new()
        } else {
            let s = self.providers_in_all_aggs(&member_of_ids);
            if s.is_empty() {
                return Err(None);
            }
            s
        };
        let required = self.trait_groups(&g.required_traits).map_err(Some)?;
        let forbidden = self.trait_set(&g.forbidden_traits).map_err(Some)?;
        let tree_root = match &g.in_tree {
            Some(u) => match self.provider_by_uuid(u) {
                Some(p) => Some(p.root),
                None => return Err(None),
            },
            None => None,
        };
        let mut with_resource = BTreeMap::new();
        for &(class, amount) in &resources {
            let set: BTreeSet<(RpId, RpId)> = self
                .live_providers()
                .filter(|p| tree_root.is_none_or(|r| p.root == r))
                .filter(|p| p.inventory(class).is_some_and(|r| r.inv.fits(r.used, amount)))
                .map(|p| (p.id, p.root))
                .collect();
            if set.is_empty() {
                return Err(None);
            }
            with_resource.insert(class, set);
        }
        Ok(Group {
            g,
            resources,
            rps_in_aggs,
            member_of: !g.member_of.is_empty(),
            forbidden_aggs: g.forbidden_aggs.iter().filter_map(|a| self.aggs.get(a)).collect(),
            required,
            forbidden,
            tree_root,
            with_resource,
        })
    }

    fn providers_in_any_agg(&self, aggs: &BTreeSet<AggId>) -> BTreeSet<RpId> {
        let mut out = BTreeSet::new();
        for a in aggs {
            if let Some(m) = self.agg_members.get(a) {
                out.extend(m.iter().copied());
            }
        }
        out
    }

    /// (sharing provider, anchor root) pairs: roots of every provider that
    /// shares an aggregate with the sharing provider.
    fn anchors_for_sharing(&self, sharing: &BTreeSet<RpId>) -> BTreeSet<(RpId, RpId)> {
        let mut out = BTreeSet::new();
        for &sp in sharing {
            for a in &self.provider(sp).aggregates {
                if let Some(m) = self.agg_members.get(a) {
                    for &rp in m {
                        out.insert((sp, self.provider(rp).root));
                    }
                }
            }
        }
        out
    }

    fn one_group(&self, ctx: &Group, w: &mut Wide) -> Vec<AllocationRequest> {
        if !ctx.g.use_same_provider && (!w.sharing.is_empty() || w.has_trees) {
            if !ctx.required.is_empty() {
                let any: BTreeSet<TraitId> = ctx.required.iter().flatten().copied().collect();
                if !self.live_providers().any(|p| p.traits.iter().any(|t| any.contains(t))) {
                    return vec![];
                }
            }
            let cands = self.trees_matching_all(ctx, w);
            return self.multiple_providers(ctx, w, cands);
        }
        let tuples = self.provider_ids_matching(ctx);
        self.single_provider(ctx, w, tuples)
    }

    fn trees_matching_all(&self, ctx: &Group, w: &mut Wide) -> BTreeSet<(RpId, RpId, ClassId)> {
        let bad_aggs = if ctx.forbidden_aggs.is_empty() {
            BTreeSet::new()
        } else {
            self.providers_in_any_agg(&ctx.forbidden_aggs)
        };
        let mut provs: BTreeSet<(RpId, RpId, ClassId)> = BTreeSet::new();
        for &(class, _) in &ctx.resources {
            let mut rc_provs: BTreeSet<(RpId, RpId, ClassId)> =
                ctx.with_resource[&class].iter().map(|&(rp, root)| (rp, root, class)).collect();
            if rc_provs.is_empty() {
                return BTreeSet::new();
            }
            // Placement narrows its shared set in place here (`&=`); later
            // groups see the narrowed set, and so do we.
            if ctx.member_of {
                w.sharing = w.sharing.intersection(&ctx.rps_in_aggs).copied().collect();
            }
            let sharing: BTreeSet<RpId> = w
                .sharing
                .iter()
                .copied()
                .filter(|sp| ctx.with_resource[&class].iter().any(|&(rp, _)| rp == *sp))
                .collect();
            if !sharing.is_empty() && ctx.tree_root.is_none() {
                for (sp, anchor) in self.anchors_for_sharing(&sharing) {
                    rc_provs.insert((sp, anchor, class));
                }
            }
            if let Some(anchors) = &w.anchor_roots {
                rc_provs.retain(|&(_, root, _)| anchors.contains(&root));
                if rc_provs.is_empty() {
                    return BTreeSet::new();
                }
            }
            if ctx.member_of {
                rc_provs.retain(|&(rp, root, _)| ctx.rps_in_aggs.contains(&rp) || ctx.rps_in_aggs.contains(&root));
                if rc_provs.is_empty() {
                    return BTreeSet::new();
                }
            }
            if !ctx.forbidden_aggs.is_empty() {
                rc_provs.retain(|&(rp, root, _)| !(bad_aggs.contains(&rp) || bad_aggs.contains(&root)));
                if rc_provs.is_empty() {
                    return BTreeSet::new();
                }
            }
            if provs.is_empty() {
                provs = rc_provs;
            } else {
                let a: BTreeSet<RpId> = provs.iter().map(|t| t.1).collect();
                let b: BTreeSet<RpId> = rc_provs.iter().map(|t| t.1).collect();
                provs.extend(rc_provs);
                provs.retain(|t| a.contains(&t.1) && b.contains(&t.1));
            }
            if provs.is_empty() {
                return provs;
            }
        }
        if (ctx.required.is_empty() && ctx.forbidden.is_empty()) || !w.sharing.is_empty() {
            return provs;
        }
        // _get_trees_with_traits
        let rp_ids: BTreeSet<RpId> = provs.iter().map(|t| t.0).collect();
        let original: BTreeMap<RpId, RpId> = rp_ids.iter().map(|&rp| (rp, self.provider(rp).root)).collect();
        let good: BTreeMap<RpId, RpId> = original
            .iter()
            .filter(|(rp, _)| !self.provider(**rp).traits.iter().any(|t| ctx.forbidden.contains(t)))
            .map(|(a, b)| (*a, *b))
            .collect();
        let keep: BTreeSet<(RpId, RpId)> = if ctx.required.is_empty() {
            let good_roots: BTreeSet<RpId> = good.values().copied().collect();
            original.iter().filter(|(_, root)| good_roots.contains(root)).map(|(a, b)| (*a, *b)).collect()
        } else {
            let mut root_traits: BTreeMap<RpId, BTreeSet<TraitId>> = BTreeMap::new();
            for (&rp, &root) in &good {
                root_traits.entry(root).or_default().extend(self.provider(rp).traits.iter().copied());
            }
            let mut out = BTreeSet::new();
            for (root, traits) in root_traits {
                if ctx.required.iter().all(|any| any.iter().any(|t| traits.contains(t))) {
                    out.extend(original.iter().filter(|(_, r)| **r == root).map(|(a, b)| (*a, *b)));
                }
            }
            out
        };
        provs.retain(|t| keep.contains(&(t.0, t.1)));
        provs
    }

    /// Summaries for every provider of the trees rooted at `roots` that
    /// are not summarized yet.
    fn build_summaries(&self, w: &mut Wide, roots: impl IntoIterator<Item = RpId>) {
        for root in roots {
            let Some(Some(rp)) = self.providers.get(root as usize) else { continue };
            if rp.parent.is_some() || w.summaries.contains_key(&root) {
                continue;
            }
            for id in self.tree(root) {
                let p = self.provider(id);
                let mut resources = Vec::with_capacity(p.inventories.len());
                for r in &p.inventories {
                    let cap = r.inv.capacity();
                    resources.push((r.class, cap, r.used, r.inv.max_unit));
                    w.psum.insert((id, r.class), (cap, r.used, r.inv.max_unit));
                }
                w.summaries.insert(
                    id,
                    Summary {
                        rp: id,
                        root: p.root,
                        parent: p.parent,
                        resources,
                        traits: p.traits.iter().copied().collect(),
                    },
                );
            }
        }
    }

    fn multiple_providers(
        &self,
        ctx: &Group,
        w: &mut Wide,
        cands: BTreeSet<(RpId, RpId, ClassId)>,
    ) -> Vec<AllocationRequest> {
        if cands.is_empty() {
            return vec![];
        }
        let all: BTreeSet<RpId> = cands.iter().flat_map(|t| [t.0, t.1]).collect();
        self.build_summaries(w, all);
        let amount: BTreeMap<ClassId, i64> = ctx.resources.iter().copied().collect();
        let mut tree: BTreeMap<RpId, BTreeMap<ClassId, Vec<Resource>>> = BTreeMap::new();
        for &(rp, root, class) in &cands {
            tree.entry(root).or_default().entry(class).or_default().push(Resource {
                rp,
                class,
                amount: amount[&class],
            });
        }
        let mut out = vec![];
        let mut seen = HashSet::new();
        for (root, per_class) in tree {
            let lists: Vec<&Vec<Resource>> = per_class.values().collect();
            for combo in product(&lists) {
                if !self.traits_ok(&combo, &ctx.required, &ctx.forbidden) {
                    continue;
                }
                let rps: BTreeSet<RpId> = combo.iter().map(|r| r.rp).collect();
                let a = AllocationRequest {
                    anchor: root,
                    use_same_provider: false,
                    resources: combo,
                    mappings: BTreeMap::from([(ctx.g.suffix.clone(), rps)]),
                };
                if seen.insert(a.key()) {
                    out.push(a);
                }
            }
        }
        out
    }

    fn traits_ok(&self, combo: &[Resource], required: &[BTreeSet<TraitId>], forbidden: &BTreeSet<TraitId>) -> bool {
        let mut all = BTreeSet::new();
        for r in combo {
            let t = &self.provider(r.rp).traits;
            if t.iter().any(|x| forbidden.contains(x)) {
                return false;
            }
            all.extend(t.iter().copied());
        }
        required.iter().all(|any| any.iter().any(|t| all.contains(t)))
    }

    fn provider_ids_matching(&self, ctx: &Group) -> Vec<(RpId, RpId)> {
        let mut filtered: BTreeSet<RpId> = BTreeSet::new();
        if !ctx.required.is_empty() {
            filtered = self
                .live_providers()
                .filter(|p| ctx.required.iter().all(|any| any.iter().any(|t| p.traits.contains(t))))
                .map(|p| p.id)
                .collect();
            if filtered.is_empty() {
                return vec![];
            }
        }
        if ctx.member_of {
            filtered = if filtered.is_empty() {
                ctx.rps_in_aggs.clone()
            } else {
                filtered.intersection(&ctx.rps_in_aggs).copied().collect()
            };
            if filtered.is_empty() {
                return vec![];
            }
        }
        let mut forbidden_rps = BTreeSet::new();
        if !ctx.forbidden_aggs.is_empty() {
            let bad = self.providers_in_any_agg(&ctx.forbidden_aggs);
            if !filtered.is_empty() {
                filtered.retain(|rp| !bad.contains(rp));
                if filtered.is_empty() {
                    return vec![];
                }
            }
            forbidden_rps.extend(bad);
        }
        if !ctx.forbidden.is_empty() {
            let bad: BTreeSet<RpId> = self
                .live_providers()
                .filter(|p| p.traits.iter().any(|t| ctx.forbidden.contains(t)))
                .map(|p| p.id)
                .collect();
            if !filtered.is_empty() {
                filtered.retain(|rp| !bad.contains(rp));
                if filtered.is_empty() {
                    return vec![];
                }
            }
            forbidden_rps.extend(bad);
        }
        let mut last: Option<&BTreeSet<(RpId, RpId)>> = None;
        let mut first = true;
        for (class, _) in &ctx.resources {
            let provs = &ctx.with_resource[class];
            let ids: BTreeSet<RpId> = provs.iter().map(|t| t.0).collect();
            if first {
                first = false;
                if !filtered.is_empty() {
                    filtered.retain(|rp| ids.contains(rp));
                } else {
                    filtered = ids.difference(&forbidden_rps).copied().collect();
                }
            } else {
                filtered.retain(|rp| ids.contains(rp));
            }
            if filtered.is_empty() {
                return vec![];
            }
            last = Some(provs);
        }
        match last {
            Some(provs) => provs.iter().copied().filter(|t| filtered.contains(&t.0)).collect(),
            None => self
                .live_providers()
                .filter(|p| (filtered.is_empty() || filtered.contains(&p.id)) && !forbidden_rps.contains(&p.id))
                .map(|p| (p.id, p.root))
                .filter(|t| filtered.contains(&t.0))
                .collect(),
        }
    }

    fn single_provider(&self, ctx: &Group, w: &mut Wide, tuples: Vec<(RpId, RpId)>) -> Vec<AllocationRequest> {
        if tuples.is_empty() {
            return vec![];
        }
        let roots: BTreeSet<RpId> = tuples.iter().map(|t| t.1).collect();
        self.build_summaries(w, roots);
        let shares = self.traits.get("MISC_SHARES_VIA_AGGREGATE");
        let mut out = Vec::with_capacity(tuples.len());
        for (rp, root) in tuples {
            let a = AllocationRequest {
                anchor: root,
                use_same_provider: true,
                resources: ctx.resources.iter().map(|&(class, amount)| Resource { rp, class, amount }).collect(),
                mappings: BTreeMap::from([(ctx.g.suffix.clone(), BTreeSet::from([rp]))]),
            };
            let sharing = shares.is_some_and(|s| self.provider(rp).traits.contains(&s));
            if sharing {
                for (_, anchor) in self.anchors_for_sharing(&BTreeSet::from([rp])) {
                    if anchor == root || !w.in_anchors(anchor) {
                        continue;
                    }
                    let mut c = a.clone();
                    c.anchor = anchor;
                    out.push(c);
                }
            }
            if w.in_anchors(root) {
                out.push(a);
            }
        }
        out
    }

    fn merge(
        &self,
        by_suffix: Vec<(String, Vec<AllocationRequest>)>,
        w: &Wide,
    ) -> (Vec<AllocationRequest>, Vec<Summary>) {
        // anchor -> suffix -> requests, in first-seen order.
        let mut by_anchor: Vec<(RpId, SuffixLists)> = vec![];
        let mut anchor_index: HashMap<RpId, usize> = HashMap::new();
        for (suffix, areqs) in &by_suffix {
            for a in areqs {
                let i = *anchor_index.entry(a.anchor).or_insert_with(|| {
                    by_anchor.push((a.anchor, vec![]));
                    by_anchor.len() - 1
                });
                let lists = &mut by_anchor[i].1;
                match lists.iter_mut().find(|(s, _)| s == suffix) {
                    Some((_, l)) => l.push(a.clone()),
                    None => lists.push((suffix.clone(), vec![a.clone()])),
                }
            }
        }
        let n_suffixes = by_suffix.len();
        let granular = by_suffix.iter().filter(|(s, _)| !s.is_empty()).count();
        let mut out: Vec<AllocationRequest> = vec![];
        let mut seen = HashSet::new();
        for (_, lists) in &by_anchor {
            if lists.len() != n_suffixes || !self.overall_capacity_ok(w, lists) {
                continue;
            }
            let owned: Vec<Vec<&AllocationRequest>> = lists.iter().map(|(_, l)| l.iter().collect()).collect();
            let refs: Vec<&Vec<&AllocationRequest>> = owned.iter().collect();
            for combo in product(&refs) {
                if w.group_policy == Some("isolate") && !isolated(&combo, granular) {
                    continue;
                }
                if !self.same_subtree_ok(&combo, w) {
                    continue;
                }
                let a = consolidate(&combo);
                if a.resources.iter().any(|r| {
                    let (cap, used, max_unit) = w.psum.get(&(r.rp, r.class)).copied().unwrap_or((0, 0, 0));
                    used + r.amount > cap || r.amount > max_unit
                }) {
                    continue;
                }
                if seen.insert(a.key()) {
                    out.push(a);
                }
            }
        }
        if out.is_empty() {
            return (vec![], vec![]);
        }
        let roots: BTreeSet<RpId> =
            out.iter().flat_map(|a| a.resources.iter().map(|r| self.provider(r.rp).root)).collect();
        let sums = w.summaries.values().filter(|s| roots.contains(&s.root)).cloned().collect();
        (out, sums)
    }

    fn overall_capacity_ok(&self, w: &Wide, lists: &[(String, Vec<AllocationRequest>)]) -> bool {
        if w.multi_group_rcs.is_empty() {
            return true;
        }
        let rps: BTreeSet<RpId> =
            lists.iter().flat_map(|(_, l)| l.iter().flat_map(|a| a.resources.iter().map(|r| r.rp))).collect();
        for &class in &w.multi_group_rcs {
            let available: i64 = rps.iter().filter_map(|&rp| w.psum.get(&(rp, class)).map(|p| p.0)).sum();
            if w.rcs_amounts[&class] > available {
                return false;
            }
        }
        true
    }

    fn same_subtree_ok(&self, combo: &[&AllocationRequest], w: &Wide) -> bool {
        for group in w.same_subtrees {
            let rps: BTreeSet<RpId> =
                combo.iter().flat_map(|a| group.iter().filter_map(|s| a.mappings.get(s)).flatten().copied()).collect();
            if rps.len() <= 1 {
                continue;
            }
            let ancestors = |rp: RpId| {
                let mut set = BTreeSet::from([rp]);
                let mut cur = self.provider(rp).parent;
                while let Some(p) = cur {
                    set.insert(p);
                    cur = self.provider(p).parent;
                }
                set
            };
            let mut common: Option<BTreeSet<RpId>> = None;
            for &rp in &rps {
                let a = ancestors(rp);
                common = Some(match common {
                    None => a,
                    Some(c) => c.intersection(&a).copied().collect(),
                });
            }
            if !common.unwrap_or_default().iter().any(|rp| rps.contains(rp)) {
                return false;
            }
        }
        true
    }
}

/// The cartesian product of `lists`, in odometer order.
fn product<T: Clone>(lists: &[&Vec<T>]) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = vec![vec![]];
    for l in lists {
        let mut next = Vec::with_capacity(out.len() * l.len());
        for prefix in &out {
            for item in l.iter() {
                let mut v = prefix.clone();
                v.push(item.clone());
                next.push(v);
            }
        }
        out = next;
    }
    out
}
