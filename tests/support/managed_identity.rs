//! Loopback fakes for a process that authenticates with an App Service managed identity
//! (azure-contracts §6.1) and calls ARM with the token it got:
//! - [`Identity`]: `GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=…` with
//!   `X-IDENTITY-HEADER: {IDENTITY_HEADER}` → `{access_token, expires_on (a string), …}`;
//!   anything else → 400.
//! - [`TokenArm`]: ARM that accepts exactly `Authorization: Bearer {one of those tokens}` (401 otherwise)
//!   and serves Resource Graph (a snapshot's tables), action groups (`2023-01-01`) and VM / Arc
//!   `installPatches` (202 + `Location`, then 200 with the result). Every call is recorded.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers};

use crate::graph::FakeGraph;

/// The managed-identity token endpoint: one token per user-assigned identity (`client_id`).
pub struct Identity {
    pub server: MockServer,
    header: String,
}

impl Identity {
    /// Serves `(client id, token)` pairs to callers that present `header`.
    pub async fn start(header: &str, tokens: &[(String, String)]) -> Self {
        let server = MockServer::start().await;
        let expires = (time::OffsetDateTime::now_utc().unix_timestamp() + 3600).to_string();
        for (client_id, token) in tokens {
            Mock::given(matchers::method("GET"))
                .and(matchers::path("/msi/token"))
                .and(matchers::query_param("api-version", "2019-08-01"))
                .and(matchers::query_param("resource", "https://management.azure.com"))
                .and(matchers::query_param("client_id", client_id.as_str()))
                .and(matchers::header("x-identity-header", header))
                .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                    "access_token": token, "expires_on": expires, "token_type": "Bearer",
                    "resource": "https://management.azure.com", "client_id": client_id
                })))
                .with_priority(1)
                .mount(&server)
                .await;
        }
        Mock::given(matchers::any())
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({
                "error": "invalid_request", "error_description": "not the documented request" })))
            .with_priority(10)
            .mount(&server)
            .await;
        Self { server, header: header.to_owned() }
    }

    /// `IDENTITY_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("{}/msi/token", self.server.uri())
    }

    /// Client ids of the token requests that carried the right header (the ones answered).
    pub async fn served(&self) -> Vec<String> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.headers.get("x-identity-header").is_some_and(|v| v.as_bytes() == self.header.as_bytes()))
            .filter_map(|r| r.url.query_pairs().find(|(k, _)| k == "client_id").map(|(_, v)| v.into_owned()))
            .collect()
    }

    /// Every request, answered or not.
    pub async fn requests(&self) -> usize {
        self.server.received_requests().await.unwrap_or_default().len()
    }
}

/// One ARM call.
#[derive(Clone, Debug)]
pub struct ArmCall {
    pub method: String,
    pub path: String,
    /// Which of the tokens the bearer was, exactly (`None`: refused with 401).
    pub token: Option<usize>,
    pub body: Vec<u8>,
}

/// ARM and Resource Graph behind the managed identities' bearer tokens.
#[derive(Clone)]
pub struct TokenArm {
    tokens: Arc<Vec<String>>,
    base: String,
    graph: Arc<FakeGraph>,
    /// Lower-cased resource path → the resource ARM returns for it.
    resources: Arc<HashMap<String, Value>>,
    calls: Arc<Mutex<Vec<ArmCall>>>,
    operations: Arc<Mutex<HashMap<String, u32>>>,
}

impl TokenArm {
    /// Starts the fake accepting `tokens`: `snapshot` is the JSON text of ARG tables,
    /// `resources` are ARM resources by id (action groups).
    pub async fn start(tokens: Vec<String>, snapshot: &str, resources: Vec<(String, Value)>) -> (MockServer, TokenArm) {
        let server = MockServer::start().await;
        let arm = TokenArm {
            tokens: Arc::new(tokens),
            base: server.uri(),
            graph: Arc::new(FakeGraph::from_snapshot(snapshot, 50)),
            resources: Arc::new(resources.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect()),
            calls: Arc::default(),
            operations: Arc::default(),
        };
        Mock::given(matchers::any()).respond_with(arm.clone()).mount(&server).await;
        (server, arm)
    }

