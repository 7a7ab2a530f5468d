//! Allocations: PUT/POST (one or several consumers, generation-checked, capacity-checked) and DELETE.

use std::collections::{BTreeMap, BTreeSet};

use super::{AllocationWriteKind, ConsumerWrite, INCOMPLETE_CONSUMER_PROJECT, INCOMPLETE_CONSUMER_USER};
use crate::error::{Error, Result, codes};
use crate::model::{Allocation, ClassId, Consumer, Dirty, RpId, State, now};

impl State {
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
                    stored_generation: None,
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
            self.bump_generation(rp);
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
}
