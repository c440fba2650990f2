//! Azure Resource Graph over REST (azure-contracts §4.4): paged with `$skipToken`, scoped to
//! subscriptions in groups, throttling honoured through `Retry-After` and `x-ms-user-quota-*`.
//!
//! Calls go through reqwest with our own bearer header rather than azure_core's pipeline, whose
//! bearer policy refuses plain-http endpoints (and so every loopback fake).

use std::{sync::Arc, time::Duration};

use azure_core::credentials::TokenCredential;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use tracing::{debug, warn};

use crate::http::{AzureError, default_http_client, quota_remaining, quota_resets_after, retry_after, status_error};
use url::Url;

use patchwatch_model::rundata::{
    RunData, RunQuery,
    rows::{RunCollector, Table, normalise_run_id},
    snapshot::RowSink,
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
/// Resource Graph may ask for a long wait when a quota is spent.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

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
            scope: crate::DEFAULT_ARM_SCOPE.to_owned(),
            max_throttle_wait: Duration::from_secs(20),
            http: default_http_client(),
        }
    }
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
#[serde(bound = "R: serde::de::DeserializeOwned")]
struct QueryResponse<R> {
    #[serde(default = "Vec::new")]
    data: Vec<R>,
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
    pub async fn load_run(&self, query: &RunQuery) -> Result<RunData, AzureError> {
        let run = normalise_run_id(&query.correlation_id);
        let mut load = Load {
            subscriptions: &query.subscription_ids,
            collector: RunCollector::new(&query.correlation_id),
            budget: self.options.max_throttle_wait,
        };
        self.run_query(&mut load, Table::MaintenanceResources, &run_machines_query(&run)).await?;
        if query.include_results {
            self.run_query(&mut load, Table::PatchInstallationResources, &run_results_query(&run)).await?;
            let patches = failed_patches_query(query.since);
            self.run_query(&mut load, Table::PatchInstallationResources, &patches).await?;
        }
        // Power state and agent status explain missing results (and, before a run, machines that
        // will not be patched); look up only the machines without a result.
        let reported: std::collections::HashSet<&String> = load.collector.result_keys().collect();
        let missing: Vec<String> = load
            .collector
            .expected_ids()
            .filter(|id| !reported.contains(id))
            .take(MAX_MACHINE_LOOKUPS)
            .cloned()
            .collect();
        if !missing.is_empty() {
            self.run_query(&mut load, Table::Resources, &machine_lookup_query(&missing)).await?;
        }
        Ok(load.collector.finish())
    }

    /// Loads the fleet into `sink`: machines with their patch settings, maintenance
    /// configurations, assignments and dynamic scopes, assessments with pending critical and
    /// security patches, and the runs Resource Graph still holds (about 30 days).
    pub async fn load_fleet<S: RowSink>(&self, sink: &mut S) -> Result<(), AzureError> {
        let mut load = Load { subscriptions: &[], collector: sink, budget: self.options.max_throttle_wait };
        for (_, table, query) in fleet_queries() {
            self.run_query(&mut load, table, &query).await?;
        }
        Ok(())
    }

    /// Runs `query` over each group of the load's subscriptions, every page into its collector.
    async fn run_query<S: RowSink>(&self, load: &mut Load<'_, S>, table: Table, query: &str) -> Result<(), AzureError> {
        let groups: Vec<&[String]> = if load.subscriptions.is_empty() {
            vec![&[]]
        } else {
            load.subscriptions.chunks(SUBSCRIPTIONS_PER_QUERY).collect()
        };
        for group in groups {
            let mut skip_token: Option<String> = None;
            let mut page = 0u32;
            loop {
                let body = request_body(query, group, skip_token.as_deref());
                let response: QueryResponse<S::Row> = self.post(&body, &mut load.budget).await?;
                page += 1;
                let rows = response.data.len();
                // Each sink keeps only the row types it reads (the run's collector, machines only).
                for row in response.data {
                    load.collector.accept(table, row);
                }
                debug!(table = table.name(), page, rows, "Resource Graph page read.");
                if page >= MAX_PAGES {
                    return Err(AzureError::Decode(format!("{} needed more than {MAX_PAGES} pages", table.name())));
                }
                match next_skip_token(table, skip_token.as_deref(), response.skip_token, response.result_truncated)? {
                    Some(token) => skip_token = Some(token),
                    None => break,
                }
            }
        }
        Ok(())
    }

