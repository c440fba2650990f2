//! `POST /compliance-report`: the Functions timer envelope (binding `timer`). Builds and sends
//! the compliance digests. A timer fired twice in one period, or on two instances at once,
//! sends nothing more: each digest is a ledger delivery keyed by its period.

use axum::{
    Json,
    body::Body,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use patchwatch_engine::compliance;
use patchwatch_host::{
    envelope::{InvocationResponse, binding_json},
    error::ApiError,
};
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::{AppState, read_body};

pub(crate) async fn compliance_report(State(state): State<AppState>, body: Body) -> Response {
    let bytes = match read_body(body).await {
        Ok(b) => b,
        Err(e) => return ApiError::rejected(e).into_response(),
    };
    // The timer's payload carries nothing patchwatch needs but whether it is late; a malformed
    // envelope is still refused (200 with the reason, so the host does not loop on it).
    let timer = match binding_json(&bytes, "timer") {
        Ok((json, _)) => serde_json::from_slice::<Value>(&json).unwrap_or(Value::Null),
        Err(e) => {
            warn!(field = %e.field, problem = %e.problem, "Timer invocation rejected.");
            return Json(InvocationResponse { logs: vec![format!("rejected: {e}")], ..Default::default() })
                .into_response();
        }
    };
    if timer.get("IsPastDue").and_then(Value::as_bool) == Some(true) {
        info!("The compliance-report timer is past due; sending this period's digests now.");
    }
    // In a task of its own: a host that gives up on the request must not cut a delivery short.
    let pipeline = state.pipeline.clone();
    let run = tokio::spawn(async move { compliance::run(&pipeline, None).await }).await;
    let (status, log) = match run {
        Ok(Ok(run)) => {
            let retry = run.deliveries.retry.as_ref().map(|r| r.after.as_secs());
            let log = json!({
                "outcome": if retry.is_some() { "retry_later" } else { "digest" },
                "period": run.period,
                "machines": run.machines,
                "compliant": run.compliant,
                "errors": run.errors,
                "warnings": run.warnings,
                "deliveries": run.deliveries.reports,
            });
            (if retry.is_some() { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK }, log)
        }
        // Throttling and outages pass: 503 hands the invocation to the host's retry policy. A
        // broken snapshot or a refused query does not: 200 with the reason, not five reloads.
        Ok(Err(e)) if e.retry_after().is_some() => {
            warn!(error = %e, "Fleet data unavailable; the timer's retry policy will try again.");
            (StatusCode::SERVICE_UNAVAILABLE, json!({ "outcome": "retry_later", "reason": e.to_string() }))
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "Fleet data cannot be read; no digest this time.");
            (StatusCode::OK, json!({ "outcome": "failed", "reason": e.to_string() }))
        }
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, json!({ "outcome": "failed", "reason": e.to_string() })),
    };
    (status, Json(InvocationResponse { logs: vec![log.to_string()], ..Default::default() })).into_response()
}
