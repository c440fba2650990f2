//! Realistic simulated runs: a snapshot of ARG rows plus the matching pre/post events.
//!
//! [`write_snapshot`] writes one run; [`write_fleet_snapshot`] writes the same run inside a
//! whole fleet (for the schedule lint and the compliance digest) and returns the fleet's
//! [`AnswerKey`]: every finding the lint must report, by construction.
//!
//! Deterministic for a seed. Rows are written one at a time and every fleet machine is a
//! function of the seed and its index, so a fleet of 50,000 machines needs no more memory than
//! one row (the run's own machines are held, one small record each).

use std::io::{self, Write};

use serde_json::{Value, json};
use time::{Duration, OffsetDateTime, format_description::well_known::Rfc3339};

mod calendar;
mod fleet;
mod key;

pub use fleet::{FleetOptions, SimulatedFleet, write_fleet_snapshot};
pub use key::{AnswerKey, CHECKS, ExpectedFinding};

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimulateOptions {
    pub machines: usize,
    pub subscriptions: usize,
    pub seed: u64,
    pub configuration: String,
    pub start: OffsetDateTime,
    pub window_minutes: i64,
    /// Every machine succeeds (a clean run).
    pub clean: bool,
}

impl Default for SimulateOptions {
    fn default() -> Self {
        Self {
            machines: 50,
            subscriptions: 3,
            seed: 7,
            configuration: "Ring2-Prod".to_owned(),
            start: time::macros::datetime!(2026-11-10 22:00 UTC),
            window_minutes: 120,
            clean: false,
        }
    }
}

/// SplitMix64: small, fast and good enough for test data.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub(crate) fn guid(&mut self) -> String {
        let a = self.next();
        let b = self.next();
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            b >> 52,
            b & 0xffff_ffff_ffff
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fate {
    Succeeded,
    Warnings,
    FailedPatches,
    FailedNoPatch,
    WindowExceeded,
    RebootPending,
    NoResultDeallocated,
    NoResultSilent,
}

fn fate(rng: &mut Rng) -> Fate {
    match rng.below(1000) {
        0..850 => Fate::Succeeded,
        850..880 => Fate::Warnings,
        880..920 => Fate::FailedPatches,
        920..930 => Fate::FailedNoPatch,
        930..950 => Fate::WindowExceeded,
        950..970 => Fate::RebootPending,
        970..985 => Fate::NoResultDeallocated,
        _ => Fate::NoResultSilent,
    }
}

const APPS: [&str; 8] = ["web", "sql", "erp", "files", "dc", "app", "batch", "kube"];
const WINDOWS_KBS: [(&str, &str, &str); 4] = [
    ("5031364", "2023-11 Cumulative Update for Windows Server 2022 (KB5031364)", "Security"),
    ("5032189", "2023-11 Cumulative Update for Windows 10 (KB5032189)", "Security"),
    ("890830", "Windows Malicious Software Removal Tool x64 (KB890830)", "UpdateRollup"),
    ("5031989", "2023-11 .NET Framework Cumulative Update (KB5031989)", "Critical"),
];
const LINUX_PACKAGES: [(&str, &str, &str); 3] = [
    ("openssl", "3.0.2-0ubuntu1.12", "Security"),
    ("linux-image-azure", "6.2.0-1018.18", "Security"),
    ("curl", "7.81.0-1ubuntu1.15", "Critical"),
];

#[derive(Clone, Debug)]
pub(crate) struct Machine {
    pub(crate) id: String,
    pub(crate) rg: String,
    pub(crate) sub: String,
    pub(crate) windows: bool,
    pub(crate) arc: bool,
    pub(crate) fate: Fate,
    /// Install duration in this run.
    pub(crate) minutes: i64,
}

impl Machine {
    /// Whether the machine reports a result of the run.
    pub(crate) fn has_result(&self) -> bool {
        !matches!(self.fate, Fate::NoResultDeallocated | Fate::NoResultSilent)
    }
    pub(crate) fn os(&self) -> &'static str {
        if self.windows { "Windows" } else { "Linux" }
    }
    pub(crate) fn result_type(&self) -> &'static str {
        if self.arc {
            "microsoft.hybridcompute/machines/patchinstallationresults"
        } else {
            "microsoft.compute/virtualmachines/patchinstallationresults"
        }
    }
}

