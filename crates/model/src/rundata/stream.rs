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

/// Rows handed from the reading thread to the sink's thread at a time.
const BATCH: usize = 512;

/// Streams a snapshot from `reader` into `sink`. Errors name the table and row index.
///
/// Reading and parsing run on a thread of their own while the sink keeps what it needs on the
/// caller's: on two cores a large file loads in the time of the slower half, not of both.
pub fn read_into<S: RowSink>(reader: impl Read + Send, sink: &mut S) -> Result<()> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<(Table, S::Row)>>(8);
    std::thread::scope(|scope| {
        let producer = scope.spawn(move || {
            let mut batch = Vec::with_capacity(BATCH);
            let sent = parse_rows(reader, &mut |table, row| {
                batch.push((table, row));
                if batch.len() == BATCH {
                    // A closed channel means the sink's side is gone; stop reading.
                    tx.send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)))
                        .map_err(|_| "stopped".to_owned())?;
                }
                Ok(())
            });
            if !batch.is_empty() && sent.is_ok() {
                let _ = tx.send(batch);
            }
            sent
        });
        for batch in rx {
            for (table, row) in batch {
                sink.accept(table, row);
            }
        }
        producer.join().map_err(|_| "the snapshot reader stopped unexpectedly".to_owned())?
    })
}

type Emit<'a, T> = dyn FnMut(Table, T) -> Result<()> + 'a;

/// Scans the object and parses each row of a known table, handing it to `emit`.
fn parse_rows<T: serde::de::DeserializeOwned>(reader: impl Read, emit: &mut Emit<'_, T>) -> Result<()> {
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

fn rows<R: Read, T: serde::de::DeserializeOwned>(
    s: &mut Scanner<R>,
    table: Table,
    emit: &mut Emit<'_, T>,
    buf: &mut Vec<u8>,
) -> Result<()> {
    s.expect(b'[', &format!("an array of {} rows", table.name()))?;
    if s.skip_ws()? == Some(b']') {
        s.bump();
        return Ok(());
    }
    for index in 0usize.. {
        s.skip_ws()?;
        s.value(buf)?;
        let row = serde_json::from_slice::<T>(buf).map_err(|e| format!("{}[{index}]: {e}", table.name()))?;
        emit(table, row)?;
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
