//! A provider's aggregates.

use std::collections::BTreeSet;

use crate::error::{Error, Result, codes};
use crate::model::{AggId, Dirty, RpId, State, now};

impl State {
    pub fn set_provider_aggregates(&mut self, uuid: &str, aggs: &[String], generation: Option<i64>) -> Result<RpId> {
        let id = self.provider_id(uuid)?;
        if let Some(g) = generation
            && self.provider(id).generation != g
        {
            return Err(Error::conflict(
                codes::CONCURRENT_UPDATE,
                "Resource provider's generation already changed. Please update the generation and try again.",
            ));
        }
        let t = now();
        let new: BTreeSet<AggId> = aggs.iter().map(|a| self.aggs.intern(a, t)).collect();
        let old = std::mem::take(&mut self.provider_mut(id).aggregates);
        for a in old.difference(&new) {
            if let Some(m) = self.agg_members.get_mut(a) {
                m.remove(&id);
            }
        }
        for a in &new {
            self.agg_members.entry(*a).or_default().insert(id);
        }
        self.provider_mut(id).aggregates = new;
        if generation.is_some() {
            self.bump(id);
        } else {
            self.provider_mut(id).updated_at = t;
            self.touch(Dirty::Provider(id));
        }
        Ok(id)
    }
}
