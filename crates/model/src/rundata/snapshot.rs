//! Snapshot files: one JSON object whose keys are ARG table names and whose values are arrays of
//! unprojected rows. Parsed as a stream of rows into a [`RowSink`] (the run's [`RunCollector`], or
//! the fleet's collector), so the file is never held as a tree of `Value`s.

use std::{fmt, io::Read};

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::{
    RunData, RunQuery,
    digest::{RunFilter, RunRow},
    listed::HashSet64,
    rows::{Row, RunCollector, Table},
};

/// Whatever keeps what it needs of a stream of ARG rows. Live queries and snapshot files feed
/// the same sink, so both go through one parser.
pub trait RowSink {
    /// The row shape this sink keeps: a row as serde reads it (unknown columns skipped), or
    /// something made of it. `Send`: a file is parsed on other threads than the sink's.
    type Row: Send;
    /// What the parser threads know of this sink (the run whose rows are kept).
    type Context: Sync;
    fn context(&self) -> Self::Context;
    fn accept(&mut self, table: Table, row: Self::Row);

    /// Parses one streamed row, or `None` for a row this sink drops whatever else the stream
    /// holds (checked in full all the same: a broken row is still reported). Runs on the
    /// stream's parser threads.
    fn parse(context: &Self::Context, table: Table, bytes: &[u8]) -> serde_json::Result<Option<Self::Row>>;

    /// Counts rows that `parse` dropped.
    fn dropped(&mut self, rows: u64) {
        let _ = rows;
    }

    /// A table's rows begin (a stream's tables come one after another); an error stops the stream.
    fn begin_table(&mut self, table: Table) -> Result<(), String> {
        let _ = table;
        Ok(())
    }

    /// Streams a snapshot into this sink. A sink may wrap itself to drop rows on what earlier
    /// tables showed (the run's sink does).
    fn read_stream(&mut self, reader: impl Read + Send) -> Result<(), String>
    where
        Self: Sized,
    {
        super::stream::drive(reader, self)
    }
}

impl<T: RowSink> RowSink for &mut T {
    type Row = T::Row;
    type Context = T::Context;
    fn context(&self) -> T::Context {
        (**self).context()
    }
    fn accept(&mut self, table: Table, row: T::Row) {
        (**self).accept(table, row);
    }
    fn parse(context: &T::Context, table: Table, bytes: &[u8]) -> serde_json::Result<Option<T::Row>> {
        T::parse(context, table, bytes)
    }
    fn dropped(&mut self, rows: u64) {
        (**self).dropped(rows);
    }
    fn begin_table(&mut self, table: Table) -> Result<(), String> {
        (**self).begin_table(table)
    }
    fn read_stream(&mut self, reader: impl Read + Send) -> Result<(), String> {
        (**self).read_stream(reader)
    }
}

impl RowSink for RunCollector {
    type Row = Row;
    type Context = ();
    fn context(&self) {}
    fn accept(&mut self, table: Table, row: Row) {
        RunCollector::accept(self, table, row);
    }
    fn parse(_: &(), table: Table, bytes: &[u8]) -> serde_json::Result<Option<Row>> {
        Row::parse_for_run(table, bytes)
    }
    fn dropped(&mut self, rows: u64) {
        self.rows_seen += rows;
    }
    fn read_stream(&mut self, reader: impl Read + Send) -> Result<(), String> {
        super::stream::drive(reader, &mut RunSink::new(self))
    }
}

/// The run's collector as a stream's sink: once the tables that name the run's machines
/// (`maintenanceresources`, `patchinstallationresources`) are complete, `resources` rows of
/// other machines are dropped before the collector keeps their facts. A 5-machine run in a
/// 1,000,000-machine fleet then keeps 5 machines' facts, not a million. Tables in another
/// order only mean nothing is dropped.
struct RunSink<'a> {
    collector: &'a mut RunCollector,
    /// The table streaming now, and the tables complete before it.
    current: Option<Table>,
    complete: Vec<Table>,
    /// Hashes of the run's machines, listed or reporting (a collision only keeps a row).
    machines: Option<HashSet64>,
    /// Whether a machine row was dropped: a run table after that would have needed it.
    dropped_machines: bool,
}

impl<'a> RunSink<'a> {
    fn new(collector: &'a mut RunCollector) -> Self {
        Self { collector, current: None, complete: Vec::new(), machines: None, dropped_machines: false }
    }

    fn run_machines(&mut self) -> Option<&HashSet64> {
        let ready =
            [Table::MaintenanceResources, Table::PatchInstallationResources].iter().all(|t| self.complete.contains(t));
        if self.machines.is_none() && ready {
            let c = &*self.collector;
            self.machines = Some(c.machine_hashes());
        }
        self.machines.as_ref()
    }
}

