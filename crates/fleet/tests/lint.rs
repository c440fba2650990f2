//! The lint on a small hand-written fleet in ARG's row shapes: each check fires on exactly the
//! machines or schedules built to trip it, and on nothing else.

use std::collections::BTreeSet;

use patchwatch_fleet::{
    collect::FleetCollector,
    lint::{LintOptions, lint},
};
use patchwatch_model::rundata::snapshot;
use serde_json::{Value, json};
use time::macros::datetime;

const SUB: &str = "11111111-1111-1111-1111-111111111111";
const OTHER_SUB: &str = "22222222-2222-2222-2222-222222222222";

/// A VM named `name` in (resource group, location).
fn vm(name: &str, (rg, loc): (&str, &str), os: &str, settings: Value, tags: Value) -> Value {
    let config = if os == "Linux" { "linuxConfiguration" } else { "windowsConfiguration" };
    json!({
        "id": format!("/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"),
        "name": name, "type": "microsoft.compute/virtualmachines", "subscriptionId": SUB, "resourceGroup": rg,
        "location": loc, "tags": tags,
        "properties": {
            "osProfile": { config: { "patchSettings": settings } },
            "storageProfile": { "osDisk": { "osType": os } },
            "extended": { "instanceView": { "powerState": { "code": "PowerState/running" } } }
        }
    })
}

fn good() -> Value {
    json!({ "patchMode": "AutomaticByPlatform", "assessmentMode": "AutomaticByPlatform",
            "automaticByPlatformSettings": { "bypassPlatformSafetyChecksOnUserSchedule": true } })
}

fn arc(name: &str, rg: &str, assessment: &str, tags: Value) -> Value {
    json!({
        "id": format!("/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.HybridCompute/machines/{name}"),
        "name": name, "type": "microsoft.hybridcompute/machines", "subscriptionId": SUB, "resourceGroup": rg,
        "location": "westeurope", "tags": tags,
        "properties": { "status": "Connected", "osType": "windows",
                        "osProfile": { "windowsConfiguration": { "patchSettings": { "assessmentMode": assessment } } } }
    })
}

fn config_id(name: &str) -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/rg-patching/providers/Microsoft.Maintenance/maintenanceConfigurations/{name}"
    )
}

fn configuration(name: &str, duration: &str, recur: &str, expiration: &str, classes: &[&str]) -> Value {
    json!({
        "id": config_id(name), "name": name, "type": "microsoft.maintenance/maintenanceconfigurations",
        "subscriptionId": SUB, "resourceGroup": "rg-patching", "location": "westeurope", "tags": { "owner": "team-ops" },
        "properties": {
            "maintenanceScope": "InGuestPatch",
            "maintenanceWindow": { "startDateTime": "2026-01-01 22:00", "expirationDateTime": expiration,
                                   "duration": duration, "timeZone": "W. Europe Standard Time", "recurEvery": recur },
            "installPatches": { "rebootSetting": "IfRequired",
                                "windowsParameters": { "classificationsToInclude": classes },
                                "linuxParameters": { "classificationsToInclude": classes } }
        }
    })
}

fn static_assignment(machine_id: &str, config: &str) -> Value {
    json!({ "id": format!("{machine_id}/providers/Microsoft.Maintenance/configurationAssignments/{config}"),
            "name": config, "type": "microsoft.maintenance/configurationassignments",
            "properties": { "maintenanceConfigurationId": config_id(config), "resourceId": machine_id } })
}

fn dynamic_scope(name: &str, config: &str, filter: Value) -> Value {
    json!({ "id": format!("/subscriptions/{SUB}/providers/Microsoft.Maintenance/configurationAssignments/{name}"),
            "name": name, "type": "microsoft.maintenance/configurationassignments",
            "properties": { "maintenanceConfigurationId": config_id(config), "resourceId": format!("/subscriptions/{SUB}"),
                            "filter": filter } })
}

fn assessment(machine_id: &str, when: &str, critical: u32) -> Value {
    json!({ "id": format!("{machine_id}/patchAssessmentResults/latest"), "type": "microsoft.compute/virtualmachines/patchassessmentresults",
            "properties": { "status": "Succeeded", "lastModifiedDateTime": when, "osType": "Windows", "rebootPending": false,
                            "availablePatchCountByClassification": { "critical": critical, "security": 0, "definition": 2 } } })
}

