//! The ITSM inbound handler over real TCP: no signature or authorisation failure changes any
//! state (the state store's files, ARM, mail), bad requests name the field, the ServiceNow form
//! and bearer callers work, acknowledgements are noted on the run's ServiceNow incident.

use std::time::Duration;

use integration_tests::{
    http,
    itsm::ServiceNow,
    world::{CONFIG, SECRET, WebhookMessage, World, signed_request, spawn_itsm, state_of},
};
use patchwatch_engine::pipeline::EventOutcome;
use serde_json::{Value, json};
use time::macros::datetime;
use wiremock::{Mock, MockServer};

/// Asserts that nothing changed: state files, ARM calls, mail.
async fn assert_untouched(
    world: &World,
    before: &std::collections::BTreeMap<std::path::PathBuf, Vec<u8>>,
    arm_calls: usize,
    mails: usize,
    what: &str,
) {
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(&state_of(&world.state), before, "{what}: the state store changed");
    assert_eq!(world.arm.calls().len(), arm_calls, "{what}: ARM was called");
    assert_eq!(world.sink.count(), mails, "{what}: mail was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signature_and_authorisation_failures_change_nothing() {
    let config = format!(
        "{CONFIG}\n[[itsm.callers]]\nname = \"readonly\"\nbearer_env = \"ITSM_READONLY\"\nconfigurations = [\"Ring2-*\"]\nactions = [\"acknowledge\"]\n"
    );
    let mut world = World::new(&config).await;
    world.extra_env.push(("ITSM_READONLY", "bearer-secret-0123456789".to_owned()));
    // Ring 0's summary exists, so a re-run would have work to do.
    let post = world.event(0, false);
    world.set_now(post.event_time.unwrap() + time::Duration::minutes(30));
    assert!(matches!(world.pipeline().process(&post).await, EventOutcome::Sent(_)));
    let itsm = spawn_itsm(&world).await;
    let now = datetime!(2026-11-12 09:00 UTC);
    world.set_now(now);
    let ts = now.unix_timestamp();
    let rerun = json!({ "action": "rerun", "requestedBy": "mallory", "run": post.correlation_id }).to_string();
    let approve =
        json!({ "action": "approve", "requestedBy": "mallory", "configuration": "Ring2-Prod", "change": "CHG1",
        "window": { "start": "2026-11-17T21:00:00Z", "end": "2026-11-18T02:00:00Z" } })
        .to_string();
    let client = http();
    let state = state_of(&world.state);
    let (arm, mails) = (world.arm.calls().len(), world.sink.count());

    let other_key = "whsec_b3RoZXItb3RoZXItb3RoZXItb3RoZXItb3RoZXI=";
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "bad signature",
            signed_request(&client, &itsm, WebhookMessage { id: "msg_1", ts, body: &rerun }, other_key),
            401,
            "no signature matches",
        ),
        (
            "tampered body",
            signed_request(&client, &itsm, WebhookMessage { id: "msg_2", ts, body: &rerun }, SECRET)
                .body(rerun.replace("mallory", "alice")),
            401,
            "no signature matches",
        ),
        (
            "old timestamp",
            signed_request(&client, &itsm, WebhookMessage { id: "msg_3", ts: ts - 301, body: &rerun }, SECRET),
            401,
            "more than the 300 allowed",
        ),
        (
            "future timestamp",
            signed_request(&client, &itsm, WebhookMessage { id: "msg_4", ts: ts + 301, body: &rerun }, SECRET),
            401,
            "more than the 300 allowed",
        ),
        ("no credentials", client.post(&itsm).body(rerun.clone()), 401, "no credentials"),
        (
            "repeated webhook-id",
            signed_request(&client, &itsm, WebhookMessage { id: "msg_5", ts, body: &rerun }, SECRET)
                .header("webhook-id", "msg_6"),
            401,
            "more than once",
        ),
        (
            "missing webhook-id",
            client
                .post(&itsm)
                .header("webhook-timestamp", ts.to_string())
                .header(
                    "webhook-signature",
                    patchwatch_engine::channels::webhook::signatures(
                        "msg_7",
                        ts,
                        &rerun,
                        &patchwatch_engine::channels::webhook::parse_secrets(SECRET).unwrap(),
                    ),
                )
                .body(rerun.clone()),
            401,
            "webhook-id header is missing",
        ),
        ("wrong bearer", client.post(&itsm).bearer_auth("bearer-secret-012345678").body(rerun.clone()), 401, "bearer"),
        (
            "configuration that disagrees with the run",
            signed_request(
                &client,
                &itsm,
                WebhookMessage {
                    id: "msg_8",
                    ts,
                    body: &json!({ "action": "rerun", "requestedBy": "mallory", "run": post.correlation_id, "configuration": "Ring2-Prod" }).to_string(),
                },
                SECRET,
            ),
            400,
            "the run belongs to \"Ring0-Dev\"",
        ),
        (
            "another configuration's run",
            client.post(&itsm).bearer_auth("bearer-secret-0123456789").body(
                json!({ "action": "acknowledge", "requestedBy": "m", "configuration": "Ring2-Prod", "run": post.correlation_id }).to_string(),
            ),
            400,
            "the run belongs to",
        ),
        (
            "action not allowed",
            client.post(&itsm).bearer_auth("bearer-secret-0123456789").body(approve.clone()),
            403,
            "may not approve",
        ),
        (
            "configuration not allowed",
            client
                .post(&itsm)
                .bearer_auth("bearer-secret-0123456789")
                .body(json!({ "action": "acknowledge", "requestedBy": "m", "run": post.correlation_id }).to_string()),
            403,
            "may not act on configuration \"Ring0-Dev\"",
        ),
    ];
    for (what, request, status, message) in cases {
        let r = request.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{what}");
        let body: Value = r.json().await.unwrap();
        assert!(body["error"]["message"].as_str().unwrap().contains(message), "{what}: {body}");
        assert_untouched(&world, &state, arm, mails, what).await;
    }

    // A good request is carried out once; the same signed message again is a replay.
    let ok = signed_request(&client, &itsm, WebhookMessage { id: "msg_ok", ts, body: &approve }, SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let state = state_of(&world.state);
    let mails = world.sink.new_since(&[], 1).await.len();
    let replay = signed_request(&client, &itsm, WebhookMessage { id: "msg_ok", ts, body: &approve }, SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 401);
    let body: Value = replay.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("already used"), "{body}");
    assert_untouched(&world, &state, arm, mails, "replayed webhook-id").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_name_the_problem_and_bearer_requests_are_idempotent() {
    let config = format!(
        "{CONFIG}\n[[itsm.callers]]\nname = \"desk\"\nbearer_env = \"ITSM_DESK\"\nconfigurations = [\"Ring*\"]\nactions = [\"rerun\", \"emergency\"]\n"
    );
    let mut world = World::new(&config).await;
    world.extra_env.push(("ITSM_DESK", "desk-secret-0123456789".to_owned()));
    let post = world.event(0, false);
    world.set_now(post.event_time.unwrap() + time::Duration::minutes(30));
    assert!(matches!(world.pipeline().process(&post).await, EventOutcome::Sent(_)));
    let itsm = spawn_itsm(&world).await;
    let client = http();
    let send = |body: Value| client.post(&itsm).bearer_auth("desk-secret-0123456789").json(&body).send();
    let cases = [
        (json!({ "action": "launch", "requestedBy": "d" }), 400, "action"),
        (json!({ "action": "rerun", "requestedBy": "d", "run": post.correlation_id }), 400, "requestId"),
        (
            json!({ "action": "emergency", "requestedBy": "d", "requestId": "r0", "configuration": "Ring0-Dev" }),
            400,
            "classifications",
        ),
        (
            json!({ "action": "emergency", "requestedBy": "d", "requestId": "r1", "configuration": "Ring0-Dev", "classifications": ["Security"], "machines": ["no-such-vm"] }),
            422,
            "machines[0]",
        ),
        (
            json!({ "action": "emergency", "requestedBy": "d", "requestId": "r2", "configuration": "Lab-9", "kbNumbers": ["5031364"] }),
            403,
            "",
        ),
        (
            json!({ "action": "emergency", "requestedBy": "d", "requestId": "r3", "configuration": "Ring1-PreProd", "kbNumbers": ["5031364"] }),
            404,
            "configuration",
        ),
        (
            // A well-formed run id that patchwatch has no record of.
            json!({ "action": "rerun", "requestedBy": "d", "requestId": "r4", "run": post.correlation_id.replace("applyupdates/2026", "applyupdates/1999") }),
            404,
            "run",
        ),
        (
            // A run name that is not 14 digits is no run id at all.
            json!({ "action": "rerun", "requestedBy": "d", "requestId": "r5", "run": post.correlation_id.replace("applyupdates/", "applyupdates/1999") }),
            400,
            "run",
        ),
    ];
    for (body, status, field) in cases {
        let r = send(body.clone()).await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{body}");
        let answer: Value = r.json().await.unwrap();
        if !field.is_empty() {
            assert_eq!(answer["error"]["field"], field, "{answer}");
        }
    }
    assert!(world.arm.calls_ending("POST", "/installPatches").is_empty(), "no bad request patched anything");

    // An emergency patch of two named machines; the same requestId again is a duplicate.
    let summary = match world.pipeline().process(&post).await {
        EventOutcome::Duplicate { .. } => None,
        other => Some(other),
    };
    assert!(summary.is_none());
    let data: Vec<String> = world.tables["maintenanceresources"]
        .iter()
        .filter(|r| {
            r["type"] == "microsoft.maintenance/applyupdates"
                && r["properties"]["correlationId"] == post.correlation_id.to_ascii_lowercase()
        })
        .map(|r| r["properties"]["resourceId"].as_str().unwrap().rsplit('/').next().unwrap().to_owned())
        .take(2)
        .collect();
    let seen = world.sink.messages();
    let body = json!({ "action": "emergency", "requestedBy": "d", "requestId": "em-1", "configuration": "Ring0-Dev",
        "kbNumbers": ["KB5031364"], "rebootSetting": "Never", "maximumDuration": "PT1H", "machines": data });
    let r = send(body.clone()).await.unwrap();
    assert_eq!(r.status(), 202);
    world.sink.new_since(&seen, 1).await;
    let calls = world.arm.calls_ending("POST", "/installPatches");
    assert_eq!(calls.len(), 2);
    for c in &calls {
        assert_eq!(
            (c.body["rebootSetting"].as_str(), c.body["maximumDuration"].as_str()),
            (Some("Never"), Some("PT60M"))
        );
        let win = &c.body["windowsParameters"];
        if !win.is_null() {
            assert_eq!(win["kbNumbersToInclude"], json!(["5031364"]));
        }
    }
    let r = send(body).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "duplicate");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(world.arm.calls_ending("POST", "/installPatches").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servicenow_changes_and_acknowledgements() {
    let snow = ServiceNow::new("svc", "pw");
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any()).respond_with(snow.clone()).mount(&server).await;
    let config = format!(
        "{}\n[channels.snow]\ntype = \"servicenow\"\ninstance = \"{}\"\nuser_env = \"SN_USER\"\npassword_env = \"SN_PASSWORD\"\n",
        CONFIG.replace("name = \"all\"\nchannels = [\"ops\"]", "name = \"all\"\nchannels = [\"ops\", \"snow\"]"),
        server.uri()
    );
    let mut world = World::new(&config).await;
    world.extra_env.push(("SN_USER", "svc".to_owned()));
    world.extra_env.push(("SN_PASSWORD", "pw".to_owned()));
    let post = world.event(0, false);
    world.set_now(post.event_time.unwrap() + time::Duration::minutes(30));
    assert!(matches!(world.pipeline().process(&post).await, EventOutcome::Sent(_)));
    assert_eq!(snow.all().len(), 1, "the failed run opened an incident");
    let itsm = spawn_itsm(&world).await;
    let now = datetime!(2026-11-05 08:00 UTC);
    world.set_now(now);

    // A ServiceNow business rule posts the change as it is; approval decides.
    let change = json!({ "number": "CHG0099", "approval": "approved", "start_date": "2026-11-17 21:00:00", "end_date": "2026-11-18 02:00:00",
        "u_maintenance_configuration": "Ring2-Prod", "sys_updated_by": "cab.chair" })
    .to_string();
    let r = signed_request(
        &http(),
        &format!("{itsm}?format=servicenow"),
        WebhookMessage { id: "msg_c1", ts: now.unix_timestamp(), body: &change },
        SECRET,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "recorded");
    let decisions = world
        .pipeline()
        .approvals
        .covering("Ring2-Prod", datetime!(2026-11-17 22:00 UTC), datetime!(2026-11-18 00:00 UTC))
        .await
        .unwrap();
    assert_eq!(
        (decisions[0].change.as_str(), decisions[0].by.as_str(), decisions[0].approved),
        ("CHG0099", "cab.chair", true)
    );
    let pending = change.replace("\"approved\"", "\"requested\"");
    let r = signed_request(
        &http(),
        &format!("{itsm}?format=servicenow"),
        WebhookMessage { id: "msg_c2", ts: now.unix_timestamp(), body: &pending },
        SECRET,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "ignored");

    // Acknowledging the failed run notes it on the incident, once.
    let ack = json!({ "action": "acknowledge", "requestedBy": "bob@contoso.com", "run": post.correlation_id, "note": "KB5031364 known issue" }).to_string();
    let r =
        signed_request(&http(), &itsm, WebhookMessage { id: "msg_ack", ts: now.unix_timestamp(), body: &ack }, SECRET)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["status"], "acknowledged", "{answer}");
    let incident = &snow.all()[0];
    assert_eq!(answer["incidents"], json!([incident["number"]]));
    let journal = incident["journal"].as_array().unwrap();
    assert!(
        journal
            .last()
            .unwrap()
            .as_str()
            .unwrap()
            .contains("Acknowledged by bob@contoso.com via servicenow: KB5031364 known issue")
    );
    let r =
        signed_request(&http(), &itsm, WebhookMessage { id: "msg_ack2", ts: now.unix_timestamp(), body: &ack }, SECRET)
            .send()
            .await
            .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "already_acknowledged");
    assert_eq!(snow.all()[0]["journal"].as_array().unwrap().len(), journal.len());
}

