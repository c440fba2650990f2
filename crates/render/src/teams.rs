//! Microsoft Teams through a Workflows webhook: one Adaptive Card per notification, kept under
//! Teams' 28 KB message limit by listing fewer machines (the email has them all).

use serde_json::{Value, json};
use url::Url;

use patchwatch_model::{
    summary::{Outcome, RunSummary, Verdict},
    text::{format_minutes, format_time},
};

/// Teams refuses messages over 28 KB; stay clear of it.
pub const MAX_BYTES: usize = 26 * 1024;

/// Adaptive Card text is Markdown: escape what would format.
pub fn escape(s: &str) -> String {
    // Only characters that format inline; escaping more shows stray backslashes on some clients.
    let mut out = String::with_capacity(s.len());
    for c in s.chars().filter(|c| !c.is_control()) {
        if "\\`*_[]<>".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    // A leading list or heading marker would restructure the block.
    if out.starts_with(['-', '#', '+']) {
        out.insert(0, '\\');
    }
    out
}

fn color(v: Verdict) -> &'static str {
    match v {
        Verdict::Succeeded => "Good",
        Verdict::Failed | Verdict::Incomplete | Verdict::WindowExceeded => "Attention",
        _ => "Warning",
    }
}

/// The Workflows webhook payload: a message with one Adaptive Card attachment.
/// `actions` are one-click links (label, URL), shown as buttons beside the portal's.
pub fn message(s: &RunSummary, group: Option<&str>, portal: &Url, actions: &[(String, String)]) -> Value {
    let mut lines = 20usize;
    loop {
        let msg = build(s, group, portal, actions, lines);
        if lines == 0 || serde_json::to_vec(&msg).map_or(0, |v| v.len()) <= MAX_BYTES {
            return msg;
        }
        lines /= 2;
    }
}

fn build(s: &RunSummary, group: Option<&str>, portal: &Url, actions: &[(String, String)], max_lines: usize) -> Value {
    let mut facts = vec![
        json!({ "title": "Window", "value": format!("{} – {} ({})", format_time(s.window_start), format_time(s.window_end), format_minutes(s.window_minutes())) }),
        json!({ "title": "Machines", "value": format!("{} of {} patched", s.counts.patched, s.counts.total) }),
    ];
    for o in Outcome::ALL {
        let n = s.counts.of(o);
        if n > 0 && o != Outcome::Succeeded {
            facts.push(json!({ "title": o.label(), "value": n.to_string() }));
        }
    }
    let mut body = vec![
        json!({ "type": "TextBlock", "size": "Large", "weight": "Bolder", "wrap": true, "color": color(s.verdict),
                "text": escape(&crate::headline(s, group)) }),
        json!({ "type": "FactSet", "facts": facts }),
    ];
    let attention: Vec<String> = s
        .machines
        .iter()
        .filter(|m| m.outcome != Outcome::Succeeded)
        .map(|m| {
            let note = m.note.as_deref().map(|n| format!(" — {}", escape(n))).unwrap_or_default();
            format!("- **{}** ({}): {}{note}", escape(&m.name), escape(&m.resource_group), m.outcome.label())
        })
        .collect();
    if !attention.is_empty() {
        let mut text = attention.iter().take(max_lines).cloned().collect::<Vec<_>>().join("\n");
        if attention.len() > max_lines {
            text.push_str(&format!("\n- … and {} more in the email", attention.len() - max_lines));
        }
        body.push(json!({ "type": "TextBlock", "weight": "Bolder", "text": "Needs attention", "spacing": "Medium" }));
        body.push(json!({ "type": "TextBlock", "wrap": true, "text": text }));
    }
    for a in s.advice.iter().take(4) {
        body.push(json!({ "type": "TextBlock", "wrap": true, "isSubtle": true, "text": escape(a) }));
    }
    let mut buttons: Vec<Value> =
        actions.iter().map(|(label, url)| json!({ "type": "Action.OpenUrl", "title": label, "url": url })).collect();
    buttons.push(json!({ "type": "Action.OpenUrl", "title": "Open the configuration", "url": format!("{}#resource{}", portal, s.configuration_id) }));
    adaptive_card_message(body, Some(Value::Array(buttons)))
}

/// A Teams message around a full-width Adaptive Card `body`, with `actions` when given: the one
/// envelope run summaries and digests share.
pub(crate) fn adaptive_card_message(body: Vec<Value>, actions: Option<Value>) -> Value {
    let mut content = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "msteams": { "width": "Full" },
        "body": body
    });
    if let Some(actions) = actions {
        content["actions"] = actions;
    }
    json!({
        "type": "message",
        "attachments": [{ "contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": content }]
    })
}
