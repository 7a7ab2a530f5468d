//! The durable store, the truth (DESIGN.md section 3): SQLite in WAL mode
//! inside the data directory (the embedded default, [`sqlite`]) or a
//! PostgreSQL database (`--database postgresql://...`, [`postgres`]). Both
//! hold the same tables, run versioned migrations at start-up (and refuse a
//! database whose schema is newer than this build knows), and commit every
//! acknowledged write as one transaction that rewrites exactly the rows the
//! write touched ([`Dirty`]). The in-memory [`State`] is rebuilt from
//! either on start; reading rows ([`load`]) and writing them ([`persist`])
//! is written once, over a small [`Backend`] each database implements.
//! Several replicas share a PostgreSQL database through its change feed
//! ([`postgres`], [`change_set`]).

pub mod change_set;
mod load;
mod persist;
mod postgres;
mod sqlite;
mod status;

pub use postgres::CHANNEL;
pub use status::{ReplicaStatus, StoreStatus, status};

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::model::{RpId, State};

/// What applying other writers' changes did to the state.
#[derive(Debug, PartialEq, Eq)]
pub enum CatchUp {
    /// Nothing new.
    Current,
    /// These providers' rows changed, and these others' usage only.
    Changed { rows: BTreeSet<RpId>, usage: BTreeSet<RpId> },
    /// The whole state was read again.
    Reloaded,
}

/// How hard each commit goes to disk (SQLite; PostgreSQL commits are
/// durable as the server is configured).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Durability {
    /// WAL with `synchronous=NORMAL`: a commit survives a crash of the
    /// process (kill -9); the last commits can be lost to a power failure.
    #[default]
    Process,
    /// WAL with `synchronous=FULL`: every commit is fsynced.
    Full,
}

/// Where the store lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// `DIR/placement.sqlite`.
    Dir(PathBuf),
    /// A PostgreSQL connection string (`postgresql://user@host:port/db` or
    /// `host=... user=... dbname=...`).
    Postgres(String),
}

impl Location {
    /// `postgresql://` and `postgres://` URLs name a PostgreSQL database;
    /// anything else is a data directory.
    pub fn parse(s: &str) -> Location {
        if s.starts_with("postgresql://") || s.starts_with("postgres://") {
            Location::Postgres(s.to_owned())
        } else {
            Location::Dir(PathBuf::from(s))
        }
    }
}

