//! The fleet: every row as columns in batches of at most [`BATCH_ROWS`]
//! rows (DESIGN.md section 3), plus the usage columns that claims update in
//! place. A fleet built from host records has one row per compute host; the
//! live fleet of `quiver serve` has one row per Placement provider (its
//! index is the provider id), of which the compute nodes are the hosts the
//! scheduler sees.
//!
//! One concept per file: [`batch`] (the per-row columns of a batch),
//! [`schema`] (column names, defined once, and the Arrow view), [`usage`]
//! (claims and consumption), [`builder`] (a fleet from host records),
//! [`live`] (in-place updates: append, rewrite, tombstone, compaction),
//! [`providers`] (Placement's side of a row: tree, aggregates, liveness,
//! and hosts bound to provider rows), [`provider_masks`] (the allocation
//! candidates kernels), [`dictionary`] (set codes with live counts) and
//! [`record`] (a row back as a [`crate::HostRecord`]).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use arrow_schema::SchemaRef;

use crate::host::Aggregate;
use crate::vocab::Interner;

pub mod batch;
pub mod builder;
pub mod dictionary;
pub mod live;
pub mod provider_masks;
pub mod providers;
pub mod record;
pub mod schema;
pub mod usage;

mod aggregate_values;
mod selection;

pub use batch::{HostBatch, NO_AZ, RcColumns, StrColumn};
pub use builder::FleetBuilder;
pub use dictionary::SetDictionary;
pub use providers::{NO_PARENT, ProviderRow, ProviderView, Providers};
pub use schema::static_schema;
pub use usage::{Usage, avail_of};

/// Hosts per weighing block: 64 mask words. Weighers work block by block,
/// and the fleet versions each block so per-block summaries can be cached.
pub const BLOCK: usize = 4096;

/// Source of epoch values: every change to a block takes a new, globally
/// unique value, so equal epochs mean equal data even across fleet clones.
static NEXT_EPOCH: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn next_epoch() -> u64 {
    NEXT_EPOCH.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Rows per batch: a multiple of 64 so per-batch masks concatenate without
/// shifting (DESIGN.md section 3).
pub const BATCH_ROWS: usize = 65_536;

/// One distinct inventory of a resource class: the dictionary values behind
/// a `{RC}.inventory` code column. Hosts of one hardware class share one, so
/// a fleet holds a handful per class instead of 28 bytes per host.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InventoryProfile {
    /// `total`.
    pub total: i32,
    /// `reserved`.
    pub reserved: i32,
    /// `min_unit`.
    pub min_unit: i32,
    /// `max_unit`.
    pub max_unit: i32,
    /// `step_size`.
    pub step_size: i32,
    /// `allocation_ratio`.
    pub allocation_ratio: f64,
}

/// Hashable identity of an [`InventoryProfile`] (the ratio by its bits).
type ProfileKey = (i32, i32, i32, i32, i32, u64);

impl InventoryProfile {
    /// Placement's capacity: `floor((total - reserved) * allocation_ratio)`.
    pub fn capacity(&self) -> i64 {
        ((self.total as i64 - self.reserved as i64) as f64 * self.allocation_ratio).floor() as i64
    }

    fn key(&self) -> ProfileKey {
        (self.total, self.reserved, self.min_unit, self.max_unit, self.step_size, self.allocation_ratio.to_bits())
    }

    fn units_trivial(&self) -> bool {
        self.min_unit <= 1 && self.step_size == 1
    }
}

/// A metric reported by (some) hosts, dense over the fleet.
#[derive(Clone, Debug)]
pub struct MetricColumn {
    /// Metric name (`cpu.percent` ...).
    pub name: String,
    /// Value per host (0 where absent).
    pub values: Vec<f64>,
    /// Which hosts report it.
    pub present: crate::mask::Mask,
}

/// Distinct values interned to codes, with the reverse map for new rows.
#[derive(Clone, Debug, Default)]
pub(crate) struct Codes<K: std::hash::Hash + Eq> {
    ids: HashMap<K, u32>,
}

impl<K: std::hash::Hash + Eq + Clone> Codes<K> {
    /// The code of `key`, pushing `make()` onto `table` when it is new.
    fn code<T>(&mut self, key: &K, table: &mut Vec<T>, make: impl FnOnce() -> T) -> u32 {
        if let Some(&c) = self.ids.get(key) {
            return c;
        }
        let c = table.len() as u32;
        table.push(make());
        self.ids.insert(key.clone(), c);
        c
    }
}

