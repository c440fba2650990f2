//! Routing and channels end to end, under the example configuration in `examples/`: one post
//! event with machines of three teams gives three emails (each with only that team's machines,
//! at a real SMTP server), one Teams card, one Slack message, one signed webhook that an
//! independent Standard Webhooks verifier accepts, and exactly one ServiceNow incident however
//! often the event is delivered; a later clean run resolves the incident.

use std::{collections::HashMap, process::Command};

use integration_tests::{example, http, itsm::ServiceNow, pipeline, root, smtp::SmtpSink, spawn_handler};
use mailparse::{MailHeaderMap, parse_mail};
use serde_json::Value;
use wiremock::{Mock, MockServer, ResponseTemplate, matchers};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

struct Fakes {
    sink: SmtpSink,
    chat: MockServer,
    snow_server: MockServer,
    snow: ServiceNow,
    config: tempfile::NamedTempFile,
    state: tempfile::TempDir,
}

async fn fakes() -> Fakes {
    let sink = SmtpSink::start();
    let chat = MockServer::start().await;
    for p in ["/teams/flow", "/slack/hook", "/patchwatch"] {
        Mock::given(matchers::method("POST"))
            .and(matchers::path(p))
            .respond_with(ResponseTemplate::new(202))
            .mount(&chat)
            .await;
    }
    let snow_server = MockServer::start().await;
    let snow = ServiceNow::new("svc-patchwatch", "s3cret");
    Mock::given(matchers::path_regex("^/api/now/table/incident")).respond_with(snow.clone()).mount(&snow_server).await;
    let text = example("patchwatch.toml")
        .replace("https://hooks.example.com", &chat.uri())
        .replace("https://example.service-now.com", &snow_server.uri());
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), text).unwrap();
    Fakes { sink, chat, snow_server, snow, config, state: tempfile::tempdir().unwrap() }
}

impl Fakes {
    fn pipeline(&self, snapshot: &std::path::Path) -> patchwatch_engine::pipeline::Pipeline {
        pipeline(&[
            ("PATCHWATCH_CONFIG", &self.config.path().display().to_string()),
            ("PATCHWATCH_SMTP_URL", &self.sink.url()),
            ("PATCHWATCH_MAIL_TO", "fallback@example.com"),
            ("PATCHWATCH_SNAPSHOT", &snapshot.display().to_string()),
            ("PATCHWATCH_STATE", &format!("file://{}", self.state.path().display())),
            ("PATCHWATCH_TEAMS_URL", &format!("{}/teams/flow", self.chat.uri())),
            ("PATCHWATCH_SLACK_URL", &format!("{}/slack/hook", self.chat.uri())),
            ("PATCHWATCH_WEBHOOK_SECRET", SECRET),
            ("PATCHWATCH_SNOW_USER", "svc-patchwatch"),
            ("PATCHWATCH_SNOW_PASSWORD", "s3cret"),
        ])
    }

    async fn requests(&self, path: &str) -> Vec<wiremock::Request> {
        self.chat.received_requests().await.unwrap().into_iter().filter(|r| r.url.path() == path).collect()
    }
}

/// Machine name → PatchOwner, from the example snapshot (machines with the tag).
fn owners() -> HashMap<String, String> {
    let snap: Value = serde_json::from_str(&example("snapshot.json")).unwrap();
    snap["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["type"]
                .as_str()
                .is_some_and(|t| !t.eq_ignore_ascii_case("microsoft.maintenance/maintenanceconfigurations"))
        })
        .filter_map(|r| Some((r["name"].as_str()?.to_owned(), r["tags"]["PatchOwner"].as_str()?.to_owned())))
        .collect()
}

