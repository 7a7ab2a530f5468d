//! `CPUWeigher`: spread on free (overcommitted) vCPUs.
use super::{HostWeigher, Raw, simple};
use crate::filters::{FilterError, RequestContext};

/// Raw value `vcpus_total * cpu_allocation_ratio - vcpus_used`; `minval = 0`.
#[derive(Debug, Clone, Copy)]
pub struct CPUWeigher;

impl HostWeigher for CPUWeigher {
    fn name(&self) -> &'static str {
        "CPUWeigher"
    }
    fn module(&self) -> &'static str {
        "nova.scheduler.weights.cpu"
    }
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Raw<'a>>, FilterError> {
        let fleet = ctx.fleet;
        let Some(vcpu) = fleet.rc_index("VCPU") else { return Ok(None) };
        let values: super::RawFn<'a> = Box::new(move |batch, row0, out| {
            let c = &batch.rc[vcpu];
            let used = &fleet.usage.vcpus_used[batch.start + row0..];
            for (k, o) in out.iter_mut().enumerate() {
                let r = row0 + k;
                *o = c.total[r] as f64 * c.allocation_ratio[r] - used[k] as f64;
            }
        });
        let m = ctx.conf.cpu_weight_multiplier;
        Ok(simple(ctx, "cpu_weight_multiplier", m, Some(0.0), values))
    }
}
