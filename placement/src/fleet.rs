//! Placement's writes into the process's one live fleet
//! ([`quiver_engine::Fleet`], DESIGN.md section 3): every provider is a row
//! whose index is its id (ids are never reused, so a deleted provider's
//! row stays a tombstone), with its tree, inventories and usage, traits and
//! aggregates. [`crate::Placement::write`] re-writes exactly the rows a
//! committed write touched ([`refresh`]), only the usage where just the
//! usage changed; a reload rebuilds it ([`build`]). Allocation candidates
//! and the scheduler read the same rows.
//!
//! Trait indices are shared: the fleet's trait vocabulary holds Placement's
//! trait names at Placement's trait ids (Placement never renumbers them),
//! so a trait set is written and queried by id without names.

use std::collections::BTreeSet;

use quiver_engine::Fleet;
use quiver_engine::fleet::{NO_PARENT, ProviderRow};

use crate::model::{RpId, State};

/// The fleet of every provider of `state`, from scratch.
pub fn build(state: &State) -> Fleet {
    let mut f = Fleet::empty();
    write_rows(&mut f, state, 0..state.providers.len() as RpId);
    f
}

/// Re-writes the rows of `changed` (created, deleted, changed) and the
/// usage of `used` from `state`: O(rows touched).
pub fn refresh(fleet: &mut Fleet, state: &State, changed: &BTreeSet<RpId>, used: &BTreeSet<RpId>) {
    write_rows(fleet, state, changed.iter().copied());
    for &id in used.difference(changed) {
        let Some(Some(p)) = state.providers.get(id as usize) else { continue };
        fleet.set_provider_usage(id as usize, p.inventories.iter().map(|r| (state.class_name(r.class), r.used)));
    }
}

fn write_rows(f: &mut Fleet, state: &State, ids: impl IntoIterator<Item = RpId>) {
    // Placement's trait ids are the fleet's trait indices.
    for id in f.traits.len()..state.traits.live.len() {
        let bit = f.traits.intern(state.traits.name(id as u32));
        debug_assert_eq!(bit as usize, id, "the fleet's traits follow Placement's ids");
    }
    f.ensure_rows(state.providers.len());
    for id in ids {
        let Some(Some(p)) = state.providers.get(id as usize) else {
            f.drop_provider(id as usize);
            continue;
        };
        let inventories: Vec<quiver_engine::Inventory> = p
            .inventories
            .iter()
            .map(|r| quiver_engine::Inventory::from_record(state.class_name(r.class), &r.inv, r.used))
            .collect();
        let traits: Vec<u32> = p.traits.iter().copied().collect();
        let aggregates: Vec<u32> = p.aggregates.iter().copied().collect();
        f.set_provider(
            id as usize,
            &ProviderRow {
                uuid: quiver_engine::request::parse_uuid(&p.uuid).unwrap_or(0),
                root: p.root,
                parent: p.parent.unwrap_or(NO_PARENT),
                inventories: &inventories,
                traits: &traits,
                aggregates: &aggregates,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Inventory, InventoryRecord, Provider};

    #[test]
    fn refresh_writes_a_changed_row_and_tombstones_a_deleted_one() {
        let mut s = State::with_standard_names(0);
        let vcpu = s.classes.get("VCPU").expect("VCPU");
        let mk = |id: u32, parent: Option<u32>, root: u32| Provider {
            id,
            uuid: format!("00000000-0000-4000-8000-{id:012}"),
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
            stored_generation: None,
        };
        s.providers = vec![Some(mk(0, None, 0)), Some(mk(1, Some(0), 0))];
        let mut fleet = build(&s);
        let view = fleet.provider_view(1).expect("row");
        assert_eq!((view.root, view.parent), (0, 0));
        assert!(view.inventories.is_empty());
        s.provider_mut(1).inventories.push(InventoryRecord {
            class: vcpu,
            inv: Inventory { total: 8, ..Default::default() },
            used: 3,
            created_at: 0,
            updated_at: 0,
        });
        let avx2 = s.traits.get("HW_CPU_X86_AVX2").expect("trait");
        s.provider_mut(1).traits.insert(avx2);
        s.providers.push(Some(mk(2, None, 2)));
        refresh(&mut fleet, &s, &BTreeSet::from([1, 2]), &BTreeSet::new());
        let view = fleet.provider_view(1).expect("row");
        assert_eq!(view.inventories.iter().map(|i| (i.0.as_str(), i.2, i.3)).collect::<Vec<_>>(), [("VCPU", 3, 5)]);
        assert_eq!(view.traits, [avx2]);
        assert_eq!(fleet.traits.get("HW_CPU_X86_AVX2"), Some(avx2), "trait ids are the fleet's indices");
        assert_eq!(fleet.len(), 3);
        s.provider_mut(1).inventories[0].used = 8;
        refresh(&mut fleet, &s, &BTreeSet::new(), &BTreeSet::from([1]));
        assert_eq!(fleet.provider_view(1).expect("row").inventories[0].3, 0, "usage only");
        s.providers[1] = None;
        refresh(&mut fleet, &s, &BTreeSet::from([1]), &BTreeSet::new());
        assert!(fleet.provider_view(1).is_none());
        assert!(!fleet.is_provider(1));
        let rebuilt = build(&s);
        for id in 0..3 {
            assert_eq!(fleet.provider_view(id), rebuilt.provider_view(id));
        }
    }
}
