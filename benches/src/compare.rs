//! Two runs side by side: per workload and figure the change of the
//! median, and a verdict that accounts for each run's spread.
//!
//! The rule: a change is *within noise* when the two runs' middle 80%
//! ranges (`p10..p90`) overlap, or when the ratio of the medians lies
//! within `1 + s` either way (`s` the wider of the two spreads, so 2x
//! slower and 2x faster are judged alike); otherwise it is *faster* or
//! *slower* (in the figure's own direction). The spread counts as at
//! least 5%, and as 20% for a figure measured fewer than three times. A headline figure that is slower by more than the
//! workload's threshold is a *regression*, and `quiver bench compare`
//! exits non-zero.

use serde::Serialize;

use crate::run_document::RunDocument;
use crate::stats::{Better, Figure, Role};

/// The least noise assumed for a figure measured three times or more: a
/// change under 5% is never called on a shared machine.
pub const MIN_NOISE: f64 = 0.05;
/// The noise assumed when a run measured a figure fewer than three times
/// (its spread says nothing).
pub const UNKNOWN_NOISE: f64 = 0.20;

/// What a change means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Faster,
    Slower,
    WithinNoise,
    /// Only in the new run.
    New,
    /// Only in the old run.
    Gone,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Faster => "faster",
            Verdict::Slower => "slower",
            Verdict::WithinNoise => "within noise",
            Verdict::New => "new",
            Verdict::Gone => "gone",
        })
    }
}

/// One figure's change between two runs.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub workload: String,
    pub figure: String,
    pub role: Role,
    pub unit: String,
    pub old: Option<f64>,
    pub new: Option<f64>,
    /// `new / old - 1` of the medians (sign as measured).
    pub change: f64,
    /// How much worse, relative, in the figure's direction (negative:
    /// better): `new / old - 1` for times, `old / new - 1` for rates.
    pub worse_by: f64,
    pub verdict: Verdict,
    /// A slower headline beyond the workload's threshold.
    pub regression: bool,
    /// The threshold applied (the new run's).
    pub threshold: f64,
}

/// The verdict on one figure between two runs.
pub fn judge(old: &Figure, new: &Figure) -> (f64, Verdict) {
    let worse_by = match old.better {
        Better::Lower => new.median / old.median - 1.0,
        Better::Higher => old.median / new.median - 1.0,
    };
    let overlap = old.p10 <= new.p90 && new.p10 <= old.p90;
    // symmetric in ratio: 2x slower and 2x faster are equally far
    let floor = if old.n < 3 || new.n < 3 { UNKNOWN_NOISE } else { MIN_NOISE };
    let band = 1.0 + old.spread.max(new.spread).max(floor);
    let ratio = 1.0 + worse_by;
    let verdict = if !worse_by.is_finite() || overlap || (ratio <= band && ratio >= 1.0 / band) {
        Verdict::WithinNoise
    } else if worse_by > 0.0 {
        Verdict::Slower
    } else {
        Verdict::Faster
    };
    (worse_by, verdict)
}

/// Every figure of every workload of either run, in the new run's order
/// (then what only the old run has).
pub fn compare(old: &RunDocument, new: &RunDocument) -> Vec<Change> {
    let mut out = Vec::new();
    for n in &new.results {
        let o = old.results.iter().find(|o| o.name == n.name);
        for (name, nf) in &n.figures {
            let of = o.and_then(|o| o.figures.get(name));
            let (worse_by, verdict) = match of {
                Some(of) => judge(of, nf),
                None => (0.0, Verdict::New),
            };
            let regression = verdict == Verdict::Slower && nf.role == Role::Headline && worse_by > n.threshold;
            out.push(Change {
                workload: n.name.clone(),
                figure: name.clone(),
                role: nf.role,
                unit: nf.unit.clone(),
                old: of.map(|f| f.median),
                new: Some(nf.median),
                change: of.map_or(0.0, |of| nf.median / of.median - 1.0),
                worse_by,
                verdict,
                regression,
                threshold: n.threshold,
            });
        }
        if let Some(o) = o {
            for (name, of) in o.figures.iter().filter(|(k, _)| !n.figures.contains_key(*k)) {
                out.push(gone(&o.name, name, of, n.threshold));
            }
        }
    }
    for o in old.results.iter().filter(|o| !new.results.iter().any(|n| n.name == o.name)) {
        for (name, of) in &o.figures {
            out.push(gone(&o.name, name, of, o.threshold));
        }
    }
    out
}

