//! The one error type at the HTTP edge: `{"error": {"code", "message", "field"?}}`.

use std::time::Duration;

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header::RETRY_AFTER},
    response::{IntoResponse, Response},
};
use serde_json::json;

use patchwatch_model::event::{EventError, EventErrorKind};

/// An HTTP error answer. Client errors are not logged here (the caller logs them once).
#[derive(Debug)]
pub enum ApiError {
    /// Bad input: 400, or 413 when too large. Event Grid does not retry these.
    Rejected(EventError),
    /// 503 with `Retry-After`: the upstream's own retry does the waiting.
    RetryLater { reason: String, after: Duration },
    /// 401: the caller did not prove who it is. Nothing was processed.
    Unauthorized,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Rejected(e) => {
                let (status, code) = match e.kind {
                    EventErrorKind::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
                    EventErrorKind::Malformed => (StatusCode::BAD_REQUEST, "invalid_event"),
                    EventErrorKind::TimedOut => (StatusCode::REQUEST_TIMEOUT, "timeout"),
                };
                let body = json!({ "error": { "code": code, "field": e.field, "message": e.to_string() } });
                (status, Json(body)).into_response()
            }
            ApiError::Unauthorized => {
                let body = json!({ "error": { "code": "unauthorized", "field": "Authorization", "message": "a valid bearer token is required" } });
                (StatusCode::UNAUTHORIZED, Json(body)).into_response()
            }
            ApiError::RetryLater { reason, after } => {
                let body = json!({ "error": { "code": "retry_later", "message": reason } });
                let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
                let secs = after.as_secs().max(1).to_string();
                if let Ok(v) = HeaderValue::from_str(&secs) {
                    response.headers_mut().insert(RETRY_AFTER, v);
                }
                response
            }
        }
    }
}
