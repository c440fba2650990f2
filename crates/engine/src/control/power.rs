//! Machine power around a run: on the pre event start the run's deallocated or stopped Azure
//! VMs (Update Manager silently skips them otherwise); after the post event deallocate exactly
//! those again.
//!
//! Each machine patchwatch starts gets a record (`power/<run>/<machine>`), created before the
//! start call, so a redelivered pre event starts nothing twice and the post event stops only
//! what patchwatch started.

use patchwatch_model::resource_id::MachineId;
use std::{sync::Arc, time::Duration};

use futures::{StreamExt, stream};

use time::OffsetDateTime;
use tracing::{info, warn};

use patchwatch_azure::{
    arm::{ArmClient, COMPUTE_API},
    http::AzureError,
};
use patchwatch_model::rundata::RunData;
use patchwatch_state::{
    keys,
    power::{PowerState, PoweredMachine},
    store::{StateError, StateStore},
};

/// What one power pass did.
#[derive(Debug, Default)]
pub struct PowerReport {
    pub changed: Vec<String>,
    pub already: Vec<String>,
    /// Machine and error; transient errors make the event worth retrying.
    pub failed: Vec<(String, String)>,
    pub transient: bool,
}

/// The run's Azure VMs that are deallocated or stopped, with that state (Arc machines cannot be
/// started from Azure).
pub fn stopped_vms(data: &RunData) -> Vec<(String, String)> {
    let mut ids: Vec<(String, String)> = data
        .expected
        .iter()
        .filter(|m| m.id.to_ascii_lowercase().contains("/providers/microsoft.compute/virtualmachines/"))
        .filter_map(|m| {
            let state = data.machines.get(&m.id.to_ascii_lowercase())?.power_state.as_deref()?.to_ascii_lowercase();
            (state == "deallocated" || state == "stopped").then(|| (m.id.clone(), state))
        })
        .collect();
    ids.sort();
    ids.dedup_by(|a, b| a.0.eq_ignore_ascii_case(&b.0));
    ids
}

fn transient(e: &AzureError) -> bool {
    !matches!(e, AzureError::Status { status: 400 | 403 | 404 | 409, .. })
}

/// How long a `starting` claim holds before another delivery may take it over (a crashed start).
pub const CLAIM: Duration = Duration::from_secs(120);

/// The run a start pass acts for and the clients it acts through: what every step of the pass
/// needs, passed as one value.
#[derive(Clone, Copy, Debug)]
pub struct PowerRun<'a> {
    pub arm: &'a ArmClient,
    pub store: &'a Arc<dyn StateStore>,
    pub run_id: &'a str,
    /// The time the power records carry (and a stuck claim is measured against).
    pub now: OffsetDateTime,
}

/// Starts `machines` for `run.run_id`, at most `concurrency` at a time. `machines` gives each
/// machine's state before (`deallocated` or `stopped`), so the post event can restore it.
pub async fn start(
    run: PowerRun<'_>,
    machines: &[(String, String)],
    concurrency: usize,
) -> Result<PowerReport, StateError> {
    let results: Vec<Result<(String, Outcome), StateError>> = stream::iter(machines.iter().cloned())
        .map(|(m, before)| run.start_one(m, before))
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    collect(results)
}