/// The snooze and silence actions: a run's reminders pause until the snooze ends; a silence is
/// stored bound to the caller's configuration and mutes the next summary; a configuration the
/// caller has no rights on is refused and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snooze_and_silence() {
    let config = CONFIG
        .replace(
            "actions = [\"approve\", \"reject\", \"acknowledge\", \"rerun\", \"emergency\"]",
            "actions = [\"acknowledge\", \"snooze\", \"silence\"]",
        )
        .replace(
            "name = \"all\"\nchannels = [\"ops\"]",
            "name = \"all\"\nchannels = [\"ops\"]\nremind_after = [\"4h\"]",
        );
    let world = World::new(&config).await;
    let post = world.event(0, false);
    let t0 = post.event_time.unwrap() + time::Duration::minutes(30);
    world.set_now(t0);
    assert!(matches!(world.pipeline().process(&post).await, EventOutcome::Sent(_)));
    assert_eq!(
        world.pipeline().followups.of_run(&post.correlation_id).await.unwrap().len(),
        1,
        "the failed run is followed up"
    );
    let itsm = spawn_itsm(&world).await;
    let send = |id: &'static str, body: Value| {
        let body = body.to_string();
        let itsm = itsm.clone();
        async move {
            let r = signed_request(&http(), &itsm, WebhookMessage { id, ts: t0.unix_timestamp(), body: &body }, SECRET)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };

    let (status, answer) =
        send("msg_s1", json!({ "action": "snooze", "requestedBy": "bob@contoso.com", "run": post.correlation_id }))
            .await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("snoozed")), "{answer}");
    let mails = world.sink.count();
    world.set_now(t0 + time::Duration::hours(5));
    let pass = patchwatch_engine::reminders::run(&world.pipeline()).await.unwrap();
    assert!(pass.deliveries.reports.is_empty(), "snoozed for 24 h: {:?}", pass.deliveries.reports);
    world.set_now(t0 + time::Duration::hours(25));
    let pass = patchwatch_engine::reminders::run(&world.pipeline()).await.unwrap();
    assert_eq!(pass.deliveries.reports.len(), 1, "the snooze ended: the due step is sent");
    assert_eq!(world.sink.wait_for(mails + 1).len(), mails + 1);

    // A snooze of a run without reminders names the run.
    world.set_now(t0);
    let (status, answer) =
        send("msg_s2", json!({ "action": "snooze", "requestedBy": "bob", "run": other_run(&post.correlation_id) }))
            .await;
    assert_eq!((status, answer["error"]["field"].as_str()), (404, Some("run")), "{answer}");

    let before = state_of(&world.state);
    let (status, answer) = send(
        "msg_s3",
        json!({ "action": "silence", "requestedBy": "carol", "configuration": "Other-Config", "duration": "4h" }),
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(state_of(&world.state), before, "a refused silence changes nothing");
    let name = post.configuration_name().to_owned();
    let (status, answer) = send(
        "msg_s4",
        json!({ "action": "silence", "requestedBy": "carol", "configuration": name, "duration": "4h", "note": "CHG0042",
                "silence": { "outcome": ["Failed"] } }),
    )
    .await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("silenced")), "{answer}");
    let silences = world.pipeline().notifier.silences.active(t0).await.unwrap();
    assert_eq!(silences.len(), 1);
    assert_eq!(silences[0].matchers.configuration.as_deref(), Some(name.as_str()), "bound to the configuration");
    assert_eq!(silences[0].author, "carol (via servicenow)");
}

/// Another run of the same configuration: the id with its last digit changed.
fn other_run(run: &str) -> String {
    let (head, last) = run.split_at(run.len() - 1);
    format!("{head}{}", if last == "9" { "8" } else { "9" })
}