    /// One POST, retried on throttling and transient server errors within `budget`.
    async fn post<R: serde::de::DeserializeOwned>(
        &self,
        body: &serde_json::Value,
        budget: &mut Duration,
    ) -> Result<QueryResponse<R>, AzureError> {
        let mut server_errors = 0;
        loop {
            let token = self
                .credential
                .get_token(&[self.options.scope.as_str()], None)
                .await
                .map_err(AzureError::Credential)?;
            let response =
                self.options.http.post(self.url.clone()).bearer_auth(token.token.secret()).json(body).send().await?;
            let status = response.status();
            let headers = response.headers().clone();
            if status == StatusCode::TOO_MANY_REQUESTS {
                let wait = retry_after(&headers, MAX_RETRY_AFTER).unwrap_or(Duration::from_secs(5));
                spend(budget, wait).ok_or(AzureError::Throttled { retry_after: wait })?;
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
                spend(budget, wait).ok_or(AzureError::Throttled { retry_after: wait })?;
                debug!(wait_ms = wait.as_millis() as u64, "Resource Graph quota spent; waiting for reset.");
                tokio::time::sleep(wait).await;
            }
            return serde_json::from_slice(&bytes).map_err(|e| AzureError::Decode(e.to_string()));
        }
    }
}

/// One run's load in progress: the subscriptions it covers, the rows collected so far, and the
/// throttling wait it may still spend (shared by all its queries).
struct Load<'a, S> {
    subscriptions: &'a [String],
    collector: S,
    budget: Duration,
}

/// Every query the client sends, built by the same builders with realistic arguments, for
/// tests/kql.rs to check with Microsoft's KQL parser. Every query the client sends must be listed
/// here: a new query builder gets an entry (or several, one per shape it can take).
pub fn queries_for_check() -> Vec<(&'static str, String)> {
    let group = "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg/providers";
    let run = normalise_run_id(&format!(
        "{group}/microsoft.maintenance/maintenanceconfigurations/mc\
         /providers/microsoft.maintenance/applyupdates/20261110220000"
    ));
    let machines = [
        format!("{group}/microsoft.compute/virtualmachines/vm-1"),
        format!("{group}/microsoft.hybridcompute/machines/arc-1"),
    ];
    // 2026-11-10T22:00:00Z, the sample run's start.
    let since = time::OffsetDateTime::from_unix_timestamp(1_794_348_000).ok();
    vec![
        ("run machines", run_machines_query(&run)),
        ("run results", run_results_query(&run)),
        ("failed patches since the run", failed_patches_query(since)),
        ("failed patches without a start time", failed_patches_query(None)),
        ("machine lookup", machine_lookup_query(&machines)),
    ]
    .into_iter()
    .chain(fleet_queries().into_iter().map(|(name, _, q)| (name, q)))
    .collect()
}

/// A run's machines: its `applyupdates` rows, found by correlation id (`run`, normalised). Each
/// machine's tags come along through one join, so routes can match and split by tag without a
/// query per machine.
fn run_machines_query(run: &str) -> String {
    let run = kql_string(run);
    format!(
        "maintenanceresources\n| where type =~ 'microsoft.maintenance/applyupdates'\n| where tolower(tostring(properties.correlationId)) == {run}\n\
         | extend machineId = tolower(tostring(properties.resourceId))\n\
         | join kind=leftouter (resources | where type in~ ('microsoft.compute/virtualmachines', 'microsoft.hybridcompute/machines') | project machineId = tolower(id), machineTags = tags) on machineId\n\
         | project id, name, type, subscriptionId, resourceGroup, properties, machineTags\n| order by id asc"
    )
}

/// A run's installation results, by maintenance run id (`run`, normalised).
fn run_results_query(run: &str) -> String {
    let run = kql_string(run);
    format!(
        "patchinstallationresources\n| where type endswith '/patchinstallationresults'\n| where tolower(tostring(properties.maintenanceRunId)) == {run}\n| order by id asc"
    )
}

/// The given machines (resource ids) in `resources`: their power state and agent status.
fn machine_lookup_query(ids: &[String]) -> String {
    let ids = ids.iter().map(|id| kql_string(id)).collect::<Vec<_>>().join(", ");
    format!(
        "resources\n| where type in~ ('microsoft.compute/virtualmachines', 'microsoft.hybridcompute/machines')\n| where tolower(id) in ({ids})\n| order by id asc"
    )
}

