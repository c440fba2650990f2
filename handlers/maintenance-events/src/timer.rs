//! The Functions timer envelopes (binding `timer`):
//! - `POST /compliance-report` builds and sends the compliance digests. A timer fired twice in
//!   one period, or on two instances at once, sends nothing more: each digest is a ledger
//!   delivery keyed by its period.
//! - `POST /reminders` walks the follow-ups of failed runs: closes what is owned or fixed, sends
//!   each due reminder step once.

use axum::{
    Json,
    body::Body,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use patchwatch_engine::{compliance, reminders};
use patchwatch_host::{
    envelope::{InvocationResponse, binding_json},
    error::ApiError,
};
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::{AppState, read_body};

/// The timer binding's payload, or the answer that refuses the invocation (200 with the reason,
/// so the host does not loop on a malformed envelope).
async fn timer_payload(body: Body, function: &str) -> Result<Value, Response> {
    let bytes = read_body(body).await.map_err(|e| ApiError::rejected(e).into_response())?;
    match binding_json(&bytes, "timer") {
        Ok((json, _)) => {
            let timer = serde_json::from_slice::<Value>(&json).unwrap_or(Value::Null);
            if timer.get("IsPastDue").and_then(Value::as_bool) == Some(true) {
                info!(function, "The timer is past due; running now.");
            }
            Ok(timer)
        }
        Err(e) => {
            warn!(field = %e.field, problem = %e.problem, "Timer invocation rejected.");
            Err(Json(InvocationResponse { logs: vec![format!("rejected: {e}")], ..Default::default() }).into_response())
        }
    }
}

/// The invocation answer: 503 (the host's retry policy) when something must be retried.
fn answer(retry: bool, log: Value) -> Response {
    let status = if retry { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    (status, Json(InvocationResponse { logs: vec![log.to_string()], ..Default::default() })).into_response()
}

pub(crate) async fn reminders(State(state): State<AppState>, body: Body) -> Response {
    if let Err(refused) = timer_payload(body, "reminders").await {
        return refused;
    }
    // In a task of its own: a host that gives up on the request must not cut a delivery short.
    let pipeline = state.pipeline.clone();
    match tokio::spawn(async move { reminders::tick(&pipeline).await }).await {
        Ok(Ok(pass)) => {
            let retry = pass.deliveries.retry.is_some();
            let closed: Vec<Value> =
                pass.closed.iter().map(|(run, route, why)| json!({ "run": run, "route": route, "why": why })).collect();
            answer(
                retry,
                json!({
                    "outcome": if retry { "retry_later" } else { "reminders" },
                    "open": pass.open,
                    "closed": closed,
                    "deliveries": pass.deliveries.reports,
                }),
            )
        }
        Ok(Err(e)) => {
            warn!(error = %e, "State store unavailable; the timer's retry policy will try again.");
            answer(true, json!({ "outcome": "retry_later", "reason": e.to_string() }))
        }
        Err(e) => answer(true, json!({ "outcome": "failed", "reason": e.to_string() })),
    }
}

pub(crate) async fn compliance_report(State(state): State<AppState>, body: Body) -> Response {
    if let Err(refused) = timer_payload(body, "compliance-report").await {
        return refused;
    }
    // In a task of its own: a host that gives up on the request must not cut a delivery short.
    let pipeline = state.pipeline.clone();
    match tokio::spawn(async move { compliance::run(&pipeline, None).await }).await {
        Ok(Ok(run)) => {
            let retry = run.deliveries.retry.as_ref().map(|r| r.after.as_secs());
            answer(
                retry.is_some(),
                json!({
                    "outcome": if retry.is_some() { "retry_later" } else { "digest" },
                    "period": run.period,
                    "machines": run.machines,
                    "compliant": run.compliant,
                    "errors": run.errors,
                    "warnings": run.warnings,
                    "deliveries": run.deliveries.reports,
                }),
            )
        }
        // Throttling and outages pass: 503 hands the invocation to the host's retry policy. A
        // broken snapshot or a refused query does not: 200 with the reason, not five reloads.
        Ok(Err(e)) if e.retry_after().is_some() => {
            warn!(error = %e, "Fleet data unavailable; the timer's retry policy will try again.");
            answer(true, json!({ "outcome": "retry_later", "reason": e.to_string() }))
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "Fleet data cannot be read; no digest this time.");
            answer(false, json!({ "outcome": "failed", "reason": e.to_string() }))
        }
        Err(e) => answer(true, json!({ "outcome": "failed", "reason": e.to_string() })),
    }
}
