//! `IoOpsFilter` and `AggregateIoOpsFilter`: hosts with too many concurrent
//! I/O-heavy operations (builds, resizes, snapshots ...) are skipped.

use super::{FilterError, HostFilter, Kernel, RequestContext, aggset_min_values, and_words};

/// Passes hosts with `num_io_ops < [filter_scheduler] max_io_ops_per_host`.
#[derive(Debug, Clone, Copy)]
pub struct IoOpsFilter;

/// Like [`IoOpsFilter`], with the threshold overridden per host by the
/// minimum `max_io_ops_per_host` of its aggregates' metadata.
#[derive(Debug, Clone, Copy)]
pub struct AggregateIoOpsFilter;

/// Kernel shared by both: `num_io_ops[i] < threshold(i)`.
fn kernel<'a>(ctx: &RequestContext<'a>, per_aggset: Option<Vec<i64>>) -> Kernel<'a> {
    let fleet = ctx.fleet;
    let max = ctx.conf.max_io_ops_per_host;
    Box::new(move |batch, mask| {
        let io = &fleet.usage().num_io_ops[batch.range()];
        match &per_aggset {
            None => and_words(mask, io.len(), |i| (io[i] as i64) < max),
            Some(t) => {
                let agg = &batch.aggset;
                and_words(mask, io.len(), |i| (io[i] as i64) < t[agg[i] as usize])
            }
        }
    })
}

impl HostFilter for IoOpsFilter {
    fn name(&self) -> &'static str {
        "IoOpsFilter"
    }
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Kernel<'a>>, FilterError> {
        Ok(Some(kernel(ctx, None)))
    }
}

impl HostFilter for AggregateIoOpsFilter {
    fn name(&self) -> &'static str {
        "AggregateIoOpsFilter"
    }
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Kernel<'a>>, FilterError> {
        let t = aggset_min_values::<i64>(ctx.fleet, "max_io_ops_per_host", ctx.conf.max_io_ops_per_host);
        Ok(Some(kernel(ctx, Some(t))))
    }
}
