//! The honest outcome of a run: exactly one outcome per machine, grouped failures, advice.
//!
//! The run's own status is never trusted on its own: a run Update Manager calls "Succeeded"
//! while machines never reported is summarised as incomplete.

use std::{collections::HashMap, time::Duration};

use serde::Serialize;
use time::OffsetDateTime;

use crate::{
    event::{MaintenanceEvent, Phase},
    resource_id::last_segment,
    rundata::{InstallResult, MachineInfo, RunData, SucceededGroup},
};

/// The portal's maximum maintenance window.
pub const MAX_WINDOW_MINUTES: i64 = 235;
/// Windows needs 10 minutes for a reboot and 15 for other updates after the last install starts.
const WINDOW_BUFFER_MINUTES: i64 = 15;

/// One machine's outcome, worst first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
pub enum Outcome {
    Failed,
    NoResult,
    WindowExceeded,
    RebootPending,
    CompletedWithWarnings,
    Succeeded,
}

impl Outcome {
    pub const ALL: [Outcome; 6] = [
        Outcome::Failed,
        Outcome::NoResult,
        Outcome::WindowExceeded,
        Outcome::RebootPending,
        Outcome::CompletedWithWarnings,
        Outcome::Succeeded,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Outcome::Succeeded => "Succeeded",
            Outcome::CompletedWithWarnings => "Completed with warnings",
            Outcome::Failed => "Failed",
            Outcome::WindowExceeded => "Window exceeded",
            Outcome::RebootPending => "Reboot pending",
            Outcome::NoResult => "No result",
        }
    }

    /// Installed what it was asked to (a pending reboot still counts as patched).
    pub fn is_patched(self) -> bool {
        matches!(self, Outcome::Succeeded | Outcome::CompletedWithWarnings | Outcome::RebootPending)
    }
}

/// The run as a whole (routes name these in `verdict = [...]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
pub enum Verdict {
    Succeeded,
    CompletedWithWarnings,
    RebootPending,
    WindowExceeded,
    /// Some machines never reported.
    Incomplete,
    Failed,
    Cancelled,
    /// The run had no machines at all.
    NoMachines,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Succeeded => "Succeeded",
            Verdict::CompletedWithWarnings => "Completed with warnings",
            Verdict::RebootPending => "Reboot pending",
            Verdict::WindowExceeded => "Window exceeded",
            Verdict::Incomplete => "Incomplete",
            Verdict::Failed => "Failed",
            Verdict::Cancelled => "Cancelled",
            Verdict::NoMachines => "No machines",
        }
    }
    pub fn is_ok(self) -> bool {
        matches!(self, Verdict::Succeeded)
    }

    /// Machines failed, never reported, or ran out of window. Warnings, pending reboots, a
    /// cancelled run or an empty one are not failures (no incident, no page).
    pub fn is_failure(self) -> bool {
        matches!(self, Verdict::Failed | Verdict::Incomplete | Verdict::WindowExceeded)
    }
}

/// One machine's line in the summary.
#[derive(Clone, Debug, Serialize)]
pub struct MachineOutcome {
    pub id: String,
    pub name: String,
    pub resource_group: String,
    pub subscription_id: String,
    pub arc: bool,
    pub os: Option<String>,
    pub outcome: Outcome,
    /// Update Manager's own status string, when there is a result.
    pub status: Option<String>,
    pub installed: u32,
    pub failed: u32,
    pub pending: u32,
    pub reboot_status: Option<String>,
    pub started: Option<OffsetDateTime>,
    pub finished: Option<OffsetDateTime>,
    pub errors: Vec<String>,
    /// A short explanation: the first error, why there is no result, …
    pub note: Option<String>,
    /// Reported a result for this run without being in its machine list.
    pub unlisted: bool,
    /// The machine's Azure tags (from the `resources` table), for routing.
    #[serde(skip)]
    pub tags: std::collections::HashMap<String, String>,
}

impl MachineOutcome {
    /// Whole seconds from start to finish, as Resource Graph's `datetime_diff('second', …)`
    /// counts them (second boundaries crossed), so that both paths agree on the longest install.
    pub fn install_seconds(&self) -> Option<i64> {
        install_seconds(self.started, self.finished)
    }

    pub fn install_minutes(&self) -> Option<i64> {
        self.install_seconds().map(|s| s / 60)
    }
}

/// What routes and silences may select machines by: a listed machine or a group of machines that
/// simply succeeded.
pub trait Facets {
    fn subscription_id(&self) -> &str;
    fn resource_group(&self) -> &str;
    /// The value of tag `key` (compared case-insensitively).
    fn tag(&self, key: &str) -> Option<&str>;
}

