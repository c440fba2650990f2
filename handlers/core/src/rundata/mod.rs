//! Run data: which machines a run expected, what each reported, which patches failed.
//!
//! One seam, two sources (a snapshot file or Azure Resource Graph), one row parser
//! ([`rows::RunCollector`]).

pub mod rows;
pub mod snapshot;

use std::{collections::HashMap, path::PathBuf, sync::Arc, time::Duration};

use time::OffsetDateTime;

use crate::azure::resource_graph::{GraphError, ResourceGraphClient};

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

/// Why run data could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RunDataError {
    #[error("snapshot {path}: {problem}")]
    Snapshot { path: PathBuf, problem: String },
    /// The file could not be read (being replaced, permissions): worth retrying.
    #[error("snapshot {path}: {problem}")]
    SnapshotRead { path: PathBuf, problem: String },
    #[error(transparent)]
    Graph(#[from] GraphError),
}

impl RunDataError {
    /// Retrying later can help (throttling, outages), as opposed to a broken snapshot file.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Snapshot { .. } => None,
            Self::SnapshotRead { .. } => Some(Duration::from_secs(30)),
            Self::Graph(e) => Some(e.retry_after()),
        }
    }
}

/// Where run data comes from.
#[derive(Clone, Debug)]
pub enum RunDataSource {
    /// A snapshot file, read on every load so that an edited file is picked up.
    SnapshotFile(PathBuf),
    /// Snapshot text held in memory (the embedded example, benchmarks).
    SnapshotText(Arc<str>),
    ResourceGraph(Arc<ResourceGraphClient>),
}

impl RunDataSource {
    pub async fn load(&self, query: &RunQuery) -> Result<RunData, RunDataError> {
        match self {
            Self::SnapshotFile(path) => {
                let path = path.clone();
                let query = query.clone();
                // Parsing a large snapshot is CPU work: keep it off the async workers.
                tokio::task::spawn_blocking(move || {
                    let bytes = std::fs::read(&path)
                        .map_err(|e| RunDataError::SnapshotRead { path: path.clone(), problem: e.to_string() })?;
                    snapshot::parse(&bytes, &query).map_err(|problem| RunDataError::Snapshot { path, problem })
                })
                .await
                .map_err(|e| RunDataError::Snapshot { path: PathBuf::from("(task)"), problem: e.to_string() })?
            }
            Self::SnapshotText(text) => snapshot::parse(text.as_bytes(), query)
                .map_err(|problem| RunDataError::Snapshot { path: PathBuf::from("(embedded)"), problem }),
            Self::ResourceGraph(client) => Ok(client.load_run(query).await?),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Self::SnapshotFile(p) => format!("snapshot {}", p.display()),
            Self::SnapshotText(_) => "embedded example snapshot".to_owned(),
            Self::ResourceGraph(c) => format!("Azure Resource Graph at {}", c.endpoint()),
        }
    }
}
