//! Resource providers: create, update (name, parent), delete, list with Placement's filters; the generation bump every provider write shares.

use std::collections::BTreeSet;

use super::ProviderFilters;
use crate::error::{Error, Result, codes};
use crate::model::{AggId, Dirty, Provider, RpId, State, TraitId, now};

impl State {
    pub fn get_provider(&self, uuid: &str) -> Result<&Provider> {
        self.provider_by_uuid(uuid)
            .ok_or_else(|| Error::not_found(format!("No resource provider with uuid {uuid} found")))
    }

    pub(super) fn provider_id(&self, uuid: &str) -> Result<RpId> {
        self.get_provider(uuid).map(|p| p.id)
    }

    pub fn create_provider(&mut self, uuid: String, name: String, parent: Option<String>) -> Result<RpId> {
        let fail = |why: &str| {
            Error::bad_request(format!(
                "Unable to create resource provider \"{name}\", {uuid}: Object action create failed because: {why}"
            ))
        };
        if self.by_uuid.contains_key(&uuid) {
            return Err(Error::conflict(
                codes::DUPLICATE_NAME,
                format!("Conflicting resource provider uuid: {uuid} already exists."),
            ));
        }
        if self.by_name.contains_key(&name) {
            return Err(Error::conflict(
                codes::DUPLICATE_NAME,
                format!("Conflicting resource provider name: {name} already exists."),
            ));
        }
        let (parent_id, root) = match parent {
            Some(ref pu) if *pu == uuid => {
                return Err(fail(
                    "parent provider UUID cannot be same as UUID. Please set parent provider UUID to None if there is no parent.",
                ));
            }
            Some(ref pu) => match self.provider_by_uuid(pu) {
                Some(p) => (Some(p.id), p.root),
                None => return Err(fail("parent provider UUID does not exist.")),
            },
            None => (None, self.providers.len() as RpId),
        };
        let id = self.providers.len() as RpId;
        let t = now();
        let p = Provider {
            id,
            uuid: uuid.clone(),
            name: name.clone(),
            generation: 0,
            parent: parent_id,
            root,
            children: BTreeSet::new(),
            inventories: vec![],
            traits: BTreeSet::new(),
            aggregates: BTreeSet::new(),
            created_at: t,
            updated_at: t,
            stored_generation: None,
        };
        self.providers.push(Some(p));
        self.by_uuid.insert(uuid, id);
        self.by_name.insert(name, id);
        if let Some(parent) = parent_id {
            self.provider_mut(parent).children.insert(id);
            self.nested += 1;
        }
        self.touch(Dirty::Provider(id));
        Ok(id)
    }

    /// PUT /resource_providers/{uuid}: rename and (1.14+) set the parent.
    pub fn update_provider(
        &mut self,
        uuid: &str,
        name: String,
        parent: Option<Option<String>>,
        allow_reparenting: bool,
    ) -> Result<RpId> {
        let id = self.provider_id(uuid)?;
        let fail = |action: &str, why: &str| {
            Error::bad_request(format!(
                "Unable to save resource provider {uuid}: Object action {action} failed because: {why}"
            ))
        };
        if let Some(&other) = self.by_name.get(&name)
            && other != id
        {
            return Err(Error::conflict(
                codes::DUPLICATE_NAME,
                format!("Conflicting resource provider {name} already exists."),
            ));
        }
        let me = self.provider(id);
        let mut new_parent = me.parent;
        if let Some(parent) = parent {
            match parent {
                Some(pu) => {
                    let Some(pp) = self.provider_by_uuid(&pu) else {
                        return Err(fail("create", "parent provider UUID does not exist."));
                    };
                    if me.parent.is_some() && me.parent != Some(pp.id) && !allow_reparenting {
                        return Err(fail("update", "re-parenting a provider is not currently allowed."));
                    }
                    if self.tree(id).contains(&pp.id) {
                        return Err(fail("update", "creating loop in the provider tree is not allowed."));
                    }
                    new_parent = Some(pp.id);
                }
                None => {
                    if me.parent.is_some() && !allow_reparenting {
                        return Err(fail("update", "un-parenting a provider is not currently allowed."));
                    }
                    new_parent = None;
                }
            }
        }
        let t = now();
        let old_name = me.name.clone();
        let old_parent = me.parent;
        if old_name != name {
            self.by_name.remove(&old_name);
            self.by_name.insert(name.clone(), id);
        }
        if new_parent != old_parent {
            if let Some(op) = old_parent {
                self.provider_mut(op).children.remove(&id);
                self.nested -= 1;
            }
            let new_root = match new_parent {
                Some(np) => {
                    self.provider_mut(np).children.insert(id);
                    self.nested += 1;
                    self.provider(np).root
                }
                None => id,
            };
            for member in self.tree(id) {
                self.provider_mut(member).root = new_root;
                self.touch(Dirty::Provider(member));
            }
            self.provider_mut(id).parent = new_parent;
        }
        let p = self.provider_mut(id);
        p.name = name;
        p.updated_at = t;
        self.touch(Dirty::Provider(id));
        Ok(id)
    }

