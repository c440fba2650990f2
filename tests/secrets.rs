//! No secret in any log at any level (issue 10): every binary runs as a real process at
//! `RUST_LOG=trace` with `LOG_FORMAT=json` through every flow that handles a secret, and no
//! secret value, in any encoding it could take on the way, appears in any log line, outbox
//! file, ledger record, message or answer.
//!
//! Real components on 127.0.0.1: an SMTP server that requires AUTH (aiosmtpd), Azurite with a
//! container SAS as `PATCHWATCH_STATE`; fakes built from the documented contracts for the
//! App Service managed-identity endpoint, ARM and Resource Graph (which accept only the token
//! that endpoint hands out), ServiceNow (basic auth), and the Teams, Slack, signed-webhook and
//! action-group receivers. The processes: `maintenance-events`, `alert-webhook` and
//! `itsm-webhook` on `FUNCTIONS_CUSTOMHANDLER_PORT`, `patchwatch serve`, and `patchwatch replay`
//! (once as it should work, once with a wrong SMTP password and an unreachable Slack URL, so the
//! failure paths log too), then `patchwatch deliveries` lists the ledger. Every inbound
//! credential is also tried wrong.
// Test and bench code: an unwrap that fails is the test failing, with its message.
#![allow(clippy::unwrap_used)]

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use base64::Engine;
use integration_tests::{
    alert_bodies::common_alert,
    azurite::Azurite,
    itsm::ServiceNow,
    leaks::{Leak, Secrets, blobs, mail_text},
    managed_identity::{Identity, TokenArm},
    process::{Proc, binary},
    smtp::free_port,
    smtp_auth::AuthSmtp,
    world::{WebhookMessage, signed_request},
};
use patchwatch_engine::channels::webhook::parse_secrets;
use patchwatch_engine::channels::webhook::signatures;
use patchwatch_model::event::Incoming;
use patchwatch_model::event::parse_delivery;
use patchwatch_simulation::SimulateOptions;
use patchwatch_simulation::SimulatedEvents;
use patchwatch_simulation::write_snapshot;
use serde_json::{Value, json};
use time::OffsetDateTime;
use wiremock::{Mock, MockServer, ResponseTemplate, matchers};

const AG: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-ops/providers/microsoft.insights/actionGroups/ag-patching";
const MC: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-patching/providers/Microsoft.Maintenance/maintenanceConfigurations/Ring2-Prod";
/// Each process its own user-assigned identity (`AZURE_CLIENT_ID`), so the token endpoint hands
/// each its own token and every ARM call can be traced to the process that made it.
const PROCESSES: [(&str, &str); 6] = [
    ("maintenance-events", "11111111-0000-4000-8000-000000000001"),
    ("alert-webhook", "11111111-0000-4000-8000-000000000002"),
    ("itsm-webhook", "11111111-0000-4000-8000-000000000003"),
    ("patchwatch serve", "11111111-0000-4000-8000-000000000004"),
    ("patchwatch replay", "11111111-0000-4000-8000-000000000005"),
    ("patchwatch replay (failing)", "11111111-0000-4000-8000-000000000006"),
];
/// Bound on each flow (they take a few seconds; the emergency patch polls ARM once, 5 s).
const FLOW_TIMEOUT: Duration = Duration::from_secs(30);

