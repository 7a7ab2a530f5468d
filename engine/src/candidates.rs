//! The placement-candidate kernel: which hosts `GET /allocation_candidates`
//! would return for one unnumbered request group on root providers.
//!
//! Per requested resource class `amount <= avail` (the derived column that
//! folds `used + amount <= (total - reserved) * allocation_ratio` and
//! `amount <= max_unit`), `min_unit <= amount` and `amount % step_size == 0`
//! where the batch has non-trivial units, required and forbidden traits, and
//! `member_of` groups (any-of within a group, all groups).

use multiversion::multiversion;

use crate::fleet::{Fleet, HostBatch};

/// A placement query for one request group.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PlacementQuery {
    /// `(resource class column, amount)`, amounts > 0.
    pub resources: Vec<(usize, i64)>,
    /// Resource classes the fleet has no column for (no host can match).
    pub unknown_resources: Vec<String>,
    /// Required trait names.
    pub required: Vec<String>,
    /// Forbidden trait names.
    pub forbidden: Vec<String>,
    /// `member_of`: each inner list is an any-of set of aggregate indices.
    pub member_of: Vec<Vec<u32>>,
}

/// Per-request lookup tables derived from a [`PlacementQuery`].
#[derive(Clone, Debug)]
pub struct PreparedQuery {
    resources: Vec<(usize, i32)>,
    impossible: bool,
    traitset_ok: Vec<bool>,
    aggset_ok: Vec<bool>,
}

impl PlacementQuery {
    /// Adds `other`'s traits and `member_of` groups (a request filter's
    /// part of the query) to this one.
    pub fn merge(&mut self, other: &PlacementQuery) {
        self.required.extend(other.required.iter().cloned());
        self.forbidden.extend(other.forbidden.iter().cloned());
        self.member_of.extend(other.member_of.iter().cloned());
    }

    /// Builds the per-trait-set and per-aggregate-set tables once.
    pub fn prepare(&self, fleet: &Fleet) -> PreparedQuery {
        let mut impossible = !self.unknown_resources.is_empty();
        let mut resources = Vec::new();
        for &(rc, amount) in &self.resources {
            match i32::try_from(amount) {
                Ok(a) => resources.push((rc, a)),
                Err(_) => impossible = true,
            }
        }
        let bit = |name: &str| fleet.traits.get(name).map(|b| b as usize);
        let has = |words: &[u64], b: usize| words.get(b / 64).is_some_and(|w| (w >> (b % 64)) & 1 == 1);
        let required: Option<Vec<usize>> = self.required.iter().map(|t| bit(t)).collect();
        let forbidden: Vec<usize> = self.forbidden.iter().filter_map(|t| bit(t)).collect();
        let traitset_ok = fleet
            .traitsets
            .iter()
            .map(|words| {
                required.as_ref().is_some_and(|req| req.iter().all(|&b| has(words, b)))
                    && forbidden.iter().all(|&b| !has(words, b))
            })
            .collect();
        let aggset_ok = fleet
            .aggsets
            .iter()
            .map(|set| self.member_of.iter().all(|any| any.iter().any(|a| set.contains(a))))
            .collect();
        PreparedQuery { resources, impossible, traitset_ok, aggset_ok }
    }
}

/// `mask &= (amount <= avail[i])` for every host, 64 per word.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn and_fits(avail: &[i32], amount: i32, mask: &mut [u64]) {
    for (w, word) in mask.iter_mut().enumerate() {
        let chunk = &avail[w * 64..((w + 1) * 64).min(avail.len())];
        let mut bits = 0u64;
        for (b, &a) in chunk.iter().enumerate() {
            bits |= ((amount <= a) as u64) << b;
        }
        *word &= bits;
    }
}

impl PreparedQuery {
    /// True when no host can match whatever its state.
    pub fn is_impossible(&self) -> bool {
        self.impossible
    }

    /// Writes the candidate mask of one batch into `mask` (one word per 64
    /// rows, fully overwritten).
    pub fn candidates(&self, fleet: &Fleet, batch: &HostBatch, mask: &mut [u64]) {
        self.static_candidates(fleet, batch, mask);
        if self.impossible {
            return;
        }
        for &(rc, amount) in &self.resources {
            and_fits(&fleet.usage().avail[rc][batch.range()], amount, mask);
        }
    }

    /// The part of [`PreparedQuery::candidates`] that does not depend on
    /// usage: units, traits and aggregates (a simulator keeps it per request
    /// shape and checks capacity per host with [`PreparedQuery::fits`]).
    pub fn static_candidates(&self, fleet: &Fleet, batch: &HostBatch, mask: &mut [u64]) {
        let n = batch.len();
        if self.impossible {
            mask.fill(0);
            return;
        }
        crate::filters::and_words_init(mask, n);
        // Deleted hosts (tombstones) are never candidates.
        for (m, l) in mask.iter_mut().zip(batch.live.words()) {
            *m &= l;
        }
        for &(rc, amount) in &self.resources {
            let c = &batch.rc[rc];
            if !c.units_trivial {
                let ok: Vec<bool> = fleet.inventory_profiles[rc]
                    .iter()
                    .map(|p| p.is_some_and(|p| p.min_unit <= amount && amount % p.step_size.max(1) == 0))
                    .collect();
                crate::filters::and_words(mask, n, |i| ok[c.code[i] as usize]);
            }
        }
        if !self.traitset_ok.iter().all(|&b| b) {
            let codes = &batch.traitset;
            crate::filters::and_words(mask, n, |i| self.traitset_ok[codes[i] as usize]);
        }
        if !self.aggset_ok.iter().all(|&b| b) {
            let codes = &batch.aggset;
            crate::filters::and_words(mask, n, |i| self.aggset_ok[codes[i] as usize]);
        }
    }

    /// True when host `h` can take the request now (the claim check).
    pub fn fits(&self, fleet: &Fleet, h: usize) -> bool {
        !self.impossible && self.resources.iter().all(|&(rc, a)| a <= fleet.usage().avail[rc][h])
    }

    /// The resources as `(column, amount)`.
    pub fn resources(&self) -> &[(usize, i32)] {
        &self.resources
    }
}
