//! A fixed-token credential for loopback fakes of Azure, and the pattern-matching Resource Graph
//! responder that only the managed-identity fake ([`crate::managed_identity::TokenArm`]) still
//! uses. Run-data tests use the evaluating fake ([`crate::graph_eval`]) instead: this one does not
//! evaluate the queries, so it cannot answer the run plan's summarised and joined queries.

use std::collections::HashMap;

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use serde_json::{Value, json};
use time::OffsetDateTime;
use wiremock::{Request, Respond, ResponseTemplate};

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
        let rows: Vec<&Value> = self.tables.get(&table).into_iter().flatten().filter(|r| keeps(query, r)).collect();
        let end = (offset + self.page).min(rows.len());
        let mut data: Vec<Value> = rows[offset.min(end)..end].iter().map(|r| (*r).clone()).collect();
        // The machines query joins each machine's tags from `resources` (leftouter on the id).
        if query.contains("join kind=leftouter") && query.contains("machineTags") {
            let tags: HashMap<String, Value> = self
                .tables
                .get("resources")
                .into_iter()
                .flatten()
                .map(|r| (r["id"].as_str().unwrap_or_default().to_lowercase(), r["tags"].clone()))
                .collect();
            for row in &mut data {
                let machine = row["properties"]["resourceId"].as_str().unwrap_or_default().to_lowercase();
                row["machineTags"] = tags.get(&machine).cloned().unwrap_or(Value::Null);
            }
        }
        let mut answer = json!({
            "totalRecords": rows.len(), "count": data.len(), "resultTruncated": "false", "facets": [], "data": data
        });
        if end < rows.len() {
            answer["$skipToken"] = json!(format!("{table}:{end}"));
        }
        ResponseTemplate::new(200).set_body_json(answer)
    }
}

/// The first filters of patchwatch's queries, applied the way ARG would: the row `type`
/// (`=~`, `endswith`, `in~`) and a run's correlation or maintenance run id (`==`). Anything
/// else passes: the client's own parser must drop rows it does not read.
fn keeps(query: &str, row: &Value) -> bool {
    // Filters of a joined table apply to that table, not to these rows.
    let query = query.split("| join").next().unwrap_or(query);
    let kind = row["type"].as_str().unwrap_or_default().to_ascii_lowercase();
    let literal = |after: &str| -> Option<String> {
        let rest = query.split(after).nth(1)?.trim_start();
        let rest = rest.strip_prefix('\'')?;
        Some(rest[..rest.find('\'')?].to_ascii_lowercase())
    };
    if literal("where type =~").is_some_and(|t| kind != t) {
        return false;
    }
    if literal("where type endswith").is_some_and(|t| !kind.ends_with(&t)) {
        return false;
    }
    if let Some(list) = query.split("where type in~ (").nth(1).and_then(|r| r.split(')').next()) {
        let allowed: Vec<String> = list.split(',').map(|t| t.trim().trim_matches('\'').to_ascii_lowercase()).collect();
        if !allowed.contains(&kind) {
            return false;
        }
    }
    for field in ["correlationId", "maintenanceRunId"] {
        if let Some(want) = literal(&format!("tolower(tostring(properties.{field})) ==")) {
            let have = row["properties"][field].as_str().unwrap_or_default().trim_end_matches('/').to_ascii_lowercase();
            if have != want {
                return false;
            }
        }
    }
    true
}
