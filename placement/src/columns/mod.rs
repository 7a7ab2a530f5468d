//! The live columnar table of every resource provider, the one allocation
//! candidates are answered from. One row per provider id (trees and sharing
//! providers included): a `live` bit (a deleted provider is a tombstone
//! until its id is reused by nothing: ids are never reused, so the row just
//! stays dead), root and parent indices, the trait set and aggregate set as
//! dictionary codes (a fleet has few distinct sets, so a request evaluates
//! each set once and gathers), and per resource class a column group
//! (`has`, `avail` = what a new allocation may still take, the unit
//! constraints).
//!
//! [`crate::Placement::write`] re-reads exactly the rows a committed write
//! touched ([`ProviderColumns::refresh`]); a reload rebuilds it
//! ([`ProviderColumns::build`]). Nothing on the request path rebuilds it.

mod dictionary;
pub mod kernels;

use quiver_engine::mask::Mask;

pub use dictionary::SetDictionary;

use crate::model::{AggId, ClassId, Inventory, Provider, RpId, State, TraitId};

/// `parent` of a root provider.
pub const NO_PARENT: u32 = u32::MAX;

/// One resource class over every provider row.
#[derive(Clone, Debug, Default)]
pub struct ClassColumn {
    /// The provider has an inventory of this class.
    pub has: Mask,
    /// `floor((total - reserved) * allocation_ratio) - used`: an amount fits
    /// iff `amount <= avail` (Placement's float comparison, exactly).
    pub avail: Vec<i64>,
    pub min_unit: Vec<i64>,
    pub max_unit: Vec<i64>,
    pub step_size: Vec<i64>,
    /// Rows with this class whose `step_size` is not 1: while none, the
    /// kernels skip the (costly) divisibility check.
    pub stepped: usize,
}

impl ClassColumn {
    fn zeros(len: usize) -> ClassColumn {
        ClassColumn {
            has: Mask::zeros(len),
            avail: vec![0; len],
            min_unit: vec![1; len],
            max_unit: vec![0; len],
            step_size: vec![1; len],
            stepped: 0,
        }
    }

    fn grow(&mut self, len: usize) {
        while self.has.len() < len {
            self.has.push(false);
        }
        self.avail.resize(len, 0);
        self.min_unit.resize(len, 1);
        self.max_unit.resize(len, 0);
        self.step_size.resize(len, 1);
    }

    fn set(&mut self, row: usize, inv: Option<(&Inventory, i64)>) {
        if self.has.get(row) && self.step_size[row] != 1 {
            self.stepped -= 1;
        }
        if let Some((inv, _)) = inv
            && inv.step_size.max(1) != 1
        {
            self.stepped += 1;
        }
        match inv {
            Some((inv, used)) => {
                self.has.set(row, true);
                self.avail[row] = avail(inv, used);
                self.min_unit[row] = inv.min_unit;
                self.max_unit[row] = inv.max_unit;
                self.step_size[row] = inv.step_size.max(1);
            }
            None => {
                self.has.set(row, false);
                self.avail[row] = 0;
            }
        }
    }
}

/// `floor((total - reserved) * ratio) - used`, saturating; `used + amount
/// <= (total - reserved) * ratio` holds for an integer `amount` exactly when
/// `amount <= avail`.
fn avail(inv: &Inventory, used: i64) -> i64 {
    let cap = ((inv.total - inv.reserved) as f64 * inv.allocation_ratio).floor();
    let cap = if cap.is_nan() { i64::MIN } else { cap as i64 };
    cap.saturating_sub(used)
}

/// The provider table.
#[derive(Clone, Debug, Default)]
pub struct ProviderColumns {
    len: usize,
    pub live: Mask,
    pub root: Vec<u32>,
    pub parent: Vec<u32>,
    pub traitset: Vec<u32>,
    pub aggset: Vec<u32>,
    pub traitsets: SetDictionary,
    pub aggsets: SetDictionary,
    /// By class id; `None` for a class no provider ever had.
    pub classes: Vec<Option<ClassColumn>>,
}

impl ProviderColumns {
    /// The table for every provider of `state`, from scratch.
    pub fn build(state: &State) -> ProviderColumns {
        let mut c = ProviderColumns::default();
        c.grow(state.providers.len());
        for id in 0..state.providers.len() {
            c.refresh_row(state, id as RpId);
        }
        c
    }

    /// Re-reads the rows of `ids` (created, deleted, changed or with new
    /// usage) from `state`: O(rows touched).
    pub fn refresh(&mut self, state: &State, ids: impl IntoIterator<Item = RpId>) {
        self.grow(state.providers.len());
        for id in ids {
            self.refresh_row(state, id);
        }
    }

    /// Rows in the table (live or not).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The column group of `class`, if any provider ever had it.
    pub fn class(&self, class: ClassId) -> Option<&ClassColumn> {
        self.classes.get(class as usize).and_then(Option::as_ref)
    }

    fn grow(&mut self, len: usize) {
        if len <= self.len {
            return;
        }
        while self.live.len() < len {
            self.live.push(false);
        }
        self.root.resize(len, 0);
        self.parent.resize(len, NO_PARENT);
        let empty_traits = self.traitsets.code(&[]);
        let empty_aggs = self.aggsets.code(&[]);
        self.traitset.resize(len, empty_traits);
        self.aggset.resize(len, empty_aggs);
        for col in self.classes.iter_mut().flatten() {
            col.grow(len);
        }
        self.len = len;
    }

