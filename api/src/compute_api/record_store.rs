//! Where Nova's records persist: one table of JSON documents keyed by kind
//! and id, in `DATA/compute.sqlite` (WAL mode) or, with `quiver serve
//! --database`, in the same PostgreSQL database as Placement's store
//! (table `compute_records`). Every write is committed before it returns.
//!
//! On PostgreSQL any number of replicas serve the records. Each holds a
//! copy in memory and keeps it current the way Placement's fleet is kept:
//! every write also appends `(kind, id)` to `compute_changes` in the same
//! statement, and a replica re-reads the documents named since the last
//! sequence it applied. A replica reads and writes its copy only while it
//! holds the records' advisory lock ([`DocStore::lock`], taken for as long
//! as the process's records guard is out), and catches up right after
//! taking it, so every read-modify-write sees every other replica's
//! committed writes and none interleaves with it. Heartbeats go to their
//! own table (`service_heartbeats`), not the feed: they are frequent, and
//! a second's delay is nothing beside `service_down_time`.

use std::cell::{Cell, RefCell};
use std::path::Path;

use quiver_placement::store::{Location, blocking};
use rusqlite::{Connection, params};

use super::records::StoreError;

fn se(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

/// Advisory lock key of the compute records ("quiverc").
const RECORDS_LOCK: i64 = 0x71_75_69_76_65_72_63;

/// Change rows kept when a replica prunes the feed.
const RETAINED_CHANGES: i64 = 10_000;

/// A replica prunes the feed after this many of its own writes.
const PRUNE_EVERY: u64 = 1_000;

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS compute_records (kind TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL,
                                                PRIMARY KEY (kind, id));
    CREATE TABLE IF NOT EXISTS compute_changes (seq BIGSERIAL PRIMARY KEY, kind TEXT NOT NULL, id TEXT NOT NULL,
                                                at TIMESTAMPTZ NOT NULL DEFAULT now());
    CREATE TABLE IF NOT EXISTS compute_feed (pruned_through BIGINT NOT NULL);
    INSERT INTO compute_feed SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM compute_feed);
    CREATE TABLE IF NOT EXISTS service_heartbeats (host TEXT PRIMARY KEY, last_seen DOUBLE PRECISION NOT NULL);";

const PG_UPSERT: &str = "WITH d AS (INSERT INTO compute_records (kind, id, body) VALUES ($1, $2, $3)
                                    ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body)
     INSERT INTO compute_changes (kind, id) VALUES ($1, $2) RETURNING seq";

const PG_DELETE: &str = "WITH d AS (DELETE FROM compute_records WHERE kind = $1 AND id = $2)
     INSERT INTO compute_changes (kind, id) VALUES ($1, $2) RETURNING seq";

/// What other replicas wrote since a sequence number.
#[derive(Debug)]
pub enum Feed {
    /// Nothing.
    Current,
    /// These documents `(kind, id)` changed; `latest` is the newest change.
    Changed { docs: Vec<(String, String)>, latest: i64 },
    /// Changes this replica has not applied were pruned: load everything.
    Reload,
}

/// A PostgreSQL connection that reopens itself after it was lost.
pub struct PgDocs {
    url: String,
    client: RefCell<postgres::Client>,
    /// Whether this connection holds [`RECORDS_LOCK`].
    locked: Cell<bool>,
    /// Writes since this replica last pruned the feed.
    writes: Cell<u64>,
    /// Change rows kept, and writes between prunes.
    retain: Cell<(i64, u64)>,
}

impl PgDocs {
    fn connect(url: &str) -> Result<postgres::Client, StoreError> {
        postgres::Client::connect(url, postgres::NoTls)
            .map_err(|e| StoreError(format!("cannot connect to the database: {e}")))
    }

