//! `AggregateTypeAffinityFilter`: aggregates with `instance_type` metadata
//! only take those flavors.

use super::{FilterError, HostFilter, Kernel, RequestContext, aggset_values, lut_kernel};

/// Passes a host when none of its aggregates has `instance_type` metadata,
/// or one of them lists the flavor's name (comma separated).
#[derive(Debug, Clone, Copy)]
pub struct AggregateTypeAffinityFilter;

impl HostFilter for AggregateTypeAffinityFilter {
    fn run_filter_once_per_request(&self) -> bool {
        true
    }
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Kernel<'a>>, FilterError> {
        let flavor = ctx.request.flavor.name.as_str();
        let lut = (0..ctx.fleet.aggsets.len())
            .map(|s| {
                let vals = aggset_values(ctx.fleet, s, "instance_type");
                vals.is_empty() || vals.iter().any(|v| v.split(',').any(|x| x.trim() == flavor))
            })
            .collect();
        Ok(lut_kernel(|b| &b.aggset[..], lut))
    }
}
