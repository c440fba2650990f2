//! Run data over a loopback fake of Azure Resource Graph: paging, throttling, errors, and the
//! same summary as the snapshot path (one parser for both).

use std::time::{Duration, Instant};

use integration_tests::{example, files, graph, http, pipeline, spawn_handler};
use patchwatch_engine::pipeline::EventOutcome;
use patchwatch_engine::pipeline::Pipeline;
use patchwatch_engine::source::RunDataSource;
use patchwatch_model::event::Incoming;
use patchwatch_model::event::MaintenanceEvent;
use patchwatch_model::event::parse_delivery;
use serde_json::Value;
use wiremock::{Mock, MockServer, ResponseTemplate, matchers};

fn post_event() -> MaintenanceEvent {
    match parse_delivery(example("events/post-maintenance.json").as_bytes()).unwrap().remove(0) {
        Incoming::Maintenance(m) => *m,
        other => panic!("unexpected {other:?}"),
    }
}

fn subject(o: &EventOutcome) -> String {
    match o {
        EventOutcome::Sent(p) => p.summary.subject(),
        other => panic!("expected a sent summary, got {other:?}"),
    }
}

#[tokio::test]
async fn graph_pages_give_the_same_summary_as_the_snapshot() {
    let server = MockServer::start().await;
    graph::mount(&server, graph::FakeGraph::from_snapshot(&example("snapshot.json"), 7)).await;
    let out = tempfile::tempdir().unwrap();
    let outbox = out.path().display().to_string();
    let mut live = pipeline(&[("PATCHWATCH_OUTBOX", &outbox), ("PATCHWATCH_SNAPSHOT", "unused")]);
    live.source = graph::source(&server, Duration::from_secs(5));
    let snapshot_path = integration_tests::root().join("examples/snapshot.json").display().to_string();
    let offline = pipeline(&[("PATCHWATCH_OUTBOX", &outbox), ("PATCHWATCH_SNAPSHOT", &snapshot_path)]);

    let event = post_event();
    let from_graph = subject(&live.process(&event).await);
    let from_snapshot = subject(&offline.process(&event).await);
    assert_eq!(from_graph, from_snapshot);
    assert!(from_graph.contains("of 40 patched"), "{from_graph}");

    let requests = server.received_requests().await.unwrap();
    let bodies: Vec<Value> = requests.iter().map(|r| serde_json::from_slice(&r.body).unwrap()).collect();
    assert!(bodies.len() > 10, "small pages must have been followed: {} requests", bodies.len());
    assert!(bodies.iter().any(|b| b["options"]["$skipToken"].is_string()), "no request carried a skip token");
    for b in &bodies {
        assert_eq!(b["options"]["$top"], 1000);
        assert_eq!(b["options"]["resultFormat"], "objectArray");
        let subs: Vec<&str> = b["subscriptions"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
        assert_eq!(subs.len(), event.subscription_ids.len(), "every query is scoped to the event's subscriptions");
    }
    let queries: Vec<&str> = bodies.iter().map(|b| b["query"].as_str().unwrap()).collect();
    assert!(
        queries
            .iter()
            .any(|q| q.contains("microsoft.maintenance/applyupdates")
                && q.contains(&event.correlation_id.to_lowercase()))
    );
    assert!(queries.iter().any(|q| q.contains("maintenanceRunId")));
    // Per-machine ARM calls are never made: only Resource Graph queries, a handful per run.
    assert!(requests.iter().all(|r| r.url.path() == "/providers/Microsoft.ResourceGraph/resources"));
}

/// A pipeline whose run data comes from `server`, mailing to `out`.
fn graph_pipeline(server: &MockServer, out: &tempfile::TempDir, budget: Duration) -> Pipeline {
    let mut p =
        pipeline(&[("PATCHWATCH_OUTBOX", &out.path().display().to_string()), ("PATCHWATCH_SNAPSHOT", "unused")]);
    p.source = graph::source(server, budget);
    p
}

/// Answers the first query with `failure`, then serves the example snapshot.
async fn fail_once_then_serve(server: &MockServer, failure: ResponseTemplate) {
    Mock::given(matchers::method("POST")).respond_with(failure).up_to_n_times(1).with_priority(1).mount(server).await;
    graph::mount(server, graph::FakeGraph::from_snapshot(&example("snapshot.json"), 1000)).await;
}

#[tokio::test]
async fn graph_429_is_retried_after_retry_after() {
    let server = MockServer::start().await;
    fail_once_then_serve(&server, ResponseTemplate::new(429).insert_header("retry-after", "1")).await;
    let out = tempfile::tempdir().unwrap();
    let p = graph_pipeline(&server, &out, Duration::from_secs(5));
    let started = Instant::now();
    let outcome = p.process(&post_event()).await;
    assert!(subject(&outcome).contains("patched"));
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After was not honoured");
    let requests = server.received_requests().await.unwrap();
    assert!(requests.len() >= 2);
    assert_eq!(files(out.path(), "eml").len(), 1);
}

#[tokio::test]
async fn graph_throttling_beyond_the_budget_is_retry_later_not_a_partial_email() {
    let server = MockServer::start().await;
    Mock::given(matchers::method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "600"))
        .mount(&server)
        .await;
    let out = tempfile::tempdir().unwrap();
    let p = graph_pipeline(&server, &out, Duration::from_secs(5));
    let started = Instant::now();
    match p.process(&post_event()).await {
        EventOutcome::RetryLater { after, .. } => assert_eq!(after, Duration::from_secs(600)),
        other => panic!("expected retry later, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5), "must not sleep past its budget");
    assert!(files(out.path(), "eml").is_empty(), "nothing may be sent");
}

#[tokio::test]
async fn graph_quota_exhaustion_waits_for_the_reset() {
    let server = MockServer::start().await;
    struct Quota(graph::FakeGraph);
    impl wiremock::Respond for Quota {
        fn respond(&self, req: &wiremock::Request) -> ResponseTemplate {
            self.0
                .respond(req)
                .insert_header("x-ms-user-quota-remaining", "0")
                .insert_header("x-ms-user-quota-resets-after", "00:00:00.2")
        }
    }
    graph::mount(&server, Quota(graph::FakeGraph::from_snapshot(&example("snapshot.json"), 1000))).await;
    let out = tempfile::tempdir().unwrap();
    let p = graph_pipeline(&server, &out, Duration::from_secs(10));
    let started = Instant::now();
    assert!(subject(&p.process(&post_event()).await).contains("patched"));
    let n = server.received_requests().await.unwrap().len() as u32;
    assert!(started.elapsed() >= Duration::from_millis(200) * n, "quota reset was not waited for");
}

#[tokio::test]
async fn graph_server_error_is_retried_then_succeeds() {
    let server = MockServer::start().await;
    fail_once_then_serve(&server, ResponseTemplate::new(503)).await;
    let out = tempfile::tempdir().unwrap();
    let p = graph_pipeline(&server, &out, Duration::from_secs(5));
    assert!(subject(&p.process(&post_event()).await).contains("patched"));
}

#[tokio::test]
async fn graph_403_is_retry_later_over_http_and_sends_nothing() {
    let server = MockServer::start().await;
    Mock::given(matchers::method("POST"))
        .respond_with(ResponseTemplate::new(403).set_body_json(serde_json::json!({
            "error": { "code": "AuthorizationFailed", "message": "The client does not have authorization to perform action 'Microsoft.ResourceGraph/resources/read'." }
        })))
        .mount(&server)
        .await;
    let out = tempfile::tempdir().unwrap();
    let p = graph_pipeline(&server, &out, Duration::from_secs(5));
    let addr = spawn_handler(p).await;
    let resp = http()
        .post(format!("http://{addr}/api/events"))
        .header("content-type", "application/json")
        .body(example("events/post-maintenance.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "300");
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("AuthorizationFailed"), "{body}");
    assert!(files(out.path(), "eml").is_empty());
}

/// Owner tags arrive with the live machine list (one join), so routes split by tag exactly as
/// with a snapshot.
#[tokio::test]
async fn graph_machine_tags_route_like_the_snapshot() {
    let server = MockServer::start().await;
    graph::mount(&server, graph::FakeGraph::from_snapshot(&example("snapshot.json"), 10)).await;
    let event = post_event();
    let query = patchwatch_model::rundata::RunQuery {
        correlation_id: event.correlation_id.clone(),
        subscription_ids: event.subscription_ids.clone(),
        include_results: true,
        since: Some(event.start),
        watch: Vec::new(),
    };
    let text = "[channels.c]\ntype = \"teams\"\nurl_env = \"T\"\n[[routes]]\nname = \"o\"\nsplit_by_tag = \"PatchOwner\"\nrecipients_from_tag = true\nchannels = [\"c\"]\n";
    let (routing, _) = patchwatch_model::routing::Routing::parse(text, &|_| true).unwrap();
    let snapshot =
        patchwatch_engine::source::RunDataSource::SnapshotText(std::sync::Arc::from(example("snapshot.json").as_str()));
    let mut plans = Vec::new();
    for source in [graph::source(&server, Duration::from_secs(5)), snapshot] {
        let data = source.load(&query).await.unwrap();
        let patchwatch_model::summary::Decision::Ready(s) =
            patchwatch_model::summary::summarise(&event, &data, time::OffsetDateTime::now_utc(), Duration::ZERO)
        else {
            unreachable!()
        };
        let plan: Vec<String> = routing
            .plan(&event, &s, &data)
            .iter()
            .map(|n| format!("{}:{}", n.target(), n.summary.counts.total))
            .collect();
        plans.push(plan);
    }
    assert_eq!(plans[0], ["o.c.team-data:7", "o.c.team-infra:18", "o.c.team-web:15"]);
    assert_eq!(plans[0], plans[1]);
    let machines_query = server.received_requests().await.unwrap();
    let first: Value = serde_json::from_slice(&machines_query[0].body).unwrap();
    assert!(first["query"].as_str().unwrap().contains("join kind=leftouter"), "{first}");
}

/// The fleet loaded page by page from Resource Graph is the fleet the snapshot file gives: the
/// same machines, schedules and runs, and so the same findings.
#[tokio::test]
async fn graph_fleet_load_lints_like_the_snapshot() {
    use patchwatch_fleet::lint::{LintOptions, lint};
    let text = example("snapshot.json");
    let server = MockServer::start().await;
    // Small pages, so every table needs several skip tokens.
    graph::mount(&server, graph::FakeGraph::from_snapshot(&text, 250)).await;
    let (live, newest) = graph::source(&server, Duration::from_secs(5)).load_fleet().await.unwrap();
    assert!(newest.is_none(), "live data is judged as of now, not as of its rows");
    let (file, snapshot_newest) = RunDataSource::SnapshotText(text.into()).load_fleet().await.unwrap();
    let as_of = snapshot_newest.expect("a snapshot has a newest timestamp");
    assert!(live.machines.len() > 500, "{}", live.machines.len());
    assert_eq!(live.machines.len(), file.machines.len());
    assert_eq!(live.configurations.len(), file.configurations.len());
    assert_eq!(live.scopes.len(), file.scopes.len());
    assert_eq!(live.runs.len(), file.runs.len());
    let findings = |fleet| {
        lint(fleet, &LintOptions::new(as_of))
            .into_iter()
            .map(|f| (f.check, f.resource_id.to_ascii_lowercase(), f.severity))
            .collect::<Vec<_>>()
    };
    let from_file = findings(&file);
    assert!(!from_file.is_empty());
    assert_eq!(findings(&live), from_file);
}
