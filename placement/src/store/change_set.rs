//! What one committed write changed, by the names the store keys its rows
//! with (provider ids, consumer uuids, resource class and trait names): the
//! body of a change-feed row, so another replica re-reads exactly those
//! rows. Encoded as text lines `p 12` (a provider), `g 12` (only its
//! generation), `c <uuid>`, `k CUSTOM_X`, `t CUSTOM_Y`; none of these keys
//! holds whitespace.

use std::collections::BTreeSet;

use crate::model::{Dirty, RpId, State};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangeSet {
    pub providers: BTreeSet<RpId>,
    /// Providers of which only the generation changed.
    pub generations: BTreeSet<RpId>,
    pub consumers: BTreeSet<String>,
    pub classes: BTreeSet<String>,
    pub traits: BTreeSet<String>,
}

impl ChangeSet {
    /// What the current write of `state` changed.
    pub fn of_write(state: &State) -> ChangeSet {
        let mut out = ChangeSet::default();
        for d in &state.dirty {
            match d {
                Dirty::Provider(id) => {
                    out.providers.insert(*id);
                }
                Dirty::Generation(id) => {
                    out.generations.insert(*id);
                }
                Dirty::Consumer(uuid) => {
                    out.consumers.insert(uuid.clone());
                }
                Dirty::Class(id) => {
                    out.classes.insert(state.classes.name(*id).to_owned());
                }
                Dirty::Trait(id) => {
                    out.traits.insert(state.traits.name(*id).to_owned());
                }
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
            && self.generations.is_empty()
            && self.consumers.is_empty()
            && self.classes.is_empty()
            && self.traits.is_empty()
    }

    /// Adds what `other` changed (several writes are applied as one).
    pub fn merge(&mut self, other: ChangeSet) {
        self.providers.extend(other.providers);
        self.generations.extend(other.generations);
        self.consumers.extend(other.consumers);
        self.classes.extend(other.classes);
        self.traits.extend(other.traits);
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        for id in &self.providers {
            out.push_str(&format!("p {id}\n"));
        }
        for id in self.generations.difference(&self.providers) {
            out.push_str(&format!("g {id}\n"));
        }
        for (tag, names) in [("c", &self.consumers), ("k", &self.classes), ("t", &self.traits)] {
            for n in names {
                out.push_str(tag);
                out.push(' ');
                out.push_str(n);
                out.push('\n');
            }
        }
        out
    }

    /// Reads an encoded body; `None` when a line is not one this build
    /// writes (the caller reloads everything rather than guess).
    pub fn decode(body: &str) -> Option<ChangeSet> {
        let mut out = ChangeSet::default();
        for line in body.lines().filter(|l| !l.is_empty()) {
            let (tag, key) = line.split_once(' ')?;
            match tag {
                "p" => {
                    out.providers.insert(key.parse().ok()?);
                }
                "g" => {
                    out.generations.insert(key.parse().ok()?);
                }
                "c" => {
                    out.consumers.insert(key.to_owned());
                }
                "k" => {
                    out.classes.insert(key.to_owned());
                }
                "t" => {
                    out.traits.insert(key.to_owned());
                }
                _ => return None,
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_set_reads_back_what_it_wrote_and_refuses_what_it_does_not_know() {
        let set = ChangeSet {
            providers: BTreeSet::from([3, 12]),
            generations: BTreeSet::from([4]),
            consumers: BTreeSet::from(["4a0c8f3e-0000-4000-8000-000000000001".to_owned()]),
            classes: BTreeSet::from(["CUSTOM_FPGA".to_owned()]),
            traits: BTreeSet::from(["CUSTOM_GOLD".to_owned(), "HW_CPU_X86_AVX2".to_owned()]),
        };
        assert_eq!(ChangeSet::decode(&set.encode()), Some(set.clone()));
        assert_eq!(ChangeSet::decode(""), Some(ChangeSet::default()));
        assert_eq!(ChangeSet::decode("x 1\n"), None);
        assert_eq!(ChangeSet::decode("p twelve\n"), None);
        let mut merged = ChangeSet { providers: BTreeSet::from([1]), ..Default::default() };
        merged.merge(set);
        assert_eq!(merged.providers, BTreeSet::from([1, 3, 12]));
        assert!(!merged.is_empty());
    }
}
