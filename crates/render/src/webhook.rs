//! The generic webhook's body, schema version 1 (the signing is the channel's business).

use serde_json::{Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use patchwatch_model::{routing::Notification, summary::Outcome};

/// The body's `type` and schema version (bump the version on a breaking change).
pub const EVENT_TYPE: &str = "patchwatch.run.summary";
pub const SCHEMA_VERSION: u32 = 1;

/// The documented body, schema version 1.
pub fn body(n: &Notification, now: OffsetDateTime) -> String {
    let s = &n.summary;
    let ts = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
    let machines: Vec<Value> = s
        .machines
        .iter()
        .filter(|m| m.outcome != Outcome::Succeeded)
        .map(|m| {
            json!({
                "id": m.id, "name": m.name, "resourceGroup": m.resource_group, "subscriptionId": m.subscription_id,
                "kind": if m.arc { "arc" } else { "azure_vm" }, "os": m.os, "outcome": m.outcome, "status": m.status,
                "installed": m.installed, "failed": m.failed, "pending": m.pending, "rebootStatus": m.reboot_status,
                "errors": m.errors, "note": m.note,
            })
        })
        .collect();
    let patches: Vec<Value> = s
        .failed_patches
        .iter()
        .map(
            |p| json!({ "key": p.key, "title": p.title, "classifications": p.classifications, "machines": p.machines }),
        )
        .collect();
    json!({
        "type": EVENT_TYPE,
        "schemaVersion": SCHEMA_VERSION,
        "timestamp": ts(now),
        "data": {
            "runId": s.run_id,
            "configuration": s.configuration_name,
            "configurationId": s.configuration_id,
            "phase": s.phase.as_str(),
            "route": n.route,
            "group": n.group,
            "verdict": s.verdict,
            "subject": s.subject(),
            "reportedStatus": s.reported_status,
            "window": { "start": ts(s.window_start), "end": ts(s.window_end) },
            "subscriptions": s.subscriptions,
            "counts": s.counts,
            "machines": machines,
            // Machines that simply succeeded are counted, not listed (a 50,000-machine run).
            "succeeded": s.succeeded.iter().map(|g| json!({
                "subscriptionId": g.subscription_id, "resourceGroup": g.resource_group, "machines": g.count,
            })).collect::<Vec<Value>>(),
            "failedPatches": patches,
            "advice": s.advice,
            // One-click links are for people: a receiving system that logs bodies would keep
            // working re-run links, so they are never in a webhook's body.
        }
    })
    .to_string()
}
