//! The request pipeline in Placement's middleware order (request id, CORS,
//! noauth2, microversion, content checks, routing) and the request,
//! response and error types every handler uses.

use std::time::{Duration, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, Response, StatusCode, request::Parts};
use serde_json::{Value, json};

use super::policy::Credentials;
use super::{MAX_VERSION, MIN_VERSION, PlacementApi, route};
use quiver_placement::Error as DomainError;

pub type Version = (u32, u32);

/// An error response in Placement's format.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub detail: String,
    pub allow: Option<String>,
    /// Extra text webob puts before the detail (the 405 names the method).
    pub explanation: Option<String>,
}

impl ApiError {
    pub fn new(status: u16, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            code: quiver_placement::codes::DEFAULT,
            detail: detail.into(),
            allow: None,
            explanation: None,
        }
    }
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(400, detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(404, detail)
    }
    pub fn method_not_allowed(method: &str, allowed: &[&str]) -> Self {
        ApiError {
            allow: Some(allowed.join(", ")),
            explanation: Some(format!("The method {method} is not allowed for this resource.")),
            ..Self::new(405, "The method specified is not allowed for this resource.")
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        if e.is_internal() {
            tracing::error!(error = %e.detail, "internal error");
            return ApiError::new(500, "An internal error occurred. The request id identifies it in the server log.");
        }
        ApiError { status: e.status, code: e.code, detail: e.detail, allow: None, explanation: None }
    }
}

/// A successful response.
#[derive(Debug, Default)]
pub struct Resp {
    pub status: u16,
    pub body: Option<Vec<u8>>,
    pub headers: Vec<(&'static str, String)>,
}

impl Resp {
    pub fn json(status: u16, v: &Value) -> Resp {
        Resp { status, body: Some(serde_json::to_vec(v).unwrap_or_default()), headers: vec![] }
    }
    pub fn raw_json(status: u16, body: Vec<u8>) -> Resp {
        Resp { status, body: Some(body), headers: vec![] }
    }
    pub fn empty(status: u16) -> Resp {
        Resp { status, body: None, headers: vec![] }
    }
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Resp {
        self.headers.push((name, value.into()));
        self
    }
    /// `cache-control: no-cache` and `last-modified` at 1.15+.
    pub fn cache(self, req: &Req, last_modified: i64) -> Resp {
        if req.version >= (1, 15) {
            self.header("cache-control", "no-cache").header("last-modified", http_date(last_modified))
        } else {
            self
        }
    }
    pub fn cache_now(self, req: &Req) -> Resp {
        self.cache(req, quiver_placement::model::now())
    }
}

pub fn http_date(ts: i64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(ts.max(0) as u64))
}

/// One request, after the middleware has run.
pub struct Req<'a> {
    pub api: &'a PlacementApi,
    pub method: Method,
    pub segments: Vec<String>,
    pub query: Vec<(String, String)>,
    pub headers: &'a HeaderMap,
    pub body: Bytes,
    pub version: Version,
    pub creds: Credentials,
}

impl Req<'_> {
    pub fn q(&self, key: &str) -> Option<&str> {
        self.query.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
    pub fn q_all(&self, key: &str) -> Vec<&str> {
        self.query.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }
    /// An absolute URL for a `Location` header, as webob writes them.
    pub fn url(&self, path: &str) -> String {
        match self.headers.get("host").and_then(|v| v.to_str().ok()) {
            Some(host) => format!("http://{host}{path}"),
            None => path.to_string(),
        }
    }
    pub fn has_q(&self, key: &str) -> bool {
        self.query.iter().any(|(k, _)| k == key)
    }

    /// 404 unless the microversion is at least `min`.
    pub fn require_version(&self, min: Version) -> Result<(), ApiError> {
        if self.version < min { Err(ApiError::not_found("")) } else { Ok(()) }
    }

    /// `@util.check_accept('application/json')`.
    pub fn check_accept(&self) -> Result<(), ApiError> {
        let Some(accept) = self.headers.get("accept").and_then(|v| v.to_str().ok()) else { return Ok(()) };
        if accept.trim().is_empty() || accepts_json(accept) {
            return Ok(());
        }
        Err(ApiError::new(406, "Only application/json is provided"))
    }

    /// `@util.require_content('application/json')`.
    pub fn require_json(&self) -> Result<(), ApiError> {
        let ct = self.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
        let mime = ct.split(';').next().unwrap_or("").trim();
        if mime != "application/json" {
            let shown = if mime.is_empty() { "None" } else { mime };
            return Err(ApiError::new(415, format!("The media type {shown} is not supported, use application/json")));
        }
        Ok(())
    }

    pub fn authorize(&self, action: &str) -> Result<(), ApiError> {
        self.authorize_for(action, self.creds.project_id.as_deref())
    }

    pub fn authorize_for(&self, action: &str, target_project: Option<&str>) -> Result<(), ApiError> {
        if self.api.policy.allows(action, &self.creds, target_project) {
            Ok(())
        } else {
            Err(ApiError::new(403, format!("Policy does not allow {action} to be performed.")))
        }
    }

    /// `util.extract_json`: parse and validate against `schema`.
    pub fn json_body(&self, schema: &Value) -> Result<Value, ApiError> {
        let data: Value =
            serde_json::from_slice(&self.body).map_err(|e| ApiError::bad_request(format!("Malformed JSON: {e}")))?;
        super::schemas::validate(schema, &data)
            .map_err(|e| ApiError::bad_request(format!("JSON does not validate: {e}")))?;
        Ok(data)
    }

    /// `util.validate_query_params`: the query as a dict of strings.
    pub fn validate_query(&self, schema: &Value) -> Result<(), ApiError> {
        let mut map = serde_json::Map::new();
        for (k, v) in &self.query {
            map.insert(k.clone(), Value::String(v.clone()));
        }
        super::schemas::validate(schema, &Value::Object(map))
            .map_err(|e| ApiError::bad_request(format!("Invalid query string parameters: {e}")))
    }
}

