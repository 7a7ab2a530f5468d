//! A scheduling decision, in FORMAT.md section 4's line format.

use serde::Serialize;

use crate::filters::FilterError;

/// One instance's part of a decision.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct InstanceDecision {
    /// Instance uuid.
    pub uuid: String,
    /// Hosts that passed every filter.
    pub passed: usize,
    /// `[filter, hosts left]` after each filter that ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_trace: Option<Vec<(String, usize)>>,
    /// The first five weighed hosts with their weights.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top5: Option<Vec<(String, f64)>>,
    /// The host the claim landed on.
    pub chosen: Option<String>,
    /// Its weight.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    /// Alternates from the same cell (`select_destinations`' alternates).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alternates: Vec<String>,
}

/// A scheduling decision, in FORMAT.md section 4's line format.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Decision {
    /// Request index.
    pub req: usize,
    /// Request id.
    pub id: Option<String>,
    /// Instances asked for.
    pub num_instances: usize,
    /// Hosts entering the filters for instance 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement_candidates: Option<usize>,
    /// `ok`, `no_valid_host`, `unsupported` or `nova_error`.
    pub status: String,
    /// `placement`, `filters` or `claim` on `no_valid_host`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_stage: Option<String>,
    /// Why, for `unsupported` and `nova_error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Chosen hosts, one per instance (empty on failure).
    pub chosen: Vec<String>,
    /// Per instance.
    pub instances: Vec<InstanceDecision>,
}

pub(super) fn fail_with(mut d: Decision, e: FilterError) -> Decision {
    d.status = match e {
        FilterError::Unsupported(_) => "unsupported".into(),
        FilterError::NovaError(_) => "nova_error".into(),
    };
    d.error = Some(e.to_string());
    d.chosen.clear();
    d
}
