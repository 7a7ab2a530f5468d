//! Mask kernels over the provider rows (allocation candidates): one packed
//! bit per row, 64 rows a word, each over a range of words so a scan can
//! stop at `limit`. They read the same capacity, trait and aggregate
//! columns as the scheduler's filters.

use std::ops::Range;

use multiversion::multiversion;

use super::providers::NO_PARENT;
use super::{BATCH_ROWS, Fleet};
use crate::mask::Mask;

const BATCH_WORDS: usize = BATCH_ROWS / 64;

/// "`amount` more of class `rc` fits": capacity (with `max_unit`, folded
/// into `avail`), `min_unit` and `step_size`, on live providers. The unit
/// check reads a row's inventory profile only in batches where some row
/// has unit constraints (a fleet may hold a profile per provider, so no
/// table over profiles is built per request).
#[derive(Clone, Copy, Debug)]
pub struct Fits {
    rc: Option<usize>,
    amount: i64,
}

impl Fits {
    /// The predicate for `amount` of the class called `rc`.
    pub fn new(f: &Fleet, rc: &str, amount: i64) -> Fits {
        Fits { rc: f.rc_index(rc), amount }
    }

    /// The rows it holds on, as a mask.
    pub fn mask(&self, f: &Fleet) -> Mask {
        let mut out = Mask::zeros(f.len());
        let words = out.words().len();
        self.words(f, 0..words, out.words_mut());
        out
    }

    /// Words `words` of [`Fits::mask`] into `out`.
    pub fn words(&self, f: &Fleet, words: Range<usize>, out: &mut [u64]) {
        let Some(rc) = self.rc else {
            out.fill(0);
            return;
        };
        let avail = &f.usage.avail[rc];
        let rows = (words.start * 64).min(avail.len())..(words.end * 64).min(avail.len());
        capacity(&avail[rows], self.amount, out);
        for_batches(
            f,
            words.clone(),
            |b, local, out_part| {
                let c = &b.rc[rc];
                if c.units_trivial {
                    return;
                }
                let profiles = &f.inventory_profiles[rc];
                let amount = self.amount;
                let codes = &c.code[(local.start * 64).min(b.len())..(local.end * 64).min(b.len())];
                for (word, chunk) in out_part.iter_mut().zip(codes.chunks(64)) {
                    let mut bits = 0u64;
                    for (k, &code) in chunk.iter().enumerate() {
                        // Only rows that passed the capacity check are looked up.
                        if *word >> k & 1 == 1 {
                            let ok = profiles[code as usize].is_some_and(|p| {
                                i64::from(p.min_unit) <= amount && amount % i64::from(p.step_size) == 0
                            });
                            bits |= (ok as u64) << k;
                        }
                    }
                    *word &= bits;
                }
            },
            out,
        );
        and_live(f, words, out);
    }
}

#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn capacity(avail: &[i32], amount: i64, out: &mut [u64]) {
    out.fill(0);
    for (word, chunk) in out.iter_mut().zip(avail.chunks(64)) {
        let mut bits = 0u64;
        for (k, &a) in chunk.iter().enumerate() {
            bits |= ((amount <= i64::from(a)) as u64) << k;
        }
        *word = bits;
    }
}

/// Runs `f(batch, its local word range, the part of out)` over the batches
/// that words `words` cover.
fn for_batches(
    fleet: &Fleet,
    words: Range<usize>,
    mut f: impl FnMut(&super::HostBatch, Range<usize>, &mut [u64]),
    out: &mut [u64],
) {
    let mut w = words.start;
    while w < words.end {
        let bi = w / BATCH_WORDS;
        let Some(b) = fleet.batches.get(bi) else { break };
        let end = words.end.min((bi + 1) * BATCH_WORDS);
        let local = (w - bi * BATCH_WORDS)..(end - bi * BATCH_WORDS);
        f(b, local, &mut out[w - words.start..end - words.start]);
        w = end;
    }
}

fn and_live(f: &Fleet, words: Range<usize>, out: &mut [u64]) {
    for (o, l) in out.iter_mut().zip(&f.providers.live.words()[words]) {
        *o &= l;
    }
}

/// Live providers whose trait set maps to true in `table` (a predicate
/// evaluated once per distinct set, indexed by code), words `words`.
pub fn traits_words(f: &Fleet, table: &[bool], words: Range<usize>, out: &mut [u64]) {
    for_batches(
        f,
        words.clone(),
        |b, local, out_part| {
            let codes = &b.traitset[(local.start * 64).min(b.len())..(local.end * 64).min(b.len())];
            gather(codes, table, out_part);
        },
        out,
    );
    and_live(f, words, out);
}

/// Live providers whose Placement aggregate set maps to true in `table`.
pub fn aggregates_words(f: &Fleet, table: &[bool], words: Range<usize>, out: &mut [u64]) {
    let codes = &f.providers.aggset[(words.start * 64).min(f.len())..(words.end * 64).min(f.len())];
    gather(codes, table, out);
    and_live(f, words, out);
}

