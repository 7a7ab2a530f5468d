//! `AggregateInstanceExtraSpecsFilter`: flavor extra specs must match the
//! metadata of the host's aggregates.

use super::{FilterError, HostFilter, Kernel, RequestContext, aggset_metadata, lut_kernel};
use crate::extra_specs_ops;

const SCOPE: &str = "aggregate_instance_extra_specs";

/// For every extra spec `aggregate_instance_extra_specs:K` or unscoped `K`,
/// some value of aggregate metadata `K` on the host must match the spec
/// (Nova's operator syntax); a host without the key fails. Evaluated per
/// distinct aggregate set.
#[derive(Debug, Clone, Copy)]
pub struct AggregateInstanceExtraSpecsFilter;

impl HostFilter for AggregateInstanceExtraSpecsFilter {
    fn run_filter_once_per_request(&self) -> bool {
        true
    }
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Kernel<'a>>, FilterError> {
        let specs = specs(ctx);
        if specs.is_empty() {
            return Ok(None);
        }
        let lut = (0..ctx.fleet.aggsets.len())
            .map(|s| {
                let md = aggset_metadata(ctx.fleet, s);
                specs.iter().all(|(key, req)| {
                    md.get(key)
                        .is_some_and(|vals| !vals.is_empty() && vals.iter().any(|v| extra_specs_ops::matches(v, req)))
                })
            })
            .collect();
        Ok(lut_kernel(|b| &b.aggset[..], lut))
    }

    fn reason(&self, ctx: &RequestContext<'_>, host: usize) -> Option<String> {
        let (batch, row) = ctx.fleet.locate(host);
        let md = aggset_metadata(ctx.fleet, batch.aggset[row] as usize);
        specs(ctx).into_iter().find_map(|(key, req)| match md.get(key) {
            None => Some(format!("no aggregate of the host has metadata {key} (the flavor asks {key}={req})")),
            Some(vals) if !vals.iter().any(|v| extra_specs_ops::matches(v, req)) => {
                let mut vals: Vec<&str> = vals.iter().copied().collect();
                vals.sort_unstable();
                Some(format!("aggregate metadata {key}={} does not match the flavor's {key}={req}", vals.join(",")))
            }
            Some(_) => None,
        })
    }
}

/// The flavor's extra specs this filter checks: scoped
/// `aggregate_instance_extra_specs:K` and unscoped `K`, as `(K, spec)`.
fn specs<'a>(ctx: &RequestContext<'a>) -> Vec<(&'a str, &'a str)> {
    ctx.request
        .flavor
        .extra_specs
        .iter()
        .filter_map(|(k, v)| match k.split_once(':') {
            Some((scope, key)) if scope == SCOPE => Some((key, v.as_str())),
            Some(_) => None,
            None => Some((k.as_str(), v.as_str())),
        })
        .collect()
}
