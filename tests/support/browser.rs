//! A real browser for tests: Debian's headless Chromium driven by playwright-core through
//! tests/browser/click.mjs (installed by .ci/run). Missing pieces fail the test, never skip it.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);
const INSTALL_HINT: &str =
    "install the browser as .ci/run does: apt-get install -y chromium && (cd tests/browser && npm ci)";

/// What the browser ended on.
#[derive(Debug, Deserialize)]
pub struct Seen {
    pub status: u16,
    pub title: String,
    pub text: String,
    pub clicked: bool,
}

fn browser_dir() -> PathBuf {
    std::env::var_os("PATCHWATCH_TEST_BROWSER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("browser"))
}

/// Opens `url` in headless Chromium; with `click`, presses the form's button (after `set`ting
/// form fields). Panics with the install hint when the browser or its driver is missing.
pub async fn browse(url: &str, click: bool, set: &[(&str, &str)]) -> Seen {
    let dir = browser_dir();
    let chromium = std::env::var("PATCHWATCH_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(Path::new(&chromium).exists(), "no Chromium at {chromium}: {INSTALL_HINT}");
    assert!(
        dir.join("node_modules/playwright-core/package.json").exists(),
        "playwright-core is not installed in {}: {INSTALL_HINT}",
        dir.display()
    );
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(dir.join("click.mjs")).arg(url).env("PATCHWATCH_TEST_CHROMIUM", &chromium).kill_on_drop(true);
    if click {
        cmd.arg("--click");
    }
    for (name, value) in set {
        cmd.arg("--set").arg(format!("{name}={value}"));
    }
    let out = tokio::time::timeout(BROWSER_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("the browser did not finish within {BROWSER_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("cannot start `node` ({e}): install Node.js 20 and {INSTALL_HINT}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "click.mjs failed ({}): {stderr}\n{INSTALL_HINT}", out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("click.mjs printed no page ({e}): {stdout}\n{stderr}"))
}
