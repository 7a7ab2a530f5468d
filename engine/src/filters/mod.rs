//! Nova's host filters as kernels over packed masks.
//!
//! A filter is prepared once per request instance ([`HostFilter::prepare`]):
//! everything that is the same for every host (parsing extra specs, resolving
//! hint uuids to hosts, evaluating aggregate metadata per distinct aggregate
//! set) happens there. What it returns is a [`Kernel`] that clears the bits of
//! failing hosts in one batch, or `None` when the request cannot make this
//! filter reject anyone (then no host is scanned).
//!
//! Registry keys are Nova's class names (CONVENTIONS.md rule 3).

use std::collections::HashSet;

use crate::config::SchedulerConfig;
use crate::fleet::{Fleet, HostBatch};
use crate::request::BootRequest;

pub mod affinity_filter;
pub mod aggregate_image_properties_isolation;
pub mod aggregate_instance_extra_specs;
pub mod aggregate_multitenancy_isolation;
pub mod all_hosts_filter;
pub mod compute_capabilities_filter;
pub mod compute_filter;
pub mod image_props_filter;
pub mod io_ops_filter;
pub mod isolated_hosts_filter;
pub mod json_filter;
pub mod metrics_filter;
pub mod num_instances_filter;
pub mod numa_topology_filter;
pub mod pci_passthrough_filter;
pub mod type_filter;

/// The server group of a request, as the filters and weighers see it.
#[derive(Clone, Debug, Default)]
pub struct GroupView {
    /// `affinity`, `anti-affinity`, `soft-affinity`, `soft-anti-affinity`.
    pub policy: String,
    /// Member instance uuids (including the ones being booted).
    pub members: Vec<u128>,
    /// Hosts where members are placed (`InstanceGroup.hosts`).
    pub hosts: Vec<u32>,
    /// `max_server_per_host` rule, default 1.
    pub max_server_per_host: i64,
}

impl GroupView {
    /// Number of group members on each host that has any, sorted by host.
    pub fn members_per_host(&self, fleet: &Fleet) -> Vec<(u32, i64)> {
        let mut hosts: Vec<u32> = self.members.iter().filter_map(|m| fleet.instances.get(m).copied()).collect();
        hosts.sort_unstable();
        let mut out: Vec<(u32, i64)> = Vec::new();
        for h in hosts {
            match out.last_mut() {
                Some((last, n)) if *last == h => *n += 1,
                _ => out.push((h, 1)),
            }
        }
        out
    }
}

/// Everything a filter or weigher may look at for one instance of a request.
#[derive(Clone, Copy, Debug)]
pub struct RequestContext<'a> {
    /// The fleet.
    pub fleet: &'a Fleet,
    /// Scheduler options.
    pub conf: &'a SchedulerConfig,
    /// The request.
    pub request: &'a BootRequest,
    /// Its server group, if any.
    pub group: Option<&'a GroupView>,
    /// Uuid of the instance being placed (`RequestSpec.instance_uuid`).
    pub instance_uuid: u128,
    /// Index of the instance within a multi-create.
    pub index: usize,
}

/// Why a request cannot be scheduled by a filter at all.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum FilterError {
    /// The request asks for something Quiver does not model yet.
    #[error("{0}")]
    Unsupported(String),
    /// Nova's own code raises for this request (kept for parity).
    #[error("{0}")]
    NovaError(String),
}

/// Clears the bits of failing hosts of one batch (one mask word per 64 rows).
pub type Kernel<'a> = Box<dyn Fn(&HostBatch, &mut [u64]) + Send + Sync + 'a>;

/// A Nova host filter.
pub trait HostFilter: Send + Sync {
    /// Nova's `run_filter_once_per_request`.
    fn run_filter_once_per_request(&self) -> bool {
        false
    }
    /// Nova's `RUN_ON_REBUILD`: whether a rebuild with a new image runs
    /// this filter (on the server's own host). Filters that count
    /// resources, groups or hosts' states do not: the server is already
    /// there.
    fn run_on_rebuild(&self) -> bool {
        false
    }
    /// Request-level work; `None` when every host passes.
    ///
    /// # Errors
    /// A request this filter cannot handle.
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Kernel<'a>>, FilterError>;
    /// Why host `host` fails this filter, in words, for `quiver explain`:
    /// asked only of a host the kernel rejected, never on the scheduling
    /// path. `None`: nothing to add to the filter's name.
    fn reason(&self, _ctx: &RequestContext<'_>, _host: usize) -> Option<String> {
        None
    }
    /// For a filter that compares one per-host counter with a limit (the
    /// simulator's fast path checks such a host in O(1) when its counter
    /// changes): the counter and the limit. `None` for every other filter.
    fn counter_below(&self, _ctx: &RequestContext<'_>) -> Option<CounterBelow> {
        None
    }
    /// For a filter that keeps or drops a set of hosts the request names
    /// (server groups, `same_host`, `different_host`; the simulator's fast
    /// path applies the set per request): `Some(None)` when it keeps every
    /// host for this request, `Some(Some((hosts, keep_listed)))` otherwise.
    /// `None` for every other filter.
    fn host_set(&self, _ctx: &RequestContext<'_>) -> Option<Option<HostSet>> {
        None
    }
}

