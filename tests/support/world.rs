//! A world of three rings for control tests: a merged snapshot of Ring0-Dev (failures),
//! Ring1-PreProd and Ring2-Prod (clean), a routing file with gates, power and an ITSM caller,
//! a real SMTP server, the ARM fake, a file state store and a clock the test moves.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use patchwatch_azure::arm::ArmClient;
use patchwatch_engine::channels::webhook::parse_secrets;
use patchwatch_engine::channels::webhook::signatures;
use patchwatch_engine::config::Config;
use patchwatch_engine::config::Defaults;
use patchwatch_engine::pipeline::Pipeline;
use patchwatch_model::event::Incoming;
use patchwatch_model::event::MaintenanceEvent;
use patchwatch_model::event::parse_delivery;
use patchwatch_simulation::SimulateOptions;
use patchwatch_simulation::SimulatedEvents;
use patchwatch_simulation::write_snapshot;
use serde_json::Value;
use time::{OffsetDateTime, macros::datetime};

use crate::{arm::FakeArm, graph::FakeCredential, smtp::SmtpSink};

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

pub struct Ring {
    pub events: SimulatedEvents,
}

pub struct World {
    pub _dir: tempfile::TempDir,
    pub snapshot: PathBuf,
    pub config: PathBuf,
    pub state: PathBuf,
    pub sink: SmtpSink,
    pub arm_uri: String,
    pub arm: FakeArm,
    pub now: Arc<Mutex<OffsetDateTime>>,
    pub rings: Vec<Ring>,
    pub tables: BTreeMap<String, Vec<Value>>,
    /// More environment for `config()` (secrets of extra callers and channels).
    pub extra_env: Vec<(&'static str, String)>,
}

pub const CONFIG: &str = r#"
[rings]
dev = "Ring0-*"
preprod = "Ring1-*"
prod = "Ring2-*"

[channels.ops]
type = "email"
to = ["ops@example.com"]

[channels.desk]
type = "email"
to = ["service-desk@example.com"]

[[routes]]
name = "all"
channels = ["ops"]

[[gates]]
name = "preprod-after-dev"
ring = "preprod"
notify = ["ops"]
previous_ring = { configurations = ["Ring0-*"], max_failed_percent = 60.0, max_kb_failed_percent = 4.0, max_age_days = 14 }

[[gates]]
name = "prod-change"
ring = "prod"
notify = ["ops"]
change = { source = "itsm" }

[power]
configurations = ["Ring0-*"]
concurrency = 4

[[itsm.callers]]
name = "servicenow"
signing_secret_env = "ITSM_SNOW_SECRET"
configurations = ["Ring*"]
actions = ["approve", "reject", "acknowledge", "rerun", "emergency"]
notify = ["desk"]
"#;

impl World {
    pub async fn new(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut tables: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        let mut rings = Vec::new();
        for (configuration, seed, start, clean) in [
            ("Ring0-Dev", 1, datetime!(2026-11-03 22:00 UTC), false),
            ("Ring1-PreProd", 2, datetime!(2026-11-10 22:00 UTC), true),
            ("Ring2-Prod", 3, datetime!(2026-11-17 22:00 UTC), true),
        ] {
            let opts = SimulateOptions {
                machines: 40,
                subscriptions: 2,
                seed,
                configuration: configuration.to_owned(),
                start,
                window_minutes: 120,
                clean,
            };
            let mut out = Vec::new();
            let events = write_snapshot(&opts, &mut out).unwrap();
            let part: BTreeMap<String, Vec<Value>> = serde_json::from_slice(&out).unwrap();
            for (table, rows) in part {
                tables.entry(table).or_default().extend(rows);
            }
            rings.push(Ring { events });
        }
        let snapshot = dir.path().join("snapshot.json");
        std::fs::write(&snapshot, serde_json::to_vec(&tables).unwrap()).unwrap();
        let config_path = dir.path().join("patchwatch.toml");
        std::fs::write(&config_path, config).unwrap();
        let state = dir.path().join("state");
        let (server, arm) = FakeArm::start().await;
        let arm_uri = server.uri();
        std::mem::forget(server);
        Self {
            snapshot,
            config: config_path,
            state,
            sink: SmtpSink::start(),
            arm_uri,
            arm,
            now: Arc::new(Mutex::new(datetime!(2026-11-01 00:00 UTC))),
            rings,
            tables,
            extra_env: Vec::new(),
            _dir: dir,
        }
    }

