//! The JSON document one `quiver bench run` writes: which Quiver, which
//! machine and how busy it was, and per workload every figure with its
//! spread. `quiver bench compare` reads two of them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::machine::{Load, Machine};
use crate::stats::{Figure, Role};
use crate::workloads::Workload;

/// Format version of the document (bumped when a field changes meaning).
pub const FORMAT: u32 = 1;

/// One run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunDocument {
    pub format: u32,
    /// Crate version, and the git commit when run from a checkout.
    pub quiver_version: String,
    pub git_commit: Option<String>,
    /// RFC 3339, UTC.
    pub started: String,
    pub machine: Machine,
    /// Any workload's figure or machine load flagged.
    pub noisy: bool,
    pub results: Vec<WorkloadResult>,
}

/// One workload's outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkloadResult {
    pub name: String,
    /// The workload as it ran (from the workloads file).
    pub workload: Workload,
    /// Relative slowdown of the headline that `compare` fails on.
    pub threshold: f64,
    /// Figures by name.
    pub figures: BTreeMap<String, Figure>,
    /// How busy the machine was while it ran.
    pub load: Load,
    /// The headline or a baseline is noisy, or the machine was busy.
    pub noisy: bool,
    /// Why it is noisy, what was skipped, in words.
    pub notes: Vec<String>,
    /// Wall time of the whole workload (set-up included).
    pub seconds: f64,
    /// The workload failed: the reason (no figures then).
    pub error: Option<String>,
}

impl WorkloadResult {
    /// The headline figure's name and value.
    pub fn headline(&self) -> Option<(&str, &Figure)> {
        self.figures.iter().find(|(_, f)| f.role == Role::Headline).map(|(k, f)| (k.as_str(), f))
    }

    /// Flags the result noisy from its figures and load, with the reasons.
    pub fn judge_noise(&mut self) {
        let mut noisy = self.load.busy;
        for (name, f) in &self.figures {
            if f.noisy && matches!(f.role, Role::Headline | Role::Baseline) {
                noisy = true;
                self.notes.push(format!(
                    "{name} is noisy: its middle 80% spans {:.0}% of its median (over {} repetitions)",
                    100.0 * f.spread,
                    f.n
                ));
            }
        }
        if self.load.busy {
            self.notes.push(format!("the machine was busy: {}", self.load.why));
        }
        self.noisy = noisy;
    }
}

/// The current time as RFC 3339 UTC, to the second.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
