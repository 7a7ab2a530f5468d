//! `quiver fleet`: generate, inspect, convert fleets.
use anyhow::Result;
use clap::Subcommand;

/// Fleet subcommands.
#[derive(Debug, Subcommand)]
pub enum FleetCommand {}

/// Runs a fleet subcommand.
pub fn run(c: FleetCommand) -> Result<()> {
    match c {}
}
