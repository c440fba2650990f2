//! Azure Resource Graph over REST (azure-contracts §4.4): paged with `$skipToken`, scoped to
//! subscriptions in groups, throttling honoured through `Retry-After` and `x-ms-user-quota-*`.
//!
//! Calls go through reqwest with our own bearer header rather than azure_core's pipeline, whose
//! bearer policy refuses plain-http endpoints (and so every loopback fake).

use std::{sync::Arc, time::Duration};

use azure_core::credentials::TokenCredential;
use reqwest::{StatusCode, header::HeaderMap};
use serde::Deserialize;
use serde_json::json;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use tracing::{debug, warn};
use url::Url;

use patchwatch_model::rundata::{
    RunData, RunQuery,
    rows::{Row, RunCollector, Table, is_machine_type, normalise_run_id},
};

pub const API_VERSION: &str = "2024-04-01";
/// ARG's maximum page size.
const PAGE_SIZE: u32 = 1000;
/// Microsoft recommends fewer than 300 subscriptions per query.
const SUBSCRIPTIONS_PER_QUERY: usize = 250;
/// Machines without a result are looked up in `resources` (power state, agent status) up to this many.
const MAX_MACHINE_LOOKUPS: usize = 500;
/// 1,000 pages of 1,000 rows: far beyond any tenant's run, short of an endless loop.
const MAX_PAGES: u32 = 1000;

/// Why a Resource Graph call failed.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("could not get an Azure token: {0}")]
    Credential(azure_core::Error),
    #[error("Azure request failed: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("Azure answered {status} {code}: {message}")]
    Status { status: u16, code: String, message: String },
    #[error("Azure is throttling this identity; retry after {retry_after:?}")]
    Throttled { retry_after: Duration },
    #[error("Azure's response could not be read: {0}")]
    Decode(String),
}

impl GraphError {
    /// How long to wait before the whole event is worth trying again.
    pub fn retry_after(&self) -> Duration {
        match self {
            Self::Throttled { retry_after } => *retry_after,
            Self::Status { status: 401 | 403, .. } => Duration::from_secs(300),
            Self::Credential(_) => Duration::from_secs(60),
            _ => Duration::from_secs(30),
        }
    }
}

/// Options with defaults that suit a Functions invocation.
#[derive(Clone, Debug)]
pub struct ResourceGraphOptions {
    pub scope: String,
    /// The longest a single load may sleep on throttling before giving up with "retry later".
    pub max_throttle_wait: Duration,
    pub http: reqwest::Client,
}

impl Default for ResourceGraphOptions {
    fn default() -> Self {
        Self {
            scope: patchwatch_engine::config::DEFAULT_ARM_SCOPE.to_owned(),
            max_throttle_wait: Duration::from_secs(20),
            http: default_http_client(),
        }
    }
}

/// A reqwest client with bounded timeouts, shared by every outbound Azure call.
pub fn default_http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("patchwatch/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

pub struct ResourceGraphClient {
    url: Url,
    endpoint: Url,
    credential: Arc<dyn TokenCredential>,
    options: ResourceGraphOptions,
}

impl std::fmt::Debug for ResourceGraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceGraphClient").field("endpoint", &self.endpoint.as_str()).finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct QueryResponse {
    #[serde(default)]
    data: Vec<Row>,
    #[serde(rename = "$skipToken", default)]
    skip_token: Option<String>,
    #[serde(rename = "resultTruncated", default)]
    result_truncated: Option<String>,
}

