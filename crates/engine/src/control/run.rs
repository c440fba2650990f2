//! What the pipeline does around a run besides notifying: on the pre event, the gates (and a
//! cancellation when one blocks) and powering machines on; after the post event, powering off.

use patchwatch_model::resource_id::RunId;
use std::time::Duration;

use serde_json::json;
use tracing::{error, info, warn};

use super::{
    gates::{self, Decision, Inputs},
    power,
    settings::GateMode,
};
use crate::{
    azure::{arm::MAINTENANCE_CANCEL_API, resource_graph::GraphError},
    event::MaintenanceEvent,
    ledger::{Claim, DeliveryId, Finish},
    notice::{Notice, Severity},
    pipeline::{DeliveryReport, Pipeline},
    render::format_time,
    routing::glob,
    rundata::RunData,
};

/// What the control steps did for one event.
#[derive(Debug, Default)]
pub struct ControlOutcome {
    /// The run was cancelled (now or by an earlier delivery).
    pub cancelled: bool,
    pub reports: Vec<DeliveryReport>,
    /// Something must be tried again: the event is redelivered.
    pub retry: Option<(String, Duration)>,
}

impl ControlOutcome {
    fn retry(&mut self, reason: String, after: Duration) {
        self.retry = Some(match self.retry.take() {
            Some((r, a)) => (format!("{r}; {reason}"), a.max(after)),
            None => (reason, after),
        });
    }

    fn absorb(&mut self, results: Vec<patchwatch_model::notice::NoticeResult>) {
        for (report, result) in results {
            if let Err((reason, after)) = result {
                self.retry(reason, after);
            }
            self.reports.push(report);
        }
    }
}

/// Why a cancellation did not happen.
enum CancelError {
    Retry(String, Duration),
    Refused(String),
    /// The deadline passed before the call could be made.
    TooLate,
}

const CANCEL_TARGET: &str = "control.cancel";

