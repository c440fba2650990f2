//! After the first message: a failed run nobody owns is reminded, then escalated, until someone
//! acknowledges it (here by the one-click link, in headless Chromium) or a later run patches its
//! machines. The clock is injected, never slept; mail goes to an outbox.

use std::{path::Path, sync::Arc};

use integration_tests::{browser::browse, example, files, pipeline, root};
use patchwatch_engine::{pipeline::EventOutcome, pipeline::Pipeline, reminders};
use patchwatch_model::{
    event::{Incoming, MaintenanceEvent, parse_delivery},
    rundata::{RunData, RunQuery, snapshot},
};
use patchwatch_state::ledger::DeliveryState;
use time::{Duration, OffsetDateTime};

const CONFIG: &str = r#"
[channels.owners]
type = "email"
to = ["owners@example.com"]

[channels.oncall]
type = "email"
to = ["oncall@example.com"]

[[routes]]
name = "owners"
channels = ["owners"]
remind_after = ["4h", "24h"]
escalate_to = "page"
continue = true

[[routes]]
name = "page"
match = { when = ["failed_percent >= 50"] }
channels = ["oncall"]
"#;

/// The one-click signing key the pipelines share.
const KEY: &str = "reminders-test-key-0123456789abcdef0123456789";

struct Setup {
    _dir: tempfile::TempDir,
    out: std::path::PathBuf,
    state: std::path::PathBuf,
    config: std::path::PathBuf,
    /// Where one-click links point (the itsm-webhook app), when it serves them.
    public_url: Option<String>,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("patchwatch.toml");
    std::fs::write(&config, CONFIG).unwrap();
    Setup { out: dir.path().join("outbox"), state: dir.path().join("state"), config, public_url: None, _dir: dir }
}

impl Setup {
    fn pipeline(&self, now: OffsetDateTime) -> Pipeline {
        let mut vars = vec![
            ("PATCHWATCH_CONFIG", self.config.display().to_string()),
            ("PATCHWATCH_OUTBOX", self.out.display().to_string()),
            ("PATCHWATCH_MAIL_TO", "default@example.com".to_owned()),
            ("PATCHWATCH_SNAPSHOT", root().join("examples/snapshot.json").display().to_string()),
            ("PATCHWATCH_STATE", format!("file://{}", self.state.display())),
        ];
        if let Some(url) = &self.public_url {
            vars.push(("PATCHWATCH_PUBLIC_URL", url.clone()));
            vars.push(("PATCHWATCH_ACTION_KEYS", KEY.to_owned()));
        }
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut p = pipeline(&vars);
        p.set_clock(Arc::new(move || now));
        p
    }

    /// Serves the itsm-webhook app (the one-click pages) on 127.0.0.1 over the same state, at
    /// clock `now`; messages sent afterwards carry links to it.
    async fn serve_links(&mut self, now: OffsetDateTime) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.public_url = Some(format!("http://{}", listener.local_addr().unwrap()));
        let app = itsm_webhook::AppState::new(self.pipeline(now), Vec::new());
        let router = patchwatch_host::server::bounded(
            itsm_webhook::router(app),
            &patchwatch_host::server::ServerLimits::default(),
        );
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    }

    /// Subjects of every email written so far, in file order.
    fn subjects(&self) -> Vec<String> {
        files(&self.out, "eml").iter().map(|f| subject(f)).collect()
    }
}

fn subject(eml: &Path) -> String {
    let raw = std::fs::read(eml).unwrap();
    let mail = mailparse::parse_mail(&raw).unwrap();
    mailparse::MailHeaderMap::get_first_value(&mail.headers[..], "Subject").unwrap()
}

fn post_event() -> MaintenanceEvent {
    match parse_delivery(example("events/post-maintenance.json").as_bytes()).unwrap().remove(0) {
        Incoming::Maintenance(m) => *m,
        other => panic!("{other:?}"),
    }
}

fn run_data(event: &MaintenanceEvent) -> RunData {
    let query = RunQuery {
        correlation_id: event.correlation_id.clone(),
        subscription_ids: vec![],
        include_results: true,
        since: None,
        watch: Vec::new(),
    };
    snapshot::parse(example("snapshot.json").as_bytes(), &query).unwrap()
}