/// The whole fleet.
#[derive(Clone, Debug)]
pub struct Fleet {
    /// Host batches in host order; every batch but the last is full.
    pub batches: Vec<HostBatch>,
    /// Placement's columns of every row: liveness, tree, aggregates.
    pub providers: Providers,
    /// Mutable usage columns (written only through the methods of
    /// [`usage`], which keep `avail` and the block epochs in step).
    usage: Usage,
    /// Per [`BLOCK`] of hosts, the epoch of its last change.
    block_epochs: Vec<u64>,
    /// Resource classes with a column group, in column order.
    pub resource_classes: Interner,
    /// Per resource class, the distinct inventories (`None` at code 0: the
    /// host has no inventory of the class).
    pub inventory_profiles: Vec<Vec<Option<InventoryProfile>>>,
    profile_ids: Vec<Codes<ProfileKey>>,
    /// Traits with a bit.
    pub traits: Interner,
    /// Aggregates, in the order they were declared.
    pub aggregates: Vec<Aggregate>,
    agg_by_id: HashMap<u32, u32>,
    /// Distinct aggregate sets (indices into `aggregates`).
    pub aggsets: Vec<Vec<u32>>,
    aggset_ids: Codes<Vec<u32>>,
    /// Distinct trait sets (bit words over `traits`).
    pub traitsets: Vec<Vec<u64>>,
    traitset_ids: Codes<Vec<u64>>,
    /// Distinct `cpu_info` JSON strings.
    pub cpu_infos: Interner,
    /// Distinct `supported_instances` lists.
    pub supported: Vec<Arc<Vec<[String; 3]>>>,
    supported_ids: Codes<Vec<[String; 3]>>,
    /// Distinct `stats` maps.
    pub stats: Vec<Arc<std::collections::BTreeMap<String, String>>>,
    stats_ids: Codes<std::collections::BTreeMap<String, String>>,
    /// Hypervisor types.
    pub hypervisor_types: Interner,
    /// Cells.
    pub cells: Interner,
    /// Availability zones.
    pub azs: Interner,
    /// Metrics, by name.
    pub metrics: Vec<MetricColumn>,
    /// Where each known instance lives (instance uuid -> host index).
    pub instances: HashMap<u128, u32>,
    /// Host index by name: stores host indices only and hashes the names
    /// in the batches, so names are not held twice.
    by_name: hashbrown::HashTable<u32>,
    name_hasher: hashbrown::DefaultHashBuilder,
    /// Rows that are not live hosts (deleted hosts not compacted away yet,
    /// and provider rows that are not compute nodes).
    tombstones: usize,
    /// Added to every host's `service_age_s` (see [`HostBatch`]).
    pub service_clock: f64,
    /// Smallest nova-compute service version in the fleet.
    pub min_service_version: i32,
    /// Nova option overrides carried by the fleet file (`group.option`).
    pub nova_conf: Vec<(String, serde_json::Value)>,
    /// Bumped when an aggregate's metadata changes (see `aggregate_values`).
    agg_epoch: u64,
    /// Numeric aggregate metadata per aggregate set, by key.
    aggregate_values: aggregate_values::AggregateValues,
}

impl Default for Fleet {
    fn default() -> Self {
        Fleet::empty()
    }
}

impl Fleet {
    /// Per aggregate set, the smallest value of numeric metadata `key` over
    /// its aggregates, else `default` (Nova's weight multiplier
    /// overrides); computed once until the aggregates change.
    pub fn aggregate_min_values(&self, key: &str, default: f64) -> Arc<Vec<f64>> {
        let stamp = (self.aggregates.len(), self.aggsets.len(), self.agg_epoch);
        self.aggregate_values
            .get_or(key, default, stamp, || crate::filters::aggset_min_values::<f64>(self, key, default))
    }

    /// A fleet with no host. `VCPU`, `MEMORY_MB` and `DISK_GB` always get
    /// columns, in that order.
    pub fn empty() -> Self {
        let mut f = Fleet {
            batches: Vec::new(),
            providers: Providers::default(),
            usage: Usage::default(),
            block_epochs: Vec::new(),
            resource_classes: Interner::default(),
            inventory_profiles: Vec::new(),
            profile_ids: Vec::new(),
            traits: Interner::default(),
            aggregates: Vec::new(),
            agg_by_id: HashMap::new(),
            aggsets: Vec::new(),
            aggset_ids: Codes::default(),
            traitsets: Vec::new(),
            traitset_ids: Codes::default(),
            cpu_infos: Interner::default(),
            supported: Vec::new(),
            supported_ids: Codes::default(),
            stats: Vec::new(),
            stats_ids: Codes::default(),
            hypervisor_types: Interner::default(),
            cells: Interner::default(),
            azs: Interner::default(),
            metrics: Vec::new(),
            instances: HashMap::new(),
            by_name: hashbrown::HashTable::new(),
            name_hasher: hashbrown::DefaultHashBuilder::default(),
            tombstones: 0,
            service_clock: 0.0,
            min_service_version: 74,
            nova_conf: Vec::new(),
            agg_epoch: 0,
            aggregate_values: Default::default(),
        };
        for rc in ["VCPU", "MEMORY_MB", "DISK_GB"] {
            f.add_resource_class(rc);
        }
        f.batches.push(HostBatch::new(0, f.resource_classes.len()));
        f
    }

    /// Number of rows, deleted hosts and provider-only rows included (host
    /// indices run over `0..len()`).
    pub fn len(&self) -> usize {
        self.usage.vcpus_used.len()
    }

