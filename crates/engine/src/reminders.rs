//! Follow-ups: after the first message, reminders until someone owns a failed run.
//!
//! A route with `remind_after = ["4h", "24h"]` opens a follow-up for every failed, incomplete or
//! window-exceeded part of a run it told someone about ([`open`]). The `reminders` timer (every
//! 15 minutes; `patchwatch remind` runs it once) walks them ([`run`]): a follow-up closes when
//! the run is acknowledged (ITSM, a one-click link), its ServiceNow incidents all left the open
//! states, or later runs of the configuration succeeded on every machine it is about. Otherwise
//! the latest due step is sent once through the ledger (phase `remind-<n>`), to the route's own
//! recipients, or for the last step to the `escalate_to` route's channels; steps that fell due
//! while the timer could not send are recorded as superseded, not sent late. A snooze holds the
//! steps until it ends.

use std::collections::HashSet;

use time::OffsetDateTime;
use tracing::{info, warn};

use patchwatch_model::{
    conditions::format_duration,
    event::{MaintenanceEvent, Phase},
    failure::{Delivered, Deliveries, DeliveryReport, DeliveryStatus},
    notice::{Notice, NoticeKind, Severity},
    resource_id::last_segment,
    routing::{ChannelSpec, Notification, RouteSpec},
    silence::{Candidate, MachineRef},
    summary::Outcome,
    text::{fnv64, format_time},
};
use patchwatch_state::{
    followups::{FollowUp, OpenMachine},
    history::RunRecord,
    ledger::{DeliveryId, Finish},
    store::StateError,
};

use crate::{links::LinkTarget, mail::file_stem, notifier::Target, pipeline::Pipeline};

/// Closed follow-ups and ended silences are kept this long (for `deliveries`, `silence list
/// --all` and audits), then pruned.
const KEEP_CLOSED_DAYS: i64 = 30;

/// Opens the follow-ups of a post event's planned notifications: one per route and owner group
/// whose route reminds and whose part did not succeed. Idempotent: a redelivery opens nothing new.
/// Only notifications that reached someone, or were deliberately silenced (the next step fires
/// after the silence), count: one refused for good or still to retry told nobody yet.
pub async fn open(
    p: &Pipeline,
    event: &MaintenanceEvent,
    plan: &[Notification],
    delivered: &[DeliveryReport],
) -> Result<usize, StateError> {
    let told_by = |n: &Notification| {
        let target = n.target();
        delivered.iter().any(|d| {
            d.target == target
                && matches!(d.outcome, DeliveryStatus::Sent | DeliveryStatus::Duplicate | DeliveryStatus::Silenced)
        })
    };
    if event.phase != Phase::Post {
        return Ok(0);
    }
    let Some(routing) = &p.routing else { return Ok(0) };
    let now = p.now();
    let mut opened = 0;
    let mut seen = HashSet::new();
    for n in plan {
        let Some(route) = routing.route(&n.route) else { continue };
        if !route.follows_up() || !n.summary.verdict.is_failure() || !seen.insert((n.route.clone(), n.group.clone())) {
            continue;
        }
        // Reminders are notices: they go to the route's channels that take notices (ServiceNow
        // keeps its incident, an action group its own alerting).
        let same: Vec<&Notification> = plan
            .iter()
            .filter(|m| m.route == n.route && m.group == n.group && m.receiver.is_none())
            .filter(|m| m.spec.takes_notices() && told_by(m))
            .collect();
        if same.is_empty() {
            continue;
        }
        let f = FollowUp {
            run_id: n.summary.run_id.clone(),
            configuration: n.summary.configuration_name.clone(),
            configuration_id: n.summary.configuration_id.clone(),
            route: n.route.clone(),
            group: n.group.clone(),
            verdict: n.summary.verdict,
            window_start: n.summary.window_start,
            first_sent: now,
            channels: same.iter().map(|m| m.channel.clone()).collect(),
            recipients: n.recipients.clone(),
            told: same.iter().map(|m| told(p, m)).collect(),
            machines: n
                .summary
                .machines
                .iter()
                .filter(|m| !matches!(m.outcome, Outcome::Succeeded | Outcome::CompletedWithWarnings))
                .map(|m| OpenMachine {
                    id: m.id.clone(),
                    name: m.name.clone(),
                    outcome: m.outcome,
                    tags: m.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                })
                .collect(),
            snoozed_until: None,
            snoozed_by: None,
            closed: None,
        };
        if p.followups.open(&f).await? {
            info!(route = %f.route, group = ?f.group, machines = f.machines.len(), "Follow-up opened.");
            opened += 1;
        }
    }
    Ok(opened)
}

