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
