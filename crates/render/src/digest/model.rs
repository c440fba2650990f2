//! What the digest templates see: every value already formatted, long tables capped.

use serde::Serialize;
use time::OffsetDateTime;
use url::Url;

use patchwatch_fleet::{
    digest::{AttentionRow, CalendarEntry, ClassificationCount, Compliance, Digest, PendingRow},
    lint::{Check, Finding, Level, Subject},
    trends::{ConfigurationTrend, KbCarryover, RepeatOffender, RunPoint},
};
use patchwatch_model::text::{format_minutes, format_time};

use super::{MAX_DIGEST_ROWS, MAX_FINDINGS_PER_CHECK, PENDING_CHART_ID, RUNS_CHART_ID, thousands};
use crate::email::resource_link;

const GOOD: &str = "#1e7b34";
const WARN: &str = "#9a6700";
const BAD: &str = "#b3261e";
/// Width in pixels of the compliance bars.
const BAR_PX: u32 = 120;

#[derive(Serialize)]
pub(super) struct DigestModel {
    subject: String,
    period: String,
    /// The owning team; empty for the whole fleet.
    owner: String,
    generated: String,
    overall: ComplianceLine,
    by_owner: Table<ComplianceLine>,
    by_subscription: Table<ComplianceLine>,
    charts: Vec<Chart>,
    classifications: Vec<CountLine>,
    errors: usize,
    warnings: usize,
    checks: Vec<CheckGroup>,
    attention: Table<AttentionLine>,
    pending: Table<PendingLine>,
    calendar: Table<CalendarLine>,
    trends: Table<TrendLine>,
    repeat_offenders: Table<OffenderLine>,
    kb_carryover: Table<CarryoverLine>,
    attachment: String,
}

/// At most [`MAX_DIGEST_ROWS`] rows, how many there are in all, and a sentence for the rest.
#[derive(Serialize)]
struct Table<T> {
    rows: Vec<T>,
    total: String,
    more: String,
}

/// Whether the rows left out of the email are in the workbook.
#[derive(Clone, Copy)]
enum Rest<'a> {
    InAttachment(&'a str),
    NotListed,
}

fn table<S, T>(items: &[S], cap: usize, rest: Rest<'_>, line: impl Fn(&S) -> T) -> Table<T> {
    let hidden = items.len().saturating_sub(cap);
    let more = match (hidden, rest) {
        (0, _) => String::new(),
        (n, Rest::InAttachment(file)) => format!("… and {} more in the attachment ({file}).", thousands(n)),
        (n, Rest::NotListed) => format!("… and {} more not listed here.", thousands(n)),
    };
    Table { rows: items.iter().take(cap).map(line).collect(), total: thousands(items.len()), more }
}

#[derive(Serialize)]
struct ComplianceLine {
    label: String,
    machines: String,
    compliant: String,
    noncompliant: String,
    percent: u32,
    color: &'static str,
    /// The bar's filled and empty widths in pixels (either may be 0).
    bar: u32,
    rest: u32,
}

impl ComplianceLine {
    fn new(c: &Compliance) -> Self {
        let percent = c.percent();
        let bar = BAR_PX * percent.min(100) / 100;
        Self {
            label: c.label.clone(),
            machines: thousands(c.machines),
            compliant: thousands(c.compliant),
            noncompliant: thousands(c.machines.saturating_sub(c.compliant)),
            percent,
            color: compliance_color(percent),
            bar,
            rest: BAR_PX - bar,
        }
    }
}

/// Green from 95%, amber from 80%, red below.
pub(crate) fn compliance_color(percent: u32) -> &'static str {
    match percent {
        95.. => GOOD,
        80.. => WARN,
        _ => BAD,
    }
}

#[derive(Serialize)]
struct Chart {
    cid: &'static str,
    alt: String,
    title: &'static str,
}

#[derive(Serialize)]
struct CountLine {
    label: String,
    count: String,
}