impl ResourceGraphClient {
    pub fn new(endpoint: Url, credential: Arc<dyn TokenCredential>, options: ResourceGraphOptions) -> Self {
        let mut url = endpoint.clone();
        url.set_path(&format!("{}/providers/Microsoft.ResourceGraph/resources", endpoint.path().trim_end_matches('/')));
        url.set_query(Some(&format!("api-version={API_VERSION}")));
        Self { url, endpoint, credential, options }
    }

    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str()
    }

    /// Loads one run: its machines, and for post events their results and failed patches.
    pub async fn load_run(&self, query: &RunQuery) -> Result<RunData, GraphError> {
        let run = kql_string(&normalise_run_id(&query.correlation_id));
        let mut collector = RunCollector::new(&query.correlation_id);
        let mut budget = self.options.max_throttle_wait;
        // Each machine's tags come along through one join, so routes can match and split by tag
        // without a query per machine.
        let machines = format!(
            "maintenanceresources\n| where type =~ 'microsoft.maintenance/applyupdates'\n| where tolower(tostring(properties.correlationId)) == {run}\n\
             | extend machineId = tolower(tostring(properties.resourceId))\n\
             | join kind=leftouter (resources | where type in~ ('microsoft.compute/virtualmachines', 'microsoft.hybridcompute/machines') | project machineId = tolower(id), machineTags = tags) on machineId\n\
             | project id, name, type, subscriptionId, resourceGroup, properties, machineTags\n| order by id asc"
        );
        self.run_query(Table::MaintenanceResources, &machines, &query.subscription_ids, &mut collector, &mut budget)
            .await?;
        if query.include_results {
            let results = format!(
                "patchinstallationresources\n| where type endswith '/patchinstallationresults'\n| where tolower(tostring(properties.maintenanceRunId)) == {run}\n| order by id asc"
            );
            self.run_query(
                Table::PatchInstallationResources,
                &results,
                &query.subscription_ids,
                &mut collector,
                &mut budget,
            )
            .await?;
            // Patch rows do not carry the run id; they are matched to this run's results by id.
            // Only failed rows modified since a day before the run can belong to it.
            let since = query
                .since
                .map(|t| t - time::Duration::days(1))
                .and_then(|t| t.format(&Rfc3339).ok())
                .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned());
            let patches = format!(
                "patchinstallationresources\n| where type endswith '/patchinstallationresults/softwarepatches'\n| where properties.installationState =~ 'Failed'\n| where isnull(todatetime(properties.lastModifiedDateTime)) or todatetime(properties.lastModifiedDateTime) >= todatetime({})\n| order by id asc",
                kql_string(&since)
            );
            self.run_query(
                Table::PatchInstallationResources,
                &patches,
                &query.subscription_ids,
                &mut collector,
                &mut budget,
            )
            .await?;
        }
        // Power state and agent status explain missing results (and, before a run, machines that
        // will not be patched); look up only the machines without a result.
        let reported: std::collections::HashSet<&String> = collector.result_keys().collect();
        let missing: Vec<String> =
            collector.expected_ids().filter(|id| !reported.contains(id)).take(MAX_MACHINE_LOOKUPS).cloned().collect();
        if !missing.is_empty() {
            let ids = missing.iter().map(|id| kql_string(id)).collect::<Vec<_>>().join(", ");
            let lookup = format!(
                "resources\n| where type in~ ('microsoft.compute/virtualmachines', 'microsoft.hybridcompute/machines')\n| where tolower(id) in ({ids})\n| order by id asc"
            );
            self.run_query(Table::Resources, &lookup, &query.subscription_ids, &mut collector, &mut budget).await?;
        }
        Ok(collector.finish())
    }

    async fn run_query(
        &self,
        table: Table,
        query: &str,
        subscriptions: &[String],
        collector: &mut RunCollector,
        budget: &mut Duration,
    ) -> Result<(), GraphError> {
        let groups: Vec<&[String]> =
            if subscriptions.is_empty() { vec![&[]] } else { subscriptions.chunks(SUBSCRIPTIONS_PER_QUERY).collect() };
        for group in groups {
            let mut skip_token: Option<String> = None;
            let mut page = 0u32;
            loop {
                let mut options = json!({ "$top": PAGE_SIZE, "resultFormat": "objectArray" });
                if let Some(token) = &skip_token {
                    options["$skipToken"] = json!(token);
                }
                let mut body = json!({ "query": query, "options": options });
                if !group.is_empty() {
                    body["subscriptions"] = json!(group);
                }
                let response = self.post(&body, budget).await?;
                page += 1;
                let rows = response.data.len();
                for row in response.data {
                    if table != Table::Resources || is_machine_type(&row.kind.to_ascii_lowercase()) {
                        collector.accept(table, row);
                    }
                }
                debug!(table = table.name(), page, rows, "Resource Graph page read.");
                if page >= MAX_PAGES {
                    return Err(GraphError::Decode(format!("{} needed more than {MAX_PAGES} pages", table.name())));
                }
                match response.skip_token.filter(|t| !t.is_empty()) {
                    Some(token) if skip_token.as_ref() == Some(&token) => {
                        return Err(GraphError::Decode("Resource Graph returned the same skip token twice".to_owned()));
                    }
                    Some(token) => skip_token = Some(token),
                    None => {
                        // A truncated answer without a way to page on is partial data: never summarise it.
                        if response.result_truncated.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("true")) {
                            return Err(GraphError::Decode(format!(
                                "{} answer truncated without a skip token",
                                table.name()
                            )));
                        }
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// One POST, retried on throttling and transient server errors within `budget`.
    async fn post(&self, body: &serde_json::Value, budget: &mut Duration) -> Result<QueryResponse, GraphError> {
        let mut server_errors = 0;
        loop {
            let token = self
                .credential
                .get_token(&[self.options.scope.as_str()], None)
                .await
                .map_err(GraphError::Credential)?;
            let response =
                self.options.http.post(self.url.clone()).bearer_auth(token.token.secret()).json(body).send().await?;
            let status = response.status();
            let headers = response.headers().clone();
            if status == StatusCode::TOO_MANY_REQUESTS {
                let wait = retry_after(&headers).unwrap_or(Duration::from_secs(5));
                spend(budget, wait).ok_or(GraphError::Throttled { retry_after: wait })?;
                warn!(wait_ms = wait.as_millis() as u64, "Resource Graph throttled the query; waiting.");
                tokio::time::sleep(wait).await;
                continue;
            }
            if status.is_server_error() && server_errors < 2 {
                server_errors += 1;
                let wait = Duration::from_millis(500 * server_errors);
                if spend(budget, wait).is_some() {
                    warn!(status = status.as_u16(), "Resource Graph server error; retrying.");
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
            let bytes = response.bytes().await?;
            if !status.is_success() {
                return Err(status_error(status, &bytes));
            }
            // Quota spent: wait for the window to reset before the next page instead of being refused.
            if quota_remaining(&headers) == Some(0) {
                let wait = quota_resets_after(&headers).unwrap_or(Duration::from_secs(5));
                spend(budget, wait).ok_or(GraphError::Throttled { retry_after: wait })?;
                debug!(wait_ms = wait.as_millis() as u64, "Resource Graph quota spent; waiting for reset.");
                tokio::time::sleep(wait).await;
            }
            return serde_json::from_slice(&bytes).map_err(|e| GraphError::Decode(e.to_string()));
        }
    }
}

fn spend(budget: &mut Duration, wait: Duration) -> Option<()> {
    *budget = budget.checked_sub(wait)?;
    Some(())
}

pub(crate) fn status_error(status: StatusCode, bytes: &[u8]) -> GraphError {
    #[derive(Deserialize)]
    struct Envelope {
        error: ErrorBody,
    }
    #[derive(Deserialize)]
    struct ErrorBody {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let (code, message) = match serde_json::from_slice::<Envelope>(bytes) {
        Ok(e) => (e.error.code, e.error.message),
        Err(_) => (String::new(), String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned()),
    };
    GraphError::Status { status: status.as_u16(), code, message }
}

/// `Retry-After` in seconds (the HTTP-date form is turned into a wait too).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs.min(3600)));
    }
    let when = OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()?;
    let secs = (when - OffsetDateTime::now_utc()).whole_seconds().clamp(0, 3600);
    Some(Duration::from_secs(secs.unsigned_abs()))
}

fn quota_remaining(headers: &HeaderMap) -> Option<u64> {
    headers.get("x-ms-user-quota-remaining")?.to_str().ok()?.trim().parse().ok()
}

/// `x-ms-user-quota-resets-after` is `hh:mm:ss`.
fn quota_resets_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get("x-ms-user-quota-resets-after")?.to_str().ok()?;
    let mut secs = 0f64;
    for part in v.trim().split(':') {
        secs = secs * 60.0 + part.parse::<f64>().ok()?;
    }
    secs.is_finite().then(|| Duration::from_secs_f64(secs.clamp(0.0, 3600.0)))
}

/// A KQL string literal. Resource ids are data, not query text.
fn kql_string(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_headers_parse() {
        let mut h = HeaderMap::new();
        h.insert("x-ms-user-quota-remaining", "0".parse().unwrap());
        h.insert("x-ms-user-quota-resets-after", "00:00:03".parse().unwrap());
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(quota_remaining(&h), Some(0));
        assert_eq!(quota_resets_after(&h), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
    }

    #[test]
    fn kql_strings_are_escaped() {
        assert_eq!(kql_string("a'b\\c"), "'a\\'b\\\\c'");
    }

    #[test]
    fn throttle_budget_is_bounded() {
        let mut b = Duration::from_secs(5);
        assert!(spend(&mut b, Duration::from_secs(3)).is_some());
        assert!(spend(&mut b, Duration::from_secs(3)).is_none());
    }
}
