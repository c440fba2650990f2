//! Configuration, read once at start-up from environment variables.
//!
//! `Config::from_lookup` takes any lookup function so tests inject a map instead of mutating
//! the process environment. Variable names are the external contract in `design.md`.

use std::{path::PathBuf, time::Duration};

use lettre::message::Mailbox;
use url::Url;

use patchwatch_azure::credential::Identity;
pub use patchwatch_azure::{DEFAULT_ARM_ENDPOINT, DEFAULT_ARM_SCOPE};
use patchwatch_model::routing::Routing;
pub use patchwatch_model::secret::Secret;

/// Where mail goes.
#[derive(Clone, Debug)]
pub enum MailTarget {
    /// An SMTP server URL in lettre syntax (`smtp://`, `smtps://`, `?tls=required`, credentials).
    Smtp(Secret),
    /// A directory that receives every message as `.eml` plus `.html`.
    Outbox(PathBuf),
}

/// Where run data comes from.
#[derive(Clone, Debug)]
pub enum DataSource {
    /// A JSON snapshot of ARG tables (`PATCHWATCH_SNAPSHOT`).
    Snapshot(PathBuf),
    /// Azure Resource Graph over REST.
    ResourceGraph,
}

/// Every setting patchwatch reads from its environment.
#[derive(Clone, Debug)]
pub struct Config {
    pub mail: MailTarget,
    pub mail_from: Mailbox,
    pub mail_to: Vec<Mailbox>,
    pub data: DataSource,
    pub arm_endpoint: Url,
    pub arm_scope: String,
    /// How long after the post event missing results are waited for before they count as NoResult.
    pub result_grace: Duration,
    pub templates_dir: Option<PathBuf>,
    pub portal_url: Url,
    /// User-assigned managed identity client id (`AZURE_CLIENT_ID`).
    pub azure_client_id: Option<String>,
    /// Set when the platform provides a managed-identity endpoint.
    pub managed_identity: bool,
    /// State store URL for the ledger and run history (`file:///…` or a blob container URL,
    /// possibly with a SAS token, hence secret).
    pub state: Secret,
    /// How long a delivery claim is held before another sender may take it over.
    pub lease: Duration,
    /// How long run history is kept.
    pub history_days: u32,
    /// Routes and channels from `PATCHWATCH_CONFIG`; `None` sends every summary to `mail_to`.
    pub routing: Option<std::sync::Arc<patchwatch_model::routing::Routing>>,
    /// The values of the environment variables the routing file names for channel secrets.
    pub channel_secrets: std::collections::BTreeMap<String, Secret>,
    /// When set, `POST /api/events` needs `Authorization: Bearer <token>` (an Event Grid
    /// subscription's static delivery header).
    pub webhook_token: Option<Secret>,
    /// When set, `POST /api/alerts` needs it as `?token=` (action groups cannot add headers)
    /// or `Authorization: Bearer`.
    pub alert_token: Option<Secret>,
    /// With `AZURE_CLIENT_ID`, a service principal's secret (hosts without managed identity, such as AWS Lambda).
    pub azure_tenant_id: Option<String>,
    pub azure_client_secret: Option<Secret>,
    /// When set (`PATCHWATCH_EVENTS_AUDIENCE`), `POST /api/events` also accepts Event Grid's
    /// Microsoft Entra ID bearer token for this application and tenant (see [`patchwatch_azure::entra`]).
    pub events_entra: Option<EventsEntra>,
    /// One-click action links (`PATCHWATCH_ACTION_KEYS`, `PATCHWATCH_PUBLIC_URL`,
    /// `PATCHWATCH_ACTION_TTL`); `None` unless keys and address are both set.
    pub action_links: Option<crate::links::ActionLinks>,
    /// `PATCHWATCH_POISON_QUEUE`: the queue trigger's poison queue URL (optionally with a SAS
    /// token, hence secret), peeked by `undelivered::check`.
    pub poison_queue: Option<Secret>,
    /// `PATCHWATCH_DEADLETTER_CONTAINER`: Event Grid's dead-letter blob container URL
    /// (optionally with a SAS token), listed by `undelivered::check`.
    pub deadletter_container: Option<Secret>,
}

