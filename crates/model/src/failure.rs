//! The one failure vocabulary: an attempt that did not work either may work later (transient,
//! with how long to wait) or never will (permanent). Every channel, the mailer, ARM calls and
//! the state store answer in these terms, and the pipeline merges them into one "retry after".

use std::{fmt, time::Duration};

use serde::Serialize;

/// How long to wait when the state store cannot be reached.
pub const STATE_RETRY: Duration = Duration::from_secs(30);
/// How long to wait after a channel or the mailer failed transiently.
pub const DELIVERY_RETRY: Duration = Duration::from_secs(60);
/// How long to wait when another instance holds a claim on a control action (cancel).
pub const CONTROL_RETRY: Duration = Duration::from_secs(15);
/// The shortest wait ever asked for: `Retry-After: 0` must not become a tight loop.
pub const MIN_RETRY: Duration = Duration::from_secs(1);

/// Why an attempt failed, and whether trying again can help.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// Worth trying again after `retry_after` (timeouts, 5xx, 429, a busy claim).
    #[error("{reason}")]
    Transient { reason: String, retry_after: Duration },
    /// Never worth retrying (a refused recipient, a broken template, 4xx).
    #[error("{0}")]
    Permanent(String),
}

impl Failure {
    pub fn transient(reason: impl Into<String>, retry_after: Duration) -> Self {
        Self::Transient { reason: reason.into(), retry_after }
    }

    pub fn permanent(reason: impl Into<String>) -> Self {
        Self::Permanent(reason.into())
    }

    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }

    /// The wait a transient failure asks for.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Transient { retry_after, .. } => Some(*retry_after),
            Self::Permanent(_) => None,
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            Self::Transient { reason, .. } | Self::Permanent(reason) => reason,
        }
    }
}

/// "Try the whole thing again later": why, and after how long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retry {
    pub reason: String,
    pub after: Duration,
}

impl Retry {
    pub fn new(reason: impl Into<String>, after: Duration) -> Self {
        Self { reason: reason.into(), after }
    }

    /// Merges two waits: both reasons, the longer wait (every part must have had its time).
    pub fn merge(self, other: Retry) -> Retry {
        Retry { reason: format!("{}; {}", self.reason, other.reason), after: self.after.max(other.after) }
    }

    /// Merges `next` into an optional earlier wait.
    pub fn merge_into(slot: &mut Option<Retry>, next: Retry) {
        *slot = Some(match slot.take() {
            Some(earlier) => earlier.merge(next),
            None => next,
        });
    }
}

/// How one notification (or control action) ended, as reported to the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Sent,
    /// Delivered by an earlier delivery of the same event: nothing sent now.
    Duplicate,
    /// Refused for good; not retried.
    Failed,
    /// Will be tried again when the event is redelivered.
    RetryLater,
    /// Deliberately not served (an action group receiver patchwatch cannot reach).
    Skipped,
    /// Not sent: a silence matched it.
    Silenced,
    /// Not sent on its own: folded into another message.
    Inhibited,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Duplicate => "duplicate",
            Self::Failed => "failed",
            Self::RetryLater => "retry_later",
            Self::Skipped => "skipped",
            Self::Silenced => "silenced",
            Self::Inhibited => "inhibited",
        }
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one notification of a run ended.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryReport {
    pub target: String,
    pub outcome: DeliveryStatus,
    pub detail: String,
}

/// A delivery's report and, when the event must be retried for it, the wait.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub report: DeliveryReport,
    pub retry: Option<Retry>,
}

impl Delivered {
    /// A report that needs no retry.
    pub fn done(target: &str, outcome: DeliveryStatus, detail: impl Into<String>) -> Self {
        Self { report: DeliveryReport { target: target.to_owned(), outcome, detail: detail.into() }, retry: None }
    }

    /// A report whose event must be retried after `after`.
    pub fn retry(target: &str, reason: impl Into<String>, after: Duration) -> Self {
        let reason = reason.into();
        Self {
            report: DeliveryReport {
                target: target.to_owned(),
                outcome: DeliveryStatus::RetryLater,
                detail: reason.clone(),
            },
            retry: Some(Retry::new(reason, after)),
        }
    }

    /// The report of how a failure ended this delivery.
    pub fn failed(target: &str, failure: Failure) -> Self {
        match failure {
            Failure::Transient { reason, retry_after } => Self::retry(target, reason, retry_after),
            Failure::Permanent(reason) => Self::done(target, DeliveryStatus::Failed, reason),
        }
    }
}

/// The reports of several deliveries, and the one merged wait when any must be retried.
#[derive(Debug, Default)]
pub struct Deliveries {
    pub reports: Vec<DeliveryReport>,
    pub retry: Option<Retry>,
}

impl Deliveries {
    /// Adds each delivery's report, merging its wait into the others'.
    pub fn absorb(&mut self, results: impl IntoIterator<Item = Delivered>) {
        for d in results {
            if let Some(retry) = d.retry {
                self.retry(retry);
            }
            self.reports.push(d.report);
        }
    }

    /// Merges one more reason to retry.
    pub fn retry(&mut self, retry: Retry) {
        Retry::merge_into(&mut self.retry, retry);
    }

    /// Adds another set of deliveries after these.
    pub fn extend(&mut self, other: Deliveries) {
        self.reports.extend(other.reports);
        if let Some(retry) = other.retry {
            self.retry(retry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_merge_to_the_longest_wait_with_every_reason() {
        let mut slot = None;
        Retry::merge_into(&mut slot, Retry::new("teams down", Duration::from_secs(60)));
        Retry::merge_into(&mut slot, Retry::new("state busy", Duration::from_secs(30)));
        Retry::merge_into(&mut slot, Retry::new("throttled", Duration::from_secs(120)));
        let merged = slot.unwrap();
        assert_eq!(merged.after, Duration::from_secs(120));
        assert_eq!(merged.reason, "teams down; state busy; throttled");
    }

    #[test]
    fn statuses_serialise_as_before() {
        for (s, text) in [
            (DeliveryStatus::Sent, "sent"),
            (DeliveryStatus::Duplicate, "duplicate"),
            (DeliveryStatus::Failed, "failed"),
            (DeliveryStatus::RetryLater, "retry_later"),
            (DeliveryStatus::Skipped, "skipped"),
        ] {
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{text}\""));
            assert_eq!(s.as_str(), text);
        }
    }

    #[test]
    fn a_failure_becomes_a_report() {
        let d = Delivered::failed("email", Failure::permanent("550 no such user"));
        assert_eq!(d.report.outcome, DeliveryStatus::Failed);
        assert!(d.retry.is_none());
        let d = Delivered::failed("teams", Failure::transient("503", DELIVERY_RETRY));
        assert_eq!(d.report.outcome, DeliveryStatus::RetryLater);
        assert_eq!(d.retry.unwrap().after, DELIVERY_RETRY);
    }
}
