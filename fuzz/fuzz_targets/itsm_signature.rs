//! The ITSM handler's authentication: Standard Webhooks signatures (key rotation, timestamp
//! tolerance, repeated headers) and bearer secrets, against callers built from a routing file
//! the way the tests build them (`Config::from_lookup` with `PATCHWATCH_CONFIG`).
//!
//! Input layout: byte 0 is a flag byte, the rest is split on `\n` into at most six fields:
//! `now`, `webhook-id`, `webhook-timestamp`, `webhook-signature`, `authorization`, body (the body
//! is the remainder and may hold newlines). Flags: bits 0-3 send the id, timestamp, signature and
//! authorization headers (a field that is not sent is ignored); bit 4 adds a second value to one
//! credential header, chosen by bits 5-6; bit 7 appends a valid signature of (id, timestamp,
//! body) made with the first caller's key, so the accepting and the stale paths are reachable.
//! `now` is a decimal Unix time; anything else means 1614265330 (the first Standard Webhooks
//! vector's timestamp).
#![no_main]

use std::{collections::HashMap, sync::OnceLock};

use http::{HeaderMap, HeaderName, HeaderValue};
use itsm_webhook::auth::{Caller, TOLERANCE_SECONDS, authenticate, callers};
use libfuzzer_sys::fuzz_target;
use patchwatch_engine::channels::webhook::parse_secrets;
use patchwatch_engine::channels::webhook::signatures;
use patchwatch_engine::config::Config;
use patchwatch_engine::config::Defaults;

/// The Standard Webhooks test vectors' secrets (../shared/real-samples/webhooks) and the tests'.
const SNOW_KEYS: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const ROTATED_KEYS: &str =
    "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNl,whsec_b3RoZXItb3RoZXItb3RoZXItb3RoZXItb3RoZXI=";
const BEARER: &str = "bearer-secret-0123456789";
const BEARER_2: &str = "s3cret-token";

const CONFIG: &str = r#"
[channels.desk]
type = "email"
to = ["service-desk@example.com"]

[[routes]]
name = "all"
channels = ["desk"]

[[itsm.callers]]
name = "servicenow"
signing_secret_env = "ITSM_SNOW_SECRET"
configurations = ["Ring*"]
actions = ["approve", "reject", "acknowledge", "rerun", "emergency"]
notify = ["desk"]

[[itsm.callers]]
name = "rotated"
signing_secret_env = "ITSM_ROTATED_SECRET"
bearer_env = "ITSM_ROTATED_BEARER"
configurations = ["/subscriptions/00000000-0000-0000-0000-000000000000/*"]
actions = ["approve"]

[[itsm.callers]]
name = "readonly"
bearer_env = "ITSM_READONLY"
configurations = ["Ring2-*"]
actions = ["acknowledge"]
"#;

const HEADERS: [&str; 4] = ["webhook-id", "webhook-timestamp", "webhook-signature", "authorization"];
const DEFAULT_NOW: i64 = 1_614_265_330;

fn fixture() -> &'static Vec<Caller> {
    static CALLERS: OnceLock<Vec<Caller>> = OnceLock::new();
    CALLERS.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("patchwatch-fuzz-itsm-{}.toml", std::process::id()));
        std::fs::write(&path, CONFIG).expect("write the fuzz routing file");
        let vars: HashMap<&str, String> = HashMap::from([
            ("PATCHWATCH_CONFIG", path.display().to_string()),
            ("PATCHWATCH_OUTBOX", std::env::temp_dir().join("patchwatch-fuzz-outbox").display().to_string()),
            ("PATCHWATCH_STATE", "file:///nonexistent/patchwatch-fuzz-state".to_owned()),
            ("ITSM_SNOW_SECRET", SNOW_KEYS.to_owned()),
            ("ITSM_ROTATED_SECRET", ROTATED_KEYS.to_owned()),
            ("ITSM_ROTATED_BEARER", BEARER_2.to_owned()),
            ("ITSM_READONLY", BEARER.to_owned()),
        ]);
        let config = Config::from_lookup(|k| vars.get(k).cloned(), &Defaults::default());
        let _ = std::fs::remove_file(&path);
        let callers = callers(&config.expect("fuzz configuration")).expect("fuzz callers");
        assert_eq!(callers.len(), 3);
        callers
    })
}

