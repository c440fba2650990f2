//! Event intake: Event Grid schema and CloudEvents 1.0, single events and batches.
//!
//! Parsing walks `serde_json::Value`s by hand so that every error names the exact field
//! (`[2].data.correlationId`). `data` keys are matched case-insensitively because Microsoft's
//! documents disagree on their casing (azure-contracts §1.4).

use serde_json::{Map, Value, value::RawValue};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{
    json::get_ci,
    resource_id::{ConfigurationId, RunId, is_guid, last_segment},
};

/// Largest accepted event (Event Grid's own limit is 1 MB).
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;
/// Largest accepted request body: a full Event Grid batch (1,024 KB preferred size plus slack).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

pub const PRE_EVENT: &str = "Microsoft.Maintenance.PreMaintenanceEvent";
pub const POST_EVENT: &str = "Microsoft.Maintenance.PostMaintenanceEvent";
pub const VALIDATION_EVENT: &str = "Microsoft.EventGrid.SubscriptionValidationEvent";

/// Which side of a run an event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Phase {
    Pre,
    Post,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pre => "pre",
            Phase::Post => "post",
        }
    }
}

/// The wire schema an event came in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schema {
    EventGrid,
    CloudEvents,
}

/// A pre- or post-maintenance event, validated.
#[derive(Clone, Debug)]
pub struct MaintenanceEvent {
    pub id: String,
    pub phase: Phase,
    pub schema: Schema,
    /// When Event Grid says the event happened; `None` if the sender left it out.
    pub event_time: Option<OffsetDateTime>,
    /// Run id: `…/maintenanceConfigurations/{mc}/providers/microsoft.maintenance/applyupdates/{ts}`.
    pub correlation_id: String,
    pub maintenance_configuration_id: String,
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
    pub cancellation_cutoff: Option<OffsetDateTime>,
    pub subscription_ids: Vec<String>,
    /// Post events only; an open set (`Succeeded`, `Cancelled`, …).
    pub status: Option<String>,
}

impl MaintenanceEvent {
    /// The maintenance configuration's name (last segment of its id).
    pub fn configuration_name(&self) -> &str {
        last_segment(&self.maintenance_configuration_id)
    }
}

/// One element of a delivery, classified.
#[derive(Clone, Debug)]
pub enum Incoming {
    Maintenance(Box<MaintenanceEvent>),
    /// Event Grid subscription validation handshake.
    Validation {
        code: String,
    },
    /// A well-formed event of another type: acknowledged and logged, not processed.
    Ignored {
        id: String,
        event_type: String,
    },
}

/// What was wrong with a delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventErrorKind {
    Malformed,
    TooLarge,
    /// The body did not arrive in time (a slow or stalled client).
    TimedOut,
}

/// A rejected delivery, naming the offending field.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct EventError {
    pub kind: EventErrorKind,
    /// JSON path of the offending value, e.g. `[0].data.correlationId`, or `body`.
    pub field: String,
    pub problem: String,
}

impl EventError {
    pub fn malformed(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { kind: EventErrorKind::Malformed, field: field.into(), problem: problem.into() }
    }
    fn too_large(field: impl Into<String>, size: usize) -> Self {
        Self {
            kind: EventErrorKind::TooLarge,
            field: field.into(),
            problem: format!("event is {size} bytes, more than the {MAX_EVENT_BYTES}-byte limit"),
        }
    }
}

/// Parses a delivery body: a JSON array of events, or one event object.
///
/// Every element is validated before anything is returned, so a bad element rejects the whole
/// delivery and nothing of it is processed.
pub fn parse_delivery(body: &[u8]) -> Result<Vec<Incoming>, EventError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(EventError {
            kind: EventErrorKind::TooLarge,
            field: "body".into(),
            problem: format!("body is {} bytes, more than the {MAX_BODY_BYTES}-byte limit", body.len()),
        });
    }
    let text = std::str::from_utf8(body).map_err(|e| EventError::malformed("body", format!("not UTF-8: {e}")))?;
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(EventError::malformed("body", "empty; expected a JSON array of events"));
    }
    if trimmed.starts_with('[') {
        let raw: Vec<&RawValue> =
            serde_json::from_str(text).map_err(|e| EventError::malformed("body", format!("invalid JSON: {e}")))?;
        if raw.is_empty() {
            return Err(EventError::malformed("body", "empty array; expected at least one event"));
        }
        raw.iter().enumerate().map(|(i, r)| parse_raw(r, &format!("[{i}]"))).collect()
    } else {
        let raw: &RawValue =
            serde_json::from_str(text).map_err(|e| EventError::malformed("body", format!("invalid JSON: {e}")))?;
        Ok(vec![parse_raw(raw, "")?])
    }
}

