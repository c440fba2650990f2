//! Run data through a Resource Graph fake that evaluates the KQL patchwatch sends
//! (tests/support/graph_eval.py, duckdb-kql): whatever the queries are, the graph path must give
//! the same summary and fleet as the snapshot path over the same rows, and every query, exactly
//! as sent, must pass Microsoft's KQL parser (tests/kql/check.mjs).
//!
//! Needs duckdb-kql in the test venv and tests/kql's node modules (.ci/run installs both); the
//! tests fail with an install hint without them, never skip.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use integration_tests::example;
use integration_tests::graph_eval::{EvalGraph, EvalOptions, RecordedQuery};
use integration_tests::kql;
use patchwatch_azure::resource_graph::{ResourceGraphOptions, queries_for_check};
use patchwatch_engine::pipeline::{EventOutcome, Pipeline};
use patchwatch_engine::source::RunDataSource;
use patchwatch_fleet::lint::{LintOptions, lint};
use patchwatch_model::event::{Incoming, MaintenanceEvent, Phase, parse_delivery};
use patchwatch_model::rundata::RunQuery;
use patchwatch_model::summary::{Decision, RunSummary, summarise};
use patchwatch_simulation::{FleetOptions, SimulateOptions, write_fleet_snapshot};
use serde_json::Value;

/// Generous: the fake throttles like ARG (15 queries per 5 s) and the machine is shared.
const THROTTLE_BUDGET: Duration = Duration::from_secs(60);

fn event(delivery: &[u8]) -> MaintenanceEvent {
    match parse_delivery(delivery).unwrap().remove(0) {
        Incoming::Maintenance(m) => *m,
        other => panic!("unexpected {other:?}"),
    }
}

/// The example snapshot with its post and pre events.
fn example_run() -> (String, MaintenanceEvent, MaintenanceEvent) {
    let post = event(example("events/post-maintenance.json").as_bytes());
    let pre = event(example("events/pre-maintenance.json").as_bytes());
    (example("snapshot.json"), post, pre)
}

/// A simulated run of 300 machines over four subscriptions, inside a fleet of 700 machines
/// (every fate: failed patches, window exceeded, no result).
fn simulated_run() -> (String, MaintenanceEvent, MaintenanceEvent) {
    let opts = SimulateOptions { machines: 300, subscriptions: 4, seed: 42, ..SimulateOptions::default() };
    let mut out = Vec::new();
    let sim = write_fleet_snapshot(&opts, &FleetOptions { machines: 700 }, &mut out).unwrap();
    let post = event(&serde_json::to_vec(&sim.events.post).unwrap());
    let pre = event(&serde_json::to_vec(&sim.events.pre).unwrap());
    (String::from_utf8(out).unwrap(), post, pre)
}

/// The world a pre event sees: `rows` without the run's installation results and their patch
/// rows, which ARG has only once the run is under way. (The snapshot path reads results for a
/// pre event when a snapshot has them; the graph path never asks for them. Compared over the
/// snapshot taken after the run, the two differ in `failed_patches`.)
fn before_the_run(rows: &str, event: &MaintenanceEvent) -> String {
    let run = event.correlation_id.trim_end_matches('/').to_ascii_lowercase();
    let mut tables: BTreeMap<String, Vec<Value>> = serde_json::from_str(rows).unwrap();
    let results = tables.get_mut("patchinstallationresources").expect("the snapshot has installation results");
    let of_run: Vec<String> = results
        .iter()
        .filter(|r| {
            r["properties"]["maintenanceRunId"].as_str().unwrap_or_default().trim_end_matches('/').to_ascii_lowercase()
                == run
        })
        .map(|r| format!("{}/", r["id"].as_str().unwrap().to_ascii_lowercase()))
        .collect();
    assert!(!of_run.is_empty(), "the snapshot has results of {run}");
    results.retain(|r| {
        let id = format!("{}/", r["id"].as_str().unwrap().to_ascii_lowercase());
        !of_run.iter().any(|result| id.starts_with(result.as_str()))
    });
    serde_json::to_string(&tables).unwrap()
}

/// The run query the pipeline builds for `event` (crates/engine/src/pipeline.rs).
fn run_query(event: &MaintenanceEvent) -> RunQuery {
    RunQuery {
        correlation_id: event.correlation_id.clone(),
        subscription_ids: event.subscription_ids.clone(),
        include_results: event.phase == Phase::Post,
        since: Some(event.start),
        watch: Vec::new(),
    }
}

/// `event`'s summary from `source`, as of an hour after its window (no grace: never "wait").
async fn summary(source: &RunDataSource, event: &MaintenanceEvent, what: &str) -> RunSummary {
    let data = source.load(&run_query(event)).await.unwrap_or_else(|e| panic!("{what}: {e}"));
    match summarise(event, &data, event.end + time::Duration::hours(1), Duration::ZERO) {
        Decision::Ready(s) => *s,
        other => panic!("{what}: expected a summary, got {other:?}"),
    }
}

/// The whole summary as text: its serialisation, then each machine's tags (not serialised, but
/// routing reads them), sorted.
fn render(s: &RunSummary) -> String {
    let mut text = serde_json::to_string_pretty(s).unwrap();
    for m in &s.machines {
        let tags: BTreeMap<&String, &String> = m.tags.iter().collect();
        text.push_str(&format!("\ntags {}: {tags:?}", m.id));
    }
    text
}

/// Fails with the first differing lines and their context when `graph` and `snapshot` differ.
fn assert_same(what: &str, graph: &str, snapshot: &str) {
    if graph == snapshot {
        return;
    }
    let (g, s): (Vec<&str>, Vec<&str>) = (graph.lines().collect(), snapshot.lines().collect());
    let first = g.iter().zip(&s).position(|(a, b)| a != b).unwrap_or(g.len().min(s.len()));
    let from = first.saturating_sub(5);
    let mut diff = String::new();
    for (label, lines) in [("graph", &g), ("snapshot", &s)] {
        diff.push_str(&format!("--- {label} ({} lines), from line {}:\n", lines.len(), from + 1));
        for (i, line) in lines.iter().enumerate().skip(from).take(16) {
            diff.push_str(&format!("{}{:>6} {line}\n", if i == first { ">" } else { " " }, i + 1));
        }
    }
    let differing = g.iter().zip(&s).filter(|(a, b)| a != b).count() + g.len().abs_diff(s.len());
    panic!(
        "{what}: the graph path and the snapshot path differ ({differing} lines), first at line {}:\n{diff}",
        first + 1
    );
}

/// Loads `event` both ways and asserts the summaries are identical; returns the summary.
async fn same_summary(graph: &EvalGraph, rows: &str, event: &MaintenanceEvent, what: &str) -> RunSummary {
    let from_graph = summary(&graph.source(THROTTLE_BUDGET), event, what).await;
    let from_snapshot = summary(&RunDataSource::SnapshotText(Arc::from(rows)), event, what).await;
    assert_same(what, &render(&from_graph), &render(&from_snapshot));
    from_graph
}

