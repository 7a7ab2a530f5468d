//! What was done to a server (Nova's instance actions and their events):
//! kept inside the server's record, so recording one costs no write of its
//! own; `GET /servers/{id}/os-instance-actions[/{request_id}]`.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::ComputeApi;
use super::http::{ApiResult, Ctx, NovaError, reply};
use super::records::{ActionEvent, InstanceAction, Server, now_iso};

/// Actions kept per server (the oldest go first).
pub const KEPT: usize = 50;

/// Who asked for an action.
pub struct Requester<'a> {
    pub request_id: &'a str,
    pub user_id: &'a str,
    pub project_id: &'a str,
}

impl<'a> From<&'a Ctx> for Requester<'a> {
    fn from(ctx: &'a Ctx) -> Self {
        Requester { request_id: &ctx.request_id, user_id: &ctx.user_id, project_id: &ctx.project_id }
    }
}

/// Starts action `action` on `s` (saved with the server's next write).
pub fn begin(s: &mut Server, action: &str, by: Requester<'_>) {
    let now = now_iso();
    s.actions.push(InstanceAction {
        action: action.into(),
        request_id: by.request_id.into(),
        user_id: by.user_id.into(),
        project_id: by.project_id.into(),
        start_time: now.clone(),
        updated_at: now,
        message: None,
        events: Vec::new(),
    });
    if s.actions.len() > KEPT {
        s.actions.drain(..s.actions.len() - KEPT);
    }
}

/// Records `event` of the newest `action` on `s`: `Err(details)` marks the
/// action failed, as Nova's `Error` message does.
pub fn event(s: &mut Server, action: &str, event: &str, host: Option<&str>, result: Result<(), &str>) {
    let Some(a) = s.actions.iter_mut().rev().find(|a| a.action == action) else { return };
    let now = now_iso();
    if result.is_err() {
        a.message = Some("Error".into());
    }
    a.updated_at = now.clone();
    a.events.push(ActionEvent {
        event: event.into(),
        start_time: a.start_time.clone(),
        finish_time: now,
        result: if result.is_ok() { "Success" } else { "Error" }.into(),
        host: host.map(str::to_owned),
        details: result.err().map(str::to_owned),
    });
}

fn view(a: &InstanceAction, id: &str, ctx: &Ctx) -> Value {
    let mut v = json!({
        "action": a.action, "instance_uuid": id, "message": a.message, "project_id": a.project_id,
        "request_id": a.request_id, "start_time": a.start_time, "user_id": a.user_id,
    });
    if ctx.at_least(2, 58) {
        v["updated_at"] = json!(a.updated_at);
    }
    v
}

fn event_view(e: &ActionEvent, project_id: &str, ctx: &Ctx) -> Value {
    let mut v = json!({"event": e.event, "start_time": e.start_time, "finish_time": e.finish_time, "result": e.result});
    if ctx.is_admin || !ctx.at_least(2, 51) {
        v["traceback"] = json!(e.details);
    }
    if ctx.at_least(2, 62) {
        if ctx.is_admin {
            v["host"] = json!(e.host);
        }
        v["hostId"] = json!(super::servers::host_id_of(project_id, e.host.as_deref()));
    }
    if ctx.at_least(2, 84) {
        v["details"] = json!(e.details);
    }
    v
}

fn server(api: &ComputeApi, ctx: &Ctx, id: &str) -> Result<Server, NovaError> {
    let r = api.records();
    let s = r.servers.get(id).filter(|s| ctx.is_admin || s.project_id == ctx.project_id);
    s.cloned().ok_or_else(|| NovaError::not_found(format!("Instance {id} could not be found.")))
}

/// `GET /servers/{id}/os-instance-actions`, newest first.
pub async fn list(
    State(api): State<Arc<ComputeApi>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> ApiResult {
    let s = server(&api, &ctx, &id)?;
    let actions: Vec<Value> = s.actions.iter().rev().map(|a| view(a, &id, &ctx)).collect();
    reply(StatusCode::OK, json!({"instanceActions": actions}))
}

/// `GET /servers/{id}/os-instance-actions/{request_id}`, with its events.
pub async fn show(
    State(api): State<Arc<ComputeApi>>,
    Extension(ctx): Extension<Ctx>,
    Path((id, request_id)): Path<(String, String)>,
) -> ApiResult {
    let s = server(&api, &ctx, &id)?;
    let Some(a) = s.actions.iter().find(|a| a.request_id == request_id) else {
        return Err(NovaError::not_found(format!("Action {request_id} on instance {id} could not be found.")));
    };
    let mut v = view(a, &id, &ctx);
    v["events"] = json!(a.events.iter().map(|e| event_view(e, &s.project_id, &ctx)).collect::<Vec<_>>());
    reply(StatusCode::OK, json!({"instanceAction": v}))
}
