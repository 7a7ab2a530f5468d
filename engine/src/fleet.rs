//! The fleet: every compute host as columnar Arrow batches of at most
//! [`BATCH_ROWS`] rows (DESIGN.md section 3), plus the usage columns that
//! claims update in place.
//!
//! Static columns (inventory, attributes) live in each batch's
//! `RecordBatch`; typed views of them are checked once when the batch is
//! built. Columns that change on every claim live in [`Usage`], one `Vec` per
//! column over the global host index, so a claim is a handful of stores and
//! never rebuilds a batch.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use arrow_array::builder::ArrayBuilder;
use arrow_array::types::UInt32Type;
use arrow_array::{
    Array, ArrayRef, BooleanArray, DictionaryArray, FixedSizeBinaryArray, Float64Array, Int32Array, Int64Array,
    RecordBatch, StringArray, UInt32Array,
};
use arrow_buffer::{BooleanBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::error::{EngineError, Result};
use crate::host::{Aggregate, HostRecord, Inventory};
use crate::vocab::Interner;

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
}

/// Typed view of one resource class's inventory code column in a batch.
#[derive(Clone, Debug)]
pub struct RcColumns {
    /// Per host, the index of its [`InventoryProfile`] in
    /// `Fleet::inventory_profiles[rc]`; 0 means no inventory of the class.
    pub code: ScalarBuffer<u32>,
    /// True when every host of the batch has `min_unit <= 1` and
    /// `step_size == 1`, so the unit checks can be skipped.
    pub units_trivial: bool,
}

/// One batch of hosts: the Arrow record batch and typed views of it.
#[derive(Clone, Debug)]
pub struct HostBatch {
    /// Global index of the first host.
    pub start: usize,
    /// The static columns.
    pub record: RecordBatch,
    /// Per resource class (fleet order) inventory columns.
    pub rc: Vec<RcColumns>,
    /// Code of the host's aggregate set (`Fleet::aggsets`).
    pub aggset: ScalarBuffer<u32>,
    /// Code of the host's trait set (`Fleet::traitsets`).
    pub traitset: ScalarBuffer<u32>,
    /// Dictionary code of `cpu_info` (`Fleet::cpu_infos`).
    pub cpu_info: ScalarBuffer<u32>,
    /// Dictionary code of `supported_instances` (`Fleet::supported`).
    pub supported: ScalarBuffer<u32>,
    /// Dictionary code of `stats` (`Fleet::stats`).
    pub stats: ScalarBuffer<u32>,
    /// Dictionary code of `hypervisor_type` (`Fleet::hypervisor_types`).
    pub hypervisor_type: ScalarBuffer<u32>,
    /// `hypervisor_version`.
    pub hypervisor_version: ScalarBuffer<i64>,
    /// `failed_builds`.
    pub failed_builds: ScalarBuffer<i32>,
    /// Service disabled, packed bits.
    pub service_disabled: BooleanBuffer,
    /// Service forced down, packed bits.
    pub service_forced_down: BooleanBuffer,
    /// Seconds since the last heartbeat.
    pub service_age_s: ScalarBuffer<f64>,
}

impl HostBatch {
    /// Number of hosts in the batch.
    pub fn len(&self) -> usize {
        self.record.num_rows()
    }

    /// True for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Global index range of the batch.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.start..self.start + self.len()
    }
}

/// Columns that claims change, indexed by global host index.
#[derive(Clone, Debug, Default)]
pub struct Usage {
    /// Placement usage per resource class.
    pub used: Vec<Vec<i64>>,
    /// Derived per resource class: the largest amount one more allocation
    /// may take, `min(floor((total - reserved) * ratio) - used, max_unit)`,
    /// saturated to `i32`, `-1` without inventory. Kept in step with `used`
    /// so the capacity kernel reads 4 bytes per class and host.
    pub avail: Vec<Vec<i32>>,
    /// `HostState.vcpus_used`.
    pub vcpus_used: Vec<i32>,
    /// `HostState.free_ram_mb`.
    pub free_ram_mb: Vec<i32>,
    /// `HostState.free_disk_mb`.
    pub free_disk_mb: Vec<i32>,
    /// `HostState.num_instances`.
    pub num_instances: Vec<i32>,
    /// `HostState.num_io_ops`.
    pub num_io_ops: Vec<i32>,
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

/// The whole fleet.
#[derive(Clone, Debug)]
pub struct Fleet {
    /// Host batches in host order.
    pub batches: Vec<HostBatch>,
    /// Mutable usage columns (written only through the methods below, which
    /// keep `avail` and the block epochs in step).
    usage: Usage,
    /// Per [`BLOCK`] of hosts, the epoch of its last change.
    block_epochs: Vec<u64>,
    /// Resource classes with a column group, in column order.
    pub resource_classes: Interner,
    /// Per resource class, the distinct inventories (`None` at code 0: the
    /// host has no inventory of the class).
    pub inventory_profiles: Vec<Vec<Option<InventoryProfile>>>,
    /// Traits with a bit.
    pub traits: Interner,
    /// Aggregates, in id order.
    pub aggregates: Vec<Aggregate>,
    /// Distinct aggregate sets (indices into `aggregates`).
    pub aggsets: Vec<Vec<u32>>,
    /// Distinct trait sets (bit words over `traits`).
    pub traitsets: Vec<Vec<u64>>,
    /// Distinct `cpu_info` JSON strings.
    pub cpu_infos: Interner,
    /// Distinct `supported_instances` lists.
    pub supported: Vec<Arc<Vec<[String; 3]>>>,
    /// Distinct `stats` maps.
    pub stats: Vec<Arc<std::collections::BTreeMap<String, String>>>,
    /// Hypervisor types.
    pub hypervisor_types: Interner,
    /// Cells.
    pub cells: Interner,
    /// Metrics, by name.
    pub metrics: Vec<MetricColumn>,
    /// Where each known instance lives (instance uuid -> host index).
    pub instances: HashMap<u128, u32>,
    /// Host index by name: stores host indices only and hashes the names
    /// in the `name` column, so names are not held twice.
    by_name: hashbrown::HashTable<u32>,
    name_hasher: hashbrown::DefaultHashBuilder,
    /// Smallest nova-compute service version in the fleet.
    pub min_service_version: i32,
    /// Nova option overrides carried by the fleet file (`group.option`).
    pub nova_conf: Vec<(String, serde_json::Value)>,
    schema: SchemaRef,
}

impl Fleet {
    /// Number of hosts.
    pub fn len(&self) -> usize {
        self.usage.vcpus_used.len()
    }

