//! The actions an ITSM caller may ask for, and the one error type of this handler's edge.

use patchwatch_host::error::ApiError;
use patchwatch_model::resource_id::ConfigurationId;
use std::{collections::HashMap, time::Duration};

use axum::http::StatusCode;
use patchwatch_azure::arm::MAINTENANCE_API;
use patchwatch_engine::pipeline::EventOutcome;
use patchwatch_engine::pipeline::Pipeline;
use patchwatch_model::event::EventError;
use patchwatch_model::event::MaintenanceEvent;
use patchwatch_model::event::Phase;
use patchwatch_model::event::Schema;
use patchwatch_model::failure::Delivered;
use patchwatch_model::notice::Notice;
use patchwatch_model::notice::Severity;
use patchwatch_model::resource_id::last_segment;
use patchwatch_model::rundata::{RunData, RunQuery};
use patchwatch_model::settings::Action;
use patchwatch_model::summary::Decision;
use patchwatch_model::summary::Outcome;
use patchwatch_model::summary::summarise;
use patchwatch_model::text::format_time;
use patchwatch_state::approvals::Acknowledgement;
use patchwatch_state::approvals::ChangeDecision;
use patchwatch_state::approvals::Recorded;
use patchwatch_state::followups::Which;
use patchwatch_state::ledger::{DeliveryId, DeliveryState, Finish, Once};
use serde_json::{Value, json};
use tracing::{Instrument, error, info, warn};

use crate::{
    AppState,
    auth::{AuthError, Caller},
    patch::{self, PatchParams, Target},
    request::Request,
};

/// Why a request was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum ItsmError {
    #[error("unauthorized: {0}")]
    Unauthorized(AuthError),
    #[error("{0}")]
    BadRequest(EventError),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("{field}: {message}")]
    NotFound { field: &'static str, message: String },
    #[error("{field}: {message}")]
    Unprocessable { field: String, message: String },
    #[error("retry later: {0}")]
    RetryLater(String),
}

/// How long an ITSM caller should wait before retrying a request that could not be done now.
const ITSM_RETRY: Duration = Duration::from_secs(30);

impl From<ItsmError> for ApiError {
    fn from(e: ItsmError) -> Self {
        let message = e.to_string();
        match e {
            ItsmError::Unauthorized(_) => ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message),
            ItsmError::BadRequest(e) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message).field(e.field)
            }
            ItsmError::Forbidden(_) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", message),
            ItsmError::NotFound { field, .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", message).field(field)
            }
            ItsmError::Unprocessable { field, .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", message).field(field)
            }
            ItsmError::RetryLater(_) => ApiError::retry_later(message, ITSM_RETRY),
        }
    }
}

/// Actions that patch machines must not run twice: they need an idempotency key.
pub fn needs_request_id(action: Action) -> bool {
    matches!(action, Action::Rerun | Action::Emergency)
}

/// The configuration id a run id belongs to (the part before `/providers/microsoft.maintenance/applyupdates/`).
pub fn configuration_id_of_run(run: &str) -> &str {
    let lower = run.to_ascii_lowercase();
    match lower.find("/providers/microsoft.maintenance/applyupdates/") {
        Some(i) => &run[..i],
        None => run,
    }
}

/// The configuration a request concerns: its name, and its full id when the request gives one.
/// For actions on a run the run id decides; a `configuration` that names another is refused, so
/// a caller cannot borrow the rights of one configuration to act on another's run.
pub fn configuration_of(req: &Request) -> Result<(String, Option<String>), ItsmError> {
    let name_of = |id: &str| last_segment(id.trim_end_matches('/')).to_owned();
    match (&req.run, &req.configuration) {
        (Some(run), given) => {
            let id = configuration_id_of_run(run);
            let name = name_of(id);
            if let Some(c) = given
                && !name_of(c).eq_ignore_ascii_case(&name)
            {
                return Err(ItsmError::BadRequest(EventError::malformed(
                    "configuration",
                    format!("names {:?}, but the run belongs to {name:?}", name_of(c)),
                )));
            }
            Ok((name, Some(id.to_owned())))
        }
        (None, Some(c)) => Ok((name_of(c), c.contains('/').then(|| c.trim_end_matches('/').to_owned()))),
        (None, None) => Ok((String::new(), None)),
    }
}

