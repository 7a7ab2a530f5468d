//! Nova's provider config files (`[compute] provider_config_location`,
//! schema 1.0, nova/compute/provider_config.py): YAML files that add
//! inventory and traits to the compute node providers an agent reports,
//! for resources the hypervisor does not know about (a GPU, an FPGA, a
//! licence pool).
//!
//! ```yaml
//! meta:
//!   schema_version: '1.0'
//! providers:
//!   - identification:
//!       uuid: $COMPUTE_NODE     # every compute node of this agent; or name: compute-1
//!     inventories:
//!       additional:
//!         - CUSTOM_GPU: {total: 1}
//!     traits:
//!       additional: [CUSTOM_GPU_A100]
//! ```
//!
//! As in Nova, every `*.yaml` file of the directory is read at start-up and
//! a bad file stops the agent; an entry by `name` wins over the
//! `$COMPUTE_NODE` one for that node; inventory of a class the hypervisor
//! already reports cannot be overridden.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use quiver_engine::inventory::Inventory;

use crate::protocol::{HostReport, InventoryReport};

/// Nova's default `[compute] provider_config_location`.
pub const DEFAULT_LOCATION: &str = "/etc/nova/provider_config/";

/// The identification that matches every compute node of the agent.
const COMPUTE_NODE: &str = "$COMPUTE_NODE";

/// A provider config that cannot be used: the file and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("provider config {file}: {why}")]
pub struct ProviderConfigError {
    /// The file.
    pub file: PathBuf,
    /// What is wrong with it.
    pub why: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    meta: Meta,
    #[serde(default)]
    providers: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Meta {
    schema_version: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    identification: Identification,
    #[serde(default)]
    inventories: Option<Additional<BTreeMap<String, InventorySpec>>>,
    #[serde(default)]
    traits: Option<Additional<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Identification {
    uuid: Option<String>,
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Additional<T> {
    #[serde(default)]
    additional: Vec<T>,
}

/// One inventory record; Placement's defaults where a field is left out.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InventorySpec {
    total: i64,
    #[serde(default)]
    reserved: i64,
    #[serde(default = "one")]
    min_unit: i64,
    max_unit: Option<i64>,
    #[serde(default = "one")]
    step_size: i64,
    #[serde(default = "ratio")]
    allocation_ratio: f64,
}

fn one() -> i64 {
    1
}

fn ratio() -> f64 {
    1.0
}

/// Which compute nodes an entry applies to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    /// Every compute node of the agent (`uuid: $COMPUTE_NODE`).
    AllComputeNodes,
    /// The compute node whose provider (node) name this is.
    Name(String),
}

/// What the entry adds.
#[derive(Clone, Debug, Default, PartialEq)]
struct Addition {
    inventories: Vec<InventoryReport>,
    traits: Vec<String>,
}

/// Every provider config of a directory, checked.
#[derive(Clone, Debug, Default)]
pub struct ProviderConfig {
    entries: BTreeMap<Target, (PathBuf, Addition)>,
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

impl ProviderConfig {
    /// Reads every `*.yaml` file of `dir` (none when it does not exist).
    ///
    /// # Errors
    /// A file that cannot be read or parsed, an unsupported schema version,
    /// an identification by neither or both of `uuid` and `name` (or by a
    /// literal uuid: use `$COMPUTE_NODE` or `name`), a malformed class or
    /// trait name, a bad inventory, or two entries for the same provider.
    pub fn load_dir(dir: &Path) -> Result<ProviderConfig, ProviderConfigError> {
        let mut out = ProviderConfig::default();
        let Ok(read) = std::fs::read_dir(dir) else { return Ok(out) };
        let mut files: Vec<PathBuf> = read
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        files.sort();
        for file in files {
            let err = |why: String| ProviderConfigError { file: file.clone(), why };
            let text = std::fs::read_to_string(&file).map_err(|e| err(e.to_string()))?;
            out.add(&file, &text).map_err(err)?;
        }
        Ok(out)
    }

