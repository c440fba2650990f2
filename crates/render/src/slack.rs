//! Slack incoming webhook with Block Kit: a header, counts, the machines that need attention
//! (capped; the email has them all) and advice.

use serde_json::{Value, json};
use url::Url;

use patchwatch_model::{
    summary::{Outcome, RunSummary},
    text::format_time,
};

/// Slack's own escaping for text: `&`, `<` and `>` (everything else is literal).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().filter(|c| !c.is_control() || *c == '\n') {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            // A zero-width space keeps mrkdwn from pairing these into formatting.
            '*' | '_' | '~' | '`' => {
                out.push(c);
                out.push('\u{200b}');
            }
            _ => out.push(c),
        }
    }
    out
}

/// A section's text is limited to 3,000 characters.
fn clip(s: String) -> String {
    if s.chars().count() <= 2900 { s } else { s.chars().take(2900).collect::<String>() + "\n…" }
}

/// `actions` are one-click links (label, URL), shown as buttons beside the portal's.
pub fn message(s: &RunSummary, group: Option<&str>, portal: &Url, actions: &[(String, String)]) -> Value {
    let headline = crate::headline(s, group);
    let counts: Vec<String> = Outcome::ALL
        .iter()
        .filter(|o| s.counts.of(**o) > 0)
        .map(|o| format!("*{}* {}", o.label(), s.counts.of(*o)))
        .collect();
    let mut blocks = vec![
        json!({ "type": "header", "text": { "type": "plain_text", "text": headline.chars().take(150).collect::<String>() } }),
        json!({ "type": "section", "text": { "type": "mrkdwn", "text": clip(format!(
            "Window {} – {}\n{}", format_time(s.window_start), format_time(s.window_end), counts.join(" · "))) } }),
    ];
    let attention: Vec<String> = s
        .machines
        .iter()
        .filter(|m| m.outcome != Outcome::Succeeded)
        .take(15)
        .map(|m| {
            format!(
                "• *{}* ({}): {}{}",
                escape(&m.name),
                escape(&m.resource_group),
                m.outcome.label(),
                m.note.as_deref().map(|n| format!(" — {}", escape(n))).unwrap_or_default()
            )
        })
        .collect();
    if !attention.is_empty() {
        let more =
            s.machines.iter().filter(|m| m.outcome != Outcome::Succeeded).count().saturating_sub(attention.len());
        let mut text = attention.join("\n");
        if more > 0 {
            text.push_str(&format!("\n… and {more} more in the email"));
        }
        blocks.push(json!({ "type": "section", "text": { "type": "mrkdwn", "text": clip(text) } }));
    }
    if !s.advice.is_empty() {
        let text = s.advice.iter().map(|a| format!("> {}", escape(a))).collect::<Vec<_>>().join("\n");
        blocks.push(json!({ "type": "context", "elements": [{ "type": "mrkdwn", "text": clip(text) }] }));
    }
    let mut buttons: Vec<Value> = actions
        .iter()
        .map(|(label, url)| json!({ "type": "button", "text": { "type": "plain_text", "text": label }, "url": url }))
        .collect();
    buttons.push(json!({ "type": "button", "text": { "type": "plain_text", "text": "Open the configuration" },
        "url": format!("{}#resource{}", portal, s.configuration_id) }));
    blocks.push(json!({ "type": "actions", "elements": buttons }));
    json!({ "text": escape(&headline), "blocks": blocks })
}
