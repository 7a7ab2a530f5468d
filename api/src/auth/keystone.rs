//! Token validation as keystonemiddleware's `auth_token` does it: the
//! service user's own token (password auth, renewed before it expires)
//! asks Keystone `GET /v3/auth/tokens` about each caller's token
//! (`X-Subject-Token`), and the answer is cached `token_cache_time`.

use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::Credentials;
use super::token_cache::{self, TokenCache, Verdict};

/// `[keystone_authtoken]`, with keystonemiddleware's option names.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeystoneConfig {
    /// What a 401's `WWW-Authenticate: Keystone uri="..."` names: where
    /// clients get tokens.
    pub www_authenticate_uri: String,
    /// Where this service authenticates itself and validates tokens.
    pub auth_url: String,
    /// keystoneauth's plugin name; only `password` is understood.
    #[serde(default = "default_auth_type")]
    pub auth_type: String,
    pub username: String,
    pub password: String,
    pub project_name: String,
    #[serde(default = "default_domain")]
    pub user_domain_name: String,
    #[serde(default = "default_domain")]
    pub project_domain_name: String,
    /// Roles a valid `X-Service-Token` must carry for the call to count
    /// as service-to-service (one of them suffices).
    #[serde(default = "default_service_roles")]
    pub service_token_roles: Vec<String>,
    /// Refuse a service token without one of those roles (otherwise it is
    /// only not treated as a service's).
    #[serde(default)]
    pub service_token_roles_required: bool,
    /// Seconds a validation result is reused.
    #[serde(default = "default_cache_time")]
    pub token_cache_time: u64,
    /// Seconds one call to Keystone may take.
    #[serde(default = "default_http_timeout")]
    pub http_connect_timeout: u64,
    /// Tokens remembered at most.
    #[serde(default = "default_cache_size")]
    pub token_cache_size: usize,
}

fn default_auth_type() -> String {
    "password".into()
}
fn default_domain() -> String {
    "Default".into()
}
fn default_service_roles() -> Vec<String> {
    vec!["service".into()]
}
fn default_cache_time() -> u64 {
    300
}
fn default_http_timeout() -> u64 {
    5
}
fn default_cache_size() -> usize {
    100_000
}

/// Why a request was not authenticated.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No token, or one Keystone does not vouch for: 401.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Keystone could not be asked, or would not let this service ask: 503.
    #[error("identity service unavailable: {0}")]
    Unavailable(String),
}

/// The service's own token and when it stops working.
#[derive(Clone, Debug)]
struct ServiceToken {
    token: String,
    expires_at: SystemTime,
}

/// Renew the service token this long before it expires.
const RENEW_MARGIN: Duration = Duration::from_secs(120);

/// The validator: configuration, an HTTP client, the service token, and
/// the cache.
#[derive(Debug)]
pub struct KeystoneAuth {
    config: KeystoneConfig,
    /// `auth_url`, ending in `/v3`.
    v3: String,
    http: reqwest::Client,
    service_token: Mutex<Option<ServiceToken>>,
    cache: TokenCache,
}

impl KeystoneAuth {
    /// # Errors
    /// An unsupported `auth_type` or an HTTP client that cannot be built.
    pub fn new(config: KeystoneConfig) -> Result<KeystoneAuth, String> {
        if config.auth_type != "password" {
            return Err(format!(
                "[keystone_authtoken] auth_type: only \"password\" is supported, got {:?}",
                config.auth_type
            ));
        }
        let base = config.auth_url.trim_end_matches('/');
        let v3 = if base.ends_with("/v3") { base.to_owned() } else { format!("{base}/v3") };
        let timeout = Duration::from_secs(config.http_connect_timeout.max(1));
        let http = reqwest::Client::builder()
            .connect_timeout(timeout)
            .timeout(timeout * 2)
            .build()
            .map_err(|e| format!("keystone client: {e}"))?;
        let cache = TokenCache::new(Duration::from_secs(config.token_cache_time), config.token_cache_size);
        Ok(KeystoneAuth { config, v3, http, service_token: Mutex::new(None), cache })
    }

    /// The `WWW-Authenticate` value of a 401.
    pub fn www_authenticate(&self) -> String {
        format!("Keystone uri=\"{}\"", self.config.www_authenticate_uri)
    }

