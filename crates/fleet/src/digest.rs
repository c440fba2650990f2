//! The compliance digest's data: what one team (or everyone) is told each period. Built from a
//! [`Fleet`](crate::Fleet), the lint's findings, next runs and trends; rendered elsewhere.

use serde::Serialize;
use time::OffsetDateTime;

use crate::lint::Finding;
use crate::trends::{ConfigurationTrend, KbCarryover, RepeatOffender};

/// Machines with no critical or security patch pending, out of all machines.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Compliance {
    /// Owner, subscription, or `All machines`.
    pub label: String,
    pub machines: usize,
    pub compliant: usize,
}

impl Compliance {
    /// Whole percent, rounded down (100 only when every machine is compliant); 100 for none.
    pub fn percent(&self) -> u32 {
        (self.compliant * 100).checked_div(self.machines).map_or(100, |p| u32::try_from(p).unwrap_or(100))
    }
}

/// A machine that needs someone's attention, and why.
#[derive(Clone, Debug, Serialize)]
pub struct AttentionRow {
    pub id: String,
    pub name: String,
    pub owner: Option<String>,
    pub subscription: String,
    /// Critical plus security patches pending.
    pub critical_or_security: u32,
    /// Check ids of the findings about this machine, and `pending` / `reboot-pending`.
    pub reasons: Vec<String>,
}

/// One pending critical or security patch on one machine.
#[derive(Clone, Debug, Serialize)]
pub struct PendingRow {
    pub machine: String,
    pub machine_id: String,
    pub owner: Option<String>,
    /// KB number (Windows) or package name and version (Linux).
    pub patch: String,
    pub classification: String,
    pub severity: Option<String>,
    pub published: Option<OffsetDateTime>,
    /// Days since published (pending that long at most).
    pub age_days: Option<i64>,
}

/// One upcoming window of one configuration.
#[derive(Clone, Debug, Serialize)]
pub struct CalendarEntry {
    pub configuration: String,
    pub configuration_id: String,
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
    /// Start in the schedule's own zone, as the owner wrote it (e.g. `2026-12-08 22:00 W. Europe Standard Time`).
    pub local: String,
}

/// Pending patch counts of one classification across the digest's machines (chart 1).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ClassificationCount {
    pub classification: String,
    pub patches: u64,
}

/// Everything one digest shows.
#[derive(Clone, Debug, Serialize)]
pub struct Digest {
    pub generated: OffsetDateTime,
    /// The period this digest covers, e.g. `2026-W49`: the ledger sends one per period.
    pub period: String,
    /// The owning team (the owner tag's value), none for the whole-fleet digest.
    pub owner: Option<String>,
    pub overall: Compliance,
    pub by_owner: Vec<Compliance>,
    pub by_subscription: Vec<Compliance>,
    pub pending_by_classification: Vec<ClassificationCount>,
    /// Sorted by check, then severity, then name.
    pub findings: Vec<Finding>,
    pub attention: Vec<AttentionRow>,
    pub pending: Vec<PendingRow>,
    /// Next 35 days, soonest first.
    pub calendar: Vec<CalendarEntry>,
    pub trends: Vec<ConfigurationTrend>,
    pub repeat_offenders: Vec<RepeatOffender>,
    pub kb_carryover: Vec<KbCarryover>,
}

use std::collections::{BTreeMap, HashSet};

use crate::{
    checks::Context,
    collect::is_critical_or_security,
    inventory::{Machine, PendingPatch},
    lint::Subject,
    trends,
};

/// What the digest covers besides the lint's options.
#[derive(Clone, Debug)]
pub struct DigestOptions {
    /// Runs per configuration in the trends.
    pub trend_runs: usize,
    /// Days of the next-runs calendar.
    pub calendar_days: i64,
}

impl Default for DigestOptions {
    fn default() -> Self {
        Self { trend_runs: 12, calendar_days: 35 }
    }
}

/// `2026-W49`: the ISO week of `t`, the digest's period (one digest per period and route).
pub fn period_of(t: OffsetDateTime) -> String {
    let (year, week, _) = t.to_iso_week_date();
    format!("{year}-W{week:02}")
}

/// The owners the fleet names (owner tag values of machines and configurations), sorted.
pub fn owners(cx: &Context<'_>) -> Vec<String> {
    let mut out: Vec<String> = cx
        .fleet
        .machines
        .iter()
        .filter_map(|m| cx.machine_owner(m))
        .chain(cx.fleet.configurations.iter().filter_map(|c| cx.configuration_owner(c)))
        .collect();
    // Tag values are compared case-insensitively, as routes split them: `Team-Data` is `team-data`.
    out.sort_by_key(|o| o.to_ascii_lowercase());
    out.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    out
}

