//! Where run data comes from: a snapshot file, snapshot text, or Azure Resource Graph.

use std::{path::PathBuf, sync::Arc, time::Duration};

use patchwatch_azure::{
    http::AzureError,
    resource_graph::{LoadProgress, ResourceGraphClient},
};
use patchwatch_fleet::{Fleet, collect::FleetCollector};
use patchwatch_model::rundata::{RunData, RunQuery, rows::RunCollector, snapshot};
use patchwatch_state::{loads::Loads, store::StateError};
use time::OffsetDateTime;
use tracing::{info, warn};

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
    /// Saved load progress could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
}

impl RunDataError {
    /// Retrying later can help (throttling, outages), as opposed to a broken snapshot file.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Snapshot { .. } => None,
            Self::SnapshotRead { .. } => Some(SNAPSHOT_RETRY),
            Self::Graph(e) => Some(e.retry_after()),
            Self::State(_) => Some(SNAPSHOT_RETRY),
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
                    let mut collector = RunCollector::for_query(&query);
                    snapshot::read_into(file, &mut collector)
                        .map_err(|problem| RunDataError::Snapshot { path, problem })?;
                    Ok(collector.finish())
                })
                .await
                .map_err(|e| RunDataError::Snapshot { path: PathBuf::from("(task)"), problem: e.to_string() })?
            }
            Self::SnapshotText(text) => snapshot::parse(text.as_bytes(), query)
                .map_err(|problem| RunDataError::Snapshot { path: PathBuf::from("(embedded)"), problem }),
            Self::ResourceGraph(client) => client.load_run(query, None).await.map_err(|i| i.error.into()),
        }
    }

    /// As [`RunDataSource::load`]; a Resource Graph load that stops early (its time budget spent,
    /// throttled) saves what it read under the run and `phase` in `loads`, and the next call
    /// goes on from there. Snapshots load whole.
    pub async fn load_resumable(&self, query: &RunQuery, loads: &Loads, phase: &str) -> Result<RunData, RunDataError> {
        let Self::ResourceGraph(client) = self else { return self.load(query).await };
        let run = &query.correlation_id;
        let resume = match loads.get(run, phase).await? {
            // Unreadable progress (an older format) is no reason to fail: start over.
            Some(bytes) => serde_json::from_slice::<LoadProgress>(&bytes).ok(),
            None => None,
        };
        if let Some(r) = &resume {
            info!(pages = r.len(), "Resuming the run's Resource Graph load from saved progress.");
        }
        match client.load_run(query, resume).await {
            Ok(data) => {
                loads.clear(run, phase).await?;
                Ok(data)
            }
            Err(stopped) => {
                // Only a load that ran out of time or was throttled goes on from where it
                // stopped; any other failure (a refused skip token, unreadable saved pages, a
                // truncated answer) or progress too large to keep starts over next time.
                let goes_on = matches!(stopped.error, AzureError::Unfinished { .. } | AzureError::Throttled { .. })
                    && stopped.progress.resumable
                    && !stopped.progress.is_empty();
                let kept = if goes_on {
                    let bytes = serde_json::to_vec(&stopped.progress).unwrap_or_default();
                    loads.save(run, phase, &bytes).await
                } else {
                    loads.clear(run, phase).await
                };
                match kept {
                    Ok(()) if goes_on => info!(pages = stopped.progress.len(), "Saved the run load's progress."),
                    Ok(()) => {}
                    // The load fails anyway; the next delivery starts over.
                    Err(e) => warn!(error = %e, "The run load's progress could not be saved or cleared."),
                }
                Err(stopped.error.into())
            }
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
