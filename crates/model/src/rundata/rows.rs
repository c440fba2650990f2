//! The one parser for Azure Resource Graph rows, shared by live queries and snapshot files.
//!
//! Rows arrive unprojected (`id`, `type`, `properties`, …) exactly as ARG returns them. A
//! [`RunCollector`] keeps only what belongs to one run and drops the rest as it goes, so a
//! snapshot with many runs or a whole tenant's patch rows stays within bounded memory.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::{borrow::Cow, fmt};

use serde::{
    Deserialize, Deserializer,
    de::{MapAccess, Visitor},
};
use serde_json::{Value, value::RawValue};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use super::digest::{Listing, MachineRow, ResultRow, RunFilter, RunRow};
use super::listed::{Entry, HashSet64, Listed, Prehashed, Success, hash_lower};
use super::{
    ExpectedMachine, FailedPatch, InstallResult, MachineInfo, RunData, RunQuery, SucceededGroup, merge_groups,
};
use crate::summary::{Outcome, result_outcome};

/// ARG tables patchwatch reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    MaintenanceResources,
    PatchInstallationResources,
    PatchAssessmentResources,
    Resources,
}

impl Table {
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "maintenanceresources" => Some(Self::MaintenanceResources),
            "patchinstallationresources" => Some(Self::PatchInstallationResources),
            "patchassessmentresources" => Some(Self::PatchAssessmentResources),
            "resources" => Some(Self::Resources),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::MaintenanceResources => "maintenanceresources",
            Self::PatchInstallationResources => "patchinstallationresources",
            Self::PatchAssessmentResources => "patchassessmentresources",
            Self::Resources => "resources",
        }
    }
}

/// One ARG row; unknown columns are skipped without being materialised.
#[derive(Debug, Deserialize)]
pub struct Row {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, rename = "resourceGroup")]
    pub resource_group: Option<String>,
    #[serde(default)]
    pub tags: Option<HashMap<String, Value>>,
    #[serde(default)]
    pub properties: Props,
    /// The machine's tags, joined onto `applyupdates` rows by the live query.
    #[serde(default, rename = "machineTags")]
    pub machine_tags: Option<HashMap<String, Value>>,
    /// The machine's `resources` row (the columns read here), joined on by the live query.
    #[serde(default)]
    pub machine: Option<Box<Row>>,
    /// The machine's installation result for the run, joined onto its `applyupdates` row.
    #[serde(default)]
    pub result: Option<Box<Row>>,
}

/// The union of the `properties` fields patchwatch reads across row types. Numbers and booleans
/// are accepted as strings too: ARG projections sometimes stringify them.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Props {
    pub(super) correlation_id: Option<String>,
    pub(super) resource_id: Option<String>,
    pub(super) maintenance_run_id: Option<String>,
    pub(super) status: Option<String>,
    #[serde(deserialize_with = "lenient_u32")]
    pub(super) installed_patch_count: Option<u32>,
    #[serde(deserialize_with = "lenient_u32")]
    pub(super) failed_patch_count: Option<u32>,
    #[serde(deserialize_with = "lenient_u32")]
    pub(super) pending_patch_count: Option<u32>,
    #[serde(deserialize_with = "lenient_bool")]
    pub(super) maintenance_window_exceeded: Option<bool>,
    pub(super) reboot_status: Option<String>,
    pub(super) start_date_time: Option<String>,
    pub(super) last_modified_date_time: Option<String>,
    pub os_type: Option<String>,
    pub(super) error_details: Option<Value>,
    pub(super) installation_state: Option<String>,
    pub(super) patch_name: Option<String>,
    #[serde(alias = "Kbid", alias = "kbid", alias = "KBId")]
    pub(super) kb_id: Option<String>,
    pub(super) version: Option<String>,
    pub(super) classifications: Option<Value>,
    // `resources` rows (VMs and Arc machines).
    pub(super) extended: Option<Extended>,
    pub(super) storage_profile: Option<StorageProfile>,
    pub(super) os_name: Option<String>,
}

/// `properties.extended.instanceView.powerState.code` of a VM row (shared with the fleet's rows).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Extended {
    pub instance_view: Option<InstanceView>,
}
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct InstanceView {
    pub power_state: Option<PowerState>,
}
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PowerState {
    pub code: Option<String>,
}
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct StorageProfile {
    pub os_disk: Option<OsDisk>,
}
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OsDisk {
    pub os_type: Option<String>,
}