fn pending(machine_id: &str, kb: &str, published: &str) -> Value {
    json!({ "id": format!("{machine_id}/patchAssessmentResults/latest/softwarePatches/{kb}"),
            "type": "microsoft.compute/virtualmachines/patchassessmentresults/softwarepatches",
            "properties": { "patchName": "Cumulative Update", "kbId": kb, "classifications": ["Critical Updates"],
                            "msrcSeverity": "Critical", "publishedDateTime": published } })
}

/// One run of `config` at `stamp` (yyyyMMddHHmmss): per machine, `None` for no result, else
/// (status, minutes of install).
fn run(config: &str, stamp: &str, machines: &[(&str, Option<(&str, i64)>)]) -> (Vec<Value>, Vec<Value>) {
    let run_id =
        format!("{}/providers/microsoft.maintenance/applyupdates/{stamp}", config_id(config).to_ascii_lowercase());
    let start = time::PrimitiveDateTime::parse(
        stamp,
        time::macros::format_description!("[year][month][day][hour][minute][second]"),
    )
    .map(|t| t.assume_utc())
    .expect("stamp");
    let mut apply = Vec::new();
    let mut results = Vec::new();
    for (i, (machine, result)) in machines.iter().enumerate() {
        apply.push(json!({ "id": format!("{machine}/providers/microsoft.maintenance/applyupdates/{stamp}"),
                           "type": "microsoft.maintenance/applyupdates",
                           "properties": { "correlationId": run_id, "resourceId": machine, "maintenanceConfigurationId": config_id(config) } }));
        if let Some((status, minutes)) = result {
            let end = start + time::Duration::minutes(*minutes);
            // "WindowExceeded": a failed result cut off by the window.
            let (status, exceeded) = if *status == "WindowExceeded" { ("Failed", true) } else { (*status, false) };
            let fmt = |t: time::OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).expect("time");
            results.push(json!({ "id": format!("{machine}/patchInstallationResults/{stamp}-{i}"),
                                 "type": "microsoft.compute/virtualmachines/patchinstallationresults",
                                 "properties": { "status": status, "maintenanceRunId": run_id, "startDateTime": fmt(start),
                                                 "lastModifiedDateTime": fmt(end), "maintenanceWindowExceeded": exceeded } }));
        }
    }
    (apply, results)
}

fn id_of(row: &Value) -> String {
    row["id"].as_str().expect("id").to_owned()
}

struct World {
    snapshot: Value,
}

