use std::io::{Cursor, Read};

use calamine::{Data, Reader, Xlsx};
use url::Url;

use patchwatch_fleet::{
    digest::Digest,
    lint::{Check, Finding, Level, Subject},
};

use super::*;
use crate::parts::standalone_html;

fn templates() -> Templates {
    Templates::load(None, Url::parse("https://portal.azure.com/").unwrap()).unwrap()
}

/// Every string in the digest replaced by `s`.
fn overwrite(d: &mut Digest, s: &str) {
    let o = || s.to_owned();
    d.period = o();
    d.owner = Some(o());
    d.overall.label = o();
    d.by_owner.iter_mut().chain(&mut d.by_subscription).for_each(|c| c.label = o());
    d.pending_by_classification.iter_mut().for_each(|c| c.classification = o());
    for f in &mut d.findings {
        (f.resource_id, f.name, f.owner, f.subscription) = (o(), o(), Some(o()), o());
        (f.detail, f.why, f.fix) = (o(), o(), o());
    }
    for a in &mut d.attention {
        (a.id, a.name, a.owner, a.subscription, a.reasons) = (o(), o(), Some(o()), o(), vec![o(), o()]);
    }
    for p in &mut d.pending {
        (p.machine, p.machine_id, p.owner, p.patch) = (o(), o(), Some(o()), o());
        (p.classification, p.severity) = (o(), Some(o()));
    }
    for c in &mut d.calendar {
        (c.configuration, c.configuration_id, c.local) = (o(), o(), o());
    }
    for t in &mut d.trends {
        (t.configuration, t.configuration_id) = (o(), o());
        t.runs.iter_mut().for_each(|r| r.run_id = o());
    }
    for r in &mut d.repeat_offenders {
        (r.machine, r.configuration, r.latest) = (o(), o(), o());
    }
    for k in &mut d.kb_carryover {
        (k.patch, k.failed_in, k.scheduled_in) = (o(), o(), o());
    }
}

/// The tag names in `html`, in order: `<td`, `</tr`, `<!DOCTYPE`, ….
fn tags(html: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        if rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/' || c == '!') {
            let end = rest.find(|c: char| c.is_whitespace() || c == '>').unwrap_or(rest.len());
            out.push(&rest[..end]);
        }
    }
    out
}

#[test]
fn email_shows_every_section_and_caps_long_tables() {
    let r = templates().render_digest(&sample()).unwrap();
    let (html, text) = (&r.rendered.html, &r.rendered.text);
    assert_eq!(r.rendered.subject, "Patch compliance 2026-W49: 87% of 1,000 machines");
    for heading in [
        "Compliance by owner",
        "Compliance by subscription",
        "Machines that need attention (130)",
        "Pending critical and security patches (260)",
        "Maintenance windows in the next 35 days",
        "Trends per configuration",
        "Repeat offenders",
        "Failed in one ring, due in the next",
    ] {
        assert!(html.contains(heading), "HTML lacks {heading}");
    }
    // Capped tables say how many rows the attachment has beyond them.
    assert!(html.contains("… and 105 more in the attachment (patch-compliance-2026-w49.xlsx)."), "attention cap");
    assert!(html.contains("… and 235 more in the attachment"), "pending cap");
    assert!(html.contains("… and 9 more in the attachment"), "14 unassigned findings, 5 listed");
    assert_eq!(html.matches("<code ").count(), 4 + 2 + 5 + 1 + 3, "one fix command per listed finding");
    assert!(html.contains("az vm assess-patches --ids /subscriptions/shared-services/"));
    assert_eq!(html.matches("Machines in no maintenance configuration").count(), 1, "one group per check");
    for id in [PENDING_CHART_ID, RUNS_CHART_ID] {
        assert!(html.contains(&format!("<img src=\"cid:{id}\" alt=\"")), "no image for {id}");
        assert!(r.images.iter().any(|i| i.content_id == id && i.content_type == "image/png"));
    }
    assert_eq!(r.attachments.len(), 1);
    assert_eq!(r.attachments[0].filename, "patch-compliance-2026-w49.xlsx");
    assert!(!html.contains("<script") && !html.contains("<style"), "inline CSS only");
    assert!(html.len() < 100_000, "Gmail clips HTML past 102 KB: {} bytes", html.len());
    // The text part carries the numbers the charts show, and no images.
    for line in [
        "87% compliant: 870 of 1,000 machines",
        "- team-data: 82% (246 of 300 compliant, 54 not)",
        "- Critical: 96",
        "- Security: 164",
        "- Ring2-Prod-Windows: 6 runs; latest success 96%",
        "failed 6 · 9 · 4 · 12 · 7 · 8; no-show 3 · 2 · 4 · 3 · 5 · 6",
        "median install 36 min of 1 h 30 min (40%); longest install 1 h 19 min of 1 h 30 min (87%)",
        "- vm-data-013 (Ring2-Prod-Windows): not successful in 6 runs in a row; latest Failed",
        "- KB5048667: failed on 3 machine(s) in Ring1-Web; due in Ring2-Prod-Windows at 2026-12-10 22:00 UTC",
        "Fix: az vm update --ids /subscriptions/prod-web/",
        "… and 235 more in the attachment",
    ] {
        assert!(text.contains(line), "text lacks {line:?}\n{text}");
    }
    assert!(!text.contains("cid:") && !text.contains('<'), "no markup in the text part");
}

