//! [`Placement`]: the state behind a lock, written through to the store.
//! Writers are serialized (one write lock), so generation checks are exact;
//! readers share the state and never touch SQLite.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::sync::{Mutex, RwLock};

use quiver_engine::Fleet;

use crate::error::{Error, Result};
use crate::model::{Dirty, RpId, State};
use crate::store::{Durability, Location, Store};

pub struct Placement {
    state: RwLock<State>,
    /// The process's one live fleet, a row per provider ([`crate::fleet`]),
    /// re-written after each commit while the state lock is held. Lock
    /// order: `state`, then `fleet`.
    fleet: RwLock<Fleet>,
    store: Mutex<Store>,
    /// A failed write's reload failed too: memory may hold what the store
    /// did not acknowledge until [`Placement::ensure_fresh`] succeeds.
    needs_reload: std::sync::atomic::AtomicBool,
    feed: Mutex<ProviderChanges>,
}

/// What committed writes changed since the last [`Placement::update_fleet`]:
/// the providers created, deleted or changed (inventory, traits,
/// aggregates, usage), whose rows Placement has re-written already, so the
/// Nova side can bind a new compute node or forget a deleted one. Bounded by the number of
/// providers, however long nobody reads it.
#[derive(Debug, Default)]
pub struct ProviderChanges {
    /// Changed provider ids (a deleted one no longer resolves).
    pub providers: HashSet<RpId>,
    /// The state was reloaded from the store: re-read everything.
    pub resync: bool,
}

impl std::fmt::Debug for Placement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Placement").finish_non_exhaustive()
    }
}

impl Placement {
    /// Opens the data directory (migrating it) and loads the state.
    pub fn open(dir: &Path, durability: Durability) -> Result<Placement> {
        Placement::open_at(&Location::Dir(dir.to_owned()), durability)
    }

    /// Opens the store at `at` (a data directory or a PostgreSQL database),
    /// migrating it, and loads the state.
    pub fn open_at(at: &Location, durability: Durability) -> Result<Placement> {
        let mut store = Store::open(at, durability)?;
        let state = store.load()?;
        Ok(Placement {
            fleet: RwLock::new(crate::fleet::build(&state)),
            state: RwLock::new(state),
            store: Mutex::new(store),
            needs_reload: Default::default(),
            feed: Mutex::new(ProviderChanges::default()),
        })
    }

    fn take_changes(&self) -> ProviderChanges {
        std::mem::take(&mut *self.feed.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Runs `f` on the state and the live fleet, writable, together with
    /// the provider changes committed since the last call, atomically: no
    /// write lands in between, so what `f` applies (the Nova side of the
    /// fleet: hosts bound to their providers, service state, zones) is
    /// exactly as fresh as the state it reads. Nothing is written to the
    /// store.
    pub fn update_fleet<R>(&self, f: impl FnOnce(&State, &mut Fleet, ProviderChanges) -> R) -> R {
        let guard = self.state.read().unwrap_or_else(|e| e.into_inner());
        let mut fleet = self.fleet.write().unwrap_or_else(|e| e.into_inner());
        let changes = self.take_changes();
        f(&guard, &mut fleet, changes)
    }

    /// Runs `f` on the state and the live fleet, writable (a scheduling
    /// decision works on the fleet in place and undoes what it tried).
    pub fn with_fleet<R>(&self, f: impl FnOnce(&State, &mut Fleet) -> R) -> R {
        let guard = self.state.read().unwrap_or_else(|e| e.into_inner());
        let mut fleet = self.fleet.write().unwrap_or_else(|e| e.into_inner());
        f(&guard, &mut fleet)
    }

    /// Runs `f` on a shared view of the state and the live fleet.
    pub fn read_with_fleet<R>(&self, f: impl FnOnce(&State, &Fleet) -> R) -> R {
        let guard = self.state.read().unwrap_or_else(|e| e.into_inner());
        let fleet = self.fleet.read().unwrap_or_else(|e| e.into_inner());
        f(&guard, &fleet)
    }

    /// Checks that the store answers (`/healthcheck`).
    ///
    /// # Errors
    /// The database is unreachable (503).
    pub fn check_store(&self) -> Result<()> {
        self.store.lock().unwrap_or_else(|e| e.into_inner()).ping()
    }

    /// Reloads the state from the store if a failed write could not, so
    /// memory never serves a write the store did not acknowledge; callers
    /// answer 503 while the store stays unreachable.
    ///
    /// # Errors
    /// The reload fails (the store is unreachable: 503).
    pub fn ensure_fresh(&self) -> Result<()> {
        if !self.needs_reload.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(());
        }
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if !self.needs_reload.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(());
        }
        self.reload(&mut store, &mut state)
    }

    /// Replaces the state and the fleet with the store's, or marks them as
    /// needing it.
    fn reload(&self, store: &mut Store, state: &mut State) -> Result<()> {
        match store.load() {
            Ok(fresh) => {
                *state = fresh;
                *self.fleet.write().unwrap_or_else(|e| e.into_inner()) = crate::fleet::build(state);
                self.feed.lock().unwrap_or_else(|e| e.into_inner()).resync = true;
                self.needs_reload.store(false, std::sync::atomic::Ordering::Release);
                Ok(())
            }
            Err(e) => {
                self.needs_reload.store(true, std::sync::atomic::Ordering::Release);
                Err(Error::unavailable(format!(
                    "the store cannot be read, so nothing is served from memory: {}",
                    e.detail
                )))
            }
        }
    }

