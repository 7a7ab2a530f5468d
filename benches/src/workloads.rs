//! Named benchmark workloads, read from a checked-in TOML file (as
//! kube-scheduler's `scheduler_perf` keeps `performance-config.yaml`): what
//! fleet, what requests, what is timed, and the slowdown `quiver bench
//! compare` treats as a regression. Every run of a name does the same work.

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The workloads file shipped with Quiver (`benches/workloads.toml`).
pub const BUILTIN: &str = include_str!("../workloads.toml");

/// Regression threshold when neither the workload nor `[defaults]` set one:
/// a median 25% worse, beyond the noise of both runs.
pub const DEFAULT_THRESHOLD: f64 = 0.25;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadFile {
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(rename = "workload")]
    pub workloads: Vec<Workload>,
}

/// `[defaults]`: what a workload that does not say inherits.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// See [`DEFAULT_THRESHOLD`].
    pub threshold: Option<f64>,
}

/// One named workload.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// `Group/Shape` as `scheduler_perf` names them, e.g.
    /// `Decision/100kHosts_default`.
    pub name: String,
    /// One sentence: what it stands for.
    #[serde(default)]
    pub description: String,
    /// The relative slowdown of a headline figure, beyond noise, that
    /// `compare` calls a regression (exit status 1).
    pub threshold: Option<f64>,
    /// Labels to pick workloads by (`quiver bench run --tag quick`).
    #[serde(default)]
    pub tags: Vec<String>,
    /// What is built and timed.
    pub kind: Kind,
    /// Fleet size: hosts (decision, simulate, boots) or provider trees
    /// (candidates).
    #[serde(default)]
    pub hosts: usize,
    /// Fleet generator seed.
    #[serde(default = "one")]
    pub seed: u64,
    /// Timed repetitions of the headline figure.
    #[serde(default = "reps")]
    pub reps: usize,
    /// Repetitions of the baseline, interleaved with the headline's
    /// (default: as many as `reps`).
    pub baseline_reps: Option<usize>,
    /// decision: the filter profile (`default`, `extended`, `all`).
    pub profile: Option<String>,
    /// decision: the fleet, `generated` (Quiver's seeded generator, the
    /// default) or `nova-parity` (the parity kit's fleet-gen.py with the
    /// same seed: the very fleet nova-bench.py times Nova on).
    pub fleet: Option<String>,
    /// decision on the `nova-parity` fleet: also time Nova's own filter and
    /// weigh pass on it (nova-bench.py, this many requests) when the
    /// parity kit's venv is there.
    pub nova_requests: Option<usize>,
    /// decision: the flavor requested, `VCPUS:RAM_MB:DISK_GB` (default
    /// an m1.small, `1:2048:20`).
    pub flavor: Option<String>,
    /// simulate: a trace (`alibaba:DIR` or a trace file); without it a
    /// seeded Poisson stream of `requests` boots at `rate` per second with
    /// `mean_lifetime` seconds each, over the classic flavors.
    pub trace: Option<String>,
    pub requests: Option<usize>,
    pub rate: Option<f64>,
    pub mean_lifetime: Option<f64>,
    /// simulate: the stream's flavor mix, `NAME:WEIGHT,...` of the classic
    /// flavors (default: m1.tiny to m1.xlarge, weighted 10/35/30/20/5).
    pub flavors: Option<String>,
    /// simulate: every `group_every`th request joins an anti-affinity
    /// server group of `group_size` members (default 5).
    pub group_every: Option<usize>,
    pub group_size: Option<usize>,
    /// simulate: the policy, in a policy file's shape
    /// (`[filter_scheduler] ram_weight_multiplier = -1.0`, ...).
    pub policy: Option<toml::Table>,
    /// boots: servers booted over the Compute API; with `churn`, each
    /// client deletes its oldest live server before each create once 64
    /// are live.
    pub servers: Option<usize>,
    #[serde(default)]
    pub churn: bool,
    /// boots and candidates: concurrent API clients.
    pub concurrency: Option<usize>,
    /// candidates: Placement's perf shape, `flat` (perfload-runner.sh) or
    /// `nested` (perfload-nested-runner.sh).
    pub shape: Option<String>,
    /// candidates: also build the shape in the real Placement
    /// (../shared/placement-suite's venv, when it is there) and time its
    /// answer interleaved with Quiver's.
    #[serde(default)]
    pub placement: bool,
}

fn one() -> u64 {
    1
}

fn reps() -> usize {
    11
}