impl Facets for MachineOutcome {
    fn subscription_id(&self) -> &str {
        &self.subscription_id
    }
    fn resource_group(&self) -> &str {
        &self.resource_group
    }
    fn tag(&self, key: &str) -> Option<&str> {
        tag_value(&self.tags, key)
    }
}

/// Tag `key`'s value, the key compared case-insensitively (Azure tag names are).
fn tag_value<'a>(tags: impl IntoIterator<Item = (&'a String, &'a String)>, key: &str) -> Option<&'a str> {
    tags.into_iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
}

impl Facets for SucceededGroup {
    fn subscription_id(&self) -> &str {
        &self.subscription_id
    }
    fn resource_group(&self) -> &str {
        &self.resource_group
    }
    fn tag(&self, key: &str) -> Option<&str> {
        tag_value(self.tags.iter(), key)
    }
}

/// A patch that failed, with the machines it failed on.
#[derive(Clone, Debug, Serialize)]
pub struct PatchFailure {
    /// `KB5031364` or the package name.
    pub key: String,
    pub title: String,
    pub classifications: Vec<String>,
    /// Machine names, sorted.
    pub machines: Vec<String>,
}

/// Machine counts by outcome.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counts {
    pub total: usize,
    pub patched: usize,
    pub succeeded: usize,
    pub warnings: usize,
    pub failed: usize,
    pub window_exceeded: usize,
    pub reboot_pending: usize,
    pub no_result: usize,
}

impl Counts {
    pub fn of(&self, o: Outcome) -> usize {
        match o {
            Outcome::Succeeded => self.succeeded,
            Outcome::CompletedWithWarnings => self.warnings,
            Outcome::Failed => self.failed,
            Outcome::WindowExceeded => self.window_exceeded,
            Outcome::RebootPending => self.reboot_pending,
            Outcome::NoResult => self.no_result,
        }
    }
}

/// The summary of one run, ready to render.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    pub phase: Phase,
    pub run_id: String,
    pub configuration_id: String,
    pub configuration_name: String,
    pub window_start: OffsetDateTime,
    pub window_end: OffsetDateTime,
    pub cancellation_cutoff: Option<OffsetDateTime>,
    pub subscriptions: Vec<String>,
    /// What Update Manager said in the post event.
    pub reported_status: Option<String>,
    pub verdict: Verdict,
    pub counts: Counts,
    /// Worst outcome first, then by name. After the window: every machine that did not simply
    /// succeed (and watched ones); before it, every machine.
    pub machines: Vec<MachineOutcome>,
    /// The machines that simply succeeded, counted per subscription, resource group and tags.
    pub succeeded: Vec<SucceededGroup>,
    pub failed_patches: Vec<PatchFailure>,
    /// Earliest install start and latest result among the machines.
    pub first_start: Option<OffsetDateTime>,
    pub last_finish: Option<OffsetDateTime>,
    pub longest_install: Option<(String, i64)>,
    pub advice: Vec<String>,
}

impl RunSummary {
    pub fn window_minutes(&self) -> i64 {
        (self.window_end - self.window_start).whole_minutes()
    }

    /// `Ring2-Prod: Failed — 45 of 50 patched, 3 failed, 2 no result`.
    pub fn subject(&self) -> String {
        let c = &self.counts;
        let mut s = match self.phase {
            Phase::Pre => format!(
                "{}: patching starts {} — {} machine{} in scope",
                self.configuration_name,
                crate::text::format_time(self.window_start),
                c.total,
                plural(c.total)
            ),
            Phase::Post => {
                format!("{}: {} — {} of {} patched", self.configuration_name, self.verdict.label(), c.patched, c.total)
            }
        };
        if self.phase == Phase::Post {
            for (n, what) in [
                (c.failed, "failed"),
                (c.window_exceeded, "window exceeded"),
                (c.no_result, "no result"),
                (c.reboot_pending, "need a reboot"),
            ] {
                if n > 0 {
                    s.push_str(&format!(", {n} {what}"));
                }
            }
        }
        crate::text::one_line(&s)
    }
}

/// Whether the summary can be sent now.
#[derive(Debug)]
pub enum Decision {
    Ready(Box<RunSummary>),
    /// Results are still missing and the grace period has not passed.
    Wait {
        missing: usize,
        total: usize,
        retry_after: Duration,
    },
}

