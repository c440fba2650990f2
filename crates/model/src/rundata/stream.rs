//! A snapshot file read as a stream: the top-level object and its arrays are scanned here, and
//! each row's bytes go to serde_json as one slice. Memory stays at a few batches of rows
//! whatever the file's size, and each row parses at slice speed, not reader speed.

use std::{
    io::{BufRead, BufReader, Read},
    ops::Range,
    sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel},
};

use serde::de::IgnoredAny;

use super::{rows::Table, snapshot::RowSink};

/// Why a stream could not be read: the message names the table and row, or the byte offset.
type Result<T> = std::result::Result<T, String>;

struct Scanner<R> {
    input: BufReader<R>,
    /// Bytes consumed so far, for error messages.
    offset: u64,
}

impl<R: Read> Scanner<R> {
    fn peek(&mut self) -> Result<Option<u8>> {
        let buf = self.input.fill_buf().map_err(|e| format!("read failed at byte {}: {e}", self.offset))?;
        Ok(buf.first().copied())
    }

    fn bump(&mut self) {
        self.input.consume(1);
        self.offset += 1;
    }

    fn skip_ws(&mut self) -> Result<Option<u8>> {
        loop {
            match self.peek()? {
                Some(b' ' | b'\t' | b'\n' | b'\r') => self.bump(),
                other => return Ok(other),
            }
        }
    }

    fn expect(&mut self, want: u8, what: &str) -> Result<()> {
        match self.skip_ws()? {
            Some(b) if b == want => {
                self.bump();
                Ok(())
            }
            Some(b) => Err(format!("invalid JSON: expected {what} at byte {}, found {:?}", self.offset, b as char)),
            None => Err(format!("invalid JSON: expected {what} at byte {}, found the end", self.offset)),
        }
    }

    /// Appends one JSON value's bytes to `out` and answers where they are. Structure only:
    /// serde checks the rest when it parses the slice.
    fn value(&mut self, out: &mut Vec<u8>) -> Result<Range<usize>> {
        let start = out.len();
        let mut depth = 0usize;
        let mut in_string = false;
        let mut escaped = false;
        loop {
            let buf = self.input.fill_buf().map_err(|e| format!("read failed at byte {}: {e}", self.offset))?;
            if buf.is_empty() {
                return Err(format!("invalid JSON: the file ends inside a value at byte {}", self.offset));
            }
            let mut used = 0;
            let mut done = false;
            while used < buf.len() {
                let b = buf[used];
                if in_string {
                    if escaped {
                        escaped = false;
                        used += 1;
                        continue;
                    }
                    // Most bytes are inside strings: jump to the next quote or backslash.
                    match quote_or_backslash(&buf[used..]) {
                        None => {
                            used = buf.len();
                            continue;
                        }
                        Some(at) => used += at,
                    }
                    if buf[used] == b'\\' {
                        escaped = true;
                    } else {
                        in_string = false;
                        if depth == 0 {
                            used += 1;
                            done = true;
                            break;
                        }
                    }
                    used += 1;
                    continue;
                }
                match b {
                    b'"' => in_string = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' if depth == 0 => {
                        done = true;
                        break;
                    }
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            used += 1;
                            done = true;
                            break;
                        }
                    }
                    b',' | b' ' | b'\t' | b'\n' | b'\r' if depth == 0 => {
                        done = true;
                        break;
                    }
                    _ => {}
                }
                used += 1;
            }
            out.extend_from_slice(&buf[..used]);
            self.input.consume(used);
            self.offset += used as u64;
            if done {
                return if out.len() == start {
                    Err(format!("invalid JSON: expected a value at byte {}", self.offset))
                } else {
                    Ok(start..out.len())
                };
            }
        }
    }
}

