//! ARG rows to a [`Fleet`]. The same sink takes rows from a snapshot file and from live Resource
//! Graph pages, so both go through one parser. It keeps only what the lint and the digest read.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
};

use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;

use patchwatch_model::rundata::{
    rows::{Extended, StorageProfile, Table, lenient_bool, lenient_u32, parent_of, parse_time},
    snapshot::RowSink,
};

use crate::inventory::{
    Assessment, Configuration, DynamicScope, Fleet, Machine, MachineKind, MaintenanceWindow, OsType, PastOutcome,
    PastRun, PendingPatch, ScopeFilter, StaticAssignment, TagOperator,
};

const APPLY_UPDATES: &str = "/providers/microsoft.maintenance/applyupdates";
const ASSIGNMENTS: &str = "/providers/microsoft.maintenance/configurationassignments/";

/// One ARG row as the fleet reads it; unknown columns are skipped without being materialised.
#[derive(Debug, Deserialize)]
pub struct FleetRow {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, rename = "subscriptionId")]
    subscription_id: Option<String>,
    #[serde(default, rename = "resourceGroup")]
    resource_group: Option<String>,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    tags: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    properties: Props,
}

/// The union of the `properties` fields the fleet reads across row types.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Props {
    os_profile: Option<OsProfile>,
    storage_profile: Option<StorageProfile>,
    extended: Option<Extended>,
    os_type: Option<String>,
    os_name: Option<String>,
    status: Option<String>,
    maintenance_scope: Option<String>,
    maintenance_window: Option<WindowProps>,
    install_patches: Option<InstallPatches>,
    maintenance_configuration_id: Option<String>,
    resource_id: Option<String>,
    filter: Option<FilterProps>,
    correlation_id: Option<String>,
    maintenance_run_id: Option<String>,
    start_date_time: Option<String>,
    last_modified_date_time: Option<String>,
    #[serde(deserialize_with = "lenient_bool")]
    maintenance_window_exceeded: Option<bool>,
    #[serde(deserialize_with = "lenient_u32")]
    failed_patch_count: Option<u32>,
    #[serde(deserialize_with = "lenient_bool")]
    reboot_pending: Option<bool>,
    available_patch_count_by_classification: Option<BTreeMap<String, Value>>,
    installation_state: Option<String>,
    patch_name: Option<String>,
    #[serde(alias = "Kbid", alias = "kbid", alias = "KBId")]
    kb_id: Option<String>,
    version: Option<String>,
    classifications: Option<Value>,
    msrc_severity: Option<String>,
    published_date_time: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct OsProfile {
    windows_configuration: Option<OsConfiguration>,
    linux_configuration: Option<OsConfiguration>,
}
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct OsConfiguration {
    patch_settings: Option<PatchSettings>,
}
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct PatchSettings {
    patch_mode: Option<String>,
    assessment_mode: Option<String>,
    automatic_by_platform_settings: Option<PlatformSettings>,
}
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct PlatformSettings {
    #[serde(deserialize_with = "lenient_bool")]
    bypass_platform_safety_checks_on_user_schedule: Option<bool>,
}
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct WindowProps {
    start_date_time: Option<String>,
    expiration_date_time: Option<String>,
    duration: Option<String>,
    time_zone: Option<String>,
    recur_every: Option<String>,
}
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct InstallPatches {
    reboot_setting: Option<String>,
    windows_parameters: Option<PatchParameters>,
    linux_parameters: Option<PatchParameters>,
}
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct PatchParameters {
    classifications_to_include: Option<Vec<String>>,
    kb_numbers_to_include: Option<Vec<String>>,
    kb_numbers_to_exclude: Option<Vec<String>>,
    package_name_masks_to_include: Option<Vec<String>>,
    package_name_masks_to_exclude: Option<Vec<String>>,
}
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct FilterProps {
    resource_types: Option<Vec<String>>,
    resource_groups: Option<Vec<String>>,
    locations: Option<Vec<String>>,
    os_types: Option<Vec<String>>,
    tag_settings: Option<TagSettings>,
}
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct TagSettings {
    tags: Option<BTreeMap<String, Value>>,
    filter_operator: Option<String>,
}

