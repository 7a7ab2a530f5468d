//! `IoOpsFilter` and `AggregateIoOpsFilter`: hosts with too many concurrent
//! I/O-heavy operations (builds, resizes, snapshots ...) are skipped.

use super::{FilterError, HostFilter, Kernel, RequestContext, counter_below_kernel};

/// Passes hosts with `num_io_ops < [filter_scheduler] max_io_ops_per_host`.
#[derive(Debug, Clone, Copy)]
pub struct IoOpsFilter;

/// Like [`IoOpsFilter`], with the threshold overridden per host by the
/// minimum `max_io_ops_per_host` of its aggregates' metadata.
#[derive(Debug, Clone, Copy)]
pub struct AggregateIoOpsFilter;

impl HostFilter for IoOpsFilter {
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Kernel<'a>>, FilterError> {
        Ok(Some(counter_below_kernel(ctx, |f| &f.usage().num_io_ops, ctx.conf.max_io_ops_per_host, None)))
    }
}

impl HostFilter for AggregateIoOpsFilter {
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Kernel<'a>>, FilterError> {
        let max = ctx.conf.max_io_ops_per_host;
        Ok(Some(counter_below_kernel(ctx, |f| &f.usage().num_io_ops, max, Some("max_io_ops_per_host"))))
    }
}
