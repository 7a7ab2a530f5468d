//! A host row back as a [`HostRecord`] (inspection, export, compaction and
//! the check that a live fleet equals a fresh build).

use super::Fleet;
use super::batch::NO_AZ;
use crate::host::{HostRecord, Inventory};
use crate::vocab::Interner;

impl Fleet {
    /// Rebuilds host `i` as a [`HostRecord`] (for inspection; exports use
    /// [`Fleet::host_records`], which indexes instances once).
    pub fn host_record(&self, host: usize) -> HostRecord {
        let mut instances: Vec<u128> =
            self.instances.iter().filter(|&(_, &h)| h as usize == host).map(|(&u, _)| u).collect();
        instances.sort_unstable();
        self.record_with(host, instances)
    }

    /// Every live host as a [`HostRecord`], in host order.
    pub fn host_records(&self) -> impl Iterator<Item = HostRecord> + '_ {
        self.instances_by_host()
            .into_iter()
            .enumerate()
            .filter(|(h, _)| self.is_live(*h))
            .map(|(h, inst)| self.record_with(h, inst))
    }

    pub(crate) fn record_with(&self, host: usize, instances: Vec<u128>) -> HostRecord {
        let (b, r) = self.locate(host);
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
        let u = &self.usage;
        HostRecord {
            name: self.name(host).to_owned(),
            nodename: b.nodenames.get(r).map(str::to_owned),
            uuid: b.uuids[r],
            cell: self.cells.name(b.cell[r]).to_owned(),
            availability_zone: (b.az[r] != NO_AZ).then(|| self.azs.name(b.az[r]).to_owned()),
            aggregates: {
                let mut ids: Vec<u32> =
                    self.aggsets[b.aggset[r] as usize].iter().map(|&a| self.aggregates[a as usize].id).collect();
                ids.sort_unstable();
                ids
            },
            host_ip: b.host_ip[r].as_ref().map(decode_ip),
            inventories,
            traits: bits_to_names(&self.traitsets[b.traitset[r] as usize], &self.traits),
            vcpus_used: u.vcpus_used[host] as i64,
            free_ram_mb: u.free_ram_mb[host] as i64,
            free_disk_mb: u.free_disk_mb[host] as i64,
            num_instances: u.num_instances[host] as i64,
            num_io_ops: u.num_io_ops[host] as i64,
            failed_builds: b.failed_builds[r] as i64,
            hypervisor_type: self.hypervisor_types.name(b.hypervisor_type[r]).to_owned(),
            hypervisor_version: b.hypervisor_version[r],
            cpu_info: self.cpu_infos.name(b.cpu_info[r]).to_owned(),
            supported_instances: self.supported[b.supported[r] as usize].as_ref().clone(),
            stats: self.stats[b.stats[r] as usize].as_ref().clone(),
            service: crate::host::ServiceRecord {
                disabled: b.service_disabled.get(r),
                forced_down: b.service_forced_down.get(r),
                last_seen_up_age_s: b.service_age_s[r] + self.service_clock,
                version: b.service_version[r],
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

pub(crate) fn encode_ip(ip: std::net::IpAddr) -> [u8; 16] {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        std::net::IpAddr::V6(v6) => v6.octets(),
    }
}

pub(crate) fn decode_ip(b: &[u8; 16]) -> std::net::IpAddr {
    let v6 = std::net::Ipv6Addr::from(*b);
    match v6.to_ipv4_mapped() {
        Some(v4) => std::net::IpAddr::V4(v4),
        None => std::net::IpAddr::V6(v6),
    }
}