    /// True when the fleet has no host.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The usage columns.
    #[inline]
    pub fn usage(&self) -> &Usage {
        &self.usage
    }

    /// Replaces every usage column (a snapshot taken with `usage().clone()`).
    ///
    /// # Errors
    /// A snapshot of a different fleet size.
    pub fn set_usage(&mut self, usage: Usage) -> Result<()> {
        if usage.vcpus_used.len() != self.len() || usage.used.len() != self.usage.used.len() {
            return Err(EngineError::invalid("usage snapshot does not match the fleet"));
        }
        self.usage = usage;
        let e = next_epoch();
        self.block_epochs.fill(e);
        Ok(())
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

    /// Nova's `HostState` fields of a host that consumption changes:
    /// `[free_ram_mb, free_disk_mb, vcpus_used, num_instances, num_io_ops]`.
    pub fn hoststate(&self, host: usize) -> [i32; 5] {
        let u = &self.usage;
        [u.free_ram_mb[host], u.free_disk_mb[host], u.vcpus_used[host], u.num_instances[host], u.num_io_ops[host]]
    }

    /// Restores what [`Fleet::hoststate`] returned.
    pub fn set_hoststate(&mut self, host: usize, v: [i32; 5]) {
        let u = &mut self.usage;
        [u.free_ram_mb[host], u.free_disk_mb[host], u.vcpus_used[host], u.num_instances[host], u.num_io_ops[host]] = v;
        self.touch(host);
    }

    /// `HostState.consume_from_request`: RAM and disk down, vCPUs, instances
    /// and I/O operations up.
    pub fn consume(&mut self, host: usize, memory_mb: i32, disk_mb: i32, vcpus: i32) {
        let u = &mut self.usage;
        u.free_ram_mb[host] -= memory_mb;
        u.free_disk_mb[host] -= disk_mb;
        u.vcpus_used[host] += vcpus;
        u.num_instances[host] += 1;
        u.num_io_ops[host] += 1;
        self.touch(host);
    }

    /// Undoes [`Fleet::consume`] when an instance leaves the host (a
    /// simulated departure): RAM and disk back, vCPUs and instances down.
    pub fn unconsume(&mut self, host: usize, memory_mb: i32, disk_mb: i32, vcpus: i32) {
        let u = &mut self.usage;
        u.free_ram_mb[host] += memory_mb;
        u.free_disk_mb[host] += disk_mb;
        u.vcpus_used[host] -= vcpus;
        u.num_instances[host] -= 1;
        self.touch(host);
    }

    /// Marks one build on the host finished (Nova counts an instance in
    /// `num_io_ops` only while it builds; a simulated boot is instant).
    pub fn finish_build(&mut self, host: usize) {
        let u = &mut self.usage;
        u.num_io_ops[host] = (u.num_io_ops[host] - 1).max(0);
        self.touch(host);
    }

    /// Schema of the static batches.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Batch and row of a global host index.
    #[inline]
    pub fn locate(&self, host: usize) -> (&HostBatch, usize) {
        (&self.batches[host / BATCH_ROWS], host % BATCH_ROWS)
    }

    /// Service host name of host `i`.
    pub fn name(&self, host: usize) -> &str {
        let (b, r) = self.locate(host);
        string_col(&b.record, "name").value(r)
    }

    /// Host index by name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        let h = self.name_hasher.hash_one(name);
        self.by_name.find(h, |&i| self.name(i as usize) == name).map(|&i| i as usize)
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

    /// Recomputes the derived `avail` of one host and class from `used`.
    #[inline]
    pub fn refresh_avail(&mut self, rc: usize, host: usize) {
        let used = self.usage.used[rc][host];
        self.usage.avail[rc][host] = match self.inventory(rc, host) {
            Some(p) => avail_of(p.total, p.reserved, p.allocation_ratio, p.max_unit, used),
            None => -1,
        };
    }

    /// Claims `resources` (`(class column, amount)`) on `host` if they fit
    /// now: O(1), no batch is touched. Returns false, changing nothing, when
    /// they do not fit (Placement's capacity rule).
    #[inline]
    pub fn claim(&mut self, host: usize, resources: &[(usize, i32)]) -> bool {
        if !resources.iter().all(|&(rc, a)| a <= self.usage.avail[rc][host]) {
            return false;
        }
        for &(rc, a) in resources {
            self.usage.used[rc][host] += a as i64;
            self.refresh_avail(rc, host);
        }
        self.touch(host);
        true
    }

    /// Releases what [`Fleet::claim`] took.
    #[inline]
    pub fn release(&mut self, host: usize, resources: &[(usize, i32)]) {
        for &(rc, a) in resources {
            self.usage.used[rc][host] -= a as i64;
            self.refresh_avail(rc, host);
        }
        self.touch(host);
    }

    /// Hypervisor node name of host `i` (its name unless it differs).
    pub fn nodename(&self, host: usize) -> &str {
        let (b, r) = self.locate(host);
        let n = string_col(&b.record, "nodename");
        if n.is_valid(r) { n.value(r) } else { self.name(host) }
    }

    /// Root provider uuid of host `i`.
    pub fn uuid(&self, host: usize) -> u128 {
        let (b, r) = self.locate(host);
        b.record
            .column_by_name("uuid")
            .and_then(|c| c.as_any().downcast_ref::<FixedSizeBinaryArray>())
            .map_or(0, |u| u128::from_be_bytes(u.value(r).try_into().unwrap_or([0; 16])))
    }

    /// Cell code of host `i` (a name in `cells`).
    pub fn cell_of(&self, host: usize) -> u32 {
        let (b, r) = self.locate(host);
        cell_code(&b.record, r)
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

    /// Rebuilds host `i` as a [`HostRecord`] (for inspection; exports use
    /// [`Fleet::host_records`], which indexes instances once).
    pub fn host_record(&self, host: usize) -> HostRecord {
        let mut instances: Vec<u128> =
            self.instances.iter().filter(|&(_, &h)| h as usize == host).map(|(&u, _)| u).collect();
        instances.sort_unstable();
        self.record_with(host, instances)
    }

    /// Every host as a [`HostRecord`], in host order.
    pub fn host_records(&self) -> impl Iterator<Item = HostRecord> + '_ {
        self.instances_by_host().into_iter().enumerate().map(|(h, inst)| self.record_with(h, inst))
    }

    fn record_with(&self, host: usize, instances: Vec<u128>) -> HostRecord {
        let (b, r) = self.locate(host);
        let rec = &b.record;
        let nodename = string_col(rec, "nodename");
        let uuid = rec.column_by_name("uuid").and_then(|c| c.as_any().downcast_ref::<FixedSizeBinaryArray>());
        let host_ip = rec.column_by_name("host_ip").and_then(|c| c.as_any().downcast_ref::<FixedSizeBinaryArray>());
        let service_version =
            rec.column_by_name("service_version").and_then(|c| c.as_any().downcast_ref::<Int32Array>());
        let az = rec
            .column_by_name("availability_zone")
            .and_then(|c| c.as_any().downcast_ref::<DictionaryArray<UInt32Type>>());
        let mut inventories = Vec::new();
        for ri in 0..b.rc.len() {
            if let Some(p) = self.inventory(ri, host) {
                inventories.push(Inventory {
                    resource_class: self.resource_classes.name(ri as u32).to_owned(),
                    total: p.total as i64,
                    reserved: p.reserved as i64,
                    min_unit: p.min_unit as i64,
                    max_unit: p.max_unit as i64,
                    step_size: p.step_size as i64,
                    allocation_ratio: p.allocation_ratio,
                    used: self.usage.used[ri][host],
                });
            }
        }
        let traits = bits_to_names(&self.traitsets[b.traitset[r] as usize], &self.traits);
        HostRecord {
            name: self.name(host).to_owned(),
            nodename: nodename.is_valid(r).then(|| nodename.value(r).to_owned()),
            uuid: uuid.map_or(0, |u| u128::from_be_bytes(u.value(r).try_into().unwrap_or([0; 16]))),
            cell: self.cells.name(cell_code(rec, r)).to_owned(),
            availability_zone: az.and_then(|a| {
                a.is_valid(r).then(|| {
                    let vals = a.values().as_any().downcast_ref::<StringArray>().expect("utf8 dictionary");
                    vals.value(a.keys().value(r) as usize).to_owned()
                })
            }),
            aggregates: self.aggsets[b.aggset[r] as usize].iter().map(|&a| self.aggregates[a as usize].id).collect(),
            host_ip: host_ip.and_then(|h| h.is_valid(r).then(|| decode_ip(h.value(r)))),
            inventories,
            traits,
            vcpus_used: self.usage.vcpus_used[host] as i64,
            free_ram_mb: self.usage.free_ram_mb[host] as i64,
            free_disk_mb: self.usage.free_disk_mb[host] as i64,
            num_instances: self.usage.num_instances[host] as i64,
            num_io_ops: self.usage.num_io_ops[host] as i64,
            failed_builds: b.failed_builds[r] as i64,
            hypervisor_type: self.hypervisor_types.name(b.hypervisor_type[r]).to_owned(),
            hypervisor_version: b.hypervisor_version[r],
            cpu_info: self.cpu_infos.name(b.cpu_info[r]).to_owned(),
            supported_instances: self.supported[b.supported[r] as usize].as_ref().clone(),
            stats: self.stats[b.stats[r] as usize].as_ref().clone(),
            service: crate::host::ServiceRecord {
                disabled: b.service_disabled.value(r),
                forced_down: b.service_forced_down.value(r),
                last_seen_up_age_s: b.service_age_s[r],
                version: service_version.map_or(74, |v| v.value(r)),
            },
            metrics: self
                .metrics
                .iter()
                .filter(|m| m.present.get(host))
                .map(|m| (m.name.clone(), m.values[host]))
                .collect(),
            instances,
        }
    }

    /// Management IP of host `i` (SimpleCIDRAffinityFilter).
    pub fn host_record_ip(&self, host: usize) -> Option<std::net::IpAddr> {
        let (b, r) = self.locate(host);
        let col = b.record.column_by_name("host_ip")?.as_any().downcast_ref::<FixedSizeBinaryArray>()?;
        col.is_valid(r).then(|| decode_ip(col.value(r)))
    }

    /// Bytes held by the fleet's columns and side tables (an estimate of the
    /// resident size, without allocator overhead).
    pub fn memory_bytes(&self) -> usize {
        let batches: usize = self.batches.iter().map(|b| b.record.get_array_memory_size()).sum();
        let u = &self.usage;
        let usage = u.used.iter().map(|v| v.len() * 8).sum::<usize>()
            + u.avail.iter().map(|v| v.len() * 4).sum::<usize>()
            + 5 * 4 * self.len();
        let metrics: usize = self.metrics.iter().map(|m| m.values.len() * 8 + m.present.words().len() * 8).sum();
        let instances = self.instances.capacity() * (16 + 4 + 1);
        let names = self.by_name.capacity() * (4 + 1);
        batches + usage + metrics + instances + names
    }
}

/// `min(floor((total - reserved) * ratio) - used, max_unit)`, saturated to
/// `i32`; `-1` when the host has no inventory (`total == 0`).
///
/// # Nova compatibility
/// Placement admits an allocation when `used + amount <= (total - reserved)
/// * ratio` in floating point and `amount <= max_unit`. With integer `used`
/// and `amount` that is exactly `amount <= avail`.
#[inline]
pub fn avail_of(total: i32, reserved: i32, ratio: f64, max_unit: i32, used: i64) -> i32 {
    if total <= 0 {
        return -1;
    }
    let limit = ((total as f64 - reserved as f64) * ratio).floor();
    let free = limit - used as f64;
    let a = free.min(max_unit as f64);
    a.clamp(i32::MIN as f64, i32::MAX as f64) as i32
}

fn string_col<'a>(rec: &'a RecordBatch, name: &str) -> &'a StringArray {
    rec.column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .expect("string column checked when the batch was built")
}