/// Builds the summary of `event` from `data`, or asks to wait for missing results.
pub fn summarise(event: &MaintenanceEvent, data: &RunData, now: OffsetDateTime, grace: Duration) -> Decision {
    let summary = build(event, data);
    if event.phase == Phase::Post && summary.verdict != Verdict::Cancelled {
        // An empty run inside the grace period is most likely Resource Graph lag, not a run
        // without machines.
        let missing = if summary.counts.total == 0 { 1 } else { summary.counts.no_result };
        // The event's own time is never trusted beyond "now": a future or absurd eventTime
        // must not postpone the summary, and a missing one falls back to the window's end.
        let ended = event.event_time.unwrap_or(event.end).min(now);
        let deadline =
            ended.checked_add(time::Duration::try_from(grace).unwrap_or(time::Duration::ZERO)).unwrap_or(now);
        if missing > 0 && now < deadline {
            let remaining = Duration::try_from(deadline - now).unwrap_or(Duration::ZERO);
            let retry_after = remaining.clamp(Duration::from_secs(10), Duration::from_secs(60));
            return Decision::Wait { missing, total: summary.counts.total, retry_after };
        }
    }
    Decision::Ready(Box::new(summary))
}

fn build(event: &MaintenanceEvent, data: &RunData) -> RunSummary {
    let groups = if event.phase == Phase::Post { data.succeeded.clone() } else { Vec::new() };
    assemble(event, data, machine_outcomes(event, data), groups)
}

/// The summary of only the machines `keep` selects (a route's share of a run).
pub fn summarise_subset(
    summary: &RunSummary,
    event: &MaintenanceEvent,
    data: &RunData,
    keep: &dyn Fn(&dyn Facets) -> bool,
) -> RunSummary {
    let machines = summary.machines.iter().filter(|m| keep(*m)).cloned().collect();
    let groups = summary.succeeded.iter().filter(|g| keep(*g)).cloned().collect();
    assemble(event, data, machines, groups)
}

/// One outcome for every machine of the run (and every unlisted machine that reported).
fn machine_outcomes(event: &MaintenanceEvent, data: &RunData) -> Vec<MachineOutcome> {
    let empty = MachineInfo::default();
    let mut machines: Vec<MachineOutcome> = Vec::with_capacity(data.expected.len());
    let mut listed = std::collections::HashSet::with_capacity(data.expected.len());
    for m in &data.expected {
        let key = m.id.to_ascii_lowercase();
        let info = data.machines.get(&key).unwrap_or(&empty);
        let result = if event.phase == Phase::Post { data.results.get(&key) } else { None };
        let record =
            MachineRecord { id: &m.id, resource_group: m.resource_group.as_deref(), result, info, unlisted: false };
        machines.push(machine(&record, event.phase));
        listed.insert(key);
    }
    if event.phase == Phase::Post {
        // Results for this run from machines the run's list does not name: show them, flagged.
        let mut extra: Vec<(&String, &InstallResult)> =
            data.results.iter().filter(|(k, _)| !listed.contains(*k)).collect();
        extra.sort_unstable_by_key(|(k, _)| *k);
        for (key, r) in extra {
            let info = data.machines.get(key).unwrap_or(&empty);
            let record = MachineRecord {
                id: &r.machine_id,
                resource_group: r.resource_group.as_deref(),
                result: Some(r),
                info,
                unlisted: true,
            };
            machines.push(machine(&record, event.phase));
        }
    }
    machines.sort_by_cached_key(|m| (m.outcome, m.name.to_ascii_lowercase()));
    machines
}