/// One run being assembled from its `applyupdates` and result rows.
#[derive(Debug, Default)]
struct RunAcc {
    configuration: String,
    expected: Vec<Arc<str>>,
    results: HashMap<Arc<str>, ResultAcc>,
}

#[derive(Debug)]
struct ResultAcc {
    outcome: PastOutcome,
    minutes: Option<u32>,
    last_modified: Option<OffsetDateTime>,
}

/// Collects a [`Fleet`] from ARG rows of any table, in any order.
#[derive(Debug, Default)]
pub struct FleetCollector {
    fleet: Fleet,
    runs: HashMap<String, RunAcc>,
    /// Failed patch keys by lower-cased installation result id (a set: a row seen twice counts once).
    failed_by_result: HashMap<String, std::collections::BTreeSet<String>>,
    /// Run id of each installation result that reported failed patches.
    result_run: HashMap<String, String>,
    /// One copy of each machine id the runs name (a fleet's runs name each machine many times).
    interned: HashSet<Arc<str>>,
    /// The newest timestamp seen: a snapshot is judged as of the moment it was taken.
    newest: Option<OffsetDateTime>,
    pub rows_seen: u64,
}

impl RowSink for FleetCollector {
    type Row = FleetRow;
    type Context = ();
    fn context(&self) {}
    fn parse(_: &(), _: Table, bytes: &[u8]) -> serde_json::Result<Option<FleetRow>> {
        serde_json::from_slice(bytes).map(Some)
    }
    fn accept(&mut self, table: Table, mut row: FleetRow) {
        self.rows_seen += 1;
        let mut kind = std::mem::take(&mut row.kind);
        kind.make_ascii_lowercase();
        match (table, kind.as_str()) {
            (Table::Resources, "microsoft.compute/virtualmachines" | "microsoft.hybridcompute/machines") => {
                self.accept_machine(row, &kind)
            }
            (Table::Resources, "microsoft.maintenance/maintenanceconfigurations") => self.accept_configuration(row),
            (Table::MaintenanceResources, "microsoft.maintenance/configurationassignments") => {
                self.accept_assignment(row)
            }
            (Table::MaintenanceResources, "microsoft.maintenance/applyupdates") => self.accept_apply_update(row),
            (Table::PatchInstallationResources, k) if k.ends_with("/patchinstallationresults") => {
                self.accept_result(row)
            }
            (Table::PatchInstallationResources, k) if k.ends_with("/patchinstallationresults/softwarepatches") => {
                self.accept_failed_patch(row)
            }
            (Table::PatchAssessmentResources, k) if k.ends_with("/patchassessmentresults") => {
                self.accept_assessment(row)
            }
            (Table::PatchAssessmentResources, k) if k.ends_with("/patchassessmentresults/softwarepatches") => {
                self.accept_pending_patch(row)
            }
            _ => {}
        }
    }
}

impl FleetCollector {
    pub fn new() -> Self {
        Self::default()
    }

    /// The newest timestamp any row carried (assessment or result): when the data was current.
    pub fn newest(&self) -> Option<OffsetDateTime> {
        self.newest
    }

    fn intern(&mut self, id: String) -> Arc<str> {
        if let Some(shared) = self.interned.get(id.as_str()) {
            return shared.clone();
        }
        let shared: Arc<str> = id.into();
        self.interned.insert(shared.clone());
        shared
    }

    fn saw(&mut self, t: Option<OffsetDateTime>) {
        if t.is_some() && t > self.newest {
            self.newest = t;
        }
    }