/// A value bound to a statement's `$n` placeholder.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Val<'a> {
    I(i64),
    F(f64),
    S(&'a str),
    OptI(Option<i64>),
    OptS(Option<&'a str>),
}

/// One result row, read by column index.
pub(crate) trait Row {
    fn int(&self, i: usize) -> Result<i64>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>>;
    fn real(&self, i: usize) -> Result<f64>;
    fn text(&self, i: usize) -> Result<String>;
    fn opt_text(&self, i: usize) -> Result<Option<String>>;
}

/// What a database does for the store: statements with `$1..$n`
/// placeholders (SQLite reads them as numbered parameters too) inside one
/// transaction at a time.
pub(crate) trait Backend {
    fn begin(&mut self) -> Result<()>;
    fn commit(&mut self) -> Result<()>;
    fn rollback(&mut self);
    /// Runs a statement; the number of rows it changed.
    fn exec(&mut self, sql: &str, args: &[Val<'_>]) -> Result<u64>;
    fn query(&mut self, sql: &str, args: &[Val<'_>], f: &mut dyn FnMut(&dyn Row) -> Result<()>) -> Result<()>;
    /// The column that keeps insertion order (`rowid`, or a sequence).
    fn order_column(&self) -> &'static str;
}

/// Runs a blocking database call: on a worker thread of a multi-threaded
/// tokio runtime through `block_in_place` (the PostgreSQL client drives its
/// own runtime, which cannot start inside another's), elsewhere directly.
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// The store.
pub enum Store {
    Sqlite(sqlite::SqliteStore),
    Postgres(Box<postgres::PgStore>),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Store {
    /// Opens (creating if needed) the store at `at` and migrates it.
    ///
    /// # Errors
    /// The database cannot be reached or created, or its schema is newer
    /// than this build knows.
    pub fn open(at: &Location, durability: Durability) -> Result<Store> {
        Ok(match at {
            Location::Dir(dir) => Store::Sqlite(sqlite::SqliteStore::open(dir, durability)?),
            Location::Postgres(url) => Store::Postgres(Box::new(blocking(|| postgres::PgStore::open(url))?)),
        })
    }

    /// Where it is, for logs (a PostgreSQL URL without its password).
    pub fn describe(&self) -> String {
        match self {
            Store::Sqlite(s) => s.path().display().to_string(),
            Store::Postgres(p) => p.describe(),
        }
    }

    /// Checks that the database answers (a PostgreSQL store reconnects
    /// first if its connection was lost).
    ///
    /// # Errors
    /// The database is unreachable (503).
    pub fn ping(&mut self) -> Result<()> {
        match self {
            Store::Sqlite(s) => s.ping(),
            Store::Postgres(p) => blocking(|| p.ping()),
        }
    }

    /// The schema version the database is at.
    ///
    /// # Errors
    /// A read fails.
    pub fn schema_version(&mut self) -> Result<i64> {
        match self {
            Store::Sqlite(s) => s.schema_version(),
            Store::Postgres(p) => blocking(|| p.schema_version()),
        }
    }

    /// The schema version this build migrates to.
    pub fn known_schema_version(&self) -> usize {
        match self {
            Store::Sqlite(_) => sqlite::MIGRATIONS.len(),
            Store::Postgres(_) => postgres::MIGRATIONS.len(),
        }
    }

    /// Rebuilds the whole in-memory state from the database.
    ///
    /// # Errors
    /// A read fails.
    pub fn load(&mut self) -> Result<State> {
        match self {
            Store::Sqlite(s) => load::load(s),
            Store::Postgres(p) => blocking(|| p.load_state()),
        }
    }

    /// Opens a write transaction. On PostgreSQL it holds the write lock
    /// shared by every replica and first applies to `state` what other
    /// replicas committed, so the write validates against the truth.
    ///
    /// # Errors
    /// The database fails; nothing is open then (on a failure while
    /// applying changes, `state` may be half-applied: reload it).
    pub fn begin_write(&mut self, state: &mut State) -> Result<CatchUp> {
        match self {
            Store::Sqlite(s) => s.begin().map(|()| CatchUp::Current),
            Store::Postgres(p) => blocking(|| p.begin_write(state)),
        }
    }

    /// Writes everything `state.dirty` names and commits (on PostgreSQL
    /// with its change-feed row).
    ///
    /// # Errors
    /// A write, a generation check in the store (409) or the commit fails;
    /// nothing of the write is kept.
    pub fn finish_write(&mut self, state: &State) -> Result<()> {
        match self {
            Store::Sqlite(s) => match persist::persist(s, state) {
                Ok(()) => s.commit(),
                Err(e) => {
                    s.rollback();
                    Err(e)
                }
            },
            Store::Postgres(p) => blocking(|| p.finish_write(state)),
        }
    }

    /// Ends an open write without keeping anything.
    pub fn abort_write(&mut self) {
        match self {
            Store::Sqlite(s) => s.rollback(),
            Store::Postgres(p) => blocking(|| p.abort_write()),
        }
    }

    /// The newest change committed by any replica (None: a store without a
    /// change feed, whose one process holds everything).
    ///
    /// # Errors
    /// The database does not answer (503).
    pub fn latest_seq(&mut self) -> Result<Option<i64>> {
        match self {
            Store::Sqlite(_) => Ok(None),
            Store::Postgres(p) => blocking(|| p.latest_seq()).map(Some),
        }
    }

    /// The newest change applied to this process's state.
    pub fn applied_seq(&self) -> Option<i64> {
        match self {
            Store::Sqlite(_) => None,
            Store::Postgres(p) => Some(p.applied()),
        }
    }

    /// Applies to `state` what other replicas committed since.
    ///
    /// # Errors
    /// The database fails (`state` may be half-applied: reload it).
    pub fn catch_up(&mut self, state: &mut State) -> Result<CatchUp> {
        match self {
            Store::Sqlite(_) => Ok(CatchUp::Current),
            Store::Postgres(p) => blocking(|| p.catch_up(state)),
        }
    }

    /// Commit-to-apply delays (ms) of other replicas' changes applied since
    /// the last call.
    pub fn take_lags(&mut self) -> Vec<f64> {
        match self {
            Store::Sqlite(_) => vec![],
            Store::Postgres(p) => p.take_lags(),
        }
    }

    /// Keeps `rows` change rows, pruning every `every` writes (tests).
    #[cfg(test)]
    pub fn set_retention(&mut self, rows: i64, every: u64) {
        if let Store::Postgres(p) = self {
            p.set_retention(rows, every);
        }
    }

    /// The database URL and this replica's name, where replicas follow a
    /// change feed.
    pub fn feed(&self) -> Option<(String, String)> {
        match self {
            Store::Sqlite(_) => None,
            Store::Postgres(p) => Some((p.url().to_owned(), p.replica().to_owned())),
        }
    }
}

/// The schema version a migration list leads to, checked against what the
/// database holds: newer is refused.
fn check_version(found: i64, known: usize) -> Result<()> {
    if found > known as i64 {
        return Err(Error::internal(format!(
            "the database schema is version {found}, newer than this build knows ({known}): upgrade Quiver"
        )));
    }
    Ok(())
}

#[cfg(any(test, feature = "test-cluster"))]
pub mod test_cluster;
