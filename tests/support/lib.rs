//! Test support: a real SMTP server (aiosmtpd), pipelines over temp outboxes, a fake Resource
//! Graph and credential, and routers served over real TCP on 127.0.0.1.
// Test and bench code: an unwrap that fails is the test failing, with its message.
#![allow(clippy::unwrap_used)]

pub mod alert_bodies;
pub mod arm;
pub mod azurite;
pub mod browser;
pub mod entra;
pub mod graph;
pub mod graph_eval;
pub mod itsm;
pub mod kql;
pub mod lambda;
pub mod leaks;
pub mod managed_identity;
pub mod process;
pub mod smtp;
pub mod smtp_auth;
pub mod world;

use std::{collections::HashMap, net::SocketAddr, path::Path, sync::Arc, time::Duration};

use patchwatch_engine::config::Config;
use patchwatch_engine::config::Defaults;
use patchwatch_engine::pipeline::Pipeline;
use time::OffsetDateTime;

/// The workspace root (for `examples/`).
pub fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

pub fn example(path: &str) -> String {
    std::fs::read_to_string(root().join("examples").join(path)).unwrap()
}

/// A pipeline from environment-style settings (no process environment is touched).
///
/// Without `PATCHWATCH_STATE`, each pipeline gets a ledger of its own in a fresh directory.
pub fn pipeline(vars: &[(&str, &str)]) -> Pipeline {
    let mut map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    map.entry("PATCHWATCH_STATE".to_owned())
        .or_insert_with(|| format!("file://{}", tempfile::tempdir().unwrap().keep().display()));
    let config = Config::from_lookup(|k| map.get(k).cloned(), &Defaults::default()).unwrap();
    Pipeline::from_config(&config).unwrap()
}

/// Freezes the pipeline's clock.
pub fn at(mut p: Pipeline, now: OffsetDateTime) -> Pipeline {
    p.set_clock(Arc::new(move || now));
    p
}

/// Serves the maintenance-events router on a fresh loopback port.
pub async fn spawn_handler(pipeline: Pipeline) -> SocketAddr {
    let router = maintenance_events::router(maintenance_events::AppState::new(pipeline, None));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// Files in `dir` with extension `ext`, sorted.
pub fn files(dir: &Path, ext: &str) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = match std::fs::read_dir(dir) {
        Ok(rd) => {
            rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == ext)).collect()
        }
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

/// Every file in `dir`, sorted.
pub fn files_any(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

/// A client with a short timeout for loopback calls.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}
