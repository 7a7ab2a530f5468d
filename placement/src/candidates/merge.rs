//! The groups' candidates merged per anchor root (Placement's
//! _merge_candidates): anchors in the first group's order, per anchor the
//! product of the groups' requests, filtered by group_policy=isolate,
//! same_subtree and the capacity of every provider, deduplicated. The
//! product is enumerated anchor by anchor and stops at `limit`, so a small
//! limit pays for the first trees it returns, not for the fleet.

use std::collections::{BTreeMap, BTreeSet};

use hashbrown::{HashMap, HashSet};

use super::groups::{Ctx, GroupPlan, odometer};
use super::{AllocationRequest, Candidates, Resource};
use crate::model::{ClassId, RpId};
use crate::request::RequestWide;

/// Which trees Placement summarized, asked lazily and remembered.
struct Summarized<'a, 'c> {
    ctx: &'a Ctx<'c>,
    plans: &'a [GroupPlan<'a>],
    known: HashMap<RpId, bool>,
}

impl Summarized<'_, '_> {
    fn tree(&mut self, root: RpId) -> bool {
        if let Some(&b) = self.known.get(&root) {
            return b;
        }
        let b = self.plans.iter().any(|p| p.summarizes(self.ctx, root));
        self.known.insert(root, b);
        b
    }

    /// (capacity, used, max_unit) of `class` on `rp` as the summaries have it.
    fn psum(&mut self, rp: RpId, class: ClassId) -> Option<(i64, i64, i64)> {
        let root = self.ctx.root(rp);
        if !self.tree(root) {
            return None;
        }
        self.ctx.s.provider(rp).inventory(class).map(|r| (r.inv.capacity(), r.used, r.inv.max_unit))
    }
}

pub(super) fn merge(ctx: &Ctx, plans: &[GroupPlan], rq: &RequestWide, nested_aware: bool) -> Candidates {
    let mut rcs_amounts: BTreeMap<ClassId, i64> = BTreeMap::new();
    let mut multi_group_rcs: BTreeSet<ClassId> = BTreeSet::new();
    for p in plans {
        for &(c, amount) in &p.resources {
            if rcs_amounts.contains_key(&c) {
                multi_group_rcs.insert(c);
            }
            *rcs_amounts.entry(c).or_default() += amount;
        }
    }
    let granular = plans.iter().filter(|p| !p.g.suffix.is_empty()).count();
    let isolate = rq.group_policy.as_deref() == Some("isolate");
    // Before 1.29 requests spanning a tree are dropped after the merge, so
    // the limit can only be applied at the end there.
    let old_nested = !nested_aware && ctx.has_trees;
    let stop_at = if old_nested { usize::MAX } else { rq.limit.unwrap_or(usize::MAX) };
    let mut sums = Summarized { ctx, plans, known: HashMap::new() };
    let mut out: Vec<AllocationRequest> = vec![];
    let mut seen = HashSet::new();
    'anchors: for anchor in plans[0].anchors(ctx) {
        if out.len() >= stop_at {
            break;
        }
        let tree = ctx.tree(anchor);
        let mut lists = Vec::with_capacity(plans.len());
        for p in plans {
            let l = p.at(ctx, anchor, &tree);
            if l.is_empty() {
                continue 'anchors;
            }
            lists.push(l);
        }
        if !overall_capacity_ok(&mut sums, &lists, &multi_group_rcs, &rcs_amounts) {
            continue;
        }
        let index_lists: Vec<Vec<usize>> = lists.iter().map(|l| (0..l.len()).collect()).collect();
        for pick in odometer(&index_lists) {
            let combo: Vec<&AllocationRequest> = pick.iter().zip(&lists).map(|(&i, l)| &l[i]).collect();
            if isolate && !isolated(&combo, granular) {
                continue;
            }
            if !same_subtree_ok(ctx, &combo, &rq.same_subtrees) {
                continue;
            }
            let a = consolidate(&combo);
            if a.resources.iter().any(|r| {
                let (cap, used, max_unit) = sums.psum(r.rp, r.class).unwrap_or((0, 0, 0));
                used + r.amount > cap || r.amount > max_unit
            }) {
                continue;
            }
            // The same request can come from two anchors only when all its
            // providers are sharing providers (anchored away from home).
            let shared_only = a.resources.iter().all(|r| ctx.sharing_all.get(r.rp as usize));
            if !shared_only || seen.insert(a.key()) {
                out.push(a);
                if out.len() >= stop_at {
                    break 'anchors;
                }
            }
        }
    }
    if out.is_empty() {
        return Candidates::default();
    }
    let mut kept_rps: Option<BTreeSet<RpId>> = None;
    if old_nested {
        let mut kept = BTreeSet::new();
        out.retain(|a| {
            let rps: BTreeSet<RpId> = a.resources.iter().map(|r| r.rp).collect();
            let roots: BTreeSet<RpId> = rps.iter().map(|&rp| ctx.root(rp)).collect();
            let keep = rps.len() == roots.len();
            if keep {
                kept.extend(rps);
            }
            keep
        });
        kept_rps = Some(kept);
        if let Some(limit) = rq.limit {
            out.truncate(limit);
        }
    }
    let roots: BTreeSet<RpId> = out.iter().flat_map(|a| a.resources.iter().map(|r| ctx.root(r.rp))).collect();
    let mut rps: Vec<RpId> = vec![];
    for &root in &roots {
        if sums.tree(root) {
            rps.extend(ctx.tree(root).iter().copied());
        }
    }
    rps.sort_unstable();
    let summaries = rps
        .into_iter()
        .filter(|rp| kept_rps.as_ref().is_none_or(|k| k.contains(rp)))
        .map(|rp| ctx.summary(rp, false))
        .collect();
    Candidates { requests: out, summaries }
}

