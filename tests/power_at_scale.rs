//! Every stopped VM of a large run is seen and started, however many there are: a pre event for
//! a run of 3,000 machines (2,700 Azure VMs, 300 Arc machines) of which 1,200 VMs are
//! deallocated or stopped, spread through the id order (more than the old 500-machine cap on
//! power-state lookups). The run data comes through the evaluating Resource Graph fake
//! (tests/support/graph_eval.py), ARM is the loopback fake (tests/support/arm.rs), `[power]`
//! starts the stopped VMs and, after the post event, returns exactly those to their earlier
//! state.
//!
//! Needs duckdb-kql in the test venv (.ci/run installs it); fails with an install hint without it.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::{Duration, Instant},
};

use integration_tests::{arm::FakeArm, example, files, graph::FakeCredential, graph_eval::EvalGraph};
use patchwatch_azure::{arm::ArmClient, resource_graph::ResourceGraphOptions};
use patchwatch_engine::{pipeline::EventOutcome, source::RunDataSource};
use patchwatch_model::event::{Incoming, MaintenanceEvent, parse_delivery};
use serde_json::json;

const MACHINES: usize = 3_000;
/// VMs deallocated (900) or stopped (300) before the run.
const STOPPED: usize = 1_200;
/// Arc machines whose agent is disconnected.
const DISCONNECTED: usize = 100;
/// The power pass's bound on concurrent ARM calls.
const CONCURRENCY: usize = 16;

const CONFIG: &str = r#"
[channels.ops]
type = "email"
to = ["ops@example.com"]

[[routes]]
name = "heads-up"
match = { phase = "pre" }
channels = ["ops"]

[power]
configurations = ["Ring2-*"]
concurrency = 16
notify = ["ops"]
"#;

fn pre_event() -> MaintenanceEvent {
    match parse_delivery(example("events/pre-maintenance.json").as_bytes()).unwrap().remove(0) {
        Incoming::Maintenance(m) => *m,
        other => panic!("unexpected {other:?}"),
    }
}

/// What the run looks like before it starts, by lower-cased machine id.
#[derive(Default)]
struct Expected {
    /// Azure VMs deallocated or stopped.
    stopped: BTreeSet<String>,
    /// Those of them stopped but still allocated (powered off, not deallocated).
    powered_off: BTreeSet<String>,
    /// Azure VMs running.
    running: BTreeSet<String>,
    arc_connected: BTreeSet<String>,
    arc_disconnected: BTreeSet<String>,
}

