//! `AllHostsFilter`: a no-op filter that passes every host.

use super::{FilterError, HostFilter, Kernel, RequestContext};

/// Passes every host.
#[derive(Debug, Clone, Copy)]
pub struct AllHostsFilter;

impl HostFilter for AllHostsFilter {
    fn run_filter_once_per_request(&self) -> bool {
        true
    }
    fn prepare<'a>(&self, _ctx: &RequestContext<'a>) -> Result<Option<Kernel<'a>>, FilterError> {
        Ok(None)
    }
}