    /// The credentials of a request: its `X-Auth-Token`, checked (from the
    /// cache when it can), and its `X-Service-Token` if it has one. A
    /// service token with a service role lets an expired user token
    /// through, as keystonemiddleware's `allow_expired` does, so a long
    /// operation a service started is not cut off halfway.
    ///
    /// # Errors
    /// [`AuthError::Unauthorized`] for a missing or refused token,
    /// [`AuthError::Unavailable`] when Keystone cannot answer.
    pub async fn authenticate(
        &self,
        user_token: Option<&str>,
        service_token: Option<&str>,
    ) -> Result<Credentials, AuthError> {
        let Some(user_token) = user_token.map(str::trim).filter(|t| !t.is_empty()) else {
            return Err(AuthError::Unauthorized("The request you have made requires authentication."));
        };
        let mut service_roles = Vec::new();
        if let Some(st) = service_token.map(str::trim).filter(|t| !t.is_empty()) {
            let svc =
                self.validate(st, false).await?.ok_or(AuthError::Unauthorized("The service token is not valid."))?;
            let is_service = svc.roles.iter().any(|r| self.config.service_token_roles.iter().any(|s| s == r));
            if !is_service && self.config.service_token_roles_required {
                return Err(AuthError::Unauthorized("The service token lacks a service role."));
            }
            if is_service {
                service_roles = svc.roles;
            }
        }
        let allow_expired = !service_roles.is_empty();
        let mut creds = self
            .validate(user_token, allow_expired)
            .await?
            .ok_or(AuthError::Unauthorized("The request you have made requires authentication."))?;
        creds.service_roles = service_roles;
        Ok(creds)
    }

    /// Keystone's word on one token, cached: `None` when it is invalid.
    async fn validate(&self, token: &str, allow_expired: bool) -> Result<Option<Credentials>, AuthError> {
        let key = token_cache::key(token, allow_expired);
        if let Some(v) = self.cache.get(&key, allow_expired) {
            return Ok(match v {
                Verdict::Valid { creds, .. } => Some(creds),
                Verdict::Invalid => None,
            });
        }
        let verdict = self.ask(token, allow_expired).await?;
        self.cache.put(key, verdict.clone());
        Ok(match verdict {
            Verdict::Valid { creds, .. } => Some(creds),
            Verdict::Invalid => None,
        })
    }

    /// One validation round trip; a refused service token is renewed and
    /// the question asked once more.
    async fn ask(&self, token: &str, allow_expired: bool) -> Result<Verdict, AuthError> {
        let mut url = format!("{}/auth/tokens?nocatalog", self.v3);
        if allow_expired {
            url.push_str("&allow_expired=1");
        }
        for attempt in 0..2 {
            let service = self.service_token(attempt > 0).await?;
            let resp = self
                .http
                .get(&url)
                .header("X-Auth-Token", &service)
                .header("X-Subject-Token", token)
                .send()
                .await
                .map_err(|e| AuthError::Unavailable(format!("GET {url}: {e}")))?;
            match resp.status().as_u16() {
                200 => {
                    let body: Value =
                        resp.json().await.map_err(|e| AuthError::Unavailable(format!("GET {url}: {e}")))?;
                    return parse_token(&body).ok_or_else(|| {
                        AuthError::Unavailable(format!("GET {url}: a token document without user or expiry"))
                    });
                }
                // Unknown, expired or revoked.
                404 => return Ok(Verdict::Invalid),
                401 if attempt == 0 => continue,
                s => return Err(AuthError::Unavailable(format!("GET {url}: Keystone answered {s}"))),
            }
        }
        Err(AuthError::Unavailable("Keystone refuses this service's own token".into()))
    }

    /// The service user's token, fetched or renewed when it is missing,
    /// about to expire, or `force`d (Keystone refused it).
    ///
    /// # Errors
    /// [`AuthError::Unavailable`]: Keystone down or the credentials refused.
    pub async fn service_token(&self, force: bool) -> Result<String, AuthError> {
        let mut held = self.service_token.lock().await;
        if let Some(t) = held.as_ref()
            && !force
            && t.expires_at > SystemTime::now() + RENEW_MARGIN
        {
            return Ok(t.token.clone());
        }
        let c = &self.config;
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": c.username, "domain": {"name": c.user_domain_name}, "password": c.password}}},
            "scope": {"project": {"name": c.project_name, "domain": {"name": c.project_domain_name}}},
        }});
        let url = format!("{}/auth/tokens?nocatalog", self.v3);
        let resp = self
            .http
            .post(&url)
            .json(&body)
            .send()
            .await
            .map_err(|e| AuthError::Unavailable(format!("POST {url}: {e}")))?;
        let status = resp.status().as_u16();
        if status != 201 {
            return Err(AuthError::Unavailable(format!(
                "POST {url}: Keystone answered {status} for the service user {:?}",
                c.username
            )));
        }
        let token = resp
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| AuthError::Unavailable(format!("POST {url}: no X-Subject-Token")))?;
        let doc: Value = resp.json().await.map_err(|e| AuthError::Unavailable(format!("POST {url}: {e}")))?;
        let expires_at = doc["token"]["expires_at"]
            .as_str()
            .and_then(parse_time)
            .ok_or_else(|| AuthError::Unavailable(format!("POST {url}: no expires_at")))?;
        tracing::info!(user = %c.username, "service token obtained from Keystone");
        *held = Some(ServiceToken { token: token.clone(), expires_at });
        Ok(token)
    }

    /// Tokens in the cache now.
    pub fn cached_tokens(&self) -> usize {
        self.cache.len()
    }

    /// Remembers a verdict as if Keystone had given it (benches measure
    /// the warm path with it).
    pub fn remember(&self, token: &str, creds: Credentials, expires_at: SystemTime) {
        self.cache.put(token_cache::key(token, false), Verdict::Valid { creds, expires_at });
    }
}

