//! What `quiver db status` reports about a store without serving it: where
//! it is, the schema version it is at against the one this build knows,
//! and how much it holds, and on PostgreSQL how far each replica's memory
//! trails the change feed. It takes no lock and migrates nothing, so it
//! works beside running servers.

use std::path::Path;

use super::{Location, postgres, sqlite};
use crate::error::{Error, Result};

/// A store's state, as `quiver db status` prints it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoreStatus {
    /// Where it is (a PostgreSQL URL without its password).
    pub location: String,
    /// The schema version it is at (0: never migrated).
    pub schema_version: i64,
    /// The version this build migrates to.
    pub known_version: usize,
    pub providers: i64,
    pub consumers: i64,
    pub allocations: i64,
    /// The newest change in the feed (PostgreSQL).
    pub latest_change: Option<i64>,
    /// The replicas that reported in (PostgreSQL), newest first.
    pub replicas: Vec<ReplicaStatus>,
}

/// One replica's place in the change feed, as it last reported it.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplicaStatus {
    pub name: String,
    pub applied: i64,
    /// Changes committed that it had not applied when it reported.
    pub behind: i64,
    /// Its last commit-to-apply delay of another replica's change (ms).
    pub lag_ms: Option<f64>,
    /// Seconds since it reported (a replica that stopped stays listed
    /// until it is an hour old).
    pub seen_ago: i64,
}

const COUNTS: &str = "SELECT (SELECT count(*) FROM resource_providers), (SELECT count(*) FROM consumers), (SELECT count(*) FROM allocations)";

/// Reads the status of the store at `at`.
///
/// # Errors
/// The store cannot be opened or read.
pub fn status(at: &Location) -> Result<StoreStatus> {
    match at {
        Location::Dir(dir) => sqlite_status(dir),
        Location::Postgres(url) => super::blocking(|| postgres_status(url)),
    }
}

fn sqlite_status(dir: &Path) -> Result<StoreStatus> {
    let path = dir.join("placement.sqlite");
    if !path.exists() {
        return Err(Error::not_found(format!("no store at {}", path.display())));
    }
    let conn = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let schema_version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let (providers, consumers, allocations) = if schema_version > 0 {
        conn.query_row(COUNTS, [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
    } else {
        (0, 0, 0)
    };
    Ok(StoreStatus {
        location: path.display().to_string(),
        schema_version,
        known_version: sqlite::MIGRATIONS.len(),
        providers,
        consumers,
        allocations,
        latest_change: None,
        replicas: vec![],
    })
}

fn postgres_status(url: &str) -> Result<StoreStatus> {
    let location = postgres::without_password(url);
    let mut c = ::postgres::Client::connect(url, ::postgres::NoTls)
        .map_err(|e| Error::unavailable(format!("cannot connect to the database {location}: {e}")))?;
    let has_meta: bool =
        c.query_one("SELECT EXISTS (SELECT 1 FROM information_schema.tables WHERE table_name = 'meta')", &[])?.get(0);
    let schema_version: i64 = if has_meta {
        c.query_opt("SELECT value FROM meta WHERE key = 'schema_version'", &[])?
            .map(|r| r.get::<_, String>(0).parse().unwrap_or(0))
            .unwrap_or(0)
    } else {
        0
    };
    let (providers, consumers, allocations) = if schema_version > 0 {
        let r = c.query_one(COUNTS, &[])?;
        (r.get(0), r.get(1), r.get(2))
    } else {
        (0, 0, 0)
    };
    let (latest_change, replicas) = if schema_version >= 2 {
        let latest: i64 = c.query_one("SELECT coalesce(max(seq), 0) FROM changes", &[])?.get(0);
        let now = crate::model::now();
        let replicas = c
            .query("SELECT name, applied_seq, lag_ms, seen_at FROM replicas WHERE seen_at > $1 ORDER BY seen_at DESC, name", &[&(now - 3600)])?
            .iter()
            .map(|r| {
                let applied: i64 = r.get(1);
                ReplicaStatus {
                    name: r.get(0),
                    applied,
                    behind: (latest - applied).max(0),
                    lag_ms: r.get(2),
                    seen_ago: (now - r.get::<_, i64>(3)).max(0),
                }
            })
            .collect();
        (Some(latest), replicas)
    } else {
        (None, vec![])
    };
    Ok(StoreStatus {
        location,
        schema_version,
        known_version: postgres::MIGRATIONS.len(),
        providers,
        consumers,
        allocations,
        latest_change,
        replicas,
    })
}
