//! The terminal summary `replay` prints.

use patchwatch_engine::pipeline::DeliveryReport;
use patchwatch_model::event::Phase;
use patchwatch_model::summary::Outcome;
use patchwatch_model::summary::RunSummary;
use patchwatch_model::text::format_time;
use patchwatch_render::format_minutes;
use patchwatch_state::ledger::DeliveryRecord;
use patchwatch_state::ledger::DeliveryState;

/// Most machine lines printed; the email has the rest.
const MAX_LINES: usize = 20;

pub(crate) fn summary(s: &RunSummary, deliveries: &[DeliveryReport]) {
    out!("{}", s.subject());
    out!(
        "  window {} – {} ({}), subscriptions {}",
        format_time(s.window_start),
        format_time(s.window_end),
        format_minutes(s.window_minutes()),
        s.subscriptions.join(", ")
    );
    if s.phase == Phase::Post {
        let totals: Vec<String> = Outcome::ALL
            .iter()
            .filter(|o| s.counts.of(**o) > 0)
            .map(|o| format!("{} {}", o.label(), s.counts.of(*o)))
            .collect();
        out!("  {}", if totals.is_empty() { "no machines".to_owned() } else { totals.join(" · ") });
    }
    let attention: Vec<_> =
        s.machines.iter().filter(|m| s.phase == Phase::Pre || m.outcome != Outcome::Succeeded).collect();
    if !attention.is_empty() {
        out!("\n{}", if s.phase == Phase::Pre { "Machines in scope:" } else { "Needs attention:" });
        for m in attention.iter().take(MAX_LINES) {
            let label = if s.phase == Phase::Pre { String::new() } else { format!("{:<24} ", m.outcome.label()) };
            out!(
                "  {}{:<24} {:<22} {:<8} {}",
                label,
                m.name,
                m.resource_group,
                m.os.as_deref().unwrap_or("-"),
                m.note.as_deref().unwrap_or("")
            );
        }
        if attention.len() > MAX_LINES {
            out!("  … and {} more (see the email)", attention.len() - MAX_LINES);
        }
    }
    if !s.failed_patches.is_empty() {
        out!("\nFailed patches:");
        for p in s.failed_patches.iter().take(10) {
            out!("  {:<12} {} machine(s)  {}", p.key, p.machines.len(), p.title);
        }
    }
    if !s.advice.is_empty() {
        out!("\nAdvice:");
        for a in &s.advice {
            out!("  - {a}");
        }
    }
    if deliveries.is_empty() {
        out!("\nNo route matched this run; nothing was sent.");
    }
    for d in deliveries {
        out!("\n{} {}: {}", d.target, d.outcome, d.detail);
    }
}

/// An event whose notifications an earlier delivery already handled.
pub(crate) fn duplicate(record: Option<&DeliveryRecord>, deliveries: &[DeliveryReport]) {
    if let Some(r) = record {
        let when = r.sent_at.unwrap_or(r.updated);
        match r.state {
            DeliveryState::Sent => out!(
                "Already delivered at {} ({}): {}. Nothing sent again.",
                format_time(when),
                r.detail.as_deref().unwrap_or("-"),
                r.subject.as_deref().unwrap_or("-")
            ),
            _ => out!("Refused for good at {}: {}. Not retried.", format_time(when), r.error.as_deref().unwrap_or("-")),
        }
    } else {
        out!("Already delivered by another delivery of this event. Nothing sent again.");
    }
    for d in deliveries {
        out!("  {} {}: {}", d.target, d.outcome, d.detail);
    }
}
