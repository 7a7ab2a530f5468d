//! `CrossCellWeigher`: prefer the source cell on cross-cell moves.
use super::{HostWeigher, Raw};
use crate::filters::{FilterError, RequestContext};

/// Raw value 0 for every host on a boot (it only scores move operations,
/// which Quiver does not schedule yet), so it never changes a boot decision.
#[derive(Debug, Clone, Copy)]
pub struct CrossCellWeigher;

impl HostWeigher for CrossCellWeigher {
    fn module(&self) -> &'static str {
        "nova.scheduler.weights.cross_cell"
    }
    fn prepare<'a>(&self, _ctx: &RequestContext<'a>) -> Result<Option<Raw<'a>>, FilterError> {
        Ok(None)
    }
}
