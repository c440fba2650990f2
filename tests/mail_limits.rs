//! Mail at its limits, through a real SMTP server (aiosmtpd): a name far longer than a header
//! line may be, and a server that refuses one route's message for good.

use integration_tests::{example, pipeline, root, smtp::SmtpSink};
use mailparse::{MailHeaderMap, parse_mail};
use patchwatch_engine::pipeline::EventOutcome;
use patchwatch_model::event::Incoming;
use patchwatch_model::event::MaintenanceEvent;
use patchwatch_model::event::parse_delivery;

fn post_event(text: &str) -> MaintenanceEvent {
    match parse_delivery(text.as_bytes()).unwrap().remove(0) {
        Incoming::Maintenance(m) => *m,
        other => panic!("unexpected {other:?}"),
    }
}

/// The example snapshot and post event with the configuration renamed.
fn renamed(dir: &std::path::Path, name: &str) -> (String, MaintenanceEvent) {
    let snap = std::fs::read_to_string(root().join("examples/snapshot.json"))
        .unwrap()
        .replace("Ring2-Prod", name)
        .replace("ring2-prod", &name.to_lowercase());
    let path = dir.join("snapshot.json");
    std::fs::write(&path, snap).unwrap();
    let event = example("events/post-maintenance.json").replace("Ring2-Prod", name);
    (path.display().to_string(), post_event(&event))
}

#[tokio::test]
async fn a_3000_character_name_gives_a_folded_subject_under_998_octets_and_a_delivered_email() {
    let sink = SmtpSink::start();
    let dir = tempfile::tempdir().unwrap();
    let name = format!("Ring2-Prod-{}", "x".repeat(2989));
    assert_eq!(name.len(), 3000);
    let (snap, event) = renamed(dir.path(), &name);
    let p = pipeline(&[
        ("PATCHWATCH_SMTP_URL", &sink.url()),
        ("PATCHWATCH_SNAPSHOT", &snap),
        ("PATCHWATCH_MAIL_TO", "ops@example.com"),
    ]);
    let outcome = p.process(&event).await;
    assert!(matches!(outcome, EventOutcome::Sent(_)), "{outcome:?}");
    let messages = sink.wait_for(1);
    assert_eq!(messages.len(), 1, "the email was delivered");
    let raw = String::from_utf8_lossy(&messages[0]);
    let head = raw.split("\r\n\r\n").next().unwrap_or_default();
    let head = if head.contains("\r\n") { head.to_owned() } else { raw.split("\n\n").next().unwrap().to_owned() };
    let longest = head.lines().map(str::len).max().unwrap_or(0);
    assert!(longest <= 998, "a header line of {longest} octets");
    // The subject is folded across lines, and cut with an ellipsis.
    let subject_lines = head
        .lines()
        .skip_while(|l| !l.starts_with("Subject:"))
        .enumerate()
        .take_while(|(i, l)| *i == 0 || l.starts_with(' ') || l.starts_with('\t'))
        .count();
    assert!(subject_lines > 1, "the subject is folded:\n{head}");
    let mail = parse_mail(&messages[0]).unwrap();
    let subject = mail.headers.get_first_value("Subject").unwrap();
    assert!(subject.starts_with("Ring2-Prod-xxx") && subject.ends_with('…'), "{subject}");
    assert_eq!(subject.chars().count(), patchwatch_engine::mail::MAX_SUBJECT_CHARS);
    // The whole name is in the body.
    assert!(mail.subparts[0].get_body().unwrap().contains(&name), "the text part has the full name");
    // A Message-ID derived from the delivery: another attempt at the same delivery (here, a
    // pipeline that has lost its ledger, as after a crash before the commit) sends the same one.
    let id = mail.headers.get_first_value("Message-ID").unwrap();
    assert!(id.starts_with("<patchwatch.") && id.ends_with("@localhost>"), "{id}");
    let again = pipeline(&[
        ("PATCHWATCH_SMTP_URL", &sink.url()),
        ("PATCHWATCH_SNAPSHOT", &snap),
        ("PATCHWATCH_MAIL_TO", "ops@example.com"),
    ]);
    assert!(matches!(again.process(&event).await, EventOutcome::Sent(_)));
    let messages = sink.wait_for(2);
    let second = parse_mail(&messages[1]).unwrap();
    assert_eq!(second.headers.get_first_value("Message-ID").unwrap(), id, "the same delivery, the same Message-ID");
}

const TWO_ROUTES: &str = r#"
[channels.ops]
type = "email"
to = ["ops@example.com"]

[channels.audit]
type = "email"
to = ["refuse@example.com"]

[channels.owners]
type = "email"
to = ["owners@example.com"]

[[routes]]
name = "everything"
match = { phase = "any" }
channels = ["ops", "audit", "owners"]
"#;

#[tokio::test]
async fn a_554_on_one_routes_message_does_not_hold_the_others() {
    let sink = SmtpSink::start_refusing("refuse@example.com", "554 5.7.1 Message refused by policy");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("patchwatch.toml");
    std::fs::write(&config, TWO_ROUTES).unwrap();
    let snap = root().join("examples/snapshot.json").display().to_string();
    let p = pipeline(&[
        ("PATCHWATCH_SMTP_URL", &sink.url()),
        ("PATCHWATCH_SNAPSHOT", &snap),
        ("PATCHWATCH_MAIL_TO", "fallback@example.com"),
        ("PATCHWATCH_CONFIG", &config.display().to_string()),
    ]);
    let event = post_event(&example("events/post-maintenance.json"));
    let EventOutcome::Sent(processed) = p.process(&event).await else { panic!("the event must be done, not held") };
    let outcome = |target: &str| {
        processed
            .deliveries
            .iter()
            .find(|d| d.target.contains(target))
            .map(|d| d.outcome.to_string())
            .unwrap_or_else(|| panic!("no delivery to {target}: {:?}", processed.deliveries))
    };
    assert_eq!(outcome("ops"), "sent");
    assert_eq!(outcome("owners"), "sent");
    assert_eq!(outcome("audit"), "failed");
    let messages = sink.wait_for(2);
    assert_eq!(messages.len(), 2, "the two accepted messages arrived");
    let ids: std::collections::HashSet<String> =
        messages.iter().map(|m| parse_mail(m).unwrap().headers.get_first_value("Message-ID").unwrap()).collect();
    assert_eq!(ids.len(), 2, "each route's message has its own Message-ID: {ids:?}");
    // A redelivery sends nothing again and does not retry the refused message.
    match p.process(&event).await {
        EventOutcome::Duplicate { .. } => {}
        other => panic!("expected a duplicate, got {other:?}"),
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(sink.messages().len(), 2);
}
