//! The request body: the generic JSON form (schema below) and a ServiceNow-shaped adapter.
//!
//! Generic form (`POST /api/itsm`):
//!
//! ```json
//! { "action": "approve" | "reject" | "acknowledge" | "rerun" | "emergency" | "snooze" | "silence",
//!   "requestedBy": "alice@contoso.com",
//!   "requestId": "REQ-1",                      // required with bearer auth; signed requests use webhook-id
//!   "configuration": "Ring1-PreProd",          // approve, reject, emergency (name or resource id)
//!   "change": "CHG0012345",                    // approve, reject
//!   "window": { "start": "2026-11-17T22:00:00Z", "end": "2026-11-18T02:00:00Z" },   // approve, reject
//!   "run": "<run id: the event's correlationId>",   // acknowledge, rerun
//!   "note": "free text",                       // optional
//!   "machines": ["vm-web-01"],                 // emergency: names or ids, a subset of the configuration's machines
//!   "classifications": ["Critical", "Security"], "kbNumbers": ["5031364"],   // emergency
//!   "rebootSetting": "IfRequired", "maximumDuration": "PT2H",               // emergency, optional
//!   "until": "2026-12-03T08:00:00Z", "duration": "24h",   // snooze (default 24h), silence (one of them)
//!   "route": "owners", "group": "team-web",                // snooze: only this route's (and group's) reminders
//!   "silence": { "machine": "vm-sql-*", "tags": { "PatchOwner": "team-data" },
//!                "outcome": ["Failed"], "channel": "ops-*" } }   // silence, optional narrowing
//! ```
//!
//! A silence always names its `configuration` (the caller's rights are per configuration);
//! `note` is its comment.
//!
//! ServiceNow form (`POST /api/itsm?format=servicenow`, from a business rule on change_request):
//! `{"number", "approval": "approved"|"rejected"|…, "start_date", "end_date"
//! ("yyyy-MM-dd HH:mm:ss" UTC), "u_maintenance_configuration", "sys_updated_by"}`.

use patchwatch_engine::channels::servicenow::parse_date;
use patchwatch_model::event::EventError;
use patchwatch_model::json::get_ci;
use patchwatch_model::resource_id::{ConfigurationId, MachineId, RunId, check_resource_name};
use patchwatch_model::settings::Action;
use patchwatch_model::silence::Matchers;
use serde_json::{Map, Value};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// A validated request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub action: Action,
    pub requested_by: String,
    pub request_id: Option<String>,
    pub configuration: Option<String>,
    pub change: Option<String>,
    pub window: Option<(OffsetDateTime, OffsetDateTime)>,
    pub run: Option<String>,
    pub note: Option<String>,
    pub machines: Vec<String>,
    pub classifications: Vec<String>,
    pub kb_numbers: Vec<String>,
    pub reboot_setting: Option<String>,
    pub maximum_duration: Option<String>,
    /// When the ITSM system decided (approve/reject), so late arrivals do not win.
    pub decided_at: Option<OffsetDateTime>,
    /// Snooze and silence: until when (an absolute time) …
    pub until: Option<OffsetDateTime>,
    /// … or for how long.
    pub duration: Option<std::time::Duration>,
    /// Snooze: only this route's reminders …
    pub route: Option<String>,
    /// … and of them only this owner group's (a split route).
    pub group: Option<String>,
    /// Silence: what besides the configuration it matches.
    pub silence: Option<Matchers>,
}

impl Request {
    /// A request for `action` by `requested_by`, with nothing else given yet.
    pub fn new(action: Action, requested_by: impl Into<String>) -> Self {
        Self {
            action,
            requested_by: requested_by.into(),
            request_id: None,
            configuration: None,
            change: None,
            window: None,
            run: None,
            note: None,
            machines: Vec::new(),
            classifications: Vec::new(),
            kb_numbers: Vec::new(),
            reboot_setting: None,
            maximum_duration: None,
            decided_at: None,
            until: None,
            duration: None,
            route: None,
            group: None,
            silence: None,
        }
    }
}

/// What the body asked for: an action, or nothing to do (a ServiceNow update that is no decision).
#[derive(Debug)]
pub enum Parsed {
    Act(Box<Request>),
    Ignored(String),
}

