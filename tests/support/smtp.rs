//! A real SMTP server for tests: aiosmtpd (from PyPI) writing every message to a Maildir.
//!
//! `.ci/run` installs aiosmtpd into `.ci/venv`; `PATCHWATCH_TEST_PYTHON` may name another
//! interpreter. If the server cannot start, the test fails: it never skips.

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub struct SmtpSink {
    child: Child,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

/// The Python interpreter with aiosmtpd: `PATCHWATCH_TEST_PYTHON`, else `.ci/venv`, else `python3`.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("PATCHWATCH_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = super::root().join(".ci/venv/bin/python");
    if venv.exists() { venv } else { PathBuf::from("python3") }
}

/// A free loopback port (bound and released; the window for a clash is tiny).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl SmtpSink {
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    /// Starts the server on a given loopback port (to bring a "down" server up).
    pub fn start_on(port: u16) -> Self {
        Self::spawn(port, "aiosmtpd.handlers.Mailbox", &[])
    }

    /// A server that stores mail but refuses, at DATA, every message to `rcpt` with `reply`
    /// (for example `554 5.7.1 refused`): a permanent refusal of one message.
    pub fn start_refusing(rcpt: &str, reply: &str) -> Self {
        Self::spawn(free_port(), "refusing_smtp.Refusing", &[rcpt, reply])
    }

    fn spawn(port: u16, handler: &str, args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let maildir = dir.path().join("mail");
        let py = python();
        let mut child = Command::new(&py)
            .args(["-m", "aiosmtpd", "-n", "-l", &addr.to_string(), "-c", handler])
            .arg(&maildir)
            .args(args)
            .env("PYTHONPATH", super::root().join("tests/support"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start aiosmtpd with {}: {e}; run .ci/run (it installs aiosmtpd) or set PATCHWATCH_TEST_PYTHON", py.display()));
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if TcpStream::connect(addr).is_ok() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                panic!(
                    "aiosmtpd exited with {status}: {err}\n(is aiosmtpd installed for {}? run .ci/run)",
                    py.display()
                );
            }
            assert!(Instant::now() < deadline, "aiosmtpd did not listen on {addr} within 15 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, addr, dir }
    }

    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Raw messages received so far.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let new = self.dir.path().join("mail/new");
        super::files_any(&new).into_iter().map(|p| std::fs::read(p).unwrap()).collect()
    }

    /// Waits until `n` messages arrived (delivery is synchronous, but the Maildir write races the reply).
    pub fn wait_for(&self, n: usize) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let m = self.messages();
            if m.len() >= n || Instant::now() > deadline {
                return m;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A received message, parsed.
#[derive(Clone, Debug)]
pub struct Sent {
    pub raw: Vec<u8>,
}

impl Sent {
    fn header(&self, name: &str) -> String {
        use mailparse::MailHeaderMap;
        mailparse::parse_mail(&self.raw).unwrap().headers.get_first_value(name).unwrap_or_default()
    }

    pub fn subject(&self) -> String {
        self.header("Subject")
    }

    /// The `To` addresses, without display names.
    pub fn to(&self) -> Vec<String> {
        let parsed = mailparse::addrparse(&self.header("To")).unwrap();
        parsed
            .iter()
            .flat_map(|a| match a {
                mailparse::MailAddr::Single(s) => vec![s.addr.clone()],
                mailparse::MailAddr::Group(g) => g.addrs.iter().map(|s| s.addr.clone()).collect(),
            })
            .collect()
    }

    /// The text/plain part.
    pub fn text(&self) -> String {
        let mail = mailparse::parse_mail(&self.raw).unwrap();
        let mut parts = vec![&mail];
        while let Some(p) = parts.pop() {
            if p.ctype.mimetype == "text/plain" {
                return p.get_body().unwrap();
            }
            parts.extend(p.subparts.iter());
        }
        String::new()
    }
}

impl SmtpSink {
    pub fn count(&self) -> usize {
        self.messages().len()
    }

    /// Waits (without blocking the runtime) until `n` messages arrived after `seen`, and returns
    /// the new ones. Maildir file names do not sort by arrival, so new means "not in `seen`".
    pub async fn new_since(&self, seen: &[Vec<u8>], n: usize) -> Vec<Sent> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let all = self.messages();
            let new: Vec<Sent> = all.into_iter().filter(|m| !seen.contains(m)).map(|raw| Sent { raw }).collect();
            if new.len() >= n || Instant::now() > deadline {
                return new;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
