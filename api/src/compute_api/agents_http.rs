//! The agents' controller API over HTTP: `POST
//! /v2.1/quiver-agent/{register,heartbeat,reconcile}` (admin). Each handler
//! checks the caller, parses the body and calls the [`Controller`] that
//! [`super::agents`] implements.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use quiver_compute_agent::controller::{Controller, ControllerError};
use quiver_compute_agent::protocol::{Heartbeat, HostReport, ReconcileRequest};

use super::ComputeApi;
use super::http::{ApiResult, Ctx, NovaError, body, reply};

async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, ControllerError> + Send + 'static,
) -> Result<R, NovaError> {
    tokio::task::spawn_blocking(f).await.map_err(NovaError::internal)?.map_err(|e| NovaError::bad_request(e.0))
}

pub async fn register(State(api): State<Arc<ComputeApi>>, Extension(ctx): Extension<Ctx>, raw: Bytes) -> ApiResult {
    ctx.require_admin("quiver:agent:register")?;
    let report: HostReport = body(&raw)?;
    let done = blocking(move || api.register(&report)).await?;
    reply(StatusCode::OK, serde_json::to_value(done).map_err(NovaError::internal)?)
}

pub async fn heartbeat(State(api): State<Arc<ComputeApi>>, Extension(ctx): Extension<Ctx>, raw: Bytes) -> ApiResult {
    ctx.require_admin("quiver:agent:heartbeat")?;
    let b: Heartbeat = body(&raw)?;
    api.heartbeat(&b.host).map_err(|e| NovaError::not_found(e.0))?;
    reply(StatusCode::OK, serde_json::json!({}))
}

pub async fn reconcile(State(api): State<Arc<ComputeApi>>, Extension(ctx): Extension<Ctx>, raw: Bytes) -> ApiResult {
    ctx.require_admin("quiver:agent:reconcile")?;
    let b: ReconcileRequest = body(&raw)?;
    let done = blocking(move || api.reconcile(&b.host, &b.guests)).await?;
    reply(StatusCode::OK, serde_json::to_value(done).map_err(NovaError::internal)?)
}
