//! Inventories of a provider: set all, add, update, delete, with Placement's capacity and in-use checks.

use crate::error::{Error, Result, codes};
use crate::model::{ClassId, Inventory, InventoryRecord, RpId, State, now};

impl State {
    pub(super) fn check_capacity(
        &self,
        uuid: &str,
        class: &str,
        inv: &Inventory,
        reserved_can_be_total: bool,
    ) -> Result<()> {
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
    pub(super) fn check_not_in_use(&self, id: RpId, new: &[(ClassId, Inventory)], prefix: &str) -> Result<()> {
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
}
