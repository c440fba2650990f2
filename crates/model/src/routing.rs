//! Routing: which channels receive which part of a run, from `PATCHWATCH_CONFIG` (TOML).
//!
//! Routes are tried in order; the first that matches stops the walk unless it says `continue`.
//! A route may narrow the run to some machines (subscription, resource group, tags) and split it
//! per owner (`split_by_tag`), so each team sees only its machines. Secrets are never in the
//! file: channels name the environment variables that hold them.

use std::{collections::BTreeMap, ops::Range, sync::Arc, time::Duration};

use serde::Deserialize;
use toml::Spanned;

use crate::{
    conditions::{Clause, parse_duration},
    event::{MaintenanceEvent, Phase},
    notice::{Notice, NoticeKind, Severity},
    rundata::RunData,
    settings::{AlertsSpec, Control, GateSpec, ItsmSpec, PowerSpec, Section, SuppressAlertsSpec},
    summary::{Facets, RunSummary, Verdict, summarise_subset},
    text::glob,
};

/// The routing file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingFile {
    /// Ring name → maintenance configuration name glob (`prod = "Ring2-*"`), in rollout order.
    #[serde(default)]
    pub rings: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub channels: BTreeMap<String, Spanned<ChannelRaw>>,
    #[serde(default)]
    pub routes: Vec<Spanned<RouteSpec>>,
    #[serde(default)]
    pub gates: Vec<Spanned<GateSpec>>,
    pub power: Option<Spanned<PowerSpec>>,
    pub itsm: Option<Spanned<ItsmSpec>>,
    pub alerts: Option<Spanned<AlertsSpec>>,
    pub suppress_alerts: Option<Spanned<SuppressAlertsSpec>>,
    pub compliance: Option<ComplianceSpec>,
}

/// `[compliance]`: how the lint and the digest judge the fleet.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ComplianceSpec {
    /// Tags naming a machine's or schedule's owning team, first present wins.
    #[serde(default = "default_owner_tags")]
    pub owner_tags: Vec<String>,
    /// `pending-critical` fires for patches pending longer than this many days.
    #[serde(default = "default_pending_days")]
    pub pending_days: u16,
    /// Runs per configuration in the digest's trends.
    #[serde(default = "default_trend_runs")]
    pub trend_runs: u16,
}

fn default_owner_tags() -> Vec<String> {
    vec!["PatchOwner".to_owned(), "owner".to_owned()]
}
fn default_pending_days() -> u16 {
    14
}
fn default_trend_runs() -> u16 {
    12
}

impl Default for ComplianceSpec {
    fn default() -> Self {
        Self {
            owner_tags: default_owner_tags(),
            pending_days: default_pending_days(),
            trend_runs: default_trend_runs(),
        }
    }
}

/// A channel as written: `type` plus the settings of that type (checked in [`Routing::parse`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelRaw {
    #[serde(rename = "type")]
    kind: Spanned<String>,
    to: Option<Vec<Spanned<String>>>,
    subject_prefix: Option<String>,
    url_env: Option<String>,
    url: Option<Spanned<String>>,
    secret_env: Option<String>,
    instance: Option<Spanned<String>>,
    user_env: Option<String>,
    password_env: Option<String>,
    assignment_group: Option<String>,
    id: Option<Spanned<String>>,
}

/// A channel and its settings. Secrets are named by environment variable (`*_env`).
#[derive(Debug, Clone)]
pub enum ChannelSpec {
    Email {
        to: Vec<String>,
        subject_prefix: Option<String>,
    },
    Teams {
        url_env: String,
    },
    Slack {
        url_env: String,
    },
    /// Standard Webhooks; `secret_env` holds one or more `whsec_…` secrets (space-separated, for rotation).
    Webhook {
        url: String,
        secret_env: String,
    },
    Servicenow {
        instance: String,
        user_env: String,
        password_env: String,
        assignment_group: Option<String>,
    },
    /// An Azure Monitor action group, read through ARM at delivery.
    ActionGroup {
        id: String,
    },
    /// One of an action group's webhook receivers (from ARM, never from the file).
    AlertWebhook {
        url: String,
    },
}

impl ChannelSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            ChannelSpec::Email { .. } => "email",
            ChannelSpec::Teams { .. } => "teams",
            ChannelSpec::Slack { .. } => "slack",
            ChannelSpec::Webhook { .. } => "webhook",
            ChannelSpec::Servicenow { .. } => "servicenow",
            ChannelSpec::ActionGroup { .. } => "action_group",
            ChannelSpec::AlertWebhook { .. } => "alert_webhook",
        }
    }

    /// Whether notices (and reminders) can go to it: ServiceNow keeps incidents and an action
    /// group its own alerting, so they take run summaries only.
    pub fn takes_notices(&self) -> bool {
        matches!(
            self,
            ChannelSpec::Email { .. }
                | ChannelSpec::Teams { .. }
                | ChannelSpec::Slack { .. }
                | ChannelSpec::Webhook { .. }
        )
    }

    /// Environment variables the channel reads its secrets from.
    pub fn env_vars(&self) -> Vec<&str> {
        match self {
            ChannelSpec::Email { .. } | ChannelSpec::ActionGroup { .. } | ChannelSpec::AlertWebhook { .. } => vec![],
            ChannelSpec::Teams { url_env } | ChannelSpec::Slack { url_env } => vec![url_env],
            ChannelSpec::Webhook { secret_env, .. } => vec![secret_env],
            ChannelSpec::Servicenow { user_env, password_env, .. } => vec![user_env, password_env],
        }
    }
}

