//! Activity-log alerts as an action group delivers them: the common alert schema
//! (`azureMonitorCommonAlertSchema`) or, with the common schema off, the activity-log schema
//! (`Microsoft.Insights/activityLogs`). Maintenance operations become notices; everything else
//! is acknowledged and ignored.

use patchwatch_engine::inhibit::{Member, RunRef};
use patchwatch_model::event::EventError;
use patchwatch_model::json::get_ci;
use patchwatch_model::notice::Notice;
use patchwatch_model::notice::Severity;
use patchwatch_model::resource_id::last_segment;
use serde_json::{Map, Value};

/// The activity-log facts patchwatch uses, whichever schema carried them.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    pub operation: String,
    /// `Started`, `Succeeded`, `Failed`, …
    pub status: String,
    /// A user principal name or an object id.
    pub caller: String,
    pub timestamp: String,
    pub resource_id: String,
    pub event_id: String,
    pub correlation_id: String,
    pub description: String,
    pub alert_rule: Option<String>,
}

/// What an alert body is.
#[derive(Debug)]
pub enum Alert {
    Activity(Box<Activity>),
    Ignored(String),
}

fn str_at<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    get_ci(obj, key).and_then(Value::as_str)
}

fn obj_at<'a>(obj: &'a Map<String, Value>, key: &str, field: &str) -> Result<&'a Map<String, Value>, EventError> {
    get_ci(obj, key).and_then(Value::as_object).ok_or_else(|| EventError::malformed(field, "is required (an object)"))
}

/// Parses an action group's webhook body.
pub fn parse(body: &[u8]) -> Result<Alert, EventError> {
    let value =
        patchwatch_model::json::from_slice(body, "body").map_err(|e| EventError::malformed(e.field, e.problem))?;
    let root = value.as_object().ok_or_else(|| EventError::malformed("body", "must be a JSON object"))?;
    let schema = str_at(root, "schemaId").ok_or_else(|| EventError::malformed("schemaId", "is required"))?;
    let data = obj_at(root, "data", "data")?;
    if schema.eq_ignore_ascii_case("azureMonitorCommonAlertSchema") {
        let essentials = obj_at(data, "essentials", "data.essentials")?;
        let service = str_at(essentials, "monitoringService").unwrap_or_default();
        if !service.eq_ignore_ascii_case("Activity Log - Administrative") {
            return Ok(Alert::Ignored(format!("monitoringService {service:?} is not Activity Log - Administrative")));
        }
        if str_at(essentials, "monitorCondition").is_some_and(|c| c.eq_ignore_ascii_case("Resolved")) {
            return Ok(Alert::Ignored("a resolved alert".to_owned()));
        }
        let ctx = obj_at(data, "alertContext", "data.alertContext")?;
        let operation = str_at(ctx, "operationName")
            .ok_or_else(|| EventError::malformed("data.alertContext.operationName", "is required"))?;
        let resource = get_ci(ctx, "authorization")
            .and_then(Value::as_object)
            .and_then(|a| str_at(a, "scope"))
            .or_else(|| get_ci(ctx, "properties").and_then(Value::as_object).and_then(|p| str_at(p, "entity")))
            .or_else(|| {
                get_ci(essentials, "alertTargetIDs").and_then(Value::as_array).and_then(|a| a.first()?.as_str())
            })
            .unwrap_or_default();
        let description = str_at(ctx, "Activity Log Event Description")
            .filter(|d| !d.is_empty())
            .or_else(|| get_ci(ctx, "properties").and_then(Value::as_object).and_then(|p| str_at(p, "message")))
            .unwrap_or_default();
        return Ok(Alert::Activity(Box::new(Activity {
            operation: operation.to_owned(),
            status: str_at(ctx, "status").unwrap_or_default().to_owned(),
            caller: str_at(ctx, "caller").unwrap_or("(unknown caller)").to_owned(),
            timestamp: str_at(ctx, "eventTimestamp")
                .or_else(|| str_at(essentials, "firedDateTime"))
                .unwrap_or_default()
                .to_owned(),
            resource_id: resource.to_owned(),
            event_id: str_at(ctx, "eventDataId")
                .or_else(|| str_at(essentials, "alertId"))
                .unwrap_or_default()
                .to_owned(),
            correlation_id: str_at(ctx, "correlationId").unwrap_or_default().to_owned(),
            description: description.to_owned(),
            alert_rule: str_at(essentials, "alertRule").map(str::to_owned),
        })));
    }
    if schema.eq_ignore_ascii_case("Microsoft.Insights/activityLogs") {
        let log = obj_at(data, "context", "data.context")
            .and_then(|c| obj_at(c, "activityLog", "data.context.activityLog"))?;
        let operation = str_at(log, "operationName")
            .ok_or_else(|| EventError::malformed("data.context.activityLog.operationName", "is required"))?;
        let resource = str_at(log, "resourceId")
            .or_else(|| get_ci(log, "authorization").and_then(Value::as_object).and_then(|a| str_at(a, "scope")))
            .unwrap_or_default();
        return Ok(Alert::Activity(Box::new(Activity {
            operation: operation.to_owned(),
            status: str_at(log, "status").unwrap_or_default().to_owned(),
            caller: str_at(log, "caller").unwrap_or("(unknown caller)").to_owned(),
            timestamp: str_at(log, "eventTimestamp").unwrap_or_default().to_owned(),
            resource_id: resource.to_owned(),
            event_id: str_at(log, "eventDataId").unwrap_or_default().to_owned(),
            correlation_id: str_at(log, "correlationId").unwrap_or_default().to_owned(),
            description: str_at(log, "description").unwrap_or_default().to_owned(),
            alert_rule: None,
        })));
    }
    Ok(Alert::Ignored(format!("schemaId {schema:?} is not an activity-log alert")))
}