/// SplitMix64 seeded from the clock and pid: fresh secrets every run, so none can be in a fixture.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
        Self(nanos ^ (u64::from(std::process::id()) << 32))
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn text(&mut self, len: usize, alphabet: &str) -> String {
        let a: Vec<char> = alphabet.chars().collect();
        (0..len).map(|_| a[(self.next() % a.len() as u64) as usize]).collect()
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Every secret of the run. Values with `+`, `/`, `=` make their URL encodings differ from them.
struct Values {
    smtp_user: String,
    smtp_password: String,
    smtp_wrong_password: String,
    sas_sig: String,
    webhook_secret: String,
    itsm_secret: String,
    itsm_wrong_secret: String,
    teams_sig: String,
    slack_token: String,
    events_token: String,
    events_wrong: String,
    alert_token: String,
    alert_wrong: String,
    itsm_bearer: String,
    itsm_wrong_bearer: String,
    snow_user: String,
    snow_password: String,
    identity_header: String,
    /// One per entry of [`PROCESSES`].
    access_tokens: Vec<String>,
    ag_code: String,
}

impl Values {
    fn new(rng: &mut Rng, sas_sig: String) -> Self {
        let special = format!("{ALNUM}+/=");
        let whsec =
            |rng: &mut Rng| format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(rng.bytes(32)));
        Self {
            smtp_user: format!("pw-mailer-{}", rng.text(14, ALNUM)),
            smtp_password: format!("Sm+{}/{}=", rng.text(12, &special), rng.text(10, ALNUM)),
            smtp_wrong_password: format!("Wr+{}/{}=", rng.text(12, &special), rng.text(10, ALNUM)),
            sas_sig,
            webhook_secret: whsec(rng),
            itsm_secret: whsec(rng),
            itsm_wrong_secret: whsec(rng),
            teams_sig: rng.text(43, &format!("{ALNUM}-_")),
            slack_token: rng.text(24, ALNUM),
            events_token: rng.text(40, &format!("{ALNUM}-._~")),
            events_wrong: rng.text(40, &format!("{ALNUM}-._~")),
            alert_token: rng.text(32, ALNUM),
            alert_wrong: rng.text(32, ALNUM),
            itsm_bearer: rng.text(40, &format!("{ALNUM}-_")),
            itsm_wrong_bearer: rng.text(40, &format!("{ALNUM}-_")),
            snow_user: format!("svc-patchwatch-{}", rng.text(10, ALNUM)),
            snow_password: format!("Sn+{}/{}=", rng.text(14, &special), rng.text(8, ALNUM)),
            identity_header: rng.text(36, &format!("{ALNUM}-")),
            access_tokens: PROCESSES
                .iter()
                .map(|_| {
                    format!(
                        "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.{}.{}",
                        rng.text(48, &format!("{ALNUM}-_")),
                        rng.text(43, &format!("{ALNUM}-_"))
                    )
                })
                .collect(),
            ag_code: format!("{}==", rng.text(54, &format!("{ALNUM}-_"))),
        }
    }

    fn secrets(&self, urls: &[(&str, &str)]) -> Secrets {
        let mut s = Secrets::default();
        for (label, value) in [
            ("smtp user", &self.smtp_user),
            ("smtp password", &self.smtp_password),
            ("wrong smtp password", &self.smtp_wrong_password),
            ("SAS signature", &self.sas_sig),
            ("webhook signing secret", &self.webhook_secret),
            ("ITSM signing secret", &self.itsm_secret),
            ("wrong ITSM signing secret", &self.itsm_wrong_secret),
            ("Teams URL sig", &self.teams_sig),
            ("Slack URL token", &self.slack_token),
            ("PATCHWATCH_WEBHOOK_TOKEN", &self.events_token),
            ("wrong events bearer", &self.events_wrong),
            ("PATCHWATCH_ALERT_TOKEN", &self.alert_token),
            ("wrong alert token", &self.alert_wrong),
            ("ITSM bearer", &self.itsm_bearer),
            ("wrong ITSM bearer", &self.itsm_wrong_bearer),
            ("ServiceNow user", &self.snow_user),
            ("ServiceNow password", &self.snow_password),
            ("IDENTITY_HEADER", &self.identity_header),
            ("action group receiver code", &self.ag_code),
        ] {
            s.add(label, value);
        }
        // A signing secret's key is the base64 after `whsec_`: the key bytes in any encoding.
        for (label, value) in [
            ("webhook signing key", &self.webhook_secret),
            ("ITSM signing key", &self.itsm_secret),
            ("wrong ITSM signing key", &self.itsm_wrong_secret),
        ] {
            let b64 = value.strip_prefix("whsec_").unwrap();
            s.add(label, b64);
            let key = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
            s.add_encoded(label, &key);
        }
        // What goes over the wire: AUTH PLAIN's "\0user\0password" (AUTH LOGIN sends user and
        // password base64-encoded one by one: covered above), and basic auth's "user:password".
        s.add_encoded("SMTP AUTH PLAIN", format!("\0{}\0{}", self.smtp_user, self.smtp_password).as_bytes());
        s.add_encoded(
            "SMTP AUTH PLAIN (wrong)",
            format!("\0{}\0{}", self.smtp_user, self.smtp_wrong_password).as_bytes(),
        );
        let pair = format!("{}:{}", self.snow_user, self.snow_password);
        s.add("ServiceNow basic-auth pair", &pair);
        s.add_encoded("ServiceNow basic-auth pair", pair.as_bytes());
        for (i, token) in self.access_tokens.iter().enumerate() {
            s.add(&format!("managed identity access token of {}", PROCESSES[i].0), token);
        }
        for (label, url) in urls {
            s.add(label, url);
        }
        s
    }
}

fn routing(hooks: &str, snow: &str) -> String {
    format!(
        r#"
[rings]
dev = "Ring0-*"
preprod = "Ring1-*"
prod = "Ring2-*"

[channels.ops]
type = "email"
to = ["ops@example.com"]

[channels.oncall-teams]
type = "teams"
url_env = "PATCHWATCH_TEAMS_URL"

[channels.ops-slack]
type = "slack"
url_env = "PATCHWATCH_SLACK_URL"

[channels.cmdb-webhook]
type = "webhook"
url = "{hooks}/hook"
secret_env = "PATCHWATCH_WEBHOOK_SECRET"

[channels.servicenow]
type = "servicenow"
instance = "{snow}"
user_env = "PATCHWATCH_SNOW_USER"
password_env = "PATCHWATCH_SNOW_PASSWORD"
assignment_group = "Server Patching"

[channels.ag]
type = "action_group"
id = "{AG}"

[[routes]]
name = "everything"
match = {{ phase = "any" }}
channels = ["ops", "oncall-teams", "ops-slack", "cmdb-webhook", "servicenow", "ag"]

[[itsm.callers]]
name = "servicenow"
signing_secret_env = "PATCHWATCH_ITSM_SNOW_SECRET"
configurations = ["Ring*"]
actions = ["approve", "reject", "acknowledge", "rerun"]
notify = ["ops", "cmdb-webhook"]

[[itsm.callers]]
name = "runbook"
bearer_env = "PATCHWATCH_ITSM_RUNBOOK_TOKEN"
configurations = ["Ring0-*"]
actions = ["emergency"]
notify = ["ops", "oncall-teams"]

[alerts]
notify = ["ops", "oncall-teams", "ops-slack", "cmdb-webhook"]
"#
    )
}

/// Three rings, run one, two and three days ago: the events, each ring's tables, all tables.
struct Rings {
    events: Vec<SimulatedEvents>,
    ring0_tables: String,
    all_tables: String,
}

