//! `patchwatch package` writes one zip per Function App with the layout the Functions host
//! needs, and the handler inside starts and serves its functions.
//!
//! With `PATCHWATCH_PACKAGE_DIR` set (as `.ci/run` does after building the release packages),
//! the zips in that directory are checked; otherwise the test packages the debug binaries itself.
// Test and bench code: an unwrap that fails is the test failing, with its message.
#![allow(clippy::unwrap_used)]

use std::{
    collections::BTreeSet,
    io::Read,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use integration_tests::{root, smtp::free_port};
use patchwatch_host::apps::APPS;

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// Zips from `PATCHWATCH_PACKAGE_DIR`, or packages made here from debug binaries.
fn packages(scratch: &Path) -> PathBuf {
    if let Some(dir) = std::env::var_os("PATCHWATCH_PACKAGE_DIR") {
        return PathBuf::from(dir);
    }
    let mut build = Command::new(cargo());
    build.current_dir(root()).args(["build", "--locked"]);
    for app in APPS {
        build.args(["-p", app.name]);
    }
    assert!(build.status().unwrap().success(), "cargo build of the handlers failed");
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from);
    let out = scratch.join("package");
    let status = Command::new(env!("CARGO_BIN_EXE_patchwatch"))
        .current_dir(root())
        .args(["package", "--binaries"])
        .arg(target.join("debug"))
        .arg("--out")
        .arg(&out)
        .arg("--lambda-out")
        .arg(scratch.join("lambda"))
        .args(["--config", "examples/control.toml"])
        .status()
        .unwrap();
    assert!(status.success());
    out
}

#[test]
fn each_app_zip_has_host_json_its_functions_and_an_executable_handler() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = packages(scratch.path());
    let host = std::fs::read(root().join("host.json")).unwrap();
    for app in APPS {
        let path = dir.join(format!("{}.zip", app.name));
        let mut zip = zip::ZipArchive::new(std::fs::File::open(&path).unwrap()).unwrap();
        let names: BTreeSet<String> = zip.file_names().map(str::to_owned).collect();
        let mut expected: BTreeSet<String> = ["host.json", "handler"].into_iter().map(str::to_owned).collect();
        expected.extend(app.functions.iter().map(|f| format!("{f}/function.json")));
        let config = names.contains("patchwatch.toml");
        if config {
            expected.insert("patchwatch.toml".to_owned());
        }
        assert_eq!(names, expected, "{}: entries", app.name);
        let mut read = |name: &str| {
            let mut f = zip.by_name(name).unwrap();
            let mode = f.unix_mode();
            let mut data = Vec::new();
            f.read_to_end(&mut data).unwrap();
            (data, mode)
        };
        assert_eq!(read("host.json").0, host, "{}: host.json", app.name);
        for function in app.functions {
            let on_disk =
                std::fs::read(root().join("function-definitions").join(function).join("function.json")).unwrap();
            assert_eq!(read(&format!("{function}/function.json")).0, on_disk, "{}: {function}", app.name);
        }
        let (binary, mode) = read("handler");
        assert_eq!(mode.map(|m| m & 0o777), Some(0o755), "{}: handler must be executable", app.name);
        assert!(binary.starts_with(b"\x7fELF"), "{}: handler is a Linux executable", app.name);

        // The handler from the zip starts on the custom-handler port and answers health.
        let unpacked = scratch.path().join(format!("run-{}", app.name));
        std::fs::create_dir_all(&unpacked).unwrap();
        let handler = unpacked.join("handler");
        std::fs::write(&handler, &binary).unwrap();
        std::fs::set_permissions(&handler, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let port = free_port();
        let mut command = Command::new(&handler);
        command.env_clear();
        if config {
            // As deployed: PATCHWATCH_CONFIG names the file shipped beside the handler.
            std::fs::write(unpacked.join("patchwatch.toml"), read("patchwatch.toml").0).unwrap();
            command
                .env("PATCHWATCH_CONFIG", "patchwatch.toml")
                .env("PATCHWATCH_ITSM_SNOW_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
                .env("PATCHWATCH_ITSM_RUNBOOK_TOKEN", "runbook-token-0123456789");
        } else {
            assert_ne!(app.name, "itsm-webhook", "the ITSM app needs a config with callers to start");
        }
        let mut child = command
            .current_dir(&unpacked)
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .env("PATCHWATCH_OUTBOX", unpacked.join("outbox"))
            .env("PATCHWATCH_SNAPSHOT", root().join("examples/snapshot.json"))
            .env("PATCHWATCH_STATE", format!("file://{}", unpacked.join("state").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let healthy = loop {
            let ok = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok_and(|mut s| {
                use std::io::Write;
                let _ = s.write_all(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
                let mut answer = String::new();
                let _ = s.read_to_string(&mut answer);
                answer.starts_with("HTTP/1.1 200")
            });
            if ok || Instant::now() > deadline {
                break ok;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let _ = child.kill();
        let _ = child.wait();
        assert!(healthy, "{}: the packaged handler did not serve /api/health", app.name);
    }
}
