//! Per request group, which providers can satisfy it, as masks over the
//! provider table, with Placement's semantics and quirks (research_context
//! .py): a granular group, or the unnumbered group on a flat fleet without
//! sharing providers, is satisfied by single providers; the unnumbered
//! group on trees or with sharing providers by a tree's providers plus
//! sharing providers, per resource class, intersected by anchor root.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::rc::Rc;

use quiver_engine::mask::Mask;

use super::{AllocationRequest, Candidates, Resource, Summary, merge};
use crate::error::Result;
use crate::model::{AggId, ClassId, RpId, State, TraitId};
use crate::request::{RequestGroup, RequestWide};
use quiver_engine::Fleet;
use quiver_engine::fleet::provider_masks::{self as kernels, Fits};

/// What every group of one request shares.
pub(super) struct Ctx<'a> {
    pub s: &'a State,
    pub cols: &'a Fleet,
    pub has_trees: bool,
    /// Roots allowed by `root_required` (None: all).
    pub anchor_roots: Option<Mask>,
    /// Placement's sharing-provider set, which it narrows in place by each
    /// tree group's `member_of`; later groups see the narrowed set.
    pub sharing: Mask,
    /// Live providers with MISC_SHARES_VIA_AGGREGATE (never narrowed).
    pub sharing_all: Mask,
    /// Trees walked so far (a tree is walked for its anchor, for each
    /// group's summaries and for the summaries written).
    trees: RefCell<HashMap<RpId, Rc<[RpId]>>>,
}

impl Ctx<'_> {
    pub fn in_anchors(&self, root: RpId) -> bool {
        self.anchor_roots.as_ref().is_none_or(|a| a.get(root as usize))
    }

    pub fn root(&self, rp: RpId) -> RpId {
        self.cols.providers.root[rp as usize]
    }

    /// Providers of the tree rooted at `root` (just the root on a flat fleet).
    pub fn tree(&self, root: RpId) -> Rc<[RpId]> {
        if !self.has_trees {
            return Rc::from([root]);
        }
        Rc::clone(self.trees.borrow_mut().entry(root).or_insert_with(|| Rc::from(self.s.tree(root))))
    }

    /// Roots of every provider in an aggregate of sharing provider `sp`,
    /// ascending, without `sp`'s own root.
    fn sharing_anchors(&self, sp: RpId) -> Vec<RpId> {
        let mut out = BTreeSet::new();
        for a in &self.s.provider(sp).aggregates {
            if let Some(m) = self.s.agg_members.get(a) {
                out.extend(m.iter().map(|&rp| self.root(rp)));
            }
        }
        out.remove(&self.root(sp));
        out.into_iter().collect()
    }

    fn traits_table(&self, pred: impl FnMut(&[u32]) -> bool) -> Mask {
        kernels::traits_mask(self.cols, &self.cols.providers.traitsets.table(pred))
    }

    fn aggs_table(&self, pred: impl FnMut(&[u32]) -> bool) -> Mask {
        kernels::aggregates_mask(self.cols, &self.cols.providers.aggsets.table(pred))
    }

    fn has_all_groups(&self, groups: &[BTreeSet<TraitId>]) -> Mask {
        self.traits_table(|set| groups.iter().all(|any| any.iter().any(|t| set.binary_search(t).is_ok())))
    }

    fn has_any(&self, traits: &BTreeSet<TraitId>) -> Mask {
        self.traits_table(|set| set.iter().any(|t| traits.contains(t)))
    }

    fn in_all_agg_groups(&self, groups: &[BTreeSet<AggId>]) -> Mask {
        self.aggs_table(|set| groups.iter().all(|any| any.iter().any(|a| set.binary_search(a).is_ok())))
    }

    fn in_any_agg(&self, aggs: &BTreeSet<AggId>) -> Mask {
        self.aggs_table(|set| set.iter().any(|a| aggs.contains(a)))
    }

    /// `f(row) = m[row] | m[root(row)]`: the provider or its root is in `m`.
    fn self_or_root_in(&self, m: &Mask) -> Mask {
        Mask::from_fn(self.cols.len(), |i| m.get(i) | m.get(self.cols.providers.root[i] as usize))
    }

    fn root_in(&self, m: &Mask) -> Mask {
        Mask::from_fn(self.cols.len(), |i| m.get(self.cols.providers.root[i] as usize))
    }

    /// A provider's summary: capacity and usage per class, traits.
    pub fn summary(&self, rp: RpId, flat: bool) -> Summary {
        let p = self.s.provider(rp);
        Summary {
            rp,
            root: p.root,
            parent: if flat { None } else { p.parent },
            resources: p.inventories.iter().map(|r| (r.class, r.inv.capacity(), r.used, r.inv.max_unit)).collect(),
            traits: p.traits.iter().copied().collect(),
        }
    }
}

