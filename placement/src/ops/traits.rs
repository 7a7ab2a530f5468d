//! Traits: custom ones created and deleted, listed; a provider's traits set and removed.

use std::collections::BTreeSet;

use crate::error::{Error, Result, codes};
use crate::model::{Dirty, RpId, State, TraitId, now};

impl State {
    /// PUT /traits/{name}: true when created.
    pub fn ensure_trait(&mut self, name: &str) -> bool {
        if self.traits.get(name).is_some() {
            return false;
        }
        let id = self.traits.intern(name, now());
        self.touch(Dirty::Trait(id));
        true
    }

    pub fn delete_trait(&mut self, name: &str) -> Result<()> {
        let Some(id) = self.traits.get(name) else {
            return Err(Error::not_found(format!("No such trait(s): {name}.")));
        };
        if self.is_standard_trait(id) {
            return Err(Error::bad_request(format!("Cannot delete standard trait {name}.")));
        }
        if self.live_providers().any(|p| p.traits.contains(&id)) {
            return Err(Error::conflict(codes::DEFAULT, format!("The trait {name} is in use by a resource provider.")));
        }
        self.traits.kill(id);
        self.touch(Dirty::Trait(id));
        Ok(())
    }

    /// GET /traits: `name` is `in:A,B` or `startswith:P`; `associated`
    /// keeps traits that some provider has (or has not).
    pub fn list_traits(&self, name: Option<&str>, associated: Option<bool>) -> Result<Vec<TraitId>> {
        let used: BTreeSet<TraitId> = match associated {
            Some(_) => self.live_providers().flat_map(|p| p.traits.iter().copied()).collect(),
            None => BTreeSet::new(),
        };
        let filter: Box<dyn Fn(&str) -> bool> = match name {
            None => Box::new(|_| true),
            Some(v) if v.starts_with("in:") => {
                let set: BTreeSet<String> = v[3..].split(',').map(|s| s.trim().to_string()).collect();
                Box::new(move |n| set.contains(n))
            }
            Some(v) if v.starts_with("startswith:") => {
                let prefix = v["startswith:".len()..].to_string();
                Box::new(move |n| n.starts_with(&prefix))
            }
            Some(v) => {
                return Err(Error::bad_request(format!(
                    "Badly formatted name parameter. Expected name query string parameter in form: ?name=[in|startswith]:[name1,name2|prefix]. Got: \"{v}\""
                )));
            }
        };
        let mut out: Vec<TraitId> = self
            .traits
            .live_ids()
            .filter(|&t| filter(self.traits.name(t)))
            .filter(|t| associated.is_none_or(|a| used.contains(t) == a))
            .collect();
        out.sort_by(|a, b| self.traits.name(*a).cmp(self.traits.name(*b)));
        Ok(out)
    }

    pub fn set_provider_traits(&mut self, uuid: &str, generation: i64, names: &[String]) -> Result<RpId> {
        let id = self.provider_id(uuid)?;
        if self.provider(id).generation != generation {
            return Err(Error::conflict(
                codes::CONCURRENT_UPDATE,
                "Resource provider's generation already changed. Please update the generation and try again.",
            ));
        }
        let set: BTreeSet<String> = names.iter().cloned().collect();
        let missing: Vec<&str> = set.iter().filter(|n| self.traits.get(n).is_none()).map(String::as_str).collect();
        if !missing.is_empty() {
            return Err(Error::bad_request(format!("No such trait {}", missing.join(", "))));
        }
        let ids = self.trait_set(&set)?;
        self.provider_mut(id).traits = ids;
        self.bump(id);
        Ok(id)
    }

    pub fn delete_provider_traits(&mut self, uuid: &str) -> Result<()> {
        let id = self.provider_id(uuid)?;
        self.provider_mut(id).traits.clear();
        self.bump(id);
        Ok(())
    }
}
