//! Timelines as Arrow: one row per policy and sample, so `quiver query`
//! can read them and Parquet/CSV writers can write them.

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema};

use crate::error::{EngineError, Result};
use crate::sim::PolicyRun;

/// The timelines of `runs` as one batch: `policy`, `time_s`, `arrivals`,
/// `accepted`, `rejected`, `active`, `hosts_in_use`, then per resource
/// class `used_<RC>`, `utilization_<RC>`, `stranded_<RC>`, and
/// `fragmentation`. Classes are those of the first run (every policy replays
/// the same fleet).
///
/// # Errors
/// Runs over fleets with different resource classes.
pub fn timeline_batch(runs: &[PolicyRun]) -> Result<RecordBatch> {
    let classes = runs.first().map(|r| r.resource_classes.clone()).unwrap_or_default();
    if runs.iter().any(|r| r.resource_classes != classes) {
        return Err(EngineError::invalid("policies replayed fleets with different resource classes"));
    }
    let rows = || runs.iter().flat_map(|r| r.timeline.iter().map(move |s| (r.policy.as_str(), s)));
    let mut fields = vec![Field::new("policy", DataType::Utf8, false), Field::new("time_s", DataType::Float64, false)];
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(rows().map(|(p, _)| p).collect::<Vec<_>>())),
        Arc::new(Float64Array::from_iter_values(rows().map(|(_, s)| s.time))),
    ];
    type Counter = fn(&crate::sim::Sample) -> u64;
    let counters: [(&str, Counter); 5] = [
        ("arrivals", |s| s.arrivals),
        ("accepted", |s| s.accepted),
        ("rejected", |s| s.rejected),
        ("active", |s| s.active),
        ("hosts_in_use", |s| s.hosts_in_use),
    ];
    for (name, f) in counters {
        fields.push(Field::new(name, DataType::UInt64, false));
        cols.push(Arc::new(UInt64Array::from_iter_values(rows().map(|(_, s)| f(s)))));
    }
    for (rc, name) in classes.iter().enumerate() {
        fields.push(Field::new(format!("used_{name}"), DataType::Int64, false));
        cols.push(Arc::new(Int64Array::from_iter_values(rows().map(|(_, s)| s.used[rc]))));
        fields.push(Field::new(format!("utilization_{name}"), DataType::Float64, false));
        cols.push(Arc::new(Float64Array::from_iter_values(rows().map(|(_, s)| s.utilization[rc]))));
        fields.push(Field::new(format!("stranded_{name}"), DataType::Float64, false));
        cols.push(Arc::new(Float64Array::from_iter_values(rows().map(|(_, s)| s.stranded[rc]))));
    }
    fields.push(Field::new("fragmentation", DataType::Float64, false));
    cols.push(Arc::new(Float64Array::from_iter_values(rows().map(|(_, s)| s.fragmentation))));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).map_err(|e| EngineError::Internal(e.to_string()))
}