/// The events of the simulated run.
#[derive(Clone, Debug)]
pub struct SimulatedEvents {
    pub pre: Value,
    pub post: Value,
}

pub(crate) fn ts(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Writes the snapshot for `opts` to `out` and returns the matching events.
pub fn write_snapshot(opts: &SimulateOptions, out: &mut impl Write) -> io::Result<SimulatedEvents> {
    let (mut rng, run, machines) = simulate_run(opts);
    let post_time = run.post_time(&machines);
    let mut w = RowWriter::new(out);
    write_maintenance_resources(&mut w, &run, &machines, post_time)?;
    write_install_results(&mut w, &run, &machines, &mut rng)?;
    write_resources(&mut w, &machines)?;
    w.finish()?;
    Ok(run.events(post_time))
}

/// The run and its machines. One generator for everything, drawn from in a fixed order: the
/// same seed gives the same run (the fleet around it draws from generators of its own).
pub(crate) fn simulate_run(opts: &SimulateOptions) -> (Rng, SimulatedRun, Vec<Machine>) {
    let mut rng = Rng(opts.seed);
    let run = SimulatedRun::new(opts, &mut rng);
    let machines: Vec<Machine> = (0..opts.machines).map(|i| simulate_machine(i, opts, &run.subs, &mut rng)).collect();
    (rng, run, machines)
}

/// The run's identity and window, shared by every table and both events.
pub(crate) struct SimulatedRun {
    pub(crate) subs: Vec<String>,
    configuration: String,
    pub(crate) configuration_id: String,
    /// The run's own name: its start as `YYYYMMDDHHMM00`.
    pub(crate) run_name: String,
    run_id: String,
    /// `run_id` lower-cased, as ARG writes it in some tables.
    pub(crate) run_lower: String,
    /// Last month's run of the same configuration.
    pub(crate) previous_run: String,
    /// When last month's run started.
    pub(crate) previous_start: OffsetDateTime,
    pub(crate) start: OffsetDateTime,
    pub(crate) window_end: OffsetDateTime,
}

impl SimulatedRun {
    fn new(opts: &SimulateOptions, rng: &mut Rng) -> Self {
        let subs: Vec<String> = (0..opts.subscriptions.max(1)).map(|_| rng.guid()).collect();
        let configuration_id = format!(
            "/subscriptions/{}/resourceGroups/rg-patching/providers/Microsoft.Maintenance/maintenanceConfigurations/{}",
            subs[0], opts.configuration
        );
        let run_name = run_name(opts.start);
        let run_id = format!("{configuration_id}/providers/microsoft.maintenance/applyupdates/{run_name}");
        // ARG lower-cases ids in some tables: the snapshot does too, as a real export would.
        let run_lower = run_id.to_ascii_lowercase();
        let previous_run = run_lower.replace(&run_name, "20261013220000");
        Self {
            subs,
            configuration: opts.configuration.clone(),
            configuration_id,
            run_name,
            run_id,
            run_lower,
            previous_run,
            previous_start: opts.start - Duration::days(28),
            start: opts.start,
            window_end: opts.start + Duration::minutes(opts.window_minutes),
        }
    }

    /// The configuration lives in the first subscription.
    pub(crate) fn configuration_sub(&self) -> &str {
        &self.subs[0]
    }

    /// The post event comes a minute after the last machine finished.
    pub(crate) fn post_time(&self, machines: &[Machine]) -> OffsetDateTime {
        let last_finish = machines.iter().map(|m| m.minutes).max().unwrap_or(10);
        self.start + Duration::minutes(last_finish + 1)
    }

    /// The pre event 35 minutes before the start, and the post event at `post_time`.
    fn events(&self, post_time: OffsetDateTime) -> SimulatedEvents {
        SimulatedEvents {
            pre: self.event(
                patchwatch_model::event::PRE_EVENT,
                self.start - Duration::minutes(35),
                json!({ "cancellationCutOffDateTime": ts(self.start - Duration::minutes(10)) }),
            ),
            post: self.event(patchwatch_model::event::POST_EVENT, post_time, json!({ "status": "Succeeded" })),
        }
    }

    fn event(&self, kind: &str, time: OffsetDateTime, extra: Value) -> Value {
        json!([{ "id": self.run_id, "topic": self.configuration_id, "subject": self.configuration, "data": self.event_data(extra), "eventType": kind,
                 "eventTime": ts(time), "dataVersion": "1.0", "metadataVersion": "1" }])
    }

    /// The fields both events share, plus the phase's own `extra` fields.
    fn event_data(&self, extra: Value) -> Value {
        let mut d = json!({
            "correlationId": self.run_id, "maintenanceConfigurationId": self.configuration_id,
            "startDateTime": ts(self.start), "endDateTime": ts(self.window_end), "resourceSubscriptionIds": self.subs,
        });
        if let (Some(d), Some(e)) = (d.as_object_mut(), extra.as_object()) {
            d.extend(e.clone());
        }
        d
    }
}

/// A run's name: its start as `YYYYMMDDHHMM00`.
pub(crate) fn run_name(start: OffsetDateTime) -> String {
    format!(
        "{:04}{:02}{:02}{:02}{:02}00",
        start.year(),
        u8::from(start.month()),
        start.day(),
        start.hour(),
        start.minute()
    )
}

/// Machine `i`: spread over the subscriptions, with a random application, OS, kind and fate.
fn simulate_machine(i: usize, opts: &SimulateOptions, subs: &[String], rng: &mut Rng) -> Machine {
    let sub = subs[i % subs.len()].clone();
    let app = APPS[(rng.below(APPS.len() as u64)) as usize];
    let windows = rng.below(10) < 7;
    let arc = rng.below(10) < 2;
    let rg = format!("rg-{app}-{}", if rng.below(3) == 0 { "prod" } else { "shared" });
    let name = format!("{}-{app}-{i:05}", if windows { "win" } else { "lnx" });
    let provider = if arc { "Microsoft.HybridCompute/machines" } else { "Microsoft.Compute/virtualMachines" };
    let fate = machine_fate(i, opts, rng);
    let minutes = match fate {
        Fate::WindowExceeded => opts.window_minutes + 5 + rng.below(40) as i64,
        _ => 4 + rng.below((opts.window_minutes as u64 * 2 / 3).max(1)) as i64,
    };
    Machine {
        id: format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/{provider}/{name}"),
        rg,
        sub,
        windows,
        arc,
        fate,
        minutes,
    }
}

fn machine_fate(i: usize, opts: &SimulateOptions, rng: &mut Rng) -> Fate {
    if opts.clean {
        return Fate::Succeeded;
    }
    // Small runs (examples) still show every outcome once.
    match i {
        1 if opts.machines >= 12 => Fate::FailedPatches,
        3 if opts.machines >= 12 => Fate::FailedNoPatch,
        5 if opts.machines >= 12 => Fate::WindowExceeded,
        7 if opts.machines >= 12 => Fate::RebootPending,
        9 if opts.machines >= 12 => Fate::NoResultDeallocated,
        10 if opts.machines >= 12 => Fate::Warnings,
        11 if opts.machines >= 12 => Fate::FailedPatches,
        _ => fate(rng),
    }
}

/// The run itself, then each machine's part of it.
pub(crate) fn write_maintenance_resources<W: Write>(
    w: &mut RowWriter<'_, W>,
    run: &SimulatedRun,
    machines: &[Machine],
    post_time: OffsetDateTime,
) -> io::Result<()> {
    let (run_name, run_lower, mc_lower) = (&run.run_name, &run.run_lower, run.configuration_id.to_ascii_lowercase());
    w.table("maintenanceresources")?;
    w.row(&json!({
        "id": run_lower, "name": run_name, "type": "microsoft.maintenance/maintenanceconfigurations/applyupdates",
        "subscriptionId": run.configuration_sub(), "resourceGroup": "rg-patching", "location": "westeurope", "tags": {},
        "properties": { "correlationId": run_lower, "maintenanceConfigurationId": mc_lower, "status": "Completed",
                        "startDateTime": ts(run.start), "endDateTime": ts(post_time) }
    }))?;
    for m in machines {
        let id = format!("{}/providers/microsoft.maintenance/applyupdates/{run_name}", m.id.to_ascii_lowercase());
        w.row(&json!({
            "id": id, "name": run_name, "type": "microsoft.maintenance/applyupdates", "subscriptionId": m.sub,
            "resourceGroup": m.rg, "location": "westeurope", "tags": {},
            "properties": { "correlationId": run_lower, "maintenanceConfigurationId": mc_lower,
                            "maintenanceScope": "InGuestPatch", "resourceId": m.id.to_ascii_lowercase(),
                            "startDateTime": ts(run.start), "endDateTime": ts(run.window_end) }
        }))?;
    }
    Ok(())
}

pub(crate) fn write_install_results<W: Write>(
    w: &mut RowWriter<'_, W>,
    run: &SimulatedRun,
    machines: &[Machine],
    rng: &mut Rng,
) -> io::Result<()> {
    w.table("patchinstallationresources")?;
    for (i, m) in machines.iter().enumerate() {
        // A result of last month's run for some machines: must be ignored.
        if has_previous_result(i) {
            write_previous_run_result(w, run, m, rng)?;
        }
        write_machine_result(w, run, m, rng)?;
    }
    Ok(())
}

/// Whether run machine `i` has a result of last month's run beside this run's (every 20th).
pub(crate) fn has_previous_result(i: usize) -> bool {
    i.is_multiple_of(20)
}

/// A clean result of last month's run, which summaries of this run must not count.
fn write_previous_run_result<W: Write>(
    w: &mut RowWriter<'_, W>,
    run: &SimulatedRun,
    m: &Machine,
    rng: &mut Rng,
) -> io::Result<()> {
    let rid = format!("{}/patchInstallationResults/{}", m.id, rng.guid());
    let outcome = InstallOutcome::clean("NotNeeded");
    let start = run.previous_start;
    let row = ResultRow {
        rid: &rid,
        machine: m,
        run: &run.previous_run,
        outcome: &outcome,
        installed: 2,
        start,
        minutes: 20,
    };
    w.row(&row.to_json())
}

/// This run's result for one machine with its installed and failed patches; nothing for a machine that never reports.
fn write_machine_result<W: Write>(
    w: &mut RowWriter<'_, W>,
    run: &SimulatedRun,
    m: &Machine,
    rng: &mut Rng,
) -> io::Result<()> {
    if matches!(m.fate, Fate::NoResultDeallocated | Fate::NoResultSilent) {
        return Ok(());
    }
    let rid = format!("{}/patchInstallationResults/{}", m.id, rng.guid());
    let outcome = install_outcome(m, rng);
    let installed = 3 + rng.below(6) as u32;
    let row = ResultRow {
        rid: &rid,
        machine: m,
        run: &run.run_lower,
        outcome: &outcome,
        installed,
        start: run.start,
        minutes: m.minutes,
    };
    w.row(&row.to_json())?;
    let modified = ts(run.start + Duration::hours(1));
    let states = (0..2).map(|n| (n, "Installed")).chain((0..outcome.failed as usize).map(|n| (10 + n, "Failed")));
    for (n, state) in states {
        let line = pick_patch(m, rng);
        w.row(&PatchRow { rid: &rid, machine: m, n, state, line: &line, modified: &modified }.to_json())?;
    }
    Ok(())
}

/// How a machine's install went, as its result row says.
pub(crate) struct InstallOutcome {
    pub(crate) status: &'static str,
    pub(crate) failed: u32,
    pub(crate) pending: u32,
    pub(crate) exceeded: bool,
    pub(crate) reboot: &'static str,
    pub(crate) errors: Vec<Value>,
}

impl InstallOutcome {
    pub(crate) fn clean(reboot: &'static str) -> Self {
        Self { status: "Succeeded", failed: 0, pending: 0, exceeded: false, reboot, errors: vec![] }
    }

    pub(crate) fn failed(failed: u32, pending: u32, exceeded: bool, error: Value) -> Self {
        Self { status: "Failed", failed, pending, exceeded, reboot: "NotNeeded", errors: vec![error] }
    }
}

/// The outcome of a machine that reported; draws the number of failed patches from `rng`.
fn install_outcome(m: &Machine, rng: &mut Rng) -> InstallOutcome {
    match m.fate {
        Fate::Succeeded => InstallOutcome::clean(if m.windows { "Completed" } else { "NotNeeded" }),
        Fate::Warnings => InstallOutcome {
            status: "CompletedWithWarnings",
            errors: vec![
                json!({"code": "PackageManagerWarning", "message": "Some updates were superseded and skipped"}),
            ],
            ..InstallOutcome::clean("Completed")
        },
        Fate::FailedPatches => InstallOutcome::failed(
            1 + rng.below(2) as u32,
            0,
            false,
            json!({"code": "PatchInstallationFailed", "message": "One or more updates failed to install"}),
        ),
        Fate::FailedNoPatch => InstallOutcome::failed(
            0,
            0,
            false,
            json!({"code": "ExtensionOperationFailed", "message": "The patch extension did not respond in time; the VM agent may be unhealthy"}),
        ),
        Fate::WindowExceeded => InstallOutcome::failed(
            0,
            3,
            true,
            json!({"code": "MaintenanceWindowExceeded", "message": "The maintenance window ended before all updates were installed"}),
        ),
        Fate::RebootPending => InstallOutcome::clean("Required"),
        Fate::NoResultDeallocated | Fate::NoResultSilent => unreachable!("machines without a result are skipped"),
    }
}

/// The machine rows, with the owner tag routes split by and the power or agent state.
fn write_resources<W: Write>(w: &mut RowWriter<'_, W>, machines: &[Machine]) -> io::Result<()> {
    w.table("resources")?;
    for m in machines {
        w.row(&resource_row(m))?;
    }
    Ok(())
}

/// A deallocated machine is stopped (a VM) or disconnected (Arc) when last seen.
pub(crate) fn resource_row(m: &Machine) -> Value {
    let name = patchwatch_model::resource_id::last_segment(&m.id);
    let os = m.os();
    if m.arc {
        let status = if m.fate == Fate::NoResultDeallocated { "Disconnected" } else { "Connected" };
        json!({ "id": m.id, "name": name, "type": "microsoft.hybridcompute/machines", "subscriptionId": m.sub, "resourceGroup": m.rg,
                "location": "westeurope", "tags": { "PatchOwner": owner(&m.rg), "Environment": "prod" },
                "properties": { "status": status, "osName": os.to_ascii_lowercase(), "osType": os } })
    } else {
        let power = if m.fate == Fate::NoResultDeallocated { "PowerState/deallocated" } else { "PowerState/running" };
        json!({ "id": m.id, "name": name, "type": "microsoft.compute/virtualmachines", "subscriptionId": m.sub, "resourceGroup": m.rg,
                "location": "westeurope", "tags": { "PatchOwner": owner(&m.rg), "Environment": "prod" },
                "properties": { "storageProfile": { "osDisk": { "osType": os } },
                                "extended": { "instanceView": { "powerState": { "code": power } } } } })
    }
}

/// Three owning teams, by application.
pub(crate) fn owner(rg: &str) -> &'static str {
    match rg.split('-').nth(1) {
        Some("sql" | "erp") => "team-data",
        Some("web" | "app" | "batch") => "team-web",
        _ => "team-infra",
    }
}

