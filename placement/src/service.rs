//! [`Placement`]: the state behind a lock, written through to the store.
//! Writers are serialized (one write lock here, and on PostgreSQL one
//! advisory lock across replicas), so generation checks are exact, and the
//! store checks them again; readers share the state. On PostgreSQL a read
//! first catches up with the change feed, so it sees every write any
//! replica acknowledged before it arrived.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use quiver_engine::Fleet;

use crate::error::{Error, Result};
use crate::follower::FeedStats;
use crate::model::{Dirty, RpId, State};
use crate::store::{CatchUp, Durability, Location, Store};

pub struct Placement {
    state: RwLock<State>,
    /// The process's one live fleet, a row per provider ([`crate::fleet`]),
    /// re-written after each commit while the state lock is held. Lock
    /// order: `state`, then `fleet`.
    fleet: RwLock<Fleet>,
    store: Mutex<Store>,
    /// A failed write's reload failed too: memory may hold what the store
    /// did not acknowledge until [`Placement::ensure_fresh`] succeeds.
    needs_reload: AtomicBool,
    feed: Mutex<ProviderChanges>,
    /// Where this replica is in the change feed (PostgreSQL).
    feed_stats: FeedStats,
    /// When the last freshness check that succeeded began (ns after
    /// `opened`): a request that arrived before it need not ask again.
    fresh_from: AtomicU64,
    opened: Instant,
    /// The store is shared with other replicas through a change feed.
    shared: bool,
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
        let feed_stats = FeedStats::default();
        feed_stats.note(store.applied_seq().unwrap_or(0), vec![]);
        Ok(Placement {
            fleet: RwLock::new(crate::fleet::build(&state)),
            state: RwLock::new(state),
            needs_reload: Default::default(),
            feed: Mutex::new(ProviderChanges::default()),
            feed_stats,
            fresh_from: AtomicU64::new(0),
            opened: Instant::now(),
            shared: store.feed().is_some(),
            store: Mutex::new(store),
        })
    }

    /// Starts following the store's change feed (PostgreSQL; nothing to do
    /// on SQLite), so this replica applies other replicas' writes as they
    /// commit ([`crate::follower`]).
    ///
    /// # Errors
    /// The follower thread cannot be started.
    pub fn follow_changes(self: &Arc<Self>) -> std::io::Result<()> {
        let feed = self.store.lock().unwrap_or_else(|e| e.into_inner()).feed();
        match feed {
            Some((url, replica)) => crate::follower::follow(Arc::downgrade(self), url, replica),
            None => Ok(()),
        }
    }

    /// Keeps `rows` change rows, pruning every `every` writes (tests).
    #[cfg(test)]
    pub fn set_feed_retention(&self, rows: i64, every: u64) {
        self.store.lock().unwrap_or_else(|e| e.into_inner()).set_retention(rows, every);
    }

    /// Where this replica is in the change feed.
    pub fn feed_stats(&self) -> &FeedStats {
        &self.feed_stats
    }

    /// Whether the store is shared through a change feed (PostgreSQL).
    pub fn has_change_feed(&self) -> bool {
        self.shared
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

    /// Makes memory safe to answer from: reloads the state if a failed
    /// write could not, so memory never serves a write the store did not
    /// acknowledge, and on PostgreSQL applies every change committed
    /// before this call (one round trip to read the newest sequence,
    /// shared by the requests that arrived while it ran). Callers answer
    /// 503 while the store stays unreachable.
    ///
    /// # Errors
    /// The store is unreachable (503).
    pub fn ensure_fresh(&self) -> Result<()> {
        // One process holds the whole store: only a failed reload to redo.
        if !self.shared && !self.needs_reload.load(Ordering::Acquire) {
            return Ok(());
        }
        let arrived = self.since_opened();
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        if self.needs_reload.load(Ordering::Acquire) {
            let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
            self.reload(&mut store, &mut state)?;
        }
        if self.fresh_from.load(Ordering::Acquire) > arrived {
            return Ok(());
        }
        let began = self.since_opened();
        let timer = Instant::now();
        let Some(latest) = store.latest_seq().map_err(|e| {
            Error::unavailable(format!("this replica cannot confirm it is current with the store: {}", e.detail))
        })?
        else {
            return Ok(());
        };
        self.feed_stats.checked(timer.elapsed());
        self.feed_stats.saw(latest);
        if store.applied_seq().is_some_and(|applied| applied < latest) {
            let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
            self.catch_up_locked(&mut store, &mut state)?;
        }
        self.fresh_from.fetch_max(began, Ordering::AcqRel);
        Ok(())
    }

    fn since_opened(&self) -> u64 {
        // Never 0, so a check that began at open still counts as later
        // than the initial `fresh_from`.
        self.opened.elapsed().as_nanos() as u64 + 1
    }

    /// Applies the changes up to `seq` unless memory already holds them
    /// (the change-feed follower).
    ///
    /// # Errors
    /// The store fails (503).
    pub fn catch_up_to(&self, seq: i64) -> Result<()> {
        if self.feed_stats.applied() >= seq {
            return Ok(());
        }
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        if store.applied_seq().is_none_or(|applied| applied >= seq) {
            return Ok(());
        }
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        self.catch_up_locked(&mut store, &mut state)
    }

    fn catch_up_locked(&self, store: &mut Store, state: &mut State) -> Result<()> {
        match store.catch_up(state) {
            Ok(caught) => {
                self.apply_catch_up(store, state, caught);
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "the change feed could not be applied; reloading");
                self.reload(store, state)?;
                Err(Error::unavailable(format!("the change feed could not be applied: {}", e.detail)))
            }
        }
    }

    /// Brings the fleet and the provider-change feed up to what catching
    /// up changed in `state`.
    fn apply_catch_up(&self, store: &mut Store, state: &mut State, caught: CatchUp) {
        match caught {
            CatchUp::Current => {}
            CatchUp::Changed { rows, usage } => {
                let mut fleet = self.fleet.write().unwrap_or_else(|e| e.into_inner());
                crate::fleet::refresh(&mut fleet, state, &rows, &usage);
                drop(fleet);
                state.epoch += 1;
                self.feed.lock().unwrap_or_else(|e| e.into_inner()).providers.extend(rows.into_iter().chain(usage));
            }
            CatchUp::Reloaded => {
                *self.fleet.write().unwrap_or_else(|e| e.into_inner()) = crate::fleet::build(state);
                state.epoch += 1;
                self.feed.lock().unwrap_or_else(|e| e.into_inner()).resync = true;
            }
        }
        self.feed_stats.note(store.applied_seq().unwrap_or(0), store.take_lags());
    }

    /// Replaces the state and the fleet with the store's, or marks them as
    /// needing it.
    fn reload(&self, store: &mut Store, state: &mut State) -> Result<()> {
        match store.load() {
            Ok(fresh) => {
                *state = fresh;
                state.epoch += 1;
                *self.fleet.write().unwrap_or_else(|e| e.into_inner()) = crate::fleet::build(state);
                self.feed.lock().unwrap_or_else(|e| e.into_inner()).resync = true;
                self.feed_stats.note(store.applied_seq().unwrap_or(0), vec![]);
                self.needs_reload.store(false, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                self.needs_reload.store(true, Ordering::Release);
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
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if self.needs_reload.load(Ordering::Acquire) {
            self.reload(&mut store, &mut state)?;
        }
        match store.begin_write(&mut state) {
            Ok(caught) => self.apply_catch_up(&mut store, &mut state, caught),
            Err(e) => {
                // Catching up may have stopped half-way.
                self.reload(&mut store, &mut state)?;
                return Err(e);
            }
        }
        state.dirty.clear();
        state.usage_changed.clear();
        let out = f(&mut state);
        let failed = match &out {
            Ok(_) => store.finish_write(&state).err(),
            Err(_) => {
                store.abort_write();
                (!state.dirty.is_empty()).then(|| Error::internal("write failed after mutating"))
            }
        };
        if let Some(err) = failed {
            tracing::error!(error = %err, "write not committed; reloading state from the store");
            self.reload(&mut store, &mut state)?;
            return match out {
                Err(e) => Err(e),
                Ok(_) => Err(err),
            };
        }
        if out.is_ok() && !state.dirty.is_empty() {
            self.committed(&mut store, &mut state);
        }
        state.dirty.clear();
        state.usage_changed.clear();
        out
    }

    /// After a commit: the stored generations, the fleet's rows and the
    /// provider-change feed follow what the write changed.
    fn committed(&self, store: &mut Store, state: &mut State) {
        let dirty = std::mem::take(&mut state.dirty);
        let mut changed = BTreeSet::new();
        for d in &dirty {
            match d {
                Dirty::Provider(id) => {
                    changed.insert(*id);
                    if let Some(Some(p)) = state.providers.get_mut(*id as usize) {
                        p.stored_generation = Some(p.generation);
                    }
                }
                Dirty::Generation(id) => {
                    if let Some(Some(p)) = state.providers.get_mut(*id as usize) {
                        p.stored_generation = Some(p.generation);
                    }
                }
                Dirty::Consumer(uuid) => {
                    if let Some(c) = state.consumers.get_mut(uuid) {
                        c.stored_generation = Some(c.generation);
                    }
                }
                Dirty::Class(_) | Dirty::Trait(_) => {}
            }
        }
        let mut fleet = self.fleet.write().unwrap_or_else(|e| e.into_inner());
        crate::fleet::refresh(&mut fleet, state, &changed, &state.usage_changed);
        drop(fleet);
        state.epoch += 1;
        let mut feed = self.feed.lock().unwrap_or_else(|e| e.into_inner());
        feed.providers.extend(changed);
        feed.providers.extend(state.usage_changed.iter().copied());
        self.feed_stats.note(store.applied_seq().unwrap_or(0), vec![]);
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