/// Hosts a filter keeps (`keep_listed`) or drops.
pub type HostSet = (HashSet<u32>, bool);

/// A filter that passes hosts whose counter is below a limit.
pub struct CounterBelow {
    /// The counter column (`num_io_ops`, `num_instances`).
    pub counter: fn(&Fleet) -> &Vec<i32>,
    /// The option's value, or per aggregate set the smallest metadata
    /// override.
    pub limit: CounterLimit,
}

/// The limit of a [`CounterBelow`].
pub enum CounterLimit {
    /// One limit for every host.
    Const(i64),
    /// Per aggregate set.
    PerAggset(Vec<i64>),
}

impl CounterBelow {
    /// `counter` below `option`, overridden per host by the smallest
    /// `aggregate_key` of its aggregates' metadata when that is given.
    pub fn new(fleet: &Fleet, counter: fn(&Fleet) -> &Vec<i32>, option: i64, aggregate_key: Option<&str>) -> Self {
        let limit = match aggregate_key {
            None => CounterLimit::Const(option),
            Some(k) => CounterLimit::PerAggset(aggset_min_values::<i64>(fleet, k, option)),
        };
        Self { counter, limit }
    }

    /// Whether host `h` passes now.
    #[inline]
    pub fn passes(&self, fleet: &Fleet, h: usize) -> bool {
        let n = (self.counter)(fleet)[h] as i64;
        match &self.limit {
            CounterLimit::Const(m) => n < *m,
            CounterLimit::PerAggset(t) => {
                let (b, row) = fleet.locate(h);
                n < t[b.aggset[row] as usize]
            }
        }
    }
}

/// One registered filter: its Nova class name (the config key, defined
/// here only) and its constructor.
#[derive(Debug)]
pub struct FilterEntry {
    /// Nova class name.
    pub name: &'static str,
    /// A new instance.
    pub make: fn() -> Box<dyn HostFilter>,
}

/// Every filter Nova 34 ships, by class name: the one registry.
pub static FILTERS: [FilterEntry; 22] = [
    FilterEntry {
        name: "AggregateImagePropertiesIsolation",
        make: || Box::new(aggregate_image_properties_isolation::AggregateImagePropertiesIsolation),
    },
    FilterEntry {
        name: "AggregateInstanceExtraSpecsFilter",
        make: || Box::new(aggregate_instance_extra_specs::AggregateInstanceExtraSpecsFilter),
    },
    FilterEntry { name: "AggregateIoOpsFilter", make: || Box::new(io_ops_filter::AggregateIoOpsFilter) },
    FilterEntry {
        name: "AggregateMultiTenancyIsolation",
        make: || Box::new(aggregate_multitenancy_isolation::AggregateMultiTenancyIsolation),
    },
    FilterEntry {
        name: "AggregateNumInstancesFilter",
        make: || Box::new(num_instances_filter::AggregateNumInstancesFilter),
    },
    FilterEntry { name: "AggregateTypeAffinityFilter", make: || Box::new(type_filter::AggregateTypeAffinityFilter) },
    FilterEntry { name: "AllHostsFilter", make: || Box::new(all_hosts_filter::AllHostsFilter) },
    FilterEntry {
        name: "ComputeCapabilitiesFilter",
        make: || Box::new(compute_capabilities_filter::ComputeCapabilitiesFilter),
    },
    FilterEntry { name: "ComputeFilter", make: || Box::new(compute_filter::ComputeFilter) },
    FilterEntry { name: "DifferentHostFilter", make: || Box::new(affinity_filter::DifferentHostFilter) },
    FilterEntry { name: "ImagePropertiesFilter", make: || Box::new(image_props_filter::ImagePropertiesFilter) },
    FilterEntry { name: "IoOpsFilter", make: || Box::new(io_ops_filter::IoOpsFilter) },
    FilterEntry { name: "IsolatedHostsFilter", make: || Box::new(isolated_hosts_filter::IsolatedHostsFilter) },
    FilterEntry { name: "JsonFilter", make: || Box::new(json_filter::JsonFilter) },
    FilterEntry { name: "MetricsFilter", make: || Box::new(metrics_filter::MetricsFilter) },
    FilterEntry { name: "NUMATopologyFilter", make: || Box::new(numa_topology_filter::NUMATopologyFilter) },
    FilterEntry { name: "NumInstancesFilter", make: || Box::new(num_instances_filter::NumInstancesFilter) },
    FilterEntry { name: "PciPassthroughFilter", make: || Box::new(pci_passthrough_filter::PciPassthroughFilter) },
    FilterEntry { name: "SameHostFilter", make: || Box::new(affinity_filter::SameHostFilter) },
    FilterEntry { name: "ServerGroupAffinityFilter", make: || Box::new(affinity_filter::ServerGroupAffinityFilter) },
    FilterEntry {
        name: "ServerGroupAntiAffinityFilter",
        make: || Box::new(affinity_filter::ServerGroupAntiAffinityFilter),
    },
    FilterEntry { name: "SimpleCIDRAffinityFilter", make: || Box::new(affinity_filter::SimpleCIDRAffinityFilter) },
];

