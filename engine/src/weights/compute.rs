//! `BuildFailureWeigher`: hosts with recent build failures sink.
use super::{HostWeigher, Raw, simple};
use crate::filters::{FilterError, RequestContext};

/// Raw value `failed_builds`; multiplier `-1 * build_failure_weight_multiplier`.
#[derive(Debug, Clone, Copy)]
pub struct BuildFailureWeigher;

impl HostWeigher for BuildFailureWeigher {
    fn module(&self) -> &'static str {
        "nova.scheduler.weights.compute"
    }
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Raw<'a>>, FilterError> {
        let values: super::RawFn<'a> =
            Box::new(|batch, row0, out| super::kernels::widen_i32(&batch.failed_builds[row0..row0 + out.len()], out));
        let m = ctx.conf.build_failure_weight_multiplier;
        Ok(simple(ctx, "failed_builds", "build_failure_weight_multiplier", m, None, values).map(|mut r| {
            r.multiplier = r.multiplier.negated();
            r
        }))
    }
}
