//! Realistic simulated runs: a snapshot of ARG rows plus the matching pre/post events.
//!
//! Deterministic for a seed. Rows are written one at a time, so 50,000 machines need no more
//! memory than one row.

use std::io::{self, Write};

use serde_json::{Value, json};
use time::{Duration, OffsetDateTime, format_description::well_known::Rfc3339};

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
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn guid(&mut self) -> String {
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
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

struct Machine {
    id: String,
    rg: String,
    sub: String,
    windows: bool,
    arc: bool,
    fate: Fate,
    minutes: i64,
}

impl Machine {
    fn os(&self) -> &'static str {
        if self.windows { "Windows" } else { "Linux" }
    }
    fn result_type(&self) -> &'static str {
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

fn ts(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Writes the snapshot for `opts` to `out` and returns the matching events.
pub fn write_snapshot(opts: &SimulateOptions, out: &mut impl Write) -> io::Result<SimulatedEvents> {
    // One generator for everything, drawn from in a fixed order: the same seed gives the same run.
    let mut rng = Rng(opts.seed);
    let run = SimulatedRun::new(opts, &mut rng);
    let machines: Vec<Machine> = (0..opts.machines).map(|i| simulate_machine(i, opts, &run.subs, &mut rng)).collect();
    let last_finish = machines.iter().map(|m| m.minutes).max().unwrap_or(10);
    let post_time = opts.start + Duration::minutes(last_finish + 1);

    let mut w = RowWriter::new(out);
    write_maintenance_resources(&mut w, &run, &machines, post_time)?;
    write_install_results(&mut w, &run, &machines, &mut rng)?;
    write_resources(&mut w, &machines)?;
    w.finish()?;
    Ok(run.events(post_time))
}

/// The run's identity and window, shared by every table and both events.
struct SimulatedRun {
    subs: Vec<String>,
    configuration: String,
    configuration_id: String,
    /// The run's own name: its start as `YYYYMMDDHHMM00`.
    run_name: String,
    run_id: String,
    /// `run_id` lower-cased, as ARG writes it in some tables.
    run_lower: String,
    /// Last month's run of the same configuration.
    previous_run: String,
    start: OffsetDateTime,
    window_end: OffsetDateTime,
}

impl SimulatedRun {
    fn new(opts: &SimulateOptions, rng: &mut Rng) -> Self {
        let subs: Vec<String> = (0..opts.subscriptions.max(1)).map(|_| rng.guid()).collect();
        let configuration_id = format!(
            "/subscriptions/{}/resourceGroups/rg-patching/providers/Microsoft.Maintenance/maintenanceConfigurations/{}",
            subs[0], opts.configuration
        );
        let run_name = format!(
            "{:04}{:02}{:02}{:02}{:02}00",
            opts.start.year(),
            u8::from(opts.start.month()),
            opts.start.day(),
            opts.start.hour(),
            opts.start.minute()
        );
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
            start: opts.start,
            window_end: opts.start + Duration::minutes(opts.window_minutes),
        }
    }

    /// The configuration lives in the first subscription.
    fn configuration_sub(&self) -> &str {
        &self.subs[0]
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
fn write_maintenance_resources<W: Write>(
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

fn write_install_results<W: Write>(
    w: &mut RowWriter<'_, W>,
    run: &SimulatedRun,
    machines: &[Machine],
    rng: &mut Rng,
) -> io::Result<()> {
    w.table("patchinstallationresources")?;
    for (i, m) in machines.iter().enumerate() {
        // A result of last month's run for some machines: must be ignored.
        if i % 20 == 0 {
            write_previous_run_result(w, run, m, rng)?;
        }
        write_machine_result(w, run, m, rng)?;
    }
    Ok(())
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
    let start = run.start - Duration::days(28);
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
    for n in 0..2 {
        w.row(&patch_row(&rid, m, n, "Installed", rng))?;
    }
    for n in 0..outcome.failed {
        w.row(&patch_row(&rid, m, 10 + n as usize, "Failed", rng))?;
    }
    Ok(())
}

/// How a machine's install went, as its result row says.
struct InstallOutcome {
    status: &'static str,
    failed: u32,
    pending: u32,
    exceeded: bool,
    reboot: &'static str,
    errors: Vec<Value>,
}

impl InstallOutcome {
    fn clean(reboot: &'static str) -> Self {
        Self { status: "Succeeded", failed: 0, pending: 0, exceeded: false, reboot, errors: vec![] }
    }

    fn failed(failed: u32, pending: u32, exceeded: bool, error: Value) -> Self {
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
fn resource_row(m: &Machine) -> Value {
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
fn owner(rg: &str) -> &'static str {
    match rg.split('-').nth(1) {
        Some("sql" | "erp") => "team-data",
        Some("web" | "app" | "batch") => "team-web",
        _ => "team-infra",
    }
}

/// One `patchinstallationresources` row.
struct ResultRow<'a> {
    rid: &'a str,
    machine: &'a Machine,
    /// The run the result belongs to (`maintenanceRunId`).
    run: &'a str,
    outcome: &'a InstallOutcome,
    installed: u32,
    start: OffsetDateTime,
    /// Install duration: the result was last modified this long after `start`.
    minutes: i64,
}

impl ResultRow<'_> {
    fn to_json(&self) -> Value {
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

fn patch_row(rid: &str, m: &Machine, n: usize, state: &str, rng: &mut Rng) -> Value {
    let (name, kb, version, class) = if m.os() == "Windows" {
        let (kb, name, class) = WINDOWS_KBS[rng.below(WINDOWS_KBS.len() as u64) as usize];
        (name.to_owned(), Some(kb), None, class)
    } else {
        let (pkg, version, class) = LINUX_PACKAGES[rng.below(LINUX_PACKAGES.len() as u64) as usize];
        (pkg.to_owned(), None, Some(version), class)
    };
    let mut props = json!({ "patchName": name, "installationState": state, "classifications": [class],
                            "rebootRequired": false, "lastModifiedDateTime": "2026-11-10T23:00:00Z" });
    if let Some(kb) = kb {
        props["kbId"] = json!(kb);
    }
    if let Some(v) = version {
        props["version"] = json!(v);
    }
    json!({ "id": format!("{rid}/softwarePatches/p{n}"), "name": format!("p{n}"), "type": format!("{}/softwarepatches", m.result_type()),
            "subscriptionId": m.sub, "resourceGroup": m.rg, "properties": props })
}

/// Streams `{"table": [row, …], …}` without building the whole document.
struct RowWriter<'a, W: Write> {
    out: &'a mut W,
    tables: usize,
    rows: usize,
}

impl<'a, W: Write> RowWriter<'a, W> {
    fn new(out: &'a mut W) -> Self {
        Self { out, tables: 0, rows: 0 }
    }
    fn table(&mut self, name: &str) -> io::Result<()> {
        let open = if self.tables == 0 { "{\n" } else { "\n],\n" };
        write!(self.out, "{open}\"{name}\": [")?;
        self.tables += 1;
        self.rows = 0;
        Ok(())
    }
    fn row(&mut self, v: &Value) -> io::Result<()> {
        self.out.write_all(if self.rows == 0 { b"\n" } else { b",\n" })?;
        serde_json::to_writer(&mut *self.out, v)?;
        self.rows += 1;
        Ok(())
    }
    fn finish(self) -> io::Result<()> {
        self.out.write_all(if self.tables == 0 { b"{}\n" } else { b"\n]\n}\n" })
    }
}

/// The embedded example snapshot and events (`patchwatch serve`, `replay`, tests and benches).
pub mod example {
    pub const SNAPSHOT: &str = include_str!("../../../examples/snapshot.json");
    pub const POST_EVENT: &str = include_str!("../../../examples/events/post-maintenance.json");
    pub const PRE_EVENT: &str = include_str!("../../../examples/events/pre-maintenance.json");
}