/// The fleet both ways: the same lint findings, as of the snapshot's newest timestamp.
async fn same_fleet(graph: &EvalGraph, rows: &str, what: &str) {
    let (from_snapshot, newest) = RunDataSource::SnapshotText(Arc::from(rows)).load_fleet().await.unwrap();
    let (from_graph, _) = graph.source(THROTTLE_BUDGET).load_fleet().await.unwrap_or_else(|e| panic!("{what}: {e}"));
    let options = LintOptions::new(newest.expect("the snapshot has timestamps"));
    let render = |f: &patchwatch_fleet::Fleet| {
        let counts = format!(
            "machines {} configurations {} assignments {} scopes {} assessments {} pending {} runs {}",
            f.machines.len(),
            f.configurations.len(),
            f.assignments.len(),
            f.scopes.len(),
            f.assessments.len(),
            f.pending.len(),
            f.runs.len()
        );
        format!("{counts}\n{}", serde_json::to_string_pretty(&lint(f, &options)).unwrap())
    };
    assert_same(what, &render(&from_graph), &render(&from_snapshot));
    assert!(!from_graph.machines.is_empty() && !from_graph.runs.is_empty(), "{what}: an empty fleet proves nothing");
}

#[tokio::test]
async fn example_run_graph_path_equals_snapshot_path() {
    let (rows, post, pre) = example_run();
    let graph = EvalGraph::start(&rows);
    let s = same_summary(&graph, &rows, &post, "example post").await;
    assert!(s.counts.total > 0 && s.counts.no_result > 0, "example post: {}", s.subject());
    assert_every_query_answered(&graph.queries().await);
    let rows = before_the_run(&rows, &pre);
    let graph = EvalGraph::start(&rows);
    let s = same_summary(&graph, &rows, &pre, "example pre").await;
    assert!(s.counts.total > 0, "example pre: {}", s.subject());
    assert_every_query_answered(&graph.queries().await);
}

#[tokio::test]
async fn simulated_run_and_fleet_graph_path_equals_snapshot_path() {
    let (rows, post, pre) = simulated_run();
    let graph = EvalGraph::start(&rows);
    let s = same_summary(&graph, &rows, &post, "simulated post").await;
    assert_eq!(s.counts.total, 300, "{}", s.subject());
    assert!(s.counts.failed > 0 && s.counts.no_result > 0 && !s.failed_patches.is_empty(), "{}", s.subject());
    same_fleet(&graph, &rows, "simulated fleet").await;
    let queries = graph.queries().await;
    assert_every_query_answered(&queries);
    let rows = before_the_run(&rows, &pre);
    let graph = EvalGraph::start(&rows);
    let s = same_summary(&graph, &rows, &pre, "simulated pre").await;
    assert_eq!(s.counts.total, 300, "{}", s.subject());
    assert_every_query_answered(&graph.queries().await);
    // Scoped to the event's four subscriptions, in one group.
    let scoped: BTreeSet<Option<usize>> = queries.iter().map(|q| q.subscriptions.as_ref().map(Vec::len)).collect();
    assert!(scoped.contains(&Some(4)), "{scoped:?}");
}

/// A 429 in the middle of a run is waited out (its `Retry-After`) and changes nothing.
#[tokio::test]
async fn throttled_mid_run_gives_the_same_summary() {
    let (rows, post, _) = example_run();
    let graph = EvalGraph::start(&rows);
    graph.fail(429, 1, 1, Some(1)).await;
    same_summary(&graph, &rows, &post, "example post, throttled").await;
    let statuses: Vec<u16> = graph.queries().await.iter().map(|q| q.status).collect();
    assert_eq!(&statuses[..3], [200, 429, 200], "{statuses:?}");
    let queries = graph.queries().await;
    assert_eq!(queries[1].query, queries[2].query, "the throttled query is sent again");
}

/// Every query code path, recorded as sent: each passes Microsoft's KQL parser, every shape sent
/// is one `queries_for_check` lists, and every listed shape but the `watching: …` ones is sent
/// (those are required, sent and parsed by `watched_machines_of_an_open_follow_up_are_listed_and_close_it`),
/// so a path that stops querying, or a query missing from that list, is noticed.
#[tokio::test]
async fn every_query_sent_passes_microsofts_kql_parser() {
    let (rows, post, pre) = simulated_run();
    let graph = EvalGraph::start(&rows);
    // Post with results, failed patches and machines without a result; pre (machines only, all
    // looked up); the fleet (the compliance digest's load).
    summary(&graph.source(THROTTLE_BUDGET), &post, "post").await;
    summary(&graph.source(THROTTLE_BUDGET), &pre, "pre").await;
    graph.source(THROTTLE_BUDGET).load_fleet().await.unwrap();
    let (example_rows, example_post, _) = example_run();
    let example_graph = EvalGraph::start(&example_rows);
    summary(&example_graph.source(THROTTLE_BUDGET), &example_post, "example post").await;

    let mut recorded = graph.queries().await;
    recorded.extend(example_graph.queries().await);
    assert_every_query_answered(&recorded);
    let sent: BTreeSet<String> = recorded.iter().filter_map(|q| q.query.clone()).collect();
    let queries: Vec<(String, String)> =
        sent.iter().enumerate().map(|(i, q)| (format!("sent #{i}"), q.clone())).collect();
    let (code, checked) = kql::check(&queries);
    let errors = kql::describe(&checked, &queries);
    assert!(errors.is_empty(), "Microsoft's KQL parser rejects queries patchwatch sent:{errors}");
    assert_eq!(code, Some(0));

    let sent_shapes: BTreeSet<String> = sent.iter().map(|q| shape(q)).collect();
    let listed: BTreeMap<String, &str> =
        queries_for_check().iter().map(|(n, q)| (shape(q), *n)).collect::<Vec<_>>().into_iter().collect();
    // A run with an open follow-up (`watching: …`, a watch list of machine ids) is driven by
    // `watched_machines_of_an_open_follow_up_are_listed_and_close_it`, which requires every one
    // of those shapes to be sent; here they must not be sent unlisted.
    let never_sent: Vec<&str> = listed
        .iter()
        .filter(|(s, n)| !n.starts_with("watching:") && !sent_shapes.contains(*s))
        .map(|(_, n)| *n)
        .collect();
    assert!(never_sent.is_empty(), "queries_for_check lists queries no code path sent: {never_sent:?}");
    let unlisted: Vec<&String> = sent_shapes.iter().filter(|s| !listed.contains_key(*s)).collect();
    assert!(unlisted.is_empty(), "queries sent but missing from queries_for_check (tests/kql.rs): {unlisted:#?}");
}