/// The resource name after `marker` in an id (case-insensitive), e.g. the configuration name.
fn segment_after<'a>(id: &'a str, marker: &str) -> Option<&'a str> {
    let lower = id.to_ascii_lowercase();
    let at = lower.find(&marker.to_ascii_lowercase())? + marker.len();
    id[at..].split('/').next().filter(|s| !s.is_empty())
}

/// The machine a configuration assignment's resource id is under (empty when none).
fn assigned_machine(resource_id: &str) -> String {
    resource_id
        .to_ascii_lowercase()
        .find("/providers/microsoft.maintenance/configurationassignments/")
        .map(|i| last_segment(&resource_id[..i]).to_owned())
        .unwrap_or_default()
}

/// The notice for a maintenance operation, or why there is none.
pub fn notice(a: &Activity) -> Result<Notice, String> {
    let op = a.operation.to_ascii_lowercase();
    let status = a.status.to_ascii_lowercase();
    // Started/Accepted/In Progress are followed by the final status; notify that one.
    if !matches!(status.as_str(), "succeeded" | "failed") {
        return Err(format!("status {:?} is not final", a.status));
    }
    let failed = status == "failed";
    let verb = if op.ends_with("/delete") { "deleted" } else { "changed" };
    let (what, configuration, severity) = if op.starts_with("microsoft.maintenance/maintenanceconfigurations/") {
        let name = segment_after(&a.resource_id, "/maintenanceConfigurations/").unwrap_or("?");
        (
            format!("Maintenance configuration {name} {verb}"),
            Some(name.to_owned()),
            if verb == "deleted" { Severity::Warning } else { Severity::Info },
        )
    } else if op.starts_with("microsoft.maintenance/configurationassignments/") {
        let assignment = segment_after(&a.resource_id, "/configurationAssignments/").unwrap_or("?");
        let machine = assigned_machine(&a.resource_id);
        let on = if machine.is_empty() { String::new() } else { format!(" on {machine}") };
        (format!("Configuration assignment {assignment}{on} {verb}"), Some(assignment.to_owned()), Severity::Warning)
    } else if op.starts_with("microsoft.maintenance/applyupdates/") {
        if !failed {
            return Err("a successful apply-updates operation".to_owned());
        }
        let name = segment_after(&a.resource_id, "/maintenanceConfigurations/");
        (
            format!("Apply updates failed{}", name.map(|n| format!(" for {n}")).unwrap_or_default()),
            name.map(str::to_owned),
            Severity::Critical,
        )
    } else {
        return Err(format!("operation {} is not a maintenance operation", a.operation));
    };
    let title = if failed && !op.starts_with("microsoft.maintenance/applyupdates/") {
        format!("{what} FAILED (attempted by {})", a.caller)
    } else if op.starts_with("microsoft.maintenance/applyupdates/") {
        what
    } else {
        format!("{what} by {}", a.caller)
    };
    Ok(Notice {
        kind: patchwatch_model::notice::NoticeKind::Alert,
        key: format!("alert:{}:{}", if a.event_id.is_empty() { &a.correlation_id } else { &a.event_id }, status),
        severity: if failed { Severity::Critical } else { severity },
        title,
        configuration,
        facts: Vec::new(),
        text: a.description.clone(),
        link: None,
        recipients: Vec::new(),
        actions: Vec::new(),
    }
    .fact("Who", a.caller.clone())
    .fact("Operation", a.operation.clone())
    .fact("Status", a.status.clone())
    .fact("When", a.timestamp.clone())
    .fact("Resource", a.resource_id.clone())
    .fact("Correlation id", a.correlation_id.clone())
    .fact("Alert rule", a.alert_rule.clone().unwrap_or_default()))
}

