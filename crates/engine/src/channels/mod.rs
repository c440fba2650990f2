//! Delivery channels other than email: Microsoft Teams, Slack, signed webhooks and ServiceNow.
//!
//! Secrets are read once, at start-up, from the environment variables the routing file names.
//! Every channel shares one HTTP client with timeouts, paces itself to the service's documented
//! rate (Teams about 4 requests/s, Slack 1 message/s per channel), honours 429 `Retry-After`
//! within a bounded budget, and classifies failures as transient (retry the event later) or
//! permanent (recorded, not retried).

pub mod servicenow;
pub mod webhook;

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use reqwest::{RequestBuilder, StatusCode};
use tokio::sync::Mutex;

use patchwatch_fleet::digest::Digest;
use patchwatch_model::{
    failure::{DELIVERY_RETRY, Failure, MIN_RETRY},
    notice::Notice,
    routing::{ChannelSpec, Notification, Routing},
    secret::Secret,
};
use patchwatch_render as render;

/// Why a channel cannot be used: named, with the environment variable at fault.
#[derive(Debug, thiserror::Error)]
pub enum ChannelConfigError {
    #[error("channel {channel:?} needs environment variable {variable}")]
    MissingVariable { channel: String, variable: String },
    #[error("channel {channel:?}: {variable}: {problem}")]
    InvalidSecret { channel: String, variable: String, problem: String },
    #[error("channel {channel:?}: {variable} is not an https URL")]
    NotHttps { channel: String, variable: String },
}

/// A channel's secrets, read from its environment variables.
#[derive(Clone, Debug)]
pub enum Resolved {
    /// Needs no secret of its own: email (the mailer) and action groups (ARM, then the mailer).
    NoSecret,
    Teams {
        url: Secret,
    },
    Slack {
        url: Secret,
    },
    Webhook {
        url: String,
        secrets: Vec<webhook::SigningKey>,
    },
    Servicenow {
        instance: String,
        user: Secret,
        password: Secret,
        assignment_group: Option<String>,
    },
}

/// A channel's `Retry-After` is honoured up to ten minutes (within the throttle budget).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// How long one delivery may wait on a channel's 429s before it becomes "retry later".
const THROTTLE_BUDGET: Duration = Duration::from_secs(20);

/// Spacing between requests, per channel.
#[derive(Debug)]
struct Pace {
    next: Mutex<Instant>,
    interval: Duration,
}

impl Pace {
    async fn wait(&self) {
        let mut next = self.next.lock().await;
        let now = Instant::now();
        if *next > now {
            tokio::time::sleep(*next - now).await;
        }
        *next = Instant::now() + self.interval;
    }
}

/// Everything needed to deliver to the configured channels.
#[derive(Debug, Clone)]
pub struct Channels {
    http: reqwest::Client,
    resolved: Arc<HashMap<String, Resolved>>,
    pace: Arc<HashMap<String, Pace>>,
    /// How long one delivery may wait on 429s before it is "retry later".
    throttle_budget: Duration,
    portal: url::Url,
}

impl Channels {
    /// Resolves every channel's secrets through `lookup`; an unset variable is an error naming it.
    pub fn new(
        routing: Option<&Routing>,
        lookup: &dyn Fn(&str) -> Option<String>,
        portal: url::Url,
    ) -> Result<Self, ChannelConfigError> {
        let mut resolved = HashMap::new();
        let mut pace = HashMap::new();
        for (name, spec) in routing.map(|r| &r.channels).into_iter().flatten() {
            let var = |v: &str| {
                lookup(v).filter(|s| !s.trim().is_empty()).map(|s| Secret::new(s.trim())).ok_or_else(|| {
                    ChannelConfigError::MissingVariable { channel: name.clone(), variable: v.to_owned() }
                })
            };
            let (r, interval) = match spec {
                ChannelSpec::Email { .. } | ChannelSpec::ActionGroup { .. } | ChannelSpec::AlertWebhook { .. } => {
                    (Resolved::NoSecret, Duration::ZERO)
                }
                ChannelSpec::Teams { url_env } => {
                    (Resolved::Teams { url: secret_url(name, url_env, var(url_env)?)? }, Duration::from_millis(250))
                }
                ChannelSpec::Slack { url_env } => {
                    (Resolved::Slack { url: secret_url(name, url_env, var(url_env)?)? }, Duration::from_millis(1100))
                }
                ChannelSpec::Webhook { url, secret_env } => {
                    let secrets = webhook::parse_secrets(var(secret_env)?.expose()).map_err(|problem| {
                        ChannelConfigError::InvalidSecret {
                            channel: name.clone(),
                            variable: secret_env.clone(),
                            problem,
                        }
                    })?;
                    (Resolved::Webhook { url: url.clone(), secrets }, Duration::ZERO)
                }
                ChannelSpec::Servicenow { instance, user_env, password_env, assignment_group } => (
                    Resolved::Servicenow {
                        instance: instance.trim_end_matches('/').to_owned(),
                        user: var(user_env)?,
                        password: var(password_env)?,
                        assignment_group: assignment_group.clone(),
                    },
                    Duration::from_millis(200),
                ),
            };
            resolved.insert(name.clone(), r);
            pace.insert(name.clone(), Pace { next: Mutex::new(Instant::now()), interval });
        }
        Ok(Self {
            http: patchwatch_azure::http::default_http_client(),
            resolved: Arc::new(resolved),
            pace: Arc::new(pace),
            throttle_budget: THROTTLE_BUDGET,
            portal,
        })
    }

