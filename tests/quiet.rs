//! Quiet during patching, end to end on loopback: the pre event creates the run's alert
//! processing rules through the fake ARM (checked against the 2021-08-08 spec), once however
//! often and however concurrently it is delivered; the post event deletes them once. A 500
//! makes the pre event retry; a 403 is told once and the run goes ahead.

use std::collections::{BTreeMap, BTreeSet};

use integration_tests::world::World;
use patchwatch_engine::pipeline::{EventOutcome, Pipeline};
use patchwatch_model::{event::MaintenanceEvent, rundata::RunQuery};
use serde_json::json;

const RULES: &str = "/providers/microsoft.alertsmanagement/actionrules/";

/// Ring 0 muted, notices to on-call; `groups` lists the resource group of each subscription.
fn config(groups: &[String]) -> String {
    let list: Vec<String> = groups.iter().map(|g| format!("{g:?}")).collect();
    format!(
        r#"
[channels.ops]
type = "email"
to = ["ops@example.com"]

[channels.oncall]
type = "email"
to = ["oncall@example.com"]

[[routes]]
name = "all"
channels = ["ops"]

[suppress_alerts]
configurations = ["Ring0-*"]
resource_groups = [{}]
reboot_margin_minutes = 45
notify = ["oncall"]
"#,
        list.join(", ")
    )
}

/// A world whose routing file mutes ring 0, with one resource group in each of its subscriptions.
async fn world() -> (World, BTreeMap<String, String>) {
    let world = World::new("").await;
    let pre = world.event(0, true);
    let groups: BTreeMap<String, String> = pre
        .subscription_ids
        .iter()
        .map(|s| (s.to_ascii_lowercase(), format!("/subscriptions/{s}/resourceGroups/rg-patchwatch")))
        .collect();
    assert_eq!(groups.len(), 2, "premise: the simulated runs span two subscriptions");
    std::fs::write(&world.config, config(&groups.values().cloned().collect::<Vec<_>>())).unwrap();
    (world, groups)
}

/// The run's expected machines by subscription, as the pipeline loads them.
async fn machines(p: &Pipeline, event: &MaintenanceEvent) -> BTreeMap<String, BTreeSet<String>> {
    let query = RunQuery {
        correlation_id: event.correlation_id.clone(),
        subscription_ids: event.subscription_ids.clone(),
        include_results: false,
        since: Some(event.start),
        watch: Vec::new(),
    };
    let data = p.source.load(&query).await.unwrap();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for m in data.expected {
        let id = m.id.to_ascii_lowercase();
        out.entry(id.split('/').nth(2).unwrap().to_owned()).or_default().insert(id);
    }
    out
}

fn rule_calls(world: &World, method: &str) -> Vec<integration_tests::arm::Call> {
    world
        .arm
        .calls()
        .into_iter()
        .filter(|c| c.method == method && c.path.to_ascii_lowercase().contains(RULES))
        .collect()
}