    /// Adds the entries of one file's text.
    fn add(&mut self, file: &Path, text: &str) -> Result<(), String> {
        let f: File = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
        if f.meta.schema_version.split('.').next() != Some("1") {
            return Err(format!("schema_version {:?} is not supported (1.x is)", f.meta.schema_version));
        }
        for (i, e) in f.providers.into_iter().enumerate() {
            let at = |why: String| format!("providers[{i}]: {why}");
            let target = match (e.identification.uuid, e.identification.name) {
                (Some(u), None) if u == COMPUTE_NODE => Target::AllComputeNodes,
                (Some(u), None) => {
                    return Err(at(format!(
                        "identification uuid {u:?}: only {COMPUTE_NODE} is supported; identify other nodes by name"
                    )));
                }
                (None, Some(n)) if !n.is_empty() => Target::Name(n),
                _ => return Err(at("identification needs exactly one of uuid and name".into())),
            };
            let mut add = Addition::default();
            for one in e.inventories.map(|i| i.additional).unwrap_or_default() {
                for (rc, s) in one {
                    if !is_name(&rc) {
                        return Err(at(format!("inventory resource class {rc:?} is not a valid name")));
                    }
                    let max_unit = s.max_unit.unwrap_or(s.total);
                    if s.total < 1
                        || s.reserved < 0
                        || s.min_unit < 1
                        || s.step_size < 1
                        || max_unit < s.min_unit
                        || !(s.allocation_ratio.is_finite() && s.allocation_ratio > 0.0)
                    {
                        return Err(at(format!(
                            "inventory {rc}: needs total >= 1, reserved >= 0, 1 <= min_unit <= max_unit, step_size >= 1, allocation_ratio > 0"
                        )));
                    }
                    add.inventories.push(InventoryReport {
                        resource_class: rc,
                        inventory: Inventory {
                            total: s.total,
                            reserved: s.reserved,
                            min_unit: s.min_unit,
                            max_unit,
                            step_size: s.step_size,
                            allocation_ratio: s.allocation_ratio,
                        },
                    });
                }
            }
            for t in e.traits.map(|t| t.additional).unwrap_or_default() {
                if !is_name(&t) {
                    return Err(at(format!("trait {t:?} is not a valid name")));
                }
                add.traits.push(t);
            }
            if let Some((other, _)) = self.entries.get(&target) {
                return Err(at(format!("{target:?} is already configured in {}", other.display())));
            }
            self.entries.insert(target, (file.to_owned(), add));
        }
        Ok(())
    }

