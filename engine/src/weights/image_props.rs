//! `ImagePropertiesWeigher`: pack instances with similar image properties.
use super::{HostWeigher, Raw};
use crate::filters::{FilterError, RequestContext};

/// Default multiplier 0.0, which makes Nova return before reading instance
/// image metadata. A non-zero multiplier needs per-instance image metadata,
/// which the fleet does not carry yet: the request is rejected with a clear
/// reason instead of being weighed as if the weigher were off.
#[derive(Debug, Clone, Copy)]
pub struct ImagePropertiesWeigher;

impl HostWeigher for ImagePropertiesWeigher {
    fn module(&self) -> &'static str {
        "nova.scheduler.weights.image_props"
    }
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Raw<'a>>, FilterError> {
        if super::Multiplier::resolve(
            ctx.fleet,
            "image_props_weight_multiplier",
            ctx.conf.image_props_weight_multiplier,
        )
        .is_zero()
        {
            Ok(None)
        } else {
            Err(FilterError::Unsupported(
                "ImagePropertiesWeigher: a non-zero image_props_weight_multiplier needs instance image metadata, not supported yet".into(),
            ))
        }
    }
}