/// Carries out an authorised request on `configuration`: one step per action.
pub async fn perform(
    state: &AppState,
    caller: &Caller,
    req: &Request,
    configuration: &str,
) -> Result<(StatusCode, Value), ItsmError> {
    match req.action {
        Action::Approve | Action::Reject => decide(&state.pipeline, caller, req, configuration).await,
        Action::Acknowledge => acknowledge(&state.pipeline, caller, req, configuration).await,
        Action::Rerun => rerun(state, caller, req, configuration).await,
        Action::Emergency => emergency(state, caller, req, configuration).await,
        Action::Snooze => snooze(&state.pipeline, caller, req, configuration).await,
        Action::Silence => silence(&state.pipeline, caller, req, configuration).await,
    }
}

/// How long a snooze lasts unless the request says: a working day.
const DEFAULT_SNOOZE: Duration = Duration::from_secs(24 * 3600);
/// The longest snooze: reminders are for runs nobody owns, not for ones somebody parked.
const MAX_SNOOZE: Duration = Duration::from_secs(30 * 24 * 3600);

/// The end of a snooze or silence: `until`, else now + `duration`, else `default`.
fn until_of(req: &Request, now: time::OffsetDateTime, default: Duration) -> time::OffsetDateTime {
    req.until.unwrap_or_else(|| now + req.duration.unwrap_or(default))
}

/// Pauses a run's reminders (all its routes', or `route`'s), and says so.
async fn snooze(
    p: &Pipeline,
    caller: &Caller,
    req: &Request,
    configuration: &str,
) -> Result<(StatusCode, Value), ItsmError> {
    let now = p.now();
    let run = req.run.clone().unwrap_or_default();
    let until = until_of(req, now, DEFAULT_SNOOZE);
    if until <= now || until - now > MAX_SNOOZE {
        return Err(ItsmError::Unprocessable {
            field: if req.until.is_some() { "until" } else { "duration" }.to_owned(),
            message: "a snooze ends in the future, at most 30 days from now".to_owned(),
        });
    }
    let by = format!("{} (via {})", req.requested_by, caller.name);
    let snoozed = p
        .followups
        .snooze(&run, Which { route: req.route.as_deref(), group: req.group.as_deref() }, until, &by)
        .await
        .map_err(|e| ItsmError::RetryLater(e.to_string()))?;
    if snoozed.is_empty() {
        return Err(ItsmError::NotFound {
            field: "run",
            message: format!("run {} has no open reminders to snooze", last_segment(&run)),
        });
    }
    let routes: Vec<String> = snoozed.iter().map(|f| f.target()).collect();
    info!(caller = %caller.name, requested_by = %req.requested_by, until = %format_time(until), "Reminders snoozed.");
    let n = notice(
        caller,
        req,
        configuration,
        Severity::Info,
        format!("{configuration}: reminders of run {} snoozed", last_segment(&run)),
    )
    .fact("Until", format_time(until))
    .fact("Routes", routes.join(", "));
    let key = format!("snooze:{}:{}", run.to_ascii_lowercase(), until.unix_timestamp());
    retry_on(p.notifier.send_notice(&Notice { key, ..n }, &caller.notify).await)?;
    Ok((StatusCode::OK, json!({ "status": "snoozed", "run": run, "until": format_time(until), "routes": routes })))
}

