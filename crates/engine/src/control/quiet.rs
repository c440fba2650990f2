//! Quiet during patching: on the pre event, an Azure Monitor alert processing rule removes the
//! action groups from alerts on the run's machines for its window plus a reboot margin; after
//! the post event the rule is deleted.
//!
//! Both steps go through the delivery ledger (`control.quiet`, phase `pre` and `post`), so a
//! pre event delivered many times, concurrently, creates the rules once and the post event
//! deletes them once. The rules carry their own schedule (window start → end + margin): a post
//! event that never comes cannot leave alerts muted. A rule may only cover resources of its own
//! subscription, so machines are grouped by subscription, each group muted by rules in that
//! subscription's configured resource group (at most [`alert_rules::MAX_SCOPES`] machines a
//! rule); a subscription without one is reported, never muted more widely.

use std::{collections::BTreeMap, time::Duration};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::{error, info, warn};

use patchwatch_azure::{
    alert_rules::{self, Deleted, QuietRule},
    arm::ArmClient,
    http::AzureError,
};
use patchwatch_model::{
    event::MaintenanceEvent,
    failure::{Deliveries, MIN_RETRY, Retry, STATE_RETRY},
    notice::{Notice, NoticeKind, Severity},
    resource_id::{MachineId, ResourceId, last_segment},
    rundata::RunData,
    settings::SuppressAlertsSpec,
    text::{format_time, glob},
};
use patchwatch_state::ledger::{DeliveryId, DeliveryState, Finish, Once};

use crate::pipeline::Pipeline;

/// The ledger target of both steps.
pub const TARGET: &str = "control.quiet";
/// The longest wait asked for after ARM failed transiently.
const RETRY_CAP: Duration = Duration::from_secs(300);

/// One rule to create: where it lives and the machines it covers.
#[derive(Clone, Debug)]
pub struct PlannedRule {
    pub id: ResourceId,
    pub scopes: Vec<String>,
}

/// The rules a run needs, and the machines no rule can cover.
#[derive(Clone, Debug, Default)]
pub struct QuietPlan {
    pub rules: Vec<PlannedRule>,
    /// Machines of subscriptions without a configured resource group.
    pub uncovered: Vec<String>,
    /// Expected machines whose ids are not valid ARM ids.
    pub invalid: Vec<String>,
}

/// Groups the run's expected machines by subscription into rules (deterministic: the same run
/// data gives the same rule names and scopes on every delivery).
pub fn plan(spec: &SuppressAlertsSpec, run_id: &str, data: &RunData) -> QuietPlan {
    let mut out = QuietPlan::default();
    let mut by_subscription: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in &data.expected {
        match MachineId::parse(&m.id) {
            Ok(id) => {
                by_subscription.entry(id.resource().subscription().to_ascii_lowercase()).or_default().push(m.id.clone())
            }
            Err(_) => out.invalid.push(m.id.clone()),
        }
    }
    let mut part = 0;
    for (subscription, mut ids) in by_subscription {
        // Ties in case-insensitive order break on the exact text: the same set in any order keeps
        // the same spelling of a duplicate.
        ids.sort_by(|a, b| a.to_ascii_lowercase().cmp(&b.to_ascii_lowercase()).then_with(|| a.cmp(b)));
        ids.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
        let Some(group) = spec.resource_group_in(&subscription) else {
            out.uncovered.extend(ids);
            continue;
        };
        for scopes in ids.chunks(alert_rules::MAX_SCOPES) {
            part += 1;
            match alert_rules::rule_id(group, &alert_rules::rule_name(run_id, part)) {
                Ok(id) => out.rules.push(PlannedRule { id, scopes: scopes.to_vec() }),
                // The resource group was checked with the configuration; kept honest anyway.
                Err(_) => out.uncovered.extend_from_slice(scopes),
            }
        }
    }
    out
}

/// What the mute step did, kept in its ledger record's detail (so the post event knows which
/// rules to delete, and a redelivery can repeat a notice that did not go out).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Muted {
    /// Ids of the rules created.
    rules: Vec<String>,
    /// Rules ARM refused for good, with why.
    refused: Vec<String>,
}

impl Muted {
    fn from_detail(detail: Option<&str>) -> Self {
        detail.and_then(|d| serde_json::from_str(d).ok()).unwrap_or_default()
    }
}

/// The suppression settings, when they apply to this event's configuration.
fn applicable<'a>(p: &'a Pipeline, event: &MaintenanceEvent) -> Option<&'a SuppressAlertsSpec> {
    let spec = p.routing.as_ref()?.control.suppress_alerts.as_ref()?;
    spec.configurations.iter().any(|g| glob(g, event.configuration_name())).then_some(spec)
}

