//! A loopback fake of Azure Resource Graph built from the REST contract (azure-contracts §4.4):
//! it serves a snapshot's tables as `objectArray` pages with `$skipToken`, and a fixed-token
//! credential.

use std::{collections::HashMap, sync::Arc, time::Duration};

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use patchwatch_azure::resource_graph::ResourceGraphClient;
use patchwatch_azure::resource_graph::ResourceGraphOptions;
use patchwatch_engine::source::RunDataSource;
use serde_json::{Value, json};
use time::OffsetDateTime;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers};

/// A credential that hands out `fake-token`.
#[derive(Debug)]
pub struct FakeCredential;

#[async_trait::async_trait]
impl TokenCredential for FakeCredential {
    async fn get_token(&self, scopes: &[&str], _: Option<TokenRequestOptions<'_>>) -> azure_core::Result<AccessToken> {
        assert_eq!(scopes, ["https://management.azure.com/.default"], "exactly one ARM scope");
        Ok(AccessToken::new("fake-token", OffsetDateTime::now_utc() + time::Duration::hours(1)))
    }
}

/// Serves snapshot tables in pages of `page` rows.
pub struct FakeGraph {
    tables: HashMap<String, Vec<Value>>,
    page: usize,
}

impl FakeGraph {
    pub fn from_snapshot(text: &str, page: usize) -> Self {
        let v: HashMap<String, Vec<Value>> = serde_json::from_str(text).unwrap();
        Self { tables: v, page }
    }
}

impl Respond for FakeGraph {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body: Value = match serde_json::from_slice(&req.body) {
            Ok(b) => b,
            Err(_) => {
                return ResponseTemplate::new(400)
                    .set_body_json(json!({"error": {"code": "BadRequest", "message": "body"}}));
            }
        };
        let query = body["query"].as_str().unwrap_or_default();
        let table = query.split_whitespace().next().unwrap_or_default().to_owned();
        let offset = body["options"]["$skipToken"]
            .as_str()
            .and_then(|t| t.strip_prefix(&format!("{table}:")))
            .and_then(|o| o.parse::<usize>().ok())
            .unwrap_or(0);
        let mut rows = self.tables.get(&table).cloned().unwrap_or_default();
        // The machines query joins each machine's tags from `resources` (leftouter on the id).
        if query.contains("join kind=leftouter") && query.contains("machineTags") {
            let tags: HashMap<String, Value> = self
                .tables
                .get("resources")
                .into_iter()
                .flatten()
                .map(|r| (r["id"].as_str().unwrap_or_default().to_lowercase(), r["tags"].clone()))
                .collect();
            for row in &mut rows {
                let machine = row["properties"]["resourceId"].as_str().unwrap_or_default().to_lowercase();
                row["machineTags"] = tags.get(&machine).cloned().unwrap_or(Value::Null);
            }
        }
        let end = (offset + self.page).min(rows.len());
        let data: Vec<Value> = rows[offset.min(end)..end].to_vec();
        let mut answer = json!({
            "totalRecords": rows.len(), "count": data.len(), "resultTruncated": "false", "facets": [], "data": data
        });
        if end < rows.len() {
            answer["$skipToken"] = json!(format!("{table}:{end}"));
        }
        ResponseTemplate::new(200).set_body_json(answer)
    }
}

/// Mounts `responder` as the Resource Graph query endpoint, requiring the documented contract.
pub async fn mount(server: &MockServer, responder: impl Respond + 'static) {
    Mock::given(matchers::method("POST"))
        .and(matchers::path("/providers/Microsoft.ResourceGraph/resources"))
        .and(matchers::query_param("api-version", "2024-04-01"))
        .and(matchers::header("authorization", "Bearer fake-token"))
        .and(matchers::header("content-type", "application/json"))
        .respond_with(responder)
        .mount(server)
        .await;
}

/// A run-data source querying `server` with the fake credential.
pub fn source(server: &MockServer, max_throttle_wait: Duration) -> RunDataSource {
    let options = ResourceGraphOptions { max_throttle_wait, ..Default::default() };
    RunDataSource::ResourceGraph(Arc::new(ResourceGraphClient::new(
        server.uri().parse().unwrap(),
        Arc::new(FakeCredential),
        options,
    )))
}