/// Where the first `"` or `\\` in `s` is. Most JSON strings are short (28 bytes on average in a
/// snapshot, seven million of them at 50,000 machines), so the first 64 bytes are searched eight
/// at a time inline, where a `memchr` call's set-up would cost more than the search; longer
/// strings go on with `memchr`.
fn quote_or_backslash(s: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut at = 0;
    while let Some(word) = s.get(at..at + 8).filter(|_| at < 64) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        let w = u64::from_le_bytes(bytes);
        let (q, b) = (w ^ (u64::from(b'"') * ONES), w ^ (u64::from(b'\\') * ONES));
        // The high bit of each zero byte (a borrow may also mark bytes above the first zero,
        // never below it, and only the lowest is read).
        let found = (q.wrapping_sub(ONES) & !q | b.wrapping_sub(ONES) & !b) & HIGH;
        if found != 0 {
            return Some(at + found.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    memchr::memchr2(b'"', b'\\', s.get(at..)?).map(|i| at + i)
}

/// A batch is handed on once its rows hold this many bytes (a few hundred rows).
const BATCH_BYTES: usize = 512 * 1024;

/// What the scanner found: a table beginning, or a row (its table, index there, and bytes).
enum Found {
    Table(Table),
    Row(Table, usize, Range<usize>),
}

/// Scanned rows, their bytes side by side in one buffer.
struct RawBatch {
    found: Vec<Found>,
    bytes: Vec<u8>,
}

impl RawBatch {
    fn new() -> Self {
        // Room for a full batch and the row that crosses the limit, so the buffer rarely grows.
        Self { found: Vec::with_capacity(1024), bytes: Vec::with_capacity(2 * BATCH_BYTES) }
    }
}

/// Parsed rows in stream order, how many rows the sink's parser dropped, and the first row it
/// refused (the batch's rows stop there).
struct Parsed<R> {
    items: Vec<Parsed1<R>>,
    dropped: u64,
    failed: Option<String>,
}

enum Parsed1<R> {
    Table(Table),
    Row(Table, R),
}

/// A parser's batches, and where their emptied row vectors go back to it.
type FromParser<R> = (Receiver<Parsed<R>>, Sender<Vec<Parsed1<R>>>);

/// Parser threads. Parsing is most of a load's work; two parsers over alternate batches keep
/// both cores of a small instance busy (the scanner and the keeping stage are lighter).
const PARSERS: usize = 2;

/// Streams a snapshot from `reader` into `sink`; see [`RowSink::read_stream`]. Errors name the
/// table and row index.
///
/// Three stages: the scanner finds each row's bytes, [`PARSERS`] parsers turn alternate batches
/// into the sink's rows (or drop them, through [`RowSink::parse`]), and the caller's thread keeps
/// what it needs, taking the parsers' batches in turn so that rows arrive in stream order. A few
/// batches are in flight, and their buffers go back to be refilled: the memory is touched once,
/// not once per batch.
pub(super) fn drive<S: RowSink>(reader: impl Read + Send, sink: &mut S) -> Result<()> {
    let (spare_raw_tx, spare_raw_rx) = channel::<RawBatch>();
    let mut to_parsers = Vec::with_capacity(PARSERS);
    let mut from_parsers = Vec::with_capacity(PARSERS);
    let context = sink.context();
    std::thread::scope(|scope| {
        let mut parsers = Vec::with_capacity(PARSERS);
        for _ in 0..PARSERS {
            let (raw_tx, raw_rx) = sync_channel::<RawBatch>(2);
            let (row_tx, row_rx) = sync_channel::<Parsed<S::Row>>(2);
            let (spare_rows_tx, spare_rows_rx) = channel::<Vec<Parsed1<S::Row>>>();
            let spare_raw = spare_raw_tx.clone();
            let context = &context;
            parsers
                .push(scope.spawn(move || parse_batches::<S>(context, &raw_rx, &row_tx, &spare_raw, &spare_rows_rx)));
            to_parsers.push(raw_tx);
            from_parsers.push((row_rx, spare_rows_tx));
        }
        drop(spare_raw_tx);
        let scanner = scope.spawn(move || {
            let mut out = Out { batch: RawBatch::new(), tx: to_parsers, next: 0, spare: spare_raw_rx };
            let scanned = scan_rows(reader, &mut out);
            // Even after a structural error: a broken row before it is the first problem.
            if !out.batch.found.is_empty() {
                let _ = out.send();
            }
            scanned
        });
        // The first problem in the file is the one reported: the keeping stage sees batches in
        // stream order, each with the row its parser refused, and the scanner stops at the first
        // structural error, after every batch before it.
        let kept = keep(from_parsers, sink);
        // A parser that panicked ended its turn early, and the rows kept are not the whole file.
        let stopped = || "the snapshot reader stopped unexpectedly".to_owned();
        let parsed = parsers.into_iter().map(|p| p.join()).collect::<std::result::Result<Vec<()>, _>>();
        let scanned = scanner.join().map_err(|_| stopped());
        parsed.map_err(|_| stopped())?;
        kept?;
        scanned?
    })
}

/// A parser thread: parses each batch it is given and hands the rows on, until either side stops.
fn parse_batches<S: RowSink>(
    context: &S::Context,
    raw_rx: &Receiver<RawBatch>,
    row_tx: &SyncSender<Parsed<S::Row>>,
    spare_raw: &Sender<RawBatch>,
    spare_rows: &Receiver<Vec<Parsed1<S::Row>>>,
) {
    for mut raw in raw_rx {
        let mut items = spare_rows.try_recv().unwrap_or_else(|_| Vec::with_capacity(raw.found.len()));
        let mut dropped = 0;
        let mut failed = None;
        for found in raw.found.drain(..) {
            match found {
                Found::Table(table) => items.push(Parsed1::Table(table)),
                Found::Row(table, index, range) => {
                    match S::parse(context, table, raw.bytes.get(range).unwrap_or_default()) {
                        Ok(Some(row)) => items.push(Parsed1::Row(table, row)),
                        Ok(None) => dropped += 1,
                        Err(e) => {
                            failed = Some(format!("{}[{index}]: {e}", table.name()));
                            break;
                        }
                    }
                }
            }
        }
        raw.bytes.clear();
        raw.found.clear();
        let _ = spare_raw.send(raw);
        let stop = failed.is_some();
        // The rows before a refused one are still kept: an earlier problem may be reported first.
        if row_tx.send(Parsed { items, dropped, failed }).is_err() || stop {
            return;
        }
    }
}

/// The caller's stage: takes the parsers' batches in turn (the order the scanner dealt them)
/// and hands each row to the sink, in stream order. Stops at the first refused row.
fn keep<S: RowSink>(parsers: Vec<FromParser<S::Row>>, sink: &mut S) -> Result<()> {
    for (rows, spare) in parsers.iter().cycle() {
        // A parser that has stopped has no more batches, and neither has the next one in turn
        // (unless it panicked, which the caller finds when it joins it).
        let Ok(mut parsed) = rows.recv() else { return Ok(()) };
        sink.dropped(parsed.dropped);
        for item in parsed.items.drain(..) {
            match item {
                Parsed1::Table(table) => sink.begin_table(table)?,
                Parsed1::Row(table, row) => sink.accept(table, row),
            }
        }
        if let Some(e) = parsed.failed {
            return Err(e);
        }
        let _ = spare.send(parsed.items);
    }
    Ok(())
}

/// The scanner's output: the batch being filled, and the parsers it is dealt to in turn.
struct Out {
    batch: RawBatch,
    tx: Vec<SyncSender<RawBatch>>,
    /// The parser the next batch goes to.
    next: usize,
    /// Batches the parsers are done with, to be refilled.
    spare: Receiver<RawBatch>,
}

impl Out {
    fn push(&mut self, found: Found) -> Result<()> {
        self.batch.found.push(found);
        if self.batch.bytes.len() >= BATCH_BYTES { self.send() } else { Ok(()) }
    }

    /// Hands the batch to the next parser in turn.
    fn send(&mut self) -> Result<()> {
        let next = self.spare.try_recv().unwrap_or_else(|_| RawBatch::new());
        let batch = std::mem::replace(&mut self.batch, next);
        let parser = &self.tx[self.next % self.tx.len()];
        self.next += 1;
        // A closed channel means a later stage stopped (and says why); stop reading.
        parser.send(batch).map_err(|_| String::new())
    }
}

/// Scans the object and hands each table and row of a known table to `out`.
fn scan_rows(reader: impl Read, out: &mut Out) -> Result<()> {
    let mut s = Scanner { input: BufReader::with_capacity(1 << 20, reader), offset: 0 };
    let mut buf = Vec::with_capacity(64 * 1024);
    s.expect(b'{', "an object of ARG table names to arrays of rows")?;
    if s.skip_ws()? == Some(b'}') {
        s.bump();
        return end(&mut s);
    }
    loop {
        buf.clear();
        let name = s.value(&mut buf)?;
        let name: String = serde_json::from_slice(&buf[name]).map_err(|e| format!("invalid JSON: table name: {e}"))?;
        s.expect(b':', "`:` after a table name")?;
        s.skip_ws()?;
        match Table::from_name(&name) {
            Some(table) => {
                out.push(Found::Table(table))?;
                rows(&mut s, table, out)?;
            }
            // Unknown tables are tolerated so that exports with extra tables still load.
            None => skip(&mut s, &name, &mut buf)?,
        }
        match s.skip_ws()? {
            Some(b',') => s.bump(),
            Some(b'}') => {
                s.bump();
                return end(&mut s);
            }
            _ => return Err(format!("invalid JSON: expected `,` or `}}` at byte {}", s.offset)),
        }
        s.skip_ws()?;
    }
}

fn rows<R: Read>(s: &mut Scanner<R>, table: Table, out: &mut Out) -> Result<()> {
    s.expect(b'[', &format!("an array of {} rows", table.name()))?;
    if s.skip_ws()? == Some(b']') {
        s.bump();
        return Ok(());
    }
    for index in 0usize.. {
        s.skip_ws()?;
        let row = s.value(&mut out.batch.bytes)?;
        out.push(Found::Row(table, index, row))?;
        match s.skip_ws()? {
            Some(b',') => s.bump(),
            Some(b']') => {
                s.bump();
                return Ok(());
            }
            _ => {
                return Err(format!(
                    "invalid JSON: {}[{index}]: expected `,` or `]` at byte {}",
                    table.name(),
                    s.offset
                ));
            }
        }
    }
    Ok(())
}

/// Checks and skips an unknown table's value; an array one element at a time, so a large
/// unknown table is never held whole.
fn skip<R: Read>(s: &mut Scanner<R>, name: &str, buf: &mut Vec<u8>) -> Result<()> {
    let mut check = |s: &mut Scanner<R>, what: &dyn std::fmt::Display| -> Result<()> {
        buf.clear();
        let value = s.value(buf)?;
        serde_json::from_slice::<IgnoredAny>(&buf[value]).map(drop).map_err(|e| format!("invalid JSON: {what}: {e}"))
    };
    if s.skip_ws()? != Some(b'[') {
        return check(s, &name);
    }
    s.bump();
    if s.skip_ws()? == Some(b']') {
        s.bump();
        return Ok(());
    }
    for index in 0usize.. {
        s.skip_ws()?;
        check(s, &format_args!("{name}[{index}]"))?;
        match s.skip_ws()? {
            Some(b',') => s.bump(),
            Some(b']') => {
                s.bump();
                return Ok(());
            }
            _ => return Err(format!("invalid JSON: {name}[{index}]: expected `,` or `]` at byte {}", s.offset)),
        }
    }
    Ok(())
}

/// Only whitespace may follow the object.
fn end<R: Read>(s: &mut Scanner<R>) -> Result<()> {
    match s.skip_ws()? {
        None => Ok(()),
        Some(_) => Err(format!("invalid JSON: trailing characters at byte {}", s.offset)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::rundata::{
        RunData, RunQuery,
        rows::{Row, RunCollector},
        snapshot::{self, read_into},
    };

    fn q() -> RunQuery {
        RunQuery {
            correlation_id: "/x/providers/microsoft.maintenance/applyupdates/1".into(),
            subscription_ids: vec![],
            include_results: true,
            since: None,
            watch: Vec::new(),
        }
    }

    fn read(text: &str) -> Result<usize> {
        let mut c = RunCollector::new(&q().correlation_id);
        read_into(text.as_bytes(), &mut c)?;
        Ok(usize::try_from(c.rows_seen).unwrap_or(usize::MAX))
    }

    #[test]
    fn quotes_and_backslashes_are_found_where_memchr_finds_them() {
        let mut text = Vec::new();
        for n in 0..300u32 {
            // Lengths across the eight-byte words and past the inline search.
            text.extend((0..n % 97).map(|i| b"ab\xc3\xa9\x00\x7f\x80\xff "[(i % 8) as usize]));
            text.push(if n % 3 == 0 { b'\\' } else { b'"' });
        }
        for start in 0..text.len() {
            let s = &text[start..];
            assert_eq!(quote_or_backslash(s), memchr::memchr2(b'"', b'\\', s), "from {start}");
        }
        assert_eq!(quote_or_backslash(b""), None);
        assert_eq!(quote_or_backslash(&[b'a'; 200]), None);
        // A byte that borrows (0x00 before the quote) does not hide or move the match.
        assert_eq!(quote_or_backslash(b"\x00\x01\"\"abcdefgh"), Some(2));
        assert_eq!(quote_or_backslash(b"#!\x21\x22"), Some(3));
    }

    /// `n` result rows of about 1 KB each (bytes enough for several batches), as a snapshot.
    fn many_results(n: usize, bad: &[usize], tail: &str) -> String {
        let pad = "x".repeat(900);
        let rows: Vec<String> = (0..n)
            .map(|i| {
                let id =
                    if bad.contains(&i) { "1".to_owned() } else { format!("\"/vm{i}/patchInstallationResults/1\"") };
                format!(r#"{{"id": {id}, "type": "x/patchinstallationresults", "properties": {{"pad": "{pad}"}}}}"#)
            })
            .collect();
        format!(r#"{{"patchinstallationresources": [{}]{tail}}}"#, rows.join(","))
    }

    #[test]
    fn the_first_problem_in_the_file_is_reported_across_batches_and_parsers() {
        // About 500 rows per batch, batches dealt to the two parsers in turn: rows 700 and 1,300
        // are in the second and third batches, parsed by different parsers.
        let text = many_results(4_000, &[1_300, 700], "");
        assert!(text.len() > 6 * BATCH_BYTES);
        let err = read(&text).unwrap_err();
        assert!(err.starts_with("patchinstallationresources[700]: invalid type: integer `1`"), "{err}");
        // A refused row before a structural error several batches later.
        let text = many_results(4_000, &[700], ", x");
        let err = read(&text).unwrap_err();
        assert!(err.starts_with("patchinstallationresources[700]: "), "{err}");
        // The structural error alone, after every row was parsed.
        let err = read(&many_results(4_000, &[], ", x")).unwrap_err();
        assert!(err.starts_with("invalid JSON: "), "{err}");
        assert_eq!(read(&many_results(4_000, &[], "")), Ok(4_000));
        // The whole-file parse reports the same first problem.
        let mut c = RunCollector::new(&q().correlation_id);
        let err = snapshot::parse_into(many_results(4_000, &[1_300, 700], "").as_bytes(), &mut c).unwrap_err();
        assert!(err.starts_with("patchinstallationresources[700]: invalid type: integer `1`"), "{err}");
    }

    #[test]
    fn joined_columns_are_read_from_live_rows_only() {
        let run = &q().correlation_id;
        let vm = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1";
        let text = format!(
            r#"{{"maintenanceresources": [{{"id": "{vm}/providers/microsoft.maintenance/applyupdates/1", "type": "microsoft.maintenance/applyupdates",
                "properties": {{"correlationId": "{run}", "resourceId": "{vm}"}},
                "result": {{"id": "{vm}/patchInstallationResults/1", "type": "x/patchinstallationresults", "properties": {{"maintenanceRunId": "{run}", "status": "Failed"}}}},
                "machine": {{"id": "{vm}", "type": "Microsoft.Compute/virtualMachines", "tags": {{"k": "v"}}}}}}]}}"#
        );
        let mut streamed = RunCollector::new(run);
        read_into(text.as_bytes(), &mut streamed).unwrap();
        let mut sliced = RunCollector::new(run);
        snapshot::parse_into(text.as_bytes(), &mut sliced).unwrap();
        for data in [streamed.finish(), sliced.finish()] {
            assert_eq!(data.expected.len(), 1);
            assert!(data.results.is_empty() && data.machines.is_empty(), "{data:?}");
        }
        // A live row (read as `Row`) carries them.
        let mut live = RunCollector::new(run);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let row: Row = serde_json::from_value(value["maintenanceresources"][0].clone()).unwrap();
        live.accept(Table::MaintenanceResources, row);
        let data = live.finish();
        assert_eq!((data.results.len(), data.machines.len()), (1, 1));
    }

    #[test]
    fn rows_are_read_one_by_one_with_errors_naming_the_row() {
        let text = r#" { "other": {"a": [1, "]"]}, "resources" : [ {"id": "a\"]}", "type": "t", "tags": {"k": "{"}} ,{"id":"b","type":"t"}], "x": 1 } "#;
        assert_eq!(read(text), Ok(2));
        let err = read(r#"{"maintenanceresources": [{"id": "a", "type": "t"}, {"type": "t"}]}"#).unwrap_err();
        assert!(err.starts_with("maintenanceresources[1]: missing field `id`"), "{err}");
        assert!(read(r#"{"resources": {}}"#).unwrap_err().contains("resources"));
        assert!(read("[1]").unwrap_err().contains("invalid JSON"));
        assert!(read("{} trailing").unwrap_err().contains("trailing"));
        assert!(read(r#"{"resources": [{"id": "a", "type": "t"}"#).unwrap_err().contains("invalid JSON"));
        assert!(read(r#"{"resources": [{"id": "a", "type": "t"} {"id": "b"}]}"#).unwrap_err().contains("resources[0]"));
        assert!(read(r#"{"x": [1, }"#).is_err());
        assert_eq!(read("{}"), Ok(0));
        assert_eq!(read(r#"{"resources": []}"#), Ok(0));
        // Unknown tables are checked element by element.
        assert_eq!(read(r#"{"x": [], "y": [1, {"a": [2]}], "z": 3}"#), Ok(0));
        let err = read(r#"{"x": [1, {"a" 2}]}"#).unwrap_err();
        assert!(err.starts_with("invalid JSON: x[1]: "), "{err}");
        // A row the parser refuses comes before a structural error later in the same batch.
        let err = read(r#"{"resources": [{"id": 1, "type": "t"}, {"id": "b", "type": "t"} x]}"#).unwrap_err();
        assert!(err.starts_with("resources[0]: invalid type: integer `1`"), "{err}");
    }

    /// Everything a summary reads of a run: its machines' facts only for the run's machines.
    fn what_a_summary_reads(data: &RunData) -> Vec<String> {
        let mut out: Vec<String> = data.expected.iter().map(|m| format!("{m:?}")).collect();
        let mut results: Vec<String> = data.results.iter().map(|r| format!("{r:?}")).collect();
        let mut patches: Vec<String> = data.failed_patches.iter().map(|p| format!("{p:?}")).collect();
        let run_machines: HashSet<String> =
            data.expected.iter().map(|m| m.id.to_ascii_lowercase()).chain(data.results.keys().cloned()).collect();
        let mut machines: Vec<String> = data
            .machines
            .iter()
            .filter(|(k, _)| run_machines.contains(*k))
            .map(|(k, m)| {
                let mut tags: Vec<_> = m.tags.iter().collect();
                tags.sort();
                format!("{k} {:?} {:?} {:?} {tags:?}", m.os_type, m.power_state, m.agent_status)
            })
            .collect();
        for part in [&mut results, &mut patches, &mut machines] {
            part.sort();
            out.append(part);
        }
        out
    }

    #[test]
    fn the_stream_keeps_what_the_collector_keeps() {
        let text = include_str!("../../../../examples/snapshot.json");
        let runs = [
            "/subscriptions/910a2dec-8902-4cc1-8bee-8da1658eec67/resourcegroups/rg-patching/providers/microsoft.maintenance/maintenanceconfigurations/ring2-prod/providers/microsoft.maintenance/applyupdates/20261110220000",
            "/subscriptions/910a2dec-8902-4cc1-8bee-8da1658eec67/resourcegroups/rg-patching/providers/microsoft.maintenance/maintenanceconfigurations/prod-weekend/providers/microsoft.maintenance/applyupdates/20261108030000",
            &q().correlation_id,
        ];
        for run in runs {
            let mut streamed = RunCollector::new(run);
            read_into(text.as_bytes(), &mut streamed).unwrap();
            let mut sliced = RunCollector::new(run);
            snapshot::parse_into(text.as_bytes(), &mut sliced).unwrap();
            assert_eq!(streamed.rows_seen, sliced.rows_seen);
            assert!(streamed.rows_seen > 5_000, "{}", streamed.rows_seen);
            let (streamed, sliced) = (streamed.finish(), sliced.finish());
            assert_eq!(what_a_summary_reads(&streamed), what_a_summary_reads(&sliced), "{run}");
            // The fleet's other machines are not kept.
            assert!(streamed.machines.len() < sliced.machines.len(), "{run}");
        }
        let mut ring2 = RunCollector::new(runs[0]);
        read_into(text.as_bytes(), &mut ring2).unwrap();
        let data = ring2.finish();
        assert_eq!((data.expected.len(), data.machines.len()), (40, 40));
        assert!(data.expected.iter().all(|m| data.machines.contains_key(&m.id.to_ascii_lowercase())));
    }

    #[test]
    fn a_run_table_after_dropped_machines_is_refused() {
        let run = "/s/providers/microsoft.maintenance/applyupdates/1";
        let vm =
            |n: u32| format!("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm{n}");
        let apply = |n: u32| {
            format!(
                r#"{{"id": "{}/providers/microsoft.maintenance/applyupdates/1", "type": "microsoft.maintenance/applyupdates", "properties": {{"correlationId": "{run}"}}}}"#,
                vm(n)
            )
        };
        let machine = |n: u32| {
            format!(r#"{{"id": "{}", "type": "Microsoft.Compute/virtualMachines", "tags": {{"n": "{n}"}}}}"#, vm(n))
        };
        let load = |text: &str| {
            let mut c = RunCollector::new(run);
            read_into(text.as_bytes(), &mut c).map(|()| c.finish())
        };
        // Tables in the usual order: only the run's machine is kept.
        let data = load(&format!(
            r#"{{"maintenanceresources": [{}], "patchinstallationresources": [], "resources": [{}, {}]}}"#,
            apply(1),
            machine(1),
            machine(2)
        ))
        .unwrap();
        assert_eq!(data.machines.len(), 1);
        assert_eq!(data.machines[&vm(1).to_ascii_lowercase()].tags["n"], "1");
        // Machines before the run's tables: nothing is known yet, every machine is kept.
        let data = load(&format!(
            r#"{{"resources": [{}, {}], "maintenanceresources": [{}], "patchinstallationresources": []}}"#,
            machine(1),
            machine(2),
            apply(1)
        ))
        .unwrap();
        assert_eq!(data.machines.len(), 2);
        // A run table again after machines were dropped would have needed them.
        let err = load(&format!(
            r#"{{"maintenanceresources": [{}], "patchinstallationresources": [], "resources": [{}, {}], "maintenanceresources": [{}]}}"#,
            apply(1),
            machine(1),
            machine(2),
            apply(2)
        ))
        .unwrap_err();
        assert!(err.starts_with("maintenanceresources: listed a second time"), "{err}");
        // Before any machine was dropped, a repeated table is read as before.
        let data = load(&format!(
            r#"{{"maintenanceresources": [{}], "patchinstallationresources": [], "maintenanceresources": [{}], "resources": [{}, {}]}}"#,
            apply(1),
            apply(2),
            machine(1),
            machine(2)
        ))
        .unwrap();
        assert_eq!((data.expected.len(), data.machines.len()), (2, 2));
    }

    #[test]
    fn rows_parsed_for_a_run_are_checked_like_rows() {
        let tables = [
            Table::MaintenanceResources,
            Table::PatchInstallationResources,
            Table::PatchAssessmentResources,
            Table::Resources,
        ];
        let rows = [
            "[1]",
            "null",
            r#""row""#,
            r#"{"type": "t"}"#,
            r#"{"id": "a"}"#,
            r#"{"id": 1, "type": "t"}"#,
            r#"{"id": "a", "type": ["t"]}"#,
            r#"{"id": "a", "type": "t", "id": "b"}"#,
            r#"{"id": "a", "type": "t", "resourceGroup": 2}"#,
            r#"{"id": "a", "type": "t", "tags": [1]}"#,
            r#"{"id": "a", "type": "t", "tags": {"k": 1, "k2": {"x": [null]}}}"#,
            r#"{"id": "a", "type": "t", "tags": "x"}"#,
            r#"{"id": "a", "type": "t", "properties": null}"#,
            r#"{"id": "a", "type": "t", "properties": []}"#,
            r#"{"id": "a", "type": "t", "properties": {"status": 3}}"#,
            r#"{"id": "a", "type": "t", "properties": {"status": "x", "status": "y"}}"#,
            r#"{"id": "a", "type": "t", "properties": {"kbId": "1", "kbid": "2"}}"#,
            r#"{"id": "a", "type": "t", "properties": {"errorDetails": {"a": }}}"#,
            r#"{"id": "a", "type": "t", "properties": {"classifications": [1, 2}}"#,
            r#"{"id": "a", "type": "t", "properties": {"extended": {"instanceView": 1}}}"#,
            r#"{"id": "a", "type": "t", "properties": {"installedPatchCount": {"x": 1}, "installationState": 2}}"#,
            r#"{"id": "a", "type": "t", "machineTags": {"k": "v"}, "machineTags": null}"#,
            r#"{"id": "a\u0022", "type": "t"} x"#,
            r#"{"id": "a", "type": "t", "properties": {"osName": "\ud800"}}"#,
        ];
        for row in rows {
            let owned = serde_json::from_slice::<Row>(row.as_bytes()).map(|_| ()).map_err(|e| e.to_string());
            for table in tables {
                let parsed = Row::parse_for_run(table, row.as_bytes()).map(|_| ()).map_err(|e| e.to_string());
                assert_eq!(parsed, owned, "{row} in {}", table.name());
            }
        }
    }

    #[test]
    fn rows_a_run_keeps_are_built_as_rows() {
        let rows = [
            (
                Table::MaintenanceResources,
                r#"{"id": "x/a\"pply", "type": "Microsoft.Maintenance/applyUpdates", "resourceGroup": "RG", "tags": {},
                    "machineTags": {"n": 3}, "properties": {"correlationId": "r", "resourceId": "vm"}}"#,
            ),
            (
                Table::PatchInstallationResources,
                r#"{"id": "vm/patchInstallationResults/1", "type": "microsoft.compute/virtualmachines/patchinstallationresults",
                    "properties": {"maintenanceRunId": "r", "status": "Failed", "installedPatchCount": "3", "failedPatchCount": 1,
                    "pendingPatchCount": -1, "maintenanceWindowExceeded": "TRUE", "rebootStatus": "Required",
                    "startDateTime": "2026-11-10T22:00:00Z", "lastModifiedDateTime": "2026-11-10T22:30:00Z", "osType": "Windows",
                    "errorDetails": {"code": "c", "message": "m\u00e9", "details": [{"message": "d"}]}}}"#,
            ),
            (
                Table::PatchInstallationResources,
                r#"{"id": "vm/patchInstallationResults/1/softwarePatches/p", "type": "Microsoft.Compute/virtualMachines/patchInstallationResults/softwarePatches",
                    "properties": {"installationState": "FAILED", "patchName": "P", "Kbid": "5031364", "version": "1.0", "classifications": ["Security", 2]}}"#,
            ),
            (
                Table::Resources,
                r#"{"id": "vm", "type": "microsoft.hybridcompute/machines", "tags": {"owner": "web"},
                    "properties": {"status": "Connected", "osName": "linux", "extended": {"instanceView": {"powerState": {"code": "PowerState/running"}}},
                    "storageProfile": {"osDisk": {"osType": "Linux"}}}}"#,
            ),
        ];
        for (table, row) in rows {
            let parsed = Row::parse_for_run(table, row.as_bytes()).unwrap().expect(row);
            let owned: Row = serde_json::from_str(row).unwrap();
            assert_eq!(format!("{parsed:?}"), format!("{owned:?}"));
        }
        let dropped = [
            (Table::MaintenanceResources, r#"{"id": "c", "type": "microsoft.maintenance/configurationassignments"}"#),
            (
                Table::PatchInstallationResources,
                r#"{"id": "p", "type": "x/patchinstallationresults/softwarepatches", "properties": {"installationState": "Installed"}}"#,
            ),
            (Table::PatchInstallationResources, r#"{"id": "p", "type": "x/patchinstallationresults/softwarepatches"}"#),
            (Table::PatchAssessmentResources, r#"{"id": "a", "type": "x/patchassessmentresults"}"#),
            (Table::Resources, r#"{"id": "m", "type": "microsoft.maintenance/maintenanceconfigurations"}"#),
        ];
        for (table, row) in dropped {
            assert!(Row::parse_for_run(table, row.as_bytes()).unwrap().is_none(), "{row}");
        }
    }
}