/// What a workload times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// One scheduling decision (filters, weighers, select, claim) on a
    /// generated fleet, beside the row-by-row scheduler and the
    /// memory-bandwidth floor.
    Decision,
    /// A replay of a request stream in the simulator, fast path beside
    /// the full pipeline.
    Simulate,
    /// Boots over REST against `quiver serve` with fake agents, beside bare
    /// Placement claims over HTTP.
    Boots,
    /// `GET /allocation_candidates` over HTTP on Placement's perf shapes,
    /// beside `GET /`.
    Candidates,
}

impl WorkloadFile {
    /// Parses and checks a workloads file.
    ///
    /// # Errors
    /// Bad TOML or an unknown field (named), a duplicate or empty name, a
    /// field a kind needs missing, a value out of range.
    pub fn parse(text: &str) -> Result<Self, String> {
        let f: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut seen = HashSet::new();
        for w in &f.workloads {
            if w.name.trim().is_empty() {
                return Err("a workload has an empty name".into());
            }
            if !seen.insert(w.name.as_str()) {
                return Err(format!("workload {:?} is named twice", w.name));
            }
            w.check().map_err(|e| format!("workload {:?}: {e}", w.name))?;
        }
        if let Some(t) = f.defaults.threshold
            && (t.is_nan() || t <= 0.0)
        {
            return Err(format!("[defaults] threshold = {t}: expected a number > 0"));
        }
        Ok(f)
    }

    /// Reads a workloads file.
    ///
    /// # Errors
    /// An unreadable file, or as [`WorkloadFile::parse`] (the path named).
    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The workloads to run: those named (exactly, or every name under a
    /// `Group/` prefix), those with any of `tags`, or all when neither is
    /// given.
    ///
    /// # Errors
    /// A name that matches nothing (the known names listed).
    pub fn select(&self, names: &[String], tags: &[String]) -> Result<Vec<Workload>, String> {
        let mut out: Vec<Workload> = Vec::new();
        for n in names {
            let prefix = format!("{}/", n.trim_end_matches('/'));
            let hits: Vec<&Workload> =
                self.workloads.iter().filter(|w| &w.name == n || w.name.starts_with(&prefix)).collect();
            if hits.is_empty() {
                let known: Vec<&str> = self.workloads.iter().map(|w| w.name.as_str()).collect();
                return Err(format!("no workload named {n:?}; known: {}", known.join(", ")));
            }
            for w in hits {
                if !out.iter().any(|o| o.name == w.name) {
                    out.push(w.clone());
                }
            }
        }
        for w in &self.workloads {
            if w.tags.iter().any(|t| tags.contains(t)) && !out.iter().any(|o| o.name == w.name) {
                out.push(w.clone());
            }
        }
        if names.is_empty() && tags.is_empty() {
            out = self.workloads.clone();
        }
        Ok(out)
    }

    /// The regression threshold of `w`.
    pub fn threshold(&self, w: &Workload) -> f64 {
        w.threshold.or(self.defaults.threshold).unwrap_or(DEFAULT_THRESHOLD)
    }
}

impl Workload {
    fn check(&self) -> Result<(), String> {
        if self.reps == 0 {
            return Err("reps must be at least 1".into());
        }
        if let Some(t) = self.threshold
            && (t.is_nan() || t <= 0.0)
        {
            return Err(format!("threshold = {t}: expected a number > 0"));
        }
        let need =
            |what: bool, field: &str| if what { Ok(()) } else { Err(format!("kind {:?} needs {field}", self.kind)) };
        match self.kind {
            Kind::Decision => {
                need(self.hosts > 0, "hosts > 0")?;
                let p = self.profile.as_deref().unwrap_or("default");
                if quiver_engine::config::profile_filters(p).is_none() {
                    return Err(format!("profile = {p:?}: use default, extended or all"));
                }
                self.flavor_amounts()?;
                match self.fleet.as_deref() {
                    None | Some("generated" | "nova-parity") => {}
                    Some(f) => return Err(format!("fleet = {f:?}: use \"generated\" or \"nova-parity\"")),
                }
                if self.nova_requests.is_some() && self.fleet.as_deref() != Some("nova-parity") {
                    return Err("nova_requests needs fleet = \"nova-parity\" (Nova is timed on the kit's fleet)".into());
                }
            }
            Kind::Simulate => {
                need(
                    self.trace.is_some() || (self.hosts > 0 && self.requests.unwrap_or(0) > 0),
                    "trace, or hosts and requests",
                )?;
                if let Some(p) = &self.policy {
                    let text = toml::to_string(p).map_err(|e| e.to_string())?;
                    quiver_engine::sim::Policy::parse(&self.name, &text).map_err(|e| format!("policy: {e}"))?;
                }
            }
            Kind::Boots => {
                need(self.hosts > 0, "hosts > 0")?;
                need(self.servers.unwrap_or(0) > 0, "servers > 0")?;
            }
            Kind::Candidates => {
                need(self.hosts > 0, "hosts > 0 (provider trees)")?;
                match self.shape.as_deref() {
                    Some("flat" | "nested") => {}
                    other => return Err(format!("shape = {other:?}: use \"flat\" or \"nested\"")),
                }
            }
        }
        Ok(())
    }

