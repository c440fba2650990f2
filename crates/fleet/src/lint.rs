//! The schedule lint: every machine or schedule that will not be patched the way its owner
//! thinks, each with why it matters and the exact `az` command that fixes it.

use serde::Serialize;

/// Stable check ids (they appear in JSON output and in silences; never rename one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    PatchMode,
    BypassFlag,
    Unassigned,
    ShortWindow,
    ScopeLimit,
    AssessmentOff,
    AssessmentStale,
    PendingCritical,
    RepeatNoShow,
    ConfigExpiring,
    RingOrder,
    ScheduleInvalid,
}

impl Check {
    pub const ALL: [Check; 12] = [
        Check::PatchMode,
        Check::BypassFlag,
        Check::Unassigned,
        Check::ShortWindow,
        Check::ScopeLimit,
        Check::AssessmentOff,
        Check::AssessmentStale,
        Check::PendingCritical,
        Check::RepeatNoShow,
        Check::ConfigExpiring,
        Check::RingOrder,
        Check::ScheduleInvalid,
    ];
    pub fn id(self) -> &'static str {
        match self {
            Check::PatchMode => "patch-mode",
            Check::BypassFlag => "bypass-flag",
            Check::Unassigned => "unassigned",
            Check::ShortWindow => "short-window",
            Check::ScopeLimit => "scope-limit",
            Check::AssessmentOff => "assessment-off",
            Check::AssessmentStale => "assessment-stale",
            Check::PendingCritical => "pending-critical",
            Check::RepeatNoShow => "repeat-no-show",
            Check::ConfigExpiring => "config-expiring",
            Check::RingOrder => "ring-order",
            Check::ScheduleInvalid => "schedule-invalid",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warning,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
        }
    }
}

/// What a finding is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Subject {
    Machine,
    Configuration,
    DynamicScope,
}

/// One finding.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub check: Check,
    pub severity: Level,
    pub subject: Subject,
    /// Resource id of the machine, configuration or scope.
    pub resource_id: String,
    pub name: String,
    /// From the owner tag, where one is set.
    pub owner: Option<String>,
    pub subscription: String,
    /// What was found, with the numbers (e.g. `patchMode is AutomaticByOS`).
    pub detail: String,
    /// Why it matters, one sentence.
    pub why: String,
    /// The exact `az` command that fixes it.
    pub fix: String,
}

/// What the lint needs besides the fleet.
#[derive(Clone, Debug)]
pub struct LintOptions {
    /// "Now": the snapshot's newest timestamp, or the clock for live data.
    pub as_of: time::OffsetDateTime,
    /// `pending-critical` fires for patches pending longer than this after a run had its chance.
    pub pending_days: i64,
    /// Tags naming a machine's or schedule's owning team, first present wins.
    pub owner_tags: Vec<String>,
    /// Ring sequences from the config file, earliest ring first. Names like `Ring0`/`Ring1` are
    /// grouped into sequences as well (per subscription).
    pub rings: Vec<RingSequence>,
}

/// An ordered list of configurations that should run one after another (dev, then pre-prod, then prod).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingSequence {
    pub name: String,
    /// Lower-cased configuration ids, earliest ring first (names repeat across subscriptions).
    pub configurations: Vec<String>,
}

impl LintOptions {
    pub fn new(as_of: time::OffsetDateTime) -> Self {
        Self {
            as_of,
            pending_days: 14,
            owner_tags: vec!["PatchOwner".to_owned(), "owner".to_owned()],
            rings: Vec::new(),
        }
    }
}

pub use crate::checks::{Context, lint};