/// The fake answered every request with data: a query it could not evaluate is ARG's 400 with
/// duckdb-kql's reason, shown here in full.
fn assert_every_query_answered(queries: &[RecordedQuery]) {
    assert!(!queries.is_empty(), "no query reached the fake");
    let failed: Vec<&RecordedQuery> = queries.iter().filter(|q| q.status != 200 && q.status != 429).collect();
    assert!(failed.is_empty(), "queries the fake refused: {failed:#?}");
}

/// A query with its literals (strings, `datetime(...)`) and literal lists reduced to `?` and its
/// whitespace collapsed: two queries of one builder have one shape whatever their arguments.
fn shape(query: &str) -> String {
    let mut out = String::new();
    let mut chars = query.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                while let Some(d) = chars.next() {
                    if d == '\\' {
                        chars.next();
                    } else if d == c {
                        break;
                    }
                }
                out.push('?');
            }
            c if c.is_whitespace() => {
                while chars.peek().is_some_and(|d| d.is_whitespace()) {
                    chars.next();
                }
                out.push(' ');
            }
            // `datetime(2026-11-10T22:00:00Z)`: a literal without quotes.
            '(' if out.ends_with("datetime") && chars.peek().is_some_and(|d| !matches!(d, '\'' | '"' | ')')) => {
                for d in chars.by_ref() {
                    if d == ')' {
                        break;
                    }
                }
                out.push_str("(?)");
            }
            c => out.push(c),
        }
    }
    while out.contains("?, ?") {
        out = out.replace("?, ?", "?");
    }
    out.trim().to_owned()
}