fn gather(codes: &[u32], table: &[bool], out: &mut [u64]) {
    out.fill(0);
    for (word, chunk) in out.iter_mut().zip(codes.chunks(64)) {
        let mut bits = 0u64;
        for (k, &code) in chunk.iter().enumerate() {
            bits |= (table[code as usize] as u64) << k;
        }
        *word = bits;
    }
}

/// [`traits_words`] over every row.
pub fn traits_mask(f: &Fleet, table: &[bool]) -> Mask {
    let mut out = Mask::zeros(f.len());
    let words = out.words().len();
    traits_words(f, table, 0..words, out.words_mut());
    out
}

/// [`aggregates_words`] over every row.
pub fn aggregates_mask(f: &Fleet, table: &[bool]) -> Mask {
    let mut out = Mask::zeros(f.len());
    let words = out.words().len();
    aggregates_words(f, table, 0..words, out.words_mut());
    out
}

/// Live providers whose root is `root`.
pub fn in_tree(f: &Fleet, root: u32) -> Mask {
    let mut m = Mask::from_fn(f.len(), |i| f.providers.root[i] == root);
    m.and_assign(&f.providers.live);
    m
}

/// Live root providers.
pub fn roots(f: &Fleet) -> Mask {
    let mut m = Mask::from_fn(f.len(), |i| f.providers.parent[i] == NO_PARENT);
    m.and_assign(&f.providers.live);
    m
}

/// The roots of the providers in `m`, as a mask over rows (a scatter; the
/// identity on a flat fleet).
pub fn roll_up(f: &Fleet, m: &Mask) -> Mask {
    let mut out = Mask::zeros(f.len());
    for i in m.iter_ones() {
        out.set(f.providers.root[i] as usize, true);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::ProviderRow;
    use crate::host::Inventory;

    #[test]
    fn fits_checks_capacity_units_and_liveness_like_placement() {
        let invs = [
            Inventory::simple("VCPU", 8, 1.0),
            Inventory { step_size: 2, ..Inventory::simple("VCPU", 8, 1.0) },
            Inventory { min_unit: 3, max_unit: 4, ..Inventory::simple("VCPU", 8, 1.0) },
            Inventory { reserved: 1, ..Inventory::simple("VCPU", 4, 2.5) },
        ];
        let mut f = Fleet::empty();
        let n = BATCH_ROWS + 150;
        let mut expect: Vec<Option<(Inventory, i64)>> = vec![];
        for i in 0..n {
            let inv = (i % 5 != 4).then(|| invs[i % 5].clone());
            let used = (i % 7) as i64;
            let list: Vec<Inventory> = inv.iter().map(|v| Inventory { used, ..v.clone() }).collect();
            f.set_provider(
                i,
                &ProviderRow { root: i as u32, parent: NO_PARENT, inventories: &list, ..Default::default() },
            );
            expect.push(inv.map(|v| (v, used)));
        }
        f.drop_provider(77);
        expect[77] = None;
        for amount in 1..10 {
            let m = Fits::new(&f, "VCPU", amount).mask(&f);
            for (i, e) in expect.iter().enumerate() {
                let want = e.as_ref().is_some_and(|(v, used)| v.record().fits(*used, amount));
                assert_eq!(m.get(i), want, "row {i} amount {amount}");
            }
        }
        assert!(Fits::new(&f, "CUSTOM_NOBODY", 1).mask(&f).none(), "a class nobody has fits nowhere");
    }

    #[test]
    fn trait_and_aggregate_gathers_cross_batches() {
        let mut f = Fleet::empty();
        let n = BATCH_ROWS + 70;
        for i in 0..n {
            let traits: &[u32] = if i % 3 == 0 { &[5] } else { &[] };
            let aggs: &[u32] = if i % 4 == 0 { &[9] } else { &[] };
            f.set_provider(
                i,
                &ProviderRow { root: i as u32, parent: NO_PARENT, traits, aggregates: aggs, ..Default::default() },
            );
        }
        let t = f.providers.traitsets.table(|s| s.contains(&5));
        let a = f.providers.aggsets.table(|s| s.contains(&9));
        let (tm, am) = (traits_mask(&f, &t), aggregates_mask(&f, &a));
        for i in 0..n {
            assert_eq!(tm.get(i), i % 3 == 0, "row {i}");
            assert_eq!(am.get(i), i % 4 == 0, "row {i}");
        }
        let mut words = vec![0u64; 3];
        let start = BATCH_WORDS - 1;
        traits_words(&f, &t, start..start + 3, &mut words);
        for k in 0..3 * 64 {
            let row = start * 64 + k;
            assert_eq!(words[k / 64] >> (k % 64) & 1 == 1, row < n && row.is_multiple_of(3), "row {row}");
        }
    }
}
