//! Bounded HTTP serving: every listener (the custom-handler port, `patchwatch serve`) cuts
//! connections that send their headers or body too slowly, caps body sizes, refuses work
//! beyond a concurrency limit with 503, and answers the router's errors as JSON (hyper's own
//! connection-level refusals, such as 431 for oversized headers, stay hyper's).
//!
//! Lambda has no listener of its own (the runtime hands over whole requests), but the same
//! router layers apply there too.

use std::{
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::Request,
    http::{HeaderValue, Method, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use http_body::{Body as HttpBody, Frame};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use patchwatch_model::event::{EventError, EventErrorKind};

/// How a listener bounds the work its callers can make it do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// Time a client has to send a request's headers (also closes idle keep-alive connections).
    pub header_timeout: Duration,
    /// Time a client has to send a request's whole body.
    pub body_timeout: Duration,
    /// Requests processed at once; more answer 503 with `Retry-After` (health is exempt).
    pub max_in_flight: usize,
    /// Largest body any route accepts; routes may accept less.
    pub max_body: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(20),
            // 64 × a 4 MiB body at most is 256 MiB of buffered requests per instance.
            max_in_flight: 64,
            max_body: patchwatch_model::event::MAX_BODY_BYTES,
        }
    }
}

/// A bad limit setting, naming the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: expected {expected}, got {value:?}")]
pub struct LimitError {
    pub name: &'static str,
    pub expected: &'static str,
    pub value: String,
}

impl ServerLimits {
    /// `PATCHWATCH_HEADER_TIMEOUT_SECONDS` (1–300), `PATCHWATCH_BODY_TIMEOUT_SECONDS` (1–300),
    /// `PATCHWATCH_MAX_IN_FLIGHT` (1–10000); unset means the default.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, LimitError> {
        let d = Self::default();
        let number = |name: &'static str, max: u64, default: u64| -> Result<u64, LimitError> {
            match lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
                None => Ok(default),
                Some(v) => v.parse::<u64>().ok().filter(|n| (1..=max).contains(n)).ok_or(LimitError {
                    name,
                    expected: if max == 300 { "whole seconds from 1 to 300" } else { "a number from 1 to 10000" },
                    value: v,
                }),
            }
        };
        Ok(Self {
            header_timeout: Duration::from_secs(number(
                "PATCHWATCH_HEADER_TIMEOUT_SECONDS",
                300,
                d.header_timeout.as_secs(),
            )?),
            body_timeout: Duration::from_secs(number(
                "PATCHWATCH_BODY_TIMEOUT_SECONDS",
                300,
                d.body_timeout.as_secs(),
            )?),
            max_in_flight: number("PATCHWATCH_MAX_IN_FLIGHT", 10_000, d.max_in_flight as u64)? as usize,
            max_body: d.max_body,
        })
    }
}

/// Wraps `router` in the limits that do not need the listener: body size and time, the
/// concurrency limit, and JSON for every error answer.
pub fn bounded(router: Router, limits: &ServerLimits) -> Router {
    let gate = Arc::new(Semaphore::new(limits.max_in_flight.max(1)));
    let (max_body, body_timeout) = (limits.max_body, limits.body_timeout);
    // Outermost first: JSON errors, then the concurrency limit (reading a body counts as work),
    // then the body bounds.
    router
        .layer(middleware::from_fn(move |req: Request, next: Next| async move {
            bound_body(req, next, max_body, body_timeout).await
        }))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            let gate = gate.clone();
            async move { in_flight(gate, req, next).await }
        }))
        .layer(middleware::from_fn(json_errors))
}

/// `GET /api/health` answers whatever the load (it reads no body and does no work).
fn is_health(req: &Request) -> bool {
    req.method() == Method::GET && req.uri().path() == "/api/health"
}

async fn in_flight(gate: Arc<Semaphore>, req: Request, next: Next) -> Response {
    if is_health(&req) {
        return next.run(req).await;
    }
    match gate.try_acquire_owned() {
        Ok(_permit) => next.run(req).await,
        Err(_) => {
            warn!("Busy: request refused beyond the concurrency limit.");
            let body =
                json!({ "error": { "code": "busy", "message": "too many requests in progress; retry shortly" } });
            let mut r = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            // The body is left unread: the connection cannot carry another request.
            r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            r
        }
    }
}

/// Reads the whole body here, within `max` bytes and the `within` deadline, and hands the
/// handler the bytes: handlers parse whole bodies anyway, and a body refused half-read would
/// make the kernel reset the connection before the caller could read the 413. So an oversize
/// body is read on (and discarded, up to [`DRAIN_LIMIT`]) before the 413 goes out.
async fn bound_body(req: Request, next: Next, max: usize, within: Duration) -> Response {
    // Health takes no body: one is refused at once, never read (health skips the concurrency
    // limit, so reading would let anyone make the instance buffer bodies without bound).
    let (max, drain) = if is_health(&req) { (0, 0) } else { (max, DRAIN_LIMIT) };
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    // A client waiting for `100 Continue` has sent nothing yet: refusing now costs nothing.
    let waits = req.headers().get(header::EXPECT).is_some();
    if declared.is_some_and(|n| n > drain as u64 || (waits && n > max as u64)) {
        return too_large(max).into_response();
    }
    let (parts, body) = req.into_parts();
    let mut body = Deadline::new(body, within);
    // Capacity grows with what arrives, not with what the caller declares.
    let mut kept: Vec<u8> = Vec::with_capacity(declared.map_or(0, |n| n.min(64 * 1024)) as usize);
    let mut seen = 0usize;
    loop {
        match std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            None => break,
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else { continue };
                seen = seen.saturating_add(data.len());
                if seen > drain {
                    return too_large(max).into_response();
                }
                if seen <= max {
                    kept.extend_from_slice(&data);
                }
            }
            Some(Err(e)) => {
                let error = if e.is::<TooSlow>() {
                    EventError { kind: EventErrorKind::TimedOut, field: "body".into(), problem: TooSlow.to_string() }
                } else {
                    EventError::malformed("body", format!("could not be read: {e}"))
                };
                return crate::error::ApiError::rejected(error).into_response();
            }
        }
    }
    if seen > max {
        return too_large(max).into_response();
    }
    next.run(Request::from_parts(parts, Body::from(kept))).await
}

