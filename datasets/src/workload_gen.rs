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
        let flavor =
            classic_flavor(name).ok_or_else(|| EngineError::invalid(format!("unknown flavor {name:?} (m1.tiny .. m1.xlarge)")))?;
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
