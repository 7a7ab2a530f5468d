//! Scheduler configuration under Nova's option names and defaults
//! (`nova/conf/scheduler.py`, `nova/conf/metrics.py`, `nova/conf/service.py`).
//!
//! Options are addressed as `group.option` (`filter_scheduler.host_subset_size`)
//! exactly as in `nova.conf`; an unknown name fails with the list of known ones.

use serde_json::Value;

use crate::error::{EngineError, Result};

/// Nova's default `[filter_scheduler] enabled_filters`.
pub const DEFAULT_ENABLED_FILTERS: [&str; 5] = [
    "ComputeFilter",
    "ComputeCapabilitiesFilter",
    "ImagePropertiesFilter",
    "ServerGroupAntiAffinityFilter",
    "ServerGroupAffinityFilter",
];

/// Filters the parity kit's `extended` profile adds to the default ones.
pub const EXTENDED_FILTERS: [&str; 13] = [
    "AggregateInstanceExtraSpecsFilter",
    "AggregateMultiTenancyIsolation",
    "SameHostFilter",
    "DifferentHostFilter",
    "NumInstancesFilter",
    "IoOpsFilter",
    "AggregateNumInstancesFilter",
    "AggregateIoOpsFilter",
    "IsolatedHostsFilter",
    "JsonFilter",
    "MetricsFilter",
    "PciPassthroughFilter",
    "NUMATopologyFilter",
];

/// Filters the `all` profile adds to the extended ones.
pub const ALL_EXTRA_FILTERS: [&str; 4] =
    ["AggregateImagePropertiesIsolation", "AggregateTypeAffinityFilter", "SimpleCIDRAffinityFilter", "AllHostsFilter"];

/// The filter list of a parity-kit profile: `default`, `extended` or `all`.
pub fn profile_filters(profile: &str) -> Option<Vec<String>> {
    let mut f: Vec<&str> = DEFAULT_ENABLED_FILTERS.to_vec();
    match profile {
        "default" => {}
        "extended" => f.extend(EXTENDED_FILTERS),
        "all" => {
            f.extend(EXTENDED_FILTERS);
            f.extend(ALL_EXTRA_FILTERS);
        }
        _ => return None,
    }
    Some(f.into_iter().map(String::from).collect())
}

