//! `AggregateImagePropertiesIsolation`: aggregate metadata keys that are
//! image properties must match the image's value.

use super::{FilterError, HostFilter, Kernel, RequestContext, aggset_metadata, lut_kernel};
use crate::image_props::canonical_image_properties;

/// For every aggregate metadata key (within the configured namespace) that
/// the image sets, the image's value must be one of the aggregate values.
/// Evaluated per distinct aggregate set.
///
/// # Nova compatibility
/// Only `ImageMetaProps` fields reach the filter; other image properties are
/// dropped by Nova before it runs.
#[derive(Debug, Clone, Copy)]
pub struct AggregateImagePropertiesIsolation;

impl HostFilter for AggregateImagePropertiesIsolation {
    fn run_filter_once_per_request(&self) -> bool {
        true
    }
    fn run_on_rebuild(&self) -> bool {
        true
    }
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Kernel<'a>>, FilterError> {
        let props = canonical_image_properties(ctx.request.image_properties());
        if props.is_empty() {
            return Ok(None);
        }
        let ns = ctx
            .conf
            .aggregate_image_properties_isolation_namespace
            .as_ref()
            .map(|n| format!("{n}{}", ctx.conf.aggregate_image_properties_isolation_separator));
        let lut = (0..ctx.fleet.aggsets.len())
            .map(|s| {
                aggset_metadata(ctx.fleet, s).iter().all(|(key, options)| {
                    if ns.as_ref().is_some_and(|ns| !key.starts_with(ns.as_str())) {
                        return true;
                    }
                    match props.get(*key) {
                        Some(v) if !v.is_empty() => options.contains(v.as_str()),
                        _ => true,
                    }
                })
            })
            .collect();
        Ok(lut_kernel(|b| &b.aggset[..], lut))
    }
}