/// The same configuration's next run, a week later, on which every machine succeeded.
fn clean_rerun(event: &MaintenanceEvent, data: &RunData) -> (MaintenanceEvent, RunData) {
    let mut next = event.clone();
    let week = Duration::days(7);
    next.correlation_id = event.correlation_id.replace("20261110220000", "20261117220000");
    assert_ne!(next.correlation_id, event.correlation_id, "the example run's name changed");
    next.id = format!("{}-next", event.id);
    next.start += week;
    next.end += week;
    next.event_time = event.event_time.map(|t| t + week);
    let mut clean = data.clone();
    for m in &clean.expected {
        let key = m.id.to_ascii_lowercase();
        let r = clean.results.entry(key).or_insert_with(|| patchwatch_model::rundata::InstallResult {
            result_id: format!("{}/patchInstallationResults/next", m.id),
            machine_id: m.id.clone(),
            resource_group: m.resource_group.clone(),
            status: String::new(),
            installed: 0,
            failed: 0,
            pending: 0,
            window_exceeded: false,
            reboot_status: None,
            started: None,
            last_modified: None,
            os_type: None,
            errors: vec![],
        });
        r.status = "Succeeded".to_owned();
        r.failed = 0;
        r.window_exceeded = false;
        r.reboot_status = Some("NotNeeded".to_owned());
        r.errors.clear();
        r.started = Some(next.start + Duration::minutes(5));
        r.last_modified = Some(next.start + Duration::minutes(40));
    }
    clean.failed_patches.clear();
    (next, clean)
}