/// Who a notification told, as a reminder says it: addresses for email, the channel otherwise.
fn told(p: &Pipeline, n: &Notification) -> String {
    match &n.spec {
        ChannelSpec::Email { to, .. } => {
            let list: Vec<String> = if !n.recipients.is_empty() {
                n.recipients.clone()
            } else if !to.is_empty() {
                to.clone()
            } else {
                p.notifier.email.to.iter().map(|m| m.email.to_string()).collect()
            };
            format!("{} (email: {})", n.channel, list.join(", "))
        }
        spec => format!("{} ({})", n.channel, spec.kind()),
    }
}

/// What one pass of the reminders timer did.
#[derive(Debug, Default)]
pub struct Pass {
    /// Follow-ups still open after the pass.
    pub open: usize,
    /// `(run name, route, why)` of those closed in this pass.
    pub closed: Vec<(String, String, String)>,
    pub deliveries: Deliveries,
}

/// What the `reminders` timer does every 15 minutes: the follow-ups ([`run`]), then the
/// assignment-alert groups and held alerts whose time has come ([`crate::inhibit::flush_due`]),
/// then messages patchwatch never processed and notices a background task could not send
/// ([`crate::undelivered::check`]). Everything is sent once through the ledger, so a repeated or
/// concurrent tick sends nothing more.
pub async fn tick(p: &Pipeline) -> Result<Pass, StateError> {
    // A state error in the follow-ups must not hold back the other two steps.
    let (mut pass, failed) = match run(p).await {
        Ok(pass) => (pass, None),
        Err(e) => (Pass::default(), Some(e)),
    };
    pass.deliveries.extend(crate::inhibit::flush_due(p).await);
    pass.deliveries.extend(crate::undelivered::check(p).await);
    match failed {
        Some(e) => Err(e),
        None => Ok(pass),
    }
}

/// Follow-ups handled at once: each is a few state reads and writes (network round trips on a
/// blob store), so a pass over thousands is bound by latency, not by the two cores.
const CONCURRENCY: usize = 8;

/// What one follow-up came to in a pass.
enum Step {
    Closed { run: String, target: String, reason: String },
    Open(Vec<Delivered>),
}

/// One pass over every follow-up: close what is owned or fixed, send each due step once.
pub async fn run(p: &Pipeline) -> Result<Pass, StateError> {
    let now = p.now();
    let all = p.followups.all().await?;
    let history = HistoryCache::default();
    let open: Vec<&FollowUp> = all.iter().filter(|f| f.closed.is_none()).collect();
    let mut pass = Pass::default();
    // CONCURRENCY at a time, each batch's futures made only when it starts (memory stays flat).
    for batch in open.chunks(CONCURRENCY) {
        for step in futures::future::join_all(batch.iter().map(|f| follow(p, f, now, &history))).await {
            match step? {
                Step::Closed { run, target, reason } => pass.closed.push((run, target, reason)),
                Step::Open(sent) => {
                    pass.open += 1;
                    pass.deliveries.absorb(sent);
                }
            }
        }
    }
    prune(p, &all, now).await;
    Ok(pass)
}

