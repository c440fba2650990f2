//! A loopback fake of Azure Resource Graph that evaluates the KQL patchwatch sends
//! (tests/support/graph_eval.py, duckdb-kql over DuckDB) instead of pattern-matching it as
//! [`crate::graph`] does: a query that ARG would answer differently gives a different summary
//! here too, and a query duckdb-kql cannot parse fails the test with ARG's 400.
//!
//! Same interpreter as [`crate::smtp`] (`PATCHWATCH_TEST_PYTHON`, else `.ci/venv`); without
//! duckdb-kql the fake exits 3 and the test fails with the install hint, never skips.

use std::{
    io::{BufRead, BufReader, Read},
    process::{Child, Command, Stdio},
    sync::{Arc, mpsc},
    time::Duration,
};

use patchwatch_azure::resource_graph::{ResourceGraphClient, ResourceGraphOptions};
use patchwatch_engine::source::RunDataSource;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::graph::FakeCredential;

/// The fake has this long to load its rows and print its port.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// The token [`FakeCredential`] hands out, the only one the fake accepts.
const TOKEN: &str = "fake-token";
/// A run load's wall-clock budget in tests (production: 20 s).
pub const TEST_LOAD_BUDGET: Duration = Duration::from_secs(120);
const INSTALL_HINT: &str = "install it into the test venv: .ci/venv/bin/pip install 'duckdb-kql[duckdb]==1.1.2' \
     (.ci/run does), or set PATCHWATCH_TEST_PYTHON to an interpreter that has it";

/// How the fake throttles and what time it is for `now()` and `ago()`.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// Queries per quota window; ARG's documented example is 15 per 5 seconds.
    pub quota: u32,
    pub quota_window: Duration,
    /// RFC 3339; `None` reads the real clock, as ARG does.
    pub now: Option<String>,
    /// Flags for the interpreter before the script (`-S`, no site-packages, proves the failure
    /// without duckdb-kql).
    pub python_flags: Vec<String>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self { quota: 15, quota_window: Duration::from_secs(5), now: None, python_flags: Vec::new() }
    }
}

/// One query request the fake received.
#[derive(Clone, Debug, Deserialize)]
pub struct RecordedQuery {
    pub query: Option<String>,
    pub options: Option<Value>,
    pub subscriptions: Option<Vec<String>>,
    #[serde(rename = "managementGroups")]
    pub management_groups: Option<Vec<String>>,
    pub status: u16,
}

pub struct EvalGraph {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl EvalGraph {
    /// Serves `snapshot_json` (patchwatch's snapshot format) with ARG's default quota.
    pub fn start(snapshot_json: &str) -> Self {
        Self::start_with(snapshot_json, &EvalOptions::default())
    }

    pub fn start_with(snapshot_json: &str, options: &EvalOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let rows = dir.path().join("rows.json");
        std::fs::write(&rows, snapshot_json).unwrap();
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let py = crate::smtp::python();
        let script = crate::root().join("tests/support/graph_eval.py");
        let mut cmd = Command::new(&py);
        cmd.args(&options.python_flags)
            .arg(&script)
            .arg(&rows)
            .env("GRAPH_EVAL_TOKEN", TOKEN)
            .env("GRAPH_EVAL_QUOTA", options.quota.to_string())
            .env("GRAPH_EVAL_QUOTA_WINDOW", options.quota_window.as_secs_f64().to_string())
            // Held open until drop: the fake exits when it closes (see graph_eval.py's main).
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr);
        if let Some(now) = &options.now {
            cmd.env("GRAPH_EVAL_NOW", now);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} with {}: {e}; {INSTALL_HINT}", script.display(), py.display()));
        // The first stdout line is the port, printed once the rows are loaded. Read on a thread so
        // a fake that hangs cannot hang the test.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(START_TIMEOUT).unwrap_or_default();
        let mut graph = Self { child, port: 0, dir };
        match line.trim().parse::<u16>() {
            Ok(port) => graph.port = port,
            Err(_) => {
                let status = graph.child.try_wait().ok().flatten();
                let err = graph.stderr();
                match status {
                    Some(s) if s.code() == Some(3) => {
                        panic!("the evaluating Resource Graph fake needs duckdb-kql: {err}")
                    }
                    Some(s) => panic!("the evaluating Resource Graph fake exited with {s} before listening:\n{err}"),
                    None => panic!(
                        "the evaluating Resource Graph fake did not print its port within {START_TIMEOUT:?} \
                         (got {line:?}):\n{err}\n(if duckdb_kql is missing: {INSTALL_HINT})"
                    ),
                }
            }
        }
        graph
    }

    /// What the fake wrote to stderr so far, for failure messages.
    pub fn stderr(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.path().join("stderr.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// `http://127.0.0.1:<port>`: the endpoint a [`ResourceGraphClient`] takes.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A client of the fake with the fake credential.
    pub fn client(&self, options: ResourceGraphOptions) -> ResourceGraphClient {
        ResourceGraphClient::new(self.url().parse().unwrap(), Arc::new(FakeCredential), options)
    }

    /// A run-data source querying the fake, allowed to wait `max_throttle_wait` on throttling.
    /// A source whose loads may take up to [`TEST_LOAD_BUDGET`]: the fake evaluates each query
    /// on duckdb, which on a busy 2-core machine can take seconds; a test about the budget
    /// itself sets its own.
    pub fn source(&self, max_throttle_wait: Duration) -> RunDataSource {
        let options = ResourceGraphOptions { max_throttle_wait, load_budget: TEST_LOAD_BUDGET, ..Default::default() };
        RunDataSource::ResourceGraph(Arc::new(self.client(options)))
    }

    /// Every query request received so far, in order.
    pub async fn queries(&self) -> Vec<RecordedQuery> {
        let response = crate::http().get(format!("{}/_fake/queries", self.url())).send().await.unwrap();
        assert!(response.status().is_success(), "GET /_fake/queries: {}", response.status());
        response.json().await.unwrap()
    }

    /// After `after` more query requests succeed, the next `times` answer `status` (with
    /// `Retry-After: retry_after` seconds, if given).
    pub async fn fail(&self, status: u16, times: u32, after: u32, retry_after: Option<u32>) {
        let body = json!({ "status": status, "times": times, "after": after, "retry_after": retry_after });
        let response = crate::http().post(format!("{}/_fake/fail", self.url())).json(&body).send().await.unwrap();
        assert!(response.status().is_success(), "POST /_fake/fail: {}", response.status());
    }

    /// Forgets recorded queries, injected failures, quota use and cached results.
    pub async fn reset(&self) {
        let response = crate::http().post(format!("{}/_fake/reset", self.url())).send().await.unwrap();
        assert!(response.status().is_success(), "POST /_fake/reset: {}", response.status());
    }
}

impl Drop for EvalGraph {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