    pub fn delete_provider(&mut self, uuid: &str) -> Result<()> {
        let Some(&id) = self.by_uuid.get(uuid) else {
            return Err(Error::not_found(format!("No resource provider with uuid {uuid} found for delete")));
        };
        let p = self.provider(id);
        if !p.children.is_empty() {
            return Err(Error::conflict(
                codes::PROVIDER_CANNOT_DELETE_PARENT,
                format!("Unable to delete parent resource provider {uuid}: It has child resource providers."),
            ));
        }
        if self.consumers.values().any(|c| c.allocations.iter().any(|a| a.rp == id)) {
            return Err(Error::conflict(
                codes::PROVIDER_IN_USE,
                format!("Unable to delete resource provider {uuid}: Resource provider has allocations."),
            ));
        }
        let p = self.providers[id as usize].take().expect("live");
        self.by_uuid.remove(&p.uuid);
        self.by_name.remove(&p.name);
        for a in &p.aggregates {
            if let Some(m) = self.agg_members.get_mut(a) {
                m.remove(&id);
            }
        }
        if let Some(parent) = p.parent {
            self.provider_mut(parent).children.remove(&id);
            self.nested -= 1;
        }
        self.touch(Dirty::Provider(id));
        Ok(())
    }

    /// GET /resource_providers with its filters, in id order.
    pub fn list_providers(&self, f: &ProviderFilters) -> Result<Vec<RpId>> {
        let mut resources = vec![];
        for (rc, amount) in &f.resources {
            let class = self.classes.get(rc).ok_or_else(|| {
                Error::bad_request(format!(
                    "Invalid resource class in resources parameter: No such resource class {rc}."
                ))
            })?;
            resources.push((class, *amount));
        }
        let required = self
            .trait_groups(&f.required)
            .map_err(|e| Error::bad_request(format!("Invalid trait(s) in \"required\" parameter: {}", e.detail)))?;
        let forbidden = self
            .trait_set(&f.forbidden_traits)
            .map_err(|e| Error::bad_request(format!("Invalid trait(s) in \"required\" parameter: {}", e.detail)))?;
        let tree_root = match &f.in_tree {
            Some(u) => match self.provider_by_uuid(u) {
                Some(p) => Some(p.root),
                None => return Ok(vec![]),
            },
            None => None,
        };
        let member_of = self.agg_groups(&f.member_of);
        let forbidden_aggs: BTreeSet<AggId> = f.forbidden_aggs.iter().filter_map(|a| self.aggs.get(a)).collect();
        let mut out = vec![];
        for p in self.live_providers() {
            if f.uuid.as_deref().is_some_and(|u| u != p.uuid) || f.name.as_deref().is_some_and(|n| n != p.name) {
                continue;
            }
            if tree_root.is_some_and(|r| r != p.root) {
                continue;
            }
            if !resources.iter().all(|&(c, amount)| p.inventory(c).is_some_and(|r| r.inv.fits(r.used, amount))) {
                continue;
            }
            if !required.iter().all(|any| any.iter().any(|t| p.traits.contains(t))) {
                continue;
            }
            if forbidden.iter().any(|t| p.traits.contains(t)) {
                continue;
            }
            if !self.in_aggs(p, &member_of, &forbidden_aggs, false) {
                continue;
            }
            out.push(p.id);
        }
        Ok(out)
    }

    /// member_of semantics: every group must meet the provider's aggregates
    /// (or, with `or_root`, its root's); no forbidden aggregate may.
    pub(crate) fn in_aggs(
        &self,
        p: &Provider,
        member_of: &[BTreeSet<AggId>],
        forbidden: &BTreeSet<AggId>,
        or_root: bool,
    ) -> bool {
        let has = |p: &Provider, g: &BTreeSet<AggId>| g.iter().any(|a| p.aggregates.contains(a));
        let root = self.provider(p.root);
        for g in member_of {
            if !(has(p, g) || (or_root && has(root, g))) {
                return false;
            }
        }
        !(has(p, forbidden) || (or_root && has(root, forbidden)))
    }

    /// Aggregate groups by id; an aggregate nobody is in becomes an empty
    /// group, which no provider meets.
    pub(crate) fn agg_groups(&self, groups: &[BTreeSet<String>]) -> Vec<BTreeSet<AggId>> {
        groups.iter().map(|g| g.iter().filter_map(|a| self.aggs.get(a)).collect()).collect()
    }

    pub(crate) fn trait_set(&self, names: &BTreeSet<String>) -> Result<BTreeSet<TraitId>> {
        let mut missing = vec![];
        let mut out = BTreeSet::new();
        for n in names {
            match self.traits.get(n) {
                Some(t) => {
                    out.insert(t);
                }
                None => missing.push(n.as_str()),
            }
        }
        if missing.is_empty() {
            Ok(out)
        } else {
            Err(Error::bad_request(format!("No such trait(s): {}.", missing.join(", "))))
        }
    }

    pub(crate) fn trait_groups(&self, groups: &[BTreeSet<String>]) -> Result<Vec<BTreeSet<TraitId>>> {
        let all: BTreeSet<String> = groups.iter().flatten().cloned().collect();
        self.trait_set(&all)?;
        Ok(groups.iter().map(|g| g.iter().filter_map(|n| self.traits.get(n)).collect()).collect())
    }

    pub(super) fn bump(&mut self, id: RpId) {
        let p = self.provider_mut(id);
        p.generation += 1;
        p.updated_at = now();
        self.touch(Dirty::Provider(id));
    }

    /// As [`State::bump`] where nothing else of the provider changed (an
    /// allocation write).
    pub(super) fn bump_generation(&mut self, id: RpId) {
        let p = self.provider_mut(id);
        p.generation += 1;
        p.updated_at = now();
        if !self.dirty.contains(&Dirty::Provider(id)) {
            self.touch(Dirty::Generation(id));
        }
    }
}
