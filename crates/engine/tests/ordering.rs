//! The pipeline's ordering rules, each checked on a real pipeline (outbox mail, file state,
//! snapshot run data, a frozen clock; network only to a closed port on 127.0.0.1):
//!
//! - control comes first: a run a gate cancelled gets the gate's notice and no heads-up;
//! - a delivery whose every notification was sent before answers "duplicate";
//! - missing results hold the summary back inside the grace period, and the queue's last
//!   attempt sends what is known;
//! - when several notifications must be retried, the event waits for the longest of them.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use mailparse::MailHeaderMap;
use patchwatch_engine::{
    config::{Config, Defaults},
    pipeline::{EventOutcome, Pipeline, Processed},
};
use patchwatch_model::{
    event::{Incoming, MaintenanceEvent, parse_delivery},
    failure::{DELIVERY_RETRY, DeliveryStatus},
    summary::Outcome,
};
use patchwatch_state::{
    keys,
    ledger::{ALL_TARGETS, Claim, Clock, DeliveryId, Finish, Ledger, Once},
};
use serde_json::Value;
use time::{OffsetDateTime, macros::datetime};

const SNAPSHOT: &str = include_str!("../../../examples/snapshot.json");
const PRE_EVENT: &str = include_str!("../../../examples/events/pre-maintenance.json");
const POST_EVENT: &str = include_str!("../../../examples/events/post-maintenance.json");
/// The example run (Ring2-Prod, 2026-11-10 22:00–00:00; the post event at 00:14).
const RUN: &str = "20261110220000";
/// Pre event time: before the 21:50 cut-off.
const BEFORE_RUN: OffsetDateTime = datetime!(2026-11-10 21:25 UTC);
/// Six minutes after the post event: inside the default 15-minute grace period.
const IN_GRACE: OffsetDateTime = datetime!(2026-11-11 00:20 UTC);
/// Well after the grace period.
const AFTER_GRACE: OffsetDateTime = datetime!(2026-11-11 02:00 UTC);

/// The heads-up route and a gate that blocks Ring2-Prod (no approved change is recorded).
const GATED: &str = r#"
[channels.ops]
type = "email"
to = ["ops@example.com"]

[[routes]]
name = "heads-up"
match = { phase = "any" }
channels = ["ops"]

[[gates]]
name = "prod-change"
configuration = "Ring2-*"
notify = ["ops"]
change = { source = "itsm" }
"#;

/// Two email channels for every post event.
const TWO_MAILS: &str = r#"
[channels.ops]
type = "email"
to = ["ops@example.com"]

[channels.owners]
type = "email"
to = ["owners@example.com"]

[[routes]]
name = "all"
channels = ["ops", "owners"]
"#;

const HOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One test's directory: outbox, state, snapshot and routing file.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        let s = Self { dir: tempfile::tempdir().expect("temp dir") };
        s.write("snapshot.json", SNAPSHOT);
        s
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).expect("write test file");
        path
    }

    /// A pipeline on this directory, with `routing` as `PATCHWATCH_CONFIG` (when given), the
    /// clock frozen at `now`, and no ARM client (nothing may reach Azure).
    fn pipeline(&self, routing: Option<&str>, now: OffsetDateTime) -> Pipeline {
        let mut vars = vec![
            ("PATCHWATCH_OUTBOX", self.path("outbox").display().to_string()),
            ("PATCHWATCH_STATE", format!("file://{}", self.path("state").display())),
            ("PATCHWATCH_SNAPSHOT", self.path("snapshot.json").display().to_string()),
            ("PW_HOOK_SECRET", HOOK_SECRET.to_owned()),
        ];
        if let Some(text) = routing {
            vars.push(("PATCHWATCH_CONFIG", self.write("patchwatch.toml", text).display().to_string()));
        }
        let lookup = |k: &str| vars.iter().find(|(name, _)| *name == k).map(|(_, v)| v.clone());
        let config = Config::from_lookup(lookup, &Defaults::default()).expect("config");
        let mut p = Pipeline::from_config(&config).expect("pipeline");
        p.arm = None;
        p.set_clock(clock(now));
        p
    }

    /// The `.eml` files in the outbox, sorted.
    fn emails(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = std::fs::read_dir(self.path("outbox"))
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        out.retain(|p| p.extension().is_some_and(|x| x == "eml"));
        out.sort();
        out
    }

    fn subjects(&self) -> Vec<String> {
        self.emails().iter().map(|p| subject(p)).collect()
    }
}

fn clock(now: OffsetDateTime) -> Clock {
    Arc::new(move || now)
}

fn subject(eml: &Path) -> String {
    let bytes = std::fs::read(eml).expect("read eml");
    let mail = mailparse::parse_mail(&bytes).expect("parse eml");
    mail.headers.get_first_value("Subject").unwrap_or_default()
}

fn event(json: &str) -> MaintenanceEvent {
    match parse_delivery(json.as_bytes()).expect("example event").remove(0) {
        Incoming::Maintenance(m) => *m,
        other => panic!("not a maintenance event: {other:?}"),
    }
}

