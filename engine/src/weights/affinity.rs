//! Soft server-group weighers: pack (`soft-affinity`) or spread
//! (`soft-anti-affinity`) a group's members.
use super::{HostWeigher, Multiplier, Raw};
use crate::filters::{FilterError, RequestContext};

/// Raw value: members of a `soft-affinity` group on the host.
#[derive(Debug, Clone, Copy)]
pub struct ServerGroupSoftAffinityWeigher;

/// Raw value: minus the members of a `soft-anti-affinity` group on the host.
#[derive(Debug, Clone, Copy)]
pub struct ServerGroupSoftAntiAffinityWeigher;

fn prepare<'a>(ctx: &RequestContext<'a>, policy: &str, sign: f64, option: &str, default: f64) -> Option<Raw<'a>> {
    let g = ctx.group.filter(|g| g.policy == policy)?;
    let multiplier = Multiplier::resolve(ctx.fleet, option, default);
    if multiplier.is_zero() {
        return None;
    }
    // Sparse: only hosts holding members have a non-zero raw value.
    let counts = g.members_per_host(ctx.fleet);
    let values: super::RawFn<'a> = Box::new(move |batch, row0, out| {
        out.fill(0.0);
        let lo = batch.start + row0;
        let hi = lo + out.len();
        let from = counts.partition_point(|&(h, _)| (h as usize) < lo);
        for &(h, n) in counts[from..].iter().take_while(|&&(h, _)| (h as usize) < hi) {
            out[h as usize - lo] = sign * n as f64;
        }
    });
    Some(Raw { values, minval: None, maxval: None, multiplier, cache_key: None, check: None })
}

impl HostWeigher for ServerGroupSoftAffinityWeigher {
    fn module(&self) -> &'static str {
        "nova.scheduler.weights.affinity"
    }
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Raw<'a>>, FilterError> {
        let m = ctx.conf.soft_affinity_weight_multiplier;
        Ok(prepare(ctx, "soft-affinity", 1.0, "soft_affinity_weight_multiplier", m))
    }
}

impl HostWeigher for ServerGroupSoftAntiAffinityWeigher {
    fn module(&self) -> &'static str {
        "nova.scheduler.weights.affinity"
    }
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Raw<'a>>, FilterError> {
        let m = ctx.conf.soft_anti_affinity_weight_multiplier;
        Ok(prepare(ctx, "soft-anti-affinity", -1.0, "soft_anti_affinity_weight_multiplier", m))
    }
}
