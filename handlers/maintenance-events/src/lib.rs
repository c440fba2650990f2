//! The maintenance-events handler: Update Manager pre/post events in, summaries out.
//!
//! Routes (the same on every host):
//! - `POST /api/events`, `OPTIONS /api/events`: direct Event Grid webhook delivery, both schemas,
//!   with the validation and CloudEvents abuse-protection handshakes;
//! - `POST /maintenance-event`: Functions eventGridTrigger envelope (binding `event`);
//! - `POST /maintenance-queue`: Functions queueTrigger envelope (binding `message`);
//! - `GET /api/health`.

use std::sync::Arc;

use axum::{
    Json, Router,
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, Request, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use patchwatch_core::{
    envelope::{InvocationResponse, binding_json},
    error::ApiError,
    event::{EventError, EventErrorKind, MAX_BODY_BYTES, parse_delivery},
    pipeline::{DeliveryOutcome, EventOutcome, Pipeline},
};
use serde_json::{Value, json};
use tower_http::trace::TraceLayer;
use tracing::warn;

/// Shared state: the pipeline every route feeds.
#[derive(Clone, Debug)]
pub struct AppState {
    pub pipeline: Arc<Pipeline>,
}

/// The handler's router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/events", post(events).options(abuse_protection))
        .route("/maintenance-event", post(|s: State<AppState>, b: Body| envelope(s, b, "event")))
        .route("/maintenance-queue", post(|s: State<AppState>, b: Body| envelope(s, b, "message")))
        .route("/api/health", get(health))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<Body>| {
            let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            tracing::info_span!(
                "request",
                method = %req.method(),
                path = %req.uri().path(),
                invocation_id = %header("x-azure-functions-invocationid"),
                delivery_count = %header("aeg-delivery-count"),
            )
        }))
        .with_state(state)
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

/// Reads a body up to the size limit; beyond it the answer is 413 naming the body.
async fn read_body(body: Body) -> Result<axum::body::Bytes, EventError> {
    axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|e| {
        let too_large = std::error::Error::source(&e).is_some_and(|s| s.to_string().contains("length limit"))
            || e.to_string().contains("length limit");
        if too_large {
            EventError {
                kind: EventErrorKind::TooLarge,
                field: "body".into(),
                problem: format!("body is larger than the {MAX_BODY_BYTES}-byte limit"),
            }
        } else {
            EventError::malformed("body", format!("could not be read: {e}"))
        }
    })
}

/// Direct webhook delivery from Event Grid.
async fn events(State(state): State<AppState>, body: Body) -> Response {
    let items = match read_body(body).await.and_then(|b| parse_delivery(&b)) {
        Ok(items) => items,
        Err(e) => {
            warn!(field = %e.field, problem = %e.problem, "Delivery rejected.");
            return ApiError::Rejected(e).into_response();
        }
    };
    match state.pipeline.handle(items).await {
        DeliveryOutcome::Validation { code } => Json(json!({ "validationResponse": code })).into_response(),
        DeliveryOutcome::Done(outcomes) => {
            Json(json!({ "status": "done", "events": outcomes.iter().map(describe).collect::<Vec<_>>() }))
                .into_response()
        }
        DeliveryOutcome::RetryLater { reason, after } => ApiError::RetryLater { reason, after }.into_response(),
        DeliveryOutcome::Rejected(e) => ApiError::Rejected(e).into_response(),
    }
}

/// CloudEvents 1.0 abuse protection: grant the requesting origin.
async fn abuse_protection(headers: HeaderMap) -> Response {
    let Some(origin) = headers.get("webhook-request-origin").cloned() else {
        let e = EventError::malformed("WebHook-Request-Origin", "header missing from the abuse-protection request");
        return ApiError::Rejected(e).into_response();
    };
    let mut response = StatusCode::OK.into_response();
    let h = response.headers_mut();
    h.insert("webhook-allowed-origin", origin);
    h.insert("webhook-allowed-rate", HeaderValue::from_static("*"));
    h.insert("allow", HeaderValue::from_static("POST, OPTIONS"));
    response
}

/// A Functions trigger envelope. Rejections answer 200 with the reason in `Logs`, so a poison
/// message is not retried; "retry later" answers 503 so the host fails the invocation and the
/// trigger's own retry redelivers.
async fn envelope(State(state): State<AppState>, body: Body, binding: &'static str) -> Response {
    let parsed = read_body(body).await.and_then(|b| binding_json(&b, binding)).and_then(|(json, meta)| {
        tracing::debug!(method = ?meta.method_name, dequeue_count = ?meta.dequeue_count, "Envelope received.");
        parse_delivery(&json).map_err(|mut e| {
            e.field = format!("Data.{binding}{}{}", if e.field.starts_with('[') { "" } else { "." }, e.field);
            e
        })
    });
    let items = match parsed {
        Ok(items) => items,
        Err(e) => {
            warn!(field = %e.field, problem = %e.problem, "Invocation rejected; not retried.");
            let logs = vec![format!("rejected: {e}")];
            return Json(InvocationResponse { logs, ..Default::default() }).into_response();
        }
    };
    match state.pipeline.handle(items).await {
        DeliveryOutcome::Done(outcomes) => {
            let logs = outcomes.iter().map(|o| describe(o).to_string()).collect();
            Json(InvocationResponse { logs, ..Default::default() }).into_response()
        }
        DeliveryOutcome::Validation { .. } => {
            let logs = vec!["subscription validation is answered by the Functions host".to_owned()];
            Json(InvocationResponse { logs, ..Default::default() }).into_response()
        }
        DeliveryOutcome::RetryLater { reason, after } => {
            let logs = vec![format!("retry later ({}s): {reason}", after.as_secs())];
            (StatusCode::SERVICE_UNAVAILABLE, Json(InvocationResponse { logs, ..Default::default() })).into_response()
        }
        DeliveryOutcome::Rejected(e) => {
            let logs = vec![format!("rejected: {e}")];
            Json(InvocationResponse { logs, ..Default::default() }).into_response()
        }
    }
}

fn describe(o: &EventOutcome) -> Value {
    match o {
        EventOutcome::Sent(p) => json!({
            "outcome": "sent",
            "configuration": p.summary.configuration_name,
            "phase": p.summary.phase.as_str(),
            "verdict": p.summary.verdict.label(),
            "machines": p.summary.counts.total,
            "subject": p.summary.subject(),
            "deliveries": p.deliveries,
        }),
        EventOutcome::Duplicate { record, deliveries } => json!({
            "outcome": "duplicate",
            "sentAt": record.as_ref().and_then(|r| r.sent_at).and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
            "deliveries": deliveries,
        }),
        EventOutcome::Ignored { event_type } => json!({ "outcome": "ignored", "eventType": event_type }),
        EventOutcome::RetryLater { reason, .. } => json!({ "outcome": "retry_later", "reason": reason }),
        EventOutcome::Failed { reason } => json!({ "outcome": "failed", "reason": reason }),
    }
}