#[derive(Serialize)]
struct CheckGroup {
    id: &'static str,
    title: &'static str,
    errors: usize,
    warnings: usize,
    rows: Vec<FindingLine>,
    more: String,
}

#[derive(Serialize)]
struct FindingLine {
    level: &'static str,
    color: &'static str,
    subject: &'static str,
    name: String,
    link: String,
    owner: String,
    subscription: String,
    detail: String,
    why: String,
    fix: String,
}

#[derive(Serialize)]
struct AttentionLine {
    name: String,
    link: String,
    owner: String,
    subscription: String,
    critical_or_security: u32,
    reasons: String,
}

#[derive(Serialize)]
struct PendingLine {
    machine: String,
    link: String,
    owner: String,
    patch: String,
    classification: String,
    severity: String,
    published: String,
    age: String,
}

#[derive(Serialize)]
struct CalendarLine {
    start: String,
    local: String,
    length: String,
    configuration: String,
    link: String,
}

#[derive(Serialize)]
struct TrendLine {
    configuration: String,
    link: String,
    runs: usize,
    /// Per run, oldest first: `2 · 0 · 5`.
    failed: String,
    no_show: String,
    success: String,
    latest_success: String,
    success_color: &'static str,
    median: String,
    longest: String,
    longest_color: &'static str,
}

#[derive(Serialize)]
struct OffenderLine {
    machine: String,
    configuration: String,
    runs: usize,
    latest: String,
}

#[derive(Serialize)]
struct CarryoverLine {
    patch: String,
    failed_in: String,
    failed_machines: String,
    scheduled_in: String,
    next_run: String,
}

impl DigestModel {
    pub(super) fn new(d: &Digest, portal: &Url, attachment: &str) -> Self {
        let file = Rest::InAttachment(attachment);
        let link = |id: &str| resource_link(portal, id);
        Self {
            subject: super::subject(d),
            period: d.period.clone(),
            owner: d.owner.clone().unwrap_or_default(),
            generated: format_time(d.generated),
            overall: ComplianceLine::new(&d.overall),
            by_owner: table(&d.by_owner, MAX_DIGEST_ROWS, file, ComplianceLine::new),
            by_subscription: table(&d.by_subscription, MAX_DIGEST_ROWS, file, ComplianceLine::new),
            charts: charts(d),
            classifications: d.pending_by_classification.iter().map(CountLine::new).collect(),
            errors: d.findings.iter().filter(|f| f.severity == Level::Error).count(),
            warnings: d.findings.iter().filter(|f| f.severity == Level::Warning).count(),
            checks: check_groups(&d.findings, portal, attachment),
            attention: table(&d.attention, MAX_DIGEST_ROWS, file, |r| AttentionLine::new(r, &link(&r.id))),
            pending: table(&d.pending, MAX_DIGEST_ROWS, file, |r| PendingLine::new(r, &link(&r.machine_id))),
            calendar: table(&d.calendar, MAX_DIGEST_ROWS, Rest::NotListed, |c| {
                CalendarLine::new(c, &link(&c.configuration_id))
            }),
            trends: table(&d.trends, MAX_DIGEST_ROWS, file, |t| TrendLine::new(t, &link(&t.configuration_id))),
            repeat_offenders: table(&d.repeat_offenders, MAX_DIGEST_ROWS, Rest::NotListed, OffenderLine::new),
            kb_carryover: table(&d.kb_carryover, MAX_DIGEST_ROWS, Rest::NotListed, CarryoverLine::new),
            attachment: attachment.to_owned(),
        }
    }

    pub(super) fn subject(&self) -> &str {
        &self.subject
    }
}

