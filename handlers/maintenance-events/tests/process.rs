//! The real `maintenance-events` binary as the Functions host runs it: started with
//! `FUNCTIONS_CUSTOMHANDLER_PORT`, App Service managed identity (`IDENTITY_ENDPOINT`,
//! `IDENTITY_HEADER`) and Resource Graph faked on 127.0.0.1, called over real TCP.
// Test and bench code: an unwrap that fails is the test failing, with its message.
#![allow(clippy::unwrap_used)]

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use integration_tests::{azurite::Azurite, example, files, graph, smtp::free_port};
use serde_json::json;
use wiremock::{Mock, MockServer, ResponseTemplate, matchers};

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn binary_serves_the_custom_handler_port_with_managed_identity_and_resource_graph() {
    let msi = MockServer::start().await;
    let expires = (time::OffsetDateTime::now_utc().unix_timestamp() + 3600).to_string();
    Mock::given(matchers::method("GET"))
        .and(matchers::path("/msi/token"))
        .and(matchers::query_param("api-version", "2019-08-01"))
        .and(matchers::query_param("resource", "https://management.azure.com"))
        .and(matchers::query_param("client_id", "11111111-2222-3333-4444-555555555555"))
        .and(matchers::header("x-identity-header", "test-secret"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "fake-token", "expires_on": expires, "token_type": "Bearer",
            "resource": "https://management.azure.com", "client_id": "11111111-2222-3333-4444-555555555555"
        })))
        .expect(1)
        .mount(&msi)
        .await;
    let arg = MockServer::start().await;
    graph::mount(&arg, graph::FakeGraph::from_snapshot(&example("snapshot.json"), 5)).await;

    let outbox = tempfile::tempdir().unwrap();
    // On a cloud host the ledger must be shared: Azure Blob Storage (Azurite), by SAS.
    let azurite = Azurite::start();
    let state = azurite.container("patchwatch").await;
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_maintenance-events"))
        .env_clear()
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("IDENTITY_ENDPOINT", format!("{}/msi/token", msi.uri()))
        .env("IDENTITY_HEADER", "test-secret")
        .env("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555")
        .env("PATCHWATCH_ARM_ENDPOINT", arg.uri())
        .env("PATCHWATCH_OUTBOX", outbox.path())
        .env("PATCHWATCH_STATE", &state)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.get(format!("{base}/api/health")).send().await.is_err() {
        assert!(running.0.try_wait().unwrap().is_none(), "handler exited early");
        assert!(Instant::now() < deadline, "handler did not listen within 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let event: serde_json::Value = serde_json::from_str(&example("events/post-maintenance.json")).unwrap();
    let mut answers = Vec::new();
    for _ in 0..2 {
        let body =
            json!({ "Data": { "event": event[0] }, "Metadata": { "sys": { "MethodName": "maintenance-event" } } });
        let resp = client
            .post(format!("{base}/maintenance-event"))
            .header("x-azure-functions-invocationid", "1b4a8cf8-0000-0000-0000-000000000000")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let answer: serde_json::Value = resp.json().await.unwrap();
        answers.push(answer["Logs"][0].as_str().unwrap().to_owned());
    }
    assert!(answers[0].contains("\"sent\""), "{answers:?}");
    assert!(answers[1].contains("\"duplicate\""), "the redelivery must not send again: {answers:?}");
    assert_eq!(files(outbox.path(), "eml").len(), 1);
    // The token was fetched once and cached; Resource Graph saw it on every page.
    msi.verify().await;
    assert!(arg.received_requests().await.unwrap().len() > 5);

    // The invocation id reaches the request span in the handler's log; no token is logged.
    let _ = running.0.kill();
    let _ = running.0.wait();
    let mut log = String::new();
    std::io::Read::read_to_string(&mut running.0.stderr.take().unwrap(), &mut log).unwrap();
    assert!(log.contains("1b4a8cf8-0000-0000-0000-000000000000"), "invocation id missing from logs:\n{log}");
    assert!(!log.contains("fake-token") && !log.contains("test-secret"), "a secret reached the log");
    let sig = state.split("sig=").nth(1).unwrap().split('&').next().unwrap();
    assert!(!log.contains(sig), "the SAS signature reached the log");
}

#[test]
fn binary_without_configuration_exits_naming_the_variable() {
    let out = Command::new(env!("CARGO_BIN_EXE_maintenance-events")).env_clear().output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("PATCHWATCH_SMTP_URL"), "{err}");
}

/// Starts the binary as if on an Azure Functions host with `extra` settings; returns its stderr.
fn start_on_cloud_host(extra: &[(&str, &str)]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_maintenance-events"))
        .env_clear()
        .env("WEBSITE_INSTANCE_ID", "0123456789abcdef")
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", free_port().to_string())
        .env("PATCHWATCH_OUTBOX", "/tmp/unused")
        .env("PATCHWATCH_SNAPSHOT", "/tmp/unused.json")
        .envs(extra.iter().copied())
        .output()
        .unwrap();
    assert!(!out.status.success(), "must refuse to start");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn binary_on_a_cloud_host_requires_durable_shared_state() {
    let err = start_on_cloud_host(&[]);
    assert!(err.contains("PATCHWATCH_STATE"), "{err}");
    let err = start_on_cloud_host(&[("PATCHWATCH_STATE", "file:///tmp/patchwatch-state")]);
    assert!(err.contains("blob container"), "{err}");
}
