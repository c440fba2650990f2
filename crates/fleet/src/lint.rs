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
}

impl Check {
    pub const ALL: [Check; 11] = [
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
