//! One benchmark figure: its repetitions summarized as median, extremes
//! and spread, so every number travels with how far it can be trusted.

use serde::{Deserialize, Serialize};

/// Which way is better for a figure (times: lower; rates: higher).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// A time or a cost.
    Lower,
    /// A rate or a speed-up.
    Higher,
}

/// What a figure is to its workload: `compare` fails a run only on its
/// headline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The figure the workload exists to measure.
    Headline,
    /// The same work done another way, measured in the same run.
    Baseline,
    /// Headline over baseline, pair by pair.
    Ratio,
    /// Anything else worth keeping.
    #[default]
    Detail,
}

/// A figure above this relative spread is flagged noisy: the middle 80% of
/// its repetitions lie further apart than a fifth of its median. (Quiet
/// runs on the 2-core development boxes stay under 10% for decisions and
/// replays, and under 20% for sub-millisecond HTTP round trips.)
pub const NOISY_SPREAD: f64 = 0.20;

/// The summary of one measured quantity over its repetitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// Unit of every value (`ms`, `ns`, `events/s`, `x`, ...).
    pub unit: String,
    /// Which way is better.
    pub better: Better,
    #[serde(default)]
    pub role: Role,
    /// Repetitions summarized.
    pub n: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// 10th and 90th percentiles (nearest rank).
    pub p10: f64,
    pub p90: f64,
    /// `(p90 - p10) / median`: how far apart the bulk of the repetitions
    /// lie, relative to the median; robust to one stray repetition.
    pub spread: f64,
    /// `spread` above [`NOISY_SPREAD`].
    pub noisy: bool,
}

impl Figure {
    /// Summarizes `samples` (at least one; NaNs are dropped).
    ///
    /// # Panics
    /// Never: an empty sample set gives a figure of NaNs with `n = 0`.
    pub fn of(samples: &[f64], unit: &str, better: Better) -> Self {
        let mut v: Vec<f64> = samples.iter().copied().filter(|x| !x.is_nan()).collect();
        v.sort_by(f64::total_cmp);
        let at = |p: f64| -> f64 {
            if v.is_empty() {
                return f64::NAN;
            }
            v[((v.len() - 1) as f64 * p).round() as usize]
        };
        let median = if v.is_empty() {
            f64::NAN
        } else if v.len() % 2 == 1 {
            v[v.len() / 2]
        } else {
            (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
        };
        let (p10, p90) = (at(0.1), at(0.9));
        let spread = if median != 0.0 { (p90 - p10) / median.abs() } else { 0.0 };
        Self {
            unit: unit.to_owned(),
            better,
            role: Role::Detail,
            n: v.len(),
            median,
            min: v.first().copied().unwrap_or(f64::NAN),
            max: v.last().copied().unwrap_or(f64::NAN),
            p10,
            p90,
            spread,
            noisy: spread > NOISY_SPREAD,
        }
    }

    /// The same figure in `role`.
    #[must_use]
    pub fn role(mut self, role: Role) -> Self {
        self.role = role;
        self
    }

    /// A figure known exactly (a count, a size): no spread.
    pub fn exact(value: f64, unit: &str, better: Better) -> Self {
        Self::of(&[value], unit, better)
    }

    /// The figure of `a[i] / b[i]` for samples taken in pairs (interleaved
    /// A, B, A, B ...), so background load that hits one pair hits both.
    pub fn ratio_of_pairs(a: &[f64], b: &[f64], better: Better) -> Self {
        let r: Vec<f64> = a.iter().zip(b).filter(|(_, y)| **y != 0.0).map(|(x, y)| x / y).collect();
        Self::of(&r, "x", better)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_extremes_and_spread_of_known_samples() {
        let f = Figure::of(&[5.0, 1.0, 3.0, 2.0, 4.0], "ms", Better::Lower);
        assert_eq!((f.n, f.median, f.min, f.max), (5, 3.0, 1.0, 5.0));
        // nearest rank: p10 of 5 is the first, p90 the last
        assert_eq!((f.p10, f.p90), (1.0, 5.0));
        assert!((f.spread - 4.0 / 3.0).abs() < 1e-12);
        assert!(f.noisy);
        let even = Figure::of(&[1.0, 2.0, 3.0, 4.0], "ms", Better::Lower);
        assert_eq!(even.median, 2.5);
    }

    #[test]
    fn tight_samples_are_not_noisy_and_nans_are_dropped() {
        let f = Figure::of(&[10.0, 10.1, f64::NAN, 9.9, 10.0], "ms", Better::Lower);
        assert_eq!(f.n, 4);
        assert!(!f.noisy, "{f:?}");
        assert!(Figure::of(&[], "ms", Better::Lower).median.is_nan());
    }

    #[test]
    fn ratios_pair_the_samples_they_were_taken_with() {
        let f = Figure::ratio_of_pairs(&[2.0, 4.0, 6.0], &[1.0, 2.0, 3.0], Better::Higher);
        assert_eq!((f.median, f.spread, f.unit.as_str()), (2.0, 0.0, "x"));
    }
}
