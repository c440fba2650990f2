//! The alert-webhook handler: activity-log alerts from an Azure Monitor action group.
//!
//! Routes (the same on every host): `POST /api/alerts`, `GET /api/health`.
//! Action groups retry only 408, 429, 503 and 504, so a notice that cannot go out yet answers
//! 503; malformed bodies answer 400 naming the field; other alert types answer 200 and are ignored.

pub mod alert;

use std::sync::Arc;

use axum::{
    Json, Router,
    body::Body,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use patchwatch_engine::{inhibit, pipeline::Pipeline};
use patchwatch_host::{auth::Bearer, error::ApiError};
use patchwatch_model::failure::{Deliveries, Retry};
use patchwatch_model::secret::Secret;
use serde_json::json;
use tracing::{info, warn};

/// Action groups send at most 256 KB.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

#[derive(Clone, Debug)]
pub struct AppState {
    pub pipeline: Arc<Pipeline>,
    /// `PATCHWATCH_ALERT_TOKEN`: required as `?token=` or a bearer header when set.
    pub token: Option<Secret>,
}

/// The handler's router: its routes, health and request tracing.
pub fn router(state: AppState) -> Router {
    routes(state)
        .route("/api/health", get(patchwatch_host::runtime::health))
        .layer(patchwatch_host::telemetry::request_spans())
}

/// `POST /api/alerts` alone, for hosts that serve several handlers (`patchwatch serve`).
pub fn routes(state: AppState) -> Router {
    Router::new().route("/api/alerts", post(alerts)).with_state(state)
}

#[derive(serde::Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

async fn alerts(State(state): State<AppState>, Query(q): Query<TokenQuery>, bearer: Bearer, body: Body) -> Response {
    if let Some(token) = &state.token {
        let given = q.token.as_deref().or(bearer.token()).map(str::trim);
        if !given.is_some_and(|g| token.matches(g)) {
            warn!("Alert without a valid token rejected; nothing processed.");
            return ApiError::unauthorized().into_response();
        }
    }
    // The token is checked first: an unauthenticated caller learns nothing about the body.
    let body = match patchwatch_host::server::read_body(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(e) => return ApiError::rejected(e).into_response(),
    };
    let activity = match alert::parse(&body) {
        Ok(alert::Alert::Activity(a)) => a,
        Ok(alert::Alert::Ignored(reason)) => {
            info!(%reason, "Alert acknowledged and ignored.");
            return (StatusCode::OK, Json(json!({ "status": "ignored", "reason": reason }))).into_response();
        }
        Err(e) => {
            warn!(field = %e.field, problem = %e.problem, "Alert rejected.");
            return ApiError::rejected(e).into_response();
        }
    };
    let notice = match alert::notice(&activity) {
        Ok(n) => n,
        Err(reason) => {
            info!(operation = %activity.operation, %reason, "Activity acknowledged; no notice.");
            return (StatusCode::OK, Json(json!({ "status": "ignored", "reason": reason }))).into_response();
        }
    };
    info!(operation = %activity.operation, caller = %activity.caller, status = %activity.status, "Maintenance activity alert.");
    let p = &state.pipeline;
    let channels = p.alerts_notify();
    let mut sent = Deliveries::default();
    match alert::inhibition(&activity) {
        alert::Inhibition::Group(member) => match inhibit::group_assignment(p, &member, &notice).await {
            Some(grouped) => sent.absorb([grouped]),
            // Its group was already sent: this one goes on its own.
            None => sent.absorb(p.notifier.send_notice(&notice, &channels).await),
        },
        alert::Inhibition::Fold(run) => sent.extend(inhibit::fold_or_hold(p, &run, &notice).await),
        alert::Inhibition::None => sent.absorb(p.notifier.send_notice(&notice, &channels).await),
    }
    // Groups and held alerts that are due go out now rather than at the next timer; what cannot
    // go out yet is the timer's to retry, not this alert's.
    let flushed = inhibit::flush_due(p).await;
    if let Some(retry) = flushed.retry {
        info!(reason = %retry.reason, "Due alert groups not all sent; the reminders timer retries.");
    }
    let deliveries = sent.reports;
    match sent.retry {
        Some(Retry { reason, after }) => ApiError::retry_later(reason, after).into_response(),
        None => (StatusCode::OK, Json(json!({ "status": "done", "title": notice.title, "deliveries": deliveries })))
            .into_response(),
    }
}