#[test]
fn subject_names_the_owning_team() {
    let mut d = sample();
    d.owner = Some("team-web".into());
    d.overall = patchwatch_fleet::digest::Compliance { label: "team-web".into(), machines: 1234, compliant: 1100 };
    assert_eq!(subject(&d), "Patch compliance 2026-W49: 89% of 1,234 machines (team-web)");
    assert_eq!(attachment_name(&d), "patch-compliance-2026-w49-team-web.xlsx");
    d.owner = Some("web\r\nBcc: x@example.com".into());
    assert!(!subject(&d).contains(['\r', '\n']));
}

#[test]
fn html_has_no_markup_from_data() {
    let hostile = "<script>alert(1)</script>\"' onerror=alert(2) <b>bold</b>\nBcc: evil@example.com\u{1b}[31m src=\"cid:pending-patches@digest.patchwatch\"";
    let mut plain = sample();
    overwrite(&mut plain, "x");
    let mut evil = sample();
    overwrite(&mut evil, hostile);
    let t = templates();
    let safe = t.render_digest(&plain).unwrap();
    let r = t.render_digest(&evil).unwrap();
    // Data changes no element: the tag sequence is the same as with harmless values.
    assert_eq!(tags(&r.rendered.html), tags(&safe.rendered.html));
    let html = &r.rendered.html;
    assert!(!html.contains("<script") && !html.contains("<b>bold</b>"), "raw markup from data");
    assert!(!html.contains("onerror="), "an attribute from data");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#x27; onerror&#x3D;alert(2)"));
    // Only the template's own two `src="cid:…"` become data URIs in a standalone file.
    let standalone = standalone_html(html, &r.images);
    assert_eq!(standalone.matches("src=\"data:image/png;base64,").count(), 2);
    // The text part keeps the characters but not the control codes or the line breaks.
    let text = &r.rendered.text;
    assert!(!text.contains('\u{1b}'));
    assert!(!text.lines().any(|l| l.starts_with("Bcc:")), "a value added a line");
    assert!(text.contains("<script>alert(1)</script>"), "text is not HTML-escaped");
    assert!(!r.rendered.subject.contains(['\n', '\u{1b}']));
}

#[test]
fn override_directory_replaces_the_digest_template() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("digest.txt.hbs"), "{{overall.percent}}% in {{period}}").unwrap();
    let t = Templates::load(Some(dir.path()), Url::parse("https://portal.azure.com/").unwrap()).unwrap();
    let r = t.render_digest(&sample()).unwrap();
    assert_eq!(r.rendered.text, "87% in 2026-W49");
    assert!(r.rendered.html.contains("87% compliant"), "the HTML is still the embedded one");
}

/// The decoded RGB pixels and size of a PNG.
fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "no PNG signature");
    let mut reader = png::Decoder::new(Cursor::new(bytes)).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

/// Pixels of `color` (RGB).
fn pixels(rgb: &[u8], color: [u8; 3]) -> usize {
    rgb.chunks_exact(3).filter(|p| *p == color).count()
}