/// When the rules stop muting: the window's end plus the reboot margin.
fn muted_until(spec: &SuppressAlertsSpec, event: &MaintenanceEvent) -> OffsetDateTime {
    event.end + time::Duration::minutes(i64::from(spec.reboot_margin_minutes))
}

fn ledger_id<'a>(event: &'a MaintenanceEvent, phase: &'a str) -> DeliveryId<'a> {
    DeliveryId { run_id: &event.correlation_id, configuration: event.configuration_name(), phase, target: TARGET }
}

fn retry_for(e: &AzureError) -> Retry {
    Retry::new(format!("alert processing rule: {e}"), e.retry_after().min(RETRY_CAP).max(MIN_RETRY))
}

/// Pre event: create the run's alert processing rules, once. Transient ARM failures make the
/// event retry; refusals are told once to `notify` and do not hold the run back.
pub async fn mute(p: &Pipeline, event: &MaintenanceEvent, data: &RunData) -> Deliveries {
    let mut out = Deliveries::default();
    let Some(spec) = applicable(p, event) else { return out };
    let Some(arm) = &p.arm else {
        warn!("[suppress_alerts] is set but there is no Azure credential; alerts are not muted.");
        return out;
    };
    let until = muted_until(spec, event);
    if p.now() >= until {
        info!("The pre event arrived after the window and its reboot margin; no alerts are muted.");
        return out;
    }
    let plan = plan(spec, &event.correlation_id, data);
    if plan.rules.is_empty() && plan.uncovered.is_empty() && plan.invalid.is_empty() {
        return out;
    }
    let id = ledger_id(event, "pre");
    let once = p.ledger().once(&id, &p.notifier.clock, |_| async {
        let result = create_all(arm, event, &plan, until).await;
        let finish = match &result {
            Err(retry) => Finish::Retry { error: retry.reason.clone() },
            Ok(m) if m.rules.is_empty() && !m.refused.is_empty() => Finish::Failed { error: m.refused.join("; ") },
            Ok(m) => Finish::Sent {
                subject: format!("{} alert processing rule(s)", m.rules.len()),
                detail: serde_json::to_string(m).unwrap_or_default(),
            },
        };
        (finish, result)
    });
    let muted = match once.await {
        Ok(Once::Acted(Ok(m))) => m,
        Ok(Once::Acted(Err(retry))) => {
            out.retry(retry);
            return out;
        }
        Ok(Once::Settled(r)) if r.state == DeliveryState::Sent => Muted::from_detail(r.detail.as_deref()),
        Ok(Once::Settled(r)) => Muted { rules: Vec::new(), refused: r.error.into_iter().collect() },
        Ok(Once::Busy { retry_after }) => {
            out.retry(Retry::new("another instance is muting the run's alerts", retry_after));
            return out;
        }
        Err(e) => {
            out.retry(Retry::new(e.to_string(), STATE_RETRY));
            return out;
        }
    };
    if !muted.refused.is_empty() || !plan.uncovered.is_empty() || !plan.invalid.is_empty() {
        let notice = mute_notice(event, &plan, &muted, until);
        out.absorb(p.notifier.send_notice(&notice, &spec.notify).await);
    }
    out
}

/// PUTs every planned rule. The first transient failure stops the pass (the redelivery PUTs
/// the same rules again, which replaces them); a refusal is noted and the others still go.
async fn create_all(
    arm: &ArmClient,
    event: &MaintenanceEvent,
    plan: &QuietPlan,
    until: OffsetDateTime,
) -> Result<Muted, Retry> {
    let mut muted = Muted::default();
    let run = last_segment(&event.correlation_id);
    let tags = BTreeMap::from([
        ("patchwatch".to_owned(), "quiet-during-patching".to_owned()),
        ("patchwatch-configuration".to_owned(), event.configuration_name().to_owned()),
        ("patchwatch-run".to_owned(), run.to_owned()),
    ]);
    for r in &plan.rules {
        let rule = QuietRule {
            scopes: r.scopes.clone(),
            from: event.start,
            until,
            description: format!(
                "patchwatch: no notifications for {} machine(s) of {} run {run} until {}; deleted after the run",
                r.scopes.len(),
                event.configuration_name(),
                format_time(until)
            ),
            tags: tags.clone(),
        };
        match alert_rules::create(arm, &r.id, &rule).await {
            Ok(()) => {
                info!(rule = r.id.name(), machines = r.scopes.len(), "Alert processing rule created; alerts muted.");
                muted.rules.push(r.id.to_string());
            }
            Err(e) if alert_rules::is_transient(&e) => {
                warn!(rule = r.id.name(), error = %e, "The alert processing rule could not be created yet; retrying.");
                return Err(retry_for(&e));
            }
            Err(e) => {
                error!(rule = r.id.name(), error = %e, "The alert processing rule was refused; not retried.");
                muted.refused.push(format!("{}: {e}", r.id.name()));
            }
        }
    }
    Ok(muted)
}

