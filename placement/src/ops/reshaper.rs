//! POST /reshaper: inventories and allocations moved in one atomic write.

use super::{AllocationWriteKind, ConsumerWrite, ReshapeInventory};
use crate::error::{Error, Result, codes};
use crate::model::{ClassId, Inventory, State};

impl State {
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
}
