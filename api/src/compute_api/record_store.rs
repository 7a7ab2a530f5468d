//! Where Nova's records persist: one table of JSON documents keyed by kind
//! and id, in `DATA/compute.sqlite` (WAL mode) or, with `quiver serve
//! --database`, in the same PostgreSQL database as Placement's store
//! (table `compute_records`). Every write is committed before it returns.
//!
//! Placement's tables are shared by any number of replicas; the compute
//! records are not yet (each replica would hold its own copy in memory),
//! so on PostgreSQL one process at a time serves them, holding an advisory
//! lock for as long as it is connected. Other replicas run
//! `quiver serve --placement-only`.

use std::cell::RefCell;
use std::path::Path;

use quiver_placement::store::{Location, blocking};
use rusqlite::{Connection, params};

use super::records::StoreError;

fn se(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

/// A PostgreSQL connection that reopens itself after it was lost.
pub struct PgDocs {
    url: String,
    client: RefCell<postgres::Client>,
}

/// Advisory lock key of the process serving the compute records ("quiverc").
const COMPUTE_LOCK: i64 = 0x71_75_69_76_65_72_63;

impl PgDocs {
    /// Connects and takes the compute records' lock, or says who has it.
    fn connect(url: &str) -> Result<postgres::Client, StoreError> {
        let mut c = postgres::Client::connect(url, postgres::NoTls)
            .map_err(|e| StoreError(format!("cannot connect to the database: {e}")))?;
        // Wait a little: a process killed a moment ago holds it until the
        // server notices its connection closed.
        c.batch_execute("SET lock_timeout = '5s'").map_err(se)?;
        if let Err(e) = c.execute("SELECT pg_advisory_lock($1)", &[&COMPUTE_LOCK]) {
            if e.code() == Some(&postgres::error::SqlState::LOCK_NOT_AVAILABLE) {
                return Err(StoreError(
                    "another replica serves the Compute API on this database (the compute records have one \
                     writer): start this one with --placement-only"
                        .into(),
                ));
            }
            return Err(se(e));
        }
        c.batch_execute("RESET lock_timeout").map_err(se)?;
        Ok(c)
    }

    fn client(&self) -> Result<std::cell::RefMut<'_, postgres::Client>, StoreError> {
        let mut c = self.client.borrow_mut();
        if c.is_closed() {
            *c = Self::connect(&self.url)?;
        }
        Ok(c)
    }
}

/// The document table.
pub enum DocStore {
    Sqlite(Connection),
    Postgres(Box<PgDocs>),
}

const PG_UPSERT: &str = "INSERT INTO compute_records (kind, id, body) VALUES ($1, $2, $3)
     ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body";

