//! One error type for the Placement domain. It carries what the API renders:
//! the HTTP status, Placement's stable error code and a human detail.

/// Placement's error codes (`placement/errors.py`).
pub mod codes {
    pub const DEFAULT: &str = "placement.undefined_code";
    pub const INVENTORY_INUSE: &str = "placement.inventory.inuse";
    pub const CONCURRENT_UPDATE: &str = "placement.concurrent_update";
    pub const DUPLICATE_NAME: &str = "placement.duplicate_name";
    pub const PROVIDER_IN_USE: &str = "placement.resource_provider.inuse";
    pub const PROVIDER_CANNOT_DELETE_PARENT: &str = "placement.resource_provider.cannot_delete_parent";
    pub const RESOURCE_PROVIDER_NOT_FOUND: &str = "placement.resource_provider.not_found";
    pub const ILLEGAL_DUPLICATE_QUERYPARAM: &str = "placement.query.duplicate_key";
    pub const QUERYPARAM_BAD_VALUE: &str = "placement.query.bad_value";
    pub const QUERYPARAM_MISSING_VALUE: &str = "placement.query.missing_value";
}

/// A failed Placement operation: the caller's fault (4xx) or an internal one
/// (500, whose detail is logged and never shown).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{detail}")]
pub struct Error {
    pub status: u16,
    pub code: &'static str,
    pub detail: String,
}

impl Error {
    pub fn new(status: u16, code: &'static str, detail: impl Into<String>) -> Self {
        Error { status, code, detail: detail.into() }
    }
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(400, codes::DEFAULT, detail)
    }
    pub fn bad_query(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(400, code, detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(404, codes::DEFAULT, detail)
    }
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(409, code, detail)
    }
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(500, codes::DEFAULT, detail)
    }
    /// The store cannot be reached (503, shown: the caller may retry).
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(503, codes::DEFAULT, detail)
    }
    pub fn is_internal(&self) -> bool {
        self.status >= 500 && self.status != 503
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::internal(format!("store: {e}"))
    }
}

pub type Result<T> = std::result::Result<T, Error>;