    /// True when the fleet has no host row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Hosts that are not deleted.
    pub fn live_len(&self) -> usize {
        self.len() - self.tombstones
    }

    /// Deleted hosts still holding a row.
    pub fn tombstones(&self) -> usize {
        self.tombstones
    }

    /// True when row `i` is a live host (not deleted, not a provider that
    /// is not a compute node).
    #[inline]
    pub fn is_live(&self, host: usize) -> bool {
        let (b, r) = self.locate(host);
        b.live.get(r)
    }

    /// The epoch of the block holding host `block * BLOCK`.
    #[inline]
    pub fn block_epoch(&self, block: usize) -> u64 {
        self.block_epochs[block]
    }

    #[inline]
    fn touch(&mut self, host: usize) {
        self.block_epochs[host / BLOCK] = next_epoch();
    }

    /// Schema of the static columns.
    pub fn schema(&self) -> SchemaRef {
        static_schema(&self.resource_classes)
    }

    /// Batch and row of a global host index.
    #[inline]
    pub fn locate(&self, host: usize) -> (&HostBatch, usize) {
        (&self.batches[host / BATCH_ROWS], host % BATCH_ROWS)
    }

    #[inline]
    fn locate_mut(&mut self, host: usize) -> (&mut HostBatch, usize) {
        (&mut self.batches[host / BATCH_ROWS], host % BATCH_ROWS)
    }

    /// Service host name of host `i`.
    pub fn name(&self, host: usize) -> &str {
        let (b, r) = self.locate(host);
        b.names.get(r).unwrap_or("")
    }

    /// Index of a live host by name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        let h = self.name_hasher.hash_one(name);
        self.by_name.find(h, |&i| self.name(i as usize) == name).map(|&i| i as usize)
    }

    fn index_name(&mut self, host: usize) {
        let hash = self.name_hasher.hash_one(self.name(host));
        let (batches, hasher) = (&self.batches, &self.name_hasher);
        self.by_name.insert_unique(hash, host as u32, |&i| {
            let i = i as usize;
            hasher.hash_one(batches[i / BATCH_ROWS].names.get(i % BATCH_ROWS).unwrap_or(""))
        });
    }

    fn unindex_name(&mut self, host: usize) {
        let hash = self.name_hasher.hash_one(self.name(host));
        if let Ok(e) = self.by_name.find_entry(hash, |&i| i as usize == host) {
            e.remove();
        }
    }

    /// The inventory of class `rc` on `host`, if it has one.
    #[inline]
    pub fn inventory(&self, rc: usize, host: usize) -> Option<&InventoryProfile> {
        let (b, r) = self.locate(host);
        self.inventory_profiles[rc][b.rc[rc].code[r] as usize].as_ref()
    }

    /// Resource class column index by name.
    pub fn rc_index(&self, rc: &str) -> Option<usize> {
        self.resource_classes.get(rc).map(|i| i as usize)
    }

    /// The metric column called `name`.
    pub fn metric(&self, name: &str) -> Option<&MetricColumn> {
        self.metrics.iter().find(|m| m.name == name)
    }

    /// Hypervisor node name of host `i` (its name unless it differs).
    pub fn nodename(&self, host: usize) -> &str {
        let (b, r) = self.locate(host);
        b.nodenames.get(r).unwrap_or_else(|| self.name(host))
    }

    /// Root provider uuid of host `i`.
    pub fn uuid(&self, host: usize) -> u128 {
        let (b, r) = self.locate(host);
        b.uuids[r]
    }

    /// Cell code of host `i` (a name in `cells`).
    pub fn cell_of(&self, host: usize) -> u32 {
        let (b, r) = self.locate(host);
        b.cell[r]
    }

    /// Instances per host, from the instance map (one pass).
    pub fn instances_by_host(&self) -> Vec<Vec<u128>> {
        let mut out = vec![Vec::new(); self.len()];
        for (&u, &h) in &self.instances {
            out[h as usize].push(u);
        }
        for v in &mut out {
            v.sort_unstable();
        }
        out
    }

    /// Management IP of host `i` (SimpleCIDRAffinityFilter).
    pub fn host_record_ip(&self, host: usize) -> Option<std::net::IpAddr> {
        let (b, r) = self.locate(host);
        b.host_ip[r].as_ref().map(record::decode_ip)
    }

    /// Bytes held by the fleet's columns and side tables (an estimate of the
    /// resident size, without allocator overhead).
    pub fn memory_bytes(&self) -> usize {
        let batches: usize = self.batches.iter().map(HostBatch::memory_bytes).sum();
        let metrics: usize = self.metrics.iter().map(|m| m.values.len() * 8 + m.present.words().len() * 8).sum();
        let instances = self.instances.capacity() * (16 + 4 + 1);
        let names = self.by_name.capacity() * (4 + 1);
        batches + self.usage.memory_bytes() + self.providers.memory_bytes() + metrics + instances + names
    }
}
