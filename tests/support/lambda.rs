//! A minimal AWS Lambda Runtime API on loopback (the `2018-06-01` interface a custom runtime
//! polls): `GET /runtime/invocation/next` hands out queued events with the documented
//! `Lambda-Runtime-*` headers, `POST /runtime/invocation/{id}/response` and `…/error` take the
//! answers, `POST /runtime/init/error` records a failed start. Enough to run a real binary's
//! `lambda_http` path the way Lambda does.

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};
use tokio::sync::Notify;

#[derive(Default)]
struct Inner {
    queue: VecDeque<(String, Value)>,
    answers: HashMap<String, Result<Value, Value>>,
    init_error: Option<Value>,
    next: u64,
}

#[derive(Clone, Default)]
pub struct LambdaEmulator {
    inner: Arc<Mutex<Inner>>,
    queued: Arc<Notify>,
    answered: Arc<Notify>,
    pub addr: Option<SocketAddr>,
}

impl LambdaEmulator {
    pub async fn start() -> Self {
        let mut emulator = LambdaEmulator::default();
        let router = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(emulator.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        emulator.addr = Some(listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        emulator
    }

    /// `AWS_LAMBDA_RUNTIME_API` for the function process.
    pub fn runtime_api(&self) -> String {
        self.addr.unwrap().to_string()
    }

    /// Queues `event` and waits for the function's answer (`Err` for an invocation error).
    pub async fn invoke(&self, event: Value) -> Result<Value, Value> {
        let id = {
            let mut inner = self.inner.lock().unwrap();
            inner.next += 1;
            let id = format!("req-{:04}", inner.next);
            inner.queue.push_back((id.clone(), event));
            id
        };
        self.queued.notify_one();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let notified = self.answered.notified();
            {
                let inner = self.inner.lock().unwrap();
                if let Some(answer) = inner.answers.get(&id) {
                    return answer.clone();
                }
                if let Some(e) = &inner.init_error {
                    return Err(e.clone());
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("the function did not answer invocation {id} within 30 s");
            }
        }
    }

    pub fn init_error(&self) -> Option<Value> {
        self.inner.lock().unwrap().init_error.clone()
    }
}

async fn next(State(e): State<LambdaEmulator>) -> Response {
    loop {
        let notified = e.queued.notified();
        if let Some((id, event)) = e.inner.lock().unwrap().queue.pop_front() {
            let deadline = (time::OffsetDateTime::now_utc().unix_timestamp() + 30) * 1000;
            let mut headers = HeaderMap::new();
            headers.insert("lambda-runtime-aws-request-id", HeaderValue::from_str(&id).unwrap());
            headers.insert("lambda-runtime-deadline-ms", HeaderValue::from_str(&deadline.to_string()).unwrap());
            headers.insert(
                "lambda-runtime-invoked-function-arn",
                HeaderValue::from_static("arn:aws:lambda:eu-west-1:123456789012:function:patchwatch-events"),
            );
            headers.insert(
                "lambda-runtime-trace-id",
                HeaderValue::from_static("Root=1-67891233-abcdef012345678912345678;Sampled=1"),
            );
            headers.insert("content-type", HeaderValue::from_static("application/json"));
            return (StatusCode::OK, headers, event.to_string()).into_response();
        }
        notified.await;
    }
}

fn json_of(body: &Bytes) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|_| json!({ "raw": String::from_utf8_lossy(body) }))
}

async fn response(State(e): State<LambdaEmulator>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    e.inner.lock().unwrap().answers.insert(id, Ok(json_of(&body)));
    e.answered.notify_waiters();
    StatusCode::ACCEPTED
}

async fn error(State(e): State<LambdaEmulator>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    e.inner.lock().unwrap().answers.insert(id, Err(json_of(&body)));
    e.answered.notify_waiters();
    StatusCode::ACCEPTED
}

async fn init_error(State(e): State<LambdaEmulator>, body: Bytes) -> StatusCode {
    e.inner.lock().unwrap().init_error = Some(json_of(&body));
    e.answered.notify_waiters();
    StatusCode::ACCEPTED
}

/// A Lambda function URL / API Gateway HTTP API (payload format 2.0) request event.
pub fn http_event(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Value {
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| ((*k).to_ascii_lowercase(), json!(v)))
        .chain([("host".to_owned(), json!("abcdefg.lambda-url.eu-west-1.on.aws"))])
        .collect();
    json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": "abcdefg", "domainName": "abcdefg.lambda-url.eu-west-1.on.aws",
            "domainPrefix": "abcdefg", "http": { "method": method, "path": path, "protocol": "HTTP/1.1",
            "sourceIp": "203.0.113.10", "userAgent": "aeg/1.0" }, "requestId": "11111111-2222-3333-4444-555555555555",
            "routeKey": "$default", "stage": "$default", "time": "22/Nov/2026:07:00:00 +0000", "timeEpoch": 1795330800000u64
        },
        "body": body, "isBase64Encoded": false
    })
}
