//! Each configuration's earlier runs: the run records, every member's `applyupdates` row, and
//! its installation result with the patches that failed.

use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use super::{
    Plan, PlannedConfig,
    assess::old_patch_line,
    key::long_install_minutes,
    machines::{FleetMachine, Stream, machine_rng},
    spec::History,
};
use crate::{InstallOutcome, PatchLine, PatchRow, ResultRow, has_previous_result, run_name, ts};

/// How a machine did in one earlier run.
#[derive(Debug)]
pub(crate) enum Past {
    NoShow,
    Done { minutes: i64, failed: Option<PatchLine<'static>> },
}

impl Plan {
    /// The configuration's record of one run (`maintenanceconfigurations/applyupdates`).
    pub(crate) fn run_record(&self, c: &PlannedConfig, start: OffsetDateTime) -> Value {
        let run = c.run_id(start);
        json!({
            "id": run, "name": run_name(start), "type": "microsoft.maintenance/maintenanceconfigurations/applyupdates",
            "subscriptionId": self.subs[0], "resourceGroup": "rg-patching", "location": "westeurope", "tags": {},
            "properties": { "correlationId": run, "maintenanceConfigurationId": c.id.to_ascii_lowercase(), "status": "Completed",
                            "startDateTime": ts(start), "endDateTime": ts(start + c.window.length()) }
        })
    }

    /// The machine's configuration and its earlier runs (newest first).
    fn runs_of(&self, fm: &FleetMachine) -> Option<&PlannedConfig> {
        fm.member.config().map(|cfg| self.config(cfg))
    }

    /// The machine's `applyupdates` row in each earlier run of its configuration.
    pub(crate) fn applyupdates_rows(&self, fm: &FleetMachine) -> Vec<Value> {
        let Some(c) = self.runs_of(fm) else { return Vec::new() };
        let machine = fm.m.id.to_ascii_lowercase();
        let mc = c.id.to_ascii_lowercase();
        c.history
            .iter()
            .enumerate()
            .map(|(k, start)| {
                let status = match self.past(fm, c, k) {
                    Past::Done { failed: None, .. } => "Completed",
                    _ => "Failed",
                };
                let name = run_name(*start);
                json!({
                    "id": format!("{machine}/providers/microsoft.maintenance/applyupdates/{name}"), "name": name,
                    "type": "microsoft.maintenance/applyupdates", "subscriptionId": fm.m.sub, "resourceGroup": fm.m.rg,
                    "location": fm.location, "tags": {},
                    "properties": { "correlationId": c.run_id(*start), "maintenanceConfigurationId": mc, "maintenanceScope": "InGuestPatch",
                                    "resourceId": machine, "startDateTime": ts(*start), "endDateTime": ts(*start + c.window.length()),
                                    "status": status }
                })
            })
            .collect()
    }

    /// Outcome of the machine in earlier run `k` (0 = newest) of `c`.
    pub(crate) fn past(&self, fm: &FleetMachine, c: &PlannedConfig, k: usize) -> Past {
        let mut rng = machine_rng(self.seed, fm.index, Stream::Run as u64 + k as u64);
        // Inside the window with room for the reboot: at most half of it, 90 minutes at most.
        let cap = (c.window.minutes / 2).clamp(5, 90);
        let minutes = 4 + rng.below((cap - 3) as u64) as i64;
        let fails = rng.below(100) < 3;
        let catalogue = rng.below(4) as usize;
        match fm.history {
            History::NeverShows => Past::NoShow,
            History::ShowsOnce if k != 1 => Past::NoShow,
            History::FailsKb => Past::Done { minutes, failed: Some(old_patch_line(fm.m.windows)) },
            History::LongInstall if k == 1 => Past::Done { minutes: long_install_minutes(c), failed: None },
            History::Normal if self.no_show_run(fm) == Some(k) => Past::NoShow,
            History::Normal | History::Steady if fails => {
                Past::Done { minutes, failed: Some(PatchLine::catalogue(&fm.m, catalogue)) }
            }
            _ => Past::Done { minutes, failed: None },
        }
    }

    /// The one earlier run some machines missed (about one in thirteen).
    fn no_show_run(&self, fm: &FleetMachine) -> Option<usize> {
        let n = machine_rng(self.seed, fm.index, Stream::NoShow as u64).below(40) as usize;
        (n < 3).then_some(n)
    }

    /// The machine's installation results of the earlier runs, each with its failed patch.
    pub(crate) fn earlier_results(&self, fm: &FleetMachine) -> Vec<Value> {
        let Some(c) = self.runs_of(fm) else { return Vec::new() };
        let mut rows = Vec::new();
        for (k, start) in c.history.iter().enumerate() {
            // The run already wrote last month's result of every 20th of its machines.
            if fm.in_run && k == 0 && has_previous_result(fm.index) {
                continue;
            }
            let Past::Done { minutes, failed } = self.past(fm, c, k) else { continue };
            let mut rng = machine_rng(self.seed, fm.index, Stream::Run as u64 + 100 + k as u64);
            let rid = format!("{}/patchInstallationResults/{}", fm.m.id, rng.guid());
            let outcome = match failed {
                Some(_) => InstallOutcome::failed(
                    1,
                    0,
                    false,
                    json!({"code": "PatchInstallationFailed", "message": "One or more updates failed to install"}),
                ),
                None => InstallOutcome::clean(if fm.m.windows { "Completed" } else { "NotNeeded" }),
            };
            let run = c.run_id(*start);
            let installed = 2 + rng.below(5) as u32;
            let row = ResultRow {
                rid: &rid,
                machine: &fm.m,
                run: &run,
                outcome: &outcome,
                installed,
                start: *start,
                minutes,
            };
            rows.push(row.to_json());
            if let Some(line) = &failed {
                let modified = ts(*start + Duration::minutes(minutes));
                rows.push(
                    PatchRow { rid: &rid, machine: &fm.m, n: 10, state: "Failed", line, modified: &modified }.to_json(),
                );
            }
        }
        rows
    }
}