/// How an alert's notice is held back (`patchwatch_engine::inhibit`), if at all.
#[derive(Debug, PartialEq)]
pub enum Inhibition {
    /// A configuration assignment written or deleted: grouped per configuration and caller.
    Group(Box<Member>),
    /// A failed apply-updates of a run under a maintenance configuration: folded into the
    /// run's summary when there is one.
    Fold(RunRef),
    /// Sent at once.
    None,
}

/// Whether (and how) the notice of a maintenance activity is inhibited.
pub fn inhibition(a: &Activity) -> Inhibition {
    let op = a.operation.to_ascii_lowercase();
    if let Some(verb) = op.strip_prefix("microsoft.maintenance/configurationassignments/") {
        let configuration = segment_after(&a.resource_id, "/configurationAssignments/").unwrap_or("?");
        let machine = assigned_machine(&a.resource_id);
        let event = if a.event_id.is_empty() { a.correlation_id.as_str() } else { a.event_id.as_str() };
        return Inhibition::Group(Box::new(Member {
            configuration: configuration.to_owned(),
            caller: a.caller.clone(),
            machine,
            operation: verb.to_owned(),
            status: a.status.clone(),
            time: a.timestamp.clone(),
            resource_id: a.resource_id.clone(),
            event: format!("{event}:{}", a.status.to_ascii_lowercase()),
        }));
    }
    if op.starts_with("microsoft.maintenance/applyupdates/")
        && let Some(run) = RunRef::from_resource_id(&a.resource_id)
    {
        return Inhibition::Fold(run);
    }
    Inhibition::None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn common(op: &str, status: &str, scope: &str) -> Vec<u8> {
        json!({ "schemaId": "azureMonitorCommonAlertSchema", "data": {
            "essentials": { "alertId": "/subscriptions/s/providers/Microsoft.AlertsManagement/alerts/a1", "alertRule": "mc-writes",
                "severity": "Sev4", "signalType": "Activity Log", "monitorCondition": "Fired",
                "monitoringService": "Activity Log - Administrative", "alertTargetIDs": [scope], "firedDateTime": "2026-11-20T10:00:00Z" },
            "alertContext": { "authorization": { "action": op, "scope": scope }, "caller": "alice@contoso.com",
                "correlationId": "c1", "eventDataId": "e1", "eventTimestamp": "2026-11-20T10:00:00Z", "operationName": op,
                "status": status, "claims": "{}", "properties": { "eventCategory": "Administrative" } },
            "customProperties": null } })
        .to_string()
        .into_bytes()
    }

    const MC: &str =
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Maintenance/maintenanceConfigurations/Ring1-PreProd";

    #[test]
    fn maintenance_operations_become_notices() {
        let Alert::Activity(a) =
            parse(&common("Microsoft.Maintenance/maintenanceConfigurations/write", "Succeeded", MC)).unwrap()
        else {
            panic!()
        };
        let n = notice(&a).unwrap();
        assert_eq!(n.title, "Maintenance configuration Ring1-PreProd changed by alice@contoso.com");
        assert_eq!(n.configuration.as_deref(), Some("Ring1-PreProd"));
        let assignment = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1/providers/Microsoft.Maintenance/configurationAssignments/Ring1-PreProd";
        let Alert::Activity(a) =
            parse(&common("Microsoft.Maintenance/configurationAssignments/delete", "Succeeded", assignment)).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            notice(&a).unwrap().title,
            "Configuration assignment Ring1-PreProd on vm1 deleted by alice@contoso.com"
        );
        let Inhibition::Group(m) = inhibition(&a) else { panic!("assignments are grouped") };
        assert_eq!(
            (m.configuration.as_str(), m.machine.as_str(), m.operation.as_str(), m.caller.as_str()),
            ("Ring1-PreProd", "vm1", "delete", "alice@contoso.com")
        );
        let Alert::Activity(a) = parse(&common(
            "Microsoft.Maintenance/applyUpdates/write",
            "Failed",
            &format!("{MC}/providers/Microsoft.Maintenance/applyUpdates/20261120"),
        ))
        .unwrap() else {
            panic!()
        };
        let n = notice(&a).unwrap();
        assert_eq!((n.title.as_str(), n.severity), ("Apply updates failed for Ring1-PreProd", Severity::Critical));
        let Inhibition::Fold(run) = inhibition(&a) else { panic!("a configuration's run folds") };
        assert_eq!(run.configuration, "Ring1-PreProd");
        assert!(run.run_id.ends_with("/applyUpdates/20261120"));
        let Alert::Activity(a) =
            parse(&common("Microsoft.Compute/virtualMachines/restart/action", "Succeeded", "/x")).unwrap()
        else {
            panic!()
        };
        assert!(notice(&a).is_err());
        let Alert::Activity(a) =
            parse(&common("Microsoft.Maintenance/maintenanceConfigurations/write", "Started", MC)).unwrap()
        else {
            panic!()
        };
        assert!(notice(&a).is_err(), "only final statuses notify");
        assert_eq!(inhibition(&a), Inhibition::None, "configuration writes keep their own notice");
        let machine_run = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1/providers/Microsoft.Maintenance/applyUpdates/default";
        let Alert::Activity(a) =
            parse(&common("Microsoft.Maintenance/applyUpdates/write", "Failed", machine_run)).unwrap()
        else {
            panic!()
        };
        assert_eq!(inhibition(&a), Inhibition::None, "a machine-level run has no summary to fold into");
    }

    #[test]
    fn the_activity_log_schema_is_accepted_and_others_ignored() {
        let body = json!({ "schemaId": "Microsoft.Insights/activityLogs", "data": { "status": "Activated", "context": { "activityLog": {
            "caller": "bob@contoso.com", "correlationId": "c2", "eventDataId": "e2", "eventTimestamp": "2026-11-20T11:00:00Z",
            "operationName": "Microsoft.Maintenance/maintenanceConfigurations/delete", "resourceId": MC, "status": "Succeeded" } }, "properties": {} } });
        let Alert::Activity(a) = parse(body.to_string().as_bytes()).unwrap() else { panic!() };
        assert_eq!(notice(&a).unwrap().title, "Maintenance configuration Ring1-PreProd deleted by bob@contoso.com");
        let metric = json!({ "schemaId": "azureMonitorCommonAlertSchema", "data": { "essentials": { "monitoringService": "Platform" }, "alertContext": {} } });
        assert!(matches!(parse(metric.to_string().as_bytes()).unwrap(), Alert::Ignored(_)));
        assert!(matches!(
            parse(br#"{"schemaId":"Microsoft.Insights/LogAlert","data":{}}"#).unwrap(),
            Alert::Ignored(_)
        ));
        assert_eq!(parse(br#"{"data":{}}"#).unwrap_err().field, "schemaId");
        assert_eq!(parse(br#"{"schemaId":"azureMonitorCommonAlertSchema","data":{"essentials":{"monitoringService":"Activity Log - Administrative"},"alertContext":{}}}"#).unwrap_err().field, "data.alertContext.operationName");
        assert_eq!(parse(b"[1]").unwrap_err().field, "body");
    }
}
