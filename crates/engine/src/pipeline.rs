//! The pipeline one event goes through: load run data → summarise → render → deliver.
//!
//! Each event ends in one of the outcomes of the design's table; entry points map them to what
//! their upstream understands.

use std::{path::PathBuf, sync::Arc, time::Duration};

use lettre::message::Mailbox;
use time::OffsetDateTime;
use tracing::{Instrument, error, info, warn};

use crate::{
    azure::{arm::ArmClient, resource_graph::GraphError},
    azure::{
        credential,
        resource_graph::{ResourceGraphClient, ResourceGraphOptions},
    },
    channels::{
        ChannelError, Channels,
        action_group::{self, ActionGroup},
    },
    config::{Config, DataSource},
    event::{EventError, Incoming, MaintenanceEvent, Phase, last_segment},
    history::{History, RunRecord},
    ledger::{Claim, DeliveryId, DeliveryRecord, DeliveryState, Finish, Ledger},
    mail::{Delivered, MailError, Mailer, file_stem},
    render::{RenderError, Templates},
    routing::{ChannelSpec, Notification, Routing},
    rundata::{RunDataSource, RunQuery},
    state::{self, StateError},
    summary::{Decision, RunSummary, summarise},
};

/// A clock, injectable so tests can stand inside or after the grace period.
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// Why a pipeline could not be built at start-up.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Templates(#[from] RenderError),
    #[error(transparent)]
    Mail(#[from] MailError),
    #[error("Azure credential: {0}")]
    Credential(azure_core::Error),
    #[error("PATCHWATCH_STATE is invalid: {0}")]
    State(String),
    #[error("PATCHWATCH_CONFIG channels: {0}")]
    Channels(String),
}

/// What happened to one event.
#[derive(Debug)]
pub enum EventOutcome {
    Sent(Box<Processed>),
    /// Already delivered (or refused for good) by an earlier delivery of the same event.
    Duplicate {
        /// The run's "every notification delivered" record, when there is one.
        record: Option<Box<DeliveryRecord>>,
        /// What each notification's record says, when this delivery looked at them.
        deliveries: Vec<DeliveryReport>,
    },
    /// Another event type: acknowledged, not processed.
    Ignored {
        event_type: String,
    },
    /// Nothing was sent; the upstream should deliver again later.
    RetryLater {
        reason: String,
        after: Duration,
    },
    /// Failed for good (broken template, recipient refused): logged and acknowledged.
    Failed {
        reason: String,
    },
}

/// A summary that was delivered.
#[derive(Debug)]
pub struct Processed {
    pub summary: RunSummary,
    /// One line per notification: its ledger target and what happened.
    pub deliveries: Vec<DeliveryReport>,
}

/// How one notification of a run ended.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeliveryReport {
    pub target: String,
    /// `sent`, `duplicate`, `failed` or `retry_later`.
    pub outcome: &'static str,
    pub detail: String,
}

/// What happened to a whole delivery.
#[derive(Debug)]
pub enum DeliveryOutcome {
    /// Event Grid subscription validation: answer with this code.
    Validation {
        code: String,
    },
    Done(Vec<EventOutcome>),
    RetryLater {
        reason: String,
        after: Duration,
    },
    Rejected(EventError),
}