/// What the channels hear when some machines are not muted.
fn mute_notice(event: &MaintenanceEvent, plan: &QuietPlan, muted: &Muted, until: OffsetDateTime) -> Notice {
    let mut machines: Vec<&str> = plan.uncovered.iter().chain(&plan.invalid).map(|m| last_segment(m)).collect();
    machines.truncate(20);
    Notice {
        kind: NoticeKind::Quiet,
        key: format!("quiet:{}:mute", event.correlation_id.to_ascii_lowercase()),
        severity: Severity::Warning,
        title: format!(
            "{}: alerts NOT muted for {} of run {}",
            event.configuration_name(),
            if muted.rules.is_empty() { "the machines" } else { "some machines" },
            last_segment(&event.correlation_id)
        ),
        configuration: Some(event.configuration_name().to_owned()),
        facts: Vec::new(),
        text: "Azure Monitor alerts on the machines below will notify as usual while they patch and reboot. \
               Grant the Function App's identity the patchwatch alert processing rule role on the resource group, \
               or list a resource group for each subscription under [suppress_alerts].resource_groups."
            .to_owned(),
        link: None,
        recipients: Vec::new(),
        actions: Vec::new(),
    }
    .fact("Window", format!("{} – {}", format_time(event.start), format_time(event.end)))
    .fact("Would be muted until", format_time(until))
    .fact("Rules created", muted.rules.iter().map(|r| last_segment(r)).collect::<Vec<_>>().join(", "))
    .fact("Refused", muted.refused.join("; "))
    .fact(
        "No resource group for their subscription",
        if plan.uncovered.is_empty() { String::new() } else { format!("{} machine(s)", plan.uncovered.len()) },
    )
    .fact("Invalid machine ids", if plan.invalid.is_empty() { String::new() } else { plan.invalid.len().to_string() })
    .fact("Machines (first 20)", machines.join(", "))
    .fact("Run", event.correlation_id.clone())
}

/// Post event: delete the rules the pre event created, once (a rule already gone counts as
/// deleted). Transient ARM failures make the event retry; a refusal is told once, and the rule
/// ends on its own schedule.
pub async fn unmute(p: &Pipeline, event: &MaintenanceEvent) -> Deliveries {
    let mut out = Deliveries::default();
    let Some(spec) = applicable(p, event) else { return out };
    let Some(arm) = &p.arm else { return out };
    let rules = match p.ledger().status(&ledger_id(event, "pre")).await {
        Ok(Some(r)) if r.state == DeliveryState::Sent => Muted::from_detail(r.detail.as_deref()).rules,
        Ok(_) => Vec::new(),
        Err(e) => {
            out.retry(Retry::new(e.to_string(), STATE_RETRY));
            return out;
        }
    };
    if rules.is_empty() {
        return out;
    }
    let id = ledger_id(event, "post");
    let once = p.ledger().once(&id, &p.notifier.clock, |_| async {
        let result = delete_all(arm, &rules).await;
        let finish = match &result {
            Err(retry) => Finish::Retry { error: retry.reason.clone() },
            Ok(refused) if refused.is_empty() => Finish::Sent {
                subject: format!("{} alert processing rule(s) deleted", rules.len()),
                detail: String::new(),
            },
            Ok(refused) => Finish::Failed { error: refused.join("; ") },
        };
        (finish, result)
    });
    let refused = match once.await {
        Ok(Once::Acted(Ok(refused))) => refused,
        Ok(Once::Acted(Err(retry))) => {
            out.retry(retry);
            return out;
        }
        Ok(Once::Settled(r)) if r.state == DeliveryState::Failed => r.error.into_iter().collect(),
        Ok(Once::Settled(_)) => Vec::new(),
        Ok(Once::Busy { retry_after }) => {
            out.retry(Retry::new("another instance is unmuting the run's alerts", retry_after));
            return out;
        }
        Err(e) => {
            out.retry(Retry::new(e.to_string(), STATE_RETRY));
            return out;
        }
    };
    if !refused.is_empty() {
        let until = muted_until(spec, event);
        let notice = Notice {
            kind: NoticeKind::Quiet,
            key: format!("quiet:{}:unmute", event.correlation_id.to_ascii_lowercase()),
            severity: Severity::Warning,
            title: format!(
                "{}: alert processing rule(s) of run {} could not be deleted",
                event.configuration_name(),
                last_segment(&event.correlation_id)
            ),
            configuration: Some(event.configuration_name().to_owned()),
            facts: Vec::new(),
            text: format!(
                "The rules keep muting alerts on the run's machines until their schedule ends at {}, then stop on their own. Delete them sooner by hand if needed.",
                format_time(until)
            ),
            link: None,
            recipients: Vec::new(),
            actions: Vec::new(),
        }
        .fact("Refused", refused.join("; "))
        .fact("Run", event.correlation_id.clone());
        out.absorb(p.notifier.send_notice(&notice, &spec.notify).await);
    }
    out
}

