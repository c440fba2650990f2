//! Azure Resource Graph over REST (azure-contracts §4.4): paged with `$skipToken`, scoped to
//! subscriptions in groups, throttling honoured through `Retry-After` and `x-ms-user-quota-*`.
//!
//! Calls go through reqwest with our own bearer header rather than azure_core's pipeline, whose
//! bearer policy refuses plain-http endpoints (and so every loopback fake).

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use azure_core::credentials::TokenCredential;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::{debug, warn};

use crate::http::{AzureError, default_http_client, quota_remaining, quota_resets_after, retry_after, status_error};
use url::Url;

use patchwatch_model::rundata::{
    RunData, RunQuery, SucceededGroup,
    rows::{Row, RunCollector, Table, normalise_run_id, parse_time},
    snapshot::RowSink,
};

pub const API_VERSION: &str = "2024-04-01";
/// ARG's maximum page size.
const PAGE_SIZE: u32 = 1000;
/// Microsoft recommends fewer than 300 subscriptions per query.
const SUBSCRIPTIONS_PER_QUERY: usize = 250;
/// A fleet load (the weekly digest's timer) may take minutes; an event's run load may not.
const FLEET_LOAD_BUDGET: Duration = Duration::from_secs(600);
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
    /// The longest a run load may take, paging and waits included; past it the load stops and
    /// hands back its progress (an event's delivery must answer within the host's deadline).
    pub load_budget: Duration,
    pub http: reqwest::Client,
}