/// Counts, verdict, grouped failures and advice for a set of machine outcomes.
fn assemble(
    event: &MaintenanceEvent,
    data: &RunData,
    machines: Vec<MachineOutcome>,
    succeeded: Vec<SucceededGroup>,
) -> RunSummary {
    let grouped: usize = succeeded.iter().map(|g| g.count).sum();
    let mut counts =
        Counts { total: machines.len() + grouped, succeeded: grouped, patched: grouped, ..Counts::default() };
    for m in &machines {
        match m.outcome {
            Outcome::Succeeded => counts.succeeded += 1,
            Outcome::CompletedWithWarnings => counts.warnings += 1,
            Outcome::Failed => counts.failed += 1,
            Outcome::WindowExceeded => counts.window_exceeded += 1,
            Outcome::RebootPending => counts.reboot_pending += 1,
            Outcome::NoResult => counts.no_result += 1,
        }
        if m.outcome.is_patched() {
            counts.patched += 1;
        }
    }

    let cancelled = event.status.as_deref().is_some_and(|s| s.to_ascii_lowercase().starts_with("cancel"));
    let verdict = if event.phase == Phase::Pre {
        Verdict::Succeeded
    } else if cancelled {
        Verdict::Cancelled
    } else if counts.total == 0 {
        Verdict::NoMachines
    } else {
        // Grouped machines all succeeded, so the worst listed outcome decides.
        match machines.iter().map(|m| m.outcome).min().unwrap_or(Outcome::Succeeded) {
            Outcome::Failed => Verdict::Failed,
            Outcome::NoResult => Verdict::Incomplete,
            Outcome::WindowExceeded => Verdict::WindowExceeded,
            Outcome::RebootPending => Verdict::RebootPending,
            Outcome::CompletedWithWarnings => Verdict::CompletedWithWarnings,
            Outcome::Succeeded => Verdict::Succeeded,
        }
    };

    let failed_patches = group_failed_patches(data, &machines);
    let first_start =
        machines.iter().filter_map(|m| m.started).chain(succeeded.iter().filter_map(|g| g.first_start)).min();
    let last_finish =
        machines.iter().filter_map(|m| m.finished).chain(succeeded.iter().filter_map(|g| g.last_finish)).max();
    // Ties go to the greatest name: Resource Graph computes a group's longest install as the
    // `max()` of minutes-then-name, and both paths must agree.
    let longest_install = machines
        .iter()
        .filter_map(|m| Some((m.install_seconds()?, m.name.clone())))
        .chain(succeeded.iter().filter_map(|g| g.longest_install.clone()))
        .max()
        .map(|(seconds, name)| (name, seconds / 60));

    let mut summary = RunSummary {
        phase: event.phase,
        run_id: event.correlation_id.clone(),
        configuration_id: event.maintenance_configuration_id.clone(),
        configuration_name: event.configuration_name().to_owned(),
        window_start: event.start,
        window_end: event.end,
        cancellation_cutoff: event.cancellation_cutoff,
        subscriptions: event.subscription_ids.clone(),
        reported_status: event.status.clone(),
        verdict,
        counts,
        machines,
        succeeded,
        failed_patches,
        first_start,
        last_finish,
        longest_install,
        advice: Vec::new(),
    };
    summary.advice = advice(&summary, data);
    summary
}

/// What is known of one machine of a run: where it is listed, its result and its last-seen state.
struct MachineRecord<'a> {
    id: &'a str,
    /// From the run's machine list or result row; otherwise read from `id`.
    resource_group: Option<&'a str>,
    /// This run's install result (never looked at for a pre event).
    result: Option<&'a InstallResult>,
    info: &'a MachineInfo,
    /// Reported a result without being in the run's machine list.
    unlisted: bool,
}

fn machine(record: &MachineRecord<'_>, phase: Phase) -> MachineOutcome {
    let MachineRecord { id, resource_group, result, info, unlisted } = *record;
    let lower = id.to_ascii_lowercase();
    let mut m = MachineOutcome {
        id: id.to_owned(),
        name: last_segment(id).to_owned(),
        resource_group: resource_group.map(str::to_owned).unwrap_or_else(|| segment_after(id, "resourcegroups")),
        subscription_id: segment_after(id, "subscriptions"),
        arc: lower.contains("/providers/microsoft.hybridcompute/"),
        os: result.and_then(|r| r.os_type.clone()).or_else(|| info.os_type.clone()),
        outcome: Outcome::NoResult,
        status: None,
        installed: 0,
        failed: 0,
        pending: 0,
        reboot_status: None,
        started: None,
        finished: None,
        errors: Vec::new(),
        note: None,
        unlisted,
        tags: info.tags.clone(),
    };
    if phase == Phase::Pre {
        m.note = machine_state_note(info);
        return m;
    }
    let Some(r) = result else {
        m.note = Some(match machine_state_note(info) {
            Some(state) => format!("No result for this run; {state}"),
            None => "No result for this run".to_owned(),
        });
        return m;
    };
    m.status = Some(r.status.clone());
    m.installed = r.installed;
    m.failed = r.failed;
    m.pending = r.pending;
    m.reboot_status = r.reboot_status.clone();
    m.started = r.started;
    m.finished = r.last_modified;
    m.errors = r.errors.clone();
    m.outcome = result_outcome(r);
    if m.outcome == Outcome::NoResult {
        m.note = Some(format!("Still {} when this summary was made", r.status));
    }
    if m.note.is_none() {
        m.note = match m.outcome {
            Outcome::Failed if r.failed == 0 => Some(
                r.errors
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "Failed without a failed patch and without error details".to_owned()),
            ),
            Outcome::Succeeded => None,
            Outcome::WindowExceeded => {
                Some(r.errors.first().cloned().unwrap_or_else(|| format!("{} updates not attempted", r.pending)))
            }
            Outcome::RebootPending => Some(format!("Reboot {}", r.reboot_status.as_deref().unwrap_or("required"))),
            _ => r.errors.first().cloned(),
        };
    }
    m
}