/// The digest for one owner (their machines, their configurations and the configurations their
/// machines are in), or for the whole fleet with `owner` none.
pub fn build(cx: &Context<'_>, findings: &[Finding], owner: Option<&str>, options: &DigestOptions) -> Digest {
    let owned = |o: Option<String>| owner.is_none_or(|want| o.as_deref().is_some_and(|o| o.eq_ignore_ascii_case(want)));
    let machines: Vec<usize> =
        (0..cx.fleet.machines.len()).filter(|&i| owned(cx.machine_owner(&cx.fleet.machines[i]))).collect();
    let mut configurations: HashSet<String> = cx
        .fleet
        .configurations
        .iter()
        .filter(|c| owner.is_some() && owned(cx.configuration_owner(c)))
        .map(|c| c.key())
        .collect();
    for &i in &machines {
        configurations.extend(cx.coverage.configurations[i].iter().cloned());
    }
    let in_scope = |f: &&Finding| match (owner, f.subject) {
        (None, _) => true,
        (Some(_), Subject::Machine) => owned(f.owner.clone()),
        (Some(_), _) => owned(f.owner.clone()) || configurations.contains(&f.resource_id.to_ascii_lowercase()),
    };
    let findings: Vec<Finding> = findings.iter().filter(in_scope).cloned().collect();
    let keys: HashSet<String> = machines.iter().map(|&i| cx.fleet.machines[i].key()).collect();
    let pending: Vec<&PendingPatch> = cx.fleet.pending.iter().filter(|p| keys.contains(&p.machine)).collect();
    let in_configs = |id: &str| owner.is_none() || configurations.contains(&id.to_ascii_lowercase());
    Digest {
        generated: cx.options.as_of,
        period: period_of(cx.options.as_of),
        owner: owner.map(str::to_owned),
        overall: compliance(cx, &machines, |_| "All machines".to_owned()).pop().unwrap_or_else(|| Compliance {
            label: "All machines".to_owned(),
            machines: 0,
            compliant: 0,
        }),
        by_owner: compliance(cx, &machines, |m| cx.machine_owner(m).unwrap_or_else(|| "(no owner tag)".to_owned())),
        by_subscription: compliance(cx, &machines, |m| m.subscription.clone()),
        pending_by_classification: classification_counts(cx, &machines),
        attention: attention(cx, &machines, &findings),
        pending: pending_rows(cx, &pending),
        calendar: calendar(cx, options.calendar_days, &in_configs),
        trends: trends::configuration_trends(cx, options.trend_runs)
            .into_iter()
            .filter(|t| in_configs(&t.configuration_id))
            .collect(),
        repeat_offenders: trends::repeat_offenders(cx)
            .into_iter()
            .filter(|r| {
                owner.is_none()
                    || cx.fleet.configurations.iter().any(|c| c.name == r.configuration && in_configs(&c.id))
            })
            .collect(),
        kb_carryover: trends::kb_carryover(cx)
            .into_iter()
            .filter(|k| {
                owner.is_none() || cx.fleet.configurations.iter().any(|c| c.name == k.scheduled_in && in_configs(&c.id))
            })
            .collect(),
        findings,
    }
}

/// Compliant: assessed, with no critical or security patch pending. A machine never assessed is
/// not compliant: nobody knows what it misses.
fn is_compliant(cx: &Context<'_>, m: &Machine) -> bool {
    cx.fleet.assessments.get(&m.key()).is_some_and(|a| a.critical_or_security() == 0)
}

fn compliance(cx: &Context<'_>, machines: &[usize], label: impl Fn(&Machine) -> String) -> Vec<Compliance> {
    let mut groups: BTreeMap<String, Compliance> = BTreeMap::new();
    for &i in machines {
        let m = &cx.fleet.machines[i];
        let l = label(m);
        // Grouped case-insensitively (owner tags are written by hand); the first spelling names it.
        let entry =
            groups.entry(l.to_ascii_lowercase()).or_insert_with(|| Compliance { label: l, machines: 0, compliant: 0 });
        entry.machines += 1;
        entry.compliant += usize::from(is_compliant(cx, m));
    }
    groups.into_values().collect()
}

