//! The notifier: the one way patchwatch sends anything. Every run summary and every notice
//! goes through [`Notifier::deliver`]: a ledger claim ([`Ledger::once`]), then one [`Channel`]
//! (email, or the HTTP channels), then the commit. The pipeline, alerts and ITSM share it.

use std::sync::Arc;

use async_trait::async_trait;
use lettre::message::Mailbox;
use time::OffsetDateTime;
use tracing::{error, info, warn};

use patchwatch_model::{
    failure::{DELIVERY_RETRY, Delivered, DeliveryStatus, Failure, STATE_RETRY},
    notice::Notice,
    routing::{ChannelSpec, Notification, Routing},
    text::{fnv64, one_line},
};
use patchwatch_render::{Rendered, Templates};
use patchwatch_state::{
    keys,
    ledger::{Clock, DeliveryId, Finish, Ledger, Once},
};

use crate::{
    channels::Channels,
    mail::{self, Mailer},
};

/// Without `PATCHWATCH_CONFIG`, one email to `PATCHWATCH_MAIL_TO`.
pub const DEFAULT_ROUTE: &str = "default";

/// What is being delivered.
#[derive(Debug, Clone, Copy)]
pub enum Item<'a> {
    /// (Part of) a run summary, as a route planned it.
    Summary(&'a Notification),
    /// A notice, to the named channel (empty: the default recipients by email).
    Notice { notice: &'a Notice, channel: &'a str },
}

/// One attempt's identity: the ledger token's stable hash (a receiver's de-duplication key, an
/// email's Message-ID) and the file name stem an outbox writes under.
#[derive(Debug)]
pub struct Attempt<'a> {
    pub id_hash: &'a str,
    pub file_stem: &'a str,
}

/// A transport a notification or notice goes through: email, or the HTTP channels.
#[async_trait]
pub trait Channel: Send + Sync {
    /// Delivers `item`; answers where it went (for the ledger), or why not.
    async fn deliver(&self, item: Item<'_>, attempt: &Attempt<'_>) -> Result<String, Failure>;
}

/// Email: the mailer, the templates and the default sender and recipients.
#[derive(Debug)]
pub struct Email {
    pub mailer: Mailer,
    pub templates: Templates,
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    /// Email channels of the routing file name their own recipients for notices.
    pub routing: Option<Arc<Routing>>,
}

impl Email {
    fn summary(&self, n: &Notification) -> Result<(Rendered, Vec<Mailbox>), Failure> {
        let (to, prefix) = match &n.spec {
            ChannelSpec::Email { to, subject_prefix } => (to.as_slice(), subject_prefix.as_deref()),
            _ => (&[][..], None),
        };
        let mut rendered = self.templates.render(&n.summary, n.group.as_deref()).map_err(|e| {
            error!(error = %e, "Summary could not be rendered.");
            Failure::Permanent(e.to_string())
        })?;
        if let Some(p) = prefix.filter(|p| !p.trim().is_empty()) {
            rendered.subject = one_line(&format!("{} {}", p.trim(), rendered.subject));
        }
        let listed: Vec<&String> =
            if n.recipients.is_empty() { to.iter().collect() } else { n.recipients.iter().collect() };
        let recipients = if listed.is_empty() { self.to.clone() } else { parse_mailboxes(listed)? };
        Ok((rendered, recipients))
    }

    fn notice(&self, notice: &Notice, channel: &str) -> Result<(Rendered, Vec<Mailbox>), Failure> {
        let spec = self.routing.as_ref().and_then(|r| r.channels.get(channel));
        let to = match spec {
            Some(ChannelSpec::Email { to, .. }) if !to.is_empty() => parse_mailboxes(to.iter())?,
            _ => self.to.clone(),
        };
        let rendered = self.templates.render_notice(notice).map_err(|e| Failure::Permanent(e.to_string()))?;
        Ok((rendered, to))
    }
}

fn parse_mailboxes<'a>(addresses: impl IntoIterator<Item = &'a String>) -> Result<Vec<Mailbox>, Failure> {
    addresses
        .into_iter()
        .map(|a| a.parse::<Mailbox>().map_err(|e| Failure::Permanent(format!("recipient {a:?}: {e}"))))
        .collect()
}

#[async_trait]
impl Channel for Email {
    async fn deliver(&self, item: Item<'_>, attempt: &Attempt<'_>) -> Result<String, Failure> {
        let (rendered, recipients) = match item {
            Item::Summary(n) => self.summary(n)?,
            Item::Notice { notice, channel } => self.notice(notice, channel)?,
        };
        let message_id = mail::message_id(attempt.id_hash, &self.from);
        match self
            .mailer
            .send(
                mail::Envelope { from: &self.from, to: &recipients, message_id: &message_id },
                &rendered,
                attempt.file_stem,
            )
            .await
        {
            Ok(mail::Delivered::Smtp { recipients }) => Ok(format!("SMTP to {recipients} recipient(s)")),
            Ok(mail::Delivered::Outbox { eml, .. }) => Ok(eml.display().to_string()),
            Err(e) if e.is_transient() => Err(Failure::transient(e.to_string(), DELIVERY_RETRY)),
            Err(e) => Err(Failure::Permanent(e.to_string())),
        }
    }
}