fn sent(outcome: EventOutcome) -> Processed {
    match outcome {
        EventOutcome::Sent(p) => *p,
        other => panic!("expected Sent, got {other:?}"),
    }
}

fn targets(p: &Processed) -> Vec<(&str, DeliveryStatus)> {
    p.deliveries.iter().map(|d| (d.target.as_str(), d.outcome)).collect()
}

fn delivery_id<'a>(e: &'a MaintenanceEvent, target: &'a str) -> DeliveryId<'a> {
    DeliveryId { run_id: &e.correlation_id, configuration: e.configuration_name(), phase: e.phase.as_str(), target }
}

/// Records the run as cancelled by a gate on an earlier delivery of its pre event.
async fn cancelled_earlier(p: &Pipeline, pre: &MaintenanceEvent) {
    let id = delivery_id(pre, "control.cancel");
    let finish = Finish::Sent { subject: "cancel".to_owned(), detail: "cancelled by an earlier delivery".to_owned() };
    let once = p.ledger().once(&id, &clock(BEFORE_RUN), |_| async { (finish, ()) }).await.expect("state");
    assert!(matches!(once, Once::Acted(())), "{once:?}");
}

#[tokio::test]
async fn a_cancelled_run_gets_the_gates_notice_and_no_heads_up() {
    let s = Setup::new();
    let p = s.pipeline(Some(GATED), BEFORE_RUN);
    let pre = event(PRE_EVENT);
    cancelled_earlier(&p, &pre).await;

    let processed = sent(p.process_with(&pre, false).await);
    assert_eq!(
        targets(&processed),
        [("notice.ops", DeliveryStatus::Sent), ("heads-up.ops", DeliveryStatus::Inhibited)],
        "only the gate's notice is sent"
    );
    let subjects = s.subjects();
    assert_eq!(subjects.len(), 1, "one email, the notice: {subjects:?}");
    assert!(subjects[0].contains("cancelled by a gate"), "{subjects:?}");
    assert!(!subjects[0].contains("patching starts"), "{subjects:?}");
    // The heads-up is not sent, but `deliveries` shows why.
    let heads_up = p.ledger().status(&delivery_id(&pre, "heads-up.ops")).await.expect("state").expect("recorded");
    assert_eq!(heads_up.state, patchwatch_state::ledger::DeliveryState::Inhibited);
    assert!(heads_up.sent_at.is_none(), "{heads_up:?}");
    assert!(heads_up.detail.as_deref().is_some_and(|d| d.starts_with("run cancelled by gate ")), "{heads_up:?}");
}

/// The counterpart of the test above: the same gate and route, but the run is not cancelled
/// (the cancel cannot be made), so the heads-up goes out after the gate's notice.
#[tokio::test]
async fn a_run_that_was_not_cancelled_gets_its_heads_up_after_the_notice() {
    let s = Setup::new();
    let p = s.pipeline(Some(GATED), BEFORE_RUN);
    let processed = sent(p.process_with(&event(PRE_EVENT), false).await);
    assert_eq!(
        targets(&processed),
        [("notice.ops", DeliveryStatus::Sent), ("heads-up.ops", DeliveryStatus::Sent)],
        "the gate's notice first, then the heads-up"
    );
    let subjects = s.subjects();
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert!(subjects.iter().any(|s| s.contains("could NOT be cancelled")), "{subjects:?}");
    assert!(subjects.iter().any(|s| s.contains("patching starts")), "{subjects:?}");
}

#[tokio::test]
async fn a_delivery_whose_every_notification_was_sent_answers_duplicate() {
    let s = Setup::new();
    let p = s.pipeline(Some(TWO_MAILS), AFTER_GRACE);
    let post = event(POST_EVENT);
    let first = sent(p.process_with(&post, false).await);
    assert_eq!(first.deliveries.len(), 2, "{:?}", first.deliveries);
    assert!(first.deliveries.iter().all(|d| d.outcome == DeliveryStatus::Sent), "{:?}", first.deliveries);
    let mails = s.emails();
    assert_eq!(mails.len(), 2);

    // Without the run's "every notification delivered" record, each notification is checked.
    let key = keys::delivery(&post.correlation_id, post.configuration_name(), "post", ALL_TARGETS);
    assert!(p.ledger().store().delete(&key, None).await.expect("state"), "the record existed");
    match p.process_with(&post, false).await {
        EventOutcome::Duplicate { deliveries, .. } => {
            assert_eq!(deliveries.len(), 2, "{deliveries:?}");
            assert!(deliveries.iter().all(|d| d.outcome == DeliveryStatus::Duplicate), "{deliveries:?}");
        }
        other => panic!("expected Duplicate, got {other:?}"),
    }
    assert_eq!(s.emails(), mails, "nothing new in the outbox");
    let record = p.ledger().status(&delivery_id(&post, ALL_TARGETS)).await.expect("state");
    assert!(record.is_some(), "the run is recorded as fully delivered again");
}