pub fn lenient_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Number(n)) => n.as_u64().and_then(|v| u32::try_from(v).ok()),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

pub fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Bool(b)) => Some(b),
        Some(Value::String(s)) => s.trim().parse().ok().or_else(|| Some(s.eq_ignore_ascii_case("true"))),
        _ => None,
    })
}

pub fn parse_time(s: Option<&String>) -> Option<OffsetDateTime> {
    s.and_then(|s| OffsetDateTime::parse(s.trim(), &Rfc3339).ok())
}

/// The part of `id` before `/{marker}/` (case-insensitive), lower-cased: the owning machine.
pub fn parent_of(id: &str, marker: &str) -> Option<String> {
    let at = find_ignore_ascii_case(id, marker)?;
    Some(id[..at].trim_end_matches('/').to_ascii_lowercase())
}

/// Where `needle` first occurs in `hay`, ignoring ASCII case (an empty needle is found nowhere);
/// no lower-cased copy of `hay` is made.
pub(super) fn find_ignore_ascii_case(hay: &str, needle: &str) -> Option<usize> {
    let (hay, needle) = (hay.as_bytes(), needle.as_bytes());
    let (&first, rest) = needle.split_first()?;
    let mut from = 0;
    // Candidates start where the needle's first byte does, in either case (ids' markers begin
    // with `/`, so this is a plain memchr).
    while let Some(at) = memchr::memchr2(first.to_ascii_lowercase(), first.to_ascii_uppercase(), &hay[from..]) {
        let start = from + at;
        if hay.len() - start >= needle.len() && hay[start + 1..start + needle.len()].eq_ignore_ascii_case(rest) {
            return Some(start);
        }
        from = start + 1;
    }
    None
}

impl Row {
    /// Parses one snapshot row of `table`, or `None` for a row no run keeps, whichever run it
    /// is: not an `applyupdates` row, an installation result or a failed patch, or a machine.
    /// Every row is checked as strictly as [`Row`]'s own parser does, with the same messages,
    /// but only the rows kept get their strings allocated (at 50,000 machines, two in five
    /// rows are installed patches).
    pub fn parse_for_run(table: Table, bytes: &[u8]) -> serde_json::Result<Option<Row>> {
        // The row's UTF-8 checked at once (mostly ASCII: a word at a time) instead of string by
        // string inside serde; an invalid row is parsed as bytes, for serde's own message.
        let row: RowRef<'_> = match std::str::from_utf8(bytes) {
            Ok(text) => serde_json::from_str(text)?,
            Err(_) => serde_json::from_slice(bytes)?,
        };
        if row.may_matter_to_a_run(table) { row.into_row().map(Some) } else { Ok(None) }
    }
}

/// A [`Row`] as it lies in the snapshot's bytes: the same columns, types and checks (serde's
/// messages name `Row` and `Props`, as for the owned rows), with the text borrowed.
#[derive(Deserialize)]
#[serde(rename = "Row", expecting = "struct Row")]
struct RowRef<'a> {
    #[serde(borrow)]
    id: Text<'a>,
    #[serde(rename = "type", borrow)]
    kind: Text<'a>,
    #[serde(default, rename = "resourceGroup", borrow)]
    resource_group: Option<Text<'a>>,
    #[serde(default, borrow)]
    tags: Option<MapRef<'a>>,
    #[serde(default, borrow)]
    properties: PropsRef<'a>,
    #[serde(default, rename = "machineTags", borrow)]
    machine_tags: Option<MapRef<'a>>,
}