    fn accept_machine(&mut self, row: FleetRow, kind: &str) {
        let arc = kind.starts_with("microsoft.hybridcompute");
        let p = row.properties;
        let os_text = p.storage_profile.and_then(|s| s.os_disk).and_then(|d| d.os_type).or(p.os_type).or(p.os_name);
        let profile = p.os_profile.unwrap_or_default();
        let mut os = os_text.as_deref().map_or(OsType::Unknown, OsType::parse);
        if os == OsType::Unknown {
            os = if profile.linux_configuration.is_some() { OsType::Linux } else { OsType::Windows };
        }
        let settings = match os {
            OsType::Linux => profile.linux_configuration,
            _ => profile.windows_configuration,
        }
        .and_then(|c| c.patch_settings)
        .unwrap_or_default();
        let power_state = if arc {
            p.status
        } else {
            p.extended
                .and_then(|e| e.instance_view)
                .and_then(|i| i.power_state)
                .and_then(|s| s.code)
                .map(|c| c.trim_start_matches("PowerState/").to_owned())
        };
        let (subscription, resource_group) = placement(&row.id, row.subscription_id, row.resource_group);
        self.fleet.machines.push(Machine {
            name: row.name.unwrap_or_else(|| patchwatch_model::resource_id::last_segment(&row.id).to_owned()),
            id: row.id,
            subscription,
            resource_group,
            location: row.location.unwrap_or_default(),
            kind: if arc { MachineKind::Arc } else { MachineKind::AzureVm },
            os,
            patch_mode: settings.patch_mode,
            assessment_mode: settings.assessment_mode,
            bypass_safety_checks: settings
                .automatic_by_platform_settings
                .and_then(|s| s.bypass_platform_safety_checks_on_user_schedule),
            power_state,
            tags: string_tags(row.tags),
        });
    }

    fn accept_configuration(&mut self, row: FleetRow) {
        let p = row.properties;
        let w = p.maintenance_window.unwrap_or_default();
        let install = p.install_patches.unwrap_or_default();
        let windows = install.windows_parameters.unwrap_or_default();
        let linux = install.linux_parameters.unwrap_or_default();
        let (subscription, resource_group) = placement(&row.id, row.subscription_id, row.resource_group);
        self.fleet.configurations.push(Configuration {
            name: row.name.unwrap_or_else(|| patchwatch_model::resource_id::last_segment(&row.id).to_owned()),
            id: row.id,
            subscription,
            resource_group,
            location: row.location.unwrap_or_default(),
            maintenance_scope: p.maintenance_scope.unwrap_or_default(),
            window: MaintenanceWindow {
                start_date_time: w.start_date_time.unwrap_or_default(),
                expiration_date_time: w.expiration_date_time.filter(|e| !e.trim().is_empty()),
                duration: w.duration.unwrap_or_default(),
                time_zone: w.time_zone.unwrap_or_default(),
                recur_every: w.recur_every.unwrap_or_default(),
            },
            reboot_setting: install.reboot_setting,
            windows_classifications: windows.classifications_to_include.unwrap_or_default(),
            linux_classifications: linux.classifications_to_include.unwrap_or_default(),
            kb_include: [windows.kb_numbers_to_include, linux.package_name_masks_to_include]
                .into_iter()
                .flatten()
                .flatten()
                .collect(),
            kb_exclude: [windows.kb_numbers_to_exclude, linux.package_name_masks_to_exclude]
                .into_iter()
                .flatten()
                .flatten()
                .collect(),
            tags: string_tags(row.tags),
        });
    }

    fn accept_assignment(&mut self, row: FleetRow) {
        let p = row.properties;
        let Some(configuration) = p.maintenance_configuration_id.map(|c| c.trim().to_ascii_lowercase()) else {
            return;
        };
        let lower = row.id.to_ascii_lowercase();
        let target = p
            .resource_id
            .filter(|r| !r.trim().is_empty())
            .map(|r| r.trim().trim_end_matches('/').to_ascii_lowercase())
            .or_else(|| lower.find(ASSIGNMENTS).map(|at| lower[..at].to_owned()))
            .unwrap_or_default();
        match scope_target(&target) {
            Some((subscription, resource_group)) => {
                let filter = p.filter.map(scope_filter).unwrap_or_default();
                self.fleet.scopes.push(DynamicScope {
                    name: row.name.unwrap_or_else(|| patchwatch_model::resource_id::last_segment(&row.id).to_owned()),
                    id: row.id,
                    subscription,
                    resource_group,
                    configuration,
                    filter,
                });
            }
            None => self.fleet.assignments.push(StaticAssignment { id: row.id, machine: target, configuration }),
        }
    }