/// One class of a tree group: the group's own providers (anchored at their
/// roots) and sharing providers anchored at other roots.
pub(super) struct TreeClass {
    pub class: ClassId,
    pub amount: i64,
    pub own: Mask,
    /// anchor -> sharing providers, ascending.
    pub shared_at: HashMap<RpId, Vec<RpId>>,
    /// sharing provider -> its anchors for this class.
    pub anchors_of: HashMap<RpId, HashSet<RpId>>,
}

pub(super) enum Kind {
    /// Every candidate is one provider.
    Single {
        rps: Mask,
        /// Sharing providers of `rps` with the other roots they anchor at.
        sharing: Vec<(RpId, Vec<RpId>)>,
        /// anchor -> sharing providers of `rps` anchored there, ascending.
        shared_at: HashMap<RpId, Vec<RpId>>,
    },
    /// Every candidate is a combination of a tree's providers and sharing
    /// providers, one per class (classes in id order).
    Tree {
        classes: Vec<TreeClass>,
        anchors: Mask,
        /// Sharing providers anchored away from their own root.
        sharing_rps: HashSet<RpId>,
        required: Vec<BTreeSet<TraitId>>,
        forbidden: BTreeSet<TraitId>,
    },
}

pub(super) struct GroupPlan<'g> {
    pub g: &'g RequestGroup,
    /// In request order.
    pub resources: Vec<(ClassId, i64)>,
    pub kind: Kind,
}

/// The whole search: per group a plan, then the merge.
pub(super) fn search(
    s: &State,
    cols: &Fleet,
    groups: &[RequestGroup],
    rq: &RequestWide,
    nested_aware: bool,
) -> Result<Candidates> {
    let sharing_all = match s.traits.get("MISC_SHARES_VIA_AGGREGATE") {
        Some(t) if cols.providers.traitsets.any_live(|set| set.binary_search(&t).is_ok()) => {
            kernels::traits_mask(cols, &cols.providers.traitsets.table(|set| set.binary_search(&t).is_ok()))
        }
        _ => Mask::zeros(cols.len()),
    };
    let mut ctx = Ctx {
        s,
        cols,
        has_trees: s.nested > 0,
        anchor_roots: None,
        sharing: sharing_all.clone(),
        sharing_all,
        trees: RefCell::default(),
    };
    if let [g] = groups
        && g.suffix.is_empty()
        && !ctx.has_trees
        && rq.same_subtrees.is_empty()
        && ctx.sharing_all.none()
    {
        return flat(&ctx, g, rq);
    }
    if !rq.root_required.is_empty() || !rq.root_forbidden.is_empty() {
        let req = s.trait_set(&rq.root_required)?;
        let forb = s.trait_set(&rq.root_forbidden)?;
        let mut roots = kernels::roots(cols);
        roots.and_assign(&ctx.traits_table(|set| {
            req.iter().all(|t| set.binary_search(t).is_ok()) && !set.iter().any(|t| forb.contains(t))
        }));
        if roots.none() {
            return Ok(Candidates::default());
        }
        ctx.anchor_roots = Some(roots);
    }
    let mut plans: Vec<GroupPlan> = vec![];
    for g in groups {
        match plan(&mut ctx, g) {
            Ok(Some(p)) => plans.push(p),
            Ok(None) => return Ok(Candidates::default()),
            // Placement stops at the first group without candidates, before
            // a later group's bad trait is looked at.
            Err(_) if plans.iter().any(|p| p.is_empty(&ctx)) => return Ok(Candidates::default()),
            Err(e) => return Err(e),
        }
    }
    Ok(merge::merge(&ctx, &plans, rq, nested_aware))
}

