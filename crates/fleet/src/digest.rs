//! The compliance digest's data: what one team (or everyone) is told each period. Built from a
//! [`Fleet`](crate::Fleet), the lint's findings, next runs and trends; rendered elsewhere.

use serde::Serialize;
use time::OffsetDateTime;

use crate::lint::Finding;
use crate::trends::{ConfigurationTrend, KbCarryover, RepeatOffender};
use crate::{
    checks::Context,
    collect::is_critical_or_security,
    inventory::{CLASSIFICATIONS, Machine, PendingPatch},
    lint::Subject,
    trends,
};
use patchwatch_model::routing::UNTAGGED;
use std::collections::{BTreeMap, HashMap, HashSet};

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

/// The owners the fleet names (owner tag values of machines and configurations), sorted, and
/// [`UNTAGGED`] last when some machine has no owner tag: those are the machines most likely
/// forgotten, and a split must not drop them.
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
    if cx.fleet.machines.iter().any(|m| cx.machine_owner(m).is_none()) {
        out.push(UNTAGGED.to_owned());
    }
    out
}

/// The digest for one owner (their machines, their configurations and the configurations their
/// machines are in), or for the whole fleet with `owner` none. For several owners of one
/// evaluation, prepare [`Shared`] once and build from it.
pub fn build(cx: &Context<'_>, findings: &[Finding], owner: Option<&str>, options: &DigestOptions) -> Digest {
    Shared::new(cx, options).build(findings, owner)
}

/// What every digest of one evaluation shares, computed once: each machine's owner, the pending
/// patches by machine, and the trends and calendar of every configuration. A digest per owner
/// then costs its own machines, not the fleet.
#[derive(Debug)]
pub struct Shared<'c, 'a> {
    cx: &'c Context<'a>,
    owners: Vec<Option<String>>,
    pending: HashMap<String, Vec<&'a PendingPatch>>,
    trends: Vec<ConfigurationTrend>,
    offenders: Vec<RepeatOffender>,
    carryover: Vec<KbCarryover>,
    calendar: Vec<CalendarEntry>,
}

impl<'c, 'a> Shared<'c, 'a> {
    pub fn new(cx: &'c Context<'a>, options: &DigestOptions) -> Self {
        let mut pending: HashMap<String, Vec<&'a PendingPatch>> = HashMap::new();
        for p in &cx.fleet.pending {
            pending.entry(p.machine.clone()).or_default().push(p);
        }
        Self {
            cx,
            owners: cx.fleet.machines.iter().map(|m| cx.machine_owner(m)).collect(),
            pending,
            trends: trends::configuration_trends(cx, options.trend_runs),
            offenders: trends::repeat_offenders(cx),
            carryover: trends::kb_carryover(cx),
            calendar: calendar(cx, options.calendar_days),
        }
    }

    /// One digest: the whole fleet (`owner` none) or one owner's share.
    pub fn build(&self, findings: &[Finding], owner: Option<&str>) -> Digest {
        let cx = self.cx;
        // The `untagged` group of a split is the machines and schedules without an owner tag.
        let owned = |o: Option<&str>| match owner {
            None => true,
            Some(want) if want.eq_ignore_ascii_case(UNTAGGED) => o.is_none(),
            Some(want) => o.is_some_and(|o| o.eq_ignore_ascii_case(want)),
        };
        let machines: Vec<usize> = (0..cx.fleet.machines.len()).filter(|&i| owned(self.owners[i].as_deref())).collect();
        let mut configurations: HashSet<String> = cx
            .fleet
            .configurations
            .iter()
            .filter(|c| owner.is_some() && owned(cx.configuration_owner(c).as_deref()))
            .map(|c| c.key())
            .collect();
        for &i in &machines {
            configurations.extend(cx.coverage.configurations[i].iter().cloned());
        }
        let in_scope = |f: &&Finding| match (owner, f.subject) {
            (None, _) => true,
            (Some(_), Subject::Machine) => owned(f.owner.as_deref()),
            (Some(_), _) => owned(f.owner.as_deref()) || configurations.contains(&f.resource_id.to_ascii_lowercase()),
        };
        let findings: Vec<Finding> = findings.iter().filter(in_scope).cloned().collect();
        let pending: Vec<(&Machine, &PendingPatch)> = machines
            .iter()
            .map(|&i| &cx.fleet.machines[i])
            .flat_map(|m| self.pending.get(&m.key()).into_iter().flatten().map(move |p| (m, *p)))
            .collect();
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
            calendar: keep(&self.calendar, |c| &c.configuration_id, &in_configs),
            trends: keep(&self.trends, |t| &t.configuration_id, &in_configs),
            repeat_offenders: keep(&self.offenders, |r| &r.configuration_id, &in_configs),
            kb_carryover: keep(&self.carryover, |k| &k.scheduled_in_id, &in_configs),
            findings,
        }
    }
}

/// The items of `v` about configurations in scope.
fn keep<T: Clone>(v: &[T], id: impl Fn(&T) -> &String, in_scope: &dyn Fn(&str) -> bool) -> Vec<T> {
    v.iter().filter(|x| in_scope(id(x))).cloned().collect()
}

/// How old an assessment may be and still vouch for a machine (assessment runs every 24 hours).
const COMPLIANCE_ASSESSMENT_DAYS: i64 = 7;

/// Compliant: assessed successfully in the last 7 days, with no critical or security patch
/// pending. A machine never assessed, or whose assessment failed or is old, is not compliant:
/// nobody knows what it misses.
fn is_compliant(cx: &Context<'_>, m: &Machine) -> bool {
    let fresh = cx.options.as_of - time::Duration::days(COMPLIANCE_ASSESSMENT_DAYS);
    cx.fleet.assessments.get(&m.key()).is_some_and(|a| {
        !a.status.eq_ignore_ascii_case("failed")
            && a.last_assessed.is_some_and(|t| t >= fresh)
            && a.critical_or_security() == 0
    })
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

fn classification_counts(cx: &Context<'_>, machines: &[usize]) -> Vec<ClassificationCount> {
    let mut totals = [0u64; CLASSIFICATIONS.len()];
    for &i in machines {
        if let Some(a) = cx.fleet.assessments.get(&cx.fleet.machines[i].key()) {
            for (total, n) in totals.iter_mut().zip(a.available) {
                *total += u64::from(n);
            }
        }
    }
    CLASSIFICATIONS
        .iter()
        .zip(totals)
        .map(|((_, label), patches)| ClassificationCount { classification: (*label).to_owned(), patches })
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

fn pending_rows(cx: &Context<'_>, pending: &[(&Machine, &PendingPatch)]) -> Vec<PendingRow> {
    let mut rows: Vec<PendingRow> = pending
        .iter()
        .map(|(m, p)| PendingRow {
            machine: m.name.clone(),
            machine_id: m.id.clone(),
            owner: cx.machine_owner(m),
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
        })
        .collect();
    rows.sort_by(|a, b| b.age_days.cmp(&a.age_days).then_with(|| a.machine.cmp(&b.machine)));
    rows
}

fn calendar(cx: &Context<'_>, days: i64) -> Vec<CalendarEntry> {
    let until = cx.options.as_of + time::Duration::days(days);
    let mut out = Vec::new();
    for (i, c) in cx.fleet.configurations.iter().enumerate() {
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