/// Seconds from `started` to `finished` (second boundaries crossed); none when either is missing
/// or the finish comes first.
pub fn install_seconds(started: Option<OffsetDateTime>, finished: Option<OffsetDateTime>) -> Option<i64> {
    Some(finished?.unix_timestamp() - started?.unix_timestamp()).filter(|s| *s >= 0)
}

/// The outcome an installation result gives its machine. Resource Graph's run queries compute
/// [`Outcome::Succeeded`] by the same rules (`resource_graph::SIMPLY_SUCCEEDED`): keep them in step.
pub fn result_outcome(r: &InstallResult) -> Outcome {
    let status = r.status.to_ascii_lowercase();
    let reboot = r.reboot_status.as_deref().unwrap_or("").to_ascii_lowercase();
    match status.as_str() {
        "notstarted" | "inprogress" => Outcome::NoResult,
        _ if r.failed > 0 => Outcome::Failed,
        _ if r.window_exceeded => Outcome::WindowExceeded,
        "failed" => Outcome::Failed,
        _ if reboot == "required" || reboot == "failed" => Outcome::RebootPending,
        "completedwithwarnings" => Outcome::CompletedWithWarnings,
        "succeeded" => Outcome::Succeeded,
        // An unknown status is shown as it is, never as success.
        _ => Outcome::CompletedWithWarnings,
    }
}

fn machine_state_note(info: &MachineInfo) -> Option<String> {
    if let Some(p) = info.power_state.as_deref().filter(|p| !p.eq_ignore_ascii_case("running")) {
        return Some(format!("VM was {p} when last seen"));
    }
    info.agent_status.as_deref().filter(|s| !s.eq_ignore_ascii_case("connected")).map(|s| format!("Arc agent {s}"))
}

fn segment_after(id: &str, key: &str) -> String {
    let mut parts = id.split('/');
    while let Some(p) = parts.next() {
        if p.eq_ignore_ascii_case(key) {
            return parts.next().unwrap_or_default().to_owned();
        }
    }
    String::new()
}

