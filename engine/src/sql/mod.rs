//! SQL over the fleet and simulation timelines, through DataFusion
//! (`quiver query`, `POST /v1/query`).
//!
//! Tables:
//!
//! - `hosts`: one row per host. The fleet's static Arrow columns are handed
//!   to DataFusion as they are (no copy); per resource class
//!   `<rc>_total`, `_reserved`, `_allocation_ratio`, `_capacity` (Placement's
//!   `(total - reserved) * ratio`), `_used`, `_free` (rc lower-cased:
//!   `vcpu_free`, `memory_mb_used`, ...) and Nova's `HostState` counters
//!   (`vcpus_used`, `free_ram_mb`, `free_disk_mb`, `num_instances`,
//!   `num_io_ops`) are computed per query, and only for the columns the
//!   query reads.
//! - `inventories` (host, resource_class, total, reserved, min_unit,
//!   max_unit, step_size, allocation_ratio, capacity, used, free), `usage`
//!   (host, resource_class, used), `traits` (host, trait), `aggregates` (id,
//!   uuid, name, availability_zone, metadata as JSON) and `aggregate_hosts`
//!   (aggregate_id, aggregate, host).
//! - any batches registered by name, such as a simulation's `timeline`.

mod json_filter;
mod tables;

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use datafusion::prelude::{SessionConfig, SessionContext};

pub use json_filter::{json_filter_hosts_sql, json_filter_to_sql};
pub use tables::{FleetTable, TableKind};

use crate::error::{EngineError, Result};
use crate::fleet::Fleet;

/// A SQL session over one fleet snapshot.
pub struct FleetSql {
    ctx: SessionContext,
}

impl std::fmt::Debug for FleetSql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FleetSql")
    }
}

fn sql_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::invalid(format!("SQL: {e}"))
}

impl FleetSql {
    /// Registers the fleet's tables.
    ///
    /// # Errors
    /// Never for a well-formed fleet (registration itself cannot fail).
    pub fn new(fleet: Arc<Fleet>) -> Result<Self> {
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_information_schema(true));
        for kind in TableKind::ALL {
            ctx.register_table(kind.name(), Arc::new(FleetTable::new(fleet.clone(), kind))).map_err(sql_err)?;
        }
        Ok(Self { ctx })
    }

    /// Registers batches as table `name` (a timeline, for one).
    ///
    /// # Errors
    /// Batches with different schemas, or a name already taken.
    pub fn register(&self, name: &str, schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<()> {
        let t = datafusion::datasource::MemTable::try_new(schema, vec![batches]).map_err(sql_err)?;
        self.ctx.register_table(name, Arc::new(t)).map_err(sql_err)?;
        Ok(())
    }

    /// Runs one SQL statement (read-only: DDL and DML are refused).
    ///
    /// # Errors
    /// A parse, planning or execution error, in DataFusion's words.
    pub async fn query(&self, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let opts = datafusion::execution::context::SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let df = self.ctx.sql_with_options(sql, opts).await.map_err(sql_err)?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await.map_err(sql_err)?;
        Ok((schema, batches))
    }
}
