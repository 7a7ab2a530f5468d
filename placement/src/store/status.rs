//! What `quiver db status` reports about a store without serving it: where
//! it is, the schema version it is at against the one this build knows,
//! and how much it holds. It takes no lock and migrates nothing, so it
//! works beside a running server.

use std::path::Path;

use super::{Location, postgres, sqlite};
use crate::error::{Error, Result};

/// A store's state, as `quiver db status` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    Ok(StoreStatus {
        location,
        schema_version,
        known_version: postgres::MIGRATIONS.len(),
        providers,
        consumers,
        allocations,
    })
}
