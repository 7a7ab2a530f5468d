//! In-place updates of a fleet: a host appended to the last batch, a row
//! rewritten from a [`HostRecord`] or one field group at a time (inventory,
//! traits, aggregates, zone, service), a deleted host left as a tombstone,
//! and compaction. The builder uses the same row encoder, so a fleet kept
//! current this way equals one built from scratch from the same records.

use std::sync::Arc;

use super::batch::NO_AZ;
use super::{Fleet, InventoryProfile, MetricColumn, next_epoch};
use crate::error::{EngineError, Result};
use crate::host::{Aggregate, HostRecord, Inventory, ServiceRecord};

fn to_i32(v: i64, host: &str, field: &str) -> Result<i32> {
    i32::try_from(v).map_err(|_| EngineError::invalid(format!("host {host:?}: {field} = {v} is out of range")))
}

/// A host record's values as codes, checked before any row is written.
pub(super) struct Encoded {
    pub(super) aggset: u32,
    pub(super) traitset: u32,
    /// `(class column, profile code, used)`.
    pub(super) inventories: Vec<(usize, u32, i64)>,
    pub(super) cell: u32,
    pub(super) az: u32,
    pub(super) cpu_info: u32,
    pub(super) supported: u32,
    pub(super) stats: u32,
    pub(super) hypervisor_type: u32,
    pub(super) failed_builds: i32,
    pub(super) hoststate: [i32; 5],
    pub(super) metrics: Vec<(usize, f64)>,
}