/// One `patchinstallationresources` row.
pub(crate) struct ResultRow<'a> {
    pub(crate) rid: &'a str,
    pub(crate) machine: &'a Machine,
    /// The run the result belongs to (`maintenanceRunId`).
    pub(crate) run: &'a str,
    pub(crate) outcome: &'a InstallOutcome,
    pub(crate) installed: u32,
    pub(crate) start: OffsetDateTime,
    /// Install duration: the result was last modified this long after `start` (the row says
    /// it started 30 seconds after `start`).
    pub(crate) minutes: i64,
}

impl ResultRow<'_> {
    pub(crate) fn to_json(&self) -> Value {
        let Self { rid, machine: m, run, outcome, installed, start, minutes } = *self;
        let InstallOutcome { status, failed, pending, exceeded, reboot, ref errors } = *outcome;
        let error_details = if errors.is_empty() {
            Value::Null
        } else {
            json!({ "code": "UpdatesFailed", "message": errors[0]["message"], "details": errors })
        };
        json!({
            "id": rid, "name": patchwatch_model::resource_id::last_segment(rid), "type": m.result_type(), "subscriptionId": m.sub,
            "resourceGroup": m.rg, "location": "westeurope", "tags": {},
            "properties": {
                "status": status, "installedPatchCount": installed, "failedPatchCount": failed, "pendingPatchCount": pending,
                "notSelectedPatchCount": 4, "excludedPatchCount": 0, "maintenanceWindowExceeded": exceeded,
                "rebootStatus": reboot, "startedBy": "Platform", "osType": m.os(), "patchServiceUsed": if m.os() == "Windows" { "WU-WSUS" } else { "APT" },
                "startDateTime": ts(start + Duration::seconds(30)), "lastModifiedDateTime": ts(start + Duration::minutes(minutes)),
                "maintenanceRunId": run, "installationActivityId": patchwatch_model::resource_id::last_segment(rid), "errorDetails": error_details
            }
        })
    }
}

