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
//!
//! [suppress_alerts]
//! configurations = ["Ring*"]
//! resource_groups = ["/subscriptions/<guid>/resourceGroups/rg-patchwatch"]   # one per subscription
//! reboot_margin_minutes = 30
//! notify = ["ops-mail"]
//! group_window = "5m"                # assignment alerts per configuration and caller: one notice
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
    /// Pause a failed run's reminders for a while (`until`, or 24 hours).
    Snooze,
    /// Mute a configuration's notifications for a while (a planned change).
    Silence,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Approve => "approve",
            Action::Reject => "reject",
            Action::Acknowledge => "acknowledge",
            Action::Rerun => "rerun",
            Action::Emergency => "emergency",
            Action::Snooze => "snooze",
            Action::Silence => "silence",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "approve" => Action::Approve,
            "reject" => Action::Reject,
            "acknowledge" | "ack" => Action::Acknowledge,
            "rerun" | "re-run" => Action::Rerun,
            "emergency" => Action::Emergency,
            "snooze" => Action::Snooze,
            "silence" => Action::Silence,
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
    /// How long configuration-assignment alerts of one configuration and caller are gathered
    /// into one notice (`90s`, `5m`, `1h`); default 5 minutes.
    #[serde(default)]
    pub group_window: Option<String>,
}

/// The assignment-alert grouping window when `[alerts] group_window` is not set.
pub const DEFAULT_GROUP_WINDOW: std::time::Duration = std::time::Duration::from_secs(300);

impl AlertsSpec {
    /// The grouping window: `group_window` if valid (see [`Control::check`]), else 5 minutes.
    pub fn group_window(&self) -> std::time::Duration {
        self.group_window.as_deref().and_then(|w| check_group_window(w).ok()).unwrap_or(DEFAULT_GROUP_WINDOW)
    }
}

/// A grouping window from 30 seconds to 24 hours.
fn check_group_window(text: &str) -> Result<std::time::Duration, String> {
    let d = crate::conditions::parse_duration(text)?;
    if d < std::time::Duration::from_secs(30) || d > std::time::Duration::from_secs(86_400) {
        return Err(format!("{text:?} must be from 30s to 24h"));
    }
    Ok(d)
}

/// Quiet during patching: on the pre event an Azure Monitor alert processing rule removes the
/// action groups from alerts on the run's machines for the window plus a reboot margin; after
/// the post event it is deleted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuppressAlertsSpec {
    /// Globs of configuration names.
    pub configurations: Vec<String>,
    /// Resource group ids the rules are created in, at most one per subscription: a rule may
    /// only cover resources of its own subscription, so machines of a subscription without one
    /// are not muted (and a notice says so).
    pub resource_groups: Vec<String>,
    /// Minutes after the window's end the rule still mutes (reboots, slow starts).
    #[serde(default = "default_reboot_margin")]
    pub reboot_margin_minutes: u32,
    /// Channels told when muting or unmuting fails; empty: `PATCHWATCH_MAIL_TO`.
    #[serde(default)]
    pub notify: Vec<String>,
}

/// Longest reboot margin accepted, in minutes.
pub const MAX_REBOOT_MARGIN: u32 = 240;

fn default_reboot_margin() -> u32 {
    30
}

impl SuppressAlertsSpec {
    /// The configured resource group (as written) in `subscription`, if any.
    pub fn resource_group_in(&self, subscription: &str) -> Option<&str> {
        self.resource_groups
            .iter()
            .find(|g| crate::resource_id::subscription_of(g).is_some_and(|s| s.eq_ignore_ascii_case(subscription)))
            .map(String::as_str)
    }

    fn check(&self, say: &mut dyn FnMut(String)) {
        if self.configurations.is_empty() {
            say("configurations is empty".to_owned());
        }
        if self.resource_groups.is_empty() {
            say("resource_groups is empty: give the resource group the rules are created in".to_owned());
        }
        let mut subscriptions = std::collections::HashSet::new();
        for g in &self.resource_groups {
            match check_resource_group(g) {
                Err(e) => say(format!("resource group {g:?}: {e}")),
                Ok(sub) if !subscriptions.insert(sub.to_ascii_lowercase()) => {
                    say(format!("resource group {g:?}: a second one in subscription {sub}; give one per subscription"));
                }
                Ok(_) => {}
            }
        }
        if self.reboot_margin_minutes > MAX_REBOOT_MARGIN {
            say(format!(
                "reboot_margin_minutes must be from 0 to {MAX_REBOOT_MARGIN}, got {}",
                self.reboot_margin_minutes
            ));
        }
    }
}