fn text(obj: &Map<String, Value>, key: &str, max: usize) -> Result<Option<String>, EventError> {
    match get_ci(obj, key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) if s.chars().count() > max => {
            Err(EventError::malformed(key, format!("longer than {max} characters")))
        }
        Some(Value::String(s)) if s.chars().any(|c| c.is_control()) => {
            Err(EventError::malformed(key, "must not contain control characters"))
        }
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
        Some(_) => Err(EventError::malformed(key, "must be a string")),
    }
}

fn required(obj: &Map<String, Value>, key: &str, why: &str) -> Result<String, EventError> {
    text(obj, key, 512)?.ok_or_else(|| EventError::malformed(key, format!("is required {why}")))
}

fn list(obj: &Map<String, Value>, key: &str) -> Result<Vec<String>, EventError> {
    match get_ci(obj, key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) if items.len() > 5000 => Err(EventError::malformed(key, "more than 5000 entries")),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v.as_str() {
                Some(s) if !s.trim().is_empty() && s.len() <= 512 && !s.chars().any(char::is_control) => {
                    Ok(s.trim().to_owned())
                }
                _ => Err(EventError::malformed(format!("{key}[{i}]"), "must be a non-empty string")),
            })
            .collect(),
        Some(_) => Err(EventError::malformed(key, "must be an array of strings")),
    }
}

fn time(obj: &Map<String, Value>, key: &str, field: &str) -> Result<OffsetDateTime, EventError> {
    let s = get_ci(obj, key)
        .and_then(Value::as_str)
        .ok_or_else(|| EventError::malformed(field, "is required (RFC 3339 time)"))?;
    OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| EventError::malformed(field, format!("{s:?} is not an RFC 3339 time: {e}")))
}

/// Parses the generic form.
pub fn parse_generic(body: &[u8]) -> Result<Parsed, EventError> {
    let value =
        patchwatch_model::json::from_slice(body, "body").map_err(|e| EventError::malformed(e.field, e.problem))?;
    let obj = value.as_object().ok_or_else(|| EventError::malformed("body", "must be a JSON object"))?;
    let action = generic_action(obj)?;
    let mut r = generic_fields(obj, action)?;
    check_ids(&r)?;
    let why = format!("for {}", action.as_str());
    match action {
        Action::Approve | Action::Reject => r.window = Some(decision_window(obj, &why)?),
        Action::Acknowledge | Action::Rerun => check_run(obj, &why)?,
        Action::Emergency => check_emergency(obj, &r, &why)?,
        Action::Snooze => check_run(obj, &why)?,
        Action::Silence => {
            required(obj, "configuration", &why)?;
            r.silence = Some(silence_matchers(obj, &r)?);
            if r.until.is_none() && r.duration.is_none() {
                return Err(EventError::malformed("duration", format!("give duration or until {why}")));
            }
        }
    }
    Ok(Parsed::Act(Box::new(r)))
}

/// `action`: required, and one of the five actions.
fn generic_action(obj: &Map<String, Value>) -> Result<Action, EventError> {
    let action_text = required(obj, "action", "")?;
    Action::parse(&action_text).ok_or_else(|| {
        EventError::malformed(
            "action",
            format!(
                "unknown action {action_text:?}: expected approve, reject, acknowledge, rerun, emergency, snooze or silence"
            ),
        )
    })
}

/// Every field, each checked for type and length; which ones `action` needs is checked after.
fn generic_fields(obj: &Map<String, Value>, action: Action) -> Result<Request, EventError> {
    Ok(Request {
        action,
        requested_by: required(obj, "requestedBy", "(who asked)")?,
        request_id: text(obj, "requestId", 200)?,
        configuration: text(obj, "configuration", 512)?,
        change: text(obj, "change", 100)?,
        window: None,
        run: text(obj, "run", 1024)?,
        note: text(obj, "note", 2000)?,
        machines: list(obj, "machines")?,
        classifications: list(obj, "classifications")?,
        kb_numbers: list(obj, "kbNumbers")?,
        reboot_setting: text(obj, "rebootSetting", 40)?,
        maximum_duration: text(obj, "maximumDuration", 40)?,
        decided_at: match get_ci(obj, "decidedAt") {
            None | Some(Value::Null) => None,
            Some(_) => Some(time(obj, "decidedAt", "decidedAt")?),
        },
        until: match get_ci(obj, "until") {
            None | Some(Value::Null) => None,
            Some(_) => Some(time(obj, "until", "until")?),
        },
        duration: text(obj, "duration", 20)?
            .map(|d| patchwatch_model::conditions::parse_duration(&d).map_err(|e| EventError::malformed("duration", e)))
            .transpose()?,
        route: text(obj, "route", 200)?,
        group: text(obj, "group", 200)?,
        silence: None,
    })
}

