//! `quiver fleet`: generate, inspect and convert fleets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use quiver_datasets::generator::{FleetSpec, generate};
use quiver_engine::Fleet;

/// Fleet subcommands.
#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Generate a seeded synthetic fleet (the parity kit's fleet shape) and
    /// write it as .parquet, .arrow or .json (by the output's extension).
    Gen(GenArgs),
    /// Print a summary of a fleet: hosts, capacity and usage per resource
    /// class, hosts per availability zone and cell.
    Show(ShowArgs),
    /// Convert a fleet between JSON, Parquet and Arrow IPC.
    Convert(ConvertArgs),
}

/// Arguments of `quiver fleet gen`.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  quiver fleet gen --hosts 1000000 --seed 1 -o fleet-1m.parquet")]
pub struct GenArgs {
    /// Number of hosts.
    #[arg(long)]
    pub hosts: usize,
    /// Seed: the same seed and size always give the same fleet.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Record a uuid for every pre-placed instance (about 20 bytes each).
    #[arg(long)]
    pub instances: bool,
    /// Output file: .parquet, .arrow or .json.
    #[arg(short, long)]
    pub output: PathBuf,
}

/// Arguments of `quiver fleet show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Fleet file (.json, .parquet, .arrow).
    pub fleet: PathBuf,
}

/// Arguments of `quiver fleet convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// Input fleet file.
    pub input: PathBuf,
    /// Output fleet file (.json, .parquet, .arrow).
    pub output: PathBuf,
}

/// Writes a fleet by the file's extension.
///
/// # Errors
/// An unknown extension or an I/O failure.
pub fn write(fleet: &Fleet, path: &Path) -> Result<()> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "json" => quiver_datasets::nova_json::write_fleet(fleet, path)?,
        "parquet" => quiver_engine::io::write_parquet(fleet, path)?,
        "arrow" | "ipc" | "feather" => quiver_engine::io::write_ipc(fleet, path)?,
        _ => bail!("output {}: unknown extension {ext:?} (use .json, .parquet or .arrow)", path.display()),
    }
    Ok(())
}

/// Runs a fleet subcommand.
///
/// # Errors
/// Bad arguments or files.
pub fn run(c: FleetCommand) -> Result<()> {
    match c {
        FleetCommand::Gen(a) => {
            if a.hosts == 0 {
                bail!("--hosts must be at least 1");
            }
            let bar = ProgressBar::new(a.hosts as u64).with_style(
                ProgressStyle::with_template("{spinner} generating {pos}/{len} hosts [{bar:30}] {per_sec} eta {eta}")?
                    .progress_chars("=> "),
            );
            let fleet = generate(&FleetSpec { hosts: a.hosts, seed: a.seed, with_instances: a.instances }, |n| {
                bar.set_position(n as u64)
            })?;
            bar.finish_and_clear();
            write(&fleet, &a.output)?;
            eprintln!("wrote {} hosts to {}", fleet.len(), a.output.display());
            Ok(())
        }
        FleetCommand::Show(a) => {
            let fleet = super::load::fleet(&a.fleet)?;
            print!("{}", summary(&fleet));
            if let (Some(rss), Some(peak)) =
                (quiver_benches::measure::current_rss(), quiver_benches::measure::peak_rss())
            {
                println!(
                    "\nprocess resident memory with the fleet loaded: {:.1} MiB ({} bytes/host); peak while loading: {:.1} MiB",
                    rss as f64 / (1 << 20) as f64,
                    rss / fleet.len().max(1) as u64,
                    peak as f64 / (1 << 20) as f64
                );
            }
            Ok(())
        }
        FleetCommand::Convert(a) => {
            let fleet = super::load::fleet(&a.input)?;
            write(&fleet, &a.output)?;
            eprintln!("wrote {} hosts to {}", fleet.len(), a.output.display());
            Ok(())
        }
    }
}

/// A human-readable summary of a fleet.
pub fn summary(fleet: &Fleet) -> String {
    let mut s = format!(
        "hosts: {}   batches: {}   aggregates: {}   traits: {}   instances known: {}   memory: {:.1} MiB ({} bytes/host)\n\n",
        fleet.len(),
        fleet.batches.len(),
        fleet.aggregates.len(),
        fleet.traits.len(),
        fleet.instances.len(),
        fleet.memory_bytes() as f64 / (1 << 20) as f64,
        fleet.memory_bytes() / fleet.len().max(1)
    );
    s += &format!("{:<14} {:>16} {:>16} {:>16} {:>7}\n", "class", "capacity", "used", "free", "used%");
    for (rc, name) in fleet.resource_classes.names().iter().enumerate() {
        let (mut cap, mut used) = (0f64, 0f64);
        for h in 0..fleet.len() {
            if let Some(p) = fleet.inventory(rc, h) {
                cap += (p.total as f64 - p.reserved as f64) * p.allocation_ratio;
            }
        }
        for &u in &fleet.usage().used[rc] {
            used += u as f64;
        }
        let pct = if cap > 0.0 { 100.0 * used / cap } else { 0.0 };
        s += &format!("{name:<14} {cap:>16.0} {used:>16.0} {:>16.0} {pct:>6.1}%\n", cap - used);
    }
    let mut az: BTreeMap<String, usize> = BTreeMap::new();
    let mut cells: BTreeMap<String, usize> = BTreeMap::new();
    for b in &fleet.batches {
        for r in 0..b.len() {
            let set = &fleet.aggsets[b.aggset[r] as usize];
            let zone = set
                .iter()
                .find_map(|&a| fleet.aggregates[a as usize].metadata.get("availability_zone").cloned())
                .unwrap_or_else(|| "nova".into());
            *az.entry(zone).or_default() += 1;
        }
    }
    for i in 0..fleet.len() {
        *cells.entry(fleet.cells.name(fleet.cell_of(i)).to_owned()).or_default() += 1;
    }
    s += "\navailability zone   hosts\n";
    for (z, n) in az {
        s += &format!("{z:<19} {n:>5}\n");
    }
    s += "\ncell                hosts\n";
    for (c, n) in cells {
        s += &format!("{c:<19} {n:>5}\n");
    }
    s
}