/// Everything needed to process events.
pub struct Pipeline {
    pub routing: Option<Arc<Routing>>,
    /// Reads action groups; present when the routing file names one.
    pub arm: Option<ArmClient>,
    pub channels: Channels,
    pub ledger: Ledger,
    pub history: History,
    /// Change decisions and acknowledgements from ITSM callers.
    pub approvals: patchwatch_state::approvals::Approvals,
    pub source: RunDataSource,
    pub mailer: Mailer,
    pub templates: Templates,
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    pub grace: Duration,
    pub clock: Clock,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("source", &self.source.describe())
            .field("mailer", &self.mailer.describe())
            .field("grace", &self.grace)
            .field("state", &self.ledger.store().describe())
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// Builds the pipeline from configuration. Does no network I/O.
    pub fn from_config(config: &Config) -> Result<Self, StartupError> {
        let state_url = config.state.expose();
        // A blob container without a SAS token authenticates with the Azure credential.
        let state_needs_credential = state_url.starts_with("http") && !state_url.contains("sig=");
        let action_groups = config
            .routing
            .as_ref()
            .is_some_and(|r| r.channels.values().any(|c| matches!(c, ChannelSpec::ActionGroup { .. })));
        // Gates cancel runs, power starts machines, ITSM callers re-run patches: all through ARM.
        let control_arm = config.routing.as_ref().is_some_and(|r| {
            let c = &r.control;
            !c.gates.is_empty() || c.power.is_some() || !c.itsm.callers.is_empty()
        });
        let needs_arm = action_groups || control_arm;
        let needs_credential = state_needs_credential || needs_arm || matches!(config.data, DataSource::ResourceGraph);
        let credential = if needs_credential {
            Some(credential::from_config(config).map_err(StartupError::Credential)?)
        } else {
            None
        };
        let store = state::open(state_url, credential.clone()).map_err(StartupError::State)?;
        let arm = match (&credential, needs_arm) {
            (Some(c), true) => Some(ArmClient::new(config.arm_endpoint.clone(), c.clone(), config.arm_scope.clone())),
            _ => None,
        };
        let source = match &config.data {
            DataSource::Snapshot(path) => RunDataSource::SnapshotFile(path.clone()),
            DataSource::ResourceGraph => {
                let credential = credential.ok_or_else(|| StartupError::State("no credential".to_owned()))?;
                let options = ResourceGraphOptions { scope: config.arm_scope.clone(), ..Default::default() };
                RunDataSource::ResourceGraph(Arc::new(ResourceGraphClient::new(
                    config.arm_endpoint.clone(),
                    credential,
                    options,
                )))
            }
        };
        let secrets = |k: &str| config.channel_secrets.get(k).map(|s| s.expose().to_owned());
        let channels = Channels::new(config.routing.as_deref(), &secrets, config.portal_url.clone())
            .map_err(StartupError::Channels)?;
        Ok(Self {
            arm,
            routing: config.routing.clone(),
            channels,
            ledger: Ledger::new(store.clone(), config.lease),
            history: History::new(store.clone(), config.history_days),
            approvals: patchwatch_state::approvals::Approvals::new(store),
            source,
            mailer: Mailer::new(&config.mail)?,
            templates: Templates::load(config.templates_dir.as_deref(), config.portal_url.clone())?,
            from: config.mail_from.clone(),
            to: config.mail_to.clone(),
            grace: config.result_grace,
            clock: Arc::new(OffsetDateTime::now_utc),
        })
    }