fn gone(workload: &str, figure: &str, of: &Figure, threshold: f64) -> Change {
    Change {
        workload: workload.to_owned(),
        figure: figure.to_owned(),
        role: of.role,
        unit: of.unit.clone(),
        old: Some(of.median),
        new: None,
        change: 0.0,
        worse_by: 0.0,
        verdict: Verdict::Gone,
        regression: false,
        threshold,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fig(samples: &[f64], better: Better) -> Figure {
        Figure::of(samples, "ms", better).role(Role::Headline)
    }

    #[test]
    fn overlapping_runs_are_within_noise_and_disjoint_ones_are_judged() {
        let a = fig(&[10.0, 10.2, 9.9, 10.1, 10.0], Better::Lower);
        let b = fig(&[10.1, 10.3, 10.0, 10.2, 10.1], Better::Lower);
        assert_eq!(judge(&a, &b).1, Verdict::WithinNoise);
        let slow = fig(&[20.0, 20.4, 19.8, 20.2, 20.0], Better::Lower);
        let (w, v) = judge(&a, &slow);
        assert_eq!(v, Verdict::Slower);
        assert!((w - 1.0).abs() < 1e-12);
        assert_eq!(judge(&slow, &a).1, Verdict::Faster);
        // a rate that halves is slower too
        let (ra, rb) = (fig(&[100.0, 101.0, 99.0], Better::Higher), fig(&[50.0, 50.5, 49.5], Better::Higher));
        assert_eq!(judge(&ra, &rb), (1.0, Verdict::Slower));
    }

    #[test]
    fn small_changes_and_single_samples_are_not_called() {
        let a = fig(&[10.0, 10.0, 10.0, 10.0, 10.0], Better::Lower);
        let b = fig(&[10.4, 10.4, 10.4, 10.4, 10.4], Better::Lower);
        assert_eq!(judge(&a, &b).1, Verdict::WithinNoise);
        let (one, other) = (fig(&[10.0], Better::Lower), fig(&[11.5], Better::Lower));
        assert_eq!(judge(&one, &other).1, Verdict::WithinNoise);
        assert_eq!(judge(&one, &fig(&[13.0], Better::Lower)).1, Verdict::Slower);
    }

    #[test]
    fn a_change_and_its_reverse_are_judged_alike() {
        // wide runs: 2x apart, each spreading 60%
        let a = fig(&[7.0, 7.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 13.0, 13.0], Better::Lower);
        let b = fig(&[14.0, 14.0, 20.0, 20.0, 20.0, 20.0, 20.0, 20.0, 26.0, 26.0], Better::Lower);
        assert_eq!(judge(&a, &b).1, Verdict::Slower);
        assert_eq!(judge(&b, &a).1, Verdict::Faster);
    }

    #[test]
    fn a_wide_spread_swallows_a_change_its_ranges_do_not_show() {
        // disjoint middles, but each run spreads wider than the change
        let a = fig(&[6.0, 7.0, 10.0, 12.9, 14.0, 10.0, 10.0, 10.0, 10.0, 10.0], Better::Lower);
        let b = fig(&[10.9, 13.0, 13.0, 13.0, 13.0, 13.0, 13.0, 13.0, 13.0, 15.0], Better::Lower);
        let (w, v) = judge(&a, &b);
        assert!(w > 0.25 && w < 0.35, "{w}");
        assert_eq!(v, Verdict::WithinNoise);
    }
}
