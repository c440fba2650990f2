//! The pipeline one event goes through: load run data → summarise → render → deliver.
//!
//! Each event ends in one of the outcomes of the design's table; entry points map them to what
//! their upstream understands.

use std::{path::PathBuf, sync::Arc, time::Duration};

use lettre::message::Mailbox;
use time::OffsetDateTime;
use tracing::{Instrument, error, info, warn};

use crate::{
    azure::{
        credential,
        resource_graph::{ResourceGraphClient, ResourceGraphOptions},
    },
    config::{Config, DataSource},
    event::{EventError, Incoming, MaintenanceEvent, Phase, last_segment},
    history::{History, RunRecord},
    ledger::{Claim, DeliveryId, DeliveryRecord, DeliveryState, Finish, Ledger},
    mail::{Delivered, MailError, Mailer, file_stem},
    render::{RenderError, Templates},
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
}

/// What happened to one event.
#[derive(Debug)]
pub enum EventOutcome {
    Sent(Box<Processed>),
    /// Already delivered (or refused for good) by an earlier delivery of the same event.
    Duplicate {
        record: Box<DeliveryRecord>,
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
    pub delivered: Delivered,
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
    pub ledger: Ledger,
    pub history: History,
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
        let needs_credential = state_needs_credential || matches!(config.data, DataSource::ResourceGraph);
        let credential = if needs_credential {
            Some(credential::from_config(config).map_err(StartupError::Credential)?)
        } else {
            None
        };
        let store = state::open(state_url, credential.clone()).map_err(StartupError::State)?;
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
        Ok(Self {
            ledger: Ledger::new(store.clone(), config.lease),
            history: History::new(store, config.history_days),
            source,
            mailer: Mailer::new(&config.mail)?,
            templates: Templates::load(config.templates_dir.as_deref(), config.portal_url.clone())?,
            from: config.mail_from.clone(),
            to: config.mail_to.clone(),
            grace: config.result_grace,
            clock: Arc::new(OffsetDateTime::now_utc),
        })
    }

    /// Processes every event of a validated delivery.
    pub async fn handle(&self, items: Vec<Incoming>) -> DeliveryOutcome {
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
                Incoming::Maintenance(event) => outcomes.push(self.process(&event).await),
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
        let run = last_segment(&event.correlation_id).to_owned();
        let span = tracing::info_span!("run", configuration = %event.configuration_name(), run = %run, phase = event.phase.as_str());
        self.process_inner(event, &run).instrument(span).await
    }

    async fn process_inner(&self, event: &MaintenanceEvent, run: &str) -> EventOutcome {
        let id = DeliveryId {
            run_id: &event.correlation_id,
            configuration: event.configuration_name(),
            phase: event.phase.as_str(),
            target: EMAIL_TARGET,
        };
        // A duplicate of a delivered event is acknowledged before any run data is loaded.
        match self.ledger.status(&id).await {
            Ok(Some(record)) if matches!(record.state, DeliveryState::Sent | DeliveryState::Failed) => {
                info!(state = ?record.state, "Already delivered; duplicate acknowledged.");
                return EventOutcome::Duplicate { record: Box::new(record) };
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
        let now = (self.clock)();
        let summary = match summarise(event, &data, now, self.grace) {
            Decision::Ready(s) => *s,
            Decision::Wait { missing, total, retry_after } => {
                info!(missing, total, "Results still missing inside the grace period; retrying later.");
                return EventOutcome::RetryLater {
                    reason: format!("{missing} of {total} machines have no result yet; waiting up to the grace period"),
                    after: retry_after,
                };
            }
        };
        let rendered = match self.templates.render(&summary) {
            Ok(r) => r,
            Err(e) => {
                error!(error = %e, "Summary could not be rendered.");
                return EventOutcome::Failed { reason: e.to_string() };
            }
        };
        let token = match self.ledger.claim(&id, (self.clock)()).await {
            Ok(Claim::Claimed(token)) => token,
            Ok(Claim::AlreadySent(record) | Claim::FailedForGood(record)) => {
                info!(state = ?record.state, "Delivered meanwhile by another instance; duplicate acknowledged.");
                return EventOutcome::Duplicate { record: Box::new(record) };
            }
            Ok(Claim::Busy { until }) => {
                let after =
                    Duration::try_from(until - (self.clock)()).unwrap_or(Duration::ZERO).max(Duration::from_secs(1));
                info!(until = %until, "Another instance is sending this summary; retrying after its lease.");
                return EventOutcome::RetryLater {
                    reason: "another instance is delivering this summary".to_owned(),
                    after,
                };
            }
            Err(e) => return state_down(&e),
        };
        let stem = file_stem(event.event_time.unwrap_or(now), event.configuration_name(), event.phase.as_str(), run);
        let sent = self.mailer.send(&self.from, &self.to, &rendered, &stem).await;
        let (finish, outcome) = match sent {
            Ok(delivered) => {
                info!(verdict = summary.verdict.label(), machines = summary.counts.total, "Run summary delivered.");
                let detail = match &delivered {
                    Delivered::Smtp { recipients } => format!("SMTP to {recipients} recipient(s)"),
                    Delivered::Outbox { eml, .. } => eml.display().to_string(),
                };
                let finish = Finish::Sent { subject: rendered.subject.clone(), detail };
                (finish, EventOutcome::Sent(Box::new(Processed { summary, delivered })))
            }
            Err(e) if e.is_transient() => {
                warn!(error = %e, "Email could not be delivered; the event will be retried.");
                let reason = e.to_string();
                (
                    Finish::Retry { error: reason.clone() },
                    EventOutcome::RetryLater { reason, after: Duration::from_secs(60) },
                )
            }
            Err(e) => {
                error!(error = %e, "Email was refused for good; the event is dropped.");
                let reason = e.to_string();
                (Finish::Failed { error: reason.clone() }, EventOutcome::Failed { reason })
            }
        };
        match self.ledger.finish(token, finish, (self.clock)()).await {
            Ok(true) => {}
            Ok(false) => warn!("The delivery claim expired while sending; another instance may send it again."),
            // The mail went out but could not be recorded: a redelivery after the lease may resend it.
            Err(e) => error!(error = %e, "Delivery could not be recorded in the state store."),
        }
        if let EventOutcome::Sent(p) = &outcome
            && event.phase == Phase::Post
            && let Err(e) = self.history.record(&RunRecord::from_summary(&p.summary, (self.clock)())).await
        {
            warn!(error = %e, "Run history could not be written.");
        }
        outcome
    }
}

/// The state store is unreachable: never "done", always "retry later".
fn state_down(e: &StateError) -> EventOutcome {
    error!(error = %e, "State store unavailable; the event will be retried.");
    EventOutcome::RetryLater { reason: e.to_string(), after: Duration::from_secs(30) }
}

/// The ledger target name of the summary email (routes add more targets).
pub const EMAIL_TARGET: &str = "email";

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
