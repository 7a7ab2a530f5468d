//! GET /usages: totals per consumer type for a project.

use super::UsagesByType;
use crate::model::State;

impl State {
    /// GET /usages: per consumer type (`unknown` for consumers without
    /// one), the used amount per class and the number of consumers, for a
    /// project (and user, and type; `all` keeps every type).
    pub fn total_usages(&self, project: &str, user: Option<&str>, consumer_type: Option<&str>) -> UsagesByType {
        let mut out = UsagesByType::new();
        for c in self.consumers.values() {
            if c.project != project || user.is_some_and(|u| u != c.user) {
                continue;
            }
            let ty = c.consumer_type.as_deref().unwrap_or("unknown");
            if consumer_type.is_some_and(|want| want != "all" && want != ty) {
                continue;
            }
            let (per, count) = out.entry(ty.to_string()).or_default();
            *count += 1;
            for a in &c.allocations {
                *per.entry(self.class_name(a.class).to_string()).or_default() += a.used;
            }
        }
        out
    }
}
