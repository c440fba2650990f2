//! Where run data comes from: a snapshot file, snapshot text, or Azure Resource Graph.

use std::{path::PathBuf, sync::Arc, time::Duration};

use patchwatch_azure::{http::AzureError, resource_graph::ResourceGraphClient};
use patchwatch_model::rundata::{RunData, RunQuery, snapshot};

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
