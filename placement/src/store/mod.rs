//! The durable store, the truth (DESIGN.md section 3): SQLite in WAL mode
//! inside the data directory (the embedded default, [`sqlite`]) or a
//! PostgreSQL database (`--database postgresql://...`, [`postgres`]). Both
//! hold the same tables, run versioned migrations at start-up (and refuse a
//! database whose schema is newer than this build knows), and commit every
//! acknowledged write as one transaction that rewrites exactly the rows the
//! write touched ([`Dirty`]). The in-memory [`State`] is rebuilt from
//! either on start; reading rows and writing them is written once here,
//! over a small [`Backend`] each database implements.

mod postgres;
mod sqlite;
mod status;

pub use status::{StoreStatus, status};

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::model::{Allocation, Consumer, Dirty, Inventory, InventoryRecord, Provider, State};

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
    fn exec(&mut self, sql: &str, args: &[Val<'_>]) -> Result<()>;
    fn query(&mut self, sql: &str, f: &mut dyn FnMut(&dyn Row) -> Result<()>) -> Result<()>;
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
            Store::Sqlite(s) => load(s),
            Store::Postgres(p) => blocking(|| load(p.as_mut())),
        }
    }

    /// Writes everything `state.dirty` names in one transaction.
    ///
    /// # Errors
    /// A write or the commit fails; nothing of the write is kept.
    pub fn persist(&mut self, state: &State) -> Result<()> {
        let commit = |b: &mut dyn Backend| {
            b.begin()?;
            match persist(b, state) {
                Ok(()) => b.commit(),
                Err(e) => {
                    b.rollback();
                    Err(e)
                }
            }
        };
        match self {
            Store::Sqlite(s) => commit(s),
            Store::Postgres(p) => blocking(|| commit(p.as_mut())),
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

fn load(b: &mut dyn Backend) -> Result<State> {
    let order = b.order_column();
    let mut created = 0i64;
    b.query("SELECT value FROM meta WHERE key = 'created_at'", &mut |r| {
        created = r.text(0)?.parse().unwrap_or(0);
        Ok(())
    })?;
    let mut s = State::with_standard_names(created);
    let mut names: Vec<(String, i64, i64)> = vec![];
    b.query(&format!("SELECT name, created_at, updated_at FROM resource_classes ORDER BY {order}"), &mut |r| {
        names.push((r.text(0)?, r.int(1)?, r.int(2)?));
        Ok(())
    })?;
    for (name, c, u) in names.drain(..) {
        let id = s.classes.intern(&name, c);
        s.classes.updated_at[id as usize] = u;
    }
    b.query(&format!("SELECT name, created_at, updated_at FROM traits ORDER BY {order}"), &mut |r| {
        names.push((r.text(0)?, r.int(1)?, r.int(2)?));
        Ok(())
    })?;
    for (name, c, u) in names {
        let id = s.traits.intern(&name, c);
        s.traits.updated_at[id as usize] = u;
    }
    let mut providers = vec![];
    b.query(
        "SELECT id, uuid, name, generation, parent_id, root_id, created_at, updated_at FROM resource_providers ORDER BY id",
        &mut |r| {
            providers.push(Provider {
                id: r.int(0)? as u32,
                uuid: r.text(1)?,
                name: r.text(2)?,
                generation: r.int(3)?,
                parent: r.opt_int(4)?.map(|v| v as u32),
                root: r.int(5)? as u32,
                children: Default::default(),
                inventories: vec![],
                traits: Default::default(),
                aggregates: Default::default(),
                created_at: r.int(6)?,
                updated_at: r.int(7)?,
            });
            Ok(())
        },
    )?;
    for p in providers {
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
    let mut rows: Vec<(u32, String, Inventory, i64, i64)> = vec![];
    b.query(
        "SELECT rp_id, class, total, reserved, min_unit, max_unit, step_size, allocation_ratio, created_at, updated_at FROM inventories",
        &mut |r| {
            let inv = Inventory {
                total: r.int(2)?,
                reserved: r.int(3)?,
                min_unit: r.int(4)?,
                max_unit: r.int(5)?,
                step_size: r.int(6)?,
                allocation_ratio: r.real(7)?,
            };
            rows.push((r.int(0)? as u32, r.text(1)?, inv, r.int(8)?, r.int(9)?));
            Ok(())
        },
    )?;
    for (rp, class, inv, c, u) in rows {
        let class = s.classes.intern(&class, c);
        let p = s.provider_mut(rp);
        p.inventories.push(InventoryRecord { class, inv, used: 0, created_at: c, updated_at: u });
        p.inventories.sort_by_key(|r| r.class);
    }
    let mut pairs: Vec<(u32, String)> = vec![];
    b.query("SELECT rp_id, trait FROM provider_traits", &mut |r| {
        pairs.push((r.int(0)? as u32, r.text(1)?));
        Ok(())
    })?;
    for (rp, name) in pairs.drain(..) {
        let t = s.traits.intern(&name, created);
        s.provider_mut(rp).traits.insert(t);
    }
    b.query("SELECT rp_id, aggregate FROM provider_aggregates", &mut |r| {
        pairs.push((r.int(0)? as u32, r.text(1)?));
        Ok(())
    })?;
    for (rp, agg) in pairs {
        let a = s.aggs.intern(&agg, created);
        s.provider_mut(rp).aggregates.insert(a);
        s.agg_members.entry(a).or_default().insert(rp);
    }
    let mut consumers = vec![];
    b.query(
        "SELECT uuid, project, \"user\", generation, consumer_type, created_at, updated_at FROM consumers",
        &mut |r| {
            consumers.push(Consumer {
                uuid: r.text(0)?,
                project: r.text(1)?,
                user: r.text(2)?,
                generation: r.int(3)?,
                consumer_type: r.opt_text(4)?,
                allocations: vec![],
                created_at: r.int(5)?,
                updated_at: r.int(6)?,
            });
            Ok(())
        },
    )?;
    for c in consumers {
        s.consumers.insert(c.uuid.clone(), c);
    }
    let mut allocs: Vec<(String, u32, String, i64)> = vec![];
    b.query(&format!("SELECT consumer, rp_id, class, used FROM allocations ORDER BY {order}"), &mut |r| {
        allocs.push((r.text(0)?, r.int(1)? as u32, r.text(2)?, r.int(3)?));
        Ok(())
    })?;
    for (consumer, rp, class, used) in allocs {
        let class = s.classes.intern(&class, created);
        if let Some(c) = s.consumers.get_mut(&consumer) {
            c.allocations.push(Allocation { rp, class, used });
        }
        s.add_usage(rp, class, used);
    }
    s.usage_changed.clear();
    Ok(s)
}

fn persist(b: &mut dyn Backend, state: &State) -> Result<()> {
    use Val::{F, I, OptI, OptS, S};
    for d in &state.dirty {
        match d {
            Dirty::Class(id) => {
                let name = state.classes.name(*id);
                b.exec("DELETE FROM resource_classes WHERE name = $1", &[S(name)])?;
                if state.classes.live[*id as usize] {
                    b.exec(
                        "INSERT INTO resource_classes (name, created_at, updated_at) VALUES ($1, $2, $3)",
                        &[
                            S(name),
                            I(state.classes.created_at[*id as usize]),
                            I(state.classes.updated_at[*id as usize]),
                        ],
                    )?;
                }
            }
            Dirty::Trait(id) => {
                let name = state.traits.name(*id);
                b.exec("DELETE FROM traits WHERE name = $1", &[S(name)])?;
                if state.traits.live[*id as usize] {
                    b.exec(
                        "INSERT INTO traits (name, created_at, updated_at) VALUES ($1, $2, $3)",
                        &[S(name), I(state.traits.created_at[*id as usize]), I(state.traits.updated_at[*id as usize])],
                    )?;
                }
            }
            Dirty::Provider(id) => {
                let rid = i64::from(*id);
                b.exec("DELETE FROM inventories WHERE rp_id = $1", &[I(rid)])?;
                b.exec("DELETE FROM provider_traits WHERE rp_id = $1", &[I(rid)])?;
                b.exec("DELETE FROM provider_aggregates WHERE rp_id = $1", &[I(rid)])?;
                let Some(Some(p)) = state.providers.get(*id as usize) else {
                    b.exec("DELETE FROM resource_providers WHERE id = $1", &[I(rid)])?;
                    continue;
                };
                b.exec(
                    "INSERT INTO resource_providers (id, uuid, name, generation, parent_id, root_id, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                     ON CONFLICT (id) DO UPDATE SET uuid = excluded.uuid, name = excluded.name,
                       generation = excluded.generation, parent_id = excluded.parent_id,
                       root_id = excluded.root_id, updated_at = excluded.updated_at",
                    &[
                        I(rid),
                        S(&p.uuid),
                        S(&p.name),
                        I(p.generation),
                        OptI(p.parent.map(i64::from)),
                        I(i64::from(p.root)),
                        I(p.created_at),
                        I(p.updated_at),
                    ],
                )?;
                for r in &p.inventories {
                    let i = &r.inv;
                    b.exec(
                        "INSERT INTO inventories (rp_id, class, total, reserved, min_unit, max_unit, step_size, allocation_ratio, created_at, updated_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                        &[
                            I(rid),
                            S(state.class_name(r.class)),
                            I(i.total),
                            I(i.reserved),
                            I(i.min_unit),
                            I(i.max_unit),
                            I(i.step_size),
                            F(i.allocation_ratio),
                            I(r.created_at),
                            I(r.updated_at),
                        ],
                    )?;
                }
                for t in &p.traits {
                    b.exec(
                        "INSERT INTO provider_traits (rp_id, trait) VALUES ($1, $2)",
                        &[I(rid), S(state.traits.name(*t))],
                    )?;
                }
                for a in &p.aggregates {
                    b.exec(
                        "INSERT INTO provider_aggregates (rp_id, aggregate) VALUES ($1, $2)",
                        &[I(rid), S(state.aggs.name(*a))],
                    )?;
                }
            }
            Dirty::Consumer(uuid) => {
                b.exec("DELETE FROM allocations WHERE consumer = $1", &[S(uuid)])?;
                let Some(c) = state.consumers.get(uuid) else {
                    b.exec("DELETE FROM consumers WHERE uuid = $1", &[S(uuid)])?;
                    continue;
                };
                b.exec(
                    "INSERT INTO consumers (uuid, project, \"user\", generation, consumer_type, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (uuid) DO UPDATE SET project = excluded.project, \"user\" = excluded.\"user\",
                       generation = excluded.generation, consumer_type = excluded.consumer_type,
                       updated_at = excluded.updated_at",
                    &[
                        S(&c.uuid),
                        S(&c.project),
                        S(&c.user),
                        I(c.generation),
                        OptS(c.consumer_type.as_deref()),
                        I(c.created_at),
                        I(c.updated_at),
                    ],
                )?;
                for a in &c.allocations {
                    b.exec(
                        "INSERT INTO allocations (consumer, rp_id, class, used) VALUES ($1, $2, $3, $4)",
                        &[S(&c.uuid), I(i64::from(a.rp)), S(state.class_name(a.class)), I(a.used)],
                    )?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(any(test, feature = "test-cluster"))]
pub mod test_cluster;
