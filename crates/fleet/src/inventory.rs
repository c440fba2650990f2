//! The fleet as Resource Graph describes it: machines with their patch settings, maintenance
//! configurations, static assignments, dynamic scopes, assessments and earlier runs.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use time::OffsetDateTime;

/// A tag value, the name matched case-insensitively (ARG keeps tag names as written).
fn tag<'a>(tags: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    tags.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// Azure VM or Arc-enabled server: the patch settings and the `az` fix differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MachineKind {
    AzureVm,
    Arc,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum OsType {
    Windows,
    Linux,
    #[default]
    Unknown,
}

impl OsType {
    pub fn parse(s: &str) -> Self {
        if s.to_ascii_lowercase().contains("windows") {
            Self::Windows
        } else if s.trim().is_empty() {
            Self::Unknown
        } else {
            Self::Linux
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Windows => "Windows",
            Self::Linux => "Linux",
            Self::Unknown => "Unknown",
        }
    }
}

/// A VM or Arc machine from the `resources` table.
#[derive(Clone, Debug)]
pub struct Machine {
    /// Resource id as ARG gave it (case preserved for display and links).
    pub id: String,
    pub name: String,
    pub subscription: String,
    pub resource_group: String,
    pub location: String,
    pub kind: MachineKind,
    pub os: OsType,
    /// `osProfile.{windows,linux}Configuration.patchSettings.patchMode` (Arc: `osProfile.*.patchSettings` too).
    pub patch_mode: Option<String>,
    /// `patchSettings.assessmentMode`.
    pub assessment_mode: Option<String>,
    /// `patchSettings.automaticByPlatformSettings.bypassPlatformSafetyChecksOnUserSchedule`.
    pub bypass_safety_checks: Option<bool>,
    /// `running`, `deallocated`, … (Azure VMs); Arc agent status for Arc machines.
    pub power_state: Option<String>,
    /// Tag names as given; look them up case-insensitively ([`Machine::tag`]).
    pub tags: BTreeMap<String, String>,
}

impl Machine {
    /// Lower-cased id: the join key of every table.
    pub fn key(&self) -> String {
        self.id.to_ascii_lowercase()
    }
    /// A tag value, the name matched case-insensitively (ARG keeps tag names as written).
    pub fn tag(&self, name: &str) -> Option<&str> {
        tag(&self.tags, name)
    }
}

/// `maintenanceWindow` of a maintenance configuration, as written (parsed by `patchwatch_schedule`).
#[derive(Clone, Debug, Default)]
pub struct MaintenanceWindow {
    /// `YYYY-MM-DD hh:mm` in `time_zone`.
    pub start_date_time: String,
    /// `YYYY-MM-DD hh:mm` in `time_zone`; none means never.
    pub expiration_date_time: Option<String>,
    /// `HH:mm`.
    pub duration: String,
    /// A Windows time zone name such as `W. Europe Standard Time` (IANA names are accepted too).
    pub time_zone: String,
    /// `Day`, `Week Saturday,Sunday`, `Month Second Tuesday Offset4`, …
    pub recur_every: String,
}

/// A maintenance configuration (schedule).
#[derive(Clone, Debug)]
pub struct Configuration {
    pub id: String,
    pub name: String,
    pub subscription: String,
    pub resource_group: String,
    pub location: String,
    /// `InGuestPatch` for Update Manager schedules; others are not patch schedules.
    pub maintenance_scope: String,
    pub window: MaintenanceWindow,
    /// `IfRequired`, `Never`/`NeverReboot`, `Always`/`AlwaysReboot`.
    pub reboot_setting: Option<String>,
    pub windows_classifications: Vec<String>,
    pub linux_classifications: Vec<String>,
    pub kb_include: Vec<String>,
    pub kb_exclude: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

impl Configuration {
    pub fn key(&self) -> String {
        self.id.to_ascii_lowercase()
    }
    /// The classifications this schedule installs on `os`.
    pub fn classifications(&self, os: OsType) -> &[String] {
        match os {
            OsType::Linux => &self.linux_classifications,
            _ => &self.windows_classifications,
        }
    }
    pub fn tag(&self, name: &str) -> Option<&str> {
        tag(&self.tags, name)
    }
}

/// A machine assigned to a configuration by name (`configurationassignments` under the machine).
#[derive(Clone, Debug)]
pub struct StaticAssignment {
    pub id: String,
    /// Lower-cased machine id.
    pub machine: String,
    /// Lower-cased configuration id.
    pub configuration: String,
}

/// How the tag filter of a dynamic scope combines its tags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TagOperator {
    /// The machine has at least one of the tags (with one of its values).
    #[default]
    Any,
    /// The machine has every tag (each with one of its values).
    All,
}

