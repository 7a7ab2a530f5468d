//! `PCIWeigher`: keep PCI-capable hosts free for PCI requests.
use super::{HostWeigher, Raw};
use crate::filters::{FilterError, RequestContext};

/// Raw value `100 - min(free PCI devices, 99)`. The fleet carries no PCI
/// device pools yet, so every host has the same raw value, which Nova's
/// normalization turns into 0: it never changes a decision.
#[derive(Debug, Clone, Copy)]
pub struct PCIWeigher;

impl HostWeigher for PCIWeigher {
    fn module(&self) -> &'static str {
        "nova.scheduler.weights.pci"
    }
    fn prepare<'a>(&self, _ctx: &RequestContext<'a>) -> Result<Option<Raw<'a>>, FilterError> {
        Ok(None)
    }
}
