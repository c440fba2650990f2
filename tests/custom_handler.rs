//! The Functions custom-handler protocol and the webhook routes, over real TCP on 127.0.0.1.

use base64::Engine;
use integration_tests::{at, example, files, http, pipeline, root, spawn_handler};
use serde_json::{Value, json};
use time::macros::datetime;

struct Handler {
    base: String,
    outbox: tempfile::TempDir,
}

async fn handler() -> Handler {
    handler_at(None).await
}

async fn handler_at(now: Option<time::OffsetDateTime>) -> Handler {
    let outbox = tempfile::tempdir().unwrap();
    let snap = root().join("examples/snapshot.json").display().to_string();
    let mut p =
        pipeline(&[("PATCHWATCH_OUTBOX", &outbox.path().display().to_string()), ("PATCHWATCH_SNAPSHOT", &snap)]);
    if let Some(now) = now {
        p = at(p, now);
    }
    let addr = spawn_handler(p).await;
    Handler { base: format!("http://{addr}"), outbox }
}

impl Handler {
    async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, reqwest::header::HeaderMap, Value) {
        let resp = http()
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .header("x-azure-functions-invocationid", "7c0b6c8e-0000-0000-0000-000000000000")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
    fn sent(&self) -> usize {
        files(self.outbox.path(), "eml").len()
    }
}

/// The `outcome` of the first event in an invocation answer's `Logs`.
fn log_outcome(body: &Value) -> String {
    let log: Value = serde_json::from_str(body["Logs"][0].as_str().unwrap()).unwrap();
    log["outcome"].as_str().unwrap().to_owned()
}

fn post_event_object() -> Value {
    let v: Value = serde_json::from_str(&example("events/post-maintenance.json")).unwrap();
    v[0].clone()
}

fn envelope(binding: &str, value: Value) -> String {
    json!({ "Data": { binding: value }, "Metadata": { "sys": { "MethodName": "maintenance-event", "UtcNow": "2026-11-11T00:20:00Z", "RandGuid": "00000000-0000-0000-0000-000000000000" } } }).to_string()
}

#[tokio::test]
async fn event_grid_trigger_envelope_is_processed_and_answered() {
    let h = handler().await;
    let mut outcomes = Vec::new();
    for value in [post_event_object(), Value::String(post_event_object().to_string())] {
        let (status, _, body) = h.post("/maintenance-event", envelope("event", value)).await;
        assert_eq!(status, 200);
        assert!(body["Outputs"].is_object() && body["Logs"].is_array() && body.get("ReturnValue").is_some(), "{body}");
        outcomes.push(log_outcome(&body));
    }
    // The second delivery of the same event is a duplicate: the ledger sends nothing again.
    assert_eq!(outcomes, ["sent", "duplicate"]);
    assert_eq!(h.sent(), 1);
}

#[tokio::test]
async fn queue_trigger_accepts_base64_plain_and_double_encoded_messages() {
    let h = handler().await;
    let text = post_event_object().to_string();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&text);
    let mut outcomes = Vec::new();
    for value in [json!(b64), json!(text.clone()), json!(Value::String(text.clone()).to_string()), post_event_object()]
    {
        let (status, _, body) = h.post("/maintenance-queue", envelope("message", value)).await;
        assert_eq!(status, 200, "{body}");
        outcomes.push(log_outcome(&body));
    }
    // Every encoding decoded to the same event: one send, then duplicates.
    assert_eq!(outcomes, ["sent", "duplicate", "duplicate", "duplicate"]);
    assert_eq!(h.sent(), 1);
}

#[tokio::test]
async fn envelope_rejections_answer_200_with_the_reason_and_send_nothing() {
    let h = handler().await;
    let mut bad = post_event_object();
    bad["data"]["startDateTime"] = json!("not a date");
    let cases = [
        ("{not json".to_owned(), "body"),
        (json!({"Metadata": {}}).to_string(), "Data"),
        (envelope("message", json!("%%% not base64 or json")), "Data.message"),
        (envelope("message", bad), "Data.message.data.startDateTime"),
    ];
    for (body, field) in cases {
        let (status, _, answer) = h.post("/maintenance-queue", body).await;
        assert_eq!(status, 200, "a poison message must not be retried: {answer}");
        let log = answer["Logs"][0].as_str().unwrap();
        assert!(log.starts_with(&format!("rejected: {field}:")), "{log}");
    }
    assert_eq!(h.sent(), 0);
}

#[tokio::test]
async fn missing_results_inside_grace_fail_the_invocation_so_it_is_retried() {
    // Ten minutes after the post event: one machine still has no result.
    let h = handler_at(Some(datetime!(2026-11-11 00:24 UTC))).await;
    let (status, _, body) = h.post("/maintenance-queue", envelope("message", post_event_object())).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["Logs"][0].as_str().unwrap().contains("retry later"), "{body}");
    let (status, headers, body) = h.post("/api/events", example("events/post-maintenance.json")).await;
    assert_eq!(status, 503);
    assert_eq!(headers["retry-after"], "60");
    assert_eq!(body["error"]["code"], "retry_later");
    assert_eq!(h.sent(), 0, "no partial email inside the grace period");
}