/// One unnumbered group on a flat fleet without sharing providers: each
/// provider that passes every predicate is one candidate, in provider
/// order, so the scan stops at `limit`.
fn flat(ctx: &Ctx, g: &RequestGroup, rq: &RequestWide) -> Result<Candidates> {
    let s = ctx.s;
    let resources: Vec<(ClassId, i64)> =
        g.resources.iter().map(|(rc, n)| (s.classes.get(rc).expect("checked"), *n)).collect();
    // Placement's order: root traits, member_of, traits, in_tree.
    let root_required = s.trait_set(&rq.root_required)?;
    let root_forbidden = s.trait_set(&rq.root_forbidden)?;
    let member_of = s.agg_groups(&g.member_of);
    if member_of.iter().any(BTreeSet::is_empty) {
        return Ok(Candidates::default());
    }
    let required = s.trait_groups(&g.required_traits)?;
    let forbidden = s.trait_set(&g.forbidden_traits)?;
    let tree_root = match &g.in_tree {
        Some(u) => match s.provider_by_uuid(u) {
            Some(p) => Some(p.root),
            None => return Ok(Candidates::default()),
        },
        None => None,
    };
    let forbidden_all: BTreeSet<TraitId> = forbidden.union(&root_forbidden).copied().collect();
    let traits_ok = ctx.cols.providers.traitsets.table(|set| {
        required.iter().all(|any| any.iter().any(|t| set.binary_search(t).is_ok()))
            && root_required.iter().all(|t| set.binary_search(t).is_ok())
            && !set.iter().any(|t| forbidden_all.contains(t))
    });
    let forbidden_aggs: BTreeSet<AggId> = g.forbidden_aggs.iter().filter_map(|a| s.aggs.get(a)).collect();
    let aggs_ok = ctx.cols.providers.aggsets.table(|set| {
        member_of.iter().all(|any| any.iter().any(|a| set.binary_search(a).is_ok()))
            && !set.iter().any(|a| forbidden_aggs.contains(a))
    });
    // Chunk by chunk (4,096 rows), so `limit` bounds the rows evaluated.
    const CHUNK: usize = 64;
    let limit = rq.limit.unwrap_or(usize::MAX);
    let n_words = ctx.cols.providers.live.words().len();
    let fits: Vec<Fits> = resources.iter().map(|&(c, n)| Fits::new(ctx.cols, s.class_name(c), n)).collect();
    let mut hits: Vec<RpId> = vec![];
    let (mut m, mut tmp) = ([0u64; CHUNK], [0u64; CHUNK]);
    let mut start = 0;
    while start < n_words && hits.len() < limit {
        let words = start..(start + CHUNK).min(n_words);
        let (m, tmp) = (&mut m[..words.len()], &mut tmp[..words.len()]);
        kernels::traits_words(ctx.cols, &traits_ok, words.clone(), m);
        kernels::aggregates_words(ctx.cols, &aggs_ok, words.clone(), tmp);
        m.iter_mut().zip(tmp.iter()).for_each(|(a, b)| *a &= b);
        for f in &fits {
            f.words(ctx.cols, words.clone(), tmp);
            m.iter_mut().zip(tmp.iter()).for_each(|(a, b)| *a &= b);
        }
        for (w, &word) in m.iter().enumerate() {
            let base = (words.start + w) * 64;
            for rp in quiver_engine::mask::BitIter::new(word, base) {
                if tree_root.is_none_or(|r| ctx.cols.providers.root[rp] == r) {
                    hits.push(rp as RpId);
                }
            }
        }
        start = words.end;
    }
    hits.truncate(limit);
    let mut out = Candidates::default();
    for rp in hits {
        out.requests.push(AllocationRequest {
            anchor: rp,
            use_same_provider: false,
            resources: resources.iter().map(|&(class, amount)| Resource { rp, class, amount }).collect(),
            mappings: [(String::new(), BTreeSet::from([rp]))].into(),
        });
        out.summaries.push(ctx.summary(rp, true));
    }
    Ok(out)
}

