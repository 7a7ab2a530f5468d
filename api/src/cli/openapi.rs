//! `quiver openapi`: the OpenAPI 3.1 descriptions each port serves at
//! `/openapi.json`, printed or written into a directory (`docs/`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use quiver_api::openapi::{APIS, rendered};

/// Print or write the OpenAPI 3.1 descriptions of the APIs.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  quiver openapi placement > placement.json
  quiver openapi --out docs            # docs/openapi-{placement,compute,images}.json")]
pub struct OpenapiArgs {
    /// Which description to print: placement, compute or images.
    #[arg(value_parser = APIS, required_unless_present = "out")]
    pub api: Option<String>,
    /// Write all three into this directory as openapi-NAME.json instead.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Runs the command.
///
/// # Errors
/// A directory that cannot be written.
pub fn run(a: OpenapiArgs) -> Result<()> {
    match (&a.out, &a.api) {
        (Some(dir), _) => {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            for api in APIS {
                let path = dir.join(format!("openapi-{api}.json"));
                std::fs::write(&path, rendered(api).unwrap_or_default())
                    .with_context(|| format!("cannot write {}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
        }
        (None, Some(api)) => print!("{}", rendered(api).unwrap_or_default()),
        (None, None) => unreachable!("clap requires one"),
    }
    Ok(())
}