fn cell_code(rec: &RecordBatch, r: usize) -> u32 {
    rec.column_by_name("cell")
        .and_then(|c| c.as_any().downcast_ref::<DictionaryArray<UInt32Type>>())
        .map_or(0, |d| d.keys().value(r))
}

fn bits_to_names(words: &[u64], names: &Interner) -> Vec<String> {
    let mut out = Vec::new();
    for (wi, &w) in words.iter().enumerate() {
        for b in crate::mask::BitIter::new(w, wi * 64) {
            out.push(names.name(b as u32).to_owned());
        }
    }
    out
}

fn encode_ip(ip: std::net::IpAddr) -> [u8; 16] {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        std::net::IpAddr::V6(v6) => v6.octets(),
    }
}

fn decode_ip(b: &[u8]) -> std::net::IpAddr {
    let arr: [u8; 16] = b.try_into().unwrap_or([0; 16]);
    let v6 = std::net::Ipv6Addr::from(arr);
    match v6.to_ipv4_mapped() {
        Some(v4) => std::net::IpAddr::V4(v4),
        None => std::net::IpAddr::V6(v6),
    }
}

/// Accumulates hosts and builds a [`Fleet`].
#[derive(Debug, Default)]
pub struct FleetBuilder {
    aggregates: Vec<Aggregate>,
    agg_by_id: HashMap<u32, u32>,
    resource_classes: Interner,
    traits: Interner,
    aggsets: Vec<Vec<u32>>,
    aggset_ids: HashMap<Vec<u32>, u32>,
    traitsets: Vec<Vec<u64>>,
    traitset_ids: HashMap<Vec<u64>, u32>,
    cpu_infos: Interner,
    supported: Vec<Arc<Vec<[String; 3]>>>,
    supported_ids: HashMap<Vec<[String; 3]>, u32>,
    stats: Vec<Arc<std::collections::BTreeMap<String, String>>>,
    stats_ids: HashMap<std::collections::BTreeMap<String, String>, u32>,
    hypervisor_types: Interner,
    cells: Interner,
    azs: Interner,
    metric_names: Interner,
    // per host columns (names in one buffer: no per-host allocation)
    names: arrow_array::builder::StringBuilder,
    nodenames: Vec<Option<String>>,
    uuids: Vec<u128>,
    cell: Vec<u32>,
    az: Vec<Option<u32>>,
    host_ip: Vec<Option<[u8; 16]>>,
    aggset: Vec<u32>,
    traitset: Vec<u32>,
    cpu_info: Vec<u32>,
    supported_col: Vec<u32>,
    stats_col: Vec<u32>,
    hv_type: Vec<u32>,
    hv_version: Vec<i64>,
    failed_builds: Vec<i32>,
    svc_disabled: Vec<bool>,
    svc_forced_down: Vec<bool>,
    svc_age: Vec<f64>,
    svc_version: Vec<i32>,
    /// Per resource class: distinct inventories and their codes.
    profiles: Vec<Vec<Option<InventoryProfile>>>,
    profile_ids: Vec<HashMap<ProfileKey, u32>>,
    /// Per resource class, per host: inventory code and Placement usage.
    inv_code: Vec<Vec<u32>>,
    inv_used: Vec<Vec<i64>>,
    vcpus_used: Vec<i32>,
    free_ram_mb: Vec<i32>,
    free_disk_mb: Vec<i32>,
    num_instances: Vec<i32>,
    num_io_ops: Vec<i32>,
    /// `(host, metric id, value)`, flat.
    metrics: Vec<(u32, u32, f64)>,
    instances: HashMap<u128, u32>,
    by_name: hashbrown::HashTable<u32>,
    name_hasher: hashbrown::DefaultHashBuilder,
    nova_conf: Vec<(String, serde_json::Value)>,
}

