//! `NumInstancesFilter` and `AggregateNumInstancesFilter`: hosts already
//! running too many instances are skipped.

use super::{CounterBelow, FilterError, HostFilter, Kernel, RequestContext, counter_below_kernel};

/// Passes hosts with `num_instances < [filter_scheduler] max_instances_per_host`.
#[derive(Debug, Clone, Copy)]
pub struct NumInstancesFilter;

/// Like [`NumInstancesFilter`], with the threshold overridden per host by the
/// minimum `max_instances_per_host` of its aggregates' metadata.
#[derive(Debug, Clone, Copy)]
pub struct AggregateNumInstancesFilter;

impl HostFilter for NumInstancesFilter {
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Kernel<'a>>, FilterError> {
        Ok(self.counter_below(ctx).map(|c| counter_below_kernel(ctx, c)))
    }

    fn counter_below(&self, ctx: &RequestContext<'_>) -> Option<CounterBelow> {
        Some(CounterBelow::new(ctx.fleet, |f| &f.usage().num_instances, ctx.conf.max_instances_per_host, None))
    }
}

impl HostFilter for AggregateNumInstancesFilter {
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Kernel<'a>>, FilterError> {
        Ok(self.counter_below(ctx).map(|c| counter_below_kernel(ctx, c)))
    }

    fn counter_below(&self, ctx: &RequestContext<'_>) -> Option<CounterBelow> {
        Some(CounterBelow::new(
            ctx.fleet,
            |f| &f.usage().num_instances,
            ctx.conf.max_instances_per_host,
            Some("max_instances_per_host"),
        ))
    }
}