fn rings() -> Rings {
    let today = OffsetDateTime::now_utc().replace_time(time::macros::time!(22:00));
    let mut all: serde_json::Map<String, Value> = serde_json::Map::new();
    let mut events = Vec::new();
    let mut ring0_tables = String::new();
    for (i, (configuration, clean)) in
        [("Ring0-Dev", false), ("Ring1-PreProd", true), ("Ring2-Prod", true)].into_iter().enumerate()
    {
        let opts = SimulateOptions {
            machines: 12,
            subscriptions: 1,
            seed: 11 + i as u64,
            configuration: configuration.to_owned(),
            start: today - time::Duration::days(3 - i as i64),
            window_minutes: 120,
            clean,
        };
        let mut out = Vec::new();
        events.push(write_snapshot(&opts, &mut out).unwrap());
        if i == 0 {
            ring0_tables = String::from_utf8(out.clone()).unwrap();
        }
        let part: serde_json::Map<String, Value> = serde_json::from_slice(&out).unwrap();
        for (table, rows) in part {
            let entry = all.entry(table).or_insert_with(|| json!([]));
            entry.as_array_mut().unwrap().extend(rows.as_array().unwrap().iter().cloned());
        }
    }
    Rings { events, ring0_tables, all_tables: Value::Object(all).to_string() }
}

fn correlation_id(event: &Value) -> String {
    match parse_delivery(event.to_string().as_bytes()).unwrap().remove(0) {
        Incoming::Maintenance(m) => m.correlation_id,
        other => panic!("{other:?}"),
    }
}

/// Every answer the handlers gave, to be searched too.
#[derive(Clone, Default)]
struct Answers(Arc<Mutex<Vec<(String, String)>>>);