/// Scheduler options.
#[derive(Clone, Debug, PartialEq)]
pub struct SchedulerConfig {
    /// `[filter_scheduler] enabled_filters`.
    pub enabled_filters: Vec<String>,
    /// `[filter_scheduler] weight_classes`, as weigher class names (empty: all).
    pub weight_classes: Vec<String>,
    /// `[filter_scheduler] host_subset_size`.
    pub host_subset_size: usize,
    /// `[filter_scheduler] shuffle_best_same_weighed_hosts`.
    pub shuffle_best_same_weighed_hosts: bool,
    /// `[filter_scheduler] max_io_ops_per_host`.
    pub max_io_ops_per_host: i64,
    /// `[filter_scheduler] max_instances_per_host`.
    pub max_instances_per_host: i64,
    /// `[filter_scheduler] ram_weight_multiplier`.
    pub ram_weight_multiplier: f64,
    /// `[filter_scheduler] cpu_weight_multiplier`.
    pub cpu_weight_multiplier: f64,
    /// `[filter_scheduler] disk_weight_multiplier`.
    pub disk_weight_multiplier: f64,
    /// `[filter_scheduler] io_ops_weight_multiplier`.
    pub io_ops_weight_multiplier: f64,
    /// `[filter_scheduler] num_instances_weight_multiplier`.
    pub num_instances_weight_multiplier: f64,
    /// `[filter_scheduler] build_failure_weight_multiplier`.
    pub build_failure_weight_multiplier: f64,
    /// `[filter_scheduler] cross_cell_move_weight_multiplier`.
    pub cross_cell_move_weight_multiplier: f64,
    /// `[filter_scheduler] hypervisor_version_weight_multiplier`.
    pub hypervisor_version_weight_multiplier: f64,
    /// `[filter_scheduler] soft_affinity_weight_multiplier`.
    pub soft_affinity_weight_multiplier: f64,
    /// `[filter_scheduler] soft_anti_affinity_weight_multiplier`.
    pub soft_anti_affinity_weight_multiplier: f64,
    /// `[filter_scheduler] pci_weight_multiplier`.
    pub pci_weight_multiplier: f64,
    /// `[filter_scheduler] image_props_weight_multiplier`.
    pub image_props_weight_multiplier: f64,
    /// `[filter_scheduler] isolated_hosts`.
    pub isolated_hosts: Vec<String>,
    /// `[filter_scheduler] isolated_images`.
    pub isolated_images: Vec<String>,
    /// `[filter_scheduler] restrict_isolated_hosts_to_isolated_images`.
    pub restrict_isolated_hosts_to_isolated_images: bool,
    /// `[filter_scheduler] aggregate_image_properties_isolation_namespace`.
    pub aggregate_image_properties_isolation_namespace: Option<String>,
    /// `[filter_scheduler] aggregate_image_properties_isolation_separator`.
    pub aggregate_image_properties_isolation_separator: String,
    /// `[filter_scheduler] image_properties_default_architecture`.
    pub image_properties_default_architecture: Option<String>,
    /// `[metrics] weight_setting`, parsed `name=ratio` pairs.
    pub metrics_weight_setting: Vec<(String, f64)>,
    /// `[metrics] weight_multiplier`.
    pub metrics_weight_multiplier: f64,
    /// `[metrics] required`.
    pub metrics_required: bool,
    /// `[metrics] weight_of_unavailable`.
    pub metrics_weight_of_unavailable: f64,
    /// `[scheduler] max_attempts`.
    pub max_attempts: usize,
    /// `[scheduler] max_placement_results`.
    pub max_placement_results: usize,
    /// `[DEFAULT] service_down_time` (seconds).
    pub service_down_time: f64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            enabled_filters: DEFAULT_ENABLED_FILTERS.iter().map(|s| s.to_string()).collect(),
            weight_classes: Vec::new(),
            host_subset_size: 1,
            shuffle_best_same_weighed_hosts: false,
            max_io_ops_per_host: 8,
            max_instances_per_host: 50,
            ram_weight_multiplier: 1.0,
            cpu_weight_multiplier: 1.0,
            disk_weight_multiplier: 1.0,
            io_ops_weight_multiplier: -1.0,
            num_instances_weight_multiplier: 0.0,
            build_failure_weight_multiplier: 1_000_000.0,
            cross_cell_move_weight_multiplier: 1_000_000.0,
            hypervisor_version_weight_multiplier: 1.0,
            soft_affinity_weight_multiplier: 1.0,
            soft_anti_affinity_weight_multiplier: 1.0,
            pci_weight_multiplier: 1.0,
            image_props_weight_multiplier: 0.0,
            isolated_hosts: Vec::new(),
            isolated_images: Vec::new(),
            restrict_isolated_hosts_to_isolated_images: true,
            aggregate_image_properties_isolation_namespace: None,
            aggregate_image_properties_isolation_separator: ".".into(),
            image_properties_default_architecture: None,
            metrics_weight_setting: Vec::new(),
            metrics_weight_multiplier: 1.0,
            metrics_required: true,
            metrics_weight_of_unavailable: -10000.0,
            max_attempts: 3,
            max_placement_results: 1000,
            service_down_time: 60.0,
        }
    }
}

/// Every option name this config understands.
pub const OPTION_NAMES: &[&str] = &[
    "filter_scheduler.enabled_filters",
    "filter_scheduler.weight_classes",
    "filter_scheduler.host_subset_size",
    "filter_scheduler.shuffle_best_same_weighed_hosts",
    "filter_scheduler.max_io_ops_per_host",
    "filter_scheduler.max_instances_per_host",
    "filter_scheduler.ram_weight_multiplier",
    "filter_scheduler.cpu_weight_multiplier",
    "filter_scheduler.disk_weight_multiplier",
    "filter_scheduler.io_ops_weight_multiplier",
    "filter_scheduler.num_instances_weight_multiplier",
    "filter_scheduler.build_failure_weight_multiplier",
    "filter_scheduler.cross_cell_move_weight_multiplier",
    "filter_scheduler.hypervisor_version_weight_multiplier",
    "filter_scheduler.soft_affinity_weight_multiplier",
    "filter_scheduler.soft_anti_affinity_weight_multiplier",
    "filter_scheduler.pci_weight_multiplier",
    "filter_scheduler.image_props_weight_multiplier",
    "filter_scheduler.isolated_hosts",
    "filter_scheduler.isolated_images",
    "filter_scheduler.restrict_isolated_hosts_to_isolated_images",
    "filter_scheduler.aggregate_image_properties_isolation_namespace",
    "filter_scheduler.aggregate_image_properties_isolation_separator",
    "filter_scheduler.image_properties_default_architecture",
    "metrics.weight_setting",
    "metrics.weight_multiplier",
    "metrics.required",
    "metrics.weight_of_unavailable",
    "scheduler.max_attempts",
    "scheduler.max_placement_results",
    "DEFAULT.service_down_time",
];

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn as_list(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a.iter().map(as_text).collect(),
        Value::Null => Vec::new(),
        other => as_text(other).split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect(),
    }
}

