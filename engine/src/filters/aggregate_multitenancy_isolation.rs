//! `AggregateMultiTenancyIsolation`: hosts in aggregates with
//! `filter_tenant_id*` metadata only take those projects.

use super::{FilterError, HostFilter, Kernel, RequestContext, aggset_metadata, lut_kernel};

/// Passes a host unless its aggregates name tenants (`filter_tenant_id`,
/// `filter_tenant_id2`, ...) and the request's project is not among them.
/// Evaluated once per distinct aggregate set, then gathered per host.
#[derive(Debug, Clone, Copy)]
pub struct AggregateMultiTenancyIsolation;

impl HostFilter for AggregateMultiTenancyIsolation {
    fn run_filter_once_per_request(&self) -> bool {
        true
    }
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Kernel<'a>>, FilterError> {
        let project = ctx.request.project();
        let lut = (0..ctx.fleet.aggsets.len())
            .map(|s| {
                let md = aggset_metadata(ctx.fleet, s);
                let tenants: Vec<&str> = md
                    .iter()
                    .filter(|(k, _)| k.starts_with("filter_tenant_id"))
                    .flat_map(|(_, v)| v.iter().copied())
                    .collect();
                tenants.is_empty() || tenants.contains(&project)
            })
            .collect();
        Ok(lut_kernel(|b| &b.aggset[..], lut))
    }
}