    /// Runs `f` on a shared view of the state.
    pub fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        let guard = self.state.read().unwrap_or_else(|e| e.into_inner());
        f(&guard)
    }

    /// Runs the write `f` and commits what it changed before returning.
    ///
    /// `f` validates before it mutates; if it fails after mutating, or the
    /// commit fails, the state is reloaded from the store, so memory never
    /// holds an unacknowledged write.
    pub fn write<R>(&self, f: impl FnOnce(&mut State) -> Result<R>) -> Result<R> {
        self.ensure_fresh()?;
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        state.dirty.clear();
        state.usage_changed.clear();
        let out = f(&mut state);
        let failed = match &out {
            Ok(_) => store.persist(&state).err(),
            Err(_) if !state.dirty.is_empty() => Some(Error::internal("write failed after mutating")),
            Err(_) => None,
        };
        if let Some(err) = failed {
            tracing::error!(error = %err, "write not committed; reloading state from the store");
            self.reload(&mut store, &mut state)?;
            return match out {
                Err(e) => Err(e),
                Ok(_) => Err(err),
            };
        }
        if out.is_ok() {
            let changed: BTreeSet<RpId> = state
                .dirty
                .iter()
                .filter_map(|d| match d {
                    Dirty::Provider(id) => Some(*id),
                    _ => None,
                })
                .collect();
            let mut fleet = self.fleet.write().unwrap_or_else(|e| e.into_inner());
            crate::fleet::refresh(&mut fleet, &state, &changed, &state.usage_changed);
        }
        if out.is_ok() && !state.dirty.is_empty() {
            state.epoch += 1;
            let mut feed = self.feed.lock().unwrap_or_else(|e| e.into_inner());
            let state = &*state;
            feed.providers.extend(state.dirty.iter().filter_map(|d| match d {
                Dirty::Provider(id) => Some(*id),
                _ => None,
            }));
            feed.providers.extend(state.usage_changed.iter().copied());
        }
        state.dirty.clear();
        state.usage_changed.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Inventory;
    use crate::ops::{AllocationWriteKind, ConsumerWrite};

    fn open(at: &Location) -> Placement {
        Placement::open_at(at, Durability::Process).expect("open")
    }

    #[test]
    fn committed_writes_survive_a_reopen_and_failed_ones_leave_no_trace() {
        let dir = tempfile::tempdir().expect("tempdir");
        survives_a_reopen(&Location::Dir(dir.path().to_owned()));
    }

    #[test]
    fn committed_writes_survive_a_reopen_on_postgresql_too() {
        let cluster = crate::store::test_cluster::TestCluster::start();
        let at = Location::Postgres(cluster.url("placement"));
        survives_a_reopen(&at);
        // One process serves a database at a time (until replicas check
        // generations in the database): a second one is refused, and the
        // database is free again once the first goes.
        let first = open(&at);
        first
            .write(|s| s.create_provider("7d1c5c0e-2a4b-4a8e-9f00-000000000002".into(), "cn2".into(), None))
            .expect("create");
        let refused = Placement::open_at(&at, Durability::Process).expect_err("a second process");
        assert!(refused.detail.contains("already serves"), "{}", refused.detail);
        drop(first);
        assert_eq!(open(&at).read(|s| s.live_providers().count()), 2);
    }

    fn survives_a_reopen(at: &Location) {
        let rp = "7d1c5c0e-2a4b-4a8e-9f00-000000000001".to_string();
        {
            let p = open(at);
            p.write(|s| s.create_provider(rp.clone(), "cn1".into(), None)).expect("create");
            let inv = Inventory { total: 8, ..Default::default() };
            p.write(|s| s.set_inventories(&rp, 0, &[("VCPU".into(), inv)], true)).expect("inventory");
            p.write(|s| s.ensure_trait("CUSTOM_GOLD").then_some(()).ok_or_else(|| Error::internal("exists")))
                .expect("trait");
            let w = ConsumerWrite {
                consumer: "c1".into(),
                project: Some("p".into()),
                user: Some("u".into()),
                generation_check: Some(None),
                consumer_type: Some("INSTANCE".into()),
                allocations: vec![(rp.clone(), vec![("VCPU".into(), 6)])],
            };
            p.write(|s| s.write_allocations(std::slice::from_ref(&w), AllocationWriteKind::Put)).expect("claim");
            // Over capacity: refused, and nothing of it is kept.
            let over =
                ConsumerWrite { consumer: "c2".into(), allocations: vec![(rp.clone(), vec![("VCPU".into(), 3)])], ..w };
            let err = p.write(|s| s.write_allocations(&[over], AllocationWriteKind::Put)).expect_err("over capacity");
            assert_eq!(err.status, 409);
        }
        let p = open(at);
        p.read(|s| {
            let prov = s.get_provider(&rp).expect("provider survived");
            assert_eq!(prov.name, "cn1");
            let vcpu = s.classes.get("VCPU").expect("class");
            assert_eq!(prov.inventory(vcpu).map(|r| (r.inv.total, r.used)), Some((8, 6)));
            assert_eq!(prov.generation, 2, "inventory and allocation each bumped it");
            assert!(s.traits.get("CUSTOM_GOLD").is_some());
            let c = &s.consumers["c1"];
            assert_eq!((c.generation, c.consumer_type.as_deref()), (1, Some("INSTANCE")));
            assert!(!s.consumers.contains_key("c2"));
        });
    }
}