    /// Delivers a non-email notification; returns where it went, for the ledger.
    pub async fn deliver(&self, n: &Notification, delivery_id: &str) -> Result<String, Failure> {
        if let ChannelSpec::AlertWebhook { url } = &n.spec {
            let body = render::common_alert::common_alert(
                &n.summary,
                &n.route,
                n.group.as_deref(),
                time::OffsetDateTime::now_utc(),
            );
            self.post(&n.channel, self.http.post(url).json(&body)).await?;
            // The receiver URL may carry a key: name the receiver, not the URL.
            return Ok(format!("common-alert webhook {}", n.receiver.as_deref().unwrap_or("-")));
        }
        let Some(resolved) = self.resolved.get(&n.channel) else {
            return Err(Failure::Permanent(format!("channel {:?} is not configured", n.channel)));
        };
        match resolved {
            Resolved::NoSecret => {
                Err(Failure::Permanent("email and action groups are delivered by the pipeline".to_owned()))
            }
            Resolved::Teams { url } => {
                let card = render::teams::message(&n.summary, n.group.as_deref(), &self.portal, &n.actions);
                self.post(&n.channel, self.http.post(url.expose()).json(&card)).await?;
                Ok("Teams card".to_owned())
            }
            Resolved::Slack { url } => {
                let msg = render::slack::message(&n.summary, n.group.as_deref(), &self.portal, &n.actions);
                self.post(&n.channel, self.http.post(url.expose()).json(&msg)).await?;
                Ok("Slack message".to_owned())
            }
            Resolved::Webhook { url, secrets } => {
                let body = render::webhook::body(n, time::OffsetDateTime::now_utc());
                let request = webhook::signed(self.http.post(url), delivery_id, &body, secrets);
                self.post(&n.channel, request).await?;
                // The URL may carry credentials: the record names the channel only.
                Ok(format!("webhook {}", n.channel))
            }
            Resolved::Servicenow { instance, user, password, assignment_group } => {
                let client = servicenow::Client {
                    channels: self,
                    channel: &n.channel,
                    instance,
                    user,
                    password,
                    assignment_group: assignment_group.as_deref(),
                };
                client.sync(n, &self.portal).await
            }
        }
    }

    /// Delivers a notice to a Teams, Slack or webhook channel (email goes through the mailer).
    pub async fn deliver_notice(&self, channel: &str, n: &Notice, delivery_id: &str) -> Result<String, Failure> {
        match self.resolved.get(channel) {
            Some(Resolved::Teams { url }) => {
                self.post(channel, self.http.post(url.expose()).json(&render::notice::teams_card(n))).await?;
                Ok("Teams card".to_owned())
            }
            Some(Resolved::Slack { url }) => {
                self.post(channel, self.http.post(url.expose()).json(&render::notice::slack_message(n))).await?;
                Ok("Slack message".to_owned())
            }
            Some(Resolved::Webhook { url, secrets }) => {
                let body = render::notice::webhook_body(n, time::OffsetDateTime::now_utc());
                self.post(channel, webhook::signed(self.http.post(url), delivery_id, &body, secrets)).await?;
                Ok(format!("webhook {channel}"))
            }
            Some(_) => Err(Failure::Permanent(format!("channel {channel:?} does not take notices"))),
            None => Err(Failure::Permanent(format!("channel {channel:?} is not configured"))),
        }
    }