#[allow(clippy::too_many_lines)] // One fleet, built in one place so each case reads beside the others.
fn world() -> World {
    let fresh = "2026-11-20T06:00:00Z";
    // Machines: one per check, plus clean ones covered each way a scope can cover.
    let clean_static = vm("clean-static", ("rg-app", "westeurope"), "Windows", good(), json!({ "owner": "team-app" }));
    let clean_any = vm("clean-tag-any", ("rg-web", "westeurope"), "Linux", good(), json!({ "patch": "yes" }));
    let clean_all =
        vm("clean-tag-all", ("rg-web", "westeurope"), "Windows", good(), json!({ "env": "prod", "tier": "web" }));
    let clean_arc = arc("clean-arc", "rg-web", "AutomaticByPlatform", json!({ "patch": "yes" }));
    let patch_mode = vm(
        "bad-patch-mode",
        ("rg-app", "westeurope"),
        "Windows",
        json!({ "patchMode": "AutomaticByOS", "assessmentMode": "AutomaticByPlatform" }),
        json!({}),
    );
    let bypass = vm(
        "bad-bypass",
        ("rg-app", "westeurope"),
        "Linux",
        json!({ "patchMode": "AutomaticByPlatform", "assessmentMode": "AutomaticByPlatform",
                "automaticByPlatformSettings": { "bypassPlatformSafetyChecksOnUserSchedule": false } }),
        json!({}),
    );
    // Matches the All scope's env tag but not its tier: All needs both.
    let only_one_tag = vm("unassigned-all-tags", ("rg-web", "westeurope"), "Windows", good(), json!({ "env": "prod" }));
    // Right tag, wrong resource group for the RG-filtered scope.
    let wrong_rg = vm("unassigned-rg", ("rg-other", "westeurope"), "Linux", good(), json!({ "patch": "yes" }));
    // Right tag and group, wrong location.
    let wrong_location =
        vm("unassigned-location", ("rg-web", "northeurope"), "Linux", good(), json!({ "patch": "yes" }));
    let unassigned_arc = arc("unassigned-arc", "rg-edge", "AutomaticByPlatform", json!({}));
    let assessment_off = arc("assessment-off-arc", "rg-web", "ImageDefault", json!({ "patch": "yes" }));
    let stale_warn = vm("stale-warning", ("rg-app", "westeurope"), "Windows", good(), json!({}));
    let stale_error = vm("stale-error", ("rg-app", "westeurope"), "Windows", good(), json!({}));
    let never = vm("never-assessed", ("rg-app", "westeurope"), "Windows", good(), json!({}));
    let critical = vm("old-critical", ("rg-app", "westeurope"), "Windows", good(), json!({}));
    let no_show = vm("no-show", ("rg-app", "westeurope"), "Windows", good(), json!({}));
    // Another subscription's machine: the subscription scope must not take it.
    let mut elsewhere = vm("other-sub", ("rg-web", "westeurope"), "Linux", good(), json!({ "patch": "yes" }));
    elsewhere["id"] = json!(id_of(&elsewhere).replace(SUB, OTHER_SUB));
    elsewhere["subscriptionId"] = json!(OTHER_SUB);

    let statics = [&clean_static, &patch_mode, &bypass, &stale_warn, &stale_error, &never, &critical, &no_show];
    let mut assignments: Vec<Value> = statics.iter().map(|m| static_assignment(&id_of(m), "Weekly-Main")).collect();
    assignments.push(dynamic_scope(
        "scope-any",
        "Weekly-Main",
        json!({
        "resourceTypes": ["Microsoft.Compute/virtualMachines", "Microsoft.HybridCompute/machines"],
        "resourceGroups": ["RG-WEB"], "locations": ["West Europe"],
        "tagSettings": { "tags": { "patch": ["yes"] }, "filterOperator": "Any" } }),
    ));
    assignments.push(dynamic_scope(
        "scope-all",
        "Weekly-Main",
        json!({
        "osTypes": ["Windows"], "tagSettings": { "tags": { "env": ["prod"], "tier": [] }, "filterOperator": "All" } }),
    ));
    assignments.push(static_assignment(&id_of(&critical), "Monthly-Short"));

    let machines = [
        &clean_static,
        &clean_any,
        &clean_all,
        &clean_arc,
        &patch_mode,
        &bypass,
        &only_one_tag,
        &wrong_rg,
        &wrong_location,
        &unassigned_arc,
        &assessment_off,
        &stale_warn,
        &stale_error,
        &never,
        &critical,
        &no_show,
        &elsewhere,
    ];
    let mut assessments: Vec<Value> = machines
        .iter()
        .filter(|m| !["never-assessed", "stale-warning", "stale-error"].contains(&m["name"].as_str().unwrap_or("")))
        .map(|m| assessment(&id_of(m), fresh, 0))
        .collect();
    assessments.push(assessment(&id_of(&stale_warn), "2026-11-18T06:00:00Z", 0));
    assessments.push(assessment(&id_of(&stale_error), "2026-11-01T06:00:00Z", 0));
    // A critical patch from October, still pending after the run of 2026-11-10; and a fresh one
    // on a clean machine (not yet due).
    assessments.push(pending(&id_of(&critical), "5044284", "2026-10-08T17:00:00Z"));
    assessments.push(pending(&id_of(&clean_static), "5046613", "2026-11-17T17:00:00Z"));

    let mut maintenance = assignments;
    let mut installs = Vec::new();
    for stamp in ["20261027220000", "20261103220000", "20261110220000"] {
        let (apply, results) =
            run("Weekly-Main", stamp, &[(&id_of(&clean_static), Some(("Succeeded", 40))), (&id_of(&no_show), None)]);
        maintenance.extend(apply);
        installs.extend(results);
    }
    let (apply, results) = run("Monthly-Short", "20261110230000", &[(&id_of(&critical), Some(("Succeeded", 85)))]);
    maintenance.extend(apply);
    installs.extend(results);
    // Cut off by its window twice in three runs: the short installs it measured prove nothing.
    for (stamp, status) in
        [("20261031220000", "WindowExceeded"), ("20261107220000", "Succeeded"), ("20261114220000", "WindowExceeded")]
    {
        let (apply, results) = run("Overrun", stamp, &[(&id_of(&clean_arc), Some((status, 30)))]);
        maintenance.extend(apply);
        installs.extend(results);
    }

    let mut resources: Vec<Value> = machines.iter().map(|m| (*m).clone()).collect();
    resources.push(configuration(
        "Weekly-Main",
        "03:00",
        "Week Tuesday",
        "9999-12-31 23:59",
        &["Critical", "Security"],
    ));
    // 1 h 30 window, but an 85 min install plus the 10 min reserve does not fit; and it does not
    // install critical patches at all.
    resources.push(configuration(
        "Monthly-Short",
        "01:30",
        "Month Second Tuesday",
        "9999-12-31 23:59",
        &["Definition"],
    ));
    resources.push(configuration("Tiny-Window", "01:00", "Week Sunday", "9999-12-31 23:59", &["Critical", "Security"]));
    resources.push(configuration("Overrun", "02:00", "Week Saturday", "9999-12-31 23:59", &["Critical", "Security"]));
    resources.push(configuration("Expiring", "02:00", "Week Saturday", "2026-12-05 23:59", &["Critical", "Security"]));
    // Rings one day apart.
    resources.push(configuration(
        "App-Ring0",
        "02:00",
        "Month Second Tuesday Offset2",
        "9999-12-31 23:59",
        &["Critical", "Security"],
    ));
    resources.push(configuration(
        "App-Ring1",
        "02:00",
        "Month Second Tuesday Offset3",
        "9999-12-31 23:59",
        &["Critical", "Security"],
    ));
    // Rings a week apart: clean.
    resources.push(configuration(
        "Ring0-Dev",
        "02:00",
        "Month Second Tuesday",
        "9999-12-31 23:59",
        &["Critical", "Security"],
    ));
    resources.push(configuration(
        "Ring1-Prod",
        "02:00",
        "Month Third Tuesday",
        "9999-12-31 23:59",
        &["Critical", "Security"],
    ));
    resources.push(configuration("Broken", "02:00", "Month Second Tusday", "9999-12-31 23:59", &["Critical"]));

    World {
        snapshot: json!({ "resources": resources, "maintenanceresources": maintenance,
                          "patchassessmentresources": assessments, "patchinstallationresources": installs }),
    }
}