/// Keystone's `expires_at` (`2026-12-02T18:10:00.000000Z`).
fn parse_time(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s.trim_end_matches('Z')).ok()
}

/// A v3 token document as credentials: the user, the project (or the
/// system or domain scope) and the role names.
fn parse_token(doc: &Value) -> Option<Verdict> {
    let t = &doc["token"];
    let expires_at = parse_time(t["expires_at"].as_str()?)?;
    let user_id = t["user"]["id"].as_str()?.to_owned();
    let roles = t["roles"]
        .as_array()
        .map(|rs| rs.iter().filter_map(|r| r["name"].as_str()).map(str::to_ascii_lowercase).collect())
        .unwrap_or_default();
    let system_scope = t["system"]["all"].as_bool().filter(|a| *a).map(|_| "all".to_owned());
    let project_id = t["project"]["id"].as_str().map(str::to_owned);
    Some(Verdict::Valid {
        creds: Credentials {
            user_id: Some(user_id),
            project_id,
            roles,
            system_scope,
            service_roles: Vec::new(),
            from_keystone: true,
        },
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_token_document_reads_as_its_user_project_and_roles() {
        let doc = json!({"token": {
            "expires_at": "2030-01-02T03:04:05.000000Z",
            "user": {"id": "u1", "name": "alice", "domain": {"id": "default"}},
            "project": {"id": "p1", "name": "demo", "domain": {"id": "default"}},
            "roles": [{"id": "r1", "name": "member"}, {"id": "r2", "name": "Reader"}],
        }});
        let Some(Verdict::Valid { creds, expires_at }) = parse_token(&doc) else { panic!("valid") };
        assert_eq!(creds.user_id.as_deref(), Some("u1"));
        assert_eq!(creds.project_id.as_deref(), Some("p1"));
        assert_eq!(creds.roles, ["member", "reader"]);
        assert!(creds.system_scope.is_none() && creds.from_keystone);
        assert_eq!(expires_at, humantime::parse_rfc3339("2030-01-02T03:04:05Z").expect("time"));
    }

    #[test]
    fn a_system_token_has_no_project_and_a_document_without_expiry_is_refused() {
        let doc = json!({"token": {"expires_at": "2030-01-02T03:04:05Z", "user": {"id": "a"},
            "system": {"all": true}, "roles": [{"name": "admin"}]}});
        let Some(Verdict::Valid { creds, .. }) = parse_token(&doc) else { panic!("valid") };
        assert_eq!(creds.system_scope.as_deref(), Some("all"));
        assert!(creds.project_id.is_none());
        assert!(parse_token(&json!({"token": {"user": {"id": "a"}}})).is_none());
    }

    #[tokio::test]
    async fn keystone_unreachable_is_unavailable_and_no_token_is_unauthorized() {
        let auth = KeystoneAuth::new(KeystoneConfig {
            www_authenticate_uri: "http://127.0.0.1:9/v3".into(),
            auth_url: "http://127.0.0.1:9".into(),
            auth_type: default_auth_type(),
            username: "quiver".into(),
            password: "x".into(),
            project_name: "service".into(),
            user_domain_name: default_domain(),
            project_domain_name: default_domain(),
            service_token_roles: default_service_roles(),
            service_token_roles_required: false,
            token_cache_time: 60,
            http_connect_timeout: 1,
            token_cache_size: 10,
        })
        .expect("auth");
        assert!(matches!(auth.authenticate(None, None).await, Err(AuthError::Unauthorized(_))));
        assert!(matches!(auth.authenticate(Some("t"), None).await, Err(AuthError::Unavailable(_))));
        // A remembered token is served without Keystone.
        let creds = Credentials { user_id: Some("u".into()), from_keystone: true, ..Credentials::default() };
        auth.remember("t", creds, SystemTime::now() + Duration::from_secs(60));
        let got = auth.authenticate(Some("t"), None).await.expect("cached");
        assert_eq!(got.user_id.as_deref(), Some("u"));
        assert_eq!(auth.www_authenticate(), "Keystone uri=\"http://127.0.0.1:9/v3\"");
    }
}