fn group_failed_patches(data: &RunData, machines: &[MachineOutcome]) -> Vec<PatchFailure> {
    let names: HashMap<String, &str> = machines.iter().map(|m| (m.id.to_ascii_lowercase(), m.name.as_str())).collect();
    let mut groups: HashMap<String, PatchFailure> = HashMap::new();
    for p in &data.failed_patches {
        let Some(machine) = names.get(&p.machine_id) else { continue };
        let key = match &p.kb_id {
            Some(kb) => format!("KB{}", kb.trim_start_matches("KB").trim_start_matches("kb")),
            None => p.name.clone(),
        };
        let g = groups.entry(key.to_ascii_lowercase()).or_insert_with(|| PatchFailure {
            key,
            title: p.name.clone(),
            classifications: p.classifications.clone(),
            machines: Vec::new(),
        });
        g.machines.push((*machine).to_owned());
    }
    let mut out: Vec<PatchFailure> = groups.into_values().collect();
    for g in &mut out {
        g.machines.sort_by_cached_key(|m| m.to_ascii_lowercase());
        g.machines.dedup();
    }
    out.sort_unstable_by(|a, b| b.machines.len().cmp(&a.machines.len()).then_with(|| a.key.cmp(&b.key)));
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `HH:MM`, the maintenance configuration's duration format.
fn hhmm(minutes: i64) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// What to do about the run, most telling first.
fn advice(s: &RunSummary, data: &RunData) -> Vec<String> {
    if s.phase == Phase::Pre {
        return heads_up_advice(s);
    }
    if s.verdict == Verdict::Cancelled {
        return vec!["The run was cancelled, so no machine was patched in this window.".to_owned()];
    }
    [
        misreported_success_advice(s),
        window_advice(s),
        no_result_advice(s, data),
        reboot_advice(&s.counts),
        failing_patch_advice(s),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Before the window: machines that cannot be patched as things stand.
fn heads_up_advice(s: &RunSummary) -> Vec<String> {
    let mut out = Vec::new();
    let off: Vec<&MachineOutcome> = s.machines.iter().filter(|m| m.note.is_some()).collect();
    if !off.is_empty() {
        out.push(format!(
            "{} machine{} {} not running or not connected: they will not be patched unless started before the window opens.",
            off.len(),
            plural(off.len()),
            if off.len() == 1 { "is" } else { "are" }
        ));
    }
    if s.counts.total == 0 {
        out.push(
            "No machines are in scope of this run yet: check the configuration's assignments and dynamic scopes."
                .to_owned(),
        );
    }
    out
}

/// Update Manager's own "Succeeded" is contradicted when machines were not patched cleanly.
fn misreported_success_advice(s: &RunSummary) -> Option<String> {
    let c = &s.counts;
    let reported = s.reported_status.as_deref()?;
    (reported.eq_ignore_ascii_case("succeeded") && !s.verdict.is_ok() && c.total > 0).then(|| {
        format!(
            "Update Manager reported this run as Succeeded, but only {} of {} machines were patched without problems.",
            c.succeeded, c.total
        )
    })
}

/// A window that ran out: a duration that would have fitted the longest install, if one can.
fn window_advice(s: &RunSummary) -> Option<String> {
    let c = &s.counts;
    if c.window_exceeded == 0 {
        return None;
    }
    let window = s.window_minutes();
    let mut line =
        format!("The maintenance window was exceeded on {} machine{}.", c.window_exceeded, plural(c.window_exceeded));
    if let Some((name, longest)) = &s.longest_install {
        let suggested = ((longest + WINDOW_BUFFER_MINUTES + 4) / 5) * 5;
        line.push_str(&format!(" The longest install took {longest} minutes ({name}) in a {window}-minute window"));
        if suggested <= MAX_WINDOW_MINUTES && suggested > window {
            line.push_str(&format!("; set the duration to at least {}.", hhmm(suggested)));
        } else if suggested > MAX_WINDOW_MINUTES {
            line.push_str("; that needs more than the 3 h 55 min maximum, so split the machines across configurations or patch fewer classifications per run.");
        } else {
            line.push_str("; installs start only while 15 minutes (20 for service packs) remain, so start the window earlier or split the machines.");
        }
    }
    Some(line)
}

/// Machines that never reported, and how many of them were off or disconnected when last seen.
fn no_result_advice(s: &RunSummary, data: &RunData) -> Option<String> {
    let c = &s.counts;
    if c.no_result == 0 {
        return None;
    }
    let stopped = s
        .machines
        .iter()
        .filter(|m| m.outcome == Outcome::NoResult)
        .filter(|m| data.machines.get(&m.id.to_ascii_lowercase()).is_some_and(|i| machine_state_note(i).is_some()))
        .count();
    let mut line = format!("{} machine{} never reported a result for this run", c.no_result, plural(c.no_result));
    if stopped > 0 {
        line.push_str(&format!(" ({stopped} stopped, deallocated or disconnected when last seen)"));
    }
    line.push_str(": deallocated VMs and disconnected Arc machines are not patched; check power state, the patch orchestration mode and the Arc agent.");
    Some(line)
}

fn reboot_advice(c: &Counts) -> Option<String> {
    (c.reboot_pending > 0).then(|| {
        format!(
            "{} machine{} installed updates but still need{} a reboot to finish: check the configuration's reboot setting.",
            c.reboot_pending,
            plural(c.reboot_pending),
            if c.reboot_pending == 1 { "s" } else { "" }
        )
    })
}

/// A patch failing on several machines is likely to fail in the next ring too.
fn failing_patch_advice(s: &RunSummary) -> Option<String> {
    let top = s.failed_patches.first().filter(|top| top.machines.len() >= 2)?;
    let how = if top.key.starts_with("KB") { "kbNumbersToExclude" } else { "packageNameMasksToExclude" };
    Some(format!(
        "{} failed on {} machines: consider excluding it ({how}) in later rings until it is understood.",
        top.key,
        top.machines.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        event::{Incoming, parse_delivery},
        rundata::{ExpectedMachine, FailedPatch},
    };
    use serde_json::json;
    use time::macros::datetime;

    const MC: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Maintenance/maintenanceConfigurations/Ring2-Prod";

    fn event(status: &str) -> MaintenanceEvent {
        let run = format!("{MC}/providers/microsoft.maintenance/applyupdates/20230509150000");
        let body = json!([{ "id": run, "eventType": "Microsoft.Maintenance.PostMaintenanceEvent", "eventTime": "2023-05-09T16:00:00Z",
            "data": { "correlationId": run, "maintenanceConfigurationId": MC, "startDateTime": "2023-05-09T15:00:00Z",
                      "endDateTime": "2023-05-09T16:00:00Z", "status": status } }]);
        match parse_delivery(body.to_string().as_bytes()).unwrap().remove(0) {
            Incoming::Maintenance(m) => *m,
            _ => unreachable!(),
        }
    }

    fn vm(i: usize) -> String {
        format!(
            "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm{i:02}"
        )
    }

    fn result(i: usize, status: &str, failed: u32, exceeded: bool, reboot: &str) -> InstallResult {
        InstallResult {
            result_id: format!("{}/patchinstallationresults/{i}", vm(i).to_lowercase()),
            machine_id: vm(i),
            resource_group: None,
            status: status.into(),
            installed: 3,
            failed,
            pending: if exceeded { 2 } else { 0 },
            window_exceeded: exceeded,
            reboot_status: Some(reboot.into()),
            started: Some(datetime!(2023-05-09 15:00 UTC)),
            last_modified: Some(datetime!(2023-05-09 15:00 UTC) + time::Duration::minutes(10 + i as i64)),
            os_type: Some("Windows".into()),
            errors: vec![],
        }
    }

    fn data(n: usize, results: Vec<InstallResult>) -> RunData {
        RunData {
            expected: (0..n).map(|i| ExpectedMachine { id: vm(i), resource_group: Some("rg".into()) }).collect(),
            results: results.into_iter().map(|r| (r.machine_id.to_lowercase(), r)).collect(),
            ..RunData::default()
        }
    }

    fn ready(d: Decision) -> RunSummary {
        match d {
            Decision::Ready(s) => *s,
            Decision::Wait { .. } => panic!("expected a summary"),
        }
    }

    const LATE: OffsetDateTime = datetime!(2023-05-09 17:00 UTC);
    const GRACE: Duration = Duration::from_secs(900);

    #[test]
    fn every_outcome_is_classified_once() {
        let mut d = data(
            7,
            vec![
                result(0, "Succeeded", 0, false, "NotNeeded"),
                result(1, "CompletedWithWarnings", 0, false, "Completed"),
                result(2, "Failed", 2, false, "NotNeeded"),
                result(3, "Failed", 0, true, "NotNeeded"),
                result(4, "Succeeded", 0, false, "Required"),
                result(6, "InProgress", 0, false, "NotNeeded"),
            ],
        );
        d.failed_patches = vec![FailedPatch {
            machine_id: vm(2).to_lowercase(),
            name: "2023-05 Cumulative Update".into(),
            kb_id: Some("5026361".into()),
            version: None,
            classifications: vec!["Security".into()],
        }];
        let s = ready(summarise(&event("Succeeded"), &d, LATE, GRACE));
        let by_name: HashMap<&str, Outcome> = s.machines.iter().map(|m| (m.name.as_str(), m.outcome)).collect();
        assert_eq!(by_name["vm00"], Outcome::Succeeded);
        assert_eq!(by_name["vm01"], Outcome::CompletedWithWarnings);
        assert_eq!(by_name["vm02"], Outcome::Failed);
        assert_eq!(by_name["vm03"], Outcome::WindowExceeded);
        assert_eq!(by_name["vm04"], Outcome::RebootPending);
        assert_eq!(by_name["vm05"], Outcome::NoResult);
        assert_eq!(by_name["vm06"], Outcome::NoResult);
        assert_eq!(s.counts.total, 7);
        assert_eq!(s.counts.patched, 3);
        assert_eq!(s.verdict, Verdict::Failed);
        assert_eq!(s.machines[0].outcome, Outcome::Failed);
        assert_eq!(s.failed_patches[0].key, "KB5026361");
        assert_eq!(
            s.subject(),
            "Ring2-Prod: Failed — 3 of 7 patched, 1 failed, 1 window exceeded, 2 no result, 1 need a reboot"
        );
        assert!(s.advice.iter().any(|a| a.contains("reported this run as Succeeded")), "{:?}", s.advice);
        assert!(s.advice.iter().any(|a| a.contains("window was exceeded on 1 machine")), "{:?}", s.advice);
    }

    #[test]
    fn succeeded_run_with_missing_machines_is_never_all_good() {
        let d =
            data(3, vec![result(0, "Succeeded", 0, false, "NotNeeded"), result(1, "Succeeded", 0, false, "NotNeeded")]);
        let s = ready(summarise(&event("Succeeded"), &d, LATE, GRACE));
        assert_eq!(s.verdict, Verdict::Incomplete);
        assert!(!s.verdict.is_ok());
        assert!(s.subject().contains("Incomplete") && s.subject().contains("1 no result"), "{}", s.subject());
        assert!(s.advice.iter().any(|a| a.contains("never reported")));
    }

    #[test]
    fn missing_results_inside_grace_wait() {
        let d = data(2, vec![result(0, "Succeeded", 0, false, "NotNeeded")]);
        let early = datetime!(2023-05-09 16:05 UTC);
        match summarise(&event("Succeeded"), &d, early, GRACE) {
            Decision::Wait { missing, total, retry_after } => {
                assert_eq!((missing, total), (1, 2));
                assert_eq!(retry_after, Duration::from_secs(60));
            }
            Decision::Ready(_) => panic!("must wait inside the grace period"),
        }
        // Complete data is sent at once, even inside the grace period.
        let full = data(1, vec![result(0, "Succeeded", 0, false, "NotNeeded")]);
        assert_eq!(ready(summarise(&event("Succeeded"), &full, early, GRACE)).verdict, Verdict::Succeeded);
    }

    #[test]
    fn event_time_is_clamped_to_now_and_never_overflows() {
        let d = data(2, vec![result(0, "Succeeded", 0, false, "NotNeeded")]);
        // A far-future eventTime does not overflow: it counts as "now".
        let mut e = event("Succeeded");
        e.event_time = Some(datetime!(9999-12-31 23:59:59 UTC));
        match summarise(&e, &d, LATE, GRACE) {
            Decision::Wait { retry_after, .. } => assert_eq!(retry_after, Duration::from_secs(60)),
            Decision::Ready(_) => panic!("must wait out the grace period from now"),
        }
        // Without an eventTime, the window's end starts the grace period.
        e.event_time = None;
        assert!(matches!(summarise(&e, &d, datetime!(2023-05-09 16:20 UTC), GRACE), Decision::Ready(_)));
        // An empty run inside grace waits (Resource Graph lag), after it says so.
        let empty = data(0, vec![]);
        assert!(matches!(
            summarise(&event("Succeeded"), &empty, datetime!(2023-05-09 16:05 UTC), GRACE),
            Decision::Wait { .. }
        ));
        assert_eq!(ready(summarise(&event("Succeeded"), &empty, LATE, GRACE)).verdict, Verdict::NoMachines);
    }

    #[test]
    fn failed_without_failed_patches_shows_error_details() {
        let mut r = result(0, "Failed", 0, false, "NotNeeded");
        r.errors = vec!["ExtensionError: the patch extension could not start".into()];
        let s = ready(summarise(&event("Succeeded"), &data(1, vec![r]), LATE, GRACE));
        assert_eq!(s.machines[0].outcome, Outcome::Failed);
        assert_eq!(s.machines[0].note.as_deref(), Some("ExtensionError: the patch extension could not start"));
    }

    #[test]
    fn window_advice_suggests_a_duration() {
        let mut r = result(0, "Failed", 0, true, "NotNeeded");
        r.last_modified = Some(datetime!(2023-05-09 16:10 UTC));
        let s = ready(summarise(&event("Succeeded"), &data(1, vec![r]), LATE, GRACE));
        let line = s.advice.iter().find(|a| a.contains("exceeded")).unwrap();
        assert!(line.contains("70 minutes") && line.contains("01:25"), "{line}");
    }

    #[test]
    fn unlisted_results_are_shown_and_cancelled_runs_say_so() {
        let d = data(0, vec![result(9, "Succeeded", 0, false, "NotNeeded")]);
        let s = ready(summarise(&event("Succeeded"), &d, LATE, GRACE));
        assert_eq!(s.counts.total, 1);
        assert!(s.machines[0].unlisted);
        let s = ready(summarise(&event("Cancelled"), &data(2, vec![]), datetime!(2023-05-09 16:01 UTC), GRACE));
        assert_eq!(s.verdict, Verdict::Cancelled);
        let s = ready(summarise(&event("Succeeded"), &data(0, vec![]), LATE, GRACE));
        assert_eq!(s.verdict, Verdict::NoMachines);
    }

    #[test]
    fn subject_strips_control_characters() {
        let mut s = ready(summarise(&event("Succeeded"), &data(0, vec![]), LATE, GRACE));
        s.configuration_name = "evil\r\nBcc: x@example.com".into();
        assert!(!s.subject().contains('\n') && !s.subject().contains('\r'));
    }
}