impl ChannelRaw {
    /// The typed channel, or what is missing or misplaced.
    fn resolve(&self) -> Result<ChannelSpec, String> {
        let need = |v: &Option<String>, field: &str| v.clone().ok_or_else(|| format!("`{field}` is required"));
        let kind = self.kind.get_ref().as_str();
        let spec = match kind {
            "email" => ChannelSpec::Email {
                to: self.to.iter().flatten().map(|a| a.get_ref().clone()).collect(),
                subject_prefix: self.subject_prefix.clone(),
            },
            "teams" => ChannelSpec::Teams { url_env: need(&self.url_env, "url_env")? },
            "slack" => ChannelSpec::Slack { url_env: need(&self.url_env, "url_env")? },
            "webhook" => ChannelSpec::Webhook {
                url: self.url.as_ref().map(|u| u.get_ref().clone()).ok_or("`url` is required")?,
                secret_env: need(&self.secret_env, "secret_env")?,
            },
            "servicenow" => ChannelSpec::Servicenow {
                instance: self.instance.as_ref().map(|u| u.get_ref().clone()).ok_or("`instance` is required")?,
                user_env: need(&self.user_env, "user_env")?,
                password_env: need(&self.password_env, "password_env")?,
                assignment_group: self.assignment_group.clone(),
            },
            "action_group" => {
                let id = self.id.as_ref().map(|u| u.get_ref().clone()).ok_or("`id` is required")?;
                if !id.to_ascii_lowercase().contains("/providers/microsoft.insights/actiongroups/") {
                    return Err(format!("`id` {id:?} is not an action group resource id"));
                }
                ChannelSpec::ActionGroup { id }
            }
            other => {
                return Err(format!(
                    "unknown channel type {other:?}: expected email, teams, slack, webhook, servicenow or action_group"
                ));
            }
        };
        // Settings of another channel type are mistakes, not silently ignored.
        let allowed: &[&str] = match kind {
            "email" => &["to", "subject_prefix"],
            "teams" | "slack" => &["url_env"],
            "webhook" => &["url", "secret_env"],
            "action_group" => &["id"],
            _ => &["instance", "user_env", "password_env", "assignment_group"],
        };
        let present = [
            ("to", self.to.is_some()),
            ("subject_prefix", self.subject_prefix.is_some()),
            ("url_env", self.url_env.is_some()),
            ("url", self.url.is_some()),
            ("secret_env", self.secret_env.is_some()),
            ("instance", self.instance.is_some()),
            ("user_env", self.user_env.is_some()),
            ("password_env", self.password_env.is_some()),
            ("assignment_group", self.assignment_group.is_some()),
            ("id", self.id.is_some()),
        ];
        if let Some((field, _)) = present.iter().find(|(f, set)| *set && !allowed.contains(f)) {
            return Err(format!("`{field}` does not apply to a {kind} channel"));
        }
        Ok(spec)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    pub name: Spanned<String>,
    #[serde(default, rename = "match")]
    pub matcher: MatchSpec,
    pub channels: Vec<Spanned<String>>,
    /// Split the route's machines by this tag's value; one notification per value.
    #[serde(default)]
    pub split_by_tag: Option<String>,
    /// For split routes: tag value → email recipients.
    #[serde(default)]
    pub recipients: BTreeMap<String, Vec<Spanned<String>>>,
    /// For split routes: the tag value itself is the recipient address.
    #[serde(default)]
    pub recipients_from_tag: bool,
    #[serde(default, rename = "continue")]
    pub continue_after: bool,
    /// While a failed run this route told stays unacknowledged: reminders this long after the
    /// first message (`["4h", "24h"]`); the last step goes to `escalate_to` when given.
    #[serde(default)]
    pub remind_after: Vec<Spanned<String>>,
    /// The route whose channels get the last reminder step: the escalation.
    pub escalate_to: Option<Spanned<String>>,
    /// For split routes: who gets the part of an owner nobody is mapped to (default: the
    /// channel's `to`, else `PATCHWATCH_MAIL_TO`). Never dropped.
    #[serde(default)]
    pub fallback_recipients: Vec<Spanned<String>>,
    /// `remind_after`, parsed by [`Routing::parse`].
    #[serde(skip)]
    pub reminders: Vec<Duration>,
    /// `match.when`, parsed by [`Routing::parse`]: any clause may hold.
    #[serde(skip)]
    pub conditions: Vec<Clause>,
}

impl RouteSpec {
    /// Whether a failed run this route told is followed up (reminders, escalation).
    pub fn follows_up(&self) -> bool {
        !self.reminders.is_empty()
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    /// Glob on the configuration name or its full resource id.
    pub configuration: Option<String>,
    pub ring: Option<Spanned<String>>,
    pub subscription: Option<Vec<String>>,
    /// Glob on the machine's resource group.
    pub resource_group: Option<String>,
    /// Tag name → value glob, all must match.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub outcome: OutcomeMatch,
    #[serde(default)]
    pub phase: PhaseMatch,
    /// Post events: the (part of the) run's verdict is one of these.
    pub verdict: Option<Vec<Verdict>>,
    /// Post events: conditions on the outcome counts (`failed_percent >= 10`); any entry may
    /// hold, and an entry joins conditions with `and`.
    #[serde(default)]
    pub when: Vec<Spanned<String>>,
    /// Notice routes (`phase = "notice"`): the kinds of notice, any of.
    pub notice: Option<Vec<NoticeKind>>,
    /// Notice routes: the least severity (`warning` takes warnings and critical ones).
    pub severity: Option<Severity>,
}

impl MatchSpec {
    /// Filters that judge a run's machines or outcome (a notice or a digest has neither).
    fn has_run_filters(&self) -> bool {
        self.subscription.is_some()
            || self.resource_group.is_some()
            || !self.tags.is_empty()
            || self.outcome != OutcomeMatch::Any
            || self.verdict.is_some()
            || !self.when.is_empty()
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeMatch {
    #[default]
    Any,
    AnyFailure,
    AllSucceeded,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PhaseMatch {
    Pre,
    #[default]
    Post,
    /// Pre or post (not the digest).
    Any,
    /// The compliance digest (`compliance-report` timer), never a run event.
    Digest,
    /// Notices (gates, power, alerts, ITSM requests, undelivered messages, quiet windows),
    /// matched by `notice` kind and least `severity`.
    Notice,
}

/// A problem in the routing file, at a line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// Warnings do not stop start-up (for example an unset secret variable at check time).
    pub warning: bool,
}

impl std::fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = if self.warning { "warning" } else { "error" };
        write!(f, "{}:{}: {level}: {}", self.line, self.column, self.message)
    }
}

/// A validated routing configuration.
#[derive(Debug)]
pub struct Routing {
    pub rings: BTreeMap<String, String>,
    /// Ring names in the order the file lists them: the rollout order.
    pub ring_order: Vec<String>,
    pub compliance: ComplianceSpec,
    pub channels: BTreeMap<String, ChannelSpec>,
    pub routes: Vec<RouteSpec>,
    /// Gates, power, ITSM callers and alerts.
    pub control: Control,
}

fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

impl Routing {
    /// Parses and checks a routing file. `env` answers whether a secret variable is set.
    pub fn parse(text: &str, env: &dyn Fn(&str) -> bool) -> Result<(Self, Vec<ConfigIssue>), Vec<ConfigIssue>> {
        let file = deserialize_file(text)?;
        let mut issues = Issues { text, found: Vec::new() };
        let channels = check_channels(&file, env, &mut issues);
        check_routes(&file, &channels, &mut issues);
        let control = control_of(&file);
        check_control(&file, &control, &channels, env, &mut issues);
        let issues = issues.found;
        if issues.iter().any(|i| !i.warning) {
            return Err(issues);
        }
        let routes = file.routes.into_iter().map(|r| parsed_route(r.into_inner())).collect();
        let mut ring_order: Vec<(usize, String)> =
            file.rings.iter().map(|(k, v)| (v.span().start, k.clone())).collect();
        ring_order.sort();
        let ring_order = ring_order.into_iter().map(|(_, k)| k).collect();
        let rings = file.rings.into_iter().map(|(k, v)| (k, v.into_inner())).collect();
        let compliance = file.compliance.unwrap_or_default();
        Ok((Self { rings, ring_order, compliance, channels, routes, control }, issues))
    }
}

/// A checked route with its reminder steps and conditions parsed (they were checked, so none fails).
fn parsed_route(mut r: RouteSpec) -> RouteSpec {
    r.reminders = r.remind_after.iter().filter_map(|s| parse_duration(s.get_ref()).ok()).collect();
    r.conditions = r.matcher.when.iter().filter_map(|w| Clause::parse(w.get_ref()).ok()).collect();
    r
}

/// Problems found while checking a routing file, each placed at its line and column in `text`.
struct Issues<'t> {
    text: &'t str,
    found: Vec<ConfigIssue>,
}

impl Issues<'_> {
    fn push(&mut self, span: Range<usize>, message: String, warning: bool) {
        let (line, column) = position(self.text, span.start);
        self.found.push(ConfigIssue { line, column, message, warning });
    }

    fn error(&mut self, span: Range<usize>, message: String) {
        self.push(span, message, false);
    }

    /// Does not stop start-up.
    fn warning(&mut self, span: Range<usize>, message: String) {
        self.push(span, message, true);
    }
}

/// The file as written; a syntax or shape error is the only issue reported, since nothing else can be checked.
fn deserialize_file(text: &str) -> Result<RoutingFile, Vec<ConfigIssue>> {
    toml::from_str(text).map_err(|e| {
        let (line, column) = e.span().map_or((1, 1), |s| position(text, s.start));
        vec![ConfigIssue { line, column, message: e.message().trim().to_owned(), warning: false }]
    })
}