fn parse_raw(raw: &RawValue, path: &str) -> Result<Incoming, EventError> {
    let field = if path.is_empty() { "event".to_owned() } else { path.to_owned() };
    if raw.get().len() > MAX_EVENT_BYTES {
        return Err(EventError::too_large(field, raw.get().len()));
    }
    let value = crate::json::from_str(raw.get(), if path.is_empty() { "body" } else { path })
        .map_err(|e| EventError::malformed(e.field, e.problem))?;
    parse_event(&value, path)
}

/// Validates one event value. `path` prefixes field names in errors (`[3]`, or empty).
pub fn parse_event(value: &Value, path: &str) -> Result<Incoming, EventError> {
    let f = |name: &str| if path.is_empty() { name.to_owned() } else { format!("{path}.{name}") };
    let obj = value.as_object().ok_or_else(|| {
        EventError::malformed(
            if path.is_empty() { "event" } else { path },
            format!("expected an event object, got {}", kind(value)),
        )
    })?;
    let cloud = obj.contains_key("specversion");
    let schema = if cloud { Schema::CloudEvents } else { Schema::EventGrid };
    let (type_key, time_key) = if cloud { ("type", "time") } else { ("eventType", "eventTime") };
    // Tolerate the other schema's top-level names too (community code checks both).
    let event_type = opt_str(obj, type_key, &f)?
        .or(opt_str(obj, if cloud { "eventType" } else { "type" }, &f)?)
        .ok_or_else(|| EventError::malformed(f(type_key), "missing"))?;
    let id = opt_str(obj, "id", &f)?.ok_or_else(|| EventError::malformed(f("id"), "missing"))?;

    let phase = match event_type {
        t if t.eq_ignore_ascii_case(PRE_EVENT) => Phase::Pre,
        t if t.eq_ignore_ascii_case(POST_EVENT) => Phase::Post,
        t if t.eq_ignore_ascii_case(VALIDATION_EVENT) => {
            let data = data_object(obj, &f)?;
            let code = opt_str(data, "validationCode", &|n| f(&format!("data.{n}")))?
                .ok_or_else(|| EventError::malformed(f("data.validationCode"), "missing"))?;
            return Ok(Incoming::Validation { code: code.to_owned() });
        }
        other => return Ok(Incoming::Ignored { id: id.to_owned(), event_type: other.to_owned() }),
    };

    let event_time = match opt_str(obj, time_key, &f)?.or(opt_str(obj, if cloud { "eventTime" } else { "time" }, &f)?) {
        Some(s) => Some(parse_time(s, &f(time_key))?),
        None => None,
    };
    let data = data_object(obj, &f)?;
    let df = |n: &str| f(&format!("data.{n}"));
    let req_str = |n: &str| -> Result<&str, EventError> {
        let s = opt_str(data, n, &df)?.ok_or_else(|| EventError::malformed(df(n), "missing"))?;
        if s.trim().is_empty() {
            return Err(EventError::malformed(df(n), "empty"));
        }
        Ok(s)
    };
    let correlation_id = req_str("correlationId")?.trim().to_owned();
    let run = RunId::parse(&correlation_id).map_err(|e| EventError::malformed(df("correlationId"), e.to_string()))?;
    let maintenance_configuration_id = req_str("maintenanceConfigurationId")?.trim().to_owned();
    let configuration = ConfigurationId::parse(&maintenance_configuration_id)
        .map_err(|e| EventError::malformed(df("maintenanceConfigurationId"), e.to_string()))?;
    if !run.configuration().resource().to_string().eq_ignore_ascii_case(&configuration.resource().to_string()) {
        return Err(EventError::malformed(df("correlationId"), "is not a run of data.maintenanceConfigurationId"));
    }
    let start = parse_time(req_str("startDateTime")?, &df("startDateTime"))?;
    let end = parse_time(req_str("endDateTime")?, &df("endDateTime"))?;
    if end < start {
        return Err(EventError::malformed(df("endDateTime"), "is before data.startDateTime"));
    }
    let cancellation_cutoff = match opt_str(data, "cancellationCutOffDateTime", &df)? {
        Some(s) => Some(parse_time(s, &df("cancellationCutOffDateTime"))?),
        None => None,
    };
    let subscription_ids = subscription_ids(data, &df)?;
    let status = opt_str(data, "status", &df)?.map(str::to_owned);

    Ok(Incoming::Maintenance(Box::new(MaintenanceEvent {
        id: id.to_owned(),
        phase,
        schema,
        event_time,
        correlation_id,
        maintenance_configuration_id,
        start,
        end,
        cancellation_cutoff,
        subscription_ids,
        status,
    })))
}

