//! The control sections of `PATCHWATCH_CONFIG`: gates, power, ITSM callers and alerts.
//!
//! ```toml
//! [[gates]]
//! name = "ring1-needs-ring0"
//! configuration = "Ring1-*"          # or ring = "preprod"
//! mode = "enforce"                   # or "dry_run": notify only
//! undecided = "fail_closed"          # or "fail_open": when a gate cannot decide
//! notify = ["ops-mail"]
//! previous_ring = { configurations = ["Ring0-*"], max_failed_percent = 10.0, max_kb_failed_percent = 20.0, blocking_kbs = ["5031364"], max_no_result = 2, max_age_days = 14 }
//! change = { source = "itsm" }       # or { source = "servicenow", servicenow = "snow", configuration_field = "u_maintenance_configuration" }
//!
//! [power]
//! configurations = ["Ring*"]
//! concurrency = 8
//!
//! [[itsm.callers]]
//! name = "servicenow"
//! signing_secret_env = "PATCHWATCH_ITSM_SNOW_SECRET"   # Standard Webhooks keys; or bearer_env
//! configurations = ["Ring*"]
//! actions = ["approve", "reject", "acknowledge", "rerun", "emergency"]
//! notify = ["ops-mail"]
//!
//! [alerts]
//! notify = ["ops-mail"]
//! ```

use serde::Deserialize;

/// One gate on the pre event.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateSpec {
    pub name: String,
    /// Glob on the configuration name or id.
    pub configuration: Option<String>,
    /// A ring from `[rings]`.
    pub ring: Option<String>,
    #[serde(default)]
    pub mode: GateMode,
    #[serde(default)]
    pub undecided: Undecided,
    /// Channels told about the decision; empty: `PATCHWATCH_MAIL_TO`.
    #[serde(default)]
    pub notify: Vec<String>,
    pub change: Option<ChangeGate>,
    pub previous_ring: Option<RingGate>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum GateMode {
    /// A failing gate cancels the run.
    #[default]
    Enforce,
    /// A failing gate only notifies.
    DryRun,
}

/// What a gate that cannot decide (ITSM unreachable, no previous run) counts as.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Undecided {
    #[default]
    FailClosed,
    FailOpen,
}

/// The run needs an approved change covering its window.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeGate {
    #[serde(default)]
    pub source: ChangeSource,
    /// The ServiceNow channel to query (`source = "servicenow"`).
    pub servicenow: Option<String>,
    /// The change_request field that holds the configuration name.
    #[serde(default = "default_change_field")]
    pub configuration_field: String,
}

fn default_change_field() -> String {
    "u_maintenance_configuration".to_owned()
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ChangeSource {
    /// Approvals arrive through `POST /api/itsm` and are kept in the state store.
    #[default]
    Itsm,
    /// Looked up in ServiceNow's change_request table.
    Servicenow,
}

/// The previous ring's latest run must have finished within limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RingGate {
    /// Globs of the previous ring's configuration names.
    pub configurations: Vec<String>,
    /// Most machines (in percent) Failed or Window exceeded.
    #[serde(default = "default_failed_percent")]
    pub max_failed_percent: f64,
    /// Most machines (in percent) one patch may have failed on.
    pub max_kb_failed_percent: Option<f64>,
    /// Patches (KB numbers or package names) that must not have failed anywhere.
    #[serde(default)]
    pub blocking_kbs: Vec<String>,
    /// Most machines without a result.
    pub max_no_result: Option<usize>,
    /// The previous run must be at most this old.
    #[serde(default = "default_age")]
    pub max_age_days: u32,
}

fn default_failed_percent() -> f64 {
    10.0
}

fn default_age() -> u32 {
    14
}

/// Start deallocated machines on the pre event, stop them after the post event.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerSpec {
    /// Globs of configuration names.
    pub configurations: Vec<String>,
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Deallocate again after the post event what patchwatch started.
    #[serde(default = "yes")]
    pub stop_after: bool,
    #[serde(default)]
    pub notify: Vec<String>,
}

fn default_concurrency() -> usize {
    8
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItsmSpec {
    #[serde(default)]
    pub callers: Vec<CallerSpec>,
}

/// A system allowed to call `POST /api/itsm`, and what it may do.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallerSpec {
    pub name: String,
    /// Variable holding Standard Webhooks `whsec_…` keys (several for rotation).
    pub signing_secret_env: Option<String>,
    /// Variable holding a shared bearer secret.
    pub bearer_env: Option<String>,
    /// Globs of the configurations it may act on.
    pub configurations: Vec<String>,
    pub actions: Vec<Action>,
    /// Channels told about its requests; empty: `PATCHWATCH_MAIL_TO`.
    #[serde(default)]
    pub notify: Vec<String>,
}

