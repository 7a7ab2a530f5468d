//! The in-memory replica of the store: every provider, inventory, trait,
//! aggregate, consumer and allocation, indexed for the API's reads and the
//! allocation-candidate search. Names (resource classes, traits, aggregate
//! UUIDs) are interned to small integers so the search compares integers.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Seconds since the Unix epoch (HTTP dates have second resolution).
pub type Ts = i64;
pub type RpId = u32;
pub type ClassId = u32;
pub type TraitId = u32;
pub type AggId = u32;

/// Placement's `db_const.MAX_INT`.
pub use quiver_engine::inventory::MAX_INT;

pub fn now() -> Ts {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// One inventory record of a provider for one resource class (the type the
/// agent reports and the engine reads too).
pub use quiver_engine::inventory::Inventory;

#[derive(Clone, Debug)]
pub struct InventoryRecord {
    pub class: ClassId,
    pub inv: Inventory,
    pub used: i64,
    pub created_at: Ts,
    pub updated_at: Ts,
}

/// A resource provider, a node of a provider tree.
#[derive(Clone, Debug)]
pub struct Provider {
    pub id: RpId,
    pub uuid: String,
    pub name: String,
    pub generation: i64,
    pub parent: Option<RpId>,
    pub root: RpId,
    pub children: BTreeSet<RpId>,
    /// Sorted by class id; `used` is the sum of allocations against it.
    pub inventories: Vec<InventoryRecord>,
    pub traits: BTreeSet<TraitId>,
    pub aggregates: BTreeSet<AggId>,
    pub created_at: Ts,
    pub updated_at: Ts,
    /// The generation the store holds (None: not stored yet); the store's
    /// write checks it, so a write built on a stale view is refused.
    pub stored_generation: Option<i64>,
}

impl Provider {
    pub fn inventory(&self, class: ClassId) -> Option<&InventoryRecord> {
        self.inventories.iter().find(|r| r.class == class)
    }
    pub fn inventory_mut(&mut self, class: ClassId) -> Option<&mut InventoryRecord> {
        self.inventories.iter_mut().find(|r| r.class == class)
    }
    pub fn last_modified(&self) -> Ts {
        self.updated_at.max(self.created_at)
    }
}

/// One allocation line of a consumer.
#[derive(Clone, Debug, PartialEq)]
pub struct Allocation {
    pub rp: RpId,
    pub class: ClassId,
    pub used: i64,
}

#[derive(Clone, Debug)]
pub struct Consumer {
    pub uuid: String,
    pub project: String,
    pub user: String,
    pub generation: i64,
    pub consumer_type: Option<String>,
    pub allocations: Vec<Allocation>,
    pub created_at: Ts,
    pub updated_at: Ts,
    /// The generation the store holds (None: not stored yet), as for
    /// providers.
    pub stored_generation: Option<i64>,
}

/// An interned vocabulary with per-name timestamps and a live flag (custom
/// resource classes and traits can be deleted; their ids are not reused).
#[derive(Clone, Debug, Default)]
pub struct Names {
    by_name: HashMap<String, u32>,
    names: Vec<String>,
    pub live: Vec<bool>,
    pub created_at: Vec<Ts>,
    pub updated_at: Vec<Ts>,
}

impl Names {
    pub fn get(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied().filter(|&id| self.live[id as usize])
    }
    /// The id of `name`, live or deleted.
    pub fn id_of(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }
    pub fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }
    pub fn intern(&mut self, name: &str, at: Ts) -> u32 {
        if let Some(&id) = self.by_name.get(name) {
            if !self.live[id as usize] {
                self.live[id as usize] = true;
                self.created_at[id as usize] = at;
                self.updated_at[id as usize] = at;
            }
            return id;
        }
        let id = self.names.len() as u32;
        self.by_name.insert(name.to_string(), id);
        self.names.push(name.to_string());
        self.live.push(true);
        self.created_at.push(at);
        self.updated_at.push(at);
        id
    }
    pub fn kill(&mut self, id: u32) {
        self.live[id as usize] = false;
    }
    pub fn live_ids(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.names.len() as u32).filter(|&i| self.live[i as usize])
    }
}

/// What a write changed, so the store can persist exactly that.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dirty {
    Provider(RpId),
    /// Only the provider's generation (an allocation write bumps it): one
    /// column to write, one to re-read elsewhere.
    Generation(RpId),
    Consumer(String),
    Class(ClassId),
    Trait(TraitId),
}