/// `/subscriptions/{guid}/resourceGroups/{name}`, answering the subscription.
fn check_resource_group(id: &str) -> Result<String, String> {
    let parts: Vec<&str> = id.trim_end_matches('/').split('/').collect();
    if !matches!(parts.as_slice(), ["", s, _, g, _] if s.eq_ignore_ascii_case("subscriptions") && g.eq_ignore_ascii_case("resourceGroups"))
    {
        return Err("expected /subscriptions/<id>/resourceGroups/<name>".to_owned());
    }
    // The same checks as every id that shapes an ARM URL.
    let rule = format!("{}/providers/Microsoft.AlertsManagement/actionRules/check", id.trim_end_matches('/'));
    let parsed = crate::resource_id::ResourceId::parse(&rule).map_err(|e| e.to_string())?;
    Ok(parsed.subscription().to_owned())
}

/// Every control section, validated.
#[derive(Debug, Clone, Default)]
pub struct Control {
    pub gates: Vec<GateSpec>,
    pub power: Option<PowerSpec>,
    pub itsm: ItsmSpec,
    pub alerts: AlertsSpec,
    pub suppress_alerts: Option<SuppressAlertsSpec>,
}

/// Which part of the control settings a problem is in (where `check-config` points).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Section {
    Gate(String),
    Power,
    ItsmCaller(String),
    Alerts,
    SuppressAlerts,
}

impl std::fmt::Display for Section {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Section::Gate(name) => write!(f, "gate {name:?}"),
            Section::Power => f.write_str("power"),
            Section::ItsmCaller(name) => write!(f, "itsm caller {name:?}"),
            Section::Alerts => f.write_str("alerts"),
            Section::SuppressAlerts => f.write_str("suppress_alerts"),
        }
    }
}

/// One problem with the control settings: `gate "x": give `change` or `previous_ring``.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub section: Section,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.section, self.message)
    }
}

/// What a check needs to know about the rest of the file.
struct Known<'a> {
    /// Whether a ring is defined.
    rings: &'a dyn Fn(&str) -> bool,
    /// Whether a channel exists and takes notices, and why not.
    channels: &'a dyn Fn(&str) -> Result<(), String>,
}

impl Known<'_> {
    fn notify(&self, section: &Section, list: &[String], problems: &mut Vec<Problem>) {
        for c in list {
            if let Err(e) = (self.channels)(c) {
                problems.push(Problem { section: section.clone(), message: format!("notify {c:?}: {e}") });
            }
        }
    }
}

