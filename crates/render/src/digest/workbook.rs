//! The digest's `.xlsx` attachment: every row the email caps, one sheet per table. Each sheet
//! has a bold, frozen header row with an autofilter; times are real Excel date-times (UTC).
//! Text is always written as text: a value that starts like a formula (`=`, `+`, `-`, `@`) gets
//! Excel's quote prefix, so it stays text even when someone edits the cell.

use rust_xlsxwriter::{ExcelDateTime, Format, FormatAlign, Workbook, Worksheet, XlsxError};
use time::OffsetDateTime;

use patchwatch_fleet::{
    digest::{AttentionRow, Compliance, Digest, PendingRow},
    lint::Finding,
    trends::{ConfigurationTrend, RunPoint},
};

use super::model::subject_label;
use crate::RenderError;

/// The sheets, in order.
pub const SHEETS: [&str; 5] = ["Summary", "Needs attention", "Pending patches", "Schedule findings", "Run history"];

/// Excel refuses longer cell text.
const MAX_CELL_CHARS: usize = 32_767;

/// One cell's value.
enum Cell<'a> {
    Text(&'a str),
    Owned(String),
    Number(f64),
    Percent(f64),
    Time(OffsetDateTime),
    Date(OffsetDateTime),
    Empty,
}

impl<'a> Cell<'a> {
    fn text(s: &'a str) -> Self {
        Cell::Text(s)
    }
    fn opt(s: Option<&'a str>) -> Self {
        s.map_or(Cell::Empty, Cell::Text)
    }
    fn count(n: usize) -> Self {
        Cell::Number(n as f64)
    }
}

