//! Run data: which machines a run expected, what each reported, which patches failed.
//!
//! One seam, two sources (a snapshot file or Azure Resource Graph), one row parser
//! ([`rows::RunCollector`]).

pub mod digest;
mod listed;
pub mod rows;
pub mod snapshot;
mod stream;

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use serde::Serialize;

use time::OffsetDateTime;

/// A machine the run's `applyupdates` records say should be patched.
#[derive(Clone, Debug)]
pub struct ExpectedMachine {
    /// Resource id as ARG gave it (case preserved for display and links).
    pub id: String,
    pub resource_group: Option<String>,
}

/// One machine's installation result for the run.
#[derive(Clone, Debug)]
pub struct InstallResult {
    pub result_id: String,
    pub machine_id: String,
    pub resource_group: Option<String>,
    /// `NotStarted`, `InProgress`, `Failed`, `Succeeded`, `CompletedWithWarnings` (open set).
    pub status: String,
    pub installed: u32,
    pub failed: u32,
    pub pending: u32,
    pub window_exceeded: bool,
    /// `NotNeeded`, `Required`, `Started`, `Failed`, `Completed`.
    pub reboot_status: Option<String>,
    pub started: Option<OffsetDateTime>,
    pub last_modified: Option<OffsetDateTime>,
    pub os_type: Option<String>,
    pub errors: Vec<String>,
}

/// A patch whose installation failed on a machine of the run.
#[derive(Clone, Debug)]
pub struct FailedPatch {
    /// Lower-cased machine id.
    pub machine_id: String,
    pub name: String,
    pub kb_id: Option<String>,
    pub version: Option<String>,
    pub classifications: Vec<String>,
}

/// Facts about a machine from the `resources` table.
#[derive(Clone, Debug, Default)]
pub struct MachineInfo {
    pub os_type: Option<String>,
    /// `running`, `deallocated`, `stopped`, … (Azure VMs).
    pub power_state: Option<String>,
    /// Arc agent status: `Connected`, `Disconnected`, `Expired`.
    pub agent_status: Option<String>,
    pub tags: HashMap<String, String>,
}

/// Machines of a post event's run that simply succeeded (status `Succeeded`, no failed patch, within
/// the window, no reboot pending), counted per subscription, resource group and tags instead of
/// listed. A 50,000-machine run is mostly these: Resource Graph counts them server-side, and a
/// snapshot's collector folds them the same way, so both paths give the same summary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SucceededGroup {
    /// Lower-cased, from the machine id.
    pub subscription_id: String,
    /// Lower-cased, from the machine id.
    pub resource_group: String,
    /// The machines' string-valued Azure tags (every machine of a group has exactly these).
    #[serde(skip)]
    pub tags: Arc<BTreeMap<String, String>>,
    pub count: usize,
    pub first_start: Option<OffsetDateTime>,
    pub last_finish: Option<OffsetDateTime>,
    /// The longest install among them (whole seconds, machine name); ties go to the greatest name.
    pub longest_install: Option<(i64, String)>,
}

impl SucceededGroup {
    /// Adds `other` (same subscription, resource group and tags) into this group.
    pub fn merge(&mut self, other: &SucceededGroup) {
        self.count += other.count;
        self.first_start = [self.first_start, other.first_start].into_iter().flatten().min();
        self.last_finish = [self.last_finish, other.last_finish].into_iter().flatten().max();
        if other.longest_install > self.longest_install {
            self.longest_install.clone_from(&other.longest_install);
        }
    }

    /// The grouping key: groups with equal keys are merged.
    pub fn key(&self) -> (&str, &str, &BTreeMap<String, String>) {
        (&self.subscription_id, &self.resource_group, &self.tags)
    }
}

/// Merges groups with equal keys and sorts them by key, so that the same machines give the same
/// groups whatever order (or split) they arrived in.
pub fn merge_groups(groups: Vec<SucceededGroup>) -> Vec<SucceededGroup> {
    let mut merged: BTreeMap<(String, String, BTreeMap<String, String>), SucceededGroup> = BTreeMap::new();
    for g in groups {
        let key = (g.subscription_id.clone(), g.resource_group.clone(), (*g.tags).clone());
        match merged.get_mut(&key) {
            Some(existing) => existing.merge(&g),
            None => {
                merged.insert(key, g);
            }
        }
    }
    merged.into_values().collect()
}

/// Everything known about one run.
#[derive(Clone, Debug, Default)]
pub struct RunData {
    /// The listed machines: for a post event those that did not simply succeed (and watched ones),
    /// for a pre event every machine.
    pub expected: Vec<ExpectedMachine>,
    /// Keyed by lower-cased machine id.
    pub results: HashMap<String, InstallResult>,
    pub failed_patches: Vec<FailedPatch>,
    /// Keyed by lower-cased machine id; may cover only some machines.
    pub machines: HashMap<String, MachineInfo>,
    /// The post event's machines that simply succeeded, counted (sorted by key, merged).
    pub succeeded: Vec<SucceededGroup>,
}

/// What to load.
#[derive(Clone, Debug, Default)]
pub struct RunQuery {
    pub correlation_id: String,
    pub subscription_ids: Vec<String>,
    /// Pre events need only the machine list.
    pub include_results: bool,
    /// Run start: bounds the search for failed patch rows.
    pub since: Option<OffsetDateTime>,
    /// Lower-cased ids of machines to list even when they simply succeeded: the machines of open
    /// follow-ups, so that a later clean run can close them.
    pub watch: Vec<String>,
}
