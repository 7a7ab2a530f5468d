//! The durable store: one SQLite database in WAL mode inside the data
//! directory. Migrations run at start-up; every acknowledged write is one
//! committed transaction that rewrites exactly the rows the write touched
//! (see [`Dirty`]). The in-memory [`State`] is rebuilt from it on start.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Error, Result};
use crate::model::{Allocation, Consumer, Dirty, Inventory, InventoryRecord, Provider, State, now};

/// Schema migrations, applied in order; the index is the schema version.
const MIGRATIONS: &[&str] = &[r#"
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

/// How hard each commit goes to disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Durability {
    /// WAL with `synchronous=NORMAL`: a commit survives a crash of the
    /// process (kill -9); the last commits can be lost to a power failure.
    #[default]
    Process,
    /// WAL with `synchronous=FULL`: every commit is fsynced.
    Full,
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (creating if needed) `dir/placement.sqlite` and migrates it.
    pub fn open(dir: &Path, durability: Durability) -> Result<Store> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::internal(format!("cannot create data directory {}: {e}", dir.display())))?;
        let path = dir.join("placement.sqlite");
        let conn = Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", if durability == Durability::Full { "FULL" } else { "NORMAL" })?;
        conn.pragma_update(None, "foreign_keys", "OFF")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let mut store = Store { conn, path };
        store.migrate()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn migrate(&mut self) -> Result<()> {
        let version: i64 = self.conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
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

    /// Rebuilds the whole in-memory state from the database.
    pub fn load(&self) -> Result<State> {
        let created: i64 = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'created_at'", [], |r| r.get::<_, String>(0))?
            .parse()
            .unwrap_or(0);
        let mut s = State::with_standard_names(created);
        let mut q = self.conn.prepare("SELECT name, created_at, updated_at FROM resource_classes ORDER BY rowid")?;
        for row in q.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))? {
            let (name, c, u) = row?;
            let id = s.classes.intern(&name, c);
            s.classes.updated_at[id as usize] = u;
        }
        let mut q = self.conn.prepare("SELECT name, created_at, updated_at FROM traits ORDER BY rowid")?;
        for row in q.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))? {
            let (name, c, u) = row?;
            let id = s.traits.intern(&name, c);
            s.traits.updated_at[id as usize] = u;
        }
        let mut q = self.conn.prepare(
            "SELECT id, uuid, name, generation, parent_id, root_id, created_at, updated_at FROM resource_providers ORDER BY id",
        )?;
        for row in q.query_map([], |r| {
            Ok(Provider {
                id: r.get::<_, i64>(0)? as u32,
                uuid: r.get(1)?,
                name: r.get(2)?,
                generation: r.get(3)?,
                parent: r.get::<_, Option<i64>>(4)?.map(|v| v as u32),
                root: r.get::<_, i64>(5)? as u32,
                children: Default::default(),
                inventories: vec![],
                traits: Default::default(),
                aggregates: Default::default(),
                created_at: r.get(6)?,
                updated_at: r.get(7)?,
            })
        })? {
            let p = row?;
            let id = p.id as usize;
            if s.providers.len() <= id {
                s.providers.resize(id + 1, None);
            }
            s.by_uuid.insert(p.uuid.clone(), p.id);
            s.by_name.insert(p.name.clone(), p.id);
            if p.parent.is_some() {
                s.nested += 1;
            }
            s.providers[id] = Some(p);
        }
        let ids: Vec<(u32, Option<u32>)> = s.live_providers().map(|p| (p.id, p.parent)).collect();
        for (id, parent) in ids {
            if let Some(parent) = parent {
                s.provider_mut(parent).children.insert(id);
            }
        }
        let mut q = self.conn.prepare(
            "SELECT rp_id, class, total, reserved, min_unit, max_unit, step_size, allocation_ratio, created_at, updated_at FROM inventories",
        )?;
        let rows: Vec<(u32, String, Inventory, i64, i64)> = q
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)? as u32,
                    r.get::<_, String>(1)?,
                    Inventory {
                        total: r.get(2)?,
                        reserved: r.get(3)?,
                        min_unit: r.get(4)?,
                        max_unit: r.get(5)?,
                        step_size: r.get(6)?,
                        allocation_ratio: r.get(7)?,
                    },
                    r.get(8)?,
                    r.get(9)?,
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        for (rp, class, inv, c, u) in rows {
            let class = s.classes.intern(&class, c);
            let p = s.provider_mut(rp);
            p.inventories.push(InventoryRecord { class, inv, used: 0, created_at: c, updated_at: u });
            p.inventories.sort_by_key(|r| r.class);
        }
        let rows: Vec<(u32, String)> = self
            .conn
            .prepare("SELECT rp_id, trait FROM provider_traits")?
            .query_map([], |r| Ok((r.get::<_, i64>(0)? as u32, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (rp, name) in rows {
            let t = s.traits.intern(&name, created);
            s.provider_mut(rp).traits.insert(t);
        }
        let rows: Vec<(u32, String)> = self
            .conn
            .prepare("SELECT rp_id, aggregate FROM provider_aggregates")?
            .query_map([], |r| Ok((r.get::<_, i64>(0)? as u32, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (rp, agg) in rows {
            let a = s.aggs.intern(&agg, created);
            s.provider_mut(rp).aggregates.insert(a);
            s.agg_members.entry(a).or_default().insert(rp);
        }
        let mut q = self
            .conn
            .prepare("SELECT uuid, project, user, generation, consumer_type, created_at, updated_at FROM consumers")?;
        for row in q.query_map([], |r| {
            Ok(Consumer {
                uuid: r.get(0)?,
                project: r.get(1)?,
                user: r.get(2)?,
                generation: r.get(3)?,
                consumer_type: r.get(4)?,
                allocations: vec![],
                created_at: r.get(5)?,
                updated_at: r.get(6)?,
            })
        })? {
            let c = row?;
            s.consumers.insert(c.uuid.clone(), c);
        }
        let rows: Vec<(String, u32, String, i64)> = self
            .conn
            .prepare("SELECT consumer, rp_id, class, used FROM allocations ORDER BY rowid")?
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u32, r.get(2)?, r.get(3)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (consumer, rp, class, used) in rows {
            let class = s.classes.intern(&class, created);
            if let Some(c) = s.consumers.get_mut(&consumer) {
                c.allocations.push(Allocation { rp, class, used });
            }
            s.add_usage(rp, class, used);
        }
        s.usage_changed.clear();
        Ok(s)
    }

    /// Writes everything `state.dirty` names in one transaction.
    pub fn persist(&mut self, state: &State) -> Result<()> {
        let tx = self.conn.transaction()?;
        for d in &state.dirty {
            match d {
                Dirty::Class(id) => {
                    let name = state.classes.name(*id);
                    tx.execute("DELETE FROM resource_classes WHERE name = ?1", [name])?;
                    if state.classes.live[*id as usize] {
                        tx.execute(
                            "INSERT INTO resource_classes (name, created_at, updated_at) VALUES (?1, ?2, ?3)",
                            params![
                                name,
                                state.classes.created_at[*id as usize],
                                state.classes.updated_at[*id as usize]
                            ],
                        )?;
                    }
                }
                Dirty::Trait(id) => {
                    let name = state.traits.name(*id);
                    tx.execute("DELETE FROM traits WHERE name = ?1", [name])?;
                    if state.traits.live[*id as usize] {
                        tx.execute(
                            "INSERT INTO traits (name, created_at, updated_at) VALUES (?1, ?2, ?3)",
                            params![name, state.traits.created_at[*id as usize], state.traits.updated_at[*id as usize]],
                        )?;
                    }
                }
                Dirty::Provider(id) => {
                    let rid = *id as i64;
                    tx.execute("DELETE FROM inventories WHERE rp_id = ?1", [rid])?;
                    tx.execute("DELETE FROM provider_traits WHERE rp_id = ?1", [rid])?;
                    tx.execute("DELETE FROM provider_aggregates WHERE rp_id = ?1", [rid])?;
                    let Some(Some(p)) = state.providers.get(*id as usize) else {
                        tx.execute("DELETE FROM resource_providers WHERE id = ?1", [rid])?;
                        continue;
                    };
                    tx.execute(
                        "INSERT INTO resource_providers (id, uuid, name, generation, parent_id, root_id, created_at, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                         ON CONFLICT(id) DO UPDATE SET uuid = excluded.uuid, name = excluded.name,
                           generation = excluded.generation, parent_id = excluded.parent_id,
                           root_id = excluded.root_id, updated_at = excluded.updated_at",
                        params![rid, p.uuid, p.name, p.generation, p.parent.map(|v| v as i64), p.root as i64, p.created_at, p.updated_at],
                    )?;
                    let mut ins = tx.prepare_cached(
                        "INSERT INTO inventories (rp_id, class, total, reserved, min_unit, max_unit, step_size, allocation_ratio, created_at, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    )?;
                    for r in &p.inventories {
                        let i = &r.inv;
                        ins.execute(params![
                            rid,
                            state.class_name(r.class),
                            i.total,
                            i.reserved,
                            i.min_unit,
                            i.max_unit,
                            i.step_size,
                            i.allocation_ratio,
                            r.created_at,
                            r.updated_at
                        ])?;
                    }
                    let mut ins = tx.prepare_cached("INSERT INTO provider_traits (rp_id, trait) VALUES (?1, ?2)")?;
                    for t in &p.traits {
                        ins.execute(params![rid, state.traits.name(*t)])?;
                    }
                    let mut ins =
                        tx.prepare_cached("INSERT INTO provider_aggregates (rp_id, aggregate) VALUES (?1, ?2)")?;
                    for a in &p.aggregates {
                        ins.execute(params![rid, state.aggs.name(*a)])?;
                    }
                }
                Dirty::Consumer(uuid) => {
                    tx.execute("DELETE FROM allocations WHERE consumer = ?1", [uuid])?;
                    let Some(c) = state.consumers.get(uuid) else {
                        tx.execute("DELETE FROM consumers WHERE uuid = ?1", [uuid])?;
                        continue;
                    };
                    tx.execute(
                        "INSERT INTO consumers (uuid, project, user, generation, consumer_type, created_at, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                         ON CONFLICT(uuid) DO UPDATE SET project = excluded.project, user = excluded.user,
                           generation = excluded.generation, consumer_type = excluded.consumer_type,
                           updated_at = excluded.updated_at",
                        params![c.uuid, c.project, c.user, c.generation, c.consumer_type, c.created_at, c.updated_at],
                    )?;
                    let mut ins = tx.prepare_cached(
                        "INSERT INTO allocations (consumer, rp_id, class, used) VALUES (?1, ?2, ?3, ?4)",
                    )?;
                    for a in &c.allocations {
                        ins.execute(params![c.uuid, a.rp as i64, state.class_name(a.class), a.used])?;
                    }
                }
            }
        }
        tx.commit()?;
        Ok(())
    }
}