/// The registered filter names, in registry order.
pub fn filter_names() -> impl Iterator<Item = &'static str> {
    FILTERS.iter().map(|e| e.name)
}

/// Looks a filter up by Nova class name (a dotted path is accepted and its
/// last component used); returns the registered name with the filter.
///
/// # Errors
/// An unknown name, with the list of known ones.
pub fn by_name(name: &str) -> Result<crate::weights::Named<dyn HostFilter>, crate::EngineError> {
    let short = name.rsplit('.').next().unwrap_or(name);
    match FILTERS.iter().find(|e| e.name == short) {
        Some(e) => Ok((e.name, (e.make)())),
        None => Err(crate::EngineError::invalid(format!(
            "unknown filter {name:?}; Nova 34 filters are: {}",
            filter_names().collect::<Vec<_>>().join(", ")
        ))),
    }
}

// ---- kernel helpers shared by the filters -------------------------------

/// Keeps a host when `lut[code]` is true, `code` read from a per-host code
/// column (aggregate set, trait set, dictionary key). `None` when the table
/// passes every code.
pub fn lut_kernel<'a>(codes: fn(&HostBatch) -> &[u32], lut: Vec<bool>) -> Option<Kernel<'a>> {
    if lut.iter().all(|&b| b) {
        return None;
    }
    Some(Box::new(move |batch, mask| {
        let codes = codes(batch);
        and_words(mask, codes.len(), |i| lut[codes[i] as usize]);
    }))
}

/// Keeps exactly the hosts in `hosts` (global indices) when `keep_listed`,
/// else drops them.
pub fn host_set_kernel<'a>(hosts: HashSet<u32>, keep_listed: bool) -> Kernel<'a> {
    let mut sorted: Vec<u32> = hosts.into_iter().collect();
    sorted.sort_unstable();
    Box::new(move |batch, mask| {
        let r = batch.range();
        let lo = sorted.partition_point(|&h| (h as usize) < r.start);
        let hi = sorted.partition_point(|&h| (h as usize) < r.end);
        let listed = &sorted[lo..hi];
        if keep_listed {
            let mut keep = vec![0u64; mask.len()];
            for &h in listed {
                let row = h as usize - r.start;
                keep[row / 64] |= 1 << (row % 64);
            }
            for (m, k) in mask.iter_mut().zip(keep) {
                *m &= k;
            }
        } else {
            for &h in listed {
                let row = h as usize - r.start;
                mask[row / 64] &= !(1 << (row % 64));
            }
        }
    })
}

/// Evaluates `pred(global host index)` for every host still set in a batch.
/// For filters whose per-host work cannot be tabulated.
pub fn per_host_kernel<'a>(pred: impl Fn(usize) -> bool + Send + Sync + 'a) -> Kernel<'a> {
    Box::new(move |batch, mask| {
        let start = batch.start;
        for (w, word) in mask.iter_mut().enumerate() {
            let mut bits = *word;
            while bits != 0 {
                let b = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if !pred(start + w * 64 + b) {
                    *word &= !(1u64 << b);
                }
            }
        }
    })
}

/// `mask &= collect(pred)` over `len` rows, 64 at a time, skipping words
/// already empty. The inner loop has no branch, so it vectorizes.
#[inline]
pub fn and_words(mask: &mut [u64], len: usize, mut pred: impl FnMut(usize) -> bool) {
    for (w, word) in mask.iter_mut().enumerate() {
        if *word == 0 {
            continue;
        }
        let base = w * 64;
        let end = (base + 64).min(len);
        let mut bits = 0u64;
        for i in base..end {
            bits |= (pred(i) as u64) << (i - base);
        }
        *word &= bits;
    }
}