/// A patch of the installation catalogue for `m`'s OS, drawn from `rng`.
fn pick_patch(m: &Machine, rng: &mut Rng) -> PatchLine<'static> {
    if m.os() == "Windows" {
        let (kb, name, class) = WINDOWS_KBS[rng.below(WINDOWS_KBS.len() as u64) as usize];
        PatchLine { name, kb: Some(kb), version: None, class }
    } else {
        let (name, version, class) = LINUX_PACKAGES[rng.below(LINUX_PACKAGES.len() as u64) as usize];
        PatchLine { name, kb: None, version: Some(version), class }
    }
}

/// A patch as an installation result lists it.
#[derive(Debug)]
pub(crate) struct PatchLine<'a> {
    pub(crate) name: &'a str,
    pub(crate) kb: Option<&'a str>,
    pub(crate) version: Option<&'a str>,
    pub(crate) class: &'a str,
}

impl PatchLine<'static> {
    /// Patch `i` of the installation catalogue for `m`'s OS.
    pub(crate) fn catalogue(m: &Machine, i: usize) -> Self {
        if m.windows {
            let (kb, name, class) = WINDOWS_KBS[i % WINDOWS_KBS.len()];
            PatchLine { name, kb: Some(kb), version: None, class }
        } else {
            let (name, version, class) = LINUX_PACKAGES[i % LINUX_PACKAGES.len()];
            PatchLine { name, kb: None, version: Some(version), class }
        }
    }
}