/// Entra ID delivery on `/api/events`: whose tokens are accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventsEntra {
    /// `PATCHWATCH_EVENTS_AUDIENCE`: the webhook application's id or application ID URI.
    pub audience: String,
    /// `PATCHWATCH_EVENTS_TENANT`, else `AZURE_TENANT_ID`: tenant id (GUID) or verified domain.
    pub tenant: String,
    /// `PATCHWATCH_ENTRA_AUTHORITY`: `https://login.microsoftonline.com` unless a sovereign cloud
    /// (or, in tests, a loopback fake).
    pub authority: Url,
}

impl From<&EventsEntra> for patchwatch_azure::entra::EntraSettings {
    fn from(e: &EventsEntra) -> Self {
        Self::new(e.tenant.clone(), e.audience.clone(), e.authority.clone())
    }
}

/// Reads a routing file; issues are formatted `file:line:column: level: message`.
pub fn load_routing(path: &std::path::Path, env: &dyn Fn(&str) -> bool) -> Result<(Routing, Vec<String>), Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| vec![format!("{}: {e}", path.display())])?;
    patchwatch_model::routing::parse_file(&path.display().to_string(), &text, env)
}

/// A configuration problem, naming the variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is required: {hint}")]
    Missing { name: &'static str, hint: &'static str },
    #[error("{name} is invalid: {problem}")]
    Invalid { name: &'static str, problem: String },
    #[error("PATCHWATCH_CONFIG has problems:\n{0}")]
    Routing(String),
    #[error(
        "{0} is a Key Vault reference the platform could not resolve (check the app's identity has Key Vault Secrets User on the secret)"
    )]
    UnresolvedReference(String),
    #[error("{var} is required by {channel:?} of PATCHWATCH_CONFIG")]
    ChannelSecret { channel: String, var: String },
}

/// Defaults a particular binary applies when a variable is unset.
#[derive(Clone, Debug, Default)]
pub struct Defaults {
    pub outbox: Option<PathBuf>,
    pub snapshot: Option<PathBuf>,
    /// State store URL when `PATCHWATCH_STATE` is unset; `None` makes it required.
    pub state: Option<String>,
}

/// `file://` URL of the local data directory's state store: `$XDG_DATA_HOME/patchwatch/state`,
/// else `$HOME/.local/share/patchwatch/state`, else `./.patchwatch/state`.
pub fn local_state_url(lookup: impl Fn(&str) -> Option<String>) -> String {
    let base = lookup("XDG_DATA_HOME")
        .filter(|v| v.starts_with('/'))
        .map(PathBuf::from)
        .or_else(|| lookup("HOME").filter(|v| v.starts_with('/')).map(|h| PathBuf::from(h).join(".local/share")))
        .map(|b| b.join("patchwatch/state"))
        .unwrap_or_else(|| std::env::current_dir().unwrap_or_default().join(".patchwatch/state"));
    format!("file://{}", base.display())
}

/// Whether this process runs on a cloud host, where local disk is not durable state.
pub fn on_cloud_host(lookup: impl Fn(&str) -> Option<String>) -> bool {
    ["WEBSITE_INSTANCE_ID", "WEBSITE_SITE_NAME", "IDENTITY_ENDPOINT", "AWS_LAMBDA_RUNTIME_API"]
        .iter()
        .any(|k| lookup(k).is_some_and(|v| !v.is_empty()))
}

pub const DEFAULT_GRACE_MINUTES: u64 = 15;
const DEFAULT_FROM: &str = "patchwatch <patchwatch@localhost>";

impl Config {
    /// The Azure identity this configuration names.
    pub fn identity(&self) -> Identity {
        Identity {
            managed_identity: self.managed_identity,
            tenant_id: self.azure_tenant_id.clone(),
            client_id: self.azure_client_id.clone(),
            client_secret: self.azure_client_secret.clone(),
        }
    }

