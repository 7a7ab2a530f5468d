//! Dictionary codes for sorted id sets (a provider's traits, its
//! aggregates). Providers of one fleet share few distinct sets, so a request
//! evaluates its predicate once per set and gathers by code. Codes are never
//! freed: the dictionary holds every set any provider ever had, which is
//! bounded by the writes, not by the fleet.

use hashbrown::HashMap;

/// Sorted id sets and their codes, with the live rows per code.
#[derive(Clone, Debug, Default)]
pub struct SetDictionary {
    sets: Vec<Vec<u32>>,
    codes: HashMap<Vec<u32>, u32>,
    /// Live rows per code, so "does any live provider have X" needs no scan.
    rows: Vec<u32>,
}

impl SetDictionary {
    /// The code of `set` (sorted, deduplicated), allocating one if new.
    pub fn code(&mut self, set: &[u32]) -> u32 {
        if let Some(&c) = self.codes.get(set) {
            return c;
        }
        let c = self.sets.len() as u32;
        self.sets.push(set.to_vec());
        self.rows.push(0);
        self.codes.insert(set.to_vec(), c);
        c
    }

    /// A live row took (`+1`) or left (`-1`) `code`.
    pub fn count(&mut self, code: u32, delta: i32) {
        let r = &mut self.rows[code as usize];
        *r = r.saturating_add_signed(delta);
    }

    /// Whether any live row has a set for which `pred` holds.
    pub fn any_live(&self, mut pred: impl FnMut(&[u32]) -> bool) -> bool {
        self.sets.iter().zip(&self.rows).any(|(s, &n)| n > 0 && pred(s))
    }

    /// Every set some live row has, with its row count.
    pub fn live_counts(&self) -> std::collections::BTreeMap<&[u32], u32> {
        self.sets.iter().zip(&self.rows).filter(|(_, n)| **n > 0).map(|(s, &n)| (s.as_slice(), n)).collect()
    }

    /// The set behind `code`.
    pub fn set(&self, code: u32) -> &[u32] {
        &self.sets[code as usize]
    }

    /// `pred` over every set, indexed by code.
    pub fn table(&self, mut pred: impl FnMut(&[u32]) -> bool) -> Vec<bool> {
        self.sets.iter().map(|s| pred(s)).collect()
    }

    /// Number of codes.
    pub fn len(&self) -> usize {
        self.sets.len()
    }

    /// True without any code.
    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_sets_share_a_code() {
        let mut d = SetDictionary::default();
        let a = d.code(&[1, 4]);
        let b = d.code(&[2]);
        assert_ne!(a, b);
        assert_eq!(d.code(&[1, 4]), a);
        assert_eq!(d.set(b), &[2]);
        assert_eq!(d.table(|s| s.contains(&4)), vec![true, false]);
    }
}