/// [`Props`], borrowed: every field as there, JSON values kept as their raw text.
#[derive(Default, Deserialize)]
#[serde(default, rename = "Props", expecting = "struct Props", rename_all = "camelCase")]
struct PropsRef<'a> {
    #[serde(borrow)]
    correlation_id: Option<Text<'a>>,
    #[serde(borrow)]
    resource_id: Option<Text<'a>>,
    #[serde(borrow)]
    maintenance_run_id: Option<Text<'a>>,
    #[serde(borrow)]
    status: Option<Text<'a>>,
    #[serde(deserialize_with = "lenient_u32")]
    installed_patch_count: Option<u32>,
    #[serde(deserialize_with = "lenient_u32")]
    failed_patch_count: Option<u32>,
    #[serde(deserialize_with = "lenient_u32")]
    pending_patch_count: Option<u32>,
    #[serde(deserialize_with = "lenient_bool")]
    maintenance_window_exceeded: Option<bool>,
    #[serde(borrow)]
    reboot_status: Option<Text<'a>>,
    #[serde(borrow)]
    start_date_time: Option<Text<'a>>,
    #[serde(borrow)]
    last_modified_date_time: Option<Text<'a>>,
    #[serde(borrow)]
    os_type: Option<Text<'a>>,
    #[serde(borrow)]
    error_details: Option<&'a RawValue>,
    #[serde(borrow)]
    installation_state: Option<Text<'a>>,
    #[serde(borrow)]
    patch_name: Option<Text<'a>>,
    #[serde(alias = "Kbid", alias = "kbid", alias = "KBId", borrow)]
    kb_id: Option<Text<'a>>,
    #[serde(borrow)]
    version: Option<Text<'a>>,
    #[serde(borrow)]
    classifications: Option<&'a RawValue>,
    extended: Option<Extended>,
    storage_profile: Option<StorageProfile>,
    #[serde(borrow)]
    os_name: Option<Text<'a>>,
}

impl RowRef<'_> {
    /// Mirrors the tables and row types [`RunCollector::accept`] reads; a row it would drop
    /// for any run is never built. (`the_stream_keeps_what_the_collector_keeps` in `stream.rs`
    /// checks the two agree.)
    fn may_matter_to_a_run(&self, table: Table) -> bool {
        let kind = self.kind.0.as_ref();
        match table {
            Table::MaintenanceResources => kind.eq_ignore_ascii_case("microsoft.maintenance/applyupdates"),
            Table::PatchInstallationResources if ends_with_ignore_case(kind, "/patchinstallationresults") => true,
            Table::PatchInstallationResources
                if ends_with_ignore_case(kind, "/patchinstallationresults/softwarepatches") =>
            {
                self.properties.installation_state.as_ref().is_some_and(|s| s.0.eq_ignore_ascii_case("failed"))
            }
            Table::Resources => super::digest::is_machine_kind(kind),
            _ => false,
        }
    }

    fn into_row(self) -> serde_json::Result<Row> {
        let p = self.properties;
        Ok(Row {
            id: self.id.into(),
            kind: self.kind.into(),
            resource_group: self.resource_group.map(Into::into),
            tags: self.tags.map(MapRef::into_map).transpose()?,
            properties: Props {
                correlation_id: p.correlation_id.map(Into::into),
                resource_id: p.resource_id.map(Into::into),
                maintenance_run_id: p.maintenance_run_id.map(Into::into),
                status: p.status.map(Into::into),
                installed_patch_count: p.installed_patch_count,
                failed_patch_count: p.failed_patch_count,
                pending_patch_count: p.pending_patch_count,
                maintenance_window_exceeded: p.maintenance_window_exceeded,
                reboot_status: p.reboot_status.map(Into::into),
                start_date_time: p.start_date_time.map(Into::into),
                last_modified_date_time: p.last_modified_date_time.map(Into::into),
                os_type: p.os_type.map(Into::into),
                error_details: p.error_details.map(raw_to_value).transpose()?,
                installation_state: p.installation_state.map(Into::into),
                patch_name: p.patch_name.map(Into::into),
                kb_id: p.kb_id.map(Into::into),
                version: p.version.map(Into::into),
                classifications: p.classifications.map(raw_to_value).transpose()?,
                extended: p.extended,
                storage_profile: p.storage_profile,
                os_name: p.os_name.map(Into::into),
            },
            machine_tags: self.machine_tags.map(MapRef::into_map).transpose()?,
            // Joined columns come only from live queries, never in a snapshot.
            machine: None,
            result: None,
        })
    }
}

pub(super) fn ends_with_ignore_case(s: &str, suffix: &str) -> bool {
    s.len() >= suffix.len() && s.as_bytes()[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}

/// A JSON string, borrowed from the input unless it holds escapes. Refuses what `String`
/// refuses, with the same message.
struct Text<'a>(Cow<'a, str>);

