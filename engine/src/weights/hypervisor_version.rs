//! `HypervisorVersionWeigher`: prefer newer hypervisors.
use super::{HostWeigher, Raw, simple};
use crate::filters::{FilterError, RequestContext};

/// Raw value `hypervisor_version`.
#[derive(Debug, Clone, Copy)]
pub struct HypervisorVersionWeigher;

impl HostWeigher for HypervisorVersionWeigher {
    fn module(&self) -> &'static str {
        "nova.scheduler.weights.hypervisor_version"
    }
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Raw<'a>>, FilterError> {
        let values: super::RawFn<'a> = Box::new(|batch, row0, out| {
            super::kernels::widen_i64(&batch.hypervisor_version[row0..row0 + out.len()], out)
        });
        let m = ctx.conf.hypervisor_version_weight_multiplier;
        Ok(simple(ctx, "hypervisor_version", "hypervisor_version_weight_multiplier", m, None, values))
    }
}
