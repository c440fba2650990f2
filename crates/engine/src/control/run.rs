//! What the pipeline does around a run besides notifying: on the pre event, the gates (and a
//! cancellation when one blocks), powering machines on and muting their alerts; after the post
//! event, unmuting and powering off.

use patchwatch_model::resource_id::last_segment;
use std::time::Duration;

use serde_json::json;
use time::OffsetDateTime;
use tracing::{error, info, warn};

use patchwatch_azure::{arm::MAINTENANCE_CANCEL_API, http::AzureError};
use patchwatch_model::{
    event::MaintenanceEvent,
    failure::{CONTROL_RETRY, Delivered, Deliveries, MIN_RETRY, Retry, STATE_RETRY},
    notice::{Notice, NoticeKind, Severity},
    resource_id::RunId,
    rundata::RunData,
    settings::{GateMode, GateSpec},
    text::{format_time, glob},
};
use patchwatch_state::ledger::{DeliveryId, DeliveryState, Finish, Once};

use super::{
    gates::{self, Decision, Inputs},
    power, quiet,
};
use crate::pipeline::Pipeline;

/// What the control steps did for one event.
#[derive(Debug, Default)]
pub struct ControlOutcome {
    /// The run was cancelled (now or by an earlier delivery).
    pub cancelled: bool,
    /// Notices sent, and what must be tried again (the event is redelivered).
    pub done: Deliveries,
    /// The gates that cancelled it, when this delivery evaluated them.
    pub cancelled_by: Option<String>,
}

impl ControlOutcome {
    fn retry(&mut self, reason: String, after: Duration) {
        self.done.retry(Retry::new(reason, after));
    }

    fn absorb(&mut self, results: Vec<Delivered>) {
        self.done.absorb(results);
    }
}

/// Why a cancellation did not happen.
enum CancelError {
    Retry(Retry),
    Refused(String),
    /// The deadline passed before the call could be made.
    TooLate,
}

const CANCEL_TARGET: &str = "control.cancel";
/// The longest a failed cancel call waits before the event is retried (the deadline is near).
const CANCEL_RETRY_CAP: Duration = Duration::from_secs(60);

/// What a blocking gate did to the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GateOutcome {
    Cancelled,
    /// The gate is in dry-run mode: nothing was cancelled.
    DryRun,
    /// The cancel deadline passed first.
    TooLate,
    /// Update Manager refused the cancellation.
    CancelRefused,
}

impl GateOutcome {
    /// Part of the notice's identity: one notice per run and outcome.
    fn as_str(self) -> &'static str {
        match self {
            GateOutcome::Cancelled => "cancelled",
            GateOutcome::DryRun => "dry-run",
            GateOutcome::TooLate => "too-late",
            GateOutcome::CancelRefused => "cancel-refused",
        }
    }
}

/// What a blocking gate led to, for its notice.
struct GateResult {
    outcome: GateOutcome,
    severity: Severity,
    title: &'static str,
    what: String,
}

/// Pre event: evaluate the gates, cancel the run if one blocks (before the deadline, in
/// enforce mode), notify the decision; then start the run's stopped machines.
pub async fn before_run(p: &Pipeline, event: &MaintenanceEvent, data: &RunData) -> ControlOutcome {
    let mut out = ControlOutcome::default();
    let Some(routing) = &p.routing else { return out };
    let applicable = gates::applicable(&routing.control.gates, &routing.rings, event);
    // A cancel that must be retried announces nothing yet and starts nothing.
    if !applicable.is_empty() && run_gates(p, event, &applicable, &mut out).await == Gates::Hold {
        return out;
    }
    if out.cancelled {
        return out;
    }
    power_on(p, event, data, &mut out).await;
    out.done.extend(quiet::mute(p, event, data).await);
    out
}

/// Whether the pre event may go on to power on machines.
#[derive(Debug, PartialEq, Eq)]
enum Gates {
    Done,
    /// A cancellation must be retried: nothing else happens on this delivery.
    Hold,
}