impl DocStore {
    /// Opens (creating the table if needed) the store at `at`.
    ///
    /// # Errors
    /// The file or database cannot be opened.
    pub fn open(at: &Location) -> Result<DocStore, StoreError> {
        match at {
            Location::Dir(dir) => Self::open_sqlite(dir),
            Location::Postgres(url) => blocking(|| {
                let mut c = PgDocs::connect(url)?;
                c.batch_execute(
                    "CREATE TABLE IF NOT EXISTS compute_records (kind TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL,
                                                                 PRIMARY KEY (kind, id))",
                )
                .map_err(se)?;
                Ok(DocStore::Postgres(Box::new(PgDocs { url: url.clone(), client: RefCell::new(c) })))
            }),
        }
    }

    fn open_sqlite(dir: &Path) -> Result<DocStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(se)?;
        let conn = Connection::open(dir.join("compute.sqlite")).map_err(se)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS records (kind TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL,
                                                 PRIMARY KEY (kind, id));",
        )
        .map_err(se)?;
        Ok(DocStore::Sqlite(conn))
    }

    /// Every `(kind, body)`.
    pub fn load_all(&self) -> Result<Vec<(String, String)>, StoreError> {
        match self {
            DocStore::Sqlite(conn) => {
                let mut st = conn.prepare("SELECT kind, body FROM records").map_err(se)?;
                st.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
                    .map_err(se)?
                    .collect::<Result<_, _>>()
                    .map_err(se)
            }
            DocStore::Postgres(pg) => blocking(|| {
                Ok(pg
                    .client()?
                    .query("SELECT kind, body FROM compute_records", &[])
                    .map_err(se)?
                    .into_iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect())
            }),
        }
    }

    /// Inserts or replaces the documents `(kind, id, body)` in one transaction.
    pub fn put_all(&mut self, docs: &[(&str, String, String)]) -> Result<(), StoreError> {
        match self {
            DocStore::Sqlite(conn) => {
                let tx = conn.transaction().map_err(se)?;
                for (kind, id, body) in docs {
                    tx.execute(
                        "INSERT OR REPLACE INTO records (kind, id, body) VALUES (?1, ?2, ?3)",
                        params![kind, id, body],
                    )
                    .map_err(se)?;
                }
                tx.commit().map_err(se)
            }
            DocStore::Postgres(pg) => blocking(|| {
                let mut c = pg.client()?;
                let mut tx = c.transaction().map_err(se)?;
                for (kind, id, body) in docs {
                    tx.execute(PG_UPSERT, &[kind, &id.as_str(), &body.as_str()]).map_err(se)?;
                }
                tx.commit().map_err(se)
            }),
        }
    }

    /// Inserts or replaces one document.
    pub fn put(&self, kind: &str, id: &str, body: &str) -> Result<(), StoreError> {
        match self {
            DocStore::Sqlite(conn) => conn
                .execute("INSERT OR REPLACE INTO records (kind, id, body) VALUES (?1, ?2, ?3)", params![kind, id, body])
                .map(|_| ())
                .map_err(se),
            DocStore::Postgres(pg) => {
                blocking(|| pg.client()?.execute(PG_UPSERT, &[&kind, &id, &body]).map(|_| ()).map_err(se))
            }
        }
    }

    /// Deletes one document.
    pub fn delete(&self, kind: &str, id: &str) -> Result<(), StoreError> {
        match self {
            DocStore::Sqlite(conn) => conn
                .execute("DELETE FROM records WHERE kind = ?1 AND id = ?2", params![kind, id])
                .map(|_| ())
                .map_err(se),
            DocStore::Postgres(pg) => blocking(|| {
                pg.client()?
                    .execute("DELETE FROM compute_records WHERE kind = $1 AND id = $2", &[&kind, &id])
                    .map(|_| ())
                    .map_err(se)
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute_api::records::{Flavor, Records};

    #[test]
    fn records_in_postgresql_survive_a_reopen_and_deletes_stay_deleted() {
        let cluster = quiver_placement::store::test_cluster::TestCluster::start();
        let at = Location::Postgres(cluster.url("quiver"));
        {
            let mut r = Records::open_at(&at).expect("open");
            r.save(&Flavor::for_test("m1.small", 1, 512, 1)).expect("save");
            let (a, b) = (Flavor::for_test("m1.medium", 2, 4096, 10), Flavor::for_test("m1.large", 4, 8192, 20));
            r.save_all(&[&a, &b]).expect("save all");
            r.remove("flavor", "m1.medium").expect("remove");
        }
        let r = Records::open_at(&at).expect("reopen");
        let other = Records::open_at(&at).err().expect("a second writer of the compute records is refused");
        assert!(other.to_string().contains("--placement-only"), "{other}");
        let names: Vec<&str> = r.flavors.keys().map(String::as_str).collect();
        assert_eq!(names, ["m1.large", "m1.small"]);
        assert_eq!(r.flavors["m1.large"].ram, 8192);
        // The server restarting under an open store: the next write reconnects.
        cluster.stop();
        assert!(r.save(&Flavor::for_test("m1.tiny", 1, 256, 1)).is_err(), "no database, no acknowledged write");
        cluster.restart();
        r.save(&Flavor::for_test("m1.tiny", 1, 256, 1)).expect("reconnected");
        drop(r);
        assert!(Records::open_at(&at).expect("reopen").flavors.contains_key("m1.tiny"));
    }
}
