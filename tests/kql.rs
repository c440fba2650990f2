//! Every KQL query patchwatch sends to Azure Resource Graph, checked by Microsoft's own KQL parser
//! (`@kusto/language-service-next`, run by tests/kql/check.mjs under Node): syntax, semantics
//! against Resource Graph's tables (unknown tables, columns and functions), and Resource Graph's
//! narrower set of operators. The parser is installed by .ci/run (`(cd tests/kql && npm ci)`);
//! without Node or the package these tests fail, never skip.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use patchwatch_azure::resource_graph::queries_for_check;
use serde::Deserialize;

/// Loading the parser takes about a second; a hung Node must not hang the test run.
const TIMEOUT: Duration = Duration::from_secs(60);
const INSTALL_HINT: &str = "run .ci/run's install step: (cd tests/kql && npm ci)";

#[derive(Debug, Deserialize)]
struct Checked {
    name: String,
    errors: Vec<KqlError>,
}

#[derive(Debug, Deserialize)]
struct KqlError {
    message: String,
    start: usize,
    length: usize,
}

struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("kql").join("check.mjs")
}

/// Runs check.mjs on `input` (raw stdin), bounded by [`TIMEOUT`]. Panics, with the install hint,
/// when Node is missing or the script cannot load the parser (its exit 3).
fn run_checker(input: &[u8]) -> Run {
    let mut child = Command::new("node")
        .arg(script())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `node` from PATH ({e}): install Node.js 20 and {INSTALL_HINT}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let mut out = child.stdout.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).map(|_| s)
    });
    let mut err = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).map(|_| s)
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tests/kql/check.mjs did not finish within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // A checker that exits early (bad input) may close stdin first: a broken pipe is no error.
    let _ = writer.join().unwrap();
    let run = Run { status, stdout: stdout.join().unwrap().unwrap(), stderr: stderr.join().unwrap().unwrap() };
    if run.status.code() == Some(3) {
        // check.mjs says what is wrong (missing, or not the pinned version) and how to install it.
        panic!("Microsoft's KQL parser is not usable: {}", run.stderr.trim());
    }
    run
}

/// Checks `queries`; returns the exit code and each query's errors, in input order.
fn check(queries: &[(&str, String)]) -> (Option<i32>, Vec<Checked>) {
    let input: Vec<serde_json::Value> =
        queries.iter().map(|(name, query)| serde_json::json!({ "name": name, "query": query })).collect();
    let run = run_checker(&serde_json::to_vec(&input).unwrap());
    let checked: Vec<Checked> = serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
        panic!(
            "check.mjs printed no result ({e}), exit {:?}\nstdout: {}\nstderr: {}",
            run.status, run.stdout, run.stderr
        )
    });
    assert_eq!(checked.len(), queries.len(), "one result per query");
    for (c, (name, _)) in checked.iter().zip(queries) {
        assert_eq!(c.name, *name, "results in input order");
    }
    (run.status.code(), checked)
}

/// Each error with the query around it, for a failure message.
fn describe(checked: &[Checked], queries: &[(&str, String)]) -> String {
    let mut out = String::new();
    for (c, (_, query)) in checked.iter().zip(queries) {
        for e in &c.errors {
            let end = (e.start + e.length).min(query.len());
            let at = query.get(e.start.min(end)..end).unwrap_or("");
            out.push_str(&format!("\n{}: {} (at {}, {:?})\n{query}\n", c.name, e.message, e.start, at));
        }
    }
    out
}

/// Every query is checked once: names are unique.
fn checked_count(queries: &[(&str, String)]) -> usize {
    queries.iter().map(|(n, _)| *n).collect::<std::collections::BTreeSet<_>>().len()
}

#[test]
fn every_resource_graph_query_passes_microsofts_kql_parser() {
    let queries = queries_for_check();
    // Run loads and fleet loads (the compliance digest) both.
    let names: Vec<&str> = queries.iter().map(|(n, _)| *n).collect();
    assert!(names.contains(&"run results") && names.contains(&"fleet assessments"), "{names:?}");
    assert_eq!(checked_count(&queries), queries.len());
    let (code, checked) = check(&queries);
    let errors = describe(&checked, &queries);
    assert!(errors.is_empty(), "Microsoft's KQL parser rejects queries patchwatch sends:{errors}");
    assert_eq!(code, Some(0));
}

/// The checker can fail: a syntax error, an unknown column, an unknown function and an unknown
/// table are each reported, with a clean query beside them reporting nothing.
#[test]
fn checker_reports_syntax_errors_and_unknown_names() {
    let queries: Vec<(&str, String)> = vec![
        (
            "clean",
            "resources | where type =~ 'microsoft.compute/virtualmachines' \
             | extend os = tostring(properties.storageProfile.osDisk.osType) | project id, kind, location, tags, os"
                .into(),
        ),
        (
            "unbalanced parenthesis",
            "resources | where (type =~ 'microsoft.compute/virtualmachines' | project id".into(),
        ),
        ("misspelt column", "resources | where subscriptionID == '00000000-0000-0000-0000-000000000000'".into()),
        ("misspelt function", "resources | extend machineId = tolowr(id)".into()),
        ("unknown table", "patchresources | take 1".into()),
    ];
    let (code, checked) = check(&queries);
    assert_eq!(code, Some(1), "{checked:?}");
    assert!(checked[0].errors.is_empty(), "false positive:{}", describe(&checked[..1], &queries[..1]));
    for (c, needle) in checked[1..].iter().zip(["Expected: )", "subscriptionID", "tolowr", "patchresources"]) {
        assert!(
            c.errors.iter().any(|e| e.message.contains(needle)),
            "{}: expected an error naming {needle:?}, got {:?}",
            c.name,
            c.errors
        );
    }
    let column = &checked[2].errors[0];
    assert_eq!(&queries[2].1[column.start..column.start + column.length], "subscriptionID");
}

/// Valid KQL that Resource Graph refuses is reported too: an operator outside its supported set,
/// an unsupported join flavour, and a join strategy hint.
#[test]
fn checker_reports_kql_outside_resource_graphs_subset() {
    let queries: Vec<(&str, String)> = vec![
        ("make-series", "resources | make-series n = count() on todatetime(properties.timeCreated) step 1d".into()),
        ("anti join", "resources | join kind=leftanti (resources | project id) on id".into()),
        ("broadcast join", "resources | join hint.strategy=broadcast (resources | project id) on id".into()),
    ];
    let (code, checked) = check(&queries);
    assert_eq!(code, Some(1), "{checked:?}");
    for (c, needle) in checked.iter().zip(["'make-series'", "kind=leftanti", "hint.strategy"]) {
        assert!(
            c.errors.iter().any(|e| e.message.starts_with("Resource Graph:") && e.message.contains(needle)),
            "{}: expected a Resource Graph error naming {needle}, got {:?}",
            c.name,
            c.errors
        );
    }
}

#[test]
fn checker_refuses_bad_input() {
    for input in [&b"not json"[..], b"{}", br#"[{"name": "no query"}]"#] {
        let run = run_checker(input);
        assert_eq!(run.status.code(), Some(2), "{}: {}", String::from_utf8_lossy(input), run.stderr);
    }
}