impl Pipeline {
    /// Pre event: evaluate the gates, cancel the run if one blocks (before the deadline, in
    /// enforce mode), notify the decision; then start the run's stopped machines.
    pub async fn before_run(&self, event: &MaintenanceEvent, data: &RunData) -> ControlOutcome {
        let mut out = ControlOutcome::default();
        let Some(routing) = &self.routing else { return out };
        let control = &routing.control;
        let run = patchwatch_model::event::last_segment(&event.correlation_id);
        let cancel_id = DeliveryId {
            run_id: &event.correlation_id,
            configuration: event.configuration_name(),
            phase: "pre",
            target: CANCEL_TARGET,
        };
        let applicable = gates::applicable(&control.gates, &routing.rings, event);
        // Only a gate can have cancelled the run: without one there is nothing to look up.
        if !applicable.is_empty()
            && let Ok(Some(r)) = self.ledger.status(&cancel_id).await
            && r.state == patchwatch_state::ledger::DeliveryState::Sent
        {
            out.cancelled = true;
        }
        if !applicable.is_empty() {
            let inputs = Inputs { history: &self.history, approvals: &self.approvals, channels: &self.channels };
            let decisions: Vec<Decision> =
                futures::future::join_all(applicable.iter().map(|g| gates::evaluate(g, event, &inputs))).await;
            for d in &decisions {
                info!(gate = %d.gate, verdict = ?d.verdict, blocks = d.blocks, "Gate evaluated.");
            }
            let blocking: Vec<(&&super::settings::GateSpec, &Decision)> =
                applicable.iter().zip(&decisions).filter(|(_, d)| d.blocks).collect();
            if !blocking.is_empty() {
                let enforce = blocking.iter().any(|(g, _)| g.mode == GateMode::Enforce);
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
                let deadline = gates::cancel_deadline(event);
                let now = (self.clock)();
                let (outcome, severity, title, what) = if out.cancelled {
                    ("cancelled", Severity::Critical, "cancelled by a gate", "The run was cancelled.".to_owned())
                } else if !enforce {
                    (
                        "dry-run",
                        Severity::Warning,
                        "would be cancelled (dry run)",
                        "The gate is in dry-run mode: nothing was cancelled and the run goes ahead.".to_owned(),
                    )
                } else if now >= deadline {
                    (
                        "too-late",
                        Severity::Critical,
                        "NOT cancelled: the cancel deadline has passed",
                        format!(
                            "The run was not cancelled: it is {}, past the cancel deadline {} (10 minutes before the start, or the event's cut-off if earlier). The run goes ahead unless someone stops it.",
                            format_time(now),
                            format_time(deadline)
                        ),
                    )
                } else {
                    match self.cancel(event, &cancel_id, deadline).await {
                        Ok(detail) => {
                            out.cancelled = true;
                            (
                                "cancelled",
                                Severity::Critical,
                                "cancelled by a gate",
                                format!("The run was cancelled ({detail})."),
                            )
                        }
                        Err(CancelError::Retry(reason, after)) => {
                            // Nothing is announced yet: the redelivery cancels or reports the failure.
                            out.retry(format!("cancel: {reason}"), after);
                            return out;
                        }
                        Err(CancelError::TooLate) => (
                            "too-late",
                            Severity::Critical,
                            "NOT cancelled: the cancel deadline has passed",
                            format!(
                                "The run was not cancelled: the deadline {} (10 minutes before the start, or the event's cut-off if earlier) passed before the cancellation could be made. The run goes ahead unless someone stops it.",
                                format_time(deadline)
                            ),
                        ),
                        Err(CancelError::Refused(e)) => (
                            "cancel-refused",
                            Severity::Critical,
                            "could NOT be cancelled",
                            format!("The cancellation was refused: {e}. The run goes ahead unless someone stops it."),
                        ),
                    }
                };
                let notice = Notice {
                    kind: "gate",
                    key: format!("gate:{}:{outcome}", event.correlation_id.to_ascii_lowercase()),
                    severity,
                    title: format!("{}: run {run} {title}", event.configuration_name()),
                    configuration: Some(event.configuration_name().to_owned()),
                    facts: Vec::new(),
                    text: format!("Why: {}\n{what}", reasons.join("; ")),
                    link: None,
                }
                .fact("Configuration", event.configuration_name())
                .fact("Window", format!("{} – {}", format_time(event.start), format_time(event.end)))
                .fact("Cancel deadline", format_time(deadline))
                .fact("Run", event.correlation_id.clone());
                let mut channels: Vec<String> = blocking.iter().flat_map(|(g, _)| g.notify.iter().cloned()).collect();
                channels.sort();
                channels.dedup();
                out.absorb(self.send_notice(&notice, &channels).await);
            } else {
                info!(gates = decisions.len(), "Every gate passed; the run may go ahead.");
            }
        }
        if out.cancelled {
            return out;
        }
        // Once the run has started, starting machines helps nothing, and a machine started by a
        // late redelivery could outlive the post event that stops it.
        let started = (self.clock)() >= event.start;
        if started && control.power.is_some() {
            warn!("The pre event arrived after the run started; no machines are started.");
        }
        if let (Some(p), Some(arm), false) = (&control.power, &self.arm, started)
            && p.configurations.iter().any(|g| glob(g, event.configuration_name()))
        {
            let machines = power::stopped_vms(data);
            if machines.is_empty() {
                return out;
            }
            info!(machines = machines.len(), "Starting the run's stopped machines.");
            match power::start(
                arm,
                self.ledger.store(),
                &event.correlation_id,
                &machines,
                p.concurrency,
                (self.clock)(),
            )
            .await
            {
                Err(e) => out.retry(e.to_string(), Duration::from_secs(30)),
                Ok(report) => {
                    if report.transient {
                        out.retry(format!("{} machine(s) could not be started yet", report.failed.len()), power::RETRY);
                    }
                    let started = power::records(self.ledger.store(), &event.correlation_id).await.unwrap_or_default();
                    let names: Vec<&str> = started.iter().map(|r| patchwatch_model::event::last_segment(&r.machine_id)).collect();
                    // Start is accepted (202), not awaited: the run's summary shows any machine that did not come up.
                    let failed: Vec<String> =
                        report.failed.iter().map(|(m, e)| format!("{}: {e}", patchwatch_model::event::last_segment(m))).collect();
                    let notice = Notice {
                        kind: "power",
                        key: format!("power-on:{}:{}", event.correlation_id.to_ascii_lowercase(), names.join(",")),
                        severity: if failed.is_empty() { Severity::Info } else { Severity::Warning },
                        title: format!(
                            "{}: started {} stopped machine(s) for run {run}",
                            event.configuration_name(),
                            names.len()
                        ),
                        configuration: Some(event.configuration_name().to_owned()),
                        facts: Vec::new(),
                        text: if p.stop_after {
                            "patchwatch returns exactly these machines to their earlier state (deallocated or stopped) after the run.".to_owned()
                        } else {
                            "They stay running after the run (stop_after = false).".to_owned()
                        },
                        link: None,
                    }
                    .fact("Start requested", names.join(", "))
                    .fact("Could not start", failed.join("; "));
                    if !p.notify.is_empty() && !report.changed.is_empty() {
                        out.absorb(self.send_notice(&notice, &p.notify).await);
                    }
                }
            }
        }
        out
    }

