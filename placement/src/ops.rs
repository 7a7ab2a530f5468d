//! The writes and queries of the Placement API, on [`State`]. Every write
//! validates before it mutates and records what it touched in `dirty`; the
//! messages and codes are Placement's.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Error, Result, codes};
use crate::model::{
    AggId, Allocation, ClassId, Consumer, Dirty, Inventory, InventoryRecord, Provider, RpId, State, TraitId, now,
};

/// One consumer's allocations in a write (PUT or POST /allocations, reshaper).
#[derive(Clone, Debug, Default)]
pub struct ConsumerWrite {
    pub consumer: String,
    pub project: Option<String>,
    pub user: Option<String>,
    /// `None` when the microversion predates consumer generations.
    pub generation_check: Option<Option<i64>>,
    /// `None` when the microversion predates consumer types.
    pub consumer_type: Option<String>,
    /// Provider UUID to (class, amount); empty deletes the allocations.
    pub allocations: Vec<(String, Vec<(String, i64)>)>,
}

/// Consumer type to (used per class, consumer count).
pub type UsagesByType = BTreeMap<String, (BTreeMap<String, i64>, u64)>;

/// One provider's part of a reshape: uuid, generation, new inventory.
pub type ReshapeInventory = (String, i64, Vec<(String, Inventory)>);

/// Which message family the allocation write reports errors in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocationWriteKind {
    Put,
    Post,
    Reshape,
}

/// Filters of `GET /resource_providers`.
#[derive(Clone, Debug, Default)]
pub struct ProviderFilters {
    pub uuid: Option<String>,
    pub name: Option<String>,
    pub member_of: Vec<BTreeSet<String>>,
    pub forbidden_aggs: BTreeSet<String>,
    pub in_tree: Option<String>,
    pub resources: Vec<(String, i64)>,
    pub required: Vec<BTreeSet<String>>,
    pub forbidden_traits: BTreeSet<String>,
}

pub const INCOMPLETE_CONSUMER_PROJECT: &str = "00000000-0000-0000-0000-000000000000";
pub const INCOMPLETE_CONSUMER_USER: &str = "00000000-0000-0000-0000-000000000000";

impl State {
    // ----- resource providers -------------------------------------------

    pub fn get_provider(&self, uuid: &str) -> Result<&Provider> {
        self.provider_by_uuid(uuid)
            .ok_or_else(|| Error::not_found(format!("No resource provider with uuid {uuid} found")))
    }