    fn accept_apply_update(&mut self, row: FleetRow) {
        // Hundreds of thousands of these in a big fleet: ids are lower-cased in place.
        let p = row.properties;
        let Some(run_id) = p.correlation_id.map(lowered).filter(|r| r.contains(APPLY_UPDATES)) else {
            return;
        };
        let machine = match p.resource_id.filter(|r| !r.trim().is_empty()) {
            Some(r) => lowered(r),
            None => parent_lowered(&row.id, APPLY_UPDATES).unwrap_or_default(),
        };
        let machine = self.intern(machine);
        let run = self.runs.entry(run_id).or_default();
        if run.configuration.is_empty() {
            run.configuration = p.maintenance_configuration_id.map(lowered).unwrap_or_default();
        }
        run.expected.push(machine);
    }

    fn accept_result(&mut self, row: FleetRow) {
        let p = row.properties;
        let Some(run_id) = p.maintenance_run_id.map(lowered).filter(|r| r.contains(APPLY_UPDATES)) else {
            return;
        };
        let Some(machine) = parent_lowered(&row.id, "/patchinstallationresults/") else { return };
        let start = parse_time(p.start_date_time.as_ref());
        let last_modified = parse_time(p.last_modified_date_time.as_ref());
        self.saw(last_modified);
        let mut status = p.status.unwrap_or_default();
        status.make_ascii_lowercase();
        let outcome = match status.as_str() {
            _ if p.maintenance_window_exceeded == Some(true) => PastOutcome::WindowExceeded,
            "succeeded" | "completedwithwarnings" => PastOutcome::Succeeded,
            "notstarted" | "" => PastOutcome::NoShow,
            _ => PastOutcome::Failed,
        };
        let minutes = match (start, last_modified) {
            (Some(s), Some(e)) if e >= s => u32::try_from((e - s).whole_minutes()).ok(),
            _ => None,
        };
        if p.failed_patch_count.unwrap_or(0) > 0 {
            self.result_run.insert(row.id.to_ascii_lowercase(), run_id.clone());
        }
        let machine = self.intern(machine);
        let run = self.runs.entry(run_id).or_default();
        let replace = run.results.get(&machine).is_none_or(|r| r.last_modified < last_modified);
        if replace {
            run.results.insert(machine, ResultAcc { outcome, minutes, last_modified });
        }
    }

