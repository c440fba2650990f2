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
    let mut rng = Rng(opts.seed);
    let subs: Vec<String> = (0..opts.subscriptions.max(1)).map(|_| rng.guid()).collect();
    let mc_sub = &subs[0];
    let mc_id = format!(
        "/subscriptions/{mc_sub}/resourceGroups/rg-patching/providers/Microsoft.Maintenance/maintenanceConfigurations/{}",
        opts.configuration
    );
    let run_name = format!(
        "{:04}{:02}{:02}{:02}{:02}00",
        opts.start.year(),
        u8::from(opts.start.month()),
        opts.start.day(),
        opts.start.hour(),
        opts.start.minute()
    );
    let run_id = format!("{mc_id}/providers/microsoft.maintenance/applyupdates/{run_name}");
    // ARG lower-cases ids in some tables: the snapshot does too, as a real export would.
    let run_lower = run_id.to_ascii_lowercase();
    let previous_run = run_lower.replace(&run_name, "20261013220000");
    let window_end = opts.start + Duration::minutes(opts.window_minutes);

    let machines: Vec<Machine> = (0..opts.machines)
        .map(|i| {
            let sub = subs[i % subs.len()].clone();
            let app = APPS[(rng.below(APPS.len() as u64)) as usize];
            let windows = rng.below(10) < 7;
            let arc = rng.below(10) < 2;
            let rg = format!("rg-{app}-{}", if rng.below(3) == 0 { "prod" } else { "shared" });
            let name = format!("{}-{app}-{i:05}", if windows { "win" } else { "lnx" });
            let provider = if arc { "Microsoft.HybridCompute/machines" } else { "Microsoft.Compute/virtualMachines" };
            // Small runs (examples) still show every outcome once.
            let fate = if opts.clean {
                Fate::Succeeded
            } else {
                match i {
                    1 if opts.machines >= 12 => Fate::FailedPatches,
                    3 if opts.machines >= 12 => Fate::FailedNoPatch,
                    5 if opts.machines >= 12 => Fate::WindowExceeded,
                    7 if opts.machines >= 12 => Fate::RebootPending,
                    9 if opts.machines >= 12 => Fate::NoResultDeallocated,
                    10 if opts.machines >= 12 => Fate::Warnings,
                    11 if opts.machines >= 12 => Fate::FailedPatches,
                    _ => fate(&mut rng),
                }
            };
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
        })
        .collect();
    let last_finish = machines.iter().map(|m| m.minutes).max().unwrap_or(10);
    let post_time = opts.start + Duration::minutes(last_finish + 1);

    let mut w = RowWriter::new(out);
    w.table("maintenanceresources")?;
    w.row(&json!({
        "id": run_lower, "name": run_name, "type": "microsoft.maintenance/maintenanceconfigurations/applyupdates",
        "subscriptionId": mc_sub, "resourceGroup": "rg-patching", "location": "westeurope", "tags": {},
        "properties": { "correlationId": run_lower, "maintenanceConfigurationId": mc_id.to_ascii_lowercase(), "status": "Completed",
                        "startDateTime": ts(opts.start), "endDateTime": ts(post_time) }
    }))?;
    for m in &machines {
        let id = format!("{}/providers/microsoft.maintenance/applyupdates/{run_name}", m.id.to_ascii_lowercase());
        w.row(&json!({
            "id": id, "name": run_name, "type": "microsoft.maintenance/applyupdates", "subscriptionId": m.sub,
            "resourceGroup": m.rg, "location": "westeurope", "tags": {},
            "properties": { "correlationId": run_lower, "maintenanceConfigurationId": mc_id.to_ascii_lowercase(),
                            "maintenanceScope": "InGuestPatch", "resourceId": m.id.to_ascii_lowercase(),
                            "startDateTime": ts(opts.start), "endDateTime": ts(window_end) }
        }))?;
    }
    w.table("patchinstallationresources")?;
    for (i, m) in machines.iter().enumerate() {
        // A result of last month's run for some machines: must be ignored.
        if i % 20 == 0 {
            let rid = format!("{}/patchInstallationResults/{}", m.id, rng.guid());
            w.row(&result_row(
                &rid,
                m,
                &previous_run,
                "Succeeded",
                2,
                0,
                0,
                false,
                "NotNeeded",
                opts.start - Duration::days(28),
                20,
                &[],
            ))?;
        }
        if matches!(m.fate, Fate::NoResultDeallocated | Fate::NoResultSilent) {
            continue;
        }
        let rid = format!("{}/patchInstallationResults/{}", m.id, rng.guid());
        let (status, failed, pending, exceeded, reboot, errors): (&str, u32, u32, bool, &str, Vec<Value>) = match m.fate
        {
            Fate::Succeeded => ("Succeeded", 0, 0, false, if m.windows { "Completed" } else { "NotNeeded" }, vec![]),
            Fate::Warnings => (
                "CompletedWithWarnings",
                0,
                0,
                false,
                "Completed",
                vec![json!({"code": "PackageManagerWarning", "message": "Some updates were superseded and skipped"})],
            ),
            Fate::FailedPatches => (
                "Failed",
                1 + rng.below(2) as u32,
                0,
                false,
                "NotNeeded",
                vec![json!({"code": "PatchInstallationFailed", "message": "One or more updates failed to install"})],
            ),
            Fate::FailedNoPatch => (
                "Failed",
                0,
                0,
                false,
                "NotNeeded",
                vec![
                    json!({"code": "ExtensionOperationFailed", "message": "The patch extension did not respond in time; the VM agent may be unhealthy"}),
                ],
            ),
            Fate::WindowExceeded => (
                "Failed",
                0,
                3,
                true,
                "NotNeeded",
                vec![
                    json!({"code": "MaintenanceWindowExceeded", "message": "The maintenance window ended before all updates were installed"}),
                ],
            ),
            Fate::RebootPending => ("Succeeded", 0, 0, false, "Required", vec![]),
            Fate::NoResultDeallocated | Fate::NoResultSilent => unreachable!("skipped above"),
        };
        let installed = 3 + rng.below(6) as u32;
        w.row(&result_row(
            &rid, m, &run_lower, status, installed, failed, pending, exceeded, reboot, opts.start, m.minutes, &errors,
        ))?;
        for n in 0..2 {
            w.row(&patch_row(&rid, m, n, "Installed", &mut rng))?;
        }
        for n in 0..failed {
            w.row(&patch_row(&rid, m, 10 + n as usize, "Failed", &mut rng))?;
        }
    }
    w.table("resources")?;
    for m in &machines {
        let name = patchwatch_model::event::last_segment(&m.id);
        let os = if m.windows { "Windows" } else { "Linux" };
        let row = if m.arc {
            let status = if m.fate == Fate::NoResultDeallocated { "Disconnected" } else { "Connected" };
            json!({ "id": m.id, "name": name, "type": "microsoft.hybridcompute/machines", "subscriptionId": m.sub, "resourceGroup": m.rg,
                    "location": "westeurope", "tags": { "PatchOwner": owner(&m.rg), "Environment": "prod" },
                    "properties": { "status": status, "osName": os.to_ascii_lowercase(), "osType": os } })
        } else {
            let power =
                if m.fate == Fate::NoResultDeallocated { "PowerState/deallocated" } else { "PowerState/running" };
            json!({ "id": m.id, "name": name, "type": "microsoft.compute/virtualmachines", "subscriptionId": m.sub, "resourceGroup": m.rg,
                    "location": "westeurope", "tags": { "PatchOwner": owner(&m.rg), "Environment": "prod" },
                    "properties": { "storageProfile": { "osDisk": { "osType": os } },
                                    "extended": { "instanceView": { "powerState": { "code": power } } } } })
        };
        w.row(&row)?;
    }
    w.finish()?;

    let data = |extra: Value| {
        let mut d = json!({
            "correlationId": run_id, "maintenanceConfigurationId": mc_id,
            "startDateTime": ts(opts.start), "endDateTime": ts(window_end), "resourceSubscriptionIds": subs,
        });
        if let (Some(d), Some(e)) = (d.as_object_mut(), extra.as_object()) {
            d.extend(e.clone());
        }
        d
    };
    let event = |kind: &str, time: OffsetDateTime, extra: Value| {
        json!([{ "id": run_id, "topic": mc_id, "subject": opts.configuration, "data": data(extra), "eventType": kind,
                 "eventTime": ts(time), "dataVersion": "1.0", "metadataVersion": "1" }])
    };
    Ok(SimulatedEvents {
        pre: event(
            patchwatch_model::event::PRE_EVENT,
            opts.start - Duration::minutes(35),
            json!({ "cancellationCutOffDateTime": ts(opts.start - Duration::minutes(10)) }),
        ),
        post: event(patchwatch_model::event::POST_EVENT, post_time, json!({ "status": "Succeeded" })),
    })
}