impl Default for ResourceGraphOptions {
    fn default() -> Self {
        Self {
            scope: crate::DEFAULT_ARM_SCOPE.to_owned(),
            max_throttle_wait: Duration::from_secs(20),
            load_budget: Duration::from_secs(20),
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

    /// Loads one run, continuing from `resume` (the progress an interrupted load of the same
    /// queries saved). A post event's machines that simply succeeded are counted by Resource
    /// Graph (one row per subscription, resource group and tag set); only the other machines,
    /// their failed patches and their power state or agent status come back row by row, so the
    /// number of queries does not grow with the run. The whole load, paging and throttling waits
    /// included, stops at [`ResourceGraphOptions::load_budget`]: what was read is handed back in
    /// [`Interrupted::progress`] for the next delivery to continue from.
    pub async fn load_run(&self, query: &RunQuery, resume: Option<LoadProgress>) -> Result<RunData, Interrupted> {
        // A resumed load keeps its cutoff (and so its exact queries); a fresh one starts now.
        let resumed = resume.and_then(|p| {
            let plan = run_plan(query, p.cutoff.as_deref()?);
            (p.fingerprint == plan_fingerprint(&plan, &query.subscription_ids)).then_some((plan, p))
        });
        let (plan, mut progress) = resumed.unwrap_or_else(|| {
            let cutoff = time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            let plan = run_plan(query, &cutoff);
            let fingerprint = plan_fingerprint(&plan, &query.subscription_ids);
            let progress =
                LoadProgress { fingerprint, cutoff: Some(cutoff), pages: Vec::new(), kept_bytes: 0, resumable: true };
            (plan, progress)
        });
        let mut collector = RunCollector::for_query(query);
        // Pages a previous delivery read are applied again from the saved text, never re-read.
        for page in &progress.pages {
            let part = plan.get(page.query).map(|(part, _)| *part).unwrap_or(RunPart::Listed);
            apply_page(part, page.body.as_bytes(), &mut collector).map_err(Interrupted::fresh)?;
        }
        let deadline = Instant::now() + self.options.load_budget;
        let mut budget = self.options.max_throttle_wait;
        let groups = subscription_groups(&query.subscription_ids);
        let (first_query, first_group, mut token) = progress.position();
        for (qi, (part, text)) in plan.iter().enumerate().skip(first_query) {
            let skip_groups = if qi == first_query { first_group } else { 0 };
            for (gi, group) in groups.iter().enumerate().skip(skip_groups) {
                let mut skip_token = if qi == first_query && gi == first_group { token.take() } else { None };
                let mut page = 0u32;
                loop {
                    if Instant::now() >= deadline {
                        let spent = self.options.load_budget;
                        return Err(Interrupted { error: AzureError::Unfinished { spent }, progress });
                    }
                    let body = request_body(text, group, skip_token.as_deref());
                    let bytes = match self.post_bytes(&body, &mut budget, deadline).await {
                        Ok(b) => b,
                        Err(error) => return Err(Interrupted { error, progress }),
                    };
                    let next = match apply_page(*part, &bytes, &mut collector) {
                        Ok(next) => next,
                        Err(error) => return Err(Interrupted { error, progress }),
                    };
                    page += 1;
                    debug!(part = part.name(), page, "Resource Graph page read.");
                    if page >= MAX_PAGES {
                        let error = AzureError::Decode(format!("{} needed more than {MAX_PAGES} pages", part.name()));
                        return Err(Interrupted { error, progress });
                    }
                    // Checked before the page is kept: a truncated or looping answer is never
                    // saved as read, so no later delivery summarises it.
                    let token = next.token.clone();
                    match next_skip_token(part.name(), skip_token.as_deref(), next) {
                        Ok(next_token) => {
                            progress.keep(qi, gi, &bytes, token);
                            match next_token {
                                Some(t) => skip_token = Some(t),
                                None => break,
                            }
                        }
                        Err(error) => return Err(Interrupted { error, progress }),
                    }
                }
            }
        }
        Ok(collector.finish())
    }

    /// Loads the fleet into `sink`: machines with their patch settings, maintenance
    /// configurations, assignments and dynamic scopes, assessments with pending critical and
    /// security patches, and the runs Resource Graph still holds (about 30 days).
    pub async fn load_fleet<S: RowSink<Row: serde::de::DeserializeOwned>>(
        &self,
        sink: &mut S,
    ) -> Result<(), AzureError> {
        // The fleet is read by a timer with minutes to spare, not within an event's delivery.
        let deadline = Instant::now() + FLEET_LOAD_BUDGET;
        let mut load = Load { subscriptions: &[], collector: sink, budget: self.options.max_throttle_wait, deadline };
        for (_, table, query) in fleet_queries() {
            self.run_query(&mut load, table, &query).await?;
        }
        Ok(())
    }

    /// Runs `query` over each group of the load's subscriptions, every page into its collector.
    async fn run_query<S: RowSink<Row: serde::de::DeserializeOwned>>(
        &self,
        load: &mut Load<'_, S>,
        table: Table,
        query: &str,
    ) -> Result<(), AzureError> {
        for group in subscription_groups(load.subscriptions) {
            let mut skip_token: Option<String> = None;
            let mut page = 0u32;
            loop {
                let body = request_body(query, group, skip_token.as_deref());
                let bytes = self.post_bytes(&body, &mut load.budget, load.deadline).await?;
                let response: QueryResponse<S::Row> =
                    serde_json::from_slice(&bytes).map_err(|e| AzureError::Decode(e.to_string()))?;
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
                let end = PageEnd::new(response.skip_token, response.result_truncated);
                match next_skip_token(table.name(), skip_token.as_deref(), end)? {
                    Some(token) => skip_token = Some(token),
                    None => break,
                }
            }
        }
        Ok(())
    }

    /// One POST, retried on throttling and transient server errors within `budget`, and never
    /// waiting past `deadline`; the answer's bytes.
    async fn post_bytes(
        &self,
        body: &serde_json::Value,
        budget: &mut Duration,
        deadline: Instant,
    ) -> Result<Vec<u8>, AzureError> {
        let mut server_errors = 0;
        // A wait that would end past the deadline is not started: the load stops now instead.
        let within = |wait: Duration| Instant::now() + wait < deadline;
        loop {
            let token = self
                .credential
                .get_token(&[self.options.scope.as_str()], None)
                .await
                .map_err(AzureError::Credential)?;
            // Nothing is sent, or waited for, past the deadline (a slow token, a slow answer).
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(AzureError::Unfinished { spent: self.options.load_budget });
            }
            let send = self.options.http.post(self.url.clone()).bearer_auth(token.token.secret()).json(body).send();
            let response = tokio::time::timeout(left, send)
                .await
                .map_err(|_| AzureError::Unfinished { spent: self.options.load_budget })??;
            let status = response.status();
            let headers = response.headers().clone();
            if status == StatusCode::TOO_MANY_REQUESTS {
                let wait = retry_after(&headers, MAX_RETRY_AFTER).unwrap_or(Duration::from_secs(5));
                spend(budget, wait).filter(|()| within(wait)).ok_or(AzureError::Throttled { retry_after: wait })?;
                warn!(wait_ms = wait.as_millis() as u64, "Resource Graph throttled the query; waiting.");
                tokio::time::sleep(wait).await;
                continue;
            }
            if status.is_server_error() && server_errors < 2 {
                server_errors += 1;
                let wait = Duration::from_millis(500 * server_errors);
                if within(wait) && spend(budget, wait).is_some() {
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
                spend(budget, wait).filter(|()| within(wait)).ok_or(AzureError::Throttled { retry_after: wait })?;
                debug!(wait_ms = wait.as_millis() as u64, "Resource Graph quota spent; waiting for reset.");
                tokio::time::sleep(wait).await;
            }
            return Ok(bytes.to_vec());
        }
    }
}

/// One run's load in progress: the subscriptions it covers, the rows collected so far, and the
/// throttling wait it may still spend (shared by all its queries).
struct Load<'a, S> {
    subscriptions: &'a [String],
    collector: S,
    budget: Duration,
    deadline: Instant,
}

/// Every query the client sends, built by the same builders with realistic arguments, for
/// tests/kql.rs to check with Microsoft's KQL parser (tests/resource_graph_eval.rs checks the
/// queries a fake Resource Graph actually received). A new query builder gets an entry (or
/// several, one per shape it can take).
pub fn queries_for_check() -> Vec<(&'static str, String)> {
    let group = "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg/providers";
    let correlation_id = format!(
        "{group}/microsoft.maintenance/maintenanceconfigurations/mc\
         /providers/microsoft.maintenance/applyupdates/20261110220000"
    );
    let watched = RunQuery {
        correlation_id: correlation_id.clone(),
        include_results: true,
        watch: vec![format!("{group}/microsoft.compute/virtualmachines/vm-1")],
        ..RunQuery::default()
    };
    let post = RunQuery { watch: Vec::new(), ..watched.clone() };
    let pre = RunQuery { include_results: false, ..post.clone() };
    let mut out: Vec<(&'static str, String)> = Vec::new();
    for (label, query) in [("post", &post), ("post, watching", &watched), ("pre", &pre)] {
        for (part, text) in run_plan(query, "2026-11-11T01:00:00Z") {
            let name: &'static str = match (label, part) {
                ("pre", _) => "pre: run machines",
                ("post", RunPart::Succeeded) => "post: succeeded machine counts",
                ("post", RunPart::Listed) => "post: run machines",
                ("post", RunPart::Unlisted) => "post: unlisted results",
                ("post", RunPart::FailedPatches) => "post: failed patches",
                (_, RunPart::Succeeded) => "watching: succeeded machine counts",
                (_, RunPart::Listed) => "watching: run machines",
                (_, RunPart::Unlisted) => "watching: unlisted results",
                (_, RunPart::FailedPatches) => "watching: failed patches",
            };
            out.push((name, text));
        }
    }
    out.extend(fleet_queries().into_iter().map(|(name, _, q)| (name, q)));
    out
}

/// One query of a run load: what its rows are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RunPart {
    /// Counts of the machines that simply succeeded, per subscription, resource group and tags.
    Succeeded,
    /// One row per other machine of the run: its `applyupdates` row, with its result, tags and
    /// `resources` row (power state, agent status) joined on.
    Listed,
    /// Results of this run from machines its list does not name, with the same columns joined on.
    Unlisted,
    /// Failed patch rows of the listed machines' results.
    FailedPatches,
}

