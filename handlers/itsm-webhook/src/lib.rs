//! The itsm-webhook handler: ITSM systems approve or reject changes, acknowledge failed runs,
//! re-run a run's failed machines and patch a configuration's machines now.
//!
//! Routes (the same on every host): `POST /api/itsm` (generic JSON; `?format=servicenow` for a
//! ServiceNow change_request body), `GET` and `POST /api/action` (one-click links: [`oneclick`]),
//! `GET /api/health`.
//!
//! Order of checks, so that no failed check changes anything: credentials (signature or bearer)
//! → body → the caller's rights on the action and configuration → replay (a signed
//! `webhook-id` is used once) → the action.

pub mod actions;
pub mod auth;
pub mod oneclick;
pub mod patch;
pub mod request;

use std::sync::Arc;

use axum::{
    Json, Router,
    body::Body,
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use patchwatch_engine::pipeline::Pipeline;

use patchwatch_state::keys;
use serde_json::{Value, json};
use tracing::{info, warn};

pub use actions::ItsmError;
use auth::Caller;
use request::Parsed;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

#[derive(Clone, Debug)]
pub struct AppState {
    pub pipeline: Arc<Pipeline>,
    pub callers: Arc<Vec<Caller>>,
    /// Machines patched at once by one request.
    pub concurrency: usize,
}

impl AppState {
    pub fn new(pipeline: Pipeline, callers: Vec<Caller>) -> Self {
        Self { pipeline: Arc::new(pipeline), callers: Arc::new(callers), concurrency: 8 }
    }
}

/// The handler's router: its routes, health and request tracing.
pub fn router(state: AppState) -> Router {
    routes(state)
        .route("/api/health", get(patchwatch_host::runtime::health))
        .layer(patchwatch_host::telemetry::request_spans())
}

/// `POST /api/itsm` and the one-click pages, for hosts that serve several handlers (`patchwatch serve`).
pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/api/itsm", post(itsm))
        .route(oneclick::PATH, get(oneclick::confirm).post(oneclick::act))
        .with_state(state)
}

#[derive(serde::Deserialize)]
struct Format {
    format: Option<String>,
}

async fn itsm(State(state): State<AppState>, Query(q): Query<Format>, headers: HeaderMap, body: Body) -> Response {
    let body = match patchwatch_host::server::read_body(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(e) => return patchwatch_host::error::ApiError::rejected(e).into_response(),
    };
    match handle(&state, q.format.as_deref(), &headers, &body).await {
        Ok((status, value)) => (status, Json(value)).into_response(),
        Err(e) => {
            warn!(error = %e, "ITSM request refused.");
            patchwatch_host::error::ApiError::from(e).into_response()
        }
    }
}

async fn handle(
    state: &AppState,
    format: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(StatusCode, Value), ItsmError> {
    let now = state.pipeline.now();
    let who =
        auth::authenticate(&state.callers, headers, body, now.unix_timestamp()).map_err(ItsmError::Unauthorized)?;
    let caller = who.caller;
    let parsed = match format.unwrap_or("generic") {
        "generic" => request::parse_generic(body),
        "servicenow" => request::parse_servicenow(body),
        other => {
            return Err(ItsmError::BadRequest(patchwatch_model::event::EventError::malformed(
                "format",
                format!("unknown format {other:?}: expected generic or servicenow"),
            )));
        }
    }
    .map_err(ItsmError::BadRequest)?;
    let req = match parsed {
        Parsed::Ignored(reason) => {
            info!(caller = %caller.name, %reason, "ITSM request needs nothing done.");
            return Ok((StatusCode::OK, json!({ "status": "ignored", "reason": reason })));
        }
        Parsed::Act(r) => r,
    };
    let (configuration, configuration_id) = actions::configuration_of(&req)?;
    if !caller.may(req.action) {
        return Err(ItsmError::Forbidden(format!("caller {:?} may not {}", caller.name, req.action.as_str())));
    }
    if !caller.may_act_on(&configuration, configuration_id.as_deref()) {
        return Err(ItsmError::Forbidden(format!(
            "caller {:?} may not act on configuration {configuration:?}",
            caller.name
        )));
    }
    info!(
        caller = %caller.name,
        requested_by = %req.requested_by,
        action = req.action.as_str(),
        configuration = %configuration,
        "ITSM request authorised."
    );
    // Replay protection: a signed message id is used once; a bearer caller's requestId makes a
    // repeated request a duplicate.
    let once = match (&who.webhook_id, &req.request_id) {
        (Some(id), _) => Some((keys::itsm_seen(&caller.name, id), true)),
        (None, Some(id)) => Some((keys::itsm_request(&caller.name, id), false)),
        (None, None) if actions::needs_request_id(req.action) => {
            return Err(ItsmError::BadRequest(patchwatch_model::event::EventError::malformed(
                "requestId",
                "is required with bearer authentication, so a repeated request does not patch twice",
            )));
        }
        (None, None) => None,
    };
    let store = state.pipeline.ledger().store();
    if let Some((key, signed)) = &once {
        let record = json!({ "caller": caller.name, "requestedBy": req.requested_by, "action": req.action.as_str(), "at": now.unix_timestamp() });
        match store.create(key, record.to_string().as_bytes()).await {
            Ok(Some(_)) => {}
            Ok(None) if *signed => {
                return Err(ItsmError::Unauthorized(auth::AuthError::Replayed(
                    who.webhook_id.clone().unwrap_or_default(),
                )));
            }
            Ok(None) => return Ok((StatusCode::OK, json!({ "status": "duplicate", "requestId": req.request_id }))),
            Err(e) => return Err(ItsmError::RetryLater(e.to_string())),
        }
    }
    let result = actions::perform(state, caller, &req, &configuration).await;
    // A request that can be retried must find its id unused when it comes back.
    if let (Err(ItsmError::RetryLater(_)), Some((key, _))) = (&result, &once)
        && let Err(e) = store.delete(key, None).await
    {
        warn!(error = %e, "Could not release the request id; the caller's retry will be refused.");
    }
    result
}