fn to_i32(v: i64, host: &str, field: &str) -> Result<i32> {
    i32::try_from(v).map_err(|_| EngineError::invalid(format!("host {host:?}: {field} = {v} is out of range")))
}

impl FleetBuilder {
    /// An empty builder. `VCPU`, `MEMORY_MB` and `DISK_GB` always get
    /// columns, in that order.
    pub fn new() -> Self {
        let mut b = Self::default();
        for rc in ["VCPU", "MEMORY_MB", "DISK_GB"] {
            b.resource_classes.intern(rc);
        }
        b
    }

    /// Nova option overrides carried by the fleet.
    pub fn nova_conf(&mut self, conf: Vec<(String, serde_json::Value)>) {
        self.nova_conf = conf;
    }

    /// Declares an aggregate.
    ///
    /// # Errors
    /// A duplicate aggregate id.
    pub fn add_aggregate(&mut self, agg: Aggregate) -> Result<()> {
        if self.agg_by_id.contains_key(&agg.id) {
            return Err(EngineError::invalid(format!("aggregate id {} is declared twice", agg.id)));
        }
        self.agg_by_id.insert(agg.id, self.aggregates.len() as u32);
        self.aggregates.push(agg);
        Ok(())
    }

    /// Number of hosts added so far.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when no host was added.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    fn name_at(&self, i: usize) -> &str {
        let offsets = self.names.offsets_slice();
        let bytes = &self.names.values_slice()[offsets[i] as usize..offsets[i + 1] as usize];
        std::str::from_utf8(bytes).unwrap_or("")
    }

    /// Adds one host.
    ///
    /// # Errors
    /// A duplicate name, an unknown aggregate id, a bad trait or resource
    /// class name, or a value out of range; the message names the host.
    pub fn push(&mut self, h: HostRecord) -> Result<()> {
        let idx = self.names.len() as u32;
        if h.name.is_empty() {
            return Err(EngineError::invalid(format!("host #{idx}: empty name")));
        }
        let hash = self.name_hasher.hash_one(h.name.as_str());
        if self.by_name.find(hash, |&i| self.name_at(i as usize) == h.name).is_some() {
            return Err(EngineError::invalid(format!("host {:?} appears twice", h.name)));
        }
        // aggregates
        let mut aggs = Vec::with_capacity(h.aggregates.len());
        for id in &h.aggregates {
            let a = *self
                .agg_by_id
                .get(id)
                .ok_or_else(|| EngineError::invalid(format!("host {:?}: unknown aggregate id {id}", h.name)))?;
            aggs.push(a);
        }
        aggs.sort_unstable();
        aggs.dedup();
        let next = self.aggsets.len() as u32;
        let code = *self.aggset_ids.entry(aggs.clone()).or_insert(next);
        if code == next {
            self.aggsets.push(aggs);
        }
        self.aggset.push(code);
        // traits
        let mut words: Vec<u64> = Vec::new();
        for t in &h.traits {
            crate::vocab::check_trait(t).map_err(|e| EngineError::invalid(format!("host {:?}: {e}", h.name)))?;
            let bit = self.traits.intern(t) as usize;
            if words.len() <= bit / 64 {
                words.resize(bit / 64 + 1, 0);
            }
            words[bit / 64] |= 1 << (bit % 64);
        }
        let next = self.traitsets.len() as u32;
        let code = *self.traitset_ids.entry(words.clone()).or_insert(next);
        if code == next {
            self.traitsets.push(words);
        }
        self.traitset.push(code);
        // inventories
        let mut invs: Vec<(usize, InventoryProfile, i64)> = Vec::with_capacity(h.inventories.len());
        for inv in h.inventories {
            if !crate::vocab::is_known_resource_class(&inv.resource_class) {
                return Err(EngineError::invalid(format!(
                    "host {:?}: unknown resource class {:?}",
                    h.name, inv.resource_class
                )));
            }
            for (v, f) in [
                (inv.total, "total"),
                (inv.reserved, "reserved"),
                (inv.min_unit, "min_unit"),
                (inv.max_unit, "max_unit"),
                (inv.step_size, "step_size"),
            ] {
                to_i32(v, &h.name, &format!("{} {f}", inv.resource_class))?;
            }
            if !(inv.allocation_ratio.is_finite() && inv.allocation_ratio > 0.0) {
                return Err(EngineError::invalid(format!(
                    "host {:?}: {} allocation_ratio must be a positive number",
                    h.name, inv.resource_class
                )));
            }
            if inv.step_size < 1 || inv.min_unit < 1 || inv.total < 0 {
                return Err(EngineError::invalid(format!(
                    "host {:?}: {} needs total >= 0, min_unit >= 1, step_size >= 1",
                    h.name, inv.resource_class
                )));
            }
            let rc = self.resource_classes.intern(&inv.resource_class) as usize;
            let p = InventoryProfile {
                total: inv.total as i32,
                reserved: inv.reserved as i32,
                min_unit: inv.min_unit as i32,
                max_unit: inv.max_unit as i32,
                step_size: inv.step_size as i32,
                allocation_ratio: inv.allocation_ratio,
            };
            invs.push((rc, p, inv.used));
        }
        while self.profiles.len() < self.resource_classes.len() {
            self.profiles.push(vec![None]);
            self.profile_ids.push(HashMap::new());
            self.inv_code.push(vec![0; idx as usize]);
            self.inv_used.push(vec![0; idx as usize]);
        }
        for rc in 0..self.profiles.len() {
            self.inv_code[rc].push(0);
            self.inv_used[rc].push(0);
        }
        for (rc, p, used) in invs {
            let next = self.profiles[rc].len() as u32;
            let code = *self.profile_ids[rc].entry(p.key()).or_insert(next);
            if code == next {
                self.profiles[rc].push(Some(p));
            }
            self.inv_code[rc][idx as usize] = code;
            self.inv_used[rc][idx as usize] = used;
        }
        let (names, hasher) = (&self.names, &self.name_hasher);
        self.by_name.insert_unique(hash, idx, |&i| {
            let o = names.offsets_slice();
            hasher.hash_one(
                std::str::from_utf8(&names.values_slice()[o[i as usize] as usize..o[i as usize + 1] as usize])
                    .unwrap_or(""),
            )
        });
        self.names.append_value(&h.name);
        self.nodenames.push(h.nodename.filter(|n| *n != h.name));
        self.uuids.push(h.uuid);
        self.cell.push(self.cells.intern(if h.cell.is_empty() { "cell1" } else { &h.cell }));
        self.az.push(h.availability_zone.as_deref().map(|a| self.azs.intern(a)));
        self.host_ip.push(h.host_ip.map(encode_ip));
        self.cpu_info.push(self.cpu_infos.intern(&h.cpu_info));
        let next = self.supported.len() as u32;
        let code = *self.supported_ids.entry(h.supported_instances.clone()).or_insert(next);
        if code == next {
            self.supported.push(Arc::new(h.supported_instances));
        }
        self.supported_col.push(code);
        let next = self.stats.len() as u32;
        let code = *self.stats_ids.entry(h.stats.clone()).or_insert(next);
        if code == next {
            self.stats.push(Arc::new(h.stats));
        }
        self.stats_col.push(code);
        self.hv_type.push(self.hypervisor_types.intern(&h.hypervisor_type));
        self.hv_version.push(h.hypervisor_version);
        self.failed_builds.push(to_i32(h.failed_builds, &h.name, "failed_builds")?);
        self.svc_disabled.push(h.service.disabled);
        self.svc_forced_down.push(h.service.forced_down);
        self.svc_age.push(h.service.last_seen_up_age_s);
        self.svc_version.push(h.service.version);
        self.vcpus_used.push(to_i32(h.vcpus_used, &h.name, "vcpus_used")?);
        self.free_ram_mb.push(to_i32(h.free_ram_mb, &h.name, "free_ram_mb")?);
        self.free_disk_mb.push(to_i32(h.free_disk_mb, &h.name, "free_disk_mb")?);
        self.num_instances.push(to_i32(h.num_instances, &h.name, "num_instances")?);
        self.num_io_ops.push(to_i32(h.num_io_ops, &h.name, "num_io_ops")?);
        for (n, v) in &h.metrics {
            let id = self.metric_names.intern(n);
            self.metrics.push((idx, id, *v));
        }
        for u in h.instances {
            self.instances.insert(u, idx);
        }
        Ok(())
    }

    /// Builds the fleet.
    ///
    /// # Errors
    /// Only on an internal inconsistency between columns.
    pub fn finish(mut self) -> Result<Fleet> {
        let n = self.names.len();
        let all_names = self.names.finish();
        let n_rc = self.resource_classes.len();
        let schema = static_schema(&self.resource_classes);
        // shared dictionary values
        let dict = |names: &Interner| -> ArrayRef { Arc::new(StringArray::from_iter_values(names.names().iter())) };
        let cell_values = dict(&self.cells);
        let az_values = dict(&self.azs);
        let hv_values = dict(&self.hypervisor_types);
        let cpu_values = dict(&self.cpu_infos);
        let mut batches = Vec::with_capacity(n.div_ceil(BATCH_ROWS));
        let mut start = 0;
        while start < n || (n == 0 && batches.is_empty()) {
            let end = (start + BATCH_ROWS).min(n);
            let r = start..end;
            let dict_col = |keys: Vec<Option<u32>>, values: &ArrayRef| -> Result<ArrayRef> {
                Ok(Arc::new(DictionaryArray::<UInt32Type>::try_new(UInt32Array::from(keys), values.clone())?))
            };
            let mut cols: Vec<ArrayRef> = vec![
                // Its own buffer per batch, so batches stay independent.
                Arc::new(StringArray::from_iter_values(all_names.slice(start, end - start).iter().flatten())),
                Arc::new(StringArray::from(self.nodenames[r.clone()].to_vec())),
                Arc::new(FixedSizeBinaryArray::try_from_iter(self.uuids[r.clone()].iter().map(|u| u.to_be_bytes()))?),
                dict_col(self.cell[r.clone()].iter().map(|&c| Some(c)).collect(), &cell_values)?,
                dict_col(self.az[r.clone()].to_vec(), &az_values)?,
                Arc::new(FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                    self.host_ip[r.clone()].iter().map(|o| o.as_ref().map(|b| b.as_slice())),
                    16,
                )?),
                Arc::new(UInt32Array::from(self.aggset[r.clone()].to_vec())),
                Arc::new(UInt32Array::from(self.traitset[r.clone()].to_vec())),
                dict_col(self.cpu_info[r.clone()].iter().map(|&c| Some(c)).collect(), &cpu_values)?,
                Arc::new(UInt32Array::from(self.supported_col[r.clone()].to_vec())),
                Arc::new(UInt32Array::from(self.stats_col[r.clone()].to_vec())),
                dict_col(self.hv_type[r.clone()].iter().map(|&c| Some(c)).collect(), &hv_values)?,
                Arc::new(Int64Array::from(self.hv_version[r.clone()].to_vec())),
                Arc::new(Int32Array::from(self.failed_builds[r.clone()].to_vec())),
                Arc::new(BooleanArray::from(self.svc_disabled[r.clone()].to_vec())),
                Arc::new(BooleanArray::from(self.svc_forced_down[r.clone()].to_vec())),
                Arc::new(Float64Array::from(self.svc_age[r.clone()].to_vec())),
                Arc::new(Int32Array::from(self.svc_version[r.clone()].to_vec())),
            ];
            for rc in 0..n_rc {
                cols.push(Arc::new(UInt32Array::from(self.inv_code[rc][r.clone()].to_vec())));
            }
            let record = RecordBatch::try_new(schema.clone(), cols)?;
            batches.push(typed_batch(start, record, &self.resource_classes, &self.profiles)?);
            if n == 0 {
                break;
            }
            start = end;
        }
        let used = self.inv_used;
        let mut fleet = Fleet {
            batches,
            block_epochs: vec![next_epoch(); n.div_ceil(BLOCK).max(1)],
            usage: Usage {
                avail: vec![vec![-1i32; n]; n_rc],
                used,
                vcpus_used: self.vcpus_used,
                free_ram_mb: self.free_ram_mb,
                free_disk_mb: self.free_disk_mb,
                num_instances: self.num_instances,
                num_io_ops: self.num_io_ops,
            },
            resource_classes: self.resource_classes,
            inventory_profiles: self.profiles,
            traits: self.traits,
            aggregates: self.aggregates,
            aggsets: self.aggsets,
            traitsets: self.traitsets,
            cpu_infos: self.cpu_infos,
            supported: self.supported,
            stats: self.stats,
            hypervisor_types: self.hypervisor_types,
            cells: self.cells,
            metrics: Vec::new(),
            instances: self.instances,
            by_name: self.by_name,
            name_hasher: self.name_hasher,
            min_service_version: self.svc_version.iter().copied().min().unwrap_or(74),
            nova_conf: self.nova_conf,
            schema,
        };
        for rc in 0..n_rc {
            for h in 0..n {
                fleet.refresh_avail(rc, h);
            }
        }
        for name in self.metric_names.names() {
            fleet.metrics.push(MetricColumn {
                name: name.clone(),
                values: vec![0.0; n],
                present: crate::mask::Mask::zeros(n),
            });
        }
        for &(h, id, v) in &self.metrics {
            let m = &mut fleet.metrics[id as usize];
            m.values[h as usize] = v;
            m.present.set(h as usize, true);
        }
        Ok(fleet)
    }
}

