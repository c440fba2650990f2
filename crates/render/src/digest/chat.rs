//! The digest as a compact chat card: the headline percent, counts by severity and the top
//! findings. No links and no tables: the email has the rest, the workbook every row.

use serde_json::{Value, json};

use patchwatch_fleet::{
    digest::Digest,
    lint::{Finding, Level},
};

use super::{model::check_title, subject, thousands};

/// Most findings a card lists.
pub const TOP_FINDINGS: usize = 5;

/// Errors first, then the digest's order (by check).
fn top_findings(d: &Digest, n: usize) -> Vec<&Finding> {
    let mut top: Vec<&Finding> = d.findings.iter().filter(|f| f.severity == Level::Error).collect();
    top.extend(d.findings.iter().filter(|f| f.severity == Level::Warning));
    top.truncate(n);
    top
}

fn count(d: &Digest, level: Level) -> usize {
    d.findings.iter().filter(|f| f.severity == level).count()
}

/// `870 of 1,000 machines (87%)`.
fn compliant(d: &Digest) -> String {
    format!(
        "{} of {} machines ({}%)",
        thousands(d.overall.compliant),
        thousands(d.overall.machines),
        d.overall.percent()
    )
}

/// A Teams Workflows message with one Adaptive Card, under Teams' size limit.
pub fn teams_message(d: &Digest) -> Value {
    let mut n = TOP_FINDINGS;
    loop {
        let msg = teams_card(d, n);
        if n == 0 || serde_json::to_vec(&msg).map_or(0, |v| v.len()) <= crate::teams::MAX_BYTES {
            return msg;
        }
        n /= 2;
    }
}

fn teams_card(d: &Digest, n: usize) -> Value {
    use crate::teams::escape;
    let color = match d.overall.percent() {
        95.. => "Good",
        80.. => "Warning",
        _ => "Attention",
    };
    let facts = vec![
        json!({ "title": "Compliant", "value": compliant(d) }),
        json!({ "title": "Errors", "value": count(d, Level::Error).to_string() }),
        json!({ "title": "Warnings", "value": count(d, Level::Warning).to_string() }),
        json!({ "title": "Need attention", "value": format!("{} machines", thousands(d.attention.len())) }),
        json!({ "title": "Critical/security pending", "value": format!("{} patches", thousands(d.pending.len())) }),
    ];
    let mut body = vec![
        json!({ "type": "TextBlock", "size": "Large", "weight": "Bolder", "wrap": true, "color": color, "text": escape(&subject(d)) }),
        json!({ "type": "FactSet", "facts": facts }),
    ];
    let top = top_findings(d, n);
    if !top.is_empty() {
        let mut text = top
            .iter()
            .map(|f| format!("- **{}** {}: {}", f.severity.as_str(), escape(&f.name), escape(&f.detail)))
            .collect::<Vec<_>>()
            .join("\n");
        if d.findings.len() > top.len() {
            text.push_str(&format!("\n- … and {} more in the email", d.findings.len() - top.len()));
        }
        body.push(json!({ "type": "TextBlock", "weight": "Bolder", "text": "Top findings", "spacing": "Medium" }));
        body.push(json!({ "type": "TextBlock", "wrap": true, "text": text }));
    }
    body.push(json!({ "type": "TextBlock", "wrap": true, "isSubtle": true,
        "text": "The digest email has every table and charts; its attached workbook has every row." }));
    crate::teams::adaptive_card_message(body, None)
}

/// A Slack incoming-webhook message (Block Kit).
pub fn slack_message(d: &Digest) -> Value {
    use crate::slack::escape;
    let headline = subject(d);
    let counts = format!(
        "*Compliant* {} · *Errors* {} · *Warnings* {} · *Need attention* {} · *Critical/security pending* {}",
        escape(&compliant(d)),
        count(d, Level::Error),
        count(d, Level::Warning),
        thousands(d.attention.len()),
        thousands(d.pending.len())
    );
    let mut blocks = vec![
        json!({ "type": "header", "text": { "type": "plain_text", "text": headline.chars().take(150).collect::<String>() } }),
        json!({ "type": "section", "text": { "type": "mrkdwn", "text": counts } }),
    ];
    let top = top_findings(d, TOP_FINDINGS);
    if !top.is_empty() {
        let mut text = top
            .iter()
            .map(|f| {
                format!(
                    "• *{}* {} ({}): {}",
                    f.severity.as_str(),
                    escape(&f.name),
                    check_title(f.check),
                    escape(&f.detail)
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        if d.findings.len() > top.len() {
            text.push_str(&format!("\n… and {} more in the email", d.findings.len() - top.len()));
        }
        let text: String = text.chars().take(2900).collect();
        blocks.push(json!({ "type": "section", "text": { "type": "mrkdwn", "text": text } }));
    }
    blocks.push(json!({ "type": "context", "elements": [{ "type": "mrkdwn",
        "text": "The digest email has every table and charts; its attached workbook has every row." }] }));
    json!({ "text": escape(&headline), "blocks": blocks })
}
