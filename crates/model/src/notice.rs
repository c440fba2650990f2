//! Notices: short messages about something patchwatch did or saw around a run (a gate that
//! cancelled it, machines it started, a configuration someone changed, an ITSM request), as
//! opposed to a run summary. Delivered to named channels (email, Teams, Slack, webhook), once
//! per channel through the ledger.

use serde::{Deserialize, Serialize};

/// How loud a notice is; ordered, so a route can ask for "warning or worse".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
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

/// What produced a notice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// A gate's decision before a run (a cancellation among them).
    Gate,
    /// Machines started for a run.
    Power,
    /// An Azure Monitor activity-log alert.
    Alert,
    /// A request from an ITSM system.
    Itsm,
    /// A failed run nobody has acknowledged yet: a reminder or the escalation.
    Reminder,
    /// A message patchwatch never processed (poison queue, Event Grid dead letter).
    Undelivered,
    /// Alerts muted around a run (alert processing rules).
    Quiet,
}

impl NoticeKind {
    /// The name in payloads, ledger records and outbox file names.
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Gate => "gate",
            NoticeKind::Power => "power",
            NoticeKind::Alert => "alert",
            NoticeKind::Itsm => "itsm",
            NoticeKind::Reminder => "reminder",
            NoticeKind::Undelivered => "undelivered",
            NoticeKind::Quiet => "quiet",
        }
    }

    pub const ALL: [NoticeKind; 7] = [
        NoticeKind::Gate,
        NoticeKind::Power,
        NoticeKind::Alert,
        NoticeKind::Itsm,
        NoticeKind::Reminder,
        NoticeKind::Undelivered,
        NoticeKind::Quiet,
    ];
}

/// One notice. Deserialisable: a notice that could not go out from a background task is kept
/// in the state store and sent again by the reminders timer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Notice {
    pub kind: NoticeKind,
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
    /// Email recipients for this notice alone (a reminder to one owner of a split route);
    /// empty: the channel's own.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// One-click actions: label and signed URL.
    #[serde(default)]
    pub actions: Vec<(String, String)>,
}

impl Notice {
    /// A notice with no facts, text, link, recipients or actions yet.
    pub fn new(kind: NoticeKind, key: impl Into<String>, severity: Severity, title: impl Into<String>) -> Self {
        Self {
            kind,
            key: key.into(),
            severity,
            title: title.into(),
            configuration: None,
            facts: Vec::new(),
            text: String::new(),
            link: None,
            recipients: Vec::new(),
            actions: Vec::new(),
        }
    }

    pub fn fact(mut self, label: &str, value: impl Into<String>) -> Self {
        let value = value.into();
        if !value.is_empty() {
            self.facts.push((label.to_owned(), value));
        }
        self
    }

    /// Subject line: `[patchwatch] Warning: …`, one line.
    pub fn subject(&self) -> String {
        crate::text::one_line(&format!("[patchwatch] {}: {}", self.severity.label(), self.title))
    }
}

/// The webhook body's `type` for notices.
pub const EVENT_TYPE: &str = "patchwatch.notice";