/// DELETEs every rule; the first transient failure stops the pass. Answers the refusals.
async fn delete_all(arm: &ArmClient, rules: &[String]) -> Result<Vec<String>, Retry> {
    let mut refused = Vec::new();
    for rule in rules {
        let id = match ResourceId::parse(rule) {
            Ok(id) => id,
            Err(e) => {
                refused.push(format!("{}: invalid id: {e}", last_segment(rule)));
                continue;
            }
        };
        match alert_rules::delete(arm, &id).await {
            Ok(Deleted::Removed) => info!(rule = id.name(), "Alert processing rule deleted; alerts notify again."),
            Ok(Deleted::Absent) => info!(rule = id.name(), "Alert processing rule already gone."),
            Err(e) if alert_rules::is_transient(&e) => {
                warn!(rule = id.name(), error = %e, "The alert processing rule could not be deleted yet; retrying.");
                return Err(retry_for(&e));
            }
            Err(e) => {
                error!(rule = id.name(), error = %e, "Deleting the alert processing rule was refused; it ends on its own schedule.");
                refused.push(format!("{}: {e}", id.name()));
            }
        }
    }
    Ok(refused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use patchwatch_model::rundata::ExpectedMachine;

    const SUB_A: &str = "00000000-0000-0000-0000-00000000000a";
    const SUB_B: &str = "00000000-0000-0000-0000-00000000000b";
    const RUN: &str = "/subscriptions/00000000-0000-0000-0000-00000000000a/resourceGroups/rg/providers/Microsoft.Maintenance/maintenanceConfigurations/Ring0/providers/Microsoft.Maintenance/applyUpdates/20261103220000";

    fn vm(sub: &str, i: usize) -> ExpectedMachine {
        ExpectedMachine {
            id: format!(
                "/subscriptions/{sub}/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/vm-{i:03}"
            ),
            resource_group: None,
        }
    }

    #[test]
    fn machines_are_split_by_subscription_and_rule_size() {
        let spec = SuppressAlertsSpec {
            configurations: vec!["Ring*".to_owned()],
            resource_groups: vec![format!("/subscriptions/{SUB_A}/resourceGroups/rg-patchwatch")],
            reboot_margin_minutes: 30,
            notify: Vec::new(),
        };
        let mut expected: Vec<ExpectedMachine> = (0..230).map(|i| vm(SUB_A, i)).collect();
        // A duplicate in other case, a machine in a subscription without a resource group, a forged id.
        expected.push(ExpectedMachine {
            id: expected[5].id.to_ascii_uppercase().replace("SUBSCRIPTIONS", "subscriptions"),
            resource_group: None,
        });
        expected.push(vm(SUB_B, 1));
        expected.push(ExpectedMachine { id: "/subscriptions/../x".to_owned(), resource_group: None });
        expected.reverse();
        let data = RunData { expected, ..RunData::default() };
        let planned = plan(&spec, RUN, &data);
        let sizes: Vec<usize> = planned.rules.iter().map(|r| r.scopes.len()).collect();
        assert_eq!(sizes, vec![100, 100, 30], "at most {} machines a rule", alert_rules::MAX_SCOPES);
        let names: Vec<&str> = planned.rules.iter().map(|r| r.id.name()).collect();
        assert_eq!(names, (1..=3).map(|n| alert_rules::rule_name(RUN, n)).collect::<Vec<_>>());
        assert!(planned.rules.iter().all(|r| r.id.resource_group() == "rg-patchwatch"));
        assert_eq!(planned.uncovered, vec![vm(SUB_B, 1).id]);
        assert_eq!(planned.invalid, vec!["/subscriptions/../x".to_owned()]);
        // The same data in another order plans the same rules.
        let mut shuffled = data.clone();
        shuffled.expected.reverse();
        let again = plan(&spec, RUN, &shuffled);
        assert_eq!(
            again.rules.iter().map(|r| (r.id.to_string(), r.scopes.clone())).collect::<Vec<_>>(),
            planned.rules.iter().map(|r| (r.id.to_string(), r.scopes.clone())).collect::<Vec<_>>()
        );
    }
}