/// The fake itself follows the REST contract: paging with opaque skip tokens, ARG's error shape
/// for a query it cannot evaluate and for a bad token, the quota headers and 429 when spent.
#[tokio::test]
async fn the_fake_pages_refuses_and_throttles_as_resource_graph_does() {
    let (rows, _, _) = example_run();
    let graph = EvalGraph::start_with(
        &rows,
        // A long window: the seven queries below must fall in one, however slow the machine.
        &EvalOptions { quota: 6, quota_window: Duration::from_secs(120), ..EvalOptions::default() },
    );
    let url = format!("{}/providers/Microsoft.ResourceGraph/resources?api-version=2024-04-01", graph.url());
    let http = integration_tests::http();
    let post = |body: Value| http.post(&url).bearer_auth("fake-token").json(&body).send();
    let query = "resources | where type =~ 'microsoft.compute/virtualmachines' | project id | order by id asc";

    let all: Value =
        post(serde_json::json!({ "query": query, "options": { "$top": 1000 } })).await.unwrap().json().await.unwrap();
    let total = all["totalRecords"].as_u64().unwrap();
    assert!(total > 10 && all["$skipToken"].is_null() && all["resultTruncated"] == "false", "{total}");
    let first = post(serde_json::json!({ "query": query, "options": { "$top": 7 } })).await.unwrap();
    assert_eq!(first.headers()["x-ms-user-quota-remaining"], "4");
    assert!(first.headers().contains_key("x-ms-user-quota-resets-after"));
    let first: Value = first.json().await.unwrap();
    assert_eq!((first["count"].as_u64(), first["totalRecords"].as_u64()), (Some(7), Some(total)));
    let token = first["$skipToken"].as_str().unwrap();
    let second: Value = post(serde_json::json!({ "query": query, "options": { "$skipToken": token } }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(second["data"][0], all["data"][7], "the token carries the page size and offset");

    let bad =
        post(serde_json::json!({ "query": query, "options": { "$skipToken": "bm90IGEgdG9rZW4" } })).await.unwrap();
    assert_eq!(bad.status(), 400);
    let broken = post(serde_json::json!({ "query": "resources | summarize first = count()" })).await.unwrap();
    assert_eq!(broken.status(), 400);
    let body: Value = broken.json().await.unwrap();
    assert_eq!(body["error"]["code"], "BadRequest");
    assert_eq!(body["error"]["details"][0]["code"], "InvalidQuery", "{body}");
    let last = post(serde_json::json!({ "query": query })).await.unwrap();
    assert_eq!(last.headers()["x-ms-user-quota-remaining"], "0");
    // Six queries spent the window's quota: the seventh is refused with a wait.
    let refused = post(serde_json::json!({ "query": query })).await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    let wrong_token = http.post(&url).bearer_auth("another").json(&serde_json::json!({ "query": query })).send();
    assert_eq!(wrong_token.await.unwrap().status(), 401);
    let statuses: Vec<u16> = graph.queries().await.iter().map(|q| q.status).collect();
    assert_eq!(statuses, [200, 200, 200, 400, 400, 200, 429, 401]);
}

#[test]
fn shapes_ignore_literal_values_only() {
    let a = shape("resources\n| where tolower(id) in ('a', 'b\\'c')\n| where t > datetime(2026-11-10T22:00:00Z)");
    let b = shape("resources | where tolower(id) in ('x') | where t > datetime(2020-01-01)");
    assert_eq!(a, b);
    assert_eq!(a, "resources | where tolower(id) in (?) | where t > datetime(?)");
    assert_ne!(shape("resources | where type =~ 'x'"), shape("resources | where type == 'x'"));
}

/// Without duckdb-kql (here: the interpreter without its site-packages) the fake does not start
/// and the test fails with the install hint; it never skips.
#[test]
fn without_duckdb_kql_the_fake_fails_with_the_install_hint() {
    let options = EvalOptions { python_flags: vec!["-S".to_owned()], ..EvalOptions::default() };
    let started = std::panic::catch_unwind(|| EvalGraph::start_with("{}", &options));
    let message = match started {
        Ok(_) => panic!("the fake started without site-packages"),
        Err(payload) => payload.downcast_ref::<String>().cloned().unwrap_or_default(),
    };
    assert!(
        message.contains("needs duckdb-kql") && message.contains("pip install 'duckdb-kql[duckdb]==1.1.2'"),
        "{message}"
    );
}

/// Rows as ARG holds them: every standard column (a string never null), `subscriptionId` and
/// `resourceGroup` from the id, table names in any case, and only the requested subscriptions'
/// rows on both sides of a join.
#[tokio::test]
async fn the_fake_fills_standard_columns_scopes_subscriptions_and_ignores_table_case() {
    let vm = |sub: &str, name: &str| {
        format!("/subscriptions/{sub}/resourceGroups/RG-{name}/providers/Microsoft.Compute/virtualMachines/{name}")
    };
    let rows = serde_json::json!({
        "Resources": [
            { "id": vm("s1", "a"), "type": "microsoft.compute/virtualmachines", "tags": { "team": "web" } },
            { "id": vm("s2", "b"), "type": "microsoft.compute/virtualmachines", "subscriptionId": "s2", "resourceGroup": "rg-b" },
        ],
        "maintenanceresources": [
            { "id": format!("{}/providers/microsoft.maintenance/applyupdates/1", vm("s1", "a")), "properties": { "resourceId": vm("s1", "a") } },
            { "id": format!("{}/providers/microsoft.maintenance/applyupdates/1", vm("s2", "b")), "properties": { "resourceId": vm("s2", "b") } },
        ],
    });
    let graph = EvalGraph::start(&rows.to_string());
    let url = format!("{}/providers/Microsoft.ResourceGraph/resources?api-version=2024-04-01", graph.url());
    let http = integration_tests::http();
    let ask = |body: Value| {
        let request = http.post(&url).bearer_auth("fake-token").json(&body).send();
        async move {
            let response = request.await.unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            assert_eq!(status, 200, "{body}");
            body["data"].as_array().unwrap().clone()
        }
    };
    // `['kind']`: duckdb-kql parses a bare `kind` as its keyword (/work/notes/duckdb-kql.md).
    let all = ask(serde_json::json!({ "query": "resources | project id, subscriptionId, resourceGroup, ['kind'], managedBy, sku | order by id asc" })).await;
    assert_eq!(all.len(), 2);
    assert_eq!(
        (&all[0]["subscriptionId"], &all[0]["resourceGroup"], &all[0]["kind"], &all[0]["managedBy"], &all[0]["sku"]),
        (&Value::from("s1"), &Value::from("RG-a"), &Value::from(""), &Value::from(""), &Value::Null)
    );
    assert_eq!(all[1]["resourceGroup"], "rg-b", "a row's own value wins");
    let joined = ask(serde_json::json!({
        "query": "MaintenanceResources | extend machineId = tolower(tostring(properties.resourceId)) \
                  | join kind=leftouter (Resources | project machineId = tolower(id), machineTags = tags) on machineId \
                  | project id, machineTags",
        "subscriptions": ["S1"],
    }))
    .await;
    assert_eq!(joined.len(), 1, "{joined:?}");
    assert_eq!(joined[0]["machineTags"], serde_json::json!({ "team": "web" }));
}

/// A run of `machines` VMs over the example post event's three subscriptions, written straight
/// in ARG's shapes (lean rows: the fake loads them as JSON Lines). About 5% have a problem, by
/// a fixed spread: 2% failed with a failed patch, 1% without a result (deallocated), 1% over the
/// window, 1% awaiting a reboot; the rest simply succeeded. `all_problems`: every machine has one
/// of these problems (two fifths failed, one fifth each of the others), so all are listed.
fn large_run(machines: usize, all_problems: bool) -> (String, MaintenanceEvent) {
    use serde_json::json;
    let post = event(example("events/post-maintenance.json").as_bytes());
    let run = post.correlation_id.to_ascii_lowercase();
    let config = post.maintenance_configuration_id.to_ascii_lowercase();
    let subs = &post.subscription_ids;
    let (mut updates, mut results, mut resources) = (Vec::new(), Vec::new(), Vec::new());
    updates.push(json!({
        "id": run, "type": "microsoft.maintenance/applyupdates",
        "properties": { "correlationId": run, "maintenanceConfigurationId": config, "status": "Completed",
                        "startDateTime": "2026-11-10T22:00:00Z", "endDateTime": "2026-11-11T00:14:00Z" },
    }));
    for i in 0..machines {
        let sub = &subs[i % subs.len()];
        let rg = format!("rg-{:02}", (i / 7) % 25);
        let name = format!("vm-{i:05}");
        let machine =
            format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}");
        let fate = (i * 7919) % if all_problems { 5 } else { 100 };
        let team = ["team-web", "team-data", "team-infra", "team-batch"][(i / 3) % 4];
        updates.push(json!({
            "id": format!("{machine}/providers/microsoft.maintenance/applyupdates/20261110220000"),
            "type": "microsoft.maintenance/applyupdates",
            "properties": { "correlationId": run, "maintenanceConfigurationId": config, "resourceId": machine,
                            "status": "Completed", "startDateTime": "2026-11-10T22:00:00Z",
                            "endDateTime": "2026-11-11T00:00:00Z" },
        }));
        let power = if fate == 2 { "PowerState/deallocated" } else { "PowerState/running" };
        resources.push(json!({
            "id": machine, "name": name, "type": "microsoft.compute/virtualmachines",
            "tags": { "PatchOwner": team, "env": "prod" },
            "properties": { "extended": { "instanceView": { "powerState": { "code": power } } },
                            "storageProfile": { "osDisk": { "osType": "Windows" } } },
        }));
        if fate == 2 {
            continue;
        }
        let result =
            format!("{machine}/patchInstallationResults/{:08x}-0000-4000-8000-{i:012}", i * 2654435761 % (1 << 32));
        let started = 60 * (i % 90) as i64;
        let minutes = 5 + (i % 40) as i64;
        let at = |seconds: i64| {
            (time::macros::datetime!(2026-11-10 22:00 UTC) + time::Duration::seconds(seconds))
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        };
        let (status, failed, exceeded, reboot) = match fate {
            0 | 1 => ("Failed", 1, false, "NotNeeded"),
            3 => ("Succeeded", 0, true, "NotNeeded"),
            4 => ("Succeeded", 0, false, "Required"),
            _ => ("Succeeded", 0, false, "NotNeeded"),
        };
        results.push(json!({
            "id": result, "type": "microsoft.compute/virtualmachines/patchinstallationresults",
            "properties": { "maintenanceRunId": run, "status": status, "installedPatchCount": 3,
                            "failedPatchCount": failed, "pendingPatchCount": 0, "maintenanceWindowExceeded": exceeded,
                            "rebootStatus": reboot, "startDateTime": at(started),
                            "lastModifiedDateTime": at(started + 60 * minutes + (i % 59) as i64), "osType": "Windows" },
        }));
        if failed > 0 {
            results.push(json!({
                "id": format!("{result}/softwarePatches/p{}", i % 3),
                "type": "microsoft.compute/virtualmachines/patchinstallationresults/softwarepatches",
                "properties": { "installationState": "Failed", "kbId": format!("50{}", 31989 + i % 3),
                                "patchName": format!("2026-11 Cumulative Update (KB50{})", 31989 + i % 3),
                                "classifications": ["Security"] },
            }));
        }
    }
    let rows =
        json!({ "maintenanceresources": updates, "patchinstallationresources": results, "resources": resources });
    (rows.to_string(), post)
}

/// A client of `graph` that only throttling can stop: the load budget covers the fake's
/// evaluation of a large run on a slow machine.
fn patient_source(graph: &EvalGraph) -> RunDataSource {
    let options = ResourceGraphOptions {
        max_throttle_wait: THROTTLE_BUDGET,
        load_budget: Duration::from_secs(120),
        ..ResourceGraphOptions::default()
    };
    RunDataSource::ResourceGraph(Arc::new(graph.client(options)))
}

/// Pages per query text, in the order first sent.
fn pages_per_query(queries: &[RecordedQuery]) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for q in queries {
        let text = q.query.clone().unwrap_or_default();
        match out.iter_mut().find(|(t, _)| *t == text) {
            Some((_, n)) => *n += 1,
            None => out.push((text, 1)),
        }
    }
    out.into_iter()
        .map(|(t, n)| (t.lines().last().unwrap_or_default().to_owned() + &format!(" [{} chars]", t.len()), n))
        .collect()
}