    /// Processes every event of a validated delivery. On an upstream's `final_attempt` the
    /// grace period is over: what is known is sent rather than lost.
    pub async fn handle(&self, items: Vec<Incoming>, final_attempt: bool) -> DeliveryOutcome {
        // Event Grid sends a validation event alone; anything else in the batch would be dropped.
        if items.len() > 1
            && let Some(i) = items.iter().position(|i| matches!(i, Incoming::Validation { .. }))
        {
            return DeliveryOutcome::Rejected(EventError::malformed(
                format!("[{i}]"),
                "a subscription validation event must be delivered alone",
            ));
        }
        let mut outcomes = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Incoming::Validation { code } => {
                    info!("Event Grid subscription validation answered.");
                    return DeliveryOutcome::Validation { code };
                }
                Incoming::Ignored { id, event_type } => {
                    info!(event_id = %id, event_type = %event_type, "Event of another type acknowledged and ignored.");
                    outcomes.push(EventOutcome::Ignored { event_type });
                }
                Incoming::Maintenance(event) => outcomes.push(self.process_with(&event, final_attempt).await),
            }
        }
        // Event Grid redelivers a batch all or nothing, so one event that must wait holds the batch.
        let wait = outcomes
            .iter()
            .filter_map(|o| match o {
                EventOutcome::RetryLater { reason, after } => Some((reason.clone(), *after)),
                _ => None,
            })
            .max_by_key(|(_, after)| *after);
        match wait {
            Some((reason, after)) => DeliveryOutcome::RetryLater { reason, after },
            None => DeliveryOutcome::Done(outcomes),
        }
    }

    /// Runs one maintenance event through the pipeline.
    pub async fn process(&self, event: &MaintenanceEvent) -> EventOutcome {
        self.process_with(event, false).await
    }

    /// As [`Pipeline::process`]; on a `final_attempt` missing results no longer hold the summary back.
    pub async fn process_with(&self, event: &MaintenanceEvent, final_attempt: bool) -> EventOutcome {
        let run = last_segment(&event.correlation_id).to_owned();
        let span = tracing::info_span!("run", configuration = %event.configuration_name(), run = %run, phase = event.phase.as_str());
        self.process_inner(event, &run, final_attempt).instrument(span).await
    }

    async fn process_inner(&self, event: &MaintenanceEvent, run: &str, final_attempt: bool) -> EventOutcome {
        let run_id = DeliveryId {
            run_id: &event.correlation_id,
            configuration: event.configuration_name(),
            phase: event.phase.as_str(),
            target: ALL_TARGETS,
        };
        // A duplicate of a fully delivered event is acknowledged before any run data is loaded.
        match self.ledger.status(&run_id).await {
            Ok(Some(record)) if matches!(record.state, DeliveryState::Sent | DeliveryState::Failed) => {
                info!("Every notification of this run was already delivered; duplicate acknowledged.");
                return EventOutcome::Duplicate { record: Some(Box::new(record)), deliveries: Vec::new() };
            }
            Ok(_) => {}
            Err(e) => return state_down(&e),
        }
        let query = RunQuery {
            correlation_id: event.correlation_id.clone(),
            subscription_ids: event.subscription_ids.clone(),
            include_results: event.phase == Phase::Post,
            since: Some(event.start),
        };
        let data = match self.source.load(&query).await {
            Ok(d) => d,
            Err(e) => {
                return match e.retry_after() {
                    Some(after) => {
                        error!(error = %e, "Run data could not be loaded; the event will be retried.");
                        EventOutcome::RetryLater { reason: e.to_string(), after }
                    }
                    None => {
                        error!(error = %e, "Run data is unusable; the event is dropped.");
                        EventOutcome::Failed { reason: e.to_string() }
                    }
                };
            }
        };
        self.process_loaded(event, run, &data, final_attempt).await
    }

    /// Runs an event whose run data is already loaded (patching on demand builds its own).
    pub async fn process_loaded(
        &self,
        event: &MaintenanceEvent,
        run: &str,
        data: &patchwatch_model::rundata::RunData,
        final_attempt: bool,
    ) -> EventOutcome {
        let run_id = DeliveryId {
            run_id: &event.correlation_id,
            configuration: event.configuration_name(),
            phase: event.phase.as_str(),
            target: ALL_TARGETS,
        };
        // Gates, cancellation and power on come before any heads-up.
        let mut control = match event.phase {
            Phase::Pre => self.before_run(event, data).await,
            Phase::Post => crate::control::run::ControlOutcome::default(),
        };
        if let Some((reason, after)) = control.retry.take() {
            return EventOutcome::RetryLater { reason, after };
        }
        let now = (self.clock)();
        let grace = if final_attempt { Duration::ZERO } else { self.grace };
        let summary = match summarise(event, data, now, grace) {
            Decision::Ready(s) => *s,
            Decision::Wait { missing, total, retry_after } => {
                info!(missing, total, "Results still missing inside the grace period; retrying later.");
                return EventOutcome::RetryLater {
                    reason: format!("{missing} of {total} machines have no result yet; waiting up to the grace period"),
                    after: retry_after,
                };
            }
        };
        let plan = match &self.routing {
            Some(routing) => {
                let plan = routing.plan(event, &summary, data);
                if plan.is_empty() {
                    info!("No route matched this run; nothing to send.");
                }
                plan
            }
            None => vec![default_notification(&summary)],
        };
        // A cancelled run gets the gate's notice, not a heads-up for a run that will not happen.
        let plan = if control.cancelled { Vec::new() } else { plan };
        let mut deliveries = std::mem::take(&mut control.reports);
        let mut retry: Option<(String, Duration)> = None;
        for n in &plan {
            let reports = match &n.spec {
                ChannelSpec::ActionGroup { id } => self.action_group(event, run, n, id).await,
                _ => vec![self.notify(event, run, n).await],
            };
            for (report, result) in reports {
                if let Err((reason, after)) = result {
                    retry = Some(match retry.take() {
                        Some((r, a)) => (format!("{r}; {reason}"), a.max(after)),
                        None => (reason, after),
                    });
                }
                deliveries.push(report);
            }
        }
        // Machines go back as soon as the run's results are in, whether or not every channel
        // took its notification (a channel down must not keep VMs running).
        if event.phase == Phase::Post {
            let after = self.after_run(event).await;
            deliveries.extend(after.reports);
            if let Some((reason, after)) = after.retry {
                retry = Some(match retry.take() {
                    Some((r, a)) => (format!("{r}; {reason}"), a.max(after)),
                    None => (reason, after),
                });
            }
        }
        if let Some((reason, after)) = retry {
            // What went out stays sent; the redelivery sends only what is missing.
            return EventOutcome::RetryLater { reason, after };
        }
        let now = (self.clock)();
        let earlier = match self.mark_complete(&run_id, now, &summary).await {
            Ok(earlier) => earlier,
            Err(e) => {
                warn!(error = %e, "Could not record the run as fully delivered; a redelivery will re-check each target.");
                None
            }
        };
        // Nothing new went out: another delivery of this event did the work.
        if !deliveries.is_empty() && deliveries.iter().all(|d| d.outcome == "duplicate") {
            info!("Every notification was delivered by another delivery of this event; duplicate acknowledged.");
            return EventOutcome::Duplicate { record: earlier.map(Box::new), deliveries };
        }
        if event.phase == Phase::Post
            && let Err(e) = self.history.record(&RunRecord::from_summary(&summary, now)).await
        {
            warn!(error = %e, "Run history could not be written.");
        }
        info!(
            verdict = summary.verdict.label(),
            machines = summary.counts.total,
            notifications = deliveries.len(),
            "Run summary delivered."
        );
        EventOutcome::Sent(Box::new(Processed { summary, deliveries }))
    }

    /// Claims, sends and records one notification. `Err` asks for the event to be retried.
    async fn notify(
        &self,
        event: &MaintenanceEvent,
        run: &str,
        n: &Notification,
    ) -> (DeliveryReport, Result<(), (String, Duration)>) {
        let target = n.target();
        let report = |outcome: &'static str, detail: String| DeliveryReport { target: target.clone(), outcome, detail };
        let id = DeliveryId {
            run_id: &event.correlation_id,
            configuration: event.configuration_name(),
            phase: event.phase.as_str(),
            target: &target,
        };
        let token = match self.ledger.claim(&id, (self.clock)()).await {
            Ok(Claim::Claimed(token)) => token,
            Ok(Claim::AlreadySent(record)) => {
                return (report("duplicate", record.detail.unwrap_or_default()), Ok(()));
            }
            Ok(Claim::FailedForGood(record)) => {
                return (report("failed", record.error.unwrap_or_default()), Ok(()));
            }
            Ok(Claim::Busy { until }) => {
                let after =
                    Duration::try_from(until - (self.clock)()).unwrap_or(Duration::ZERO).max(Duration::from_secs(1));
                info!(target = %target, until = %until, "Another instance is sending this notification.");
                let reason = format!("{target}: another instance is delivering it");
                return (report("retry_later", reason.clone()), Err((reason, after)));
            }
            Err(e) => {
                error!(error = %e, "State store unavailable; the event will be retried.");
                return (report("retry_later", e.to_string()), Err((e.to_string(), Duration::from_secs(30))));
            }
        };
        let sent = match &n.spec {
            ChannelSpec::Email { .. } => {
                let message_id = crate::mail::message_id(&token.id_hash(), &self.from);
                self.email(event, run, n, &message_id).await
            }
            _ => {
                let delivery_id = format!("msg_{}", token.id_hash());
                self.channels.deliver(n, &delivery_id).await.map_err(|e| match e {
                    ChannelError::Transient(m) => SendError::Transient(m),
                    ChannelError::Permanent(m) => SendError::Permanent(m),
                })
            }
        };
        let (finish, result) = match sent {
            Ok(detail) => {
                info!(target = %target, detail = %detail, "Notification delivered.");
                (
                    Finish::Sent { subject: n.summary.subject(), detail: detail.clone() },
                    (report("sent", detail), Ok(())),
                )
            }
            Err(SendError::Transient(reason)) => {
                warn!(target = %target, error = %reason, "Notification could not be delivered; the event will be retried.");
                let r = report("retry_later", reason.clone());
                (Finish::Retry { error: reason.clone() }, (r, Err((reason, Duration::from_secs(60)))))
            }
            Err(SendError::Permanent(reason)) => {
                error!(target = %target, error = %reason, "Notification was refused for good; it is not retried.");
                (Finish::Failed { error: reason.clone() }, (report("failed", reason), Ok(())))
            }
        };
        match self.ledger.finish(token, finish, (self.clock)()).await {
            Ok(true) => {}
            Ok(false) => {
                warn!(target = %target, "The claim expired while sending; another instance may send it again.")
            }
            // Sent but not recorded: a redelivery after the lease may send it again.
            Err(e) => error!(target = %target, error = %e, "Delivery could not be recorded in the state store."),
        }
        result
    }

    /// An action group fans out to its email and webhook receivers, each a delivery of its own
    /// (so a failing receiver is retried without resending to the others). Receivers that
    /// cannot be served are reported.
    async fn action_group(
        &self,
        event: &MaintenanceEvent,
        run: &str,
        n: &Notification,
        id: &str,
    ) -> Vec<(DeliveryReport, Result<(), (String, Duration)>)> {
        let target = n.target();
        let report = |outcome: &'static str, detail: String| DeliveryReport { target: target.clone(), outcome, detail };
        let Some(arm) = &self.arm else {
            return vec![(report("failed", "no Azure credential to read the action group".to_owned()), Ok(()))];
        };
        let id = match patchwatch_model::resource_id::ResourceId::parse(id) {
            Ok(id) => id,
            Err(e) => return vec![(report("failed", format!("action group id is invalid: {e}")), Ok(()))],
        };
        let group: ActionGroup = match arm.get(&id, action_group::API_VERSION).await {
            Ok(g) => g,
            // A missing group, a malformed id or a missing role will not fix itself on retry.
            Err(e @ GraphError::Status { status: 400 | 403 | 404, .. }) => {
                error!(target = %target, error = %e, "Action group cannot be read (needs Reader on it); not retried.");
                return vec![(report("failed", e.to_string()), Ok(()))];
            }
            Err(e) => {
                error!(target = %target, error = %e, "Action group could not be read; the event will be retried.");
                return vec![(report("retry_later", e.to_string()), Err((e.to_string(), e.retry_after())))];
            }
        };
        if group.properties.enabled == Some(false) {
            warn!(target = %target, "Action group is disabled; nothing sent.");
            return vec![(report("failed", format!("action group {} is disabled", group.name)), Ok(()))];
        }
        let mut out = Vec::new();
        let unsupported = group.unsupported();
        if !unsupported.is_empty() {
            warn!(target = %target, receivers = %unsupported.join(", "), "Action group receivers patchwatch cannot serve.");
            out.push((report("skipped", format!("not served by patchwatch: {}", unsupported.join(", "))), Ok(())));
        }
        for r in group.emails() {
            let mut m = n.clone();
            m.spec = ChannelSpec::Email { to: Vec::new(), subject_prefix: None };
            m.recipients = vec![r.email_address.clone()];
            m.receiver = Some(format!("email-{}", r.name));
            out.push(self.notify(event, run, &m).await);
        }
        for w in group.webhooks() {
            let mut m = n.clone();
            m.spec = ChannelSpec::AlertWebhook { url: w.service_uri.clone() };
            m.receiver = Some(format!("webhook-{}", w.name));
            out.push(self.notify(event, run, &m).await);
        }
        out
    }

    /// Renders and sends one email notification.
    async fn email(
        &self,
        event: &MaintenanceEvent,
        run: &str,
        n: &Notification,
        message_id: &str,
    ) -> Result<String, SendError> {
        let (to, prefix) = match &n.spec {
            ChannelSpec::Email { to, subject_prefix } => (to.as_slice(), subject_prefix.as_deref()),
            _ => (&[][..], None),
        };
        let mut rendered = self.templates.render(&n.summary, n.group.as_deref()).map_err(|e| {
            error!(error = %e, "Summary could not be rendered.");
            SendError::Permanent(e.to_string())
        })?;
        if let Some(p) = prefix.filter(|p| !p.trim().is_empty()) {
            rendered.subject = patchwatch_model::text::one_line(&format!("{} {}", p.trim(), rendered.subject));
        }
        let listed: Vec<&String> =
            if n.recipients.is_empty() { to.iter().collect() } else { n.recipients.iter().collect() };
        let recipients: Vec<Mailbox> = if listed.is_empty() {
            self.to.clone()
        } else {
            listed
                .iter()
                .map(|a| a.parse::<Mailbox>().map_err(|e| SendError::Permanent(format!("recipient {a:?}: {e}"))))
                .collect::<Result<_, _>>()?
        };
        let now = (self.clock)();
        let mut stem =
            file_stem(event.event_time.unwrap_or(now), event.configuration_name(), event.phase.as_str(), run);
        if n.route != DEFAULT_ROUTE {
            stem.push('-');
            stem.push_str(&patchwatch_state::keys::segment(&n.target()));
        }
        match self.mailer.send(&self.from, &recipients, &rendered, &stem, message_id).await {
            Ok(Delivered::Smtp { recipients }) => Ok(format!("SMTP to {recipients} recipient(s)")),
            Ok(Delivered::Outbox { eml, .. }) => Ok(eml.display().to_string()),
            Err(e) if e.is_transient() => Err(SendError::Transient(e.to_string())),
            Err(e) => Err(SendError::Permanent(e.to_string())),
        }
    }

    /// Records the run and phase as fully delivered; returns the earlier record if another
    /// delivery got there first.
    async fn mark_complete(
        &self,
        id: &DeliveryId<'_>,
        now: OffsetDateTime,
        summary: &RunSummary,
    ) -> Result<Option<DeliveryRecord>, StateError> {
        match self.ledger.claim(id, now).await? {
            Claim::Claimed(token) => {
                let finish =
                    Finish::Sent { subject: summary.subject(), detail: "every notification delivered".to_owned() };
                self.ledger.finish(token, finish, now).await?;
                Ok(None)
            }
            Claim::AlreadySent(record) | Claim::FailedForGood(record) => Ok(Some(record)),
            Claim::Busy { .. } => Ok(None),
        }
    }
}

