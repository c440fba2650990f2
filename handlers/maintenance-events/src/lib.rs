//! The maintenance-events handler: Update Manager pre/post events in, summaries out.
//!
//! Routes (the same on every host):
//! - `POST /api/events`, `OPTIONS /api/events`: direct Event Grid webhook delivery, both schemas,
//!   with the validation and CloudEvents abuse-protection handshakes;
//! - `POST /maintenance-event`: Functions eventGridTrigger envelope (binding `event`);
//! - `POST /maintenance-queue`: Functions queueTrigger envelope (binding `message`);
//! - `POST /compliance-report`: Functions timerTrigger envelope (binding `timer`): the weekly
//!   compliance digests ([`timer`]);
//! - `POST /reminders`: Functions timerTrigger envelope (binding `timer`), every 15 minutes:
//!   reminders and escalations of failed runs nobody owns ([`timer`]);
//! - `GET /api/health`.

mod timer;

use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use patchwatch_azure::entra::EntraError;
use patchwatch_azure::entra::EntraValidator;
use patchwatch_engine::pipeline::DeliveryOutcome;
use patchwatch_engine::pipeline::EventOutcome;
use patchwatch_engine::pipeline::Pipeline;
use patchwatch_host::envelope::InvocationResponse;
use patchwatch_host::envelope::binding_json;
use patchwatch_host::{auth::Bearer, error::ApiError};
use patchwatch_model::event::EventError;
use patchwatch_model::event::Incoming;
use patchwatch_model::event::MAX_BODY_BYTES;
use patchwatch_model::event::parse_delivery;
use patchwatch_model::secret::Secret;
use serde_json::{Value, json};
use tracing::{Instrument, warn};

/// [`AppState::deadline`]'s default.
pub const DEADLINE: Duration = Duration::from_secs(25);

/// Shared state: the pipeline every route feeds.
#[derive(Clone, Debug)]
pub struct AppState {
    pub pipeline: Arc<Pipeline>,
    /// How long a request waits for its events before answering "retry later" (Event Grid
    /// gives up after 30 s); the work itself runs on to completion. Longer than a run load's
    /// budget ([`ResourceGraphOptions::load_budget`], 20 s), so no query is sent after the answer.
    ///
    /// [`ResourceGraphOptions::load_budget`]: patchwatch_azure::resource_graph::ResourceGraphOptions
    pub deadline: Duration,
    /// Required bearer token for `POST /api/events` (`PATCHWATCH_WEBHOOK_TOKEN`), if any.
    pub token: Option<Secret>,
    /// Event Grid's Entra ID bearer tokens are accepted too (`PATCHWATCH_EVENTS_AUDIENCE`).
    pub entra: Option<Arc<EntraValidator>>,
}

impl AppState {
    pub fn new(pipeline: Pipeline, token: Option<Secret>) -> Self {
        Self { pipeline: Arc::new(pipeline), deadline: DEADLINE, token, entra: None }
    }

    /// Also accept Entra ID bearer tokens checked by `entra`.
    pub fn with_entra(mut self, entra: Option<Arc<EntraValidator>>) -> Self {
        self.entra = entra;
        self
    }
}

/// How long Event Grid is asked to wait when the Entra ID signing keys could not be fetched
/// (a fetch is tried at most once a minute).
const ENTRA_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The queue trigger's `maxDequeueCount` in host.json: the last attempt sends what is known.
pub const QUEUE_MAX_DEQUEUE: u64 = 30;

/// Runs the pipeline in a task of its own, so a caller that hangs up cannot cancel a delivery
/// between sending and recording it. Past the deadline the answer is "retry later" while the
/// task finishes; the redelivery then finds the work done.
async fn run(state: &AppState, items: Vec<Incoming>, final_attempt: bool) -> DeliveryOutcome {
    let pipeline = state.pipeline.clone();
    // The task keeps the request's span, so its logs carry the invocation id.
    let task =
        tokio::spawn(async move { pipeline.handle(items, final_attempt).await }.instrument(tracing::Span::current()));
    match tokio::time::timeout(state.deadline, task).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "Event processing failed unexpectedly; it will be retried.");
            DeliveryOutcome::RetryLater {
                reason: "processing failed unexpectedly".to_owned(),
                after: Duration::from_secs(30),
            }
        }
        Err(_) => DeliveryOutcome::RetryLater {
            reason: "still processing; the redelivery will find the work done".to_owned(),
            after: Duration::from_secs(30),
        },
    }
}

/// The handler's router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/events", post(events).options(abuse_protection))
        .route("/maintenance-event", post(|s: State<AppState>, b: Body| envelope(s, b, "event")))
        .route("/maintenance-queue", post(|s: State<AppState>, b: Body| envelope(s, b, "message")))
        .route("/compliance-report", post(timer::compliance_report))
        .route("/reminders", post(timer::reminders))
        .route("/api/health", get(patchwatch_host::runtime::health))
        .layer(patchwatch_host::telemetry::request_spans())
        .with_state(state)
}

/// Reads a body up to the size limit: 413 beyond it, 408 when it trickles in too slowly.
async fn read_body(body: Body) -> Result<axum::body::Bytes, EventError> {
    patchwatch_host::server::read_body(body, MAX_BODY_BYTES).await
}

/// Largest body read from a caller without a valid credential (a validation handshake).
const HANDSHAKE_MAX_BYTES: usize = 64 * 1024;

