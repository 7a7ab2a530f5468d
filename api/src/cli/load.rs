//! Loading a fleet from any supported file by its extension.

use std::path::Path;

use anyhow::{Context, Result, bail};
use quiver_engine::Fleet;

/// Reads a fleet: `.json` (nova-sched-fleet/v1), `.parquet`, `.arrow` /
/// `.ipc` / `.feather` (Arrow IPC file).
///
/// # Errors
/// An unknown extension or a file that does not load.
pub fn fleet(path: &Path) -> Result<Fleet> {
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
