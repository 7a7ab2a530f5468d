//! Placement's side of the fleet's rows (DESIGN.md section 3): in a live
//! fleet every resource provider Placement knows is a row, trees and
//! sharing providers included, and the row index is the provider's id (ids
//! are never reused, so a deleted provider's row stays as a tombstone).
//! A compute node is a row that is also a *host*: the scheduler's filters
//! and weighers see only host rows ([`HostBatch::live`]); allocation
//! candidates see every live provider ([`Providers::live`]). Both read the
//! same capacity, usage and trait columns, so there is one replica.
//!
//! A fleet built from host records ([`super::FleetBuilder`]) has one row per
//! host, each its own root.

use super::batch::HostBatch;
use super::dictionary::SetDictionary;
use super::{BATCH_ROWS, BLOCK, Fleet, next_epoch};
use crate::error::Result;
use crate::host::{HostRecord, Inventory};
use crate::mask::Mask;

/// `parent` of a root provider.
pub const NO_PARENT: u32 = u32::MAX;

/// The provider columns, over the global row index.
#[derive(Clone, Debug, Default)]
pub struct Providers {
    /// Live providers (every live host is one).
    pub live: Mask,
    /// Root provider row.
    pub root: Vec<u32>,
    /// Parent provider row, [`NO_PARENT`] for a root.
    pub parent: Vec<u32>,
    /// Code of the provider's Placement aggregate set (ids the store
    /// assigns) in `aggsets`. Nova's host aggregates, with their metadata,
    /// are the hosts' `aggset` column.
    pub aggset: Vec<u32>,
    /// Placement aggregate sets, with live rows per set.
    pub aggsets: SetDictionary,
    /// The fleet's trait sets (same codes as `Fleet::traitsets`) as sorted
    /// trait indices, with live rows per set.
    pub traitsets: SetDictionary,
}

/// What Placement holds for one provider, as a row takes it.
#[derive(Clone, Debug, Default)]
pub struct ProviderRow<'a> {
    /// Provider uuid.
    pub uuid: u128,
    /// Root row.
    pub root: u32,
    /// Parent row ([`NO_PARENT`] for a root).
    pub parent: u32,
    /// Inventories with their usage.
    pub inventories: &'a [Inventory],
    /// Trait indices (`Fleet::traits`), sorted.
    pub traits: &'a [u32],
    /// Placement aggregate ids, sorted.
    pub aggregates: &'a [u32],
}

impl Providers {
    fn push(&mut self, row: u32, live: bool) {
        let empty = self.aggsets.code(&[]);
        self.live.push(live);
        self.root.push(row);
        self.parent.push(NO_PARENT);
        self.aggset.push(empty);
        if live {
            self.aggsets.count(empty, 1);
        }
    }

    /// Bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.live.words().len() * 8 + (self.root.capacity() + self.parent.capacity() + self.aggset.capacity()) * 4
    }
}

impl Fleet {
    /// Appends dead rows until the fleet has `len` (a provider id space
    /// that grew); they come alive with [`Fleet::set_provider`].
    pub fn ensure_rows(&mut self, len: usize) {
        while self.len() < len {
            let row = self.push_row(false);
            let (b, r) = self.locate_mut(row);
            b.live.set(r, false);
            b.names.set(r, None);
            self.tombstones += 1;
        }
    }

    /// Appends an empty row (a host row when `live`) and returns its index.
    pub(super) fn push_row(&mut self, live: bool) -> usize {
        let row = self.len();
        if self.batches.last().is_none_or(|b| b.len() == BATCH_ROWS) {
            self.batches.push(HostBatch::new(row, self.resource_classes.len()));
        }
        self.batches.last_mut().expect("a batch").push_slot();
        self.usage.push_slot();
        for m in &mut self.metrics {
            m.values.push(0.0);
            m.present.push(false);
        }
        if row.is_multiple_of(BLOCK) {
            self.block_epochs.push(next_epoch());
        }
        let empty_traits = self.traitset_code_bits(&[]);
        self.providers.push(row as u32, live);
        let (b, r) = self.locate_mut(row);
        b.traitset[r] = empty_traits;
        if live {
            self.providers.traitsets.count(empty_traits, 1);
        }
        row
    }

    /// True when row `row` is a live provider.
    #[inline]
    pub fn is_provider(&self, row: usize) -> bool {
        self.providers.live.get(row)
    }

    /// Writes Placement's columns of row `row` (growing the fleet to it):
    /// tree, inventories with usage, traits, aggregates. Placement has
    /// validated the values, so this cannot fail; amounts past `i32` are
    /// saturated. A host row keeps its Nova columns; its `HostState`
    /// capacity fields follow the inventory ([`Fleet::sync_hoststate`]).
    pub fn set_provider(&mut self, row: usize, p: &ProviderRow<'_>) {
        self.ensure_rows(row + 1);
        self.uncount(row);
        self.providers.live.set(row, true);
        self.providers.root[row] = p.root;
        self.providers.parent[row] = p.parent;
        let agg = self.providers.aggsets.code(p.aggregates);
        self.providers.aggset[row] = agg;
        self.providers.aggsets.count(agg, 1);
        let traits = self.traitset_code_bits(p.traits);
        self.providers.traitsets.count(traits, 1);
        let (b, r) = self.locate_mut(row);
        b.traitset[r] = traits;
        b.uuids[r] = p.uuid;
        self.set_inventories_unchecked(row, p.inventories);
        self.sync_hoststate(row);
    }