/// Mutes what the request's matchers select, for a while, and says so.
async fn silence(
    p: &Pipeline,
    caller: &Caller,
    req: &Request,
    configuration: &str,
) -> Result<(StatusCode, Value), ItsmError> {
    let now = p.now();
    // The caller's rights were checked on this configuration: the silence is bound to it.
    let matchers = patchwatch_model::silence::Matchers {
        configuration: Some(configuration.to_owned()),
        ..req.silence.clone().unwrap_or_default()
    };
    let until = until_of(req, now, Duration::ZERO);
    let by = format!("{} (via {})", req.requested_by, caller.name);
    let comment = req.note.clone().unwrap_or_default();
    let s = patchwatch_model::silence::Silence::new(matchers, now..until, &by, &comment, now).map_err(|e| {
        let field = match &e {
            patchwatch_model::silence::SilenceError::Invalid { field, .. } => (*field).to_owned(),
            _ => if req.until.is_some() { "until" } else { "duration" }.to_owned(),
        };
        ItsmError::Unprocessable { field, message: e.to_string() }
    })?;
    p.notifier.silences.add(&s).await.map_err(|e| ItsmError::RetryLater(e.to_string()))?;
    info!(caller = %caller.name, silence = %s.id, matchers = %s.matchers.describe(), "Silence added.");
    let n = notice(
        caller,
        req,
        configuration,
        Severity::Info,
        format!("{configuration}: silenced until {}", format_time(s.ends)),
    )
    .fact("Silence", s.id.clone())
    .fact("Matches", s.matchers.describe());
    let key = format!("silence:{}", s.id);
    retry_on(p.notifier.send_notice(&Notice { key, ..n }, &caller.notify).await)?;
    Ok((
        StatusCode::OK,
        json!({ "status": "silenced", "id": s.id, "configuration": configuration, "until": format_time(s.ends), "matches": s.matchers.describe() }),
    ))
}

/// Records a change's approval or rejection for the configuration's gate, and announces it.
async fn decide(
    p: &Pipeline,
    caller: &Caller,
    req: &Request,
    configuration: &str,
) -> Result<(StatusCode, Value), ItsmError> {
    let now = p.now();
    let (start, end) =
        req.window.ok_or_else(|| ItsmError::BadRequest(EventError::malformed("window", "is required")))?;
    let change = req.change.clone().unwrap_or_default();
    let approved = req.action == Action::Approve;
    let decision = ChangeDecision {
        change: change.clone(),
        configuration: configuration.to_owned(),
        window_start: start,
        window_end: end,
        approved,
        by: req.requested_by.clone(),
        caller: caller.name.clone(),
        at: now,
        decided_at: req.decided_at,
    };
    let recorded = p.approvals.record(&decision).await.map_err(|e| ItsmError::RetryLater(e.to_string()))?;
    let verb = if approved { "approved" } else { "rejected" };
    info!(caller = %caller.name, requested_by = %req.requested_by, %change, configuration, verb, ?recorded, "Change decision recorded.");
    // The notice is keyed by the decision itself: a retry after a failed notice sends it,
    // a repeated decision does not send it twice, a superseded one not at all.
    if recorded != Recorded::Superseded {
        notify_decision(p, caller, req, &decision, verb).await?;
    }
    let status = match recorded {
        Recorded::Changed => "recorded",
        Recorded::Unchanged => "unchanged",
        Recorded::Superseded => "superseded",
    };
    Ok((
        StatusCode::OK,
        json!({ "status": status, "action": req.action.as_str(), "change": change, "configuration": configuration, "approved": approved }),
    ))
}

/// Sends the notice of a recorded decision, once per decision (its key names the change, the
/// verdict and the window).
async fn notify_decision(
    p: &Pipeline,
    caller: &Caller,
    req: &Request,
    decision: &ChangeDecision,
    verb: &str,
) -> Result<(), ItsmError> {
    let ChangeDecision { change, configuration, window_start: start, window_end: end, .. } = decision;
    let n = notice(caller, req, configuration, Severity::Info, format!("{configuration}: change {change} {verb}"))
        .fact("Window", format!("{} – {}", format_time(*start), format_time(*end)));
    let key = format!(
        "change:{}:{}:{verb}:{}:{}",
        configuration.to_ascii_lowercase(),
        change.to_ascii_lowercase(),
        start.unix_timestamp(),
        end.unix_timestamp()
    );
    retry_on(p.notifier.send_notice(&Notice { key, ..n }, &caller.notify).await)
}

