//! An Azure Monitor action group as a channel: read through a loopback ARM fake, its email
//! receiver gets the email (real SMTP), its plain webhook the common-alert-schema payload; SMS
//! and secure-webhook receivers are reported, not silently dropped. A failing receiver is
//! retried alone.

use std::{sync::Arc, time::Duration};

use integration_tests::{example, graph::FakeCredential, pipeline, root, smtp::SmtpSink};
use mailparse::{MailHeaderMap, parse_mail};
use patchwatch_azure::arm::ArmClient;
use patchwatch_engine::pipeline::EventOutcome;
use patchwatch_model::event::Incoming;
use patchwatch_model::event::parse_delivery;
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, ResponseTemplate, matchers};

const AG: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-ops/providers/microsoft.insights/actionGroups/ag-patching";

#[tokio::test]
async fn action_group_receivers_get_the_summary_and_the_rest_is_reported() {
    let sink = SmtpSink::start();
    let hooks = MockServer::start().await;
    // The webhook receiver fails three times (two quick retries, then "retry later"), then works.
    Mock::given(matchers::path("/ag-hook"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(3)
        .with_priority(1)
        .mount(&hooks)
        .await;
    Mock::given(matchers::path("/ag-hook")).respond_with(ResponseTemplate::new(200)).mount(&hooks).await;
    let arm = MockServer::start().await;
    Mock::given(matchers::method("GET"))
        .and(matchers::path(AG))
        .and(matchers::query_param("api-version", "2023-01-01"))
        .and(matchers::header("authorization", "Bearer fake-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": AG, "type": "Microsoft.Insights/ActionGroups", "name": "ag-patching", "location": "Global",
            "properties": { "groupShortName": "patching", "enabled": true,
                "emailReceivers": [ { "name": "ops email", "emailAddress": "ops@example.com", "status": "Enabled", "useCommonAlertSchema": true },
                                    { "name": "old", "emailAddress": "old@example.com", "status": "Disabled" } ],
                "smsReceivers": [ { "name": "ops sms", "countryCode": "1", "phoneNumber": "5555550100", "status": "Enabled" } ],
                "webhookReceivers": [ { "name": "hook", "serviceUri": format!("{}/ag-hook", hooks.uri()), "useCommonAlertSchema": true },
                                      { "name": "secure hook", "serviceUri": "https://example.invalid/h2", "useCommonAlertSchema": true, "useAadAuth": true } ],
                "itsmReceivers": [], "azureAppPushReceivers": [], "voiceReceivers": [] } })))
        .mount(&arm)
        .await;
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        format!(
            "[channels.ag]\ntype = \"action_group\"\nid = \"{AG}\"\n\n[[routes]]\nname = \"all\"\nchannels = [\"ag\"]\n"
        ),
    )
    .unwrap();
    let mut p = pipeline(&[
        ("PATCHWATCH_CONFIG", &config.path().display().to_string()),
        ("PATCHWATCH_SMTP_URL", &sink.url()),
        ("PATCHWATCH_MAIL_TO", "fallback@example.com"),
        ("PATCHWATCH_SNAPSHOT", &root().join("examples/snapshot.json").display().to_string()),
    ]);
    p.arm = Some(ArmClient::new(
        arm.uri().parse().unwrap(),
        Arc::new(FakeCredential),
        "https://management.azure.com/.default".to_owned(),
    ));
    let event = match parse_delivery(example("events/post-maintenance.json").as_bytes()).unwrap().remove(0) {
        Incoming::Maintenance(m) => *m,
        _ => unreachable!(),
    };

    match p.process(&event).await {
        EventOutcome::RetryLater { reason, .. } => assert!(reason.contains("answered 500"), "{reason}"),
        other => panic!("the failing receiver must make the event retry: {other:?}"),
    }
    assert_eq!(sink.wait_for(1).len(), 1, "the email receiver was served on the first delivery");
    let outcome = p.process(&event).await;
    let EventOutcome::Sent(processed) = outcome else { panic!("second delivery: {outcome:?}") };
    let by_target: Vec<(String, &str)> =
        processed.deliveries.iter().map(|d| (d.target.clone(), d.outcome.as_str())).collect();
    assert!(by_target.contains(&("all.ag.email-ops email".to_owned(), "duplicate")), "{by_target:?}");
    assert!(by_target.contains(&("all.ag.webhook-hook".to_owned(), "sent")), "{by_target:?}");
    let skipped = processed.deliveries.iter().find(|d| d.outcome.as_str() == "skipped").unwrap();
    assert!(
        skipped.detail.contains("smsReceivers (1)") && skipped.detail.contains("secure hook"),
        "{}",
        skipped.detail
    );

    // One email, to the enabled receiver only.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    let mail = parse_mail(&messages[0]).unwrap();
    assert_eq!(mail.headers.get_first_value("To").unwrap(), "ops@example.com");

    // The webhook got the common alert schema with the summary attached.
    let ok: Vec<_> = hooks.received_requests().await.unwrap();
    assert_eq!(ok.len(), 4, "three failures, then one success");
    let body: Value = serde_json::from_slice(&ok[3].body).unwrap();
    assert_eq!(body["schemaId"], "azureMonitorCommonAlertSchema");
    assert_eq!(body["data"]["essentials"]["monitorCondition"], "Fired");
    assert_eq!(body["data"]["essentials"]["severity"], "Sev1");
    assert_eq!(body["data"]["alertContext"]["patchwatch"]["counts"]["failed"], 4);
}
