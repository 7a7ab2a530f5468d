//! `quiver db sync` and `quiver db status`: Placement's store outside a
//! running server, the SQLite file in a data directory or a PostgreSQL
//! database.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use quiver_placement::store::{Durability, Location, Store, status};

/// Placement's store: migrate it, or say where it stands.
#[derive(Debug, Subcommand)]
#[command(after_help = "Examples:
  quiver db status --data ./quiver-data
  quiver db sync --database postgresql://quiver@db.example.com/placement
  quiver db status --database postgresql://quiver@db.example.com/placement")]
pub enum DbCommand {
    /// Apply the schema migrations this build knows (what `quiver serve`
    /// does on start). Refused while a server serves a PostgreSQL database,
    /// and for a database newer than this build.
    Sync(StoreArgs),
    /// Print where the store is, its schema version against this build's,
    /// and how many providers, consumers and allocations it holds. Takes no
    /// lock: it works beside a running server.
    Status(StoreArgs),
}

/// Which store.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Data directory holding placement.sqlite [default: ./quiver-data].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// A PostgreSQL database instead (`postgresql://USER[:PASSWORD]@HOST[:PORT]/DB`).
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
}

impl StoreArgs {
    fn location(&self) -> Result<Location> {
        match (&self.database, &self.data) {
            (Some(_), Some(_)) => bail!("--data and --database name two stores: give one"),
            (Some(url), None) => match Location::parse(url) {
                at @ Location::Postgres(_) => Ok(at),
                Location::Dir(_) => bail!("--database: expected a postgresql:// URL, got {url:?}"),
            },
            (None, dir) => Ok(Location::Dir(dir.clone().unwrap_or_else(|| PathBuf::from("./quiver-data")))),
        }
    }
}

pub fn run(cmd: DbCommand) -> Result<()> {
    match cmd {
        DbCommand::Sync(a) => {
            let at = a.location()?;
            let mut store = Store::open(&at, Durability::Process).map_err(|e| anyhow::anyhow!("{}", e.detail))?;
            let version = store.schema_version().map_err(|e| anyhow::anyhow!("{}", e.detail))?;
            println!(
                "{}: schema version {version} (this build knows {})",
                store.describe(),
                store.known_schema_version()
            );
        }
        DbCommand::Status(a) => {
            let s = status(&a.location()?).map_err(|e| anyhow::anyhow!("{}", e.detail))?;
            let state = match s.schema_version.cmp(&(s.known_version as i64)) {
                std::cmp::Ordering::Less => "behind this build: run quiver db sync",
                std::cmp::Ordering::Equal => "current",
                std::cmp::Ordering::Greater => "newer than this build: upgrade Quiver",
            };
            println!("store           {}", s.location);
            println!("schema version  {} of {} ({state})", s.schema_version, s.known_version);
            println!("providers       {}", s.providers);
            println!("consumers       {}", s.consumers);
            println!("allocations     {}", s.allocations);
            if let Some(latest) = s.latest_change {
                println!("change feed     newest change {latest}");
                if s.replicas.is_empty() {
                    println!("replicas        none reported in the last hour");
                }
                for r in &s.replicas {
                    let lag = r.lag_ms.map_or("-".to_owned(), |ms| format!("{ms:.1} ms"));
                    let state =
                        if r.seen_ago > 10 { format!("last seen {} s ago", r.seen_ago) } else { "live".to_owned() };
                    println!(
                        "replica         {}  applied {}  behind {}  lag {lag}  ({state})",
                        r.name, r.applied, r.behind
                    );
                }
            }
        }
    }
    Ok(())
}
