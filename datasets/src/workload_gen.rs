//! Seeded synthetic workloads: Poisson arrivals (exponential gaps at
//! `rate` per second), exponential lifetimes with a given mean, and flavors
//! drawn from a weighted list. The same spec always gives the same
//! workload.

use quiver_engine::request::BootRequest;
use quiver_engine::sim::{SimRequest, Workload, WorkloadBuilder};
use quiver_engine::{EngineError, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, weighted::WeightedIndex};

use crate::trace::classic_flavor;

/// Options of the synthetic workload.
#[derive(Clone, Debug)]
pub struct WorkloadSpec {
    /// Number of requests.
    pub requests: usize,
    /// Mean arrivals per second.
    pub rate: f64,
    /// Mean lifetime, seconds.
    pub mean_lifetime: f64,
    /// `(classic flavor name, weight)`.
    pub flavors: Vec<(String, f64)>,
    /// Seed.
    pub seed: u64,
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        Self {
            requests: 100_000,
            rate: 10.0,
            mean_lifetime: 3600.0,
            flavors: vec![
                ("m1.tiny".into(), 0.1),
                ("m1.small".into(), 0.35),
                ("m1.medium".into(), 0.3),
                ("m1.large".into(), 0.2),
                ("m1.xlarge".into(), 0.05),
            ],
            seed: 1,
        }
    }
}

/// Generates the workload.
///
/// # Errors
/// A non-positive rate or lifetime, an unknown flavor, or bad weights.
pub fn generate_workload(spec: &WorkloadSpec) -> Result<Workload> {
    let gaps = Exp::new(spec.rate).map_err(|_| EngineError::invalid("arrival rate must be > 0"))?;
    let lifetimes = Exp::new(1.0 / spec.mean_lifetime)
        .ok()
        .filter(|_| spec.mean_lifetime > 0.0)
        .ok_or_else(|| EngineError::invalid("mean lifetime must be > 0"))?;
    let pick = WeightedIndex::new(spec.flavors.iter().map(|f| f.1))
        .map_err(|e| EngineError::invalid(format!("flavor weights: {e}")))?;
    let mut w = WorkloadBuilder::new();
    let mut classes = Vec::new();
    for (name, _) in &spec.flavors {
        let flavor = classic_flavor(name)
            .ok_or_else(|| EngineError::invalid(format!("unknown flavor {name:?} (m1.tiny .. m1.xlarge)")))?;
        classes.push(w.class(BootRequest { flavor, ..Default::default() })?);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let mut t = 0.0;
    for _ in 0..spec.requests {
        t += gaps.sample(&mut rng);
        let life = lifetimes.sample(&mut rng);
        let class = classes[pick.sample(&mut rng)];
        w.push(SimRequest { arrival: t, departure: Some(t + life), class, group: None });
    }
    Ok(w.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::{FleetSpec, generate};
    use quiver_engine::sim::{Policy, SimOptions, run_policy};

    fn setup() -> (quiver_engine::Fleet, Workload) {
        let fleet = generate(&FleetSpec { hosts: 300, seed: 3, with_instances: false }, |_| {}).unwrap();
        // enough load to fill the fleet and reject some
        let spec = WorkloadSpec {
            requests: 6000,
            rate: 50.0,
            mean_lifetime: 3000.0,
            flavors: vec![("m1.large".into(), 1.0), ("m1.xlarge".into(), 2.0)],
            seed: 9,
        };
        (fleet, generate_workload(&spec).unwrap())
    }

    #[test]
    fn same_seed_same_workload() {
        let spec = WorkloadSpec { requests: 500, ..Default::default() };
        let a = generate_workload(&spec).unwrap();
        let b = generate_workload(&spec).unwrap();
        assert_eq!(a.requests, b.requests);
        let c = generate_workload(&WorkloadSpec { seed: 2, ..spec }).unwrap();
        assert_ne!(a.requests, c.requests);
    }

    #[test]
    fn same_seed_same_simulation() {
        let (fleet, w) = setup();
        let p = Policy::parse("subset", "[filter_scheduler]\nhost_subset_size = 3\n").unwrap();
        let opts = SimOptions { seed: 7, sample_interval: None, compaction: false, fast: true, until: None };
        let a = run_policy(&fleet, &w, &p, &opts, &mut |_| {}).unwrap();
        let b = run_policy(&fleet, &w, &p, &opts, &mut |_| {}).unwrap();
        assert_eq!(a.counts, b.counts);
        assert_eq!(a.timeline, b.timeline);
        assert!(a.counts.accepted > 0 && a.counts.rejected > 0, "{:?}", a.counts);
    }

    /// The fast path must pick exactly the host the full pipeline picks:
    /// same counters and the same usage at every sample, for spread, pack
    /// and Nova's defaults (with the generated fleet's aggregate weight
    /// overrides).
    #[test]
    fn fast_path_decides_like_the_full_pipeline() {
        let (fleet, w) = setup();
        for (name, text) in [
            ("default", ""),
            ("pack", "[filter_scheduler]\nram_weight_multiplier = -1.0\ncpu_weight_multiplier = -1.0\n"),
            ("ram", "[filter_scheduler]\nweight_classes = [\"RAMWeigher\", \"IoOpsWeigher\"]\n"),
            // A seeded pick among the best 3: both paths draw alike.
            ("subset", "[filter_scheduler]\nhost_subset_size = 3\n"),
            // Counter filters: checked per host on the fast path, and
            // binding (3 instances a host, more where aggregates say).
            (
                "counters",
                "[filter_scheduler]\nenabled_filters = [\"ComputeFilter\", \"AggregateNumInstancesFilter\", \"IoOpsFilter\"]\n\
                 max_instances_per_host = 3\nnum_instances_weight_multiplier = -1.0\n",
            ),
        ] {
            let p = Policy::parse(name, text).unwrap();
            let run = |fast| {
                let opts = SimOptions { seed: 1, sample_interval: Some(60.0), compaction: false, fast, until: None };
                run_policy(&fleet, &w, &p, &opts, &mut |_| {}).unwrap()
            };
            let (f, s) = (run(true), run(false));
            assert!(f.counts.fast_decisions > f.counts.accepted / 2, "{name}: fast path barely used");
            assert_eq!(s.counts.fast_decisions, 0);
            let strip = |c: &quiver_engine::sim::Counts| quiver_engine::sim::Counts { fast_decisions: 0, ..c.clone() };
            assert_eq!(strip(&f.counts), strip(&s.counts), "{name}");
            assert_eq!(f.timeline, s.timeline, "{name}");
            // Rejections are decided (and named) by the fast path too.
            assert!(f.counts.rejected > 0 && !f.counts.rejected_by_filter.is_empty(), "{name}: {:?}", f.counts);
        }
    }
}
