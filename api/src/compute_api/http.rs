//! The Compute API's edge: microversion negotiation
//! (`OpenStack-API-Version: compute X.Y`, or the legacy
//! `X-OpenStack-Nova-API-Version`), noauth2-style identity, and Nova's
//! error bodies (`{"itemNotFound": {"code": 404, "message": ...}}`).

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// A compute microversion `(major, minor)`.
pub type Version = (u32, u32);

/// Oldest and newest microversions served.
pub const MIN_VERSION: Version = (2, 1);
pub const MAX_VERSION: Version = (2, 91);

/// Who is asking, and at which microversion.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// `req-<uuid>`, sent back as `x-openstack-request-id` (and the
    /// instance action it starts is filed under it).
    pub request_id: String,
    pub version: Version,
    pub user_id: String,
    pub project_id: String,
    pub is_admin: bool,
}

impl Ctx {
    /// Whether the request's microversion is at least `v`.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        self.version >= (major, minor)
    }

    /// Nova's admin-only policy rules.
    pub fn require_admin(&self, rule: &str) -> Result<(), NovaError> {
        if self.is_admin {
            Ok(())
        } else {
            Err(NovaError::forbidden(format!("Policy doesn't allow {rule} to be performed.")))
        }
    }
}

/// An error rendered as Nova renders it.
#[derive(Debug)]
pub struct NovaError {
    pub status: StatusCode,
    pub message: String,
}

impl NovaError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, m)
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, m)
    }
    pub fn conflict(m: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, m)
    }
    pub fn forbidden(m: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, m)
    }
    /// An internal failure: logged in full, shown as Nova's generic fault.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "compute API internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Unexpected API Error. Please report this at http://bugs.launchpad.net/nova/ and attach the Nova API log if possible.",
        )
    }
}

impl From<super::records::StoreError> for NovaError {
    fn from(e: super::records::StoreError) -> Self {
        NovaError::internal(e)
    }
}

impl IntoResponse for NovaError {
    fn into_response(self) -> Response {
        let key = match self.status.as_u16() {
            400 => "badRequest",
            403 => "forbidden",
            404 => "itemNotFound",
            406 => "notAcceptable",
            409 => "conflictingRequest",
            413 => "overLimit",
            _ => "computeFault",
        };
        let body = json!({ key: {"code": self.status.as_u16(), "message": self.message} });
        (self.status, axum::Json(body)).into_response()
    }
}

/// A handler's result.
pub type ApiResult = Result<Response, NovaError>;

/// A JSON response with a status.
pub fn reply(status: StatusCode, body: Value) -> ApiResult {
    Ok((status, axum::Json(body)).into_response())
}

/// A response with no body.
pub fn empty(status: StatusCode) -> ApiResult {
    Ok(status.into_response())
}

/// A JSON request body, or Nova's 400.
pub fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, NovaError> {
    if bytes.is_empty() {
        return Err(NovaError::bad_request("The request body is empty; a JSON object was expected."));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| NovaError::bad_request(format!("Invalid input for the request body: {e}")))
}

/// An integer field Nova accepts as a number or a numeric string, at
/// least `min`, or Nova's 400 naming the field.
pub fn int_field(name: &str, v: &Value, min: i64) -> Result<u32, NovaError> {
    let n = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    match n {
        Some(n) if n >= min && n <= i32::MAX as i64 => Ok(n as u32),
        _ => Err(NovaError::bad_request(format!(
            "Invalid input for field/attribute {name}. Value: {v}. {v} is not a valid integer >= {min}"
        ))),
    }
}

/// The `{"action-name": argument}` body of a `.../action` call.
pub fn action_body(raw: &[u8]) -> Result<(String, Value), NovaError> {
    let b: Value = body(raw)?;
    match b.as_object().and_then(|o| o.iter().next()) {
        Some((name, arg)) => Ok((name.clone(), arg.clone())),
        None => Err(NovaError::bad_request("Malformed request body: an action is required")),
    }
}

