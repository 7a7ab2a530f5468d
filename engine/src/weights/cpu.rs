//! `CPUWeigher`: spread on free (overcommitted) vCPUs.
use super::{HostWeigher, Raw, simple};
use crate::filters::{FilterError, RequestContext};

/// Raw value `vcpus_total * cpu_allocation_ratio - vcpus_used`; `minval = 0`.
#[derive(Debug, Clone, Copy)]
pub struct CPUWeigher;

impl HostWeigher for CPUWeigher {
    fn module(&self) -> &'static str {
        "nova.scheduler.weights.cpu"
    }
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Raw<'a>>, FilterError> {
        let fleet = ctx.fleet;
        let Some(vcpu) = fleet.rc_index("VCPU") else { return Ok(None) };
        // `vcpus_total * cpu_allocation_ratio` once per distinct inventory.
        let capacity: Vec<f64> = fleet.inventory_profiles[vcpu]
            .iter()
            .map(|p| p.map_or(0.0, |p| p.total as f64 * p.allocation_ratio))
            .collect();
        let values: super::RawFn<'a> = Box::new(move |batch, row0, out| {
            let n = out.len();
            let used = &fleet.usage().vcpus_used[batch.start + row0..batch.start + row0 + n];
            super::kernels::table_minus(&capacity, &batch.rc[vcpu].code[row0..row0 + n], used, out);
        });
        let m = ctx.conf.cpu_weight_multiplier;
        Ok(simple(ctx, "cpu_free", "cpu_weight_multiplier", m, Some(0.0), values))
    }
}
