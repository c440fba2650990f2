//! Azurite (the Azure Storage emulator, from npm) for tests: blob service only, on a fresh
//! loopback port and data directory, with a container created through an account SAS signed
//! with Azurite's well-known development key.
//!
//! `.ci/run` installs Azurite into `.ci/node_modules`; `PATCHWATCH_TEST_AZURITE` may name
//! another `azurite-blob`. If it cannot start, the test fails: it never skips.

use std::{
    net::{SocketAddr, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use azure_core::credentials::Secret;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

const ACCOUNT: &str = "devstoreaccount1";
/// Azurite's published development key (not a secret).
const KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const SAS_VERSION: &str = "2022-11-02";

pub struct Azurite {
    child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("PATCHWATCH_TEST_AZURITE") {
        return PathBuf::from(p);
    }
    super::root().join(".ci/node_modules/.bin/azurite-blob")
}

/// `azurite-queue` from the same npm package as `azurite-blob`.
fn queue_binary() -> PathBuf {
    let blob = binary();
    blob.with_file_name(blob.file_name().unwrap().to_string_lossy().replace("azurite-blob", "azurite-queue"))
}

impl Azurite {
    pub fn start() -> Self {
        Self::spawn(binary(), "blob")
    }

    /// The queue service alone (`azurite-queue`).
    pub fn start_queue() -> Self {
        Self::spawn(queue_binary(), "queue")
    }

    fn spawn(bin: PathBuf, service: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = super::smtp::free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut child = Command::new(&bin)
            .args([
                &format!("--{service}Host"),
                "127.0.0.1",
                &format!("--{service}Port"),
                &port.to_string(),
                "--location",
            ])
            .arg(dir.path())
            .args(["--silent", "--disableTelemetry", "--skipApiVersionCheck", "--loose"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start Azurite ({}): {e}; run .ci/run, which installs it", bin.display())
            });
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                panic!("Azurite exited with {status}: {err}");
            }
            assert!(Instant::now() < deadline, "Azurite did not listen on {addr} within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, addr, _dir: dir }
    }

    /// A new container, and its URL with a container SAS (what `PATCHWATCH_STATE` takes).
    pub async fn container(&self, name: &str) -> String {
        let base = format!("http://{}/{ACCOUNT}/{name}", self.addr);
        let admin = format!("{base}?restype=container&{}", account_sas());
        let resp = reqwest::Client::new().put(&admin).header("x-ms-version", SAS_VERSION).send().await.unwrap();
        assert!(resp.status().as_u16() == 201 || resp.status().as_u16() == 409, "create container: {}", resp.status());
        format!("{base}?{}", container_sas(name))
    }

    /// A new queue (on [`Azurite::start_queue`]), and its URL with an account SAS.
    pub async fn queue(&self, name: &str) -> String {
        let url = format!("http://{}/{ACCOUNT}/{name}?{}", self.addr, account_sas_for("q", "racwdlup"));
        let resp = reqwest::Client::new().put(&url).header("x-ms-version", SAS_VERSION).send().await.unwrap();
        assert!(resp.status().as_u16() == 201 || resp.status().as_u16() == 204, "create queue: {}", resp.status());
        url
    }

    /// Puts a message (its text as given) on a queue made by [`Azurite::queue`].
    pub async fn put_message(&self, queue_url: &str, text: &str) {
        let (base, sas) = queue_url.split_once('?').unwrap();
        let body = format!("<QueueMessage><MessageText>{text}</MessageText></QueueMessage>");
        let resp = reqwest::Client::new()
            .post(format!("{base}/messages?{sas}"))
            .header("x-ms-version", SAS_VERSION)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201, "put message: {}", resp.text().await.unwrap());
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn expiry() -> String {
    (OffsetDateTime::now_utc() + time::Duration::hours(2)).replace_nanosecond(0).unwrap().format(&Rfc3339).unwrap()
}

fn sign(string_to_sign: &str, params: &[(&str, &str)]) -> String {
    let sig = azure_core::hmac::hmac_sha256(string_to_sign, &Secret::new(KEY)).unwrap();
    let mut u = url::Url::parse("http://x/").unwrap();
    u.query_pairs_mut().extend_pairs(params).append_pair("sig", &sig);
    u.query().unwrap_or_default().to_owned()
}

/// Account SAS (blob service; service, container and object level): may create containers.
fn account_sas() -> String {
    account_sas_for("b", "racwdl")
}

/// Account SAS for one service (`b` blob, `q` queue) and every resource type.
fn account_sas_for(service: &str, permissions: &str) -> String {
    let se = expiry();
    let sts = [ACCOUNT, permissions, service, "sco", "", &se, "", "", SAS_VERSION, "", ""].join("\n");
    sign(&sts, &[("sv", SAS_VERSION), ("ss", service), ("srt", "sco"), ("sp", permissions), ("se", &se)])
}

/// Service SAS for one container (sv ≥ 2020-12-06 layout).
fn container_sas(container: &str) -> String {
    let (se, resource) = (expiry(), format!("/blob/{ACCOUNT}/{container}"));
    let sts = ["racwdl", "", &se, &resource, "", "", "", SAS_VERSION, "c", "", "", "", "", "", "", ""].join("\n");
    sign(&sts, &[("sv", SAS_VERSION), ("sr", "c"), ("sp", "racwdl"), ("se", &se)])
}
