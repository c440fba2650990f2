//! Inhibition end to end, through the alert router served in this process: 200 assignment
//! alerts within the window become ONE notice listing every machine (each alert recorded as
//! inhibited), and an "apply updates failed" alert of a run whose summary is (or will be) sent
//! within its grace period sends nothing on its own; without a summary it is sent after all.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::StreamExt;
use integration_tests::{alert_bodies::common_alert, example, http, pipeline, root, smtp::SmtpSink};
use patchwatch_engine::{
    inhibit::{self, Member},
    pipeline::{EventOutcome, Pipeline},
};
use patchwatch_model::{
    event::{Incoming, MaintenanceEvent, parse_delivery},
    failure::DeliveryStatus,
    notice::{Notice, NoticeKind, Severity},
};
use patchwatch_state::ledger::{DeliveryRecord, DeliveryState};
use serde_json::Value;
use time::{OffsetDateTime, macros::datetime};

const SUB: &str = "/subscriptions/910a2dec-8902-4cc1-8bee-8da1658eec67";
const T0: OffsetDateTime = datetime!(2026-11-11 02:00 UTC);

struct App {
    url: String,
    p: Arc<Pipeline>,
    now: Arc<Mutex<OffsetDateTime>>,
}

impl App {
    fn set(&self, t: OffsetDateTime) {
        *self.now.lock().unwrap() = t;
    }

    async fn post(&self, body: &Value) -> Value {
        let r = http().post(&self.url).json(body).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    async fn records(&self, state: DeliveryState) -> Vec<DeliveryRecord> {
        self.p.ledger().list(None).await.unwrap().into_iter().filter(|r| r.state == state).collect()
    }
}

/// The alert router over loopback, on a pipeline whose clock the test moves.
async fn serve(sink: &SmtpSink, extra: &[(&str, &str)]) -> App {
    let snapshot = root().join("examples/snapshot.json").display().to_string();
    let mut vars = vec![
        ("PATCHWATCH_SMTP_URL", sink.url()),
        ("PATCHWATCH_MAIL_TO", "ops@example.com".to_owned()),
        ("PATCHWATCH_SNAPSHOT", snapshot),
    ];
    vars.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut p = pipeline(&vars);
    let now = Arc::new(Mutex::new(T0));
    let clock = now.clone();
    p.set_clock(Arc::new(move || *clock.lock().unwrap()));
    let p = Arc::new(p);
    let state = alert_webhook::AppState { pipeline: p.clone(), token: None };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, alert_webhook::router(state)).await.unwrap() });
    App { url: format!("http://{addr}/api/alerts"), p, now }
}

fn assignment(machine: &str) -> String {
    format!(
        "{SUB}/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/{machine}/providers/Microsoft.Maintenance/configurationAssignments/Ring2-Prod"
    )
}

fn post_event() -> MaintenanceEvent {
    match parse_delivery(example("events/post-maintenance.json").as_bytes()).unwrap().remove(0) {
        Incoming::Maintenance(m) => *m,
        _ => unreachable!(),
    }
}