    pub fn config(&self) -> Config {
        let mut vars: HashMap<&str, String> = HashMap::from([
            ("PATCHWATCH_CONFIG", self.config.display().to_string()),
            ("PATCHWATCH_SNAPSHOT", self.snapshot.display().to_string()),
            ("PATCHWATCH_STATE", format!("file://{}", self.state.display())),
            ("PATCHWATCH_SMTP_URL", self.sink.url()),
            ("PATCHWATCH_MAIL_TO", "fallback@example.com".to_owned()),
            ("PATCHWATCH_RESULT_GRACE_MINUTES", "15".to_owned()),
            ("ITSM_SNOW_SECRET", SECRET.to_owned()),
        ]);
        vars.extend(self.extra_env.iter().cloned());
        Config::from_lookup(|k| vars.get(k).cloned(), &Defaults::default()).unwrap()
    }

    /// A pipeline as one Function App would build it, on the shared state, clock and fake ARM.
    pub fn pipeline(&self) -> Pipeline {
        let mut p = Pipeline::from_config(&self.config()).unwrap();
        let mut arm = ArmClient::new(
            self.arm_uri.parse().unwrap(),
            Arc::new(FakeCredential),
            "https://management.azure.com/.default".to_owned(),
        );
        arm.min_poll = Duration::from_millis(20);
        p.arm = Some(arm);
        let now = self.now.clone();
        p.set_clock(Arc::new(move || *now.lock().unwrap()));
        p
    }

    pub fn set_now(&self, t: OffsetDateTime) {
        *self.now.lock().unwrap() = t;
    }

    pub fn event(&self, ring: usize, pre: bool) -> MaintenanceEvent {
        let e = &self.rings[ring].events;
        let v = if pre { &e.pre } else { &e.post };
        match parse_delivery(v.to_string().as_bytes()).unwrap().remove(0) {
            Incoming::Maintenance(m) => *m,
            other => panic!("{other:?}"),
        }
    }

    /// Azure VMs of a configuration that the snapshot says are deallocated or stopped.
    pub fn stopped_vms(&self, configuration: &str) -> HashSet<String> {
        let run_machines: HashSet<String> = self.tables["maintenanceresources"]
            .iter()
            .filter(|r| r["type"] == "microsoft.maintenance/applyupdates")
            .filter(|r| {
                r["properties"]["maintenanceConfigurationId"]
                    .as_str()
                    .unwrap()
                    .ends_with(&configuration.to_ascii_lowercase())
            })
            .map(|r| r["properties"]["resourceId"].as_str().unwrap().to_ascii_lowercase())
            .collect();
        self.tables["resources"]
            .iter()
            .filter(|r| r["type"].as_str().unwrap().eq_ignore_ascii_case("microsoft.compute/virtualmachines"))
            .filter(|r| run_machines.contains(&r["id"].as_str().unwrap().to_ascii_lowercase()))
            .filter(|r| {
                let code =
                    r["properties"]["extended"]["instanceView"]["powerState"]["code"].as_str().unwrap_or_default();
                code == "PowerState/deallocated" || code == "PowerState/stopped"
            })
            .map(|r| r["id"].as_str().unwrap().to_ascii_lowercase())
            .collect()
    }
}

pub fn paths(calls: &[crate::arm::Call], suffix: &str) -> HashSet<String> {
    calls
        .iter()
        .map(|c| c.path.to_ascii_lowercase())
        .filter_map(|p| p.strip_suffix(suffix).map(str::to_owned))
        .collect()
}

/// What a Standard Webhooks signature covers: the message id, its timestamp and the body.
#[derive(Clone, Copy, Debug)]
pub struct WebhookMessage<'a> {
    pub id: &'a str,
    /// Unix seconds, as sent in `webhook-timestamp`.
    pub ts: i64,
    pub body: &'a str,
}

/// Signs `message` for the ITSM handler as a Standard Webhooks sender would.
pub fn signed_request(
    client: &reqwest::Client,
    url: &str,
    message: WebhookMessage<'_>,
    secret: &str,
) -> reqwest::RequestBuilder {
    let WebhookMessage { id, ts, body } = message;
    client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signatures(id, ts, body, &parse_secrets(secret).unwrap()))
        .body(body.to_owned())
}

pub async fn spawn_itsm(world: &World) -> String {
    let config = world.config();
    let callers = itsm_webhook::auth::callers(&config).unwrap();
    let mut state = itsm_webhook::AppState::new(world.pipeline(), callers);
    state.concurrency = 4;
    let router = itsm_webhook::router(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}/api/itsm")
}

pub fn subjects(sent: &[crate::smtp::Sent]) -> Vec<String> {
    sent.iter().map(|m| m.subject()).collect()
}

/// Every file under `dir` with its contents: a store's whole state, to compare before and after.
pub fn state_of(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap_or_default());
            }
        }
    }
    out
}