fn accepts_json(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';');
        let mime = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .next()
            .and_then(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        q > 0.0 && (mime == "application/json" || mime == "application/*" || mime == "*/*")
    })
}

fn reason(status: u16) -> &'static str {
    StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Error")
}

fn explanation(status: u16) -> &'static str {
    match status {
        400 => "The server could not comply with the request since it is either malformed or otherwise incorrect.",
        401 => "This server could not verify that you are authorized to access the document you requested.",
        403 => "Access was denied to this resource.",
        404 => "The resource could not be found.",
        406 => "The resource could not be generated that was acceptable to your browser.",
        409 => "There was a conflict when trying to complete your request.",
        413 => "The request is larger than the server is willing or able to process.",
        415 => "The request media type is not supported by this server.",
        _ => "The server has either erred or is incapable of performing the requested operation.",
    }
}

struct Ctx {
    request_id: String,
    version: Option<Version>,
    html: bool,
}

fn render_error(e: &ApiError, ctx: &Ctx) -> Response<Body> {
    let explanation = e.explanation.clone().unwrap_or_else(|| explanation(e.status).to_string());
    let detail = format!("{explanation}\n\n {}  ", e.detail);
    let mut b = Response::builder().status(e.status);
    let body = if ctx.html {
        b = b.header("content-type", "text/html; charset=UTF-8");
        format!(
            "<html>\n <head>\n  <title>{s} {r}</title>\n </head>\n <body>\n  <h1>{s} {r}</h1>\n  {detail}\n </body>\n</html>",
            s = e.status,
            r = reason(e.status)
        )
    } else {
        b = b.header("content-type", "application/json");
        let mut err =
            json!({"status": e.status, "title": reason(e.status), "detail": detail, "request_id": ctx.request_id});
        match ctx.version {
            Some(v) if v >= (1, 23) => err["code"] = json!(e.code),
            None if e.status == 406 => {
                err["max_version"] = json!(format!("{}.{}", MAX_VERSION.0, MAX_VERSION.1));
                err["min_version"] = json!(format!("{}.{}", MIN_VERSION.0, MIN_VERSION.1));
            }
            _ => {}
        }
        json!({"errors": [err]}).to_string()
    };
    if let Some(allow) = &e.allow {
        b = b.header("allow", allow);
    }
    b.body(Body::from(body)).unwrap_or_else(|_| internal_error())
}

pub fn internal_error() -> Response<Body> {
    let mut r = Response::new(Body::from(
        json!({"errors": [{"status": 500, "title": "Internal Server Error", "detail": "An internal error occurred."}]})
            .to_string(),
    ));
    *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    r
}

pub fn too_large(limit: usize) -> Response<Body> {
    let body = json!({"errors": [{
        "status": 400, "title": "Bad Request",
        "detail": format!("The server could not comply with the request since it is either malformed or otherwise incorrect.\n\n Request body is larger than the limit of {limit} bytes.  "),
        "code": quiver_placement::codes::DEFAULT,
    }]});
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = StatusCode::BAD_REQUEST;
    r.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
    r
}

