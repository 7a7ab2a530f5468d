//! The PostgreSQL store (`--database postgresql://...`): the same tables as
//! SQLite's in PostgreSQL's types, migrated at start-up under an advisory
//! lock (so replicas starting together migrate once), the schema version in
//! `meta`. Commits are as durable as the server makes them
//! (`synchronous_commit`).

use std::collections::HashMap;

use postgres::types::ToSql;
use postgres::{Client, NoTls, Statement};

use super::{Backend, Row, Val, check_version};
use crate::error::{Error, Result};
use crate::model::now;

/// Schema migrations, applied in order; the index is the schema version.
/// `seq` columns keep insertion order, as SQLite's `rowid` does.
pub(super) const MIGRATIONS: &[&str] = &[r#"
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
"#];

/// Advisory lock key held while migrating ("quiver" in ASCII).
const MIGRATION_LOCK: i64 = 0x71_75_69_76_65_72;

/// Advisory lock key the one process serving the database holds for as
/// long as it is connected ("quiver1"): until the replicas check
/// generations in the database and follow a change feed, a second process
/// would assign the same provider ids and over-allocate, so it is refused.
const SERVING_LOCK: i64 = 0x71_75_69_76_65_72_31;

pub struct PgStore {
    client: Client,
    url: String,
    /// The connection string without its password.
    shown: String,
    statements: HashMap<String, Statement>,
}

impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Self {
        if e.is_closed() {
            Error::unavailable(format!("the database connection is closed: {e}"))
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
        let mut store = PgStore { client, url: url.to_owned(), shown, statements: HashMap::new() };
        store.hold_serving_lock()?;
        store.migrate()?;
        Ok(store)
    }

    /// Takes the serving lock on this connection, or says who has it.
    fn hold_serving_lock(&mut self) -> Result<()> {
        // Wait a little: a process killed a moment ago may still hold it
        // until the server notices the closed connection.
        self.client.batch_execute("SET lock_timeout = '5s'")?;
        if let Err(e) = self.client.execute("SELECT pg_advisory_lock($1)", &[&SERVING_LOCK]) {
            if e.code() == Some(&postgres::error::SqlState::LOCK_NOT_AVAILABLE) {
                return Err(Error::internal(format!(
                    "another Quiver process already serves the database {}: several replicas on one database are not supported yet",
                    self.shown
                )));
            }
            return Err(e.into());
        }
        self.client.batch_execute("RESET lock_timeout")?;
        Ok(())
    }

    /// A lost connection (the server restarted, the network dropped) is
    /// opened again, with the serving lock, before the next statement.
    fn reconnect_if_closed(&mut self) -> Result<()> {
        if !self.client.is_closed() {
            return Ok(());
        }
        tracing::warn!(database = %self.shown, "the database connection was lost; reconnecting");
        self.client = connect(&self.url, &self.shown)?;
        self.statements.clear();
        self.hold_serving_lock()
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
    fn exec(&mut self, sql: &str, args: &[Val<'_>]) -> Result<()> {
        let stmt = self.statement(sql)?;
        let params: Vec<&(dyn ToSql + Sync)> = args
            .iter()
            .map(|v| -> &(dyn ToSql + Sync) {
                match v {
                    Val::I(x) => x,
                    Val::F(x) => x,
                    Val::S(x) => x,
                    Val::OptI(x) => x,
                    Val::OptS(x) => x,
                }
            })
            .collect();
        self.client.execute(&stmt, &params)?;
        Ok(())
    }
    fn query(&mut self, sql: &str, f: &mut dyn FnMut(&dyn Row) -> Result<()>) -> Result<()> {
        self.reconnect_if_closed()?;
        let stmt = self.statement(sql)?;
        for r in self.client.query(&stmt, &[])? {
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
