//! `PciPassthroughFilter`: hosts must have the PCI devices a request asks for.

use super::{FilterError, HostFilter, Kernel, RequestContext};

/// Passes every host when the request asks for no PCI device. Quiver does
/// not model PCI device pools yet, so a request that asks for devices is
/// rejected with a clear reason rather than placed on a host without them.
#[derive(Debug, Clone, Copy)]
pub struct PciPassthroughFilter;

impl HostFilter for PciPassthroughFilter {
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Kernel<'a>>, FilterError> {
        let asks = ctx.request.flavor.extra_specs.keys().find(|k| k.as_str() == "pci_passthrough:alias");
        match asks {
            Some(k) => Err(FilterError::Unsupported(format!(
                "PciPassthroughFilter: PCI device requests ({k}) are not supported yet"
            ))),
            None => Ok(None),
        }
    }
}