/// The kernel of Nova's counter filters (IoOps, NumInstances and their
/// Aggregate* variants): `counter[i] < threshold`, the threshold being the
/// option, or with `aggregate_key` the minimum of that metadata key over the
/// host's aggregates (the option where absent or not a number).
pub fn counter_below_kernel<'a>(ctx: &RequestContext<'a>, c: CounterBelow) -> Kernel<'a> {
    let fleet = ctx.fleet;
    Box::new(move |batch, mask| {
        let n = &(c.counter)(fleet)[batch.range()];
        match &c.limit {
            CounterLimit::Const(option) => and_words(mask, n.len(), |i| (n[i] as i64) < *option),
            CounterLimit::PerAggset(t) => {
                let agg = &batch.aggset;
                and_words(mask, n.len(), |i| (n[i] as i64) < t[agg[i] as usize])
            }
        }
    })
}

/// Sets the first `len` bits of `mask` and clears the rest.
pub fn and_words_init(mask: &mut [u64], len: usize) {
    mask.fill(u64::MAX);
    let rem = len % 64;
    if rem != 0
        && let Some(last) = mask.get_mut(len / 64)
    {
        *last = (1u64 << rem) - 1;
    }
    for w in mask.iter_mut().skip(len.div_ceil(64)) {
        *w = 0;
    }
}

/// Per aggregate set, the union of comma-split, stripped values of every
/// metadata key (`nova.scheduler.filters.utils.aggregate_metadata_get_by_host`).
pub fn aggset_metadata(fleet: &Fleet, aggset: usize) -> std::collections::BTreeMap<&str, HashSet<&str>> {
    let mut md: std::collections::BTreeMap<&str, HashSet<&str>> = Default::default();
    for &a in &fleet.aggsets[aggset] {
        for (k, v) in &fleet.aggregates[a as usize].metadata {
            md.entry(k.as_str()).or_default().extend(v.split(',').map(str::trim));
        }
    }
    md
}

/// Per aggregate set, the raw values of one metadata key
/// (`aggregate_values_from_key`).
pub fn aggset_values<'f>(fleet: &'f Fleet, aggset: usize, key: &str) -> HashSet<&'f str> {
    fleet.aggsets[aggset]
        .iter()
        .filter_map(|&a| fleet.aggregates[a as usize].metadata.get(key).map(String::as_str))
        .collect()
}

/// Per aggregate set: the minimum of a numeric metadata key over the host's
/// aggregates, or `default` when absent or not a number
/// (`validate_num_values` with Nova's fallback on `ValueError`).
pub fn aggset_min_values<T: std::str::FromStr + PartialOrd + Copy>(fleet: &Fleet, key: &str, default: T) -> Vec<T> {
    (0..fleet.aggsets.len())
        .map(|s| {
            let vals = aggset_values(fleet, s, key);
            let parsed: Option<Vec<T>> = vals.iter().map(|v| v.trim().parse::<T>().ok()).collect();
            match parsed {
                Some(p) if !p.is_empty() => p
                    .into_iter()
                    .fold(None, |m: Option<T>, x| match m {
                        Some(m) if m <= x => Some(m),
                        _ => Some(x),
                    })
                    .unwrap_or(default),
                _ => default,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_have_unique_names_that_resolve_and_unknown_ones_list_the_known() {
        for names in [
            FILTERS.iter().map(|e| e.name).collect::<Vec<_>>(),
            crate::weights::WEIGHERS.iter().map(|e| e.name).collect::<Vec<_>>(),
        ] {
            let unique: HashSet<&str> = names.iter().copied().collect();
            assert_eq!(unique.len(), names.len(), "{names:?}");
        }
        for e in &FILTERS {
            assert_eq!(by_name(e.name).map(|(n, _)| n).ok(), Some(e.name));
        }
        let (name, _) = by_name("nova.scheduler.filters.compute_filter.ComputeFilter").expect("dotted path");
        assert_eq!(name, "ComputeFilter");
        let err = by_name("RamFilter").err().expect("unknown").to_string();
        assert!(
            err.contains("RamFilter") && err.contains("ComputeFilter") && err.contains("NUMATopologyFilter"),
            "{err}"
        );
        let err = crate::weights::by_name("FooWeigher").err().expect("unknown").to_string();
        assert!(err.contains("RAMWeigher"), "{err}");
    }
}
