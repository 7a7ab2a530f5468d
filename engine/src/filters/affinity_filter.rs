//! Nova's `affinity_filter` module: server-group (anti-)affinity,
//! same/different host hints, and `SimpleCIDRAffinityFilter`.
//!
//! Hint uuids and group members are resolved to hosts once per request
//! through the fleet's instance map, so the per-host work is a sparse set.

use std::collections::HashSet;
use std::net::IpAddr;

use super::{FilterError, HostFilter, HostSet, Kernel, RequestContext, host_set_kernel, per_host_kernel};
use crate::request::parse_uuid;

/// The kernel of a host-set filter's answer.
fn set_kernel<'a>(set: Option<Option<HostSet>>) -> Option<Kernel<'a>> {
    set.flatten().map(|(hosts, keep)| host_set_kernel(hosts, keep))
}

/// Hosts running any of the hinted instances.
fn hosts_of(ctx: &RequestContext<'_>, key: &str) -> Option<HashSet<u32>> {
    let uuids = ctx.request.hint_list(key);
    if uuids.is_empty() {
        return None;
    }
    Some(uuids.iter().filter_map(|u| parse_uuid(u)).filter_map(|u| ctx.fleet.instances.get(&u).copied()).collect())
}

/// `same_host` hint: only hosts running one of the named instances.
#[derive(Debug, Clone, Copy)]
pub struct SameHostFilter;

impl HostFilter for SameHostFilter {
    fn run_filter_once_per_request(&self) -> bool {
        true
    }
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Kernel<'a>>, FilterError> {
        Ok(set_kernel(self.host_set(ctx)))
    }
    fn host_set(&self, ctx: &RequestContext<'_>) -> Option<Option<HostSet>> {
        Some(hosts_of(ctx, "same_host").map(|h| (h, true)))
    }
}

/// `different_host` hint: no host running one of the named instances.
#[derive(Debug, Clone, Copy)]
pub struct DifferentHostFilter;

impl HostFilter for DifferentHostFilter {
    fn run_filter_once_per_request(&self) -> bool {
        true
    }
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Kernel<'a>>, FilterError> {
        Ok(set_kernel(self.host_set(ctx)))
    }
    fn host_set(&self, ctx: &RequestContext<'_>) -> Option<Option<HostSet>> {
        Some(hosts_of(ctx, "different_host").map(|h| (h, false)))
    }
}

/// `anti-affinity` groups: a host may hold fewer than
/// `max_server_per_host` (default 1) members of the group.
///
/// # Nova compatibility
/// A host already running the instance being placed passes (move
/// operations). Members include the instances being booted.
#[derive(Debug, Clone, Copy)]
pub struct ServerGroupAntiAffinityFilter;

impl HostFilter for ServerGroupAntiAffinityFilter {
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Kernel<'a>>, FilterError> {
        Ok(set_kernel(self.host_set(ctx)))
    }

    fn host_set(&self, ctx: &RequestContext<'_>) -> Option<Option<HostSet>> {
        let Some(g) = ctx.group.filter(|g| g.policy == "anti-affinity") else {
            return Some(None);
        };
        let own = ctx.fleet.instances.get(&ctx.instance_uuid).copied();
        let full: HashSet<u32> = g
            .members_per_host(ctx.fleet)
            .into_iter()
            .filter(|&(h, n)| n >= g.max_server_per_host && Some(h) != own)
            .map(|(h, _)| h)
            .collect();
        Some((!full.is_empty()).then_some((full, false)))
    }

    fn reason(&self, ctx: &RequestContext<'_>, host: usize) -> Option<String> {
        let g = ctx.group?;
        let (_, n) = g.members_per_host(ctx.fleet).into_iter().find(|&(h, _)| h as usize == host)?;
        let group = ctx.request.hint_str("group").unwrap_or_default();
        Some(format!(
            "already runs {n} member{} of anti-affinity group {group} (max_server_per_host {})",
            if n == 1 { "" } else { "s" },
            g.max_server_per_host
        ))
    }
}

/// `affinity` groups: once a member is placed, only the group's hosts.
#[derive(Debug, Clone, Copy)]
pub struct ServerGroupAffinityFilter;

impl HostFilter for ServerGroupAffinityFilter {
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Kernel<'a>>, FilterError> {
        Ok(set_kernel(self.host_set(ctx)))
    }

    fn host_set(&self, ctx: &RequestContext<'_>) -> Option<Option<HostSet>> {
        let Some(g) = ctx.group.filter(|g| g.policy == "affinity") else {
            return Some(None);
        };
        Some((!g.hosts.is_empty()).then(|| (g.hosts.iter().copied().collect(), true)))
    }

    fn reason(&self, ctx: &RequestContext<'_>, _host: usize) -> Option<String> {
        let g = ctx.group?;
        let on: Vec<&str> = g.hosts.iter().map(|&h| ctx.fleet.name(h as usize)).collect();
        Some(format!("affinity group members run on {} only", on.join(", ")))
    }
}

/// `build_near_host_ip` + `cidr` (default `/24`) hints: only hosts whose
/// management IP is in that network.
#[derive(Debug, Clone, Copy)]
pub struct SimpleCIDRAffinityFilter;

fn in_network(ip: IpAddr, net: IpAddr, prefix: u32) -> bool {
    let (a, b, bits) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) as u128, u32::from(b) as u128, 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        _ => return false,
    };
    if prefix > bits {
        return false;
    }
    let shift = bits - prefix;
    if shift >= 128 { true } else { (a >> shift) == (b >> shift) }
}

impl HostFilter for SimpleCIDRAffinityFilter {
    fn run_filter_once_per_request(&self) -> bool {
        true
    }
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Kernel<'a>>, FilterError> {
        let Some(addr) = ctx.request.hint_str("build_near_host_ip") else {
            return Ok(None);
        };
        let cidr = ctx.request.hint_str("cidr").unwrap_or_else(|| "/24".into());
        let net: IpAddr = addr
            .parse()
            .map_err(|_| FilterError::NovaError(format!("AddrFormatError: invalid IPNetwork {addr}{cidr}")))?;
        let prefix: u32 = cidr
            .trim_start_matches('/')
            .parse()
            .map_err(|_| FilterError::NovaError(format!("AddrFormatError: invalid IPNetwork {addr}{cidr}")))?;
        let fleet = ctx.fleet;
        Ok(Some(per_host_kernel(move |i| fleet.host_record_ip(i).is_some_and(|ip| in_network(ip, net, prefix)))))
    }
}

#[cfg(test)]
mod tests {
    use super::in_network;

    #[test]
    fn cidr_membership() {
        let ip = |s: &str| s.parse().unwrap();
        assert!(in_network(ip("10.0.1.7"), ip("10.0.1.0"), 24));
        assert!(!in_network(ip("10.0.2.7"), ip("10.0.1.0"), 24));
        assert!(in_network(ip("10.9.9.9"), ip("10.0.0.0"), 8));
        assert!(in_network(ip("1.2.3.4"), ip("9.9.9.9"), 0));
    }
}
