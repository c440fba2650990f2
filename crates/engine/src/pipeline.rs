//! The pipeline one event goes through: load run data → summarise → render → deliver.
//!
//! Each event ends in one of the outcomes of the design's table; entry points map them to what
//! their upstream understands.

use patchwatch_model::resource_id::last_segment;
use std::{path::PathBuf, sync::Arc, time::Duration};

use time::OffsetDateTime;
use tracing::{Instrument, error, info, warn};

use patchwatch_azure::{
    action_group::{self, ActionGroup},
    arm::ArmClient,
    credential,
    http::AzureError,
    resource_graph::{ResourceGraphClient, ResourceGraphOptions},
};
use patchwatch_model::{
    event::{EventError, Incoming, MaintenanceEvent, Phase},
    failure::{Delivered, Deliveries, DeliveryStatus, Retry, STATE_RETRY},
    resource_id::ResourceId,
    routing::{ChannelSpec, Notification, Routing},
    rundata::{RunData, RunQuery},
    summary::{Decision, RunSummary, summarise},
};
use patchwatch_render::{RenderError, Templates};
use patchwatch_state::{
    approvals::Approvals,
    followups::FollowUps,
    history::{History, RunRecord},
    keys,
    ledger::{ALL_TARGETS, DeliveryId, DeliveryRecord, Finish, Ledger, Once},
    loads::Loads,
    silences::Silences,
    store::{self, StateError},
};

pub use patchwatch_model::failure::DeliveryReport;
pub use patchwatch_state::ledger::Clock;

use crate::{
    channels::Channels,
    config::{Config, DataSource, Secret},
    control::run::ControlOutcome,
    mail::{MailError, Mailer, file_stem},
    notifier::{DEFAULT_ROUTE, Email, Notifier, Target},
    source::RunDataSource,
};

