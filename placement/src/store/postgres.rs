//! The PostgreSQL store (`--database postgresql://...`): the same tables as
//! SQLite's in PostgreSQL's types, migrated at start-up under an advisory
//! lock (so replicas starting together migrate once), the schema version in
//! `meta`. Commits are as durable as the server makes them
//! (`synchronous_commit`).
//!
//! Several replicas serve one database (DESIGN.md section 6). Every write
//! transaction takes one advisory write lock, first applies the changes
//! other replicas committed since this one last looked (the `changes`
//! table, one row per write, in commit order), then validates and writes
//! with the generation checks in the database, and appends its own change
//! row and a `NOTIFY` before it commits. So a write always sees every
//! write committed before it, and two replicas never win the same
//! generation or the same capacity. Reads catch up to the newest change
//! first ([`PgStore::latest_seq`]).

use std::collections::HashMap;

use postgres::types::ToSql;
use postgres::{Client, NoTls, Statement};

use super::change_set::ChangeSet;
use super::load::{load, reload_changed};
use super::persist::persist;
use super::{Backend, CatchUp, Row, Val, check_version};
use crate::error::{Error, Result};
use crate::model::{State, now};

/// Schema migrations, applied in order; the index is the schema version.
/// `seq` columns keep insertion order, as SQLite's `rowid` does.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE resource_classes (seq BIGSERIAL, name TEXT PRIMARY KEY, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);
CREATE TABLE traits (seq BIGSERIAL, name TEXT PRIMARY KEY, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);
CREATE TABLE resource_providers (
    id BIGINT PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE,
    generation BIGINT NOT NULL,
    parent_id BIGINT,
    root_id BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL);
CREATE TABLE inventories (
    rp_id BIGINT NOT NULL, class TEXT NOT NULL,
    total BIGINT NOT NULL, reserved BIGINT NOT NULL, min_unit BIGINT NOT NULL,
    max_unit BIGINT NOT NULL, step_size BIGINT NOT NULL, allocation_ratio DOUBLE PRECISION NOT NULL,
    created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,
    PRIMARY KEY (rp_id, class));
CREATE TABLE provider_traits (rp_id BIGINT NOT NULL, trait TEXT NOT NULL, PRIMARY KEY (rp_id, trait));
CREATE TABLE provider_aggregates (rp_id BIGINT NOT NULL, aggregate TEXT NOT NULL, PRIMARY KEY (rp_id, aggregate));
CREATE TABLE consumers (
    uuid TEXT PRIMARY KEY, project TEXT NOT NULL, "user" TEXT NOT NULL,
    generation BIGINT NOT NULL, consumer_type TEXT,
    created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL);
CREATE TABLE allocations (
    seq BIGSERIAL,
    consumer TEXT NOT NULL, rp_id BIGINT NOT NULL, class TEXT NOT NULL, used BIGINT NOT NULL,
    PRIMARY KEY (consumer, rp_id, class));
CREATE INDEX allocations_rp ON allocations (rp_id);
"#,
    r#"
CREATE TABLE changes (seq BIGSERIAL PRIMARY KEY, at_us BIGINT NOT NULL, replica TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE replicas (name TEXT PRIMARY KEY, applied_seq BIGINT NOT NULL, lag_ms DOUBLE PRECISION, seen_at BIGINT NOT NULL);
INSERT INTO meta (key, value) VALUES ('pruned_through', '0') ON CONFLICT (key) DO NOTHING;
"#,
];

/// Advisory lock key held while migrating ("quiver" in ASCII).
const MIGRATION_LOCK: i64 = 0x71_75_69_76_65_72;

/// Advisory lock key every write transaction takes ("quiverw"): writes
/// commit one at a time across all replicas, in `changes.seq` order.
const WRITE_LOCK: i64 = 0x71_75_69_76_65_72_77;

/// The channel each committed write notifies, with its sequence number.
pub const CHANNEL: &str = "quiver_changes";

/// Change rows kept; a replica further behind than this reloads in full.
const RETAINED_CHANGES: i64 = 10_000;

/// Writes between two prunings of the change table.
const PRUNE_EVERY: u64 = 1_000;