/// The schema of the static host batches.
pub fn static_schema(rcs: &Interner) -> SchemaRef {
    let dict = || DataType::Dictionary(Box::new(DataType::UInt32), Box::new(DataType::Utf8));
    let mut fields = vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("nodename", DataType::Utf8, true),
        Field::new("uuid", DataType::FixedSizeBinary(16), false),
        Field::new("cell", dict(), false),
        Field::new("availability_zone", dict(), true),
        Field::new("host_ip", DataType::FixedSizeBinary(16), true),
        Field::new("aggset", DataType::UInt32, false),
        Field::new("traitset", DataType::UInt32, false),
        Field::new("cpu_info", dict(), false),
        Field::new("supported_instances", DataType::UInt32, false),
        Field::new("stats", DataType::UInt32, false),
        Field::new("hypervisor_type", dict(), false),
        Field::new("hypervisor_version", DataType::Int64, false),
        Field::new("failed_builds", DataType::Int32, false),
        Field::new("service_disabled", DataType::Boolean, false),
        Field::new("service_forced_down", DataType::Boolean, false),
        Field::new("service_last_seen_up_age_s", DataType::Float64, false),
        Field::new("service_version", DataType::Int32, false),
    ];
    for rc in rcs.names() {
        fields.push(Field::new(format!("{rc}.inventory"), DataType::UInt32, false));
    }
    Arc::new(Schema::new(fields))
}

