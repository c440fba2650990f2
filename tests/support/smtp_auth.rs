//! A real SMTP server that requires authentication: aiosmtpd with an authenticator accepting
//! one user over plain TCP (`auth_require_tls=False`, `auth_required=True`), writing every message
//! to a Maildir and every AUTH attempt to a log, so a test can prove the client authenticated.
//!
//! Same interpreter as [`crate::smtp`]; if the server cannot start, the test fails.

use std::{
    net::{SocketAddr, TcpStream},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::smtp::{Sent, free_port};

pub struct AuthSmtp {
    child: Child,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

/// One AUTH attempt the server saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthAttempt {
    /// `PLAIN` or `LOGIN`.
    pub mechanism: String,
    pub ok: bool,
}

impl AuthSmtp {
    /// Starts the server on a fresh loopback port, accepting `user` with `password` only.
    pub fn start(user: &str, password: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let py = crate::smtp::python();
        let script = crate::root().join("tests/support/smtp_auth_server.py");
        let mut child = Command::new(&py)
            .arg(&script)
            .env("SMTP_AUTH_LISTEN", addr.to_string())
            .env("SMTP_AUTH_MAILDIR", dir.path().join("mail"))
            .env("SMTP_AUTH_LOG", dir.path().join("auth.log"))
            .env("SMTP_AUTH_USER", user)
            .env("SMTP_AUTH_PASSWORD", password)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} with {}: {e}; run .ci/run (it installs aiosmtpd)",
                    script.display(),
                    py.display()
                )
            });
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                panic!("the AUTH SMTP server exited with {status}: {err}");
            }
            assert!(Instant::now() < deadline, "the AUTH SMTP server did not listen on {addr} within 15 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, addr, dir }
    }

    /// `smtp://user:password@host:port` with both percent-encoded, as `PATCHWATCH_SMTP_URL` takes them.
    pub fn url(&self, user: &str, password: &str) -> String {
        let mut url = url::Url::parse(&format!("smtp://{}", self.addr)).unwrap();
        url.set_username(user).unwrap();
        url.set_password(Some(password)).unwrap();
        url.to_string()
    }

    /// Raw messages received so far.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        crate::files_any(&self.dir.path().join("mail/new")).into_iter().map(|p| std::fs::read(p).unwrap()).collect()
    }

    /// Waits (without blocking the runtime) until at least `n` messages arrived, or `within`.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Sent> {
        let deadline = Instant::now() + within;
        loop {
            let all = self.messages();
            if all.len() >= n || Instant::now() > deadline {
                return all.into_iter().map(|raw| Sent { raw }).collect();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every AUTH attempt so far, in order.
    pub fn auth_attempts(&self) -> Vec<AuthAttempt> {
        std::fs::read_to_string(self.dir.path().join("auth.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(m, r)| AuthAttempt { mechanism: m.to_owned(), ok: r == "ok" })
            .collect()
    }
}

impl Drop for AuthSmtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
