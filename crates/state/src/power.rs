//! Records of the machines patchwatch powered on for a run (`power/<run>/<machine>`), so a
//! redelivered pre event starts nothing twice and the post event stops only what patchwatch
//! started.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{
    keys,
    store::{StateError, StateStore},
};

/// Where a machine patchwatch powers stands (stored as `starting`, `started`, `stopped`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerState {
    /// Claimed: the start call is being made.
    Starting,
    Started,
    /// Returned to its earlier state after the run.
    Stopped,
}

/// A machine patchwatch powered on for a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PoweredMachine {
    pub machine_id: String,
    pub run_id: String,
    pub state: PowerState,
    /// The power state before patchwatch started it (`deallocated` or `stopped`), restored after the run.
    #[serde(default)]
    pub before: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated: OffsetDateTime,
    pub error: Option<String>,
}

/// Machines patchwatch started for a run and their state.
pub async fn records(store: &Arc<dyn StateStore>, run_id: &str) -> Result<Vec<PoweredMachine>, StateError> {
    let mut out = Vec::new();
    for k in store.list(&keys::power_prefix(run_id)).await? {
        if let Some(v) = store.get(&k).await?
            && let Ok(r) = serde_json::from_slice::<PoweredMachine>(&v.data)
        {
            out.push(r);
        }
    }
    out.sort_by(|a, b| a.machine_id.cmp(&b.machine_id));
    Ok(out)
}
