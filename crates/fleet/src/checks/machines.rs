//! Checks about one machine: patch mode, the bypass flag, coverage, assessment, pending critical
//! patches and repeated no-shows.

use std::collections::HashMap;

use time::Duration;

use super::{Context, Found, RECENT_RUNS};
use crate::{
    collect::is_critical_or_security,
    fix,
    inventory::{Configuration, Machine, MachineKind, OsType, PastOutcome, PendingPatch},
    lint::{Check, Finding, Level, Subject},
};

const PLATFORM: &str = "AutomaticByPlatform";

pub(super) fn check(cx: &Context<'_>, out: &mut Vec<Finding>) {
    let pending = pending_by_machine(&cx.fleet.pending);
    let suggestions = Suggestions::new(cx);
    for (i, m) in cx.fleet.machines.iter().enumerate() {
        let configurations: Vec<&Configuration> = cx.machine_configurations(i).collect();
        let assigned = !cx.coverage.configurations[i].is_empty();
        let mut add = |check, severity, detail: String, why: &'static str, fix: String| {
            out.push(machine_finding(cx, m, Found { check, severity, detail, why, fix }));
        };
        patch_mode(m, assigned, &mut add);
        if !assigned {
            let detail = match cx.coverage.dangling[i].first() {
                Some(missing) => format!(
                    "assigned only to {}, which does not exist (deleted, or in a subscription patchwatch cannot read)",
                    patchwatch_model::resource_id::last_segment(missing)
                ),
                None => "in no static assignment and matched by no dynamic scope".to_owned(),
            };
            add(
                Check::Unassigned,
                Level::Error,
                detail,
                "No schedule will ever patch this machine, and no run summary will ever show it.",
                fix::assign(m, suggestions.for_machine(cx, m)),
            );
        }
        assessment(cx, m, &mut add);
        if let Some(f) = pending_critical(cx, m, &configurations, pending.get(&m.key()).map_or(&[], Vec::as_slice)) {
            add(Check::PendingCritical, Level::Error, f.0, f.1, f.2);
        }
        for c in &configurations {
            if let Some(detail) = repeat_no_show(cx, m, c) {
                add(
                    Check::RepeatNoShow,
                    Level::Warning,
                    detail,
                    "The machine is never there when its window opens (deallocated, or the agent is down), so it is never patched.",
                    fix::up_for_window(m, &c.name),
                );
            }
        }
    }
}

type Add<'a> = dyn FnMut(Check, Level, String, &'static str, String) + 'a;

fn machine_finding(cx: &Context<'_>, m: &Machine, f: Found) -> Finding {
    Finding {
        check: f.check,
        severity: f.severity,
        subject: Subject::Machine,
        resource_id: m.id.clone(),
        name: m.name.clone(),
        owner: cx.machine_owner(m),
        subscription: m.subscription.clone(),
        detail: f.detail,
        why: f.why.to_owned(),
        fix: f.fix,
    }
}

/// Azure VMs only: Arc machines need no patch orchestration setting for schedules.
fn patch_mode(m: &Machine, assigned: bool, add: &mut Add<'_>) {
    if m.kind != MachineKind::AzureVm || !assigned {
        return;
    }
    let mode = m.patch_mode.as_deref().unwrap_or("");
    if !mode.eq_ignore_ascii_case(PLATFORM) {
        let shown = if mode.is_empty() { "not set (ImageDefault)" } else { mode };
        add(
            Check::PatchMode,
            Level::Error,
            format!("patchMode is {shown}, not AutomaticByPlatform"),
            "Update Manager silently ignores the schedule for this VM: patch orchestration must be Customer Managed Schedules.",
            fix::customer_managed_schedules(m),
        );
    } else if m.bypass_safety_checks != Some(true) {
        let shown = m.bypass_safety_checks.map_or("not set", |b| if b { "true" } else { "false" });
        add(
            Check::BypassFlag,
            Level::Error,
            format!("bypassPlatformSafetyChecksOnUserSchedule is {shown}"),
            "Without the flag Azure's automatic guest patching may also patch this VM outside its window.",
            fix::customer_managed_schedules(m),
        );
    }
}