    fn refresh_row(&mut self, state: &State, id: RpId) {
        let row = id as usize;
        if row >= self.len {
            self.grow(row + 1);
        }
        let Some(Some(p)) = state.providers.get(row) else {
            self.clear_row(row);
            return;
        };
        self.uncount(row);
        self.live.set(row, true);
        self.root[row] = p.root;
        self.parent[row] = p.parent.unwrap_or(NO_PARENT);
        let traits: Vec<TraitId> = p.traits.iter().copied().collect();
        self.traitset[row] = self.traitsets.code(&traits);
        let aggs: Vec<AggId> = p.aggregates.iter().copied().collect();
        self.aggset[row] = self.aggsets.code(&aggs);
        self.traitsets.count(self.traitset[row], 1);
        self.aggsets.count(self.aggset[row], 1);
        self.set_inventories(row, p);
    }

    /// Takes a live row out of its sets' live counts.
    fn uncount(&mut self, row: usize) {
        if self.live.get(row) {
            self.traitsets.count(self.traitset[row], -1);
            self.aggsets.count(self.aggset[row], -1);
        }
    }

    fn set_inventories(&mut self, row: usize, p: &Provider) {
        for r in &p.inventories {
            let class = r.class as usize;
            if self.classes.len() <= class {
                self.classes.resize(class + 1, None);
            }
            if self.classes[class].is_none() {
                self.classes[class] = Some(ClassColumn::zeros(self.len));
            }
        }
        for (class, col) in self.classes.iter_mut().enumerate() {
            if let Some(col) = col {
                col.set(row, p.inventory(class as ClassId).map(|r| (&r.inv, r.used)));
            }
        }
    }

    fn clear_row(&mut self, row: usize) {
        self.uncount(row);
        self.live.set(row, false);
        self.traitset[row] = self.traitsets.code(&[]);
        self.aggset[row] = self.aggsets.code(&[]);
        for col in self.classes.iter_mut().flatten() {
            col.set(row, None);
        }
    }

    /// One row decoded (for comparing a live table with a rebuilt one,
    /// whose dictionary codes may differ).
    pub fn row(&self, id: RpId) -> Option<RowView> {
        let row = id as usize;
        if row >= self.len || !self.live.get(row) {
            return None;
        }
        let mut classes = vec![];
        for (class, col) in self.classes.iter().enumerate() {
            if let Some(col) = col
                && col.has.get(row)
            {
                classes.push((
                    class as ClassId,
                    col.avail[row],
                    col.min_unit[row],
                    col.max_unit[row],
                    col.step_size[row],
                ));
            }
        }
        Some(RowView {
            root: self.root[row],
            parent: self.parent[row],
            traits: self.traitsets.set(self.traitset[row]).to_vec(),
            aggregates: self.aggsets.set(self.aggset[row]).to_vec(),
            classes,
        })
    }
}

/// A provider row with its codes resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowView {
    pub root: u32,
    pub parent: u32,
    pub traits: Vec<TraitId>,
    pub aggregates: Vec<AggId>,
    /// (class, avail, min_unit, max_unit, step_size)
    pub classes: Vec<(ClassId, i64, i64, i64, i64)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::InventoryRecord;

    #[test]
    fn avail_matches_placements_float_capacity_check() {
        for (total, reserved, ratio, used) in
            [(10, 0, 1.0, 3), (10, 2, 1.5, 11), (7, 0, 0.3, 0), (1, 0, 16.0, 15), (5, 5, 2.0, 0), (3, 0, 0.5, 2)]
        {
            let inv = Inventory { total, reserved, allocation_ratio: ratio, ..Default::default() };
            for amount in 1..40 {
                assert_eq!(
                    amount <= avail(&inv, used),
                    (used + amount) as f64 <= (total - reserved) as f64 * ratio,
                    "total {total} reserved {reserved} ratio {ratio} used {used} amount {amount}"
                );
            }
        }
    }

    #[test]
    fn refresh_reads_a_changed_row_and_tombstones_a_deleted_one() {
        let mut s = State::with_standard_names(0);
        let vcpu = s.classes.get("VCPU").expect("VCPU");
        let mk = |id: u32, parent: Option<u32>, root: u32| Provider {
            id,
            uuid: format!("u{id}"),
            name: format!("n{id}"),
            generation: 0,
            parent,
            root,
            children: Default::default(),
            inventories: vec![],
            traits: Default::default(),
            aggregates: Default::default(),
            created_at: 0,
            updated_at: 0,
        };
        s.providers = vec![Some(mk(0, None, 0)), Some(mk(1, Some(0), 0))];
        let mut c = ProviderColumns::build(&s);
        assert_eq!(c.row(1).map(|r| (r.root, r.parent)), Some((0, 0)));
        assert!(c.class(vcpu).is_none());
        s.provider_mut(1).inventories.push(InventoryRecord {
            class: vcpu,
            inv: Inventory { total: 8, ..Default::default() },
            used: 3,
            created_at: 0,
            updated_at: 0,
        });
        s.providers.push(Some(mk(2, None, 2)));
        c.refresh(&s, [1, 2]);
        assert_eq!(c.row(1).expect("row").classes, vec![(vcpu, 5, 1, crate::model::MAX_INT, 1)]);
        assert_eq!(c.len(), 3);
        s.providers[1] = None;
        c.refresh(&s, [1]);
        assert!(c.row(1).is_none());
        assert!(!c.class(vcpu).expect("column").has.get(1));
        let rebuilt = ProviderColumns::build(&s);
        for id in 0..3 {
            assert_eq!(c.row(id), rebuilt.row(id));
        }
    }
}