/// A 50,000-machine run with about 5% problems: the graph path reads it in at most ten queries
/// (simply succeeded machines are counted server-side), never throttled under ARG's default
/// quota, and summarises it exactly as the snapshot path does.
#[tokio::test(flavor = "multi_thread")]
async fn fifty_thousand_machine_run_loads_in_at_most_ten_queries() {
    let clock = Instant::now();
    let (rows, post) = large_run(50_000, false);
    let generated = clock.elapsed();
    let clock = Instant::now();
    let graph = EvalGraph::start(&rows);
    let fake_loaded = clock.elapsed();
    let clock = Instant::now();
    let from_graph = summary(&patient_source(&graph), &post, "50k post").await;
    let graph_load = clock.elapsed();
    let clock = Instant::now();
    let from_snapshot = summary(&RunDataSource::SnapshotText(Arc::from(rows.as_str())), &post, "50k post").await;
    let snapshot_load = clock.elapsed();
    assert_same("50k post", &render(&from_graph), &render(&from_snapshot));

    let queries = graph.queries().await;
    let pages = pages_per_query(&queries);
    eprintln!(
        "50k run: {} MB of rows generated in {generated:?}; fake loaded in {fake_loaded:?}; graph load {graph_load:?} \
         in {} requests; snapshot load {snapshot_load:?}; pages per query: {pages:#?}",
        rows.len() >> 20,
        queries.len()
    );
    assert_every_query_answered(&queries);
    assert!(
        queries.iter().all(|q| q.status == 200),
        "throttled: {:?}",
        queries.iter().map(|q| q.status).collect::<Vec<_>>()
    );
    assert!(queries.len() <= 10, "{} requests: {pages:#?}", queries.len());
    let c = &from_graph.counts;
    assert_eq!(c.total, 50_000, "{}", from_graph.subject());
    assert!(c.failed >= 900 && c.no_result >= 400, "{}", from_graph.subject());
    assert!(!from_graph.failed_patches.is_empty(), "{}", from_graph.subject());
}

/// Files under `dir` (recursively) whose path names `loads`: a run load's saved progress in a
/// `file://` state store (key `loads/<run hash>/<phase>`).
fn saved_loads(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else if path.strip_prefix(dir).is_ok_and(|p| p.components().any(|c| c.as_os_str() == "loads"))
                // Not the store's `.<key>.lock` files.
                && !entry.file_name().to_string_lossy().starts_with('.')
            {
                out.push(path);
            }
        }
    }
    out
}

/// A pipeline mailing to `out`, its state in `state`, its run data from `source`.
fn pipeline_with(out: &tempfile::TempDir, state: &tempfile::TempDir, source: RunDataSource) -> Pipeline {
    let outbox = out.path().display().to_string();
    let state = format!("file://{}", state.path().display());
    let mut p = integration_tests::pipeline(&[
        ("PATCHWATCH_OUTBOX", &outbox),
        ("PATCHWATCH_SNAPSHOT", "unused"),
        ("PATCHWATCH_STATE", &state),
    ]);
    p.source = source;
    p
}

