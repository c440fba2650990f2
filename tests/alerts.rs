//! Activity-log alerts over real TCP, as an action group's webhook delivers them: maintenance
//! changes become one email each (however often delivered; assignments are grouped, see inhibit.rs), other alerts are acknowledged and
//! ignored, a missing token is refused before anything happens.

use std::{sync::Arc, time::Duration};

use integration_tests::{alert_bodies::common_alert, http, pipeline, smtp::SmtpSink};
use serde_json::{Value, json};

const MC: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-patching/providers/Microsoft.Maintenance/maintenanceConfigurations/Ring2-Prod";

async fn serve(token: Option<&str>, smtp: &str) -> String {
    let p = pipeline(&[("PATCHWATCH_SMTP_URL", smtp), ("PATCHWATCH_MAIL_TO", "ops@example.com")]);
    let state =
        alert_webhook::AppState { pipeline: Arc::new(p), token: token.map(patchwatch_model::secret::Secret::new) };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, alert_webhook::router(state)).await.unwrap() });
    format!("http://{addr}/api/alerts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_changes_are_told_once_and_the_rest_ignored() {
    let sink = SmtpSink::start();
    let url = serve(Some("alert-token-123"), &sink.url()).await;
    let client = http();
    let write = common_alert("Microsoft.Maintenance/maintenanceConfigurations/write", "Succeeded", MC, "e-1");

    // Without the token nothing is processed.
    let r = client.post(&url).json(&write).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = client.post(format!("{url}?token=wrong")).json(&write).send().await.unwrap();
    assert_eq!(r.status(), 401);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sink.count(), 0);

    let authed = format!("{url}?token=alert-token-123");
    for _ in 0..3 {
        let r = client.post(&authed).json(&write).send().await.unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    let mail = sink.new_since(&[], 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.count(), 1, "three deliveries of one alert, one email");
    assert_eq!(
        mail[0].subject(),
        "[patchwatch] Info: Maintenance configuration Ring2-Prod changed by alice@contoso.com"
    );
    let text = mail[0].text();
    assert!(
        text.contains("Who: alice@contoso.com")
            && text.contains("Status: Succeeded")
            && text.contains("When: 2026-11-20T10:00:00.123Z"),
        "{text}"
    );

    // The non-common activity-log schema: an assignment removed.
    let assignment = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/vm-web-01/providers/Microsoft.Maintenance/configurationAssignments/Ring2-Prod";
    let seen = sink.messages();
    let legacy = json!({ "schemaId": "Microsoft.Insights/activityLogs", "data": { "status": "Activated", "context": { "activityLog": {
        "authorization": { "action": "Microsoft.Maintenance/configurationAssignments/delete", "scope": assignment }, "channels": "Operation",
        "claims": "{}", "caller": "bob@contoso.com", "correlationId": "33333333-0000-0000-0000-000000000000", "description": "",
        "eventSource": "Administrative", "eventTimestamp": "2026-11-20T11:00:00Z", "eventDataId": "e-2", "level": "Informational",
        "operationName": "Microsoft.Maintenance/configurationAssignments/delete", "operationId": "o", "resourceId": assignment,
        "resourceGroupName": "rg-web", "resourceProviderName": "Microsoft.Maintenance", "resourceType": "Microsoft.Maintenance/configurationAssignments",
        "status": "Succeeded", "subStatus": "", "subscriptionId": "00000000-0000-0000-0000-000000000000", "submissionTimestamp": "2026-11-20T11:00:01Z" } },
        "properties": {} } });
    // Assignments are grouped per configuration and caller (tests/inhibit.rs sends the group).
    let r = client.post(&authed).json(&legacy).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let answer = r.json::<Value>().await.unwrap();
    assert_eq!(answer["title"], "Configuration assignment Ring2-Prod on vm-web-01 deleted by bob@contoso.com");
    assert_eq!(answer["deliveries"][0]["outcome"], "inhibited", "{answer}");

    // A failed apply-updates operation of a configuration's run waits for the run's summary
    // (tests/inhibit.rs); on a machine of its own it is critical at once.
    let failed = common_alert(
        "Microsoft.Maintenance/applyUpdates/write",
        "Failed",
        &format!("{MC}/providers/Microsoft.Maintenance/applyUpdates/20261120100000"),
        "e-3",
    );
    let r = client.post(&authed).json(&failed).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["deliveries"][0]["outcome"], "skipped", "held");
    let machine = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/vm-web-01/providers/Microsoft.Maintenance/applyUpdates/default";
    let failed = common_alert("Microsoft.Maintenance/applyUpdates/write", "Failed", machine, "e-5");
    assert_eq!(client.post(&authed).json(&failed).send().await.unwrap().status(), 200);
    let mail = sink.new_since(&seen, 1).await;
    assert_eq!(mail[0].subject(), "[patchwatch] Critical: Apply updates failed");

    // Other alerts: acknowledged, nothing sent. Bad bodies: 400 naming the field.
    let seen = sink.messages();
    let restart = common_alert(
        "Microsoft.Compute/virtualMachines/restart/action",
        "Succeeded",
        "/subscriptions/x/resourceGroups/y/providers/Microsoft.Compute/virtualMachines/z",
        "e-4",
    );
    let metric = json!({ "schemaId": "azureMonitorCommonAlertSchema", "data": { "essentials": { "monitoringService": "Platform", "signalType": "Metric" }, "alertContext": {} } });
    for body in [restart, metric] {
        let r = client.post(&authed).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap()["status"], "ignored");
    }
    let r = client.post(&authed).body("{\"schemaId\": 5}").send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["field"], "schemaId");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.new_since(&seen, 0).await.len(), 0);
}