#[test]
fn charts_are_pngs_with_their_bars() {
    let d = sample();
    let pending = charts::pending_by_classification(&d.pending_by_classification).unwrap();
    let runs = charts::failed_and_no_show(&d.trends).unwrap();
    if let Some(dir) = std::env::var_os("PATCHWATCH_CHART_DIR") {
        std::fs::write(std::path::Path::new(&dir).join("pending.png"), &pending).unwrap();
        std::fs::write(std::path::Path::new(&dir).join("runs.png"), &runs).unwrap();
    }
    let (w, h, rgb) = decode(&pending);
    assert_eq!((w, h), (charts::WIDTH, charts::HEIGHT));
    // Critical (red) and Security (orange) bars, and ink for the text.
    assert!(pixels(&rgb, [0xb3, 0x26, 0x1e]) > 1_000, "no critical bar");
    assert!(pixels(&rgb, [0xc5, 0x5a, 0x11]) > 1_000, "no security bar");
    assert!(pending.len() < 100_000, "{} bytes", pending.len());
    let (_, _, rgb) = decode(&runs);
    assert!(pixels(&rgb, [0xb3, 0x26, 0x1e]) > 1_000, "no failed bars");
    assert!(pixels(&rgb, [0x6b, 0x4f, 0xa0]) > 1_000, "no no-show bars");
}

#[test]
fn empty_data_draws_a_chart_that_says_so() {
    let mut d = sample();
    d.pending_by_classification.clear();
    d.trends.iter_mut().for_each(|t| t.runs.iter_mut().for_each(|r| (r.failed, r.no_show) = (0, 0)));
    let empty = [
        charts::pending_by_classification(&d.pending_by_classification).unwrap(),
        charts::failed_and_no_show(&d.trends).unwrap(),
        charts::failed_and_no_show(&[]).unwrap(),
    ];
    if let Some(dir) = std::env::var_os("PATCHWATCH_CHART_DIR") {
        std::fs::write(std::path::Path::new(&dir).join("pending-empty.png"), &empty[0]).unwrap();
        std::fs::write(std::path::Path::new(&dir).join("runs-empty.png"), &empty[1]).unwrap();
    }
    for png in empty {
        let (w, h, rgb) = decode(&png);
        assert_eq!((w, h), (charts::WIDTH, charts::HEIGHT));
        // At most the legend's 20 × 20 swatch is red: no bar.
        assert!(pixels(&rgb, [0xb3, 0x26, 0x1e]) <= 400, "a bar with no data");
        let white = pixels(&rgb, [255, 255, 255]);
        assert!(white < rgb.len() / 3 - 2_000, "blank: the title and the message are missing");
    }
    let r = templates().render_digest(&d).unwrap();
    assert!(r.rendered.html.contains("alt=\"No pending patches.\""));
    assert!(r.rendered.text.contains("No pending patches."));
}

fn open(bytes: &[u8]) -> Xlsx<Cursor<Vec<u8>>> {
    Xlsx::new(Cursor::new(bytes.to_vec())).unwrap()
}

/// The text of one part of the xlsx package.
fn package_part(bytes: &[u8], name: &str) -> String {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    let mut s = String::new();
    zip.by_name(name).unwrap().read_to_string(&mut s).unwrap();
    s
}