    /// Reads the process environment.
    pub fn from_env(defaults: &Defaults) -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok(), defaults)
    }

    /// Reads settings through `lookup`; empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>, defaults: &Defaults) -> Result<Self, ConfigError> {
        let env = Env::new(lookup);
        let get = |k: &str| env.get(k);
        let mail = mail_target(&get, defaults)?;
        let mail_from = parse_mailbox(
            "PATCHWATCH_MAIL_FROM",
            &get("PATCHWATCH_MAIL_FROM").unwrap_or_else(|| DEFAULT_FROM.to_owned()),
        )?;
        let mail_to = mail_recipients(&get, &mail)?;
        let data = data_source(&get, defaults);
        let arm_endpoint = parse_url(
            "PATCHWATCH_ARM_ENDPOINT",
            &get("PATCHWATCH_ARM_ENDPOINT").unwrap_or_else(|| DEFAULT_ARM_ENDPOINT.to_owned()),
        )?;
        let result_grace = result_grace(get("PATCHWATCH_RESULT_GRACE_MINUTES"))?;
        let portal_url = parse_url(
            "PATCHWATCH_PORTAL_URL",
            &get("PATCHWATCH_PORTAL_URL").unwrap_or_else(|| "https://portal.azure.com".to_owned()),
        )?;
        let state = get("PATCHWATCH_STATE").or_else(|| defaults.state.clone()).ok_or(ConfigError::Missing {
            name: "PATCHWATCH_STATE",
            hint: "on a cloud host the delivery ledger needs durable state: a blob container URL such as https://<account>.blob.core.windows.net/patchwatch",
        })?;
        let lease = Duration::from_secs(parse_number(
            "PATCHWATCH_LEASE_SECONDS",
            get("PATCHWATCH_LEASE_SECONDS"),
            300,
            1,
            3600,
        )?);
        let history_days =
            parse_number("PATCHWATCH_HISTORY_DAYS", get("PATCHWATCH_HISTORY_DAYS"), 400, 1, 3650)? as u32;
        let routing = routing_file(&get)?;
        let channel_secrets = channel_secrets(&get, routing.as_deref())?;
        let webhook_token = get("PATCHWATCH_WEBHOOK_TOKEN").map(Secret::new);
        let alert_token = get("PATCHWATCH_ALERT_TOKEN").map(Secret::new);
        let azure_tenant_id = get("AZURE_TENANT_ID");
        let azure_client_secret = get("AZURE_CLIENT_SECRET").map(Secret::new);
        // Checked after the Key Vault references: an unresolved one explains a missing tenant.
        let events_entra = events_entra(&get);
        let action_links = crate::links::ActionLinks::from_settings(&get);
        let poison_queue = get("PATCHWATCH_POISON_QUEUE").map(Secret::new);
        let deadletter_container = get("PATCHWATCH_DEADLETTER_CONTAINER").map(Secret::new);
        env.check_resolved()?;
        let action_links = action_links?;
        let events_entra = events_entra.transpose()?;
        Ok(Self {
            action_links,
            webhook_token,
            alert_token,
            azure_tenant_id,
            azure_client_secret,
            events_entra,
            poison_queue,
            deadletter_container,
            routing,
            channel_secrets,
            state: Secret::new(state),
            lease,
            history_days,
            mail,
            mail_from,
            mail_to,
            data,
            arm_endpoint,
            arm_scope: get("PATCHWATCH_ARM_SCOPE").unwrap_or_else(|| DEFAULT_ARM_SCOPE.to_owned()),
            result_grace,
            templates_dir: get("PATCHWATCH_TEMPLATES").map(PathBuf::from),
            portal_url,
            azure_client_id: get("AZURE_CLIENT_ID"),
            managed_identity: get("IDENTITY_ENDPOINT").is_some() && get("IDENTITY_HEADER").is_some(),
        })
    }
}

/// The environment as `Config::from_lookup` reads it: trimmed, with empty values unset.
///
/// App Service leaves a Key Vault reference it could not resolve as the literal
/// `@Microsoft.KeyVault(...)` text: a known string must never pass for a secret, so such a value
/// reads as unset and the first variable holding one is remembered for [`Env::check_resolved`].
struct Env<F> {
    lookup: F,
    unresolved: std::cell::RefCell<Option<String>>,
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    fn new(lookup: F) -> Self {
        Self { lookup, unresolved: std::cell::RefCell::new(None) }
    }

    fn get(&self, k: &str) -> Option<String> {
        let v = (self.lookup)(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())?;
        if v.starts_with("@Microsoft.KeyVault(") {
            self.unresolved.borrow_mut().get_or_insert_with(|| k.to_owned());
            return None;
        }
        Some(v)
    }

    /// Fails naming the first variable read so far that held an unresolved reference.
    fn check_resolved(&self) -> Result<(), ConfigError> {
        match self.unresolved.borrow().clone() {
            Some(name) => Err(ConfigError::UnresolvedReference(name)),
            None => Ok(()),
        }
    }
}