pub struct PgStore {
    client: Client,
    url: String,
    /// The connection string without its password.
    shown: String,
    statements: HashMap<String, Statement>,
    /// The newest change this replica's memory holds.
    applied: i64,
    /// This replica's name in `changes` and `replicas`.
    replica: String,
    writes: u64,
    /// Change rows kept, and writes between prunings.
    retain: (i64, u64),
    /// Commit-to-apply delays of other replicas' changes applied since the
    /// last [`PgStore::take_lags`], in milliseconds.
    lags: Vec<f64>,
}

/// This store's name among the replicas: `QUIVER_REPLICA_NAME`, or
/// `hostname:pid`; a second store opened by the same process (tests) gets
/// `/2` after it, and so on.
pub fn replica_name() -> String {
    static OPENED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let base = std::env::var("QUIVER_REPLICA_NAME").unwrap_or_else(|_| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}:{}", host.trim(), std::process::id())
    });
    match OPENED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) {
        0 => base,
        n => format!("{base}/{}", n + 1),
    }
}

/// Microseconds since the Unix epoch.
pub(super) fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Self {
        use postgres::error::SqlState;
        let lost = e.is_closed()
            || std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>())
            || e.code().is_some_and(|c| {
                [SqlState::ADMIN_SHUTDOWN, SqlState::CRASH_SHUTDOWN, SqlState::CANNOT_CONNECT_NOW].contains(c)
                    || c.code().starts_with("08")
            });
        if lost {
            Error::unavailable(format!("the database connection was lost: {e}"))
        } else if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
            Error::conflict(
                crate::error::codes::CONCURRENT_UPDATE,
                format!("another writer created it first; please retry: {e}"),
            )
        } else {
            Error::internal(format!("store: {e}"))
        }
    }
}