fn apply_failed(run: &str, event_id: &str) -> Value {
    let mc = format!(
        "{SUB}/resourceGroups/rg-patching/providers/Microsoft.Maintenance/maintenanceConfigurations/Ring2-Prod"
    );
    common_alert(
        "Microsoft.Maintenance/applyUpdates/write",
        "Failed",
        &format!("{mc}/providers/Microsoft.Maintenance/applyUpdates/{run}"),
        event_id,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_assignment_writes_within_the_window_make_one_notice() {
    let sink = SmtpSink::start();
    let app = serve(&sink, &[]).await;
    let machines: Vec<String> = (0..200).map(|i| format!("vm-web-{i:03}")).collect();
    let bodies: Vec<Value> = machines
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let op = if i % 10 == 0 { "delete" } else { "write" };
            common_alert(
                &format!("Microsoft.Maintenance/configurationAssignments/{op}"),
                "Succeeded",
                &assignment(m),
                &format!("e-{i}"),
            )
        })
        .collect();
    // The first alert opens the group; the rest arrive 8 at a time.
    let first = app.post(&bodies[0]).await;
    assert_eq!(first["deliveries"][0]["outcome"], "inhibited", "{first}");
    let answers: Vec<Value> =
        futures::stream::iter(bodies[1..].iter().map(|b| app.post(b))).buffer_unordered(8).collect().await;
    for a in &answers {
        assert_eq!(a["deliveries"][0]["outcome"], "inhibited", "{a}");
    }
    // A redelivered alert joins once.
    assert_eq!(app.post(&bodies[7]).await["deliveries"][0]["outcome"], "inhibited");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.count(), 0, "nothing is sent while the window is open");

    let inhibited = app.records(DeliveryState::Inhibited).await;
    assert_eq!(inhibited.len(), 200, "each alert's own delivery is recorded as inhibited");
    let group = inhibited[0].detail.clone().unwrap();
    assert!(
        group.starts_with("grouped into the assignment notice for Ring2-Prod by alice@contoso.com, group ring2-prod-"),
        "{group}"
    );
    assert!(inhibited.iter().all(|r| r.detail.as_ref() == Some(&group)), "every alert is in the one group");

    // Inside the window plus its settling time, a flush sends nothing.
    app.set(T0 + Duration::from_secs(300));
    assert!(inhibit::flush_due(&app.p).await.reports.is_empty());
    // The reminders timer flushes the group: its Functions envelope over real TCP.
    app.set(T0 + Duration::from_secs(6 * 60));
    let events = maintenance_events::AppState {
        pipeline: app.p.clone(),
        deadline: Duration::from_secs(25),
        token: None,
        entra: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let timer = format!("http://{}/reminders", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, maintenance_events::router(events)).await.unwrap() });
    let envelope = serde_json::json!({ "Data": { "timer": { "IsPastDue": false } }, "Metadata": {} });
    let answer: Value = http().post(&timer).json(&envelope).send().await.unwrap().json().await.unwrap();
    let log: Value = serde_json::from_str(answer["Logs"][0].as_str().unwrap()).unwrap();
    assert_eq!(log["outcome"], "reminders", "{log}");
    let flushed = log["deliveries"].as_array().unwrap();
    assert_eq!(flushed.len(), 1, "{log}");
    assert_eq!(flushed[0]["outcome"], "sent", "{log}");
    let mail = sink.new_since(&[], 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.count(), 1, "one notice for 200 alerts");
    assert_eq!(
        mail[0].subject(),
        "[patchwatch] Warning: 200 configuration assignment(s) of Ring2-Prod changed by alice@contoso.com (180 written, 20 deleted)"
    );
    let text = mail[0].text();
    for m in &machines {
        assert!(text.contains(m), "{m} missing from the notice");
    }
    assert!(text.contains("and 100 more"), "the text lists at most 100 lines: {text}");

    // A second flush sends nothing; the group's records are gone but the seal.
    assert!(inhibit::flush_due(&app.p).await.reports.is_empty());
    let left = app.p.ledger().store().list("alerts/groups/").await.unwrap();
    assert!(left.len() == 1 && left[0].ends_with("/sealed"), "{left:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sink.count(), 1);
    let sent = app.records(DeliveryState::Sent).await;
    assert_eq!(sent.len(), 1);
    assert!(sent[0].run_id.starts_with("alert-group:ring2-prod-"), "{}", sent[0].run_id);
}

fn member(machine: &str, event: &str, caller: &str) -> (Member, Notice) {
    let m = Member {
        configuration: "Ring2-Prod".to_owned(),
        caller: caller.to_owned(),
        machine: machine.to_owned(),
        operation: "write".to_owned(),
        status: "Succeeded".to_owned(),
        time: "2026-11-11T02:00:00Z".to_owned(),
        resource_id: assignment(machine),
        event: event.to_owned(),
    };
    let mut n =
        Notice::new(NoticeKind::Alert, format!("alert:{event}"), Severity::Warning, format!("{machine} changed"));
    n.configuration = Some("Ring2-Prod".to_owned());
    (m, n)
}