/// The queries of a fleet load, in order. Unprojected rows, so live data and snapshots go
/// through one parser; filtered server-side to the rows the fleet reads.
pub fn fleet_queries() -> Vec<(&'static str, Table, String)> {
    let q = |name: &'static str, table: Table, text: &str| (name, table, text.to_owned());
    vec![
        q(
            "fleet machines and configurations",
            Table::Resources,
            "resources\n| where type in~ ('microsoft.compute/virtualmachines', 'microsoft.hybridcompute/machines', 'microsoft.maintenance/maintenanceconfigurations')\n| project id, name, type, subscriptionId, resourceGroup, location, tags, properties\n| order by id asc",
        ),
        q(
            "fleet assignments and dynamic scopes",
            Table::MaintenanceResources,
            "maintenanceresources\n| where type =~ 'microsoft.maintenance/configurationassignments'\n| project id, name, type, subscriptionId, resourceGroup, location, properties\n| order by id asc",
        ),
        q(
            "fleet assessments",
            Table::PatchAssessmentResources,
            "patchassessmentresources\n| where type endswith '/patchassessmentresults'\n| project id, name, type, subscriptionId, resourceGroup, properties\n| order by id asc",
        ),
        q(
            "fleet pending critical and security patches",
            Table::PatchAssessmentResources,
            "patchassessmentresources\n| where type endswith '/patchassessmentresults/softwarepatches'\n| where tostring(properties.classifications) has 'Critical' or tostring(properties.classifications) has 'Security'\n| project id, name, type, properties\n| order by id asc",
        ),
        q(
            "fleet runs",
            Table::MaintenanceResources,
            "maintenanceresources\n| where type =~ 'microsoft.maintenance/applyupdates'\n| where isnotempty(tostring(properties.correlationId))\n| project id, name, type, properties\n| order by id asc",
        ),
        q(
            "fleet installation results",
            Table::PatchInstallationResources,
            "patchinstallationresources\n| where type endswith '/patchinstallationresults'\n| where isnotempty(tostring(properties.maintenanceRunId))\n| project id, name, type, properties\n| order by id asc",
        ),
        q(
            "fleet failed patches",
            Table::PatchInstallationResources,
            "patchinstallationresources\n| where type endswith '/patchinstallationresults/softwarepatches'\n| where properties.installationState =~ 'Failed'\n| project id, name, type, properties\n| order by id asc",
        ),
    ]
}

/// Failed patches modified since a day before the run (or ever, without a start time). Patch
/// rows do not carry the run id; they are matched to this run's results by id.
fn failed_patches_query(since: Option<time::OffsetDateTime>) -> String {
    let since = since
        .map(|t| t - time::Duration::days(1))
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned());
    format!(
        "patchinstallationresources\n| where type endswith '/patchinstallationresults/softwarepatches'\n| where properties.installationState =~ 'Failed'\n| where isnull(todatetime(properties.lastModifiedDateTime)) or todatetime(properties.lastModifiedDateTime) >= todatetime({})\n| order by id asc",
        kql_string(&since)
    )
}

/// The POST body for one page: the query, paging options, and the subscription group (none: all
/// the credential can read).
fn request_body(query: &str, group: &[String], skip_token: Option<&str>) -> serde_json::Value {
    let mut options = json!({ "$top": PAGE_SIZE, "resultFormat": "objectArray" });
    if let Some(token) = skip_token {
        options["$skipToken"] = json!(token);
    }
    let mut body = json!({ "query": query, "options": options });
    if !group.is_empty() {
        body["subscriptions"] = json!(group);
    }
    body
}

/// The token for the next page, `None` after the last one. A repeated token would loop forever,
/// and a truncated answer without a way to page on is partial data: both are errors, never summarised.
fn next_skip_token(
    table: Table,
    previous: Option<&str>,
    token: Option<String>,
    truncated: Option<String>,
) -> Result<Option<String>, AzureError> {
    match token.filter(|t| !t.is_empty()) {
        Some(token) if previous == Some(token.as_str()) => {
            Err(AzureError::Decode("Resource Graph returned the same skip token twice".to_owned()))
        }
        Some(token) => Ok(Some(token)),
        None if truncated.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("true")) => {
            Err(AzureError::Decode(format!("{} answer truncated without a skip token", table.name())))
        }
        None => Ok(None),
    }
}

fn spend(budget: &mut Duration, wait: Duration) -> Option<()> {
    *budget = budget.checked_sub(wait)?;
    Some(())
}

/// A KQL string literal. Resource ids are data, not query text.
fn kql_string(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
mod tests {
    use super::*;

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