fn assessment(cx: &Context<'_>, m: &Machine, add: &mut Add<'_>) {
    let mode = m.assessment_mode.as_deref().unwrap_or("");
    if !mode.eq_ignore_ascii_case(PLATFORM) {
        let shown = if mode.is_empty() { "not set (ImageDefault)" } else { mode };
        add(
            Check::AssessmentOff,
            Level::Warning,
            format!("assessmentMode is {shown}"),
            "Without periodic assessment nobody sees which patches this machine is missing.",
            fix::periodic_assessment(m),
        );
    }
    let last = cx.fleet.assessments.get(&m.key()).and_then(|a| a.last_assessed);
    let age = last.map(|t| cx.options.as_of - t);
    let (severity, detail) = match age {
        None => (Level::Error, "no assessment on record".to_owned()),
        Some(age) if age > Duration::days(7) => (Level::Error, format!("last assessed {} days ago", age.whole_days())),
        Some(age) if age > Duration::hours(24) => {
            (Level::Warning, format!("last assessed {} hours ago", age.whole_hours()))
        }
        Some(_) => return,
    };
    add(
        Check::AssessmentStale,
        severity,
        detail,
        "What this machine is missing is unknown or out of date, so compliance for it cannot be trusted.",
        fix::assess_now(m),
    );
}

fn pending_by_machine(pending: &[PendingPatch]) -> HashMap<String, Vec<&PendingPatch>> {
    let mut out: HashMap<String, Vec<&PendingPatch>> = HashMap::new();
    for p in pending {
        out.entry(p.machine.clone()).or_default().push(p);
    }
    out
}

/// Critical or security patches pending longer than the limit although a run had its chance
/// (or no schedule will ever run), with the reason: detail, why, fix.
fn pending_critical(
    cx: &Context<'_>,
    m: &Machine,
    configurations: &[&Configuration],
    pending: &[&PendingPatch],
) -> Option<(String, &'static str, String)> {
    let limit = cx.options.as_of - Duration::days(cx.options.pending_days);
    let old: Vec<&PendingPatch> = pending.iter().copied().filter(|p| p.published.is_some_and(|t| t < limit)).collect();
    let oldest = old.iter().min_by_key(|p| p.published)?;
    // The latest run of the machine's schedules: a patch published before it should be installed.
    let last_run = configurations
        .iter()
        .filter_map(|c| cx.runs_of(&c.key()).last().map(|r| (*c, *r)))
        .max_by_key(|(_, r)| r.start);
    let due: Vec<&PendingPatch> = match last_run {
        None if configurations.is_empty() => old.clone(),
        None => return None,
        Some((_, run)) => old.iter().copied().filter(|p| p.published.is_some_and(|t| t < run.start)).collect(),
    };
    if due.is_empty() {
        return None;
    }
    let days = (cx.options.as_of - oldest.published.unwrap_or(cx.options.as_of)).whole_days();
    let (diagnosis, fix) = diagnose(cx, m, configurations, last_run, &due);
    let detail = format!(
        "{} critical/security patch{} pending, oldest {} ({days} days): {diagnosis}",
        due.len(),
        if due.len() == 1 { "" } else { "es" },
        patch_label(oldest)
    );
    Some((detail, "Critical and security fixes stay missing on this machine while its schedule appears to run.", fix))
}