/// The run's rows in ARG's shapes: every machine's `applyupdates` row and its `resources` row
/// (no installation results yet: it is the pre event). Every tenth machine is an Arc machine
/// (a third of them disconnected); of the VMs, four in nine are deallocated or stopped, so the
/// stopped ones are spread through every page of the machine list, not first in id order.
fn run_rows(event: &MaintenanceEvent) -> (String, Expected) {
    let run = event.correlation_id.to_ascii_lowercase();
    let config = event.maintenance_configuration_id.to_ascii_lowercase();
    let subs = &event.subscription_ids;
    let mut expected = Expected::default();
    let (mut updates, mut resources) = (Vec::new(), Vec::new());
    updates.push(json!({
        "id": run, "type": "microsoft.maintenance/applyupdates",
        "properties": { "correlationId": run, "maintenanceConfigurationId": config, "status": "Pending",
                        "startDateTime": "2026-11-10T22:00:00Z", "endDateTime": "2026-11-11T00:00:00Z" },
    }));
    let mut vms = 0usize;
    for i in 0..MACHINES {
        let sub = &subs[i % subs.len()];
        let rg = format!("rg-{:02}", (i / 7) % 25);
        let arc = i % 10 == 9;
        let machine = if arc {
            format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.HybridCompute/machines/arc-{i:05}")
        } else {
            format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/vm-{i:05}")
        };
        updates.push(json!({
            "id": format!("{machine}/providers/microsoft.maintenance/applyupdates/20261110220000"),
            "type": "microsoft.maintenance/applyupdates",
            "properties": { "correlationId": run, "maintenanceConfigurationId": config, "resourceId": machine,
                            "status": "Pending", "startDateTime": "2026-11-10T22:00:00Z",
                            "endDateTime": "2026-11-11T00:00:00Z" },
        }));
        let name = machine.rsplit('/').next().unwrap().to_owned();
        let key = machine.to_ascii_lowercase();
        if arc {
            let disconnected = i % 30 == 29;
            let status = if disconnected { "Disconnected" } else { "Connected" };
            resources.push(json!({
                "id": machine, "name": name, "type": "microsoft.hybridcompute/machines",
                "tags": { "env": "prod" },
                "properties": { "status": status, "osType": "windows", "osName": "windows" },
            }));
            if disconnected { &mut expected.arc_disconnected } else { &mut expected.arc_connected }.insert(key);
        } else {
            let power = match vms % 9 {
                0..=2 => "PowerState/deallocated",
                3 => "PowerState/stopped",
                _ => "PowerState/running",
            };
            vms += 1;
            resources.push(json!({
                "id": machine, "name": name, "type": "microsoft.compute/virtualmachines",
                "tags": { "env": "prod" },
                "properties": { "extended": { "instanceView": { "powerState": { "code": power } } },
                                "storageProfile": { "osDisk": { "osType": "Windows" } } },
            }));
            if power == "PowerState/stopped" {
                expected.powered_off.insert(key.clone());
            }
            if power == "PowerState/running" { &mut expected.running } else { &mut expected.stopped }.insert(key);
        }
    }
    let rows = json!({ "maintenanceresources": updates, "patchinstallationresources": [], "resources": resources });
    (rows.to_string(), expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stopped_vm_of_a_large_run_is_started_once() {
    let clock = Instant::now();
    let pre = pre_event();
    let (rows, expected) = run_rows(&pre);
    assert_eq!(expected.stopped.len(), STOPPED, "premise");
    assert_eq!(expected.arc_disconnected.len(), DISCONNECTED, "premise");
    assert_eq!(
        expected.stopped.len()
            + expected.running.len()
            + expected.arc_connected.len()
            + expected.arc_disconnected.len(),
        MACHINES
    );
    // Spread: stopped VMs in every thousand machines of the id order (every page).
    let all: BTreeSet<&String> = expected
        .stopped
        .iter()
        .chain(&expected.running)
        .chain(&expected.arc_connected)
        .chain(&expected.arc_disconnected)
        .collect();
    let ordered: Vec<&&String> = all.iter().collect();
    for page in ordered.chunks(1000) {
        let stopped = page.iter().filter(|m| expected.stopped.contains(**m as &String)).count();
        assert!(stopped > 300, "premise: stopped VMs on every page ({stopped})");
    }
    let graph = EvalGraph::start(&rows);
    let fake_loaded = clock.elapsed();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("patchwatch.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let out = dir.path().join("outbox");
    let vars = [
        ("PATCHWATCH_CONFIG", config.display().to_string()),
        ("PATCHWATCH_OUTBOX", out.display().to_string()),
        ("PATCHWATCH_SNAPSHOT", "unused".to_owned()),
        ("PATCHWATCH_STATE", format!("file://{}", dir.path().join("state").display())),
    ];
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut p = integration_tests::pipeline(&vars);
    let options = ResourceGraphOptions {
        max_throttle_wait: Duration::from_secs(60),
        load_budget: Duration::from_secs(60),
        ..ResourceGraphOptions::default()
    };
    p.source = RunDataSource::ResourceGraph(Arc::new(graph.client(options)));
    let (server, arm) = FakeArm::start().await;
    p.arm = Some(ArmClient::new(
        server.uri().parse().unwrap(),
        Arc::new(FakeCredential),
        "https://management.azure.com/.default".to_owned(),
    ));
    // T-35 minutes: before the run, so the stopped VMs are started.
    let now = pre.start - time::Duration::minutes(35);
    let p = integration_tests::at(p, now);

    let clock = Instant::now();
    let outcome = p.process(&pre).await;
    let processed = clock.elapsed();
    let EventOutcome::Sent(sent) = outcome else { panic!("expected the heads-up sent, got {outcome:?}") };

    // Started: every stopped VM exactly once, nothing else.
    let mut starts: BTreeMap<String, usize> = BTreeMap::new();
    for call in arm.calls_ending("POST", "/start") {
        assert_eq!(call.api_version, "2024-07-01");
        let id = call.path.to_ascii_lowercase().strip_suffix("/start").unwrap().to_owned();
        *starts.entry(id).or_default() += 1;
    }
    let twice: Vec<(&String, &usize)> = starts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "started more than once: {twice:?}");
    let started: BTreeSet<String> = starts.into_keys().collect();
    let missed: Vec<&String> = expected.stopped.difference(&started).collect();
    let extra: Vec<&String> = started.difference(&expected.stopped).collect();
    assert!(
        missed.is_empty() && extra.is_empty(),
        "{} stopped VMs not started (first {:?}); {} machines started that were not stopped VMs (first {:?})",
        missed.len(),
        missed.first(),
        extra.len(),
        extra.first()
    );
    assert_eq!(started.len(), STOPPED);
    let others = arm.calls().into_iter().filter(|c| !c.path.to_ascii_lowercase().ends_with("/start")).count();
    assert_eq!(others, 0, "no other ARM call: {:?}", arm.calls().iter().find(|c| !c.path.ends_with("/start")));

    // The load: one query (every machine with its power state), three pages of 1,000 rows.
    let queries = graph.queries().await;
    assert!(queries.iter().all(|q| q.status == 200), "{:?}", queries.iter().map(|q| q.status).collect::<Vec<_>>());
    assert_eq!(queries.len(), 3, "3 pages for {MACHINES} machines");
    let texts: BTreeSet<&str> = queries.iter().filter_map(|q| q.query.as_deref()).collect();
    assert_eq!(texts.len(), 1, "one query, paged");
    let tokens: Vec<bool> =
        queries.iter().map(|q| q.options.as_ref().is_some_and(|o| o["$skipToken"].is_string())).collect();
    assert_eq!(tokens, [false, true, true]);

    // The heads-up: every machine counted, each stopped VM and disconnected Arc machine noted.
    let s = &sent.summary;
    assert_eq!(s.counts.total, MACHINES, "{}", s.subject());
    let notes: BTreeMap<String, String> =
        s.machines.iter().filter_map(|m| m.note.clone().map(|n| (m.id.to_ascii_lowercase(), n))).collect();
    let noted: BTreeSet<String> = notes.keys().cloned().collect();
    let off: BTreeSet<String> = expected.stopped.union(&expected.arc_disconnected).cloned().collect();
    assert_eq!(noted.len(), off.len(), "machines noted as off or disconnected");
    assert_eq!(noted, off);
    for m in &expected.stopped {
        assert!(notes[m].starts_with("VM was ") && notes[m].ends_with(" when last seen"), "{m}: {}", notes[m]);
    }
    for m in &expected.arc_disconnected {
        assert_eq!(notes[m], "Arc agent Disconnected", "{m}");
    }
    let advice = format!("{} machines are not running or not connected", STOPPED + DISCONNECTED);
    assert!(s.advice.iter().any(|a| a.starts_with(&advice)), "{:?}", s.advice);

    // Mail: the heads-up and the power notice, which names the count.
    let subjects: Vec<String> = files(&out, "eml").iter().map(|f| subject(f)).collect();
    assert!(subjects.iter().any(|x| x.contains("machines in scope")), "{subjects:?}");
    let started_notice = format!("started {STOPPED} stopped machine(s)");
    assert!(subjects.iter().any(|x| x.contains(&started_notice)), "{subjects:?}");

    // A redelivery starts nothing and reads nothing again.
    let again = p.process(&pre).await;
    assert!(matches!(again, EventOutcome::Duplicate { .. }), "{again:?}");
    assert_eq!(arm.calls_ending("POST", "/start").len(), STOPPED);
    assert_eq!(graph.queries().await.len(), 3);

    // The post event (no results reported: every machine is "no result"): exactly the started
    // machines go back, each once, to its state before: deallocated, or powered off.
    let post = match parse_delivery(example("events/post-maintenance.json").as_bytes()).unwrap().remove(0) {
        Incoming::Maintenance(m) => *m,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(post.correlation_id, pre.correlation_id, "premise: the same run");
    let p = integration_tests::at(p, post.end + time::Duration::hours(2));
    let clock = Instant::now();
    let outcome = p.process(&post).await;
    let post_processed = clock.elapsed();
    assert!(matches!(outcome, EventOutcome::Sent(_)), "{outcome:?}");
    let back = |action: &str| -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for call in arm.calls_ending("POST", &format!("/{action}")) {
            let id = call
                .path
                .to_ascii_lowercase()
                .strip_suffix(&format!("/{}", action.to_ascii_lowercase()))
                .unwrap()
                .to_owned();
            *out.entry(id).or_insert(0usize) += 1;
        }
        out
    };
    let (deallocated, powered_off) = (back("deallocate"), back("powerOff"));
    assert!(deallocated.values().chain(powered_off.values()).all(|n| *n == 1), "stopped more than once");
    let was_deallocated: BTreeSet<String> = expected.stopped.difference(&expected.powered_off).cloned().collect();
    assert_eq!(deallocated.keys().cloned().collect::<BTreeSet<_>>(), was_deallocated);
    assert_eq!(powered_off.keys().cloned().collect::<BTreeSet<_>>(), expected.powered_off);
    assert_eq!((deallocated.len(), powered_off.len()), (900, 300));
    assert_eq!(arm.calls_ending("POST", "/start").len(), STOPPED, "the post event starts nothing");
    // Succeeded counts, the 3,000 listed machines (three pages), unlisted results, failed patches.
    let post_queries = graph.queries().await.split_off(3);
    assert!(post_queries.iter().all(|q| q.status == 200));
    assert_eq!(post_queries.len(), 6, "post load requests");
    eprintln!(
        "power at scale: fake loaded in {fake_loaded:?}; pre event (3 Resource Graph requests, {STOPPED} starts at \
         concurrency {CONCURRENCY}) processed in {processed:?}; post event ({} Resource Graph requests, {STOPPED} \
         stops) in {post_processed:?}",
        post_queries.len()
    );
}

fn subject(eml: &std::path::Path) -> String {
    let raw = std::fs::read(eml).unwrap();
    let mail = mailparse::parse_mail(&raw).unwrap();
    mailparse::MailHeaderMap::get_first_value(&mail.headers[..], "Subject").unwrap()
}