/// Records that a run's outcome was seen, notes it on the run's ServiceNow incidents, and
/// announces it.
async fn acknowledge(
    p: &Pipeline,
    caller: &Caller,
    req: &Request,
    configuration: &str,
) -> Result<(StatusCode, Value), ItsmError> {
    let now = p.now();
    let run = req.run.clone().unwrap_or_default();
    let ack = Acknowledgement {
        run_id: run.clone(),
        by: req.requested_by.clone(),
        caller: caller.name.clone(),
        note: req.note.clone(),
        at: now,
    };
    let first = p.approvals.acknowledge(&ack).await.map_err(|e| ItsmError::RetryLater(e.to_string()))?;
    // The first acknowledgement is the one noted; a retry finishes what it left undone.
    let recorded = match p.approvals.acknowledgement(&run).await {
        Ok(Some(a)) => a,
        Ok(None) => ack.clone(),
        Err(e) => return Err(ItsmError::RetryLater(e.to_string())),
    };
    let text = format!(
        "Acknowledged by {} via {}{}",
        recorded.by,
        recorded.caller,
        recorded.note.as_deref().map(|n| format!(": {n}")).unwrap_or_default()
    );
    let mut incidents = Vec::new();
    for name in p.notifier.channels.servicenow_channels() {
        incidents.extend(note_once(p, &name, &run, configuration, &text).await?);
    }
    let n = notice(
        caller,
        req,
        configuration,
        Severity::Info,
        format!("{configuration}: run {} acknowledged", last_segment(&run)),
    )
    .fact("Incidents noted", incidents.join(", "));
    retry_on(
        p.notifier.send_notice(&Notice { key: format!("ack:{}", run.to_ascii_lowercase()), ..n }, &caller.notify).await,
    )?;
    Ok((
        StatusCode::OK,
        json!({ "status": if first { "acknowledged" } else { "already_acknowledged" }, "run": run, "incidents": incidents }),
    ))
}

/// Notice deliveries that must be retried make the request "retry later" (503).
fn retry_on(results: Vec<Delivered>) -> Result<(), ItsmError> {
    match results.into_iter().find_map(|d| d.retry) {
        Some(retry) => Err(ItsmError::RetryLater(retry.reason)),
        None => Ok(()),
    }
}

/// Notes an acknowledgement on one ServiceNow channel's incidents of the run, once.
async fn note_once(
    p: &Pipeline,
    channel: &str,
    run: &str,
    configuration: &str,
    text: &str,
) -> Result<Vec<String>, ItsmError> {
    let Some(client) = p.notifier.channels.servicenow(channel) else { return Ok(Vec::new()) };
    let target = format!("ack-note.{channel}");
    let id = DeliveryId { run_id: run, configuration, phase: "ack", target: &target };
    let once = p.ledger().once(&id, &p.notifier.clock, |_| async {
        match client.note_run(configuration_id_of_run(run), run, text).await {
            Ok(noted) => {
                let finish = Finish::Sent { subject: "acknowledgement".to_owned(), detail: noted.join(", ") };
                (finish, Ok(noted))
            }
            Err(e) => {
                warn!(channel, error = %e, "Could not note the acknowledgement on ServiceNow; the caller should retry.");
                (Finish::Retry { error: e.to_string() }, Err(ItsmError::RetryLater(format!("ServiceNow {channel}: {e}"))))
            }
        }
    });
    match once.await.map_err(|e| ItsmError::RetryLater(e.to_string()))? {
        Once::Acted(result) => result,
        Once::Settled(r) if r.state == DeliveryState::Sent => Ok(r
            .detail
            .filter(|d| !d.is_empty())
            .map(|d| d.split(", ").map(str::to_owned).collect())
            .unwrap_or_default()),
        Once::Settled(_) => Ok(Vec::new()),
        Once::Busy { .. } => Err(ItsmError::RetryLater(format!("{channel}: another instance is noting it"))),
    }
}