    fn provider_id(&self, uuid: &str) -> Result<RpId> {
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

    fn bump(&mut self, id: RpId) {
        let p = self.provider_mut(id);
        p.generation += 1;
        p.updated_at = now();
        self.touch(Dirty::Provider(id));
    }

    // ----- inventories -----------------------------------------------------

    fn check_capacity(&self, uuid: &str, class: &str, inv: &Inventory, reserved_can_be_total: bool) -> Result<()> {
        let bad = if reserved_can_be_total { inv.capacity() < 0 } else { inv.capacity() <= 0 };
        if bad {
            let tail = if reserved_can_be_total {
                "The reserved value is greater than total."
            } else {
                "The reserved value is greater than or equal to total."
            };
            return Err(Error::bad_request(format!(
                "Invalid inventory for '{class}' on resource provider '{uuid}'. {tail}"
            )));
        }
        Ok(())
    }

    /// Replaces all inventory of a provider (PUT .../inventories, reshaper).
    pub fn set_inventories(
        &mut self,
        uuid: &str,
        generation: i64,
        inventories: &[(String, Inventory)],
        reserved_can_be_total: bool,
    ) -> Result<RpId> {
        let id = self.provider_id(uuid)?;
        if self.provider(id).generation != generation {
            return Err(Error::conflict(codes::CONCURRENT_UPDATE, "resource provider generation conflict"));
        }
        let mut new = vec![];
        for (rc, inv) in inventories {
            let Some(class) = self.classes.get(rc) else {
                return Err(Error::bad_request(format!(
                    "Unknown resource class in inventory for resource provider {uuid}: No such resource class {rc}."
                )));
            };
            self.check_capacity(uuid, rc, inv, reserved_can_be_total).map_err(|e| {
                Error::bad_request(format!("Unable to update inventory for resource provider {uuid}: {}", e.detail))
            })?;
            new.push((class, inv.clone()));
        }
        self.check_not_in_use(id, &new, "update conflict: ")?;
        self.replace_inventories(id, new);
        Ok(id)
    }

    /// Placement's `InventoryInUse`: replacing the inventory of `id` with
    /// `new` must not drop a class that has allocations.
    fn check_not_in_use(&self, id: RpId, new: &[(ClassId, Inventory)], prefix: &str) -> Result<()> {
        let p = self.provider(id);
        let in_use: Vec<&str> = p
            .inventories
            .iter()
            .filter(|r| r.used > 0 && !new.iter().any(|(c, _)| *c == r.class))
            .map(|r| self.class_name(r.class))
            .collect();
        if in_use.is_empty() {
            return Ok(());
        }
        Err(Error::conflict(
            codes::INVENTORY_INUSE,
            format!("{prefix}Inventory for '{}' on resource provider '{}' in use.", in_use.join(", "), p.uuid),
        ))
    }

    pub(crate) fn replace_inventories(&mut self, id: RpId, new: Vec<(ClassId, Inventory)>) {
        let t = now();
        let p = self.provider_mut(id);
        let mut records = Vec::with_capacity(new.len());
        for (class, inv) in new {
            match p.inventory(class) {
                Some(old) => records.push(InventoryRecord {
                    class,
                    updated_at: if old.inv == inv { old.updated_at } else { t },
                    inv,
                    used: old.used,
                    created_at: old.created_at,
                }),
                None => records.push(InventoryRecord { class, inv, used: 0, created_at: t, updated_at: t }),
            }
        }
        records.sort_by_key(|r| r.class);
        p.inventories = records;
        self.bump(id);
    }

    /// POST .../inventories: adds one class.
    pub fn add_inventory(&mut self, uuid: &str, rc: &str, inv: Inventory, reserved_can_be_total: bool) -> Result<RpId> {
        let id = self.provider_id(uuid)?;
        let fail = |detail: String| {
            Error::bad_request(format!("Unable to create inventory for resource provider {uuid}: {detail}"))
        };
        let Some(class) = self.classes.get(rc) else {
            return Err(fail(format!("No such resource class {rc}.")));
        };
        self.check_capacity(uuid, rc, &inv, reserved_can_be_total).map_err(|e| fail(e.detail))?;
        if self.provider(id).inventory(class).is_some() {
            return Err(Error::conflict(
                codes::CONCURRENT_UPDATE,
                format!("Update conflict: Inventory for '{rc}' on resource provider '{uuid}' already exists."),
            ));
        }
        let mut all: Vec<(ClassId, Inventory)> =
            self.provider(id).inventories.iter().map(|r| (r.class, r.inv.clone())).collect();
        all.push((class, inv));
        self.replace_inventories(id, all);
        Ok(id)
    }

    /// PUT .../inventories/{rc}: updates one existing class.
    pub fn update_inventory(
        &mut self,
        uuid: &str,
        rc: &str,
        generation: i64,
        inv: Inventory,
        reserved_can_be_total: bool,
    ) -> Result<RpId> {
        let id = self.provider_id(uuid)?;
        if self.provider(id).generation != generation {
            return Err(Error::conflict(codes::CONCURRENT_UPDATE, "resource provider generation conflict"));
        }
        let Some(class) = self.classes.get(rc) else {
            return Err(Error::not_found(format!("No such resource class {rc}.")));
        };
        self.check_capacity(uuid, rc, &inv, reserved_can_be_total).map_err(|e| {
            Error::bad_request(format!("Unable to update inventory for resource provider {uuid}: {}", e.detail))
        })?;
        if self.provider(id).inventory(class).is_none() {
            return Err(Error::bad_request(format!(
                "No inventory record with resource class for resource provider {uuid}: No inventory of class {rc} found."
            )));
        }
        let all: Vec<(ClassId, Inventory)> = self
            .provider(id)
            .inventories
            .iter()
            .map(|r| (r.class, if r.class == class { inv.clone() } else { r.inv.clone() }))
            .collect();
        self.replace_inventories(id, all);
        Ok(id)
    }

    /// DELETE .../inventories/{rc}.
    pub fn delete_inventory(&mut self, uuid: &str, rc: &str) -> Result<()> {
        let id = self.provider_id(uuid)?;
        let record = self.classes.get(rc).and_then(|c| self.provider(id).inventory(c));
        let Some(record) = record else {
            return Err(Error::not_found(format!(
                "No inventory of class {rc} found for delete: No inventory of class {rc} found for delete"
            )));
        };
        if record.used > 0 {
            return Err(Error::conflict(
                codes::CONCURRENT_UPDATE,
                format!(
                    "Unable to delete inventory of class {rc}: Inventory for '{rc}' on resource provider '{uuid}' in use."
                ),
            ));
        }
        let class = record.class;
        let all: Vec<(ClassId, Inventory)> = self
            .provider(id)
            .inventories
            .iter()
            .filter(|r| r.class != class)
            .map(|r| (r.class, r.inv.clone()))
            .collect();
        self.replace_inventories(id, all);
        Ok(())
    }

    /// DELETE .../inventories (1.5+).
    pub fn delete_inventories(&mut self, uuid: &str) -> Result<()> {
        let id = self.provider_id(uuid)?;
        self.check_not_in_use(id, &[], "")?;
        self.replace_inventories(id, vec![]);
        Ok(())
    }

    // ----- resource classes ------------------------------------------------

    pub fn create_class(&mut self, name: &str) -> Result<ClassId> {
        if self.classes.get(name).is_some() {
            return Err(Error::conflict(
                codes::DUPLICATE_NAME,
                format!("Conflicting resource class already exists: {name}"),
            ));
        }
        let id = self.classes.intern(name, now());
        self.touch(Dirty::Class(id));
        Ok(id)
    }

    /// PUT /resource_classes/{name} at 1.7+: create if missing.
    pub fn ensure_class(&mut self, name: &str) -> Result<bool> {
        if self.classes.get(name).is_some() {
            return Ok(false);
        }
        self.create_class(name)?;
        Ok(true)
    }

    /// PUT /resource_classes/{name} before 1.7: rename a custom class.
    pub fn rename_class(&mut self, old: &str, new: &str) -> Result<ClassId> {
        let Some(id) = self.classes.get(old) else {
            return Err(Error::not_found(format!("No such resource class {old}.")));
        };
        if self.is_standard_class(id) {
            return Err(Error::bad_request(format!(
                "Cannot update standard resource class {old}: Cannot update standard resource class {old}."
            )));
        }
        if self.classes.get(new).is_some() {
            return Err(Error::conflict(codes::DUPLICATE_NAME, format!("Resource class already exists: {new}")));
        }
        // Interned ids are immutable: move everything that names the old id.
        let new_id = self.classes.intern(new, self.classes.created_at[id as usize]);
        self.classes.updated_at[new_id as usize] = now();
        self.classes.kill(id);
        let rps: Vec<RpId> = self.live_providers().map(|p| p.id).collect();
        for rp in rps {
            let p = self.provider_mut(rp);
            let mut changed = false;
            for r in &mut p.inventories {
                if r.class == id {
                    r.class = new_id;
                    changed = true;
                }
            }
            if changed {
                p.inventories.sort_by_key(|r| r.class);
                self.touch(Dirty::Provider(rp));
            }
        }
        let mut touched = vec![];
        for c in self.consumers.values_mut() {
            for a in &mut c.allocations {
                if a.class == id {
                    a.class = new_id;
                    touched.push(c.uuid.clone());
                }
            }
        }
        for c in touched {
            self.touch(Dirty::Consumer(c));
        }
        self.touch(Dirty::Class(id));
        self.touch(Dirty::Class(new_id));
        Ok(new_id)
    }

    pub fn delete_class(&mut self, name: &str) -> Result<()> {
        let Some(id) = self.classes.get(name) else {
            return Err(Error::not_found(format!("No such resource class {name}.")));
        };
        if self.is_standard_class(id) {
            return Err(Error::bad_request(format!(
                "Error in delete resource class: Cannot delete standard resource class {name}."
            )));
        }
        if self.live_providers().any(|p| p.inventory(id).is_some()) {
            return Err(Error::conflict(
                codes::DEFAULT,
                format!(
                    "Error in delete resource class: Cannot delete resource class {name}. Class is in use in inventory."
                ),
            ));
        }
        self.classes.kill(id);
        self.touch(Dirty::Class(id));
        Ok(())
    }

    // ----- traits ----------------------------------------------------------

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

    // ----- aggregates ------------------------------------------------------

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

    // ----- allocations -----------------------------------------------------

    /// Writes the allocations of one or more consumers atomically, with
    /// Placement's consumer-generation checks and capacity checks.
    pub fn write_allocations(&mut self, writes: &[ConsumerWrite], kind: AllocationWriteKind) -> Result<()> {
        // 1. Consumers: generations and identities.
        for w in writes {
            if let Some(expected) = &w.generation_check {
                match (self.consumers.get(&w.consumer), expected) {
                    (Some(c), e) if Some(c.generation) != *e => {
                        let got = e.map(|g| g.to_string()).unwrap_or_else(|| "None".into());
                        return Err(Error::conflict(
                            codes::CONCURRENT_UPDATE,
                            format!("consumer generation conflict - expected {} but got {got}", c.generation),
                        ));
                    }
                    (None, Some(g)) => {
                        return Err(Error::conflict(
                            codes::CONCURRENT_UPDATE,
                            format!("consumer generation conflict - expected null but got {g}"),
                        ));
                    }
                    _ => {}
                }
            }
        }
        // 2. Resolve providers and classes.
        let mut lines: Vec<(usize, Allocation)> = vec![];
        for (wi, w) in writes.iter().enumerate() {
            for (rp_uuid, resources) in &w.allocations {
                let Some(p) = self.provider_by_uuid(rp_uuid) else {
                    let msg = format!("Allocation for resource provider '{rp_uuid}' that does not exist.");
                    return Err(match kind {
                        AllocationWriteKind::Reshape => Error::bad_request(format!(
                            "Resource provider {rp_uuid} in allocations not found: No resource provider with uuid {rp_uuid} found"
                        )),
                        _ => Error::bad_request(msg),
                    });
                };
                for (rc, amount) in resources {
                    let Some(class) = self.classes.get(rc) else {
                        let detail = format!("No such resource class {rc}.");
                        return Err(Error::bad_request(match kind {
                            AllocationWriteKind::Put => {
                                format!("Unable to allocate inventory for consumer {}: {detail}", w.consumer)
                            }
                            _ => format!("Unable to allocate inventory {detail}"),
                        }));
                    };
                    lines.push((wi, Allocation { rp: p.id, class, used: *amount }));
                }
            }
        }
        // 3. Capacity: usage without these consumers' old allocations, plus
        //    the new lines.
        let writing: BTreeSet<&str> = writes.iter().map(|w| w.consumer.as_str()).collect();
        let mut delta: BTreeMap<(RpId, ClassId), i64> = BTreeMap::new();
        for c in &writing {
            if let Some(c) = self.consumers.get(*c) {
                for a in &c.allocations {
                    *delta.entry((a.rp, a.class)).or_default() -= a.used;
                }
            }
        }
        let mut needed: BTreeMap<(RpId, ClassId), i64> = BTreeMap::new();
        for (_, a) in &lines {
            *needed.entry((a.rp, a.class)).or_default() += a.used;
        }
        for (_, a) in &lines {
            let p = self.provider(a.rp);
            let rc = self.class_name(a.class);
            let Some(r) = p.inventory(a.class) else {
                return Err(Error::conflict(
                    codes::DEFAULT,
                    format!(
                        "Unable to allocate inventory: Inventory for '{rc}' on resource provider '{}' invalid.",
                        p.uuid
                    ),
                ));
            };
            let inv = &r.inv;
            if a.used < inv.min_unit || a.used > inv.max_unit || a.used % inv.step_size != 0 {
                return Err(Error::conflict(
                    codes::DEFAULT,
                    format!(
                        "Unable to allocate inventory: Unable to create allocation for '{rc}' on resource provider '{}'. The requested amount would violate inventory constraints.",
                        p.uuid
                    ),
                ));
            }
            let prev = r.used;
            let base = prev + delta.get(&(a.rp, a.class)).copied().unwrap_or(0);
            let all = base + needed[&(a.rp, a.class)];
            let capacity = (inv.total - inv.reserved) as f64 * inv.allocation_ratio;
            if capacity < (base + a.used) as f64 || capacity < all as f64 {
                // Placement lets a write through that only shrinks an overage.
                if all > prev {
                    return Err(Error::conflict(
                        codes::DEFAULT,
                        format!(
                            "Unable to allocate inventory: Unable to create allocation for '{rc}' on resource provider '{}'. The requested amount would exceed the capacity.",
                            p.uuid
                        ),
                    ));
                }
            }
        }
        // 4. Apply.
        let t = now();
        let mut bumped: BTreeSet<RpId> = BTreeSet::new();
        for (wi, w) in writes.iter().enumerate() {
            let old = self.consumers.get(&w.consumer).map(|c| c.allocations.clone()).unwrap_or_default();
            for a in &old {
                self.add_usage(a.rp, a.class, -a.used);
            }
            let new: Vec<Allocation> = lines.iter().filter(|(i, _)| *i == wi).map(|(_, a)| a.clone()).collect();
            for a in &new {
                self.add_usage(a.rp, a.class, a.used);
                bumped.insert(a.rp);
            }
            if w.allocations.is_empty() {
                // Deleting: Placement bumps the providers it removed from.
                for a in &old {
                    bumped.insert(a.rp);
                }
            }
            let project = w.project.clone().unwrap_or_else(|| INCOMPLETE_CONSUMER_PROJECT.to_string());
            let user = w.user.clone().unwrap_or_else(|| INCOMPLETE_CONSUMER_USER.to_string());
            if new.is_empty() {
                self.consumers.remove(&w.consumer);
            } else {
                let c = self.consumers.entry(w.consumer.clone()).or_insert_with(|| Consumer {
                    uuid: w.consumer.clone(),
                    project: project.clone(),
                    user: user.clone(),
                    generation: 0,
                    consumer_type: None,
                    allocations: vec![],
                    created_at: t,
                    updated_at: t,
                });
                c.project = project;
                c.user = user;
                if w.consumer_type.is_some() {
                    c.consumer_type = w.consumer_type.clone();
                }
                c.generation += 1;
                c.allocations = new;
                c.updated_at = t;
            }
            self.touch(Dirty::Consumer(w.consumer.clone()));
        }
        for rp in bumped {
            self.bump(rp);
        }
        Ok(())
    }

    /// DELETE /allocations/{consumer}.
    pub fn delete_allocations(&mut self, consumer: &str) -> Result<()> {
        let Some(c) = self.consumers.get(consumer) else {
            return Err(Error::not_found(format!("No allocations for consumer '{consumer}'")));
        };
        if c.allocations.is_empty() {
            return Err(Error::not_found(format!("No allocations for consumer '{consumer}'")));
        }
        // Placement deletes the rows without touching provider generations.
        let c = self.consumers.remove(consumer).expect("present");
        for a in &c.allocations {
            self.add_usage(a.rp, a.class, -a.used);
        }
        self.touch(Dirty::Consumer(consumer.to_string()));
        Ok(())
    }

    /// POST /reshaper: inventories and allocations in one atomic write.
    /// Steps mutate as they go; a failure leaves `dirty` set, and the
    /// service then reloads the state from the store (nothing committed).
    pub fn reshape(
        &mut self,
        inventories: &[ReshapeInventory],
        allocations: &[ConsumerWrite],
        reserved_can_be_total: bool,
    ) -> Result<()> {
        let mut plan = vec![];
        for (uuid, generation, invs) in inventories {
            let Some(p) = self.provider_by_uuid(uuid) else {
                return Err(Error::new(
                    400,
                    codes::RESOURCE_PROVIDER_NOT_FOUND,
                    format!(
                        "Resource provider {uuid} in inventories not found: No resource provider with uuid {uuid} found"
                    ),
                ));
            };
            if p.generation != *generation {
                return Err(Error::conflict(
                    codes::CONCURRENT_UPDATE,
                    format!(
                        "resource provider generation conflict for provider {uuid}: actual: {}, given: {generation}",
                        p.generation
                    ),
                ));
            }
            let mut new = vec![];
            for (rc, inv) in invs {
                let Some(class) = self.classes.get(rc) else {
                    return Err(Error::bad_request(format!("malformed reshaper data: No such resource class {rc}.")));
                };
                self.check_capacity(uuid, rc, inv, reserved_can_be_total)?;
                new.push((class, inv.clone()));
            }
            plan.push((p.id, new));
        }
        for w in allocations {
            for (rp_uuid, _) in &w.allocations {
                if self.provider_by_uuid(rp_uuid).is_none() {
                    return Err(Error::bad_request(format!(
                        "Resource provider {rp_uuid} in allocations not found: No resource provider with uuid {rp_uuid} found"
                    )));
                }
            }
        }
        // Placement's order: an interim inventory (old and new classes),
        // then the allocations, then the final inventory.
        for (id, new) in &plan {
            if new.is_empty() {
                continue;
            }
            let mut interim: Vec<(ClassId, Inventory)> =
                self.provider(*id).inventories.iter().map(|r| (r.class, r.inv.clone())).collect();
            for (c, inv) in new {
                match interim.iter_mut().find(|(x, _)| x == c) {
                    Some(e) => e.1 = inv.clone(),
                    None => interim.push((*c, inv.clone())),
                }
            }
            self.replace_inventories(*id, interim);
        }
        // A failure from here on follows a mutation, which left `dirty` set:
        // the service then reloads the state, undoing the earlier steps.
        self.write_allocations(allocations, AllocationWriteKind::Reshape)?;
        for (id, new) in plan {
            self.check_not_in_use(id, &new, "update conflict: ")?;
            self.replace_inventories(id, new);
        }
        Ok(())
    }

    // ----- usages ----------------------------------------------------------

    /// GET /usages: per consumer type (`unknown` for consumers without
    /// one), the used amount per class and the number of consumers, for a
    /// project (and user, and type; `all` keeps every type).
    pub fn total_usages(&self, project: &str, user: Option<&str>, consumer_type: Option<&str>) -> UsagesByType {
        let mut out = UsagesByType::new();
        for c in self.consumers.values() {
            if c.project != project || user.is_some_and(|u| u != c.user) {
                continue;
            }
            let ty = c.consumer_type.as_deref().unwrap_or("unknown");
            if consumer_type.is_some_and(|want| want != "all" && want != ty) {
                continue;
            }
            let (per, count) = out.entry(ty.to_string()).or_default();
            *count += 1;
            for a in &c.allocations {
                *per.entry(self.class_name(a.class).to_string()).or_default() += a.used;
            }
        }
        out
    }
}