    fn accept_failed_patch(&mut self, row: FleetRow) {
        let p = row.properties;
        if !p.installation_state.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("failed")) {
            return;
        }
        let Some(result) = parent_of(&row.id, "/softwarepatches/") else { return };
        let key = p
            .kb_id
            .filter(|k| !k.trim().is_empty())
            .map(|k| format!("KB{}", k.trim().trim_start_matches("KB").trim_start_matches("kb")))
            .or(p.patch_name)
            .unwrap_or_else(|| patchwatch_model::resource_id::last_segment(&row.id).to_owned());
        self.failed_by_result.entry(result).or_default().insert(key);
    }

    fn accept_assessment(&mut self, row: FleetRow) {
        let p = row.properties;
        let Some(machine) = parent_of(&row.id, "/patchassessmentresults/") else { return };
        let last_assessed = parse_time(p.last_modified_date_time.as_ref()).or(parse_time(p.start_date_time.as_ref()));
        self.saw(last_assessed);
        let mut assessment = Assessment {
            status: p.status.unwrap_or_default(),
            last_assessed,
            reboot_pending: p.reboot_pending.unwrap_or(false),
            os: p.os_type.as_deref().map_or(OsType::Unknown, OsType::parse),
            ..Assessment::default()
        };
        for (k, v) in p.available_patch_count_by_classification.unwrap_or_default() {
            if let Some(n) = count(&v) {
                assessment.set_available(&k, n);
            }
        }
        match self.fleet.assessments.get(&machine) {
            Some(existing) if existing.last_assessed >= assessment.last_assessed => {}
            _ => {
                self.fleet.assessments.insert(machine, assessment);
            }
        }
    }

    fn accept_pending_patch(&mut self, row: FleetRow) {
        let p = row.properties;
        let classifications = classifications(p.classifications);
        if !classifications.iter().any(|c| is_critical_or_security(c)) {
            return;
        }
        let Some(machine) = parent_of(&row.id, "/patchassessmentresults/") else { return };
        self.fleet.pending.push(PendingPatch {
            id: row.id.to_ascii_lowercase(),
            machine,
            name: p.patch_name.unwrap_or_else(|| patchwatch_model::resource_id::last_segment(&row.id).to_owned()),
            kb_id: p.kb_id.filter(|k| !k.trim().is_empty()),
            version: p.version.filter(|v| !v.trim().is_empty()),
            classifications,
            msrc_severity: p.msrc_severity.filter(|s| !s.trim().is_empty()),
            published: parse_time(p.published_date_time.as_ref()),
        });
    }

    /// The fleet, with runs assembled (oldest first) and machines sorted by id.
    pub fn finish(mut self) -> Fleet {
        let mut failed_by_run: HashMap<String, BTreeMap<String, usize>> = HashMap::new();
        for (result, keys) in self.failed_by_result {
            if let Some(run) = self.result_run.get(&result) {
                let per_run = failed_by_run.entry(run.clone()).or_default();
                for key in keys {
                    *per_run.entry(key).or_default() += 1;
                }
            }
        }
        let mut runs: Vec<PastRun> = self
            .runs
            .into_iter()
            .filter_map(|(run_id, acc)| {
                let failed = failed_by_run.remove(&run_id).unwrap_or_default();
                past_run(run_id, acc, failed)
            })
            .collect();
        runs.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.run_id.cmp(&b.run_id)));
        self.fleet.runs = runs;
        self.fleet.machines.sort_by_cached_key(Machine::key);
        self.fleet.machines.dedup_by(|a, b| a.id.eq_ignore_ascii_case(&b.id));
        self.fleet.configurations.sort_by_cached_key(Configuration::key);
        self.fleet.configurations.dedup_by(|a, b| a.id.eq_ignore_ascii_case(&b.id));
        // Rows may arrive twice (overlapping queries, merged exports): each counts once.
        self.fleet.assignments.sort_by_cached_key(|a| a.id.to_ascii_lowercase());
        self.fleet.assignments.dedup_by(|a, b| a.id.eq_ignore_ascii_case(&b.id));
        self.fleet.scopes.sort_by_cached_key(|s| s.id.to_ascii_lowercase());
        self.fleet.scopes.dedup_by(|a, b| a.id.eq_ignore_ascii_case(&b.id));
        self.fleet.pending.sort_by(|a, b| a.id.cmp(&b.id));
        self.fleet.pending.dedup_by(|a, b| a.id == b.id);
        self.fleet
    }
}

/// `s` trimmed and lower-cased in place (no new allocation): ids are join keys, lower-cased.
fn lowered(mut s: String) -> String {
    let end = s.trim_end().trim_end_matches('/').len();
    s.truncate(end);
    let start = s.len() - s.trim_start().len();
    s.drain(..start);
    s.make_ascii_lowercase();
    s
}

/// The lower-cased id up to `marker` (which must be lower case), or `None`.
fn parent_lowered(id: &str, marker: &str) -> Option<String> {
    // ASCII lower-casing keeps byte offsets: find in a lowered copy of the head only.
    let at = id.to_ascii_lowercase().find(marker)?;
    let mut head = id.get(..at)?.trim_end_matches('/').to_owned();
    head.make_ascii_lowercase();
    Some(head)
}

/// A run's start from its id: the applyupdates name is the scheduled start, `yyyyMMddHHmmss` UTC.
fn run_start(run_id: &str) -> Option<OffsetDateTime> {
    let stamp = patchwatch_model::resource_id::last_segment(run_id);
    if stamp.len() != 14 || !stamp.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let format = time::macros::format_description!("[year][month][day][hour][minute][second]");
    time::PrimitiveDateTime::parse(stamp, &format).ok().map(time::PrimitiveDateTime::assume_utc)
}

