//! Per aggregate set, the numeric metadata values weighers read (Nova's
//! `get_weight_multiplier` overrides), computed once per key and kept
//! until the fleet's aggregates change: a weigher prepared for every
//! request (the simulator prepares one per arrival) then costs a lookup,
//! not a scan of every aggregate's metadata.

use std::sync::{Arc, RwLock};

/// The cache: a handful of keys (one per weigher option with aggregate
/// overrides), so a list scanned without allocating beats hashing an owned
/// key on every call. A clone starts empty: a copied fleet may get
/// aggregates of its own.
#[derive(Debug, Default)]
pub struct AggregateValues {
    entries: RwLock<Vec<Entry>>,
}

/// A metadata key, the default's bits, when the values were computed, and
/// the values.
type Entry = (String, u64, Stamp, Arc<Vec<f64>>);

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
        let bits = default.to_bits();
        if let Ok(m) = self.entries.read()
            && let Some(e) = m.iter().find(|e| e.1 == bits && e.0 == key && e.2 == stamp)
        {
            return e.3.clone();
        }
        let v = Arc::new(compute());
        if let Ok(mut m) = self.entries.write() {
            m.retain(|e| !(e.1 == bits && e.0 == key));
            m.push((key.to_owned(), bits, stamp, v.clone()));
        }
        v
    }
}