/// The channels that resolve; the others are reported, so routes naming them are not reported twice.
fn check_channels(
    file: &RoutingFile,
    env: &dyn Fn(&str) -> bool,
    issues: &mut Issues,
) -> BTreeMap<String, ChannelSpec> {
    let mut channels = BTreeMap::new();
    for (name, raw) in &file.channels {
        match raw.get_ref().resolve() {
            Ok(spec) => {
                check_channel_settings(name, raw, &spec, env, issues);
                channels.insert(name.clone(), spec);
            }
            Err(problem) => issues.error(raw.get_ref().kind.span(), format!("channel {name:?}: {problem}")),
        }
    }
    channels
}

/// A resolved channel's secrets (unset is only a warning: the check may run elsewhere), addresses and endpoints.
fn check_channel_settings(
    name: &str,
    raw: &Spanned<ChannelRaw>,
    spec: &ChannelSpec,
    env: &dyn Fn(&str) -> bool,
    issues: &mut Issues,
) {
    for var in spec.env_vars() {
        if !env(var) {
            issues.warning(raw.span(), format!("channel {name:?}: environment variable {var} is not set"));
        }
    }
    let r = raw.get_ref();
    check_addresses(r.to.iter().flatten(), issues);
    for url in [&r.url, &r.instance].into_iter().flatten() {
        if let Err(problem) = check_endpoint(url.get_ref()) {
            issues.error(url.span(), problem);
        }
    }
}

fn check_addresses<'a>(addresses: impl IntoIterator<Item = &'a Spanned<String>>, issues: &mut Issues) {
    for addr in addresses {
        if !crate::text::is_mailbox(addr.get_ref()) {
            issues.error(addr.span(), format!("{:?} is not an email address", addr.get_ref()));
        }
    }
}

/// Route names are unique (they key the ledger), and every route is checked on its own.
fn check_routes(file: &RoutingFile, channels: &BTreeMap<String, ChannelSpec>, issues: &mut Issues) {
    let mut names = std::collections::HashSet::new();
    for route in &file.routes {
        let r = route.get_ref();
        if !names.insert(r.name.get_ref().clone()) {
            issues.error(r.name.span(), format!("route name {:?} is used twice", r.name.get_ref()));
        }
        check_route_references(route, file, issues);
        check_route_recipients(route, channels, issues);
        check_digest_route(route, channels, issues);
        check_severity_matchers(route, issues);
        check_follow_up(route, file, channels, issues);
        if r.matcher.phase == PhaseMatch::Notice {
            for c in &r.channels {
                if let Err(problem) = notice_channel(channels, file, c.get_ref()) {
                    issues.error(
                        c.span(),
                        format!("notice route {:?}: channel {:?}: {problem}", r.name.get_ref(), c.get_ref()),
                    );
                }
            }
        }
    }
}

/// `verdict` and `when` judge a post event's outcome; `notice` and `severity` belong to notice
/// routes, which take no run filters (a notice has no machines) and are not split or followed up.
fn check_severity_matchers(route: &Spanned<RouteSpec>, issues: &mut Issues) {
    let r = route.get_ref();
    let m = &r.matcher;
    let name = r.name.get_ref();
    for w in &m.when {
        if let Err(problem) = Clause::parse(w.get_ref()) {
            issues.error(w.span(), format!("route {name:?}: when {problem}"));
        }
    }
    if matches!(m.verdict.as_deref(), Some([])) {
        issues.error(route.span(), format!("route {name:?}: verdict is empty"));
    }
    let judges_outcome = m.verdict.is_some() || !m.when.is_empty();
    if judges_outcome && m.phase == PhaseMatch::Pre {
        issues.error(
            route.span(),
            format!("route {name:?}: verdict and when judge a finished run; a pre event has none"),
        );
    }
    let notice_filters = m.notice.is_some() || m.severity.is_some();
    if m.phase == PhaseMatch::Notice {
        if m.has_run_filters() || r.split_by_tag.is_some() {
            issues.error(
                route.span(),
                format!("notice route {name:?}: a notice has no machines or outcome; match on notice, severity, configuration or ring"),
            );
        }
        if matches!(m.notice.as_deref(), Some([])) {
            issues.error(route.span(), format!("notice route {name:?}: notice is empty"));
        }
    } else if notice_filters {
        issues.error(route.span(), format!("route {name:?}: notice and severity need phase = \"notice\""));
    }
}

/// Reminder steps are durations in increasing order on a route that sees post events; the
/// escalation names another route that is neither a digest nor a notice route.
fn check_follow_up(
    route: &Spanned<RouteSpec>,
    file: &RoutingFile,
    channels: &BTreeMap<String, ChannelSpec>,
    issues: &mut Issues,
) {
    let r = route.get_ref();
    let name = r.name.get_ref();
    let mut last = Duration::ZERO;
    for step in &r.remind_after {
        match parse_duration(step.get_ref()) {
            Ok(d) if d <= last => {
                issues.error(step.span(), format!("route {name:?}: remind_after steps must increase"));
            }
            Ok(d) => last = d,
            Err(problem) => issues.error(step.span(), format!("route {name:?}: remind_after {problem}")),
        }
    }
    let follows = !r.remind_after.is_empty() || r.escalate_to.is_some();
    if follows && matches!(r.matcher.phase, PhaseMatch::Pre | PhaseMatch::Digest | PhaseMatch::Notice) {
        issues.error(
            route.span(),
            format!("route {name:?}: reminders follow up failed runs; the route must see post events"),
        );
    }
    // Reminders are notices: they need a channel that takes them.
    let takes = |c: &Spanned<String>| channels.get(c.get_ref()).is_some_and(ChannelSpec::takes_notices);
    if !r.remind_after.is_empty() && !r.channels.iter().any(takes) {
        issues.error(
            route.span(),
            format!(
                "route {name:?}: remind_after needs a channel that takes reminders (email, teams, slack or webhook)"
            ),
        );
    }
    if let Some(to) = &r.escalate_to {
        if r.remind_after.is_empty() {
            issues.error(
                to.span(),
                format!("route {name:?}: escalate_to needs remind_after (the escalation is its last step)"),
            );
        }
        match file.routes.iter().find(|o| o.get_ref().name.get_ref() == to.get_ref()) {
            None => {
                issues.error(to.span(), format!("route {name:?}: escalate_to names unknown route {:?}", to.get_ref()))
            }
            Some(o) if matches!(o.get_ref().matcher.phase, PhaseMatch::Digest | PhaseMatch::Notice) => issues.error(
                to.span(),
                format!("route {name:?}: escalate_to {:?} is a digest or notice route", to.get_ref()),
            ),
            Some(o) => {
                for c in &o.get_ref().channels {
                    if let Err(problem) = notice_channel(channels, file, c.get_ref()) {
                        issues.error(
                            to.span(),
                            format!(
                                "route {name:?}: escalate_to {:?}: channel {:?}: {problem}",
                                to.get_ref(),
                                c.get_ref()
                            ),
                        );
                    }
                }
            }
        }
    }
    check_addresses(&r.fallback_recipients, issues);
    if !r.fallback_recipients.is_empty() && r.split_by_tag.is_none() {
        issues.error(route.span(), format!("route {name:?}: fallback_recipients need `split_by_tag`"));
    }
}