/// A column: its header and its width in characters.
type Column = (&'static str, f64);

struct Formats {
    header: Format,
    quoted: Format,
    time: Format,
    date: Format,
    percent: Format,
}

impl Formats {
    fn new() -> Self {
        Self {
            header: Format::new().set_bold().set_background_color("F6F8FA").set_align(FormatAlign::Top),
            quoted: Format::new().set_quote_prefix(),
            time: Format::new().set_num_format("yyyy-mm-dd hh:mm"),
            date: Format::new().set_num_format("yyyy-mm-dd"),
            percent: Format::new().set_num_format("0%"),
        }
    }
}

/// The workbook's bytes.
pub fn workbook(d: &Digest) -> Result<Vec<u8>, RenderError> {
    build(d).map_err(|e| RenderError::Workbook(Box::new(e)))
}

fn build(d: &Digest) -> Result<Vec<u8>, XlsxError> {
    let f = Formats::new();
    let mut wb = Workbook::new();
    wb.push_worksheet(summary(d, &f)?);
    wb.push_worksheet(attention(&d.attention, &f)?);
    wb.push_worksheet(pending(&d.pending, &f)?);
    wb.push_worksheet(findings(&d.findings, &f)?);
    wb.push_worksheet(run_history(&d.trends, &f)?);
    wb.save_to_buffer()
}

fn summary(d: &Digest, f: &Formats) -> Result<Worksheet, XlsxError> {
    const COLUMNS: [Column; 6] = [
        ("Scope", 14.0),
        ("Name", 36.0),
        ("Machines", 11.0),
        ("Compliant", 11.0),
        ("Not compliant", 14.0),
        ("Compliance", 12.0),
    ];
    let rows = std::iter::once(compliance_row("Overall", &d.overall))
        .chain(d.by_owner.iter().map(|c| compliance_row("Owner", c)))
        .chain(d.by_subscription.iter().map(|c| compliance_row("Subscription", c)));
    sheet(SHEETS[0], &COLUMNS, rows, f)
}

fn compliance_row<'a>(scope: &'static str, c: &'a Compliance) -> Vec<Cell<'a>> {
    vec![
        Cell::Text(scope),
        Cell::text(&c.label),
        Cell::count(c.machines),
        Cell::count(c.compliant),
        Cell::count(c.machines.saturating_sub(c.compliant)),
        Cell::Percent(f64::from(c.percent()) / 100.0),
    ]
}

fn attention(rows: &[AttentionRow], f: &Formats) -> Result<Worksheet, XlsxError> {
    const COLUMNS: [Column; 6] = [
        ("Machine", 28.0),
        ("Owner", 18.0),
        ("Subscription", 24.0),
        ("Critical/security pending", 14.0),
        ("Why", 36.0),
        ("Resource ID", 60.0),
    ];
    let rows = rows.iter().map(|r| {
        vec![
            Cell::text(&r.name),
            Cell::opt(r.owner.as_deref()),
            Cell::text(&r.subscription),
            Cell::Number(f64::from(r.critical_or_security)),
            Cell::Owned(r.reasons.join(", ")),
            Cell::text(&r.id),
        ]
    });
    sheet(SHEETS[1], &COLUMNS, rows, f)
}

fn pending(rows: &[PendingRow], f: &Formats) -> Result<Worksheet, XlsxError> {
    const COLUMNS: [Column; 8] = [
        ("Machine", 28.0),
        ("Owner", 18.0),
        ("Patch", 36.0),
        ("Classification", 16.0),
        ("Severity", 12.0),
        ("Published (UTC)", 16.0),
        ("Age (days)", 11.0),
        ("Resource ID", 60.0),
    ];
    let rows = rows.iter().map(|r| {
        vec![
            Cell::text(&r.machine),
            Cell::opt(r.owner.as_deref()),
            Cell::text(&r.patch),
            Cell::text(&r.classification),
            Cell::opt(r.severity.as_deref()),
            r.published.map_or(Cell::Empty, Cell::Date),
            r.age_days.map_or(Cell::Empty, |a| Cell::Number(a as f64)),
            Cell::text(&r.machine_id),
        ]
    });
    sheet(SHEETS[2], &COLUMNS, rows, f)
}

fn findings(rows: &[Finding], f: &Formats) -> Result<Worksheet, XlsxError> {
    const COLUMNS: [Column; 10] = [
        ("Check", 18.0),
        ("Severity", 10.0),
        ("Subject", 14.0),
        ("Name", 28.0),
        ("Owner", 18.0),
        ("Subscription", 24.0),
        ("Detail", 48.0),
        ("Why", 48.0),
        ("Fix", 70.0),
        ("Resource ID", 60.0),
    ];
    let rows = rows.iter().map(|r| {
        vec![
            Cell::Text(r.check.id()),
            Cell::Text(r.severity.as_str()),
            Cell::Text(subject_label(r.subject)),
            Cell::text(&r.name),
            Cell::opt(r.owner.as_deref()),
            Cell::text(&r.subscription),
            Cell::text(&r.detail),
            Cell::text(&r.why),
            Cell::text(&r.fix),
            Cell::text(&r.resource_id),
        ]
    });
    sheet(SHEETS[3], &COLUMNS, rows, f)
}

fn run_history(trends: &[ConfigurationTrend], f: &Formats) -> Result<Worksheet, XlsxError> {
    const COLUMNS: [Column; 10] = [
        ("Configuration", 28.0),
        ("Run start (UTC)", 17.0),
        ("Machines", 10.0),
        ("Failed", 8.0),
        ("No-show", 9.0),
        ("Success", 9.0),
        ("Longest install (min)", 12.0),
        ("Window (min)", 10.0),
        ("Run ID", 40.0),
        ("Configuration ID", 60.0),
    ];
    let rows = trends.iter().flat_map(|t| t.runs.iter().map(move |r| run_row(t, r)));
    sheet(SHEETS[4], &COLUMNS, rows, f)
}

fn run_row<'a>(t: &'a ConfigurationTrend, r: &'a RunPoint) -> Vec<Cell<'a>> {
    let minutes = |m: Option<u32>| m.map_or(Cell::Empty, |m| Cell::Number(f64::from(m)));
    vec![
        Cell::text(&t.configuration),
        Cell::Time(r.start),
        Cell::count(r.machines),
        Cell::count(r.failed),
        Cell::count(r.no_show),
        Cell::Percent(f64::from(r.success_percent) / 100.0),
        minutes(r.longest_install_minutes),
        minutes(t.window_minutes),
        Cell::text(&r.run_id),
        Cell::text(&t.configuration_id),
    ]
}

/// Rows a sheet can hold below its header (Excel's limit is 1,048,576 rows), one kept for the
/// "and N more" note.
const LAST_DATA_ROW: u32 = 1_048_575;

/// A sheet: bold frozen header row, the rows, an autofilter over all of them, column widths.
fn sheet<'a>(
    name: &str,
    columns: &[Column],
    rows: impl Iterator<Item = Vec<Cell<'a>>>,
    f: &Formats,
) -> Result<Worksheet, XlsxError> {
    let mut ws = Worksheet::new();
    ws.set_name(name)?;
    for (col, (header, width)) in (0u16..).zip(columns) {
        ws.write_string_with_format(0, col, *header, &f.header)?;
        ws.set_column_width(col, *width)?;
    }
    let mut last = 0u32;
    let mut rows = rows.peekable();
    for (row, cells) in (1u32..LAST_DATA_ROW).zip(&mut rows) {
        for (col, cell) in (0u16..).zip(cells) {
            write(&mut ws, row, col, cell, f)?;
        }
        last = row;
    }
    // Excel's sheet ends at 1,048,576 rows: say so rather than fail the whole digest.
    let left = rows.count();
    if left > 0 {
        last += 1;
        let note = format!("… and {left} more rows than a sheet holds; run `patchwatch lint --format json` for all");
        ws.write_string(last, 0, note)?;
    }
    ws.set_freeze_panes(1, 0)?;
    ws.autofilter(0, 0, last, u16::try_from(columns.len().saturating_sub(1)).unwrap_or(0))?;
    Ok(ws)
}