fn past_run(run_id: String, acc: RunAcc, failed_patches: BTreeMap<String, usize>) -> Option<PastRun> {
    let start = run_start(&run_id)?;
    let configuration = if acc.configuration.is_empty() {
        parent_of(&run_id, APPLY_UPDATES).unwrap_or_default()
    } else {
        acc.configuration
    };
    // A map: an `applyupdates` row seen twice is one expected machine.
    let mut machines: HashMap<Arc<str>, PastOutcome> =
        acc.expected.into_iter().map(|m| (m, PastOutcome::NoShow)).collect();
    let mut install_minutes = Vec::new();
    for (machine, result) in acc.results {
        install_minutes.extend(result.minutes);
        machines.insert(machine, result.outcome);
    }
    install_minutes.sort_unstable();
    Some(PastRun {
        configuration_name: patchwatch_model::resource_id::last_segment(&configuration).to_owned(),
        configuration,
        run_id,
        start,
        machines,
        succeeded_uncounted: 0,
        longest_install_minutes: install_minutes.last().copied(),
        install_minutes,
        failed_patches,
    })
}

/// Subscription and resource group of a row: the columns, else the id.
fn placement(id: &str, subscription: Option<String>, resource_group: Option<String>) -> (String, String) {
    let rid = patchwatch_model::resource_id::ResourceId::parse(id).ok();
    (
        subscription
            .filter(|s| !s.is_empty())
            .or_else(|| rid.as_ref().map(|r| r.subscription().to_owned()))
            .unwrap_or_default(),
        resource_group
            .filter(|s| !s.is_empty())
            .or_else(|| rid.as_ref().map(|r| r.resource_group().to_owned()))
            .unwrap_or_default(),
    )
}

/// `/subscriptions/<s>` or `/subscriptions/<s>/resourcegroups/<rg>`: a dynamic scope's target.
fn scope_target(target: &str) -> Option<(String, Option<String>)> {
    let parts: Vec<&str> = target.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["subscriptions", sub] => Some(((*sub).to_owned(), None)),
        ["subscriptions", sub, "resourcegroups", rg] => Some(((*sub).to_owned(), Some((*rg).to_owned()))),
        _ => None,
    }
}

fn scope_filter(f: FilterProps) -> ScopeFilter {
    let tag_settings = f.tag_settings.unwrap_or_default();
    let tags = tag_settings
        .tags
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            let values = match v {
                Value::Array(items) => items.into_iter().filter_map(|i| i.as_str().map(str::to_owned)).collect(),
                Value::String(s) => vec![s],
                _ => Vec::new(),
            };
            (k, values)
        })
        .collect();
    ScopeFilter {
        resource_types: f.resource_types.unwrap_or_default(),
        resource_groups: f.resource_groups.unwrap_or_default(),
        locations: f.locations.unwrap_or_default(),
        os_types: f.os_types.unwrap_or_default(),
        tags,
        tag_operator: match tag_settings.filter_operator.as_deref() {
            Some(op) if op.eq_ignore_ascii_case("all") => TagOperator::All,
            _ => TagOperator::Any,
        },
    }
}

fn string_tags(tags: Option<BTreeMap<String, Value>>) -> BTreeMap<String, String> {
    tags.unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some((k, s)),
            Value::Number(n) => Some((k, n.to_string())),
            Value::Bool(b) => Some((k, b.to_string())),
            _ => None,
        })
        .collect()
}

fn count(v: &Value) -> Option<u32> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn classifications(v: Option<Value>) -> Vec<String> {
    match v {
        Some(Value::Array(items)) => items.into_iter().filter_map(|i| i.as_str().map(str::to_owned)).collect(),
        Some(Value::String(s)) => s.split(',').map(|c| c.trim().to_owned()).filter(|c| !c.is_empty()).collect(),
        _ => Vec::new(),
    }
}

/// `Critical Updates`, `Security Updates` (Windows) or `Critical`, `Security` (Linux).
pub fn is_critical_or_security(classification: &str) -> bool {
    let c = classification.to_ascii_lowercase();
    c.starts_with("critical") || c.starts_with("security")
}