/// A digest route (`phase = "digest"`) covers the whole fleet, split by owner at most: run
/// filters have nothing to match, and incident channels (ServiceNow, action groups) take runs.
fn check_digest_route(route: &Spanned<RouteSpec>, channels: &BTreeMap<String, ChannelSpec>, issues: &mut Issues) {
    let r = route.get_ref();
    let m = &r.matcher;
    if m.phase != PhaseMatch::Digest {
        return;
    }
    if m.configuration.is_some() || m.ring.is_some() || m.has_run_filters() {
        issues.error(
            route.span(),
            format!(
                "digest route {:?}: configuration, ring, subscription, resource_group, tags, outcome, verdict and when filter runs; a digest covers the fleet (use split_by_tag for owners)",
                r.name.get_ref()
            ),
        );
    }
    for c in &r.channels {
        if let Some(spec @ (ChannelSpec::Servicenow { .. } | ChannelSpec::ActionGroup { .. })) =
            channels.get(c.get_ref())
        {
            issues.error(
                c.span(),
                format!("digest route {:?}: a {} channel takes runs, not digests", r.name.get_ref(), spec.kind()),
            );
        }
    }
}

/// The channels and ring a route names exist.
fn check_route_references(route: &Spanned<RouteSpec>, file: &RoutingFile, issues: &mut Issues) {
    let r = route.get_ref();
    if r.channels.is_empty() {
        issues.error(route.span(), format!("route {:?} has no channels", r.name.get_ref()));
    }
    for c in &r.channels {
        if !file.channels.contains_key(c.get_ref()) {
            issues.error(c.span(), format!("route {:?} names unknown channel {:?}", r.name.get_ref(), c.get_ref()));
        }
    }
    if let Some(ring) = &r.matcher.ring
        && !file.rings.contains_key(ring.get_ref())
    {
        issues.error(ring.span(), format!("unknown ring {:?}: define it under [rings]", ring.get_ref()));
    }
}

/// Per-owner recipients are addresses, a split to an email channel without `to` says whom to mail,
/// and recipients by tag come with a tag to split by.
fn check_route_recipients(route: &Spanned<RouteSpec>, channels: &BTreeMap<String, ChannelSpec>, issues: &mut Issues) {
    let r = route.get_ref();
    for list in r.recipients.values() {
        check_addresses(list, issues);
    }
    let emails_split = r.split_by_tag.is_some()
        && r.channels
            .iter()
            .any(|c| matches!(channels.get(c.get_ref()), Some(ChannelSpec::Email { to, .. }) if to.is_empty()));
    if emails_split && r.recipients.is_empty() && !r.recipients_from_tag {
        issues.error(
            route.span(),
            format!("route {:?} splits by tag to an email channel without `to`: give `recipients` or `recipients_from_tag = true`", r.name.get_ref()),
        );
    }
    if (!r.recipients.is_empty() || r.recipients_from_tag) && r.split_by_tag.is_none() {
        issues.error(route.span(), format!("route {:?}: recipients by tag need `split_by_tag`", r.name.get_ref()));
    }
}

fn control_of(file: &RoutingFile) -> Control {
    Control {
        gates: file.gates.iter().map(|g| g.get_ref().clone()).collect(),
        power: file.power.as_ref().map(|p| p.get_ref().clone()),
        itsm: file.itsm.as_ref().map(|i| i.get_ref().clone()).unwrap_or_default(),
        alerts: file.alerts.as_ref().map(|a| a.get_ref().clone()).unwrap_or_default(),
        suppress_alerts: file.suppress_alerts.as_ref().map(|q| q.get_ref().clone()),
    }
}

/// Gates, power, ITSM and alerts: their own checks, plus ITSM callers' secrets (unset is a warning).
fn check_control(
    file: &RoutingFile,
    control: &Control,
    channels: &BTreeMap<String, ChannelSpec>,
    env: &dyn Fn(&str) -> bool,
    issues: &mut Issues,
) {
    let takes_notices = |name: &str| notice_channel(channels, file, name);
    for problem in control.check(&|r| file.rings.contains_key(r), &takes_notices) {
        issues.error(section_span(file, &problem.section), problem.to_string());
    }
    for (caller, var) in control.secret_vars() {
        if !env(&var) {
            let span = file.itsm.as_ref().map_or(0..0, Spanned::span);
            issues.warning(span, format!("itsm caller {caller:?}: environment variable {var} is not set"));
        }
    }
}

/// Whether a notice may go to channel `name`. A channel that did not resolve is already reported.
fn notice_channel(channels: &BTreeMap<String, ChannelSpec>, file: &RoutingFile, name: &str) -> Result<(), String> {
    match channels.get(name) {
        Some(spec) if spec.takes_notices() => Ok(()),
        Some(other) => {
            Err(format!("a {} channel does not take notices (use email, teams, slack or webhook)", other.kind()))
        }
        None if file.channels.contains_key(name) => Ok(()),
        None => Err("no such channel".to_owned()),
    }
}

/// Where a control problem is reported: the start of its section.
fn section_span(file: &RoutingFile, section: &Section) -> Range<usize> {
    let found = match section {
        Section::Gate(name) => file.gates.iter().find(|g| &g.get_ref().name == name).map(Spanned::span),
        Section::Power => file.power.as_ref().map(Spanned::span),
        Section::ItsmCaller(_) => file.itsm.as_ref().map(Spanned::span),
        Section::Alerts => file.alerts.as_ref().map(Spanned::span),
        Section::SuppressAlerts => file.suppress_alerts.as_ref().map(Spanned::span),
    };
    found.unwrap_or(0..0)
}

fn check_endpoint(url: &str) -> Result<(), String> {
    let u = url::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let loopback = matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    if u.scheme() == "https" || (u.scheme() == "http" && loopback) {
        Ok(())
    } else {
        Err(format!("{url:?} must use https"))
    }
}

/// One notification to send: a route's (part of a) run to one channel.
#[derive(Debug, Clone)]
pub struct Notification {
    pub route: String,
    pub channel: String,
    pub spec: ChannelSpec,
    /// The tag value of a split route's group.
    pub group: Option<String>,
    /// Email recipients of a split route's group (empty: the channel's own `to`).
    pub recipients: Vec<String>,
    /// One receiver of a fanned-out channel (an action group's email or webhook receiver).
    pub receiver: Option<String>,
    /// Shared: the channels of a route (and an unsplit run's routes) send the same part.
    pub summary: Arc<RunSummary>,
    /// One-click actions (label, signed URL) the message carries; filled in at delivery.
    pub actions: Vec<(String, String)>,
}

impl Notification {
    /// The ledger target: unique per route, channel and group.
    pub fn target(&self) -> String {
        let mut t = format!("{}.{}", self.route, self.channel);
        for part in [&self.group, &self.receiver].into_iter().flatten() {
            t.push('.');
            t.push_str(part);
        }
        t
    }
}

impl Routing {
    /// The notifications for a run, in route order.
    pub fn plan(&self, event: &MaintenanceEvent, summary: &RunSummary, data: &RunData) -> Vec<Notification> {
        self.plan_shared(event, &Arc::new(summary.clone()), data)
    }

    /// As [`Routing::plan`], sharing `summary` with every notification that covers the whole run.
    pub fn plan_shared(
        &self,
        event: &MaintenanceEvent,
        summary: &Arc<RunSummary>,
        data: &RunData,
    ) -> Vec<Notification> {
        let mut out = Vec::new();
        for r in &self.routes {
            let parts = self.route_parts(r, event, summary, data);
            // A route with nothing to send did not match: it does not end the walk.
            if parts.is_empty() {
                continue;
            }
            for (group, part) in parts {
                self.notify_group(r, group, part, &mut out);
            }
            if !r.continue_after {
                break;
            }
        }
        out
    }

