//! The workspace's binaries as real processes: found beside the test executable, started with a
//! clean environment, stdout and stderr captured line by line, stopped (SIGTERM, then SIGKILL)
//! and killed on drop.

use std::{
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use tokio::{
    io::{AsyncBufReadExt, AsyncRead, BufReader},
    process::{Child, Command},
    task::JoinHandle,
};

/// `target/<profile>/<name>`: the test runs from `target/<profile>/deps/<test>-<hash>`.
///
/// Fails (never skips) when the binary is missing, or older than a source it is built from
/// (the library crates under `crates/` it links and its own crate's, all handlers' for
/// `patchwatch`): it
/// would test old code. `cargo test -p integration-tests` builds only libraries, so build the
/// binaries first (`cargo build --bins`, or `cargo test --workspace`, which builds them).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir =
        exe.parent().and_then(Path::parent).unwrap_or_else(|| panic!("unexpected test path {}", exe.display()));
    let path = profile_dir.join(name);
    let hint = "build the binaries first: cargo build -p maintenance-events -p alert-webhook -p itsm-webhook -p patchwatch \
                (cargo test --workspace builds them too)";
    let built = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("binary {name} not found at {} ({e}); {hint}", path.display()));
    let handlers = crate::root().join("handlers");
    let crates = crate::root().join("crates");
    // Every handler links these; only the CLI links the simulation crate.
    let mut sources: Vec<PathBuf> = ["model", "schedule", "fleet", "render", "azure", "state", "engine", "host"]
        .iter()
        .map(|c| crates.join(c).join("src"))
        .collect();
    sources.push(crates.join("render/templates"));
    match name {
        "patchwatch" => {
            sources.push(crates.join("simulation/src"));
            sources.extend(
                ["maintenance-events", "alert-webhook", "itsm-webhook", "patchwatch"]
                    .map(|c| handlers.join(c).join("src")),
            );
        }
        _ => sources.push(handlers.join(name).join("src")),
    }
    if let Some((newest, source)) = newest_file(sources) {
        assert!(
            built >= newest,
            "binary {} is older than {}: it would test old code; {hint}",
            path.display(),
            source.display()
        );
    }
    path
}

/// The most recently modified file under `dirs`.
fn newest_file(mut stack: Vec<PathBuf>) -> Option<(SystemTime, PathBuf)> {
    let mut newest: Option<(SystemTime, PathBuf)> = None;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(t) = entry.metadata().and_then(|m| m.modified())
                && newest.as_ref().is_none_or(|(n, _)| t > *n)
            {
                newest = Some((t, p));
            }
        }
    }
    newest
}

/// Lines a process wrote, shared with the reader task.
pub type Lines = Arc<Mutex<Vec<String>>>;

/// A running binary with its output captured.
pub struct Proc {
    pub name: String,
    child: Child,
    pub stdout: Lines,
    pub stderr: Lines,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

fn read_lines(stream: impl AsyncRead + Unpin + Send + 'static, into: Lines) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            into.lock().unwrap().push(line);
        }
    })
}

impl Proc {
    /// Starts `binary` with exactly `env` (nothing inherited) in `dir`.
    pub fn start(name: &str, binary: &Path, args: &[&str], env: &[(String, String)], dir: &Path) -> Self {
        let mut child = Command::new(binary)
            .args(args)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({}): {e}", binary.display()));
        let (stdout, stderr) = (Lines::default(), Lines::default());
        let readers = vec![
            read_lines(child.stdout.take().unwrap(), stdout.clone()),
            read_lines(child.stderr.take().unwrap(), stderr.clone()),
        ];
        Self { name: name.to_owned(), child, stdout, stderr, readers, status: None }
    }

    /// Waits until `GET url` answers, failing if the process exits or `within` passes.
    pub async fn wait_http(&mut self, url: &str, within: Duration) {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
        let deadline = Instant::now() + within;
        while client.get(url).send().await.is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                tokio::time::sleep(Duration::from_millis(200)).await;
                panic!("{} exited with {status} before serving {url}:\n{}", self.name, self.tail(40));
            }
            assert!(
                Instant::now() < deadline,
                "{} did not serve {url} within {within:?}:\n{}",
                self.name,
                self.tail(40)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the process to exit by itself (killing it after `within`), then for its output.
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let status = match tokio::time::timeout(within, self.child.wait()).await {
            Ok(s) => s.unwrap(),
            Err(_) => {
                let _ = self.child.kill().await;
                panic!("{} did not finish within {within:?}:\n{}", self.name, self.tail(40));
            }
        };
        self.drain().await;
        self.status = Some(status);
        status
    }

    /// Asks the process to stop (SIGTERM, as the Functions host does), kills it after `grace`,
    /// and waits for the rest of its output.
    pub async fn stop(&mut self, grace: Duration) {
        if self.status.is_some() {
            return;
        }
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
        }
        let status = match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(s) => s.ok(),
            Err(_) => {
                let _ = self.child.kill().await;
                self.child.wait().await.ok()
            }
        };
        self.drain().await;
        self.status = status;
    }

    async fn drain(&mut self) {
        for r in self.readers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), r).await;
        }
    }

    /// The last `n` lines of stderr, for failure messages.
    pub fn tail(&self, n: usize) -> String {
        let lines = self.stderr.lock().unwrap();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}
