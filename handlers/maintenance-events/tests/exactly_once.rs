//! Exactly-once delivery under at-least-once, unordered, concurrent event delivery. Every
//! behaviour runs against both state backends: a directory, and Azure Blob Storage (Azurite,
//! started by the test). Emails are counted at a real SMTP server.
// Test and bench code: an unwrap that fails is the test failing, with its message.
#![allow(clippy::unwrap_used)]

use std::{
    net::TcpListener,
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use integration_tests::{azurite::Azurite, example, http, pipeline, root, smtp::SmtpSink, spawn_handler};
use patchwatch_state::history::History;
use patchwatch_state::ledger::DeliveryState;
use patchwatch_state::ledger::Ledger;
use patchwatch_state::store;
use patchwatch_state::store::StateStore;
use serde_json::Value;

/// Tests `name::file` and `name::blob` running `name(Backend)` against each state backend.
macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            use super::Backend;

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn file() {
                super::$name(Backend::File).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn blob() {
                super::$name(Backend::Blob).await;
            }
        }
    };
}

/// A state store URL for one test, and what keeps it alive.
struct Store {
    url: String,
    _azurite: Option<Azurite>,
    _dir: Option<tempfile::TempDir>,
}

#[derive(Clone, Copy, Debug)]
enum Backend {
    File,
    Blob,
}

async fn store(backend: Backend) -> Store {
    match backend {
        Backend::File => {
            let dir = tempfile::tempdir().unwrap();
            Store { url: format!("file://{}", dir.path().display()), _azurite: None, _dir: Some(dir) }
        }
        Backend::Blob => {
            let azurite = Azurite::start();
            let url = azurite.container("patchwatch").await;
            Store { url, _azurite: Some(azurite), _dir: None }
        }
    }
}

fn snapshot() -> String {
    root().join("examples/snapshot.json").display().to_string()
}

fn handler_pipeline(smtp: &str, state: &str, lease: &str) -> patchwatch_engine::pipeline::Pipeline {
    pipeline(&[
        ("PATCHWATCH_SMTP_URL", smtp),
        ("PATCHWATCH_MAIL_TO", "ops@example.com"),
        ("PATCHWATCH_SNAPSHOT", &snapshot()),
        ("PATCHWATCH_STATE", state),
        ("PATCHWATCH_LEASE_SECONDS", lease),
    ])
}

/// Posts the example post event; returns the status and the first event's outcome.
async fn deliver(base: &str) -> (u16, String) {
    let resp = http()
        .post(format!("{base}/api/events"))
        .header("content-type", "application/json")
        .body(example("events/post-maintenance.json"))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    let outcome = match status {
        200 => body["events"][0]["outcome"].as_str().unwrap().to_owned(),
        _ => body["error"]["code"].as_str().unwrap_or("?").to_owned(),
    };
    (status, outcome)
}

async fn concurrent_deliveries_send_one_email(backend: Backend) {
    let store = store(backend).await;
    let sink = SmtpSink::start();
    // Five handler instances (separate pipelines and ledgers) sharing one store.
    let mut bases = Vec::new();
    for _ in 0..5 {
        bases.push(format!("http://{}", spawn_handler(handler_pipeline(&sink.url(), &store.url, "300")).await));
    }
    let attempts = 50;
    let calls = (0..attempts).map(|i| {
        let base = bases[i % bases.len()].clone();
        tokio::spawn(async move { deliver(&base).await })
    });
    let results: Vec<(u16, String)> = futures::future::join_all(calls).await.into_iter().map(Result::unwrap).collect();
    let sent = results.iter().filter(|(_, o)| o == "sent").count();
    for (status, outcome) in &results {
        assert!(
            (*status == 200 && (outcome == "sent" || outcome == "duplicate"))
                || (*status == 503 && outcome == "retry_later"),
            "{backend:?}: unexpected answer {status} {outcome}"
        );
    }
    let duplicates = results.iter().filter(|(_, o)| o == "duplicate").count();
    eprintln!(
        "{backend:?}: {attempts} concurrent deliveries: {sent} sent, {duplicates} duplicate, {} retry later",
        attempts - sent - duplicates
    );
    assert_eq!(sent, 1, "{backend:?}: exactly one delivery sends: {results:?}");
    // Event Grid redelivers the ones told to retry: all of them are duplicates now.
    for base in &bases {
        assert_eq!(deliver(base).await, (200, "duplicate".to_owned()));
    }
    assert_eq!(sink.wait_for(1).len(), 1, "{backend:?}: one email at the SMTP server");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.messages().len(), 1, "{backend:?}: no second email arrived");
}