fn write(ws: &mut Worksheet, row: u32, col: u16, cell: Cell<'_>, f: &Formats) -> Result<(), XlsxError> {
    match cell {
        Cell::Text(s) => text(ws, row, col, s, f)?,
        Cell::Owned(s) => text(ws, row, col, &s, f)?,
        Cell::Number(n) => {
            ws.write_number(row, col, n)?;
        }
        Cell::Percent(p) => {
            ws.write_number_with_format(row, col, p, &f.percent)?;
        }
        Cell::Time(t) => match excel_time(t) {
            Some(t) => {
                ws.write_datetime_with_format(row, col, &t, &f.time)?;
            }
            None => text(ws, row, col, &super::model::format_date(t), f)?,
        },
        Cell::Date(t) => match excel_time(t) {
            Some(t) => {
                ws.write_datetime_with_format(row, col, &t, &f.date)?;
            }
            None => text(ws, row, col, &super::model::format_date(t), f)?,
        },
        Cell::Empty => {}
    }
    Ok(())
}

/// Text as text: cut to what Excel takes, quote-prefixed when it would read as a formula.
fn text(ws: &mut Worksheet, row: u32, col: u16, s: &str, f: &Formats) -> Result<(), XlsxError> {
    let s: String =
        if s.chars().count() > MAX_CELL_CHARS { s.chars().take(MAX_CELL_CHARS).collect() } else { s.to_owned() };
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        ws.write_string_with_format(row, col, s, &f.quoted)?;
    } else {
        ws.write_string(row, col, s)?;
    }
    Ok(())
}

/// The UTC time as an Excel date-time; `None` outside what Excel represents (before 1900).
fn excel_time(t: OffsetDateTime) -> Option<ExcelDateTime> {
    let t = t.to_offset(time::UtcOffset::UTC);
    let year = u16::try_from(t.year()).ok()?;
    ExcelDateTime::from_ymd(year, u8::from(t.month()), t.day())
        .and_then(|d| d.and_hms(u16::from(t.hour()), t.minute(), f64::from(t.second())))
        .ok()
}
