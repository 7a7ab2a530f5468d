//! Nova's host weighers with Nova's normalization (`nova/weights.py`):
//! raw value per surviving host, clamped to the weigher's `minval`/`maxval`
//! where defined, min-max normalized over the survivors, multiplied by a
//! per-host multiplier (aggregate metadata override, else the option), and
//! summed in weigher order.
//!
//! A weigher is prepared once per request instance and returns a [`Raw`]
//! source that fills raw values 64 hosts at a time; `None` means it adds
//! nothing to any host (a zero multiplier everywhere, or a constant raw
//! value, which normalizes to 0).

use crate::config::SchedulerConfig;
use crate::filters::{FilterError, RequestContext};
use crate::fleet::{Fleet, HostBatch};

pub mod affinity;
pub mod compute;
pub mod cpu;
pub mod cross_cell;
pub mod disk;
pub mod hypervisor_version;
pub mod image_props;
pub mod io_ops;
pub mod kernels;
pub mod metrics;
pub mod num_instances;
pub mod pci;
pub mod ram;

/// Fills raw values for `out.len()` rows of a batch starting at `row0`.
pub type RawFn<'a> = Box<dyn Fn(&HostBatch, usize, &mut [f64]) + Send + Sync + 'a>;

/// Checks the survivors before weighing.
pub type CheckFn<'a> = Box<dyn Fn(&crate::Mask) -> Result<(), FilterError> + Send + Sync + 'a>;

/// A prepared weigher.
pub struct Raw<'a> {
    /// Raw values.
    pub values: RawFn<'a>,
    /// Nova's `minval` (values below are clamped, and it is the low end).
    pub minval: Option<f64>,
    /// Nova's `maxval`.
    pub maxval: Option<f64>,
    /// Per-host multiplier.
    pub multiplier: Multiplier,
    /// Names the raw values when they depend only on the fleet (not on the
    /// request), so per-block minima and maxima can be cached across
    /// decisions and invalidated by block epochs.
    pub cache_key: Option<&'static str>,
    /// Checked against the survivors before weighing (MetricsWeigher raises
    /// in Nova when a required metric is missing).
    pub check: Option<CheckFn<'a>>,
}

/// A weigher's multiplier: one value, or one per aggregate set.
#[derive(Clone, Debug)]
pub enum Multiplier {
    /// The same for every host.
    Const(f64),
    /// Indexed by the host's aggregate-set code (shared: the fleet keeps
    /// one per option until its aggregates change).
    PerAggset(std::sync::Arc<Vec<f64>>),
}

impl PartialEq for Multiplier {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Multiplier::Const(a), Multiplier::Const(b)) => a == b,
            (Multiplier::PerAggset(a), Multiplier::PerAggset(b)) => std::sync::Arc::ptr_eq(a, b) || a == b,
            _ => false,
        }
    }
}

impl Multiplier {
    /// Nova's `utils.get_weight_multiplier`: the minimum of the host's
    /// aggregates' metadata `option` parsed as float, else `default` (also
    /// when a value does not parse).
    pub fn resolve(fleet: &Fleet, option: &str, default: f64) -> Self {
        let per = fleet.aggregate_min_values(option, default);
        if per.iter().all(|&m| m == default) { Multiplier::Const(default) } else { Multiplier::PerAggset(per) }
    }

    /// Negates (BuildFailureWeigher's multiplier is `-1 *` the option).
    pub fn negated(self) -> Self {
        match self {
            Multiplier::Const(m) => Multiplier::Const(-m),
            Multiplier::PerAggset(v) => Multiplier::PerAggset(std::sync::Arc::new(v.iter().map(|m| -m).collect())),
        }
    }

    /// True when every host gets a zero multiplier.
    pub fn is_zero(&self) -> bool {
        match self {
            Multiplier::Const(m) => *m == 0.0,
            Multiplier::PerAggset(v) => v.iter().all(|&m| m == 0.0),
        }
    }
}

/// A Nova host weigher.
pub trait HostWeigher: Send + Sync {
    /// Nova module (for the dotted class path in decision headers).
    fn module(&self) -> &'static str;
    /// Request-level work; `None` when it adds nothing to any host.
    ///
    /// # Errors
    /// A request Nova's weigher would raise on.
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Raw<'a>>, FilterError>;
}