impl PowerRun<'_> {
    /// Claims `m`'s power record, then starts it; a machine already claimed is left alone.
    async fn start_one(self, m: String, before: String) -> Result<(String, Outcome), StateError> {
        // Ids come from run data: validated before they can shape an ARM URL.
        let id = match MachineId::parse(&m) {
            Ok(id) => id,
            Err(e) => return Ok((m, Outcome::Failed(format!("not started: invalid machine id: {e}"), false))),
        };
        let k = keys::power(self.run_id, &m);
        let record = PoweredMachine {
            machine_id: m.clone(),
            run_id: self.run_id.to_owned(),
            state: PowerState::Starting,
            before: Some(before),
            updated: self.now,
            error: None,
        };
        let data = serde_json::to_vec(&record).map_err(|e| StateError::Unavailable(e.to_string()))?;
        let Some(etag) = self.claim(&k, &data).await? else { return Ok((m, Outcome::Already)) };
        match self.arm.action(id.resource(), "start", COMPUTE_API, None).await {
            Ok(_) => {
                let done = PoweredMachine { state: PowerState::Started, ..record };
                let data = serde_json::to_vec(&done).map_err(|e| StateError::Unavailable(e.to_string()))?;
                if self.store.replace(&k, &data, &etag).await?.is_none() {
                    warn!(machine = %m, "The power record changed while starting; the machine is started but may not be stopped after the run.");
                }
                Ok((m, Outcome::Changed))
            }
            Err(e) => {
                // Not started: forget the claim (only while it is still ours) so the post
                // event does not stop a machine patchwatch never started, and a redelivery may try again.
                self.store.delete(&k, Some(&etag)).await?;
                Ok((m, Outcome::Failed(e.to_string(), transient(&e))))
            }
        }
    }

    /// Writes the `starting` record at `k`, answering its etag, or `None` when another delivery
    /// holds it (or has already started the machine).
    async fn claim(&self, k: &str, data: &[u8]) -> Result<Option<String>, StateError> {
        if let Some(etag) = self.store.create(k, data).await? {
            return Ok(Some(etag));
        }
        match self.store.get(k).await? {
            // A claim stuck in "starting" past its hold (a crashed delivery) is taken over,
            // by compare-and-swap, so two deliveries never both own it.
            Some(v) if self.is_stuck_claim(&v.data) => self.store.replace(k, data, &v.etag).await,
            _ => Ok(None),
        }
    }

    /// A record still `starting` after [`CLAIM`]: its delivery crashed before finishing.
    fn is_stuck_claim(&self, data: &[u8]) -> bool {
        serde_json::from_slice::<PoweredMachine>(data).is_ok_and(|r| {
            r.state == PowerState::Starting
                && self.now - r.updated > time::Duration::try_from(CLAIM).unwrap_or_default()
        })
    }
}

/// Returns what patchwatch started for `run_id` to its state before (deallocated or stopped).
pub async fn stop(
    arm: &ArmClient,
    store: &Arc<dyn StateStore>,
    run_id: &str,
    concurrency: usize,
    now: OffsetDateTime,
) -> Result<PowerReport, StateError> {
    let keys = store.list(&keys::power_prefix(run_id)).await?;
    let results: Vec<Result<(String, Outcome), StateError>> = stream::iter(keys)
        .map(|k| async move {
            let Some(v) = store.get(&k).await? else { return Ok((k, Outcome::Already)) };
            let Ok(record) = serde_json::from_slice::<PoweredMachine>(&v.data) else {
                return Ok((k, Outcome::Already));
            };
            if record.state != PowerState::Started {
                return Ok((record.machine_id, Outcome::Already));
            }
            // Back to how it was: a stopped (still allocated) VM is powered off, not deallocated.
            let action = if record.before.as_deref() == Some("stopped") { "powerOff" } else { "deallocate" };
            let id = match MachineId::parse(&record.machine_id) {
                Ok(id) => id,
                Err(e) => {
                    let why = format!("not stopped: invalid machine id: {e}");
                    return Ok((record.machine_id, Outcome::Failed(why, false)));
                }
            };
            match arm.action(id.resource(), action, COMPUTE_API, None).await {
                Ok(_) => {
                    let m = record.machine_id.clone();
                    let done = PoweredMachine { state: PowerState::Stopped, updated: now, ..record };
                    let data = serde_json::to_vec(&done).map_err(|e| StateError::Unavailable(e.to_string()))?;
                    store.replace(&k, &data, &v.etag).await?;
                    Ok((m, Outcome::Changed))
                }
                Err(e) => Ok((record.machine_id, Outcome::Failed(e.to_string(), transient(&e)))),
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    collect(results)
}

enum Outcome {
    Changed,
    Already,
    Failed(String, bool),
}

fn collect(results: Vec<Result<(String, Outcome), StateError>>) -> Result<PowerReport, StateError> {
    let mut report = PowerReport::default();
    for r in results {
        let (m, outcome) = r?;
        match outcome {
            Outcome::Changed => report.changed.push(m),
            Outcome::Already => report.already.push(m),
            Outcome::Failed(e, transient) => {
                warn!(machine = %m, error = %e, "Power action failed.");
                report.transient |= transient;
                report.failed.push((m, e));
            }
        }
    }
    report.changed.sort();
    info!(
        changed = report.changed.len(),
        already = report.already.len(),
        failed = report.failed.len(),
        "Power pass done."
    );
    Ok(report)
}

/// How long before retrying a power pass that hit a transient error.
pub const RETRY: Duration = Duration::from_secs(60);
