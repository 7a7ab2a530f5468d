//! A boot request as the scheduler sees it: flavor, image, hints, project,
//! availability zone, instance count (Nova's `RequestSpec`), in the
//! `nova-sched-requests/v1` JSON shape so files and the API share it.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// A flavor (`objects.Flavor`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Flavor {
    /// Name (AggregateTypeAffinityFilter compares it).
    #[serde(default)]
    pub name: String,
    /// Flavor id.
    #[serde(default)]
    pub flavorid: Option<String>,
    /// Numeric id (informational).
    #[serde(default)]
    pub id: Option<i64>,
    /// vCPUs.
    pub vcpus: u32,
    /// RAM, MiB.
    pub memory_mb: u32,
    /// Root disk, GiB.
    #[serde(default)]
    pub root_gb: u32,
    /// Ephemeral disk, GiB.
    #[serde(default)]
    pub ephemeral_gb: u32,
    /// Swap, MiB.
    #[serde(default)]
    pub swap: u32,
    /// Extra specs, stringified as Nova stores them.
    #[serde(default, deserialize_with = "string_map")]
    pub extra_specs: BTreeMap<String, String>,
}

impl Flavor {
    /// What a server of this flavor takes from a host's `HostState`:
    /// `(memory_mb, disk_mb, vcpus)` (disk is root plus ephemeral).
    pub fn host_usage(&self) -> (i32, i32, i32) {
        (self.memory_mb as i32, ((self.root_gb + self.ephemeral_gb) * 1024) as i32, self.vcpus as i32)
    }
}

/// An image as the scheduler sees it (`objects.ImageMeta`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Image {
    /// Image id.
    #[serde(default)]
    pub id: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Properties, stringified.
    #[serde(default, deserialize_with = "string_map")]
    pub properties: BTreeMap<String, String>,
}

/// A server group.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ServerGroup {
    /// Group uuid.
    pub uuid: String,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// `affinity`, `anti-affinity`, `soft-affinity` or `soft-anti-affinity`.
    pub policy: String,
    /// Rules (`max_server_per_host`).
    #[serde(default)]
    pub rules: BTreeMap<String, Value>,
    /// Instance uuids already in the group.
    #[serde(default)]
    pub members: Vec<String>,
    /// Owner project.
    #[serde(default)]
    pub project_id: Option<String>,
    /// Owner user.
    #[serde(default)]
    pub user_id: Option<String>,
}

/// One boot request of `num_instances` servers.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct BootRequest {
    /// Request id, echoed in the decision.
    #[serde(default)]
    pub id: Option<String>,
    /// Flavor.
    pub flavor: Flavor,
    /// Image.
    #[serde(default)]
    pub image: Option<Image>,
    /// Project.
    #[serde(default)]
    pub project_id: Option<String>,
    /// User.
    #[serde(default)]
    pub user_id: Option<String>,
    /// Requested availability zone.
    #[serde(default)]
    pub availability_zone: Option<String>,
    /// Scheduler hints (`group`, `same_host`, `different_host`, `query`,
    /// `build_near_host_ip`, `cidr` ...).
    #[serde(default)]
    pub scheduler_hints: BTreeMap<String, Value>,
    /// Multi-create count.
    #[serde(default = "one")]
    pub num_instances: u32,
    /// Uuids of the instances (default: uuid5 of `req:<index>:<k>`).
    #[serde(default)]
    pub instance_uuids: Vec<String>,
    /// Boot from volume: Placement's DISK_GB leaves out the root disk.
    #[serde(default)]
    pub is_bfv: bool,
}

fn one() -> u32 {
    1
}

/// Nova stores extra specs and image properties as strings; numbers and
/// booleans in a file are turned into the text Python's `str()` gives.
fn string_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let m: Option<BTreeMap<String, Value>> = Option::deserialize(d)?;
    Ok(m.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            let s = match v {
                Value::String(s) => s,
                Value::Bool(true) => "True".into(),
                Value::Bool(false) => "False".into(),
                other => other.to_string(),
            };
            (k, s)
        })
        .collect())
}

impl BootRequest {
    /// A hint as a list of strings (`same_host`, `different_host` accept one
    /// string or a list).
    pub fn hint_list(&self, key: &str) -> Vec<String> {
        match self.scheduler_hints.get(key) {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Null => None,
                    other => Some(other.to_string()),
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// A hint as one string (the first, when a list is given).
    pub fn hint_str(&self, key: &str) -> Option<String> {
        self.hint_list(key).into_iter().next().filter(|s| !s.is_empty())
    }

    /// The image properties, empty without an image.
    pub fn image_properties(&self) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.image.as_ref().map_or(&EMPTY, |i| &i.properties)
    }

    /// The project, defaulting as the harness does.
    pub fn project(&self) -> &str {
        self.project_id.as_deref().unwrap_or("project-00")
    }
}

/// Parses a uuid given as text into its 128-bit value.
pub fn parse_uuid(s: &str) -> Option<u128> {
    uuid::Uuid::parse_str(s).ok().map(|u| u.as_u128())
}

/// Nova's default instance uuid for instance `k` of request `index` in the
/// harness: uuid5(NAMESPACE_URL, `req:<index>:<k>`).
pub fn default_instance_uuid(index: usize, k: usize) -> u128 {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, format!("req:{index}:{k}").as_bytes()).as_u128()
}

/// Formats a 128-bit uuid in the canonical hyphenated form.
pub fn format_uuid(u: u128) -> String {
    uuid::Uuid::from_u128(u).hyphenated().to_string()
}