/// An outbox directory wins over an SMTP URL; a binary's default outbox applies when neither is set.
fn mail_target(get: &impl Fn(&str) -> Option<String>, defaults: &Defaults) -> Result<MailTarget, ConfigError> {
    match (get("PATCHWATCH_OUTBOX"), get("PATCHWATCH_SMTP_URL")) {
        (Some(dir), _) => Ok(MailTarget::Outbox(PathBuf::from(dir))),
        (None, Some(url)) => {
            check_smtp_url(&url)?;
            Ok(MailTarget::Smtp(Secret::new(url)))
        }
        (None, None) => match &defaults.outbox {
            Some(dir) => Ok(MailTarget::Outbox(dir.clone())),
            None => Err(ConfigError::Missing {
                name: "PATCHWATCH_SMTP_URL",
                hint: "set an SMTP URL such as smtp://host:587?tls=required, or PATCHWATCH_OUTBOX to a directory",
            }),
        },
    }
}

/// `PATCHWATCH_MAIL_TO`: required for real mail; an outbox gets a placeholder recipient.
fn mail_recipients(get: &impl Fn(&str) -> Option<String>, mail: &MailTarget) -> Result<Vec<Mailbox>, ConfigError> {
    match get("PATCHWATCH_MAIL_TO") {
        Some(list) => parse_mailbox_list("PATCHWATCH_MAIL_TO", &list),
        None => match mail {
            MailTarget::Outbox(_) => Ok(vec![parse_mailbox("PATCHWATCH_MAIL_TO", "operations@localhost")?]),
            MailTarget::Smtp(_) => {
                Err(ConfigError::Missing { name: "PATCHWATCH_MAIL_TO", hint: "comma-separated recipient addresses" })
            }
        },
    }
}

/// A snapshot file when one is named (or defaulted), else Resource Graph.
fn data_source(get: &impl Fn(&str) -> Option<String>, defaults: &Defaults) -> DataSource {
    match get("PATCHWATCH_SNAPSHOT").map(PathBuf::from).or_else(|| defaults.snapshot.clone()) {
        Some(path) => DataSource::Snapshot(path),
        None => DataSource::ResourceGraph,
    }
}

/// `PATCHWATCH_RESULT_GRACE_MINUTES`: at most a day, so a lost result cannot hold a summary back for long.
fn result_grace(value: Option<String>) -> Result<Duration, ConfigError> {
    match value {
        Some(v) => Ok(Duration::from_secs(
            v.parse::<u64>().ok().filter(|m| *m <= 24 * 60).ok_or_else(|| ConfigError::Invalid {
                name: "PATCHWATCH_RESULT_GRACE_MINUTES",
                problem: format!("expected whole minutes between 0 and 1440, got {v:?}"),
            })? * 60,
        )),
        None => Ok(Duration::from_secs(DEFAULT_GRACE_MINUTES * 60)),
    }
}

/// The routing file `PATCHWATCH_CONFIG` names; its warnings are logged, its errors refuse start-up.
fn routing_file(get: &impl Fn(&str) -> Option<String>) -> Result<Option<std::sync::Arc<Routing>>, ConfigError> {
    let Some(path) = get("PATCHWATCH_CONFIG") else { return Ok(None) };
    let (routing, warnings) = load_routing(std::path::Path::new(&path), &|k| get(k).is_some())
        .map_err(|problems| ConfigError::Routing(problems.join("\n")))?;
    for w in warnings {
        tracing::warn!(problem = %w, "PATCHWATCH_CONFIG");
    }
    Ok(Some(std::sync::Arc::new(routing)))
}

/// The secrets the routing file's channels and control callers name: each must be set, so a
/// misconfigured channel fails at start-up rather than at its first delivery.
fn channel_secrets(
    get: &impl Fn(&str) -> Option<String>,
    routing: Option<&Routing>,
) -> Result<std::collections::BTreeMap<String, Secret>, ConfigError> {
    let mut channel_secrets = std::collections::BTreeMap::new();
    for (channel, spec) in routing.iter().flat_map(|r| r.channels.iter()) {
        for var in spec.env_vars() {
            let value =
                get(var).ok_or_else(|| ConfigError::ChannelSecret { channel: channel.clone(), var: var.to_owned() })?;
            channel_secrets.insert(var.to_owned(), Secret::new(value));
        }
    }
    for (caller, var) in routing.iter().flat_map(|r| r.control.secret_vars()) {
        let value = get(&var).ok_or_else(|| ConfigError::ChannelSecret { channel: caller, var: var.clone() })?;
        channel_secrets.insert(var, Secret::new(value));
    }
    Ok(channel_secrets)
}

