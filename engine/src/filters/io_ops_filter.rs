//! `IoOpsFilter` and `AggregateIoOpsFilter`: hosts with too many concurrent
//! I/O-heavy operations (builds, resizes, snapshots ...) are skipped.

use super::{CounterBelow, FilterError, HostFilter, Kernel, RequestContext, counter_below_kernel};

/// Passes hosts with `num_io_ops < [filter_scheduler] max_io_ops_per_host`.
#[derive(Debug, Clone, Copy)]
pub struct IoOpsFilter;

/// Like [`IoOpsFilter`], with the threshold overridden per host by the
/// minimum `max_io_ops_per_host` of its aggregates' metadata.
#[derive(Debug, Clone, Copy)]
pub struct AggregateIoOpsFilter;

impl HostFilter for IoOpsFilter {
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Kernel<'a>>, FilterError> {
        Ok(self.counter_below(ctx).map(|c| counter_below_kernel(ctx, c)))
    }

    fn counter_below(&self, ctx: &RequestContext<'_>) -> Option<CounterBelow> {
        Some(CounterBelow::new(ctx.fleet, |f| &f.usage().num_io_ops, ctx.conf.max_io_ops_per_host, None))
    }
}

impl HostFilter for AggregateIoOpsFilter {
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Kernel<'a>>, FilterError> {
        Ok(self.counter_below(ctx).map(|c| counter_below_kernel(ctx, c)))
    }

    fn counter_below(&self, ctx: &RequestContext<'_>) -> Option<CounterBelow> {
        Some(CounterBelow::new(
            ctx.fleet,
            |f| &f.usage().num_io_ops,
            ctx.conf.max_io_ops_per_host,
            Some("max_io_ops_per_host"),
        ))
    }
}
