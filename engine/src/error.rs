//! Engine errors, split by audience (CONVENTIONS.md rule 10): what the caller
//! got wrong, and what is a bug or an environment failure on our side.

use thiserror::Error;

/// An engine error.
#[derive(Debug, Error)]
pub enum EngineError {
    /// The caller's input is wrong: a bad name, value or file.
    #[error("{0}")]
    Invalid(String),
    /// Reading or writing a file failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Arrow or Parquet rejected data.
    #[error("{0}")]
    Format(String),
    /// An internal invariant was broken: a bug.
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    /// A caller error with a message.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::Invalid(msg.into())
    }
}

impl From<arrow_schema::ArrowError> for EngineError {
    fn from(e: arrow_schema::ArrowError) -> Self {
        Self::Format(e.to_string())
    }
}

impl From<parquet::errors::ParquetError> for EngineError {
    fn from(e: parquet::errors::ParquetError) -> Self {
        Self::Format(e.to_string())
    }
}

/// Engine result.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