/// Update Manager's classification keys, in the order the portal lists them.
const CLASSIFICATIONS: [(&str, &str); 9] = [
    ("critical", "Critical"),
    ("security", "Security"),
    ("updaterollup", "Update rollup"),
    ("featurepack", "Feature pack"),
    ("servicepack", "Service pack"),
    ("definition", "Definition"),
    ("tools", "Tools"),
    ("updates", "Updates"),
    ("other", "Other"),
];

fn classification_counts(cx: &Context<'_>, machines: &[usize]) -> Vec<ClassificationCount> {
    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    for &i in machines {
        if let Some(a) = cx.fleet.assessments.get(&cx.fleet.machines[i].key()) {
            for (k, v) in &a.available {
                *totals.entry(k.as_str()).or_default() += u64::from(*v);
            }
        }
    }
    CLASSIFICATIONS
        .iter()
        .map(|(key, label)| ClassificationCount {
            classification: (*label).to_owned(),
            patches: totals.get(key).copied().unwrap_or(0),
        })
        .filter(|c| c.patches > 0)
        .collect()
}

fn attention(cx: &Context<'_>, machines: &[usize], findings: &[Finding]) -> Vec<AttentionRow> {
    let mut reasons: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in findings.iter().filter(|f| f.subject == Subject::Machine && f.severity == crate::lint::Level::Error) {
        reasons.entry(f.resource_id.to_ascii_lowercase()).or_default().push(f.check.id().to_owned());
    }
    let mut rows: Vec<AttentionRow> = machines
        .iter()
        .map(|&i| &cx.fleet.machines[i])
        .filter_map(|m| {
            let key = m.key();
            let pending = cx.fleet.assessments.get(&key).map_or(0, |a| a.critical_or_security());
            let mut why = reasons.remove(&key).unwrap_or_default();
            if pending > 0 {
                why.push("pending".to_owned());
            }
            (!why.is_empty()).then(|| AttentionRow {
                id: m.id.clone(),
                name: m.name.clone(),
                owner: cx.machine_owner(m),
                subscription: m.subscription.clone(),
                critical_or_security: pending,
                reasons: why,
            })
        })
        .collect();
    rows.sort_by(|a, b| {
        b.reasons
            .len()
            .cmp(&a.reasons.len())
            .then(b.critical_or_security.cmp(&a.critical_or_security))
            .then_with(|| a.name.cmp(&b.name))
    });
    rows
}

fn pending_rows(cx: &Context<'_>, pending: &[&PendingPatch]) -> Vec<PendingRow> {
    let machines: std::collections::HashMap<String, &Machine> =
        cx.fleet.machines.iter().map(|m| (m.key(), m)).collect();
    let mut rows: Vec<PendingRow> = pending
        .iter()
        .map(|p| {
            let m = machines.get(&p.machine);
            PendingRow {
                machine: m.map_or_else(
                    || patchwatch_model::resource_id::last_segment(&p.machine).to_owned(),
                    |m| m.name.clone(),
                ),
                machine_id: m.map_or_else(|| p.machine.clone(), |m| m.id.clone()),
                owner: m.and_then(|m| cx.machine_owner(m)),
                patch: match (&p.kb_id, &p.version) {
                    (Some(kb), _) => format!("KB{} {}", kb.trim_start_matches("KB"), p.name),
                    (None, Some(v)) => format!("{} {v}", p.name),
                    (None, None) => p.name.clone(),
                },
                classification: p
                    .classifications
                    .iter()
                    .filter(|c| is_critical_or_security(c))
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
                severity: p.msrc_severity.clone(),
                published: p.published,
                age_days: p.published.map(|t| (cx.options.as_of - t).whole_days()),
            }
        })
        .collect();
    rows.sort_by(|a, b| b.age_days.cmp(&a.age_days).then_with(|| a.machine.cmp(&b.machine)));
    rows
}

fn calendar(cx: &Context<'_>, days: i64, in_scope: &dyn Fn(&str) -> bool) -> Vec<CalendarEntry> {
    let until = cx.options.as_of + time::Duration::days(days);
    let mut out = Vec::new();
    for (i, c) in cx.fleet.configurations.iter().enumerate() {
        if !in_scope(&c.id) {
            continue;
        }
        let Some(schedule) = cx.schedule(i) else { continue };
        for o in schedule.next_runs(cx.options.as_of, until, 64) {
            out.push(CalendarEntry {
                configuration: c.name.clone(),
                configuration_id: c.id.clone(),
                start: o.start,
                end: o.end,
                local: o.local,
            });
        }
    }
    out.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.configuration.cmp(&b.configuration)));
    out
}