impl From<Text<'_>> for String {
    fn from(t: Text<'_>) -> String {
        t.0.into_owned()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A JSON object of any values (what `HashMap<String, Value>` accepts, refused with the same
/// message otherwise), its values kept as raw text.
struct MapRef<'a>(Vec<(Text<'a>, &'a RawValue)>);

impl MapRef<'_> {
    fn into_map(self) -> serde_json::Result<HashMap<String, Value>> {
        let mut map = HashMap::with_capacity(self.0.len());
        for (k, v) in self.0 {
            map.insert(k.into(), raw_to_value(v)?);
        }
        Ok(map)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for MapRef<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MapRef<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MapRef<'de>, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(MapRef(entries))
            }
        }
        d.deserialize_map(V)
    }
}

fn raw_to_value(raw: &RawValue) -> serde_json::Result<Value> {
    serde_json::from_str(raw.get())
}

/// Accumulates the rows of one run.
#[derive(Debug)]
pub struct RunCollector {
    /// The run, and whether its results are read.
    filter: RunFilter,
    /// The run's machines; a simply succeeded one's result waits here, small, to be counted.
    expected: Listed,
    results: HashMap<String, InstallResult>,
    /// Failed patch rows keyed by their parent installation-result id; matched to the run at the end.
    failed_by_result: HashMap<String, Vec<FailedPatch>>,
    info: HashMap<String, MachineInfo>,
    /// Post events: machines that simply succeeded are counted into groups at the end.
    fold: bool,
    /// Lower-cased ids listed even when they simply succeeded.
    watch: HashSet<String>,
    /// Groups counted by Resource Graph (live loads), merged with the folded ones at the end.
    groups: Vec<SucceededGroup>,
    /// Machines that simply succeeded, counted per group as their `resources` row gives their tags;
    /// keyed by [`group_hash`], groups whose hashes collide side by side.
    folded: HashMap<u64, Vec<SucceededGroup>, Prehashed>,
    pub rows_seen: u64,
    /// The run's machine list is complete: `maintenanceresources` rows came, then a row of
    /// another table (a JSON object has each table once), so a result can be judged countable.
    /// (A snapshot's rows that the run does not keep never come here: the first kept row of
    /// another table completes the list, before it is judged.)
    list_complete: bool,
    seen_list: bool,
}

impl RunCollector {
    pub fn new(correlation_id: &str) -> Self {
        Self {
            filter: RunFilter::new(correlation_id, true),
            expected: Listed::default(),
            results: HashMap::new(),
            failed_by_result: HashMap::new(),
            info: HashMap::new(),
            fold: false,
            watch: HashSet::new(),
            groups: Vec::new(),
            folded: HashMap::default(),
            rows_seen: 0,
            list_complete: false,
            seen_list: false,
        }
    }

    /// The collector of `query`'s run: after the window, machines that simply succeeded are
    /// counted, not listed (except watched ones).
    pub fn for_query(query: &RunQuery) -> Self {
        let mut c = Self::new(&query.correlation_id);
        c.fold = query.include_results;
        c.filter = RunFilter::new(&query.correlation_id, query.include_results);
        c.watch = query.watch.iter().map(|id| id.to_ascii_lowercase()).collect();
        c
    }

    /// A group of simply succeeded machines that Resource Graph counted.
    pub fn accept_group(&mut self, group: SucceededGroup) {
        self.rows_seen += 1;
        self.groups.push(group);
    }

    /// Feeds one row of `table`; a live row may carry its machine's `resources` row and its
    /// result joined on, each read as if it had come on its own.
    pub fn accept(&mut self, table: Table, mut row: Row) {
        self.count_row(table);
        let (machine, result) = (row.machine.take(), row.result.take());
        // The row itself first: a joined machine row is kept because its machine is now listed.
        self.keep(RunRow::digest(table, row, &self.filter));
        if let Some(result) = result {
            self.keep(RunRow::digest(Table::PatchInstallationResources, *result, &self.filter));
        }
        if let Some(machine) = machine {
            self.keep(RunRow::digest(Table::Resources, *machine, &self.filter));
        }
    }

    /// Feeds one row of `table` digested already (a snapshot's rows are digested where they are
    /// parsed, and those digested to nothing are dropped there).
    pub fn accept_digested(&mut self, table: Table, row: RunRow) {
        self.count_row(table);
        self.keep(Some(row));
    }

    fn count_row(&mut self, table: Table) {
        self.rows_seen += 1;
        if table == Table::MaintenanceResources {
            self.seen_list = true;
        } else if self.seen_list {
            self.list_complete = true;
        }
    }

