//! The real `maintenance-events` binary under AWS Lambda: started with `AWS_LAMBDA_RUNTIME_API`
//! pointing at a loopback Runtime API emulator, it takes function URL (payload 2.0) events
//! through `lambda_http` and answers them with the same router as on Azure. State is an Azure
//! blob container (Azurite) by SAS, as on AWS; mail goes to a real SMTP server.
// Test and bench code: an unwrap that fails is the test failing, with its message.
#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};

use integration_tests::{
    azurite::Azurite,
    example,
    lambda::{LambdaEmulator, http_event},
    root,
    smtp::SmtpSink,
};
use serde_json::{Value, json};

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn body(answer: &Value) -> Value {
    serde_json::from_str(answer["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_runs_under_the_lambda_runtime_api() {
    let lambda = LambdaEmulator::start().await;
    let sink = SmtpSink::start();
    let azurite = Azurite::start();
    let state = azurite.container("patchwatch-lambda").await;
    let _child = Running(
        Command::new(env!("CARGO_BIN_EXE_maintenance-events"))
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", lambda.runtime_api())
            .env("AWS_LAMBDA_FUNCTION_NAME", "patchwatch-events")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("PATCHWATCH_SNAPSHOT", root().join("examples/snapshot.json"))
            .env("PATCHWATCH_SMTP_URL", sink.url())
            .env("PATCHWATCH_MAIL_TO", "ops@example.com")
            .env("PATCHWATCH_STATE", &state)
            .env("PATCHWATCH_WEBHOOK_TOKEN", "lambda-token-0123")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let health = lambda.invoke(http_event("GET", "/api/health", &[], "")).await.unwrap();
    assert_eq!(health["statusCode"], 200, "{health}");
    assert_eq!(body(&health)["status"], "ok");

    // Event Grid's validation handshake, then the post event: without the token nothing happens.
    let validation = json!([{ "id": "v1", "topic": "/subscriptions/x", "subject": "", "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "eventTime": "2026-11-22T07:00:00Z", "data": { "validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6" }, "dataVersion": "2", "metadataVersion": "1" }]);
    let answer = lambda
        .invoke(http_event("POST", "/api/events", &[("content-type", "application/json")], &validation.to_string()))
        .await
        .unwrap();
    assert_eq!(answer["statusCode"], 200, "{answer}");
    assert_eq!(body(&answer)["validationResponse"], "512d38b6-c7b8-40c8-89fe-f46f9e9622b6");

    let event = example("events/post-maintenance.json");
    let answer = lambda
        .invoke(http_event("POST", "/api/events", &[("content-type", "application/json")], &event))
        .await
        .unwrap();
    assert_eq!(answer["statusCode"], 401, "{answer}");
    let auth = [("content-type", "application/json"), ("authorization", "Bearer lambda-token-0123")];
    let answer = lambda.invoke(http_event("POST", "/api/events", &auth, &event)).await.unwrap();
    assert_eq!(answer["statusCode"], 200, "{answer}");
    assert_eq!(body(&answer)["events"][0]["outcome"], "sent", "{answer}");
    assert_eq!(sink.wait_for(1).len(), 1);
    // Redelivered: acknowledged as a duplicate, no second email.
    let answer = lambda.invoke(http_event("POST", "/api/events", &auth, &event)).await.unwrap();
    assert_eq!(body(&answer)["events"][0]["outcome"], "duplicate", "{answer}");
    // Bad input: a 400 naming the field, and the function keeps serving.
    let answer = lambda.invoke(http_event("POST", "/api/events", &auth, "[{\"id\": 1}]")).await.unwrap();
    assert_eq!(answer["statusCode"], 400, "{answer}");
    assert_eq!(body(&answer)["error"]["field"], "[0].eventType");
    assert!(lambda.init_error().is_none());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(sink.messages().len(), 1);

    // The weekly schedule, exactly as the SAM template's EventBridge rule sends it: the digest
    // goes out once, however often the schedule fires.
    let schedule = schedule_input();
    let answer = lambda.invoke(schedule.clone()).await.unwrap();
    assert_eq!(answer["statusCode"], 200, "{answer}");
    let log: Value = serde_json::from_str(body(&answer)["Logs"][0].as_str().unwrap()).unwrap();
    assert_eq!(log["outcome"], "digest", "{answer}");
    assert_eq!(log["deliveries"][0]["outcome"], "sent", "{log}");
    assert_eq!(sink.wait_for(2).len(), 2);
    let answer = lambda.invoke(schedule).await.unwrap();
    let log: Value = serde_json::from_str(body(&answer)["Logs"][0].as_str().unwrap()).unwrap();
    assert_eq!(log["deliveries"][0]["outcome"], "duplicate", "{log}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(sink.messages().len(), 2);
}

/// The `Input` of the ComplianceReport schedule in infra/aws/template.yaml.
fn schedule_input() -> Value {
    let template = std::fs::read_to_string(root().join("infra/aws/template.yaml")).unwrap();
    let at = template.find("ComplianceReport:").expect("the schedule event");
    let line = template[at..].lines().find(|l| l.trim_start().starts_with("Input: '")).expect("its Input");
    let json = line.trim().trim_start_matches("Input: '").trim_end_matches('\'');
    serde_json::from_str(json).unwrap()
}

#[tokio::test]
async fn missing_lambda_settings_stop_start_up_with_a_message() {
    let lambda = LambdaEmulator::start().await;
    let output = Command::new(env!("CARGO_BIN_EXE_maintenance-events"))
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", lambda.runtime_api())
        .env("PATCHWATCH_SNAPSHOT", root().join("examples/snapshot.json"))
        .env("PATCHWATCH_OUTBOX", "/tmp/unused")
        .env("PATCHWATCH_STATE", "https://127.0.0.1:1/unused?sig=x")
        .output()
        .unwrap();
    assert!(!output.status.success());
    // Lambda's log format writes to stdout (CloudWatch takes both).
    let stderr = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(stderr.contains("AWS_LAMBDA_FUNCTION_NAME is required"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
