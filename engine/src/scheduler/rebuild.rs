//! The rebuild check (Nova's `_nova_check_type = rebuild`): a rebuild with
//! a new image stays on the server's host, so the scheduler asks Placement
//! nothing and runs, on that host alone, only the filters marked
//! `RUN_ON_REBUILD` (the ones that look at the image).

use super::Scheduler;
use crate::filters::{FilterError, RequestContext};
use crate::fleet::Fleet;
use crate::mask::Mask;
use crate::request::{BootRequest, parse_uuid};

impl Scheduler {
    /// Runs the `RUN_ON_REBUILD` filters for `req` (the server's flavor
    /// and its new image) on host row `host`. `Ok(None)`: the host still
    /// takes the server; `Ok(Some(name))`: filter `name` rejects it.
    ///
    /// # Errors
    /// A filter cannot handle the request at all.
    pub fn check_rebuild(
        &self,
        fleet: &Fleet,
        req: &BootRequest,
        host: usize,
    ) -> Result<Option<&'static str>, FilterError> {
        let uuid = req.instance_uuids.first().and_then(|u| parse_uuid(u)).unwrap_or(0);
        let ctx = RequestContext { fleet, conf: &self.conf, request: req, group: None, instance_uuid: uuid, index: 0 };
        let (batch, row) = fleet.locate(host);
        for (name, f) in self.filters.iter().filter(|(_, f)| f.run_on_rebuild()) {
            let Some(kernel) = f.prepare(&ctx)? else { continue };
            let mut mask = Mask::zeros(batch.len());
            mask.set(row, true);
            kernel(batch, mask.words_mut());
            if mask.none() {
                return Ok(Some(name));
            }
        }
        Ok(None)
    }
}