fn group_of(d: &patchwatch_model::failure::Delivered) -> String {
    d.report.detail.rsplit("group ").next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouping_edges_window_boundary_callers_and_late_members() {
    let sink = SmtpSink::start();
    let app = serve(&sink, &[]).await;
    let p = &app.p;
    let (m1, n1) = member("vm1", "e1", "alice@contoso.com");
    let g1 = inhibit::group_assignment(p, &m1, &n1).await.unwrap();
    // Another caller: a group of its own.
    let (m2, n2) = member("vm2", "e2", "bob@contoso.com");
    let g2 = inhibit::group_assignment(p, &m2, &n2).await.unwrap();
    assert_ne!(group_of(&g1), group_of(&g2));
    // One second before the window closes: the same group.
    app.set(T0 + Duration::from_secs(299));
    let (m3, n3) = member("vm3", "e3", "alice@contoso.com");
    assert_eq!(group_of(&inhibit::group_assignment(p, &m3, &n3).await.unwrap()), group_of(&g1));
    // At the boundary the window has passed: a new group opens.
    app.set(T0 + Duration::from_secs(300));
    let (m4, n4) = member("vm4", "e4", "alice@contoso.com");
    let g4 = inhibit::group_assignment(p, &m4, &n4).await.unwrap();
    assert_ne!(group_of(&g4), group_of(&g1), "an alert after the window opens a new group");

    // The first two groups are due (window + 30 s); the new one is not.
    app.set(T0 + Duration::from_secs(331));
    let flushed = inhibit::flush_due(p).await;
    assert_eq!(flushed.reports.len(), 2, "{:?}", flushed.reports);
    let mail = sink.new_since(&[], 2).await;
    let mut subjects: Vec<String> = mail.iter().map(|m| m.subject()).collect();
    subjects.sort();
    assert_eq!(
        subjects,
        [
            "[patchwatch] Warning: 1 configuration assignment(s) of Ring2-Prod changed by bob@contoso.com (1 written)",
            "[patchwatch] Warning: 2 configuration assignment(s) of Ring2-Prod changed by alice@contoso.com (2 written)",
        ]
    );
    // A member that joined a group after its flush sealed it is not lost: it is sent on its
    // own (the caller sends it when `group_assignment` answers None).
    let store = p.ledger().store();
    let open =
        store.get(&patchwatch_state::keys::alert_open("Ring2-Prod", "alice@contoso.com")).await.unwrap().unwrap();
    let sealed = format!("alerts/groups/{}/sealed", group_of(&g4));
    store.create(&sealed, b"{\"sealed\":\"2026-11-11T02:05:31Z\"}").await.unwrap();
    let (m5, n5) = member("vm5", "e5", "alice@contoso.com");
    assert!(inhibit::group_assignment(p, &m5, &n5).await.is_none(), "a sealed group sends the late member alone");
    assert!(String::from_utf8_lossy(&open.data).contains(&group_of(&g4)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_updates_failure_of_a_summarised_run_sends_nothing_of_its_own() {
    let run = "20261110220000";
    // (1) The run is summarised first, then the alert comes: folded, nothing sent.
    let sink = SmtpSink::start();
    let app = serve(&sink, &[]).await;
    assert!(matches!(app.p.process(&post_event()).await, EventOutcome::Sent(_)));
    let summary = sink.new_since(&[], 1).await;
    assert_eq!(summary.len(), 1);
    let answer = app.post(&apply_failed(run, "e-fail-1")).await;
    assert_eq!(answer["deliveries"][0]["outcome"], "inhibited", "{answer}");
    assert!(inhibit::flush_due(&app.p).await.reports.is_empty());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.count(), 1, "only the summary");
    let inhibited = app.records(DeliveryState::Inhibited).await;
    assert_eq!(inhibited.len(), 1);
    let detail = inhibited[0].detail.as_deref().unwrap();
    assert!(detail.starts_with("folded into the run summary of Ring2-Prod run 20261110220000"), "{detail}");
    // Delivered again: still nothing.
    assert_eq!(app.post(&apply_failed(run, "e-fail-1")).await["deliveries"][0]["outcome"], "inhibited");

    // (2) The alert comes first and is held; the summary follows within the grace period.
    let sink = SmtpSink::start();
    let app = serve(&sink, &[]).await;
    let answer = app.post(&apply_failed(run, "e-fail-2")).await;
    assert_eq!(answer["deliveries"][0]["outcome"], "skipped", "{answer}");
    assert!(
        answer["deliveries"][0]["detail"].as_str().unwrap().starts_with("held until 2026-11-11T02:20:00Z"),
        "{answer}"
    );
    app.set(T0 + Duration::from_secs(600));
    assert!(matches!(app.p.process(&post_event()).await, EventOutcome::Sent(_)));
    app.set(T0 + Duration::from_secs(25 * 60));
    let flushed = inhibit::flush_due(&app.p).await;
    assert_eq!(flushed.reports.len(), 1, "{:?}", flushed.reports);
    assert_eq!(flushed.reports[0].outcome, DeliveryStatus::Inhibited);
    assert!(inhibit::flush_due(&app.p).await.reports.is_empty(), "the held record is gone");
    let mail = sink.new_since(&[], 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.count(), 1);
    assert!(!mail[0].subject().contains("Apply updates failed"), "{}", mail[0].subject());
    assert_eq!(app.records(DeliveryState::Inhibited).await.len(), 1);

    // (3) No summary ever: after the grace period the alert is sent after all.
    let sink = SmtpSink::start();
    let app = serve(&sink, &[]).await;
    let answer = app.post(&apply_failed("20261117220000", "e-fail-3")).await;
    assert_eq!(answer["deliveries"][0]["outcome"], "skipped", "{answer}");
    app.set(T0 + Duration::from_secs(19 * 60));
    assert!(inhibit::flush_due(&app.p).await.reports.is_empty(), "inside grace + margin: still held");
    app.set(T0 + Duration::from_secs(20 * 60));
    let flushed = inhibit::flush_due(&app.p).await;
    assert_eq!(flushed.reports.len(), 1, "{:?}", flushed.reports);
    assert_eq!(flushed.reports[0].outcome, DeliveryStatus::Sent);
    let mail = sink.new_since(&[], 1).await;
    assert_eq!(mail[0].subject(), "[patchwatch] Critical: Apply updates failed for Ring2-Prod");
    assert!(mail[0].text().contains("Run summary: none within the grace period for Ring2-Prod run 20261117220000"));
    assert!(inhibit::flush_due(&app.p).await.reports.is_empty());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sink.count(), 1);

    // (4) The run is complete but no route sent its summary anywhere: nothing to fold into, so
    // the alert is sent at once.
    let sink4 = SmtpSink::start();
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), "[channels.mail]\ntype = \"email\"\n\n[[routes]]\nname = \"ring9\"\nmatch = { configuration = \"Ring9-*\" }\nchannels = [\"mail\"]\n").unwrap();
    let app4 = serve(&sink4, &[("PATCHWATCH_CONFIG", &config.path().display().to_string())]).await;
    assert!(matches!(app4.p.process(&post_event()).await, EventOutcome::Sent(_)));
    let answer = app4.post(&apply_failed(run, "e-fail-5")).await;
    assert_eq!(answer["deliveries"][0]["outcome"], "sent", "{answer}");
    let mail = sink4.new_since(&[], 1).await;
    assert!(
        mail[0].text().contains("Run summary: none sent (no route matched the run) for Ring2-Prod run 20261110220000"),
        "{}",
        mail[0].text()
    );

    // A machine-level apply-updates has no run summary: told at once, as before.
    let machine_run = format!(
        "{SUB}/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/vm1/providers/Microsoft.Maintenance/applyUpdates/default"
    );
    let body = common_alert("Microsoft.Maintenance/applyUpdates/write", "Failed", &machine_run, "e-fail-4");
    assert_eq!(app.post(&body).await["deliveries"][0]["outcome"], "sent");
}
