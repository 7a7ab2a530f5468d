//! [`Placement`]: the state behind a lock, written through to the store.
//! Writers are serialized (one write lock), so generation checks are exact;
//! readers share the state and never touch SQLite.

use std::path::Path;
use std::sync::{Mutex, RwLock};

use crate::error::{Error, Result};
use crate::model::State;
use crate::store::{Durability, Store};

pub struct Placement {
    state: RwLock<State>,
    store: Mutex<Store>,
}

impl std::fmt::Debug for Placement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Placement").finish_non_exhaustive()
    }
}

impl Placement {
    /// Opens the data directory (migrating it) and loads the state.
    pub fn open(dir: &Path, durability: Durability) -> Result<Placement> {
        let store = Store::open(dir, durability)?;
        let state = store.load()?;
        Ok(Placement { state: RwLock::new(state), store: Mutex::new(store) })
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
        state.dirty.clear();
        let out = f(&mut state);
        let failed = match &out {
            Ok(_) => store.persist(&state).err(),
            Err(_) if !state.dirty.is_empty() => Some(Error::internal("write failed after mutating")),
            Err(_) => None,
        };
        if let Some(err) = failed {
            tracing::error!(error = %err, "write not committed; reloading state from the store");
            *state = store.load()?;
            return match out {
                Err(e) => Err(e),
                Ok(_) => Err(err),
            };
        }
        if out.is_ok() && !state.dirty.is_empty() {
            state.epoch += 1;
        }
        state.dirty.clear();
        out
    }
}
