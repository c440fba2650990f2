//! The lint's checks, over one shared [`Context`] (coverage, parsed schedules and runs per
//! configuration are computed once, not per check).

mod machines;
pub(crate) mod rings;
mod schedules;

use std::collections::HashMap;

use patchwatch_schedule::{Schedule, ScheduleError, WindowSpec};

use crate::{
    inventory::{Configuration, Fleet, Machine, PastRun},
    lint::{Check, Finding, Level, LintOptions},
    scope::Coverage,
};

/// Reboot reserve Update Manager keeps at the end of a window (`scheduled-patching.md`).
pub(crate) const WINDOWS_REBOOT_RESERVE_MINUTES: u32 = 10;
pub(crate) const LINUX_REBOOT_RESERVE_MINUTES: u32 = 15;
/// How many of a configuration's latest runs count as "recent".
pub(crate) const RECENT_RUNS: usize = 3;

/// What a check found, before it is tied to its machine or schedule.
#[derive(Debug)]
pub(crate) struct Found {
    pub check: Check,
    pub severity: Level,
    pub detail: String,
    pub why: &'static str,
    pub fix: String,
}

/// Everything the checks share, computed once.
#[derive(Debug)]
pub struct Context<'a> {
    pub fleet: &'a Fleet,
    pub options: &'a LintOptions,
    pub coverage: Coverage,
    configurations: HashMap<String, usize>,
    schedules: Vec<Result<Schedule, ScheduleError>>,
    /// Runs that started before `as_of`, per lower-cased configuration id, oldest first.
    runs: HashMap<String, Vec<&'a PastRun>>,
}

impl<'a> Context<'a> {
    pub fn new(fleet: &'a Fleet, options: &'a LintOptions) -> Self {
        let configurations: HashMap<String, usize> =
            fleet.configurations.iter().enumerate().map(|(i, c)| (c.key(), i)).collect();
        let schedules: Vec<Result<Schedule, ScheduleError>> = fleet.configurations.iter().map(schedule_of).collect();
        let mut runs: HashMap<String, Vec<&PastRun>> = HashMap::new();
        for run in &fleet.runs {
            // A run whose window is still open is not over: its missing results are not no-shows.
            let window = configurations
                .get(&run.configuration)
                .and_then(|&i: &usize| schedules.get(i))
                .and_then(|s| s.as_ref().ok())
                .map_or(0, Schedule::duration_minutes);
            if run.start + time::Duration::minutes(i64::from(window)) <= options.as_of {
                runs.entry(run.configuration.clone()).or_default().push(run);
            }
        }
        Self { fleet, options, coverage: Coverage::resolve(fleet), configurations, schedules, runs }
    }

    pub fn configuration(&self, key: &str) -> Option<&'a Configuration> {
        self.configuration_index(key).map(|(_, c)| c)
    }

    /// A configuration and its index (for [`Context::schedule`]), by lower-cased id.
    pub fn configuration_index(&self, key: &str) -> Option<(usize, &'a Configuration)> {
        self.configurations.get(key).map(|&i| (i, &self.fleet.configurations[i]))
    }

    /// The parsed schedule of a configuration (by index).
    pub fn schedule(&self, index: usize) -> Option<&Schedule> {
        self.schedules.get(index).and_then(|s| s.as_ref().ok())
    }

    /// Why a configuration's window does not parse (by index), if it does not.
    pub fn schedule_error(&self, index: usize) -> Option<&ScheduleError> {
        self.schedules.get(index).and_then(|s| s.as_ref().err())
    }

    /// The configuration's runs before `as_of`, oldest first.
    pub fn runs_of(&self, key: &str) -> &[&'a PastRun] {
        self.runs.get(key).map_or(&[], Vec::as_slice)
    }

    /// The configuration's latest runs, at most `n`, oldest first.
    pub fn recent_runs(&self, key: &str, n: usize) -> &[&'a PastRun] {
        let runs = self.runs_of(key);
        &runs[runs.len().saturating_sub(n)..]
    }

    pub fn machine_owner(&self, m: &Machine) -> Option<String> {
        self.options.owner_tags.iter().find_map(|t| m.tag(t)).map(str::to_owned)
    }

    pub fn configuration_owner(&self, c: &Configuration) -> Option<String> {
        self.options.owner_tags.iter().find_map(|t| c.tag(t)).map(str::to_owned)
    }

    /// The configurations a machine is in (by index in the fleet), existing ones only.
    pub fn machine_configurations(&self, machine_index: usize) -> impl Iterator<Item = &'a Configuration> + '_ {
        self.coverage.configurations[machine_index].iter().filter_map(|k| self.configuration(k))
    }
}

fn schedule_of(c: &Configuration) -> Result<Schedule, ScheduleError> {
    let w = &c.window;
    Schedule::parse(&WindowSpec {
        start_date_time: &w.start_date_time,
        expiration_date_time: w.expiration_date_time.as_deref(),
        duration: &w.duration,
        time_zone: &w.time_zone,
        recur_every: &w.recur_every,
    })
}

/// Runs every check. Findings are sorted by check, severity, then name.
pub fn lint(fleet: &Fleet, options: &LintOptions) -> Vec<Finding> {
    let cx = Context::new(fleet, options);
    let mut findings = Vec::new();
    machines::check(&cx, &mut findings);
    schedules::check(&cx, &mut findings);
    rings::check(&cx, &mut findings);
    findings.sort_by(|a, b| {
        (a.check, a.severity, &a.name, &a.resource_id).cmp(&(b.check, b.severity, &b.name, &b.resource_id))
    });
    findings
}
