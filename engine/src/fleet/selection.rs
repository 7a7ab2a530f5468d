//! Live hosts by aggregate or availability zone (what an operator names
//! when draining or planning a part of the fleet).

use super::{Fleet, NO_AZ};

impl Fleet {
    /// The live hosts in the aggregate named `name`, in index order; `None`
    /// when the fleet has no such aggregate.
    pub fn hosts_in_aggregate(&self, name: &str) -> Option<Vec<usize>> {
        let a = self.aggregates.iter().position(|a| a.name == name)? as u32;
        Some(
            (0..self.len())
                .filter(|&h| self.is_live(h))
                .filter(|&h| {
                    let (b, r) = self.locate(h);
                    self.aggsets[b.aggset[r] as usize].contains(&a)
                })
                .collect(),
        )
    }

    /// The live hosts in availability zone `zone`, in index order.
    pub fn hosts_in_zone(&self, zone: &str) -> Vec<usize> {
        (0..self.len()).filter(|&h| self.is_live(h) && self.zone_of(h) == Some(zone)).collect()
    }

    /// Host `h`'s availability zone; `None` when it is in none.
    pub fn zone_of(&self, h: usize) -> Option<&str> {
        let (b, r) = self.locate(h);
        (b.az[r] != NO_AZ).then(|| self.azs.name(b.az[r]))
    }
}