/// The two charts, each with a text alternative that carries its numbers.
fn charts(d: &Digest) -> Vec<Chart> {
    let pending = if d.pending_by_classification.iter().all(|c| c.patches == 0) {
        "No pending patches.".to_owned()
    } else {
        let counts: Vec<String> =
            d.pending_by_classification.iter().map(|c| format!("{} {}", c.classification, c.patches)).collect();
        format!("Pending patches by classification: {}.", counts.join(", "))
    };
    let runs = if d.trends.is_empty() {
        "No runs in the period.".to_owned()
    } else {
        let lines: Vec<String> = d
            .trends
            .iter()
            .map(|t| {
                format!(
                    "{}: failed {}; no-show {}",
                    t.configuration,
                    per_run(&t.runs, |r| r.failed),
                    per_run(&t.runs, |r| r.no_show)
                )
            })
            .collect();
        format!("Failed and no-show machines per run, oldest first. {}.", lines.join(". "))
    };
    vec![
        Chart { cid: PENDING_CHART_ID, alt: pending, title: "Pending patches by classification" },
        Chart { cid: RUNS_CHART_ID, alt: runs, title: "Failed and no-show machines in the last runs" },
    ]
}

impl CountLine {
    fn new(c: &ClassificationCount) -> Self {
        Self { label: c.classification.clone(), count: thousands(usize::try_from(c.patches).unwrap_or(usize::MAX)) }
    }
}

/// Findings grouped by check, in the digest's order (by check), each group capped.
fn check_groups(findings: &[Finding], portal: &Url, attachment: &str) -> Vec<CheckGroup> {
    let mut groups: Vec<(Check, Vec<&Finding>)> = Vec::new();
    for f in findings {
        match groups.last_mut() {
            Some((check, list)) if *check == f.check => list.push(f),
            _ => groups.push((f.check, vec![f])),
        }
    }
    groups
        .into_iter()
        .map(|(check, list)| {
            let hidden = list.len().saturating_sub(MAX_FINDINGS_PER_CHECK);
            CheckGroup {
                id: check.id(),
                title: check_title(check),
                errors: list.iter().filter(|f| f.severity == Level::Error).count(),
                warnings: list.iter().filter(|f| f.severity == Level::Warning).count(),
                rows: list.iter().take(MAX_FINDINGS_PER_CHECK).map(|f| FindingLine::new(f, portal)).collect(),
                more: if hidden == 0 {
                    String::new()
                } else {
                    format!("… and {} more in the attachment ({attachment}).", thousands(hidden))
                },
            }
        })
        .collect()
}

/// What a check looks for, as a heading.
pub(crate) fn check_title(check: Check) -> &'static str {
    match check {
        Check::PatchMode => "Machines not set to be patched by Update Manager",
        Check::BypassFlag => "Machines that skip schedule-based patching",
        Check::Unassigned => "Machines in no maintenance configuration",
        Check::ShortWindow => "Windows too short for their installs",
        Check::ScopeLimit => "Dynamic scopes over their limit",
        Check::AssessmentOff => "Machines with periodic assessment off",
        Check::AssessmentStale => "Machines with a stale assessment",
        Check::PendingCritical => "Critical or security patches pending too long",
        Check::RepeatNoShow => "Machines that keep missing their runs",
        Check::ConfigExpiring => "Configurations about to expire",
        Check::RingOrder => "Rings out of order",
        Check::ScheduleInvalid => "Schedules that cannot run as written",
    }
}

pub(crate) fn level_color(level: Level) -> &'static str {
    match level {
        Level::Error => BAD,
        Level::Warning => WARN,
    }
}

pub(crate) fn subject_label(subject: Subject) -> &'static str {
    match subject {
        Subject::Machine => "machine",
        Subject::Configuration => "configuration",
        Subject::DynamicScope => "dynamic scope",
    }
}

impl FindingLine {
    fn new(f: &Finding, portal: &Url) -> Self {
        Self {
            level: f.severity.as_str(),
            color: level_color(f.severity),
            subject: subject_label(f.subject),
            name: f.name.clone(),
            link: resource_link(portal, &f.resource_id),
            owner: f.owner.clone().unwrap_or_default(),
            subscription: f.subscription.clone(),
            detail: f.detail.clone(),
            why: f.why.clone(),
            fix: f.fix.clone(),
        }
    }
}