    /// What a route sends, one part per group of a split (or the one whole part); empty when the
    /// route does not match.
    fn route_parts(
        &self,
        r: &RouteSpec,
        event: &MaintenanceEvent,
        summary: &Arc<RunSummary>,
        data: &RunData,
    ) -> Vec<(Option<String>, Arc<RunSummary>)> {
        let m = &r.matcher;
        if !m.phase.admits(event.phase) || !self.configuration_matches(m, summary) {
            return Vec::new();
        }
        let Some(scoped) = narrow(m, summary, event, data) else { return Vec::new() };
        // The outcome is judged on what each notification covers (each owner's share of a split).
        split_parts(r, scoped, event, data)
            .into_iter()
            .filter(|(_, part)| m.outcome.admits(event.phase, part) && severity_admits(r, event.phase, part))
            .collect()
    }

    /// One notification per channel of the route for one group's part of the run.
    fn notify_group(&self, r: &RouteSpec, group: Option<String>, part: Arc<RunSummary>, out: &mut Vec<Notification>) {
        let recipients = group_recipients(r, group.as_deref());
        for c in &r.channels {
            let Some(spec) = self.channels.get(c.get_ref()).cloned() else { continue };
            // A split email with nobody mapped (an unknown owner) goes to the fallback recipients
            // (else the channel's `to`, else the default recipients): never dropped.
            let unmapped = group.is_some()
                && recipients.is_empty()
                && matches!(&spec, ChannelSpec::Email { to, .. } if to.is_empty());
            let recipients = if unmapped {
                tracing::warn!(route = %r.name.get_ref(), group = ?group, "No recipients for this owner; sending to the route's fallback. Add them under `recipients`.");
                r.fallback_recipients.iter().map(|a| a.get_ref().clone()).collect()
            } else {
                recipients.clone()
            };
            out.push(Notification {
                route: r.name.get_ref().clone(),
                channel: c.get_ref().clone(),
                spec,
                group: group.clone(),
                recipients,
                receiver: None,
                summary: Arc::clone(&part),
                actions: Vec::new(),
            });
        }
    }

    fn configuration_matches(&self, m: &MatchSpec, s: &RunSummary) -> bool {
        if let Some(pattern) = &m.configuration
            && !glob(pattern, &s.configuration_name)
            && !glob(pattern, &s.configuration_id)
        {
            return false;
        }
        if let Some(ring) = &m.ring {
            match self.rings.get(ring.get_ref()) {
                Some(pattern) if glob(pattern, &s.configuration_name) => {}
                _ => return false,
            }
        }
        true
    }
}

/// `verdict` and `when`: only a post event has an outcome, so a pre event never passes them.
fn severity_admits(r: &RouteSpec, phase: Phase, part: &RunSummary) -> bool {
    let m = &r.matcher;
    if m.verdict.is_none() && r.conditions.is_empty() {
        return true;
    }
    phase == Phase::Post
        && m.verdict.as_ref().is_none_or(|v| v.contains(&part.verdict))
        && (r.conditions.is_empty() || r.conditions.iter().any(|c| c.holds(&part.counts)))
}

impl Routing {
    /// The channels a notice goes to: every `phase = "notice"` route that matches its kind,
    /// severity and configuration, in order (the first ends the walk unless it continues).
    /// With no notice route matching, `configured` (the section's own `notify` list) applies;
    /// empty means the default recipients.
    pub fn notice_channels(&self, notice: &Notice, configured: &[String]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in self.routes.iter().filter(|r| r.matcher.phase == PhaseMatch::Notice) {
            let m = &r.matcher;
            let kind = m.notice.as_ref().is_none_or(|k| k.contains(&notice.kind));
            let severe = m.severity.is_none_or(|s| notice.severity >= s);
            let configuration = match (&m.configuration, &m.ring) {
                (None, None) => true,
                _ => notice.configuration.as_deref().is_some_and(|c| self.names_match(m, c)),
            };
            if !(kind && severe && configuration) {
                continue;
            }
            for c in &r.channels {
                if !out.contains(c.get_ref()) {
                    out.push(c.get_ref().clone());
                }
            }
            if !r.continue_after {
                break;
            }
        }
        if out.is_empty() { configured.to_vec() } else { out }
    }

    /// A route by name.
    pub fn route(&self, name: &str) -> Option<&RouteSpec> {
        self.routes.iter().find(|r| r.name.get_ref() == name)
    }

    /// Whether a configuration name passes a route's `configuration` glob and `ring`.
    fn names_match(&self, m: &MatchSpec, name: &str) -> bool {
        if let Some(pattern) = &m.configuration
            && !glob(pattern, name)
        {
            return false;
        }
        match &m.ring {
            Some(ring) => self.rings.get(ring.get_ref()).is_some_and(|p| glob(p, name)),
            None => true,
        }
    }
}

impl PhaseMatch {
    fn admits(self, phase: Phase) -> bool {
        match self {
            PhaseMatch::Any => true,
            PhaseMatch::Digest | PhaseMatch::Notice => false,
            PhaseMatch::Pre => phase == Phase::Pre,
            PhaseMatch::Post => phase == Phase::Post,
        }
    }
}

impl OutcomeMatch {
    /// Only a post event has an outcome: a pre event matches only `any`.
    fn admits(self, phase: Phase, part: &RunSummary) -> bool {
        match self {
            OutcomeMatch::Any => true,
            OutcomeMatch::AnyFailure => phase == Phase::Post && part.verdict.is_failure(),
            OutcomeMatch::AllSucceeded => phase == Phase::Post && part.verdict == Verdict::Succeeded,
        }
    }
}

/// The run narrowed to the machines the route's filters select; `None` when filters select none.
fn narrow(
    m: &MatchSpec,
    summary: &Arc<RunSummary>,
    event: &MaintenanceEvent,
    data: &RunData,
) -> Option<Arc<RunSummary>> {
    let narrowed = m.subscription.is_some() || m.resource_group.is_some() || !m.tags.is_empty();
    if !narrowed {
        return Some(Arc::clone(summary));
    }
    let keep = |mo: &dyn Facets| machine_matches(m, mo);
    let scoped = summarise_subset(summary, event, data, &keep);
    (scoped.counts.total > 0).then(|| Arc::new(scoped))
}

/// The route's run whole, or split into one part per value of its tag (values compared
/// case-insensitively, sorted; machines without the tag are [`UNTAGGED`]).
fn split_parts(
    r: &RouteSpec,
    scoped: Arc<RunSummary>,
    event: &MaintenanceEvent,
    data: &RunData,
) -> Vec<(Option<String>, Arc<RunSummary>)> {
    let Some(tag) = &r.split_by_tag else { return vec![(None, scoped)] };
    let mut values: Vec<String> = scoped
        .machines
        .iter()
        .map(|mo| mo.tag(tag))
        .chain(scoped.succeeded.iter().map(|g| g.tag(tag)))
        .map(|v| v.unwrap_or(UNTAGGED).to_owned())
        .collect();
    values.sort_by_key(|v| v.to_ascii_lowercase());
    values.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    values
        .into_iter()
        .map(|v| {
            let keep = |mo: &dyn Facets| mo.tag(tag).unwrap_or(UNTAGGED).eq_ignore_ascii_case(&v);
            let part = summarise_subset(&scoped, event, data, &keep);
            (Some(v), Arc::new(part))
        })
        .collect()
}

