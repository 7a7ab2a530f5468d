//! `NumInstancesWeigher`: weigh by instance count (off by default).
use super::{HostWeigher, Raw, simple, usage_column};
use crate::filters::{FilterError, RequestContext};

/// Raw value `num_instances`; default multiplier 0.0 (no effect).
#[derive(Debug, Clone, Copy)]
pub struct NumInstancesWeigher;

impl HostWeigher for NumInstancesWeigher {
    fn module(&self) -> &'static str {
        "nova.scheduler.weights.num_instances"
    }
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Raw<'a>>, FilterError> {
        let m = ctx.conf.num_instances_weight_multiplier;
        Ok(simple(
            ctx,
            "num_instances",
            "num_instances_weight_multiplier",
            m,
            None,
            usage_column(ctx.fleet, |f| &f.usage().num_instances),
        ))
    }
}