/// What an ITSM request may ask for.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Approve,
    Reject,
    Acknowledge,
    Rerun,
    Emergency,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Approve => "approve",
            Action::Reject => "reject",
            Action::Acknowledge => "acknowledge",
            Action::Rerun => "rerun",
            Action::Emergency => "emergency",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "approve" => Action::Approve,
            "reject" => Action::Reject,
            "acknowledge" | "ack" => Action::Acknowledge,
            "rerun" | "re-run" => Action::Rerun,
            "emergency" => Action::Emergency,
            _ => return None,
        })
    }
}

/// Activity-log alerts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsSpec {
    /// Channels alerts go to; empty: `PATCHWATCH_MAIL_TO`.
    #[serde(default)]
    pub notify: Vec<String>,
}

/// Every control section, validated.
#[derive(Debug, Clone, Default)]
pub struct Control {
    pub gates: Vec<GateSpec>,
    pub power: Option<PowerSpec>,
    pub itsm: ItsmSpec,
    pub alerts: AlertsSpec,
}

impl Control {
    /// Problems as `(section, message)`; `channels` answers whether a channel exists and takes notices.
    pub fn check(&self, rings: &dyn Fn(&str) -> bool, channels: &dyn Fn(&str) -> Result<(), String>) -> Vec<String> {
        let mut issues = Vec::new();
        let notify = |section: String, list: &[String], issues: &mut Vec<String>| {
            for c in list {
                if let Err(e) = channels(c) {
                    issues.push(format!("{section}: notify {c:?}: {e}"));
                }
            }
        };
        let mut names = std::collections::HashSet::new();
        for g in &self.gates {
            let at = format!("gate {:?}", g.name);
            if !names.insert(g.name.clone()) {
                issues.push(format!("{at}: the name is used twice"));
            }
            if g.configuration.is_none() && g.ring.is_none() {
                issues.push(format!("{at}: give `configuration` (a glob) or `ring`"));
            }
            if let Some(r) = &g.ring
                && !rings(r)
            {
                issues.push(format!("{at}: unknown ring {r:?}: define it under [rings]"));
            }
            if g.change.is_none() && g.previous_ring.is_none() {
                issues.push(format!("{at}: give `change` or `previous_ring` (or both)"));
            }
            if let Some(c) = &g.change
                && c.source == ChangeSource::Servicenow
            {
                match &c.servicenow {
                    None => issues.push(format!("{at}: change source servicenow needs `servicenow = \"<channel>\"`")),
                    Some(name) if !name.chars().all(|ch| ch.is_ascii_alphanumeric() || "_-.".contains(ch)) => {
                        issues.push(format!("{at}: servicenow channel name {name:?} is not valid"))
                    }
                    _ => {}
                }
                if !c.configuration_field.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_') {
                    issues.push(format!("{at}: configuration_field must be a field name"));
                }
            }
            if let Some(r) = &g.previous_ring {
                if r.configurations.is_empty() {
                    issues.push(format!("{at}: previous_ring.configurations is empty"));
                }
                for p in [Some(r.max_failed_percent), r.max_kb_failed_percent].into_iter().flatten() {
                    if !(0.0..=100.0).contains(&p) {
                        issues.push(format!("{at}: percentages must be from 0 to 100, got {p}"));
                    }
                }
            }
            notify(at, &g.notify, &mut issues);
        }
        if let Some(p) = &self.power {
            if p.configurations.is_empty() {
                issues.push("power: configurations is empty".to_owned());
            }
            if !(1..=64).contains(&p.concurrency) {
                issues.push(format!("power: concurrency must be from 1 to 64, got {}", p.concurrency));
            }
            notify("power".to_owned(), &p.notify, &mut issues);
        }
        let mut callers = std::collections::HashSet::new();
        for c in &self.itsm.callers {
            let at = format!("itsm caller {:?}", c.name);
            if !callers.insert(c.name.clone()) {
                issues.push(format!("{at}: the name is used twice"));
            }
            if c.signing_secret_env.is_none() && c.bearer_env.is_none() {
                issues.push(format!("{at}: give signing_secret_env or bearer_env"));
            }
            if c.configurations.is_empty() || c.actions.is_empty() {
                issues.push(format!("{at}: configurations and actions must not be empty"));
            }
            notify(at, &c.notify, &mut issues);
        }
        notify("alerts".to_owned(), &self.alerts.notify, &mut issues);
        issues
    }

    /// Environment variables holding caller secrets, with the caller's name.
    pub fn secret_vars(&self) -> Vec<(String, String)> {
        self.itsm
            .callers
            .iter()
            .flat_map(|c| {
                [&c.signing_secret_env, &c.bearer_env].into_iter().flatten().map(|v| (c.name.clone(), v.clone()))
            })
            .collect()
    }
}
