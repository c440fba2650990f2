//! Notices: short messages about something patchwatch did or saw around a run (a gate that
//! cancelled it, machines it started, a configuration someone changed, an ITSM request), as
//! opposed to a run summary. Delivered to named channels (email, Teams, Slack, webhook), once
//! per channel through the ledger.

use serde::Serialize;
use serde_json::{Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// How loud a notice is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Info => "Info",
            Severity::Warning => "Warning",
            Severity::Critical => "Critical",
        }
    }
}

/// One notice.
#[derive(Clone, Debug, Serialize)]
pub struct Notice {
    /// What produced it: `gate`, `power`, `alert`, `itsm`.
    pub kind: &'static str,
    /// Stable identity: the same notice delivered twice is recognised by this key.
    pub key: String,
    pub severity: Severity,
    /// One line; becomes the email subject.
    pub title: String,
    /// The maintenance configuration it concerns, if any.
    pub configuration: Option<String>,
    /// Label → value pairs, in order.
    pub facts: Vec<(String, String)>,
    /// Free text: the reason, what happens next.
    pub text: String,
    /// A portal link, if one helps.
    pub link: Option<String>,
}

impl Notice {
    pub fn fact(mut self, label: &str, value: impl Into<String>) -> Self {
        let value = value.into();
        if !value.is_empty() {
            self.facts.push((label.to_owned(), value));
        }
        self
    }

    /// Subject line: `[patchwatch] Warning: …`, one line.
    pub fn subject(&self) -> String {
        crate::summary::one_line(&format!("[patchwatch] {}: {}", self.severity.label(), self.title))
    }
}

/// The webhook body's `type` for notices.
pub const EVENT_TYPE: &str = "patchwatch.notice";

/// The signed-webhook body (schema version 1).
pub fn webhook_body(n: &Notice, now: OffsetDateTime) -> String {
    let facts: serde_json::Map<String, Value> = n.facts.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    json!({
        "type": EVENT_TYPE,
        "schemaVersion": 1,
        "timestamp": now.format(&Rfc3339).unwrap_or_default(),
        "data": {
            "kind": n.kind, "key": n.key, "severity": n.severity, "title": n.title,
            "configuration": n.configuration, "facts": facts, "text": n.text, "link": n.link,
        }
    })
    .to_string()
}

/// A Teams Workflows message with one Adaptive Card.
pub fn teams_card(n: &Notice) -> Value {
    use crate::channels::teams::escape;
    let color = match n.severity {
        Severity::Info => "Good",
        Severity::Warning => "Warning",
        Severity::Critical => "Attention",
    };
    let facts: Vec<Value> = n.facts.iter().map(|(k, v)| json!({ "title": escape(k), "value": escape(v) })).collect();
    let mut body = vec![
        json!({ "type": "TextBlock", "text": escape(&n.title), "weight": "Bolder", "size": "Medium", "wrap": true, "color": color }),
        json!({ "type": "FactSet", "facts": facts }),
    ];
    // Card text escaping drops line breaks: one block per line keeps the paragraphs apart.
    body.extend(
        n.text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| json!({ "type": "TextBlock", "text": escape(l), "wrap": true })),
    );
    if let Some(link) = &n.link {
        body.push(json!({ "type": "ActionSet", "actions": [{ "type": "Action.OpenUrl", "title": "Open in the portal", "url": link }] }));
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": { "$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard", "version": "1.4", "body": body }
        }]
    })
}

/// A Slack message.
pub fn slack_message(n: &Notice) -> Value {
    use crate::channels::slack::escape;
    let facts = n.facts.iter().map(|(k, v)| format!("*{}:* {}", escape(k), escape(v))).collect::<Vec<_>>().join("\n");
    json!({
        "text": escape(&n.subject()),
        "blocks": [
            { "type": "header", "text": { "type": "plain_text", "text": n.title.chars().take(150).collect::<String>() } },
            { "type": "section", "text": { "type": "mrkdwn", "text": format!("{facts}\n\n{}", escape(&n.text)).chars().take(2900).collect::<String>() } },
        ]
    })
}

/// A notice delivery's report and, when it must be retried, why and when.
pub type NoticeResult = (crate::pipeline::DeliveryReport, Result<(), (String, std::time::Duration)>);

impl crate::pipeline::Pipeline {
    /// Delivers a notice to each named channel (none: the default recipients by email), once
    /// per channel however often it is asked for.
    pub async fn send_notice(&self, notice: &Notice, channels: &[String]) -> Vec<NoticeResult> {
        let default = [String::new()];
        let targets = if channels.is_empty() { &default[..] } else { channels };
        let mut out = Vec::with_capacity(targets.len());
        for channel in targets {
            out.push(self.send_notice_to(notice, channel).await);
        }
        out
    }