fn findings() -> BTreeSet<(String, String, String)> {
    let w = world();
    let bytes = serde_json::to_vec(&w.snapshot).expect("json");
    let mut collector = FleetCollector::new();
    snapshot::parse_into(&bytes, &mut collector).expect("snapshot parses");
    let fleet = collector.finish();
    let options = LintOptions::new(datetime!(2026-11-20 08:00 UTC));
    lint(&fleet, &options)
        .into_iter()
        .map(|f| (f.check.id().to_owned(), f.name.clone(), f.severity.as_str().to_owned()))
        .collect()
}

fn expected() -> BTreeSet<(String, String, String)> {
    [
        ("patch-mode", "bad-patch-mode", "error"),
        ("bypass-flag", "bad-bypass", "error"),
        ("unassigned", "unassigned-all-tags", "error"),
        ("unassigned", "unassigned-rg", "error"),
        ("unassigned", "unassigned-location", "error"),
        ("unassigned", "unassigned-arc", "error"),
        ("unassigned", "other-sub", "error"),
        ("assessment-off", "assessment-off-arc", "warning"),
        ("assessment-stale", "stale-warning", "warning"),
        ("assessment-stale", "stale-error", "error"),
        ("assessment-stale", "never-assessed", "error"),
        ("pending-critical", "old-critical", "error"),
        ("repeat-no-show", "no-show", "warning"),
        ("short-window", "Monthly-Short", "error"),
        ("short-window", "Tiny-Window", "warning"),
        ("short-window", "Overrun", "error"),
        ("config-expiring", "Expiring", "warning"),
        ("ring-order", "App-Ring1", "warning"),
        ("schedule-invalid", "Broken", "error"),
    ]
    .into_iter()
    .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
    .collect()
}

#[test]
fn every_check_finds_exactly_the_guilty() {
    let found = findings();
    let want = expected();
    let missing: Vec<_> = want.difference(&found).collect();
    let extra: Vec<_> = found.difference(&want).collect();
    assert!(missing.is_empty() && extra.is_empty(), "missing {missing:#?}\nunexpected {extra:#?}");
}

#[test]
fn pending_critical_names_the_classification_gap() {
    let w = world();
    let bytes = serde_json::to_vec(&w.snapshot).expect("json");
    let mut collector = FleetCollector::new();
    snapshot::parse_into(&bytes, &mut collector).expect("snapshot parses");
    let fleet = collector.finish();
    let all = lint(&fleet, &LintOptions::new(datetime!(2026-11-20 08:00 UTC)));
    let f = all.iter().find(|f| f.check.id() == "pending-critical").expect("finding");
    assert!(
        f.detail.contains("KB5044284") && f.detail.contains("classification not included by Monthly-Short"),
        "{}",
        f.detail
    );
    assert!(
        f.fix.starts_with("az maintenance configuration update")
            && f.fix.contains("classifications-to-include-list=[Definition,Critical,Security]"),
        "{}",
        f.fix
    );
}
