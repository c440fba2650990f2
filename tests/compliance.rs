//! The compliance digest end to end: the `compliance-report` timer envelope over real TCP, the
//! ledger across two instances, and the email as a mail client and a spreadsheet see it.

use std::{io::Cursor, path::Path, time::Duration};

use calamine::Reader;
use integration_tests::{files, http, pipeline, root, spawn_handler};
use serde_json::{Value, json};

/// The owner tag the example fleet carries.
const OWNER_TAG: &str = "PatchOwner";

fn routing(dir: &Path, owners: &[&str]) -> std::path::PathBuf {
    let recipients: Vec<String> = owners.iter().map(|o| format!("{o:?} = [\"{o}@example.com\"]")).collect();
    let text = format!(
        "[channels.owners]\ntype = \"email\"\n\n[[routes]]\nname = \"digest\"\nmatch = {{ phase = \"digest\" }}\nsplit_by_tag = \"{OWNER_TAG}\"\nchannels = [\"owners\"]\n\n[routes.recipients]\n{}\n",
        recipients.join("\n")
    );
    let path = dir.join("patchwatch.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn timer_envelope() -> Value {
    json!({
        "Data": { "timer": { "Schedule": { "AdjustForDST": true }, "ScheduleStatus": null, "IsPastDue": false } },
        "Metadata": { "sys": { "MethodName": "compliance-report", "UtcNow": "2026-11-16T07:00:00.0000000Z", "RandGuid": "00000000-0000-0000-0000-000000000000" } }
    })
}

/// The owners of the example fleet (tag values on its machines).
fn example_owners() -> Vec<String> {
    let snapshot: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("examples/snapshot.json")).unwrap()).unwrap();
    let mut owners: Vec<String> = snapshot["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["type"].as_str().is_some_and(|t| {
                t.eq_ignore_ascii_case("microsoft.compute/virtualmachines")
                    || t.eq_ignore_ascii_case("microsoft.hybridcompute/machines")
            })
        })
        .filter_map(|r| r["tags"][OWNER_TAG].as_str().map(str::to_owned))
        .collect();
    owners.sort();
    owners.dedup();
    owners
}

async fn fire(addr: std::net::SocketAddr) -> (u16, Value) {
    let resp = http().post(format!("http://{addr}/compliance-report")).json(&timer_envelope()).send().await.unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    let log: Value = serde_json::from_str(body["Logs"][0].as_str().unwrap()).unwrap();
    (status, log)
}

