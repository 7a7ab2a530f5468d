//! The SQLite store: one database in WAL mode inside the data directory
//! (the embedded default).

use std::path::{Path, PathBuf};

use rusqlite::types::ToSqlOutput;
use rusqlite::{Connection, OptionalExtension};

use super::{Backend, Durability, Row, Val, check_version};
use crate::error::{Error, Result};
use crate::model::now;

/// Schema migrations, applied in order; the index is the schema version.
pub(super) const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE resource_classes (name TEXT PRIMARY KEY, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE traits (name TEXT PRIMARY KEY, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE resource_providers (
    id INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE,
    generation INTEGER NOT NULL,
    parent_id INTEGER,
    root_id INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL);
CREATE TABLE inventories (
    rp_id INTEGER NOT NULL, class TEXT NOT NULL,
    total INTEGER NOT NULL, reserved INTEGER NOT NULL, min_unit INTEGER NOT NULL,
    max_unit INTEGER NOT NULL, step_size INTEGER NOT NULL, allocation_ratio REAL NOT NULL,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
    PRIMARY KEY (rp_id, class));
CREATE TABLE provider_traits (rp_id INTEGER NOT NULL, trait TEXT NOT NULL, PRIMARY KEY (rp_id, trait));
CREATE TABLE provider_aggregates (rp_id INTEGER NOT NULL, aggregate TEXT NOT NULL, PRIMARY KEY (rp_id, aggregate));
CREATE TABLE consumers (
    uuid TEXT PRIMARY KEY, project TEXT NOT NULL, user TEXT NOT NULL,
    generation INTEGER NOT NULL, consumer_type TEXT,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE allocations (
    consumer TEXT NOT NULL, rp_id INTEGER NOT NULL, class TEXT NOT NULL, used INTEGER NOT NULL,
    PRIMARY KEY (consumer, rp_id, class));
CREATE INDEX allocations_rp ON allocations (rp_id);
"#];

pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating if needed) `dir/placement.sqlite` and migrates it.
    pub fn open(dir: &Path, durability: Durability) -> Result<SqliteStore> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::internal(format!("cannot create data directory {}: {e}", dir.display())))?;
        let path = dir.join("placement.sqlite");
        let conn = Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", if durability == Durability::Full { "FULL" } else { "NORMAL" })?;
        conn.pragma_update(None, "foreign_keys", "OFF")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let mut store = SqliteStore { conn, path };
        store.migrate()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn ping(&mut self) -> Result<()> {
        self.conn
            .query_row("SELECT 1", [], |_| Ok(()))
            .map_err(|e| Error::unavailable(format!("the store {} does not answer: {e}", self.path.display())))
    }

    pub fn schema_version(&mut self) -> Result<i64> {
        Ok(self.conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    fn migrate(&mut self) -> Result<()> {
        let version: i64 = self.conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        check_version(version, MIGRATIONS.len())?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        let created: Option<String> =
            self.conn.query_row("SELECT value FROM meta WHERE key = 'created_at'", [], |r| r.get(0)).optional()?;
        if created.is_none() {
            self.conn.execute("INSERT INTO meta (key, value) VALUES ('created_at', ?1)", [now().to_string()])?;
        }
        Ok(())
    }
}

impl rusqlite::ToSql for Val<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            Val::I(v) => ToSqlOutput::from(v),
            Val::F(v) => ToSqlOutput::from(v),
            Val::S(v) => ToSqlOutput::from(v),
            Val::OptI(v) => v.map_or(ToSqlOutput::from(rusqlite::types::Null), ToSqlOutput::from),
            Val::OptS(v) => v.map_or(ToSqlOutput::from(rusqlite::types::Null), ToSqlOutput::from),
        })
    }
}

impl Row for rusqlite::Row<'_> {
    fn int(&self, i: usize) -> Result<i64> {
        Ok(self.get(i)?)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        Ok(self.get(i)?)
    }
    fn real(&self, i: usize) -> Result<f64> {
        Ok(self.get(i)?)
    }
    fn text(&self, i: usize) -> Result<String> {
        Ok(self.get(i)?)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        Ok(self.get(i)?)
    }
}

impl Backend for SqliteStore {
    fn begin(&mut self) -> Result<()> {
        Ok(self.conn.execute_batch("BEGIN")?)
    }
    fn commit(&mut self) -> Result<()> {
        Ok(self.conn.execute_batch("COMMIT")?)
    }
    fn rollback(&mut self) {
        let _ = self.conn.execute_batch("ROLLBACK");
    }
    fn exec(&mut self, sql: &str, args: &[Val<'_>]) -> Result<u64> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        Ok(stmt.execute(rusqlite::params_from_iter(args.iter()))? as u64)
    }
    fn query(&mut self, sql: &str, args: &[Val<'_>], f: &mut dyn FnMut(&dyn Row) -> Result<()>) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
        while let Some(r) = rows.next()? {
            f(r)?;
        }
        Ok(())
    }
    fn order_column(&self) -> &'static str {
        "rowid"
    }
}
