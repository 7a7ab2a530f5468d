//! `quiver bench`.
use anyhow::Result;
use clap::Args;

/// Arguments of `quiver bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {}

/// Runs the bench.
pub fn run(_a: BenchArgs) -> Result<()> {
    anyhow::bail!("not built yet")
}
