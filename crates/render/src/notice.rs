//! Notice payloads for chat and webhook channels (email notices render through the templates).

use patchwatch_model::notice::{EVENT_TYPE, Notice, Severity};
use serde_json::{Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// The signed-webhook body (schema version 1). One-click links are left out: they are for
/// people, and a receiving system that logs bodies would keep working action links.
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
    use crate::teams::escape;
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
    let mut buttons: Vec<Value> =
        n.actions.iter().map(|(label, url)| json!({ "type": "Action.OpenUrl", "title": label, "url": url })).collect();
    if let Some(link) = &n.link {
        buttons.push(json!({ "type": "Action.OpenUrl", "title": "Open in the portal", "url": link }));
    }
    if !buttons.is_empty() {
        body.push(json!({ "type": "ActionSet", "actions": buttons }));
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
    use crate::slack::escape;
    let facts = n.facts.iter().map(|(k, v)| format!("*{}:* {}", escape(k), escape(v))).collect::<Vec<_>>().join("\n");
    let mut blocks = vec![
        json!({ "type": "header", "text": { "type": "plain_text", "text": n.title.chars().take(150).collect::<String>() } }),
        json!({ "type": "section", "text": { "type": "mrkdwn", "text": format!("{facts}\n\n{}", escape(&n.text)).chars().take(2900).collect::<String>() } }),
    ];
    let buttons: Vec<Value> = n
        .actions
        .iter()
        .map(|(label, url)| json!({ "type": "button", "text": { "type": "plain_text", "text": label }, "url": url }))
        .collect();
    if !buttons.is_empty() {
        blocks.push(json!({ "type": "actions", "elements": buttons }));
    }
    json!({ "text": escape(&n.subject()), "blocks": blocks })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice() -> Notice {
        Notice {
            kind: patchwatch_model::notice::NoticeKind::Gate,
            key: "k".into(),
            severity: Severity::Critical,
            title: "Ring1 <b>cancelled</b>\nBcc: x@y".into(),
            configuration: Some("Ring1".into()),
            facts: vec![],
            text: "*bold* <script>".into(),
            link: None,
            recipients: Vec::new(),
            actions: Vec::new(),
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

    /// One-click links are buttons for people in chat, never in a system's webhook body.
    #[test]
    fn action_links_are_chat_buttons_and_not_in_webhook_bodies() {
        let mut n = notice();
        n.actions = vec![("Acknowledge".into(), "https://pw.example.com/api/action?token=abc.def".into())];
        assert!(teams_card(&n).to_string().contains("token=abc.def"));
        assert!(slack_message(&n).to_string().contains("token=abc.def"));
        assert!(!webhook_body(&n, OffsetDateTime::UNIX_EPOCH).contains("token="));
    }
}
