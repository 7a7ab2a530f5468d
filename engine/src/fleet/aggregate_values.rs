//! Per aggregate set, the numeric metadata values weighers read (Nova's
//! `get_weight_multiplier` overrides), computed once per key and kept
//! until the fleet's aggregates change: a weigher prepared for every
//! request (the simulator prepares one per arrival) then costs a lookup,
//! not a scan of every aggregate's metadata.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The cache. A clone starts empty: a copied fleet may get aggregates of
/// its own.
#[derive(Debug, Default)]
pub struct AggregateValues {
    entries: RwLock<HashMap<Key, Entry>>,
}

/// Values and when they were computed.
type Entry = (Stamp, Arc<Vec<f64>>);

/// A metadata key and the default's bits.
type Key = (String, u64);

/// What the fleet's aggregates looked like when an entry was computed.
pub type Stamp = (usize, usize, u64);

impl Clone for AggregateValues {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl AggregateValues {
    /// The values for `(key, default)` computed at `stamp`, or computes them
    /// with `compute` and keeps them.
    pub fn get_or(&self, key: &str, default: f64, stamp: Stamp, compute: impl FnOnce() -> Vec<f64>) -> Arc<Vec<f64>> {
        let k = (key.to_owned(), default.to_bits());
        if let Ok(m) = self.entries.read()
            && let Some((s, v)) = m.get(&k)
            && *s == stamp
        {
            return v.clone();
        }
        let v = Arc::new(compute());
        if let Ok(mut m) = self.entries.write() {
            m.insert(k, (stamp, v.clone()));
        }
        v
    }
}