/// `resourceSubscriptionIds` is documented as a string but shown as an array: accept both.
fn subscription_ids(data: &Map<String, Value>, df: &dyn Fn(&str) -> String) -> Result<Vec<String>, EventError> {
    let name = "resourceSubscriptionIds";
    let ids: Vec<String> = match get_ci(data, name) {
        // Absent: query every subscription the identity can read rather than guess one.
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s.split(',').map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str().map(|s| s.trim().to_owned()).ok_or_else(|| {
                    EventError::malformed(df(&format!("{name}[{i}]")), format!("expected a string, got {}", kind(v)))
                })
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(EventError::malformed(df(name), format!("expected an array of strings, got {}", kind(other))));
        }
    };
    for (i, id) in ids.iter().enumerate() {
        if !is_guid(id) {
            return Err(EventError::malformed(df(&format!("{name}[{i}]")), format!("{id:?} is not a subscription id")));
        }
    }
    let mut ids = ids;
    ids.sort_unstable_by_key(|s| s.to_ascii_lowercase());
    ids.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    Ok(ids)
}

fn data_object<'a>(
    obj: &'a Map<String, Value>,
    f: &dyn Fn(&str) -> String,
) -> Result<&'a Map<String, Value>, EventError> {
    match obj.get("data") {
        Some(Value::Object(m)) => Ok(m),
        Some(other) => Err(EventError::malformed(f("data"), format!("expected an object, got {}", kind(other)))),
        None => Err(EventError::malformed(f("data"), "missing")),
    }
}

fn opt_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    f: &dyn Fn(&str) -> String,
) -> Result<Option<&'a str>, EventError> {
    match get_ci(obj, key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(EventError::malformed(f(key), format!("expected a string, got {}", kind(other)))),
    }
}