impl RunPart {
    fn name(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded machine counts",
            Self::Listed => "run machines",
            Self::Unlisted => "unlisted results",
            Self::FailedPatches => "failed patches",
        }
    }
}

/// The queries of one run's load, in order: a pre event needs only the machines (every one is
/// listed, with its power state), a post event also counts and reads results and patches.
///
/// Results modified after `cutoff` (when the load started) are left out of every query, so the
/// counts and the lists read the same results even when one lands between two queries, or
/// between a stopped load and the delivery that continues it.
fn run_plan(query: &RunQuery, cutoff: &str) -> Vec<(RunPart, String)> {
    let run = normalise_run_id(&query.correlation_id);
    if !query.include_results {
        return vec![(RunPart::Listed, machines_query(&run))];
    }
    let watch: Vec<String> = query.watch.iter().map(|id| id.to_ascii_lowercase()).collect();
    let results = run_results(&run, cutoff);
    vec![
        (RunPart::Succeeded, succeeded_counts_query(&run, &results, &watch)),
        (RunPart::Listed, listed_machines_query(&run, &results, &watch)),
        (RunPart::Unlisted, unlisted_results_query(&run, &results)),
        (RunPart::FailedPatches, failed_patches_query(&results, &watch)),
    ]
}

/// The run's machine list (`applyupdates` rows by correlation id), one row per machine, with the
/// machine id lower-cased in `machineId` and its name as listed in `machineName`. A row without
/// `resourceId` names the machine it hangs under, as the row parser reads it.
fn machine_list(run: &str) -> String {
    format!(
        "maintenanceresources\n\
         | where type =~ 'microsoft.maintenance/applyupdates'\n\
         | where tolower(tostring(properties.correlationId)) == {run}\n\
         | extend machineRef = iff(isempty(tostring(properties.resourceId)), substring(id, 0, indexof(tolower(id), '/providers/microsoft.maintenance/applyupdates')), tostring(properties.resourceId))\n\
         | extend machineId = tolower(machineRef)\n\
         | where machineId contains '/providers/microsoft.compute/virtualmachines/' or machineId contains '/providers/microsoft.hybridcompute/machines/'",
        run = kql_string(run)
    )
}

