//! The notifier: the one way patchwatch sends anything. Every run summary and every notice
//! goes through [`Notifier::deliver`]: a ledger claim ([`Ledger::once`]), then one [`Channel`]
//! (email, or the HTTP channels), then the commit. The pipeline, alerts and ITSM share it.

use std::{future::Future, sync::Arc};

use async_trait::async_trait;
use lettre::message::Mailbox;
use time::OffsetDateTime;
use tracing::{error, info, warn};

use patchwatch_model::{
    event::Phase,
    failure::{DELIVERY_RETRY, Delivered, DeliveryStatus, Failure, STATE_RETRY},
    notice::Notice,
    routing::{ChannelSpec, Notification, Routing},
    silence::{self, Candidate, MachineRef, Silence},
    text::{fnv64, one_line},
};
use patchwatch_render::{Rendered, RenderedDigest, Templates};
use patchwatch_state::{
    keys,
    ledger::{Clock, DeliveryId, DeliveryState, Finish, Ledger, Once},
    silences::Silences,
    store::StateError,
};

use crate::{
    channels::Channels,
    compliance::DigestDelivery,
    mail::{self, Mailer},
};

/// Without `PATCHWATCH_CONFIG`, one email to `PATCHWATCH_MAIL_TO`.
pub const DEFAULT_ROUTE: &str = "default";

/// One attempt's identity: the ledger token's stable hash (a receiver's de-duplication key, an
/// email's Message-ID) and the file name stem an outbox writes under.
#[derive(Debug)]
pub struct Attempt<'a> {
    pub id_hash: String,
    pub file_stem: &'a str,
}