fn parse_time(s: &str, field: &str) -> Result<OffsetDateTime, EventError> {
    OffsetDateTime::parse(s.trim(), &Rfc3339).map_err(|_| {
        EventError::malformed(field, format!("{s:?} is not an RFC 3339 date-time such as 2023-05-09T15:00:00Z"))
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource_id::subscription_of;
    use serde_json::json;

    const RUN: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-example/providers/Microsoft.Maintenance/maintenanceConfigurations/mc-example/providers/microsoft.maintenance/applyupdates/20230509150000";
    const MC: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-example/providers/Microsoft.Maintenance/maintenanceConfigurations/mc-example";

    fn post_event() -> Value {
        json!({
            "id": RUN, "topic": MC, "subject": "mc-example",
            "data": {
                "correlationId": RUN, "maintenanceConfigurationId": MC,
                "startDateTime": "2023-05-09T15:00:00Z", "endDateTime": "2023-05-09T18:55:00Z",
                "resourceSubscriptionIds": ["11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"],
                "status": "Succeeded"
            },
            "eventType": POST_EVENT, "eventTime": "2023-05-09T15:55:00.3717473Z", "dataVersion": "1.0", "metadataVersion": "1"
        })
    }

    fn one(body: &Value) -> Result<Incoming, EventError> {
        parse_delivery(body.to_string().as_bytes()).map(|mut v| v.remove(0))
    }

    fn maintenance(i: Incoming) -> MaintenanceEvent {
        match i {
            Incoming::Maintenance(m) => *m,
            other => panic!("expected a maintenance event, got {other:?}"),
        }
    }

    #[test]
    fn event_grid_post_event_parses() {
        let m = maintenance(one(&json!([post_event()])).unwrap());
        assert_eq!(m.phase, Phase::Post);
        assert_eq!(m.schema, Schema::EventGrid);
        assert_eq!(m.configuration_name(), "mc-example");
        assert_eq!(m.subscription_ids.len(), 2);
        assert_eq!(m.status.as_deref(), Some("Succeeded"));
        assert_eq!(m.event_time.unwrap().nanosecond(), 371_747_300);
    }

    #[test]
    fn pascal_case_data_keys_parse() {
        let mut e = post_event();
        let data = e["data"].as_object().unwrap().clone();
        let pascal: Map<String, Value> = data.into_iter().map(|(k, v)| (k[..1].to_uppercase() + &k[1..], v)).collect();
        e["data"] = Value::Object(pascal);
        let m = maintenance(one(&e).unwrap());
        assert_eq!(m.correlation_id, RUN);
    }

    #[test]
    fn cloud_events_pre_event_parses() {
        let e = json!({
            "id": RUN, "source": MC, "subject": "mc-example", "specversion": "1.0",
            "type": PRE_EVENT, "time": "2023-05-09T14:25:00.3717473Z",
            "data": { "CorrelationId": RUN, "MaintenanceConfigurationId": MC,
                      "StartDateTime": "2023-05-09T15:00:00Z", "EndDateTime": "2023-05-09T18:55:00Z",
                      "CancellationCutOffDateTime": "2023-05-09T14:59:00Z",
                      "ResourceSubscriptionIds": "11111111-1111-1111-1111-111111111111" }
        });
        let m = maintenance(one(&json!([e])).unwrap());
        assert_eq!(m.phase, Phase::Pre);
        assert_eq!(m.schema, Schema::CloudEvents);
        assert!(m.cancellation_cutoff.is_some());
        assert_eq!(m.subscription_ids, vec!["11111111-1111-1111-1111-111111111111"]);
    }

    #[test]
    fn missing_subscription_ids_query_every_readable_subscription() {
        let mut e = post_event();
        e["data"].as_object_mut().unwrap().remove("resourceSubscriptionIds");
        let m = maintenance(one(&e).unwrap());
        assert!(m.subscription_ids.is_empty(), "no guessed scope: {:?}", m.subscription_ids);
    }

    #[test]
    fn run_ids_must_belong_to_the_configuration_and_be_plain() {
        let mut e = post_event();
        e["data"]["correlationId"] = json!(RUN.replace("mc-example", "other"));
        assert_eq!(reject(json!([e]).to_string().as_bytes()).field, "[0].data.correlationId");
        let mut e = post_event();
        e["data"]["maintenanceConfigurationId"] = json!(format!("{MC}\nx"));
        assert_eq!(reject(json!([e]).to_string().as_bytes()).field, "[0].data.maintenanceConfigurationId");
        let mut e = post_event();
        e["eventTime"] = json!("9999-12-31T23:59:59Z");
        assert!(one(&e).is_ok(), "a far-future time parses; the summary never trusts it beyond now");
    }

    #[test]
    fn validation_and_other_events_are_classified() {
        let v = json!([{"id": "x", "topic": "t", "subject": "", "eventType": VALIDATION_EVENT,
                        "eventTime": "2022-10-28T04:23:35.1981776Z", "data": {"validationCode": "512d38b6"}}]);
        assert!(matches!(one(&v).unwrap(), Incoming::Validation { code } if code == "512d38b6"));
        let o = json!([{"id": "y", "eventType": "Microsoft.Storage.BlobCreated", "data": {}}]);
        assert!(
            matches!(one(&o).unwrap(), Incoming::Ignored { event_type, .. } if event_type == "Microsoft.Storage.BlobCreated")
        );
    }

    fn reject(body: &[u8]) -> EventError {
        parse_delivery(body).expect_err("expected a rejection")
    }

    #[test]
    fn bad_input_malformed_json_names_body() {
        let e = reject(b"[{\"id\": ");
        assert_eq!((e.kind, e.field.as_str()), (EventErrorKind::Malformed, "body"));
        assert_eq!(reject(b"").field, "body");
        assert_eq!(reject(b"[]").field, "body");
        assert_eq!(reject(&[0xff, 0xfe]).field, "body");
    }

    #[test]
    fn bad_input_missing_fields_name_the_field() {
        for (remove, field) in [
            ("correlationId", "[0].data.correlationId"),
            ("maintenanceConfigurationId", "[0].data.maintenanceConfigurationId"),
            ("startDateTime", "[0].data.startDateTime"),
            ("endDateTime", "[0].data.endDateTime"),
        ] {
            let mut e = post_event();
            e["data"].as_object_mut().unwrap().remove(remove);
            let err = reject(json!([e]).to_string().as_bytes());
            assert_eq!(err.field, field, "{err}");
            assert!(err.problem.contains("missing"));
        }
        let mut e = post_event();
        e.as_object_mut().unwrap().remove("data");
        assert_eq!(reject(json!([e]).to_string().as_bytes()).field, "[0].data");
        let mut e = post_event();
        e.as_object_mut().unwrap().remove("eventType");
        assert_eq!(reject(json!([e]).to_string().as_bytes()).field, "[0].eventType");
    }

    #[test]
    fn bad_input_mistyped_fields_name_the_field() {
        let cases: Vec<(&str, Value, &str)> = vec![
            ("correlationId", json!(42), "[1].data.correlationId"),
            ("startDateTime", json!("yesterday"), "[1].data.startDateTime"),
            ("resourceSubscriptionIds", json!([1]), "[1].data.resourceSubscriptionIds[0]"),
            ("resourceSubscriptionIds", json!(["not-a-guid"]), "[1].data.resourceSubscriptionIds[0]"),
            ("resourceSubscriptionIds", json!({"a": 1}), "[1].data.resourceSubscriptionIds"),
            ("correlationId", json!("/subscriptions/x/whatever"), "[1].data.correlationId"),
            ("endDateTime", json!("2023-05-09T14:00:00Z"), "[1].data.endDateTime"),
        ];
        for (key, val, field) in cases {
            let mut e = post_event();
            e["data"][key] = val;
            // The bad event is second: the good first one must not be returned either.
            let err = reject(json!([post_event(), e]).to_string().as_bytes());
            assert_eq!(err.field, field, "{err}");
        }
        let mut e = post_event();
        e["data"] = json!("a string");
        assert_eq!(reject(json!([e]).to_string().as_bytes()).field, "[0].data");
    }

    #[test]
    fn bad_input_wrong_shapes_are_rejected() {
        assert_eq!(reject(b"[1, 2]").field, "[0]");
        assert_eq!(reject(b"\"hello\"").field, "event");
        assert_eq!(reject(b"[[]]").field, "[0]");
    }

    #[test]
    fn bad_input_oversized_event_is_too_large() {
        let mut e = post_event();
        e["data"]["padding"] = Value::String("x".repeat(MAX_EVENT_BYTES));
        let err = reject(json!([e]).to_string().as_bytes());
        assert_eq!((err.kind, err.field.as_str()), (EventErrorKind::TooLarge, "[0]"));
        let huge = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(reject(&huge).kind, EventErrorKind::TooLarge);
    }

    #[test]
    fn helpers_extract_ids() {
        assert_eq!(subscription_of(MC).as_deref(), Some("00000000-0000-0000-0000-000000000000"));
        assert_eq!(subscription_of("/nothing"), None);
        assert_eq!(last_segment("/a/b/c/"), "c");
    }
}
