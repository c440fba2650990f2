//! The one error answer at the HTTP edge: `{"error": {"code", "message", "field"?}}` with the
//! status, and `Retry-After` when the caller should come back. Every handler's errors become
//! an [`ApiError`] exactly once, here.

use std::time::Duration;

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header::RETRY_AFTER},
    response::{IntoResponse, Response},
};
use serde_json::json;

use patchwatch_model::event::{EventError, EventErrorKind};

/// An HTTP error answer. Client errors are not logged here (the caller logs them once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// A stable machine-readable code: `invalid_event`, `unauthorized`, `retry_later`, …
    pub code: &'static str,
    /// The request field at fault, when there is one.
    pub field: Option<String>,
    pub message: String,
    /// Sent as `Retry-After` (whole seconds, at least 1).
    pub retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, field: None, message: message.into(), retry_after: None }
    }

    /// Names the request field at fault.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Bad input: 400, 413 when too large, 408 when too slow. Upstreams do not retry these.
    pub fn rejected(e: EventError) -> Self {
        let (status, code) = match e.kind {
            EventErrorKind::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            EventErrorKind::Malformed => (StatusCode::BAD_REQUEST, "invalid_event"),
            EventErrorKind::TimedOut => (StatusCode::REQUEST_TIMEOUT, "timeout"),
        };
        Self::new(status, code, e.to_string()).field(e.field)
    }

    /// 503 with `Retry-After`: the upstream's own retry does the waiting.
    pub fn retry_later(reason: impl Into<String>, after: Duration) -> Self {
        Self { retry_after: Some(after), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "retry_later", reason) }
    }

    /// 401: the caller did not prove who it is. Nothing was processed.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "a valid bearer token is required").field("Authorization")
    }
}

impl From<EventError> for ApiError {
    fn from(e: EventError) -> Self {
        Self::rejected(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match &self.field {
            Some(field) => json!({ "error": { "code": self.code, "field": field, "message": self.message } }),
            None => json!({ "error": { "code": self.code, "message": self.message } }),
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(after) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&after.as_secs().max(1).to_string())
        {
            response.headers_mut().insert(RETRY_AFTER, v);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_carry_code_field_and_retry_after() {
        let r = ApiError::rejected(EventError::malformed("data.correlationId", "is not a run id")).into_response();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let r = ApiError::retry_later("state store down", Duration::from_millis(200)).into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[RETRY_AFTER], "1", "at least a second");
        let body = axum::body::to_bytes(r.into_body(), 1024).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "retry_later");
        assert!(v["error"].get("field").is_none());
    }
}