/// A group's plan; `Ok(None)` when it has no candidates (then the whole
/// request has none).
fn plan<'g>(ctx: &mut Ctx, g: &'g RequestGroup) -> Result<Option<GroupPlan<'g>>> {
    let s = ctx.s;
    let resources: Vec<(ClassId, i64)> =
        g.resources.iter().map(|(rc, n)| (s.classes.get(rc).expect("checked"), *n)).collect();
    // research_context's order: member_of, traits, in_tree, capacity.
    let member = if g.member_of.is_empty() {
        None
    } else {
        let m = ctx.in_all_agg_groups(&s.agg_groups(&g.member_of));
        if m.none() {
            return Ok(None);
        }
        Some(m)
    };
    let required = s.trait_groups(&g.required_traits)?;
    let forbidden = s.trait_set(&g.forbidden_traits)?;
    let tree_root = match &g.in_tree {
        Some(u) => match s.provider_by_uuid(u) {
            Some(p) => Some(p.root),
            None => return Ok(None),
        },
        None => None,
    };
    let tree_mask = tree_root.map(|r| kernels::in_tree(ctx.cols, r));
    let mut with_resource = Vec::with_capacity(resources.len());
    for &(class, amount) in &resources {
        let mut m = Fits::new(ctx.cols, s.class_name(class), amount).mask(ctx.cols);
        if let Some(t) = &tree_mask {
            m.and_assign(t);
        }
        if m.none() {
            return Ok(None);
        }
        with_resource.push(m);
    }
    let forbidden_aggs: BTreeSet<AggId> = g.forbidden_aggs.iter().filter_map(|a| s.aggs.get(a)).collect();
    let bad_aggs = (!forbidden_aggs.is_empty()).then(|| ctx.in_any_agg(&forbidden_aggs));
    let masks = GroupMasks { resources: &resources, with_resource, required, forbidden, member, bad_aggs, tree_root };
    let kind = if !g.use_same_provider && (!ctx.sharing.none() || ctx.has_trees) {
        plan_tree(ctx, masks)
    } else {
        plan_single(ctx, masks)
    };
    Ok(kind.map(|kind| GroupPlan { g, resources, kind }))
}

/// A group's predicates, resolved: what both kinds of plan start from.
struct GroupMasks<'r> {
    resources: &'r [(ClassId, i64)],
    /// Per resource (request order): providers it fits, within `in_tree`.
    with_resource: Vec<Mask>,
    required: Vec<BTreeSet<TraitId>>,
    forbidden: BTreeSet<TraitId>,
    /// Providers in every `member_of` group (None: no member_of).
    member: Option<Mask>,
    /// Providers in a forbidden aggregate (None: none forbidden).
    bad_aggs: Option<Mask>,
    tree_root: Option<RpId>,
}