fn overall_capacity_ok(
    sums: &mut Summarized,
    lists: &[Vec<AllocationRequest>],
    multi_group_rcs: &BTreeSet<ClassId>,
    rcs_amounts: &BTreeMap<ClassId, i64>,
) -> bool {
    if multi_group_rcs.is_empty() {
        return true;
    }
    let rps: BTreeSet<RpId> =
        lists.iter().flat_map(|l| l.iter().flat_map(|a| a.resources.iter().map(|r| r.rp))).collect();
    for &class in multi_group_rcs {
        let available: i64 = rps.iter().filter_map(|&rp| sums.psum(rp, class).map(|p| p.0)).sum();
        if rcs_amounts[&class] > available {
            return false;
        }
    }
    true
}

/// group_policy=isolate: the granular groups of `combo` use as many
/// distinct providers as there are granular groups.
pub(super) fn isolated(combo: &[&AllocationRequest], granular: usize) -> bool {
    let used: BTreeSet<RpId> = combo
        .iter()
        .filter(|a| a.use_same_provider)
        .flat_map(|a| a.mappings.values().next().into_iter().flatten().copied())
        .collect();
    used.len() == granular
}

/// Every `same_subtree` set of suffixes is satisfied by providers that all
/// descend from one of them.
fn same_subtree_ok(ctx: &Ctx, combo: &[&AllocationRequest], same_subtrees: &[BTreeSet<String>]) -> bool {
    for group in same_subtrees {
        let mut rps: Vec<RpId> =
            combo.iter().flat_map(|a| group.iter().filter_map(|s| a.mappings.get(s)).flatten().copied()).collect();
        rps.sort_unstable();
        rps.dedup();
        if rps.len() <= 1 {
            continue;
        }
        // One of them must be an ancestor (or self) of all of them.
        let descends = |mut rp: RpId, from: RpId| loop {
            if rp == from {
                return true;
            }
            rp = ctx.cols.providers.parent[rp as usize];
            if rp == quiver_engine::fleet::NO_PARENT {
                return false;
            }
        };
        if !rps.iter().any(|&top| rps.iter().all(|&rp| descends(rp, top))) {
            return false;
        }
    }
    true
}

/// One allocation request from one request per group: amounts on the same
/// provider and class added, mappings united.
pub(super) fn consolidate(combo: &[&AllocationRequest]) -> AllocationRequest {
    let mut resources: Vec<Resource> = vec![];
    let mut mappings: BTreeMap<String, BTreeSet<RpId>> = BTreeMap::new();
    for a in combo {
        for r in &a.resources {
            match resources.iter_mut().find(|x| x.rp == r.rp && x.class == r.class) {
                Some(x) => x.amount += r.amount,
                None => resources.push(r.clone()),
            }
        }
        for (s, rps) in &a.mappings {
            mappings.entry(s.clone()).or_default().extend(rps.iter().copied());
        }
    }
    AllocationRequest { anchor: combo[0].anchor, use_same_provider: false, resources, mappings }
}
