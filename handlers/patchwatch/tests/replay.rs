//! `patchwatch replay` end to end: ten replays of one post event against one state store
//! produce one email at a real SMTP server; `patchwatch deliveries` shows it.
// Test and bench code: an unwrap that fails is the test failing, with its message.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use integration_tests::{azurite::Azurite, root, smtp::SmtpSink};

fn replay_ten_times(state: &str) {
    let sink = SmtpSink::start();
    let home = tempfile::tempdir().unwrap();
    let event = root().join("examples/events/post-maintenance.json");
    let snapshot = root().join("examples/snapshot.json");
    for i in 0..10 {
        let out = Command::new(env!("CARGO_BIN_EXE_patchwatch"))
            .env_clear()
            .env("HOME", home.path())
            .env("PATCHWATCH_SMTP_URL", sink.url())
            .env("PATCHWATCH_MAIL_TO", "ops@example.com")
            .arg("replay")
            .arg(&event)
            .arg("--snapshot")
            .arg(&snapshot)
            .args(["--state", state])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "replay {i}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        if i == 0 {
            assert!(stdout.contains("default.email sent: SMTP to ops@example.com"), "{stdout}");
        } else {
            assert!(stdout.contains("Already delivered at"), "replay {i}: {stdout}");
        }
    }
    assert_eq!(sink.wait_for(1).len(), 1);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(sink.messages().len(), 1, "ten replays, one email");

    let out = Command::new(env!("CARGO_BIN_EXE_patchwatch"))
        .env_clear()
        .env("HOME", home.path())
        .args(["deliveries", "--run", "20261110220000", "--state", state])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    // A header, the email, and the run's "every notification delivered" record.
    assert_eq!(listing.lines().count(), 3, "{listing}");
    assert!(
        listing.contains("Ring2-Prod") && listing.contains(" sent ") && listing.contains("SMTP to ops@example.com"),
        "{listing}"
    );
}

#[test]
fn replay_ten_times_sends_one_email_file() {
    let dir = tempfile::tempdir().unwrap();
    replay_ten_times(&format!("file://{}", dir.path().display()));
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_ten_times_sends_one_email_blob() {
    let azurite = Azurite::start();
    let url = azurite.container("patchwatch").await;
    tokio::task::spawn_blocking(move || replay_ten_times(&url)).await.unwrap();
}

#[test]
fn simulate_then_replay_a_run_with_every_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Command::new(env!("CARGO_BIN_EXE_patchwatch"))
        .args(["simulate", "--machines", "300", "--seed", "5", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(sim.status.success());
    let out = Command::new(env!("CARGO_BIN_EXE_patchwatch"))
        .env_clear()
        .env("HOME", dir.path())
        .arg("replay")
        .arg(dir.path().join("post-maintenance.json"))
        .arg("--snapshot")
        .arg(dir.path().join("snapshot.json"))
        .arg("--outbox")
        .arg(dir.path().join("outbox"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.starts_with("Ring2-Prod: Failed — "), "{stdout}");
    for label in ["Failed", "No result", "Window exceeded", "Reboot pending", "Succeeded"] {
        assert!(stdout.contains(label), "{label} missing: {stdout}");
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_patchwatch")).args(["replay", "/nonexistent.json"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
