//! What an agent needs from `quiver serve`: registration, heartbeats and
//! reconciliation. In process it is a function call; across processes the
//! [`HttpController`] posts JSON to the Compute API's agent endpoints.

use std::time::Duration;

use crate::driver::GuestInfo;
use crate::protocol::{Heartbeat, HostReport, ReconcileReply, ReconcileRequest, Registered};

/// Why the controller did not take a report.
#[derive(Debug, thiserror::Error)]
#[error("controller: {0}")]
pub struct ControllerError(pub String);

/// The controller as an agent sees it. Calls block.
pub trait Controller: Send + Sync {
    fn register(&self, report: &HostReport) -> Result<Registered, ControllerError>;
    fn heartbeat(&self, host: &str) -> Result<(), ControllerError>;
    fn reconcile(&self, host: &str, guests: &[GuestInfo]) -> Result<ReconcileReply, ControllerError>;
}

/// The controller over HTTP: `base` is the Compute API endpoint
/// (`http://controller:8774`), authenticated with an admin token.
pub struct HttpController {
    base: String,
    token: String,
    http: reqwest::blocking::Client,
}

impl HttpController {
    /// Builds the client; call it off the async runtime (reqwest's blocking
    /// client runs its own).
    pub fn new(base: &str, token: &str) -> Result<Self, ControllerError> {
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ControllerError(e.to_string()))?;
        Ok(Self { base: base.trim_end_matches('/').to_owned(), token: token.to_owned(), http })
    }

    fn post<T: serde::Serialize, R: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<R, ControllerError> {
        let url = format!("{}/v2.1/quiver-agent/{path}", self.base);
        let resp = self
            .http
            .post(&url)
            .header("X-Auth-Token", &self.token)
            .json(body)
            .send()
            .map_err(|e| ControllerError(format!("POST {url}: {e}")))?;
        let status = resp.status();
        let text = resp.text().map_err(|e| ControllerError(format!("POST {url}: {e}")))?;
        if !status.is_success() {
            return Err(ControllerError(format!("POST {url}: {status}: {text}")));
        }
        serde_json::from_str(&text).map_err(|e| ControllerError(format!("POST {url}: bad answer: {e}")))
    }
}

impl Controller for HttpController {
    fn register(&self, report: &HostReport) -> Result<Registered, ControllerError> {
        self.post("register", report)
    }

    fn heartbeat(&self, host: &str) -> Result<(), ControllerError> {
        self.post::<_, serde_json::Value>("heartbeat", &Heartbeat { host: host.to_owned() }).map(|_| ())
    }

    fn reconcile(&self, host: &str, guests: &[GuestInfo]) -> Result<ReconcileReply, ControllerError> {
        self.post("reconcile", &ReconcileRequest { host: host.to_owned(), guests: guests.to_vec() })
    }
}