    fn keep(&mut self, row: Option<RunRow>) {
        match row {
            Some(RunRow::Listing(l)) => self.keep_listing(l),
            Some(RunRow::Result(r)) => self.keep_result(r),
            Some(RunRow::Patch { result_id, patch }) => {
                self.failed_by_result.entry(result_id).or_default().push(patch);
            }
            Some(RunRow::Machine(m)) => self.keep_machine(m),
            None => {}
        }
    }

    /// Which rows this collector keeps, for digesting them where they are parsed.
    pub fn filter(&self) -> &RunFilter {
        &self.filter
    }

    fn keep_listing(&mut self, l: Listing) {
        if !l.machine_tags.is_empty() {
            let info = self.info.entry(l.machine.id.to_ascii_lowercase()).or_default();
            for (k, v) in l.machine_tags {
                info.tags.entry(k).or_insert(v);
            }
        }
        self.expected.insert_hashed(l.hash, l.machine);
    }

    fn keep_result(&mut self, r: ResultRow) {
        let ResultRow { key: machine_key, hash, result } = r;
        // Several results for one machine and run (a retried install): the latest one counts.
        let listed = self.expected.get_mut_hashed(hash, &machine_key);
        let waiting = listed.as_ref().and_then(|e| e.success);
        let existing = match (self.results.get(&machine_key), waiting) {
            (Some(r), _) => Some(r.last_modified),
            (None, Some(s)) => Some(s.finished),
            (None, None) => None,
        };
        if existing.is_some_and(|lm| lm >= result.last_modified) {
            return;
        }
        let countable = self.fold
            && self.list_complete
            && listed.is_some()
            && !self.watch.contains(&machine_key)
            && result_outcome(&result) == Outcome::Succeeded;
        let success = countable.then_some(Success { started: result.started, finished: result.last_modified });
        if let Some(entry) = listed {
            // Counted when its `resources` row comes (tables come whole, so every result is in by
            // then) or at the end; a retried install's later result still replaces it until then.
            entry.success = success;
        }
        if countable {
            self.results.remove(&machine_key);
        } else {
            self.results.insert(machine_key, result);
        }
    }

    fn keep_machine(&mut self, m: MachineRow) {
        let MachineRow { key, hash, info: row } = m;
        // A machine that simply succeeded is counted now that its tags are known (the row's
        // tags over those its `applyupdates` row carried), and not kept.
        if let Some(success) = self.expected.get_hashed(hash, &key).and_then(|e| e.success)
            && let Some(entry) = self.expected.remove(&key)
        {
            let mut all = self.info.remove(&key).map(|i| i.tags).unwrap_or_default();
            all.extend(row.tags);
            self.fold_machine(&key, entry, success, all);
            return;
        }
        let info = self.info.entry(key).or_default();
        info.os_type = row.os_type;
        info.power_state = row.power_state;
        info.agent_status = row.agent_status;
        info.tags.extend(row.tags);
    }

    /// Counts one machine that simply succeeded into its group, with the tags kept for it.
    fn fold_one(&mut self, key: &str, success: Success) {
        let Some(entry) = self.expected.remove(key) else { return };
        let tags = self.info.remove(key).map(|i| i.tags).unwrap_or_default();
        self.fold_machine(key, entry, success, tags);
    }

    /// Counts one machine that simply succeeded, taken off the list, into its group (by
    /// subscription, resource group and tags) and forgets it. Most machines join an existing
    /// group: nothing is allocated then but the sorted tags.
    fn fold_machine(&mut self, key: &str, entry: Entry, success: Success, tags: HashMap<String, String>) {
        let machine = entry.machine;
        self.results.remove(key);
        let tags: BTreeMap<String, String> = tags.into_iter().collect();
        let subscription = segment_after(key, "subscriptions");
        let resource_group = segment_after(key, "resourcegroups");
        let groups = self.folded.entry(group_hash(subscription, resource_group, &tags)).or_default();
        let at = match groups.iter().position(|g| g.key() == (subscription, resource_group, &tags)) {
            Some(at) => at,
            None => {
                groups.push(SucceededGroup {
                    subscription_id: subscription.to_owned(),
                    resource_group: resource_group.to_owned(),
                    tags: Arc::new(tags),
                    count: 0,
                    first_start: None,
                    last_finish: None,
                    longest_install: None,
                });
                groups.len() - 1
            }
        };
        let Some(group) = groups.get_mut(at) else { return };
        group.count += 1;
        group.first_start = group.first_start.into_iter().chain(success.started).min();
        group.last_finish = group.last_finish.into_iter().chain(success.finished).max();
        // As `SucceededGroup::merge` picks: the longest, ties to the greatest name.
        let name = crate::resource_id::last_segment(&machine.id);
        if let Some(seconds) = crate::summary::install_seconds(success.started, success.finished)
            && group.longest_install.as_ref().is_none_or(|(s, n)| (seconds, name) > (*s, n.as_str()))
        {
            group.longest_install = Some((seconds, name.to_owned()));
        }
    }