    fn client(&self) -> Result<std::cell::RefMut<'_, postgres::Client>, StoreError> {
        let mut c = self.client.borrow_mut();
        if c.is_closed() {
            // A lost connection lost its session lock with it.
            self.locked.set(false);
            *c = Self::connect(&self.url)?;
        }
        Ok(c)
    }

    /// Counts a write and, every [`PRUNE_EVERY`], drops change rows older
    /// than the last [`RETAINED_CHANGES`] (under the lock, so the mark and
    /// the delete agree).
    fn after_write(&self, seq: i64) {
        let (rows, every) = self.retain.get();
        self.writes.set(self.writes.get() + 1);
        if self.writes.get() < every || !self.locked.get() {
            return;
        }
        self.writes.set(0);
        let through = seq - rows;
        if through <= 0 {
            return;
        }
        let pruned = self.client().and_then(|mut c| {
            let mut tx = c.transaction().map_err(se)?;
            tx.execute("DELETE FROM compute_changes WHERE seq <= $1", &[&through]).map_err(se)?;
            tx.execute("UPDATE compute_feed SET pruned_through = GREATEST(pruned_through, $1)", &[&through])
                .map_err(se)?;
            tx.commit().map_err(se)
        });
        if let Err(e) = pruned {
            tracing::warn!(error = %e, "cannot prune the compute records' change feed");
        }
    }
}

/// The document table.
pub enum DocStore {
    Sqlite(Connection),
    Postgres(Box<PgDocs>),
}