fn typed_batch(
    start: usize,
    record: RecordBatch,
    rcs: &Interner,
    profiles: &[Vec<Option<InventoryProfile>>],
) -> Result<HostBatch> {
    fn prim<T: arrow_array::ArrowPrimitiveType>(rec: &RecordBatch, name: &str) -> Result<ScalarBuffer<T::Native>> {
        let col = rec.column_by_name(name).ok_or_else(|| EngineError::Internal(format!("missing column {name}")))?;
        let arr = col
            .as_any()
            .downcast_ref::<arrow_array::PrimitiveArray<T>>()
            .ok_or_else(|| EngineError::Internal(format!("column {name} has type {}", col.data_type())))?;
        Ok(arr.values().clone())
    }
    fn keys(rec: &RecordBatch, name: &str) -> Result<ScalarBuffer<u32>> {
        let col = rec.column_by_name(name).ok_or_else(|| EngineError::Internal(format!("missing column {name}")))?;
        let arr = col
            .as_any()
            .downcast_ref::<DictionaryArray<UInt32Type>>()
            .ok_or_else(|| EngineError::Internal(format!("column {name} is not a dictionary")))?;
        Ok(arr.keys().values().clone())
    }
    fn bools(rec: &RecordBatch, name: &str) -> Result<BooleanBuffer> {
        let col = rec.column_by_name(name).ok_or_else(|| EngineError::Internal(format!("missing column {name}")))?;
        Ok(col
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| EngineError::Internal(format!("column {name} is not boolean")))?
            .values()
            .clone())
    }
    use arrow_array::types::{Float64Type, Int32Type, Int64Type};
    let mut rc = Vec::with_capacity(rcs.len());
    for (ri, name) in rcs.names().iter().enumerate() {
        let code = prim::<UInt32Type>(&record, &format!("{name}.inventory"))?;
        let table = profiles.get(ri).map_or(&[][..], |v| v.as_slice());
        let trivial: Vec<bool> = table.iter().map(|p| p.is_none_or(|p| p.min_unit <= 1 && p.step_size == 1)).collect();
        let units_trivial = code.iter().all(|&c| trivial.get(c as usize).copied().unwrap_or(true));
        rc.push(RcColumns { code, units_trivial });
    }
    Ok(HostBatch {
        start,
        aggset: prim::<UInt32Type>(&record, "aggset")?,
        traitset: prim::<UInt32Type>(&record, "traitset")?,
        cpu_info: keys(&record, "cpu_info")?,
        supported: prim::<UInt32Type>(&record, "supported_instances")?,
        stats: prim::<UInt32Type>(&record, "stats")?,
        hypervisor_type: keys(&record, "hypervisor_type")?,
        hypervisor_version: prim::<Int64Type>(&record, "hypervisor_version")?,
        failed_builds: prim::<Int32Type>(&record, "failed_builds")?,
        service_disabled: bools(&record, "service_disabled")?,
        service_forced_down: bools(&record, "service_forced_down")?,
        service_age_s: prim::<Float64Type>(&record, "service_last_seen_up_age_s")?,
        rc,
        record,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avail_matches_placement_rule() {
        // (48 - 0) * 4.0 = 192 usable, 10 used -> 182 more
        assert_eq!(avail_of(48, 0, 4.0, 48, 10), 48);
        assert_eq!(avail_of(48, 0, 4.0, 1000, 10), 182);
        // (1000 - 100) * 1.5 = 1350
        assert_eq!(avail_of(1000, 100, 1.5, 5000, 1350), 0);
        assert_eq!(avail_of(1000, 100, 1.5, 5000, 1351), -1);
        assert_eq!(avail_of(0, 0, 1.0, 0, 0), -1);
    }

    #[test]
    fn builder_round_trips_a_host() {
        let mut b = FleetBuilder::new();
        b.add_aggregate(Aggregate { id: 7, name: "az-1".into(), ..Default::default() }).unwrap();
        let mut h = HostRecord {
            name: "h1".into(),
            cell: "cell1".into(),
            aggregates: vec![7],
            inventories: vec![Inventory::simple("VCPU", 16, 4.0), Inventory::simple("MEMORY_MB", 4096, 1.0)],
            traits: vec!["HW_CPU_X86_AVX2".into(), "CUSTOM_X".into()],
            hypervisor_type: "QEMU".into(),
            cpu_info: "{}".into(),
            free_ram_mb: 4096,
            host_ip: Some("10.0.0.1".parse().unwrap()),
            metrics: vec![("cpu.percent".into(), 35.0)],
            instances: vec![42],
            ..Default::default()
        };
        h.inventories[0].used = 3;
        b.push(h.clone()).unwrap();
        let f = b.finish().unwrap();
        assert_eq!(f.len(), 1);
        let back = f.host_record(0);
        assert_eq!(back.name, "h1");
        assert_eq!(back.inventories, h.inventories);
        assert_eq!(back.traits, h.traits);
        assert_eq!(back.aggregates, vec![7]);
        assert_eq!(back.host_ip, h.host_ip);
        assert_eq!(back.metrics, h.metrics);
        assert_eq!(back.instances, vec![42]);
        assert_eq!(f.usage.avail[0][0], 16);
        assert_eq!(f.usage.avail[2][0], -1);
    }

    #[test]
    fn builder_rejects_bad_input_with_the_host_name() {
        let mut b = FleetBuilder::new();
        let h = HostRecord { name: "h1".into(), aggregates: vec![3], ..Default::default() };
        let err = b.push(h).unwrap_err().to_string();
        assert!(err.contains("h1") && err.contains("aggregate id 3"), "{err}");
        let h = HostRecord { name: "h2".into(), traits: vec!["BOGUS".into()], ..Default::default() };
        assert!(b.push(h).unwrap_err().to_string().contains("BOGUS"));
    }
}
