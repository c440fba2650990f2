//! A row as a run's collector reads it: its parts picked out, lower-cased, hashed and parsed
//! wherever the row was parsed. A snapshot's rows are digested on the stream's parser threads,
//! so the one thread that keeps rows in stream order does little more than the lookups.

use std::collections::HashMap;

use serde_json::Value;

use super::listed::hash_lower;
use super::rows::{Row, Table, ends_with_ignore_case, find_ignore_ascii_case, normalise_run_id, parent_of, parse_time};
use super::{ExpectedMachine, FailedPatch, InstallResult, MachineInfo};

/// Which rows a run keeps: its id, and whether it reads results (a pre event does not). Shared
/// by the stream's parser threads, so that other runs' rows are dropped where they are parsed.
#[derive(Clone, Debug)]
pub struct RunFilter {
    /// Normalised as [`normalise_run_id`] normalises.
    run_id: String,
    results: bool,
}

impl RunFilter {
    pub(super) fn new(correlation_id: &str, results: bool) -> Self {
        Self { run_id: normalise_run_id(correlation_id), results }
    }

    /// Whether `id` names this run (compared as [`normalise_run_id`] compares).
    fn is_this_run(&self, id: Option<&String>) -> bool {
        id.is_some_and(|id| id.trim().trim_end_matches('/').eq_ignore_ascii_case(&self.run_id))
    }
}

/// One row a run keeps, digested.
#[derive(Debug)]
pub enum RunRow {
    /// An `applyupdates` row: the run lists this machine.
    Listing(Listing),
    /// An installation result.
    Result(ResultRow),
    /// A failed patch of an installation result.
    Patch { result_id: String, patch: FailedPatch },
    /// A VM's or an Arc machine's `resources` row.
    Machine(MachineRow),
}

#[derive(Debug)]
pub struct Listing {
    pub(super) machine: ExpectedMachine,
    /// [`hash_lower`] of the machine's id.
    pub(super) hash: u64,
    /// The machine's string-valued tags, joined on by the live query.
    pub(super) machine_tags: HashMap<String, String>,
}

#[derive(Debug)]
pub struct ResultRow {
    /// The machine's lower-cased id, and its hash.
    pub(super) key: String,
    pub(super) hash: u64,
    pub(super) result: InstallResult,
}

#[derive(Debug)]
pub struct MachineRow {
    /// The machine's lower-cased id, and its hash.
    pub(super) key: String,
    pub(super) hash: u64,
    pub(super) info: MachineInfo,
}

impl RunRow {
    /// What the run of `filter` reads of `row` (its joined columns aside), or `None` for a row
    /// it does not keep: another run's, another table's or type's row, a patch that did not
    /// fail, a listing of something that is not a machine, a result or patch whose id names no
    /// parent, and for a pre event any result or patch.
    pub fn digest(table: Table, row: Row, filter: &RunFilter) -> Option<RunRow> {
        let kind = row.kind.as_str();
        match table {
            Table::MaintenanceResources if kind.eq_ignore_ascii_case("microsoft.maintenance/applyupdates") => {
                if !filter.is_this_run(row.properties.correlation_id.as_ref()) {
                    return None;
                }
                listing(row).map(RunRow::Listing)
            }
            Table::PatchInstallationResources if !filter.results => None,
            Table::PatchInstallationResources if ends_with_ignore_case(kind, "/patchinstallationresults") => {
                if !filter.is_this_run(row.properties.maintenance_run_id.as_ref()) {
                    return None;
                }
                result(row).map(RunRow::Result)
            }
            Table::PatchInstallationResources
                if ends_with_ignore_case(kind, "/patchinstallationresults/softwarepatches") =>
            {
                failed_patch(row)
            }
            Table::Resources if is_machine_kind(kind) => Some(RunRow::Machine(machine(row))),
            _ => None,
        }
    }
}

fn listing(row: Row) -> Option<Listing> {
    let props = row.properties;
    let machine_id = props
        .resource_id
        .filter(|r| !r.trim().is_empty())
        .or_else(|| {
            find_ignore_ascii_case(&row.id, "/providers/microsoft.maintenance/applyupdates")
                .map(|at| row.id[..at].to_owned())
        })
        .unwrap_or(row.id);
    if find_ignore_ascii_case(&machine_id, "/providers/microsoft.compute/virtualmachines/").is_none()
        && find_ignore_ascii_case(&machine_id, "/providers/microsoft.hybridcompute/machines/").is_none()
    {
        return None;
    }
    Some(Listing {
        hash: hash_lower(&machine_id),
        machine: ExpectedMachine { id: machine_id, resource_group: row.resource_group },
        machine_tags: string_tags(row.machine_tags),
    })
}