async fn deliver(base: &str, body: String) -> Value {
    let resp = http()
        .post(format!("{base}/api/events"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// Verifies a webhook request with the Standard Webhooks reference library (Python, PyPI).
fn verify_with_reference(req: &wiremock::Request, body: &[u8]) -> bool {
    let python = std::env::var_os("PATCHWATCH_TEST_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root().join(".ci/venv/bin/python"));
    let header = |n: &str| req.headers.get(n).unwrap().to_str().unwrap().to_owned();
    let script = "import sys\nfrom standardwebhooks.webhooks import Webhook\n\
                  Webhook(sys.argv[1]).verify(sys.stdin.buffer.read(), {'webhook-id': sys.argv[2], 'webhook-timestamp': sys.argv[3], 'webhook-signature': sys.argv[4]})\n";
    let mut child = Command::new(&python)
        .args(["-c", script, SECRET, &header("webhook-id"), &header("webhook-timestamp"), &header("webhook-signature")])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; run .ci/run (it installs standardwebhooks)", python.display()));
    use std::io::Write;
    child.stdin.take().unwrap().write_all(body).unwrap();
    child.wait().unwrap().success()
}

#[tokio::test]
async fn example_config_routes_one_run_to_owners_chat_webhook_and_servicenow() {
    let f = fakes().await;
    let base = format!("http://{}", spawn_handler(f.pipeline(&root().join("examples/snapshot.json"))).await);
    let event = example("events/post-maintenance.json");
    let first = deliver(&base, event.clone()).await;
    assert_eq!(first["events"][0]["outcome"], "sent", "{first}");
    let sent: Vec<&str> =
        first["events"][0]["deliveries"].as_array().unwrap().iter().map(|d| d["outcome"].as_str().unwrap()).collect();
    assert_eq!(sent, ["sent"; 7], "{first}");
    for _ in 0..2 {
        assert_eq!(deliver(&base, event.clone()).await["events"][0]["outcome"], "duplicate");
    }

    // Three emails, one per team, each naming only that team's machines.
    let owners = owners();
    let messages = f.sink.wait_for(3);
    assert_eq!(messages.len(), 3);
    let mut teams_seen = Vec::new();
    for raw in &messages {
        let mail = parse_mail(raw).unwrap();
        let subject = mail.headers.get_first_value("Subject").unwrap();
        let to = mail.headers.get_first_value("To").unwrap();
        let team =
            ["team-data", "team-web", "team-infra"].into_iter().find(|t| subject.contains(&format!("({t})"))).unwrap();
        assert!(subject.starts_with("[patching] Ring2-Prod: "), "{subject}");
        let expected_to = match team {
            "team-data" => "dba@example.com",
            "team-web" => "web-ops@example.com",
            _ => "infra@example.com",
        };
        assert!(to.contains(expected_to), "{team}: {to}");
        let text = mail.subparts[0].get_body().unwrap();
        for (machine, owner) in &owners {
            if owner != team {
                assert!(!text.contains(machine.as_str()), "{team}'s email names {machine} of {owner}");
            }
        }
        teams_seen.push(team);
    }
    teams_seen.sort_unstable();
    assert_eq!(teams_seen, ["team-data", "team-infra", "team-web"]);

    // One Teams card with the Adaptive Card envelope Workflows expects, under 28 KB.
    let teams = f.requests("/teams/flow").await;
    assert_eq!(teams.len(), 1);
    assert!(teams[0].body.len() < 28 * 1024);
    let card: Value = serde_json::from_slice(&teams[0].body).unwrap();
    assert_eq!(card["type"], "message");
    assert_eq!(card["attachments"][0]["contentType"], "application/vnd.microsoft.card.adaptive");
    let content = &card["attachments"][0]["content"];
    assert_eq!((content["type"].as_str(), content["version"].as_str()), (Some("AdaptiveCard"), Some("1.4")));
    assert!(content["body"][0]["text"].as_str().unwrap().starts_with("Ring2-Prod: Failed"), "{content}");
    assert_eq!(content["actions"][0]["type"], "Action.OpenUrl");

    // One Slack message with Block Kit blocks.
    let slack = f.requests("/slack/hook").await;
    assert_eq!(slack.len(), 1);
    let msg: Value = serde_json::from_slice(&slack[0].body).unwrap();
    assert_eq!(msg["blocks"][0]["type"], "header");
    assert!(msg["text"].as_str().unwrap().starts_with("Ring2-Prod: Failed"));

    // One signed webhook; the reference verifier accepts it and rejects a tampered body.
    let hooks = f.requests("/patchwatch").await;
    assert_eq!(hooks.len(), 1);
    let body: Value = serde_json::from_slice(&hooks[0].body).unwrap();
    assert_eq!((body["type"].as_str(), body["schemaVersion"].as_u64()), (Some("patchwatch.run.summary"), Some(1)));
    assert_eq!(body["data"]["counts"]["failed"], 4);
    assert!(verify_with_reference(&hooks[0], &hooks[0].body), "the Standard Webhooks verifier rejected the signature");
    let mut tampered = hooks[0].body.clone();
    tampered[10] ^= 1;
    assert!(!verify_with_reference(&hooks[0], &tampered), "a tampered body must not verify");

    // Exactly one incident, keyed by the run.
    let incidents = f.snow.all();
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert!(incidents[0]["correlation_id"].as_str().unwrap().starts_with("patchwatch:"));
    assert_eq!(incidents[0]["assignment_group"], "Server Patching");
    assert!(f.snow_server.received_requests().await.unwrap().iter().all(|r| r.headers.contains_key("authorization")));

    // A wiped ledger resends the other channels, but ServiceNow looks the incident up first: it
    // is updated, never duplicated.
    let other = tempfile::tempdir().unwrap();
    let mut second = f.pipeline(&root().join("examples/snapshot.json"));
    second.notifier.ledger = patchwatch_state::ledger::Ledger::new(
        patchwatch_state::store::open(&format!("file://{}", other.path().display()), None).unwrap(),
        std::time::Duration::from_secs(300),
    );
    let parsed = match patchwatch_model::event::parse_delivery(event.as_bytes()).unwrap().remove(0) {
        patchwatch_model::event::Incoming::Maintenance(m) => *m,
        _ => unreachable!(),
    };
    let _ = second.process(&parsed).await;
    assert_eq!(f.snow.all().len(), 1, "a redelivery without the ledger must update, not duplicate");
    assert!(f.snow.all()[0]["work_notes"].as_str().unwrap().contains("Ring2-Prod: Failed"));

    let pages = (
        f.requests("/teams/flow").await.len(),
        f.requests("/slack/hook").await.len(),
        f.requests("/patchwatch").await.len(),
    );

    // The next run of the configuration is clean: the incident is resolved.
    let clean = tempfile::tempdir().unwrap();
    let opts = patchwatch_simulation::SimulateOptions {
        machines: 40,
        subscriptions: 3,
        seed: 1,
        clean: true,
        start: time::macros::datetime!(2026-12-08 22:00 UTC),
        ..Default::default()
    };
    let mut snapshot = Vec::new();
    let events = patchwatch_simulation::write_snapshot(&opts, &mut snapshot).unwrap();
    std::fs::write(clean.path().join("snapshot.json"), snapshot).unwrap();
    let next = format!("http://{}", spawn_handler(f.pipeline(&clean.path().join("snapshot.json"))).await);
    let answer = deliver(&next, events.post.to_string()).await;
    assert_eq!(answer["events"][0]["verdict"], "Succeeded", "{answer}");
    let incidents = f.snow.all();
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0]["state"].as_str(), Some("6"), "{incidents:?}");
    assert!(incidents[0]["close_notes"].as_str().unwrap().contains("succeeded on all 40 machines"));
    // Redelivering the clean run does not resolve the already resolved incident again.
    let patches_before =
        f.snow_server.received_requests().await.unwrap().iter().filter(|r| r.method.as_str() == "PATCH").count();
    let mut again = f.pipeline(&clean.path().join("snapshot.json"));
    again.notifier.ledger = patchwatch_state::ledger::Ledger::new(
        patchwatch_state::store::open(&format!("file://{}", tempfile::tempdir().unwrap().keep().display()), None)
            .unwrap(),
        std::time::Duration::from_secs(300),
    );
    let clean_event =
        match patchwatch_model::event::parse_delivery(events.post.to_string().as_bytes()).unwrap().remove(0) {
            patchwatch_model::event::Incoming::Maintenance(m) => *m,
            _ => unreachable!(),
        };
    let _ = again.process(&clean_event).await;
    let patches_after =
        f.snow_server.received_requests().await.unwrap().iter().filter(|r| r.method.as_str() == "PATCH").count();
    assert_eq!(patches_before, patches_after, "a resolved incident is not patched again");
    // A clean run pages nobody: no further Teams card, Slack message or webhook.
    let after = (
        f.requests("/teams/flow").await.len(),
        f.requests("/slack/hook").await.len(),
        f.requests("/patchwatch").await.len(),
    );
    assert_eq!(after, pages);
}
