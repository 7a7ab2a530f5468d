//! `MetricsFilter`: hosts must report every metric the MetricsWeigher uses.

use super::{FilterError, HostFilter, Kernel, RequestContext};

/// Passes hosts that report every metric named in `[metrics] weight_setting`
/// (every host when the setting is empty).
#[derive(Debug, Clone, Copy)]
pub struct MetricsFilter;

impl HostFilter for MetricsFilter {
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Kernel<'a>>, FilterError> {
        let setting = &ctx.conf.metrics_weight_setting;
        if setting.is_empty() {
            return Ok(None);
        }
        let fleet = ctx.fleet;
        let cols: Option<Vec<_>> = setting.iter().map(|(name, _)| fleet.metric(name)).collect();
        Ok(Some(match cols {
            // A metric no host reports: nobody passes.
            None => Box::new(|_, mask: &mut [u64]| mask.fill(0)),
            Some(cols) => Box::new(move |batch, mask| {
                let first = batch.start / 64;
                for c in &cols {
                    for (w, m) in mask.iter_mut().enumerate() {
                        *m &= c.present.words()[first + w];
                    }
                }
            }),
        }))
    }
}
