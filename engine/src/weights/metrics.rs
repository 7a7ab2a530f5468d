//! `MetricsWeigher`: weigh by a weighted sum of host metrics.
use super::{HostWeigher, Multiplier, Raw};
use crate::filters::{FilterError, RequestContext};

/// Raw value `sum(metric * ratio)` over `[metrics] weight_setting`. A host
/// missing a metric makes Nova raise `ComputeHostMetricNotFound` when
/// `[metrics] required` (the default), else it gets `weight_of_unavailable`.
#[derive(Debug, Clone, Copy)]
pub struct MetricsWeigher;

impl HostWeigher for MetricsWeigher {
    fn module(&self) -> &'static str {
        "nova.scheduler.weights.metrics"
    }
    fn prepare<'a>(&self, ctx: &RequestContext<'a>) -> Result<Option<Raw<'a>>, FilterError> {
        let conf = ctx.conf;
        if conf.metrics_weight_setting.is_empty() {
            return Ok(None);
        }
        let multiplier = Multiplier::resolve(ctx.fleet, "metrics_weight_multiplier", conf.metrics_weight_multiplier);
        let fleet = ctx.fleet;
        let setting: Vec<(Option<&'a crate::fleet::MetricColumn>, f64, String)> =
            conf.metrics_weight_setting.iter().map(|(n, r)| (fleet.metric(n), *r, n.clone())).collect();
        let required = conf.metrics_required;
        let unavailable = conf.metrics_weight_of_unavailable;
        let mult = multiplier.clone();
        let check_setting = setting.clone();
        let check: super::CheckFn<'a> = Box::new(move |survivors| {
            if !required {
                return Ok(());
            }
            for h in survivors.iter_ones() {
                for (col, _, name) in &check_setting {
                    if !col.is_some_and(|c| c.present.get(h)) {
                        return Err(FilterError::NovaError(format!(
                            "ComputeHostMetricNotFound: Metric {name} not found on host {}",
                            fleet.name(h)
                        )));
                    }
                }
            }
            Ok(())
        });
        let values: super::RawFn<'a> = Box::new(move |batch, row0, out| {
            for (k, o) in out.iter_mut().enumerate() {
                let h = batch.start + row0 + k;
                let m = match &mult {
                    Multiplier::Const(m) => *m,
                    Multiplier::PerAggset(v) => v[batch.aggset[row0 + k] as usize],
                };
                let mut value = 0.0;
                for (col, ratio, _) in &setting {
                    match col.filter(|c| c.present.get(h)) {
                        Some(c) => value += c.values[h] * ratio,
                        None if ratio * m != 0.0 => {
                            value = unavailable;
                            break;
                        }
                        None => {}
                    }
                }
                *o = value;
            }
        });
        Ok(Some(Raw { values, minval: None, maxval: None, multiplier, cache_key: None, check: Some(check) }))
    }
}