/// Most machines of open follow-ups a post event lists by id: each is a literal in the run's
/// Resource Graph query, which must stay well inside its size limit.
const MAX_WATCHED: usize = 500;

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
    State(#[from] store::OpenError),
    #[error("PATCHWATCH_DATA=resource-graph needs an Azure credential")]
    NoCredential,
    #[error("PATCHWATCH_CONFIG channels: {0}")]
    Channels(#[from] crate::channels::ChannelConfigError),
    #[error("PATCHWATCH_POISON_QUEUE or PATCHWATCH_DEADLETTER_CONTAINER: {0}")]
    Undelivered(String),
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
    pub summary: Arc<RunSummary>,
    /// One line per notification: its ledger target and what happened.
    pub deliveries: Vec<DeliveryReport>,
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
    /// Reads action groups, cancels runs, powers machines; present when the routing file needs it.
    pub arm: Option<ArmClient>,
    /// Sends everything, once.
    pub notifier: Notifier,
    pub history: History,
    /// Change decisions and acknowledgements from ITSM callers.
    pub approvals: Approvals,
    /// Failed runs followed up until someone owns them (reminders, escalation, snoozes).
    pub followups: FollowUps,
    /// Progress of run loads that stopped early, continued by the next delivery.
    pub loads: Loads,

    pub source: RunDataSource,
    pub grace: Duration,
    /// Signs and checks one-click action links; `None` unless configured.
    pub links: Option<crate::links::ActionLinks>,
    /// The poison queue and dead-letter container `undelivered::check` looks at.
    pub undelivered: crate::undelivered::Sources,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("source", &self.source.describe())
            .field("mailer", &self.notifier.email.mailer.describe())
            .field("grace", &self.grace)
            .field("state", &self.notifier.ledger.store().describe())
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
            !c.gates.is_empty() || c.power.is_some() || !c.itsm.callers.is_empty() || c.suppress_alerts.is_some()
        });
        let needs_arm = action_groups || control_arm;
        let undelivered_urls = [&config.poison_queue, &config.deadletter_container];
        let undelivered_need_credential = undelivered_urls
            .iter()
            .any(|u| u.as_ref().is_some_and(|u| crate::undelivered::Sources::needs_credential(u.expose())));
        let needs_credential = state_needs_credential
            || needs_arm
            || undelivered_need_credential
            || matches!(config.data, DataSource::ResourceGraph);
        let credential = if needs_credential {
            Some(credential::from_identity(&config.identity()).map_err(StartupError::Credential)?)
        } else {
            None
        };
        let store = store::open(state_url, credential.clone())?;
        let undelivered = crate::undelivered::Sources::new(
            config.poison_queue.as_ref().map(Secret::expose),
            config.deadletter_container.as_ref().map(Secret::expose),
            credential.clone(),
        )
        .map_err(StartupError::Undelivered)?;
        let arm = match (&credential, needs_arm) {
            (Some(c), true) => Some(ArmClient::new(config.arm_endpoint.clone(), c.clone(), config.arm_scope.clone())),
            _ => None,
        };
        let source = match &config.data {
            DataSource::Snapshot(path) => RunDataSource::SnapshotFile(path.clone()),
            DataSource::ResourceGraph => {
                let credential = credential.ok_or(StartupError::NoCredential)?;
                let options = ResourceGraphOptions { scope: config.arm_scope.clone(), ..Default::default() };
                RunDataSource::ResourceGraph(Arc::new(ResourceGraphClient::new(
                    config.arm_endpoint.clone(),
                    credential,
                    options,
                )))
            }
        };
        let secrets = |k: &str| config.channel_secrets.get(k).map(|s| s.expose().to_owned());
        let channels = Channels::new(config.routing.as_deref(), &secrets, config.portal_url.clone())?;
        let email = Email {
            mailer: Mailer::new(&config.mail)?,
            templates: Templates::load(config.templates_dir.as_deref(), config.portal_url.clone())?,
            from: config.mail_from.clone(),
            to: config.mail_to.clone(),
            routing: config.routing.clone(),
        };
        let notifier = Notifier {
            ledger: Ledger::new(store.clone(), config.lease),
            email,
            channels,
            clock: Arc::new(OffsetDateTime::now_utc),
            silences: Silences::new(store.clone()),
        };
        Ok(Self {
            arm,
            routing: config.routing.clone(),
            notifier,
            history: History::new(store.clone(), config.history_days),
            approvals: Approvals::new(store.clone()),
            followups: FollowUps::new(store.clone()),
            loads: Loads::new(store),
            source,
            grace: config.result_grace,
            links: config.action_links.clone(),
            undelivered,
        })
    }

    /// The pipeline's notion of now (injectable through [`Pipeline::set_clock`]).
    pub fn now(&self) -> OffsetDateTime {
        self.notifier.now()
    }

    /// Replaces the clock (tests stand inside or after a grace period or lease).
    pub fn set_clock(&mut self, clock: Clock) {
        self.notifier.clock = clock;
    }

    /// The `[alerts]` section's `notify` list: where alert and undelivered-message notices go
    /// when no notice route takes them.
    pub fn alerts_notify(&self) -> Vec<String> {
        self.routing.as_ref().map(|r| r.control.alerts.notify.clone()).unwrap_or_default()
    }

    /// The delivery ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.notifier.ledger
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

    /// The machines of this configuration's open follow-ups that no later run has fixed yet
    /// (lower-cased, at most [`MAX_WATCHED`]): listed by a post event even when they simply
    /// succeeded, so its history record can close the follow-ups they are in. Machines a later
    /// run already fixed drop out, so a follow-up of more than [`MAX_WATCHED`] machines is worked
    /// through over the following runs.
    async fn watched_machines(&self, event: &MaintenanceEvent) -> Result<Vec<String>, StateError> {
        if event.phase != Phase::Post {
            return Ok(Vec::new());
        }
        let open: Vec<_> = self
            .followups
            .all()
            .await?
            .into_iter()
            .filter(|f| {
                f.closed.is_none() && f.configuration_id.eq_ignore_ascii_case(&event.maintenance_configuration_id)
            })
            .collect();
        let Some(first) = open.first() else { return Ok(Vec::new()) };
        let runs = self.history.runs(&first.configuration).await?;
        let mut ids: Vec<String> = open
            .iter()
            .flat_map(|f| {
                let later: Vec<_> = runs.iter().filter(|r| r.window_start > f.window_start).collect();
                f.machines
                    .iter()
                    .filter(move |m| !later.iter().any(|r| r.succeeded_on(&m.id)))
                    .map(|m| m.id.to_ascii_lowercase())
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids.truncate(MAX_WATCHED);
        Ok(ids)
    }

    async fn process_inner(&self, event: &MaintenanceEvent, run: &str, final_attempt: bool) -> EventOutcome {
        let run_id = DeliveryId {
            run_id: &event.correlation_id,
            configuration: event.configuration_name(),
            phase: event.phase.as_str(),
            target: ALL_TARGETS,
        };
        // A duplicate of a fully delivered event is acknowledged before any run data is loaded.
        match self.notifier.ledger.status(&run_id).await {
            Ok(Some(record)) if record.state.is_settled() => {
                info!("Every notification of this run was already delivered; duplicate acknowledged.");
                return EventOutcome::Duplicate { record: Some(Box::new(record)), deliveries: Vec::new() };
            }
            Ok(_) => {}
            Err(e) => return state_down(&e),
        }
        let watch = match self.watched_machines(event).await {
            Ok(w) => w,
            Err(e) => return state_down(&e),
        };
        let query = RunQuery {
            correlation_id: event.correlation_id.clone(),
            subscription_ids: event.subscription_ids.clone(),
            include_results: event.phase == Phase::Post,
            since: Some(event.start),
            watch,
        };
        let data = match self.source.load_resumable(&query, &self.loads, event.phase.as_str()).await {
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
    ///
    /// The order is the contract: control first (gates, cancel, power on), then the summary
    /// (which may wait for missing results), then every planned notification (none for a
    /// cancelled run), then power off; the run is marked complete only when nothing must be
    /// retried.
    pub async fn process_loaded(
        &self,
        event: &MaintenanceEvent,
        run: &str,
        data: &RunData,
        final_attempt: bool,
    ) -> EventOutcome {
        // Gates, cancellation and power on come before any heads-up.
        let mut control = match event.phase {
            Phase::Pre => crate::control::run::before_run(self, event, data).await,
            Phase::Post => ControlOutcome::default(),
        };
        if let Some(retry) = control.done.retry.take() {
            return EventOutcome::retry(retry);
        }
        let summary = match self.summary_now(event, data, final_attempt) {
            Ok(summary) => summary,
            Err(wait) => return wait,
        };
        // A cancelled run gets the gate's notice, not a heads-up for a run that will not happen;
        // each heads-up it would have had is recorded as inhibited (visible in `deliveries`).
        let mut sent = control.done;
        let plan = self.plan(event, &summary, data);
        let plan = if control.cancelled {
            sent.absorb(crate::inhibit::cancelled(self, event, &plan, control.cancelled_by.as_deref()).await);
            Vec::new()
        } else {
            plan
        };
        for n in &plan {
            let results = match &n.spec {
                ChannelSpec::ActionGroup { id } => self.action_group(event, run, n, id).await,
                _ => vec![self.notify(event, run, n).await],
            };
            sent.absorb(results);
        }
        // A failed run's follow-ups open with its first message (idempotent on redelivery).
        if let Err(e) = crate::reminders::open(self, event, &plan, &sent.reports).await {
            warn!(error = %e, "Follow-ups could not be opened; the event will be retried.");
            sent.absorb(vec![Delivered::retry("follow-ups", e.to_string(), STATE_RETRY)]);
        }
        // Machines go back as soon as the run's results are in, whether or not every channel
        // took its notification (a channel down must not keep VMs running).
        if event.phase == Phase::Post {
            sent.extend(crate::control::run::after_run(self, event).await.done);
        }
        self.conclude(event, summary, sent).await
    }

    /// The summary, or the "retry later" that waits for missing results inside the grace period.
    fn summary_now(
        &self,
        event: &MaintenanceEvent,
        data: &RunData,
        final_attempt: bool,
    ) -> Result<Arc<RunSummary>, EventOutcome> {
        let grace = if final_attempt { Duration::ZERO } else { self.grace };
        match summarise(event, data, self.now(), grace) {
            // Shared by every notification that covers the whole run: never deep-cloned.
            Decision::Ready(s) => Ok(Arc::from(s)),
            Decision::Wait { missing, total, retry_after } => {
                info!(missing, total, "Results still missing inside the grace period; retrying later.");
                Err(EventOutcome::RetryLater {
                    reason: format!("{missing} of {total} machines have no result yet; waiting up to the grace period"),
                    after: retry_after,
                })
            }
        }
    }

    /// What to send: the routing file's plan, or one email to the default recipients.
    fn plan(&self, event: &MaintenanceEvent, summary: &Arc<RunSummary>, data: &RunData) -> Vec<Notification> {
        match &self.routing {
            Some(routing) => {
                let plan = routing.plan_shared(event, summary, data);
                if plan.is_empty() {
                    info!("No route matched this run; nothing to send.");
                }
                plan
            }
            None => vec![default_notification(summary)],
        }
    }

    /// After every delivery: retry what must be retried, else mark the run complete, answer
    /// duplicate when nothing new went out, and record the run's history.
    async fn conclude(&self, event: &MaintenanceEvent, summary: Arc<RunSummary>, sent: Deliveries) -> EventOutcome {
        if let Some(retry) = sent.retry {
            // What went out stays sent; the redelivery sends only what is missing.
            return EventOutcome::retry(retry);
        }
        let deliveries = sent.reports;
        let run_id = DeliveryId {
            run_id: &event.correlation_id,
            configuration: event.configuration_name(),
            phase: event.phase.as_str(),
            target: ALL_TARGETS,
        };
        let earlier = match self.mark_complete(&run_id, &summary).await {
            Ok(earlier) => earlier,
            Err(e) => {
                warn!(error = %e, "Could not record the run as fully delivered; a redelivery will re-check each target.");
                None
            }
        };
        // Nothing new went out: another delivery of this event did the work.
        if !deliveries.is_empty() && deliveries.iter().all(|d| d.outcome == DeliveryStatus::Duplicate) {
            info!("Every notification was delivered by another delivery of this event; duplicate acknowledged.");
            return EventOutcome::Duplicate { record: earlier.map(Box::new), deliveries };
        }
        if event.phase == Phase::Post
            && let Err(e) = self.history.record(&RunRecord::from_summary(&summary, self.now())).await
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

    /// Claims, sends and records one notification.
    async fn notify(&self, event: &MaintenanceEvent, run: &str, n: &Notification) -> Delivered {
        let target = n.target();
        let id = DeliveryId {
            run_id: &event.correlation_id,
            configuration: event.configuration_name(),
            phase: event.phase.as_str(),
            target: &target,
        };
        let mut stem =
            file_stem(event.event_time.unwrap_or(self.now()), event.configuration_name(), event.phase.as_str(), run);
        if n.route != DEFAULT_ROUTE {
            stem.push('-');
            stem.push_str(&keys::segment(&target));
        }
        let subject = n.summary.subject();
        match self.action_buttons(n) {
            Some(actions) => {
                let n = Notification { actions, ..n.clone() };
                self.notifier.deliver_summary(Target { id, subject: &subject, file_stem: &stem }, &n).await
            }
            None => self.notifier.deliver_summary(Target { id, subject: &subject, file_stem: &stem }, n).await,
        }
    }

    /// One-click buttons for a failed run's summary, when links are configured.
    fn action_buttons(&self, n: &Notification) -> Option<Vec<(String, String)>> {
        let links = self.links.as_ref()?;
        let s = &n.summary;
        if s.phase != Phase::Post || !s.verdict.is_failure() {
            return None;
        }
        let reminds = self.routing.as_ref().and_then(|r| r.route(&n.route)).is_some_and(|r| r.follows_up());
        let target = crate::links::LinkTarget {
            run: &s.run_id,
            configuration: &s.configuration_name,
            route: &n.route,
            group: n.group.as_deref(),
        };
        Some(links.buttons(&target, reminds, self.now()))
    }

    /// An action group fans out to its email and webhook receivers, each a delivery of its own
    /// (so a failing receiver is retried without resending to the others). Receivers that
    /// cannot be served are reported.
    async fn action_group(&self, event: &MaintenanceEvent, run: &str, n: &Notification, id: &str) -> Vec<Delivered> {
        let group = match self.read_action_group(&n.target(), id).await {
            Ok(group) => group,
            Err(report) => return vec![report],
        };
        let target = n.target();
        let mut out = Vec::new();
        let unsupported = group.unsupported();
        if !unsupported.is_empty() {
            warn!(target = %target, receivers = %unsupported.join(", "), "Action group receivers patchwatch cannot serve.");
            let detail = format!("not served by patchwatch: {}", unsupported.join(", "));
            out.push(Delivered::done(&target, DeliveryStatus::Skipped, detail));
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

    /// The action group, or the report of why it cannot be used now.
    async fn read_action_group(&self, target: &str, id: &str) -> Result<ActionGroup, Delivered> {
        let failed = |detail: String| Delivered::done(target, DeliveryStatus::Failed, detail);
        let Some(arm) = &self.arm else {
            return Err(failed("no Azure credential to read the action group".to_owned()));
        };
        let id = ResourceId::parse(id).map_err(|e| failed(format!("action group id is invalid: {e}")))?;
        let group: ActionGroup = match arm.get(&id, action_group::API_VERSION).await {
            Ok(g) => g,
            // A missing group, a malformed id or a missing role will not fix itself on retry.
            Err(e @ AzureError::Status { status: 400 | 403 | 404, .. }) => {
                error!(target = %target, error = %e, "Action group cannot be read (needs Reader on it); not retried.");
                return Err(failed(e.to_string()));
            }
            Err(e) => {
                error!(target = %target, error = %e, "Action group could not be read; the event will be retried.");
                return Err(Delivered::retry(target, e.to_string(), e.retry_after()));
            }
        };
        if group.properties.enabled == Some(false) {
            warn!(target = %target, "Action group is disabled; nothing sent.");
            return Err(failed(format!("action group {} is disabled", group.name)));
        }
        Ok(group)
    }

    /// Records the run and phase as fully delivered; returns the earlier record if another
    /// delivery got there first.
    async fn mark_complete(
        &self,
        id: &DeliveryId<'_>,
        summary: &RunSummary,
    ) -> Result<Option<DeliveryRecord>, StateError> {
        let subject = summary.subject();
        let finish = Finish::Sent { subject, detail: "every notification delivered".to_owned() };
        match self.notifier.ledger.once(id, &self.notifier.clock, |_| async { (finish, ()) }).await? {
            Once::Acted(()) | Once::Busy { .. } => Ok(None),
            Once::Settled(record) => Ok(Some(*record)),
        }
    }
}

impl EventOutcome {
    fn retry(retry: Retry) -> Self {
        EventOutcome::RetryLater { reason: retry.reason, after: retry.after }
    }
}

fn default_notification(summary: &Arc<RunSummary>) -> Notification {
    Notification {
        route: DEFAULT_ROUTE.to_owned(),
        channel: "email".to_owned(),
        spec: ChannelSpec::Email { to: Vec::new(), subject_prefix: None },
        group: None,
        recipients: Vec::new(),
        receiver: None,
        summary: Arc::clone(summary),
        actions: Vec::new(),
    }
}

/// The state store is unreachable: never "done", always "retry later".
fn state_down(e: &StateError) -> EventOutcome {
    error!(error = %e, "State store unavailable; the event will be retried.");
    EventOutcome::RetryLater { reason: e.to_string(), after: STATE_RETRY }
}

/// The local data directory for the `patchwatch` CLI's default outbox.
pub fn default_outbox() -> PathBuf {
    PathBuf::from("outbox")
}
