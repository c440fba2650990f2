//! Patching on demand: VM and Arc `installPatches`, long-running operations polled to
//! completion, results turned into run data so the summary is built, rendered and routed
//! exactly like a scheduled run's.

use patchwatch_model::resource_id::MachineId;
use std::{collections::HashMap, time::Duration};

use futures::{StreamExt, stream};
use patchwatch_azure::arm::ArmClient;
use patchwatch_azure::arm::COMPUTE_API;
use patchwatch_azure::arm::HYBRID_COMPUTE_API;
use patchwatch_model::rundata::ExpectedMachine;
use patchwatch_model::rundata::FailedPatch;
use patchwatch_model::rundata::InstallResult;
use patchwatch_model::rundata::MachineInfo;
use patchwatch_model::rundata::RunData;
use serde_json::{Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// What to install.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchParams {
    pub windows_classifications: Vec<String>,
    pub linux_classifications: Vec<String>,
    pub kb_include: Vec<String>,
    pub kb_exclude: Vec<String>,
    pub package_include: Vec<String>,
    pub package_exclude: Vec<String>,
    /// `IfRequired`, `Never` or `Always` (the Compute spelling).
    pub reboot: String,
    pub max_minutes: u32,
}

impl Default for PatchParams {
    fn default() -> Self {
        Self {
            windows_classifications: vec!["Critical".into(), "Security".into()],
            linux_classifications: vec!["Critical".into(), "Security".into()],
            kb_include: Vec::new(),
            kb_exclude: Vec::new(),
            package_include: Vec::new(),
            package_exclude: Vec::new(),
            reboot: "IfRequired".into(),
            max_minutes: 120,
        }
    }
}

/// Minutes of an ISO 8601 duration such as `PT2H`, `PT120M` or `PT1H30M` (1 minute to 6 hours).
pub fn duration_minutes(iso: &str) -> Option<u32> {
    let rest = iso.trim().strip_prefix("PT").or_else(|| iso.trim().strip_prefix("pt"))?;
    let (mut minutes, mut number) = (0u32, String::new());
    for c in rest.chars() {
        match c.to_ascii_uppercase() {
            d @ '0'..='9' => number.push(d),
            'H' => minutes = minutes.checked_add(number.parse::<u32>().ok()?.checked_mul(60)?)?,
            'M' => minutes = minutes.checked_add(number.parse::<u32>().ok()?)?,
            _ => return None,
        }
        if !c.is_ascii_digit() {
            number.clear();
        }
    }
    (number.is_empty() && (1..=360).contains(&minutes)).then_some(minutes)
}

/// `IfRequired`, `Never`, `Always` from any of the five spellings the APIs use.
pub fn reboot_setting(s: &str) -> String {
    match s.to_ascii_lowercase().as_str() {
        "never" | "neverreboot" => "Never",
        "always" | "alwaysreboot" => "Always",
        _ => "IfRequired",
    }
    .to_owned()
}

/// The maintenance configuration's own `installPatches` settings, so a re-run installs what
/// the schedule would have. `duration` (`HH:mm`) bounds the operation.
pub fn params_from_configuration(configuration: &Value) -> PatchParams {
    let p = &configuration["properties"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect()).unwrap_or_default()
    };
    let install = &p["installPatches"];
    let mut params = PatchParams::default();
    let win = strings(&install["windowsParameters"]["classificationsToInclude"]);
    if !win.is_empty() {
        params.windows_classifications = win;
    }
    let linux = strings(&install["linuxParameters"]["classificationsToInclude"]);
    if !linux.is_empty() {
        params.linux_classifications = linux;
    }
    params.kb_include = strings(&install["windowsParameters"]["kbNumbersToInclude"]);
    params.kb_exclude = strings(&install["windowsParameters"]["kbNumbersToExclude"]);
    params.package_include = strings(&install["linuxParameters"]["packageNameMasksToInclude"]);
    params.package_exclude = strings(&install["linuxParameters"]["packageNameMasksToExclude"]);
    if let Some(r) = install["rebootSetting"].as_str() {
        params.reboot = reboot_setting(r);
    }
    if let Some((h, m)) = p["maintenanceWindow"]["duration"].as_str().and_then(|d| d.split_once(':'))
        && let (Ok(h), Ok(m)) = (h.trim().parse::<u32>(), m.trim().parse::<u32>())
        && (1..=360).contains(&(h * 60 + m))
    {
        params.max_minutes = h * 60 + m;
    }
    params
}

