//! Run data over the evaluating fake of Azure Resource Graph (tests/support/graph_eval.py): paging,
//! throttling, errors, and the same summary, routes and fleet as the snapshot path (one parser
//! for both).

use std::time::{Duration, Instant};

use integration_tests::graph_eval::{EvalGraph, EvalOptions};
use integration_tests::{example, files, http, pipeline, spawn_handler};
use patchwatch_engine::pipeline::EventOutcome;
use patchwatch_engine::pipeline::Pipeline;
use patchwatch_engine::source::RunDataSource;
use patchwatch_model::event::Incoming;
use patchwatch_model::event::MaintenanceEvent;
use patchwatch_model::event::parse_delivery;
use serde_json::Value;

/// Generous: the fake throttles like ARG (15 queries per 5 s) and the machine is shared.
const THROTTLE_BUDGET: Duration = Duration::from_secs(30);

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

/// The HTTP statuses the fake answered, in order.
async fn statuses(graph: &EvalGraph) -> Vec<u16> {
    graph.queries().await.iter().map(|q| q.status).collect()
}

#[tokio::test]
async fn graph_pages_give_the_same_summary_as_the_snapshot() {
    let graph = EvalGraph::start(&example("snapshot.json"));
    let out = tempfile::tempdir().unwrap();
    let live = graph_pipeline(&graph, &out, THROTTLE_BUDGET);
    let outbox = out.path().display().to_string();
    let snapshot_path = integration_tests::root().join("examples/snapshot.json").display().to_string();
    let offline = pipeline(&[("PATCHWATCH_OUTBOX", &outbox), ("PATCHWATCH_SNAPSHOT", &snapshot_path)]);

    let event = post_event();
    let from_graph = subject(&live.process(&event).await);
    let from_snapshot = subject(&offline.process(&event).await);
    assert_eq!(from_graph, from_snapshot);
    assert!(from_graph.contains("of 40 patched"), "{from_graph}");

    let recorded = graph.queries().await;
    // A post event's plan: succeeded counts, listed machines, unlisted results, failed patches;
    // the example run fits one page each. Never a query per machine.
    assert_eq!(recorded.len(), 4, "{recorded:#?}");
    for q in &recorded {
        assert_eq!(q.status, 200);
        let options = q.options.as_ref().unwrap();
        assert_eq!(options["$top"], 1000);
        assert_eq!(options["resultFormat"], "objectArray");
        let subs = q.subscriptions.as_ref().unwrap();
        assert_eq!(subs.len(), event.subscription_ids.len(), "every query is scoped to the event's subscriptions");
    }
    let queries: Vec<&str> = recorded.iter().map(|q| q.query.as_deref().unwrap()).collect();
    assert!(
        queries
            .iter()
            .any(|q| q.contains("microsoft.maintenance/applyupdates")
                && q.contains(&event.correlation_id.to_lowercase()))
    );
    assert!(queries.iter().any(|q| q.contains("maintenanceRunId")));
}

/// A pipeline whose run data comes from `graph`, mailing to `out`.
fn graph_pipeline(graph: &EvalGraph, out: &tempfile::TempDir, budget: Duration) -> Pipeline {
    let mut p =
        pipeline(&[("PATCHWATCH_OUTBOX", &out.path().display().to_string()), ("PATCHWATCH_SNAPSHOT", "unused")]);
    p.source = graph.source(budget);
    p
}

#[tokio::test]
async fn graph_429_is_retried_after_retry_after() {
    let graph = EvalGraph::start(&example("snapshot.json"));
    graph.fail(429, 1, 0, Some(1)).await;
    let out = tempfile::tempdir().unwrap();
    let p = graph_pipeline(&graph, &out, THROTTLE_BUDGET);
    let started = Instant::now();
    let outcome = p.process(&post_event()).await;
    assert!(subject(&outcome).contains("patched"));
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After was not honoured");
    let recorded = graph.queries().await;
    assert_eq!(recorded.iter().map(|q| q.status).collect::<Vec<_>>(), [429, 200, 200, 200, 200]);
    assert_eq!(recorded[0].query, recorded[1].query, "the throttled query is sent again");
    assert_eq!(files(out.path(), "eml").len(), 1);
}

