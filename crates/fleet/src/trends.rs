//! Trends over a configuration's last runs: failures and no-shows per run, install time against
//! the window, repeat offenders, and KBs that failed in one ring and are due in the next.

use crate::{
    checks::Context,
    inventory::{PastOutcome, PastRun},
};
use serde::Serialize;
use std::collections::HashMap;
use time::OffsetDateTime;

/// One run of a configuration, as a point on the trend.
#[derive(Clone, Debug, Serialize)]
pub struct RunPoint {
    pub run_id: String,
    pub start: OffsetDateTime,
    pub machines: usize,
    pub failed: usize,
    pub no_show: usize,
    /// Whole percent of machines that succeeded.
    pub success_percent: u32,
    pub longest_install_minutes: Option<u32>,
}

/// A configuration's last runs, oldest first.
#[derive(Clone, Debug, Serialize)]
pub struct ConfigurationTrend {
    pub configuration: String,
    pub configuration_id: String,
    pub runs: Vec<RunPoint>,
    pub median_install_minutes: Option<u32>,
    pub longest_install_minutes: Option<u32>,
    pub window_minutes: Option<u32>,
}

/// A machine that did not succeed in its configuration's last runs, every one of them.
#[derive(Clone, Debug, Serialize)]
pub struct RepeatOffender {
    pub machine: String,
    pub configuration: String,
    pub configuration_id: String,
    /// How many runs in a row it did not succeed (at least 3).
    pub runs: usize,
    /// `Failed` or `NoShow` in the latest run.
    pub latest: String,
}

/// A KB (or package) that failed in an earlier ring and is due in a later one.
#[derive(Clone, Debug, Serialize)]
pub struct KbCarryover {
    pub patch: String,
    pub failed_in: String,
    pub failed_machines: usize,
    pub scheduled_in: String,
    pub scheduled_in_id: String,
    pub next_run: Option<OffsetDateTime>,
}

/// Consecutive runs a machine must miss before it is a repeat offender.
const OFFENDER_RUNS: usize = 3;

/// Trends of every configuration with runs, over its last `n` runs.
pub fn configuration_trends(cx: &Context<'_>, n: usize) -> Vec<ConfigurationTrend> {
    let mut out = Vec::new();
    for (i, c) in cx.fleet.configurations.iter().enumerate() {
        let runs = cx.recent_runs(&c.key(), n);
        if runs.is_empty() {
            continue;
        }
        let mut minutes: Vec<u32> = runs.iter().flat_map(|r| r.install_minutes.iter().copied()).collect();
        minutes.sort_unstable();
        out.push(ConfigurationTrend {
            configuration: c.name.clone(),
            configuration_id: c.id.clone(),
            runs: runs.iter().map(|r| point(r)).collect(),
            median_install_minutes: minutes.get(minutes.len() / 2).copied(),
            longest_install_minutes: minutes.last().copied(),
            window_minutes: cx.schedule(i).map(patchwatch_schedule::Schedule::duration_minutes),
        });
    }
    out
}

fn point(r: &PastRun) -> RunPoint {
    let count = |o: PastOutcome| r.machines.values().filter(|v| **v == o).count();
    let succeeded = count(PastOutcome::Succeeded) + r.succeeded_uncounted;
    let machines = r.machines.len() + r.succeeded_uncounted;
    RunPoint {
        run_id: r.run_id.clone(),
        start: r.start,
        machines,
        failed: count(PastOutcome::Failed) + count(PastOutcome::WindowExceeded),
        no_show: count(PastOutcome::NoShow),
        success_percent: (succeeded * 100).checked_div(machines).map_or(100, |p| u32::try_from(p).unwrap_or(100)),
        longest_install_minutes: r.longest_install_minutes,
    }
}

/// Machines that did not succeed in each of their configuration's last three runs.
pub fn repeat_offenders(cx: &Context<'_>) -> Vec<RepeatOffender> {
    let names: HashMap<String, &str> = cx.fleet.machines.iter().map(|m| (m.key(), m.name.as_str())).collect();
    let mut out = Vec::new();
    for c in &cx.fleet.configurations {
        let runs = cx.recent_runs(&c.key(), OFFENDER_RUNS);
        let Some((latest, earlier)) = runs.split_last() else { continue };
        if runs.len() < OFFENDER_RUNS {
            continue;
        }
        for (machine, outcome) in &latest.machines {
            let missed = |r: &&&PastRun| r.machines.get(&**machine).is_some_and(|o| *o != PastOutcome::Succeeded);
            if *outcome != PastOutcome::Succeeded && earlier.iter().all(|r| missed(&r)) {
                out.push(RepeatOffender {
                    machine: names.get(&**machine).map_or_else(
                        || patchwatch_model::resource_id::last_segment(machine).to_owned(),
                        |n| (*n).to_owned(),
                    ),
                    configuration: c.name.clone(),
                    configuration_id: c.id.clone(),
                    runs: OFFENDER_RUNS,
                    latest: match outcome {
                        PastOutcome::NoShow => "NoShow",
                        PastOutcome::WindowExceeded => "WindowExceeded",
                        _ => "Failed",
                    }
                    .to_owned(),
                });
            }
        }
    }
    out.sort_by(|a, b| (&a.configuration, &a.machine).cmp(&(&b.configuration, &b.machine)));
    out
}

/// KBs that failed in a ring's latest run and that the next ring's upcoming run would install.
pub fn kb_carryover(cx: &Context<'_>) -> Vec<KbCarryover> {
    let mut out = Vec::new();
    let sequences = crate::checks::rings::sequences(&cx.fleet.configurations, &cx.options.rings);
    for sequence in sequences {
        for pair in sequence.configurations.windows(2) {
            let [a, b] = pair else { continue };
            let (Some((_, ca)), Some((ib, cb))) = (cx.configuration_index(a), cx.configuration_index(b)) else {
                continue;
            };
            let Some(latest) = cx.runs_of(&ca.key()).last() else { continue };
            let next_run = cx
                .schedule(ib)
                .and_then(|s| {
                    s.next_runs(cx.options.as_of, cx.options.as_of + time::Duration::days(62), 1).into_iter().next()
                })
                .map(|o| o.start);
            for (patch, machines) in &latest.failed_patches {
                let excluded = cb
                    .kb_exclude
                    .iter()
                    .any(|k| k.trim_start_matches("KB").eq_ignore_ascii_case(patch.trim_start_matches("KB")));
                if !excluded {
                    out.push(KbCarryover {
                        patch: patch.clone(),
                        failed_in: ca.name.clone(),
                        failed_machines: *machines,
                        scheduled_in: cb.name.clone(),
                        scheduled_in_id: cb.id.clone(),
                        next_run,
                    });
                }
            }
        }
    }
    out
}
