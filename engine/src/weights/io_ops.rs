//! `IoOpsWeigher`: prefer hosts with fewer concurrent I/O operations.
use super::{HostWeigher, Raw, simple, usage_column};
use crate::filters::{FilterError, RequestContext};

/// Raw value `num_io_ops`; `minval = 0`; default multiplier -1.0.
#[derive(Debug, Clone, Copy)]
pub struct IoOpsWeigher;

impl HostWeigher for IoOpsWeigher {
    fn module(&self) -> &'static str {
        "nova.scheduler.weights.io_ops"
    }
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Raw<'a>>, FilterError> {
        let m = ctx.conf.io_ops_weight_multiplier;
        Ok(simple(
            ctx,
            "num_io_ops",
            "io_ops_weight_multiplier",
            m,
            Some(0.0),
            usage_column(ctx.fleet, |f| &f.usage().num_io_ops),
        ))
    }
}