/// `url` with any password replaced by `***`.
pub(super) fn without_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl PgStore {
    /// Connects to `url` and migrates the database.
    ///
    /// # Errors
    /// The server cannot be reached, or the schema is newer than this build.
    pub fn open(url: &str) -> Result<PgStore> {
        let shown = without_password(url);
        let client = connect(url, &shown)?;
        let mut store = PgStore {
            client,
            url: url.to_owned(),
            shown,
            statements: HashMap::new(),
            applied: 0,
            replica: replica_name(),
            writes: 0,
            retain: (RETAINED_CHANGES, PRUNE_EVERY),
            lags: vec![],
        };
        store.migrate()?;
        Ok(store)
    }

    /// The connection string, for the change follower's own connection.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// The newest change this replica's memory holds.
    pub fn applied(&self) -> i64 {
        self.applied
    }

    /// The commit-to-apply delays (ms) of the changes applied since the last call.
    pub fn take_lags(&mut self) -> Vec<f64> {
        std::mem::take(&mut self.lags)
    }

    /// A lost connection (the server restarted, the network dropped) is
    /// opened again before the next statement.
    fn reconnect_if_closed(&mut self) -> Result<()> {
        if !self.client.is_closed() {
            return Ok(());
        }
        tracing::warn!(database = %self.shown, "the database connection was lost; reconnecting");
        self.client = connect(&self.url, &self.shown)?;
        self.statements.clear();
        Ok(())
    }

    /// The newest committed change (0: none yet). Writes commit in
    /// sequence order under the write lock, so every change up to it is
    /// committed.
    ///
    /// # Errors
    /// The database does not answer (503).
    pub fn latest_seq(&mut self) -> Result<i64> {
        self.reconnect_if_closed()?;
        let stmt = self.statement("SELECT coalesce(max(seq), 0) FROM changes")?;
        Ok(self.client.query_one(&stmt, &[])?.get(0))
    }

    /// Loads the whole state at one snapshot and notes the change it holds.
    pub fn load_state(&mut self) -> Result<State> {
        self.in_snapshot(|p| {
            let state = load(p)?;
            p.applied = p.latest_seq()?;
            Ok(state)
        })
    }

    /// Applies every change committed since the last one applied, at one
    /// read-only snapshot.
    pub fn catch_up(&mut self, state: &mut State) -> Result<CatchUp> {
        self.in_snapshot(|p| p.catch_up_in_transaction(state))
    }

    /// Runs `f` in one read-only transaction at one snapshot.
    fn in_snapshot<R>(&mut self, f: impl FnOnce(&mut Self) -> Result<R>) -> Result<R> {
        self.reconnect_if_closed()?;
        self.client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
        match f(self) {
            Ok(out) => {
                self.client.batch_execute("COMMIT")?;
                Ok(out)
            }
            Err(e) => {
                self.rollback();
                Err(e)
            }
        }
    }

    /// Reads the whole state again inside the current transaction.
    fn reload_all(&mut self, state: &mut State) -> Result<CatchUp> {
        *state = load(self)?;
        self.applied = self.latest_seq()?;
        Ok(CatchUp::Reloaded)
    }

    /// Reads the changes after `applied` (in order) inside the current
    /// transaction and applies them: only the rows they name, or the whole
    /// state when the ones needed were pruned.
    fn catch_up_in_transaction(&mut self, state: &mut State) -> Result<CatchUp> {
        let stmt = self.statement("SELECT value FROM meta WHERE key = 'pruned_through'")?;
        let pruned: i64 = self.client.query_one(&stmt, &[])?.get::<_, String>(0).parse().unwrap_or(0);
        if self.applied < pruned {
            tracing::warn!(applied = self.applied, pruned, "the changes this replica missed were pruned; reloading");
            return self.reload_all(state);
        }
        let stmt = self.statement("SELECT seq, at_us, replica, body FROM changes WHERE seq > $1 ORDER BY seq")?;
        let rows = self.client.query(&stmt, &[&self.applied])?;
        let Some(last) = rows.last().map(|r| r.get::<_, i64>(0)) else {
            return Ok(CatchUp::Current);
        };
        let mut set = ChangeSet::default();
        let now = now_us();
        for r in &rows {
            let body: String = r.get(3);
            let Some(one) = ChangeSet::decode(&body) else {
                tracing::warn!(seq = r.get::<_, i64>(0), "a change this build cannot read; reloading");
                return self.reload_all(state);
            };
            set.merge(one);
            if r.get::<_, String>(2) != self.replica {
                self.lags.push((now - r.get::<_, i64>(1)).max(0) as f64 / 1000.0);
            }
        }
        let (rows, usage) = reload_changed(self, state, &set)?;
        self.applied = last;
        Ok(CatchUp::Changed { rows, usage })
    }

    /// Opens a write: a transaction holding the write lock, with every
    /// change committed before it applied to `state`.
    pub fn begin_write(&mut self, state: &mut State) -> Result<CatchUp> {
        self.reconnect_if_closed()?;
        self.client.batch_execute("BEGIN")?;
        let caught = self
            .statement("SELECT pg_advisory_xact_lock($1)")
            .and_then(|lock| Ok(self.client.execute(&lock, &[&WRITE_LOCK])?))
            .and_then(|_| self.catch_up_in_transaction(state));
        if caught.is_err() {
            self.rollback();
        }
        caught
    }

    /// Writes what `state.dirty` names with its change row and notifies
    /// the other replicas, then commits.
    pub fn finish_write(&mut self, state: &State) -> Result<()> {
        let written = persist(self, state).and_then(|()| self.append_change(state));
        match written.and_then(|seq| Ok((seq, self.client.batch_execute("COMMIT")?))) {
            Ok((seq, ())) => {
                if let Some(seq) = seq {
                    self.applied = seq;
                }
                Ok(())
            }
            Err(e) => {
                self.rollback();
                Err(e)
            }
        }
    }

    /// The change row of the current write (none for a write that changed
    /// nothing), pruning old ones now and then.
    fn append_change(&mut self, state: &State) -> Result<Option<i64>> {
        let set = ChangeSet::of_write(state);
        if set.is_empty() {
            return Ok(None);
        }
        let stmt = self.statement("INSERT INTO changes (at_us, replica, body) VALUES ($1, $2, $3) RETURNING seq")?;
        let seq: i64 = self.client.query_one(&stmt, &[&now_us(), &self.replica, &set.encode()])?.get(0);
        let notify = self.statement("SELECT pg_notify($1, $2)")?;
        self.client.execute(&notify, &[&CHANNEL, &seq.to_string()])?;
        self.writes += 1;
        let (retain, every) = self.retain;
        if self.writes.is_multiple_of(every) && seq > retain {
            let through = seq - retain;
            self.client.execute("DELETE FROM changes WHERE seq <= $1", &[&through])?;
            self.client.execute(
                "UPDATE meta SET value = $1 WHERE key = 'pruned_through' AND value::BIGINT < $2",
                &[&through.to_string(), &through],
            )?;
        }
        Ok(Some(seq))
    }

    /// Keeps `rows` change rows, pruning every `every` writes (tests).
    #[cfg(test)]
    pub fn set_retention(&mut self, rows: i64, every: u64) {
        self.retain = (rows, every.max(1));
    }

    /// Ends an open write without keeping anything.
    pub fn abort_write(&mut self) {
        self.rollback();
    }

    pub fn ping(&mut self) -> Result<()> {
        self.reconnect_if_closed()?;
        self.client
            .simple_query("SELECT 1")
            .map(|_| ())
            .map_err(|e| Error::unavailable(format!("the database {} does not answer: {e}", self.shown)))
    }

    pub fn schema_version(&mut self) -> Result<i64> {
        self.reconnect_if_closed()?;
        Ok(self
            .client
            .query_opt("SELECT value FROM meta WHERE key = 'schema_version'", &[])?
            .map(|r| r.get::<_, String>(0).parse().unwrap_or(0))
            .unwrap_or(0))
    }

    /// Where it is, for logs.
    pub fn describe(&self) -> String {
        self.shown.clone()
    }

    fn migrate(&mut self) -> Result<()> {
        let mut tx = self.client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")?;
        let version: i64 = tx
            .query_opt("SELECT value FROM meta WHERE key = 'schema_version'", &[])?
            .map(|r| r.get::<_, String>(0).parse().unwrap_or(0))
            .unwrap_or(0);
        check_version(version, MIGRATIONS.len())?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.batch_execute(sql)?;
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', $1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&(i + 1).to_string()],
            )?;
        }
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('created_at', $1) ON CONFLICT (key) DO NOTHING",
            &[&now().to_string()],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn statement(&mut self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql)?;
        self.statements.insert(sql.to_owned(), s.clone());
        Ok(s)
    }
}

