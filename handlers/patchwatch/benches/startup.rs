//! Cold start of each handler binary: process spawn until `GET /api/health` answers 200 on the
//! custom-handler port, as the Functions host waits for it. Measures the release binaries that
//! `patchwatch package` builds (`target/release/<name>`; run it first).
//!
//! `cargo bench -p patchwatch --bench startup`

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use patchwatch_host::apps::APPS;

const RUNS: usize = 30;

fn healthy(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok_and(|mut s| {
        let _ = s.write_all(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer.starts_with("HTTP/1.1 200")
    })
}

fn main() {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let scratch = std::env::temp_dir().join(format!("patchwatch-startup-{}", std::process::id()));
    println!("{:<20} {:>10} {:>10} {:>10} {:>10}", "binary", "size MiB", "min ms", "median ms", "p95 ms");
    for app in APPS {
        let binary = target.join("release").join(app.name);
        let Ok(meta) = std::fs::metadata(&binary) else {
            eprintln!("{} is missing: run `cargo run -p patchwatch -- package` first", binary.display());
            std::process::exit(2);
        };
        let mut times = Vec::with_capacity(RUNS);
        for i in 0..RUNS {
            let port = 20_000 + (std::process::id() % 20_000) as u16 + i as u16;
            let started = Instant::now();
            let mut child = Command::new(&binary)
                .env_clear()
                .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
                .env("PATCHWATCH_OUTBOX", scratch.join("outbox"))
                .env("PATCHWATCH_SNAPSHOT", root.join("examples/snapshot.json"))
                .env("PATCHWATCH_STATE", format!("file://{}", scratch.join("state").display()))
                .env("PATCHWATCH_CONFIG", root.join("examples/control.toml"))
                .env("PATCHWATCH_ITSM_SNOW_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
                .env("PATCHWATCH_ITSM_RUNBOOK_TOKEN", "runbook-token-0123456789")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn");
            while !healthy(port) {
                assert!(started.elapsed() < Duration::from_secs(10), "{} did not start", app.name);
                std::thread::sleep(Duration::from_micros(500));
            }
            times.push(started.elapsed());
            let _ = child.kill();
            let _ = child.wait();
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{:<20} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
            app.name,
            meta.len() as f64 / 1_048_576.0,
            ms(times[0]),
            ms(times[RUNS / 2]),
            ms(times[RUNS * 95 / 100])
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
}
