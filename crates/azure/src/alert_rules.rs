//! Azure Monitor alert processing rules (`Microsoft.AlertsManagement/actionRules`,
//! api-version 2021-08-08): the one-off rule that removes every action group from alerts on a
//! run's machines during its window, and its deletion.
//!
//! The body follows the REST spec (`AlertProcessingRules.json`) and its example
//! "remove all action groups from alerts on a specific VM during a one-off maintenance window":
//! `location` "Global", `properties.scopes` (ARM ids, all in the rule's own subscription),
//! `properties.actions` `[{"actionType":"RemoveAllActionGroups"}]`, `properties.schedule`
//! (`effectiveFrom`/`effectiveUntil` as ISO 8601 *without* an offset, plus a Windows `timeZone`
//! name), `description`, `enabled`. PUT answers 200 or 201; DELETE 200 or 204.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use time::{OffsetDateTime, UtcOffset};

use patchwatch_model::{
    resource_id::{IdError, ResourceId},
    text::fnv64,
};

use crate::{arm::ArmClient, http::AzureError};

/// The api-version of `Microsoft.AlertsManagement/actionRules` (the only stable one).
pub const API_VERSION: &str = "2021-08-08";
/// Most scopes patchwatch puts in one rule. The spec states no limit; bounding it keeps every
/// PUT body small (about 15 KB of ids), and a larger run gets several rules.
pub const MAX_SCOPES: usize = 100;
/// The time zone the schedule is written in: Windows' name for UTC.
const TIME_ZONE: &str = "UTC";

/// One rule that mutes `scopes` from `from` until `until`.
#[derive(Clone, Debug)]
pub struct QuietRule {
    /// ARM ids of the machines, all in the subscription the rule is created in.
    pub scopes: Vec<String>,
    pub from: OffsetDateTime,
    pub until: OffsetDateTime,
    pub description: String,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
struct Body<'a> {
    location: &'static str,
    tags: &'a BTreeMap<String, String>,
    properties: Properties<'a>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Properties<'a> {
    scopes: &'a [String],
    actions: [Action; 1],
    schedule: Schedule,
    description: &'a str,
    enabled: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Action {
    action_type: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Schedule {
    effective_from: String,
    effective_until: String,
    time_zone: &'static str,
}

/// `2026-11-03T22:00:00`: the spec's pattern, no offset (the offset is `timeZone`'s).
pub fn schedule_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
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

impl QuietRule {
    /// The PUT body.
    pub fn body(&self) -> Value {
        let body = Body {
            location: "Global",
            tags: &self.tags,
            properties: Properties {
                scopes: &self.scopes,
                actions: [Action { action_type: "RemoveAllActionGroups" }],
                schedule: Schedule {
                    effective_from: schedule_time(self.from),
                    effective_until: schedule_time(self.until),
                    time_zone: TIME_ZONE,
                },
                description: &self.description,
                enabled: true,
            },
        };
        // Strings, arrays and a map of strings only: serialising cannot fail.
        serde_json::to_value(body).unwrap_or(Value::Null)
    }
}

/// The rule's name: the same for every delivery of the same run, so a redelivery PUTs the same
/// rule. `part` numbers the rules of one run (from 1).
pub fn rule_name(run_id: &str, part: usize) -> String {
    format!("patchwatch-quiet-{:016x}-{part}", fnv64(&run_id.to_ascii_lowercase()))
}

/// `{resource group}/providers/Microsoft.AlertsManagement/actionRules/{name}`, validated.
pub fn rule_id(resource_group: &str, name: &str) -> Result<ResourceId, IdError> {
    ResourceId::parse(&format!(
        "{}/providers/Microsoft.AlertsManagement/actionRules/{name}",
        resource_group.trim_end_matches('/')
    ))
}

/// Creates (or replaces) the rule.
pub async fn create(arm: &ArmClient, id: &ResourceId, rule: &QuietRule) -> Result<(), AzureError> {
    arm.put(id, API_VERSION, &rule.body(), None).await.map(|_| ())
}

/// What a delete found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deleted {
    Removed,
    /// There was no such rule (404): deleted already, or never created.
    Absent,
}

/// Deletes the rule; a rule that is not there counts as deleted.
pub async fn delete(arm: &ArmClient, id: &ResourceId) -> Result<Deleted, AzureError> {
    match arm.delete(id, API_VERSION).await {
        Ok(_) => Ok(Deleted::Removed),
        Err(AzureError::Status { status: 404, .. }) => Ok(Deleted::Absent),
        Err(e) => Err(e),
    }
}

/// Whether trying again can help: throttling, 5xx, transport and token failures can; a
/// request ARM refused for good (400 invalid, 403 missing rights, 404 no such resource group,
/// 409 conflict) cannot.
pub fn is_transient(e: &AzureError) -> bool {
    !matches!(e, AzureError::Status { status: 400 | 403 | 404 | 409, .. } | AzureError::Decode(_))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    const RG: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-patchwatch";
    const VM: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/web-01";

    #[test]
    fn the_body_is_the_specs_one_off_maintenance_window_rule() {
        let rule = QuietRule {
            scopes: vec![VM.to_owned()],
            from: datetime!(2026-11-03 22:00 UTC),
            // An offset is converted: the schedule is written in UTC.
            until: datetime!(2026-11-04 02:30 +02:00),
            description: "patchwatch: run 2026-11-03".to_owned(),
            tags: BTreeMap::from([("patchwatch".to_owned(), "quiet".to_owned())]),
        };
        assert_eq!(
            rule.body(),
            json!({
                "location": "Global",
                "tags": { "patchwatch": "quiet" },
                "properties": {
                    "scopes": [VM],
                    "actions": [{ "actionType": "RemoveAllActionGroups" }],
                    "schedule": { "effectiveFrom": "2026-11-03T22:00:00", "effectiveUntil": "2026-11-04T00:30:00", "timeZone": "UTC" },
                    "description": "patchwatch: run 2026-11-03",
                    "enabled": true
                }
            })
        );
    }

    #[test]
    fn names_are_stable_per_run_and_ids_are_validated() {
        let run = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Maintenance/maintenanceConfigurations/Ring0/providers/Microsoft.Maintenance/applyUpdates/20261103220000";
        assert_eq!(rule_name(run, 1), rule_name(&run.to_ascii_uppercase(), 1));
        assert_ne!(rule_name(run, 1), rule_name(run, 2));
        assert!(rule_name(run, 1).starts_with("patchwatch-quiet-"));
        let id = rule_id(RG, &rule_name(run, 1)).unwrap();
        assert_eq!(id.resource_type(), "microsoft.alertsmanagement/actionrules");
        assert_eq!(id.resource_group(), "rg-patchwatch");
        assert!(rule_id("/subscriptions/x/resourceGroups/../..", "r").is_err());
    }

    #[test]
    fn refusals_are_permanent_outages_are_not() {
        let status = |status| AzureError::Status { status, code: String::new(), message: String::new() };
        for s in [400, 403, 404, 409] {
            assert!(!is_transient(&status(s)), "{s}");
        }
        for s in [500, 502, 503] {
            assert!(is_transient(&status(s)), "{s}");
        }
        assert!(is_transient(&AzureError::Throttled { retry_after: std::time::Duration::from_secs(1) }));
    }
}