fn connect(url: &str, shown: &str) -> Result<Client> {
    Client::connect(url, NoTls).map_err(|e| Error::unavailable(format!("cannot connect to the database {shown}: {e}")))
}

impl Row for postgres::Row {
    fn int(&self, i: usize) -> Result<i64> {
        Ok(self.try_get(i)?)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        Ok(self.try_get(i)?)
    }
    fn real(&self, i: usize) -> Result<f64> {
        Ok(self.try_get(i)?)
    }
    fn text(&self, i: usize) -> Result<String> {
        Ok(self.try_get(i)?)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        Ok(self.try_get(i)?)
    }
}

fn params<'a>(args: &'a [Val<'_>]) -> Vec<&'a (dyn ToSql + Sync)> {
    args.iter()
        .map(|v| -> &(dyn ToSql + Sync) {
            match v {
                Val::I(x) => x,
                Val::F(x) => x,
                Val::S(x) => x,
                Val::OptI(x) => x,
                Val::OptS(x) => x,
            }
        })
        .collect()
}

impl Backend for PgStore {
    fn begin(&mut self) -> Result<()> {
        self.reconnect_if_closed()?;
        Ok(self.client.batch_execute("BEGIN")?)
    }
    fn commit(&mut self) -> Result<()> {
        Ok(self.client.batch_execute("COMMIT")?)
    }
    fn rollback(&mut self) {
        let _ = self.client.batch_execute("ROLLBACK");
    }
    fn exec(&mut self, sql: &str, args: &[Val<'_>]) -> Result<u64> {
        let stmt = self.statement(sql)?;
        Ok(self.client.execute(&stmt, &params(args))?)
    }
    fn query(&mut self, sql: &str, args: &[Val<'_>], f: &mut dyn FnMut(&dyn Row) -> Result<()>) -> Result<()> {
        let stmt = self.statement(sql)?;
        for r in self.client.query(&stmt, &params(args))? {
            f(&r)?;
        }
        Ok(())
    }
    fn order_column(&self) -> &'static str {
        "seq"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(without_password("postgresql://q:secret@db:5432/placement"), "postgresql://q:***@db:5432/placement");
        assert_eq!(without_password("postgresql://q@db/placement"), "postgresql://q@db/placement");
    }
}
