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
    fn name(&self) -> &'static str {
        "ComputeFilter"
    }
    fn run_filter_once_per_request(&self) -> bool {
        true
    }
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Kernel<'a>>, FilterError> {
        let down = ctx.conf.service_down_time;
        Ok(Some(Box::new(move |batch, mask| {
            let dis = batch.service_disabled.inner().as_slice();
            let forced = batch.service_forced_down.inner().as_slice();
            let age = &batch.service_age_s;
            let off = batch.service_disabled.offset();
            if off == 0 && batch.service_forced_down.offset() == 0 {
                // Packed flags AND word by word; the heartbeat age is compared per host.
                for (w, word) in mask.iter_mut().enumerate() {
                    let i = w * 8;
                    let take = |s: &[u8]| {
                        let mut b = [0u8; 8];
                        let end = (i + 8).min(s.len());
                        b[..end - i].copy_from_slice(&s[i..end]);
                        u64::from_le_bytes(b)
                    };
                    *word &= !take(dis) & !take(forced);
                }
            } else {
                and_words(mask, age.len(), |i| !batch.service_disabled.value(i) && !batch.service_forced_down.value(i));
            }
            and_words(mask, age.len(), |i| age[i].abs() <= down);
        })))
    }
}