/// Three owning teams, by application.
fn owner(rg: &str) -> &'static str {
    match rg.split('-').nth(1) {
        Some("sql" | "erp") => "team-data",
        Some("web" | "app" | "batch") => "team-web",
        _ => "team-infra",
    }
}

#[allow(clippy::too_many_arguments)]
fn result_row(
    rid: &str,
    m: &Machine,
    run: &str,
    status: &str,
    installed: u32,
    failed: u32,
    pending: u32,
    exceeded: bool,
    reboot: &str,
    start: OffsetDateTime,
    minutes: i64,
    errors: &[Value],
) -> Value {
    let error_details = if errors.is_empty() {
        Value::Null
    } else {
        json!({ "code": "UpdatesFailed", "message": errors[0]["message"], "details": errors })
    };
    json!({
        "id": rid, "name": patchwatch_model::event::last_segment(rid), "type": m.result_type(), "subscriptionId": m.sub,
        "resourceGroup": m.rg, "location": "westeurope", "tags": {},
        "properties": {
            "status": status, "installedPatchCount": installed, "failedPatchCount": failed, "pendingPatchCount": pending,
            "notSelectedPatchCount": 4, "excludedPatchCount": 0, "maintenanceWindowExceeded": exceeded,
            "rebootStatus": reboot, "startedBy": "Platform", "osType": m.os(), "patchServiceUsed": if m.os() == "Windows" { "WU-WSUS" } else { "APT" },
            "startDateTime": ts(start + Duration::seconds(30)), "lastModifiedDateTime": ts(start + Duration::minutes(minutes)),
            "maintenanceRunId": run, "installationActivityId": patchwatch_model::event::last_segment(rid), "errorDetails": error_details
        }
    })
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