impl Answers {
    async fn send(&self, what: &str, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.unwrap_or_else(|e| panic!("{what}: {e}"));
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        self.0.lock().unwrap().push((what.to_owned(), text.clone()));
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

/// Runs `f`, failing with `what` if it takes longer than [`FLOW_TIMEOUT`].
async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(FLOW_TIMEOUT, f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {FLOW_TIMEOUT:?}"))
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn with(base: &[(String, String)], extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> =
        base.iter().filter(|(k, _)| !extra.iter().any(|(e, _)| e == k)).cloned().collect();
    out.extend(env(extra));
    out
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() { stack.push(p) } else { out.push(p) }
        }
    }
    out.sort();
    out
}

/// Whether a `webhook-signature` header holds a valid signature of `body` by `secret`.
fn signed_by(req: &wiremock::Request, secret: &str) -> bool {
    let header = |n: &str| req.headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let Ok(ts) = header("webhook-timestamp").parse::<i64>() else { return false };
    let expected = signatures(&header("webhook-id"), ts, &req.body, &parse_secrets(secret).unwrap());
    !expected.is_empty() && header("webhook-signature").split(' ').any(|s| s == expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_secret_reaches_any_log_outbox_ledger_or_message_at_trace_level() {
    let started = Instant::now();
    let bin = |name: &str| binary(name);
    let (me_bin, alerts_bin, itsm_bin, cli_bin) =
        (bin("maintenance-events"), bin("alert-webhook"), bin("itsm-webhook"), bin("patchwatch"));

    // Real servers and fakes.
    let mut rng = Rng::new();
    let azurite = Azurite::start();
    let state = azurite.container("patchwatch").await;
    let failing_state = azurite.container("patchwatch-failing").await;
    let sig_of = |url: &str| {
        url::Url::parse(url).unwrap().query_pairs().find(|(k, _)| k == "sig").map(|(_, v)| v.into_owned()).unwrap()
    };
    let v = Values::new(&mut rng, sig_of(&state));
    let failing_sig = sig_of(&failing_state);
    let smtp = AuthSmtp::start(&v.smtp_user, &v.smtp_password);
    let smtp_url = smtp.url(&v.smtp_user, &v.smtp_password);
    let smtp_wrong_url = smtp.url(&v.smtp_user, &v.smtp_wrong_password);
    let identity_tokens: Vec<(String, String)> =
        PROCESSES.iter().zip(&v.access_tokens).map(|((_, id), t)| ((*id).to_owned(), t.clone())).collect();
    let identity = Identity::start(&v.identity_header, &identity_tokens).await;
    let hooks = MockServer::start().await;
    Mock::given(matchers::any()).respond_with(ResponseTemplate::new(200)).mount(&hooks).await;
    let rings = rings();
    // The action group's webhook receiver is an Azure Function: its key is in the URL.
    let code: String = url::form_urlencoded::byte_serialize(v.ag_code.as_bytes()).collect();
    let ag_hook = format!("{}/ag-hook?code={code}", hooks.uri());
    let ag = json!({ "id": AG, "type": "Microsoft.Insights/ActionGroups", "name": "ag-patching", "location": "Global",
        "properties": { "groupShortName": "patching", "enabled": true,
            "emailReceivers": [ { "name": "ops email", "emailAddress": "ag-ops@example.com", "status": "Enabled",
                                  "useCommonAlertSchema": true } ],
            "webhookReceivers": [ { "name": "function", "serviceUri": ag_hook, "useCommonAlertSchema": true } ],
            "smsReceivers": [], "itsmReceivers": [], "azureAppPushReceivers": [], "voiceReceivers": [] } });
    let (arm_server, arm) =
        TokenArm::start(v.access_tokens.clone(), &rings.ring0_tables, vec![(AG.to_owned(), ag)]).await;
    let snow_server = MockServer::start().await;
    let snow = ServiceNow::new(&v.snow_user, &v.snow_password);
    Mock::given(matchers::path_regex("^/api/now/table/")).respond_with(snow.clone()).mount(&snow_server).await;

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("patchwatch.toml");
    std::fs::write(&config, routing(&hooks.uri(), &snow_server.uri())).unwrap();
    let snapshot = dir.path().join("snapshot.json");
    std::fs::write(&snapshot, &rings.all_tables).unwrap();
    let ring2_post = dir.path().join("ring2-post.json");
    std::fs::write(&ring2_post, rings.events[2].post.to_string()).unwrap();
    let outbox = dir.path().join("alerts-outbox");
    let teams_url = format!(
        "{}/workflows/0a1b2c3d/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={}",
        hooks.uri(),
        v.teams_sig
    );
    let slack_url = format!("{}/services/T0000000/B0000000/{}", hooks.uri(), v.slack_token);
    let dead_slack_url = format!("http://127.0.0.1:{}/services/T0000000/B0000000/{}", free_port(), v.slack_token);
    let secrets = v.secrets(&[
        ("PATCHWATCH_SMTP_URL", &smtp_url),
        ("PATCHWATCH_SMTP_URL (wrong password)", &smtp_wrong_url),
        ("PATCHWATCH_STATE", &state),
        ("PATCHWATCH_STATE (second container)", &failing_state),
        ("second SAS signature", &failing_sig),
        ("PATCHWATCH_TEAMS_URL", &teams_url),
        ("PATCHWATCH_SLACK_URL", &slack_url),
    ]);

    // Every process gets every setting, as app settings would: a secret a process does not
    // use must not leak either (a Debug print of the configuration, say).
    let common = env(&[
        ("RUST_LOG", "trace"),
        ("LOG_FORMAT", "json"),
        ("HOME", &dir.path().display().to_string()),
        ("PATCHWATCH_CONFIG", &config.display().to_string()),
        ("PATCHWATCH_SMTP_URL", &smtp_url),
        ("PATCHWATCH_MAIL_TO", "fallback@example.com"),
        ("PATCHWATCH_STATE", &state),
        ("PATCHWATCH_ARM_ENDPOINT", &arm_server.uri()),
        ("PATCHWATCH_RESULT_GRACE_MINUTES", "0"),
        ("IDENTITY_ENDPOINT", &identity.endpoint()),
        ("IDENTITY_HEADER", &v.identity_header),
        ("PATCHWATCH_WEBHOOK_TOKEN", &v.events_token),
        ("PATCHWATCH_ALERT_TOKEN", &v.alert_token),
        ("PATCHWATCH_TEAMS_URL", &teams_url),
        ("PATCHWATCH_SLACK_URL", &slack_url),
        ("PATCHWATCH_WEBHOOK_SECRET", &v.webhook_secret),
        ("PATCHWATCH_SNOW_USER", &v.snow_user),
        ("PATCHWATCH_SNOW_PASSWORD", &v.snow_password),
        ("PATCHWATCH_ITSM_SNOW_SECRET", &v.itsm_secret),
        ("PATCHWATCH_ITSM_RUNBOOK_TOKEN", &v.itsm_bearer),
    ]);
    let snapshot_env = snapshot.display().to_string();
    let outbox_env = outbox.display().to_string();
    let ports: Vec<String> = (0..4).map(|_| free_port().to_string()).collect();
    // Handlers read run data from Resource Graph (through ARM, with the managed identity); the
    // CLI from the snapshot file.
    let mut me = Proc::start(
        "maintenance-events",
        &me_bin,
        &[],
        &with(&common, &[("FUNCTIONS_CUSTOMHANDLER_PORT", &ports[0]), ("AZURE_CLIENT_ID", PROCESSES[0].1)]),
        dir.path(),
    );
    let mut alerts = Proc::start(
        "alert-webhook",
        &alerts_bin,
        &[],
        &with(
            &common,
            &[
                ("FUNCTIONS_CUSTOMHANDLER_PORT", &ports[1]),
                ("AZURE_CLIENT_ID", PROCESSES[1].1),
                ("PATCHWATCH_OUTBOX", &outbox_env),
                ("PATCHWATCH_SNAPSHOT", &snapshot_env),
            ],
        ),
        dir.path(),
    );
    let mut itsm = Proc::start(
        "itsm-webhook",
        &itsm_bin,
        &[],
        &with(&common, &[("FUNCTIONS_CUSTOMHANDLER_PORT", &ports[2]), ("AZURE_CLIENT_ID", PROCESSES[2].1)]),
        dir.path(),
    );
    let serve_addr = format!("127.0.0.1:{}", ports[3]);
    let mut serve = Proc::start(
        "patchwatch serve",
        &cli_bin,
        &["serve", "--addr", &serve_addr],
        &with(&common, &[("PATCHWATCH_SNAPSHOT", &snapshot_env), ("AZURE_CLIENT_ID", PROCESSES[3].1)]),
        dir.path(),
    );
    let me_base = format!("http://127.0.0.1:{}", ports[0]);
    let alerts_base = format!("http://127.0.0.1:{}", ports[1]);
    let itsm_base = format!("http://127.0.0.1:{}", ports[2]);
    let serve_base = format!("http://{serve_addr}");
    let up = Duration::from_secs(30);
    let health: Vec<String> =
        [&me_base, &alerts_base, &itsm_base, &serve_base].iter().map(|b| format!("{b}/api/health")).collect();
    tokio::join!(
        me.wait_http(&health[0], up),
        alerts.wait_http(&health[1], up),
        itsm.wait_http(&health[2], up),
        serve.wait_http(&health[3], up),
    );

    let answers = Answers::default();
    let http = client();
    let ring0_post = rings.events[0].post.to_string();
    let ring0_run = correlation_id(&rings.events[0].post);

    // maintenance-events: a wrong bearer, the pre event through the Functions envelope, the post
    // event with the bearer (email, Teams, Slack, signed webhook, ServiceNow, action group).
    let events_flow = async {
        let (status, _) = answers
            .send(
                "events, wrong bearer",
                http.post(format!("{me_base}/api/events"))
                    .bearer_auth(&v.events_wrong)
                    .header("content-type", "application/json")
                    .body(ring0_post.clone()),
            )
            .await;
        assert_eq!(status, 401, "a wrong bearer must be refused");
        let envelope = json!({ "Data": { "event": rings.events[0].pre[0] },
            "Metadata": { "sys": { "MethodName": "maintenance-event" } } });
        let (status, body) =
            answers.send("pre event envelope", http.post(format!("{me_base}/maintenance-event")).json(&envelope)).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = answers
            .send(
                "events, bearer",
                http.post(format!("{me_base}/api/events"))
                    .bearer_auth(&v.events_token)
                    .header("content-type", "application/json")
                    .body(ring0_post.clone()),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["events"][0]["outcome"], "sent", "{body}");
        body
    };

    // alert-webhook (mail to an outbox): a wrong token, then `?token=` and a bearer header.
    let alerts_flow = async {
        let write = common_alert("Microsoft.Maintenance/maintenanceConfigurations/write", "Succeeded", MC, "e-1");
        let q = |t: &str| url::form_urlencoded::byte_serialize(t.as_bytes()).collect::<String>();
        let (status, _) = answers
            .send(
                "alert, wrong token",
                http.post(format!("{alerts_base}/api/alerts?token={}", q(&v.alert_wrong))).json(&write),
            )
            .await;
        assert_eq!(status, 401);
        let (status, body) = answers
            .send(
                "alert, ?token=",
                http.post(format!("{alerts_base}/api/alerts?token={}", q(&v.alert_token))).json(&write),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "done", "{body}");
        // (An assignment alert would wait in its group for the window: a configuration's own
        // delete is told at once.)
        let delete = common_alert("Microsoft.Maintenance/maintenanceConfigurations/delete", "Succeeded", MC, "e-2");
        let (status, body) = answers
            .send(
                "alert, bearer",
                http.post(format!("{alerts_base}/api/alerts")).bearer_auth(&v.alert_token).json(&delete),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    };

    // patchwatch serve: every route in one process.
    let serve_flow = async {
        let (status, _) = answers
            .send(
                "serve events, wrong bearer",
                http.post(format!("{serve_base}/api/events"))
                    .bearer_auth(&v.events_wrong)
                    .body(rings.events[1].post.to_string()),
            )
            .await;
        assert_eq!(status, 401);
        let (status, body) = answers
            .send(
                "serve events, bearer",
                http.post(format!("{serve_base}/api/events"))
                    .bearer_auth(&v.events_token)
                    .header("content-type", "application/json")
                    .body(rings.events[1].post.to_string()),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["events"][0]["outcome"], "sent", "{body}");
        let failed = common_alert(
            "Microsoft.Maintenance/applyUpdates/write",
            "Failed",
            &format!("{MC}/providers/Microsoft.Maintenance/applyUpdates/20261120100000"),
            "e-3",
        );
        let (status, body) = answers
            .send(
                "serve alert, ?token=",
                http.post(format!("{serve_base}/api/alerts?token={}", v.alert_token)).json(&failed),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let (status, _) = answers
            .send(
                "serve itsm, wrong bearer",
                http.post(format!("{serve_base}/api/itsm"))
                    .bearer_auth(&v.itsm_wrong_bearer)
                    .json(&json!({ "action": "emergency" })),
            )
            .await;
        assert_eq!(status, 401);
        let reject = json!({ "action": "reject", "requestedBy": "cab@contoso.com", "configuration": "Ring2-Prod",
            "change": "CHG0000002", "window": { "start": "2026-12-15T21:00:00Z", "end": "2026-12-16T02:00:00Z" } })
        .to_string();
        let ts = OffsetDateTime::now_utc().unix_timestamp();
        let (status, body) = answers
            .send(
                "serve itsm, signed",
                signed_request(
                    &http,
                    &format!("{serve_base}/api/itsm"),
                    WebhookMessage { id: "msg_serve_1", ts, body: &reject },
                    &v.itsm_secret,
                ),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    };

    // patchwatch replay: once through authenticated SMTP, once with a wrong SMTP password and an
    // unreachable Slack URL (on a ledger of its own, passed as --state).
    let replay_flow = async {
        let mut ok = Proc::start(
            "patchwatch replay",
            &cli_bin,
            &["replay", &ring2_post.display().to_string()],
            &with(&common, &[("PATCHWATCH_SNAPSHOT", &snapshot_env), ("AZURE_CLIENT_ID", PROCESSES[4].1)]),
            dir.path(),
        );
        let mut failing = Proc::start(
            "patchwatch replay (failing)",
            &cli_bin,
            &["replay", &ring2_post.display().to_string(), "--state", &failing_state],
            &with(
                &common,
                &[
                    ("PATCHWATCH_SNAPSHOT", &snapshot_env),
                    ("AZURE_CLIENT_ID", PROCESSES[5].1),
                    ("PATCHWATCH_SMTP_URL", &smtp_wrong_url),
                    ("PATCHWATCH_SLACK_URL", &dead_slack_url),
                ],
            ),
            dir.path(),
        );
        let (a, b) = tokio::join!(ok.wait_exit(FLOW_TIMEOUT), failing.wait_exit(FLOW_TIMEOUT));
        assert!(a.success(), "replay failed ({a}):\n{}", ok.tail(30));
        assert!(matches!(b.code(), Some(1 | 75)), "the failing replay must fail or ask for a retry, got {b}");
        (ok, failing)
    };

    let (events_answer, (), (), (replay, replay_failing)) = tokio::join!(
        bounded("the events flow", events_flow),
        bounded("the alerts flow", alerts_flow),
        bounded("the serve flow", serve_flow),
        bounded("the replay flow", replay_flow),
    );

    // itsm-webhook, after Ring0's run is recorded: wrong credentials, a signed approval and
    // acknowledgement (a ServiceNow work note), and a bearer emergency patch (installPatches
    // through ARM with the managed identity's token, its summary routed like a run's).
    let machines: Vec<String> = serde_json::from_str::<Value>(&rings.ring0_tables).unwrap()["maintenanceresources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["type"] == "microsoft.maintenance/applyupdates")
        .map(|r| r["properties"]["resourceId"].as_str().unwrap().rsplit('/').next().unwrap().to_owned())
        .take(2)
        .collect();
    assert_eq!(machines.len(), 2);
    let itsm_url = format!("{itsm_base}/api/itsm");
    let window = json!({ "start": "2026-12-15T21:00:00Z", "end": "2026-12-16T02:00:00Z" });
    let approve = json!({ "action": "approve", "requestedBy": "cab@contoso.com", "configuration": "Ring2-Prod",
        "change": "CHG0000001", "window": window })
    .to_string();
    let ack = json!({ "action": "acknowledge", "requestedBy": "oncall@contoso.com", "run": ring0_run,
        "note": "looking into KB5031364" })
    .to_string();
    let emergency = json!({ "action": "emergency", "requestedBy": "runbook@contoso.com", "requestId": "em-1",
        "configuration": "Ring0-Dev", "kbNumbers": ["KB5031364"], "rebootSetting": "Never", "maximumDuration": "PT1H",
        "machines": machines });
    bounded("the ITSM flow", async {
        let ts = OffsetDateTime::now_utc().unix_timestamp();
        let signed = |id: &str, body: &str, secret: &str| {
            signed_request(&http, &itsm_url, WebhookMessage { id, ts, body }, secret)
        };
        let (status, _) = answers.send("itsm, wrong signature", signed("msg_0", &approve, &v.itsm_wrong_secret)).await;
        assert_eq!(status, 401);
        let wrong = http.post(&itsm_url).bearer_auth(&v.itsm_wrong_bearer).json(&emergency);
        let (status, _) = answers.send("itsm, wrong bearer", wrong).await;
        assert_eq!(status, 401);
        let (status, body) = answers.send("itsm, signed approve", signed("msg_1", &approve, &v.itsm_secret)).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = answers.send("itsm, signed acknowledge", signed("msg_2", &ack, &v.itsm_secret)).await;
        assert_eq!(status, 200, "{body}");
        let bearer = http.post(&itsm_url).bearer_auth(&v.itsm_bearer).json(&emergency);
        let (status, body) = answers.send("itsm, bearer emergency", bearer).await;
        assert_eq!(status, 202, "{body}");
        // The patching runs in the background: wait for its "finished" notice.
        let finished = |m: &integration_tests::smtp::Sent| {
            let subject = m.subject();
            subject.contains("Emergency patch") && subject.contains("finished")
        };
        while !smtp.wait_for(0, Duration::ZERO).await.iter().any(finished) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;

    // `patchwatch deliveries` prints the ledger (destinations, errors) read through the SAS URL.
    let mut deliveries =
        Proc::start("patchwatch deliveries", &cli_bin, &["deliveries", "--state", &state], &common, dir.path());
    let status = deliveries.wait_exit(FLOW_TIMEOUT).await;
    assert!(status.success(), "deliveries failed ({status}):\n{}", deliveries.tail(20));
    let listed = deliveries.stdout.lock().unwrap().join("\n");
    assert!(listed.contains("sent") && listed.contains("Ring0-Dev"), "deliveries lists nothing:\n{listed}");

    // Stop the servers (SIGTERM, as the Functions host does) and gather everything.
    let mut procs = vec![me, alerts, itsm, serve, replay, replay_failing, deliveries];
    for p in &mut procs {
        p.stop(Duration::from_secs(5)).await;
    }

    // --- The flows really happened. ---
    let auth = smtp.auth_attempts();
    assert!(
        auth.iter().any(|a| a.ok && (a.mechanism == "PLAIN" || a.mechanism == "LOGIN")),
        "the SMTP server saw no successful AUTH: {auth:?}"
    );
    assert!(auth.iter().any(|a| !a.ok), "the wrong SMTP password was never tried: {auth:?}");
    let mail = smtp.wait_for(0, Duration::ZERO).await;
    let subjects: Vec<String> = mail.iter().map(|m| m.subject()).collect();
    for wanted in ["Ring0-Dev", "Ring1-PreProd", "Ring2-Prod", "Emergency patch", "approved"] {
        assert!(
            subjects.iter().any(|s| s.contains(wanted)),
            "no mail about {wanted:?} over authenticated SMTP: {subjects:#?}"
        );
    }
    let outbox_files = files_under(&outbox);
    assert!(
        outbox_files.iter().filter(|p| p.extension().is_some_and(|e| e == "eml")).count() >= 2,
        "alert notices: {outbox_files:?}"
    );
    let hook_requests = hooks.received_requests().await.unwrap();
    let at = |prefix: &str| hook_requests.iter().filter(|r| r.url.path().starts_with(prefix)).collect::<Vec<_>>();
    let webhooks = at("/hook");
    assert!(webhooks.len() >= 4, "signed webhooks: {}", webhooks.len());
    for r in &webhooks {
        assert!(signed_by(r, &v.webhook_secret), "a webhook without a valid Standard Webhooks signature");
    }
    assert!(
        at("/workflows/").iter().any(|r| r.url.query_pairs().any(|(k, s)| k == "sig" && s == v.teams_sig.as_str())),
        "no Teams card reached the signed Workflows URL"
    );
    assert!(!at(&format!("/services/T0000000/B0000000/{}", v.slack_token)).is_empty(), "no Slack message");
    let ag_hooks = at("/ag-hook");
    assert!(
        ag_hooks.iter().any(|r| r.url.query_pairs().any(|(k, c)| k == "code" && c == v.ag_code.as_str())),
        "the action group's webhook receiver got nothing"
    );
    let expected_basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", v.snow_user, v.snow_password))
    );
    let snow_requests = snow_server.received_requests().await.unwrap();
    assert!(!snow_requests.is_empty(), "ServiceNow was never called");
    for r in &snow_requests {
        assert_eq!(
            r.headers.get("authorization").map(|h| h.as_bytes()),
            Some(expected_basic.as_bytes()),
            "ServiceNow got a request without the configured basic auth"
        );
    }
    let incidents = snow.all();
    assert!(!incidents.is_empty(), "no ServiceNow incident for Ring0's failures");
    assert!(
        incidents.iter().any(|i| i["journal"]
            .as_array()
            .is_some_and(|j| j.iter().any(|n| n.as_str().is_some_and(|n| n.contains("looking into"))))),
        "the acknowledgement's work note is missing: {incidents:?}"
    );
    // Every process that calls ARM fetched its own identity's token and ARM saw exactly that
    // token (alert-webhook has no ARM call to make).
    let served = identity.served().await;
    assert_eq!(identity.requests().await, served.len(), "a token request broke the documented contract");
    let calls = arm.calls();
    assert!(calls.iter().all(|c| c.token.is_some()), "ARM got a call without a managed identity's token");
    for (i, (name, client_id)) in PROCESSES.iter().enumerate().filter(|(_, (name, _))| *name != "alert-webhook") {
        assert!(served.iter().any(|c| c == client_id), "{name} never fetched a managed-identity token: {served:?}");
        let own = arm.with_token(i);
        assert!(
            own.iter().any(|c| c.path.to_ascii_lowercase().ends_with("/actiongroups/ag-patching")),
            "{name} never read the action group with its token: {own:?}"
        );
    }
    let by =
        |i: usize, what: &str| arm.with_token(i).iter().filter(|c| c.path.to_ascii_lowercase().contains(what)).count();
    assert!(by(0, "/providers/microsoft.resourcegraph/resources") >= 3, "maintenance-events' Resource Graph queries");
    assert!(by(2, "/providers/microsoft.resourcegraph/resources") >= 1, "itsm-webhook's Resource Graph queries");
    assert_eq!(by(2, "/installpatches"), 2, "itsm-webhook's installPatches calls");
    assert!(arm.authorized("GET", "/operations/op-") >= 2, "the installPatches operations were polled");
    // maintenance-events delivered Ring0's summary on every channel: email over authenticated
    // SMTP, Teams, Slack, the signed webhook, ServiceNow, and the action group's receivers.
    let deliveries = events_answer["events"][0]["deliveries"].as_array().cloned().unwrap_or_default();
    let targets: Vec<&str> = deliveries.iter().filter_map(|d| d["target"].as_str()).collect();
    for d in &deliveries {
        assert_eq!(d["outcome"], "sent", "{d}");
    }
    for channel in [
        "everything.ops",
        "everything.oncall-teams",
        "everything.ops-slack",
        "everything.cmdb-webhook",
        "everything.servicenow",
        "everything.ag.email-",
        "everything.ag.webhook-",
    ] {
        assert!(targets.iter().any(|t| t.starts_with(channel)), "no {channel} delivery: {targets:?}");
    }
    let mut stored = blobs(&state).await;
    assert!(stored.len() >= 10, "ledger and history records in Azurite: {}", stored.len());
    stored.extend(blobs(&failing_state).await);

    // --- The logs are real trace-level JSON logs. ---
    let mut total = 0;
    let mut traced_crates = std::collections::BTreeSet::new();
    for p in &procs {
        let lines = p.stderr.lock().unwrap().clone();
        let json: Vec<Value> = lines.iter().filter_map(|l| serde_json::from_str::<Value>(l).ok()).collect();
        assert!(lines.len() >= 50, "{}: only {} log lines", p.name, lines.len());
        assert!(json.len() * 10 >= lines.len() * 9, "{}: {} of {} lines are JSON", p.name, json.len(), lines.len());
        let trace: Vec<&Value> = json.iter().filter(|l| l["level"] == "TRACE").collect();
        assert!(!trace.is_empty(), "{}: no TRACE line", p.name);
        for l in &trace {
            if let Some(t) = l["target"].as_str() {
                traced_crates.insert(t.split("::").next().unwrap_or(t).to_owned());
            }
        }
        total += lines.len();
    }
    // hyper itself logs only with its unstable `tracing` cfg; its client (hyper_util) and reqwest do.
    for krate in ["hyper_util", "reqwest"] {
        assert!(traced_crates.contains(krate), "no TRACE line from {krate}: {traced_crates:?}");
    }

    // --- The search finds every secret where it legitimately travels, so finding none below
    // means something: URLs, the SMTP URL's userinfo, the SAS query, the headers on the wire. ---
    let header_values = |requests: &[wiremock::Request], name: &str| -> String {
        requests
            .iter()
            .filter_map(|r| r.headers.get(name).and_then(|h| h.to_str().ok()).map(str::to_owned))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let hook_urls: String = hook_requests.iter().map(|r| format!("{}\n", r.url)).collect();
    let arm_requests = arm_server.received_requests().await.unwrap();
    let identity_requests = identity.server.received_requests().await.unwrap();
    let plain = base64::engine::general_purpose::STANDARD.encode(format!("\0{}\0{}", v.smtp_user, v.smtp_password));
    for (label, text) in [
        ("smtp user", smtp_url.clone()),
        ("smtp password", smtp_url.clone()),
        ("SMTP AUTH PLAIN", format!("AUTH PLAIN {plain}")),
        ("SAS signature", state.clone()),
        ("Teams URL sig", hook_urls.clone()),
        ("Slack URL token", hook_urls.clone()),
        ("action group receiver code", hook_urls.clone()),
        ("ServiceNow user", header_values(&snow_requests, "authorization")),
        ("ServiceNow password", header_values(&snow_requests, "authorization")),
        ("ServiceNow basic-auth pair", header_values(&snow_requests, "authorization")),
        ("managed identity access token of maintenance-events", header_values(&arm_requests, "authorization")),
        ("managed identity access token of itsm-webhook", header_values(&arm_requests, "authorization")),
        ("IDENTITY_HEADER", header_values(&identity_requests, "x-identity-header")),
    ] {
        assert!(secrets.finds(label, &text), "the search does not find {label} where it travels");
    }

    // --- No secret anywhere. ---
    let mut leaks: Vec<Leak> = Vec::new();
    for p in &procs {
        leaks.extend(secrets.scan(&format!("{} stderr", p.name), &p.stderr.lock().unwrap().join("\n")));
        leaks.extend(secrets.scan(&format!("{} stdout", p.name), &p.stdout.lock().unwrap().join("\n")));
    }
    for f in &outbox_files {
        let data = std::fs::read(f).unwrap();
        leaks.extend(secrets.scan_bytes(&format!("outbox {}", f.display()), &data));
        if f.extension().is_some_and(|e| e == "eml") {
            leaks.extend(secrets.scan(&format!("outbox {} (decoded)", f.display()), &mail_text(&data)));
        }
    }
    for (name, data) in &stored {
        leaks.extend(secrets.scan_bytes(&format!("blob {name}"), data));
    }
    for (i, m) in mail.iter().enumerate() {
        leaks.extend(secrets.scan_bytes(&format!("mail #{i} {:?}", m.subject()), &m.raw));
        leaks.extend(secrets.scan(&format!("mail #{i} {:?} (decoded)", m.subject()), &mail_text(&m.raw)));
    }
    // What went out: bodies everywhere; headers too, except the one credential each receiver
    // is meant to get (hook URLs carry their own secret, so only their headers and bodies count).
    let headers_except = |r: &wiremock::Request, skip: &str| -> String {
        r.headers
            .iter()
            .filter(|(k, _)| k.as_str() != skip)
            .map(|(k, v)| format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())))
            .collect()
    };
    for r in &hook_requests {
        let place = r.url.path().split('/').take(2).collect::<Vec<_>>().join("/");
        leaks.extend(secrets.scan_bytes(&format!("body sent to {place}"), &r.body));
        leaks.extend(secrets.scan(&format!("headers sent to {place}"), &headers_except(r, "")));
    }
    for (name, requests) in [("ServiceNow", &snow_requests), ("ARM", &arm_requests)] {
        for r in requests {
            leaks.extend(secrets.scan_bytes(&format!("body sent to {name} {}", r.url.path()), &r.body));
            let rest = format!("{} {}\n{}", r.method, r.url, headers_except(r, "authorization"));
            leaks.extend(secrets.scan(&format!("request line and headers sent to {name}"), &rest));
        }
    }
    for (what, text) in answers.0.lock().unwrap().iter() {
        leaks.extend(secrets.scan(&format!("answer to {what}"), text));
    }
    eprintln!(
        "secrets test: {total} log lines from {} processes, {} blobs, {} mails, {} outbox files, \
         {} webhook/chat requests, {} needles; TRACE from {traced_crates:?}; {:.1} s",
        procs.len(),
        stored.len(),
        mail.len(),
        outbox_files.len(),
        hook_requests.len(),
        secrets.needles().len(),
        started.elapsed().as_secs_f64()
    );
    if let Some(keep) = std::env::var_os("PATCHWATCH_TEST_KEEP_LOGS") {
        // For investigating: every process's output, as captured.
        std::fs::create_dir_all(&keep).unwrap();
        for p in &procs {
            let name = p.name.replace([' ', '(', ')'], "_");
            std::fs::write(Path::new(&keep).join(format!("{name}.stderr")), p.stderr.lock().unwrap().join("\n"))
                .unwrap();
            std::fs::write(Path::new(&keep).join(format!("{name}.stdout")), p.stdout.lock().unwrap().join("\n"))
                .unwrap();
        }
    }
    if !leaks.is_empty() {
        let mut by_source: std::collections::BTreeMap<(String, String), usize> = std::collections::BTreeMap::new();
        for l in &leaks {
            *by_source.entry((l.secret.clone(), l.target.clone().unwrap_or_else(|| l.place.clone()))).or_default() += 1;
        }
        let summary: Vec<String> = by_source.iter().map(|((s, t), n)| format!("  {s} via {t}: {n}")).collect();
        let shown: Vec<String> = leaks.iter().take(40).map(ToString::to_string).collect();
        panic!("{} secret leaks:\n{}\n\nfirst {}:\n{}", leaks.len(), summary.join("\n"), shown.len(), shown.join("\n"));
    }
}