impl RowSink for RunSink<'_> {
    /// Digested on the parser threads, where rows the run does not keep are dropped.
    type Row = RunRow;
    type Context = RunFilter;
    fn context(&self) -> RunFilter {
        self.collector.filter().clone()
    }
    fn accept(&mut self, table: Table, row: RunRow) {
        if let RunRow::Machine(m) = &row
            && let Some(machines) = self.run_machines()
            && !machines.contains(&m.hash)
        {
            self.dropped_machines = true;
            self.collector.rows_seen += 1;
            return;
        }
        self.collector.accept_digested(table, row);
    }
    fn parse(filter: &RunFilter, table: Table, bytes: &[u8]) -> serde_json::Result<Option<RunRow>> {
        Ok(Row::parse_for_run(table, bytes)?.and_then(|row| RunRow::digest(table, row, filter)))
    }
    fn dropped(&mut self, rows: u64) {
        self.collector.rows_seen += rows;
    }
    fn begin_table(&mut self, table: Table) -> Result<(), String> {
        if let Some(previous) = self.current.replace(table)
            && !self.complete.contains(&previous)
        {
            self.complete.push(previous);
        }
        if matches!(table, Table::MaintenanceResources | Table::PatchInstallationResources) {
            if self.dropped_machines {
                return Err(format!("{}: listed a second time, after `resources`; list each table once", table.name()));
            }
            self.complete.retain(|t| *t != table);
            self.machines = None;
        }
        Ok(())
    }
}

/// Parses snapshot bytes for one run. The error names the table and row index.
pub fn parse(bytes: &[u8], query: &RunQuery) -> Result<RunData, String> {
    let mut collector = RunCollector::for_query(query);
    parse_into(bytes, &mut collector)?;
    Ok(collector.finish())
}

/// Streams snapshot bytes into `sink`, each row through [`RowSink::parse`] as a streamed file's
/// rows go (so both read a row alike). The error names the table and row index.
pub fn parse_into<S: RowSink>(bytes: &[u8], sink: &mut S) -> Result<(), String> {
    run(serde_json::Deserializer::from_slice(bytes), sink)
}

/// Streams a snapshot from a reader (a file of hundreds of MB need not be read into memory
/// first). The error names the table and row index.
pub fn read_into<S: RowSink>(reader: impl Read + Send, sink: &mut S) -> Result<(), String> {
    sink.read_stream(reader)
}

fn run<'de, R: serde_json::de::Read<'de>, S: RowSink>(
    mut de: serde_json::Deserializer<R>,
    sink: &mut S,
) -> Result<(), String> {
    let mut failure = None;
    let context = sink.context();
    let seed = Tables { sink, context: &context, failure: &mut failure };
    match seed.deserialize(&mut de).and_then(|()| de.end()) {
        Ok(()) => Ok(()),
        Err(e) => Err(failure.unwrap_or_else(|| format!("invalid JSON: {e}"))),
    }
}

struct Tables<'a, S: RowSink> {
    sink: &'a mut S,
    context: &'a S::Context,
    failure: &'a mut Option<String>,
}

impl<'de, S: RowSink> DeserializeSeed<'de> for Tables<'_, S> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, S: RowSink> Visitor<'de> for Tables<'_, S> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of ARG table names to arrays of rows")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(name) = map.next_key::<String>()? {
            match Table::from_name(&name) {
                Some(table) => {
                    let rows =
                        Rows { table, sink: &mut *self.sink, context: self.context, failure: &mut *self.failure };
                    map.next_value_seed(rows)?
                }
                // Unknown tables are tolerated so that exports with extra tables still load.
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

struct Rows<'a, S: RowSink> {
    table: Table,
    sink: &'a mut S,
    context: &'a S::Context,
    failure: &'a mut Option<String>,
}

impl<'de, S: RowSink> DeserializeSeed<'de> for Rows<'_, S> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, S: RowSink> Visitor<'de> for Rows<'_, S> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an array of {} rows", self.table.name())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0usize;
        loop {
            let row = match seq.next_element::<&'de RawValue>() {
                Ok(Some(row)) => row,
                Ok(None) => return Ok(()),
                Err(e) => {
                    *self.failure = Some(format!("{}[{index}]: {e}", self.table.name()));
                    return Err(e);
                }
            };
            match S::parse(self.context, self.table, row.get().as_bytes()) {
                Ok(Some(row)) => self.sink.accept(self.table, row),
                Ok(None) => self.sink.dropped(1),
                Err(e) => {
                    let failure = format!("{}[{index}]: {e}", self.table.name());
                    *self.failure = Some(failure.clone());
                    return Err(serde::de::Error::custom(failure));
                }
            }
            index += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q() -> RunQuery {
        RunQuery {
            correlation_id: "/x/providers/microsoft.maintenance/applyupdates/1".into(),
            subscription_ids: vec![],
            include_results: true,
            since: None,
            watch: Vec::new(),
        }
    }

    #[test]
    fn snapshot_errors_name_table_and_row() {
        let err = parse(br#"{"maintenanceresources": [{"id": "a", "type": "t"}, {"type": "t"}]}"#, &q()).unwrap_err();
        assert!(err.starts_with("maintenanceresources[1]: missing field `id`"), "{err}");
        let err = parse(br#"{"resources": {}}"#, &q()).unwrap_err();
        assert!(err.contains("resources"), "{err}");
        assert!(parse(b"[1]", &q()).unwrap_err().contains("invalid JSON"));
        assert!(parse(b"{} trailing", &q()).is_err());
    }

    #[test]
    fn snapshot_tolerates_unknown_tables() {
        let data = parse(br#"{"somethingelse": [1, 2], "resources": []}"#, &q()).unwrap();
        assert!(data.expected.is_empty());
    }
}
