//! Action-group webhook bodies as Azure Monitor sends them (common alert schema).

use serde_json::{Value, json};

/// An activity-log alert in the common alert schema: operation `op` with `status` on `scope`.
pub fn common_alert(op: &str, status: &str, scope: &str, event_id: &str) -> Value {
    json!({ "schemaId": "azureMonitorCommonAlertSchema", "data": {
        "essentials": { "alertId": "/subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.AlertsManagement/alerts/aaaaaaaa-0000-0000-0000-000000000001",
            "alertRule": "maintenance-changes", "severity": "Sev4", "signalType": "Activity Log", "monitorCondition": "Fired",
            "monitoringService": "Activity Log - Administrative", "alertTargetIDs": [scope.to_ascii_lowercase()], "configurationItems": ["Ring2-Prod"],
            "originAlertId": "x", "firedDateTime": "2026-11-20T10:00:05.000Z", "description": "", "essentialsVersion": "1.0", "alertContextVersion": "1.0" },
        "alertContext": { "authorization": { "action": op, "scope": scope }, "channels": "Operation", "claims": "{\"name\":\"Alice\"}",
            "caller": "alice@contoso.com", "correlationId": "11111111-0000-0000-0000-000000000000", "eventSource": "Administrative",
            "eventTimestamp": "2026-11-20T10:00:00.123Z", "eventDataId": event_id, "level": "Informational", "operationName": op,
            "operationId": "22222222-0000-0000-0000-000000000000", "status": status, "subStatus": "", "submissionTimestamp": "2026-11-20T10:00:01Z",
            "properties": { "eventCategory": "Administrative", "entity": scope, "message": op, "hierarchy": "tenant/sub" },
            "Activity Log Event Description": "" },
        "customProperties": null } })
}