/// One follow-up: closed, held by a snooze, or its due step sent.
async fn follow(p: &Pipeline, f: &FollowUp, now: OffsetDateTime, history: &HistoryCache) -> Result<Step, StateError> {
    let still_open = match closing_reason(p, f, history).await? {
        Closing::Closed(reason) => {
            p.followups.close(f, &reason, now).await?;
            info!(run = %last_segment(&f.run_id), route = %f.route, %reason, "Follow-up closed.");
            return Ok(Step::Closed { run: last_segment(&f.run_id).to_owned(), target: f.target(), reason });
        }
        Closing::Open(machines) => machines,
    };
    if f.snoozed_until.is_some_and(|until| until > now) {
        return Ok(Step::Open(Vec::new()));
    }
    Ok(Step::Open(remind(p, f, &still_open, now).await))
}

/// Drops follow-ups closed long ago (from the list this pass read) and silences long over.
async fn prune(p: &Pipeline, all: &[FollowUp], now: OffsetDateTime) {
    let before = now - time::Duration::days(KEEP_CLOSED_DAYS);
    for f in all.iter().filter(|f| f.closed.as_ref().is_some_and(|c| c.at < before)) {
        if let Err(e) = p.followups.remove(f).await {
            warn!(error = %e, "An old follow-up could not be pruned.");
        }
    }
    if let Err(e) = p.notifier.silences.prune(before).await {
        warn!(error = %e, "Old silences could not be pruned.");
    }
}

/// Each configuration's run history, read once per pass however many follow-ups it has.
#[derive(Default)]
struct HistoryCache(tokio::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<Vec<RunRecord>>>>);

impl HistoryCache {
    async fn runs(&self, p: &Pipeline, configuration: &str) -> Result<std::sync::Arc<Vec<RunRecord>>, StateError> {
        let key = configuration.to_ascii_lowercase();
        if let Some(runs) = self.0.lock().await.get(&key) {
            return Ok(runs.clone());
        }
        // Read outside the lock: two follow-ups of one configuration may both read it once.
        let runs = std::sync::Arc::new(p.history.runs(configuration).await?);
        self.0.lock().await.insert(key, runs.clone());
        Ok(runs)
    }
}

enum Closing {
    Closed(String),
    /// The machines still not fixed.
    Open(Vec<OpenMachine>),
}

/// Why a follow-up ends now, or the machines it is still about.
async fn closing_reason(p: &Pipeline, f: &FollowUp, history: &HistoryCache) -> Result<Closing, StateError> {
    if let Some(ack) = p.approvals.acknowledgement(&f.run_id).await? {
        return Ok(Closing::Closed(format!("acknowledged by {} via {}", ack.by, ack.caller)));
    }
    if let Some(resolved) = resolved_in_servicenow(p, f).await {
        return Ok(Closing::Closed(resolved));
    }
    let Some(routing) = &p.routing else { return Ok(Closing::Closed("no routing file any more".to_owned())) };
    if routing.route(&f.route).is_none_or(|r| !r.follows_up()) {
        return Ok(Closing::Closed(format!("route {} no longer reminds", f.route)));
    }
    // Later runs of the same configuration: the machines they patched are fixed.
    let runs = history.runs(p, &f.configuration).await?;
    let later: Vec<&RunRecord> = runs
        .iter()
        .filter(|r| r.configuration.eq_ignore_ascii_case(&f.configuration) && r.window_start > f.window_start)
        .collect();
    let open: Vec<OpenMachine> =
        f.machines.iter().filter(|m| !later.iter().any(|r| r.succeeded_on(&m.id))).cloned().collect();
    if open.is_empty() && !f.machines.is_empty() {
        let by = later.last().map_or("a later run", |r| last_segment(&r.run_id));
        return Ok(Closing::Closed(format!("every machine succeeded in a later run ({by})")));
    }
    Ok(Closing::Open(open))
}