/// One `…/patchinstallationresults/softwarepatches` row: patch `n` of result `rid`.
pub(crate) struct PatchRow<'a> {
    pub(crate) rid: &'a str,
    pub(crate) machine: &'a Machine,
    pub(crate) n: usize,
    pub(crate) state: &'a str,
    pub(crate) line: &'a PatchLine<'a>,
    pub(crate) modified: &'a str,
}

impl PatchRow<'_> {
    pub(crate) fn to_json(&self) -> Value {
        let Self { rid, machine: m, n, state, line, modified } = *self;
        let mut props = json!({ "patchName": line.name, "installationState": state, "classifications": [line.class],
                                "rebootRequired": false, "lastModifiedDateTime": modified });
        if let Some(kb) = line.kb {
            props["kbId"] = json!(kb);
        }
        if let Some(v) = line.version {
            props["version"] = json!(v);
        }
        json!({ "id": format!("{rid}/softwarePatches/p{n}"), "name": format!("p{n}"), "type": format!("{}/softwarepatches", m.result_type()),
                "subscriptionId": m.sub, "resourceGroup": m.rg, "properties": props })
    }
}

/// Streams `{"table": [row, …], …}` without building the whole document.
pub(crate) struct RowWriter<'a, W: Write> {
    out: &'a mut W,
    tables: usize,
    rows: usize,
}