/// A machine to patch.
#[derive(Debug, Clone)]
pub struct Target {
    pub id: String,
    /// `Windows` or `Linux` when known; unknown sends both parameter sets.
    pub os: Option<String>,
}

/// The installPatches body for one machine.
pub fn body(params: &PatchParams, os: Option<&str>) -> Value {
    let mut body = json!({
        "maximumDuration": format!("PT{}M", params.max_minutes),
        "rebootSetting": params.reboot,
    });
    let os = os.map(str::to_ascii_lowercase);
    if os.as_deref() != Some("linux") {
        // Other is Linux's own: Windows would refuse it.
        let windows: Vec<&String> =
            params.windows_classifications.iter().filter(|c| !c.to_ascii_lowercase().starts_with("other")).collect();
        body["windowsParameters"] = json!({
            "classificationsToInclude": windows,
            "kbNumbersToInclude": params.kb_include,
            "kbNumbersToExclude": params.kb_exclude,
        });
    }
    if os.as_deref() != Some("windows") {
        // Linux knows only Critical, Security and Other.
        let linux: Vec<&String> = params
            .linux_classifications
            .iter()
            .filter(|c| ["critical", "security", "other", "others"].contains(&c.to_ascii_lowercase().as_str()))
            .collect();
        body["linuxParameters"] = json!({
            "classificationsToInclude": linux,
            "packageNameMasksToInclude": params.package_include,
            "packageNameMasksToExclude": params.package_exclude,
        });
    }
    body
}

