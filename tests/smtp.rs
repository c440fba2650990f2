//! Email through a real SMTP server (aiosmtpd): the MIME message as a mail client sees it.

use integration_tests::{example, pipeline, root, smtp::SmtpSink};
use mailparse::{MailHeaderMap, parse_mail};
use patchwatch_engine::pipeline::EventOutcome;
use patchwatch_model::event::Incoming;
use patchwatch_model::event::MaintenanceEvent;
use patchwatch_model::event::parse_delivery;
use serde_json::{Value, json};

fn events(path: &str) -> MaintenanceEvent {
    match parse_delivery(example(path).as_bytes()).unwrap().remove(0) {
        Incoming::Maintenance(m) => *m,
        other => panic!("unexpected {other:?}"),
    }
}

fn snapshot() -> String {
    root().join("examples/snapshot.json").display().to_string()
}

#[tokio::test]
async fn post_event_summary_arrives_as_multipart_alternative() {
    let sink = SmtpSink::start();
    let snap = snapshot();
    let p = pipeline(&[
        ("PATCHWATCH_SMTP_URL", &sink.url()),
        ("PATCHWATCH_SNAPSHOT", &snap),
        ("PATCHWATCH_MAIL_FROM", "patchwatch <patchwatch@example.com>"),
        ("PATCHWATCH_MAIL_TO", "ops@example.com, dba@example.com"),
    ]);
    let outcome = p.process(&events("events/post-maintenance.json")).await;
    assert!(matches!(outcome, EventOutcome::Sent(_)), "{outcome:?}");
    let messages = sink.wait_for(1);
    assert_eq!(messages.len(), 1, "exactly one email per run");
    let mail = parse_mail(&messages[0]).unwrap();
    let subject = mail.headers.get_first_value("Subject").unwrap();
    assert!(subject.starts_with("Ring2-Prod: Failed — 34 of 40 patched"), "{subject}");
    assert!(subject.contains("4 failed") && subject.contains("1 no result"), "{subject}");
    assert_eq!(mail.headers.get_first_value("From").unwrap(), "patchwatch <patchwatch@example.com>");
    let to = mail.headers.get_first_value("To").unwrap();
    assert!(to.contains("ops@example.com") && to.contains("dba@example.com"), "{to}");
    assert_eq!(mail.ctype.mimetype, "multipart/alternative");
    let kinds: Vec<&str> = mail.subparts.iter().map(|p| p.ctype.mimetype.as_str()).collect();
    assert_eq!(kinds, ["text/plain", "text/html"]);
    let html = mail.subparts[1].get_body().unwrap();
    let text = mail.subparts[0].get_body().unwrap();
    assert_eq!(mail.subparts[1].ctype.charset.to_lowercase(), "utf-8");
    // Every machine that is not Succeeded has a row; the deallocated one says why.
    for name in ["win-app-00024", "win-kube-00009", "win-kube-00005", "lnx-web-00007"] {
        assert!(html.contains(name) && text.contains(name), "{name} missing");
    }
    assert!(html.contains("VM was deallocated when last seen"));
    assert!(html.contains("KB5031989"));
    assert!(html.contains("https://portal.azure.com/#resource/subscriptions/"));
    assert!(text.contains("set the duration to at least 02:30"));
}

#[tokio::test]
async fn pre_event_heads_up_lists_the_machines_in_scope() {
    let sink = SmtpSink::start();
    let snap = snapshot();
    let p = pipeline(&[
        ("PATCHWATCH_SMTP_URL", &sink.url()),
        ("PATCHWATCH_SNAPSHOT", &snap),
        ("PATCHWATCH_MAIL_TO", "ops@example.com"),
    ]);
    assert!(matches!(p.process(&events("events/pre-maintenance.json")).await, EventOutcome::Sent(_)));
    let messages = sink.wait_for(1);
    let mail = parse_mail(&messages[0]).unwrap();
    let subject = mail.headers.get_first_value("Subject").unwrap();
    assert_eq!(subject, "Ring2-Prod: patching starts 2026-11-10 22:00 UTC — 40 machines in scope");
    let text = mail.subparts[0].get_body().unwrap();
    assert!(text.contains("Cancel until:   2026-11-10 21:50 UTC"), "{text}");
    let lines =
        text.lines().filter(|l| l.starts_with("- ") && (l.contains("(Azure VM,") || l.contains("(Arc,"))).count();
    assert_eq!(lines, 40, "one line per machine in scope");
    assert!(text.contains("1 machine is not running or not connected"), "{text}");
}