fn parse_version(headers: &HeaderMap) -> Result<Version, ApiError> {
    let mut found: Option<String> = None;
    for v in headers.get_all("openstack-api-version") {
        let Ok(v) = v.to_str() else { continue };
        for item in v.split(',') {
            let mut it = item.split_whitespace();
            if it.next().map(|s| s.eq_ignore_ascii_case("placement")) == Some(true) {
                found = Some(it.collect::<Vec<_>>().join(" "));
            }
        }
    }
    let Some(v) = found else { return Ok(MIN_VERSION) };
    if v.eq_ignore_ascii_case("latest") {
        return Ok(MAX_VERSION);
    }
    let parts: Vec<&str> = v.split('.').collect();
    let parsed = match parts.as_slice() {
        [a, b] => a.parse::<u32>().ok().zip(b.parse::<u32>().ok()),
        _ => None,
    };
    let Some(ver) = parsed else {
        return Err(ApiError::bad_request(format!("Invalid microversion: invalid version string: {v}")));
    };
    if ver < MIN_VERSION || ver > MAX_VERSION {
        return Err(ApiError::new(406, format!("Invalid microversion: Unacceptable version header: {v}")));
    }
    Ok(ver)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: Option<&str>) -> Vec<(String, String)> {
    let Some(q) = q else { return vec![] };
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(&k.replace('+', " ")), percent_decode(&v.replace('+', " ")))
        })
        .collect()
}

fn cors_headers(api: &PlacementApi, headers: &HeaderMap, out: &mut HeaderMap) {
    let Some(cors) = &api.cors else { return };
    let Some(origin) = headers.get("origin").and_then(|v| v.to_str().ok()) else { return };
    if !cors.allowed_origins.iter().any(|o| o == origin || o == "*") {
        return;
    }
    if let Ok(v) = HeaderValue::from_str(origin) {
        out.insert("access-control-allow-origin", v);
    }
    out.append("vary", HeaderValue::from_static("Origin"));
    if cors.allow_credentials {
        out.insert("access-control-allow-credentials", HeaderValue::from_static("true"));
    }
    if !cors.expose_headers.is_empty()
        && let Ok(v) = HeaderValue::from_str(&cors.expose_headers.join(","))
    {
        out.insert("access-control-expose-headers", v);
    }
}

/// A CORS preflight, answered before authentication as oslo.middleware does.
fn preflight(api: &PlacementApi, headers: &HeaderMap) -> Option<Response<Body>> {
    let cors = api.cors.as_ref()?;
    let origin = headers.get("origin")?.to_str().ok()?;
    let method = headers.get("access-control-request-method")?.to_str().ok()?;
    let mut r = Response::new(Body::empty());
    if !cors.allowed_origins.iter().any(|o| o == origin || o == "*") {
        return Some(r);
    }
    let methods = if cors.allow_methods.is_empty() {
        vec!["GET", "PUT", "POST", "DELETE", "PATCH"].into_iter().map(String::from).collect()
    } else {
        cors.allow_methods.clone()
    };
    if !methods.iter().any(|m| m.eq_ignore_ascii_case(method)) {
        return Some(r);
    }
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert("access-control-allow-origin", v);
    }
    h.insert("vary", HeaderValue::from_static("Origin"));
    if let Ok(v) = HeaderValue::from_str(method) {
        h.insert("access-control-allow-methods", v);
    }
    if let Some(req_headers) = headers.get("access-control-request-headers").and_then(|v| v.to_str().ok()) {
        let allowed: Vec<String> = cors.allow_headers.iter().map(|s| s.to_ascii_lowercase()).collect();
        let wanted: Vec<String> =
            req_headers.split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()).collect();
        if wanted.iter().all(|w| allowed.contains(w))
            && let Ok(v) = HeaderValue::from_str(&wanted.join(","))
        {
            h.insert("access-control-allow-headers", v);
        }
    }
    if let Some(age) = cors.max_age
        && let Ok(v) = HeaderValue::from_str(&age.to_string())
    {
        h.insert("access-control-max-age", v);
    }
    Some(r)
}