/// A ServiceNow incident of the run that left the open states (resolved, closed, cancelled) is
/// an acknowledgement; an unreachable ServiceNow decides nothing.
async fn resolved_in_servicenow(p: &Pipeline, f: &FollowUp) -> Option<String> {
    for name in p.notifier.channels.servicenow_channels() {
        let client = p.notifier.channels.servicenow(&name)?;
        match client.run_incidents(&f.configuration_id, &f.run_id).await {
            Ok(found) if !found.is_empty() && found.iter().all(|(_, open)| !open) => {
                let numbers: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
                return Some(format!("incident {} left the open states in ServiceNow", numbers.join(", ")));
            }
            Ok(_) => {}
            Err(e) => warn!(channel = %name, error = %e, "ServiceNow could not be asked about the run's incidents."),
        }
    }
    None
}

/// Sends the latest due step (once), recording earlier unsent steps as superseded.
async fn remind(p: &Pipeline, f: &FollowUp, open: &[OpenMachine], now: OffsetDateTime) -> Vec<Delivered> {
    let Some(route) = p.routing.as_ref().and_then(|r| r.route(&f.route)) else { return Vec::new() };
    let steps = &route.reminders;
    let Some(due) = steps.iter().rposition(|d| f.first_sent + *d <= now) else { return Vec::new() };
    let mut out = Vec::new();
    for earlier in 0..due {
        supersede(p, f, earlier, due).await;
    }
    let escalation = (due + 1 == steps.len()).then_some(route.escalate_to.as_ref()).flatten();
    let (channels, recipients, escalated_to) = match escalation.and_then(|e| p.routing.as_ref()?.route(e.get_ref())) {
        Some(to) => (notice_channels_of(p, to), Vec::new(), Some(to)),
        None => (f.channels.clone(), f.recipients.clone(), None),
    };
    let notice = reminder_notice(p, f, route, open, due, escalated_to, recipients, now);
    let candidate = || Candidate {
        configuration: Some(&f.configuration),
        channel: "",
        outcome: Some(f.verdict),
        machines: open.iter().map(|m| MachineRef::new(&m.id, &m.name, m.tags.iter().map(|(k, v)| (k, v)))).collect(),
        groups: Vec::new(),
    };
    let phase = step_phase(due);
    for channel in &channels {
        let target = format!("{}.{channel}", f.target());
        let id = DeliveryId { run_id: &f.run_id, configuration: &f.configuration, phase: &phase, target: &target };
        let stem = format!(
            "{}-{:08x}",
            file_stem(now, &f.configuration, &phase, last_segment(&f.run_id)),
            fnv64(&target) as u32
        );
        let subject = notice.subject();
        let c = Candidate { channel, ..candidate() };
        out.push(
            p.notifier.deliver_notice_as(Target { id, subject: &subject, file_stem: &stem }, &notice, channel, c).await,
        );
    }
    out
}

/// A route's channels that take notices (`check-config` refuses an escalation to others).
fn notice_channels_of(p: &Pipeline, route: &RouteSpec) -> Vec<String> {
    let takes =
        |name: &str| p.routing.as_ref().and_then(|r| r.channels.get(name)).is_some_and(ChannelSpec::takes_notices);
    route.channels.iter().map(|c| c.get_ref().clone()).filter(|c| takes(c)).collect()
}

/// The ledger phase of reminder step `i` (0-based): `remind-1`, `remind-2`, …
fn step_phase(i: usize) -> String {
    format!("remind-{}", i + 1)
}

