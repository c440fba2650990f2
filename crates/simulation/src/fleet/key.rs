//! The answer key, by construction: the personas' declared findings, plus the configuration
//! and scope findings worked out from the plan.

use std::collections::BTreeMap;

use time::Duration;

use super::{
    Plan, PlannedConfig,
    spec::{BIG_SCOPE, Cfg, History, Member, SCOPES},
};
use crate::{AnswerKey, ExpectedFinding, Machine, has_previous_result};

/// Minutes a reboot needs left in the window (Update Manager's rule).
pub(crate) fn reboot_reserve_minutes(windows: bool) -> i64 {
    if windows { 10 } else { 15 }
}

/// Seconds a result of `minutes` (it starts 30 s in) plus its reboot reserve takes of a window.
pub(crate) fn window_need_seconds(minutes: i64, windows: bool) -> i64 {
    minutes * 60 - 30 + reboot_reserve_minutes(windows) * 60
}

pub(super) fn answer_key(plan: &Plan, run: &[Machine]) -> AnswerKey {
    let mut findings = Vec::new();
    for (j, p) in plan.personas.iter().enumerate() {
        let id = plan.persona_machine(j).m.id;
        findings.extend(p.guilt.iter().map(|g| ExpectedFinding {
            check: g.check,
            severity: g.severity,
            resource_id: id.clone(),
        }));
    }
    for c in &plan.configs {
        if let Some(severity) = short_window(plan, c, run) {
            findings.push(finding("short-window", Some(severity), &c.id));
        }
        if c.window.expires_at().is_some_and(|e| e < plan.as_of + Duration::days(30)) {
            findings.push(finding("config-expiring", None, &c.id));
        }
    }
    findings.extend(ring_order(plan));
    findings.extend(scope_limit(plan));
    let mut key = AnswerKey { as_of: plan.as_of, machines: plan.total(), findings };
    key.sort();
    key
}

fn finding(check: &'static str, severity: Option<&'static str>, id: &str) -> ExpectedFinding {
    ExpectedFinding { check, severity, resource_id: id.to_owned() }
}

/// Warning under 1:30; error when an install of the recent runs plus its reboot reserve needed
/// more than the window. Installs are drawn well inside the window except the run's own window
/// overruns, last month's fixed 20-minute results and the personas built to run long.
fn short_window(plan: &Plan, c: &PlannedConfig, run: &[Machine]) -> Option<&'static str> {
    let limit = c.window.minutes * 60;
    let mut need = 0;
    if c.cfg == Cfg::Ring2 {
        for (i, m) in run.iter().enumerate() {
            if m.has_result() {
                need = need.max(window_need_seconds(m.minutes, m.windows));
            }
            if has_previous_result(i) {
                need = need.max(window_need_seconds(20, m.windows));
            }
        }
    }
    for p in plan.personas.iter().filter(|p| p.member.config() == Some(c.cfg) && p.history == History::LongInstall) {
        need = need.max(window_need_seconds(long_install_minutes(c), p.windows));
    }
    if need > limit {
        Some("error")
    } else if c.window.minutes < 90 {
        Some("warning")
    } else {
        None
    }
}

/// The long install of a `LongInstall` persona: five minutes less than the window.
pub(crate) fn long_install_minutes(c: &PlannedConfig) -> i64 {
    c.window.minutes - 5
}

/// `<prefix>Ring<N>…`: the prefix (lower-cased) and N.
pub(crate) fn ring_position(name: &str) -> Option<(String, u32)> {
    let lower = name.to_ascii_lowercase();
    let mut from = 0;
    while let Some(at) = lower[from..].find("ring").map(|i| i + from) {
        let digits: String = lower[at + 4..].chars().take_while(char::is_ascii_digit).collect();
        if let Ok(n) = digits.parse() {
            return Some((lower[..at].to_owned(), n));
        }
        from = at + 4;
    }
    None
}

/// In each ring sequence, the later of two neighbouring rings whose next runs are out of order
/// or less than five days apart.
fn ring_order(plan: &Plan) -> Vec<ExpectedFinding> {
    let mut groups: BTreeMap<String, Vec<(u32, &PlannedConfig)>> = BTreeMap::new();
    for c in &plan.configs {
        if let Some((prefix, n)) = ring_position(&c.name) {
            groups.entry(prefix).or_default().push((n, c));
        }
    }
    let mut out = Vec::new();
    for rings in groups.values_mut() {
        rings.sort_by_key(|(n, _)| *n);
        for pair in rings.windows(2) {
            let (a, b) = (pair[0].1, pair[1].1);
            if let (Some(na), Some(nb)) = (a.window.next_after(plan.as_of), b.window.next_after(plan.as_of))
                && nb < na + Duration::days(5)
            {
                out.push(finding("ring-order", None, &b.id));
            }
        }
    }
    out
}

/// Machines each dynamic scope takes in: its personas, and the bulk for the big one.
pub(crate) fn scope_members(plan: &Plan, scope: usize) -> usize {
    let personas = plan.personas.iter().filter(|p| p.member == Member::Scope(scope)).count();
    personas + if scope == BIG_SCOPE { plan.bulk } else { 0 }
}

fn scope_limit(plan: &Plan) -> Vec<ExpectedFinding> {
    (0..SCOPES.len())
        .filter_map(|s| {
            let n = scope_members(plan, s);
            let severity = if n > 1000 {
                "error"
            } else if n > 900 {
                "warning"
            } else {
                return None;
            };
            Some(finding("scope-limit", Some(severity), &plan.scope_id(s)))
        })
        .collect()
}