/// Who a delivery proved to be, before its body is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Caller {
    /// A valid credential, or none is configured.
    Trusted,
    /// No valid credential: only a subscription validation handshake may pass (Event Grid may
    /// validate before custom delivery headers apply, and the handshake only echoes a code).
    ValidationOnly,
    /// An Entra ID token that cannot be checked now (the signing keys could not be fetched):
    /// 503, so Event Grid retries instead of dropping the event; a handshake may still pass.
    RetryLater,
}

/// Checks the delivery's credentials. Runs before the body is parsed, so an unauthenticated
/// caller learns nothing about what a valid body looks like.
///
/// With neither `PATCHWATCH_WEBHOOK_TOKEN` nor `PATCHWATCH_EVENTS_AUDIENCE`, every caller is
/// trusted. Otherwise the bearer token must be the static token (compared in constant time) or
/// an Entra ID token the validator accepts.
async fn authorize(state: &AppState, headers: &HeaderMap) -> Caller {
    if state.token.is_none() && state.entra.is_none() {
        return Caller::Trusted;
    }
    let bearer = Bearer::from_headers(headers);
    let Some(given) = bearer.token() else { return Caller::ValidationOnly };
    if state.token.as_ref().is_some_and(|token| token.matches(given)) {
        return Caller::Trusted;
    }
    let Some(entra) = &state.entra else { return Caller::ValidationOnly };
    match entra.validate(given).await {
        Ok(_) => Caller::Trusted,
        Err(EntraError::Rejected(reason)) => {
            // The reason category only: never the token or its claims.
            warn!(reason = reason.as_str(), "Entra ID bearer token refused.");
            Caller::ValidationOnly
        }
        Err(EntraError::KeysUnavailable(problem)) => {
            warn!(problem = %problem, "Entra ID bearer token not checked: signing keys unavailable; asking for a retry.");
            Caller::RetryLater
        }
    }
}

/// Direct webhook delivery from Event Grid.
async fn events(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let caller = authorize(&state, &headers).await;
    // Without a valid credential only a validation handshake can pass, and a handshake is a
    // few hundred bytes: nothing bigger is parsed for an unauthenticated caller.
    let limit = if caller == Caller::Trusted { MAX_BODY_BYTES } else { HANDSHAKE_MAX_BYTES };
    let parsed = patchwatch_host::server::read_body(body, limit).await.and_then(|b| parse_delivery(&b));
    let items = match (parsed, caller) {
        (Ok(items), Caller::Trusted) => items,
        (Ok(items), Caller::ValidationOnly | Caller::RetryLater)
            if items.iter().all(|i| matches!(i, Incoming::Validation { .. })) =>
        {
            items
        }
        (_, Caller::RetryLater) => {
            let reason =
                "the Entra ID signing keys could not be fetched to check the token; nothing processed".to_owned();
            return ApiError::retry_later(reason, ENTRA_RETRY_AFTER).into_response();
        }
        (_, Caller::ValidationOnly) => {
            warn!("Delivery without a valid bearer token rejected; nothing processed.");
            return ApiError::unauthorized().into_response();
        }
        (Err(e), Caller::Trusted) => {
            warn!(field = %e.field, problem = %e.problem, "Delivery rejected.");
            return ApiError::rejected(e).into_response();
        }
    };
    match run(&state, items, false).await {
        DeliveryOutcome::Validation { code } => Json(json!({ "validationResponse": code })).into_response(),
        DeliveryOutcome::Done(outcomes) => {
            Json(json!({ "status": "done", "events": outcomes.iter().map(describe).collect::<Vec<_>>() }))
                .into_response()
        }
        DeliveryOutcome::RetryLater { reason, after } => ApiError::retry_later(reason, after).into_response(),
        DeliveryOutcome::Rejected(e) => ApiError::rejected(e).into_response(),
    }
}

/// CloudEvents 1.0 abuse protection: grant the requesting origin.
async fn abuse_protection(headers: HeaderMap) -> Response {
    let Some(origin) = headers.get("webhook-request-origin").cloned() else {
        let e = EventError::malformed("WebHook-Request-Origin", "header missing from the abuse-protection request");
        return ApiError::rejected(e).into_response();
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
    let mut final_attempt = false;
    // A body too large or too slow is refused as on every route (413/408): no invocation
    // envelope the host sends comes near the limit, so this is never a poison loop.
    let bytes = match read_body(body).await {
        Ok(b) => b,
        Err(e) => {
            warn!(field = %e.field, problem = %e.problem, "Invocation refused.");
            return ApiError::rejected(e).into_response();
        }
    };
    let parsed = binding_json(&bytes, binding).and_then(|(json, meta)| {
        tracing::debug!(method = ?meta.method_name, dequeue_count = ?meta.dequeue_count, "Envelope received.");
        // The queue's last attempt: waiting longer would poison the message, so send what is known.
        final_attempt = meta.dequeue_count.is_some_and(|n| n >= QUEUE_MAX_DEQUEUE);
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
    match run(&state, items, final_attempt).await {
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

#[cfg(test)]
mod deadline_tests {
    /// A run load stops (and saves its pages) before the request that started it is answered.
    #[test]
    fn a_run_load_stops_before_the_request_is_answered() {
        let load = patchwatch_azure::resource_graph::ResourceGraphOptions::default().load_budget;
        assert!(load < super::DEADLINE, "load budget {load:?} must end before the {:?} deadline", super::DEADLINE);
    }
}