/// The whole Placement state.
#[derive(Debug, Default)]
pub struct State {
    pub providers: Vec<Option<Provider>>,
    pub by_uuid: HashMap<String, RpId>,
    pub by_name: HashMap<String, RpId>,
    pub classes: Names,
    pub standard_classes: usize,
    pub traits: Names,
    pub standard_traits: usize,
    pub aggs: Names,
    pub agg_members: HashMap<AggId, BTreeSet<RpId>>,
    pub consumers: HashMap<String, Consumer>,
    /// Providers that have a parent (Placement's `has_provider_trees`).
    pub nested: usize,
    pub dirty: BTreeSet<Dirty>,
    /// Providers whose usage the current write changed (with `dirty`, what
    /// the live fleet must re-read after the commit).
    pub usage_changed: BTreeSet<RpId>,
    /// Bumped on every committed write.
    pub epoch: u64,
}

impl State {
    /// A state with the standard resource classes and traits.
    pub fn with_standard_names(at: Ts) -> State {
        let mut s = State::default();
        for name in quiver_engine::vocab::STANDARD_RESOURCE_CLASSES.lines().map(str::trim).filter(|l| !l.is_empty()) {
            s.classes.intern(name, at);
        }
        s.standard_classes = s.classes.names.len();
        for name in quiver_engine::vocab::STANDARD_TRAITS.lines().map(str::trim).filter(|l| !l.is_empty()) {
            s.traits.intern(name, at);
        }
        s.standard_traits = s.traits.names.len();
        s
    }

    pub fn is_standard_class(&self, id: ClassId) -> bool {
        (id as usize) < self.standard_classes
    }
    pub fn is_standard_trait(&self, id: TraitId) -> bool {
        (id as usize) < self.standard_traits
    }

    pub fn provider(&self, id: RpId) -> &Provider {
        self.providers[id as usize].as_ref().expect("live provider id")
    }
    pub fn provider_mut(&mut self, id: RpId) -> &mut Provider {
        self.providers[id as usize].as_mut().expect("live provider id")
    }
    pub fn live_providers(&self) -> impl Iterator<Item = &Provider> {
        self.providers.iter().flatten()
    }
    pub fn provider_by_uuid(&self, uuid: &str) -> Option<&Provider> {
        self.by_uuid.get(uuid).map(|&id| self.provider(id))
    }
    pub fn uuid_of(&self, id: RpId) -> &str {
        &self.provider(id).uuid
    }
    pub fn parent_uuid(&self, p: &Provider) -> Option<&str> {
        p.parent.map(|id| self.uuid_of(id))
    }
    pub fn root_uuid(&self, p: &Provider) -> &str {
        self.uuid_of(p.root)
    }
    pub fn class_name(&self, id: ClassId) -> &str {
        self.classes.name(id)
    }
    pub fn aggregate_uuids(&self, p: &Provider) -> Vec<&str> {
        let mut v: Vec<&str> = p.aggregates.iter().map(|&a| self.aggs.name(a)).collect();
        v.sort_unstable();
        v
    }

    /// All providers of the tree rooted at `root`, the root first.
    pub fn tree(&self, root: RpId) -> Vec<RpId> {
        let mut out = vec![root];
        let mut i = 0;
        while i < out.len() {
            out.extend(self.provider(out[i]).children.iter().copied());
            i += 1;
        }
        out
    }

    /// Allocations against a provider, grouped by consumer.
    pub fn allocations_on(&self, rp: RpId) -> BTreeMap<&str, Vec<&Allocation>> {
        let mut out: BTreeMap<&str, Vec<&Allocation>> = BTreeMap::new();
        for c in self.consumers.values() {
            for a in &c.allocations {
                if a.rp == rp {
                    out.entry(c.uuid.as_str()).or_default().push(a);
                }
            }
        }
        out
    }

    pub fn touch(&mut self, d: Dirty) {
        self.dirty.insert(d);
    }

    /// Adds `delta` to the usage of `class` on `rp`.
    pub(crate) fn add_usage(&mut self, rp: RpId, class: ClassId, delta: i64) {
        if let Some(Some(p)) = self.providers.get_mut(rp as usize)
            && let Some(r) = p.inventory_mut(class)
        {
            r.used += delta;
            self.usage_changed.insert(rp);
        }
    }
}
