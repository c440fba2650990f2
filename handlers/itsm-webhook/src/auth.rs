//! Who is calling: Standard Webhooks HMAC signatures (with key rotation) or a shared bearer
//! secret, each compared in constant time. Nothing is read from the body before this passes.

use axum::http::HeaderMap;
use patchwatch_engine::channels::webhook::SigningKey;
use patchwatch_engine::channels::webhook::parse_secrets;
use patchwatch_engine::channels::webhook::signatures;
use patchwatch_engine::config::Config;
use patchwatch_host::auth::Bearer;
use patchwatch_model::secret::Secret;
use patchwatch_model::settings::Action;
use patchwatch_model::settings::CallerSpec;

/// How far a signed request's timestamp may be from now, either way.
pub const TOLERANCE_SECONDS: i64 = 5 * 60;

/// A configured caller with its secrets.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    keys: Vec<SigningKey>,
    bearer: Option<Secret>,
    pub configurations: Vec<String>,
    pub actions: Vec<Action>,
    pub notify: Vec<String>,
}

impl Caller {
    /// The caller a confirmed one-click link acts as: exactly `action` on exactly
    /// `configuration`, with no secrets and no notice channels of its own.
    pub fn one_click(action: Action, configuration: &str) -> Self {
        Self {
            name: "one-click".to_owned(),
            keys: Vec::new(),
            bearer: None,
            configurations: vec![configuration.to_owned()],
            actions: vec![action],
            notify: Vec::new(),
        }
    }

    pub fn may(&self, action: Action) -> bool {
        self.actions.contains(&action)
    }

    /// Globs match the configuration's name, or its full resource id when the request names it
    /// (so a glob like `/subscriptions/<id>/*` scopes a caller to one subscription).
    pub fn may_act_on(&self, name: &str, id: Option<&str>) -> bool {
        use patchwatch_model::text::glob;
        self.configurations
            .iter()
            .any(|g| if g.starts_with('/') { id.is_some_and(|id| glob(g, id)) } else { glob(g, name) })
    }
}

/// The callers of `PATCHWATCH_CONFIG`, with secrets read from the configuration's variables.
pub fn callers(config: &Config) -> Result<Vec<Caller>, String> {
    let specs: &[CallerSpec] = config.routing.as_ref().map_or(&[], |r| &r.control.itsm.callers);
    specs
        .iter()
        .map(|c| {
            let secret = |var: &Option<String>| var.as_ref().and_then(|v| config.channel_secrets.get(v)).cloned();
            let keys = match secret(&c.signing_secret_env) {
                Some(s) => parse_secrets(s.expose()).map_err(|e| format!("itsm caller {:?}: {e}", c.name))?,
                None => Vec::new(),
            };
            Ok(Caller {
                name: c.name.clone(),
                keys,
                bearer: secret(&c.bearer_env),
                configurations: c.configurations.clone(),
                actions: c.actions.clone(),
                notify: c.notify.clone(),
            })
        })
        .collect()
}

/// Why a request was not authenticated. Every variant answers 401.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error(
        "no credentials: sign the request (webhook-id, webhook-timestamp, webhook-signature) or send Authorization: Bearer"
    )]
    Missing,
    #[error("{0} header is missing")]
    MissingHeader(&'static str),
    #[error("{0} header is given more than once")]
    Repeated(&'static str),
    #[error("webhook-timestamp is not a Unix time in seconds")]
    BadTimestamp,
    #[error("webhook-timestamp is {0} seconds away from now, more than the {TOLERANCE_SECONDS} allowed")]
    Stale(u64),
    #[error("no signature matches")]
    BadSignature,
    #[error("the bearer secret does not match")]
    BadBearer,
    #[error("webhook-id {0:?} was already used")]
    Replayed(String),
}

/// Who called, and the id of a signed message (for replay protection).
#[derive(Debug)]
pub struct Authenticated<'a> {
    pub caller: &'a Caller,
    pub webhook_id: Option<String>,
}

