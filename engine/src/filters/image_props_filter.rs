//! `ImagePropertiesFilter`: the host supports the image's architecture,
//! hypervisor type, VM mode and requested hypervisor version.

use super::{FilterError, HostFilter, Kernel, RequestContext, and_words};
use crate::image_props::{VersionPredicate, canonical_image_properties, version_components};

/// Passes a host when the image names none of `hw_architecture`,
/// `img_hv_type`, `hw_vm_mode`; or some `supported_instances` triple
/// contains every named value and `img_hv_requested_version` holds for the
/// hypervisor version. The triple test runs once per distinct
/// `supported_instances` list, the version test once per distinct version.
///
/// # Nova compatibility
/// `hw_maxphysaddr_bits` makes Nova 34 raise (`cpu_info` is a string there);
/// such requests are reported as Nova errors, as the parity harness does.
#[derive(Debug, Clone, Copy)]
pub struct ImagePropertiesFilter;

impl HostFilter for ImagePropertiesFilter {
    fn run_filter_once_per_request(&self) -> bool {
        true
    }
    fn run_on_rebuild(&self) -> bool {
        true
    }
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Kernel<'a>>, FilterError> {
        let fleet = ctx.fleet;
        let props = canonical_image_properties(ctx.request.image_properties());
        let arch = props.get("hw_architecture").cloned().or_else(|| {
            ctx.conf.image_properties_default_architecture.as_deref().map(crate::image_props::canonical_arch)
        });
        let wanted: Vec<String> =
            [arch, props.get("img_hv_type").cloned(), props.get("hw_vm_mode").cloned()].into_iter().flatten().collect();
        if wanted.is_empty() {
            return Ok(None);
        }
        if props.contains_key("hw_maxphysaddr_bits") {
            return Err(FilterError::NovaError(
                "AttributeError: 'str' object has no attribute 'get' (ImagePropertiesFilter with hw_maxphysaddr_bits)"
                    .into(),
            ));
        }
        let supp_lut: Vec<bool> = fleet
            .supported
            .iter()
            .map(|list| list.iter().any(|triple| wanted.iter().all(|w| triple.iter().any(|t| t == w))))
            .collect();
        let version =
            match props.get("img_hv_requested_version") {
                Some(v) => Some(VersionPredicate::parse(v).ok_or_else(|| {
                    FilterError::NovaError(format!("ValueError: bad package restriction syntax: {v}"))
                })?),
                None => None,
            };
        Ok(Some(Box::new(move |batch, mask| {
            let supp = &batch.supported;
            and_words(mask, supp.len(), |i| supp_lut[supp[i] as usize]);
            if let Some(pred) = &version {
                let hv = &batch.hypervisor_version;
                let mut memo: Vec<(i64, bool)> = Vec::new();
                super::and_words(mask, hv.len(), |i| {
                    let v = hv[i];
                    if v == 0 {
                        return true;
                    }
                    match memo.iter().find(|(k, _)| *k == v) {
                        Some(&(_, b)) => b,
                        None => {
                            let b = pred.satisfied_by(&version_components(v));
                            memo.push((v, b));
                            b
                        }
                    }
                });
            }
        })))
    }
}