/// get_provider_ids_matching + the single-provider expansion.
fn plan_single(ctx: &Ctx, m: GroupMasks) -> Option<Kind> {
    let GroupMasks { resources, with_resource, required, forbidden, member, bad_aggs, .. } = m;
    let (required, forbidden) = (&required, &forbidden);
    if resources.is_empty() && required.is_empty() && member.is_none() {
        return None;
    }
    let mut rps = ctx.cols.providers.live.clone();
    for m in &with_resource {
        rps.and_assign(m);
    }
    if !required.is_empty() {
        rps.and_assign(&ctx.has_all_groups(required));
    }
    if let Some(m) = &member {
        rps.and_assign(m);
    }
    if let Some(b) = &bad_aggs {
        rps.and_not_assign(b);
    }
    if !forbidden.is_empty() {
        rps.and_not_assign(&ctx.has_any(forbidden));
    }
    if rps.none() {
        return None;
    }
    let mut sharing_in = rps.clone();
    sharing_in.and_assign(&ctx.sharing_all);
    let mut sharing = vec![];
    let mut shared_at: HashMap<RpId, Vec<RpId>> = HashMap::new();
    for sp in sharing_in.iter_ones() {
        let sp = sp as RpId;
        let anchors: Vec<RpId> = ctx.sharing_anchors(sp).into_iter().filter(|&a| ctx.in_anchors(a)).collect();
        for &a in &anchors {
            shared_at.entry(a).or_default().push(sp);
        }
        sharing.push((sp, anchors));
    }
    Some(Kind::Single { rps, sharing, shared_at })
}

/// _get_trees_matching_all + _get_trees_with_traits.
fn plan_tree(ctx: &mut Ctx, m: GroupMasks) -> Option<Kind> {
    let GroupMasks { resources, with_resource, required, forbidden, member, bad_aggs, tree_root } = m;
    let (required, forbidden) = (&required, &forbidden);
    if !required.is_empty() {
        let any: BTreeSet<TraitId> = required.iter().flatten().copied().collect();
        if !ctx.cols.providers.traitsets.any_live(|set| set.iter().any(|t| any.contains(t))) {
            return None;
        }
    }
    if resources.is_empty() {
        return None;
    }
    let anchor_ok = ctx.anchor_roots.as_ref().map(|a| ctx.root_in(a));
    let member_ok = member.as_ref().map(|m| ctx.self_or_root_in(m));
    let bad = bad_aggs.as_ref().map(|b| ctx.self_or_root_in(b));
    let mut classes: Vec<TreeClass> = vec![];
    let mut all_roots: Option<Mask> = None;
    for (&(class, amount), fits) in resources.iter().zip(with_resource) {
        if let Some(m) = &member {
            ctx.sharing.and_assign(m);
        }
        let mut sharing = ctx.sharing.clone();
        sharing.and_assign(&fits);
        let mut own = fits;
        let mut pairs: Vec<(RpId, RpId)> = vec![];
        if !sharing.none() && tree_root.is_none() {
            for sp in sharing.iter_ones() {
                let sp = sp as RpId;
                pairs.extend(ctx.sharing_anchors(sp).into_iter().map(|a| (sp, a)));
            }
        }
        if let Some(a) = &anchor_ok {
            own.and_assign(a);
            let roots = ctx.anchor_roots.as_ref().expect("with anchor_ok");
            pairs.retain(|&(_, anchor)| roots.get(anchor as usize));
        }
        if let (Some(ok), Some(m)) = (&member_ok, &member) {
            own.and_assign(ok);
            pairs.retain(|&(sp, anchor)| m.get(sp as usize) || m.get(anchor as usize));
        }
        if let (Some(b), Some(raw)) = (&bad, &bad_aggs) {
            own.and_not_assign(b);
            pairs.retain(|&(sp, anchor)| !(raw.get(sp as usize) || raw.get(anchor as usize)));
        }
        let mut roots = kernels::roll_up(ctx.cols, &own);
        for &(_, anchor) in &pairs {
            roots.set(anchor as usize, true);
        }
        match &mut all_roots {
            None => all_roots = Some(roots),
            Some(r) => r.and_assign(&roots),
        }
        if all_roots.as_ref().is_some_and(Mask::none) {
            return None;
        }
        let mut shared_at: HashMap<RpId, Vec<RpId>> = HashMap::new();
        for &(sp, anchor) in &pairs {
            shared_at.entry(anchor).or_default().push(sp);
        }
        classes.push(TreeClass { class, amount, own, shared_at, anchors_of: HashMap::new() });
    }
    let mut keep = all_roots.expect("at least one class");
    if (!required.is_empty() || !forbidden.is_empty()) && ctx.sharing.none() {
        let mut good = Mask::zeros(ctx.cols.len());
        for c in &classes {
            good.or_assign(&c.own);
        }
        if !forbidden.is_empty() {
            good.and_not_assign(&ctx.has_any(forbidden));
        }
        let mut roots = kernels::roll_up(ctx.cols, &good);
        for any in required {
            let mut with = good.clone();
            with.and_assign(&ctx.has_any(any));
            roots.and_assign(&kernels::roll_up(ctx.cols, &with));
        }
        keep.and_assign(&roots);
    }
    let in_keep = ctx.root_in(&keep);
    let mut anchors = Mask::zeros(ctx.cols.len());
    let mut sharing_rps = HashSet::new();
    for c in &mut classes {
        c.own.and_assign(&in_keep);
        c.shared_at.retain(|anchor, _| keep.get(*anchor as usize));
        for (&anchor, sps) in &c.shared_at {
            anchors.set(anchor as usize, true);
            for &sp in sps {
                c.anchors_of.entry(sp).or_default().insert(anchor);
                sharing_rps.insert(sp);
            }
        }
        anchors.or_assign(&kernels::roll_up(ctx.cols, &c.own));
    }
    if anchors.none() {
        return None;
    }
    classes.sort_by_key(|c| c.class);
    Some(Kind::Tree { classes, anchors, sharing_rps, required: required.to_vec(), forbidden: forbidden.clone() })
}