/// The run's installation results, the latest per machine, with `simplySucceeded` computed by
/// the rules of `patchwatch_model::summary::result_outcome` (status Succeeded, no failed patch,
/// within the window, no reboot pending): keep the two in step.
fn run_results(run: &str, cutoff: &str) -> String {
    format!(
        "patchinstallationresources\n\
         | where type endswith '/patchinstallationresults'\n\
         | where tolower(tostring(properties.maintenanceRunId)) == {run}\n\
         | extend machineId = tolower(substring(id, 0, indexof(tolower(id), '/patchinstallationresults/')))\n\
         | extend modified = todatetime(properties.lastModifiedDateTime)\n\
         | where isnull(modified) or modified <= todatetime({cutoff})\n\
         | summarize arg_max(modified, *) by machineId\n\
         | extend simplySucceeded = tolower(tostring(properties.status)) == 'succeeded' and coalesce(toint(properties.failedPatchCount), 0) == 0 and not(coalesce(tobool(properties.maintenanceWindowExceeded), false)) and tolower(tostring(properties.rebootStatus)) !in ('required', 'failed')",
        run = kql_string(run),
        cutoff = kql_string(cutoff),
    )
}

/// Machines (`resources`) by lower-cased id: their tags, and the columns the row parser reads
/// for power state, OS and Arc agent status (not the whole, much larger, `properties`).
const MACHINE_COLUMNS: &str = "resources\n\
    | where type in~ ('microsoft.compute/virtualmachines', 'microsoft.hybridcompute/machines')\n\
    | project machineId = tolower(id), machineTags = tags, machine = pack('id', id, 'type', type, 'properties', pack('extended', pack('instanceView', pack('powerState', properties.extended.instanceView.powerState)), 'storageProfile', pack('osDisk', pack('osType', properties.storageProfile.osDisk.osType)), 'osType', properties.osType, 'osName', properties.osName, 'status', properties.status))";

