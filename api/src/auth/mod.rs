//! Authentication in front of every API (`[api] auth_strategy`): noauth2,
//! the development mode, reads identity from headers; `keystone` validates
//! each token with Keystone, as keystonemiddleware's `auth_token` does in
//! front of Nova and Placement, and hands the handlers the credentials it
//! read from the token.

mod credentials;
pub mod keystone;
mod token_cache;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub use credentials::Credentials;
pub use keystone::{AuthError, KeystoneAuth, KeystoneConfig};

/// `[api] auth_strategy`.
#[derive(Clone, Debug, Default)]
pub enum AuthStrategy {
    /// Identity from `X-Auth-Token: user[:project]` and `X-Roles`.
    #[default]
    NoAuth2,
    Keystone(Arc<KeystoneAuth>),
}

impl AuthStrategy {
    /// The Keystone validator, when that is the strategy.
    pub fn keystone(&self) -> Option<&Arc<KeystoneAuth>> {
        match self {
            AuthStrategy::Keystone(k) => Some(k),
            AuthStrategy::NoAuth2 => None,
        }
    }
}

/// Headers that only the authentication layer may set: a client sending
/// them must not pass for someone else (keystonemiddleware strips them).
const IDENTITY_HEADERS: [&str; 12] = [
    "x-identity-status",
    "x-service-identity-status",
    "x-user-id",
    "x-user-name",
    "x-project-id",
    "x-tenant-id",
    "x-project-name",
    "x-roles",
    "x-service-roles",
    "x-is-admin-project",
    "openstack-system-scope",
    "x-system-scope",
];

/// What the middleware needs: the strategy and the paths anyone may read
/// (version documents, health checks, metrics).
#[derive(Clone, Debug)]
pub struct Gate {
    pub strategy: AuthStrategy,
    pub public: &'static [&'static str],
}

/// Public paths of the Placement API.
pub const PLACEMENT_PUBLIC: &[&str] = &["/", "/healthcheck", "/metrics", "/openapi.json"];
/// Public paths of the Compute API.
pub const COMPUTE_PUBLIC: &[&str] = &["/", "/v2.1", "/v2.1/", "/metrics", "/openapi.json"];
/// Public paths of the image API.
pub const IMAGE_PUBLIC: &[&str] = &["/", "/versions", "/openapi.json"];

/// Wraps a router with `strategy` (noauth2 leaves it as it is).
pub fn protect(router: axum::Router, strategy: &AuthStrategy, public: &'static [&'static str]) -> axum::Router {
    match strategy {
        AuthStrategy::NoAuth2 => router,
        AuthStrategy::Keystone(_) => router
            .layer(axum::middleware::from_fn_with_state(Gate { strategy: strategy.clone(), public }, authenticate)),
    }
}

/// Middleware: checks the token and puts the [`Credentials`] it carries
/// into the request's extensions.
pub async fn authenticate(State(gate): State<Gate>, mut req: Request<Body>, next: Next) -> Response {
    let Some(keystone) = gate.strategy.keystone().cloned() else {
        return next.run(req).await;
    };
    for h in IDENTITY_HEADERS {
        req.headers_mut().remove(h);
    }
    if gate.public.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let (user, service) = {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        (header("x-auth-token").or_else(|| header("x-storage-token")), header("x-service-token"))
    };
    match keystone.authenticate(user.as_deref(), service.as_deref()).await {
        Ok(creds) => {
            req.extensions_mut().insert(creds);
            next.run(req).await
        }
        Err(AuthError::Unauthorized(why)) => {
            tracing::info!(path = %req.uri().path(), reason = why, "token refused");
            let mut r = error(StatusCode::UNAUTHORIZED, "Unauthorized", why);
            if let Ok(v) = HeaderValue::from_str(&keystone.www_authenticate()) {
                r.headers_mut().insert("www-authenticate", v);
            }
            r
        }
        Err(AuthError::Unavailable(why)) => {
            tracing::warn!(path = %req.uri().path(), error = %why, "Keystone unavailable");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable",
                "The identity service could not validate the token. Please try again later.",
            )
        }
    }
}

/// keystonemiddleware's error body.
fn error(status: StatusCode, title: &str, message: &str) -> Response {
    let body = json!({"error": {"code": status.as_u16(), "title": title, "message": message}});
    (status, axum::Json(body)).into_response()
}