/// Runs one request through the pipeline.
pub fn handle(api: &PlacementApi, parts: Parts, body: Bytes) -> Response<Body> {
    use std::sync::atomic::Ordering::Relaxed;
    let started = std::time::Instant::now();
    api.metrics.requests.fetch_add(1, Relaxed);
    if parts.method != Method::GET && parts.method != Method::HEAD {
        api.metrics.write_requests.fetch_add(1, Relaxed);
    }
    let request_id = format!("req-{}", uuid::Uuid::new_v4());
    let headers = &parts.headers;
    let path = parts.uri.path().to_string();
    if parts.method == Method::OPTIONS
        && let Some(r) = preflight(api, headers)
    {
        return r;
    }
    let accept = headers.get("accept").and_then(|v| v.to_str().ok()).unwrap_or("");
    let html = accept.contains("text/html") && !accept.contains("application/json");
    let mut ctx = Ctx { request_id: request_id.clone(), version: None, html };
    let segments: Vec<String> = path.split('/').filter(|s| !s.is_empty()).map(percent_decode).collect();

    let result: Result<Resp, ApiError> = (|| {
        if path == "/metrics" && parts.method == Method::GET {
            let body = api.metrics.render(api);
            return Ok(Resp {
                status: 200,
                body: Some(body.into_bytes()),
                headers: vec![("content-type", "text/plain; version=0.0.4".into())],
            });
        }
        if path == "/openapi.json" && parts.method == Method::GET {
            return Ok(Resp {
                status: 200,
                body: Some(crate::openapi::rendered("placement").unwrap_or("{}").as_bytes().to_vec()),
                headers: vec![("content-type", "application/json".into())],
            });
        }
        // No credentials needed: load balancers probe it.
        if path == "/healthcheck" && (parts.method == Method::GET || parts.method == Method::HEAD) {
            api.placement.check_store()?;
            return Ok(Resp {
                status: 200,
                body: Some(b"OK".to_vec()),
                headers: vec![("content-type", "text/plain".into())],
            });
        }
        // Keystone's credentials (the auth layer put them there), or noauth2's.
        let creds = if let Some(c) = parts.extensions.get::<Credentials>() {
            c.clone()
        } else if segments.is_empty() {
            Credentials::anonymous()
        } else {
            let Some(token) = headers.get("x-auth-token").and_then(|v| v.to_str().ok()) else {
                return Err(ApiError::new(401, "The request you have made requires authentication."));
            };
            Credentials::from_noauth(token, headers)
        };
        let version = parse_version(headers)?;
        ctx.version = Some(version);
        // Never serve from memory what the store did not acknowledge.
        if !segments.is_empty() {
            api.placement.ensure_fresh()?;
        }
        if let Some(len) = headers.get("content-length") {
            match len.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()) {
                Some(n) if n > 0 && headers.get("content-type").is_none() => {
                    return Err(ApiError::bad_request("content-type header required when content-length > 0"));
                }
                None => return Err(ApiError::bad_request("content-length header must be an integer")),
                _ => {}
            }
        }
        let mut req = Req {
            api,
            method: parts.method.clone(),
            segments: segments.clone(),
            query: parse_query(parts.uri.query()),
            headers,
            body: body.clone(),
            version,
            creds,
        };
        route(&mut req)
    })();

    let mut response = match result {
        Ok(r) => {
            let mut b = Response::builder().status(r.status);
            if r.body.is_some() && !r.headers.iter().any(|(k, _)| *k == "content-type") {
                b = b.header("content-type", "application/json");
            }
            for (k, v) in &r.headers {
                b = b.header(*k, v);
            }
            b.body(r.body.map(Body::from).unwrap_or_else(Body::empty)).unwrap_or_else(|_| internal_error())
        }
        Err(e) => {
            if e.status >= 500 {
                api.metrics.errors_5xx.fetch_add(1, Relaxed);
            } else {
                api.metrics.errors_4xx.fetch_add(1, Relaxed);
            }
            render_error(&e, &ctx)
        }
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("x-openstack-request-id", v);
    }
    if let Some(v) = ctx.version {
        if let Ok(v) = HeaderValue::from_str(&format!("placement {}.{}", v.0, v.1)) {
            h.insert("openstack-api-version", v);
        }
        h.append("vary", HeaderValue::from_static("openstack-api-version"));
    }
    cors_headers(api, headers, h);
    let status = response.status().as_u16();
    tracing::info!(
        request_id = %request_id,
        method = %parts.method,
        path = %parts.uri,
        status,
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    response
}

/// GET /: the version document.
pub fn home(req: &Req) -> Result<Resp, ApiError> {
    let doc = json!({"versions": [{
        "id": format!("v{}.{}", MIN_VERSION.0, MIN_VERSION.1),
        "max_version": format!("{}.{}", MAX_VERSION.0, MAX_VERSION.1),
        "min_version": format!("{}.{}", MIN_VERSION.0, MIN_VERSION.1),
        "status": "CURRENT",
        "links": [{"rel": "self", "href": ""}],
    }]});
    Ok(Resp::json(200, &doc).cache_now(req))
}