    /// Finishes collection: counts the machines that simply succeeded (post events) and attaches
    /// failed patches to this run's listed results.
    pub fn finish(mut self) -> RunData {
        if self.fold {
            self.fold_succeeded();
        }
        let mut failed_patches = Vec::new();
        for (machine_key, result) in &self.results {
            if let Some(patches) = self.failed_by_result.remove(&result.result_id) {
                for mut p in patches {
                    p.machine_id.clone_from(machine_key);
                    failed_patches.push(p);
                }
            }
        }
        let mut expected: Vec<ExpectedMachine> = self.expected.into_machines().collect();
        expected.sort_by_cached_key(|m| m.id.to_ascii_lowercase());
        RunData {
            expected,
            results: self.results,
            failed_patches,
            machines: self.info,
            succeeded: merge_groups(self.groups),
        }
    }

    /// [`hash_lower`] of the ids of the machines the run lists or that reported for it
    /// (a snapshot's stream drops other machines' `resources` rows by them).
    pub(super) fn machine_hashes(&self) -> HashSet64 {
        self.expected.hashes().chain(self.results.keys().map(|k| super::listed::hash_lower(k))).collect()
    }

    /// Counts every listed machine whose result simply succeeded (and is not watched): those
    /// kept small while their tags were awaited, and those whose result came before the run's
    /// machine list. Results of machines the run does not list stay listed.
    fn fold_succeeded(&mut self) {
        for (key, success) in self.expected.waiting() {
            self.fold_one(&key, success);
        }
        let late: Vec<(String, Success)> = self
            .results
            .iter()
            .filter(|(key, r)| {
                self.expected.contains(key) && !self.watch.contains(*key) && result_outcome(r) == Outcome::Succeeded
            })
            .map(|(key, r)| (key.clone(), Success { started: r.started, finished: r.last_modified }))
            .collect();
        for (key, success) in late {
            self.fold_one(&key, success);
        }
        self.groups.extend(self.folded.drain().flat_map(|(_, g)| g));
    }
}

/// The path segment after `key` (lower-cased ids only), e.g. the subscription of a machine id.
fn segment_after<'a>(lower_id: &'a str, key: &str) -> &'a str {
    let mut parts = lower_id.split('/');
    while let Some(p) = parts.next() {
        if p == key {
            return parts.next().unwrap_or_default();
        }
    }
    ""
}