impl GroupPlan<'_> {
    /// The group's allocation requests anchored at root `anchor`, in
    /// Placement's order.
    /// `tree` is the tree rooted at `anchor` (the caller walks it once for
    /// every group).
    pub fn at(&self, ctx: &Ctx, anchor: RpId, tree: &[RpId]) -> Vec<AllocationRequest> {
        match &self.kind {
            Kind::Single { rps, shared_at, .. } => {
                if !ctx.in_anchors(anchor) {
                    return vec![];
                }
                let mut list: Vec<RpId> = tree.iter().copied().filter(|&rp| rps.get(rp as usize)).collect();
                if let Some(sps) = shared_at.get(&anchor) {
                    list.extend(sps);
                }
                list.sort_unstable();
                list.dedup();
                list.into_iter()
                    .map(|rp| AllocationRequest {
                        anchor,
                        use_same_provider: self.g.use_same_provider,
                        resources: self
                            .resources
                            .iter()
                            .map(|&(class, amount)| Resource { rp, class, amount })
                            .collect(),
                        mappings: [(self.g.suffix.clone(), BTreeSet::from([rp]))].into(),
                    })
                    .collect()
            }
            Kind::Tree { classes, anchors, required, forbidden, .. } => {
                if !anchors.get(anchor as usize) {
                    return vec![];
                }
                let lists: Vec<Vec<RpId>> = classes
                    .iter()
                    .map(|c| {
                        let mut l: Vec<RpId> = tree.iter().copied().filter(|&rp| c.own.get(rp as usize)).collect();
                        if let Some(sps) = c.shared_at.get(&anchor) {
                            l.extend(sps);
                        }
                        l.sort_unstable();
                        l.dedup();
                        l
                    })
                    .collect();
                let mut out = vec![];
                for combo in odometer(&lists) {
                    if !traits_ok(ctx.s, &combo, required, forbidden) || self.seen_before(ctx, &combo, anchor, anchors)
                    {
                        continue;
                    }
                    out.push(AllocationRequest {
                        anchor,
                        use_same_provider: self.g.use_same_provider,
                        resources: combo
                            .iter()
                            .zip(classes)
                            .map(|(&rp, c)| Resource { rp, class: c.class, amount: c.amount })
                            .collect(),
                        mappings: [(self.g.suffix.clone(), combo.iter().copied().collect())].into(),
                    });
                }
                out
            }
        }
    }

    /// Whether the same combination was already produced at an earlier
    /// anchor (Placement deduplicates a group's requests): possible only
    /// when every provider in it is anchored at that earlier root too.
    fn seen_before(&self, ctx: &Ctx, combo: &[RpId], anchor: RpId, anchors: &Mask) -> bool {
        let Kind::Tree { classes, .. } = &self.kind else { return false };
        let anchors_of = |rp: RpId, c: &TreeClass| -> Vec<RpId> {
            let mut v: Vec<RpId> = c.anchors_of.get(&rp).map(|s| s.iter().copied().collect()).unwrap_or_default();
            let root = ctx.root(rp);
            if c.own.get(rp as usize) && anchors.get(root as usize) {
                v.push(root);
            }
            v
        };
        let mut common: Option<Vec<RpId>> = None;
        for (&rp, c) in combo.iter().zip(classes) {
            let mine: Vec<RpId> = anchors_of(rp, c).into_iter().filter(|&a| a < anchor).collect();
            common = Some(match common {
                None => mine,
                Some(prev) => prev.into_iter().filter(|a| mine.contains(a)).collect(),
            });
            if common.as_ref().is_some_and(Vec::is_empty) {
                return false;
            }
        }
        common.is_some_and(|c| !c.is_empty())
    }

    /// The roots this group's candidates anchor at, in the group's order.
    pub fn anchors<'a>(&'a self, ctx: &'a Ctx) -> Box<dyn Iterator<Item = RpId> + 'a> {
        match &self.kind {
            Kind::Single { rps, sharing, .. } => {
                let mut seen = HashSet::new();
                let mut si = 0;
                Box::new(
                    rps.iter_ones()
                        .flat_map(move |rp| {
                            let rp = rp as RpId;
                            let mut v = vec![];
                            if si < sharing.len() && sharing[si].0 == rp {
                                v.extend(sharing[si].1.iter().copied());
                                si += 1;
                            }
                            let root = ctx.root(rp);
                            if ctx.in_anchors(root) {
                                v.push(root);
                            }
                            v
                        })
                        .filter(move |a| seen.insert(*a)),
                )
            }
            Kind::Tree { anchors, .. } => Box::new(anchors.iter_ones().map(|a| a as RpId)),
        }
    }

    /// Whether Placement summarized the tree rooted at `root` for this group.
    pub fn summarizes(&self, ctx: &Ctx, root: RpId) -> bool {
        match &self.kind {
            Kind::Single { rps, .. } => ctx.tree(root).iter().any(|&rp| rps.get(rp as usize)),
            Kind::Tree { anchors, sharing_rps, .. } => anchors.get(root as usize) || sharing_rps.contains(&root),
        }
    }

    /// Whether the group has no allocation request at all (full scan).
    pub fn is_empty(&self, ctx: &Ctx) -> bool {
        let anchors: Vec<RpId> = self.anchors(ctx).collect();
        anchors.into_iter().all(|a| self.at(ctx, a, &ctx.tree(a)).is_empty())
    }
}