/// Email recipients of a split route's group; empty for an unsplit route (the channel's own `to`).
pub fn group_recipients(r: &RouteSpec, group: Option<&str>) -> Vec<String> {
    match group {
        // Untagged machines, or a tag value that is no address, have nobody to mail.
        Some(g) if r.recipients_from_tag => {
            if crate::text::is_mailbox(g) && !g.eq_ignore_ascii_case(UNTAGGED) {
                vec![g.to_owned()]
            } else {
                Vec::new()
            }
        }
        Some(g) => r
            .recipients
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(g))
            .map(|(_, v)| v.iter().map(|a| a.get_ref().clone()).collect())
            .unwrap_or_default(),
        None => Vec::new(),
    }
}

/// The group of machines without the split tag.
pub const UNTAGGED: &str = "untagged";

fn machine_matches(m: &MatchSpec, mo: &dyn Facets) -> bool {
    if let Some(subs) = &m.subscription
        && !subs.iter().any(|s| s.eq_ignore_ascii_case(mo.subscription_id()))
    {
        return false;
    }
    if let Some(rg) = &m.resource_group
        && !glob(rg, mo.resource_group())
    {
        return false;
    }
    m.tags.iter().all(|(k, pattern)| mo.tag(k).is_some_and(|v| glob(pattern, v)))
}