/// A step that fell due while an earlier pass could not send it is not sent late: the ledger
/// records it, for each channel it would have gone to, as superseded by the step sent instead.
/// (Only the last step escalates, and the last step is never superseded.)
async fn supersede(p: &Pipeline, f: &FollowUp, step: usize, by: usize) {
    let phase = step_phase(step);
    for channel in &f.channels {
        let target = format!("{}.{channel}", f.target());
        let id = DeliveryId { run_id: &f.run_id, configuration: &f.configuration, phase: &phase, target: &target };
        let detail = format!("superseded by reminder {} (the timer had not run while it was due)", by + 1);
        let finish = Finish::Inhibited { subject: format!("reminder {}", step + 1), detail };
        // A step already settled is left as it is; one still pending (its channel was down) is
        // superseded too, so it is never sent late.
        let recorded = match p.ledger().status(&id).await {
            Ok(Some(r)) if r.state.is_settled() => continue,
            Ok(_) => p.ledger().once(&id, &p.notifier.clock, |_| async { (finish, ()) }).await.map(drop),
            Err(e) => Err(e),
        };
        if let Err(e) = recorded {
            warn!(error = %e, "A superseded reminder step could not be recorded.");
        }
    }
}

/// What is still open, since when, who was told, and what happens next.
#[allow(clippy::too_many_arguments)]
fn reminder_notice(
    p: &Pipeline,
    f: &FollowUp,
    route: &RouteSpec,
    open: &[OpenMachine],
    step: usize,
    escalated_to: Option<&RouteSpec>,
    recipients: Vec<String>,
    now: OffsetDateTime,
) -> Notice {
    let steps = route.reminders.len();
    let run = last_segment(&f.run_id);
    let age = format_duration(std::time::Duration::try_from(now - f.first_sent).unwrap_or_default());
    let (severity, title) = match escalated_to {
        Some(to) => (
            Severity::Critical,
            format!(
                "ESCALATED: {}: run {run} still {} after {age}, nobody has acknowledged it (to {})",
                f.configuration,
                f.verdict.label(),
                to.name.get_ref()
            ),
        ),
        None => (
            Severity::Warning,
            format!(
                "Reminder {} of {steps}: {}: run {run} still {}, unacknowledged for {age}",
                step + 1,
                f.configuration,
                f.verdict.label()
            ),
        ),
    };
    let names: Vec<String> = open.iter().map(|m| format!("{} ({})", m.name, m.outcome.label())).collect();
    let listed = if names.len() > 50 {
        format!("{} and {} more", names[..50].join(", "), names.len() - 50)
    } else {
        names.join(", ")
    };
    let next = match (step + 1 < steps, &route.escalate_to) {
        (true, Some(e)) if step + 2 == steps => {
            format!("next: escalation to {} at {}", e.get_ref(), format_time(f.first_sent + route.reminders[step + 1]))
        }
        (true, _) => format!("next reminder at {}", format_time(f.first_sent + route.reminders[step + 1])),
        (false, _) => "this was the last reminder".to_owned(),
    };
    let mut notice = Notice::new(
        NoticeKind::Reminder,
        format!("remind:{}:{}:{}", f.run_id.to_ascii_lowercase(), f.target(), step + 1),
        severity,
        title,
    );
    notice.configuration = Some(f.configuration.clone());
    let how = if p.links.is_some() { "with the button below or through your ITSM" } else { "through your ITSM" };
    notice.text = format!(
        "{} machine(s) of this run are still not patched and nobody has taken it on. Acknowledge it {how} to stop the reminders; a later run that patches them stops them too.",
        open.len()
    );
    notice.recipients = recipients;
    if let Some(links) = &p.links {
        let target =
            LinkTarget { run: &f.run_id, configuration: &f.configuration, route: &f.route, group: f.group.as_deref() };
        notice.actions = links.buttons(&target, true, now);
    }
    notice.link = Some(p.notifier.email.templates.resource_link(&f.configuration_id));
    notice
        .fact("Run", f.run_id.clone())
        .fact("Open since", format_time(f.first_sent))
        .fact("Told", f.told.join("; "))
        .fact("Still open", listed)
        .fact("Route", f.target())
        .fact("Step", format!("{} of {steps}; {next}", step + 1))
}
