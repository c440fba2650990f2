//! Silences end to end: each matcher (configuration, machine, tag, outcome, channel, together,
//! expired) against the example run's real deliveries. A silenced delivery is recorded in the
//! ledger as silenced (by whom, until when), not sent, listed by `patchwatch deliveries`, and
//! never replayed once the silence ends.

use std::{collections::BTreeSet, sync::Arc};

use integration_tests::{example, files, pipeline, process, root};
use patchwatch_engine::pipeline::{EventOutcome, Pipeline};
use patchwatch_model::{
    event::{Incoming, MaintenanceEvent, parse_delivery},
    silence::{Matchers, Silence},
    summary::Verdict,
};
use patchwatch_state::ledger::DeliveryState;
use time::{Duration, OffsetDateTime};

const CONFIG: &str = r#"
[channels.owners]
type = "email"

[channels.dc-mail]
type = "email"
to = ["dc@example.com"]

[channels.ops]
type = "email"
to = ["ops@example.com"]

[[routes]]
name = "owners"
split_by_tag = "PatchOwner"
channels = ["owners"]
continue = true

[routes.recipients]
team-data = ["dba@example.com"]
team-infra = ["infra@example.com"]
team-web = ["web@example.com"]

[[routes]]
name = "dc"
match = { resource_group = "rg-dc-*" }
channels = ["dc-mail"]
continue = true

[[routes]]
name = "ops"
channels = ["ops"]
"#;

const ALL: [&str; 5] =
    ["dc.dc-mail", "ops.ops", "owners.owners.team-data", "owners.owners.team-infra", "owners.owners.team-web"];

fn post_event() -> MaintenanceEvent {
    match parse_delivery(example("events/post-maintenance.json").as_bytes()).unwrap().remove(0) {
        Incoming::Maintenance(m) => *m,
        other => panic!("{other:?}"),
    }
}

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("patchwatch.toml"), CONFIG).unwrap();
        Self { dir }
    }

    fn state_url(&self) -> String {
        format!("file://{}", self.dir.path().join("state").display())
    }

    fn pipeline(&self, now: OffsetDateTime) -> Pipeline {
        let mut p = pipeline(&[
            ("PATCHWATCH_CONFIG", &self.dir.path().join("patchwatch.toml").display().to_string()),
            ("PATCHWATCH_OUTBOX", &self.dir.path().join("outbox").display().to_string()),
            ("PATCHWATCH_MAIL_TO", "default@example.com"),
            ("PATCHWATCH_SNAPSHOT", &root().join("examples/snapshot.json").display().to_string()),
            ("PATCHWATCH_STATE", &self.state_url()),
        ]);
        p.set_clock(Arc::new(move || now));
        p
    }

    /// Runs the example post event; answers the targets silenced (from the ledger) and the
    /// number of emails written.
    async fn run(&self, now: OffsetDateTime) -> (BTreeSet<String>, usize) {
        let p = self.pipeline(now);
        let outcome = p.process(&post_event()).await;
        assert!(matches!(outcome, EventOutcome::Sent(_)), "{outcome:?}");
        let records = p.ledger().list(Some("20261110220000")).await.unwrap();
        let mut silenced = BTreeSet::new();
        for r in records.iter().filter(|r| r.phase == "post" && r.target != "all-notifications") {
            match r.state {
                DeliveryState::Silenced => {
                    let detail = r.detail.as_deref().unwrap_or_default();
                    assert!(detail.starts_with("silenced by alice until "), "{detail}");
                    assert!(detail.contains("CHG0042"), "the comment is kept: {detail}");
                    silenced.insert(r.target.clone());
                }
                DeliveryState::Sent => {}
                other => panic!("{}: {other:?}", r.target),
            }
        }
        assert_eq!(records.iter().filter(|r| r.phase == "post" && r.target != "all-notifications").count(), ALL.len());
        (silenced, files(&self.dir.path().join("outbox"), "eml").len())
    }
}

fn matchers(f: impl FnOnce(&mut Matchers)) -> Matchers {
    let mut m = Matchers::default();
    f(&mut m);
    m
}