    pub fn calls(&self) -> Vec<ArmCall> {
        self.calls.lock().unwrap().clone()
    }

    /// Authorized calls whose method matches and whose path contains `fragment` (case-insensitive).
    pub fn authorized(&self, method: &str, fragment: &str) -> usize {
        let fragment = fragment.to_ascii_lowercase();
        self.calls()
            .iter()
            .filter(|c| c.token.is_some() && c.method == method && c.path.to_ascii_lowercase().contains(&fragment))
            .count()
    }

    /// Authorized calls made with token `index`.
    pub fn with_token(&self, index: usize) -> Vec<ArmCall> {
        self.calls().into_iter().filter(|c| c.token == Some(index)).collect()
    }
}

fn error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({ "error": { "code": code, "message": message } }))
}

impl Respond for TokenArm {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let given = req.headers.get("authorization").map(|v| v.as_bytes().to_vec()).unwrap_or_default();
        let token = self.tokens.iter().position(|t| given == format!("Bearer {t}").into_bytes());
        let path = req.url.path().to_owned();
        let lower = path.to_ascii_lowercase();
        let method = req.method.as_str().to_owned();
        self.calls.lock().unwrap().push(ArmCall {
            method: method.clone(),
            path: path.clone(),
            token,
            body: req.body.clone(),
        });
        if token.is_none() {
            return error(401, "InvalidAuthenticationToken", "The access token is invalid.");
        }
        let api_version =
            req.url.query_pairs().find(|(k, _)| k == "api-version").map(|(_, v)| v.into_owned()).unwrap_or_default();
        match method.as_str() {
            "POST" if lower == "/providers/microsoft.resourcegraph/resources" => {
                if api_version != "2024-04-01" {
                    return error(400, "InvalidApiVersion", "unsupported api-version");
                }
                self.graph.respond(req)
            }
            "GET" if self.resources.contains_key(&lower) => {
                ResponseTemplate::new(200).set_body_json(self.resources[&lower].clone())
            }
            "POST" if lower.ends_with("/installpatches") => {
                let arc = lower.contains("/providers/microsoft.hybridcompute/machines/");
                let wanted = if arc { "2020-08-15-preview" } else { "2024-07-01" };
                let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
                if api_version != wanted || body["maximumDuration"].as_str().is_none() {
                    return error(400, "InvalidParameter", "maximumDuration and the api-version are required");
                }
                let mut ops = self.operations.lock().unwrap();
                let op = format!("op-{}", ops.len() + 1);
                ops.insert(op.clone(), 0);
                ResponseTemplate::new(202)
                    .insert_header(
                        "location",
                        format!(
                            "{}/providers/Microsoft.Compute/locations/westeurope/operations/{op}?api-version=2024-07-01",
                            self.base
                        ),
                    )
                    .insert_header("retry-after", "0")
            }
            "GET" if lower.contains("/locations/westeurope/operations/") => {
                let op = path.rsplit('/').next().unwrap_or_default().to_owned();
                let mut ops = self.operations.lock().unwrap();
                let Some(polls) = ops.get_mut(&op) else { return error(404, "NotFound", "no such operation") };
                *polls += 1;
                ResponseTemplate::new(200).set_body_json(json!({
                    "status": "Succeeded", "installationActivityId": format!("act-{op}"), "rebootStatus": "Completed",
                    "maintenanceWindowExceeded": false, "excludedPatchCount": 0, "notSelectedPatchCount": 0,
                    "pendingPatchCount": 0, "installedPatchCount": 1, "failedPatchCount": 0,
                    "startDateTime": "2026-11-12T09:00:00Z", "error": null,
                    "patches": [{ "patchId": "p1", "name": "2023-11 Cumulative Update (KB5031364)", "kbId": "5031364",
                                  "classifications": ["Security"], "installationState": "Installed" }] }))
            }
            _ => error(404, "ResourceNotFound", "the fake ARM does not serve this"),
        }
    }
}