#[async_trait]
impl Channel for Channels {
    async fn deliver(&self, item: Item<'_>, attempt: &Attempt<'_>) -> Result<String, Failure> {
        let delivery_id = format!("msg_{}", attempt.id_hash);
        match item {
            Item::Summary(n) => Channels::deliver(self, n, &delivery_id).await,
            Item::Notice { notice, channel } => self.deliver_notice(channel, notice, &delivery_id).await,
        }
    }
}

/// The ledger, the transports and the clock: everything needed to send once.
pub struct Notifier {
    pub ledger: Ledger,
    pub email: Email,
    pub channels: Channels,
    pub clock: Clock,
}

/// Where a delivery is recorded and what it is called in reports.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub id: DeliveryId<'a>,
    /// The email subject or notice title the ledger records.
    pub subject: &'a str,
    /// The outbox file name stem, should it go by email to an outbox.
    pub file_stem: &'a str,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier").field("ledger", &self.ledger).field("email", &self.email).finish_non_exhaustive()
    }
}

impl Notifier {
    pub fn now(&self) -> OffsetDateTime {
        (self.clock)()
    }

    /// Claims, sends and records one delivery; a delivery already settled reports its record.
    pub async fn deliver(&self, target: Target<'_>, item: Item<'_>) -> Delivered {
        let name = target.id.target;
        let channel: &dyn Channel = if self.by_email(item) { &self.email } else { &self.channels };
        let sent = self
            .ledger
            .once(&target.id, &self.clock, |token| {
                let id_hash = token.id_hash();
                async move {
                    let attempt = Attempt { id_hash: &id_hash, file_stem: target.file_stem };
                    let sent = channel.deliver(item, &attempt).await;
                    (finish(&sent, target.subject), sent)
                }
            })
            .await;
        match sent {
            Ok(Once::Acted(Ok(detail))) => {
                info!(target = %name, detail = %detail, "Delivered.");
                Delivered::done(name, DeliveryStatus::Sent, detail)
            }
            Ok(Once::Acted(Err(failure))) => {
                match &failure {
                    Failure::Transient { .. } => warn!(target = %name, error = %failure, "Not delivered; will retry."),
                    Failure::Permanent(_) => error!(target = %name, error = %failure, "Refused for good; not retried."),
                }
                Delivered::failed(name, failure)
            }
            Ok(Once::Settled(record)) => match record.state {
                patchwatch_state::ledger::DeliveryState::Sent => {
                    Delivered::done(name, DeliveryStatus::Duplicate, record.detail.unwrap_or_default())
                }
                _ => Delivered::done(name, DeliveryStatus::Failed, record.error.unwrap_or_default()),
            },
            Ok(Once::Busy { retry_after }) => {
                info!(target = %name, "Another instance is delivering this.");
                Delivered::retry(name, format!("{name}: another instance is delivering it"), retry_after)
            }
            Err(e) => {
                error!(error = %e, "State store unavailable; the event will be retried.");
                Delivered::retry(name, e.to_string(), STATE_RETRY)
            }
        }
    }

    /// Delivers a notice to each named channel (none: the default recipients by email), once
    /// per channel however often it is asked for.
    pub async fn send_notice(&self, notice: &Notice, channels: &[String]) -> Vec<Delivered> {
        let default = [String::new()];
        let targets = if channels.is_empty() { &default[..] } else { channels };
        let mut out = Vec::with_capacity(targets.len());
        for channel in targets {
            out.push(self.send_notice_to(notice, channel).await);
        }
        out
    }

    async fn send_notice_to(&self, notice: &Notice, channel: &str) -> Delivered {
        let target = if channel.is_empty() { "notice.default".to_owned() } else { format!("notice.{channel}") };
        let stem = format!(
            "{}-{}-{:08x}",
            mail::file_stem(
                self.now(),
                notice.configuration.as_deref().unwrap_or("patchwatch"),
                notice.kind.as_str(),
                "notice"
            ),
            keys::segment(if channel.is_empty() { "default" } else { channel }),
            fnv64(&notice.key) as u32
        );
        let subject = notice.subject();
        let id = DeliveryId {
            run_id: &notice.key,
            configuration: notice.configuration.as_deref().unwrap_or("-"),
            phase: notice.kind.as_str(),
            target: &target,
        };
        self.deliver(Target { id, subject: &subject, file_stem: &stem }, Item::Notice { notice, channel }).await
    }

    /// Email goes through the mailer; every other channel through [`Channels`].
    fn by_email(&self, item: Item<'_>) -> bool {
        match item {
            Item::Summary(n) => matches!(n.spec, ChannelSpec::Email { .. }),
            Item::Notice { channel, .. } => {
                let spec = self.email.routing.as_ref().and_then(|r| r.channels.get(channel));
                matches!(spec, None | Some(ChannelSpec::Email { .. }))
            }
        }
    }
}

/// What the ledger records for an attempt's result.
fn finish(sent: &Result<String, Failure>, subject: &str) -> Finish {
    match sent {
        Ok(detail) => Finish::Sent { subject: subject.to_owned(), detail: detail.clone() },
        Err(Failure::Transient { reason, .. }) => Finish::Retry { error: reason.clone() },
        Err(Failure::Permanent(reason)) => Finish::Failed { error: reason.clone() },
    }
}
