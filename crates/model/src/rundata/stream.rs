//! A snapshot file read as a stream: the top-level object and its arrays are scanned here, and
//! each row's bytes go to serde_json as one slice. Memory stays at one row (plus the read
//! buffer) whatever the file's size, and each row parses at slice speed, not reader speed.

use std::io::{BufRead, BufReader, Read};

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

    /// Copies one JSON value's bytes into `out` (cleared first). Structure only: serde checks
    /// the rest when it parses the slice.
    fn value(&mut self, out: &mut Vec<u8>) -> Result<()> {
        out.clear();
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
                    match memchr::memchr2(b'"', b'\\', &buf[used..]) {
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
                return if out.is_empty() {
                    Err(format!("invalid JSON: expected a value at byte {}", self.offset))
                } else {
                    Ok(())
                };
            }
        }
    }
}

/// Rows handed from one stage to the next at a time.
const BATCH: usize = 512;

/// Raw rows found by the scanner: their table, index in it, and bytes in `bytes`.
struct RawBatch {
    rows: Vec<(Table, usize, std::ops::Range<usize>)>,
    bytes: Vec<u8>,
}

impl RawBatch {
    fn new() -> Self {
        Self { rows: Vec::with_capacity(BATCH), bytes: Vec::with_capacity(BATCH * 1024) }
    }
}

/// Streams a snapshot from `reader` into `sink`. Errors name the table and row index.
///
/// Three stages, each on its own thread: the scanner finds each row's bytes, the parser turns
/// them into the sink's rows, and the caller's thread keeps what it needs. On two cores a
/// large file loads in about half the time one thread needs, with a few batches in flight.
pub fn read_into<S: RowSink>(reader: impl Read + Send, sink: &mut S) -> Result<()> {
    let (raw_tx, raw_rx) = std::sync::mpsc::sync_channel::<RawBatch>(4);
    let (row_tx, row_rx) = std::sync::mpsc::sync_channel::<Vec<(Table, S::Row)>>(4);
    std::thread::scope(|scope| {
        let scanner = scope.spawn(move || {
            let mut batch = RawBatch::new();
            let scanned = scan_rows(reader, &mut |table, index, row| {
                let at = batch.bytes.len();
                batch.bytes.extend_from_slice(row);
                batch.rows.push((table, index, at..batch.bytes.len()));
                if batch.rows.len() == BATCH {
                    // A closed channel means a later stage stopped (and says why); stop reading.
                    raw_tx.send(std::mem::replace(&mut batch, RawBatch::new())).map_err(|_| String::new())?;
                }
                Ok(())
            });
            if scanned.is_ok() && !batch.rows.is_empty() {
                let _ = raw_tx.send(batch);
            }
            scanned
        });
        let parser = scope.spawn(move || -> Result<()> {
            for raw in raw_rx {
                let mut rows = Vec::with_capacity(raw.rows.len());
                for (table, index, range) in raw.rows {
                    let bytes = raw.bytes.get(range).unwrap_or_default();
                    let row = serde_json::from_slice::<S::Row>(bytes)
                        .map_err(|e| format!("{}[{index}]: {e}", table.name()))?;
                    rows.push((table, row));
                }
                if row_tx.send(rows).is_err() {
                    break;
                }
            }
            Ok(())
        });
        for batch in row_rx {
            for (table, row) in batch {
                sink.accept(table, row);
            }
        }
        let stopped = |_| "the snapshot reader stopped unexpectedly".to_owned();
        // A row the parser refused comes before anything the scanner found later in the file.
        parser.join().map_err(stopped)??;
        scanner.join().map_err(stopped)?
    })
}

/// Receives each row of a known table: its table, its index there, and its bytes.
type Emit<'a> = dyn FnMut(Table, usize, &[u8]) -> Result<()> + 'a;

/// Scans the object and hands each row of a known table to `emit`.
fn scan_rows(reader: impl Read, emit: &mut Emit<'_>) -> Result<()> {
    let mut s = Scanner { input: BufReader::with_capacity(1 << 20, reader), offset: 0 };
    let mut buf = Vec::with_capacity(64 * 1024);
    s.expect(b'{', "an object of ARG table names to arrays of rows")?;
    if s.skip_ws()? == Some(b'}') {
        s.bump();
        return end(&mut s);
    }
    loop {
        s.value(&mut buf)?;
        let name: String = serde_json::from_slice(&buf).map_err(|e| format!("invalid JSON: table name: {e}"))?;
        s.expect(b':', "`:` after a table name")?;
        s.skip_ws()?;
        match Table::from_name(&name) {
            Some(table) => rows(&mut s, table, emit, &mut buf)?,
            // Unknown tables are tolerated so that exports with extra tables still load.
            None => {
                s.value(&mut buf)?;
                serde_json::from_slice::<IgnoredAny>(&buf).map_err(|e| format!("invalid JSON: {name}: {e}"))?;
            }
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

fn rows<R: Read>(s: &mut Scanner<R>, table: Table, emit: &mut Emit<'_>, buf: &mut Vec<u8>) -> Result<()> {
    s.expect(b'[', &format!("an array of {} rows", table.name()))?;
    if s.skip_ws()? == Some(b']') {
        s.bump();
        return Ok(());
    }
    for index in 0usize.. {
        s.skip_ws()?;
        s.value(buf)?;
        emit(table, index, buf)?;
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

/// Only whitespace may follow the object.
fn end<R: Read>(s: &mut Scanner<R>) -> Result<()> {
    match s.skip_ws()? {
        None => Ok(()),
        Some(_) => Err(format!("invalid JSON: trailing characters at byte {}", s.offset)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rundata::{RunQuery, rows::RunCollector, snapshot};

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
    }

    #[test]
    fn the_stream_reads_what_the_slice_parser_reads() {
        let text = include_str!("../../../../examples/snapshot.json");
        let mut streamed = RunCollector::new(&q().correlation_id);
        read_into(text.as_bytes(), &mut streamed).unwrap();
        let mut sliced = RunCollector::new(&q().correlation_id);
        snapshot::parse_into(text.as_bytes(), &mut sliced).unwrap();
        assert_eq!(streamed.rows_seen, sliced.rows_seen);
        assert!(streamed.rows_seen > 5_000, "{}", streamed.rows_seen);
    }
}