#[tokio::test]
async fn graph_throttling_beyond_the_budget_is_retry_later_not_a_partial_email() {
    let graph = EvalGraph::start(&example("snapshot.json"));
    graph.fail(429, 100, 0, Some(600)).await;
    let out = tempfile::tempdir().unwrap();
    let p = graph_pipeline(&graph, &out, Duration::from_secs(5));
    let started = Instant::now();
    match p.process(&post_event()).await {
        EventOutcome::RetryLater { after, .. } => assert_eq!(after, Duration::from_secs(600)),
        other => panic!("expected retry later, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5), "must not sleep past its budget");
    assert_eq!(statuses(&graph).await, [429], "a wait beyond the budget is not waited, nor retried");
    assert!(files(out.path(), "eml").is_empty(), "nothing may be sent");
}

#[tokio::test]
async fn graph_quota_exhaustion_waits_for_the_reset() {
    // Two queries a second: the plan's four queries spend the quota twice.
    let options = EvalOptions { quota: 2, quota_window: Duration::from_secs(1), ..EvalOptions::default() };
    let graph = EvalGraph::start_with(&example("snapshot.json"), &options);
    let out = tempfile::tempdir().unwrap();
    let p = graph_pipeline(&graph, &out, THROTTLE_BUDGET);
    let started = Instant::now();
    assert!(subject(&p.process(&post_event()).await).contains("patched"));
    let elapsed = started.elapsed();
    let recorded = graph.queries().await;
    assert_eq!(
        recorded.iter().map(|q| q.status).collect::<Vec<_>>(),
        [200, 200, 200, 200],
        "a spent quota is waited out before the next query, never refused"
    );
    // `x-ms-user-quota-remaining: 0` after the second and the fourth query, a reset of ~1 s each.
    assert!(elapsed >= Duration::from_secs(1), "quota reset was not waited for: {elapsed:?}");
}

#[tokio::test]
async fn graph_server_error_is_retried_then_succeeds() {
    let graph = EvalGraph::start(&example("snapshot.json"));
    graph.fail(503, 1, 1, None).await;
    let out = tempfile::tempdir().unwrap();
    let p = graph_pipeline(&graph, &out, THROTTLE_BUDGET);
    assert!(subject(&p.process(&post_event()).await).contains("patched"));
    let recorded = graph.queries().await;
    assert_eq!(recorded.iter().map(|q| q.status).collect::<Vec<_>>(), [200, 503, 200, 200, 200]);
    assert_eq!(recorded[1].query, recorded[2].query, "the failed query is sent again");
}

#[tokio::test]
async fn graph_403_is_retry_later_over_http_and_sends_nothing() {
    let graph = EvalGraph::start(&example("snapshot.json"));
    graph.fail(403, 100, 0, None).await;
    let out = tempfile::tempdir().unwrap();
    let p = graph_pipeline(&graph, &out, THROTTLE_BUDGET);
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
    assert_eq!(statuses(&graph).await, [403], "a 403 is not retried");
    assert!(files(out.path(), "eml").is_empty());
}

/// Owner tags arrive with the live machine list (one join), so routes split by tag exactly as
/// with a snapshot.
#[tokio::test]
async fn graph_machine_tags_route_like_the_snapshot() {
    let graph = EvalGraph::start(&example("snapshot.json"));
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
    let snapshot = RunDataSource::SnapshotText(std::sync::Arc::from(example("snapshot.json").as_str()));
    let mut plans = Vec::new();
    for source in [graph.source(THROTTLE_BUDGET), snapshot] {
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
    let recorded = graph.queries().await;
    // Succeeded counts (grouped by tag set), listed machines and unlisted results carry the tags.
    let with_tags: Vec<&str> =
        recorded.iter().filter_map(|q| q.query.as_deref()).filter(|q| q.contains("machineTags")).collect();
    assert_eq!(with_tags.len(), 3, "{recorded:#?}");
    assert!(with_tags.iter().all(|q| q.contains("join kind=leftouter")), "{with_tags:#?}");
}

/// The fleet loaded page by page from Resource Graph is the fleet the snapshot file gives: the
/// same machines, schedules and runs, and so the same findings.
#[tokio::test]
async fn graph_fleet_load_lints_like_the_snapshot() {
    use patchwatch_fleet::lint::{LintOptions, lint};
    let text = example("snapshot.json");
    let graph = EvalGraph::start(&text);
    let (live, newest) = graph.source(THROTTLE_BUDGET).load_fleet().await.unwrap();
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
    let recorded = graph.queries().await;
    assert!(
        recorded.iter().any(|q| q.options.as_ref().is_some_and(|o| o["$skipToken"].is_string())),
        "some table needs more than one page of 1000"
    );
}