fn notice(caller: &Caller, req: &Request, configuration: &str, severity: Severity, title: String) -> Notice {
    Notice {
        kind: patchwatch_model::notice::NoticeKind::Itsm,
        key: String::new(),
        severity,
        title,
        configuration: Some(configuration.to_owned()),
        facts: Vec::new(),
        text: req.note.clone().unwrap_or_default(),
        link: None,
        recipients: Vec::new(),
        actions: Vec::new(),
    }
    .fact("Requested by", format!("{} (via {})", req.requested_by, caller.name))
    .fact("Action", req.action.as_str())
}

/// Re-runs the failed machines of a run (Failed, Window exceeded, No result).
async fn rerun(
    state: &AppState,
    caller: &Caller,
    req: &Request,
    configuration: &str,
) -> Result<(StatusCode, Value), ItsmError> {
    let p = &state.pipeline;
    let run = req.run.clone().unwrap_or_default();
    let query = RunQuery {
        correlation_id: run.clone(),
        subscription_ids: Vec::new(),
        include_results: true,
        since: None,
        watch: Vec::new(),
    };
    let data = p.source.load(&query).await.map_err(|e| ItsmError::RetryLater(e.to_string()))?;
    let configuration_id = configuration_id_of_run(&run).to_owned();
    let event = synthetic_event(&run, &configuration_id, p.now(), 0, None);
    let Decision::Ready(summary) = summarise(&event, &data, p.now(), Duration::ZERO) else {
        return Err(ItsmError::RetryLater("run data incomplete".to_owned()));
    };
    if summary.counts.total == 0 {
        return Err(ItsmError::NotFound { field: "run", message: format!("no machines are known for run {run}") });
    }
    let targets: Vec<Target> = summary
        .machines
        .iter()
        .filter(|m| matches!(m.outcome, Outcome::Failed | Outcome::WindowExceeded | Outcome::NoResult))
        .map(|m| Target { id: m.id.clone(), os: m.os.clone() })
        .collect();
    if targets.is_empty() {
        return Err(ItsmError::Unprocessable {
            field: "run".to_owned(),
            message: format!("run {} has no failed machines to re-run", last_segment(&run)),
        });
    }
    let names: Vec<String> = targets.iter().map(|t| last_segment(&t.id).to_owned()).collect();
    let configuration_ref = ConfigurationId::parse(&configuration_id)
        .map_err(|e| ItsmError::Unprocessable { field: "configuration".to_owned(), message: e.to_string() })?;
    let (params, settings) = match p_arm(p)?.get::<Value>(configuration_ref.resource(), MAINTENANCE_API).await {
        Ok(mc) => (patch::params_from_configuration(&mc), "the configuration's own".to_owned()),
        Err(e) => {
            warn!(error = %e, "The maintenance configuration could not be read; re-running Critical and Security updates.");
            (
                PatchParams::default(),
                format!("Critical and Security, 120 minutes (the configuration could not be read: {e})"),
            )
        }
    };
    let label = format!("Re-run of {} failed machine(s) of run {}", targets.len(), last_segment(&run));
    let job = PatchJob {
        configuration: configuration.to_owned(),
        configuration_id,
        run: run.clone(),
        targets,
        params,
        known: data.machines,
        label: label.clone(),
    };
    spawn_patch(state, caller, req, job);
    Ok((
        StatusCode::ACCEPTED,
        json!({ "status": "accepted", "action": "rerun", "run": run, "machines": names, "settings": settings, "message": label }),
    ))
}

