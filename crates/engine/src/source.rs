//! Where run data comes from: a snapshot file, snapshot text, or Azure Resource Graph.

use std::{path::PathBuf, sync::Arc, time::Duration};

use patchwatch_azure::{http::AzureError, resource_graph::ResourceGraphClient};
use patchwatch_fleet::{Fleet, collect::FleetCollector};
use patchwatch_model::rundata::{RunData, RunQuery, rows::RunCollector, snapshot};
use time::OffsetDateTime;

/// A snapshot being replaced is readable again within seconds.
const SNAPSHOT_RETRY: Duration = Duration::from_secs(30);

/// Why run data could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RunDataError {
    #[error("snapshot {path}: {problem}")]
    Snapshot { path: PathBuf, problem: String },
    /// The file could not be read (being replaced, permissions): worth retrying.
    #[error("snapshot {path}: {problem}")]
    SnapshotRead { path: PathBuf, problem: String },
    #[error(transparent)]
    Graph(#[from] AzureError),
}

impl RunDataError {
    /// Retrying later can help (throttling, outages), as opposed to a broken snapshot file.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Snapshot { .. } => None,
            Self::SnapshotRead { .. } => Some(SNAPSHOT_RETRY),
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
                    // Streamed: a 50,000-machine snapshot with its fleet is hundreds of MB.
                    let file = std::fs::File::open(&path)
                        .map_err(|e| RunDataError::SnapshotRead { path: path.clone(), problem: e.to_string() })?;
                    let mut collector = RunCollector::new(&query.correlation_id);
                    snapshot::read_into(file, &mut collector)
                        .map_err(|problem| RunDataError::Snapshot { path, problem })?;
                    Ok(collector.finish())
                })
                .await
                .map_err(|e| RunDataError::Snapshot { path: PathBuf::from("(task)"), problem: e.to_string() })?
            }
            Self::SnapshotText(text) => snapshot::parse(text.as_bytes(), query)
                .map_err(|problem| RunDataError::Snapshot { path: PathBuf::from("(embedded)"), problem }),
            Self::ResourceGraph(client) => Ok(client.load_run(query).await?),
        }
    }

    /// Loads the whole fleet (machines, schedules, assignments, assessments, earlier runs) through
    /// the same row parser as runs. Also returns the newest timestamp a snapshot carried: a
    /// snapshot is judged as of when it was taken, live data as of now.
    pub async fn load_fleet(&self) -> Result<(Fleet, Option<OffsetDateTime>), RunDataError> {
        match self {
            Self::SnapshotFile(path) => {
                let path = path.clone();
                // Streamed from the file: a 50,000-machine snapshot is hundreds of MB.
                tokio::task::spawn_blocking(move || {
                    let file = std::fs::File::open(&path)
                        .map_err(|e| RunDataError::SnapshotRead { path: path.clone(), problem: e.to_string() })?;
                    let mut collector = FleetCollector::new();
                    snapshot::read_into(file, &mut collector)
                        .map_err(|problem| RunDataError::Snapshot { path, problem })?;
                    let newest = collector.newest();
                    Ok((collector.finish(), newest))
                })
                .await
                .map_err(|e| RunDataError::Snapshot { path: PathBuf::from("(task)"), problem: e.to_string() })?
            }
            Self::SnapshotText(text) => {
                let mut collector = FleetCollector::new();
                snapshot::parse_into(text.as_bytes(), &mut collector)
                    .map_err(|problem| RunDataError::Snapshot { path: PathBuf::from("(embedded)"), problem })?;
                let newest = collector.newest();
                Ok((collector.finish(), newest))
            }
            Self::ResourceGraph(client) => {
                let mut collector = FleetCollector::new();
                client.load_fleet(&mut collector).await?;
                Ok((collector.finish(), None))
            }
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
