//! The conductor's side of an agent's HTTP API.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::driver::{GuestInfo, GuestSpec};
use crate::image_cache::{CacheOutcome, ImageFetch};
use crate::protocol::{Action, AgentApi, AgentError, ErrorBody};

/// An agent reached over HTTP at `base` (`http://host:8775`).
pub struct AgentClient {
    base: String,
    http: reqwest::blocking::Client,
}

impl AgentClient {
    /// Builds the client; call it off the async runtime.
    pub fn new(base: &str) -> Result<Self, AgentError> {
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| AgentError::Unreachable(e.to_string()))?;
        Ok(Self { base: base.trim_end_matches('/').to_owned(), http })
    }

    fn call<R: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::blocking::RequestBuilder,
        uuid: &str,
    ) -> Result<Option<R>, AgentError> {
        let resp = req.send().map_err(|e| AgentError::Unreachable(e.to_string()))?;
        let status = resp.status();
        let text = resp.text().map_err(|e| AgentError::Unreachable(e.to_string()))?;
        if status.is_success() {
            if text.is_empty() {
                return Ok(None);
            }
            return serde_json::from_str(&text).map(Some).map_err(|e| AgentError::Unreachable(e.to_string()));
        }
        match serde_json::from_str::<ErrorBody>(&text) {
            Ok(b) => Err(AgentError::from_body(b, uuid)),
            Err(_) => Err(AgentError::Unreachable(format!("{status}: {text}"))),
        }
    }

    fn some<R>(r: Result<Option<R>, AgentError>) -> Result<R, AgentError> {
        r?.ok_or_else(|| AgentError::Unreachable("empty answer".into()))
    }
}

impl AgentApi for AgentClient {
    fn build(&self, host: &str, spec: &GuestSpec) -> Result<GuestInfo, AgentError> {
        let url = format!("{}/hosts/{host}/guests", self.base);
        Self::some(self.call(self.http.post(url).json(spec), &spec.uuid))
    }

    fn action(&self, host: &str, uuid: &str, action: Action) -> Result<GuestInfo, AgentError> {
        let url = format!("{}/hosts/{host}/guests/{uuid}/action", self.base);
        Self::some(self.call(self.http.post(url).json(&action), uuid))
    }

    fn delete(&self, host: &str, uuid: &str) -> Result<(), AgentError> {
        let url = format!("{}/hosts/{host}/guests/{uuid}", self.base);
        self.call::<serde_json::Value>(self.http.delete(url), uuid).map(|_| ())
    }

    fn guests(&self, host: &str) -> Result<Vec<GuestInfo>, AgentError> {
        let url = format!("{}/hosts/{host}/guests", self.base);
        Self::some(self.call(self.http.get(url), ""))
    }

    fn cache_images(&self, host: &str, images: &[ImageFetch]) -> Result<BTreeMap<String, CacheOutcome>, AgentError> {
        let url = format!("{}/hosts/{host}/images", self.base);
        // A fetch may take as long as the image is large.
        Self::some(self.call(self.http.post(url).timeout(Duration::from_secs(3600)).json(images), ""))
    }

    fn cached_images(&self, host: &str) -> Result<Vec<String>, AgentError> {
        let url = format!("{}/hosts/{host}/images", self.base);
        Self::some(self.call(self.http.get(url), ""))
    }
}