/// The watched machines' ids as KQL literals, `'a', 'b'`.
fn id_list(watch: &[String]) -> String {
    watch.iter().map(|id| kql_string(id)).collect::<Vec<_>>().join(", ")
}

/// `and machineId !in (…)` for the watched machines, or nothing.
fn not_watched(watch: &[String]) -> String {
    if watch.is_empty() { String::new() } else { format!(" and machineId !in ({})", id_list(watch)) }
}

/// Keeps the machines a summary lists: without a result, not simply succeeded, or watched.
fn listed_only(watch: &[String]) -> String {
    let listed = "| where isnull(simplySucceeded) or not(simplySucceeded)";
    if watch.is_empty() { listed.to_owned() } else { format!("{listed} or machineId in ({})", id_list(watch)) }
}

/// The `applyupdates` columns the row parser reads (not the whole `properties`): a 50,000-machine
/// pre event's pages stay small enough to keep as progress.
const LIST_PROPERTIES: &str =
    "properties = pack('correlationId', properties.correlationId, 'resourceId', properties.resourceId)";

/// A pre event's machines: every one, with its tags and power state or agent status.
fn machines_query(run: &str) -> String {
    format!(
        "{list}\n\
         | join kind=leftouter ({MACHINE_COLUMNS}) on machineId\n\
         | project id, type, resourceGroup, {LIST_PROPERTIES}, machineTags, machine\n\
         | order by id asc",
        list = machine_list(run)
    )
}

/// The machines that simply succeeded, counted server-side per subscription, resource group and
/// tag set, with their earliest start, latest finish and longest install (seconds, zero-padded,
/// then the name: the greatest string is the longest install, ties to the greatest name).
fn succeeded_counts_query(run: &str, results: &str, watch: &[String]) -> String {
    format!(
        "{list}\n\
         | project machineId, machineName = tostring(split(machineRef, '/')[8])\n\
         | summarize machineName = min(machineName) by machineId\n\
         | join kind=inner ({results}\n| where simplySucceeded{not_watched}\n| project machineId, started = todatetime(properties.startDateTime), finished = todatetime(properties.lastModifiedDateTime)) on machineId\n\
         | join kind=leftouter ({MACHINE_COLUMNS}\n| project machineId, machineTags) on machineId\n\
         | extend seconds = datetime_diff('second', finished, started)\n\
         | extend longest = iff(isnull(seconds) or seconds < 0, '', strcat(tostring(10000000000 + seconds), '/', machineName))\n\
         | summarize machines = count(), firstStart = min(started), lastFinish = max(finished), longest = max(longest) by subscription = tostring(split(machineId, '/')[2]), rg = tostring(split(machineId, '/')[4]), tagSet = tostring(machineTags)\n\
         | order by subscription asc, rg asc, tagSet asc",
        list = machine_list(run),
        not_watched = not_watched(watch),
    )
}

/// One row per machine that did not simply succeed (or is watched), including machines without
/// a result, with the result, tags and machine columns joined on.
fn listed_machines_query(run: &str, results: &str, watch: &[String]) -> String {
    let keep = listed_only(watch);
    format!(
        "{list}\n\
         | join kind=leftouter ({results}\n| project machineId, simplySucceeded, result = pack('id', id, 'type', type, 'resourceGroup', resourceGroup, 'properties', properties)) on machineId\n\
         {keep}\n\
         | join kind=leftouter ({MACHINE_COLUMNS}) on machineId\n\
         | project id, type, resourceGroup, {LIST_PROPERTIES}, machineTags, machine, result\n\
         | order by id asc",
        list = machine_list(run),
    )
}

