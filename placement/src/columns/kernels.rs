//! Mask kernels over the provider table: one packed bit per provider row,
//! 64 rows a word, built by branch-free loops the compiler vectorizes
//! (dispatched at run time to AVX2 / AVX-512 where the CPU has them).

use std::ops::Range;

use multiversion::multiversion;
use quiver_engine::mask::Mask;

use super::{ClassColumn, ProviderColumns};
use crate::model::{ClassId, RpId};

/// Live providers with an inventory of `class` that `amount` more fits:
/// capacity, `min_unit <= amount <= max_unit`, `amount % step_size == 0`.
pub fn fits(cols: &ProviderColumns, class: ClassId, amount: i64) -> Mask {
    let mut out = Mask::zeros(cols.len());
    let words = out.words().len();
    fits_words(cols, class, amount, 0..words, out.words_mut());
    out
}

/// Words `words` of [`fits`] into `out` (one word per 64 rows), so a scan
/// that stops at `limit` evaluates only the rows it reaches.
pub fn fits_words(cols: &ProviderColumns, class: ClassId, amount: i64, words: Range<usize>, out: &mut [u64]) {
    let Some(col) = cols.class(class) else {
        out.fill(0);
        return;
    };
    let rows = (words.start * 64)..(words.end * 64).min(col.avail.len());
    if col.stepped == 0 {
        fits_unstepped(col, amount, rows, out);
    } else {
        fits_stepped(col, amount, rows, out);
    }
    for (o, (l, h)) in out.iter_mut().zip(cols.live.words()[words.clone()].iter().zip(&col.has.words()[words])) {
        *o &= l & h;
    }
}

#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn fits_unstepped(col: &ClassColumn, amount: i64, rows: Range<usize>, out: &mut [u64]) {
    let (avail, min, max) = (&col.avail[rows.clone()], &col.min_unit[rows.clone()], &col.max_unit[rows]);
    for (w, word) in out.iter_mut().enumerate() {
        let base = w * 64;
        let end = (base + 64).min(avail.len());
        let mut bits = 0u64;
        for i in base..end {
            let ok = (amount <= avail[i]) & (min[i] <= amount) & (amount <= max[i]);
            bits |= (ok as u64) << (i - base);
        }
        *word = bits;
    }
}

#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn fits_stepped(col: &ClassColumn, amount: i64, rows: Range<usize>, out: &mut [u64]) {
    let (avail, min, max) = (&col.avail[rows.clone()], &col.min_unit[rows.clone()], &col.max_unit[rows.clone()]);
    let step = &col.step_size[rows];
    for (w, word) in out.iter_mut().enumerate() {
        let base = w * 64;
        let end = (base + 64).min(avail.len());
        let mut bits = 0u64;
        for i in base..end {
            let ok = (amount <= avail[i]) & (min[i] <= amount) & (amount <= max[i]) & (amount % step[i] == 0);
            bits |= (ok as u64) << (i - base);
        }
        *word = bits;
    }
}

/// Live providers whose code in `codes` maps to true in `table` (a
/// predicate evaluated once per distinct trait or aggregate set).
pub fn gather(cols: &ProviderColumns, codes: &[u32], table: &[bool]) -> Mask {
    let mut out = Mask::zeros(cols.len());
    let words = out.words().len();
    gather_words(cols, codes, table, 0..words, out.words_mut());
    out
}

/// Words `words` of [`gather`] into `out`.
pub fn gather_words(cols: &ProviderColumns, codes: &[u32], table: &[bool], words: Range<usize>, out: &mut [u64]) {
    let rows = (words.start * 64)..(words.end * 64).min(codes.len());
    let codes = &codes[rows];
    for (w, (word, live)) in out.iter_mut().zip(&cols.live.words()[words]).enumerate() {
        let base = w * 64;
        let end = (base + 64).min(codes.len());
        let mut bits = 0u64;
        for i in base..end {
            bits |= (table[codes[i] as usize] as u64) << (i - base);
        }
        *word = bits & live;
    }
}

/// Live providers whose root is `root`.
pub fn in_tree(cols: &ProviderColumns, root: RpId) -> Mask {
    let mut m = Mask::from_fn(cols.len(), |i| cols.root[i] == root);
    m.and_assign(&cols.live);
    m
}

/// Live root providers.
pub fn roots(cols: &ProviderColumns) -> Mask {
    let mut m = Mask::from_fn(cols.len(), |i| cols.parent[i] == super::NO_PARENT);
    m.and_assign(&cols.live);
    m
}

/// The roots of the providers in `m`, as a mask over rows (a scatter; the
/// identity on a flat fleet).
pub fn roll_up(cols: &ProviderColumns, m: &Mask) -> Mask {
    let mut out = Mask::zeros(cols.len());
    for i in m.iter_ones() {
        out.set(cols.root[i] as usize, true);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Inventory, InventoryRecord, Provider, State};

    fn provider(id: u32, inv: Option<Inventory>, used: i64) -> Provider {
        Provider {
            id,
            uuid: format!("u{id}"),
            name: format!("n{id}"),
            generation: 0,
            parent: None,
            root: id,
            children: Default::default(),
            inventories: inv
                .map(|inv| vec![InventoryRecord { class: 0, inv, used, created_at: 0, updated_at: 0 }])
                .unwrap_or_default(),
            traits: Default::default(),
            aggregates: Default::default(),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn fits_checks_capacity_units_and_liveness_like_inventory_fits() {
        let mut s = State::with_standard_names(0);
        let invs = [
            Inventory { total: 8, ..Default::default() },
            Inventory { total: 8, step_size: 2, ..Default::default() },
            Inventory { total: 8, min_unit: 3, max_unit: 4, ..Default::default() },
            Inventory { total: 4, reserved: 1, allocation_ratio: 2.5, ..Default::default() },
        ];
        for i in 0..150u32 {
            let inv = (i % 5 != 4).then(|| invs[(i % 5) as usize].clone());
            s.providers.push(Some(provider(i, inv, i64::from(i % 7))));
        }
        s.providers[77] = None;
        let cols = ProviderColumns::build(&s);
        for amount in 1..10 {
            let m = fits(&cols, 0, amount);
            for i in 0..150usize {
                let expect =
                    s.providers[i].as_ref().and_then(|p| p.inventory(0)).is_some_and(|r| r.inv.fits(r.used, amount));
                assert_eq!(m.get(i), expect, "provider {i} amount {amount}");
            }
        }
        assert!(fits(&cols, 5, 1).none(), "a class nobody has fits nowhere");
    }
}