impl DocStore {
    /// Opens (creating the tables if needed) the store at `at`.
    ///
    /// # Errors
    /// The file or database cannot be opened.
    pub fn open(at: &Location) -> Result<DocStore, StoreError> {
        match at {
            Location::Dir(dir) => Self::open_sqlite(dir),
            Location::Postgres(url) => blocking(|| {
                let mut c = PgDocs::connect(url)?;
                // Replicas starting together create the tables one at a time.
                c.execute("SELECT pg_advisory_lock($1)", &[&RECORDS_LOCK]).map_err(se)?;
                let created = c.batch_execute(SCHEMA).map_err(se);
                c.execute("SELECT pg_advisory_unlock($1)", &[&RECORDS_LOCK]).map_err(se)?;
                created?;
                Ok(DocStore::Postgres(Box::new(PgDocs {
                    url: url.clone(),
                    client: RefCell::new(c),
                    locked: Cell::new(false),
                    writes: Cell::new(0),
                    retain: Cell::new((RETAINED_CHANGES, PRUNE_EVERY)),
                })))
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

    /// Whether other processes write these records too (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        matches!(self, DocStore::Postgres(_))
    }

    /// Every `(kind, body)`, and the newest change they include (0 on SQLite).
    pub fn load_all(&self) -> Result<(Vec<(String, String)>, i64), StoreError> {
        match self {
            DocStore::Sqlite(conn) => {
                let mut st = conn.prepare("SELECT kind, body FROM records").map_err(se)?;
                let rows = st
                    .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
                    .map_err(se)?
                    .collect::<Result<_, _>>()
                    .map_err(se)?;
                Ok((rows, 0))
            }
            DocStore::Postgres(pg) => blocking(|| {
                let mut c = pg.client()?;
                // One snapshot: the documents and the feed position agree.
                let mut tx = c
                    .build_transaction()
                    .isolation_level(postgres::IsolationLevel::RepeatableRead)
                    .read_only(true)
                    .start()
                    .map_err(se)?;
                let seq: i64 =
                    tx.query_one("SELECT coalesce(max(seq), 0) FROM compute_changes", &[]).map_err(se)?.get(0);
                let rows = tx
                    .query("SELECT kind, body FROM compute_records", &[])
                    .map_err(se)?
                    .into_iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect();
                tx.commit().map_err(se)?;
                Ok((rows, seq))
            }),
        }
    }

    /// Takes the records' lock (PostgreSQL; waits for the replica holding
    /// it). Nothing on SQLite: one process serves it.
    ///
    /// # Errors
    /// The database is unreachable.
    pub fn lock(&self) -> Result<(), StoreError> {
        let DocStore::Postgres(pg) = self else { return Ok(()) };
        if pg.locked.get() {
            return Ok(());
        }
        blocking(|| {
            pg.client()?.execute("SELECT pg_advisory_lock($1)", &[&RECORDS_LOCK]).map_err(se)?;
            pg.locked.set(true);
            Ok(())
        })
    }

    /// Gives the lock back (a lost connection already did).
    pub fn unlock(&self) {
        let DocStore::Postgres(pg) = self else { return };
        if !pg.locked.replace(false) {
            return;
        }
        let released = blocking(|| {
            let mut c = pg.client.borrow_mut();
            if c.is_closed() {
                return Ok(());
            }
            c.execute("SELECT pg_advisory_unlock($1)", &[&RECORDS_LOCK]).map(|_| ()).map_err(se)
        });
        if let Err(e) = released {
            // Closing the connection releases it for sure.
            tracing::warn!(error = %e, "cannot release the compute records' lock; reconnecting");
            if let Ok(c) = PgDocs::connect(&pg.url) {
                *pg.client.borrow_mut() = c;
            }
        }
    }

    /// Keeps `rows` change rows, pruning every `every` writes (tests).
    #[cfg(test)]
    pub fn set_retention(&self, rows: i64, every: u64) {
        if let DocStore::Postgres(pg) = self {
            pg.retain.set((rows, every));
        }
    }

    /// Whether this process holds the lock now.
    pub fn holds_lock(&self) -> bool {
        matches!(self, DocStore::Postgres(pg) if pg.locked.get())
    }

    /// The documents changed after `applied`.
    ///
    /// # Errors
    /// The database is unreachable.
    pub fn changes_since(&self, applied: i64) -> Result<Feed, StoreError> {
        let DocStore::Postgres(pg) = self else { return Ok(Feed::Current) };
        blocking(|| {
            // One round trip: the prune mark's row always comes back, with
            // the changes after `applied` (none: NULLs) beside it.
            let rows = pg
                .client()?
                .query(
                    "SELECT f.pruned_through, c.seq, c.kind, c.id FROM compute_feed f
                     LEFT JOIN compute_changes c ON c.seq > $1 ORDER BY c.seq",
                    &[&applied],
                )
                .map_err(se)?;
            let Some(first) = rows.first() else { return Ok(Feed::Reload) };
            if first.get::<_, i64>(0) > applied {
                return Ok(Feed::Reload);
            }
            let mut docs = Vec::new();
            let mut latest = applied;
            for r in &rows {
                let Some(seq) = r.get::<_, Option<i64>>(1) else { continue };
                latest = latest.max(seq);
                docs.push((r.get(2), r.get(3)));
            }
            docs.sort_unstable();
            docs.dedup();
            Ok(if docs.is_empty() { Feed::Current } else { Feed::Changed { docs, latest } })
        })
    }

    /// The bodies of `docs` that still exist, as `(kind, id, body)`.
    ///
    /// # Errors
    /// The database is unreachable.
    pub fn get_many(&self, docs: &[(String, String)]) -> Result<Vec<(String, String, String)>, StoreError> {
        let DocStore::Postgres(pg) = self else { return Ok(Vec::new()) };
        let (kinds, ids): (Vec<&str>, Vec<&str>) = docs.iter().map(|(k, i)| (k.as_str(), i.as_str())).unzip();
        blocking(|| {
            Ok(pg
                .client()?
                .query(
                    "SELECT r.kind, r.id, r.body FROM compute_records r
                     JOIN unnest($1::text[], $2::text[]) AS k(kind, id) ON r.kind = k.kind AND r.id = k.id",
                    &[&kinds, &ids],
                )
                .map_err(se)?
                .into_iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect())
        })
    }

    /// Records a heartbeat where every replica sees it (PostgreSQL).
    ///
    /// # Errors
    /// The database is unreachable.
    pub fn put_heartbeat(&self, host: &str, at: f64) -> Result<(), StoreError> {
        let DocStore::Postgres(pg) = self else { return Ok(()) };
        blocking(|| {
            pg.client()?
                .execute(
                    "INSERT INTO service_heartbeats (host, last_seen) VALUES ($1, $2)
                     ON CONFLICT (host) DO UPDATE SET last_seen = GREATEST(service_heartbeats.last_seen, excluded.last_seen)",
                    &[&host, &at],
                )
                .map(|_| ())
                .map_err(se)
        })
    }

    /// Heartbeats newer than `since`, as `(host, unix seconds)`.
    ///
    /// # Errors
    /// The database is unreachable.
    pub fn heartbeats_since(&self, since: f64) -> Result<Vec<(String, f64)>, StoreError> {
        let DocStore::Postgres(pg) = self else { return Ok(Vec::new()) };
        blocking(|| {
            Ok(pg
                .client()?
                .query("SELECT host, last_seen FROM service_heartbeats WHERE last_seen > $1", &[&since])
                .map_err(se)?
                .into_iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect())
        })
    }

    /// Inserts or replaces the documents `(kind, id, body)` in one
    /// transaction; the newest change it made (PostgreSQL).
    pub fn put_all(&mut self, docs: &[(&str, String, String)]) -> Result<Option<i64>, StoreError> {
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
                tx.commit().map_err(se)?;
                Ok(None)
            }
            DocStore::Postgres(pg) if docs.len() == 1 => {
                let (kind, id, body) = &docs[0];
                blocking(|| Self::pg_write(pg, PG_UPSERT, &[kind, &id.as_str(), &body.as_str()]))
            }
            DocStore::Postgres(pg) => blocking(|| {
                let mut c = pg.client()?;
                let mut tx = c.transaction().map_err(se)?;
                let mut seq = None;
                for (kind, id, body) in docs {
                    let row = tx.query_one(PG_UPSERT, &[kind, &id.as_str(), &body.as_str()]).map_err(se)?;
                    seq = Some(row.get::<_, i64>(0));
                }
                tx.commit().map_err(se)?;
                drop(c);
                if let Some(s) = seq {
                    pg.after_write(s);
                }
                Ok(seq)
            }),
        }
    }

    /// Inserts or replaces one document; its change (PostgreSQL).
    pub fn put(&self, kind: &str, id: &str, body: &str) -> Result<Option<i64>, StoreError> {
        match self {
            DocStore::Sqlite(conn) => conn
                .execute("INSERT OR REPLACE INTO records (kind, id, body) VALUES (?1, ?2, ?3)", params![kind, id, body])
                .map(|_| None)
                .map_err(se),
            DocStore::Postgres(pg) => blocking(|| Self::pg_write(pg, PG_UPSERT, &[&kind, &id, &body])),
        }
    }

    /// Deletes one document; its change (PostgreSQL).
    pub fn delete(&self, kind: &str, id: &str) -> Result<Option<i64>, StoreError> {
        match self {
            DocStore::Sqlite(conn) => conn
                .execute("DELETE FROM records WHERE kind = ?1 AND id = ?2", params![kind, id])
                .map(|_| None)
                .map_err(se),
            DocStore::Postgres(pg) => blocking(|| Self::pg_write(pg, PG_DELETE, &[&kind, &id])),
        }
    }

    fn pg_write(
        pg: &PgDocs,
        sql: &str,
        args: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Option<i64>, StoreError> {
        let seq: i64 = pg.client()?.query_one(sql, args).map_err(se)?.get(0);
        pg.after_write(seq);
        Ok(Some(seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute_api::records::{Flavor, Records, Service};

    fn flavor_names(r: &Records) -> Vec<&str> {
        r.flavors.keys().map(String::as_str).collect()
    }

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
        let mut r = Records::open_at(&at).expect("reopen");
        assert_eq!(flavor_names(&r), ["m1.large", "m1.small"]);
        assert_eq!(r.flavors["m1.large"].ram, 8192);
        // The server restarting under an open store: the next write reconnects.
        cluster.stop();
        assert!(r.save(&Flavor::for_test("m1.tiny", 1, 256, 1)).is_err(), "no database, no acknowledged write");
        cluster.restart();
        r.save(&Flavor::for_test("m1.tiny", 1, 256, 1)).expect("reconnected");
        drop(r);
        assert!(Records::open_at(&at).expect("reopen").flavors.contains_key("m1.tiny"));
    }

    #[test]
    fn two_copies_on_one_database_see_each_others_writes_deletes_and_heartbeats() {
        let cluster = quiver_placement::store::test_cluster::TestCluster::start();
        let at = Location::Postgres(cluster.url("quiver"));
        let mut a = Records::open_at(&at).expect("open a");
        let mut b = Records::open_at(&at).expect("open b");
        a.acquire(true).expect("a caught up");
        a.save(&Flavor::for_test("m1.small", 1, 512, 1)).expect("save");
        a.save(&Service::for_test("c1", "c1-rp", 100.0)).expect("save service");
        a.services.insert("c1".into(), Service::for_test("c1", "c1-rp", 100.0));
        a.release();
        assert!(b.flavors.is_empty(), "b has not looked yet");
        b.acquire(true).expect("b caught up");
        assert_eq!(flavor_names(&b), ["m1.small"]);
        assert_eq!(b.services["c1"].last_seen, 100.0);
        let changed = b.take_changes();
        assert!(changed.services.contains("c1"), "the live fleet re-binds what another copy wrote");
        // b replaces and deletes; a sees both.
        b.save(&Flavor::for_test("m1.small", 2, 1024, 1)).expect("replace");
        b.save(&Flavor::for_test("m1.big", 8, 8192, 1)).expect("save");
        b.remove("flavor", "m1.big").expect("delete");
        b.release();
        a.acquire(true).expect("a caught up");
        assert_eq!(flavor_names(&a), ["m1.small"]);
        assert_eq!(a.flavors["m1.small"].vcpus, 2);
        // A heartbeat taken by a reaches b (its reads run at most once a second).
        assert!(a.heartbeat("c1", 200.0));
        a.release();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        b.acquire(true).expect("b caught up");
        assert_eq!(b.services["c1"].last_seen, 200.0);
        b.release();
        // While a holds the lock, b waits for it.
        a.acquire(true).expect("a locks");
        let waited = std::thread::scope(|s| {
            let h = s.spawn(|| {
                let started = std::time::Instant::now();
                b.acquire(true).expect("b locks after a");
                b.release();
                started.elapsed()
            });
            std::thread::sleep(std::time::Duration::from_millis(300));
            a.release();
            h.join().expect("b")
        });
        assert!(waited >= std::time::Duration::from_millis(250), "b did not wait: {waited:?}");
        // A reader does not wait for a writer, and sees what it committed.
        a.acquire(true).expect("a locks");
        a.save(&Flavor::for_test("m1.read", 1, 128, 1)).expect("save");
        let started = std::time::Instant::now();
        b.acquire(false).expect("b reads");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert!(b.flavors.contains_key("m1.read"));
        b.release();
        a.release();
        // A copy whose unapplied changes were pruned reloads everything.
        a.acquire(true).expect("a locks");
        a.store_for_test().set_retention(2, 1);
        for i in 0..6 {
            a.save(&Flavor::for_test(&format!("f{i}"), 1, 256, 1)).expect("save");
        }
        a.remove("flavor", "m1.small").expect("delete");
        a.release();
        b.acquire(true).expect("b reloads");
        assert_eq!(flavor_names(&b), ["f0", "f1", "f2", "f3", "f4", "f5", "m1.read"]);
        assert!(b.take_changes().services.contains("c1"), "a reload re-binds every host");
        b.release();
    }
}