impl Control {
    /// Every problem, in file order; `channels` answers whether a channel exists and takes notices.
    pub fn check(&self, rings: &dyn Fn(&str) -> bool, channels: &dyn Fn(&str) -> Result<(), String>) -> Vec<Problem> {
        let known = Known { rings, channels };
        let mut problems = Vec::new();
        let mut names = std::collections::HashSet::new();
        for g in &self.gates {
            let section = Section::Gate(g.name.clone());
            let mut say = |message: String| problems.push(Problem { section: section.clone(), message });
            if !names.insert(g.name.clone()) {
                say("the name is used twice".to_owned());
            }
            check_gate(g, &known, &mut say);
            known.notify(&section, &g.notify, &mut problems);
        }
        if let Some(p) = &self.power {
            let mut say = |message: String| problems.push(Problem { section: Section::Power, message });
            if p.configurations.is_empty() {
                say("configurations is empty".to_owned());
            }
            if !(1..=64).contains(&p.concurrency) {
                say(format!("concurrency must be from 1 to 64, got {}", p.concurrency));
            }
            known.notify(&Section::Power, &p.notify, &mut problems);
        }
        let mut callers = std::collections::HashSet::new();
        for c in &self.itsm.callers {
            let section = Section::ItsmCaller(c.name.clone());
            let mut say = |message: String| problems.push(Problem { section: section.clone(), message });
            if !callers.insert(c.name.clone()) {
                say("the name is used twice".to_owned());
            }
            if c.signing_secret_env.is_none() && c.bearer_env.is_none() {
                say("give signing_secret_env or bearer_env".to_owned());
            }
            if c.configurations.is_empty() || c.actions.is_empty() {
                say("configurations and actions must not be empty".to_owned());
            }
            known.notify(&section, &c.notify, &mut problems);
        }
        known.notify(&Section::Alerts, &self.alerts.notify, &mut problems);
        if let Some(q) = &self.suppress_alerts {
            q.check(&mut |message| problems.push(Problem { section: Section::SuppressAlerts, message }));
            known.notify(&Section::SuppressAlerts, &q.notify, &mut problems);
        }
        if let Some(Err(e)) = self.alerts.group_window.as_deref().map(check_group_window) {
            problems.push(Problem { section: Section::Alerts, message: format!("group_window {e}") });
        }
        problems
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

/// A gate's own settings: what it applies to and what it checks.
fn check_gate(g: &GateSpec, known: &Known<'_>, say: &mut dyn FnMut(String)) {
    if g.configuration.is_none() && g.ring.is_none() {
        say("give `configuration` (a glob) or `ring`".to_owned());
    }
    if let Some(r) = &g.ring
        && !(known.rings)(r)
    {
        say(format!("unknown ring {r:?}: define it under [rings]"));
    }
    if g.change.is_none() && g.previous_ring.is_none() {
        say("give `change` or `previous_ring` (or both)".to_owned());
    }
    if let Some(c) = &g.change
        && c.source == ChangeSource::Servicenow
    {
        match &c.servicenow {
            None => say("change source servicenow needs `servicenow = \"<channel>\"`".to_owned()),
            Some(name) if !name.chars().all(|ch| ch.is_ascii_alphanumeric() || "_-.".contains(ch)) => {
                say(format!("servicenow channel name {name:?} is not valid"));
            }
            _ => {}
        }
        if !c.configuration_field.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_') {
            say("configuration_field must be a field name".to_owned());
        }
    }
    if let Some(r) = &g.previous_ring {
        if r.configurations.is_empty() {
            say("previous_ring.configurations is empty".to_owned());
        }
        for p in [Some(r.max_failed_percent), r.max_kb_failed_percent].into_iter().flatten() {
            if !(0.0..=100.0).contains(&p) {
                say(format!("percentages must be from 0 to 100, got {p}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RG: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-patchwatch";

    fn quiet(toml_text: &str) -> Vec<String> {
        let spec: SuppressAlertsSpec = toml::from_str(toml_text).unwrap();
        let control = Control { suppress_alerts: Some(spec), ..Control::default() };
        let channels = |c: &str| if c == "ops" { Ok(()) } else { Err("no such channel".to_owned()) };
        control.check(&|_| true, &channels).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn suppress_alerts_defaults_and_checks() {
        let spec: SuppressAlertsSpec =
            toml::from_str(&format!("configurations = [\"Ring*\"]\nresource_groups = [\"{RG}\"]\n")).unwrap();
        assert_eq!((spec.reboot_margin_minutes, spec.notify.len()), (30, 0));
        assert_eq!(spec.resource_group_in("00000000-0000-0000-0000-000000000001"), Some(RG));
        assert_eq!(spec.resource_group_in("00000000-0000-0000-0000-000000000002"), None);
        assert!(
            quiet(&format!("configurations = [\"R*\"]\nresource_groups = [\"{RG}\"]\nnotify = [\"ops\"]\n")).is_empty()
        );
        let other = RG.replace("rg-patchwatch", "rg-other");
        let cases: &[(String, &str)] = &[
            (
                format!("configurations = []\nresource_groups = [\"{RG}\"]\n"),
                "suppress_alerts: configurations is empty",
            ),
            ("configurations = [\"R*\"]\nresource_groups = []\n".to_owned(), "resource_groups is empty"),
            (
                "configurations = [\"R*\"]\nresource_groups = [\"rg-patchwatch\"]\n".to_owned(),
                "expected /subscriptions/<id>/resourceGroups/<name>",
            ),
            (
                "configurations = [\"R*\"]\nresource_groups = [\"/subscriptions/nope/resourceGroups/rg\"]\n".to_owned(),
                "is not a GUID",
            ),
            (
                format!(
                    "configurations = [\"R*\"]\nresource_groups = [\"{RG}/providers/Microsoft.Compute/virtualMachines/vm\"]\n"
                ),
                "expected /subscriptions/<id>/resourceGroups/<name>",
            ),
            (format!("configurations = [\"R*\"]\nresource_groups = [\"{RG}\", \"{other}\"]\n"), "one per subscription"),
            (
                format!("configurations = [\"R*\"]\nresource_groups = [\"{RG}\"]\nreboot_margin_minutes = 241\n"),
                "reboot_margin_minutes must be from 0 to 240, got 241",
            ),
            (
                format!("configurations = [\"R*\"]\nresource_groups = [\"{RG}\"]\nnotify = [\"sms\"]\n"),
                "notify \"sms\": no such channel",
            ),
        ];
        for (text, message) in cases {
            let problems = quiet(text);
            assert!(problems.len() == 1 && problems[0].contains(message), "{text}: {problems:?}");
        }
        assert!(
            toml::from_str::<SuppressAlertsSpec>("configurations = []\nresource_groups = []\nresource_group = \"x\"\n")
                .is_err()
        );
    }

    #[test]
    fn the_group_window_defaults_to_five_minutes_and_is_checked() {
        let none = |_: &str| Ok(());
        let rings = |_: &str| true;
        let mut c = Control::default();
        assert_eq!(c.alerts.group_window(), DEFAULT_GROUP_WINDOW);
        c.alerts.group_window = Some("10m".to_owned());
        assert_eq!(c.alerts.group_window(), std::time::Duration::from_secs(600));
        assert!(c.check(&rings, &none).is_empty());
        for bad in ["5 minutes", "10s", "2d", "0m"] {
            c.alerts.group_window = Some(bad.to_owned());
            let problems = c.check(&rings, &none);
            assert_eq!(problems.len(), 1, "{bad}");
            assert!(problems[0].to_string().starts_with("alerts: group_window"), "{}", problems[0]);
            assert_eq!(c.alerts.group_window(), DEFAULT_GROUP_WINDOW, "an invalid window is never used");
        }
    }
}
