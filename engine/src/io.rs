//! Placeholder
use crate::{EngineError, Fleet, Result};
use std::path::Path;
/// Reads Parquet.
pub fn read_parquet(_p: &Path) -> Result<Fleet> {
    Err(EngineError::invalid("todo"))
}
/// Reads IPC.
pub fn read_ipc(_p: &Path) -> Result<Fleet> {
    Err(EngineError::invalid("todo"))
}
