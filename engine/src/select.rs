//! Top-k selection by weight without sorting the survivors: each batch
//! keeps its best `k` hosts, then the per-batch lists merge.

/// A host and its weight.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scored {
    /// Total weight.
    pub weight: f64,
    /// Global host index.
    pub host: u32,
}

/// The best `k` hosts seen so far, best first, under a strict order
/// `better(a, b)` (higher weight first, then the tie-break order).
#[derive(Clone, Debug)]
pub struct TopK {
    k: usize,
    items: Vec<Scored>,
}

impl TopK {
    /// An empty list keeping at most `k` hosts.
    pub fn new(k: usize) -> Self {
        Self { k: k.max(1), items: Vec::with_capacity(k.max(1) + 1) }
    }

    /// Offers a host; kept when it beats the current `k`-th.
    #[inline]
    pub fn push(&mut self, s: Scored, better: &impl Fn(&Scored, &Scored) -> bool) {
        if self.items.len() == self.k && !better(&s, self.items.last().expect("k >= 1")) {
            return;
        }
        let pos = self.items.partition_point(|x| better(x, &s));
        self.items.insert(pos, s);
        self.items.truncate(self.k);
    }

    /// The weight a host must reach to be considered once the list is full
    /// (`None` while it is not).
    #[inline]
    pub fn threshold(&self) -> Option<f64> {
        (self.items.len() == self.k).then(|| self.items[self.k - 1].weight)
    }

    /// Merges another list into this one.
    pub fn merge(mut self, other: TopK, better: &impl Fn(&Scored, &Scored) -> bool) -> TopK {
        for s in other.items {
            self.push(s, better);
        }
        self
    }

    /// The kept hosts, best first.
    pub fn into_vec(self) -> Vec<Scored> {
        self.items
    }
}

/// Nova's order for the first instance: weight descending, ties in host
/// order (Python's stable sort over candidates in fleet order).
#[inline]
pub fn weight_then_index(a: &Scored, b: &Scored) -> bool {
    a.weight > b.weight || (a.weight == b.weight && a.host < b.host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_best_k_with_stable_ties() {
        let mut t = TopK::new(3);
        for (h, w) in [(0, 1.0), (1, 5.0), (2, 5.0), (3, 2.0), (4, 5.0), (5, 0.5)] {
            t.push(Scored { weight: w, host: h }, &weight_then_index);
        }
        let hosts: Vec<u32> = t.into_vec().iter().map(|s| s.host).collect();
        assert_eq!(hosts, vec![1, 2, 4]);
    }

    #[test]
    fn merge_equals_single_pass() {
        let data: Vec<Scored> = (0..500).map(|h| Scored { weight: ((h * 7919) % 97) as f64, host: h }).collect();
        let mut one = TopK::new(10);
        for s in &data {
            one.push(*s, &weight_then_index);
        }
        let (a, b) = data.split_at(200);
        let mut ta = TopK::new(10);
        let mut tb = TopK::new(10);
        a.iter().for_each(|s| ta.push(*s, &weight_then_index));
        b.iter().for_each(|s| tb.push(*s, &weight_then_index));
        assert_eq!(ta.merge(tb, &weight_then_index).into_vec(), one.into_vec());
    }
}