impl<'a, W: Write> RowWriter<'a, W> {
    pub(crate) fn new(out: &'a mut W) -> Self {
        Self { out, tables: 0, rows: 0 }
    }
    pub(crate) fn table(&mut self, name: &str) -> io::Result<()> {
        let open = if self.tables == 0 { "{\n" } else { "\n],\n" };
        write!(self.out, "{open}\"{name}\": [")?;
        self.tables += 1;
        self.rows = 0;
        Ok(())
    }
    pub(crate) fn row(&mut self, v: &Value) -> io::Result<()> {
        self.out.write_all(if self.rows == 0 { b"\n" } else { b",\n" })?;
        serde_json::to_writer(&mut *self.out, v)?;
        self.rows += 1;
        Ok(())
    }
    pub(crate) fn finish(self) -> io::Result<()> {
        self.out.write_all(if self.tables == 0 { b"{}\n" } else { b"\n]\n}\n" })
    }
}

/// The embedded example snapshot and events (`patchwatch serve`, `replay`, tests and benches).
pub mod example {
    pub const SNAPSHOT: &str = include_str!("../../../examples/snapshot.json");
    pub const POST_EVENT: &str = include_str!("../../../examples/events/post-maintenance.json");
    pub const PRE_EVENT: &str = include_str!("../../../examples/events/pre-maintenance.json");
}