    async fn send_notice_to(&self, notice: &Notice, channel: &str) -> NoticeResult {
        use crate::{
            ledger::{Claim, DeliveryId, Finish},
            pipeline::DeliveryReport,
            routing::ChannelSpec,
        };
        use std::time::Duration;
        let target = if channel.is_empty() { "notice.default".to_owned() } else { format!("notice.{channel}") };
        let report = |outcome: &'static str, detail: String| DeliveryReport { target: target.clone(), outcome, detail };
        let id = DeliveryId {
            run_id: &notice.key,
            configuration: notice.configuration.as_deref().unwrap_or("-"),
            phase: notice.kind,
            target: &target,
        };
        let now = (self.clock)();
        let token = match self.ledger.claim(&id, now).await {
            Ok(Claim::Claimed(t)) => t,
            Ok(Claim::AlreadySent(r)) => return (report("duplicate", r.detail.unwrap_or_default()), Ok(())),
            Ok(Claim::FailedForGood(r)) => return (report("failed", r.error.unwrap_or_default()), Ok(())),
            Ok(Claim::Busy { .. }) => {
                let reason = format!("{target}: another instance is delivering it");
                return (report("retry_later", reason.clone()), Err((reason, Duration::from_secs(30))));
            }
            Err(e) => return (report("retry_later", e.to_string()), Err((e.to_string(), Duration::from_secs(30)))),
        };
        let spec = self.routing.as_ref().and_then(|r| r.channels.get(channel));
        let sent: Result<String, (bool, String)> = match spec {
            None | Some(ChannelSpec::Email { .. }) => {
                let to = match spec {
                    Some(ChannelSpec::Email { to, .. }) if !to.is_empty() => to
                        .iter()
                        .map(|a| {
                            a.parse::<lettre::message::Mailbox>().map_err(|e| (false, format!("recipient {a:?}: {e}")))
                        })
                        .collect::<Result<Vec<_>, _>>(),
                    _ => Ok(self.to.clone()),
                };
                match (to, self.templates.render_notice(notice)) {
                    (Err(e), _) => Err(e),
                    (_, Err(e)) => Err((false, e.to_string())),
                    (Ok(to), Ok(rendered)) => {
                        let stem = format!(
                            "{}-{}-{:08x}",
                            crate::mail::file_stem(
                                now,
                                notice.configuration.as_deref().unwrap_or("patchwatch"),
                                notice.kind,
                                "notice"
                            ),
                            crate::state::key_segment(if channel.is_empty() { "default" } else { channel }),
                            crate::ledger::fnv64(&notice.key) as u32
                        );
                        let message_id = crate::mail::message_id(&token.id_hash(), &self.from);
                        match self.mailer.send(&self.from, &to, &rendered, &stem, &message_id).await {
                            Ok(crate::mail::Delivered::Smtp { recipients }) => {
                                Ok(format!("SMTP to {recipients} recipient(s)"))
                            }
                            Ok(crate::mail::Delivered::Outbox { eml, .. }) => Ok(eml.display().to_string()),
                            Err(e) => Err((e.is_transient(), e.to_string())),
                        }
                    }
                }
            }
            Some(_) => {
                let delivery_id = format!("msg_{}", token.id_hash());
                self.channels.deliver_notice(channel, notice, &delivery_id).await.map_err(|e| match e {
                    crate::channels::ChannelError::Transient(m) => (true, m),
                    crate::channels::ChannelError::Permanent(m) => (false, m),
                })
            }
        };
        let (finish, result) = match sent {
            Ok(detail) => {
                tracing::info!(target = %target, kind = notice.kind, "Notice delivered.");
                (Finish::Sent { subject: notice.subject(), detail: detail.clone() }, (report("sent", detail), Ok(())))
            }
            Err((true, e)) => {
                tracing::warn!(target = %target, error = %e, "Notice could not be delivered; will retry.");
                (
                    Finish::Retry { error: e.clone() },
                    (report("retry_later", e.clone()), Err((e, Duration::from_secs(60)))),
                )
            }
            Err((false, e)) => {
                tracing::error!(target = %target, error = %e, "Notice refused for good.");
                (Finish::Failed { error: e.clone() }, (report("failed", e), Ok(())))
            }
        };
        if let Err(e) = self.ledger.finish(token, finish, (self.clock)()).await {
            tracing::error!(target = %target, error = %e, "Notice delivery could not be recorded.");
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice() -> Notice {
        Notice {
            kind: "gate",
            key: "k".into(),
            severity: Severity::Critical,
            title: "Ring1 <b>cancelled</b>\nBcc: x@y".into(),
            configuration: Some("Ring1".into()),
            facts: vec![],
            text: "*bold* <script>".into(),
            link: None,
        }
        .fact("Reason", "KB5031364 failed on 30% of Ring0")
        .fact("Empty", "")
    }

    #[test]
    fn subjects_are_one_line_and_chat_text_is_escaped() {
        let n = notice();
        assert_eq!(n.facts.len(), 1, "empty facts are dropped");
        assert!(!n.subject().contains('\n'));
        let card = teams_card(&n).to_string();
        assert!(card.contains(r"\\<b\\>") && card.contains(r"\\*bold\\*"), "{card}");
        let slack = slack_message(&n).to_string();
        assert!(slack.contains("&lt;script&gt;"), "{slack}");
        let body: Value = serde_json::from_str(&webhook_body(&n, OffsetDateTime::UNIX_EPOCH)).unwrap();
        assert_eq!(body["data"]["facts"]["Reason"], "KB5031364 failed on 30% of Ring0");
    }
}
