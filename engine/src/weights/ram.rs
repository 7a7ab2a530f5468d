//! `RAMWeigher`: spread (or, with a negative multiplier, pack) on free RAM.
use super::{HostWeigher, Raw, simple, usage_column};
use crate::filters::{FilterError, RequestContext};

/// Raw value `free_ram_mb` (physical, ignores the allocation ratio); `minval = 0`.
#[derive(Debug, Clone, Copy)]
pub struct RAMWeigher;

impl HostWeigher for RAMWeigher {
    fn module(&self) -> &'static str {
        "nova.scheduler.weights.ram"
    }
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Raw<'a>>, FilterError> {
        let m = ctx.conf.ram_weight_multiplier;
        Ok(simple(
            ctx,
            "free_ram_mb",
            "ram_weight_multiplier",
            m,
            Some(0.0),
            usage_column(ctx.fleet, |f| &f.usage().free_ram_mb),
        ))
    }
}
