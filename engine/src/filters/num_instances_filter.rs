//! `NumInstancesFilter` and `AggregateNumInstancesFilter`: hosts already
//! running too many instances are skipped.

use super::{FilterError, HostFilter, Kernel, RequestContext, aggset_min_values, and_words};

/// Passes hosts with `num_instances < [filter_scheduler] max_instances_per_host`.
#[derive(Debug, Clone, Copy)]
pub struct NumInstancesFilter;

/// Like [`NumInstancesFilter`], with the threshold overridden per host by the
/// minimum `max_instances_per_host` of its aggregates' metadata.
#[derive(Debug, Clone, Copy)]
pub struct AggregateNumInstancesFilter;

fn kernel<'a>(ctx: &RequestContext<'a>, per_aggset: Option<Vec<i64>>) -> Kernel<'a> {
    let fleet = ctx.fleet;
    let max = ctx.conf.max_instances_per_host;
    Box::new(move |batch, mask| {
        let n = &fleet.usage().num_instances[batch.range()];
        match &per_aggset {
            None => and_words(mask, n.len(), |i| (n[i] as i64) < max),
            Some(t) => {
                let agg = &batch.aggset;
                and_words(mask, n.len(), |i| (n[i] as i64) < t[agg[i] as usize])
            }
        }
    })
}

impl HostFilter for NumInstancesFilter {
    fn name(&self) -> &'static str {
        "NumInstancesFilter"
    }
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Kernel<'a>>, FilterError> {
        Ok(Some(kernel(ctx, None)))
    }
}

impl HostFilter for AggregateNumInstancesFilter {
    fn name(&self) -> &'static str {
        "AggregateNumInstancesFilter"
    }
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Kernel<'a>>, FilterError> {
        let t = aggset_min_values::<i64>(ctx.fleet, "max_instances_per_host", ctx.conf.max_instances_per_host);
        Ok(Some(kernel(ctx, Some(t))))
    }
}
