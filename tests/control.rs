//! Control around a run, end to end on loopback: a simulated three-ring month.
//!
//! Ring 0 (dev) runs first and fails one KB on more machines than ring 1's gate allows; ring 1's
//! pre event is then cancelled through the ARM cancel API before its cut-off, with a notice
//! saying why; ring 0's failed machines are re-run through a signed ITSM request (installPatches,
//! polled to completion, summarised like a run); ring 2 goes ahead on an approved change.
//! Around ring 0 patchwatch starts its deallocated VMs and deallocates exactly those afterwards.

use std::{collections::HashSet, time::Duration};

use integration_tests::{
    http,
    world::{CONFIG, SECRET, WebhookMessage, World, paths, signed_request, spawn_itsm, subjects},
};
use patchwatch_engine::pipeline::EventOutcome;
use serde_json::{Value, json};
use time::macros::datetime;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_ring_month() {
    let world = World::new(CONFIG).await;
    let events_app = world.pipeline();

    // ── Ring 0, pre event (T-35 min): no gate; its deallocated VMs are started.
    let ring0_pre = world.event(0, true);
    world.set_now(ring0_pre.start - time::Duration::minutes(35));
    let outcome = events_app.process(&ring0_pre).await;
    assert!(matches!(outcome, EventOutcome::Sent(_)), "{outcome:?}");
    let expected_started = world.stopped_vms("Ring0-Dev");
    assert!(!expected_started.is_empty(), "the simulated ring 0 has deallocated VMs");
    let started = paths(&world.arm.calls_ending("POST", "/start"), "/start");
    assert_eq!(started, expected_started, "exactly the deallocated VMs are started");
    // A redelivery starts nothing again.
    events_app.process(&ring0_pre).await;
    assert_eq!(world.arm.calls_ending("POST", "/start").len(), expected_started.len());

    // ── Ring 0, post event: the summary, then exactly the started machines are deallocated.
    let ring0_post = world.event(0, false);
    world.set_now(ring0_post.event_time.unwrap() + time::Duration::minutes(30));
    let outcome = events_app.process(&ring0_post).await;
    let EventOutcome::Sent(processed) = outcome else { panic!("ring 0 summary: {outcome:?}") };
    let top_kb = processed.summary.failed_patches.iter().map(|p| p.machines.len()).max().unwrap_or(0);
    assert!(top_kb * 100 > 4 * 40, "premise: one KB failed on more than 4% of ring 0 ({top_kb} machines)");
    let deallocated = paths(&world.arm.calls_ending("POST", "/deallocate"), "/deallocate");
    assert_eq!(deallocated, expected_started, "only what patchwatch started is stopped");
    events_app.process(&ring0_post).await;
    assert_eq!(
        world.arm.calls_ending("POST", "/deallocate").len(),
        expected_started.len(),
        "redelivery stops nothing twice"
    );
    let ring0_failed: HashSet<String> = processed
        .summary
        .machines
        .iter()
        .filter(|m| {
            matches!(
                m.outcome,
                patchwatch_model::summary::Outcome::Failed
                    | patchwatch_model::summary::Outcome::WindowExceeded
                    | patchwatch_model::summary::Outcome::NoResult
            )
        })
        .map(|m| m.id.to_ascii_lowercase())
        .collect();
    assert!(!ring0_failed.is_empty());

    // ── Ring 1, pre event a week later at T-35: the ring gate trips, the run is cancelled.
    let ring1_pre = world.event(1, true);
    let arrived = ring1_pre.start - time::Duration::minutes(35);
    world.set_now(arrived);
    let seen = world.sink.messages();
    let outcome = events_app.process(&ring1_pre).await;
    assert!(matches!(outcome, EventOutcome::Sent(_)), "{outcome:?}");
    let cancels = world.arm.calls_ending(
        "PUT",
        &patchwatch_model::resource_id::last_segment(&ring1_pre.correlation_id).to_ascii_lowercase(),
    );
    assert_eq!(cancels.len(), 1, "one cancel PUT");
    assert_eq!(cancels[0].path.to_ascii_lowercase(), ring1_pre.correlation_id.to_ascii_lowercase());
    assert_eq!(cancels[0].body, json!({ "properties": { "status": "Cancel" } }));
    assert_eq!(cancels[0].api_version, "2023-09-01-preview");
    let mails = world.sink.new_since(&seen, 1).await;
    assert_eq!(mails.len(), 1, "only the gate's notice: {:?}", subjects(&mails));
    let notice = &mails[0];
    assert!(
        notice.subject().contains("Ring1-PreProd") && notice.subject().contains("cancelled by a gate"),
        "{}",
        notice.subject()
    );
    assert_eq!(notice.to(), vec!["ops@example.com"]);
    let text = notice.text();
    assert!(text.contains("preprod-after-dev") && text.contains("Ring0-Dev") && text.contains("limit 4%"), "{text}");
    assert!(
        !subjects(&mails).iter().any(|s| s.contains("Ring1-PreProd") && s.contains("heads-up")),
        "no heads-up for a cancelled run"
    );
    // Redelivered: no second cancel, no second notice.
    events_app.process(&ring1_pre).await;
    assert_eq!(
        world
            .arm
            .calls_ending(
                "PUT",
                &patchwatch_model::resource_id::last_segment(&ring1_pre.correlation_id).to_ascii_lowercase()
            )
            .len(),
        1
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(world.sink.new_since(&seen, 1).await.len(), 1, "no second notice");

    // ── The service desk re-runs ring 0's failed machines with a signed request.
    let itsm = spawn_itsm(&world).await;
    let now = datetime!(2026-11-12 09:00 UTC);
    world.set_now(now);
    let seen = world.sink.messages();
    let body = json!({ "action": "rerun", "requestedBy": "alice@contoso.com", "run": ring0_post.correlation_id, "note": "KB5031364 retry" }).to_string();
    let response = signed_request(
        &http(),
        &itsm,
        WebhookMessage { id: "msg_rerun_1", ts: now.unix_timestamp(), body: &body },
        SECRET,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["machines"].as_array().unwrap().len(), ring0_failed.len(), "{answer}");
    // The summary of the re-run (routed like a run) and the notice to the desk.
    let new = world.sink.new_since(&seen, 2).await;
    let patched = paths(&world.arm.calls_ending("POST", "/installPatches"), "/installpatches");
    assert_eq!(patched, ring0_failed, "exactly the failed machines are re-run");
    for call in world.arm.calls_ending("POST", "/installPatches") {
        assert_eq!(call.body["rebootSetting"], "IfRequired");
        assert_eq!(call.body["maximumDuration"], "PT120M", "the configuration's own window");
    }
    let summary = new.iter().find(|m| m.to() == vec!["ops@example.com"]).expect("re-run summary to the route");
    assert!(summary.subject().starts_with("Ring0-Dev: Succeeded"), "{}", summary.subject());
    assert!(
        summary.text().contains(&format!("{} of {} machines patched", ring0_failed.len(), ring0_failed.len())),
        "{}",
        summary.text()
    );
    let desk = new.iter().find(|m| m.to() == vec!["service-desk@example.com"]).expect("notice to the caller's route");
    assert!(desk.subject().contains("Re-run of") && desk.text().contains("alice@contoso.com"), "{}", desk.text());
    // The same signed message again is a replay: refused, nothing re-run.
    let response = signed_request(
        &http(),
        &itsm,
        WebhookMessage { id: "msg_rerun_1", ts: now.unix_timestamp(), body: &body },
        SECRET,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 401);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(world.arm.calls_ending("POST", "/installPatches").len(), ring0_failed.len());

    // ── Ring 2: the change is approved through ITSM, so its gate passes and nothing is cancelled.
    let ring2_pre = world.event(2, true);
    let approve = json!({ "action": "approve", "requestedBy": "cab@contoso.com", "configuration": "Ring2-Prod", "change": "CHG0042",
        "window": { "start": "2026-11-17T21:00:00Z", "end": "2026-11-18T02:00:00Z" } })
    .to_string();
    let response = signed_request(
        &http(),
        &itsm,
        WebhookMessage { id: "msg_approve_1", ts: now.unix_timestamp(), body: &approve },
        SECRET,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    world.set_now(ring2_pre.start - time::Duration::minutes(35));
    let outcome = events_app.process(&ring2_pre).await;
    let EventOutcome::Sent(p) = outcome else { panic!("ring 2 heads-up: {outcome:?}") };
    assert!(p.summary.subject().starts_with("Ring2-Prod"));
    let ring2_run = patchwatch_model::resource_id::last_segment(&ring2_pre.correlation_id).to_ascii_lowercase();
    assert!(world.arm.calls_ending("PUT", &ring2_run).is_empty(), "an approved change is not cancelled");
}

/// Ring 1 with a change gate only: the same world, another routing file.
fn change_gate(mode: &str, undecided: &str) -> String {
    CONFIG.replace(
        "previous_ring = { configurations = [\"Ring0-*\"], max_failed_percent = 60.0, max_kb_failed_percent = 4.0, max_age_days = 14 }",
        &format!("change = {{ source = \"itsm\" }}\nmode = \"{mode}\"\nundecided = \"{undecided}\""),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_change_cancels_an_approved_one_does_not() {
    // A heads-up route: the cancelled run's heads-up is recorded, not sent.
    let heads_up = "\n[[routes]]\nname = \"heads-up\"\nmatch = { phase = \"pre\" }\nchannels = [\"desk\"]\n";
    let world = World::new(&(change_gate("enforce", "fail_closed") + heads_up)).await;
    let p = world.pipeline();
    let pre = world.event(1, true);
    world.set_now(pre.start - time::Duration::minutes(32));
    let seen = world.sink.messages();
    p.process(&pre).await;
    let cancels = world.arm.calls_ending("PUT", patchwatch_model::resource_id::last_segment(&pre.correlation_id));
    assert_eq!(cancels.len(), 1, "no approved change: cancelled");
    let mail = world.sink.new_since(&seen, 1).await;
    assert!(mail[0].text().contains("no approved change covers the window"), "{}", mail[0].text());
    // Each heads-up the cancelled run would have had is visible in `deliveries` as inhibited.
    let inhibited: Vec<_> =
        p.ledger().list(None).await.unwrap().into_iter().filter(|r| r.state.label() == "inhibited").collect();
    assert!(!inhibited.is_empty(), "{:#?}", p.ledger().list(None).await.unwrap());
    for r in &inhibited {
        assert_eq!(r.detail.as_deref(), Some("run cancelled by gate preprod-after-dev"), "{r:?}");
    }

    // Next month's run has an approved change covering it: it goes ahead.
    let world = World::new(&change_gate("enforce", "fail_closed")).await;
    let itsm = spawn_itsm(&world).await;
    let pre = world.event(1, true);
    let now = pre.start - time::Duration::hours(30);
    world.set_now(now);
    let body = json!({ "action": "approve", "requestedBy": "cab@contoso.com", "configuration": "Ring1-PreProd", "change": "CHG7",
        "window": { "start": "2026-11-10T21:00:00Z", "end": "2026-11-11T01:00:00Z" } })
    .to_string();
    let r =
        signed_request(&http(), &itsm, WebhookMessage { id: "msg_a", ts: now.unix_timestamp(), body: &body }, SECRET)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    world.set_now(pre.start - time::Duration::minutes(32));
    let outcome = world.pipeline().process(&pre).await;
    assert!(matches!(outcome, EventOutcome::Sent(_)), "{outcome:?}");
    assert!(world.arm.calls_ending("PUT", patchwatch_model::resource_id::last_segment(&pre.correlation_id)).is_empty());
    // A later rejection of the same change replaces the approval (the next run's gate reads it).
    let reject = body.replace("approve", "reject");
    let r = signed_request(
        &http(),
        &itsm,
        WebhookMessage { id: "msg_b", ts: (pre.start - time::Duration::minutes(32)).unix_timestamp(), body: &reject },
        SECRET,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let decisions = world.pipeline().approvals.covering("Ring1-PreProd", pre.start, pre.end).await.unwrap();
    assert!(!decisions[0].approved);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_pre_event_is_not_cancelled_and_says_why() {
    let world = World::new(&change_gate("enforce", "fail_closed")).await;
    let p = world.pipeline();
    let pre = world.event(1, true);
    // Nine minutes before the start: past the T-10 deadline.
    world.set_now(pre.start - time::Duration::minutes(9));
    let seen = world.sink.messages();
    p.process(&pre).await;
    assert!(world.arm.calls().iter().all(|c| c.method != "PUT"), "no cancel attempted");
    let mail = world.sink.new_since(&seen, 1).await;
    let gate = mail.iter().find(|m| m.subject().contains("NOT cancelled")).expect("a notice saying why");
    assert!(gate.text().contains("past the cancel deadline"), "{}", gate.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_only_notifies_and_fail_open_lets_an_undecided_gate_pass() {
    let world = World::new(&change_gate("dry_run", "fail_closed")).await;
    let pre = world.event(1, true);
    world.set_now(pre.start - time::Duration::minutes(32));
    let seen = world.sink.messages();
    world.pipeline().process(&pre).await;
    assert!(world.arm.calls().iter().all(|c| c.method != "PUT"), "dry run cancels nothing");
    let mail = world.sink.new_since(&seen, 1).await;
    assert!(mail.iter().any(|m| m.subject().contains("would be cancelled (dry run)")), "{:?}", subjects(&mail));

    // A ring gate with no previous run recorded cannot decide; fail-open lets the run go ahead.
    let config = CONFIG.replace("max_age_days = 14 }", "max_age_days = 14 }\nundecided = \"fail_open\"");
    let world = World::new(&config).await;
    let pre = world.event(1, true);
    world.set_now(pre.start - time::Duration::minutes(32));
    let outcome = world.pipeline().process(&pre).await;
    assert!(matches!(outcome, EventOutcome::Sent(_)), "{outcome:?}");
    assert!(world.arm.calls().iter().all(|c| c.method != "PUT"));
    // Fail-closed (the default) cancels the same undecided run.
    let world = World::new(CONFIG).await;
    world.set_now(pre.start - time::Duration::minutes(32));
    let seen = world.sink.messages();
    world.pipeline().process(&pre).await;
    assert_eq!(world.arm.calls().iter().filter(|c| c.method == "PUT").count(), 1);
    let mail = world.sink.new_since(&seen, 1).await;
    assert!(
        mail[0].text().contains("could not decide; fail-closed") && mail[0].text().contains("no run of Ring0-*"),
        "{}",
        mail[0].text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_that_fails_for_now_is_retried_and_happens_once() {
    let world = World::new(&change_gate("enforce", "fail_closed")).await;
    *world.arm.fail_cancels.lock().unwrap() = 1;
    let p = world.pipeline();
    let pre = world.event(1, true);
    world.set_now(pre.start - time::Duration::minutes(32));
    let seen = world.sink.messages();
    let outcome = p.process(&pre).await;
    assert!(matches!(&outcome, EventOutcome::RetryLater { reason, .. } if reason.contains("cancel")), "{outcome:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(world.sink.new_since(&seen, 0).await.is_empty(), "nothing announced while the cancel is pending");
    // Event Grid redelivers a minute later: the cancel goes through, once, and is announced.
    world.set_now(pre.start - time::Duration::minutes(31));
    p.process(&pre).await;
    p.process(&pre).await;
    let run = patchwatch_model::resource_id::last_segment(&pre.correlation_id);
    assert_eq!(world.arm.calls_ending("PUT", run).len(), 2, "one failed attempt, one that worked, none after");
    let mail = world.sink.new_since(&seen, 1).await;
    assert_eq!(mail.len(), 1);
    assert!(mail[0].subject().contains("cancelled by a gate"), "{}", mail[0].subject());
}