fn bad(name: &str, v: &Value, what: &str) -> EngineError {
    EngineError::invalid(format!("option {name}: {} is not {what}", as_text(v)))
}

fn as_f64(name: &str, v: &Value) -> Result<f64> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| bad(name, v, "a number")),
        Value::String(s) => s.trim().parse().map_err(|_| bad(name, v, "a number")),
        _ => Err(bad(name, v, "a number")),
    }
}

fn as_int(name: &str, v: &Value) -> Result<i64> {
    match v {
        Value::Number(n) => n.as_i64().ok_or_else(|| bad(name, v, "an integer")),
        Value::String(s) => s.trim().parse().map_err(|_| bad(name, v, "an integer")),
        _ => Err(bad(name, v, "an integer")),
    }
}

fn as_bool(name: &str, v: &Value) -> Result<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(bad(name, v, "a boolean")),
        },
        _ => Err(bad(name, v, "a boolean")),
    }
}

/// Parses `[metrics] weight_setting` (`name=ratio, name=ratio`).
fn parse_weight_setting(name: &str, v: &Value) -> Result<Vec<(String, f64)>> {
    let mut out = Vec::new();
    for item in as_list(v) {
        let (k, r) = item.split_once('=').ok_or_else(|| bad(name, v, "a list of name=ratio"))?;
        let r: f64 = r.trim().parse().map_err(|_| bad(name, v, "a list of name=ratio"))?;
        out.push((k.trim().to_owned(), r));
    }
    Ok(out)
}