    /// True when no file configured anything.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds the configured inventory and traits to `report` (the entry by
    /// the node's name, else the `$COMPUTE_NODE` one).
    ///
    /// # Errors
    /// The entry would override inventory the hypervisor reports.
    pub fn apply(&self, report: &mut HostReport) -> Result<(), ProviderConfigError> {
        let entry = self
            .entries
            .get(&Target::Name(report.info.nodename.clone()))
            .or_else(|| self.entries.get(&Target::AllComputeNodes));
        let Some((file, add)) = entry else { return Ok(()) };
        for inv in &add.inventories {
            if report.inventory.iter().any(|i| i.resource_class == inv.resource_class) {
                return Err(ProviderConfigError {
                    file: file.clone(),
                    why: format!(
                        "resource class {} of node {} is reported by the hypervisor and cannot be overridden",
                        inv.resource_class, report.info.nodename
                    ),
                });
            }
            report.inventory.push(inv.clone());
        }
        for t in &add.traits {
            if !report.traits.contains(t) {
                report.traits.push(t.clone());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::HostInfo;

    fn report(node: &str) -> HostReport {
        HostReport {
            host: node.into(),
            agent_url: None,
            info: HostInfo {
                nodename: node.into(),
                vcpus: 8,
                memory_mb: 1024,
                local_gb: 10,
                hypervisor_type: "fake".into(),
                hypervisor_version: 1,
                cpu_info: "{}".into(),
                cpu_features: vec![],
            },
            inventory: vec![InventoryReport {
                resource_class: "VCPU".into(),
                inventory: Inventory { total: 8, max_unit: 8, allocation_ratio: 4.0, ..Default::default() },
            }],
            traits: vec!["COMPUTE_NODE".into()],
            guests: vec![],
        }
    }

    const ALL: &str = "meta: {schema_version: '1.0'}
providers:
  - identification: {uuid: $COMPUTE_NODE}
    inventories:
      additional:
        - CUSTOM_GPU: {total: 1}
    traits:
      additional: [CUSTOM_GPU_A100]
";

    #[test]
    fn compute_node_entry_adds_inventory_and_traits_and_a_named_entry_wins() {
        let mut c = ProviderConfig::default();
        c.add(Path::new("all.yaml"), ALL).unwrap();
        let named = "meta: {schema_version: '1.0'}
providers:
  - identification: {name: compute-2}
    inventories:
      additional:
        - CUSTOM_FPGA: {total: 2, reserved: 1, max_unit: 1, allocation_ratio: 1.0}
";
        c.add(Path::new("named.yaml"), named).unwrap();
        let mut r = report("compute-1");
        c.apply(&mut r).unwrap();
        let gpu = &r.inventory.iter().find(|i| i.resource_class == "CUSTOM_GPU").expect("gpu").inventory;
        assert_eq!((gpu.total, gpu.reserved, gpu.min_unit, gpu.max_unit, gpu.step_size), (1, 0, 1, 1, 1));
        assert!(r.traits.contains(&"CUSTOM_GPU_A100".to_string()));
        let mut r = report("compute-2");
        c.apply(&mut r).unwrap();
        let classes: Vec<&str> = r.inventory.iter().map(|i| i.resource_class.as_str()).collect();
        assert_eq!(classes, vec!["VCPU", "CUSTOM_FPGA"]);
        assert_eq!(r.inventory[1].inventory.max_unit, 1);
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let cases = [
            ("meta: {schema_version: '2.0'}\nproviders: []\n", "schema_version"),
            ("meta: {schema_version: '1.0'}\nproviders:\n  - identification: {}\n", "exactly one"),
            ("meta: {schema_version: '1.0'}\nproviders:\n  - identification: {uuid: 1a2b}\n", "only $COMPUTE_NODE"),
            (
                "meta: {schema_version: '1.0'}\nproviders:\n  - identification: {name: n}\n    inventories: {additional: [{custom_gpu: {total: 1}}]}\n",
                "not a valid name",
            ),
            (
                "meta: {schema_version: '1.0'}\nproviders:\n  - identification: {name: n}\n    inventories: {additional: [{CUSTOM_GPU: {total: 0}}]}\n",
                "total >= 1",
            ),
            ("meta: {schema_version: '1.0'}\nproviders:\n  - identification: {name: n}\n    colour: red\n", "colour"),
        ];
        for (text, why) in cases {
            let err = ProviderConfig::default().add(Path::new("f.yaml"), text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
        let mut c = ProviderConfig::default();
        c.add(Path::new("a.yaml"), ALL).unwrap();
        assert!(c.add(Path::new("b.yaml"), ALL).unwrap_err().contains("already configured in a.yaml"));
    }

    #[test]
    fn hypervisor_inventory_cannot_be_overridden_and_a_directory_loads() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("vcpu.yaml"), ALL.replace("CUSTOM_GPU: {total: 1}", "VCPU: {total: 64}"))
            .unwrap();
        std::fs::write(dir.path().join("ignored.txt"), "not yaml").unwrap();
        let c = ProviderConfig::load_dir(dir.path()).unwrap();
        let err = c.apply(&mut report("compute-1")).unwrap_err().to_string();
        assert!(err.contains("vcpu.yaml") && err.contains("cannot be overridden"), "{err}");
        assert!(ProviderConfig::load_dir(&dir.path().join("missing")).unwrap().is_empty());
    }
}