/// Results of this run from machines its list does not name (shown, flagged), whatever they say.
fn unlisted_results_query(run: &str, results: &str) -> String {
    format!(
        "{results}\n\
         | join kind=leftouter ({list}\n| project machineId, listed = true) on machineId\n\
         | where isnull(listed)\n\
         | join kind=leftouter ({MACHINE_COLUMNS}) on machineId\n\
         | project id, type, resourceGroup, properties, machineTags, machine\n\
         | order by id asc",
        list = machine_list(run),
    )
}

/// Failed patch rows under this run's results that are listed (not simply succeeded, or
/// watched): patch rows carry no run id, so they are matched to the results by id.
fn failed_patches_query(results: &str, watch: &[String]) -> String {
    let keep = listed_only(watch);
    format!(
        "patchinstallationresources\n\
         | where type endswith '/patchinstallationresults/softwarepatches'\n\
         | where properties.installationState =~ 'Failed'\n\
         | extend resultId = tolower(substring(id, 0, indexof(tolower(id), '/softwarepatches/')))\n\
         | join kind=inner ({results}\n{keep}\n| project resultId = tolower(id)) on resultId\n\
         | project id, type, properties\n\
         | order by id asc",
    )
}

/// Subscriptions in groups of at most [`SUBSCRIPTIONS_PER_QUERY`]; none: one query over all the
/// credential can read.
fn subscription_groups(subscriptions: &[String]) -> Vec<&[String]> {
    if subscriptions.is_empty() { vec![&[]] } else { subscriptions.chunks(SUBSCRIPTIONS_PER_QUERY).collect() }
}

/// Identifies a plan: saved progress is used only by a load of exactly the same queries.
fn plan_fingerprint(plan: &[(RunPart, String)], subscriptions: &[String]) -> String {
    let mut text = String::new();
    for (_, q) in plan {
        text.push_str(q);
        text.push('\u{1}');
    }
    text.push_str(&subscriptions.join(","));
    format!("{:016x}", patchwatch_model::text::fnv64(&text))
}

/// How a page ended: the token of the next one, and whether the answer was truncated.
#[derive(Debug, Default)]
struct PageEnd {
    token: Option<String>,
    truncated: bool,
}

impl PageEnd {
    fn new(token: Option<String>, truncated: Option<String>) -> Self {
        Self { token, truncated: truncated.is_some_and(|t| t.eq_ignore_ascii_case("true")) }
    }
}

/// A row of [`RunPart::Succeeded`].
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SucceededRow {
    #[serde(default)]
    subscription: String,
    #[serde(default)]
    rg: String,
    #[serde(default)]
    tag_set: Option<String>,
    #[serde(default, deserialize_with = "patchwatch_model::rundata::rows::lenient_u32")]
    machines: Option<u32>,
    #[serde(default)]
    first_start: Option<String>,
    #[serde(default)]
    last_finish: Option<String>,
    #[serde(default)]
    longest: Option<String>,
}

impl SucceededRow {
    fn into_group(self) -> Result<SucceededGroup, AzureError> {
        let tags: BTreeMap<String, String> = match self.tag_set.as_deref().map(str::trim) {
            None | Some("") | Some("null") => BTreeMap::new(),
            Some(text) => serde_json::from_str::<BTreeMap<String, serde_json::Value>>(text)
                .map_err(|e| AzureError::Decode(format!("succeeded machine counts: tagSet: {e}")))?
                .into_iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_owned())))
                .collect(),
        };
        // `10000000000 + seconds` then `/name`: see `succeeded_counts_query`.
        let longest_install = self.longest.as_deref().and_then(|l| {
            let (seconds, name) = l.split_once('/')?;
            Some((seconds.parse::<i64>().ok()? - 10_000_000_000, name.to_owned()))
        });
        Ok(SucceededGroup {
            subscription_id: self.subscription.to_ascii_lowercase(),
            resource_group: self.rg.to_ascii_lowercase(),
            tags: Arc::new(tags),
            count: self.machines.unwrap_or(0) as usize,
            first_start: parse_time(self.first_start.as_ref()),
            last_finish: parse_time(self.last_finish.as_ref()),
            longest_install,
        })
    }
}

