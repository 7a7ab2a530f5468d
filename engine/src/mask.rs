//! Packed host bitmasks: 64 hosts per `u64` word, bit `i % 64` of word
//! `i / 64` is host `i`. Filters produce masks and masks combine word by word
//! (CONVENTIONS.md rule 5: never a `Vec<bool>` on a hot path).

/// A packed bitmask over a range of hosts.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Mask {
    words: Vec<u64>,
    len: usize,
}

impl Mask {
    /// A mask of `len` hosts, all cleared.
    pub fn zeros(len: usize) -> Self {
        Self { words: vec![0; len.div_ceil(64)], len }
    }

    /// A mask of `len` hosts, all set (bits past `len` stay clear).
    pub fn ones(len: usize) -> Self {
        let mut m = Self { words: vec![u64::MAX; len.div_ceil(64)], len };
        m.clear_tail();
        m
    }

    /// Builds a mask from a predicate evaluated for every host, 64 at a time,
    /// without branching inside a word (the shape of arrow's `collect_bool`).
    #[inline]
    pub fn from_fn(len: usize, mut f: impl FnMut(usize) -> bool) -> Self {
        let mut words = Vec::with_capacity(len.div_ceil(64));
        let full = len / 64;
        for w in 0..full {
            let base = w * 64;
            let mut word = 0u64;
            for b in 0..64 {
                word |= (f(base + b) as u64) << b;
            }
            words.push(word);
        }
        let rem = len % 64;
        if rem > 0 {
            let base = full * 64;
            let mut word = 0u64;
            for b in 0..rem {
                word |= (f(base + b) as u64) << b;
            }
            words.push(word);
        }
        Self { words, len }
    }

    /// Appends one host's bit (a fleet that grows in place).
    pub fn push(&mut self, v: bool) {
        if self.len.is_multiple_of(64) {
            self.words.push(0);
        }
        self.len += 1;
        self.set(self.len - 1, v);
    }

    /// Wraps existing words; bits past `len` are cleared.
    pub fn from_words(words: Vec<u64>, len: usize) -> Self {
        assert_eq!(words.len(), len.div_ceil(64), "word count does not match length");
        let mut m = Self { words, len };
        m.clear_tail();
        m
    }

    fn clear_tail(&mut self) {
        let rem = self.len % 64;
        if rem != 0
            && let Some(last) = self.words.last_mut()
        {
            *last &= (1u64 << rem) - 1;
        }
    }

    /// Number of hosts the mask covers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the mask covers no host.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The packed words.
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// The packed words, mutable.
    pub fn words_mut(&mut self) -> &mut [u64] {
        &mut self.words
    }

    /// Whether host `i` is set.
    #[inline]
    pub fn get(&self, i: usize) -> bool {
        (self.words[i / 64] >> (i % 64)) & 1 == 1
    }

    /// Sets host `i` to `v`.
    #[inline]
    pub fn set(&mut self, i: usize, v: bool) {
        let w = &mut self.words[i / 64];
        let bit = 1u64 << (i % 64);
        if v {
            *w |= bit;
        } else {
            *w &= !bit;
        }
    }

    /// Number of set bits.
    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// True when no bit is set.
    pub fn none(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// `self &= other`, word by word.
    pub fn and_assign(&mut self, other: &Mask) {
        debug_assert_eq!(self.len, other.len);
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a &= *b;
        }
    }

    /// `self |= other`, word by word.
    pub fn or_assign(&mut self, other: &Mask) {
        debug_assert_eq!(self.len, other.len);
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= *b;
        }
    }

    /// `self &= !other`, word by word.
    pub fn and_not_assign(&mut self, other: &Mask) {
        debug_assert_eq!(self.len, other.len);
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a &= !*b;
        }
    }

    /// Indices of set bits, in ascending order.
    pub fn iter_ones(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(wi, &w)| BitIter { word: w, base: wi * 64 })
    }
}

/// Iterates the set bits of one word.
pub struct BitIter {
    word: u64,
    base: usize,
}

impl BitIter {
    /// Iterates the set bits of `word`, reporting `base + bit`.
    pub fn new(word: u64, base: usize) -> Self {
        Self { word, base }
    }
}

impl Iterator for BitIter {
    type Item = usize;
    #[inline]
    fn next(&mut self) -> Option<usize> {
        if self.word == 0 {
            return None;
        }
        let tz = self.word.trailing_zeros() as usize;
        self.word &= self.word - 1;
        Some(self.base + tz)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ones_clears_tail_and_counts() {
        let m = Mask::ones(130);
        assert_eq!(m.count(), 130);
        assert_eq!(m.words().len(), 3);
        assert_eq!(m.words()[2], 0b11);
    }

    #[test]
    fn from_fn_matches_predicate_and_iterates_in_order() {
        let m = Mask::from_fn(200, |i| i % 3 == 0);
        let ones: Vec<usize> = m.iter_ones().collect();
        let expect: Vec<usize> = (0..200).filter(|i| i % 3 == 0).collect();
        assert_eq!(ones, expect);
    }

    #[test]
    fn or_and_not_combine_word_by_word() {
        let mut a = Mask::from_fn(100, |i| i % 2 == 0);
        a.or_assign(&Mask::from_fn(100, |i| i % 3 == 0));
        assert_eq!(a.count(), (0..100).filter(|i| i % 2 == 0 || i % 3 == 0).count());
        a.and_not_assign(&Mask::from_fn(100, |i| i % 5 == 0));
        assert_eq!(
            a.iter_ones().collect::<Vec<_>>(),
            (0..100).filter(|i| (i % 2 == 0 || i % 3 == 0) && i % 5 != 0).collect::<Vec<_>>()
        );
    }

    #[test]
    fn and_assign_intersects() {
        let mut a = Mask::from_fn(100, |i| i % 2 == 0);
        let b = Mask::from_fn(100, |i| i % 5 == 0);
        a.and_assign(&b);
        assert_eq!(a.iter_ones().collect::<Vec<_>>(), (0..100).filter(|i| i % 10 == 0).collect::<Vec<_>>());
    }
}
