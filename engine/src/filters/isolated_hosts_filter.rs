//! `IsolatedHostsFilter`: keep isolated images on isolated hosts.

use std::collections::HashSet;

use super::{FilterError, HostFilter, Kernel, RequestContext, host_set_kernel};

/// Nova's truth table over `isolated_hosts`, `isolated_images` and
/// `restrict_isolated_hosts_to_isolated_images`.
#[derive(Debug, Clone, Copy)]
pub struct IsolatedHostsFilter;

impl HostFilter for IsolatedHostsFilter {
    fn run_filter_once_per_request(&self) -> bool {
        true
    }
    fn run_on_rebuild(&self) -> bool {
        true
    }
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Kernel<'a>>, FilterError> {
        let c = ctx.conf;
        let hosts: HashSet<u32> =
            c.isolated_hosts.iter().filter_map(|h| ctx.fleet.index_of(h)).map(|i| i as u32).collect();
        if c.isolated_images.is_empty() {
            // pass = !restrict || host not isolated
            return Ok(c.restrict_isolated_hosts_to_isolated_images.then(|| host_set_kernel(hosts, false)));
        }
        let image = ctx.request.image.as_ref().and_then(|i| i.id.clone());
        let image_isolated = image.is_some_and(|id| c.isolated_images.contains(&id));
        Ok(if c.restrict_isolated_hosts_to_isolated_images {
            // pass = image_isolated == host_isolated
            Some(host_set_kernel(hosts, image_isolated))
        } else if image_isolated {
            // pass = host_isolated
            Some(host_set_kernel(hosts, true))
        } else {
            None
        })
    }
}