/// Patches a configuration's machines now (those of its latest recorded run, or a named subset).
async fn emergency(
    state: &AppState,
    caller: &Caller,
    req: &Request,
    configuration: &str,
) -> Result<(StatusCode, Value), ItsmError> {
    let p = &state.pipeline;
    let run_id = latest_run_id(p, configuration).await?;
    let query = RunQuery {
        correlation_id: run_id.clone(),
        subscription_ids: Vec::new(),
        include_results: false,
        since: None,
        watch: Vec::new(),
    };
    let data = p.source.load(&query).await.map_err(|e| ItsmError::RetryLater(e.to_string()))?;
    let targets = emergency_targets(req, &data, configuration)?;
    let params = emergency_params(req);
    let configuration_id = configuration_id_of_run(&run_id).to_owned();
    let names: Vec<String> = targets.iter().map(|t| last_segment(&t.id).to_owned()).collect();
    let label = format!("Emergency patch of {} machine(s) of {configuration}", targets.len());
    let job = PatchJob {
        configuration: configuration.to_owned(),
        configuration_id,
        run: run_id,
        targets,
        params,
        known: data.machines,
        label: label.clone(),
    };
    spawn_patch(state, caller, req, job);
    Ok((
        StatusCode::ACCEPTED,
        json!({ "status": "accepted", "action": "emergency", "configuration": configuration, "machines": names, "message": label }),
    ))
}

/// The configuration's latest recorded run: the only record of which machines it patches.
async fn latest_run_id(p: &Pipeline, configuration: &str) -> Result<String, ItsmError> {
    let runs = p.history.runs(configuration).await.map_err(|e| ItsmError::RetryLater(e.to_string()))?;
    // History keys fold names ("Ring1.Prod" and "Ring1-Prod" share one): keep only this one's runs.
    match runs.iter().rev().find(|r| r.configuration.eq_ignore_ascii_case(configuration)) {
        Some(latest) => Ok(latest.run_id.clone()),
        None => Err(ItsmError::NotFound {
            field: "configuration",
            message: format!("no run of {configuration} is recorded, so its machines are unknown"),
        }),
    }
}

/// The run's machines, or the subset the request names; an empty result is refused.
fn emergency_targets(req: &Request, data: &RunData, configuration: &str) -> Result<Vec<Target>, ItsmError> {
    let mut targets: Vec<Target> = data
        .expected
        .iter()
        .map(|m| Target {
            id: m.id.clone(),
            os: data.machines.get(&m.id.to_ascii_lowercase()).and_then(|i| i.os_type.clone()),
        })
        .collect();
    if !req.machines.is_empty() {
        targets = chosen_targets(&targets, &req.machines, configuration)?;
    }
    if targets.is_empty() {
        return Err(ItsmError::Unprocessable {
            field: "configuration".to_owned(),
            message: format!("{configuration} has no machines"),
        });
    }
    Ok(targets)
}

/// The targets `wanted` names (by id or name), in its order. A machine outside the
/// configuration is refused: a caller's rights are per configuration.
fn chosen_targets(targets: &[Target], wanted: &[String], configuration: &str) -> Result<Vec<Target>, ItsmError> {
    let mut chosen = Vec::new();
    for (i, wanted) in wanted.iter().enumerate() {
        match targets
            .iter()
            .find(|t| t.id.eq_ignore_ascii_case(wanted) || last_segment(&t.id).eq_ignore_ascii_case(wanted))
        {
            Some(t) => chosen.push(t.clone()),
            None => {
                return Err(ItsmError::Unprocessable {
                    field: format!("machines[{i}]"),
                    message: format!("{wanted:?} is not a machine of {configuration}"),
                });
            }
        }
    }
    Ok(chosen)
}

/// What to install: the request's classifications and KBs (`KB` prefix dropped), with its reboot
/// setting and maximum duration over the defaults.
fn emergency_params(req: &Request) -> PatchParams {
    let mut params = PatchParams {
        windows_classifications: req.classifications.clone(),
        linux_classifications: req.classifications.clone(),
        kb_include: req
            .kb_numbers
            .iter()
            .map(|k| k.trim_start_matches("KB").trim_start_matches("kb").to_owned())
            .collect(),
        ..PatchParams::default()
    };
    if let Some(r) = &req.reboot_setting {
        params.reboot = patch::reboot_setting(r);
    }
    if let Some(m) = req.maximum_duration.as_deref().and_then(patch::duration_minutes) {
        params.max_minutes = m;
    }
    params
}