/// The example snapshot with the results of `drop` more machines of the run removed; returns
/// it and how many of the run's machines then have no result.
fn snapshot_missing_results(drop: usize) -> (String, usize) {
    let mut tables: Value = serde_json::from_str(SNAPSHOT).expect("example snapshot");
    let lower = |v: &Value| v.as_str().unwrap_or_default().to_ascii_lowercase();
    let is_result = |r: &Value| {
        lower(&r["type"]).ends_with("/patchinstallationresults")
            && lower(&r["properties"]["maintenanceRunId"]).ends_with(RUN)
    };
    let machine = |r: &Value| lower(&r["id"]).split("/patchinstallationresults/").next().unwrap_or_default().to_owned();
    let rows = tables["patchinstallationresources"].as_array_mut().expect("results table");
    let dropped: Vec<String> = rows.iter().filter(|r| is_result(r)).take(drop).map(|r| lower(&r["id"])).collect();
    assert_eq!(dropped.len(), drop, "the example has enough results");
    rows.retain(|r| !dropped.iter().any(|d| lower(&r["id"]) == *d || lower(&r["id"]).starts_with(&format!("{d}/"))));
    let reported: HashSet<String> = rows.iter().filter(|r| is_result(r)).map(machine).collect();
    let expected: HashSet<String> = tables["maintenanceresources"]
        .as_array()
        .expect("runs table")
        .iter()
        // This run's machines only: the snapshot also holds the fleet's earlier runs.
        .filter(|r| {
            lower(&r["type"]) == "microsoft.maintenance/applyupdates"
                && lower(&r["properties"]["correlationId"]).ends_with(RUN)
        })
        .map(|r| lower(&r["properties"]["resourceId"]))
        .collect();
    let missing = expected.difference(&reported).count();
    (tables.to_string(), missing)
}

#[tokio::test]
async fn missing_results_wait_inside_the_grace_period_and_the_last_attempt_sends_what_is_known() {
    let s = Setup::new();
    let (snapshot, missing) = snapshot_missing_results(2);
    assert!(missing >= 2, "{missing}");
    s.write("snapshot.json", &snapshot);
    let p = s.pipeline(None, IN_GRACE);
    let post = event(POST_EVENT);

    match p.process_with(&post, false).await {
        EventOutcome::RetryLater { reason, after } => {
            assert!(reason.contains(&format!("{missing} of ")), "{reason}");
            assert!(after > Duration::ZERO && after <= Duration::from_secs(15 * 60), "{after:?}");
        }
        other => panic!("expected RetryLater inside the grace period, got {other:?}"),
    }
    assert!(s.emails().is_empty(), "nothing is sent while results may still come");
    assert!(p.ledger().list(None).await.expect("state").is_empty(), "no delivery was claimed");

    // The queue's last attempt: still inside the grace period, but what is known goes out.
    let processed = sent(p.process_with(&post, true).await);
    let summary = &processed.summary;
    assert_eq!(summary.counts.no_result, missing, "machines without a result count as no result");
    let no_result = summary.machines.iter().filter(|m| m.outcome == Outcome::NoResult).count();
    assert_eq!(no_result, missing);
    assert_eq!(targets(&processed), [("default.email", DeliveryStatus::Sent)]);
    let subjects = s.subjects();
    assert_eq!(subjects.len(), 1, "{subjects:?}");
    assert!(subjects[0].contains(&format!("{missing} no result")), "{subjects:?}");
}

/// Two webhook channels pointing at a closed loopback port.
fn two_hooks(port: u16) -> String {
    let hook = |name: &str| {
        format!(
            "[channels.{name}]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{port}/{name}\"\nsecret_env = \"PW_HOOK_SECRET\"\n\n"
        )
    };
    format!("{}{}[[routes]]\nname = \"all\"\nchannels = [\"first\", \"second\"]\n", hook("first"), hook("second"))
}

fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// Both notifications must be retried: `busy` is held by another instance (a 5-second wait),
/// the other cannot connect (a channel's 60-second wait). Returns the event's wait and reason.
async fn retry_with_one_busy(busy: &str) -> (Duration, String) {
    let s = Setup::new();
    let p = s.pipeline(Some(&two_hooks(closed_port())), AFTER_GRACE);
    let post = event(POST_EVENT);
    let other = Ledger::new(p.ledger().store().clone(), Duration::from_secs(5));
    let claim = other.claim(&delivery_id(&post, busy), AFTER_GRACE).await.expect("state");
    assert!(matches!(claim, Claim::Claimed(_)), "{claim:?}");
    match p.process_with(&post, false).await {
        EventOutcome::RetryLater { reason, after } => (after, reason),
        other => panic!("expected RetryLater, got {other:?}"),
    }
}

#[tokio::test]
async fn an_event_waits_for_the_longest_of_its_retries() {
    // The channel's wait is the longer one whichever notification comes first.
    for busy in ["all.first", "all.second"] {
        let (after, reason) = retry_with_one_busy(busy).await;
        assert_eq!(after, DELIVERY_RETRY, "busy {busy}: {reason}");
        assert!(reason.contains("another instance is delivering"), "busy {busy}: {reason}");
        assert!(reason.contains("could not connect"), "busy {busy}: {reason}");
    }
}