/// Resource Graph throttles a post event's load mid-run for longer than the delivery may wait:
/// the delivery is retried later with nothing sent and the pages read so far saved; the next
/// delivery goes on from the throttled page, reads no page twice, sends the summary the
/// snapshot path gives, and forgets the saved progress.
#[tokio::test(flavor = "multi_thread")]
async fn throttled_mid_run_beyond_the_budget_resumes_from_saved_progress() {
    // Every machine has a problem, so all 2,500 are listed: three pages of the machines query.
    let (rows, post) = large_run(2_500, true);
    let graph = EvalGraph::start(&rows);
    let (out, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let p = pipeline_with(&out, &state, patient_source(&graph));
    // Requests 1 and 2 (the succeeded counts, the machines' first page) succeed; the third (the
    // machines' second page) is throttled for two minutes, beyond the throttle budget.
    graph.fail(429, 1, 2, Some(120)).await;
    match p.process(&post).await {
        EventOutcome::RetryLater { after, .. } => assert_eq!(after, Duration::from_secs(120)),
        other => panic!("expected retry later, got {other:?}"),
    }
    assert!(integration_tests::files_any(out.path()).is_empty(), "nothing may be sent");
    let first = graph.queries().await;
    assert_eq!(first.iter().map(|q| q.status).collect::<Vec<_>>(), [200, 200, 429]);
    assert!(first[2].options.as_ref().is_some_and(|o| o["$skipToken"].is_string()), "{:?}", first[2].options);
    assert_eq!(saved_loads(state.path()).len(), 1, "the pages read are saved: {:?}", saved_loads(state.path()));

    let sent = match p.process(&post).await {
        EventOutcome::Sent(sent) => sent,
        other => panic!("expected the summary sent, got {other:?}"),
    };
    assert!(!integration_tests::files_any(out.path()).is_empty(), "the summary was mailed");
    let all = graph.queries().await;
    let second = &all[first.len()..];
    eprintln!("resumed load: first delivery {} requests, second {}", first.len(), second.len());
    let request = |q: &RecordedQuery| {
        let token = q.options.as_ref().and_then(|o| o["$skipToken"].as_str().map(str::to_owned));
        (q.query.clone().unwrap_or_default(), token)
    };
    let answered: BTreeSet<(String, Option<String>)> = first.iter().filter(|q| q.status == 200).map(request).collect();
    let repeated: Vec<usize> = (0..second.len()).filter(|i| answered.contains(&request(&second[*i]))).collect();
    assert!(repeated.is_empty(), "the second delivery read again pages the first had read: {repeated:?}");
    assert_eq!(request(&second[0]), request(&first[2]), "it goes on from the throttled page");
    assert!(second.iter().all(|q| q.status == 200));
    // The machines' last page, unlisted results and failed patches (at most two pages).
    assert!((3..=4).contains(&second.len()), "{} requests", second.len());
    assert!(saved_loads(state.path()).is_empty(), "the finished load forgets its progress");

    let (offline_out, offline_state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let offline = pipeline_with(&offline_out, &offline_state, RunDataSource::SnapshotText(Arc::from(rows.as_str())));
    let expected = match offline.process(&post).await {
        EventOutcome::Sent(sent) => sent,
        other => panic!("snapshot path: expected the summary sent, got {other:?}"),
    };
    assert_eq!(sent.summary.counts.total, 2_500);
    assert_same("resumed load", &render(&sent.summary), &render(&expected.summary));
}

/// Routing for [`watched_machines_of_an_open_follow_up_are_listed_and_close_it`]: the owners
/// are reminded until the run's machines are patched.
const FOLLOW_UP_CONFIG: &str = r#"
[channels.owners]
type = "email"
to = ["owners@example.com"]

[[routes]]
name = "owners"
channels = ["owners"]
remind_after = ["4h"]
"#;

/// The example post event's configuration (Ring2-Prod) running twice, a week apart, over 60 VMs
/// in ARG's shapes: the first run (the example post event) has problems on 12 machines (6
/// failed with a failed patch, 3 over the window, 3 without a result), the second run patches
/// every machine cleanly. Answers the rows, both post events and the first run's problem
/// machines (lower-cased ids).
fn a_failed_run_then_a_clean_one() -> (String, MaintenanceEvent, MaintenanceEvent, BTreeSet<String>) {
    let (rows, mut runs, problems) = a_failed_run_then_clean_ones(60, 1, 1);
    let second = runs.pop().unwrap();
    let first = runs.pop().unwrap();
    (rows, first, second, problems)
}

/// The example post event's configuration (Ring2-Prod) running `1 + clean_runs` times, a week
/// apart, over `machines` VMs in ARG's shapes. The first run (the example post event) has a
/// problem on `problem_fifths` of every five machines (`i % 5 < problem_fifths`); by `i % 20`,
/// half of them failed with a failed patch (0–4, 10–14), a quarter ran over the window (5–9)
/// and a quarter have no result (15–19, deallocated). Every later run patches every machine
/// cleanly. Answers the rows, the post events (oldest first) and the first run's problem
/// machines (lower-cased ids).
fn a_failed_run_then_clean_ones(
    machines: usize,
    problem_fifths: usize,
    clean_runs: usize,
) -> (String, Vec<MaintenanceEvent>, BTreeSet<String>) {
    use serde_json::json;
    let first = event(example("events/post-maintenance.json").as_bytes());
    let stamp_of = |t: time::OffsetDateTime| {
        t.format(time::macros::format_description!("[year][month][day][hour][minute][second]")).unwrap()
    };
    let first_stamp = stamp_of(first.start);
    assert!(first.correlation_id.ends_with(&first_stamp), "the example run's name changed: {}", first.correlation_id);
    let mut events = vec![first.clone()];
    for n in 1..=clean_runs {
        let later = time::Duration::days(7 * n as i64);
        let mut next = first.clone();
        next.start += later;
        next.end += later;
        next.event_time = first.event_time.map(|t| t + later);
        next.correlation_id = first.correlation_id.replace(&first_stamp, &stamp_of(next.start));
        next.id = if n == 1 { format!("{}-next", first.id) } else { format!("{}-next-{n}", first.id) };
        events.push(next);
    }
    let config = first.maintenance_configuration_id.to_ascii_lowercase();
    let subs = &first.subscription_ids;
    let (mut updates, mut results, mut resources) = (Vec::new(), Vec::new(), Vec::new());
    let mut problems = BTreeSet::new();
    let at = |t: time::OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap();
    for (n, run_event) in events.iter().enumerate() {
        let run = run_event.correlation_id.to_ascii_lowercase();
        let stamp = stamp_of(run_event.start);
        updates.push(json!({
            "id": run, "type": "microsoft.maintenance/applyupdates",
            "properties": { "correlationId": run, "maintenanceConfigurationId": config, "status": "Completed",
                            "startDateTime": at(run_event.start), "endDateTime": at(run_event.end) },
        }));
        for i in 0..machines {
            let sub = &subs[i % subs.len()];
            let rg = format!("rg-{:02}", i % 4);
            let name = format!("vm-{i:05}");
            let machine =
                format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}");
            updates.push(json!({
                "id": format!("{machine}/providers/microsoft.maintenance/applyupdates/{stamp}"),
                "type": "microsoft.maintenance/applyupdates",
                "properties": { "correlationId": run, "maintenanceConfigurationId": config, "resourceId": machine,
                                "status": "Completed", "startDateTime": at(run_event.start),
                                "endDateTime": at(run_event.end) },
            }));
            // The first run's fates (`None`: simply succeeded); the later runs patch everything.
            let problem = (n == 0 && i % 5 < problem_fifths).then_some((i % 20) / 5);
            if n == 0 {
                let power = if problem == Some(3) { "PowerState/deallocated" } else { "PowerState/running" };
                resources.push(json!({
                    "id": machine, "name": name, "type": "microsoft.compute/virtualmachines",
                    "tags": { "PatchOwner": if i % 2 == 0 { "team-web" } else { "team-data" }, "env": "prod" },
                    "properties": { "extended": { "instanceView": { "powerState": { "code": power } } },
                                    "storageProfile": { "osDisk": { "osType": "Windows" } } },
                }));
                if problem.is_some() {
                    problems.insert(machine.to_ascii_lowercase());
                }
            }
            let (status, failed, exceeded) = match problem {
                Some(3) => continue,
                Some(0 | 2) => ("Failed", 1, false),
                Some(_) => ("Succeeded", 0, true),
                None => ("Succeeded", 0, false),
            };
            let result = format!("{machine}/patchInstallationResults/{stamp}-{i:05}");
            let started = run_event.start + time::Duration::minutes((i % 30) as i64);
            results.push(json!({
                "id": result, "type": "microsoft.compute/virtualmachines/patchinstallationresults",
                "properties": { "maintenanceRunId": run, "status": status, "installedPatchCount": 3,
                                "failedPatchCount": failed, "pendingPatchCount": 0, "maintenanceWindowExceeded": exceeded,
                                "rebootStatus": "NotNeeded", "startDateTime": at(started),
                                "lastModifiedDateTime": at(started + time::Duration::minutes(20)), "osType": "Windows" },
            }));
            if failed > 0 {
                results.push(json!({
                    "id": format!("{result}/softwarePatches/p1"),
                    "type": "microsoft.compute/virtualmachines/patchinstallationresults/softwarepatches",
                    "properties": { "installationState": "Failed", "kbId": "5031989",
                                    "patchName": "2026-11 Cumulative Update (KB5031989)", "classifications": ["Security"] },
                }));
            }
        }
    }
    let rows =
        json!({ "maintenanceresources": updates, "patchinstallationresources": results, "resources": resources });
    (rows.to_string(), events, problems)
}

/// A routed pipeline mailing to `out`, its state in `state`, its run data from `source`, at `now`.
fn routed_pipeline(
    dir: &tempfile::TempDir,
    config: &str,
    source: RunDataSource,
    now: time::OffsetDateTime,
) -> Pipeline {
    let path = dir.path().join("patchwatch.toml");
    std::fs::write(&path, config).unwrap();
    let vars = [
        ("PATCHWATCH_CONFIG", path.display().to_string()),
        ("PATCHWATCH_OUTBOX", dir.path().join("outbox").display().to_string()),
        ("PATCHWATCH_SNAPSHOT", "unused".to_owned()),
        ("PATCHWATCH_STATE", format!("file://{}", dir.path().join("state").display())),
    ];
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut p = integration_tests::pipeline(&vars);
    p.source = source;
    integration_tests::at(p, now)
}

/// A failed run opens a follow-up; the configuration's next run, on which those machines simply
/// succeed, sends the `watching: …` queries (every one `queries_for_check` lists, each passing
/// Microsoft's KQL parser), lists the watched machines as Succeeded and counts the rest, and the
/// reminders timer then closes the follow-up as fixed by that run.
#[tokio::test(flavor = "multi_thread")]
async fn watched_machines_of_an_open_follow_up_are_listed_and_close_it() {
    let (rows, first, second, problems) = a_failed_run_then_a_clean_one();
    assert_eq!(problems.len(), 12, "premise");
    let graph = EvalGraph::start(&rows);
    let dir = tempfile::tempdir().unwrap();
    let pipeline = |now| routed_pipeline(&dir, FOLLOW_UP_CONFIG, graph.source(THROTTLE_BUDGET), now);

    // The failed run: its summary goes to the owners and a follow-up opens on its 12 machines.
    let t0 = first.end + time::Duration::hours(1);
    let p = pipeline(t0);
    let outcome = p.process(&first).await;
    let EventOutcome::Sent(sent) = outcome else { panic!("first run: {outcome:?}") };
    assert!(sent.summary.verdict.is_failure(), "{}", sent.summary.subject());
    let followups = p.followups.all().await.unwrap();
    assert_eq!(followups.len(), 1, "{followups:#?}");
    let watched: BTreeSet<String> = followups[0].machines.iter().map(|m| m.id.to_ascii_lowercase()).collect();
    assert_eq!(watched, problems, "the follow-up is about the failed run's problem machines");
    let first_queries = graph.queries().await;
    assert_every_query_answered(&first_queries);
    // Nothing watched yet: the first run sends exactly the plain post queries.
    let listed = queries_for_check();
    let shapes_named = |prefix: &str| -> BTreeSet<String> {
        listed.iter().filter(|(n, _)| n.starts_with(prefix)).map(|(_, q)| shape(q)).collect()
    };
    let first_shapes: BTreeSet<String> = first_queries.iter().filter_map(|q| q.query.as_deref()).map(shape).collect();
    assert_eq!(first_shapes, shapes_named("post:"), "the first run sends the plain post queries");

    // The next run a week later: every machine simply succeeds.
    let t1 = second.end + time::Duration::hours(1);
    let outcome = pipeline(t1).process(&second).await;
    let EventOutcome::Sent(sent) = outcome else { panic!("second run: {outcome:?}") };
    let all = graph.queries().await;
    let second_queries = &all[first_queries.len()..];
    assert_every_query_answered(second_queries);
    assert!(second_queries.iter().all(|q| q.status == 200));
    assert_eq!(second_queries.len(), 4, "four queries, one page each");

    // The queries it sent are exactly the `watching: …` shapes, each naming every watched machine.
    let watching: BTreeMap<String, &str> =
        listed.iter().filter(|(n, _)| n.starts_with("watching:")).map(|(n, q)| (shape(q), *n)).collect();
    let sent_texts: Vec<String> = second_queries.iter().filter_map(|q| q.query.clone()).collect();
    let sent_shapes: BTreeSet<String> = sent_texts.iter().map(|q| shape(q)).collect();
    let expected_shapes = shapes_named("watching:");
    let missing: Vec<&str> = watching.iter().filter(|(s, _)| !sent_shapes.contains(*s)).map(|(_, n)| *n).collect();
    assert!(missing.is_empty(), "watching shapes not sent by the second run: {missing:?}");
    assert_eq!(sent_shapes, expected_shapes, "the second run sent only watching shapes");
    let naming_all = sent_texts.iter().filter(|t| problems.iter().all(|m| t.contains(&format!("'{m}'")))).count();
    assert_eq!(naming_all, 3, "the counts, run machines and failed patches queries name every watched machine");
    let named: Vec<(String, String)> =
        sent_texts.iter().enumerate().map(|(i, q)| (format!("second run #{i}"), q.clone())).collect();
    let (code, checked) = kql::check(&named);
    let errors = kql::describe(&checked, &named);
    assert!(errors.is_empty(), "Microsoft's KQL parser rejects the watching queries:{errors}");
    assert_eq!(code, Some(0));

    // Its summary: the watched machines listed as Succeeded, the other 48 counted.
    let s = &sent.summary;
    assert_eq!(s.verdict, patchwatch_model::summary::Verdict::Succeeded, "{}", s.subject());
    assert_eq!((s.counts.total, s.counts.succeeded, s.counts.patched), (60, 60, 60), "{}", s.subject());
    let listed_machines: BTreeSet<String> = s.machines.iter().map(|m| m.id.to_ascii_lowercase()).collect();
    assert_eq!(listed_machines, problems, "exactly the watched machines are listed");
    assert!(
        s.machines.iter().all(|m| m.outcome == patchwatch_model::summary::Outcome::Succeeded),
        "{:?}",
        s.machines.iter().map(|m| (&m.name, m.outcome)).collect::<Vec<_>>()
    );
    assert_eq!(s.succeeded.iter().map(|g| g.count).sum::<usize>(), 48, "{:?}", s.succeeded);

    // The reminders timer closes the follow-up as fixed by the later run; nothing stays open.
    let pass = patchwatch_engine::reminders::tick(&pipeline(t1 + time::Duration::hours(1))).await.unwrap();
    assert_eq!(pass.open, 0, "{pass:?}");
    assert_eq!(pass.closed.len(), 1, "{pass:?}");
    assert!(pass.closed[0].2.contains("succeeded in a later run (20261117220000)"), "{:?}", pass.closed);
    assert!(pass.deliveries.reports.is_empty(), "no reminder sent: {:?}", pass.deliveries.reports);
    let followups = pipeline(t1).followups.all().await.unwrap();
    assert!(followups.iter().all(|f| f.closed.is_some()), "{followups:#?}");
}

/// Most machines a post event watches (`MAX_WATCHED`, crates/engine/src/pipeline.rs).
const MAX_WATCHED: usize = 500;

/// A follow-up of more machines than a run may watch is worked through over the following runs:
/// 1,300 machines, 780 with a problem in the failed run. The next (clean) run lists the first
/// 500 of them as Succeeded and the follow-up stays open on the other 280 (the reminder says
/// so); the run after it lists exactly those 280, the reminders timer closes the follow-up, and
/// no reminder is sent after that. Every run stays within a few Resource Graph requests.
#[tokio::test(flavor = "multi_thread")]
async fn a_follow_up_of_more_machines_than_watched_closes_over_the_following_runs() {
    let clock = Instant::now();
    let (rows, runs, problems) = a_failed_run_then_clean_ones(1_300, 3, 2);
    let [first, second, third] = <[MaintenanceEvent; 3]>::try_from(runs).unwrap();
    assert_eq!(problems.len(), 780, "premise");
    let graph = EvalGraph::start(&rows);
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    let pipeline = |now| routed_pipeline(&dir, FOLLOW_UP_CONFIG, graph.source(THROTTLE_BUDGET), now);
    let mut seen = 0;
    let mut requests = Vec::new();
    let mut new_requests = |queries: Vec<RecordedQuery>, what: &str| {
        let new = queries[seen..].to_vec();
        seen = queries.len();
        assert_every_query_answered(&new);
        assert!(new.iter().all(|q| q.status == 200), "{what}: throttled");
        assert!(new.len() <= 6, "{what}: {} requests: {:#?}", new.len(), pages_per_query(&new));
        requests.push((what.to_owned(), new.len()));
        new
    };

    // The failed run: a follow-up opens on its 780 problem machines.
    let outcome = pipeline(first.end + time::Duration::hours(1)).process(&first).await;
    let EventOutcome::Sent(sent) = outcome else { panic!("first run: {outcome:?}") };
    assert!(sent.summary.verdict.is_failure(), "{}", sent.summary.subject());
    new_requests(graph.queries().await, "first run");
    let followups = pipeline(first.end).followups.all().await.unwrap();
    assert_eq!(followups.len(), 1, "{:#?}", followups.iter().map(|f| (&f.route, &f.group)).collect::<Vec<_>>());
    let in_follow_up: BTreeSet<String> = followups[0].machines.iter().map(|m| m.id.to_ascii_lowercase()).collect();
    assert_eq!(in_follow_up, problems, "the follow-up is about the failed run's 780 problem machines");

    // Each clean run lists the next machines still open (in id order, at most MAX_WATCHED) as
    // Succeeded and counts the rest.
    let watched_first: Vec<&String> = problems.iter().take(MAX_WATCHED).collect();
    let watched_next: Vec<&String> = problems.iter().skip(MAX_WATCHED).collect();
    let mut reminded = Vec::new();
    for (run, expected, what) in [(&second, &watched_first, "second run"), (&third, &watched_next, "third run")] {
        let now = run.end + time::Duration::hours(1);
        let outcome = pipeline(now).process(run).await;
        let EventOutcome::Sent(sent) = outcome else { panic!("{what}: {outcome:?}") };
        let sent_queries = new_requests(graph.queries().await, what);
        let s = &sent.summary;
        assert_eq!(s.verdict, patchwatch_model::summary::Verdict::Succeeded, "{what}: {}", s.subject());
        assert_eq!((s.counts.total, s.counts.succeeded, s.counts.patched), (1_300, 1_300, 1_300), "{what}");
        let listed: BTreeSet<String> = s.machines.iter().map(|m| m.id.to_ascii_lowercase()).collect();
        let expected: BTreeSet<String> = expected.iter().map(|id| (*id).clone()).collect();
        assert_eq!(listed.len(), expected.len(), "{what}: machines listed");
        assert_eq!(listed, expected, "{what}: exactly the machines still open are listed");
        assert!(
            s.machines.iter().all(|m| m.outcome == patchwatch_model::summary::Outcome::Succeeded),
            "{what}: {:?}",
            s.machines.iter().filter(|m| m.outcome != patchwatch_model::summary::Outcome::Succeeded).count()
        );
        assert_eq!(s.succeeded.iter().map(|g| g.count).sum::<usize>(), 1_300 - expected.len(), "{what}");
        let naming_all = sent_queries
            .iter()
            .filter_map(|q| q.query.as_deref())
            .filter(|t| expected.iter().all(|m| t.contains(&format!("'{m}'"))))
            .count();
        assert_eq!(
            naming_all, 3,
            "{what}: the counts, run machines and failed patches queries name every watched machine"
        );

        // The reminders timer an hour later.
        let pass = patchwatch_engine::reminders::tick(&pipeline(now + time::Duration::hours(1))).await.unwrap();
        reminded.push((what, pass.open, pass.closed.len(), pass.deliveries.reports.len()));
        if what == "second run" {
            // 280 machines are still open: the follow-up stays, and its (due) reminder says so.
            assert_eq!((pass.open, pass.closed.len()), (1, 0), "{what}: {pass:?}");
            let mails: Vec<String> = integration_tests::files(&outbox, "eml")
                .iter()
                .map(|f| std::fs::read_to_string(f).unwrap())
                .filter(|m| m.contains("still not patched"))
                .collect();
            assert_eq!(mails.len(), 1, "{what}: one reminder: {:?}", pass.deliveries.reports);
            assert!(mails[0].contains("280 machine(s) of this run are still not patched"), "{}", mails[0]);
        } else {
            assert_eq!((pass.open, pass.closed.len()), (0, 1), "{what}: {pass:?}");
            let stamp = third.correlation_id.rsplit('/').next().unwrap();
            assert!(
                pass.closed[0].2.contains(&format!("every machine succeeded in a later run ({stamp})")),
                "{:?}",
                pass.closed
            );
            assert!(pass.deliveries.reports.is_empty(), "{what}: no reminder sent: {:?}", pass.deliveries.reports);
        }
    }
    let followups = pipeline(third.end).followups.all().await.unwrap();
    assert!(followups.iter().all(|f| f.closed.is_some()), "{followups:#?}");
    // A day later nothing is reminded any more.
    let later = third.end + time::Duration::days(1);
    let pass = patchwatch_engine::reminders::tick(&pipeline(later)).await.unwrap();
    assert_eq!((pass.open, pass.closed.len()), (0, 0), "{pass:?}");
    assert!(pass.deliveries.reports.is_empty(), "no reminder after the close: {:?}", pass.deliveries.reports);
    let reminders = integration_tests::files(&outbox, "eml")
        .iter()
        .filter(|f| std::fs::read_to_string(f).unwrap().contains("still not patched"))
        .count();
    assert_eq!(reminders, 1, "only the reminder after the second run");
    eprintln!("requests per run: {requests:?}; reminder passes: {reminded:?}; took {:?}", clock.elapsed());
}