impl SchedulerConfig {
    /// Sets one option from a JSON value (strings are parsed as in `nova.conf`).
    ///
    /// # Errors
    /// An unknown option (the message lists the known ones) or a value of the
    /// wrong type (the message names the option).
    pub fn set(&mut self, name: &str, v: &Value) -> Result<()> {
        let key = name.strip_prefix("DEFAULT.").unwrap_or(name);
        let f = |s: &mut f64| -> Result<()> {
            *s = as_f64(name, v)?;
            Ok(())
        };
        match key {
            "filter_scheduler.enabled_filters" => self.enabled_filters = as_list(v),
            "filter_scheduler.weight_classes" => {
                self.weight_classes = as_list(v)
                    .into_iter()
                    .filter(|w| w != "nova.scheduler.weights.all_weighers")
                    .map(|w| w.rsplit('.').next().unwrap_or(&w).to_owned())
                    .collect()
            }
            "filter_scheduler.host_subset_size" => {
                let n = as_int(name, v)?;
                if n < 1 {
                    return Err(bad(name, v, "an integer >= 1"));
                }
                self.host_subset_size = n as usize;
            }
            "filter_scheduler.shuffle_best_same_weighed_hosts" => {
                self.shuffle_best_same_weighed_hosts = as_bool(name, v)?
            }
            "filter_scheduler.max_io_ops_per_host" => self.max_io_ops_per_host = as_int(name, v)?,
            "filter_scheduler.max_instances_per_host" => self.max_instances_per_host = as_int(name, v)?,
            "filter_scheduler.ram_weight_multiplier" => f(&mut self.ram_weight_multiplier)?,
            "filter_scheduler.cpu_weight_multiplier" => f(&mut self.cpu_weight_multiplier)?,
            "filter_scheduler.disk_weight_multiplier" => f(&mut self.disk_weight_multiplier)?,
            "filter_scheduler.io_ops_weight_multiplier" => f(&mut self.io_ops_weight_multiplier)?,
            "filter_scheduler.num_instances_weight_multiplier" => f(&mut self.num_instances_weight_multiplier)?,
            "filter_scheduler.build_failure_weight_multiplier" => f(&mut self.build_failure_weight_multiplier)?,
            "filter_scheduler.cross_cell_move_weight_multiplier" => f(&mut self.cross_cell_move_weight_multiplier)?,
            "filter_scheduler.hypervisor_version_weight_multiplier" => {
                f(&mut self.hypervisor_version_weight_multiplier)?
            }
            "filter_scheduler.soft_affinity_weight_multiplier" => f(&mut self.soft_affinity_weight_multiplier)?,
            "filter_scheduler.soft_anti_affinity_weight_multiplier" => {
                f(&mut self.soft_anti_affinity_weight_multiplier)?
            }
            "filter_scheduler.pci_weight_multiplier" => f(&mut self.pci_weight_multiplier)?,
            "filter_scheduler.image_props_weight_multiplier" => f(&mut self.image_props_weight_multiplier)?,
            "filter_scheduler.isolated_hosts" => self.isolated_hosts = as_list(v),
            "filter_scheduler.isolated_images" => self.isolated_images = as_list(v),
            "filter_scheduler.restrict_isolated_hosts_to_isolated_images" => {
                self.restrict_isolated_hosts_to_isolated_images = as_bool(name, v)?
            }
            "filter_scheduler.aggregate_image_properties_isolation_namespace" => {
                self.aggregate_image_properties_isolation_namespace =
                    Some(as_text(v)).filter(|s| !s.is_empty() && s != "null")
            }
            "filter_scheduler.aggregate_image_properties_isolation_separator" => {
                self.aggregate_image_properties_isolation_separator = as_text(v)
            }
            "filter_scheduler.image_properties_default_architecture" => {
                self.image_properties_default_architecture = Some(as_text(v)).filter(|s| !s.is_empty() && s != "null")
            }
            "metrics.weight_setting" => self.metrics_weight_setting = parse_weight_setting(name, v)?,
            "metrics.weight_multiplier" => f(&mut self.metrics_weight_multiplier)?,
            "metrics.required" => self.metrics_required = as_bool(name, v)?,
            "metrics.weight_of_unavailable" => f(&mut self.metrics_weight_of_unavailable)?,
            "scheduler.max_attempts" => {
                let n = as_int(name, v)?;
                if n < 1 {
                    return Err(bad(name, v, "an integer >= 1"));
                }
                self.max_attempts = n as usize;
            }
            "scheduler.max_placement_results" => {
                let n = as_int(name, v)?;
                if n < 1 {
                    return Err(bad(name, v, "an integer >= 1"));
                }
                self.max_placement_results = n as usize;
            }
            "service_down_time" => f(&mut self.service_down_time)?,
            _ => {
                return Err(EngineError::invalid(format!(
                    "unknown option {name:?}; known options: {}",
                    OPTION_NAMES.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// Applies a `group.option=value` override as given on a command line.
    ///
    /// # Errors
    /// A missing `=`, an unknown option or a bad value.
    pub fn set_override(&mut self, text: &str) -> Result<()> {
        let (k, v) = text
            .split_once('=')
            .ok_or_else(|| EngineError::invalid(format!("--conf {text:?}: expected group.option=value")))?;
        self.set(k.trim(), &Value::String(v.trim().to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_nova() {
        let c = SchedulerConfig::default();
        assert_eq!(c.enabled_filters.len(), 5);
        assert_eq!(c.io_ops_weight_multiplier, -1.0);
        assert_eq!(c.build_failure_weight_multiplier, 1e6);
        assert_eq!(c.max_io_ops_per_host, 8);
    }

    #[test]
    fn overrides_parse_like_nova_conf() {
        let mut c = SchedulerConfig::default();
        c.set_override("filter_scheduler.ram_weight_multiplier=-1.0").unwrap();
        assert_eq!(c.ram_weight_multiplier, -1.0);
        c.set_override("metrics.weight_setting=cpu.percent=-1.0, cpu.frequency=0.5").unwrap();
        assert_eq!(c.metrics_weight_setting, vec![("cpu.percent".into(), -1.0), ("cpu.frequency".into(), 0.5)]);
        c.set_override("filter_scheduler.isolated_hosts=h1,h2").unwrap();
        assert_eq!(c.isolated_hosts, vec!["h1", "h2"]);
    }

    #[test]
    fn bad_options_are_named() {
        let mut c = SchedulerConfig::default();
        let e = c.set_override("filter_scheduler.bogus=1").unwrap_err().to_string();
        assert!(e.contains("filter_scheduler.bogus") && e.contains("known options"), "{e}");
        let e = c.set_override("filter_scheduler.host_subset_size=zero").unwrap_err().to_string();
        assert!(e.contains("host_subset_size"), "{e}");
        assert!(c.set_override("no-equals-sign").is_err());
    }
}