fn result(row: Row) -> Option<ResultRow> {
    let p = row.properties;
    let key = parent_of(&row.id, "/patchinstallationresults/")?;
    let result = InstallResult {
        result_id: row.id.to_ascii_lowercase(),
        machine_id: row.id[..key.len()].to_owned(),
        resource_group: row.resource_group,
        status: p.status.unwrap_or_default(),
        installed: p.installed_patch_count.unwrap_or(0),
        failed: p.failed_patch_count.unwrap_or(0),
        pending: p.pending_patch_count.unwrap_or(0),
        window_exceeded: p.maintenance_window_exceeded.unwrap_or(false),
        reboot_status: p.reboot_status,
        started: parse_time(p.start_date_time.as_ref()),
        last_modified: parse_time(p.last_modified_date_time.as_ref()),
        os_type: p.os_type,
        errors: error_messages(p.error_details.as_ref()),
    };
    Some(ResultRow { hash: hash_lower(&key), key, result })
}

fn failed_patch(row: Row) -> Option<RunRow> {
    let p = row.properties;
    if !p.installation_state.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("failed")) {
        return None;
    }
    let result_id = parent_of(&row.id, "/softwarepatches/")?;
    let classifications = match p.classifications {
        Some(Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        Some(Value::String(s)) => vec![s],
        _ => Vec::new(),
    };
    let name = p.patch_name.unwrap_or_else(|| crate::resource_id::last_segment(&row.id).to_owned());
    let patch = FailedPatch {
        machine_id: String::new(),
        name,
        kb_id: p.kb_id.filter(|k| !k.trim().is_empty()),
        version: p.version.filter(|v| !v.trim().is_empty()),
        classifications,
    };
    Some(RunRow::Patch { result_id, patch })
}

fn machine(row: Row) -> MachineRow {
    let key = row.id.to_ascii_lowercase();
    let p = row.properties;
    let power_state = p
        .extended
        .and_then(|e| e.instance_view)
        .and_then(|i| i.power_state)
        .and_then(|s| s.code)
        .map(|c| c.trim_start_matches("PowerState/").to_owned());
    let os_type = p.storage_profile.and_then(|s| s.os_disk).and_then(|d| d.os_type).or(p.os_type).or(p.os_name);
    // Arc machines report connectivity in `status` (Connected / Disconnected / Expired).
    let agent_status = if row.kind.eq_ignore_ascii_case("microsoft.hybridcompute/machines") { p.status } else { None };
    let info = MachineInfo { os_type, power_state, agent_status, tags: string_tags(row.tags) };
    MachineRow { hash: hash_lower(&key), key, info }
}

/// The string-valued tags (ARG tags are strings; anything else is not a tag patchwatch reads).
fn string_tags(tags: Option<HashMap<String, Value>>) -> HashMap<String, String> {
    tags.unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some((k, s)),
            _ => None,
        })
        .collect()
}

/// A VM's or an Arc machine's `type`, ignoring ASCII case.
pub(super) fn is_machine_kind(kind: &str) -> bool {
    kind.eq_ignore_ascii_case("microsoft.compute/virtualmachines")
        || kind.eq_ignore_ascii_case("microsoft.hybridcompute/machines")
}

/// `errorDetails` holds up to five errors, as an ARM error object (`code`, `message`, `details[]`),
/// an array of them, or a plain string. Messages are flattened, most specific first.
fn error_messages(v: Option<&Value>) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) if !s.trim().is_empty() => out.push(s.trim().to_owned()),
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            Value::Object(o) => {
                if let Some(details) = o.get("details") {
                    walk(details, out);
                }
                let message = o.get("message").and_then(Value::as_str).map(str::trim).filter(|m| !m.is_empty());
                let code = o.get("code").and_then(Value::as_str).map(str::trim).filter(|c| !c.is_empty());
                match (code, message) {
                    (Some(c), Some(m)) => out.push(format!("{c}: {m}")),
                    (None, Some(m)) => out.push(m.to_owned()),
                    (Some(c), None) => out.push(c.to_owned()),
                    (None, None) => {}
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Some(v) = v {
        walk(v, &mut out);
    }
    out.dedup();
    out.truncate(5);
    out
}