/// `2026-11-03T22:00:00` for a time, as the spec writes schedule times (UTC here).
fn spec_time(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rule_is_created_once_on_five_concurrent_pre_events_and_removed_once_after_the_post_event() {
    let (world, groups) = world().await;
    let p = world.pipeline();
    let pre = world.event(0, true);
    world.set_now(pre.start - time::Duration::minutes(30));
    let expected = machines(&p, &pre).await;

    // Five deliveries of the pre event at once: one creates the rules, the others wait their turn.
    let outcomes = futures::future::join_all((0..5).map(|_| p.process(&pre))).await;
    assert!(outcomes.iter().any(|o| matches!(o, EventOutcome::Sent(_))), "{outcomes:?}");
    for o in &outcomes {
        assert!(
            matches!(o, EventOutcome::Sent(_) | EventOutcome::RetryLater { .. } | EventOutcome::Duplicate { .. }),
            "{o:?}"
        );
    }
    let puts = rule_calls(&world, "PUT");
    // One rule per subscription (a rule covers resources of its own subscription only).
    assert_eq!(puts.len(), expected.len(), "one PUT per rule: {:?}", puts.iter().map(|c| &c.path).collect::<Vec<_>>());
    let paths: BTreeSet<String> = puts.iter().map(|c| c.path.to_ascii_lowercase()).collect();
    assert_eq!(paths.len(), puts.len(), "each rule PUT exactly once");
    for call in &puts {
        let path = call.path.to_ascii_lowercase();
        let subscription = path.split('/').nth(2).unwrap().to_owned();
        let group = groups[&subscription].to_ascii_lowercase();
        assert!(path.starts_with(&format!("{group}{RULES}patchwatch-quiet-")), "{path}");
        assert_eq!(call.api_version, "2021-08-08");
        let body = &call.body;
        assert_eq!(body["location"], "Global");
        let scopes: BTreeSet<String> = body["properties"]["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_ascii_lowercase())
            .collect();
        assert_eq!(scopes, expected[&subscription], "scopes are the run's machines of that subscription");
        assert_eq!(body["properties"]["actions"], json!([{ "actionType": "RemoveAllActionGroups" }]));
        assert_eq!(
            body["properties"]["schedule"],
            json!({
                "effectiveFrom": spec_time(pre.start),
                "effectiveUntil": spec_time(pre.end + time::Duration::minutes(45)),
                "timeZone": "UTC"
            }),
            "window start .. window end + reboot margin"
        );
        assert_eq!(body["properties"]["enabled"], true);
        assert!(body["properties"]["description"].as_str().unwrap().contains("Ring0-Dev"));
    }
    assert_eq!(world.arm.action_rules.lock().unwrap().len(), expected.len());
    // The deliveries told to retry come back: nothing is created again.
    let again = p.process(&pre).await;
    assert!(matches!(again, EventOutcome::Sent(_) | EventOutcome::Duplicate { .. }), "{again:?}");
    assert_eq!(rule_calls(&world, "PUT").len(), expected.len());
    assert!(
        world.sink.messages().iter().all(|m| !String::from_utf8_lossy(m).contains("oncall@example.com")),
        "no notice when every machine is muted"
    );

    // The post event, delivered twice: each rule is deleted once.
    let post = world.event(0, false);
    world.set_now(post.event_time.unwrap() + time::Duration::minutes(30));
    let first = p.process(&post).await;
    assert!(matches!(first, EventOutcome::Sent(_)), "{first:?}");
    let second = p.process(&post).await;
    assert!(matches!(second, EventOutcome::Duplicate { .. }), "{second:?}");
    let deletes: Vec<String> = rule_calls(&world, "DELETE").iter().map(|c| c.path.to_ascii_lowercase()).collect();
    assert_eq!(deletes.len(), expected.len(), "one DELETE per rule: {deletes:?}");
    assert_eq!(deletes.iter().cloned().collect::<BTreeSet<_>>(), paths, "exactly the rules created");
    assert!(rule_calls(&world, "DELETE").iter().all(|c| c.api_version == "2021-08-08"));
    assert!(world.arm.action_rules.lock().unwrap().is_empty(), "no rule is left");

    // Another ring is not configured: nothing is muted for it.
    let ring1 = world.event(1, true);
    world.set_now(ring1.start - time::Duration::minutes(30));
    p.process(&ring1).await;
    assert_eq!(rule_calls(&world, "PUT").len(), expected.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_makes_the_pre_event_retry_and_the_next_delivery_creates_the_rule() {
    let (world, _) = world().await;
    let p = world.pipeline();
    let pre = world.event(0, true);
    world.set_now(pre.start - time::Duration::minutes(30));
    world.arm.action_rule_failures.lock().unwrap().push_back(500);
    let seen = world.sink.messages();

    let first = p.process(&pre).await;
    let EventOutcome::RetryLater { reason, after } = &first else { panic!("{first:?}") };
    assert!(reason.contains("alert processing rule") && reason.contains("500"), "{reason}");
    assert!(after.as_secs() >= 1);
    assert!(world.arm.action_rules.lock().unwrap().is_empty());
    assert!(world.sink.messages().len() == seen.len(), "nothing is announced before the rules exist");

    let second = p.process(&pre).await;
    assert!(matches!(second, EventOutcome::Sent(_)), "{second:?}");
    let expected = machines(&p, &pre).await.len();
    assert_eq!(world.arm.action_rules.lock().unwrap().len(), expected, "the redelivery created the rules");
    assert_eq!(rule_calls(&world, "PUT").len(), 1 + expected, "the failed PUT, then one per rule");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_403_is_told_once_and_the_pre_event_still_completes() {
    let (world, _) = world().await;
    let p = world.pipeline();
    let pre = world.event(0, true);
    world.set_now(pre.start - time::Duration::minutes(30));
    let rules = machines(&p, &pre).await.len();
    world.arm.action_rule_failures.lock().unwrap().extend(std::iter::repeat_n(403, rules));
    let seen = world.sink.messages();

    let first = p.process(&pre).await;
    assert!(matches!(first, EventOutcome::Sent(_)), "the run's heads-up still goes: {first:?}");
    assert_eq!(rule_calls(&world, "PUT").len(), rules, "a refusal is not retried within the delivery");
    // Routes send on the post event by default: the notice is the only mail of the pre event.
    let mails = world.sink.new_since(&seen, 1).await;
    let notices: Vec<_> = mails.iter().filter(|m| m.to() == vec!["oncall@example.com"]).collect();
    assert_eq!(notices.len(), 1, "one notice: {:?}", mails.iter().map(|m| m.subject()).collect::<Vec<_>>());
    let notice = notices[0];
    assert!(
        notice.subject().contains("Ring0-Dev") && notice.subject().contains("alerts NOT muted"),
        "{}",
        notice.subject()
    );
    assert!(notice.text().contains("AuthorizationFailed"), "{}", notice.text());

    // Redelivered: no second PUT, no second notice.
    let again = p.process(&pre).await;
    assert!(matches!(again, EventOutcome::Sent(_) | EventOutcome::Duplicate { .. }), "{again:?}");
    assert_eq!(rule_calls(&world, "PUT").len(), rules);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let later: Vec<String> = world
        .sink
        .new_since(&seen, 0)
        .await
        .iter()
        .filter(|m| m.to() == vec!["oncall@example.com"])
        .map(|m| m.subject())
        .collect();
    assert_eq!(later.len(), 1, "no second notice: {later:?}");

    // Nothing was created, so the post event deletes nothing.
    let post = world.event(0, false);
    world.set_now(post.event_time.unwrap() + time::Duration::minutes(30));
    p.process(&post).await;
    assert!(rule_calls(&world, "DELETE").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_without_a_resource_group_is_told_and_a_404_on_delete_counts_as_deleted() {
    let (world, groups) = world().await;
    let (first_subscription, group) = groups.iter().next().unwrap();
    std::fs::write(&world.config, config(std::slice::from_ref(group))).unwrap();
    let p = world.pipeline();
    let pre = world.event(0, true);
    world.set_now(pre.start - time::Duration::minutes(30));
    let expected = machines(&p, &pre).await;
    let seen = world.sink.messages();

    let outcome = p.process(&pre).await;
    assert!(matches!(outcome, EventOutcome::Sent(_)), "{outcome:?}");
    let puts = rule_calls(&world, "PUT");
    assert_eq!(puts.len(), 1, "only the subscription with a resource group gets a rule");
    let scopes: BTreeSet<String> = puts[0].body["properties"]["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_ascii_lowercase())
        .collect();
    assert_eq!(scopes, expected[first_subscription]);
    let mails = world.sink.new_since(&seen, 1).await;
    let notice = mails.iter().find(|m| m.to() == vec!["oncall@example.com"]).expect("a notice to on-call");
    assert!(notice.subject().contains("alerts NOT muted for some machines"), "{}", notice.subject());
    let uncovered = expected.values().map(BTreeSet::len).sum::<usize>() - scopes.len();
    assert!(
        notice.text().contains("No resource group for their subscription")
            && notice.text().contains(&format!("{uncovered} machine(s)")),
        "{}",
        notice.text()
    );

    // The rule is gone already (someone deleted it): the 404 counts as deleted, nobody is told.
    world.arm.action_rule_failures.lock().unwrap().push_back(404);
    let post = world.event(0, false);
    world.set_now(post.event_time.unwrap() + time::Duration::minutes(30));
    let seen = world.sink.messages();
    let outcome = p.process(&post).await;
    assert!(matches!(outcome, EventOutcome::Sent(_)), "{outcome:?}");
    assert_eq!(rule_calls(&world, "DELETE").len(), 1);
    p.process(&post).await;
    assert_eq!(rule_calls(&world, "DELETE").len(), 1, "not deleted twice");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let oncall = world.sink.new_since(&seen, 0).await.iter().filter(|m| m.to() == vec!["oncall@example.com"]).count();
    assert_eq!(oncall, 0, "a rule already gone is no failure");
}