fn p_arm(p: &Pipeline) -> Result<&patchwatch_azure::arm::ArmClient, ItsmError> {
    p.arm.as_ref().ok_or_else(|| ItsmError::Forbidden("no Azure credential is configured to patch machines".to_owned()))
}

/// An event standing for an on-demand run, so its summary is built and routed like any run's.
fn synthetic_event(
    run: &str,
    configuration_id: &str,
    start: time::OffsetDateTime,
    minutes: u32,
    request: Option<&str>,
) -> MaintenanceEvent {
    let correlation_id = match request {
        Some(r) => format!("{run}-patchwatch-{r}"),
        None => run.to_owned(),
    };
    MaintenanceEvent {
        id: correlation_id.clone(),
        phase: Phase::Post,
        schema: Schema::EventGrid,
        event_time: Some(start),
        correlation_id,
        maintenance_configuration_id: configuration_id.to_owned(),
        start,
        end: start + time::Duration::minutes(i64::from(minutes)),
        cancellation_cutoff: None,
        subscription_ids: Vec::new(),
        status: None,
    }
}

/// One on-demand patching: what to patch, how, and where it is reported.
struct PatchJob {
    configuration: String,
    configuration_id: String,
    /// The run it belongs to (a re-run's run, or the configuration's latest for an emergency).
    run: String,
    targets: Vec<Target>,
    params: PatchParams,
    /// Tags and OS of the machines, carried into the summary for routing.
    known: HashMap<String, patchwatch_model::rundata::MachineInfo>,
    label: String,
}

/// Runs the patching in the background (it can take hours) and reports it like a run.
fn spawn_patch(state: &AppState, caller: &Caller, req: &Request, job: PatchJob) {
    let p = state.pipeline.clone();
    let concurrency = state.concurrency;
    let caller = caller.clone();
    let req = req.clone();
    let PatchJob { configuration, configuration_id, run, targets, params, known, label } = job;
    let span = tracing::Span::current();
    tokio::spawn(
        async move {
            let Some(arm) = p.arm.clone() else { return };
            let started = p.now();
            let request = format!(
                "{}{:010x}",
                req.action.as_str(),
                patchwatch_model::text::fnv64(&format!(
                    "{}{}{}",
                    caller.name,
                    req.requested_by,
                    started.unix_timestamp_nanos()
                )) as u32 as u64
            );
            info!(machines = targets.len(), %label, "Patching on demand started.");
            let results = patch::install(&arm, &targets, &params, concurrency).await;
            let now = p.now();
            let data = patch::run_data(&results, &known, now);
            let mut event = synthetic_event(&run, &configuration_id, started, params.max_minutes, Some(&request));
            event.status = Some(format!("{label}, requested by {} via {}", req.requested_by, caller.name));
            let outcome = p.process_loaded(&event, &request, &data, true).await;
            let verdict = match &outcome {
                EventOutcome::Sent(processed) => processed.summary.subject(),
                other => format!("{other:?}"),
            };
            if !matches!(outcome, EventOutcome::Sent(_)) {
                error!(outcome = %verdict, "The on-demand run's summary was not delivered.");
            }
            let failed = results.iter().filter(|(_, r)| r.is_err()).count();
            let n = notice(
                &caller,
                &req,
                &configuration,
                if failed > 0 { Severity::Warning } else { Severity::Info },
                format!("{label}: finished"),
            )
            .fact("Result", verdict)
            .fact("Started", format_time(started))
            .fact("Finished", format_time(now));
            let n = Notice { key: format!("patch:{}", event.correlation_id.to_ascii_lowercase()), ..n };
            let sent = p.notifier.send_notice(&n, &caller.notify).await;
            // Retried like every delivery: kept for the reminders timer (`undelivered::retry_pending`).
            if sent.iter().any(|d| d.retry.is_some())
                && let Err(e) = patchwatch_engine::undelivered::keep_pending(&p, &n, &caller.notify).await
            {
                error!(error = %e, "The on-demand run's final notice could not be kept for a retry.");
            }
        }
        .instrument(span),
    );
}
