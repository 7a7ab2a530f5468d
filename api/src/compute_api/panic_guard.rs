//! A handler that panics is answered, not dropped: the outermost layer of
//! the Compute and image APIs catches the panic, logs it with the
//! request's id, counts it (`quiver_handler_panics_total` in /metrics) and
//! answers 500 with Nova's `computeFault` body, so a client never sees a
//! connection cut and an operator can find the request in the log.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use serde_json::json;

/// The id a request is known by (`x-openstack-request-id`), chosen here
/// so the panic log and the response name the same one.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Middleware: runs the rest of the stack, turning a panic into a 500.
pub async fn catch_panics(State(panics): State<Arc<AtomicU64>>, mut req: Request<Body>, next: Next) -> Response {
    let id = format!("req-{}", uuid::Uuid::new_v4());
    req.extensions_mut().insert(RequestId(id.clone()));
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    match AssertUnwindSafe(next.run(req)).catch_unwind().await {
        Ok(resp) => resp,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            panics.fetch_add(1, Ordering::Relaxed);
            tracing::error!(request_id = %id, %method, path, panic = %what, "handler panicked");
            let body = json!({"computeFault": {"code": 500, "message":
                format!("Unexpected API Error. It is logged under request {id}.")}});
            let mut resp = (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response();
            if let Ok(v) = HeaderValue::from_str(&id) {
                resp.headers_mut().insert("x-openstack-request-id", v);
            }
            resp
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    async fn boom() -> &'static str {
        panic!("index out of bounds")
    }

    #[tokio::test]
    async fn a_panicking_handler_gets_a_500_with_the_request_id_and_is_counted() {
        let panics = Arc::new(AtomicU64::new(0));
        let app = Router::new()
            .route("/boom", get(boom))
            .route("/fine", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn_with_state(Arc::clone(&panics), catch_panics));
        let resp = app.clone().oneshot(Request::get("/boom").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let id = resp.headers()["x-openstack-request-id"].to_str().unwrap().to_owned();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["computeFault"]["code"], 500);
        assert!(v["computeFault"]["message"].as_str().unwrap().contains(&id));
        assert_eq!(panics.load(Ordering::Relaxed), 1);
        let resp = app.oneshot(Request::get("/fine").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(panics.load(Ordering::Relaxed), 1, "only panics are counted");
    }
}
