//! `DiskWeigher`: spread on free local disk.
use super::{HostWeigher, Raw, simple, usage_column};
use crate::filters::{FilterError, RequestContext};

/// Raw value `free_disk_mb`; `minval = 0`.
#[derive(Debug, Clone, Copy)]
pub struct DiskWeigher;

impl HostWeigher for DiskWeigher {
    fn module(&self) -> &'static str {
        "nova.scheduler.weights.disk"
    }
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Raw<'a>>, FilterError> {
        let m = ctx.conf.disk_weight_multiplier;
        Ok(simple(
            ctx,
            "free_disk_mb",
            "disk_weight_multiplier",
            m,
            Some(0.0),
            usage_column(ctx.fleet, |f| &f.usage().free_disk_mb),
        ))
    }
}
