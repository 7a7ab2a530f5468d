//! Resource classes: custom ones created, renamed (before 1.7), deleted.

use crate::error::{Error, Result, codes};
use crate::model::{ClassId, Dirty, RpId, State, now};

impl State {
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
}