#[tokio::test]
async fn timer_sends_one_digest_per_owner_however_often_and_wherever_it_fires() {
    let owners = example_owners();
    assert!(owners.len() >= 3, "the example fleet names several owners: {owners:?}");
    let owner_refs: Vec<&str> = owners.iter().map(String::as_str).collect();
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    let state = format!("file://{}", dir.path().join("state").display());
    let config = routing(dir.path(), &owner_refs).display().to_string();
    let snapshot = root().join("examples/snapshot.json").display().to_string();
    let vars = [
        ("PATCHWATCH_OUTBOX", outbox.display().to_string()),
        ("PATCHWATCH_SNAPSHOT", snapshot),
        ("PATCHWATCH_STATE", state),
        ("PATCHWATCH_CONFIG", config),
        ("PATCHWATCH_MAIL_FROM", "patchwatch@example.com".to_owned()),
    ];
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // Two instances of the app, one ledger (the same state store), fired at the same moment.
    let a = spawn_handler(pipeline(&vars)).await;
    let b = spawn_handler(pipeline(&vars)).await;
    let (first, second) = tokio::join!(fire(a), fire(b));
    for (status, log) in [&first, &second] {
        assert!(*status == 200 || *status == 503, "{status}: {log}");
    }
    // A rival holding a claim answers "retry later"; the host's retry then finds it sent.
    let mut settled = false;
    for _ in 0..20 {
        let (status, log) = fire(a).await;
        if status == 200 {
            let deliveries = log["deliveries"].as_array().unwrap();
            assert_eq!(deliveries.len(), owners.len(), "{log}");
            assert!(
                deliveries.iter().all(|d| d["outcome"] == "duplicate"),
                "a re-fired timer sends nothing more: {log}"
            );
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(settled, "the timer kept answering retry later");
    let eml = files(&outbox, "eml");
    assert_eq!(eml.len(), owners.len(), "one digest per owner: {eml:?}");
    for owner in &owners {
        let to = format!("{owner}@example.com");
        let matching = eml.iter().filter(|p| std::fs::read_to_string(p).unwrap().contains(&to)).count();
        assert_eq!(matching, 1, "{owner} gets exactly one digest");
    }
}

fn part_bodies<'a>(mail: &'a mailparse::ParsedMail<'a>, out: &mut Vec<&'a mailparse::ParsedMail<'a>>) {
    out.push(mail);
    for p in &mail.subparts {
        part_bodies(p, out);
    }
}

#[tokio::test]
async fn digest_email_has_text_html_inline_charts_and_the_workbook() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    let snapshot = root().join("examples/snapshot.json").display().to_string();
    let vars = [
        ("PATCHWATCH_OUTBOX", outbox.display().to_string()),
        ("PATCHWATCH_SNAPSHOT", snapshot),
        ("PATCHWATCH_MAIL_TO", "ops@example.com".to_owned()),
    ];
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let addr = spawn_handler(pipeline(&vars)).await;
    let (status, log) = fire(addr).await;
    assert_eq!(status, 200, "{log}");
    assert_eq!(log["deliveries"][0]["outcome"], "sent", "{log}");
    let eml = files(&outbox, "eml");
    assert_eq!(eml.len(), 1);
    let raw = std::fs::read(&eml[0]).unwrap();
    let mail = mailparse::parse_mail(&raw).unwrap();
    assert!(mail.ctype.mimetype.starts_with("multipart/"), "{}", mail.ctype.mimetype);
    let mut parts = Vec::new();
    part_bodies(&mail, &mut parts);
    let text = parts.iter().find(|p| p.ctype.mimetype == "text/plain").expect("text part").get_body().unwrap();
    let html = parts.iter().find(|p| p.ctype.mimetype == "text/html").expect("html part").get_body().unwrap();
    assert!(text.contains('%') && text.contains("machines"), "the text part carries the numbers");
    let images: Vec<_> = parts.iter().filter(|p| p.ctype.mimetype == "image/png").collect();
    assert!(!images.is_empty(), "inline charts");
    for image in &images {
        let cid = image
            .headers
            .iter()
            .find(|h| h.get_key().eq_ignore_ascii_case("Content-ID"))
            .expect("Content-ID")
            .get_value();
        let cid = cid.trim().trim_start_matches('<').trim_end_matches('>').to_owned();
        assert!(html.contains(&format!("cid:{cid}")), "the HTML shows {cid}");
        let png = image.get_body_raw().unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    }
    let xlsx = parts
        .iter()
        .find(|p| p.ctype.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        .expect("workbook attachment");
    let disposition = xlsx.get_content_disposition();
    assert_eq!(disposition.disposition, mailparse::DispositionType::Attachment);
    let bytes = xlsx.get_body_raw().unwrap();
    let mut book = calamine::open_workbook_from_rs::<calamine::Xlsx<_>, _>(Cursor::new(bytes)).unwrap();
    assert_eq!(
        book.sheet_names(),
        ["Summary", "Needs attention", "Pending patches", "Schedule findings", "Run history"]
    );
    let findings = book.worksheet_range("Schedule findings").unwrap();
    assert!(findings.height() > 1, "the findings sheet has rows");
    // No raw markup from data: tags and names are escaped as in the run summary.
    assert!(!html.contains("<script"), "no script in the digest");
}

/// On a simulated fleet where every check has guilty machines or schedules and the rest are
/// clean, the lint reports exactly the guilty ones under the right check (and level).
#[test]
fn lint_reports_exactly_the_simulated_guilty_per_check() {
    use patchwatch_fleet::{
        collect::FleetCollector,
        lint::{LintOptions, lint},
    };
    use patchwatch_model::rundata::snapshot;
    use patchwatch_simulation::{CHECKS, FleetOptions, SimulateOptions, write_fleet_snapshot};
    // Over 1,000 machines in the big dynamic scope: scope-limit is an error here.
    for (seed, fleet_machines) in [(1, 1100), (4, 1000)] {
        let opts = SimulateOptions { machines: 40, seed, ..SimulateOptions::default() };
        let mut bytes = Vec::new();
        let sim = write_fleet_snapshot(&opts, &FleetOptions { machines: fleet_machines }, &mut bytes).unwrap();
        let mut collector = FleetCollector::new();
        snapshot::parse_into(&bytes, &mut collector).unwrap();
        assert_eq!(collector.newest(), Some(sim.key.as_of), "the snapshot is judged as of its newest row");
        let fleet = collector.finish();
        assert_eq!(fleet.machines.len(), sim.key.machines);
        let findings = lint(&fleet, &LintOptions::new(sim.key.as_of));
        for check in CHECKS {
            assert!(sim.key.count(check) > 0, "seed {seed}: the simulation has a guilty case for {check}");
            let mut want: Vec<(String, Option<&str>)> = sim
                .key
                .findings
                .iter()
                .filter(|f| f.check == check)
                .map(|f| (f.resource_id.to_ascii_lowercase(), f.severity))
                .collect();
            let mut got: Vec<(String, Option<&str>)> = findings
                .iter()
                .filter(|f| f.check.id() == check)
                .map(|f| {
                    let level =
                        want.iter().find(|(id, _)| *id == f.resource_id.to_ascii_lowercase()).and_then(|(_, l)| *l);
                    (f.resource_id.to_ascii_lowercase(), level.map(|_| f.severity.as_str()))
                })
                .collect();
            want.sort();
            got.sort();
            assert_eq!(got, want, "seed {seed}, {fleet_machines} machines: check {check}");
        }
        let known: Vec<&str> = CHECKS.to_vec();
        let strays: Vec<_> = findings.iter().filter(|f| !known.contains(&f.check.id())).collect();
        assert!(strays.is_empty(), "no finding outside the simulated checks: {strays:#?}");
        if fleet_machines > 1000 {
            assert!(findings.iter().any(|f| f.check.id() == "scope-limit" && f.severity.as_str() == "error"));
        }
    }
}

fn patchwatch(args: &[&str], dir: &Path) -> std::process::Output {
    let bin = integration_tests::process::binary("patchwatch");
    std::process::Command::new(bin)
        .args(args)
        .current_dir(dir)
        .env_remove("PATCHWATCH_SNAPSHOT")
        .env_remove("PATCHWATCH_CONFIG")
        .env_remove("PATCHWATCH_SMTP_URL")
        .env("PATCHWATCH_STATE", format!("file://{}", dir.join("state").display()))
        .output()
        .unwrap()
}

/// A one-machine fleet, clean but for `duration` (under 01:30 is a short-window warning).
fn small_fleet(duration: &str) -> Value {
    let sub = "11111111-1111-1111-1111-111111111111";
    let vm = format!("/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1");
    let mc = format!(
        "/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Maintenance/maintenanceConfigurations/Weekly"
    );
    json!({
        "resources": [
            { "id": vm, "name": "vm1", "type": "microsoft.compute/virtualmachines", "subscriptionId": sub, "resourceGroup": "rg",
              "location": "westeurope", "tags": { "PatchOwner": "team-a" },
              "properties": { "storageProfile": { "osDisk": { "osType": "Linux" } },
                              "osProfile": { "linuxConfiguration": { "patchSettings": { "patchMode": "AutomaticByPlatform",
                                  "assessmentMode": "AutomaticByPlatform",
                                  "automaticByPlatformSettings": { "bypassPlatformSafetyChecksOnUserSchedule": true } } } } } },
            { "id": mc, "name": "Weekly", "type": "microsoft.maintenance/maintenanceconfigurations", "subscriptionId": sub,
              "resourceGroup": "rg", "location": "westeurope",
              "properties": { "maintenanceScope": "InGuestPatch",
                              "maintenanceWindow": { "startDateTime": "2026-01-06 22:00", "duration": duration,
                                                     "timeZone": "UTC", "recurEvery": "Week Tuesday" } } }
        ],
        "maintenanceresources": [
            { "id": format!("{vm}/providers/Microsoft.Maintenance/configurationAssignments/weekly"), "type": "microsoft.maintenance/configurationassignments",
              "properties": { "maintenanceConfigurationId": mc, "resourceId": vm } }
        ],
        "patchassessmentresources": [
            { "id": format!("{vm}/patchAssessmentResults/latest"), "type": "microsoft.compute/virtualmachines/patchassessmentresults",
              "properties": { "status": "Succeeded", "lastModifiedDateTime": "2026-11-20T06:00:00Z",
                              "availablePatchCountByClassification": { "critical": 0, "security": 0, "other": 3 } } }
        ]
    })
}

#[test]
fn lint_exit_codes_follow_the_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, v: &Value| {
        let p = dir.path().join(name);
        std::fs::write(&p, v.to_string()).unwrap();
        p.display().to_string()
    };
    let clean = write("clean.json", &small_fleet("02:00"));
    let warning = write("warning.json", &small_fleet("01:00"));
    let out = patchwatch(&["lint", "--snapshot", &clean], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 error(s), 0 warning(s)"));
    let out = patchwatch(&["lint", "--snapshot", &warning, "--format", "json"], dir.path());
    assert_eq!(out.status.code(), Some(1), "a warning fails the default threshold");
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["findings"][0]["check"], "short-window");
    assert_eq!(json["findings"][0]["severity"], "warning");
    assert!(json["findings"][0]["fix"].as_str().unwrap().starts_with("az maintenance configuration update"));
    let out = patchwatch(&["lint", "--snapshot", &warning, "--fail-on", "error"], dir.path());
    assert_eq!(out.status.code(), Some(0), "warnings pass --fail-on error");
    let example = root().join("examples/snapshot.json").display().to_string();
    let out = patchwatch(&["lint", "--snapshot", &example, "--fail-on", "error"], dir.path());
    assert_eq!(out.status.code(), Some(1), "the example has errors");
    // Bad input: exit 2, and the message names the table, the row and the field.
    let bad = write("bad.json", &json!({ "resources": [{ "type": "microsoft.compute/virtualmachines" }] }));
    let out = patchwatch(&["lint", "--snapshot", &bad], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("resources[0]") && err.contains("`id`"), "{err}");
    let out = patchwatch(&["lint", "--snapshot", &example, "--as-of", "yesterday"], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn report_writes_the_workbook_and_a_browser_ready_page_and_sends_once() {
    let dir = tempfile::tempdir().unwrap();
    let example = root().join("examples/snapshot.json").display().to_string();
    let xlsx = dir.path().join("digest.xlsx");
    let html = dir.path().join("digest.html");
    let args =
        ["report", "--snapshot", &example, "--outbox", "outbox", "--xlsx", "digest.xlsx", "--html", "digest.html"];
    let out = patchwatch(&args, dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Patch compliance 2026-W46") && stdout.contains(" sent: "), "{stdout}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(!page.contains("cid:") && page.contains("data:image/png;base64,"), "charts inlined for a browser");
    let book = calamine::open_workbook::<calamine::Xlsx<_>, _>(&xlsx).unwrap();
    assert_eq!(book.sheet_names().len(), 5);
    assert_eq!(files(&dir.path().join("outbox"), "eml").len(), 1);
    // The same period again: nothing more is sent.
    let out = patchwatch(&args, dir.path());
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains(" duplicate: "), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(files(&dir.path().join("outbox"), "eml").len(), 1);
}
