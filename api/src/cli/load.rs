//! Loading a fleet from any supported file by its extension.

use std::path::Path;

use anyhow::{Context, Result, bail};
use quiver_engine::Fleet;

/// Reads a fleet: `.json` (nova-sched-fleet/v1), `.parquet`, `.arrow` /
/// `.ipc` / `.feather` (Arrow IPC file), or `alibaba:DIR` (the Alibaba GPU
/// trace's node list).
///
/// # Errors
/// An unknown extension or a file that does not load.
pub fn fleet(path: &Path) -> Result<Fleet> {
    if let Some(dir) = path.to_str().and_then(|s| s.strip_prefix("alibaba:")) {
        let nodes = Path::new(dir).join(quiver_datasets::alibaba::NODES);
        return Ok(quiver_datasets::alibaba::read_nodes(&nodes)?);
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let fleet = match ext.as_str() {
        "json" => quiver_datasets::nova_json::read_fleet(path),
        "parquet" => quiver_engine::io::read_parquet(path),
        "arrow" | "ipc" | "feather" => quiver_engine::io::read_ipc(path),
        _ => bail!("fleet file {}: unknown extension {ext:?} (use .json, .parquet or .arrow)", path.display()),
    }
    .with_context(|| format!("loading fleet {}", path.display()))?;
    tracing::info!(hosts = fleet.len(), path = %path.display(), "fleet loaded");
    Ok(fleet)
}

/// A seeded generated fleet, with a progress bar while it is built.
///
/// # Errors
/// A bad progress template (never) or a generator error.
pub fn generated(hosts: usize, seed: u64) -> Result<Fleet> {
    let bar = indicatif::ProgressBar::new(hosts as u64)
        .with_style(indicatif::ProgressStyle::with_template("{spinner} fleet {pos}/{len} [{bar:30}]")?);
    let spec = quiver_datasets::generator::FleetSpec { hosts, seed, with_instances: false };
    let f = quiver_datasets::generator::generate(&spec, |k| bar.set_position(k as u64))?;
    bar.finish_and_clear();
    Ok(f)
}
