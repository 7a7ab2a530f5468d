//! `ComputeFilter`: the host's nova-compute service is enabled and up.

use super::{FilterError, HostFilter, Kernel, RequestContext, and_words};

/// Passes hosts whose service is not disabled, not forced down, and whose
/// last heartbeat is at most `service_down_time` seconds old.
///
/// # Nova compatibility
/// `servicegroup.api.service_is_up`: `abs(now - last_seen_up) <= service_down_time`.
#[derive(Debug, Clone, Copy)]
pub struct ComputeFilter;

impl HostFilter for ComputeFilter {
    fn run_filter_once_per_request(&self) -> bool {
        true
    }
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Kernel<'a>>, FilterError> {
        let down = ctx.conf.service_down_time;
        let clock = ctx.fleet.service_clock;
        Ok(Some(Box::new(move |batch, mask| {
            // Packed flags AND word by word; the heartbeat age is compared per host.
            let dis = batch.service_disabled.words();
            let forced = batch.service_forced_down.words();
            for ((word, d), f) in mask.iter_mut().zip(dis).zip(forced) {
                *word &= !d & !f;
            }
            let age = &batch.service_age_s;
            and_words(mask, age.len(), |i| (age[i] + clock).abs() <= down);
        })))
    }

    fn reason(&self, ctx: &RequestContext<'_>, host: usize) -> Option<String> {
        let (batch, row) = ctx.fleet.locate(host);
        if batch.service_disabled.get(row) {
            return Some("its nova-compute service is disabled".into());
        }
        if batch.service_forced_down.get(row) {
            return Some("its nova-compute service is forced down".into());
        }
        let age = (batch.service_age_s[row] + ctx.fleet.service_clock).abs();
        Some(format!(
            "its nova-compute service is down: last heartbeat {age:.0} s ago, service_down_time {} s",
            ctx.conf.service_down_time
        ))
    }
}