/// Feeds one page of `part` into the collector; how the page ended.
fn apply_page(part: RunPart, bytes: &[u8], collector: &mut RunCollector) -> Result<PageEnd, AzureError> {
    let decode = |e: serde_json::Error| AzureError::Decode(format!("{}: {e}", part.name()));
    if part == RunPart::Succeeded {
        let page: QueryResponse<SucceededRow> = serde_json::from_slice(bytes).map_err(decode)?;
        for row in page.data {
            collector.accept_group(row.into_group()?);
        }
        return Ok(PageEnd::new(page.skip_token, page.result_truncated));
    }
    let page: QueryResponse<Row> = serde_json::from_slice(bytes).map_err(decode)?;
    let table = match part {
        RunPart::Listed => Table::MaintenanceResources,
        _ => Table::PatchInstallationResources,
    };
    for row in page.data {
        collector.accept(table, row);
    }
    Ok(PageEnd::new(page.skip_token, page.result_truncated))
}

/// What an interrupted run load had read: the text of every page, in order, with where each
/// one ended. Kept in `PATCHWATCH_STATE` by the caller, so the next delivery goes on from the
/// next page instead of starting over.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct LoadProgress {
    /// The plan these pages belong to (the queries and subscriptions, hashed).
    pub fingerprint: String,
    /// When the load started: results modified later are left out of every query.
    #[serde(default)]
    pub cutoff: Option<String>,
    pub pages: Vec<SavedPage>,
    #[serde(default)]
    kept_bytes: usize,
    /// False once the pages grew past [`MAX_KEPT_BYTES`]: such a load starts over.
    #[serde(default = "yes")]
    pub resumable: bool,
}

fn yes() -> bool {
    true
}

/// One page read: its query and subscription group, the skip token of the page after it, and
/// the answer's text.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct SavedPage {
    pub query: usize,
    pub group: usize,
    pub next: Option<String>,
    pub body: String,
}

/// Saved pages stop being kept past this size (a pre event of a very large run): such a load
/// starts over rather than writing hundreds of MB of progress.
const MAX_KEPT_BYTES: usize = 128 << 20;

impl LoadProgress {
    fn keep(&mut self, query: usize, group: usize, body: &[u8], next: Option<String>) {
        if !self.resumable {
            return;
        }
        self.kept_bytes += body.len();
        if self.kept_bytes > MAX_KEPT_BYTES {
            self.resumable = false;
            self.pages.clear();
            return;
        }
        self.pages.push(SavedPage { query, group, next, body: String::from_utf8_lossy(body).into_owned() });
    }

    /// Where to go on: the query, subscription group and skip token after the last saved page.
    fn position(&self) -> (usize, usize, Option<String>) {
        match self.pages.last() {
            None => (0, 0, None),
            Some(p) if p.next.as_deref().is_some_and(|t| !t.is_empty()) => (p.query, p.group, p.next.clone()),
            Some(p) => (p.query, p.group + 1, None),
        }
    }

    /// Pages read so far.
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }
}

/// A run load that stopped: why, and what it had read.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct Interrupted {
    pub error: AzureError,
    pub progress: LoadProgress,
}

impl Interrupted {
    /// A failure with nothing worth keeping.
    fn fresh(error: AzureError) -> Self {
        Self { error, progress: LoadProgress::default() }
    }
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
fn next_skip_token(what: &str, previous: Option<&str>, end: PageEnd) -> Result<Option<String>, AzureError> {
    let PageEnd { token, truncated } = end;
    match token.filter(|t| !t.is_empty()) {
        Some(token) if previous == Some(token.as_str()) => {
            Err(AzureError::Decode("Resource Graph returned the same skip token twice".to_owned()))
        }
        Some(token) => Ok(Some(token)),
        None if truncated => Err(AzureError::Decode(format!("{what} answer truncated without a skip token"))),
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