/// Silence: the configuration (always: rights are per configuration) and the optional `silence`
/// object's machine glob, tags, outcomes and channel glob.
fn silence_matchers(obj: &Map<String, Value>, r: &Request) -> Result<Matchers, EventError> {
    let mut m = Matchers { configuration: r.configuration.clone(), ..Matchers::default() };
    let Some(extra) = get_ci(obj, "silence") else { return Ok(m) };
    let extra = extra.as_object().ok_or_else(|| EventError::malformed("silence", "must be an object"))?;
    for key in extra.keys() {
        if !["machine", "tags", "outcome", "channel"].iter().any(|k| k.eq_ignore_ascii_case(key)) {
            return Err(EventError::malformed(
                format!("silence.{key}"),
                "unknown field: expected machine, tags, outcome or channel",
            ));
        }
    }
    let field = |k: &str| format!("silence.{k}");
    m.machine = text(extra, "machine", 512).map_err(|e| EventError::malformed(field("machine"), e.problem))?;
    m.channel = text(extra, "channel", 200).map_err(|e| EventError::malformed(field("channel"), e.problem))?;
    if let Some(tags) = get_ci(extra, "tags") {
        let tags = tags.as_object().ok_or_else(|| EventError::malformed(field("tags"), "must be an object"))?;
        for (k, v) in tags {
            let v = v
                .as_str()
                .filter(|v| !v.is_empty() && v.len() <= 256 && !v.chars().any(char::is_control))
                .ok_or_else(|| EventError::malformed(format!("silence.tags.{k}"), "must be a non-empty string"))?;
            m.tags.insert(k.clone(), v.to_owned());
        }
    }
    for (i, o) in
        list(extra, "outcome").map_err(|e| EventError::malformed(field("outcome"), e.problem))?.iter().enumerate()
    {
        let verdict = serde_json::from_value(Value::String(o.clone())).map_err(|_| {
            EventError::malformed(
                format!("silence.outcome[{i}]"),
                format!("{o:?} is not a verdict: Failed, Incomplete, WindowExceeded, RebootPending, CompletedWithWarnings or Succeeded"),
            )
        })?;
        m.outcome.push(verdict);
    }
    Ok(m)
}

/// Approve and reject: the configuration, the change and its window, which must end after it starts.
fn decision_window(obj: &Map<String, Value>, why: &str) -> Result<(OffsetDateTime, OffsetDateTime), EventError> {
    required(obj, "configuration", why)?;
    required(obj, "change", why)?;
    let w = get_ci(obj, "window")
        .and_then(Value::as_object)
        .ok_or_else(|| EventError::malformed("window", format!("is required {why}: {{\"start\", \"end\"}}")))?;
    let (start, end) = (time(w, "start", "window.start")?, time(w, "end", "window.end")?);
    if end <= start {
        return Err(EventError::malformed("window.end", "must be after window.start"));
    }
    Ok((start, end))
}

/// Acknowledge and re-run: the run, as the event's correlation id.
fn check_run(obj: &Map<String, Value>, why: &str) -> Result<(), EventError> {
    let run = required(obj, "run", why)?;
    RunId::parse(&run)
        .map_err(|e| EventError::malformed("run", format!("must be a run id (the event's correlationId): {e}")))?;
    Ok(())
}

/// The Compute values for Windows, and Linux's Other (azure-contracts §7.1).
const CLASSIFICATIONS: [&str; 10] = [
    "Critical",
    "Security",
    "UpdateRollUp",
    "FeaturePack",
    "ServicePack",
    "Definition",
    "Tools",
    "Updates",
    "Other",
    "Others",
];

