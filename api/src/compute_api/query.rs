//! Capacity planning over a running cloud (admin only): `GET /v1/fleet`
//! returns the scheduler's view of the fleet as an Arrow IPC file (what
//! `quiver simulate --from` replays against), and `POST /v1/query` runs SQL
//! over it (`quiver query`'s tables), answering JSON or, with `Accept:
//! application/vnd.apache.arrow.file`, Arrow IPC.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::ComputeApi;
use super::http::Ctx;

/// The Arrow IPC file media type.
pub const ARROW_FILE: &str = "application/vnd.apache.arrow.file";

/// A Placement-style error body.
pub(super) fn error(status: StatusCode, code: &str, detail: impl Into<String>) -> Response {
    let body = json!({"errors": [{
        "status": status.as_u16(),
        "title": status.canonical_reason().unwrap_or(""),
        "detail": detail.into(),
        "code": code,
        "request_id": format!("req-{}", uuid::Uuid::new_v4()),
    }]});
    (status, axum::Json(body)).into_response()
}

/// 403 for a non-admin caller of policy `rule`.
/// Why a `/v1/*` call is refused (status, code, detail): small to carry
/// through `Result`s, rendered by [`error`].
pub(super) struct Refusal(pub StatusCode, pub &'static str, pub String);

impl Refusal {
    pub(super) fn into_response(self) -> Response {
        error(self.0, self.1, self.2)
    }
}

pub(super) fn forbidden(rule: &str) -> Response {
    error(
        StatusCode::FORBIDDEN,
        "quiver.policy.admin",
        format!("Policy does not allow {rule} to be performed (admin only)."),
    )
}

async fn snapshot(api: &Arc<ComputeApi>) -> Result<quiver_engine::Fleet, Response> {
    let api = api.clone();
    tokio::task::spawn_blocking(move || super::conductor::snapshot_fleet(&api))
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, "quiver.internal", e.to_string()))?
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, "quiver.internal", e))
}

/// `GET /v1/fleet`.
pub async fn fleet(State(api): State<Arc<ComputeApi>>, axum::Extension(ctx): axum::Extension<Ctx>) -> Response {
    if !ctx.is_admin {
        return forbidden("quiver:query");
    }
    let fleet = match snapshot(&api).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    match quiver_engine::io::ipc_bytes(&fleet) {
        Ok(bytes) => ([(header::CONTENT_TYPE, ARROW_FILE)], bytes).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "quiver.internal", e.to_string()),
    }
}

/// `POST /v1/query` with `{"sql": "..."}` or `{"json_filter": "[...]"}`
/// (JsonFilter's query language; answers the matching hosts).
pub async fn query(
    State(api): State<Arc<ComputeApi>>,
    axum::Extension(ctx): axum::Extension<Ctx>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !ctx.is_admin {
        return forbidden("quiver:query");
    }
    let bad = |d: String| error(StatusCode::BAD_REQUEST, "quiver.query.invalid", d);
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad(format!("The request body is not JSON: {e}")),
    };
    let sql = match (v.get("sql").and_then(Value::as_str), v.get("json_filter")) {
        (Some(s), None) => s.to_owned(),
        (None, Some(q)) => {
            let text = q.as_str().map(str::to_owned).unwrap_or_else(|| q.to_string());
            match quiver_engine::sql::json_filter_hosts_sql(&text) {
                Ok(sql) => sql,
                Err(e) => return bad(e.to_string()),
            }
        }
        _ => return bad("Give exactly one of \"sql\" (a string) or \"json_filter\".".into()),
    };
    let fleet = match snapshot(&api).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let session = match quiver_engine::sql::FleetSql::new(Arc::new(fleet)) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "quiver.internal", e.to_string()),
    };
    let (schema, batches) = match session.query(&sql).await {
        Ok(r) => r,
        Err(e) => return bad(e.to_string()),
    };
    let wants_arrow = headers.get(header::ACCEPT).and_then(|a| a.to_str().ok()).is_some_and(|a| a.contains(ARROW_FILE));
    let encoded = if wants_arrow {
        crate::query_output::arrow_file(&schema, &batches)
            .map(|b| ([(header::CONTENT_TYPE, ARROW_FILE)], b).into_response())
    } else {
        crate::query_output::json_rows(&batches).map(|rows| {
            let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            axum::Json(json!({"columns": columns, "rows": rows})).into_response()
        })
    };
    encoded.unwrap_or_else(|e| error(StatusCode::INTERNAL_SERVER_ERROR, "quiver.internal", e.to_string()))
}
