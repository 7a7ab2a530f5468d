//! `GET /allocation_candidates` over the live fleet's provider rows
//! ([`crate::fleet`]): per request group a provider mask (capacity,
//! traits, aggregates, tree) from column kernels, rolled up to roots, then
//! the groups merged per anchor root (group_policy, same_subtree, capacity)
//! with combinations enumerated only until `limit`. The answer is
//! Placement's, in Placement's order: `oracle` (the old set-by-set search,
//! kept for tests only) must agree on every request.

mod groups;
mod merge;
#[cfg(test)]
mod oracle;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Error, Result};
use crate::model::{ClassId, RpId, State, TraitId};
use crate::request::{RequestGroup, RequestWide};

/// One provider's share of an allocation request.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Resource {
    pub rp: RpId,
    pub class: ClassId,
    pub amount: i64,
}

/// An allocation request: what to claim, where, and which request group
/// each provider satisfies (microversion 1.34 mappings).
#[derive(Clone, Debug)]
pub struct AllocationRequest {
    pub anchor: RpId,
    pub use_same_provider: bool,
    pub resources: Vec<Resource>,
    pub mappings: BTreeMap<String, BTreeSet<RpId>>,
}

impl AllocationRequest {
    pub(crate) fn key(&self) -> (Vec<Resource>, Vec<(String, Vec<RpId>)>) {
        let mut r = self.resources.clone();
        r.sort();
        (r, self.mappings.iter().map(|(k, v)| (k.clone(), v.iter().copied().collect())).collect())
    }
}

/// A provider in the summaries: capacity and usage per class, traits.
#[derive(Clone, Debug)]
pub struct Summary {
    pub rp: RpId,
    pub root: RpId,
    pub parent: Option<RpId>,
    /// (class, capacity, used, max_unit)
    pub resources: Vec<(ClassId, i64, i64, i64)>,
    pub traits: Vec<TraitId>,
}

#[derive(Clone, Debug, Default)]
pub struct Candidates {
    pub requests: Vec<AllocationRequest>,
    pub summaries: Vec<Summary>,
}

impl State {
    /// Answers `GET /allocation_candidates` from `fleet` (the live fleet of
    /// this state). `nested_aware` is microversion 1.29 or later.
    pub fn allocation_candidates(
        &self,
        fleet: &quiver_engine::Fleet,
        groups: &[RequestGroup],
        wide: &RequestWide,
        nested_aware: bool,
    ) -> Result<Candidates> {
        self.check_classes(groups)?;
        groups::search(self, fleet, groups, wide, nested_aware)
    }

    /// Unknown classes are the caller's error, whatever else happens.
    fn check_classes(&self, groups: &[RequestGroup]) -> Result<()> {
        for g in groups {
            for (rc, _) in &g.resources {
                if self.classes.get(rc).is_none() {
                    return Err(Error::bad_request(format!(
                        "Invalid resource class in resources parameter: No such resource class {rc}."
                    )));
                }
            }
        }
        Ok(())
    }
}