/// Evaluates the applicable gates; when any blocks, cancels (or says why not) and notifies.
async fn run_gates(
    p: &Pipeline,
    event: &MaintenanceEvent,
    applicable: &[&GateSpec],
    out: &mut ControlOutcome,
) -> Gates {
    let cancel_id = cancel_id(event);
    // Only a gate can have cancelled the run: without one there is nothing to look up.
    if let Ok(Some(r)) = p.ledger().status(&cancel_id).await
        && r.state == DeliveryState::Sent
    {
        out.cancelled = true;
    }
    let inputs = Inputs { history: &p.history, approvals: &p.approvals, channels: &p.notifier.channels };
    let decisions: Vec<Decision> =
        futures::future::join_all(applicable.iter().map(|g| gates::evaluate(g, event, &inputs))).await;
    for d in &decisions {
        info!(gate = %d.gate, verdict = ?d.verdict, blocks = d.blocks, "Gate evaluated.");
    }
    let blocking: Vec<(&GateSpec, &Decision)> =
        applicable.iter().copied().zip(&decisions).filter(|(_, d)| d.blocks).collect();
    if blocking.is_empty() {
        info!(gates = decisions.len(), "Every gate passed; the run may go ahead.");
        return Gates::Done;
    }
    let enforce = blocking.iter().any(|(g, _)| g.mode == GateMode::Enforce);
    let result = match decide(p, event, enforce, out.cancelled).await {
        Ok(result) => result,
        Err(retry) => {
            // Nothing is announced yet: the redelivery cancels or reports the failure.
            out.retry(format!("cancel: {}", retry.reason), retry.after);
            return Gates::Hold;
        }
    };
    out.cancelled |= result.outcome == GateOutcome::Cancelled;
    if out.cancelled {
        let names: Vec<&str> = blocking.iter().map(|(g, _)| g.name.as_str()).collect();
        out.cancelled_by = Some(names.join(", "));
    }
    let notice = gate_notice(event, &blocking, &result);
    let mut channels: Vec<String> = blocking.iter().flat_map(|(g, _)| g.notify.iter().cloned()).collect();
    channels.sort();
    channels.dedup();
    out.absorb(p.notifier.send_notice(&notice, &channels).await);
    Gates::Done
}

/// What a blocking gate does: already cancelled, a dry run, too late, or a cancel now.
async fn decide(p: &Pipeline, event: &MaintenanceEvent, enforce: bool, cancelled: bool) -> Result<GateResult, Retry> {
    let deadline = gates::cancel_deadline(event);
    let now = p.now();
    let result = |outcome, severity, title, what| Ok(GateResult { outcome, severity, title, what });
    if cancelled {
        return result(
            GateOutcome::Cancelled,
            Severity::Critical,
            "cancelled by a gate",
            "The run was cancelled.".to_owned(),
        );
    }
    if !enforce {
        return result(
            GateOutcome::DryRun,
            Severity::Warning,
            "would be cancelled (dry run)",
            "The gate is in dry-run mode: nothing was cancelled and the run goes ahead.".to_owned(),
        );
    }
    if now >= deadline {
        return result(
            GateOutcome::TooLate,
            Severity::Critical,
            "NOT cancelled: the cancel deadline has passed",
            format!(
                "The run was not cancelled: it is {}, past the cancel deadline {} (10 minutes before the start, or the event's cut-off if earlier). The run goes ahead unless someone stops it.",
                format_time(now),
                format_time(deadline)
            ),
        );
    }
    match cancel(p, event, &cancel_id(event), deadline).await {
        Ok(detail) => result(
            GateOutcome::Cancelled,
            Severity::Critical,
            "cancelled by a gate",
            format!("The run was cancelled ({detail})."),
        ),
        Err(CancelError::Retry(retry)) => Err(retry),
        Err(CancelError::TooLate) => result(
            GateOutcome::TooLate,
            Severity::Critical,
            "NOT cancelled: the cancel deadline has passed",
            format!(
                "The run was not cancelled: the deadline {} (10 minutes before the start, or the event's cut-off if earlier) passed before the cancellation could be made. The run goes ahead unless someone stops it.",
                format_time(deadline)
            ),
        ),
        Err(CancelError::Refused(e)) => result(
            GateOutcome::CancelRefused,
            Severity::Critical,
            "could NOT be cancelled",
            format!("The cancellation was refused: {e}. The run goes ahead unless someone stops it."),
        ),
    }
}

fn cancel_id(event: &MaintenanceEvent) -> DeliveryId<'_> {
    DeliveryId {
        run_id: &event.correlation_id,
        configuration: event.configuration_name(),
        phase: "pre",
        target: CANCEL_TARGET,
    }
}

