//! Channel behaviour against loopback fakes: 429 with Retry-After is waited out, other 4xx are
//! final and not retried, Slack is paced to one message a second, and `check-config --azure`'s
//! action-group report.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use integration_tests::{example, graph::FakeCredential};
use patchwatch_azure::action_group;
use patchwatch_azure::arm::ArmClient;
use patchwatch_engine::channels::Channels;
use patchwatch_model::event::Incoming;
use patchwatch_model::event::MaintenanceEvent;
use patchwatch_model::event::parse_delivery;
use patchwatch_model::failure::Failure;
use patchwatch_model::routing::Notification;
use patchwatch_model::routing::Routing;
use patchwatch_model::rundata::RunData;
use patchwatch_model::rundata::RunQuery;
use patchwatch_model::rundata::snapshot;
use patchwatch_model::summary::Decision;
use patchwatch_model::summary::RunSummary;
use patchwatch_model::summary::summarise;
use serde_json::json;
use wiremock::{Mock, MockServer, ResponseTemplate, matchers};

fn routing(chat: &MockServer) -> (Routing, Channels) {
    routing_at(&chat.uri())
}

fn routing_at(base: &str) -> (Routing, Channels) {
    let text = "[channels.teams]\ntype = \"teams\"\nurl_env = \"T\"\n[channels.slack]\ntype = \"slack\"\nurl_env = \"S\"\n\
                [[routes]]\nname = \"r\"\nchannels = [\"teams\", \"slack\"]\n";
    let (routing, _) = Routing::parse(text, &|_| true).unwrap();
    let urls = |k: &str| match k {
        "T" => Some(format!("{base}/teams")),
        "S" => Some(format!("{base}/slack")),
        _ => None,
    };
    let channels = Channels::new(Some(&routing), &urls, "https://portal.azure.com/".parse().unwrap()).unwrap();
    (routing, channels)
}

/// The event, its summary (grace over) and its run data, from event JSON and snapshot bytes.
fn summarised(event_json: &str, snapshot_bytes: &[u8]) -> (MaintenanceEvent, RunSummary, RunData) {
    let event = match parse_delivery(event_json.as_bytes()).unwrap().remove(0) {
        Incoming::Maintenance(m) => *m,
        _ => unreachable!(),
    };
    let q = RunQuery {
        correlation_id: event.correlation_id.clone(),
        subscription_ids: vec![],
        include_results: true,
        since: None,
        watch: Vec::new(),
    };
    let data = snapshot::parse(snapshot_bytes, &q).unwrap();
    let Decision::Ready(s) = summarise(&event, &data, time::OffsetDateTime::now_utc(), Duration::ZERO) else {
        unreachable!()
    };
    (event, *s, data)
}

fn plan(routing: &Routing) -> Vec<Notification> {
    let (event, s, data) = summarised(&example("events/post-maintenance.json"), example("snapshot.json").as_bytes());
    routing.plan(&event, &s, &data)
}

#[tokio::test]
async fn teams_429_is_waited_out_and_slack_is_paced() {
    let chat = MockServer::start().await;
    Mock::given(matchers::path("/teams"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&chat)
        .await;
    Mock::given(matchers::method("POST")).respond_with(ResponseTemplate::new(200)).mount(&chat).await;
    let (routing, channels) = routing(&chat);
    let plan = plan(&routing);
    let started = Instant::now();
    assert_eq!(channels.deliver(&plan[0], "msg_1").await.unwrap(), "Teams card");
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After was not honoured");
    // Two Slack messages to one channel are at least a second apart.
    channels.deliver(&plan[1], "msg_2").await.unwrap();
    let second = Instant::now();
    channels.deliver(&plan[1], "msg_3").await.unwrap();
    assert!(second.elapsed() >= Duration::from_millis(1000), "Slack was not paced: {:?}", second.elapsed());
    let requests = chat.received_requests().await.unwrap();
    assert_eq!(requests.iter().filter(|r| r.url.path() == "/teams").count(), 2);
}

#[tokio::test]
async fn a_refused_payload_is_final_and_not_retried() {
    let chat = MockServer::start().await;
    Mock::given(matchers::method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_string("Bad payload"))
        .mount(&chat)
        .await;
    let (routing, channels) = routing(&chat);
    let plan = plan(&routing);
    match channels.deliver(&plan[0], "msg_1").await {
        Err(Failure::Permanent(m)) => assert!(m.contains("400") && m.contains("Bad payload"), "{m}"),
        other => panic!("a 400 is final: {other:?}"),
    }
    assert_eq!(chat.received_requests().await.unwrap().len(), 1, "no retry of a refused payload");
    // A server that is down is "retry later", and its URL (a secret) is not in the error.
    let (_, down) = routing_at(&format!("http://127.0.0.1:{}", integration_tests::smtp::free_port()));
    match down.deliver(&plan[0], "msg_1").await {
        Err(Failure::Transient { reason: m, .. }) => assert!(!m.contains("/teams"), "{m}"),
        other => panic!("a connection failure is transient: {other:?}"),
    }
}

#[tokio::test]
async fn check_config_reports_action_group_receivers() {
    let arm = MockServer::start().await;
    let id = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/microsoft.insights/actionGroups/ag";
    Mock::given(matchers::path(id))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "name": "ag", "properties": {
            "enabled": true, "emailReceivers": [{ "name": "e", "emailAddress": "ops@example.com" }],
            "voiceReceivers": [{ "name": "v" }], "webhookReceivers": [] } })))
        .mount(&arm)
        .await;
    let text = format!(
        "[channels.ag]\ntype = \"action_group\"\nid = \"{id}\"\n[channels.gone]\ntype = \"action_group\"\nid = \"{id}x\"\n"
    );
    let (routing, _) = Routing::parse(&text, &|_| true).unwrap();
    let client = ArmClient::new(
        arm.uri().parse().unwrap(),
        Arc::new(FakeCredential),
        "https://management.azure.com/.default".into(),
    );
    let report = action_group::check(&routing, &client).await;
    assert!(report.iter().any(|l| l.contains("1 email and 0 webhook receivers served")), "{report:?}");
    assert!(report.iter().any(|l| l.contains("not served by patchwatch: voiceReceivers (1)")), "{report:?}");
    assert!(report.iter().any(|l| l.starts_with("channel \"gone\": error")), "{report:?}");
}

/// A large run still makes one card, under Teams' 28 KB limit, and one webhook body.
#[tokio::test]
async fn a_run_with_hundreds_of_failures_is_one_card_under_the_limit() {
    let opts = patchwatch_simulation::SimulateOptions { machines: 4000, seed: 9, ..Default::default() };
    let mut bytes = Vec::new();
    let events = patchwatch_simulation::write_snapshot(&opts, &mut bytes).unwrap();
    let (event, s, data) = summarised(&events.post.to_string(), &bytes);
    assert!(s.counts.total - s.counts.succeeded >= 500, "{:?}", s.counts);
    let chat = MockServer::start().await;
    Mock::given(matchers::method("POST")).respond_with(ResponseTemplate::new(200)).mount(&chat).await;
    let (routing, channels) = routing(&chat);
    let plan = routing.plan(&event, &s, &data);
    assert_eq!(plan.len(), 2, "one notification per channel, not per machine");
    channels.deliver(&plan[0], "msg_1").await.unwrap();
    let requests = chat.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].body.len() < 28 * 1024, "card is {} bytes", requests[0].body.len());
    let card: serde_json::Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert!(card.to_string().contains("more in the email"), "the card summarises and points to the email");
}