    /// The decision's flavor as `(vcpus, memory_mb, root_gb)`.
    ///
    /// # Errors
    /// A flavor that is not three positive integers.
    pub fn flavor_amounts(&self) -> Result<(u32, u32, u32), String> {
        let Some(f) = &self.flavor else { return Ok((1, 2048, 20)) };
        let parts: Vec<Option<u32>> = f.split(':').map(|x| x.trim().parse().ok()).collect();
        match parts.as_slice() {
            [Some(v), Some(r), Some(d)] if *v > 0 && *r > 0 => Ok((*v, *r, *d)),
            _ => Err(format!("flavor = {f:?}: expected VCPUS:RAM_MB:DISK_GB")),
        }
    }

    /// Baseline repetitions (0: no baseline).
    pub fn baseline_reps(&self) -> usize {
        self.baseline_reps.unwrap_or(self.reps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_file_parses_and_has_what_the_issue_asks_for() {
        let f = WorkloadFile::parse(BUILTIN).expect("benches/workloads.toml");
        let has = |kind: Kind, pred: &dyn Fn(&Workload) -> bool| f.workloads.iter().any(|w| w.kind == kind && pred(w));
        for hosts in [10_000, 100_000, 1_000_000] {
            for profile in ["default", "extended"] {
                assert!(
                    has(Kind::Decision, &|w| w.hosts == hosts && w.profile.as_deref() == Some(profile)),
                    "decision {hosts} {profile}"
                );
            }
        }
        assert!(has(Kind::Boots, &|w| w.hosts == 100_000 && w.churn));
        assert!(has(Kind::Candidates, &|w| w.shape.as_deref() == Some("flat")));
        assert!(has(Kind::Candidates, &|w| w.shape.as_deref() == Some("nested")));
        assert!(has(Kind::Simulate, &|w| w.trace.as_deref().is_some_and(|t| t.starts_with("alibaba:"))));
    }

    #[test]
    fn unknown_fields_and_missing_ones_are_named() {
        let e = WorkloadFile::parse("[[workload]]\nname = \"a\"\nkind = \"decision\"\nhosts = 10\nhost = 3\n")
            .expect_err("typo");
        assert!(e.contains("host"), "{e}");
        let e = WorkloadFile::parse("[[workload]]\nname = \"a\"\nkind = \"boots\"\nhosts = 10\n").expect_err("servers");
        assert!(e.contains("servers"), "{e}");
        let e =
            WorkloadFile::parse("[[workload]]\nname = \"a\"\nkind = \"decision\"\nhosts = 10\nprofile = \"fast\"\n")
                .expect_err("profile");
        assert!(e.contains("profile"), "{e}");
        let twice = "[[workload]]\nname = \"a\"\nkind = \"decision\"\nhosts = 1\n\n[[workload]]\nname = \"a\"\nkind = \"decision\"\nhosts = 2\n";
        assert!(WorkloadFile::parse(twice).expect_err("dup").contains("twice"));
    }

    #[test]
    fn selection_by_name_group_and_tag() {
        let f = WorkloadFile::parse(
            "[defaults]\nthreshold = 0.5\n\
             [[workload]]\nname = \"D/a\"\nkind = \"decision\"\nhosts = 1\ntags = [\"quick\"]\n\
             [[workload]]\nname = \"D/b\"\nkind = \"decision\"\nhosts = 2\nthreshold = 0.1\n\
             [[workload]]\nname = \"E/c\"\nkind = \"decision\"\nhosts = 3\n",
        )
        .expect("parses");
        let names = |v: Vec<Workload>| v.into_iter().map(|w| w.name).collect::<Vec<_>>();
        assert_eq!(names(f.select(&["D".into()], &[]).unwrap()), ["D/a", "D/b"]);
        assert_eq!(names(f.select(&[], &["quick".into()]).unwrap()), ["D/a"]);
        assert_eq!(f.select(&[], &[]).unwrap().len(), 3);
        assert!(f.select(&["X".into()], &[]).unwrap_err().contains("known: D/a"));
        assert_eq!((f.threshold(&f.workloads[0]), f.threshold(&f.workloads[1])), (0.5, 0.1));
    }
}
