//! The listeners bound what a caller can make them do, tested against the real binaries on the
//! custom-handler port over real TCP: slow headers and slow bodies are cut at their deadlines
//! while health keeps answering, work beyond the concurrency limit is refused with 503, and
//! every route answers an oversize body with the JSON 413.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use integration_tests::{process::binary, root, smtp::free_port};
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

struct Handler {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Handler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
const BODY_TIMEOUT: Duration = Duration::from_secs(2);

/// Starts `name` as the Functions host would, with short deadlines.
async fn start(name: &str, extra: &[(&str, &str)]) -> Handler {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cmd = Command::new(binary(name));
    cmd.env_clear()
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("PATCHWATCH_OUTBOX", dir.path().join("outbox"))
        .env("PATCHWATCH_STATE", format!("file://{}", dir.path().join("state").display()))
        .env("PATCHWATCH_SNAPSHOT", root().join("examples/snapshot.json"))
        .env("PATCHWATCH_HEADER_TIMEOUT_SECONDS", HEADER_TIMEOUT.as_secs().to_string())
        .env("PATCHWATCH_BODY_TIMEOUT_SECONDS", BODY_TIMEOUT.as_secs().to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    let handler = Handler { child, port, _dir: dir };
    let deadline = Instant::now() + Duration::from_secs(20);
    while health(port).await != Some(200) {
        assert!(Instant::now() < deadline, "{name} did not answer /api/health within 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    handler
}

async fn health(port: u16) -> Option<u16> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().ok()?;
    let r = client.get(format!("http://127.0.0.1:{port}/api/health")).send().await.ok()?;
    Some(r.status().as_u16())
}

/// Waits until the server closes `stream` (EOF or reset); returns what it sent first.
async fn until_closed(mut stream: TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(limit, read).await.ok().map(|()| got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_slow_connections_are_cut_within_the_header_timeout_while_health_answers() {
    let h = start("maintenance-events", &[]).await;
    let opened = Instant::now();
    let mut conns = Vec::new();
    for _ in 0..1000 {
        let mut s = TcpStream::connect(("127.0.0.1", h.port)).await.unwrap();
        // Headers that never finish (slowloris).
        s.write_all(b"POST /api/events HTTP/1.1\r\nHost: patchwatch\r\nX-Slow: ").await.unwrap();
        conns.push(s);
    }
    let all_open = opened.elapsed();
    // Health answers while all of them hang.
    for _ in 0..5 {
        assert_eq!(health(h.port).await, Some(200), "health must answer while 1,000 connections hang");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let limit = HEADER_TIMEOUT + all_open + Duration::from_millis(1500);
    let waits: Vec<_> = conns.into_iter().map(|s| tokio::spawn(until_closed(s, limit))).collect();
    let mut cut = 0;
    for w in waits {
        if w.await.unwrap().is_some() {
            cut += 1;
        }
    }
    let took = opened.elapsed();
    assert_eq!(cut, 1000, "every slow connection is cut (took {took:?}, limit {limit:?})");
    assert!(took <= limit + Duration::from_millis(500), "cut after {took:?}");
    assert_eq!(health(h.port).await, Some(200));
    println!(
        "1000 slow connections opened in {all_open:?}, all cut after {took:?} (header timeout {HEADER_TIMEOUT:?})"
    );
}

/// Sends complete headers and part of a declared body, then nothing.
async fn trickle(port: u16, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: patchwatch\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n[{{\"id\":"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s
}

fn status_and_json(raw: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(raw);
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_trickles_in_is_cut_at_the_body_deadline_with_a_json_408() {
    let h = start("maintenance-events", &[]).await;
    let started = Instant::now();
    let s = trickle(h.port, "/api/events").await;
    let raw = until_closed(s, BODY_TIMEOUT + Duration::from_secs(3)).await.expect("the slow body is cut");
    let took = started.elapsed();
    let (status, body) = status_and_json(&raw);
    assert_eq!(status, 408, "{}", String::from_utf8_lossy(&raw));
    assert_eq!((body["error"]["code"].as_str(), body["error"]["field"].as_str()), (Some("timeout"), Some("body")));
    assert!(took >= BODY_TIMEOUT && took < BODY_TIMEOUT + Duration::from_secs(2), "cut after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_beyond_the_concurrency_limit_answers_503_and_health_still_answers() {
    let h = start("maintenance-events", &[("PATCHWATCH_MAX_IN_FLIGHT", "2")]).await;
    // Two requests hold the two permits while their bodies trickle in.
    let held = [trickle(h.port, "/api/events").await, trickle(h.port, "/api/events").await];
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r =
        reqwest::Client::new().post(format!("http://127.0.0.1:{}/api/events", h.port)).body("[]").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(r.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "busy");
    assert_eq!(health(h.port).await, Some(200), "health is not counted against the limit");
    drop(held);
    // Once the held requests end, work is accepted again.
    tokio::time::sleep(BODY_TIMEOUT + Duration::from_millis(500)).await;
    let r =
        reqwest::Client::new().post(format!("http://127.0.0.1:{}/api/events", h.port)).body("[]").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400, "an empty batch is a bad request, no longer busy");
}

/// POSTs `size` bytes to `path`, declared (`Content-Length`) or streamed (chunked).
async fn oversize(port: u16, path: &str, size: usize, chunked: bool) -> (u16, Value) {
    let url = format!("http://127.0.0.1:{port}{path}");
    let data = vec![b' '; size];
    let body = if chunked {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> = data.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
        reqwest::Body::wrap_stream(futures::stream::iter(chunks))
    } else {
        reqwest::Body::from(data)
    };
    let r = reqwest::Client::new().post(url).header("content-type", "application/json").body(body).send().await;
    match r {
        Ok(r) => {
            let status = r.status().as_u16();
            let ctype = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            assert!(ctype.starts_with("application/json"), "{path}: {status} answered {ctype:?}");
            (status, r.json().await.unwrap_or(Value::Null))
        }
        Err(e) => panic!("{path}: no answer to an oversize body: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_an_oversize_body_with_the_json_413() {
    let events_app = start("maintenance-events", &[]).await;
    let alerts_app = start("alert-webhook", &[]).await;
    let itsm_app = start(
        "itsm-webhook",
        &[
            ("PATCHWATCH_CONFIG", &root().join("examples/control.toml").display().to_string()),
            ("PATCHWATCH_ITSM_SNOW_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            ("PATCHWATCH_ITSM_RUNBOOK_TOKEN", "runbook-token-0123456789"),
        ],
    )
    .await;
    let big = 4 * 1024 * 1024 + 1;
    let cases = [
        (&events_app, "/api/events", big),
        (&events_app, "/maintenance-event", big),
        (&events_app, "/maintenance-queue", big),
        (&events_app, "/api/health", big),
        (&alerts_app, "/api/alerts", 256 * 1024 + 1),
        (&alerts_app, "/api/health", big),
        (&itsm_app, "/api/itsm", 256 * 1024 + 1),
        (&itsm_app, "/api/health", big),
    ];
    for (app, path, size) in cases {
        for chunked in [false, true] {
            let (status, body) = oversize(app.port, path, size, chunked).await;
            assert_eq!(status, 413, "{path} (chunked: {chunked}): {body}");
            assert_eq!(body["error"]["code"], "too_large", "{path}: {body}");
            assert_eq!(body["error"]["field"], "body", "{path}: {body}");
        }
    }
}