/// Emergency: the configuration, and what to install in terms Update Manager accepts, so a bad
/// value is refused with its field before patching starts in the background.
fn check_emergency(obj: &Map<String, Value>, r: &Request, why: &str) -> Result<(), EventError> {
    required(obj, "configuration", why)?;
    for (i, c) in r.classifications.iter().enumerate() {
        if !CLASSIFICATIONS.iter().any(|k| k.eq_ignore_ascii_case(c)) {
            return Err(EventError::malformed(
                format!("classifications[{i}]"),
                format!("unknown classification {c:?}: expected one of {}", CLASSIFICATIONS[..9].join(", ")),
            ));
        }
    }
    if r.classifications.is_empty() && r.kb_numbers.is_empty() {
        return Err(EventError::malformed(
            "classifications",
            "give classifications or kbNumbers for an emergency patch",
        ));
    }
    if let Some(reboot) = &r.reboot_setting
        && !["IfRequired", "Never", "Always"].iter().any(|v| v.eq_ignore_ascii_case(reboot))
    {
        return Err(EventError::malformed("rebootSetting", "must be IfRequired, Never or Always"));
    }
    if let Some(d) = &r.maximum_duration
        && crate::patch::duration_minutes(d).is_none()
    {
        return Err(EventError::malformed("maximumDuration", "must be an ISO 8601 duration such as PT2H"));
    }
    Ok(())
}

/// Configurations and machines are given as names or resource ids; either way they are checked
/// against Azure's rules here, so nothing malformed reaches a lookup or an ARM call.
fn check_ids(r: &Request) -> Result<(), EventError> {
    if let Some(c) = &r.configuration {
        let checked = if c.starts_with('/') { ConfigurationId::parse(c).map(drop) } else { check_resource_name(c) };
        checked.map_err(|e| EventError::malformed("configuration", e.to_string()))?;
    }
    for (i, m) in r.machines.iter().enumerate() {
        let checked = if m.starts_with('/') { MachineId::parse(m).map(drop) } else { check_resource_name(m) };
        checked.map_err(|e| EventError::malformed(format!("machines[{i}]"), e.to_string()))?;
    }
    Ok(())
}

/// The field of a ServiceNow change that names the maintenance configuration.
pub const SERVICENOW_CONFIGURATION_FIELD: &str = "u_maintenance_configuration";