/// Whether the providers of a combination together have the required
/// traits and none of them a forbidden one.
fn traits_ok(s: &State, combo: &[RpId], required: &[BTreeSet<TraitId>], forbidden: &BTreeSet<TraitId>) -> bool {
    if required.is_empty() && forbidden.is_empty() {
        return true;
    }
    let mut all = BTreeSet::new();
    for &rp in combo {
        let t = &s.provider(rp).traits;
        if t.iter().any(|x| forbidden.contains(x)) {
            return false;
        }
        all.extend(t.iter().copied());
    }
    required.iter().all(|any| any.iter().any(|t| all.contains(t)))
}

/// Every combination of one item per list, the last list varying fastest.
pub(super) fn odometer<T: Copy>(lists: &[Vec<T>]) -> Vec<Vec<T>> {
    if lists.iter().any(Vec::is_empty) {
        return vec![];
    }
    let mut out = vec![];
    let mut idx = vec![0usize; lists.len()];
    loop {
        out.push(idx.iter().zip(lists).map(|(&i, l)| l[i]).collect());
        let mut k = lists.len();
        loop {
            if k == 0 {
                return out;
            }
            k -= 1;
            idx[k] += 1;
            if idx[k] < lists[k].len() {
                break;
            }
            idx[k] = 0;
        }
    }
}