    /// Delivers a compliance digest to a Teams, Slack or webhook channel (email goes through the
    /// mailer). Incident channels (ServiceNow, action groups) take runs, not digests.
    pub async fn deliver_digest(&self, channel: &str, d: &Digest, delivery_id: &str) -> Result<String, Failure> {
        match self.resolved.get(channel) {
            Some(Resolved::Teams { url }) => {
                self.post(channel, self.http.post(url.expose()).json(&render::digest::chat::teams_message(d))).await?;
                Ok("Teams card".to_owned())
            }
            Some(Resolved::Slack { url }) => {
                self.post(channel, self.http.post(url.expose()).json(&render::digest::chat::slack_message(d))).await?;
                Ok("Slack message".to_owned())
            }
            Some(Resolved::Webhook { url, secrets }) => {
                let body = digest_webhook_body(d, time::OffsetDateTime::now_utc());
                self.post(channel, webhook::signed(self.http.post(url), delivery_id, &body, secrets)).await?;
                Ok(format!("webhook {channel}"))
            }
            Some(_) => Err(Failure::Permanent(format!("channel {channel:?} does not take digests"))),
            None => Err(Failure::Permanent(format!("channel {channel:?} is not configured"))),
        }
    }

    /// A ServiceNow client for the named channel, if it is one.
    pub fn servicenow(&self, channel: &'_ str) -> Option<servicenow::Client<'_>> {
        match self.resolved.get_key_value(channel)? {
            (name, Resolved::Servicenow { instance, user, password, assignment_group }) => Some(servicenow::Client {
                channels: self,
                channel: name,
                instance,
                user,
                password,
                assignment_group: assignment_group.as_deref(),
            }),
            _ => None,
        }
    }

    /// Names of every ServiceNow channel.
    pub fn servicenow_channels(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .resolved
            .iter()
            .filter(|(_, r)| matches!(r, Resolved::Servicenow { .. }))
            .map(|(k, _)| k.clone())
            .collect();
        names.sort();
        names
    }

    /// Sends one request, paced, retried on 429 (`Retry-After`) and transient failures within the budget.
    async fn post(&self, channel: &str, request: RequestBuilder) -> Result<reqwest::Response, Failure> {
        let mut budget = self.throttle_budget;
        let mut server_errors = 0u32;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            if attempts > 10 {
                return Err(transient(format!("{channel}: still throttled after 10 attempts")));
            }
            if let Some(p) = self.pace.get(channel) {
                p.wait().await;
            }
            let attempt =
                request.try_clone().ok_or_else(|| Failure::Permanent("request body cannot be retried".to_owned()))?;
            let response = match attempt.send().await {
                Ok(r) => r,
                Err(e) => return Err(transient(format!("{channel}: {}", without_url(&e)))),
            };
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            let wait = match status {
                // At least a second: `Retry-After: 0` must not become a tight loop.
                StatusCode::TOO_MANY_REQUESTS => {
                    patchwatch_azure::http::retry_after(response.headers(), MAX_RETRY_AFTER)
                        .unwrap_or(MIN_RETRY)
                        .max(MIN_RETRY)
                }
                s if s.is_server_error() && server_errors < 2 => {
                    server_errors += 1;
                    Duration::from_millis(500 * u64::from(server_errors))
                }
                s if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => {
                    return Err(transient(format!("{channel}: answered {s}")));
                }
                s => {
                    let text = response.text().await.unwrap_or_default();
                    let text: String = text.chars().take(300).collect();
                    return Err(Failure::Permanent(format!("{channel}: answered {s}: {text}")));
                }
            };
            budget = budget.checked_sub(wait).ok_or_else(|| {
                transient(format!("{channel}: throttled beyond the {}s budget", self.throttle_budget.as_secs()))
            })?;
            tracing::warn!(
                channel,
                wait_ms = wait.as_millis() as u64,
                status = status.as_u16(),
                "Channel asked to wait; retrying."
            );
            tokio::time::sleep(wait).await;
        }
    }
}

/// A failure worth retrying when the event is redelivered.
fn transient(reason: String) -> Failure {
    Failure::transient(reason, DELIVERY_RETRY)
}

/// A webhook URL from a secret variable: checked at start-up, never echoed.
fn secret_url(channel: &str, var: &str, value: Secret) -> Result<Secret, ChannelConfigError> {
    let ok = url::Url::parse(value.expose()).is_ok_and(|u| {
        u.scheme() == "https"
            || (u.scheme() == "http" && matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")))
    });
    if ok {
        Ok(value)
    } else {
        Err(ChannelConfigError::NotHttps { channel: channel.to_owned(), variable: var.to_owned() })
    }
}

/// reqwest errors print the URL, and chat webhook URLs are secrets.
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    format!("{kind}: {}", std::error::Error::source(e).map(ToString::to_string).unwrap_or_default())
}

/// The signed webhook's digest body: `patchwatch.compliance.digest` v1, the digest's data whole.
fn digest_webhook_body(d: &Digest, now: time::OffsetDateTime) -> String {
    let ts = now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    serde_json::json!({ "type": "patchwatch.compliance.digest", "version": 1, "timestamp": ts, "data": d }).to_string()
}