/// Entra ID delivery when `PATCHWATCH_EVENTS_AUDIENCE` is set. Its error is returned, not raised,
/// so the caller can first report an unresolved Key Vault reference that may explain it.
fn events_entra(get: &impl Fn(&str) -> Option<String>) -> Option<Result<EventsEntra, ConfigError>> {
    match get("PATCHWATCH_EVENTS_AUDIENCE") {
        Some(audience) => Some(parse_events_entra(audience, get)),
        None => {
            if get("PATCHWATCH_EVENTS_TENANT").is_some() {
                tracing::warn!(
                    "PATCHWATCH_EVENTS_TENANT is set without PATCHWATCH_EVENTS_AUDIENCE: Entra ID delivery stays off."
                );
            }
            None
        }
    }
}

/// `PATCHWATCH_EVENTS_AUDIENCE` with its tenant and authority.
fn parse_events_entra(audience: String, get: &impl Fn(&str) -> Option<String>) -> Result<EventsEntra, ConfigError> {
    if audience.len() > 512 || audience.contains(|c: char| c.is_whitespace() || c == ',') {
        return Err(ConfigError::Invalid {
            name: "PATCHWATCH_EVENTS_AUDIENCE",
            problem: "expected one application (client) id or application ID URI, such as api://<application id>"
                .to_owned(),
        });
    }
    let (tenant_var, tenant) = match (get("PATCHWATCH_EVENTS_TENANT"), get("AZURE_TENANT_ID")) {
        (Some(t), _) => ("PATCHWATCH_EVENTS_TENANT", t),
        (None, Some(t)) => ("AZURE_TENANT_ID", t),
        (None, None) => {
            return Err(ConfigError::Missing {
                name: "PATCHWATCH_EVENTS_TENANT",
                hint: "PATCHWATCH_EVENTS_AUDIENCE is set: name the Entra tenant (id or domain) whose tokens /api/events accepts (AZURE_TENANT_ID is used when set)",
            });
        }
    };
    if matches!(tenant.to_ascii_lowercase().as_str(), "common" | "organizations" | "consumers") {
        return Err(ConfigError::Invalid {
            name: tenant_var,
            problem: format!(
                "{tenant:?} is a multi-tenant authority; Event Grid tokens are checked against one tenant: give its id"
            ),
        });
    }
    let domain = tenant.contains('.')
        && tenant
            .split('.')
            .all(|l| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if !patchwatch_model::resource_id::is_guid(&tenant) && !domain {
        return Err(ConfigError::Invalid {
            name: tenant_var,
            problem: format!("expected a tenant id (GUID) or domain such as contoso.onmicrosoft.com, got {tenant:?}"),
        });
    }
    let name = "PATCHWATCH_ENTRA_AUTHORITY";
    let authority =
        parse_url(name, &get(name).unwrap_or_else(|| patchwatch_azure::entra::DEFAULT_AUTHORITY.to_owned()))?;
    let loopback = matches!(authority.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    if authority.scheme() != "https" && !loopback {
        return Err(ConfigError::Invalid {
            name,
            problem: "the signing keys must come over https (plain http only to a loopback address)".to_owned(),
        });
    }
    if authority.query().is_some() || authority.fragment().is_some() {
        return Err(ConfigError::Invalid { name, problem: "expected a base URL without query or fragment".to_owned() });
    }
    Ok(EventsEntra { audience, tenant, authority })
}

fn parse_number(
    name: &'static str,
    value: Option<String>,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => v.parse::<u64>().ok().filter(|n| (min..=max).contains(n)).ok_or_else(|| ConfigError::Invalid {
            name,
            problem: format!("expected a whole number from {min} to {max}, got {v:?}"),
        }),
    }
}

fn parse_url(name: &'static str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value).map_err(|e| ConfigError::Invalid { name, problem: format!("{e} in {value:?}") })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::Invalid {
            name,
            problem: format!("expected an http(s) URL, got scheme {:?}", url.scheme()),
        });
    }
    Ok(url)
}

