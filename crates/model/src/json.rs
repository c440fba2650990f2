//! Strict JSON for request bodies patchwatch authenticates.
//!
//! `serde_json` keeps the last of duplicate keys; another parser (the signer's, an ITSM
//! system's, a proxy's) may keep the first. A signed body that two parsers read differently
//! is a way to get one thing checked and another done, so duplicate keys are refused, with
//! the path of the repeated key.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// A body that is not strict JSON: `field` is the JSON path of the problem (`body` when the
/// text itself is bad), `problem` says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct StrictJsonError {
    pub field: String,
    pub problem: String,
}

/// The problem named when a key repeats.
pub const DUPLICATE_KEY: &str = "duplicate key";

/// Deepest nesting accepted (serde_json's own recursion limit is 128).
const MAX_DEPTH: usize = 64;

/// Parses `text` as JSON, refusing duplicate object keys at any depth. Keys that differ only in
/// ASCII case count as duplicates too: patchwatch reads some keys case-insensitively, so
/// `"Action"` beside `"ACTION"` would be two readings of one field. `root` names the value in
/// errors (`body`, `[2]`, `Data.event`); keys inside it are named from there (`[2].data.x`),
/// except under `body`, whose keys are named as they are (`action`), as request fields are.
pub fn from_str(text: &str, root: &str) -> Result<Value, StrictJsonError> {
    let duplicate = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let prefix = if root == "body" { "" } else { root };
    let path = Path::Root(prefix);
    let seed = Strict { path: &path, depth: 0, duplicate: &duplicate };
    let value = seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    value.map_err(|e| match duplicate.into_inner() {
        Some(path) => StrictJsonError { field: path, problem: DUPLICATE_KEY.to_owned() },
        None => StrictJsonError { field: root.to_owned(), problem: format!("invalid JSON: {e}") },
    })
}

/// Like [`from_str`], for bytes: non-UTF-8 is refused naming `root`.
pub fn from_slice(bytes: &[u8], root: &str) -> Result<Value, StrictJsonError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| StrictJsonError { field: root.to_owned(), problem: format!("not UTF-8: {e}") })?;
    from_str(text, root)
}

/// Where a value sits, kept as a chain of borrowed steps and written out only when an error
/// needs it (building every path eagerly would cost key length × elements on hostile input).
enum Path<'a> {
    Root(&'a str),
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    fn render(&self) -> String {
        match self {
            Path::Root(r) => (*r).to_owned(),
            Path::Key(parent, key) => {
                let p = parent.render();
                if p.is_empty() { (*key).to_owned() } else { format!("{p}.{key}") }
            }
            Path::Index(parent, i) => format!("{}[{i}]", parent.render()),
        }
    }
}

struct Strict<'a> {
    path: &'a Path<'a>,
    depth: usize,
    duplicate: &'a RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        if self.depth >= MAX_DEPTH {
            return Err(de::Error::custom(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        loop {
            let path = Path::Index(self.path, out.len());
            let child = Strict { path: &path, depth: self.depth + 1, duplicate: self.duplicate };
            match seq.next_element_seed(child)? {
                Some(v) => out.push(v),
                None => break,
            }
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        if self.depth >= MAX_DEPTH {
            return Err(de::Error::custom(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        let mut out = Map::new();
        let mut folded = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = Path::Key(self.path, &key);
            if !folded.insert(key.to_ascii_lowercase()) {
                *self.duplicate.borrow_mut() = Some(path.render());
                return Err(de::Error::custom(DUPLICATE_KEY));
            }
            let child = Strict { path: &path, depth: self.depth + 1, duplicate: self.duplicate };
            let value = map.next_value_seed(child)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// Case-insensitive key lookup; an exact match wins.
pub fn get_ci<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).or_else(|| obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_json_parses_like_serde_json() {
        let text = r#"{"a": [1, -2, 3.5, "x", null, true, {"b": {}}], "c": "\u00e9"}"#;
        assert_eq!(from_str(text, "body").unwrap(), serde_json::from_str::<Value>(text).unwrap());
    }

    #[test]
    fn duplicate_keys_are_refused_with_their_path() {
        let e = from_str(r#"{"action": "approve", "action": "rerun"}"#, "body").unwrap_err();
        assert_eq!((e.field.as_str(), e.problem.as_str()), ("action", "duplicate key"));
        let e = from_str(r#"{"data": {"x": 1, "y": {"z": 1, "z": 2}}}"#, "[0]").unwrap_err();
        assert_eq!(e.field, "[0].data.y.z");
        let e = from_str(r#"[{"a": 1, "a": 1}]"#, "body").unwrap_err();
        assert_eq!(e.field, "[0].a");
        // Keys differing only in case are one field to a case-insensitive reader.
        let e = from_str(r#"{"Action": "acknowledge", "ACTION": "rerun"}"#, "body").unwrap_err();
        assert_eq!(e.field, "ACTION");
        // Same key in sibling objects is fine.
        assert!(from_str(r#"[{"a": 1}, {"a": 2}]"#, "body").is_ok());
    }

    #[test]
    fn bad_text_names_the_root() {
        assert_eq!(from_slice(b"\xff{}", "body").unwrap_err().field, "body");
        assert!(from_slice(b"\xff{}", "body").unwrap_err().problem.starts_with("not UTF-8"));
        assert_eq!(from_str("{} x", "body").unwrap_err().field, "body");
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert_eq!(from_str(&deep, "body").unwrap_err().field, "body");
    }

    #[test]
    fn hostile_shapes_stay_linear() {
        // A long key over many elements: paths are only written out for an error.
        let key = "k".repeat(200_000);
        let text = format!("{{\"{key}\": [{}0]}}", "0,".repeat(300_000));
        let started = std::time::Instant::now();
        assert!(from_str(&text, "body").is_ok());
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
    }
}