/// A filter or weigher with its registered Nova class name.
pub type Named<T> = (&'static str, Box<T>);

/// One registered weigher: its Nova class name (the config key, defined
/// here only) and its constructor.
#[derive(Debug)]
pub struct WeigherEntry {
    /// Nova class name.
    pub name: &'static str,
    /// A new instance.
    pub make: fn() -> Box<dyn HostWeigher>,
}

/// All 13 Nova 34 weighers in the order the parity harness sums them
/// (module file, then class name): the one registry.
pub static WEIGHERS: [WeigherEntry; 13] = [
    WeigherEntry {
        name: "ServerGroupSoftAffinityWeigher",
        make: || Box::new(affinity::ServerGroupSoftAffinityWeigher),
    },
    WeigherEntry {
        name: "ServerGroupSoftAntiAffinityWeigher",
        make: || Box::new(affinity::ServerGroupSoftAntiAffinityWeigher),
    },
    WeigherEntry { name: "BuildFailureWeigher", make: || Box::new(compute::BuildFailureWeigher) },
    WeigherEntry { name: "CPUWeigher", make: || Box::new(cpu::CPUWeigher) },
    WeigherEntry { name: "CrossCellWeigher", make: || Box::new(cross_cell::CrossCellWeigher) },
    WeigherEntry { name: "DiskWeigher", make: || Box::new(disk::DiskWeigher) },
    WeigherEntry { name: "HypervisorVersionWeigher", make: || Box::new(hypervisor_version::HypervisorVersionWeigher) },
    WeigherEntry { name: "ImagePropertiesWeigher", make: || Box::new(image_props::ImagePropertiesWeigher) },
    WeigherEntry { name: "IoOpsWeigher", make: || Box::new(io_ops::IoOpsWeigher) },
    WeigherEntry { name: "MetricsWeigher", make: || Box::new(metrics::MetricsWeigher) },
    WeigherEntry { name: "NumInstancesWeigher", make: || Box::new(num_instances::NumInstancesWeigher) },
    WeigherEntry { name: "PCIWeigher", make: || Box::new(pci::PCIWeigher) },
    WeigherEntry { name: "RAMWeigher", make: || Box::new(ram::RAMWeigher) },
];

/// Looks a weigher up by Nova class name (dotted paths accepted); returns
/// the registered name with the weigher.
///
/// # Errors
/// An unknown name, with the list of known ones.
pub fn by_name(name: &str) -> Result<Named<dyn HostWeigher>, crate::EngineError> {
    let short = name.rsplit('.').next().unwrap_or(name);
    match WEIGHERS.iter().find(|e| e.name == short) {
        Some(e) => Ok((e.name, (e.make)())),
        None => Err(crate::EngineError::invalid(format!(
            "unknown weigher {name:?}; Nova 34 weighers are: {}",
            WEIGHERS.iter().map(|e| e.name).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// The weighers `[filter_scheduler] weight_classes` selects (all when empty),
/// in harness order.
///
/// # Errors
/// An unknown weigher name.
pub fn from_config(conf: &SchedulerConfig) -> Result<Vec<Named<dyn HostWeigher>>, crate::EngineError> {
    if conf.weight_classes.is_empty() {
        return Ok(WEIGHERS.iter().map(|e| (e.name, (e.make)())).collect());
    }
    conf.weight_classes.iter().map(|n| by_name(n)).collect()
}

/// A raw source reading one `i32` usage column through `col`.
pub fn usage_column<'a>(fleet: &'a Fleet, col: fn(&Fleet) -> &Vec<i32>) -> RawFn<'a> {
    Box::new(move |batch, row0, out| {
        kernels::widen_i32(&col(fleet)[batch.start + row0..batch.start + row0 + out.len()], out)
    })
}

/// A weigher with a simple per-host multiplier option: `None` when the
/// multiplier is zero everywhere.
pub fn simple<'a>(
    ctx: &RequestContext<'a>,
    cache_key: &'static str,
    option: &str,
    default: f64,
    minval: Option<f64>,
    values: RawFn<'a>,
) -> Option<Raw<'a>> {
    let multiplier = Multiplier::resolve(ctx.fleet, option, default);
    (!multiplier.is_zero()).then_some(Raw {
        values,
        minval,
        maxval: None,
        multiplier,
        cache_key: Some(cache_key),
        check: None,
    })
}