/// Checks a request's credentials against every caller.
pub fn authenticate<'a>(
    callers: &'a [Caller],
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<Authenticated<'a>, AuthError> {
    let header = |name: &'static str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    // Two values of one credential header would leave it to chance which one counts.
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature", "authorization"] {
        if headers.get_all(name).iter().count() > 1 {
            return Err(AuthError::Repeated(name));
        }
    }
    if let Some(signature) = header("webhook-signature") {
        let id = header("webhook-id").filter(|v| !v.is_empty()).ok_or(AuthError::MissingHeader("webhook-id"))?;
        let ts_text = header("webhook-timestamp").ok_or(AuthError::MissingHeader("webhook-timestamp"))?;
        let ts: i64 = ts_text.parse().map_err(|_| AuthError::BadTimestamp)?;
        let given: Vec<&str> = signature.split(' ').filter_map(|s| s.strip_prefix("v1,")).collect();
        let caller = callers
            .iter()
            .find(|c| {
                c.keys.iter().any(|k| {
                    let expected = signatures(id, ts, body, std::slice::from_ref(k));
                    let expected = expected.strip_prefix("v1,").unwrap_or_default();
                    given.iter().any(|g| Secret::new(expected).matches(g))
                })
            })
            .ok_or(AuthError::BadSignature)?;
        let skew = now.abs_diff(ts);
        if skew > TOLERANCE_SECONDS.unsigned_abs() {
            return Err(AuthError::Stale(skew));
        }
        return Ok(Authenticated { caller, webhook_id: Some(id.to_owned()) });
    }
    if let Some(auth) = header("authorization") {
        let given = Bearer::parse(auth).ok_or(AuthError::BadBearer)?;
        let given = given.as_str();
        // Every caller is compared, so the time taken does not depend on which one matched.
        let matched = callers.iter().fold(None, |found, c| {
            let hit = c.bearer.as_ref().is_some_and(|b| b.matches(given));
            found.or(hit.then_some(c))
        });
        return matched.map(|caller| Authenticated { caller, webhook_id: None }).ok_or(AuthError::BadBearer);
    }
    Err(AuthError::Missing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn caller(keys: &str, bearer: Option<&str>) -> Caller {
        Caller {
            name: "snow".into(),
            keys: parse_secrets(keys).unwrap(),
            bearer: bearer.map(Secret::new),
            configurations: vec!["Ring*".into()],
            actions: vec![Action::Approve],
            notify: vec![],
        }
    }

    fn signed(id: &str, ts: i64, body: &str, key: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("webhook-id", HeaderValue::from_str(id).unwrap());
        h.insert("webhook-timestamp", HeaderValue::from_str(&ts.to_string()).unwrap());
        let sig = signatures(id, ts, body, &parse_secrets(key).unwrap());
        h.insert("webhook-signature", HeaderValue::from_str(&sig).unwrap());
        h
    }

    const OLD: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const NEW: &str = "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNl";

    #[test]
    fn signatures_timestamps_and_rotation() {
        let callers = vec![caller(&format!("{OLD} {NEW}"), None)];
        let body = r#"{"action":"approve"}"#;
        let now = 1_700_000_000;
        assert!(authenticate(&callers, &signed("msg_1", now, body, OLD), body.as_bytes(), now).is_ok());
        assert!(
            authenticate(&callers, &signed("msg_1", now, body, NEW), body.as_bytes(), now).is_ok(),
            "either key during rotation"
        );
        let tampered = r#"{"action":"reject"}"#;
        assert_eq!(
            authenticate(&callers, &signed("msg_1", now, body, OLD), tampered.as_bytes(), now).unwrap_err(),
            AuthError::BadSignature
        );
        let other = "whsec_b3RoZXItb3RoZXItb3RoZXItb3RoZXItb3RoZXI=";
        assert_eq!(
            authenticate(&callers, &signed("msg_1", now, body, other), body.as_bytes(), now).unwrap_err(),
            AuthError::BadSignature
        );
        assert_eq!(
            authenticate(&callers, &signed("msg_1", now - 301, body, OLD), body.as_bytes(), now).unwrap_err(),
            AuthError::Stale(301)
        );
        assert!(authenticate(&callers, &signed("msg_1", now + 299, body, OLD), body.as_bytes(), now).is_ok());
        assert_eq!(authenticate(&callers, &HeaderMap::new(), body.as_bytes(), now).unwrap_err(), AuthError::Missing);
    }

    #[test]
    fn bearer_secrets_compare_whole() {
        let callers = vec![caller(OLD, Some("s3cret-token"))];
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer s3cret-token"));
        assert_eq!(authenticate(&callers, &h, b"{}", 0).unwrap().caller.name, "snow");
        for wrong in ["Bearer s3cret-toke", "Bearer s3cret-token2", "Basic s3cret-token", "Bearer "] {
            h.insert("authorization", HeaderValue::from_str(wrong).unwrap());
            assert!(authenticate(&callers, &h, b"{}", 0).is_err(), "{wrong}");
        }
    }
}
