//! A loopback fake of the ARM calls patchwatch makes around a run, built from
//! azure-contracts §1.6 and §7.1 and the Compute REST spec:
//! - `PUT {run id}?api-version=2023-09-01-preview` with `{"properties":{"status":"Cancel"}}` → 200, status `Cancelled`;
//! - `POST {vm}/start`, `…/deallocate`, `…/powerOff` (api-version 2024-07-01) → 202 with `Azure-AsyncOperation`;
//! - `POST {machine}/installPatches` → 202 with `Location` and `Retry-After`; the Location answers
//!   202 once, then 200 with the result body;
//! - `GET {maintenance configuration}?api-version=2023-04-01` → the configuration.
//! - `PUT {resource group}/providers/Microsoft.AlertsManagement/actionRules/{name}?api-version=2021-08-08`
//!   (alert processing rules, `AlertProcessingRules.json`): the body is checked against the spec
//!   (location, scopes in the rule's own subscription, actions from the enum, schedule times
//!   without an offset) → 201 when created, 200 when replaced, the rule echoed with its id;
//! - `DELETE` of such a rule → 200, or 204 when there is no such rule.
//!
//! Every call needs `Authorization: Bearer fake-token` and is recorded.

use std::{
    collections::{HashMap, VecDeque},
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
    /// Alert processing rules that exist, by lower-cased path.
    pub action_rules: Arc<Mutex<HashMap<String, Value>>>,
    /// Statuses the next alert processing rule PUTs or DELETEs answer (one each) before they work.
    pub action_rule_failures: Arc<Mutex<VecDeque<u16>>>,
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

/// `2021-04-15T18:00:00`: the spec's pattern for schedule times (no offset).
fn schedule_time(v: &Value) -> bool {
    let Some(t) = v.as_str() else { return false };
    let (main, fraction) = t.split_once('.').unwrap_or((t, "0"));
    let shape = main.len() == 19
        && main.char_indices().all(|(i, c)| match i {
            4 | 7 => c == '-',
            10 => c == 'T',
            13 | 16 => c == ':',
            _ => c.is_ascii_digit(),
        });
    shape && !fraction.is_empty() && fraction.bytes().all(|b| b.is_ascii_digit())
}

impl FakeArm {
    fn action_rule(&self, method: &str, path: &str, api_version: &str, body: &Value) -> ResponseTemplate {
        if api_version != "2021-08-08" {
            return error(400, "InvalidApiVersion", "unsupported api-version");
        }
        let key = path.to_ascii_lowercase();
        if let Some(status) = self.action_rule_failures.lock().unwrap().pop_front() {
            return match status {
                403 => error(
                    403,
                    "AuthorizationFailed",
                    "The client does not have authorization to perform action 'Microsoft.AlertsManagement/actionRules/write'.",
                ),
                404 => error(
                    404,
                    "ResourceNotFound",
                    "The Resource 'Microsoft.AlertsManagement/actionRules' was not found.",
                ),
                429 => error(429, "TooManyRequests", "throttled").insert_header("retry-after", "1"),
                s => error(s, "InternalServerError", "try again"),
            };
        }
        if method == "DELETE" {
            return match self.action_rules.lock().unwrap().remove(&key) {
                Some(_) => ResponseTemplate::new(200),
                None => ResponseTemplate::new(204),
            };
        }
        let subscription = key.split('/').nth(2).unwrap_or_default().to_owned();
        let p = &body["properties"];
        let scopes = p["scopes"].as_array().cloned().unwrap_or_default();
        let problems = [
            (body["location"].as_str().is_none(), "location is required"),
            (scopes.is_empty(), "properties.scopes is required"),
            (
                scopes.iter().any(|s| {
                    s.as_str().is_none_or(|s| s.to_ascii_lowercase().split('/').nth(2) != Some(subscription.as_str()))
                }),
                "a scope is outside the rule's subscription",
            ),
            (
                !p["actions"].as_array().is_some_and(|a| {
                    !a.is_empty()
                        && a.iter().all(|x| {
                            matches!(x["actionType"].as_str(), Some("AddActionGroups" | "RemoveAllActionGroups"))
                        })
                }),
                "properties.actions must name actionType AddActionGroups or RemoveAllActionGroups",
            ),
            (
                !p["schedule"].is_null()
                    && !(schedule_time(&p["schedule"]["effectiveFrom"])
                        && (p["schedule"]["effectiveUntil"].is_null()
                            || schedule_time(&p["schedule"]["effectiveUntil"]))),
                "schedule times must be yyyy-MM-ddTHH:mm:ss without an offset",
            ),
        ];
        if let Some((_, why)) = problems.iter().find(|(bad, _)| *bad) {
            return error(400, "InvalidRequestContent", why);
        }
        let mut rule = body.clone();
        rule["id"] = json!(path);
        rule["type"] = json!("Microsoft.AlertsManagement/actionRules");
        rule["name"] = json!(path.rsplit('/').next());
        let existed = self.action_rules.lock().unwrap().insert(key, rule.clone()).is_some();
        ResponseTemplate::new(if existed { 200 } else { 201 }).set_body_json(rule)
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
            "PUT" | "DELETE" if lower.contains("/providers/microsoft.alertsmanagement/actionrules/") => {
                self.action_rule(&method, &path, &api_version, &body)
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