impl Fleet {
    /// Adds a resource class column group (no-op when it exists); O(hosts)
    /// the first time a class appears.
    pub fn add_resource_class(&mut self, rc: &str) -> usize {
        if let Some(i) = self.resource_classes.get(rc) {
            return i as usize;
        }
        let i = self.resource_classes.intern(rc) as usize;
        self.inventory_profiles.push(vec![None]);
        self.profile_ids.push(Default::default());
        let n = self.len();
        self.usage.used.push(vec![0; n]);
        self.usage.avail.push(vec![-1; n]);
        for b in &mut self.batches {
            b.rc.push(super::RcColumns { code: vec![0; b.len()], units_trivial: true });
        }
        i
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

    /// Adds an aggregate or replaces the name, uuid and metadata of the one
    /// with its id (its hosts keep it).
    pub fn upsert_aggregate(&mut self, agg: Aggregate) {
        match self.agg_by_id.get(&agg.id) {
            Some(&i) => self.aggregates[i as usize] = agg,
            None => {
                self.agg_by_id.insert(agg.id, self.aggregates.len() as u32);
                self.aggregates.push(agg);
            }
        }
        // Aggregate metadata feeds per-block weigher summaries.
        let e = next_epoch();
        self.block_epochs.fill(e);
        self.agg_epoch += 1;
    }

    fn aggset_code(&mut self, host: &str, ids: &[u32]) -> Result<u32> {
        let mut aggs = Vec::with_capacity(ids.len());
        for id in ids {
            let a = *self
                .agg_by_id
                .get(id)
                .ok_or_else(|| EngineError::invalid(format!("host {host:?}: unknown aggregate id {id}")))?;
            aggs.push(a);
        }
        aggs.sort_unstable();
        aggs.dedup();
        Ok(self.aggset_ids.code(&aggs, &mut self.aggsets, || aggs.clone()))
    }

    fn traitset_code(&mut self, host: &str, traits: &[String]) -> Result<u32> {
        let mut bits: Vec<u32> = Vec::with_capacity(traits.len());
        for t in traits {
            crate::vocab::check_trait(t).map_err(|e| EngineError::invalid(format!("host {host:?}: {e}")))?;
            bits.push(self.traits.intern(t));
        }
        bits.sort_unstable();
        bits.dedup();
        Ok(self.traitset_code_bits(&bits))
    }

    /// The code of the trait set `bits` (sorted trait indices): one code in
    /// `traitsets` (bit words, for the filters) and in the provider columns'
    /// dictionary (sorted indices with live counts, for candidates).
    pub(super) fn traitset_code_bits(&mut self, bits: &[u32]) -> u32 {
        let mut words: Vec<u64> = Vec::new();
        for &bit in bits {
            let bit = bit as usize;
            if words.len() <= bit / 64 {
                words.resize(bit / 64 + 1, 0);
            }
            words[bit / 64] |= 1 << (bit % 64);
        }
        let code = self.traitset_ids.code(&words, &mut self.traitsets, || words.clone());
        let same = self.providers.traitsets.code(bits);
        debug_assert_eq!(code, same, "trait set dictionaries out of step");
        code
    }

    /// Sets row `row`'s trait set, keeping the live counts.
    pub(super) fn set_traitset(&mut self, row: usize, code: u32) {
        let live = self.providers.live.get(row);
        let (b, r) = self.locate_mut(row);
        let old = std::mem::replace(&mut b.traitset[r], code);
        if live {
            self.providers.traitsets.count(old, -1);
            self.providers.traitsets.count(code, 1);
        }
    }

    fn inventory_codes(&mut self, host: &str, invs: &[Inventory]) -> Result<Vec<(usize, u32, i64)>> {
        let mut checked = Vec::with_capacity(invs.len());
        for inv in invs {
            if !crate::vocab::is_known_resource_class(&inv.resource_class) {
                return Err(EngineError::invalid(format!(
                    "host {host:?}: unknown resource class {:?}",
                    inv.resource_class
                )));
            }
            for (v, f) in [
                (inv.total, "total"),
                (inv.reserved, "reserved"),
                (inv.min_unit, "min_unit"),
                (inv.max_unit, "max_unit"),
                (inv.step_size, "step_size"),
            ] {
                to_i32(v, host, &format!("{} {f}", inv.resource_class))?;
            }
            if !(inv.allocation_ratio.is_finite() && inv.allocation_ratio > 0.0) {
                return Err(EngineError::invalid(format!(
                    "host {host:?}: {} allocation_ratio must be a positive number",
                    inv.resource_class
                )));
            }
            if inv.step_size < 1 || inv.min_unit < 1 || inv.total < 0 {
                return Err(EngineError::invalid(format!(
                    "host {host:?}: {} needs total >= 0, min_unit >= 1, step_size >= 1",
                    inv.resource_class
                )));
            }
            checked.push(InventoryProfile {
                total: inv.total as i32,
                reserved: inv.reserved as i32,
                min_unit: inv.min_unit as i32,
                max_unit: inv.max_unit as i32,
                step_size: inv.step_size as i32,
                allocation_ratio: inv.allocation_ratio,
            });
        }
        let mut out = Vec::with_capacity(invs.len());
        for (inv, p) in invs.iter().zip(checked) {
            let rc = self.add_resource_class(&inv.resource_class);
            let code = self.profile_ids[rc].code(&p.key(), &mut self.inventory_profiles[rc], || Some(p));
            out.push((rc, code, inv.used));
        }
        Ok(out)
    }

    pub(super) fn encode(&mut self, h: &HostRecord) -> Result<Encoded> {
        if h.name.is_empty() {
            return Err(EngineError::invalid(format!("host #{}: empty name", self.len())));
        }
        let hoststate = [
            to_i32(h.free_ram_mb, &h.name, "free_ram_mb")?,
            to_i32(h.free_disk_mb, &h.name, "free_disk_mb")?,
            to_i32(h.vcpus_used, &h.name, "vcpus_used")?,
            to_i32(h.num_instances, &h.name, "num_instances")?,
            to_i32(h.num_io_ops, &h.name, "num_io_ops")?,
        ];
        let failed_builds = to_i32(h.failed_builds, &h.name, "failed_builds")?;
        let aggset = self.aggset_code(&h.name, &h.aggregates)?;
        let traitset = self.traitset_code(&h.name, &h.traits)?;
        let inventories = self.inventory_codes(&h.name, &h.inventories)?;
        let supported = self
            .supported_ids
            .code(&h.supported_instances, &mut self.supported, || Arc::new(h.supported_instances.clone()));
        let stats = self.stats_ids.code(&h.stats, &mut self.stats, || Arc::new(h.stats.clone()));
        let mut metrics = Vec::with_capacity(h.metrics.len());
        for (name, v) in &h.metrics {
            let i = match self.metrics.iter().position(|m| &m.name == name) {
                Some(i) => i,
                None => {
                    let n = self.len();
                    self.metrics.push(MetricColumn {
                        name: name.clone(),
                        values: vec![0.0; n],
                        present: crate::mask::Mask::zeros(n),
                    });
                    self.metrics.len() - 1
                }
            };
            metrics.push((i, *v));
        }
        Ok(Encoded {
            aggset,
            traitset,
            inventories,
            cell: self.cells.intern(if h.cell.is_empty() { "cell1" } else { &h.cell }),
            az: h.availability_zone.as_deref().map_or(NO_AZ, |a| self.azs.intern(a)),
            cpu_info: self.cpu_infos.intern(&h.cpu_info),
            supported,
            stats,
            hypervisor_type: self.hypervisor_types.intern(&h.hypervisor_type),
            failed_builds,
            hoststate,
            metrics,
        })
    }

    /// The Nova columns of row `host` (everything a host record holds
    /// that Placement does not).
    pub(super) fn write_nova(&mut self, host: usize, h: &HostRecord, e: &Encoded) {
        let clock = self.service_clock;
        let (b, r) = self.locate_mut(host);
        b.names.set(r, Some(&h.name));
        b.nodenames.set(r, h.nodename.as_deref().filter(|n| *n != h.name));
        b.uuids[r] = h.uuid;
        b.cell[r] = e.cell;
        b.az[r] = e.az;
        b.host_ip[r] = h.host_ip.map(super::record::encode_ip);
        b.aggset[r] = e.aggset;
        b.cpu_info[r] = e.cpu_info;
        b.supported[r] = e.supported;
        b.stats[r] = e.stats;
        b.hypervisor_type[r] = e.hypervisor_type;
        b.hypervisor_version[r] = h.hypervisor_version;
        b.failed_builds[r] = e.failed_builds;
        b.service_disabled.set(r, h.service.disabled);
        b.service_forced_down.set(r, h.service.forced_down);
        b.service_age_s[r] = h.service.last_seen_up_age_s - clock;
        b.service_version[r] = h.service.version;
        for m in &mut self.metrics {
            m.values[host] = 0.0;
            m.present.set(host, false);
        }
        for &(i, v) in &e.metrics {
            self.metrics[i].values[host] = v;
            self.metrics[i].present.set(host, true);
        }
        self.min_service_version = self.min_service_version.min(h.service.version);
        self.touch(host);
    }

    /// Inventory codes and usage of row `host` (classes it lacks cleared).
    fn write_inventories(&mut self, host: usize, codes: &[(usize, u32, i64)]) {
        let n_rc = self.resource_classes.len();
        for rc in 0..n_rc {
            let (b, r) = self.locate_mut(host);
            b.rc[rc].code[r] = 0;
            self.usage.used[rc][host] = 0;
        }
        for &(rc, code, used) in codes {
            let trivial = self.inventory_profiles[rc][code as usize].is_none_or(|p| p.units_trivial());
            let (b, r) = self.locate_mut(host);
            b.rc[rc].code[r] = code;
            b.rc[rc].units_trivial &= trivial;
            self.usage.used[rc][host] = used;
        }
        for rc in 0..n_rc {
            self.refresh_avail(rc, host);
        }
        self.touch(host);
    }

    fn write_row(&mut self, host: usize, h: &HostRecord, e: Encoded) {
        self.write_nova(host, h, &e);
        self.set_traitset(host, e.traitset);
        self.write_inventories(host, &e.inventories);
        self.set_hoststate(host, e.hoststate);
    }

    /// Placement's inventories (already validated) as codes: values past
    /// `i32` saturate rather than fail, since the write has committed.
    pub(super) fn set_inventories_unchecked(&mut self, row: usize, invs: &[Inventory]) {
        let sat = |v: i64| v.clamp(0, i64::from(i32::MAX)) as i32;
        let mut codes = Vec::with_capacity(invs.len());
        for inv in invs {
            let p = InventoryProfile {
                total: sat(inv.total),
                reserved: sat(inv.reserved),
                min_unit: sat(inv.min_unit).max(1),
                max_unit: sat(inv.max_unit),
                step_size: sat(inv.step_size).max(1),
                allocation_ratio: inv.allocation_ratio,
            };
            let rc = self.add_resource_class(&inv.resource_class);
            let code = self.profile_ids[rc].code(&p.key(), &mut self.inventory_profiles[rc], || Some(p));
            codes.push((rc, code, inv.used));
        }
        self.write_inventories(row, &codes);
    }

    /// Appends a host (to the last batch, or a new one when it is full)
    /// and returns its index; its instances join the instance map.
    ///
    /// # Errors
    /// A duplicate name, an unknown aggregate id, a bad trait or resource
    /// class name, or a value out of range; the message names the host and
    /// nothing is added.
    pub fn append(&mut self, h: HostRecord) -> Result<usize> {
        if self.index_of(&h.name).is_some() {
            return Err(EngineError::invalid(format!("host {:?} appears twice", h.name)));
        }
        let e = self.encode(&h)?;
        let host = self.push_row(true);
        self.write_row(host, &h, e);
        self.index_name(host);
        for u in h.instances {
            self.instances.insert(u, host as u32);
        }
        Ok(host)
    }

    /// Rewrites every column of host `host` from `h` (the instance map is
    /// left alone: move instances with [`Fleet::place_instance`]).
    ///
    /// # Errors
    /// As [`Fleet::append`]; a failed rewrite leaves the row as it was.
    pub fn update_host(&mut self, host: usize, h: &HostRecord) -> Result<()> {
        if let Some(other) = self.index_of(&h.name).filter(|&o| o != host) {
            return Err(EngineError::invalid(format!("host {:?} is already host #{other}", h.name)));
        }
        let e = self.encode(h)?;
        let renamed = self.name(host) != h.name;
        if renamed {
            self.unindex_name(host);
        }
        self.write_row(host, h, e);
        if renamed {
            self.index_name(host);
        }
        Ok(())
    }

    /// Deletes host `host`: its row stays as a tombstone (no capacity,
    /// never a candidate, skipped by exports) until [`Fleet::compacted`].
    pub fn remove_host(&mut self, host: usize) {
        if !self.is_live(host) {
            return;
        }
        self.drop_provider(host);
    }

    /// Replaces the inventories (with their usage) of host `host`.
    ///
    /// # Errors
    /// A bad class name or value; the row is left as it was.
    pub fn set_inventories(&mut self, host: usize, invs: &[Inventory]) -> Result<()> {
        let name = self.name(host).to_owned();
        let codes = self.inventory_codes(&name, invs)?;
        self.write_inventories(host, &codes);
        Ok(())
    }

    /// Sets the usage of one class on host `host` (an allocation written).
    pub fn set_used(&mut self, host: usize, rc: usize, used: i64) {
        self.usage.used[rc][host] = used;
        self.refresh_avail(rc, host);
        self.touch(host);
    }

    /// Replaces the traits of host `host`.
    ///
    /// # Errors
    /// A malformed trait name; the row is left as it was.
    pub fn set_traits(&mut self, host: usize, traits: &[String]) -> Result<()> {
        let name = self.name(host).to_owned();
        let code = self.traitset_code(&name, traits)?;
        self.set_traitset(host, code);
        self.touch(host);
        Ok(())
    }

    /// Replaces the aggregates (by id) of host `host`.
    ///
    /// # Errors
    /// An unknown aggregate id; the row is left as it was.
    pub fn set_aggregates(&mut self, host: usize, ids: &[u32]) -> Result<()> {
        let name = self.name(host).to_owned();
        let code = self.aggset_code(&name, ids)?;
        let (b, r) = self.locate_mut(host);
        b.aggset[r] = code;
        self.touch(host);
        Ok(())
    }

    /// Sets the availability zone of host `host`.
    pub fn set_availability_zone(&mut self, host: usize, az: Option<&str>) {
        let code = az.map_or(NO_AZ, |a| self.azs.intern(a));
        let (b, r) = self.locate_mut(host);
        b.az[r] = code;
        self.touch(host);
    }

    /// Sets the service state of host `host`.
    pub fn set_service(&mut self, host: usize, s: &ServiceRecord) {
        let clock = self.service_clock;
        let (b, r) = self.locate_mut(host);
        b.service_disabled.set(r, s.disabled);
        b.service_forced_down.set(r, s.forced_down);
        b.service_age_s[r] = s.last_seen_up_age_s - clock;
        b.service_version[r] = s.version;
        self.min_service_version = self.min_service_version.min(s.version);
        self.touch(host);
    }

    /// Moves the service clock to `now` (seconds): every heartbeat age grows
    /// by the difference, and no row is written. A live fleet records a
    /// heartbeat at Unix time `t` as age `now - t` at clock `now`.
    pub fn set_service_clock(&mut self, now: f64) {
        self.service_clock = now;
    }

    /// Records instance `uuid` on `host`, or forgets it (`None`).
    pub fn place_instance(&mut self, uuid: u128, host: Option<usize>) {
        match host {
            Some(h) => {
                self.instances.insert(uuid, h as u32);
            }
            None => {
                self.instances.remove(&uuid);
            }
        }
    }

    /// The fleet without its tombstones (hosts renumbered in order), and
    /// for each old index its new one.
    ///
    /// # Errors
    /// Only on an internal inconsistency.
    pub fn compacted(&self) -> Result<(Fleet, Vec<Option<usize>>)> {
        let mut b = super::FleetBuilder::new();
        for a in &self.aggregates {
            b.add_aggregate(a.clone())?;
        }
        b.nova_conf(self.nova_conf.clone());
        let mut map = vec![None; self.len()];
        let mut next = 0;
        for (host, inst) in self.instances_by_host().into_iter().enumerate() {
            if self.is_live(host) {
                b.push(self.record_with(host, inst))?;
                map[host] = Some(next);
                next += 1;
            }
        }
        let mut f = b.finish()?;
        f.service_clock = self.service_clock;
        for batch in &mut f.batches {
            for a in &mut batch.service_age_s {
                *a -= self.service_clock;
            }
        }
        Ok((f, map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FleetBuilder;
    use crate::fleet::BATCH_ROWS;

    fn host(name: &str, vcpus: i64) -> HostRecord {
        HostRecord {
            name: name.into(),
            inventories: vec![Inventory::simple("VCPU", vcpus, 1.0)],
            traits: vec!["HW_CPU_X86_AVX2".into()],
            ..Default::default()
        }
    }

    fn records(f: &Fleet) -> Vec<HostRecord> {
        let mut v: Vec<HostRecord> = f.host_records().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    #[test]
    fn appends_rewrites_and_tombstones_equal_a_fresh_build() {
        let mut live = Fleet::empty();
        live.add_aggregate(Aggregate { id: 1, name: "a".into(), ..Default::default() }).unwrap();
        for i in 0..5 {
            live.append(host(&format!("h{i}"), 8)).unwrap();
        }
        let h2 = live.index_of("h2").unwrap();
        live.remove_host(h2);
        assert_eq!((live.len(), live.live_len(), live.tombstones()), (5, 4, 1));
        assert!(live.index_of("h2").is_none());
        assert_eq!(live.usage().avail[0][h2], -1, "a tombstone has no capacity");
        let h4 = live.index_of("h4").unwrap();
        live.set_inventories(h4, &[Inventory::simple("CUSTOM_GPU", 2, 1.0), Inventory::simple("VCPU", 16, 1.0)])
            .unwrap();
        live.set_used(h4, live.rc_index("CUSTOM_GPU").unwrap(), 1);
        live.set_aggregates(h4, &[1]).unwrap();
        live.set_traits(h4, &["CUSTOM_FAST".into()]).unwrap();
        live.append(host("h2", 4)).unwrap();
        assert!(live.set_aggregates(h4, &[9]).is_err(), "unknown aggregate");
        let mut b = FleetBuilder::new();
        b.add_aggregate(Aggregate { id: 1, name: "a".into(), ..Default::default() }).unwrap();
        for r in records(&live) {
            b.push(r).unwrap();
        }
        let fresh = b.finish().unwrap();
        assert_eq!(records(&live), records(&fresh));
        let gpu = records(&live).into_iter().find(|r| r.name == "h4").unwrap();
        assert_eq!(gpu.inventory("CUSTOM_GPU").map(|i| (i.total, i.used)), Some((2, 1)));
        let (compact, map) = live.compacted().unwrap();
        assert_eq!(compact.len(), 5);
        assert_eq!(map[h2], None);
        assert_eq!(records(&compact), records(&fresh));
    }

    #[test]
    fn appends_open_a_new_batch_when_the_last_is_full() {
        let mut f = Fleet::empty();
        for i in 0..BATCH_ROWS + 3 {
            f.append(HostRecord { name: format!("h{i}"), ..Default::default() }).unwrap();
        }
        assert_eq!(f.batches.len(), 2);
        assert_eq!(f.batches[1].start, BATCH_ROWS);
        assert_eq!(f.name(BATCH_ROWS + 2), format!("h{}", BATCH_ROWS + 2));
        assert_eq!(f.index_of("h65537"), Some(65_537));
    }

    #[test]
    fn the_service_clock_ages_heartbeats_without_writes() {
        let mut f = Fleet::empty();
        f.set_service_clock(1000.0);
        let h = f.append(HostRecord { name: "h".into(), ..Default::default() }).unwrap();
        f.set_service(h, &ServiceRecord { last_seen_up_age_s: 5.0, ..Default::default() });
        f.set_service_clock(1030.0);
        assert_eq!(f.host_record(h).service.last_seen_up_age_s, 35.0);
    }
}