fn sent(outcome: &EventOutcome) {
    assert!(matches!(outcome, EventOutcome::Sent(_)), "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_is_reminded_escalated_and_stops_once_acknowledged_by_a_one_click_link() {
    let mut s = setup();
    let event = post_event();
    let t0 = event.end + Duration::minutes(30);
    s.serve_links(t0 + Duration::hours(25)).await;
    sent(&s.pipeline(t0).process(&event).await);
    assert_eq!(s.subjects().len(), 1, "the first summary");
    let summary = std::fs::read_to_string(files(&s.out, "eml")[0].clone()).unwrap();
    assert!(summary.contains("Snooze reminders 24 h"), "a failed run's summary carries the one-click buttons");

    // Before the first interval nothing is due; after it, one reminder, once however often the timer fires.
    let pass = reminders::run(&s.pipeline(t0 + Duration::hours(3))).await.unwrap();
    assert_eq!((pass.open, pass.deliveries.reports.len()), (1, 0));
    let at = t0 + Duration::hours(4) + Duration::minutes(1);
    for _ in 0..3 {
        reminders::run(&s.pipeline(at)).await.unwrap();
    }
    let subjects = s.subjects();
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert!(subjects[1].contains("Reminder 1 of 2: Ring2-Prod: run 20261110220000 still Failed"), "{subjects:?}");
    let reminder = std::fs::read_to_string(files(&s.out, "eml")[1].clone()).unwrap();
    assert!(reminder.contains("owners@example.com"), "the route's own recipients");
    for fact in [
        "Open since",
        "Told",
        "owners (email: owners@example.com)",
        "win-app-00024 (Failed)",
        "next: escalation to page",
    ] {
        assert!(reminder.contains(fact), "{fact} missing from the reminder");
    }

    // The last step escalates to the page route's channel.
    let at = t0 + Duration::hours(24) + Duration::minutes(1);
    reminders::run(&s.pipeline(at)).await.unwrap();
    reminders::run(&s.pipeline(at + Duration::minutes(15))).await.unwrap();
    let subjects = s.subjects();
    assert_eq!(subjects.len(), 3, "{subjects:?}");
    assert!(subjects[2].contains("Critical: ESCALATED: Ring2-Prod: run 20261110220000 still Failed"), "{subjects:?}");
    let escalation = std::fs::read_to_string(files(&s.out, "eml")[2].clone()).unwrap();
    assert!(escalation.contains("To: oncall@example.com"), "escalation goes to the page route");

    // Acknowledged by the escalation's one-click link, in a real browser: the page asks, the
    // button acts once. Then the follow-up closes and nothing more is sent.
    let p = s.pipeline(at + Duration::hours(1));
    let link = action_link(&escalation, "Acknowledge");
    let before = integration_tests::world::state_of(&s.state);
    let seen = browse(&link, false, &[]).await;
    assert_eq!((seen.status, seen.title.as_str()), (200, "Acknowledge run 20261110220000 of Ring2-Prod?"), "{seen:?}");
    assert_eq!(integration_tests::world::state_of(&s.state), before, "opening the link changes nothing");
    let seen = browse(&link, true, &[]).await;
    assert_eq!((seen.status, seen.title.as_str()), (200, "Run 20261110220000 of Ring2-Prod acknowledged"), "{seen:?}");
    let ack = p.approvals.acknowledgement(&event.correlation_id).await.unwrap().expect("acknowledged");
    assert_eq!(ack.by, "one-click link (route owners)");
    let pass = reminders::run(&s.pipeline(at + Duration::hours(30))).await.unwrap();
    assert_eq!(pass.open, 0);
    assert!(pass.closed[0].2.starts_with("acknowledged by"), "{:?}", pass.closed);
    let subjects = s.subjects();
    assert_eq!(subjects.len(), 4, "{subjects:?}");
    assert!(subjects[3].contains("run 20261110220000 acknowledged"), "the acknowledgement is announced: {subjects:?}");
    reminders::run(&s.pipeline(at + Duration::days(5))).await.unwrap();
    assert_eq!(s.subjects().len(), 4, "no reminder after the acknowledgement");
    let records = p.ledger().list(Some("20261110220000")).await.unwrap();
    let steps: Vec<(&str, DeliveryState)> =
        records.iter().filter(|r| r.phase.starts_with("remind")).map(|r| (r.phase.as_str(), r.state)).collect();
    assert_eq!(steps, [("remind-1", DeliveryState::Sent), ("remind-2", DeliveryState::Sent)]);
}

/// The URL of the one-click action `label` in an email's text part (`  Acknowledge: http://…`).
fn action_link(eml: &str, label: &str) -> String {
    let mail = mailparse::parse_mail(eml.as_bytes()).unwrap();
    let text = mail.subparts.iter().find(|p| p.ctype.mimetype == "text/plain").map(|p| p.get_body().unwrap());
    let text = text.unwrap_or_else(|| mail.get_body().unwrap());
    let prefix = format!("  {label}: ");
    let line = text.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no {label} link in {text}"));
    line[prefix.len()..].trim().to_owned()
}

#[tokio::test]
async fn a_later_clean_run_stops_the_reminders_without_an_acknowledgement() {
    let s = setup();
    let event = post_event();
    let t0 = event.end + Duration::minutes(30);
    sent(&s.pipeline(t0).process(&event).await);
    let at = t0 + Duration::hours(4) + Duration::minutes(1);
    reminders::run(&s.pipeline(at)).await.unwrap();
    assert_eq!(s.subjects().len(), 2, "summary and the first reminder");

    // A week later the same configuration runs again and every machine succeeds.
    let (next, clean) = clean_rerun(&event, &run_data(&event));
    let later = next.end + Duration::minutes(30);
    let p = s.pipeline(later);
    let outcome = p.process_loaded(&next, "20261117220000", &clean, false).await;
    let EventOutcome::Sent(processed) = &outcome else { panic!("{outcome:?}") };
    assert_eq!(processed.summary.verdict, patchwatch_model::summary::Verdict::Succeeded);
    let pass = reminders::run(&s.pipeline(later + Duration::hours(1))).await.unwrap();
    assert_eq!(pass.open, 0, "the clean run opened nothing and closed the old follow-up");
    assert!(pass.closed[0].2.contains("succeeded in a later run (20261117220000)"), "{:?}", pass.closed);
    let subjects = s.subjects();
    assert_eq!(subjects.len(), 3, "only the clean run's summary was added: {subjects:?}");
    assert!(subjects[2].contains("Succeeded"), "{subjects:?}");
    // Long after, still nothing: the follow-up is closed.
    reminders::run(&s.pipeline(later + Duration::days(3))).await.unwrap();
    assert_eq!(s.subjects().len(), 3);
}

#[tokio::test]
async fn missed_steps_are_superseded_and_a_silence_holds_a_step_without_replay() {
    let s = setup();
    let event = post_event();
    let t0 = event.end + Duration::minutes(30);
    sent(&s.pipeline(t0).process(&event).await);

    // A silence on the configuration's Failed outcome covers the first reminder only.
    let p = s.pipeline(t0);
    let m = patchwatch_model::silence::Matchers {
        configuration: Some("Ring2-*".into()),
        outcome: vec![patchwatch_model::summary::Verdict::Failed],
        ..Default::default()
    };
    let silence =
        patchwatch_model::silence::Silence::new(m, t0..t0 + Duration::hours(6), "alice", "CHG0042", t0).unwrap();
    p.notifier.silences.add(&silence).await.unwrap();
    let pass = reminders::run(&s.pipeline(t0 + Duration::hours(4) + Duration::minutes(1))).await.unwrap();
    assert_eq!(pass.deliveries.reports[0].outcome.as_str(), "silenced", "{:?}", pass.deliveries.reports);
    assert_eq!(s.subjects().len(), 1, "nothing sent while silenced");
    // After the silence: step 1 is not replayed; step 2 (the escalation) fires when due.
    reminders::run(&s.pipeline(t0 + Duration::hours(7))).await.unwrap();
    assert_eq!(s.subjects().len(), 1, "the silenced step is not replayed");
    reminders::run(&s.pipeline(t0 + Duration::hours(25))).await.unwrap();
    let subjects = s.subjects();
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert!(subjects[1].contains("ESCALATED"), "{subjects:?}");

    // Another run whose timer was down for both steps: only the escalation goes out, step 1 is
    // recorded as superseded.
    let other = setup();
    sent(&other.pipeline(t0).process(&event).await);
    let pass = reminders::run(&other.pipeline(t0 + Duration::hours(30))).await.unwrap();
    assert_eq!(pass.deliveries.reports.len(), 1);
    assert!(other.subjects()[1].contains("ESCALATED"), "{:?}", other.subjects());
    let records = other.pipeline(t0).ledger().list(Some("20261110220000")).await.unwrap();
    let steps: Vec<(&str, DeliveryState)> =
        records.iter().filter(|r| r.phase.starts_with("remind")).map(|r| (r.phase.as_str(), r.state)).collect();
    assert!(steps.contains(&("remind-1", DeliveryState::Inhibited)), "{steps:?}");
    assert!(steps.contains(&("remind-2", DeliveryState::Sent)), "{steps:?}");
    let superseded = records.iter().find(|r| r.phase == "remind-1").unwrap();
    assert!(superseded.detail.as_deref().unwrap_or_default().contains("superseded by reminder 2"));
}

/// A ServiceNow incident of the run that someone resolved is an acknowledgement.
#[tokio::test]
async fn a_resolved_servicenow_incident_stops_the_reminders() {
    use integration_tests::itsm::ServiceNow;
    let server = wiremock::MockServer::start().await;
    let snow = ServiceNow::new("svc", "pw");
    wiremock::Mock::given(wiremock::matchers::any()).respond_with(snow.clone()).mount(&server).await;
    let s = setup();
    let config = CONFIG.replace("channels = [\"owners\"]", "channels = [\"owners\", \"snow\"]")
        + &format!(
            "\n[channels.snow]\ntype = \"servicenow\"\ninstance = \"{}\"\nuser_env = \"SN_USER\"\npassword_env = \"SN_PASSWORD\"\n",
            server.uri()
        );
    std::fs::write(&s.config, config).unwrap();
    let event = post_event();
    let t0 = event.end + Duration::minutes(30);
    let with_snow = |now: OffsetDateTime| {
        let mut p = pipeline(&[
            ("PATCHWATCH_CONFIG", &s.config.display().to_string()),
            ("PATCHWATCH_OUTBOX", &s.out.display().to_string()),
            ("PATCHWATCH_SNAPSHOT", &root().join("examples/snapshot.json").display().to_string()),
            ("PATCHWATCH_STATE", &format!("file://{}", s.state.display())),
            ("SN_USER", "svc"),
            ("SN_PASSWORD", "pw"),
        ]);
        p.set_clock(Arc::new(move || now));
        p
    };
    sent(&with_snow(t0).process(&event).await);
    assert_eq!(snow.all().len(), 1, "the failed run opened an incident");
    let pass = reminders::run(&with_snow(t0 + Duration::hours(5))).await.unwrap();
    assert_eq!(pass.deliveries.reports.len(), 1, "reminders go to the email channel, not to ServiceNow");
    assert_eq!(pass.deliveries.reports[0].target, "owners.owners");
    // Someone resolves the incident in ServiceNow.
    snow.incidents.lock().unwrap()[0]["state"] = serde_json::json!("6");
    let pass = reminders::run(&with_snow(t0 + Duration::hours(25))).await.unwrap();
    assert_eq!(pass.open, 0);
    assert!(pass.closed[0].2.contains("INC0000001 left the open states in ServiceNow"), "{:?}", pass.closed);
    assert!(pass.deliveries.reports.is_empty(), "no escalation");
}