both_backends!(concurrent_deliveries_send_one_email);

async fn smtp_down_twice_then_up_sends_once(backend: Backend) {
    let store = store(backend).await;
    let port = integration_tests::smtp::free_port();
    let base = format!(
        "http://{}",
        spawn_handler(handler_pipeline(&format!("smtp://127.0.0.1:{port}"), &store.url, "300")).await
    );
    for _ in 0..2 {
        assert_eq!(deliver(&base).await, (503, "retry_later".to_owned()), "{backend:?}: SMTP down is retry later");
    }
    let sink = SmtpSink::start_on(port);
    assert_eq!(deliver(&base).await, (200, "sent".to_owned()));
    assert_eq!(deliver(&base).await, (200, "duplicate".to_owned()));
    assert_eq!(sink.wait_for(1).len(), 1);
    let ledger = Ledger::new(store::open(&store.url, None).unwrap(), Duration::from_secs(300));
    let records = ledger.list(None).await.unwrap();
    let email: Vec<_> = records.iter().filter(|r| r.target == "default.email").collect();
    assert_eq!(email.len(), 1, "{records:?}");
    assert_eq!((email[0].state, email[0].attempts), (DeliveryState::Sent, 3), "{backend:?}: {records:?}");
    // The sent summary left a compact run record behind.
    let history = History::new(ledger.store().clone(), 400);
    let runs = history.runs("Ring2-Prod").await.unwrap();
    assert_eq!(runs.len(), 1, "{backend:?}");
    assert_eq!((runs[0].verdict.as_str(), runs[0].total, runs[0].failed), ("Failed", 40, 4));
}

both_backends!(smtp_down_twice_then_up_sends_once);

