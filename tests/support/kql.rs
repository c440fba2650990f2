//! Microsoft's KQL parser and semantic analyser (`@kusto/language-service-next`, run by
//! tests/kql/check.mjs under Node) as a test helper: syntax, semantics against Resource Graph's
//! tables (unknown tables, columns and functions), and Resource Graph's narrower set of
//! operators. The parser is installed by .ci/run (`(cd tests/kql && npm ci)`); without Node or
//! the package the checks fail, never skip.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// Loading the parser takes about a second; a hung Node must not hang the test run.
const TIMEOUT: Duration = Duration::from_secs(60);
const INSTALL_HINT: &str = "run .ci/run's install step: (cd tests/kql && npm ci)";

/// One query's result: its name and every error the checker found.
#[derive(Debug, Deserialize)]
pub struct Checked {
    pub name: String,
    pub errors: Vec<KqlError>,
}

#[derive(Debug, Deserialize)]
pub struct KqlError {
    pub message: String,
    /// Character offset of the error in the query.
    pub start: usize,
    pub length: usize,
}

/// What one run of the checker did.
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

fn script() -> PathBuf {
    crate::root().join("tests/kql/check.mjs")
}

/// Runs check.mjs on `input` (raw stdin), bounded by [`TIMEOUT`]. Panics, with the install hint,
/// when Node is missing or the script cannot load the parser (its exit 3).
pub fn run_checker(input: &[u8]) -> Run {
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

/// Checks `queries` (name, text); returns the exit code and each query's errors, in input order.
pub fn check<N: AsRef<str>>(queries: &[(N, String)]) -> (Option<i32>, Vec<Checked>) {
    let input: Vec<serde_json::Value> =
        queries.iter().map(|(name, query)| serde_json::json!({ "name": name.as_ref(), "query": query })).collect();
    let run = run_checker(&serde_json::to_vec(&input).unwrap());
    let checked: Vec<Checked> = serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
        panic!(
            "check.mjs printed no result ({e}), exit {:?}\nstdout: {}\nstderr: {}",
            run.status, run.stdout, run.stderr
        )
    });
    assert_eq!(checked.len(), queries.len(), "one result per query");
    for (c, (name, _)) in checked.iter().zip(queries) {
        assert_eq!(c.name, name.as_ref(), "results in input order");
    }
    (run.status.code(), checked)
}

/// Each error with the query around it, for a failure message.
pub fn describe<N>(checked: &[Checked], queries: &[(N, String)]) -> String {
    let mut out = String::new();
    for (c, (_, query)) in checked.iter().zip(queries) {
        for e in &c.errors {
            // The checker counts characters (UTF-16 units, for non-ASCII); show what is there.
            let at: String = query.chars().skip(e.start).take(e.length).collect();
            out.push_str(&format!("\n{}: {} (at {}, {:?})\n{query}\n", c.name, e.message, e.start, at));
        }
    }
    out
}
