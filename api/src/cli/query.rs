//! `quiver query`: SQL over a fleet and simulation timelines.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use arrow_array::RecordBatchReader;
use clap::{Args, ValueEnum};
use quiver_api::query_output;
use quiver_engine::sql::{FleetSql, json_filter_hosts_sql};

/// Output forms.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    /// An aligned text table.
    Table,
    /// CSV with a header row.
    Csv,
    /// A JSON array of row objects.
    Json,
}

/// Arguments of `quiver query`.
#[derive(Debug, Args)]
#[command(after_help = QUERY_HELP)]
pub struct QueryArgs {
    /// The SQL statement (read-only). Leave it out with --json-filter.
    pub sql: Option<String>,
    /// A JsonFilter query (Nova's `query` hint language); lists the hosts
    /// it matches, by way of the SQL it compiles to (printed on stderr).
    #[arg(long, conflicts_with = "sql")]
    pub json_filter: Option<String>,
    /// Fleet file (.json, .parquet, .arrow) or `alibaba:DIR`. Default: a
    /// generated fleet.
    #[arg(long, conflicts_with = "from")]
    pub fleet: Option<PathBuf>,
    /// Ask a running Quiver instead (its Compute URL, e.g.
    /// http://127.0.0.1:8774; POST /v1/query as admin).
    #[arg(long)]
    pub from: Option<String>,
    /// Hosts of the generated fleet.
    #[arg(long, default_value_t = 10_000)]
    pub hosts: usize,
    /// Seed of the generated fleet.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// A simulation timeline (timeline.parquet from `quiver simulate
    /// --out`), queryable as table `timeline`.
    #[arg(long)]
    pub timeline: Option<PathBuf>,
    /// Output form.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

const QUERY_HELP: &str = "\
Tables:
  hosts            one row per host: name, cell, availability_zone, hypervisor_type, ...,
                   per resource class <rc>_total, _reserved, _allocation_ratio, _capacity,
                   _used, _free (vcpu_free, memory_mb_used, disk_gb_capacity, ...), and
                   vcpus_used, free_ram_mb, free_disk_mb, num_instances, num_io_ops
  inventories      host, resource_class, total, reserved, min_unit, max_unit, step_size,
                   allocation_ratio, capacity, used, free
  usage            host, resource_class, used
  traits           host, trait
  aggregates       id, uuid, name, availability_zone, metadata (JSON)
  aggregate_hosts  aggregate_id, aggregate, host
  timeline         with --timeline: policy, time_s, accepted, hosts_in_use, utilization_<RC>, ...

Examples:
  quiver query --hosts 1000000 \"SELECT availability_zone, SUM(vcpu_free) AS free_vcpus FROM hosts GROUP BY 1 ORDER BY 1\"
  quiver query --fleet fleet.parquet --format csv \"SELECT trait, COUNT(*) FROM traits GROUP BY 1\"
  quiver query --json-filter '[\"and\", [\">=\", \"$free_ram_mb\", 65536], [\"<\", \"$num_instances\", 5]]'
  quiver query --timeline out/sim/timeline.parquet \"SELECT policy, MAX(hosts_in_use) FROM timeline GROUP BY 1\"
  quiver query --from http://127.0.0.1:8774 \"SELECT name, vcpu_free FROM hosts\"";

/// Runs `quiver query`.
///
/// # Errors
/// Bad SQL, files or a server error (in DataFusion's or the server's words).
pub fn run(a: QueryArgs) -> Result<()> {
    let sql = match (&a.sql, &a.json_filter) {
        (Some(s), None) => s.clone(),
        (None, Some(q)) => {
            let sql = json_filter_hosts_sql(q)?;
            eprintln!("{sql}");
            sql
        }
        _ => bail!("give a SQL statement or --json-filter"),
    };
    let (schema, batches) = match &a.from {
        Some(url) => remote(url, &sql)?,
        None => {
            let fleet = match &a.fleet {
                Some(p) => super::load::fleet(p)?,
                None => super::load::generated(a.hosts, a.seed)?,
            };
            let session = FleetSql::new(Arc::new(fleet))?;
            if let Some(t) = &a.timeline {
                let file = std::fs::File::open(t).with_context(|| format!("--timeline {}", t.display()))?;
                let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)?.build()?;
                let schema = reader.schema();
                let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
                session.register("timeline", schema, batches)?;
            }
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(session.query(&sql))?
        }
    };
    match a.format {
        Format::Table => println!("{}", query_output::table(&batches)?),
        Format::Csv => print!("{}", String::from_utf8(query_output::csv(&schema, &batches)?)?),
        Format::Json => println!("{}", serde_json::to_string_pretty(&query_output::json_rows(&batches)?)?),
    }
    Ok(())
}

/// POST /v1/query on a running Quiver, answered as Arrow IPC.
fn remote(url: &str, sql: &str) -> Result<(arrow_schema::SchemaRef, Vec<arrow_array::RecordBatch>)> {
    let url = format!("{}/v1/query", url.trim_end_matches('/'));
    let resp = reqwest::blocking::Client::new()
        .post(&url)
        .header("X-Auth-Token", "admin")
        .header("Accept", quiver_api::compute_api::query::ARROW_FILE)
        .json(&serde_json::json!({ "sql": sql }))
        .send()
        .with_context(|| format!("POST {url}"))?;
    if !resp.status().is_success() {
        bail!("POST {url} answered {}: {}", resp.status(), resp.text().unwrap_or_default());
    }
    let bytes = resp.bytes()?;
    let reader = arrow_ipc::reader::FileReader::try_new(std::io::Cursor::new(bytes.to_vec()), None)?;
    let schema = reader.schema();
    let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((schema, batches))
}