fn diagnose(
    cx: &Context<'_>,
    m: &Machine,
    configurations: &[&Configuration],
    last_run: Option<(&Configuration, &crate::inventory::PastRun)>,
    due: &[&PendingPatch],
) -> (String, String) {
    let Some((config, run)) = last_run else {
        let suggestion = configurations.first().copied();
        return ("not in a schedule".to_owned(), fix::assign(m, suggestion));
    };
    let os = if m.os == OsType::Unknown { OsType::Windows } else { m.os };
    let included = |p: &&PendingPatch| {
        p.classifications.iter().filter(|c| is_critical_or_security(c)).any(|c| {
            let class = if c.to_ascii_lowercase().starts_with("critical") { "critical" } else { "security" };
            config.classifications(os).iter().any(|k| k.to_ascii_lowercase().starts_with(class))
        })
    };
    if !due.iter().any(included) {
        return (format!("classification not included by {}", config.name), fix::include_critical_security(config, os));
    }
    let window = cx.fleet.configurations.iter().position(|c| c.key() == config.key()).and_then(|i| cx.schedule(i));
    match run.machines.get(m.key().as_str()) {
        Some(PastOutcome::WindowExceeded) => {
            let minutes = window.map_or(0, |s| s.duration_minutes());
            (
                format!("the window of {} was too short in its last run", config.name),
                fix::update_window(config, &[("maintenance-window-duration", &longer_window(minutes))]),
            )
        }
        Some(PastOutcome::NoShow) | None => {
            (format!("the machine did not report in the last run of {}", config.name), fix::install_now(m))
        }
        Some(PastOutcome::Failed) => {
            (format!("installation failed in the last run of {}", config.name), fix::install_now(m))
        }
        Some(PastOutcome::Succeeded) => {
            (format!("still pending after the last run of {} succeeded", config.name), fix::install_now(m))
        }
    }
}

/// A window an hour longer, capped at the portal's 3 h 55 min.
pub(super) fn longer_window(minutes: u32) -> String {
    let m = minutes.saturating_add(60).clamp(90, 235);
    format!("{:02}:{:02}", m / 60, m % 60)
}

fn patch_label(p: &PendingPatch) -> String {
    match (&p.kb_id, &p.version) {
        (Some(kb), _) => format!("KB{}", kb.trim_start_matches("KB")),
        (None, Some(v)) => format!("{} {v}", p.name),
        (None, None) => p.name.clone(),
    }
}

/// No result in each of the configuration's last three runs that expected the machine.
fn repeat_no_show(cx: &Context<'_>, m: &Machine, c: &Configuration) -> Option<String> {
    let runs = cx.recent_runs(&c.key(), RECENT_RUNS);
    if runs.len() < RECENT_RUNS {
        return None;
    }
    let key = m.key();
    let name = m.name.to_ascii_lowercase();
    let all = runs.iter().all(|r| {
        matches!(r.machines.get(key.as_str()).or_else(|| r.machines.get(name.as_str())), Some(PastOutcome::NoShow))
    });
    all.then(|| {
        let state = m.power_state.as_deref().map(|s| format!(" (now {s})")).unwrap_or_default();
        format!("no result in the last {RECENT_RUNS} runs of {}{state}", c.name)
    })
}

/// The configuration most machines of the same owner and OS are in: the likely intended one.
struct Suggestions {
    by_owner_os: HashMap<(Option<String>, OsType), HashMap<String, usize>>,
}

impl Suggestions {
    fn new(cx: &Context<'_>) -> Self {
        let mut by_owner_os: HashMap<(Option<String>, OsType), HashMap<String, usize>> = HashMap::new();
        for (i, m) in cx.fleet.machines.iter().enumerate() {
            for c in &cx.coverage.configurations[i] {
                *by_owner_os.entry((cx.machine_owner(m), m.os)).or_default().entry(c.clone()).or_default() += 1;
            }
        }
        Self { by_owner_os }
    }

    fn for_machine<'a>(&self, cx: &Context<'a>, m: &Machine) -> Option<&'a Configuration> {
        let counts = self.by_owner_os.get(&(cx.machine_owner(m), m.os))?;
        let best = counts.iter().max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))?;
        cx.configuration(best.0)
    }
}
