//! Run data: which machines a run expected, what each reported, which patches failed.
//!
//! One seam, two sources (a snapshot file or Azure Resource Graph), one row parser
//! ([`rows::RunCollector`]).

pub mod rows;
pub mod snapshot;
mod stream;

use std::collections::HashMap;

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

/// Everything known about one run.
#[derive(Clone, Debug, Default)]
pub struct RunData {
    pub expected: Vec<ExpectedMachine>,
    /// Keyed by lower-cased machine id.
    pub results: HashMap<String, InstallResult>,
    pub failed_patches: Vec<FailedPatch>,
    /// Keyed by lower-cased machine id; may cover only some machines.
    pub machines: HashMap<String, MachineInfo>,
}

/// What to load.
#[derive(Clone, Debug)]
pub struct RunQuery {
    pub correlation_id: String,
    pub subscription_ids: Vec<String>,
    /// Pre events need only the machine list.
    pub include_results: bool,
    /// Run start: bounds the search for failed patch rows.
    pub since: Option<OffsetDateTime>,
}
