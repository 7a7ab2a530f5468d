//! Server groups known to the scheduler, evolving as requests add members.

use std::collections::HashMap;

use crate::error::{EngineError, Result};
use crate::filters::GroupView;
use crate::fleet::Fleet;
use crate::request::{BootRequest, ServerGroup, parse_uuid};

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

impl Groups {
    /// Takes `uuid` out of its group's members (an instance about to be
    /// moved: the scheduler adds it back, as it adds the instances a boot
    /// places).
    pub fn forget(&mut self, uuid: u128) {
        for g in self.groups.values_mut() {
            g.members.retain(|&m| m != uuid);
        }
    }

    /// What [`Groups::join`] would return, without changing the groups.
    ///
    /// # Errors
    /// As [`Groups::join`].
    pub fn view(
        &self,
        fleet: &Fleet,
        req: &BootRequest,
        uuids: &[u128],
    ) -> std::result::Result<Option<GroupView>, String> {
        let Some(g) = req.hint_str("group") else { return Ok(None) };
        let Some(state) = parse_uuid(&g).and_then(|u| self.groups.get(&u)) else {
            return Err(format!("scheduler hint group={g} names no known server group"));
        };
        let mut members = state.members.clone();
        members.extend(uuids.iter().copied());
        let mut hosts: Vec<u32> = members.iter().filter_map(|m| fleet.instances.get(m).copied()).collect();
        hosts.sort_unstable();
        hosts.dedup();
        Ok(Some(GroupView {
            policy: state.policy.clone(),
            members,
            hosts,
            max_server_per_host: state.max_server_per_host,
        }))
    }

    /// The server group of `req` (hint `group`) as the filters see it,
    /// with `uuids`, the instances being placed, added to its members
    /// first, as nova-api adds them. `Ok(None)`: no group asked for.
    ///
    /// # Errors
    /// A `group` hint that names no known group (the message says so).
    pub(crate) fn join(
        &mut self,
        fleet: &Fleet,
        req: &BootRequest,
        uuids: &[u128],
    ) -> std::result::Result<Option<GroupView>, String> {
        let view = self.view(fleet, req, uuids)?;
        if let Some(state) = req.hint_str("group").and_then(|g| parse_uuid(&g)).and_then(|u| self.groups.get_mut(&u)) {
            state.members.extend(uuids.iter().copied());
        }
        Ok(view)
    }
}
