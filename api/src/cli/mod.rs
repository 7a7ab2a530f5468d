//! Command definitions and dispatch.

use anyhow::Result;
use clap::{Parser, Subcommand};

pub mod agent;
pub mod bench;
pub mod bench_auth;
pub mod bench_boot;
pub mod bench_boot_replicas;
pub mod bench_candidates;
pub mod bench_compare;
pub mod bench_reference;
pub mod bench_replicas;
pub mod bench_report;
pub mod bench_run;
pub mod bench_serve;
pub mod db;
pub mod decide;
pub mod explain;
pub mod fleet;
pub mod load;
pub mod openapi;
pub mod plan;
pub mod plan_drain;
pub mod plan_size;
pub mod plot_size;
pub mod plot_sweep;
pub mod plots;
pub mod query;
pub mod remote;
pub mod scheduler_args;
pub mod serve;
pub mod simulate;
pub mod sweep;

/// Quiver: OpenStack Nova's scheduler and Placement as vectorized kernels
/// over a columnar fleet.
///
/// Quiver keeps every compute host as columns of Apache Arrow batches and
/// runs Nova's filters and weighers over them, so one scheduling decision
/// over a million hosts takes milliseconds. Its decisions match Nova 34's
/// own filter scheduler, request for request.
#[derive(Debug, Parser)]
#[command(name = "quiver", version, propagate_version = true, after_help = EXAMPLES)]
pub struct Cli {
    /// More log output (-v info, -vv debug); logs go to stderr as JSON
    /// lines when QUIVER_LOG_FORMAT=json.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

const EXAMPLES: &str = "Examples:
  quiver fleet gen --hosts 100000 --seed 1 -o fleet.parquet
  quiver fleet show fleet.parquet
  quiver decide --fleet fleet.json --requests requests.json --profile extended
  quiver explain --fleet fleet.json --vcpus 8 --ram-mb 16384 --host node-7
  quiver plan headroom --hosts 100000 --flavor m1.large --flavor gpu:8:65536:100
  quiver bench --sizes 10000,100000,1000000
  quiver serve --data ./quiver-data --with-agents 3
  quiver agent --controller http://127.0.0.1:8774 --host compute-a
  quiver bench boot --hosts 1000 --driver fake --servers 2000
  quiver simulate --trace alibaba:../shared/data/alibaba-gpu-v2023 --policy spread.toml --policy pack.toml --out out/sim
  quiver query --hosts 100000 \"SELECT availability_zone, SUM(vcpu_free) FROM hosts GROUP BY 1\"";

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Replay a request stream through the scheduler and print one decision
    /// per request as JSON lines (the nova-parity decision format).
    Decide(decide::DecideArgs),
    /// Why a request lands where it does, or nowhere: hosts kept by each
    /// request filter, Placement's query and each filter, and for named
    /// hosts the first stage that rejected each one and why.
    Explain(explain::ExplainArgs),
    /// Capacity planning with the real scheduler on a copy of a fleet:
    /// `headroom` (how many more servers of a flavor fit, exactly), `drain`
    /// (where every instance of some hosts would go), `size` (how many
    /// hosts of a shape a trace needs).
    #[command(subcommand)]
    Plan(plan::PlanCommand),
    /// Generate, inspect and convert fleets.
    #[command(subcommand)]
    Fleet(fleet::FleetCommand),
    /// Measure decision speed against a row-by-row baseline and the memory
    /// bandwidth floor, on seeded fleets, and print a table.
    Bench(bench::BenchArgs),
    /// Serve Placement, the Compute API subset and images, with the
    /// scheduler and conductor (and optionally embedded compute agents).
    Serve(serve::ServeArgs),
    /// Run a compute agent for one host (or many simulated hosts).
    Agent(agent::AgentArgs),
    /// What-if capacity simulation: replay a workload (trace file, the
    /// Alibaba GPU trace, or a synthetic one) against a fleet under one or
    /// more scheduler policies in parallel, and compare acceptance,
    /// utilization, hosts in use, stranded capacity, fragmentation and the
    /// smallest fleet that holds the workload.
    Simulate(simulate::SimulateArgs),
    /// SQL over a fleet (hosts, inventories, usage, traits, aggregates) and
    /// simulation timelines, through DataFusion; or a JsonFilter query.
    Query(query::QueryArgs),
    /// Placement's store: `sync` (migrate) and `status` (schema version,
    /// contents), for a data directory or a PostgreSQL database.
    #[command(subcommand)]
    Db(db::DbCommand),
    /// Print or write the OpenAPI 3.1 descriptions each port serves at
    /// /openapi.json (Placement, Compute, images).
    Openapi(openapi::OpenapiArgs),
}

/// Sets up structured logging on stderr.
pub fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("QUIVER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::env::var("QUIVER_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Runs a parsed command line.
///
/// # Errors
/// Whatever the command reports; `main` prints it and exits with 2.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Decide(a) => decide::run(a),
        Command::Explain(a) => explain::run(a),
        Command::Plan(c) => plan::run(c),
        Command::Fleet(c) => fleet::run(c),
        Command::Bench(a) => bench::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Agent(a) => agent::run(a),
        Command::Simulate(a) => simulate::run(a),
        Command::Query(a) => query::run(a),
        Command::Db(c) => db::run(c),
        Command::Openapi(a) => openapi::run(a),
    }
}
