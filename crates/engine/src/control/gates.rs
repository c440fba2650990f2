//! Gates on the pre event: may this run go ahead?
//!
//! - change gate: an approved change covers the run's window (approvals received through the
//!   ITSM webhook, or ServiceNow's change_request table);
//! - ring gate: the previous ring's latest run finished within limits (from run history).
//!
//! A gate passes, fails with a reason, or cannot decide (and its `undecided` policy says what
//! that counts as).

use time::OffsetDateTime;

use patchwatch_model::{
    event::MaintenanceEvent,
    settings::{ChangeGate, ChangeSource, GateSpec, RingGate, Undecided},
    text::{format_time, glob},
};
use patchwatch_state::{approvals::Approvals, history::History};

use crate::channels::Channels;

/// What one gate said.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Pass(String),
    Fail(String),
    Undecided(String),
}

/// One gate's decision for a run.
#[derive(Clone, Debug)]
pub struct Decision {
    pub gate: String,
    pub verdict: Verdict,
    /// Whether the run must not go ahead because of it (a failure, or an undecided fail-closed gate).
    pub blocks: bool,
}

impl Decision {
    pub fn reason(&self) -> &str {
        match &self.verdict {
            Verdict::Pass(r) | Verdict::Fail(r) | Verdict::Undecided(r) => r,
        }
    }
}

/// What the gates read.
#[derive(Debug)]
pub struct Inputs<'a> {
    pub history: &'a History,
    pub approvals: &'a Approvals,
    pub channels: &'a Channels,
}

/// The gates that apply to a configuration.
pub fn applicable<'a>(
    gates: &'a [GateSpec],
    rings: &std::collections::BTreeMap<String, String>,
    event: &MaintenanceEvent,
) -> Vec<&'a GateSpec> {
    let name = event.configuration_name();
    gates
        .iter()
        .filter(|g| {
            g.configuration.as_deref().is_none_or(|p| glob(p, name) || glob(p, &event.maintenance_configuration_id))
                && g.ring.as_deref().is_none_or(|r| rings.get(r).is_some_and(|p| glob(p, name)))
        })
        .collect()
}

/// Evaluates every check of a gate; the first that does not pass decides.
pub async fn evaluate(gate: &GateSpec, event: &MaintenanceEvent, inputs: &Inputs<'_>) -> Decision {
    let mut passes = Vec::new();
    let mut verdict = None;
    if let Some(ring) = &gate.previous_ring {
        match ring_check(ring, event, inputs.history).await {
            Verdict::Pass(r) => passes.push(r),
            other => verdict = Some(other),
        }
    }
    if verdict.is_none()
        && let Some(change) = &gate.change
    {
        match change_check(change, event, inputs).await {
            Verdict::Pass(r) => passes.push(r),
            other => verdict = Some(other),
        }
    }
    let verdict = verdict.unwrap_or_else(|| Verdict::Pass(passes.join("; ")));
    let blocks = match &verdict {
        Verdict::Pass(_) => false,
        Verdict::Fail(_) => true,
        Verdict::Undecided(_) => gate.undecided == Undecided::FailClosed,
    };
    Decision { gate: gate.name.clone(), verdict, blocks }
}

