//! One batch of hosts: the per-host columns of up to [`super::BATCH_ROWS`]
//! rows, owned and writable in place, so a committed write changes the rows
//! it touched and nothing else (DESIGN.md section 3). Kernels read them as
//! plain slices; Arrow record batches are materialized from them for SQL and
//! export ([`super::schema::to_record`]).

use crate::mask::Mask;

/// No availability zone (the `availability_zone` code of a host outside
/// every zone).
pub const NO_AZ: u32 = u32::MAX;

/// Strings of one batch in one byte buffer (no allocation per host). A
/// changed value is appended and re-pointed; the old bytes stay until the
/// batch is rebuilt (renames are rare).
#[derive(Clone, Debug, Default)]
pub struct StrColumn {
    bytes: String,
    /// `(offset, len)` per row; `len == u32::MAX` is null.
    spans: Vec<(u32, u32)>,
}

impl StrColumn {
    const NULL: u32 = u32::MAX;

    fn span_of(&mut self, v: Option<&str>) -> (u32, u32) {
        match v {
            Some(s) => {
                let at = self.bytes.len() as u32;
                self.bytes.push_str(s);
                (at, s.len() as u32)
            }
            None => (0, Self::NULL),
        }
    }

    /// Appends a row.
    pub fn push(&mut self, v: Option<&str>) {
        let span = self.span_of(v);
        self.spans.push(span);
    }

    /// Sets row `i` (a no-op when it already holds `v`).
    pub fn set(&mut self, i: usize, v: Option<&str>) {
        if self.get(i) != v {
            self.spans[i] = self.span_of(v);
        }
    }

    /// Row `i`.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&str> {
        let (at, len) = self.spans[i];
        (len != Self::NULL).then(|| &self.bytes[at as usize..(at + len) as usize])
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True without rows.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.bytes.capacity() + self.spans.capacity() * 8
    }
}

/// One resource class's inventory codes in a batch.
#[derive(Clone, Debug, Default)]
pub struct RcColumns {
    /// Per host, the index of its [`super::InventoryProfile`] in
    /// `Fleet::inventory_profiles[rc]`; 0 means no inventory of the class.
    pub code: Vec<u32>,
    /// True when every host of the batch has `min_unit <= 1` and
    /// `step_size == 1`, so the unit checks can be skipped. Cleared (never
    /// set again) when a host gets a profile with unit constraints.
    pub units_trivial: bool,
}

/// One batch of hosts.
#[derive(Clone, Debug, Default)]
pub struct HostBatch {
    /// Global index of the first host.
    pub start: usize,
    /// Service host name.
    pub names: StrColumn,
    /// Hypervisor node name where it differs from the host name.
    pub nodenames: StrColumn,
    /// Root provider uuid.
    pub uuids: Vec<u128>,
    /// Cell code (`Fleet::cells`).
    pub cell: Vec<u32>,
    /// Availability zone code (`Fleet::azs`), [`NO_AZ`] for none.
    pub az: Vec<u32>,
    /// Management IP (IPv4 mapped into IPv6).
    pub host_ip: Vec<Option<[u8; 16]>>,
    /// Per resource class (fleet order) inventory columns.
    pub rc: Vec<RcColumns>,
    /// Code of the host's aggregate set (`Fleet::aggsets`).
    pub aggset: Vec<u32>,
    /// Code of the host's trait set (`Fleet::traitsets`).
    pub traitset: Vec<u32>,
    /// Dictionary code of `cpu_info` (`Fleet::cpu_infos`).
    pub cpu_info: Vec<u32>,
    /// Dictionary code of `supported_instances` (`Fleet::supported`).
    pub supported: Vec<u32>,
    /// Dictionary code of `stats` (`Fleet::stats`).
    pub stats: Vec<u32>,
    /// Dictionary code of `hypervisor_type` (`Fleet::hypervisor_types`).
    pub hypervisor_type: Vec<u32>,
    /// `hypervisor_version`.
    pub hypervisor_version: Vec<i64>,
    /// `failed_builds`.
    pub failed_builds: Vec<i32>,
    /// Service disabled.
    pub service_disabled: Mask,
    /// Service forced down.
    pub service_forced_down: Mask,
    /// Seconds since the last heartbeat at service clock 0: the age now is
    /// this plus `Fleet::service_clock` (a live fleet stores minus the
    /// heartbeat's Unix time and moves the clock, so no row is rewritten
    /// as time passes).
    pub service_age_s: Vec<f64>,
    /// nova-compute service version.
    pub service_version: Vec<i32>,
    /// Set for a live host: cleared for a deleted one (a tombstone until
    /// compaction) and for a provider row that is not a compute node.
    pub live: Mask,
}

impl HostBatch {
    /// An empty batch starting at global index `start`.
    pub(crate) fn new(start: usize, n_rc: usize) -> Self {
        let rc = (0..n_rc).map(|_| RcColumns { code: Vec::new(), units_trivial: true }).collect();
        HostBatch { start, rc, ..Default::default() }
    }

    /// Number of hosts in the batch.
    pub fn len(&self) -> usize {
        self.uuids.len()
    }

    /// True for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.uuids.is_empty()
    }

    /// Global index range of the batch.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.start..self.start + self.len()
    }

    /// Appends a placeholder row (every column gets a slot; the caller
    /// writes the real values next).
    pub(crate) fn push_slot(&mut self) {
        self.names.push(Some(""));
        self.nodenames.push(None);
        self.uuids.push(0);
        self.cell.push(0);
        self.az.push(NO_AZ);
        self.host_ip.push(None);
        for c in &mut self.rc {
            c.code.push(0);
        }
        self.aggset.push(0);
        self.traitset.push(0);
        self.cpu_info.push(0);
        self.supported.push(0);
        self.stats.push(0);
        self.hypervisor_type.push(0);
        self.hypervisor_version.push(0);
        self.failed_builds.push(0);
        self.service_disabled.push(false);
        self.service_forced_down.push(false);
        self.service_age_s.push(0.0);
        self.service_version.push(0);
        self.live.push(true);
    }

    /// Bytes held by the batch's columns.
    pub fn memory_bytes(&self) -> usize {
        let n = self.uuids.capacity();
        self.names.memory_bytes()
            + self.nodenames.memory_bytes()
            + n * (16 + 4 + 4 + 17 + 4 * 6 + 8 + 4 + 8 + 4)
            + self.rc.iter().map(|c| c.code.capacity() * 4).sum::<usize>()
            + 3 * n.div_ceil(8)
    }
}
