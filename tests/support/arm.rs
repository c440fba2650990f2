//! A loopback fake of the ARM calls patchwatch makes around a run, built from
//! azure-contracts §1.6 and §7.1 and the Compute REST spec:
//! - `PUT {run id}?api-version=2023-09-01-preview` with `{"properties":{"status":"Cancel"}}` → 200, status `Cancelled`;
//! - `POST {vm}/start`, `…/deallocate`, `…/powerOff` (api-version 2024-07-01) → 202 with `Azure-AsyncOperation`;
//! - `POST {machine}/installPatches` → 202 with `Location` and `Retry-After`; the Location answers
//!   202 once, then 200 with the result body;
//! - `GET {maintenance configuration}?api-version=2023-04-01` → the configuration.
//!
//! Every call needs `Authorization: Bearer fake-token` and is recorded.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers};

/// One recorded call.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub api_version: String,
    pub body: Value,
}

#[derive(Clone, Default)]
pub struct FakeArm {
    pub calls: Arc<Mutex<Vec<Call>>>,
    polls: Arc<Mutex<HashMap<String, (u32, String)>>>,
    base: String,
    /// Machines (name fragments) whose installPatches result is Failed.
    pub failing: Arc<Mutex<Vec<String>>>,
    /// How many cancel PUTs answer 500 before they work.
    pub fail_cancels: Arc<Mutex<u32>>,
}

impl FakeArm {
    pub async fn start() -> (MockServer, FakeArm) {
        let server = MockServer::start().await;
        let arm = FakeArm { base: server.uri(), ..Default::default() };
        Mock::given(matchers::header("authorization", "Bearer fake-token"))
            .respond_with(arm.clone())
            .mount(&server)
            .await;
        (server, arm)
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// Calls whose method matches and whose path ends with `suffix` (case-insensitive).
    pub fn calls_ending(&self, method: &str, suffix: &str) -> Vec<Call> {
        let suffix = suffix.to_ascii_lowercase();
        self.calls()
            .into_iter()
            .filter(|c| c.method == method && c.path.to_ascii_lowercase().ends_with(&suffix))
            .collect()
    }
}

fn error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({ "error": { "code": code, "message": message } }))
}

impl Respond for FakeArm {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let path = req.url.path().to_owned();
        let lower = path.to_ascii_lowercase();
        let api_version =
            req.url.query_pairs().find(|(k, _)| k == "api-version").map(|(_, v)| v.into_owned()).unwrap_or_default();
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let method = req.method.as_str().to_owned();
        self.calls.lock().unwrap().push(Call {
            method: method.clone(),
            path: path.clone(),
            api_version: api_version.clone(),
            body: body.clone(),
        });
        match method.as_str() {
            "PUT" if lower.contains("/providers/microsoft.maintenance/applyupdates/") => {
                if api_version != "2023-09-01-preview" {
                    return error(400, "InvalidApiVersion", "unsupported api-version");
                }
                let status = body.pointer("/properties/status").and_then(Value::as_str);
                if status != Some("Cancel") {
                    return error(400, "InvalidRequest", "properties.status must be Cancel");
                }
                {
                    let mut fail = self.fail_cancels.lock().unwrap();
                    if *fail > 0 {
                        *fail -= 1;
                        return error(500, "InternalServerError", "try again");
                    }
                }
                let resource = &path[..lower.find("/providers/microsoft.maintenance/applyupdates/").unwrap()];
                ResponseTemplate::new(200).set_body_json(json!({
                    "name": path.rsplit('/').next(), "type": "Microsoft.Maintenance/applyUpdates", "id": path,
                    "properties": { "resourceId": resource, "status": "Cancelled" } }))
            }
            "POST" if lower.ends_with("/start") || lower.ends_with("/deallocate") || lower.ends_with("/poweroff") => {
                if api_version != "2024-07-01" || !lower.contains("/providers/microsoft.compute/virtualmachines/") {
                    return error(400, "InvalidRequest", "not a VM power action");
                }
                ResponseTemplate::new(202)
                    .insert_header("azure-asyncoperation", format!("{}/operations/power-{}", self.base, self.calls.lock().unwrap().len()))
            }
            "POST" if lower.ends_with("/installpatches") => {
                let arc = lower.contains("/providers/microsoft.hybridcompute/machines/");
                let expected = if arc { "2020-08-15-preview" } else { "2024-07-01" };
                if api_version != expected || body["rebootSetting"].as_str().is_none() || body["maximumDuration"].as_str().is_none() {
                    return error(400, "InvalidParameter", "rebootSetting and maximumDuration are required");
                }
                let op = format!("op-{}", self.polls.lock().unwrap().len() + 1);
                self.polls.lock().unwrap().insert(op.clone(), (0, path.clone()));
                ResponseTemplate::new(202)
                    .insert_header("location", format!("{}/providers/Microsoft.Compute/locations/westeurope/operations/{op}?api-version=2024-07-01", self.base))
                    .insert_header("retry-after", "0")
            }
            "GET" if lower.contains("/locations/westeurope/operations/") => {
                let op = path.rsplit('/').next().unwrap_or_default().to_owned();
                let mut polls = self.polls.lock().unwrap();
                let Some((count, machine)) = polls.get_mut(&op) else { return error(404, "NotFound", "no such operation") };
                *count += 1;
                if *count < 2 {
                    return ResponseTemplate::new(202).insert_header("retry-after", "0");
                }
                let failing = self.failing.lock().unwrap().iter().any(|f| machine.to_ascii_lowercase().contains(&f.to_ascii_lowercase()));
                let patches = if failing {
                    json!([{ "patchId": "p1", "name": "2023-11 Cumulative Update (KB5031364)", "kbId": "5031364", "classifications": ["Security"], "installationState": "Failed" }])
                } else {
                    json!([{ "patchId": "p1", "name": "2023-11 Cumulative Update (KB5031364)", "kbId": "5031364", "classifications": ["Security"], "installationState": "Installed" }])
                };
                ResponseTemplate::new(200).set_body_json(json!({
                    "status": if failing { "Failed" } else { "Succeeded" },
                    "installationActivityId": format!("act-{op}"), "rebootStatus": "Completed", "maintenanceWindowExceeded": false,
                    "excludedPatchCount": 0, "notSelectedPatchCount": 0, "pendingPatchCount": 0,
                    "installedPatchCount": if failing { 0 } else { 1 }, "failedPatchCount": if failing { 1 } else { 0 },
                    "startDateTime": "2026-11-12T09:00:00Z", "patches": patches, "error": null }))
            }
            "GET" if lower.contains("/providers/microsoft.maintenance/maintenanceconfigurations/") => {
                ResponseTemplate::new(200).set_body_json(json!({
                    "id": path, "name": path.rsplit('/').next(), "type": "Microsoft.Maintenance/maintenanceConfigurations", "location": "westeurope",
                    "properties": { "maintenanceScope": "InGuestPatch", "maintenanceWindow": { "startDateTime": "2026-01-01 22:00", "duration": "02:00", "timeZone": "UTC", "recurEvery": "1Month Second Tuesday" },
                        "installPatches": { "rebootSetting": "IfRequired",
                            "windowsParameters": { "classificationsToInclude": ["Critical", "Security"], "kbNumbersToInclude": [], "kbNumbersToExclude": [] },
                            "linuxParameters": { "classificationsToInclude": ["Critical", "Security"], "packageNameMasksToInclude": [], "packageNameMasksToExclude": [] } } } }))
            }
            _ => error(404, "ResourceNotFound", "the fake ARM does not serve this"),
        }
    }
}