/// `properties.filter` of a subscription-level assignment. Empty lists match everything.
#[derive(Clone, Debug, Default)]
pub struct ScopeFilter {
    pub resource_types: Vec<String>,
    pub resource_groups: Vec<String>,
    pub locations: Vec<String>,
    pub os_types: Vec<String>,
    /// Tag name to accepted values (an empty list accepts any value).
    pub tags: BTreeMap<String, Vec<String>>,
    pub tag_operator: TagOperator,
}

/// A dynamic scope: a subscription-level (or resource-group-level) assignment with a filter.
#[derive(Clone, Debug)]
pub struct DynamicScope {
    pub id: String,
    pub name: String,
    /// The subscription the scope covers.
    pub subscription: String,
    /// Set when the assignment sits on a resource group instead of the subscription.
    pub resource_group: Option<String>,
    /// Lower-cased configuration id.
    pub configuration: String,
    pub filter: ScopeFilter,
}

/// The latest assessment of one machine (`patchassessmentresults/latest`).
#[derive(Clone, Debug, Default)]
pub struct Assessment {
    /// `Succeeded`, `Failed`, `InProgress`, …
    pub status: String,
    pub last_assessed: Option<OffsetDateTime>,
    /// `availablePatchCountByClassification`, by [`CLASSIFICATIONS`] index.
    pub available: [u32; CLASSIFICATIONS.len()],
    pub reboot_pending: bool,
    pub os: OsType,
}

/// `availablePatchCountByClassification` keys (lower-cased) and their labels, in the order the
/// portal lists them. A fixed array instead of a map: 50,000 assessments, nine counts each.
pub const CLASSIFICATIONS: [(&str, &str); 9] = [
    ("critical", "Critical"),
    ("security", "Security"),
    ("updaterollup", "Update rollup"),
    ("featurepack", "Feature pack"),
    ("servicepack", "Service pack"),
    ("definition", "Definition"),
    ("tools", "Tools"),
    ("updates", "Updates"),
    ("other", "Other"),
];

impl Assessment {
    /// Critical plus security patches pending.
    pub fn critical_or_security(&self) -> u32 {
        self.available[0].saturating_add(self.available[1])
    }

    /// Adds a count under its classification key (any case); unknown keys count as `other`.
    pub fn set_available(&mut self, key: &str, n: u32) {
        let at =
            CLASSIFICATIONS.iter().position(|(k, _)| k.eq_ignore_ascii_case(key)).unwrap_or(CLASSIFICATIONS.len() - 1);
        self.available[at] = self.available[at].saturating_add(n);
    }
}

/// A pending critical or security patch from the assessment (`…/softwarepatches`).
#[derive(Clone, Debug)]
pub struct PendingPatch {
    /// Lower-cased row id (one row per machine and patch).
    pub id: String,
    /// Lower-cased machine id.
    pub machine: String,
    pub name: String,
    pub kb_id: Option<String>,
    pub version: Option<String>,
    pub classifications: Vec<String>,
    /// `Critical`, `Important`, … (Windows only).
    pub msrc_severity: Option<String>,
    pub published: Option<OffsetDateTime>,
}

/// How one machine ended in an earlier run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PastOutcome {
    Succeeded,
    Failed,
    /// Ran out of window: patches left uninstalled.
    WindowExceeded,
    /// No result at all: deallocated at patch time, agent down.
    NoShow,
}

/// One earlier run of a configuration, from ARG (`applyupdates` and installation results) or
/// from the run history patchwatch keeps.
#[derive(Clone, Debug)]
pub struct PastRun {
    /// Lower-cased run id (the `applyupdates` correlation id).
    pub run_id: String,
    /// Lower-cased configuration id when known; else only the name.
    pub configuration: String,
    pub configuration_name: String,
    pub start: OffsetDateTime,
    /// Lower-cased machine id (or name, from the history) to outcome. Keys are shared across
    /// runs (one allocation per machine, not per run and machine).
    pub machines: HashMap<Arc<str>, PastOutcome>,
    /// Machines that succeeded but are not listed (the history keeps only the others).
    pub succeeded_uncounted: usize,
    /// Longest install on one machine, in minutes.
    pub longest_install_minutes: Option<u32>,
    /// Every install's duration, in minutes (for the median).
    pub install_minutes: Vec<u32>,
    /// KB or package to machines that failed it.
    pub failed_patches: BTreeMap<String, usize>,
}

/// Everything the lint and the digest read.
#[derive(Clone, Debug, Default)]
pub struct Fleet {
    /// Sorted by lower-cased id.
    pub machines: Vec<Machine>,
    pub configurations: Vec<Configuration>,
    pub assignments: Vec<StaticAssignment>,
    pub scopes: Vec<DynamicScope>,
    /// Keyed by lower-cased machine id.
    pub assessments: HashMap<String, Assessment>,
    pub pending: Vec<PendingPatch>,
    /// Oldest first.
    pub runs: Vec<PastRun>,
}