#[tokio::test]
async fn webhook_delivery_validation_and_abuse_protection() {
    let h = handler().await;
    let validation = json!([{ "id": "2d1781af-0000-0000-0000-000000000000", "topic": "/subscriptions/00000000-0000-0000-0000-000000000000",
        "subject": "", "data": { "validationCode": "512d38b6-0000-0000-0000-000000000000",
        "validationUrl": "https://rp-eastus2.eventgrid.azure.net:553/eventsubscriptions/x/validate" },
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent", "eventTime": "2022-10-28T04:23:35.1981776Z",
        "metadataVersion": "1", "dataVersion": "1" }]);
    let (status, _, body) = h.post("/api/events", validation.to_string()).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({ "validationResponse": "512d38b6-0000-0000-0000-000000000000" }));

    let resp = http()
        .request(reqwest::Method::OPTIONS, format!("{}/api/events", h.base))
        .header("WebHook-Request-Origin", "eventgrid.azure.net")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["webhook-allowed-origin"], "eventgrid.azure.net");
    assert!(resp.headers().contains_key("webhook-allowed-rate"));
    let resp = http().request(reqwest::Method::OPTIONS, format!("{}/api/events", h.base)).send().await.unwrap();
    assert_eq!(resp.status(), 400);

    let (status, _, body) = h.post("/api/events", example("events/post-maintenance.json")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["events"][0]["outcome"], "sent");
    assert_eq!(body["events"][0]["verdict"], "Failed");

    let other = json!([{ "id": "1", "eventType": "Microsoft.Resources.ResourceWriteSuccess", "eventTime": "2026-11-11T00:00:00Z", "data": {} }]);
    let (status, _, body) = h.post("/api/events", other.to_string()).await;
    assert_eq!(status, 200);
    assert_eq!(body["events"][0]["outcome"], "ignored");
    assert_eq!(h.sent(), 1);

    let resp = http().get(format!("{}/api/health", h.base)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn webhook_bad_input_is_a_json_error_naming_the_field() {
    let h = handler().await;
    let mut missing = post_event_object();
    missing["data"].as_object_mut().unwrap().remove("correlationId");
    let mut mistyped = post_event_object();
    mistyped["data"]["resourceSubscriptionIds"] = json!(42);
    let cases: Vec<(String, u16, &str)> = vec![
        ("[{\"id\": 1,".into(), 400, "body"),
        ("".into(), 400, "body"),
        (json!([missing]).to_string(), 400, "[0].data.correlationId"),
        (json!([post_event_object(), mistyped]).to_string(), 400, "[1].data.resourceSubscriptionIds"),
        (json!({"hello": "world"}).to_string(), 400, "eventType"),
    ];
    for (body, code, field) in cases {
        let (status, _, answer) = h.post("/api/events", body).await;
        assert_eq!(status, code, "{answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
        assert_eq!(answer["error"]["code"], "invalid_event");
    }
    // One event over 1 MiB: 413 naming it.
    let mut big = post_event_object();
    big["data"]["padding"] = json!("x".repeat(1024 * 1024 + 10));
    let (status, _, answer) = h.post("/api/events", json!([big]).to_string()).await;
    assert_eq!(status, 413);
    assert_eq!(answer["error"]["field"], "[0]");
    // A body over the whole-delivery limit is cut off while reading: 413 naming the body.
    let (status, _, answer) = h.post("/api/events", vec![b' '; 5 * 1024 * 1024]).await;
    assert_eq!(status, 413);
    assert_eq!(answer["error"]["field"], "body");
    assert_eq!(h.sent(), 0, "nothing of a rejected delivery is processed");
}

#[tokio::test]
async fn with_a_webhook_token_unauthenticated_deliveries_change_nothing() {
    let outbox = tempfile::tempdir().unwrap();
    let snap = root().join("examples/snapshot.json").display().to_string();
    let p = pipeline(&[("PATCHWATCH_OUTBOX", &outbox.path().display().to_string()), ("PATCHWATCH_SNAPSHOT", &snap)]);
    let router = maintenance_events::router(maintenance_events::AppState::new(
        p,
        Some(patchwatch_model::secret::Secret::new("s3cret-token")),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let post = |auth: Option<&'static str>| {
        let mut req = http()
            .post(format!("http://{addr}/api/events"))
            .header("content-type", "application/json")
            .body(example("events/post-maintenance.json"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send()
    };
    for auth in [None, Some("Bearer wrong"), Some("Basic czNjcmV0LXRva2Vu"), Some("Bearer s3cret-token-")] {
        let resp = post(auth).await.unwrap();
        assert_eq!(resp.status(), 401, "{auth:?}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    assert!(files(outbox.path(), "eml").is_empty(), "an unauthenticated delivery sent something");
    assert_eq!(post(Some("Bearer s3cret-token")).await.unwrap().status(), 200);
    assert_eq!(files(outbox.path(), "eml").len(), 1);
}

#[tokio::test]
async fn the_queue_s_last_attempt_sends_what_is_known_instead_of_poisoning() {
    // Inside the grace period with a machine missing: an ordinary attempt waits…
    let h = handler_at(Some(datetime!(2026-11-11 00:24 UTC))).await;
    let (status, _, _) = h.post("/maintenance-queue", envelope("message", post_event_object())).await;
    assert_eq!(status, 503);
    // …but the last dequeue before the poison queue sends, listing the machine as No result.
    let last = json!({ "Data": { "message": post_event_object() }, "Metadata": { "DequeueCount": maintenance_events::QUEUE_MAX_DEQUEUE } });
    let (status, _, body) = h.post("/maintenance-queue", last.to_string()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(log_outcome(&body), "sent");
    assert_eq!(h.sent(), 1);
}