impl AttentionLine {
    fn new(r: &AttentionRow, link: &str) -> Self {
        Self {
            name: r.name.clone(),
            link: link.to_owned(),
            owner: r.owner.clone().unwrap_or_default(),
            subscription: r.subscription.clone(),
            critical_or_security: r.critical_or_security,
            reasons: r.reasons.join(", "),
        }
    }
}

impl PendingLine {
    fn new(r: &PendingRow, link: &str) -> Self {
        Self {
            machine: r.machine.clone(),
            link: link.to_owned(),
            owner: r.owner.clone().unwrap_or_default(),
            patch: r.patch.clone(),
            classification: r.classification.clone(),
            severity: r.severity.clone().unwrap_or_default(),
            published: r.published.map(format_date).unwrap_or_default(),
            age: r.age_days.map(|d| format!("{d} d")).unwrap_or_default(),
        }
    }
}

impl CalendarLine {
    fn new(c: &CalendarEntry, link: &str) -> Self {
        Self {
            start: format_time(c.start),
            local: c.local.clone(),
            length: format_minutes((c.end - c.start).whole_minutes()),
            configuration: c.configuration.clone(),
            link: link.to_owned(),
        }
    }
}

impl TrendLine {
    fn new(t: &ConfigurationTrend, link: &str) -> Self {
        let latest = t.runs.last().map(|r| r.success_percent);
        let longest_share = share(t.longest_install_minutes, t.window_minutes);
        Self {
            configuration: t.configuration.clone(),
            link: link.to_owned(),
            runs: t.runs.len(),
            failed: per_run(&t.runs, |r| r.failed),
            no_show: per_run(&t.runs, |r| r.no_show),
            success: t.runs.iter().map(|r| format!("{}%", r.success_percent)).collect::<Vec<_>>().join(" · "),
            latest_success: latest.map(|p| format!("{p}%")).unwrap_or_else(|| "—".to_owned()),
            success_color: latest.map_or("#57606a", compliance_color),
            median: vs_window(t.median_install_minutes, t.window_minutes),
            longest: vs_window(t.longest_install_minutes, t.window_minutes),
            longest_color: match longest_share {
                Some(90..) => BAD,
                Some(75..) => WARN,
                _ => "#1f2328",
            },
        }
    }
}

/// `2 · 0 · 5`: one number per run, oldest first.
pub(crate) fn per_run(runs: &[RunPoint], n: impl Fn(&RunPoint) -> usize) -> String {
    if runs.is_empty() {
        return "—".to_owned();
    }
    runs.iter().map(|r| n(r).to_string()).collect::<Vec<_>>().join(" · ")
}

/// Whole percent of the window an install took.
fn share(minutes: Option<u32>, window: Option<u32>) -> Option<u32> {
    match (minutes, window) {
        (Some(m), Some(w)) if w > 0 => Some(m.saturating_mul(100) / w),
        _ => None,
    }
}

/// `1 h 10 min of 3 h (39%)`.
pub(crate) fn vs_window(minutes: Option<u32>, window: Option<u32>) -> String {
    match (minutes, window, share(minutes, window)) {
        (None, _, _) => "—".to_owned(),
        (Some(m), Some(w), Some(p)) => {
            format!("{} of {} ({p}%)", format_minutes(i64::from(m)), format_minutes(i64::from(w)))
        }
        (Some(m), _, _) => format_minutes(i64::from(m)),
    }
}

impl OffenderLine {
    fn new(o: &RepeatOffender) -> Self {
        Self {
            machine: o.machine.clone(),
            configuration: o.configuration.clone(),
            runs: o.runs,
            latest: o.latest.clone(),
        }
    }
}

impl CarryoverLine {
    fn new(k: &KbCarryover) -> Self {
        Self {
            patch: k.patch.clone(),
            failed_in: k.failed_in.clone(),
            failed_machines: thousands(k.failed_machines),
            scheduled_in: k.scheduled_in.clone(),
            next_run: k.next_run.map(format_time).unwrap_or_else(|| "—".to_owned()),
        }
    }
}

/// `2026-11-10`.
pub(crate) fn format_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}
