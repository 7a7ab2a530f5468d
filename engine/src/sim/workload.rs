//! A workload to replay: boot requests with an arrival time and, when they
//! leave, a departure time. Requests of the same shape (flavor, image,
//! project, availability zone, traits) share one interned [`BootRequest`],
//! so the simulator prepares each shape once.

use std::collections::HashMap;

use crate::error::{EngineError, Result};
use crate::request::{BootRequest, ServerGroup};

/// One request of a workload.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SimRequest {
    /// Arrival, seconds from the trace's origin.
    pub arrival: f64,
    /// Departure, seconds; `None` for a server that stays.
    pub departure: Option<f64>,
    /// Index into [`Workload::classes`].
    pub class: u32,
    /// Index into [`Workload::groups`].
    pub group: Option<u32>,
}

/// Requests in arrival order plus the shapes and groups they refer to.
#[derive(Clone, Debug, Default)]
pub struct Workload {
    /// Distinct request shapes.
    pub classes: Vec<BootRequest>,
    /// Server groups requests may join.
    pub groups: Vec<ServerGroup>,
    /// Requests, sorted by arrival (stable: equal arrivals keep file order).
    pub requests: Vec<SimRequest>,
}

impl Workload {
    /// Number of requests per class.
    pub fn class_counts(&self) -> Vec<u64> {
        let mut n = vec![0u64; self.classes.len()];
        for r in &self.requests {
            n[r.class as usize] += 1;
        }
        n
    }

    /// The last finite time in the workload (arrival or departure).
    pub fn end_time(&self) -> f64 {
        self.requests.iter().map(|r| r.departure.unwrap_or(r.arrival).max(r.arrival)).fold(0.0, f64::max)
    }
}

/// Builds a [`Workload`], interning request shapes and groups by name.
#[derive(Debug, Default)]
pub struct WorkloadBuilder {
    workload: Workload,
    class_ids: HashMap<String, u32>,
    group_ids: HashMap<String, u32>,
}

impl WorkloadBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// The class index of a request shape (its `id`, uuids and count are
    /// not part of the shape).
    ///
    /// # Errors
    /// A shape that cannot be serialized (never for plain requests).
    pub fn class(&mut self, mut req: BootRequest) -> Result<u32> {
        req.id = None;
        req.instance_uuids.clear();
        req.num_instances = 1;
        let key = serde_json::to_string(&req).map_err(|e| EngineError::invalid(format!("request shape: {e}")))?;
        if let Some(&i) = self.class_ids.get(&key) {
            return Ok(i);
        }
        let i = self.workload.classes.len() as u32;
        self.workload.classes.push(req);
        self.class_ids.insert(key, i);
        Ok(i)
    }

    /// The index of the group named `name`, created with `policy` on first
    /// use (its uuid derived from the name, so runs are reproducible).
    ///
    /// # Errors
    /// The same name used with two policies.
    pub fn group(&mut self, name: &str, policy: &str) -> Result<u32> {
        if let Some(&i) = self.group_ids.get(name) {
            let g = &self.workload.groups[i as usize];
            if g.policy != policy {
                return Err(EngineError::invalid(format!(
                    "server group {name:?} is used with policies {:?} and {policy:?}",
                    g.policy
                )));
            }
            return Ok(i);
        }
        let uuid = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("quiver-sim-group:{name}").as_bytes());
        let i = self.workload.groups.len() as u32;
        self.workload.groups.push(ServerGroup {
            uuid: uuid.to_string(),
            name: Some(name.to_owned()),
            policy: policy.to_owned(),
            rules: Default::default(),
            members: Vec::new(),
            project_id: None,
            user_id: None,
        });
        self.group_ids.insert(name.to_owned(), i);
        Ok(i)
    }

    /// Adds a request.
    pub fn push(&mut self, r: SimRequest) {
        self.workload.requests.push(r);
    }

    /// The workload, requests sorted by arrival.
    pub fn finish(mut self) -> Workload {
        self.workload.requests.sort_by(|a, b| a.arrival.total_cmp(&b.arrival));
        self.workload
    }
}