/// Starts installPatches on every target (at most `concurrency` at a time) and polls each to
/// completion. Each machine ends with the operation's result or the error that stopped it.
pub async fn install(
    arm: &ArmClient,
    targets: &[Target],
    params: &PatchParams,
    concurrency: usize,
) -> Vec<(Target, Result<Value, String>)> {
    // The operation may run its whole maximum duration, then report.
    let budget = Duration::from_secs(u64::from(params.max_minutes) * 60 + 15 * 60);
    stream::iter(targets.iter().cloned())
        .map(|t| async move {
            let result = match MachineId::parse(&t.id) {
                Err(e) => Err(format!("invalid machine id: {e}")),
                Ok(id) => {
                    let api = if id.is_arc() { HYBRID_COMPUTE_API } else { COMPUTE_API };
                    match arm.action(id.resource(), "installPatches", api, Some(&body(params, t.os.as_deref()))).await {
                        Ok(first) => arm.poll(&first, budget).await.map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    }
                }
            };
            if let Err(e) = &result {
                tracing::warn!(machine = %t.id, error = %e, "installPatches did not complete.");
            }
            (t, result)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await
}

fn resource_group(id: &str) -> Option<String> {
    let parts: Vec<&str> = id.split('/').collect();
    parts
        .iter()
        .position(|p| p.eq_ignore_ascii_case("resourceGroups"))
        .and_then(|i| parts.get(i + 1))
        .map(|s| (*s).to_owned())
}

/// Run data for the on-demand run: the targets as its machine list, each operation's result as
/// that machine's installation result. `known` carries tags and OS over for routing.
pub fn run_data(
    results: &[(Target, Result<Value, String>)],
    known: &HashMap<String, MachineInfo>,
    now: OffsetDateTime,
) -> RunData {
    let mut data = RunData::default();
    for (t, r) in results {
        let key = t.id.to_ascii_lowercase();
        data.expected.push(ExpectedMachine { id: t.id.clone(), resource_group: resource_group(&t.id) });
        if let Some(info) = known.get(&key) {
            data.machines.insert(key.clone(), info.clone());
        }
        let count = |v: &Value, k: &str| v[k].as_u64().map_or(0, |n| n.min(u64::from(u32::MAX)) as u32);
        let result = match r {
            Ok(v) => {
                for p in v["patches"].as_array().into_iter().flatten() {
                    if p["installationState"].as_str().is_some_and(|s| s.eq_ignore_ascii_case("failed")) {
                        data.failed_patches.push(FailedPatch {
                            machine_id: key.clone(),
                            name: p["name"].as_str().unwrap_or("(unnamed patch)").to_owned(),
                            kb_id: p["kbId"].as_str().filter(|k| !k.is_empty()).map(str::to_owned),
                            version: p["version"].as_str().filter(|k| !k.is_empty()).map(str::to_owned),
                            classifications: p["classifications"]
                                .as_array()
                                .map(|a| a.iter().filter_map(|c| c.as_str().map(str::to_owned)).collect())
                                .unwrap_or_default(),
                        });
                    }
                }
                let mut errors = Vec::new();
                if let Some(m) = v["error"]["message"].as_str() {
                    errors.push(m.to_owned());
                }
                InstallResult {
                    result_id: v["installationActivityId"].as_str().unwrap_or_default().to_owned(),
                    machine_id: t.id.clone(),
                    resource_group: resource_group(&t.id),
                    status: v["status"].as_str().unwrap_or("Unknown").to_owned(),
                    installed: count(v, "installedPatchCount"),
                    failed: count(v, "failedPatchCount"),
                    pending: count(v, "pendingPatchCount"),
                    window_exceeded: v["maintenanceWindowExceeded"].as_bool().unwrap_or(false),
                    reboot_status: v["rebootStatus"].as_str().map(str::to_owned),
                    started: v["startDateTime"].as_str().and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok()),
                    last_modified: Some(now),
                    os_type: t.os.clone(),
                    errors,
                }
            }
            Err(e) => InstallResult {
                result_id: String::new(),
                machine_id: t.id.clone(),
                resource_group: resource_group(&t.id),
                status: "Failed".to_owned(),
                installed: 0,
                failed: 0,
                pending: 0,
                window_exceeded: false,
                reboot_status: None,
                started: None,
                last_modified: Some(now),
                os_type: t.os.clone(),
                errors: vec![format!("installPatches: {e}")],
            },
        };
        data.results.insert(key, result);
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_reboot_spellings() {
        assert_eq!(duration_minutes("PT2H"), Some(120));
        assert_eq!(duration_minutes("PT1H30M"), Some(90));
        assert_eq!(duration_minutes("PT120M"), Some(120));
        for bad in ["2H", "PT", "PT0M", "PT7H", "PTxM", "PT5"] {
            assert_eq!(duration_minutes(bad), None, "{bad}");
        }
        assert_eq!(reboot_setting("NeverReboot"), "Never");
        assert_eq!(reboot_setting("AlwaysReboot"), "Always");
        assert_eq!(reboot_setting("ifrequired"), "IfRequired");
    }

    #[test]
    fn configuration_settings_carry_over() {
        let mc = json!({ "properties": { "maintenanceWindow": { "duration": "03:55" }, "installPatches": {
            "rebootSetting": "NeverReboot",
            "windowsParameters": { "classificationsToInclude": ["Critical","Security","UpdateRollup"], "kbNumbersToExclude": ["5031364"] },
            "linuxParameters": { "classificationsToInclude": ["Critical","Security","Other"] } } } });
        let p = params_from_configuration(&mc);
        assert_eq!((p.reboot.as_str(), p.max_minutes), ("Never", 235));
        assert_eq!(p.kb_exclude, vec!["5031364"]);
        let b = body(&p, Some("Windows"));
        assert_eq!(b["maximumDuration"], "PT235M");
        assert!(b.get("linuxParameters").is_none());
        let b = body(&p, None);
        assert!(b.get("linuxParameters").is_some() && b.get("windowsParameters").is_some());
    }
}