/// A succeeded group's key, hashed: subscription, resource group and tags in order.
fn group_hash(subscription: &str, resource_group: &str, tags: &BTreeMap<String, String>) -> u64 {
    let parts = [subscription, resource_group].into_iter().chain(tags.iter().flat_map(|(k, v)| [k.as_str(), v]));
    parts.fold(0, |h, part| (h ^ hash_lower(part)).rotate_left(29).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// Run ids are compared lower-cased and without a trailing slash (ARG lower-cases some ids).
pub fn normalise_run_id(id: &str) -> String {
    id.trim().trim_end_matches('/').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RUN: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg/providers/microsoft.maintenance/maintenanceconfigurations/mc/providers/microsoft.maintenance/applyupdates/20230509150000";
    const VM: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/RG/providers/Microsoft.Compute/virtualMachines/vm1";

    fn row(v: Value) -> Row {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn collector_matches_run_case_insensitively_and_attaches_failed_patches() {
        let mut c = RunCollector::new(&RUN.to_uppercase());
        c.accept(
            Table::MaintenanceResources,
            row(json!({"id": format!("{VM}/providers/microsoft.maintenance/applyupdates/20230509150000"), "type": "Microsoft.Maintenance/applyUpdates",
                      "properties": {"correlationId": RUN, "resourceId": VM}})),
        );
        let rid = format!("{}/patchInstallationResults/abc", VM.to_lowercase());
        c.accept(Table::PatchInstallationResources, row(json!({"id": format!("{rid}/softwarePatches/p1"), "type": "microsoft.compute/virtualmachines/patchinstallationresults/softwarepatches",
            "properties": {"installationState": "Failed", "patchName": "2023-05 Cumulative Update", "kbId": "5026361", "classifications": ["Security"]}})));
        c.accept(Table::PatchInstallationResources, row(json!({"id": rid, "type": "microsoft.compute/virtualmachines/patchinstallationresults",
            "properties": {"maintenanceRunId": RUN, "status": "Failed", "failedPatchCount": "1", "installedPatchCount": 3, "maintenanceWindowExceeded": "false",
                           "errorDetails": {"code": "PatchFailed", "message": "One or more updates failed", "details": [{"code": "0x80070643", "message": "Fatal error during installation"}]}}})));
        // A result of another run is ignored.
        c.accept(
            Table::PatchInstallationResources,
            row(json!({"id": format!("{rid}x"), "type": "microsoft.compute/virtualmachines/patchinstallationresults",
            "properties": {"maintenanceRunId": "/other"}})),
        );
        let data = c.finish();
        assert_eq!(data.expected.len(), 1);
        let r = &data.results[&VM.to_lowercase()];
        assert_eq!((r.failed, r.installed, r.window_exceeded), (1, 3, false));
        assert_eq!(
            r.errors,
            vec!["0x80070643: Fatal error during installation", "PatchFailed: One or more updates failed"]
        );
        assert_eq!(data.failed_patches.len(), 1);
        assert_eq!(data.failed_patches[0].kb_id.as_deref(), Some("5026361"));
    }

    #[test]
    fn applyupdate_without_resource_id_uses_its_parent() {
        let mut c = RunCollector::new(RUN);
        c.accept(
            Table::MaintenanceResources,
            row(json!({"id": format!("{VM}/providers/Microsoft.Maintenance/applyUpdates/x"), "type": "microsoft.maintenance/applyupdates", "properties": {"correlationId": RUN}})),
        );
        assert_eq!(c.finish().expected[0].id, VM);
    }

    #[test]
    fn machine_rows_give_power_state_and_os() {
        let mut c = RunCollector::new(RUN);
        c.accept(Table::Resources, row(json!({"id": VM, "type": "Microsoft.Compute/virtualMachines", "tags": {"PatchOwner": "db"},
            "properties": {"storageProfile": {"osDisk": {"osType": "Windows"}}, "extended": {"instanceView": {"powerState": {"code": "PowerState/deallocated"}}}}})));
        let info = &c.finish().machines[&VM.to_lowercase()];
        assert_eq!(info.power_state.as_deref(), Some("deallocated"));
        assert_eq!(info.os_type.as_deref(), Some("Windows"));
        assert_eq!(info.tags["PatchOwner"], "db");
    }

    #[test]
    fn markers_are_found_ignoring_ascii_case() {
        let id = "/subscriptions/s/resourceGroups/RG/providers/Microsoft.Compute/virtualMachines/vm/patchInstallationResults/1";
        let at = id.find("/patchInstallationResults/").unwrap();
        assert_eq!(find_ignore_ascii_case(id, "/patchinstallationresults/"), Some(at));
        assert_eq!(find_ignore_ascii_case(id, "/PATCHINSTALLATIONRESULTS/"), Some(at));
        assert_eq!(find_ignore_ascii_case("Pp", "p"), Some(0));
        assert_eq!(find_ignore_ascii_case("xxaab", "aab"), Some(2), "overlapping candidates");
        assert_eq!(find_ignore_ascii_case("/a", "/ab"), None, "needle longer than what is left");
        assert_eq!(find_ignore_ascii_case("", "/"), None);
        assert_eq!(find_ignore_ascii_case("abc", ""), None);
        assert_eq!(find_ignore_ascii_case("é/X", "/x"), Some(2));
        assert_eq!(parent_of(id, "/patchinstallationresults/").as_deref(), Some(&*id[..at].to_ascii_lowercase()));
        assert_eq!(parent_of(id, "/softwarepatches/"), None);
    }
}
