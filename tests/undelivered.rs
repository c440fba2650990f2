//! Nothing silently dropped, against Azurite (queue and blob) and a real SMTP server: messages
//! in the poison queue and events in Event Grid's dead-letter container each raise one
//! critical notice, once ever, and are left where they are; a notice a background task could
//! not send is kept and sent again once the mail server is back.

use base64::Engine;
use integration_tests::{azurite::Azurite, pipeline, smtp::SmtpSink};
use patchwatch_engine::undelivered;
use patchwatch_model::{
    failure::DeliveryStatus,
    notice::{Notice, NoticeKind, Severity},
};
use serde_json::json;

const RUN: &str = "/subscriptions/910a2dec-8902-4cc1-8bee-8da1658eec67/resourceGroups/rg-patching/providers/Microsoft.Maintenance/maintenanceConfigurations/Ring2-Prod/providers/microsoft.maintenance/applyupdates/20261110220000";

fn event(id: &str, subject: &str) -> serde_json::Value {
    json!({ "id": id, "subject": subject, "eventType": "Microsoft.Maintenance.PostMaintenanceEvent",
        "eventTime": "2026-11-11T00:14:00Z", "dataVersion": "1.0", "metadataVersion": "1",
        "topic": "/subscriptions/910a2dec-8902-4cc1-8bee-8da1658eec67/resourceGroups/rg-patching/providers/Microsoft.Maintenance/maintenanceConfigurations/Ring2-Prod",
        "data": { "correlationId": RUN, "status": "Succeeded", "startDateTime": "2026-11-10T22:00:00Z", "endDateTime": "2026-11-11T00:00:00Z" } })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_and_dead_letters_raise_one_notice_each_once() {
    let queues = Azurite::start_queue();
    let blobs = Azurite::start();
    let sink = SmtpSink::start();
    let poison = queues.queue("maintenance-events-poison").await;
    let b64 = |v: &serde_json::Value| base64::engine::general_purpose::STANDARD.encode(v.to_string());
    queues.put_message(&poison, &b64(&event("ev-1", "Ring2-Prod"))).await;
    queues.put_message(&poison, &b64(&event("ev-2", "Ring1-PreProd"))).await;
    let container = blobs.container("deadletters").await;
    let mut dead = event("ev-3", "Ring0-Dev");
    for (k, v) in [
        ("deadLetterReason", json!("MaxDeliveryAttemptsExceeded")),
        ("deliveryAttempts", json!(30)),
        ("lastDeliveryOutcome", json!("Unauthorized")),
        ("lastDeliveryAttemptTime", json!("2026-11-12T00:14:00Z")),
    ] {
        dead[k] = v;
    }
    let blob = "MAINTENANCE-EVENTS/PATCHWATCH/2026/11/12/00/7b3c2f0a-1111-2222-3333-444455556666.json";
    let store = patchwatch_state::store::open(&container, None).unwrap();
    store.create(blob, json!([dead]).to_string().as_bytes()).await.unwrap();

    let p = pipeline(&[
        ("PATCHWATCH_SMTP_URL", &sink.url()),
        ("PATCHWATCH_MAIL_TO", "ops@example.com"),
        ("PATCHWATCH_POISON_QUEUE", &poison),
        ("PATCHWATCH_DEADLETTER_CONTAINER", &container),
    ]);
    let done = undelivered::check(&p).await;
    assert!(done.retry.is_none(), "{done:?}");
    let outcomes: Vec<DeliveryStatus> = done.reports.iter().map(|r| r.outcome).collect();
    assert_eq!(outcomes, [DeliveryStatus::Sent; 3], "{:?}", done.reports);
    let mail = sink.new_since(&[], 3).await;
    assert_eq!(mail.len(), 3);
    let mut subjects: Vec<String> = mail.iter().map(|m| m.subject()).collect();
    subjects.sort();
    assert_eq!(
        subjects,
        [
            "[patchwatch] Critical: Undelivered: Event Grid dead-lettered a maintenance event (Ring0-Dev)",
            "[patchwatch] Critical: Undelivered: a maintenance event in the poison queue (Ring1-PreProd)",
            "[patchwatch] Critical: Undelivered: a maintenance event in the poison queue (Ring2-Prod)",
        ]
    );
    let dead_mail = mail.iter().find(|m| m.subject().contains("dead-lettered")).unwrap().text();
    for fact in [
        &format!("Blob: {blob}"),
        "Reason: MaxDeliveryAttemptsExceeded",
        "Attempts: 30",
        "Last outcome: Unauthorized",
        "Event id: ev-3",
        &format!("Correlation id: {RUN}"),
    ] {
        assert!(dead_mail.contains(fact), "{fact} missing: {dead_mail}");
    }
    let poison_mail = mail.iter().find(|m| m.subject().contains("(Ring2-Prod)")).unwrap().text();
    assert!(poison_mail.contains("Where: poison queue maintenance-events-poison"), "{poison_mail}");
    assert!(poison_mail.contains("Event id: ev-1") && poison_mail.contains("Message id: "), "{poison_mail}");
    for m in &mail {
        assert!(!String::from_utf8_lossy(&m.raw).contains("sig="), "a SAS token reached a message");
    }

    // A second check sends nothing more, and the messages are still where they were. A blob
    // already reported is skipped before it is read; the poison messages answer duplicate.
    let again = undelivered::check(&p).await;
    assert!(again.reports.iter().all(|r| r.outcome == DeliveryStatus::Duplicate), "{:?}", again.reports);
    assert_eq!(again.reports.len(), 2, "{:?}", again.reports);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(sink.count(), 3);
    let peeked = patchwatch_azure::queue::QueueClient::new(&poison, None).unwrap().peek(32).await.unwrap();
    assert_eq!(peeked.len(), 2, "peeked, never dequeued");
    assert_eq!(store.list("").await.unwrap(), [blob]);
    // Each is visible in `deliveries`, with its recipients.
    let records = p.ledger().list(None).await.unwrap();
    assert_eq!(records.len(), 3);
    assert!(records.iter().all(|r| r.detail.as_deref() == Some("SMTP to ops@example.com")), "{records:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_that_could_not_go_out_is_kept_and_sent_again_once() {
    // The mail server is down: the notice is kept.
    let port = integration_tests::smtp::free_port();
    let p = pipeline(&[
        ("PATCHWATCH_SMTP_URL", &format!("smtp://127.0.0.1:{port}")),
        ("PATCHWATCH_MAIL_TO", "ops@example.com"),
    ]);
    let mut n = Notice::new(NoticeKind::Itsm, "patch:run-1", Severity::Info, "Re-run of Ring2-Prod: finished");
    n.configuration = Some("Ring2-Prod".to_owned());
    let sent = p.notifier.send_notice(&n, &[]).await;
    assert!(sent[0].retry.is_some(), "{sent:?}");
    undelivered::keep_pending(&p, &n, &[]).await.unwrap();
    let still = undelivered::retry_pending(&p).await;
    assert!(still.retry.is_some(), "still down: kept: {still:?}");
    assert_eq!(p.ledger().store().list("pending-notices/").await.unwrap().len(), 1);

    // Back up: sent once, then forgotten.
    let sink = SmtpSink::start_on(port);
    let done = undelivered::retry_pending(&p).await;
    assert!(done.retry.is_none(), "{done:?}");
    assert_eq!(done.reports[0].outcome, DeliveryStatus::Sent);
    let mail = sink.new_since(&[], 1).await;
    assert_eq!(mail[0].subject(), "[patchwatch] Info: Re-run of Ring2-Prod: finished");
    assert!(p.ledger().store().list("pending-notices/").await.unwrap().is_empty());
    assert!(undelivered::retry_pending(&p).await.reports.is_empty());
    // Kept twice (a second failure) and retried: the ledger still sends it once.
    undelivered::keep_pending(&p, &n, &[]).await.unwrap();
    let dup = undelivered::retry_pending(&p).await;
    assert_eq!(dup.reports[0].outcome, DeliveryStatus::Duplicate);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(sink.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmapped_owners_part_goes_to_the_fallback_recipients() {
    let sink = SmtpSink::start();
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        "[channels.owners]\ntype = \"email\"\n\n[[routes]]\nname = \"owners\"\nsplit_by_tag = \"PatchOwner\"\nchannels = [\"owners\"]\nfallback_recipients = [\"unowned@example.com\"]\n\n[routes.recipients]\nteam-web = [\"web-ops@example.com\"]\n",
    )
    .unwrap();
    let snapshot = integration_tests::root().join("examples/snapshot.json").display().to_string();
    let p = pipeline(&[
        ("PATCHWATCH_CONFIG", &config.path().display().to_string()),
        ("PATCHWATCH_SMTP_URL", &sink.url()),
        ("PATCHWATCH_MAIL_TO", "ops@example.com"),
        ("PATCHWATCH_SNAPSHOT", &snapshot),
    ]);
    let event = match patchwatch_model::event::parse_delivery(
        integration_tests::example("events/post-maintenance.json").as_bytes(),
    )
    .unwrap()
    .remove(0)
    {
        patchwatch_model::event::Incoming::Maintenance(m) => *m,
        _ => unreachable!(),
    };
    let outcome = p.process(&event).await;
    let patchwatch_engine::pipeline::EventOutcome::Sent(processed) = outcome else { panic!("{outcome:?}") };
    let details: Vec<&str> = processed.deliveries.iter().map(|d| d.detail.as_str()).collect();
    assert!(details.contains(&"SMTP to web-ops@example.com"), "{details:?}");
    assert!(details.iter().filter(|d| **d == "SMTP to unowned@example.com").count() >= 1, "{details:?}");
    assert!(details.iter().all(|d| d.starts_with("SMTP to ")), "every owner's part was delivered: {details:?}");
    let mail = sink.new_since(&[], details.len()).await;
    assert_eq!(mail.len(), details.len());
    assert!(mail.iter().any(|m| m.to() == ["unowned@example.com"]));
}
