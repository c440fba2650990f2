//! The compliance digest's data: what one team (or everyone) is told each period. Built from a
//! [`Fleet`](crate::Fleet), the lint's findings, next runs and trends; rendered elsewhere.

use serde::Serialize;
use time::OffsetDateTime;

use crate::lint::Finding;
use crate::trends::{ConfigurationTrend, KbCarryover, RepeatOffender};

/// Machines with no critical or security patch pending, out of all machines.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Compliance {
    /// Owner, subscription, or `All machines`.
    pub label: String,
    pub machines: usize,
    pub compliant: usize,
}

impl Compliance {
    /// Whole percent, rounded down (100 only when every machine is compliant); 100 for none.
    pub fn percent(&self) -> u32 {
        if self.machines == 0 {
            100
        } else {
            u32::try_from(self.compliant * 100 / self.machines).unwrap_or(100)
        }
    }
}

/// A machine that needs someone's attention, and why.
#[derive(Clone, Debug, Serialize)]
pub struct AttentionRow {
    pub id: String,
    pub name: String,
    pub owner: Option<String>,
    pub subscription: String,
    /// Critical plus security patches pending.
    pub critical_or_security: u32,
    /// Check ids of the findings about this machine, and `pending` / `reboot-pending`.
    pub reasons: Vec<String>,
}

/// One pending critical or security patch on one machine.
#[derive(Clone, Debug, Serialize)]
pub struct PendingRow {
    pub machine: String,
    pub machine_id: String,
    pub owner: Option<String>,
    /// KB number (Windows) or package name and version (Linux).
    pub patch: String,
    pub classification: String,
    pub severity: Option<String>,
    pub published: Option<OffsetDateTime>,
    /// Days since published (pending that long at most).
    pub age_days: Option<i64>,
}

/// One upcoming window of one configuration.
#[derive(Clone, Debug, Serialize)]
pub struct CalendarEntry {
    pub configuration: String,
    pub configuration_id: String,
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
    /// Start in the schedule's own zone, as the owner wrote it (e.g. `2026-12-08 22:00 W. Europe Standard Time`).
    pub local: String,
}

/// Pending patch counts of one classification across the digest's machines (chart 1).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ClassificationCount {
    pub classification: String,
    pub patches: u64,
}

/// Everything one digest shows.
#[derive(Clone, Debug, Serialize)]
pub struct Digest {
    pub generated: OffsetDateTime,
    /// The period this digest covers, e.g. `2026-W49`: the ledger sends one per period.
    pub period: String,
    /// The owning team (the owner tag's value), none for the whole-fleet digest.
    pub owner: Option<String>,
    pub overall: Compliance,
    pub by_owner: Vec<Compliance>,
    pub by_subscription: Vec<Compliance>,
    pub pending_by_classification: Vec<ClassificationCount>,
    /// Sorted by check, then severity, then name.
    pub findings: Vec<Finding>,
    pub attention: Vec<AttentionRow>,
    pub pending: Vec<PendingRow>,
    /// Next 35 days, soonest first.
    pub calendar: Vec<CalendarEntry>,
    pub trends: Vec<ConfigurationTrend>,
    pub repeat_offenders: Vec<RepeatOffender>,
    pub kb_carryover: Vec<KbCarryover>,
}
