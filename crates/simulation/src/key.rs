//! The answer key of a simulated fleet: every (check, resource) pair the schedule lint must
//! report, known by construction.

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::ts;

/// The schedule lint's check ids, in the lint's order.
pub const CHECKS: [&str; 11] = [
    "patch-mode",
    "bypass-flag",
    "unassigned",
    "short-window",
    "scope-limit",
    "assessment-off",
    "assessment-stale",
    "pending-critical",
    "repeat-no-show",
    "config-expiring",
    "ring-order",
];

/// One finding the lint must report.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExpectedFinding {
    /// One of [`CHECKS`].
    pub check: &'static str,
    /// `error` or `warning` for the checks with two levels (`short-window`, `scope-limit`,
    /// `assessment-stale`); `None` for the others.
    pub severity: Option<&'static str>,
    /// The machine, the configuration (`short-window`, `config-expiring`, `ring-order`) or the
    /// dynamic scope assignment (`scope-limit`), as the snapshot writes it: compare
    /// case-insensitively.
    pub resource_id: String,
}

/// Everything a lint run on the simulated snapshot must find, and nothing else.
#[derive(Clone, Debug)]
pub struct AnswerKey {
    /// The simulated "now": the newest timestamp in the snapshot.
    pub as_of: OffsetDateTime,
    /// Machines in the fleet (the `resources` table's VMs and Arc machines).
    pub machines: usize,
    /// Sorted by check (in [`CHECKS`] order), then by resource id.
    pub findings: Vec<ExpectedFinding>,
}

impl AnswerKey {
    /// How many findings of `check` the key holds.
    pub fn count(&self, check: &str) -> usize {
        self.findings.iter().filter(|f| f.check == check).count()
    }

    /// `{"asOf", "machines", "counts": {check: n}, "findings": [{check, severity, resourceId}]}`.
    pub fn to_json(&self) -> Value {
        let counts: Map<String, Value> = CHECKS.iter().map(|c| ((*c).to_owned(), json!(self.count(c)))).collect();
        let findings: Vec<Value> = self
            .findings
            .iter()
            .map(|f| json!({ "check": f.check, "severity": f.severity, "resourceId": f.resource_id }))
            .collect();
        json!({ "asOf": ts(self.as_of), "machines": self.machines, "counts": counts, "findings": findings })
    }

    pub(crate) fn sort(&mut self) {
        let rank = |c: &str| CHECKS.iter().position(|k| *k == c).unwrap_or(CHECKS.len());
        self.findings.sort_by(|a, b| {
            (rank(a.check), a.resource_id.to_ascii_lowercase())
                .cmp(&(rank(b.check), b.resource_id.to_ascii_lowercase()))
        });
        self.findings.dedup_by(|a, b| a.check == b.check && a.resource_id.eq_ignore_ascii_case(&b.resource_id));
    }
}