/// Why a notification was not sent.
enum SendError {
    Transient(String),
    Permanent(String),
}

/// The ledger target that marks a run and phase as fully delivered.
pub const ALL_TARGETS: &str = "all-notifications";
/// Without `PATCHWATCH_CONFIG`, one email to `PATCHWATCH_MAIL_TO`.
pub const DEFAULT_ROUTE: &str = "default";

fn default_notification(summary: &RunSummary) -> Notification {
    Notification {
        route: DEFAULT_ROUTE.to_owned(),
        channel: "email".to_owned(),
        spec: ChannelSpec::Email { to: Vec::new(), subject_prefix: None },
        group: None,
        recipients: Vec::new(),
        receiver: None,
        summary: summary.clone(),
    }
}

/// The state store is unreachable: never "done", always "retry later".
fn state_down(e: &StateError) -> EventOutcome {
    error!(error = %e, "State store unavailable; the event will be retried.");
    EventOutcome::RetryLater { reason: e.to_string(), after: Duration::from_secs(30) }
}

/// The embedded example snapshot and events (also used by `patchwatch serve`).
pub mod example {
    pub const SNAPSHOT: &str = include_str!("../../../examples/snapshot.json");
    pub const POST_EVENT: &str = include_str!("../../../examples/events/post-maintenance.json");
    pub const PRE_EVENT: &str = include_str!("../../../examples/events/pre-maintenance.json");
}

/// The local data directory for the `patchwatch` CLI's default outbox.
pub fn default_outbox() -> PathBuf {
    PathBuf::from("outbox")
}
