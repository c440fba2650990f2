//! Notices: short messages about something patchwatch did or saw around a run (a gate that
//! cancelled it, machines it started, a configuration someone changed, an ITSM request), as
//! opposed to a run summary. Delivered to named channels (email, Teams, Slack, webhook), once
//! per channel through the ledger.

use serde::Serialize;

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

/// What produced a notice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// A gate's decision before a run.
    Gate,
    /// Machines started for a run.
    Power,
    /// An Azure Monitor activity-log alert.
    Alert,
    /// A request from an ITSM system.
    Itsm,
    /// Alerts muted (or not) during a run.
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
            NoticeKind::Quiet => "quiet",
        }
    }
}

/// One notice.
#[derive(Clone, Debug, Serialize)]
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
        crate::text::one_line(&format!("[patchwatch] {}: {}", self.severity.label(), self.title))
    }
}

/// The webhook body's `type` for notices.
pub const EVENT_TYPE: &str = "patchwatch.notice";