/// A hostile event and hostile result data: nothing is injected into headers or HTML.
#[tokio::test]
async fn hostile_values_are_escaped_and_cannot_inject_headers() {
    let sink = SmtpSink::start();
    let dir = tempfile::tempdir().unwrap();
    let mut snap: Value = serde_json::from_str(&example("snapshot.json")).unwrap();
    for row in snap["patchinstallationresources"].as_array_mut().unwrap() {
        if let Some(details) = row["properties"].get_mut("errorDetails").filter(|d| !d.is_null()) {
            *details = json!({"code": "X", "message": "<script>alert('owned')</script> & \"quotes\""});
        }
    }
    // A line break in a resource id is refused at intake, naming the field.
    let mut crlf: Value = serde_json::from_str(&example("events/post-maintenance.json")).unwrap();
    for key in ["correlationId", "maintenanceConfigurationId"] {
        let v = crlf[0]["data"][key].as_str().unwrap().replace("Ring2-Prod", "evil\r\nBcc: victim@example.com");
        crlf[0]["data"][key] = json!(v);
    }
    let err = parse_delivery(crlf.to_string().as_bytes()).unwrap_err();
    assert_eq!(err.field, "[0].data.correlationId", "{err}");
    // What a resource name can hold still reaches the subject and HTML only escaped.
    let evil_mc = "Ring2-<script>alert(1)</script>Bcc:victim@example.com";
    // Replaced inside JSON text, so the replacement is JSON-escaped.
    let escaped = |s: &str| serde_json::to_string(s).unwrap().trim_matches('"').to_owned();
    let text = serde_json::to_string(&snap)
        .unwrap()
        .replace("Ring2-Prod", &escaped(evil_mc))
        .replace("ring2-prod", &escaped(&evil_mc.to_lowercase()));
    let path = dir.path().join("snapshot.json");
    std::fs::write(&path, text).unwrap();
    let mut event: Value = serde_json::from_str(&example("events/post-maintenance.json")).unwrap();
    let mut parsed = match parse_delivery(event.to_string().as_bytes()).unwrap().remove(0) {
        Incoming::Maintenance(m) => *m,
        other => panic!("{other:?}"),
    };
    for key in ["correlationId", "maintenanceConfigurationId"] {
        let v = event[0]["data"][key].as_str().unwrap().replace("Ring2-Prod", evil_mc);
        event[0]["data"][key] = json!(v);
    }
    // Event intake refuses such a name (Azure's naming rules); the renderer must still escape
    // one that arrives by another way, so the parsed event is given it directly.
    assert_eq!(parse_delivery(event.to_string().as_bytes()).unwrap_err().field, "[0].data.correlationId");
    parsed.correlation_id = parsed.correlation_id.replace("Ring2-Prod", evil_mc);
    parsed.maintenance_configuration_id = parsed.maintenance_configuration_id.replace("Ring2-Prod", evil_mc);
    let p = pipeline(&[
        ("PATCHWATCH_SMTP_URL", &sink.url()),
        ("PATCHWATCH_SNAPSHOT", &path.display().to_string()),
        ("PATCHWATCH_MAIL_TO", "ops@example.com"),
    ]);
    let outcome = p.process(&parsed).await;
    assert!(matches!(outcome, EventOutcome::Sent(_)), "{outcome:?}");
    let messages = sink.wait_for(1);
    assert_eq!(messages.len(), 1);
    let mail = parse_mail(&messages[0]).unwrap();
    assert!(mail.headers.get_first_value("Bcc").is_none(), "a Bcc header was injected");
    assert!(mail.headers.get_first_value("X-Injected").is_none(), "a header was injected");
    assert_eq!(mail.headers.get_first_value("To").unwrap(), "ops@example.com");
    let html = mail.subparts[1].get_body().unwrap();
    assert!(!html.contains("<script>"), "script tag reached the HTML");
    assert!(html.contains("&lt;script&gt;"), "escaped error text missing");
    assert!(
        mail.headers.get_first_value("Subject").unwrap().contains("Bcc:victim@example.com"),
        "the name stays in the subject, as text"
    );
}

#[tokio::test]
async fn smtp_down_is_retry_later_and_the_redelivery_sends() {
    let port = integration_tests::smtp::free_port();
    let snap = snapshot();
    let url = format!("smtp://127.0.0.1:{port}");
    let p = pipeline(&[
        ("PATCHWATCH_SMTP_URL", &url),
        ("PATCHWATCH_SNAPSHOT", &snap),
        ("PATCHWATCH_MAIL_TO", "ops@example.com"),
    ]);
    let event = events("events/post-maintenance.json");
    match p.process(&event).await {
        EventOutcome::RetryLater { reason, .. } => assert!(reason.contains("SMTP"), "{reason}"),
        other => panic!("a refused connection must be retried, got {other:?}"),
    }
    let sink = SmtpSink::start_on(port);
    assert!(matches!(p.process(&event).await, EventOutcome::Sent(_)));
    assert_eq!(sink.wait_for(1).len(), 1);
}