/// Validates the SMTP URL without echoing it (it may carry a password).
fn check_smtp_url(value: &str) -> Result<(), ConfigError> {
    let name = "PATCHWATCH_SMTP_URL";
    let url = Url::parse(value).map_err(|e| ConfigError::Invalid { name, problem: e.to_string() })?;
    if !matches!(url.scheme(), "smtp" | "smtps") {
        return Err(ConfigError::Invalid {
            name,
            problem: format!("expected smtp:// or smtps://, got {:?}", url.scheme()),
        });
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::Invalid { name, problem: "no host".to_owned() });
    }
    let tls = url.scheme() == "smtps" || url.query_pairs().any(|(k, v)| k == "tls" && v == "required");
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    if !url.username().is_empty() && !tls && !loopback {
        return Err(ConfigError::Invalid {
            name,
            problem:
                "credentials need TLS: use smtps:// or add ?tls=required, or the password crosses the network in clear"
                    .to_owned(),
        });
    }
    Ok(())
}

fn parse_mailbox(name: &'static str, value: &str) -> Result<Mailbox, ConfigError> {
    value
        .parse::<Mailbox>()
        .map_err(|e| ConfigError::Invalid { name, problem: format!("{value:?} is not an email address ({e})") })
}

fn parse_mailbox_list(name: &'static str, value: &str) -> Result<Vec<Mailbox>, ConfigError> {
    let list = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| parse_mailbox(name, s))
        .collect::<Result<Vec<_>, _>>()?;
    if list.is_empty() {
        return Err(ConfigError::Invalid { name, problem: "no address given".to_owned() });
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn unresolved_key_vault_references_stop_start_up() {
        let vars = HashMap::from([
            ("PATCHWATCH_OUTBOX", "/tmp/x"),
            ("PATCHWATCH_STATE", "file:///tmp/x"),
            ("PATCHWATCH_WEBHOOK_TOKEN", "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/token/)"),
        ]);
        let err = Config::from_lookup(|k| vars.get(k).map(|v| (*v).to_owned()), &Defaults::default()).unwrap_err();
        assert!(err.to_string().starts_with("PATCHWATCH_WEBHOOK_TOKEN is a Key Vault reference"), "{err}");
    }

    fn cfg(vars: &[(&str, &str)], defaults: &Defaults) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Config::from_lookup(|k| map.get(k).cloned(), defaults)
    }

    #[test]
    fn config_without_mail_target_names_the_variable() {
        let err = cfg(&[], &Defaults::default()).unwrap_err().to_string();
        assert!(err.contains("PATCHWATCH_SMTP_URL"), "{err}");
    }

    #[test]
    fn config_smtp_url_password_never_in_debug_or_errors() {
        let c = cfg(
            &[
                ("PATCHWATCH_SMTP_URL", "smtp://user:hunter2@127.0.0.1:2525"),
                ("PATCHWATCH_MAIL_TO", "a@example.com, b@example.com"),
                ("PATCHWATCH_STATE", "https://acct.blob.core.windows.net/state?sv=2022&sig=topsecret"),
            ],
            &Defaults::default(),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{c:?}").contains("topsecret"), "a SAS signature reached Debug output");
        assert_eq!(c.mail_to.len(), 2);
        let err =
            cfg(&[("PATCHWATCH_SMTP_URL", "http://user:hunter2@h")], &Defaults::default()).unwrap_err().to_string();
        assert!(err.contains("PATCHWATCH_SMTP_URL") && !err.contains("hunter2"), "{err}");
        let err = cfg(&[("PATCHWATCH_SMTP_URL", "smtp://user:hunter2@mail.example.com:587")], &Defaults::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("TLS") && !err.contains("hunter2"), "{err}");
    }

    #[test]
    fn config_bad_values_name_the_variable() {
        let d = Defaults { outbox: Some("/tmp/x".into()), snapshot: None, state: Some("file:///tmp/s".into()) };
        for (k, v) in [
            ("PATCHWATCH_MAIL_TO", "not an address"),
            ("PATCHWATCH_MAIL_FROM", "x@"),
            ("PATCHWATCH_ARM_ENDPOINT", "ftp://x"),
            ("PATCHWATCH_RESULT_GRACE_MINUTES", "soon"),
            ("PATCHWATCH_LEASE_SECONDS", "0"),
            ("PATCHWATCH_HISTORY_DAYS", "forever"),
        ] {
            let err = cfg(&[(k, v)], &d).unwrap_err().to_string();
            assert!(err.contains(k), "{k}: {err}");
        }
    }

    #[test]
    fn config_defaults_apply() {
        let d = Defaults {
            outbox: Some("/tmp/o".into()),
            snapshot: Some("/tmp/s.json".into()),
            state: Some("file:///tmp/st".into()),
        };
        let c = cfg(&[], &d).unwrap();
        assert!(matches!(c.mail, MailTarget::Outbox(_)));
        assert!(matches!(c.data, DataSource::Snapshot(_)));
        assert_eq!(c.result_grace, Duration::from_secs(900));
        assert_eq!(c.arm_endpoint.as_str(), "https://management.azure.com/");
        assert_eq!(c.lease, Duration::from_secs(300));
    }

    #[test]
    fn config_events_entra_needs_a_tenant_and_names_the_variable() {
        let d = Defaults { outbox: Some("/tmp/o".into()), snapshot: None, state: Some("file:///tmp/s".into()) };
        let app = "6a1e3c2b-0000-4000-8000-00000000abcd";
        let tid = "72f988bf-86f1-41af-91ab-2d7cd011db47";
        assert_eq!(cfg(&[], &d).unwrap().events_entra, None);
        // Audience without any tenant: refused, naming the missing variable.
        let err = cfg(&[("PATCHWATCH_EVENTS_AUDIENCE", app)], &d).unwrap_err().to_string();
        assert!(err.starts_with("PATCHWATCH_EVENTS_TENANT is required"), "{err}");
        // AZURE_TENANT_ID is the fallback; PATCHWATCH_EVENTS_TENANT wins over it.
        let c = cfg(&[("PATCHWATCH_EVENTS_AUDIENCE", app), ("AZURE_TENANT_ID", tid)], &d).unwrap();
        let e = c.events_entra.unwrap();
        assert_eq!((e.audience.as_str(), e.tenant.as_str()), (app, tid));
        assert_eq!(e.authority.as_str(), "https://login.microsoftonline.com/");
        let c = cfg(
            &[
                ("PATCHWATCH_EVENTS_AUDIENCE", "api://patchwatch-events"),
                ("AZURE_TENANT_ID", tid),
                ("PATCHWATCH_EVENTS_TENANT", "contoso.onmicrosoft.com"),
                ("PATCHWATCH_ENTRA_AUTHORITY", "http://127.0.0.1:9999"),
            ],
            &d,
        )
        .unwrap();
        let e = c.events_entra.unwrap();
        assert_eq!(e.tenant, "contoso.onmicrosoft.com");
        assert_eq!(e.authority.as_str(), "http://127.0.0.1:9999/");
        // Bad values name their variable.
        for (vars, var) in [
            (vec![("PATCHWATCH_EVENTS_TENANT", "common")], "PATCHWATCH_EVENTS_TENANT"),
            (vec![("AZURE_TENANT_ID", "not a tenant")], "AZURE_TENANT_ID"),
            (
                vec![("PATCHWATCH_EVENTS_TENANT", tid), ("PATCHWATCH_ENTRA_AUTHORITY", "http://login.example")],
                "PATCHWATCH_ENTRA_AUTHORITY",
            ),
            (
                vec![("PATCHWATCH_EVENTS_TENANT", tid), ("PATCHWATCH_EVENTS_AUDIENCE", "a, b")],
                "PATCHWATCH_EVENTS_AUDIENCE",
            ),
        ] {
            let mut all = vec![("PATCHWATCH_EVENTS_AUDIENCE", app)];
            all.extend(vars);
            let err = cfg(&all, &d).unwrap_err().to_string();
            assert!(err.starts_with(var), "{var}: {err}");
        }
    }

    #[test]
    fn config_state_is_required_without_a_default() {
        let d = Defaults { outbox: Some("/tmp/o".into()), ..Defaults::default() };
        let err = cfg(&[], &d).unwrap_err().to_string();
        assert!(err.contains("PATCHWATCH_STATE"), "{err}");
        let home = |k: &str| (k == "HOME").then(|| "/home/ops".to_owned());
        assert_eq!(local_state_url(home), "file:///home/ops/.local/share/patchwatch/state");
        assert!(on_cloud_host(|k: &str| (k == "WEBSITE_INSTANCE_ID").then(|| "x".to_owned())));
        assert!(!on_cloud_host(home));
    }
}
