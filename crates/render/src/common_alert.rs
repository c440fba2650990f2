//! The webhook body action group webhook receivers get: the common alert schema's shape, the
//! full summary in `alertContext`.

use serde_json::{Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use patchwatch_model::{
    event::Phase,
    summary::{Outcome, RunSummary, Verdict},
};

/// A webhook body in the common alert schema's shape, the full summary in `alertContext`.
pub fn common_alert(s: &RunSummary, route: &str, group: Option<&str>, now: OffsetDateTime) -> Value {
    let ts = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
    let pre = s.phase == Phase::Pre;
    let severity = match s.verdict {
        Verdict::Failed | Verdict::Incomplete => "Sev1",
        Verdict::WindowExceeded => "Sev2",
        _ if pre => "Sev4",
        Verdict::Succeeded => "Sev4",
        _ => "Sev3",
    };
    let subscription = patchwatch_model::resource_id::subscription_of(&s.configuration_id).unwrap_or_default();
    // One alert per run, phase, route and owner: receivers that de-duplicate on alertId keep them apart.
    let identity = format!("{}|{}|{route}|{}", s.run_id.to_ascii_lowercase(), s.phase.as_str(), group.unwrap_or(""));
    let hash = patchwatch_model::text::fnv64(&identity);
    let items: Vec<&str> =
        s.machines.iter().filter(|m| m.outcome != Outcome::Succeeded).map(|m| m.name.as_str()).take(100).collect();
    json!({
        "schemaId": "azureMonitorCommonAlertSchema",
        "data": {
            "essentials": {
                "alertId": format!("/subscriptions/{subscription}/providers/Microsoft.AlertsManagement/alerts/patchwatch-{hash:016x}"),
                "alertRule": format!("patchwatch: {}", s.configuration_name),
                "severity": severity,
                "signalType": "Log",
                "monitorCondition": if !pre && s.verdict == Verdict::Succeeded { "Resolved" } else { "Fired" },
                "monitoringService": "patchwatch",
                "alertTargetIDs": [s.configuration_id.to_ascii_lowercase()],
                "configurationItems": items,
                "originAlertId": s.run_id,
                "firedDateTime": ts(now),
                "description": crate::headline(s, group),
                "essentialsVersion": "1.0",
                "alertContextVersion": "1.0"
            },
            "alertContext": {
                "patchwatch": {
                    "runId": s.run_id, "configuration": s.configuration_name, "phase": s.phase.as_str(), "group": group,
                    "verdict": s.verdict, "counts": s.counts, "window": { "start": ts(s.window_start), "end": ts(s.window_end) },
                    "machines": s.machines.iter().filter(|m| m.outcome != Outcome::Succeeded).map(|m| json!({
                        "id": m.id, "name": m.name, "outcome": m.outcome, "note": m.note })).collect::<Vec<_>>(),
                    "failedPatches": s.failed_patches.iter().map(|p| json!({ "key": p.key, "machines": p.machines.len() })).collect::<Vec<_>>(),
                    "advice": s.advice,
                }
            },
            "customProperties": { "verdict": s.verdict.label(), "subject": crate::headline(s, group) }
        }
    })
}