/// The notice a blocking gate sends: what it decided and why.
fn gate_notice(event: &MaintenanceEvent, blocking: &[(&GateSpec, &Decision)], result: &GateResult) -> Notice {
    let reasons: Vec<String> = blocking
        .iter()
        .map(|(g, d)| {
            let how = match d.verdict {
                gates::Verdict::Undecided(_) => " (could not decide; fail-closed)",
                _ => "",
            };
            format!("{}{how}: {}", g.name, d.reason())
        })
        .collect();
    let run = last_segment(&event.correlation_id);
    Notice {
        kind: NoticeKind::Gate,
        key: format!("gate:{}:{}", event.correlation_id.to_ascii_lowercase(), result.outcome.as_str()),
        severity: result.severity,
        title: format!("{}: run {run} {}", event.configuration_name(), result.title),
        configuration: Some(event.configuration_name().to_owned()),
        facts: Vec::new(),
        text: format!("Why: {}\n{}", reasons.join("; "), result.what),
        link: None,
        recipients: Vec::new(),
        actions: Vec::new(),
    }
    .fact("Configuration", event.configuration_name())
    .fact("Window", format!("{} – {}", format_time(event.start), format_time(event.end)))
    .fact("Cancel deadline", format_time(gates::cancel_deadline(event)))
    .fact("Run", event.correlation_id.clone())
}

/// Starts the run's stopped machines, when power is configured for it and the run has not
/// started: once it has, starting machines helps nothing, and a machine started by a late
/// redelivery could outlive the post event that stops it.
async fn power_on(p: &Pipeline, event: &MaintenanceEvent, data: &RunData, out: &mut ControlOutcome) {
    let Some(routing) = &p.routing else { return };
    let started = p.now() >= event.start;
    if started && routing.control.power.is_some() {
        warn!("The pre event arrived after the run started; no machines are started.");
    }
    let (Some(power), Some(arm), false) = (&routing.control.power, &p.arm, started) else { return };
    if !power.configurations.iter().any(|g| glob(g, event.configuration_name())) {
        return;
    }
    let machines = power::stopped_vms(data);
    if machines.is_empty() {
        return;
    }
    info!(machines = machines.len(), "Starting the run's stopped machines.");
    let store = p.ledger().store();
    let report = match power::start(
        power::PowerRun { arm, store, run_id: &event.correlation_id, now: p.now() },
        &machines,
        power.concurrency,
    )
    .await
    {
        Ok(report) => report,
        Err(e) => return out.retry(e.to_string(), STATE_RETRY),
    };
    if report.transient {
        out.retry(format!("{} machine(s) could not be started yet", report.failed.len()), power::RETRY);
    }
    let started = patchwatch_state::power::records(store, &event.correlation_id).await.unwrap_or_default();
    let names: Vec<&str> = started.iter().map(|r| last_segment(&r.machine_id)).collect();
    // Start is accepted (202), not awaited: the run's summary shows any machine that did not come up.
    let failed: Vec<String> = report.failed.iter().map(|(m, e)| format!("{}: {e}", last_segment(m))).collect();
    let notice = Notice {
        kind: NoticeKind::Power,
        key: format!("power-on:{}:{}", event.correlation_id.to_ascii_lowercase(), names.join(",")),
        severity: if failed.is_empty() { Severity::Info } else { Severity::Warning },
        title: format!(
            "{}: started {} stopped machine(s) for run {}",
            event.configuration_name(),
            names.len(),
            last_segment(&event.correlation_id)
        ),
        configuration: Some(event.configuration_name().to_owned()),
        facts: Vec::new(),
        text: if power.stop_after {
            "patchwatch returns exactly these machines to their earlier state (deallocated or stopped) after the run."
                .to_owned()
        } else {
            "They stay running after the run (stop_after = false).".to_owned()
        },
        link: None,
        recipients: Vec::new(),
        actions: Vec::new(),
    }
    .fact("Start requested", names.join(", "))
    .fact("Could not start", failed.join("; "));
    if !power.notify.is_empty() && !report.changed.is_empty() {
        out.absorb(p.notifier.send_notice(&notice, &power.notify).await);
    }
}