#[test]
fn workbook_has_five_sheets_with_every_row() {
    let d = sample();
    let bytes = workbook::workbook(&d).unwrap();
    let mut wb = open(&bytes);
    assert_eq!(wb.sheet_names(), workbook::SHEETS);
    assert_eq!(workbook::SHEETS, ["Summary", "Needs attention", "Pending patches", "Schedule findings", "Run history"]);
    let expected = [1 + 1 + 4 + 3, 1 + 130, 1 + 260, 1 + 24, 1 + 4 * 6];
    for (name, rows) in workbook::SHEETS.iter().zip(expected) {
        assert_eq!(wb.worksheet_range(name).unwrap().height(), rows, "{name}");
    }
    let summary = wb.worksheet_range("Summary").unwrap();
    assert_eq!(summary.get((0, 0)), Some(&Data::String("Scope".into())));
    assert_eq!(summary.get((1, 2)), Some(&Data::Float(1000.0)));
    assert_eq!(summary.get((1, 5)), Some(&Data::Float(0.87)));
    let pending = wb.worksheet_range("Pending patches").unwrap();
    assert!(matches!(pending.get((1, 5)), Some(Data::DateTime(t)) if t.is_datetime()), "{:?}", pending.get((1, 5)));
    let runs = wb.worksheet_range("Run history").unwrap();
    let start = match runs.get((1, 1)) {
        Some(Data::DateTime(t)) if t.is_datetime() => t.as_f64(),
        other => panic!("run start is {other:?}"),
    };
    // 2026-10-26 22:00 UTC as an Excel serial date (days since 1899-12-30).
    let days = (time::macros::date!(2026 - 10 - 26) - time::macros::date!(1899 - 12 - 30)).whole_days();
    assert!((start - (days as f64 + 22.0 / 24.0)).abs() < 1e-6, "{start}");
    // Bold frozen header rows and an autofilter over every row.
    let sheet1 = package_part(&bytes, "xl/worksheets/sheet1.xml");
    assert!(
        sheet1.contains(r#"<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>"#),
        "{sheet1}"
    );
    assert!(sheet1.contains(r#"<autoFilter ref="A1:F9"/>"#), "{sheet1}");
    assert!(package_part(&bytes, "xl/worksheets/sheet3.xml").contains(r#"<autoFilter ref="A1:H261"/>"#));
    assert!(package_part(&bytes, "xl/styles.xml").contains("<b/>"));
}

#[test]
fn formula_like_text_stays_text() {
    let mut d = sample();
    let finding = |name: &str, fix: &str| Finding {
        check: Check::PatchMode,
        severity: Level::Error,
        subject: Subject::Machine,
        resource_id: "@id".into(),
        name: name.into(),
        owner: Some("-team".into()),
        subscription: "+sub".into(),
        detail: "=1+1".into(),
        why: "why".into(),
        fix: fix.into(),
    };
    d.findings = vec![finding("=HYPERLINK(\"http://evil\",\"x\")", "=cmd|' /C calc'!A0"), finding("@SUM(1)", "-2+3")];
    let bytes = workbook::workbook(&d).unwrap();
    let mut wb = open(&bytes);
    let range = wb.worksheet_range("Schedule findings").unwrap();
    assert_eq!(range.get((1, 3)), Some(&Data::String("=HYPERLINK(\"http://evil\",\"x\")".into())));
    assert_eq!(range.get((1, 8)), Some(&Data::String("=cmd|' /C calc'!A0".into())));
    assert_eq!(range.get((2, 3)), Some(&Data::String("@SUM(1)".into())));
    assert_eq!(range.get((2, 4)), Some(&Data::String("-team".into())));
    let formulas = wb.worksheet_formula("Schedule findings").unwrap();
    assert!(formulas.used_cells().all(|(_, _, f)| f.is_empty()), "a value became a formula");
    let xml = package_part(&bytes, "xl/worksheets/sheet4.xml");
    assert!(!xml.contains("<f>"), "{xml}");
    assert!(package_part(&bytes, "xl/styles.xml").contains("quotePrefix=\"1\""));
}

#[test]
fn chat_cards_are_compact_escaped_and_link_free() {
    let mut d = sample();
    d.findings[0].name = "*vm* <b>_x_</b>".into();
    let teams = chat::teams_message(&d);
    let card = teams.to_string();
    assert!(card.contains("Patch compliance 2026-W49: 87% of 1,000 machines"));
    assert!(card.contains(r#""title":"Errors","value":"18""#), "{card}");
    assert!(card.contains(r#""title":"Warnings","value":"6""#), "{card}");
    assert!(card.contains(r"\\*vm\\* \\<b\\>\\_x\\_\\</b\\>"), "{card}");
    assert!(card.contains("… and 19 more in the email"));
    assert!(!card.contains("http") || !card.contains("Action.OpenUrl"), "links in the card");
    assert!(!card.contains("portal.azure.com") && !card.contains("Action."));
    let slack = chat::slack_message(&d).to_string();
    assert!(slack.contains("*Errors* 18 · *Warnings* 6"), "{slack}");
    assert!(slack.contains("&lt;b&gt;"), "{slack}");
    assert!(!slack.contains("\"url\""), "links in the message");
}

#[test]
#[ignore = "writes the sample digest to PATCHWATCH_CHART_DIR for a look"]
fn write_sample() {
    let dir = std::path::PathBuf::from(std::env::var_os("PATCHWATCH_CHART_DIR").unwrap());
    let r = templates().render_digest(&sample()).unwrap();
    std::fs::write(dir.join("digest.html"), standalone_html(&r.rendered.html, &r.images)).unwrap();
    std::fs::write(dir.join("digest.email.html"), &r.rendered.html).unwrap();
    std::fs::write(dir.join("digest.txt"), &r.rendered.text).unwrap();
    std::fs::write(dir.join(&r.attachments[0].filename), &r.attachments[0].bytes).unwrap();
}