/// Parses a ServiceNow change_request notification into approve or reject.
pub fn parse_servicenow(body: &[u8]) -> Result<Parsed, EventError> {
    let value =
        patchwatch_model::json::from_slice(body, "body").map_err(|e| EventError::malformed(e.field, e.problem))?;
    let obj = value.as_object().ok_or_else(|| EventError::malformed("body", "must be a JSON object"))?;
    let number = required(obj, "number", "(the change number)")?;
    let approval = required(obj, "approval", "")?;
    let action = match approval.to_ascii_lowercase().as_str() {
        "approved" => Action::Approve,
        "rejected" => Action::Reject,
        other => return Ok(Parsed::Ignored(format!("change {number} has approval {other:?}: nothing to do"))),
    };
    let date = |key: &str| -> Result<OffsetDateTime, EventError> {
        let s = required(obj, key, "(yyyy-MM-dd HH:mm:ss, UTC)")?;
        parse_date(&s).ok_or_else(|| EventError::malformed(key, format!("{s:?} is not yyyy-MM-dd HH:mm:ss")))
    };
    let (start, end) = (date("start_date")?, date("end_date")?);
    if end <= start {
        return Err(EventError::malformed("end_date", "must be after start_date"));
    }
    let r = Request {
        configuration: Some(required(obj, SERVICENOW_CONFIGURATION_FIELD, "(the maintenance configuration)")?),
        change: Some(number),
        window: Some((start, end)),
        decided_at: text(obj, "sys_updated_on", 40)?.as_deref().and_then(parse_date),
        ..Request::new(action, text(obj, "sys_updated_by", 200)?.unwrap_or_else(|| "ServiceNow".to_owned()))
    };
    check_ids(&r).map_err(|e| EventError::malformed(SERVICENOW_CONFIGURATION_FIELD, e.problem))?;
    Ok(Parsed::Act(Box::new(r)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> EventError {
        parse_generic(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn bad_requests_name_the_field() {
        assert_eq!(err("[]").field, "body");
        assert_eq!(err("{").field, "body");
        assert_eq!(err(r#"{"requestedBy":"a"}"#).field, "action");
        assert!(err(r#"{"action":"launch","requestedBy":"a"}"#).problem.contains("unknown action"));
        assert_eq!(err(r#"{"action":"approve"}"#).field, "requestedBy");
        assert_eq!(err(r#"{"action":"approve","requestedBy":"a","change":"C"}"#).field, "configuration");
        assert_eq!(err(r#"{"action":"approve","requestedBy":"a","change":"C","configuration":"R"}"#).field, "window");
        assert_eq!(
            err(r#"{"action":"approve","requestedBy":"a","change":"C","configuration":"R","window":{"start":"2026-11-17T22:00:00Z","end":"soon"}}"#).field,
            "window.end"
        );
        assert_eq!(err(r#"{"action":"rerun","requestedBy":"a","run":"x"}"#).field, "run");
        assert_eq!(err(r#"{"action":"rerun","requestedBy":7}"#).field, "requestedBy");
        assert_eq!(err(r#"{"action":"emergency","requestedBy":"a","configuration":"R"}"#).field, "classifications");
        assert_eq!(
            err(r#"{"action":"emergency","requestedBy":"a","configuration":"R","kbNumbers":["1",""]}"#).field,
            "kbNumbers[1]"
        );
        assert_eq!(err(r#"{"action":"ack","requestedBy":"a\nb","run":"x"}"#).field, "requestedBy");
        assert_eq!(
            err(r#"{"action":"emergency","requestedBy":"a","configuration":"R","classifications":["Security","Hotfixes"]}"#).field,
            "classifications[1]"
        );
        assert_eq!(err(r#"{"action":"snooze","requestedBy":"a"}"#).field, "run");
        assert_eq!(err(r#"{"action":"silence","requestedBy":"a","duration":"4h"}"#).field, "configuration");
        assert_eq!(err(r#"{"action":"silence","requestedBy":"a","configuration":"R"}"#).field, "duration");
        assert_eq!(
            err(r#"{"action":"silence","requestedBy":"a","configuration":"R","duration":"4 years"}"#).field,
            "duration"
        );
        assert_eq!(
            err(r#"{"action":"silence","requestedBy":"a","configuration":"R","duration":"4h","silence":{"outcome":["Bad"]}}"#).field,
            "silence.outcome[0]"
        );
        assert_eq!(
            err(
                r#"{"action":"silence","requestedBy":"a","configuration":"R","duration":"4h","silence":{"owner":"x"}}"#
            )
            .field,
            "silence.owner"
        );
        let Parsed::Act(r) = parse_generic(
            br#"{"action":"silence","requestedBy":"a","configuration":"Ring2-Prod","duration":"4h","silence":{"tags":{"PatchOwner":"team-data"},"outcome":["Failed"]}}"#,
        )
        .unwrap() else {
            panic!()
        };
        let m = r.silence.unwrap();
        assert_eq!((m.configuration.as_deref(), m.tags.len(), m.outcome.len()), (Some("Ring2-Prod"), 1, 1));
    }

    #[test]
    fn servicenow_changes_become_decisions() {
        let body = r#"{"number":"CHG0012345","approval":"approved","start_date":"2026-11-17 22:00:00","end_date":"2026-11-18 02:00:00","u_maintenance_configuration":"Ring1-PreProd","sys_updated_by":"alice"}"#;
        let Parsed::Act(r) = parse_servicenow(body.as_bytes()).unwrap() else { panic!() };
        assert_eq!(
            (r.action, r.change.as_deref(), r.requested_by.as_str()),
            (Action::Approve, Some("CHG0012345"), "alice")
        );
        assert!(matches!(
            parse_servicenow(body.replace("approved", "requested").as_bytes()).unwrap(),
            Parsed::Ignored(_)
        ));
        assert_eq!(
            parse_servicenow(body.replace("2026-11-18 02:00:00", "tomorrow").as_bytes()).unwrap_err().field,
            "end_date"
        );
    }
}
