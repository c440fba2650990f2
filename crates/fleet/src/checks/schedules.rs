//! Checks about one schedule: a window too short, an expiring schedule, one that does not parse,
//! and a dynamic scope near Update Manager's association limit.

use time::Duration;

use super::{
    Context, Found, LINUX_REBOOT_RESERVE_MINUTES, RECENT_RUNS, WINDOWS_REBOOT_RESERVE_MINUTES, machines::longer_window,
};
use crate::{
    fix,
    inventory::{Configuration, OsType},
    lint::{Check, Finding, Level, Subject},
};

/// Update Manager's recommended minimum window.
const MIN_WINDOW_MINUTES: u32 = 90;
/// Associations per dynamic scope (Update Manager limit), and where the warning starts.
const SCOPE_LIMIT: usize = 1000;
const SCOPE_WARNING: usize = 900;
const EXPIRY_WARNING_DAYS: i64 = 30;

pub(super) fn check(cx: &Context<'_>, out: &mut Vec<Finding>) {
    let has_linux = linux_configurations(cx);
    for (i, c) in cx.fleet.configurations.iter().enumerate() {
        if !c.maintenance_scope.eq_ignore_ascii_case("InGuestPatch") {
            continue;
        }
        let mut add = |check, severity, detail: String, why: &'static str, fix: String| {
            out.push(configuration_finding(cx, c, Found { check, severity, detail, why, fix }));
        };
        let schedule = match cx.schedule(i) {
            Some(s) => s,
            None => {
                let problem = cx
                    .schedule_error(i)
                    .map_or_else(|| "unreadable maintenance window".to_owned(), ToString::to_string);
                add(
                    Check::ScheduleInvalid,
                    Level::Error,
                    problem,
                    "Update Manager cannot run a schedule whose window it cannot read.",
                    fix::update_window(c, &[("maintenance-window-recur-every", &c.window.recur_every)]),
                );
                continue;
            }
        };
        short_window(cx, c, schedule.duration_minutes(), has_linux.contains(&c.key()), &mut add);
        if let Some(expires) =
            schedule.expiration().filter(|e| *e <= cx.options.as_of + Duration::days(EXPIRY_WARNING_DAYS))
        {
            let when = patchwatch_model::text::format_time(expires);
            let detail =
                if expires <= cx.options.as_of { format!("expired on {when}") } else { format!("expires on {when}") };
            add(
                Check::ConfigExpiring,
                Level::Warning,
                detail,
                "After its expiration the schedule stops running, silently, for every machine in it.",
                fix::update_window(c, &[("maintenance-window-expiration-date-time", "9999-12-31 23:59")]),
            );
        }
    }
    scope_limits(cx, out);
}

type Add<'a> = dyn FnMut(Check, Level, String, &'static str, String) + 'a;

fn configuration_finding(cx: &Context<'_>, c: &Configuration, f: Found) -> Finding {
    Finding {
        check: f.check,
        severity: f.severity,
        subject: Subject::Configuration,
        resource_id: c.id.clone(),
        name: c.name.clone(),
        owner: cx.configuration_owner(c),
        subscription: c.subscription.clone(),
        detail: f.detail,
        why: f.why.to_owned(),
        fix: f.fix,
    }
}

/// Configurations with at least one Linux machine: they need the longer reboot reserve.
fn linux_configurations(cx: &Context<'_>) -> std::collections::HashSet<String> {
    let mut out = std::collections::HashSet::new();
    for (i, m) in cx.fleet.machines.iter().enumerate() {
        if m.os == OsType::Linux {
            out.extend(cx.coverage.configurations[i].iter().cloned());
        }
    }
    out
}

fn short_window(cx: &Context<'_>, c: &Configuration, minutes: u32, linux: bool, add: &mut Add<'_>) {
    let reserve = if linux { LINUX_REBOOT_RESERVE_MINUTES } else { WINDOWS_REBOOT_RESERVE_MINUTES };
    let recent = cx.recent_runs(&c.key(), RECENT_RUNS);
    let longest = recent.iter().filter_map(|r| r.longest_install_minutes).max();
    // A run cut off by its window under-measures the install: its overruns are the evidence.
    let exceeded = recent
        .iter()
        .filter(|r| r.machines.values().any(|o| *o == crate::inventory::PastOutcome::WindowExceeded))
        .count();
    let window = patchwatch_model::text::format_minutes(i64::from(minutes));
    match longest {
        Some(longest) if longest.saturating_add(reserve) > minutes => add(
            Check::ShortWindow,
            Level::Error,
            format!(
                "window {window}, but the longest install of its last runs took {} plus a {reserve} min reboot reserve",
                patchwatch_model::text::format_minutes(i64::from(longest))
            ),
            "Machines run out of window: the remaining patches and the reboot are skipped every time.",
            fix::update_window(c, &[("maintenance-window-duration", &longer_window(longest.saturating_add(reserve)))]),
        ),
        _ if exceeded >= 2 => add(
            Check::ShortWindow,
            Level::Error,
            format!("window {window}, exceeded in {exceeded} of its last {} runs", recent.len()),
            "Machines run out of window: the remaining patches and the reboot are skipped every time.",
            fix::update_window(c, &[("maintenance-window-duration", &longer_window(minutes))]),
        ),
        _ if minutes < MIN_WINDOW_MINUTES => add(
            Check::ShortWindow,
            Level::Warning,
            format!("window {window}, under the recommended 1 h 30"),
            "A short window leaves patches uninstalled as soon as a month brings a large update.",
            fix::update_window(c, &[("maintenance-window-duration", "01:30")]),
        ),
        _ => {}
    }
}

fn scope_limits(cx: &Context<'_>, out: &mut Vec<Finding>) {
    for (scope, &size) in cx.fleet.scopes.iter().zip(&cx.coverage.scope_sizes) {
        let severity = if size > SCOPE_LIMIT {
            Level::Error
        } else if size > SCOPE_WARNING {
            Level::Warning
        } else {
            continue;
        };
        let groups = scope_groups(cx, scope);
        let (first, rest) = groups.split_at(groups.len().div_ceil(2));
        out.push(Finding {
            check: Check::ScopeLimit,
            severity,
            subject: Subject::DynamicScope,
            resource_id: scope.id.clone(),
            name: scope.name.clone(),
            owner: cx.configuration(&scope.configuration).and_then(|c| cx.configuration_owner(c)),
            subscription: scope.subscription.clone(),
            detail: format!("matches {size} machines; a dynamic scope takes at most {SCOPE_LIMIT}"),
            why: "Machines beyond the limit are left out of the schedule without any error.".to_owned(),
            fix: fix::split_scope(scope, first, rest),
        });
    }
}

/// The resource groups of the machines a scope matches, sorted: the way to split it.
fn scope_groups(cx: &Context<'_>, scope: &crate::inventory::DynamicScope) -> Vec<String> {
    let mut groups: Vec<String> = cx
        .fleet
        .machines
        .iter()
        .filter(|m| crate::scope::matches(scope, m))
        .map(|m| m.resource_group.to_ascii_lowercase())
        .collect();
    groups.sort_unstable();
    groups.dedup();
    groups
}