async fn ring_check(ring: &RingGate, event: &MaintenanceEvent, history: &History) -> Verdict {
    let mut checked = Vec::new();
    for pattern in &ring.configurations {
        let run = match history.latest_matching(pattern, event.start).await {
            Ok(Some(r)) => r,
            Ok(None) => return Verdict::Undecided(format!("no run of {pattern} is recorded before this one")),
            Err(e) => return Verdict::Undecided(format!("run history unreadable: {e}")),
        };
        let age = event.start - run.window_start;
        if age > time::Duration::days(i64::from(ring.max_age_days)) {
            return Verdict::Undecided(format!(
                "the latest run of {} ({}) is {} days old, more than the {} allowed",
                run.configuration,
                format_time(run.window_start),
                age.whole_days(),
                ring.max_age_days
            ));
        }
        let name = format!("{} run of {}", run.configuration, format_time(run.window_start));
        let total = run.total.max(1) as f64;
        let failed = run.failed + run.window_exceeded;
        let failed_pct = failed as f64 * 100.0 / total;
        if failed_pct > ring.max_failed_percent {
            return Verdict::Fail(format!(
                "{name}: {failed} of {} machines failed ({failed_pct:.0}%, limit {}%)",
                run.total, ring.max_failed_percent
            ));
        }
        for (patch, machines) in &run.failed_patches {
            let is = |kb: &String| {
                let norm = |s: &str| s.trim().trim_start_matches("KB").trim_start_matches("kb").to_ascii_lowercase();
                norm(kb) == norm(patch)
            };
            if ring.blocking_kbs.iter().any(is) {
                return Verdict::Fail(format!("{name}: blocking patch {patch} failed on {machines} machine(s)"));
            }
            let pct = *machines as f64 * 100.0 / total;
            if let Some(limit) = ring.max_kb_failed_percent
                && pct > limit
            {
                return Verdict::Fail(format!(
                    "{name}: {patch} failed on {machines} of {} machines ({pct:.0}%, limit {limit}%)",
                    run.total
                ));
            }
        }
        if let Some(limit) = ring.max_no_result
            && run.no_result > limit
        {
            return Verdict::Fail(format!("{name}: {} machines reported no result (limit {limit})", run.no_result));
        }
        checked.push(format!("{name}: {} ({failed} of {} failed)", run.verdict, run.total));
    }
    Verdict::Pass(checked.join("; "))
}

async fn change_check(change: &ChangeGate, event: &MaintenanceEvent, inputs: &Inputs<'_>) -> Verdict {
    let name = event.configuration_name();
    let window = format!("{} – {}", format_time(event.start), format_time(event.end));
    match change.source {
        ChangeSource::Itsm => match inputs.approvals.covering(name, event.start, event.end).await {
            Err(e) => Verdict::Undecided(format!("approvals unreadable: {e}")),
            Ok(decisions) => {
                if let Some(d) = decisions.iter().find(|d| d.approved) {
                    Verdict::Pass(format!("change {} approved by {} covers {window}", d.change, d.by))
                } else if let Some(d) = decisions.first() {
                    Verdict::Fail(format!("change {} covering {window} was rejected by {}", d.change, d.by))
                } else {
                    Verdict::Fail(format!("no approved change covers the window {window}"))
                }
            }
        },
        ChangeSource::Servicenow => {
            let channel = change.servicenow.as_deref().unwrap_or_default();
            let Some(client) = inputs.channels.servicenow(channel) else {
                return Verdict::Undecided(format!("ServiceNow channel {channel:?} is not configured"));
            };
            match client.approved_changes(&change.configuration_field, name).await {
                Err(e) => Verdict::Undecided(format!("ServiceNow could not be asked: {e}")),
                Ok(changes) => {
                    let covers = |c: &crate::channels::servicenow::ChangeRequest| {
                        let parse = crate::channels::servicenow::parse_date;
                        matches!((parse(&c.start_date), parse(&c.end_date)), (Some(s), Some(e)) if s <= event.start && e >= event.end)
                    };
                    match changes.iter().find(|c| covers(c)) {
                        Some(c) => Verdict::Pass(format!("ServiceNow change {} is approved for {window}", c.number)),
                        None => Verdict::Fail(format!("no approved ServiceNow change covers the window {window}")),
                    }
                }
            }
        }
    }
}

/// The latest moment a cancellation is still honoured: ten minutes before the start, or the
/// event's own cut-off if that is earlier.
pub fn cancel_deadline(event: &MaintenanceEvent) -> OffsetDateTime {
    let ten_before = event.start - time::Duration::minutes(10);
    event.cancellation_cutoff.map_or(ten_before, |c| c.min(ten_before))
}
