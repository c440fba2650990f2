//! Inbound edges over real TCP: a body two parsers could read differently (duplicate keys) is
//! refused on every authenticated route; a signed body that is not UTF-8 is authenticated and
//! then refused as 400 naming `body`; `/api/events` checks the token before it reads the body,
//! so an unauthenticated caller learns nothing about what a valid body looks like. None of these
//! changes any state, calls ARM or sends mail.

use std::{sync::Arc, time::Duration};

use integration_tests::{
    http,
    world::{CONFIG, SECRET, WebhookMessage, World, signed_request, spawn_itsm, state_of},
};
use patchwatch_model::secret::Secret;
use serde_json::Value;

async fn untouched(world: &World, before: &std::collections::BTreeMap<std::path::PathBuf, Vec<u8>>, what: &str) {
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(&state_of(&world.state), before, "{what}: the state store changed");
    assert!(world.arm.calls().is_empty(), "{what}: ARM was called");
    assert_eq!(world.sink.count(), 0, "{what}: mail was sent");
}

async fn answer(r: reqwest::Response) -> (u16, Value) {
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn itsm_refuses_duplicate_keys_and_non_utf8_after_authentication() {
    let world = World::new(CONFIG).await;
    let itsm = spawn_itsm(&world).await;
    let client = http();
    let ts = time::OffsetDateTime::now_utc().unix_timestamp();
    world.set_now(time::OffsetDateTime::now_utc());
    let before = state_of(&world.state);

    // Signed correctly, but "action" twice: a signer keeping the first reads "acknowledge".
    let duplicate = r#"{"action": "acknowledge", "requestedBy": "alice", "action": "rerun", "run": "x"}"#;
    let (status, body) = answer(
        signed_request(&client, &itsm, WebhookMessage { id: "msg_dup", ts, body: duplicate }, SECRET)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body["error"]["field"].as_str()), (400, Some("action")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap_or_default().contains("duplicate key"), "{body}");

    // Nested duplicates are found too.
    let nested = r#"{"action": "approve", "requestedBy": "a", "configuration": "Ring2-Prod", "change": "CHG1",
        "window": {"start": "2026-11-17T21:00:00Z", "start": "2026-11-10T21:00:00Z", "end": "2026-11-18T02:00:00Z"}}"#;
    let (status, body) = answer(
        signed_request(&client, &itsm, WebhookMessage { id: "msg_nested", ts, body: nested }, SECRET)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body["error"]["field"].as_str()), (400, Some("window.start")), "{body}");

    // A signed body that is not UTF-8: the signature is over bytes, so it verifies, and the
    // body is then refused for what it is.
    let bytes: Vec<u8> = b"{\"action\": \"acknowledge\", \"requestedBy\": \"\xff\xfe\"}".to_vec();
    let sig = patchwatch_engine::channels::webhook::signatures(
        "msg_bytes",
        ts,
        &bytes,
        &patchwatch_engine::channels::webhook::parse_secrets(SECRET).unwrap(),
    );
    let r = client
        .post(&itsm)
        .header("content-type", "application/json")
        .header("webhook-id", "msg_bytes")
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sig)
        .body(bytes)
        .send()
        .await
        .unwrap();
    let (status, body) = answer(r).await;
    assert_eq!((status, body["error"]["field"].as_str()), (400, Some("body")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap_or_default().contains("UTF-8"), "{body}");
    untouched(&world, &before, "itsm").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_check_the_token_before_the_body_and_refuse_duplicate_keys() {
    let world = World::new(CONFIG).await;
    let state = maintenance_events::AppState::new(world.pipeline(), Some(Secret::new("events-token-0123456789")));
    let base = serve(maintenance_events::router(state)).await;
    let url = format!("{base}/api/events");
    let client = http();
    let before = state_of(&world.state);

    // Without the token a malformed body answers 401, not a 400 naming a field.
    let mut event = world.rings[0].events.post.clone();
    event[0]["data"]["startDateTime"] = Value::from("not a time");
    let (status, body) = answer(client.post(&url).json(&event).send().await.unwrap()).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["field"], "Authorization", "{body}");
    assert!(!body.to_string().contains("startDateTime"), "an unauthenticated caller learned a field: {body}");
    // With it, the same body is a 400 naming the field.
    let (status, body) =
        answer(client.post(&url).bearer_auth("events-token-0123456789").json(&event).send().await.unwrap()).await;
    assert_eq!((status, body["error"]["field"].as_str()), (400, Some("[0].data.startDateTime")), "{body}");

    // A post event whose correlationId appears twice (the second naming another run).
    let good = world.rings[0].events.post.clone();
    let text = good.to_string();
    let run = good[0]["data"]["correlationId"].as_str().unwrap().to_owned();
    let other = run.replace("applyupdates/2026", "applyupdates/2025");
    let duplicated = text.replacen(
        &format!("\"correlationId\":\"{run}\""),
        &format!("\"correlationId\":\"{run}\",\"correlationId\":\"{other}\""),
        1,
    );
    assert_ne!(duplicated, text, "premise: the key was duplicated");
    let r = client
        .post(&url)
        .bearer_auth("events-token-0123456789")
        .header("content-type", "application/json")
        .body(duplicated)
        .send()
        .await
        .unwrap();
    let (status, body) = answer(r).await;
    assert_eq!((status, body["error"]["field"].as_str()), (400, Some("[0].data.correlationId")), "{body}");
    assert_eq!(body["error"]["message"].as_str().map(|m| m.contains("duplicate key")), Some(true), "{body}");
    untouched(&world, &before, "events").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_refuse_duplicate_keys() {
    let world = World::new(CONFIG).await;
    let state = alert_webhook::AppState {
        pipeline: Arc::new(world.pipeline()),
        token: Some(Secret::new("alert-token-0123456789")),
    };
    let base = serve(alert_webhook::router(state)).await;
    let before = state_of(&world.state);
    let body =
        r#"{"schemaId": "azureMonitorCommonAlertSchema", "schemaId": "Microsoft.Insights/activityLogs", "data": {}}"#;
    let r = http()
        .post(format!("{base}/api/alerts?token=alert-token-0123456789"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, answer) = answer(r).await;
    assert_eq!((status, answer["error"]["field"].as_str()), (400, Some("schemaId")), "{answer}");
    untouched(&world, &before, "alerts").await;
}