/// (what, matchers, targets silenced). In the example run team-data's machines all succeeded;
/// rg-dc-shared holds only win-dc-00003 (Failed) and lnx-dc-00030.
#[tokio::test]
async fn a_silence_suppresses_exactly_what_it_matches() {
    let event = post_event();
    let now = event.end + Duration::minutes(30);
    let owners = |t: &str| format!("owners.owners.{t}");
    let cases: Vec<(&str, Matchers, Vec<String>)> = vec![
        ("configuration glob", matchers(|m| m.configuration = Some("ring2-*".into())), ALL.map(String::from).to_vec()),
        ("another configuration", matchers(|m| m.configuration = Some("Ring1-*".into())), vec![]),
        (
            "machine glob covering one delivery",
            matchers(|m| m.machine = Some("*-dc-*".into())),
            vec!["dc.dc-mail".into()],
        ),
        ("machine glob covering none whole", matchers(|m| m.machine = Some("win-*".into())), vec![]),
        (
            "tag",
            matchers(|m| {
                m.tags.insert("PatchOwner".into(), "team-data".into());
            }),
            vec![owners("team-data")],
        ),
        ("outcome Succeeded", matchers(|m| m.outcome = vec![Verdict::Succeeded]), vec![owners("team-data")]),
        ("channel glob", matchers(|m| m.channel = Some("ops*".into())), vec!["ops.ops".into()]),
        (
            "together, all hold",
            matchers(|m| {
                m.configuration = Some("Ring2-Prod".into());
                m.channel = Some("owners".into());
                m.outcome = vec![Verdict::Failed];
            }),
            vec![owners("team-infra"), owners("team-web")],
        ),
        (
            "together, one does not",
            matchers(|m| {
                m.configuration = Some("Ring1-*".into());
                m.channel = Some("ops".into());
            }),
            vec![],
        ),
    ];
    for (what, m, expected) in cases {
        let case = Case::new();
        let silences = patchwatch_state::silences::Silences::new(case.pipeline(now).ledger().store().clone());
        let s = Silence::new(m, now - Duration::hours(1)..now + Duration::hours(4), "alice", "CHG0042", now).unwrap();
        silences.add(&s).await.unwrap();
        let (silenced, emails) = case.run(now).await;
        let expected: BTreeSet<String> = expected.into_iter().collect();
        assert_eq!(silenced, expected, "{what}");
        assert_eq!(emails, ALL.len() - expected.len(), "{what}: silenced deliveries are not sent");
    }
}

#[tokio::test]
async fn an_expired_silence_no_longer_applies_and_nothing_is_replayed() {
    // The CLI stamps silences with the wall clock, so this test runs on it too.
    let case = Case::new();
    let state = case.state_url();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(process::binary("patchwatch"))
            .args(args)
            .args(["--state", &state])
            .env_clear()
            .env("USER", "alice")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    // Silenced through the CLI, for ops only: listed, then applied.
    let added = cli(&["silence", "add", "--channel", "ops", "--for", "30d", "--comment", "CHG0042"]);
    let id = added.split_whitespace().next().unwrap().to_owned();
    assert!(id.starts_with("s-"), "{added}");
    assert!(cli(&["silence", "list"]).contains(&id));
    let (silenced, _) = case.run(OffsetDateTime::now_utc()).await;
    assert_eq!(silenced, BTreeSet::from(["ops.ops".to_owned()]));
    let deliveries = cli(&["deliveries", "--run", "20261110220000"]);
    let line = deliveries.lines().find(|l| l.contains("ops.ops")).unwrap();
    assert!(line.contains("silenced") && line.contains("silenced by alice until"), "{deliveries}");

    // Ended by hand: a later run of the same configuration is not silenced, and the silenced
    // delivery above is not replayed.
    assert!(cli(&["silence", "expire", &id]).contains("ended at"));
    assert!(!cli(&["silence", "list"]).contains(&id), "an ended silence is not listed as active");
    assert!(cli(&["silence", "list", "--all"]).contains("ended early by alice"));
    let p = case.pipeline(OffsetDateTime::now_utc() + Duration::seconds(1));
    let again = p.process(&post_event()).await;
    assert!(matches!(again, EventOutcome::Duplicate { .. }), "{again:?}");
    let mut next = post_event();
    next.correlation_id = next.correlation_id.replace("20261110220000", "20261110220001");
    let outcome = p.process(&next).await;
    let EventOutcome::Sent(processed) = &outcome else { panic!("{outcome:?}") };
    // The snapshot has no machines for the made-up run: only the ops route has something to send.
    let ops: Vec<&str> =
        processed.deliveries.iter().filter(|d| d.target == "ops.ops").map(|d| d.outcome.as_str()).collect();
    assert_eq!(ops, ["sent"], "{:?}", processed.deliveries);
}