/// A transport a notification or notice goes through: email, or the HTTP channels. Called
/// statically (never as `dyn`), so a binary links only the deliveries it makes: the alert
/// handler, which sends notices only, carries no summary payloads.
#[async_trait]
pub trait Channel: Send + Sync {
    /// Delivers (part of) a run summary, as a route planned it; answers where it went (for the
    /// ledger), or why not.
    async fn summary(&self, n: &Notification, attempt: &Attempt<'_>) -> Result<String, Failure>;
    /// Delivers a notice to the named channel (empty: the default recipients by email).
    async fn notice(&self, notice: &Notice, channel: &str, attempt: &Attempt<'_>) -> Result<String, Failure>;
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
    fn render_summary(&self, n: &Notification) -> Result<(Rendered, Vec<Mailbox>), Failure> {
        let (to, prefix) = match &n.spec {
            ChannelSpec::Email { to, subject_prefix } => (to.as_slice(), subject_prefix.as_deref()),
            _ => (&[][..], None),
        };
        let mut rendered = self.templates.render(&n.summary, n.group.as_deref(), &n.actions).map_err(|e| {
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

    fn render_notice(&self, notice: &Notice, channel: &str) -> Result<(Rendered, Vec<Mailbox>), Failure> {
        let spec = self.routing.as_ref().and_then(|r| r.channels.get(channel));
        let to = match spec {
            // A notice for one owner (a reminder of a split route) names its recipients.
            _ if !notice.recipients.is_empty() => parse_mailboxes(notice.recipients.iter())?,
            Some(ChannelSpec::Email { to, .. }) if !to.is_empty() => parse_mailboxes(to.iter())?,
            _ => self.to.clone(),
        };
        let rendered = self.templates.render_notice(notice).map_err(|e| Failure::Permanent(e.to_string()))?;
        Ok((rendered, to))
    }

    /// Renders a digest (charts, workbook) for its recipients: the route's owner group, else the
    /// channel's `to`, else the default recipients.
    fn render_digest(&self, d: &DigestDelivery) -> Result<(RenderedDigest, Vec<Mailbox>), Failure> {
        let (to, prefix) = match &d.spec {
            Some(ChannelSpec::Email { to, subject_prefix }) => (to.as_slice(), subject_prefix.as_deref()),
            _ => (&[][..], None),
        };
        let mut rendered = self.templates.render_digest(&d.digest).map_err(|e| {
            error!(error = %e, "Digest could not be rendered.");
            Failure::Permanent(e.to_string())
        })?;
        if let Some(p) = prefix.filter(|p| !p.trim().is_empty()) {
            rendered.rendered.subject = one_line(&format!("{} {}", p.trim(), rendered.rendered.subject));
        }
        let listed: Vec<&String> =
            if d.recipients.is_empty() { to.iter().collect() } else { d.recipients.iter().collect() };
        let recipients = if listed.is_empty() { self.to.clone() } else { parse_mailboxes(listed)? };
        Ok((rendered, recipients))
    }

    /// Sends a digest by email.
    pub async fn digest(&self, d: &DigestDelivery, attempt: &Attempt<'_>) -> Result<String, Failure> {
        let (rendered, recipients) = self.render_digest(d)?;
        self.send((&rendered).into(), &recipients, attempt).await
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
    async fn summary(&self, n: &Notification, attempt: &Attempt<'_>) -> Result<String, Failure> {
        let (rendered, recipients) = self.render_summary(n)?;
        self.send((&rendered).into(), &recipients, attempt).await
    }

    async fn notice(&self, notice: &Notice, channel: &str, attempt: &Attempt<'_>) -> Result<String, Failure> {
        let (rendered, recipients) = self.render_notice(notice, channel)?;
        self.send((&rendered).into(), &recipients, attempt).await
    }
}

impl Email {
    async fn send(
        &self,
        content: mail::Content<'_>,
        recipients: &[Mailbox],
        attempt: &Attempt<'_>,
    ) -> Result<String, Failure> {
        let message_id = mail::message_id(&attempt.id_hash, &self.from);
        match self
            .mailer
            .send_content(
                mail::Envelope { from: &self.from, to: recipients, message_id: &message_id },
                content,
                attempt.file_stem,
            )
            .await
        {
            Ok(mail::Delivered::Smtp { .. }) => Ok(format!("SMTP to {}", addresses(recipients))),
            Ok(mail::Delivered::Outbox { eml, .. }) => Ok(eml.display().to_string()),
            Err(e) if e.is_transient() => Err(Failure::transient(e.to_string(), DELIVERY_RETRY)),
            Err(e) => Err(Failure::Permanent(e.to_string())),
        }
    }
}

#[async_trait]
impl Channel for Channels {
    async fn summary(&self, n: &Notification, attempt: &Attempt<'_>) -> Result<String, Failure> {
        self.deliver(n, &format!("msg_{}", attempt.id_hash)).await
    }

    async fn notice(&self, notice: &Notice, channel: &str, attempt: &Attempt<'_>) -> Result<String, Failure> {
        self.deliver_notice(channel, notice, &format!("msg_{}", attempt.id_hash)).await
    }
}

/// The ledger, the transports, the silences and the clock: everything needed to send once.
pub struct Notifier {
    pub ledger: Ledger,
    pub email: Email,
    pub channels: Channels,
    pub clock: Clock,
    /// Checked inside every claim: a matching silence records the delivery as silenced.
    pub silences: Silences,
}

/// How one claimed delivery ended.
enum Sent {
    Done(String),
    Silenced(String),
    Failed(Failure),
}

/// The channel name silences match for a notice to the default recipients.
const DEFAULT_CHANNEL: &str = "email";

/// What a silence sees of one planned notification: the run's configuration, its verdict (post
/// events only), the channel and the machines it covers.
pub fn summary_candidate(n: &Notification) -> Candidate<'_> {
    let s = &n.summary;
    Candidate {
        configuration: Some(&s.configuration_name),
        channel: &n.channel,
        outcome: (s.phase == Phase::Post).then_some(s.verdict),
        machines: s.machines.iter().map(|m| MachineRef::new(&m.id, &m.name, &m.tags)).collect(),
        groups: s.succeeded.iter().map(|g| g.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()).collect(),
    }
}

fn notice_candidate<'a>(notice: &'a Notice, channel: &'a str) -> Candidate<'a> {
    Candidate {
        configuration: notice.configuration.as_deref(),
        channel: if channel.is_empty() { DEFAULT_CHANNEL } else { channel },
        outcome: None,
        machines: Vec::new(),
        groups: Vec::new(),
    }
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

    /// Claims, sends and records one notification of a run summary.
    pub async fn deliver_summary(&self, target: Target<'_>, n: &Notification) -> Delivered {
        let by_email = matches!(n.spec, ChannelSpec::Email { .. });
        self.deliver(target, Some(summary_candidate(n)), |attempt| async move {
            if by_email { self.email.summary(n, &attempt).await } else { self.channels.summary(n, &attempt).await }
        })
        .await
    }

    /// Claims, sends and records one compliance digest to one channel (none: email).
    pub async fn deliver_digest(&self, target: Target<'_>, d: &DigestDelivery) -> Delivered {
        let by_email = matches!(d.spec, None | Some(ChannelSpec::Email { .. }));
        self.deliver(target, None, |attempt| async move {
            if by_email {
                self.email.digest(d, &attempt).await
            } else {
                self.channels.deliver_digest(&d.channel, &d.digest, &format!("msg_{}", attempt.id_hash)).await
            }
        })
        .await
    }

    /// Claims, sends and records one notice to one channel (empty: the default recipients).
    pub async fn deliver_notice(&self, target: Target<'_>, notice: &Notice, channel: &str) -> Delivered {
        self.deliver_notice_as(target, notice, channel, notice_candidate(notice, channel)).await
    }

    /// As [`Notifier::deliver_notice`], silenced by what `candidate` says of it (a reminder
    /// covers a run's machines and outcome).
    pub async fn deliver_notice_as(
        &self,
        target: Target<'_>,
        notice: &Notice,
        channel: &str,
        candidate: Candidate<'_>,
    ) -> Delivered {
        let spec = self.email.routing.as_ref().and_then(|r| r.channels.get(channel));
        let by_email = matches!(spec, None | Some(ChannelSpec::Email { .. }));
        self.deliver(target, Some(candidate), |attempt| async move {
            if by_email {
                self.email.notice(notice, channel, &attempt).await
            } else {
                self.channels.notice(notice, channel, &attempt).await
            }
        })
        .await
    }

    /// The silence that holds back this delivery now, if any.
    async fn silence_for(&self, candidate: &Candidate<'_>) -> Result<Option<Silence>, Failure> {
        let now = self.now();
        let active = self.silences.active(now).await.map_err(|e| Failure::transient(e.to_string(), STATE_RETRY))?;
        Ok(silence::matching(&active, candidate, now).cloned())
    }

    /// The delivery protocol around one send: [`Ledger::once`], a silence check inside the
    /// claim (so the ledger records what it held back), and the report of how it ended; a
    /// delivery already settled reports its record.
    async fn deliver<'a, Fut>(
        &self,
        target: Target<'a>,
        candidate: Option<Candidate<'_>>,
        send: impl FnOnce(Attempt<'a>) -> Fut,
    ) -> Delivered
    where
        Fut: Future<Output = Result<String, Failure>>,
    {
        let name = target.id.target;
        let sent = self
            .ledger
            .once(&target.id, &self.clock, |token| {
                let attempt = Attempt { id_hash: token.id_hash(), file_stem: target.file_stem };
                async move {
                    let held = match &candidate {
                        Some(c) => self.silence_for(c).await,
                        None => Ok(None),
                    };
                    let sent = match held {
                        Ok(Some(s)) => Sent::Silenced(s.detail()),
                        Ok(None) => match send(attempt).await {
                            Ok(detail) => Sent::Done(detail),
                            Err(f) => Sent::Failed(f),
                        },
                        Err(f) => Sent::Failed(f),
                    };
                    (finish(&sent, target.subject), sent)
                }
            })
            .await;
        match sent {
            Ok(Once::Acted(Sent::Done(detail))) => {
                info!(target = %name, detail = %detail, "Delivered.");
                Delivered::done(name, DeliveryStatus::Sent, detail)
            }
            Ok(Once::Acted(Sent::Silenced(detail))) => {
                info!(target = %name, detail = %detail, "Silenced; not sent.");
                Delivered::done(name, DeliveryStatus::Silenced, detail)
            }
            Ok(Once::Acted(Sent::Failed(failure))) => {
                match &failure {
                    Failure::Transient { .. } => warn!(target = %name, error = %failure, "Not delivered; will retry."),
                    Failure::Permanent(_) => error!(target = %name, error = %failure, "Refused for good; not retried."),
                }
                Delivered::failed(name, failure)
            }
            Ok(Once::Settled(record)) => match record.state {
                DeliveryState::Sent => {
                    Delivered::done(name, DeliveryStatus::Duplicate, record.detail.unwrap_or_default())
                }
                DeliveryState::Silenced => {
                    Delivered::done(name, DeliveryStatus::Silenced, record.detail.unwrap_or_default())
                }
                DeliveryState::Inhibited => {
                    Delivered::done(name, DeliveryStatus::Inhibited, record.detail.unwrap_or_default())
                }
                // `once` settles only settled records; the others cannot reach here.
                DeliveryState::Failed | DeliveryState::Claimed | DeliveryState::Pending => {
                    Delivered::done(name, DeliveryStatus::Failed, record.error.unwrap_or_default())
                }
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

    /// Delivers a notice once per channel however often it is asked for. The routing file's
    /// notice routes (`phase = "notice"`, by kind and severity) choose the channels; when none
    /// matches, `configured` (the section's own `notify` list) does; empty means the default
    /// recipients by email.
    pub async fn send_notice(&self, notice: &Notice, configured: &[String]) -> Vec<Delivered> {
        let targets = self.notice_channels(notice, configured);
        let mut out = Vec::with_capacity(targets.len());
        for channel in &targets {
            out.push(self.send_notice_to(notice, channel).await);
        }
        out
    }

    /// Whether every delivery of this notice is settled already (sent, refused for good,
    /// silenced): a check that finds the same thing again can skip reading it.
    pub async fn notice_settled(&self, notice: &Notice, configured: &[String]) -> Result<bool, StateError> {
        for channel in self.notice_channels(notice, configured) {
            let target = notice_target(&channel);
            match self.ledger.status(&notice_id(notice, &target)).await? {
                Some(r) if r.state.is_settled() => {}
                _ => return Ok(false),
            }
        }
        Ok(true)
    }

    /// The channels a notice goes to; `""` stands for the default recipients.
    fn notice_channels(&self, notice: &Notice, configured: &[String]) -> Vec<String> {
        let channels = match &self.email.routing {
            Some(r) => r.notice_channels(notice, configured),
            None => configured.to_vec(),
        };
        if channels.is_empty() { vec![String::new()] } else { channels }
    }

    async fn send_notice_to(&self, notice: &Notice, channel: &str) -> Delivered {
        let target = notice_target(channel);
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
        let id = notice_id(notice, &target);
        self.deliver_notice(Target { id, subject: &subject, file_stem: &stem }, notice, channel).await
    }
}

/// A notice's ledger target on one channel (`""`: the default recipients).
fn notice_target(channel: &str) -> String {
    if channel.is_empty() { "notice.default".to_owned() } else { format!("notice.{channel}") }
}

/// A notice's ledger identity: its key is the run, its kind the phase.
pub(crate) fn notice_id<'a>(notice: &'a Notice, target: &'a str) -> DeliveryId<'a> {
    DeliveryId {
        run_id: &notice.key,
        configuration: notice.configuration.as_deref().unwrap_or("-"),
        phase: notice.kind.as_str(),
        target,
    }
}

/// Recipients' addresses for the ledger: the first 20, then how many more.
fn addresses(recipients: &[Mailbox]) -> String {
    const SHOWN: usize = 20;
    let mut out: Vec<String> = recipients.iter().take(SHOWN).map(|m| m.email.to_string()).collect();
    if recipients.len() > SHOWN {
        out.push(format!("and {} more", recipients.len() - SHOWN));
    }
    out.join(", ")
}

/// What the ledger records for an attempt's result.
fn finish(sent: &Sent, subject: &str) -> Finish {
    match sent {
        Sent::Done(detail) => Finish::Sent { subject: subject.to_owned(), detail: detail.clone() },
        Sent::Silenced(detail) => Finish::Silenced { subject: subject.to_owned(), detail: detail.clone() },
        Sent::Failed(Failure::Transient { reason, .. }) => Finish::Retry { error: reason.clone() },
        Sent::Failed(Failure::Permanent(reason)) => Finish::Failed { error: reason.clone() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ledger_names_recipients_bounded() {
        let one: Vec<Mailbox> = vec!["Ops <ops@example.com>".parse().unwrap()];
        assert_eq!(addresses(&one), "ops@example.com");
        let many: Vec<Mailbox> = (0..23).map(|i| format!("u{i}@example.com").parse().unwrap()).collect();
        let text = addresses(&many);
        assert!(text.starts_with("u0@example.com, u1@example.com, "), "{text}");
        assert!(text.ends_with("u19@example.com, and 3 more"), "{text}");
    }
}