/// Every key the fixture knows, by caller index, to recompute what a valid signature is.
fn keys() -> &'static Vec<(usize, String)> {
    static KEYS: OnceLock<Vec<(usize, String)>> = OnceLock::new();
    KEYS.get_or_init(|| {
        [(0, SNOW_KEYS), (1, ROTATED_KEYS)]
            .into_iter()
            .flat_map(|(i, text)| text.split([' ', ',']).filter(|s| !s.is_empty()).map(move |k| (i, k.to_owned())))
            .collect()
    })
}

/// A header as `authenticate` reads it: visible ASCII, trimmed.
fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(|v| v.trim().to_owned())
}

fn value(bytes: &[u8]) -> Option<HeaderValue> {
    HeaderValue::from_bytes(bytes).ok()
}

fuzz_target!(|data: &[u8]| {
    let callers = fixture();
    let Some((&flags, rest)) = data.split_first() else { return };
    let mut fields = rest.splitn(6, |&b| b == b'\n');
    let now_field = fields.next().unwrap_or_default();
    let mut parts: [Option<&[u8]>; 4] = [None; 4];
    for (i, part) in parts.iter_mut().enumerate() {
        *part = fields.next().filter(|_| flags & (1 << i) != 0);
    }
    let body = fields.next().unwrap_or_default();
    let now = std::str::from_utf8(now_field).ok().and_then(|s| s.parse::<i64>().ok()).unwrap_or(DEFAULT_NOW);

    let mut headers = HeaderMap::new();
    for (name, part) in HEADERS.iter().zip(parts) {
        if let Some(v) = part.and_then(value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    }
    let (id, ts_text) = (header(&headers, "webhook-id"), header(&headers, "webhook-timestamp"));
    let ts = ts_text.as_deref().and_then(|t| t.parse::<i64>().ok());
    if flags & 0x80 != 0
        && let (Some(id), Some(ts)) = (&id, ts)
    {
        let forged = signatures(id, ts, body, &parse_secrets(SNOW_KEYS).expect("keys")[..1]);
        let given = header(&headers, "webhook-signature").unwrap_or_default();
        if let Ok(v) = HeaderValue::from_str(&format!("{given} {forged}")) {
            headers.insert("webhook-signature", v);
        }
    }
    if flags & 0x10 != 0 {
        let name = HEADERS[usize::from((flags >> 5) & 3)];
        headers.append(HeaderName::from_static(name), HeaderValue::from_static("v1,AAAA"));
    }

    let outcome = authenticate(callers, &headers, body, now);

    // The oracle: recompute, from the outside, whether the request deserved to pass.
    let Ok(auth) = outcome else { return };
    for name in HEADERS {
        assert!(headers.get_all(name).iter().count() <= 1, "a repeated {name} header was accepted");
    }
    let caller_index = callers.iter().position(|c| std::ptr::eq(c, auth.caller)).expect("caller from the list");
    match auth.webhook_id {
        Some(webhook_id) => {
            let sig = header(&headers, "webhook-signature").expect("signed without a signature header");
            assert_eq!(Some(&webhook_id), id.as_ref(), "authenticated id differs from the header");
            assert!(!webhook_id.is_empty());
            let ts = ts.expect("signed without a numeric timestamp");
            assert!(now.abs_diff(ts) <= TOLERANCE_SECONDS.unsigned_abs(), "stale timestamp accepted");
            let given: Vec<&str> = sig.split(' ').collect();
            let valid = keys().iter().filter(|(i, _)| *i == caller_index).any(|(_, k)| {
                let expected = signatures(&webhook_id, ts, body, &parse_secrets(k).expect("key"));
                given.contains(&expected.as_str())
            });
            assert!(valid, "no valid signature of caller {caller_index} in {sig:?}");
        }
        None => {
            let auth_header = header(&headers, "authorization").expect("bearer pass without Authorization");
            // RFC 9110: the scheme is case-insensitive; one space, then the token.
            let (scheme, token) = auth_header.trim().split_once(' ').expect("bearer pass without a scheme");
            assert!(scheme.eq_ignore_ascii_case("bearer"), "bearer pass with scheme {scheme:?}");
            let token = token.trim();
            let expected = match caller_index {
                1 => BEARER_2,
                2 => BEARER,
                _ => panic!("caller {caller_index} has no bearer secret but passed"),
            };
            assert_eq!(token, expected, "wrong bearer secret accepted");
            assert!(header(&headers, "webhook-signature").is_none(), "bearer pass with a signature header");
        }
    }
});