    /// Post event: deallocate what patchwatch started for this run.
    pub async fn after_run(&self, event: &MaintenanceEvent) -> ControlOutcome {
        let mut out = ControlOutcome::default();
        let (Some(routing), Some(arm)) = (&self.routing, &self.arm) else { return out };
        let Some(p) = &routing.control.power else { return out };
        if !p.stop_after || !p.configurations.iter().any(|g| glob(g, event.configuration_name())) {
            return out;
        }
        match power::stop(arm, self.ledger.store(), &event.correlation_id, p.concurrency, (self.clock)()).await {
            Err(e) => out.retry(e.to_string(), Duration::from_secs(30)),
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
        &self,
        event: &MaintenanceEvent,
        id: &DeliveryId<'_>,
        deadline: time::OffsetDateTime,
    ) -> Result<String, CancelError> {
        let Some(arm) = &self.arm else {
            return Err(CancelError::Refused("no Azure credential to call the cancel API".to_owned()));
        };
        let token = match self.ledger.claim(id, (self.clock)()).await {
            Ok(Claim::Claimed(t)) => t,
            Ok(Claim::AlreadySent(r)) => return Ok(r.detail.unwrap_or_default()),
            Ok(Claim::FailedForGood(r)) => return Err(CancelError::Refused(r.error.unwrap_or_default())),
            Ok(Claim::Busy { .. }) => {
                return Err(CancelError::Retry("another instance is cancelling".to_owned(), Duration::from_secs(15)));
            }
            Err(e) => return Err(CancelError::Retry(e.to_string(), Duration::from_secs(15))),
        };
        // The claim and the token took time: the deadline is checked again right before the call,
        // and the call may not outlast it.
        let left = Duration::try_from(deadline - (self.clock)()).unwrap_or(Duration::ZERO);
        if left.is_zero() {
            let _ = self
                .ledger
                .finish(token, Finish::Retry { error: "cancel deadline passed".to_owned() }, (self.clock)())
                .await;
            return Err(CancelError::TooLate);
        }
        let body = json!({ "properties": { "status": "Cancel" } });
        // Event intake validated the id already; parsing it again is what the ARM client takes.
        let run = match RunId::parse(&event.correlation_id) {
            Ok(run) => run,
            Err(e) => {
                let error = format!("invalid run id: {e}");
                let _ = self.ledger.finish(token, Finish::Failed { error: error.clone() }, (self.clock)()).await;
                return Err(CancelError::Refused(error));
            }
        };
        let (finish, result) = match arm.put(run.resource(), MAINTENANCE_CANCEL_API, &body, Some(left)).await {
            Ok(r) => {
                let status = r.body.pointer("/properties/status").and_then(|s| s.as_str()).unwrap_or("(no status)");
                let detail = format!("Update Manager answered {} with status {status}", r.status);
                warn!(run = %event.correlation_id, status, "Run cancelled by a gate.");
                (Finish::Sent { subject: "cancel".to_owned(), detail: detail.clone() }, Ok(detail))
            }
            Err(e @ GraphError::Status { status: 400 | 403 | 404 | 409, .. }) => {
                error!(error = %e, "The cancel API refused; not retried.");
                (Finish::Failed { error: e.to_string() }, Err(CancelError::Refused(e.to_string())))
            }
            Err(e) => {
                warn!(error = %e, "The cancel API could not be reached; retrying.");
                let after = e.retry_after().min(Duration::from_secs(60));
                (Finish::Retry { error: e.to_string() }, Err(CancelError::Retry(e.to_string(), after)))
            }
        };
        if let Err(e) = self.ledger.finish(token, finish, (self.clock)()).await {
            error!(error = %e, "The cancellation could not be recorded.");
        }
        result
    }
}