/// Post event: delete the run's alert processing rules; deallocate what patchwatch started for this run.
pub async fn after_run(p: &Pipeline, event: &MaintenanceEvent) -> ControlOutcome {
    let mut out = ControlOutcome::default();
    out.done.extend(quiet::unmute(p, event).await);
    let (Some(routing), Some(arm)) = (&p.routing, &p.arm) else { return out };
    let Some(power) = &routing.control.power else { return out };
    if !power.stop_after || !power.configurations.iter().any(|g| glob(g, event.configuration_name())) {
        return out;
    }
    match power::stop(arm, p.ledger().store(), &event.correlation_id, power.concurrency, p.now()).await {
        Err(e) => out.retry(e.to_string(), STATE_RETRY),
        Ok(report) => {
            if report.transient {
                out.retry(format!("{} machine(s) could not be stopped yet", report.failed.len()), power::RETRY);
            }
            if !report.changed.is_empty() {
                info!(
                    machines = report.changed.len(),
                    "Returned the machines patchwatch started to their earlier state."
                );
            }
        }
    }
    out
}

/// Cancels the run through ARM, once (the ledger remembers a cancellation that went through).
async fn cancel(
    p: &Pipeline,
    event: &MaintenanceEvent,
    id: &DeliveryId<'_>,
    deadline: OffsetDateTime,
) -> Result<String, CancelError> {
    let Some(arm) = &p.arm else {
        return Err(CancelError::Refused("no Azure credential to call the cancel API".to_owned()));
    };
    let once = p.ledger().once(id, &p.notifier.clock, |_| async {
        let result = call_cancel(p, arm, event, deadline).await;
        let finish = match &result {
            Ok(detail) => Finish::Sent { subject: "cancel".to_owned(), detail: detail.clone() },
            Err(CancelError::TooLate) => Finish::Retry { error: "cancel deadline passed".to_owned() },
            Err(CancelError::Retry(r)) => Finish::Retry { error: r.reason.clone() },
            Err(CancelError::Refused(e)) => Finish::Failed { error: e.clone() },
        };
        (finish, result)
    });
    match once.await {
        Ok(Once::Acted(result)) => result,
        Ok(Once::Settled(r)) if r.state == DeliveryState::Sent => Ok(r.detail.unwrap_or_default()),
        Ok(Once::Settled(r)) => Err(CancelError::Refused(r.error.unwrap_or_default())),
        Ok(Once::Busy { retry_after }) => {
            Err(CancelError::Retry(Retry::new("another instance is cancelling", retry_after)))
        }
        Err(e) => Err(CancelError::Retry(Retry::new(e.to_string(), CONTROL_RETRY))),
    }
}

/// The cancel PUT itself, bounded by the time left before the deadline.
async fn call_cancel(
    p: &Pipeline,
    arm: &patchwatch_azure::arm::ArmClient,
    event: &MaintenanceEvent,
    deadline: OffsetDateTime,
) -> Result<String, CancelError> {
    // The claim and the token took time: the deadline is checked again right before the call,
    // and the call may not outlast it.
    let left = Duration::try_from(deadline - p.now()).unwrap_or(Duration::ZERO);
    if left.is_zero() {
        return Err(CancelError::TooLate);
    }
    // Event intake validated the id already; parsing it again is what the ARM client takes.
    let run = RunId::parse(&event.correlation_id).map_err(|e| CancelError::Refused(format!("invalid run id: {e}")))?;
    let body = json!({ "properties": { "status": "Cancel" } });
    match arm.put(run.resource(), MAINTENANCE_CANCEL_API, &body, Some(left)).await {
        Ok(r) => {
            let status = r.body.pointer("/properties/status").and_then(|s| s.as_str()).unwrap_or("(no status)");
            warn!(run = %event.correlation_id, status, "Run cancelled by a gate.");
            Ok(format!("Update Manager answered {} with status {status}", r.status))
        }
        Err(e @ AzureError::Status { status: 400 | 403 | 404 | 409, .. }) => {
            error!(error = %e, "The cancel API refused; not retried.");
            Err(CancelError::Refused(e.to_string()))
        }
        Err(e) => {
            warn!(error = %e, "The cancel API could not be reached; retrying.");
            let after = e.retry_after().min(CANCEL_RETRY_CAP).max(MIN_RETRY);
            Err(CancelError::Retry(Retry::new(e.to_string(), after)))
        }
    }
}