fn parse_version(text: &str) -> Option<Version> {
    let (a, b) = text.trim().split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// The microversion a request asks for: `latest`, `X.Y`, or the minimum
/// when it names none.
fn requested(headers: &HeaderMap) -> Result<Version, NovaError> {
    let mut asked = None;
    for v in headers.get_all("openstack-api-version") {
        let text = v.to_str().unwrap_or("");
        for part in text.split(',') {
            let mut words = part.split_whitespace();
            if words.next().is_some_and(|s| s.eq_ignore_ascii_case("compute")) {
                asked = Some(words.next().unwrap_or("").to_owned());
            }
        }
    }
    if asked.is_none() {
        asked = headers.get("x-openstack-nova-api-version").and_then(|v| v.to_str().ok()).map(str::to_owned);
    }
    match asked {
        None => Ok(MIN_VERSION),
        Some(s) if s.trim().eq_ignore_ascii_case("latest") => Ok(MAX_VERSION),
        Some(s) => {
            let v = parse_version(&s).ok_or_else(|| {
                NovaError::bad_request(format!(
                    "API Version String {s} is of invalid format. Must be of format MajorNum.MinorNum."
                ))
            })?;
            if v < MIN_VERSION || v > MAX_VERSION {
                return Err(NovaError::new(
                    StatusCode::NOT_ACCEPTABLE,
                    format!(
                        "Version {}.{} is not supported by the API. Minimum is {}.{} and maximum is {}.{}.",
                        v.0, v.1, MIN_VERSION.0, MIN_VERSION.1, MAX_VERSION.0, MAX_VERSION.1
                    ),
                ));
            }
            Ok(v)
        }
    }
}

/// noauth2: `X-Auth-Token: admin` is the admin; `user:project` names both;
/// anything else is a member of a project named after it.
fn identity(headers: &HeaderMap) -> (String, String, bool) {
    let token = headers.get("x-auth-token").and_then(|v| v.to_str().ok()).unwrap_or("").trim();
    let (user, project) = match token.split_once(':') {
        Some((u, p)) => (u.to_owned(), p.to_owned()),
        None => (token.to_owned(), token.to_owned()),
    };
    let roles = headers.get("x-roles").and_then(|v| v.to_str().ok()).unwrap_or("");
    let is_admin = user == "admin" || roles.split(',').any(|r| r.trim() == "admin");
    (user, project, is_admin)
}

/// Nova's and Glance's default roles for project resources, for a caller
/// Keystone vouched for: reading needs `reader` (which `member` and
/// `admin` imply), changing needs `member`. Admin-only calls check more.
fn role_allows(c: &crate::auth::Credentials, method: &axum::http::Method) -> Result<(), NovaError> {
    let writes = !matches!(*method, axum::http::Method::GET | axum::http::Method::HEAD);
    let ok = if writes {
        c.has_role("admin") || c.has_role("member")
    } else {
        c.has_role("admin") || c.has_role("member") || c.has_role("reader")
    };
    if ok {
        Ok(())
    } else {
        let need = if writes { "member" } else { "reader" };
        Err(NovaError::forbidden(format!(
            "Policy doesn't allow this request to be performed: it needs the {need} role."
        )))
    }
}

/// Middleware: negotiates the microversion, identifies the caller, and
/// stamps the version headers on the response.
pub async fn edge(mut req: Request<Body>, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let versioned = path.starts_with("/v2.1/") || path == "/v2.1";
    let version = if versioned {
        match requested(req.headers()) {
            Ok(v) => v,
            Err(e) => return e.into_response(),
        }
    } else {
        MIN_VERSION
    };
    let keystone = req.extensions().get::<crate::auth::Credentials>().cloned();
    let (user_id, project_id, is_admin) = match &keystone {
        Some(c) => {
            if let Err(e) = role_allows(c, req.method()) {
                return e.into_response();
            }
            (c.user_id.clone().unwrap_or_default(), c.project_id.clone().unwrap_or_default(), c.has_role("admin"))
        }
        None => identity(req.headers()),
    };
    let needs_token = versioned && path != "/v2.1" && path != "/v2.1/";
    if needs_token && user_id.is_empty() {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": {"code": 401, "title": "Unauthorized",
            "message": "The request you have made requires authentication."}})),
        )
            .into_response();
    }
    // The id the panic guard chose, so its log and this response agree.
    let request_id = match req.extensions().get::<super::panic_guard::RequestId>() {
        Some(id) => id.0.clone(),
        None => format!("req-{}", uuid::Uuid::new_v4()),
    };
    req.extensions_mut().insert(Ctx { request_id: request_id.clone(), version, user_id, project_id, is_admin });
    let mut resp = next.run(req).await;
    if let Ok(val) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-openstack-request-id", val.clone());
        resp.headers_mut().insert("x-compute-request-id", val);
    }
    if versioned {
        let v = format!("{}.{}", version.0, version.1);
        let h = resp.headers_mut();
        if let Ok(val) = HeaderValue::from_str(&format!("compute {v}")) {
            h.insert("openstack-api-version", val);
        }
        if let Ok(val) = HeaderValue::from_str(&v) {
            h.insert("x-openstack-nova-api-version", val);
        }
        h.insert("vary", HeaderValue::from_static("OpenStack-API-Version, X-OpenStack-Nova-API-Version"));
    }
    resp
}

/// Unknown paths: Nova's 404 body.
pub async fn not_found() -> Response {
    NovaError::not_found("The resource could not be found.").into_response()
}
