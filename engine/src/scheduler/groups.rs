//! Server groups known to the scheduler, evolving as requests add members.

use std::collections::HashMap;

use crate::error::{EngineError, Result};
use crate::request::{ServerGroup, parse_uuid};

/// Server groups known to the scheduler, evolving as requests add members.
#[derive(Clone, Debug, Default)]
pub struct Groups {
    pub(super) groups: HashMap<u128, GroupState>,
}

#[derive(Clone, Debug)]
pub(super) struct GroupState {
    pub(super) policy: String,
    pub(super) max_server_per_host: i64,
    pub(super) members: Vec<u128>,
}

impl Groups {
    /// Registers groups from a request stream.
    ///
    /// # Errors
    /// A bad uuid, policy or rule, naming the group.
    pub fn new(groups: &[ServerGroup]) -> Result<Self> {
        let mut out = Groups::default();
        for g in groups {
            let uuid = parse_uuid(&g.uuid)
                .ok_or_else(|| EngineError::invalid(format!("server group uuid {:?} is not a uuid", g.uuid)))?;
            if !["affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity"].contains(&g.policy.as_str()) {
                return Err(EngineError::invalid(format!("server group {}: unknown policy {:?}", g.uuid, g.policy)));
            }
            let max = match g.rules.get("max_server_per_host") {
                None => 1,
                Some(v) => v
                    .as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                    .filter(|&n| n >= 1)
                    .ok_or_else(|| {
                        EngineError::invalid(format!(
                            "server group {}: max_server_per_host must be a positive integer",
                            g.uuid
                        ))
                    })?,
            };
            let members = g.members.iter().filter_map(|m| parse_uuid(m)).collect();
            out.groups.insert(uuid, GroupState { policy: g.policy.clone(), max_server_per_host: max, members });
        }
        Ok(out)
    }
}