    /// Sets the usage of row `row`, per class (by name), as an allocation
    /// write left it; `HostState` follows once.
    pub fn set_provider_usage<'a>(&mut self, row: usize, used: impl IntoIterator<Item = (&'a str, i64)>) {
        for (rc, n) in used {
            if let Some(i) = self.rc_index(rc) {
                self.set_used(row, i, n);
            }
        }
        self.sync_hoststate(row);
    }

    /// Takes a live row out of its sets' live counts (a no-op on a dead one).
    fn uncount(&mut self, row: usize) {
        if !self.providers.live.get(row) {
            return;
        }
        let (b, r) = self.locate(row);
        let code = b.traitset[r];
        self.providers.traitsets.count(code, -1);
        self.providers.aggsets.count(self.providers.aggset[row], -1);
    }

    /// Provider `row` was deleted: its row becomes a tombstone (a host row
    /// stops being a host first).
    pub fn drop_provider(&mut self, row: usize) {
        if row >= self.len() || !self.providers.live.get(row) {
            return;
        }
        self.unbind_host(row);
        self.uncount(row);
        self.providers.live.set(row, false);
        for rc in 0..self.resource_classes.len() {
            self.refresh_avail(rc, row);
        }
        self.touch(row);
    }

    /// Makes provider row `row` the host `h` (a compute node): the Nova
    /// columns come from `h` (name, node, zone, host aggregates, hypervisor,
    /// service, instance and build counters); inventories, usage and traits
    /// stay Placement's.
    ///
    /// # Errors
    /// An empty or duplicate name, an unknown aggregate id, a value out of
    /// range; the row is left as it was.
    pub fn bind_host(&mut self, row: usize, h: &HostRecord) -> Result<()> {
        if let Some(other) = self.index_of(&h.name).filter(|&o| o != row) {
            return Err(crate::EngineError::invalid(format!("host {:?} is already host #{other}", h.name)));
        }
        let nova = HostRecord { inventories: Vec::new(), traits: Vec::new(), ..h.clone() };
        let e = self.encode(&nova)?;
        let was_host = self.is_live(row);
        if was_host {
            self.unindex_name(row);
        }
        self.write_nova(row, &nova, &e);
        let (b, r) = self.locate_mut(row);
        b.live.set(r, true);
        self.index_name(row);
        if !was_host {
            self.tombstones -= 1;
        }
        let [.., ni, io] = e.hoststate;
        let mut s = self.hoststate(row);
        [s[3], s[4]] = [ni, io];
        self.set_hoststate(row, s);
        self.sync_hoststate(row);
        Ok(())
    }

    /// Row `row` is no longer a host (its service went away); it stays a
    /// provider if it is one.
    pub fn unbind_host(&mut self, row: usize) {
        if !self.is_live(row) {
            return;
        }
        self.unindex_name(row);
        let (b, r) = self.locate_mut(row);
        b.live.set(r, false);
        b.names.set(r, None);
        self.instances.retain(|_, h| *h as usize != row);
        self.tombstones += 1;
        self.touch(row);
    }

    /// Nova's `HostState` capacity fields of row `row` from its inventory
    /// and usage, as the resource tracker reports them: free RAM and disk
    /// (`total - reserved - used`) and the vCPUs in use.
    pub fn sync_hoststate(&mut self, row: usize) {
        let free = |f: &Fleet, rc: &str| {
            f.rc_index(rc)
                .and_then(|i| f.inventory(i, row).map(|p| (p, f.usage.used[i][row])))
                .map_or(0, |(p, used)| i64::from(p.total) - i64::from(p.reserved) - used)
        };
        let used = |f: &Fleet, rc: &str| f.rc_index(rc).map_or(0, |i| f.usage.used[i][row]);
        let sat = |v: i64| v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
        let mut s = self.hoststate(row);
        s[0] = sat(free(self, "MEMORY_MB"));
        s[1] = sat(free(self, "DISK_GB").saturating_mul(1024));
        s[2] = sat(used(self, "VCPU"));
        self.set_hoststate(row, s);
    }

    /// One provider row decoded (for comparing a live fleet with a rebuilt
    /// one, whose dictionary codes may differ).
    pub fn provider_view(&self, row: usize) -> Option<ProviderView> {
        if row >= self.len() || !self.providers.live.get(row) {
            return None;
        }
        let (b, r) = self.locate(row);
        let mut inventories = vec![];
        for rc in 0..self.resource_classes.len() {
            if let Some(p) = self.inventory(rc, row) {
                inventories.push((
                    self.resource_classes.name(rc as u32).to_owned(),
                    *p,
                    self.usage.used[rc][row],
                    self.usage.avail[rc][row],
                ));
            }
        }
        Some(ProviderView {
            uuid: b.uuids[r],
            root: self.providers.root[row],
            parent: self.providers.parent[row],
            traits: self.providers.traitsets.set(b.traitset[r]).to_vec(),
            aggregates: self.providers.aggsets.set(self.providers.aggset[row]).to_vec(),
            inventories,
        })
    }
}

/// A provider row with its codes resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct ProviderView {
    pub uuid: u128,
    pub root: u32,
    pub parent: u32,
    pub traits: Vec<u32>,
    pub aggregates: Vec<u32>,
    /// (class, inventory, used, avail)
    pub inventories: Vec<(String, super::InventoryProfile, i64, i32)>,
}
