//! Azure Functions custom-handler envelopes for non-HTTP triggers.
//!
//! The host POSTs `{"Data": {<binding>: …}, "Metadata": {…}}` to `/{functionName}` and expects
//! `{"Outputs", "Logs", "ReturnValue"}` back with a 2xx status (azure-contracts §3.3–3.4).
//! Binding values may be objects, JSON text in a string, a double-encoded string, or base64
//! (queue messages), so decoding tries each in turn.

use base64::Engine;
use serde::Serialize;
use serde_json::{Map, Value};

use patchwatch_model::{
    event::{EventError, MAX_EVENT_BYTES},
    json::get_ci,
};

/// The answer a custom handler gives the Functions host.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InvocationResponse {
    pub outputs: Map<String, Value>,
    pub logs: Vec<String>,
    pub return_value: Option<Value>,
}

/// Request metadata worth logging (`sys.MethodName`, queue `DequeueCount`, …).
#[derive(Debug, Default, Clone)]
pub struct InvocationMeta {
    pub method_name: Option<String>,
    pub dequeue_count: Option<u64>,
}

/// Extracts the JSON text of binding `binding` from an envelope body.
///
/// If the binding is absent but `Data` holds exactly one value, that value is used: the name
/// is chosen in `function.json`, and a renamed binding should not drop events.
pub fn binding_json(body: &[u8], binding: &str) -> Result<(Vec<u8>, InvocationMeta), EventError> {
    let envelope =
        patchwatch_model::json::from_slice(body, "body").map_err(|e| EventError::malformed(e.field, e.problem))?;
    let obj = envelope.as_object().ok_or_else(|| {
        EventError::malformed("body", "expected the Functions envelope object {\"Data\": …, \"Metadata\": …}")
    })?;
    let data = match get_ci(obj, "Data") {
        Some(Value::Object(d)) => d,
        Some(_) => return Err(EventError::malformed("Data", "expected an object")),
        None => return Err(EventError::malformed("Data", "missing")),
    };
    let value = match get_ci(data, binding) {
        Some(v) => v,
        None if data.len() == 1 => data.values().next().unwrap_or(&Value::Null),
        None => return Err(EventError::malformed(format!("Data.{binding}"), "missing")),
    };
    let meta = match get_ci(obj, "Metadata") {
        Some(Value::Object(m)) => InvocationMeta {
            method_name: m.get("sys").and_then(|s| s.get("MethodName")).and_then(Value::as_str).map(str::to_owned),
            dequeue_count: get_ci(m, "DequeueCount").and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok())),
        },
        _ => InvocationMeta::default(),
    };
    Ok((decode_value(value, &format!("Data.{binding}"))?, meta))
}

/// Turns a binding value into JSON text: objects and arrays as they are; strings are unwrapped
/// (JSON in a string, JSON in a JSON string, or base64 of either).
fn decode_value(value: &Value, field: &str) -> Result<Vec<u8>, EventError> {
    let mut current = value.clone();
    // Three rounds cover base64 → quoted string → JSON text, the deepest nesting the host produces.
    for _ in 0..4 {
        match current {
            Value::Object(_) | Value::Array(_) => {
                return serde_json::to_vec(&current).map_err(|e| EventError::malformed(field, e.to_string()));
            }
            Value::String(s) => {
                if s.len() > MAX_EVENT_BYTES * 2 {
                    return Err(EventError::malformed(field, "value is larger than any event"));
                }
                current = match strict(&s, field)? {
                    Some(v) => v,
                    None => match base64::engine::general_purpose::STANDARD.decode(s.trim()) {
                        Ok(bytes) => match String::from_utf8(bytes) {
                            Ok(text) => strict(&text, field)?.unwrap_or(Value::String(text)),
                            Err(_) => return Err(EventError::malformed(field, "base64 content is not UTF-8 text")),
                        },
                        Err(_) => {
                            return Err(EventError::malformed(field, "is neither JSON nor base64-encoded JSON"));
                        }
                    },
                }
            }
            Value::Null => return Err(EventError::malformed(field, "missing")),
            _ => return Err(EventError::malformed(field, "expected an event object or its JSON text")),
        }
    }
    Err(EventError::malformed(field, "nested encoding is too deep"))
}

/// JSON text as a value, `None` if it is not JSON; duplicate keys are an error, not "not JSON".
fn strict(text: &str, field: &str) -> Result<Option<Value>, EventError> {
    match patchwatch_model::json::from_str(text, field) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.problem == patchwatch_model::json::DUPLICATE_KEY => Err(EventError::malformed(e.field, e.problem)),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn duplicate_keys_inside_a_binding_string_are_refused() {
        let inner = r#"[{"id": "1", "id": "2"}]"#;
        let body = json!({ "Data": { "event": inner }, "Metadata": {} }).to_string();
        let e = binding_json(body.as_bytes(), "event").unwrap_err();
        assert_eq!((e.field.as_str(), e.problem.as_str()), ("Data.event[0].id", "duplicate key"));
        let b64 = base64::engine::general_purpose::STANDARD.encode(inner);
        let body = json!({ "Data": { "message": b64 }, "Metadata": {} }).to_string();
        assert_eq!(binding_json(body.as_bytes(), "message").unwrap_err().problem, "duplicate key");
    }

    fn decoded(value: Value) -> Result<Value, EventError> {
        let body = json!({"Data": {"message": value}, "Metadata": {"DequeueCount": 2, "sys": {"MethodName": "maintenance-queue"}}});
        let (bytes, meta) = binding_json(body.to_string().as_bytes(), "message")?;
        assert_eq!(meta.dequeue_count, Some(2));
        assert_eq!(meta.method_name.as_deref(), Some("maintenance-queue"));
        Ok(serde_json::from_slice(&bytes).unwrap())
    }

    #[test]
    fn envelope_accepts_every_encoding() {
        let event = json!({"id": "1", "eventType": "x", "data": {}});
        let text = event.to_string();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&text);
        assert_eq!(decoded(event.clone()).unwrap(), event);
        assert_eq!(decoded(Value::String(text.clone())).unwrap(), event);
        assert_eq!(decoded(Value::String(Value::String(text.clone()).to_string())).unwrap(), event);
        assert_eq!(decoded(Value::String(b64)).unwrap(), event);
    }

    #[test]
    fn envelope_bad_input_names_the_field() {
        assert_eq!(binding_json(b"nope", "event").unwrap_err().field, "body");
        assert_eq!(binding_json(b"[]", "event").unwrap_err().field, "body");
        assert_eq!(binding_json(br#"{"Metadata":{}}"#, "event").unwrap_err().field, "Data");
        assert_eq!(binding_json(br#"{"Data":{"a":1,"b":2}}"#, "event").unwrap_err().field, "Data.event");
        assert_eq!(binding_json(br#"{"Data":{"event":"%%%"}}"#, "event").unwrap_err().field, "Data.event");
        assert_eq!(binding_json(br#"{"Data":{"event":7}}"#, "event").unwrap_err().field, "Data.event");
    }

    #[test]
    fn envelope_single_unnamed_binding_is_used() {
        let (bytes, _) = binding_json(br#"{"Data":{"eventGridEvent":{"id":"1"}}}"#, "event").unwrap();
        assert_eq!(bytes, br#"{"id":"1"}"#);
    }

    #[test]
    fn response_serialises_pascal_case() {
        let r = InvocationResponse { logs: vec!["x".into()], ..Default::default() };
        assert_eq!(serde_json::to_value(&r).unwrap(), json!({"Outputs": {}, "Logs": ["x"], "ReturnValue": null}));
    }
}