/// Parses a routing file's text; issues are formatted `file:line:column: level: message`,
/// `file` being `label` (reading the file is the caller's I/O).
pub fn parse_file(label: &str, text: &str, env: &dyn Fn(&str) -> bool) -> Result<(Routing, Vec<String>), Vec<String>> {
    let name = |i: &ConfigIssue| format!("{label}:{i}");
    match Routing::parse(text, env) {
        Ok((routing, warnings)) => Ok((routing, warnings.iter().map(name).collect())),
        Err(issues) => Err(issues.iter().map(name).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<(Routing, Vec<ConfigIssue>), Vec<ConfigIssue>> {
        Routing::parse(text, &|_| true)
    }

    #[test]
    fn globs_match_case_insensitively() {
        assert!(glob("Ring2-*", "ring2-prod"));
        assert!(glob("*-prod", "Ring2-Prod"));
        assert!(glob("r?ng*", "Ring1"));
        assert!(!glob("Ring2-*", "Ring1-dev"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "axxbyyc") && !glob("a*b*c", "axxbyy"));
        // No exponential backtracking on many stars.
        let started = std::time::Instant::now();
        assert!(!glob("*-*-*-*-*-*-*-x", &"a-".repeat(40)));
        assert!(started.elapsed() < std::time::Duration::from_millis(200));
    }

    #[test]
    fn config_errors_have_line_and_column() {
        let err = parse("[channels.a]\ntype = \"email\"\nto = [\"ops@example.com\"]\n\n[[routes]]\nname = \"r\"\nchannels = [\"b\"]\n").unwrap_err();
        assert_eq!(err.len(), 1);
        assert_eq!((err[0].line, err[0].column), (7, 13), "{}", err[0]);
        assert!(err[0].message.contains("unknown channel \"b\""));

        let err = parse("[channels.a]\ntype = \"pager\"\n").unwrap_err();
        assert_eq!((err[0].line, err[0].column), (2, 8), "{}", err[0]);
        assert!(err[0].message.contains("pager"), "{}", err[0]);
        let err = parse("[channels.a]\ntype = \"teams\"\nurl_env = \"X\"\nto = [\"a@b.c\"]\n").unwrap_err();
        assert!(err[0].message.contains("`to` does not apply to a teams channel"), "{}", err[0]);
        let err = parse("[channels.a]\ntype = \"slack\"\n").unwrap_err();
        assert!(err[0].message.contains("`url_env` is required"), "{}", err[0]);

        let err = parse("[[routes]]\nname = \"r\"\nchannels = []\nmatch = { outcome = \"sometimes\" }\n").unwrap_err();
        assert_eq!(err[0].line, 4, "{}", err[0]);

        let err = parse("[channels.a]\ntype = \"email\"\nto = [\"not an address\"]\n").unwrap_err();
        assert_eq!((err[0].line, err[0].column), (3, 7), "{}", err[0]);

        let err = parse("[channels.w]\ntype = \"webhook\"\nurl = \"http://example.com/x\"\nsecret_env = \"S\"\n")
            .unwrap_err();
        assert!(err[0].message.contains("https"), "{}", err[0]);

        let err = parse("[[routes]]\nname = \"r\"\nchannels = []\nbogus = 1\n").unwrap_err();
        assert!(err[0].message.contains("bogus"), "{}", err[0]);
    }

    #[test]
    fn digest_routes_take_no_run_filters_and_no_incident_channels() {
        let snow = "[channels.snow]\ntype = \"servicenow\"\ninstance = \"https://x.service-now.com\"\nuser_env = \"U\"\npassword_env = \"P\"\n";
        let mail = "[channels.mail]\ntype = \"email\"\nto = [\"ops@example.com\"]\n";
        let ok = format!(
            "{mail}[[routes]]\nname = \"d\"\nmatch = {{ phase = \"digest\" }}\nsplit_by_tag = \"PatchOwner\"\nchannels = [\"mail\"]\n"
        );
        assert!(parse(&ok).is_ok());
        let filtered = format!(
            "{mail}[[routes]]\nname = \"d\"\nmatch = {{ phase = \"digest\", outcome = \"any_failure\" }}\nchannels = [\"mail\"]\n"
        );
        let err = parse(&filtered).unwrap_err();
        assert!(err[0].message.contains("a digest covers the fleet"), "{}", err[0]);
        let incident =
            format!("{snow}[[routes]]\nname = \"d\"\nmatch = {{ phase = \"digest\" }}\nchannels = [\"snow\"]\n");
        let err = parse(&incident).unwrap_err();
        assert!(err.iter().any(|e| e.message.contains("takes runs, not digests")), "{err:?}");
        // `[compliance]` and ring order as written.
        let (r, _) = Routing::parse(
            "[rings]\nprod = \"Ring2-*\"\ndev = \"Ring0-*\"\n[compliance]\nowner_tags = [\"Team\"]\npending_days = 7\n",
            &|_| true,
        )
        .unwrap();
        assert_eq!(r.ring_order, ["prod", "dev"]);
        assert_eq!((r.compliance.owner_tags.as_slice(), r.compliance.pending_days), (&["Team".to_owned()][..], 7));
    }

    /// The example run: 40 machines of three teams, 10 of them not succeeded.
    fn example() -> (crate::event::MaintenanceEvent, RunSummary, RunData) {
        let event = match crate::event::parse_delivery(
            include_str!("../../../examples/events/post-maintenance.json").as_bytes(),
        )
        .unwrap()
        .remove(0)
        {
            crate::event::Incoming::Maintenance(m) => *m,
            _ => unreachable!(),
        };
        let query = crate::rundata::RunQuery {
            correlation_id: event.correlation_id.clone(),
            subscription_ids: vec![],
            include_results: true,
            since: None,
            watch: Vec::new(),
        };
        let data = crate::rundata::snapshot::parse(include_str!("../../../examples/snapshot.json").as_bytes(), &query)
            .unwrap();
        let crate::summary::Decision::Ready(summary) =
            crate::summary::summarise(&event, &data, time::OffsetDateTime::now_utc(), std::time::Duration::ZERO)
        else {
            unreachable!()
        };
        (event, *summary, data)
    }

    const CHANNELS: &str = "[channels.owner]\ntype = \"email\"\n[channels.mail]\ntype = \"email\"\nto = [\"ops@example.com\"]\n[channels.chat]\ntype = \"teams\"\nurl_env = \"T\"\n[rings]\nprod = \"Ring2-*\"\ndev = \"Ring0-*\"\n";

    /// (routes, expected notifications as `target:machines`)
    #[test]
    fn plans_over_a_table_of_routes() {
        let (event, summary, data) = example();
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            ("[[routes]]\nname = \"a\"\nchannels = [\"mail\"]\n", &["a.mail:40"]),
            ("[[routes]]\nname = \"a\"\nmatch = { ring = \"dev\" }\nchannels = [\"mail\"]\n", &[]),
            (
                "[[routes]]\nname = \"a\"\nmatch = { configuration = \"*-prod\" }\nchannels = [\"mail\"]\n",
                &["a.mail:40"],
            ),
            ("[[routes]]\nname = \"a\"\nmatch = { outcome = \"all_succeeded\" }\nchannels = [\"mail\"]\n", &[]),
            ("[[routes]]\nname = \"a\"\nmatch = { phase = \"pre\" }\nchannels = [\"mail\"]\n", &[]),
            // The first match ends the walk unless it continues.
            (
                "[[routes]]\nname = \"a\"\nchannels = [\"mail\"]\n[[routes]]\nname = \"b\"\nchannels = [\"chat\"]\n",
                &["a.mail:40"],
            ),
            (
                "[[routes]]\nname = \"a\"\nchannels = [\"mail\"]\ncontinue = true\n[[routes]]\nname = \"b\"\nmatch = { outcome = \"any_failure\" }\nchannels = [\"chat\"]\n",
                &["a.mail:40", "b.chat:40"],
            ),
            // Machine filters narrow the run; a filter nobody matches skips the route.
            (
                "[[routes]]\nname = \"sql\"\nmatch = { resource_group = \"rg-sql-*\" }\nchannels = [\"mail\"]\n",
                &["sql.mail:4"],
            ),
            (
                "[[routes]]\nname = \"t\"\nmatch = { tags = { PatchOwner = \"team-data\" } }\nchannels = [\"mail\"]\n",
                &["t.mail:7"],
            ),
            ("[[routes]]\nname = \"t\"\nmatch = { tags = { PatchOwner = \"nobody\" } }\nchannels = [\"mail\"]\n", &[]),
            // Data's machines all succeeded: any_failure does not fire for them.
            (
                "[[routes]]\nname = \"t\"\nmatch = { tags = { PatchOwner = \"team-data\" }, outcome = \"any_failure\" }\nchannels = [\"mail\"]\n",
                &[],
            ),
            (
                "[[routes]]\nname = \"o\"\nsplit_by_tag = \"PatchOwner\"\nrecipients_from_tag = true\nchannels = [\"chat\"]\n",
                &["o.chat.team-data:7", "o.chat.team-infra:18", "o.chat.team-web:15"],
            ),
            // The outcome is judged per owner: team-data's machines all succeeded.
            (
                "[[routes]]\nname = \"o\"\nsplit_by_tag = \"PatchOwner\"\nmatch = { outcome = \"any_failure\" }\nchannels = [\"chat\"]\n",
                &["o.chat.team-infra:18", "o.chat.team-web:15"],
            ),
            // A tag value that is no address has nobody mapped: the part goes to the fallback
            // (here the default recipients), never dropped.
            (
                "[[routes]]\nname = \"o\"\nsplit_by_tag = \"PatchOwner\"\nrecipients_from_tag = true\nchannels = [\"owner\"]\n",
                &["o.owner.team-data:7", "o.owner.team-infra:18", "o.owner.team-web:15"],
            ),
            // Severity: the run is Failed with 4 of 40 machines failed (10 %).
            ("[[routes]]\nname = \"p\"\nmatch = { verdict = [\"Failed\"] }\nchannels = [\"chat\"]\n", &["p.chat:40"]),
            (
                "[[routes]]\nname = \"p\"\nmatch = { verdict = [\"Incomplete\", \"Succeeded\"] }\nchannels = [\"chat\"]\n",
                &[],
            ),
            (
                "[[routes]]\nname = \"p\"\nmatch = { when = [\"failed_percent >= 10\"] }\nchannels = [\"chat\"]\n",
                &["p.chat:40"],
            ),
            ("[[routes]]\nname = \"p\"\nmatch = { when = [\"failed_percent > 10\"] }\nchannels = [\"chat\"]\n", &[]),
            (
                "[[routes]]\nname = \"p\"\nmatch = { when = [\"failed_percent > 10\", \"no_result >= 1 and window_exceeded >= 1\"] }\nchannels = [\"chat\"]\n",
                &["p.chat:40"],
            ),
            // Judged per owner: team-infra's part (18 machines) has 2 failed (11 %), team-web's 2 of 15.
            (
                "[[routes]]\nname = \"p\"\nsplit_by_tag = \"PatchOwner\"\nmatch = { when = [\"failed >= 1\"], verdict = [\"Failed\"] }\nchannels = [\"chat\"]\n",
                &["p.chat.team-infra:18", "p.chat.team-web:15"],
            ),
        ];
        for (routes, expected) in cases {
            let text = format!("{CHANNELS}{routes}");
            let (routing, _) = Routing::parse(&text, &|_| true).unwrap_or_else(|e| panic!("{routes}: {e:?}"));
            let got: Vec<String> = routing
                .plan(&event, &summary, &data)
                .iter()
                .map(|n| format!("{}:{}", n.target(), n.summary.counts.total))
                .collect();
            assert_eq!(got, *expected, "routes: {routes}");
        }
    }

    /// A Ring2-Prod run of `total` machines of team-web, `failed` of them Failed, summarised.
    fn run_with(total: usize, failed: usize) -> (crate::event::MaintenanceEvent, RunSummary, RunData) {
        let (event, _, _) = example();
        let mut data = RunData::default();
        let at = event.start + time::Duration::minutes(10);
        for i in 0..total {
            let id =
                format!("/subscriptions/s/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/vm-{i:03}");
            let key = id.to_ascii_lowercase();
            data.expected
                .push(crate::rundata::ExpectedMachine { id: id.clone(), resource_group: Some("rg-web".into()) });
            let status = if i < failed { "Failed" } else { "Succeeded" };
            data.results.insert(
                key.clone(),
                crate::rundata::InstallResult {
                    result_id: format!("{id}/patchInstallationResults/r"),
                    machine_id: id.clone(),
                    resource_group: Some("rg-web".into()),
                    status: status.into(),
                    installed: 3,
                    failed: u32::from(i < failed),
                    pending: 0,
                    window_exceeded: false,
                    reboot_status: Some("NotNeeded".into()),
                    started: Some(at),
                    last_modified: Some(at + time::Duration::minutes(20)),
                    os_type: Some("Windows".into()),
                    errors: vec![],
                },
            );
            let tags = [("PatchOwner".to_owned(), "team-web".to_owned())].into_iter().collect();
            data.machines.insert(
                key,
                crate::rundata::MachineInfo { os_type: Some("Windows".into()), tags, ..Default::default() },
            );
        }
        let crate::summary::Decision::Ready(summary) =
            crate::summary::summarise(&event, &data, time::OffsetDateTime::now_utc(), std::time::Duration::ZERO)
        else {
            unreachable!()
        };
        (event, *summary, data)
    }

    /// The example config's severity routes: 12 % failed pages on-call (and opens an incident);
    /// 5 % failed goes only to the owners' email.
    #[test]
    fn example_severity_routes_page_at_ten_percent_failed() {
        let (routing, _) = Routing::parse(include_str!("../../../examples/patchwatch.toml"), &|_| true).unwrap();
        let targets = |total, failed| {
            let (event, summary, data) = run_with(total, failed);
            let verdict = if failed > 0 { Verdict::Failed } else { Verdict::Succeeded };
            assert_eq!((summary.verdict, summary.counts.failed), (verdict, failed));
            routing.plan(&event, &summary, &data).iter().map(Notification::target).collect::<Vec<_>>()
        };
        assert_eq!(
            targets(50, 6),
            [
                "owners.owners.team-web",
                "page.oncall-teams",
                "page.ops-slack",
                "page.cmdb-webhook",
                "incidents.servicenow"
            ],
            "12 % failed"
        );
        assert_eq!(targets(40, 2), ["owners.owners.team-web"], "5 % failed: email only");
        assert_eq!(targets(40, 0), ["owners.owners.team-web", "incidents.servicenow"], "clean: resolves incidents");
    }

    /// `check-config` on the severity, notice and follow-up settings: (route text, line, message).
    #[test]
    fn severity_notice_and_follow_up_settings_are_checked() {
        let cases: &[(&str, usize, &str)] = &[
            ("match = { phase = \"pre\", verdict = [\"Failed\"] }\n", 12, "a pre event has none"),
            ("match = { when = [\"failed_percent >= 110\"] }\n", 15, "out of range"),
            ("match = { when = [\"broken > 1\"] }\n", 15, "unknown metric"),
            ("match = { verdict = [\"Failing\"] }\n", 15, "Failing"),
            ("match = { verdict = [] }\n", 12, "verdict is empty"),
            ("match = { notice = [\"alert\"] }\n", 12, "need phase = \"notice\""),
            ("match = { phase = \"notice\", outcome = \"any_failure\" }\n", 12, "a notice has no machines"),
            ("match = { phase = \"notice\", notice = [\"pager\"] }\n", 15, "pager"),
            ("remind_after = [\"4h\", \"1h\"]\n", 15, "must increase"),
            ("remind_after = [\"soon\"]\n", 15, "not a duration"),
            ("remind_after = [\"4h\"]\nmatch = { phase = \"pre\" }\n", 12, "must see post events"),
            ("escalate_to = \"page\"\n", 15, "needs remind_after"),
            ("remind_after = [\"4h\"]\nescalate_to = \"nope\"\n", 16, "unknown route \"nope\""),
            ("fallback_recipients = [\"ops@example.com\"]\n", 12, "need `split_by_tag`"),
            ("split_by_tag = \"Owner\"\nfallback_recipients = [\"not mail\"]\n", 16, "not an email address"),
        ];
        for (route, line, message) in cases {
            let text = format!("{CHANNELS}[[routes]]\nname = \"p\"\nchannels = [\"chat\"]\n{route}");
            let err = parse(&text).unwrap_err();
            assert!(err.iter().any(|e| e.message.contains(message)), "{route}: {err:?}");
            assert_eq!(err[0].line, *line, "{route}: {}", err[0]);
        }
        // Reminders and escalations are notices: an incident channel cannot take them.
        let snow = "[channels.snow]\ntype = \"servicenow\"\ninstance = \"https://x.service-now.com\"\nuser_env = \"U\"\npassword_env = \"P\"\n";
        let only_snow =
            format!("{CHANNELS}{snow}[[routes]]\nname = \"p\"\nchannels = [\"snow\"]\nremind_after = [\"4h\"]\n");
        assert!(
            parse(&only_snow).unwrap_err().iter().any(|e| e.message.contains("needs a channel that takes reminders"))
        );
        let to_snow = format!(
            "{CHANNELS}{snow}[[routes]]\nname = \"p\"\nchannels = [\"mail\"]\nremind_after = [\"4h\"]\nescalate_to = \"i\"\n[[routes]]\nname = \"i\"\nchannels = [\"snow\"]\n"
        );
        assert!(parse(&to_snow).unwrap_err().iter().any(|e| e.message.contains("escalate_to \"i\": channel \"snow\"")));
        let page = format!(
            "{CHANNELS}[[routes]]\nname = \"o\"\nremind_after = [\"4h\", \"1d\"]\nescalate_to = \"page\"\nchannels = [\"mail\"]\n[[routes]]\nname = \"page\"\nchannels = [\"chat\"]\n[[routes]]\nname = \"n\"\nmatch = {{ phase = \"notice\", notice = [\"gate\", \"alert\"], severity = \"warning\" }}\nchannels = [\"chat\"]\n"
        );
        let (routing, _) = parse(&page).unwrap();
        let o = routing.route("o").unwrap();
        assert_eq!(o.reminders, [Duration::from_secs(4 * 3600), Duration::from_secs(86_400)]);
        assert!(o.follows_up());
        // Notice routes choose channels by kind and least severity; otherwise the section's list.
        let notice = |kind, severity| Notice::new(kind, "k", severity, "t");
        let configured = ["ops".to_owned()];
        assert_eq!(routing.notice_channels(&notice(NoticeKind::Gate, Severity::Critical), &configured), ["chat"]);
        assert_eq!(routing.notice_channels(&notice(NoticeKind::Alert, Severity::Warning), &configured), ["chat"]);
        assert_eq!(routing.notice_channels(&notice(NoticeKind::Alert, Severity::Info), &configured), ["ops"]);
        assert_eq!(routing.notice_channels(&notice(NoticeKind::Itsm, Severity::Critical), &configured), ["ops"]);
    }

    #[test]
    fn control_sections_are_checked_where_they_are_written() {
        let example = include_str!("../../../examples/control.toml");
        let (routing, warnings) = Routing::parse(example, &|_| true).unwrap();
        assert!(warnings.is_empty());
        assert_eq!((routing.control.gates.len(), routing.control.itsm.callers.len()), (2, 2));
        assert!(routing.control.suppress_alerts.is_some());
        let cases: &[(&str, usize, &str)] = &[
            ("[[gates]]\nname = \"g\"\nring = \"nope\"\nchange = {}\n", 1, "unknown ring \"nope\""),
            ("[[gates]]\nname = \"g\"\nconfiguration = \"R*\"\n", 1, "give `change` or `previous_ring`"),
            (
                "[[gates]]\nname = \"g\"\n\nconfiguration = \"R*\"\nnotify = [\"sms\"]\nchange = {}\n",
                1,
                "notify \"sms\": no such channel",
            ),
            (
                "[[gates]]\nname = \"g\"\nconfiguration = \"R*\"\nchange = { source = \"servicenow\" }\n",
                1,
                "needs `servicenow",
            ),
            ("[[gates]]\nname = \"g\"\nconfiguration = \"R*\"\nmode = \"maybe\"\nchange = {}\n", 4, "maybe"),
            ("[power]\nconfigurations = []\n", 1, "power: configurations is empty"),
            (
                "[[itsm.callers]]\nname = \"c\"\nconfigurations = [\"*\"]\nactions = [\"approve\"]\n",
                1,
                "signing_secret_env or bearer_env",
            ),
            (
                "[[itsm.callers]]\nname = \"c\"\nbearer_env = \"B\"\nconfigurations = [\"*\"]\nactions = [\"launch\"]\n",
                5,
                "launch",
            ),
        ];
        for (text, line, message) in cases {
            let err = parse(text).unwrap_err();
            assert!(err[0].message.contains(message), "{text}: {}", err[0]);
            assert_eq!(err[0].line, *line, "{text}: {}", err[0]);
        }
    }

    #[test]
    fn unset_secrets_are_warnings() {
        let text = "[channels.t]\ntype = \"teams\"\nurl_env = \"TEAMS_URL\"\n";
        let (_, warnings) = Routing::parse(text, &|_| false).unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].warning && warnings[0].message.contains("TEAMS_URL"));
    }
}