/// A sender killed between claim and send: its claim expires after the lease and the next
/// delivery sends exactly once.
async fn killed_sender_is_taken_over_after_the_lease(backend: Backend) {
    let store = store(backend).await;
    // An SMTP server that accepts connections and never answers: the sender hangs after claiming.
    let blackhole = TcpListener::bind("127.0.0.1:0").unwrap();
    let hole = blackhole.local_addr().unwrap();
    let _held = std::thread::spawn(move || {
        let mut conns = Vec::new();
        for c in blackhole.incoming().take(4) {
            conns.push(c);
        }
        std::thread::sleep(Duration::from_secs(60));
    });
    let state_dir = tempfile::tempdir().unwrap();
    let port = integration_tests::smtp::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_maintenance-events"))
        .env_clear()
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("PATCHWATCH_SMTP_URL", format!("smtp://{hole}"))
        .env("PATCHWATCH_MAIL_TO", "ops@example.com")
        .env("PATCHWATCH_SNAPSHOT", snapshot())
        .env("PATCHWATCH_STATE", &store.url)
        .env("PATCHWATCH_LEASE_SECONDS", "3")
        .env("HOME", state_dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while http().get(format!("{base}/api/health")).send().await.is_err() {
        assert!(Instant::now() < deadline, "handler did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Fire the delivery; it hangs in SMTP after the claim is written.
    let hung = tokio::spawn(async move {
        let _ = reqwest::Client::new()
            .post(format!("{base}/api/events"))
            .header("content-type", "application/json")
            .body(example("events/post-maintenance.json"))
            .send()
            .await;
    });
    let ledger = Ledger::new(store::open(&store.url, None).unwrap(), Duration::from_secs(3));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let records = ledger.list(None).await.unwrap();
        if records.iter().any(|r| r.state == DeliveryState::Claimed) {
            break;
        }
        assert!(Instant::now() < deadline, "the sender never claimed the delivery");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    hung.abort();

    let sink = SmtpSink::start();
    let base = format!("http://{}", spawn_handler(handler_pipeline(&sink.url(), &store.url, "3")).await);
    assert_eq!(
        deliver(&base).await,
        (503, "retry_later".to_owned()),
        "{backend:?}: the dead sender's lease still holds"
    );
    tokio::time::sleep(Duration::from_millis(3200)).await;
    assert_eq!(deliver(&base).await, (200, "sent".to_owned()), "{backend:?}: the expired claim is taken over");
    assert_eq!(deliver(&base).await, (200, "duplicate".to_owned()));
    assert_eq!(sink.wait_for(1).len(), 1);
    let records = ledger.list(None).await.unwrap();
    let email = records.iter().find(|r| r.target == "default.email").unwrap();
    assert_eq!((email.state, email.attempts), (DeliveryState::Sent, 2));
}

both_backends!(killed_sender_is_taken_over_after_the_lease);

/// Conflicting concurrent writes: compare-and-swap never loses an update, create has one winner.
async fn concurrent_writes_lose_nothing(backend: Backend) {
    let store = store(backend).await;
    let s: Arc<dyn StateStore> = store::open(&store.url, None).unwrap();
    let winners = Arc::new(AtomicUsize::new(0));
    let creates = (0..20).map(|i| {
        let (s, winners) = (s.clone(), winners.clone());
        tokio::spawn(async move {
            if s.create("race/created", format!("{i}").as_bytes()).await.unwrap().is_some() {
                winners.fetch_add(1, Ordering::SeqCst);
            }
        })
    });
    futures::future::join_all(creates).await;
    assert_eq!(winners.load(Ordering::SeqCst), 1, "{backend:?}: exactly one create wins");

    s.create("race/counter", b"0").await.unwrap().unwrap();
    let writers = (0..10).map(|_| {
        let s = s.clone();
        tokio::spawn(async move {
            for _ in 0..10 {
                loop {
                    let current = s.get("race/counter").await.unwrap().unwrap();
                    let n: u64 = String::from_utf8(current.data).unwrap().parse().expect("the value is never torn");
                    if s.replace("race/counter", (n + 1).to_string().as_bytes(), &current.etag).await.unwrap().is_some()
                    {
                        break;
                    }
                }
            }
        })
    });
    for w in futures::future::join_all(writers).await {
        w.unwrap();
    }
    let v = s.get("race/counter").await.unwrap().unwrap();
    assert_eq!(String::from_utf8(v.data).unwrap(), "100", "{backend:?}: no update lost");
    assert!(!s.delete("race/counter", Some("stale-etag")).await.unwrap());
    assert!(s.delete("race/counter", Some(&v.etag)).await.unwrap());
    assert_eq!(s.list("race/").await.unwrap(), ["race/created"]);
}

both_backends!(concurrent_writes_lose_nothing);

/// A store that cannot be reached is "retry later", never "done", and nothing is sent.
async fn unreachable_store_is_retry_later(url: String) {
    let sink = SmtpSink::start();
    let base = format!("http://{}", spawn_handler(handler_pipeline(&sink.url(), &url, "300")).await);
    let started = Instant::now();
    assert_eq!(deliver(&base).await, (503, "retry_later".to_owned()));
    assert!(started.elapsed() < Duration::from_secs(25), "must answer within Event Grid's 30 s");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(sink.messages().is_empty(), "nothing may be sent without the ledger");
}

#[tokio::test]
async fn unreachable_store_is_retry_later_file() {
    // A path under a regular file can never be created.
    let file = tempfile::NamedTempFile::new().unwrap();
    unreachable_store_is_retry_later(format!("file://{}/state", file.path().display())).await;
}

#[tokio::test]
async fn unreachable_store_is_retry_later_blob() {
    let port = integration_tests::smtp::free_port();
    let azurite_gone = format!(
        "http://127.0.0.1:{port}/devstoreaccount1/patchwatch?sv=2022-11-02&sr=c&sp=racwdl&se=2099-01-01T00%3A00%3A00Z&sig=x"
    );
    unreachable_store_is_retry_later(azurite_gone).await;
}