/// Most bytes of an oversize body read (and discarded) so the caller can read its 413; past
/// this the connection is simply closed.
const DRAIN_LIMIT: usize = 16 * 1024 * 1024;

fn too_large(max: usize) -> crate::error::ApiError {
    crate::error::ApiError::rejected(body_too_large(max))
}

fn body_too_large(max: usize) -> EventError {
    EventError {
        kind: EventErrorKind::TooLarge,
        field: "body".into(),
        problem: format!("body is larger than the {max}-byte limit"),
    }
}

/// Reads a whole body up to a route's own `max` bytes: 413 beyond it, 400 for anything else
/// that breaks the read. Behind [`bounded`] the body is already in memory, read within the
/// listener's size and time limits; this applies the route's (smaller) limit.
pub async fn read_body(body: Body, max: usize) -> Result<Bytes, EventError> {
    let limited = http_body_util::Limited::new(body, max);
    http_body_util::BodyExt::collect(limited).await.map(http_body_util::Collected::to_bytes).map_err(|e| {
        if e.is::<http_body_util::LengthLimitError>() {
            body_too_large(max)
        } else {
            EventError::malformed("body", format!("could not be read: {e}"))
        }
    })
}

/// Every error answer is JSON in the one shape (`{"error": {"code", "message", "field"?}}`),
/// including the ones axum and hyper produce themselves (unknown route, wrong method, a
/// body-limit rejection).
async fn json_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    // A page written for a person (the one-click confirmation pages) says what went wrong itself.
    let is_page = response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_json || is_page {
        return response;
    }
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::SERVICE_UNAVAILABLE => "retry_later",
        s if s.is_client_error() => "invalid_request",
        _ => "internal",
    };
    let mut message = status.canonical_reason().unwrap_or("error").to_owned();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        message = "body is larger than this route accepts".to_owned();
    }
    let mut body = json!({ "error": { "code": code, "message": message } });
    if matches!(status, StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT) {
        body["error"]["field"] = json!("body");
    }
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Response::from_parts(parts, Body::from(body.to_string()))
}

/// A body not received within its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the body was not received in time")]
struct TooSlow;

/// A request body that fails once its deadline passes, however the bytes trickle in (a
/// per-read timeout would let one byte every few seconds hold a request forever).
struct Deadline {
    inner: Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Deadline {
    fn new(inner: Body, within: Duration) -> Self {
        Self { inner, sleep: Box::pin(tokio::time::sleep(within)) }
    }
}

impl HttpBody for Deadline {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(TooSlow.into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `router` (already [`bounded`]) on `listener` until `shutdown` completes: HTTP/1.1
/// with a header read timeout, each connection in a task of its own.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: &ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let service = hyper_util::service::TowerToHyperService::new(router);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little instead of spinning.
                    warn!(error = %e, "Accept failed.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let connection = http.serve_connection(TokioIo::new(stream), service.clone());
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                debug!(%peer, error = %e, "Connection ended.");
            }
        });
    }
    drop(listener);
    info!("Draining open connections.");
    tokio::select! {
        () = graceful.shutdown() => {},
        () = tokio::time::sleep(Duration::from_secs(10)) => warn!("Connections still open after 10 s; stopping."),
    }
    Ok(())
}

/// Binds `addr` and serves until SIGINT or SIGTERM.
pub async fn serve_on(
    router: Router,
    addr: SocketAddr,
    limits: &ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> Result<(), crate::runtime::RuntimeError> {
    use crate::runtime::RuntimeError;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| RuntimeError::Bind { addr, source })?;
    info!(%addr, "Listening.");
    serve(listener, bounded(router, limits), limits, shutdown).await.map_err(RuntimeError::Serve)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_read_and_checked() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
        };
        assert_eq!(ServerLimits::from_lookup(vars(&[])).unwrap(), ServerLimits::default());
        let l = ServerLimits::from_lookup(vars(&[
            ("PATCHWATCH_HEADER_TIMEOUT_SECONDS", "2"),
            ("PATCHWATCH_MAX_IN_FLIGHT", "3"),
        ]))
        .unwrap();
        assert_eq!((l.header_timeout, l.max_in_flight), (Duration::from_secs(2), 3));
        let e = ServerLimits::from_lookup(vars(&[("PATCHWATCH_BODY_TIMEOUT_SECONDS", "0")])).unwrap_err();
        assert_eq!(e.name, "PATCHWATCH_BODY_TIMEOUT_SECONDS");
        assert!(ServerLimits::from_lookup(vars(&[("PATCHWATCH_MAX_IN_FLIGHT", "many")])).is_err());
    }
}
