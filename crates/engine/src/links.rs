//! One-click action links: signed, expiring, single-use links to acknowledge a run, re-run its
//! failed machines or snooze its reminders, carried by emails, Teams cards and Slack messages.
//!
//! A link is `{PATCHWATCH_PUBLIC_URL}/api/action?token=<token>`, and a token is
//! `base64url(claims JSON) "." base64url(HMAC-SHA256(key, "patchwatch-link-v1." + payload))`,
//! URL-safe without padding. The claims name the run, its configuration, the action, the route
//! (and owner group) the message went to, when the link expires, a random nonce (what makes it
//! single-use: the itsm-webhook app records the nonce when the action is done) and the id of the
//! key that signed it.
//!
//! Keys come from `PATCHWATCH_ACTION_KEYS`: space-separated secrets of at least 32 bytes. The
//! first signs, every one verifies, and a key id (the first 8 hex digits of the key's SHA-256)
//! picks the key: to rotate, put the new key first and keep the old one until its links expire.
//! Signatures are compared in constant time.
//!
//! A link only names what to do; the itsm-webhook app shows a confirmation page on `GET` (mail
//! scanners and link previews fetch every link) and acts on the confirming `POST` alone.

use std::{
    fmt,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use patchwatch_model::{conditions::parse_duration, secret::Secret, text::format_time};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use url::Url;

use crate::config::ConfigError;

/// The signing keys, space-separated; the first signs.
pub const KEYS_VAR: &str = "PATCHWATCH_ACTION_KEYS";
/// The public address of the itsm-webhook app, which serves the links.
pub const URL_VAR: &str = "PATCHWATCH_PUBLIC_URL";
/// How long a link works (`72h`, `3d`).
pub const TTL_VAR: &str = "PATCHWATCH_ACTION_TTL";
/// How long a link works unless [`TTL_VAR`] says.
pub const DEFAULT_TTL: Duration = Duration::from_secs(72 * 3600);
/// The shortest and longest lifetimes [`TTL_VAR`] accepts.
pub const MIN_TTL: Duration = Duration::from_secs(5 * 60);
pub const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// The shortest key accepted: HMAC-SHA256 is as strong as its key, up to 32 bytes.
pub const MIN_KEY_BYTES: usize = 32;
/// The path that serves the links (the itsm-webhook app).
pub const PATH: &str = "/api/action";
/// Longer tokens are refused before anything is decoded.
pub const MAX_TOKEN_CHARS: usize = 4096;

/// What the signature covers: this prefix and the payload, so a signature of anything else made
/// with the same key never passes for a link's.
const SIGNED_PREFIX: &str = "patchwatch-link-v1.";
/// What the confirmation form's `csrf` field covers: this prefix and the token.
const CSRF_PREFIX: &str = "csrf.";

type HmacSha256 = Hmac<Sha256>;

/// What a link does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkAction {
    /// Records that someone has seen the run's outcome.
    Acknowledge,
    /// Re-runs the run's failed machines.
    Rerun,
    /// Pauses the route's reminders for 24 hours.
    Snooze,
}

impl LinkAction {
    pub const ALL: [LinkAction; 3] = [LinkAction::Acknowledge, LinkAction::Rerun, LinkAction::Snooze];

    /// The name in tokens and forms.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkAction::Acknowledge => "acknowledge",
            LinkAction::Rerun => "rerun",
            LinkAction::Snooze => "snooze",
        }
    }

    /// The button a person clicks.
    pub fn label(self) -> &'static str {
        match self {
            LinkAction::Acknowledge => "Acknowledge",
            LinkAction::Rerun => "Re-run failed machines",
            LinkAction::Snooze => "Snooze reminders 24 h",
        }
    }

    /// Reads [`LinkAction::as_str`]'s names (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

impl fmt::Display for LinkAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a link is about: the run, and where the message that carries it went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkTarget<'a> {
    /// The run id (the event's correlationId, a full ARM id).
    pub run: &'a str,
    /// The maintenance configuration's name.
    pub configuration: &'a str,
    /// The route the message went to.
    pub route: &'a str,
    /// The owner group of that route's message, when it was split by owner.
    pub group: Option<&'a str>,
}

/// A verified link's claims.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkClaims {
    pub run: String,
    #[serde(rename = "cfg")]
    pub configuration: String,
    #[serde(rename = "act")]
    pub action: LinkAction,
    pub route: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Random; the link is used once per nonce.
    pub nonce: String,
    /// The signing key's id.
    pub kid: String,
}

impl LinkClaims {
    /// When the link stops working.
    pub fn expires(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(self.exp).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

/// Why a link does not work. The messages are for the person who clicked it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the link carries no token: open it from the message again, and copy the whole link")]
    Missing,
    #[error("the link is damaged or incomplete ({0}): open it from the message again, and copy the whole link")]
    Malformed(&'static str),
    #[error("the link's signature does not match: it was changed after patchwatch sent it")]
    BadSignature,
    #[error(
        "the link was signed with a key that is no longer in use (key {kid}): use a newer message, or act in the Azure portal"
    )]
    UnknownKey { kid: String },
    #[error("the link expired on {}: use a newer message, or act in the Azure portal", format_time(*at))]
    Expired { at: OffsetDateTime },
}

/// One key, ready to sign: its id and its keyed HMAC state (the secret itself is not kept).
#[derive(Clone)]
struct Key {
    id: String,
    mac: HmacSha256,
}

/// Makes and checks one-click links. `Debug` shows the address, key ids and lifetime, never a key.
#[derive(Clone)]
pub struct ActionLinks {
    base: Url,
    /// The first key: it signs.
    signer: Key,
    /// Every key, the signer first: they verify.
    keys: Vec<Key>,
    ttl: Duration,
}

impl fmt::Debug for ActionLinks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActionLinks")
            .field("base", &self.base.as_str())
            .field("keys", &self.keys.iter().map(|k| k.id.as_str()).collect::<Vec<_>>())
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// A key's id: the first 8 hex digits of its SHA-256 (names the key, reveals nothing of it).
pub fn key_id(key: &Secret) -> String {
    Sha256::digest(key.expose().as_bytes()).iter().take(4).map(|b| format!("{b:02x}")).collect()
}

impl ActionLinks {
    /// Checks the keys (at least one, each at least [`MIN_KEY_BYTES`]), the address (https, or
    /// http to a loopback address; no query, fragment or credentials) and the lifetime.
    pub fn new(base: Url, keys: Vec<Secret>, ttl: Duration) -> Result<Self, ConfigError> {
        let invalid = |name, problem: String| ConfigError::Invalid { name, problem };
        let count = keys.len();
        let keys = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let len = k.expose().len();
                if len < MIN_KEY_BYTES {
                    return Err(invalid(
                        KEYS_VAR,
                        format!(
                            "key {} of {count} is {len} bytes; each needs at least {MIN_KEY_BYTES} (for example `openssl rand -base64 32`)",
                            i + 1
                        ),
                    ));
                }
                let mac = <HmacSha256 as Mac>::new_from_slice(k.expose().as_bytes())
                    .map_err(|e| invalid(KEYS_VAR, format!("key {}: {e}", i + 1)))?;
                Ok(Key { id: key_id(k), mac })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let signer = keys
            .first()
            .cloned()
            .ok_or_else(|| invalid(KEYS_VAR, "no key: give one or more space-separated keys".to_owned()))?;
        check_base(&base)?;
        if !(MIN_TTL..=MAX_TTL).contains(&ttl) {
            return Err(invalid(TTL_VAR, format!("{}s: a link works from 5 minutes to 30 days", ttl.as_secs())));
        }
        Ok(Self { base, signer, keys, ttl })
    }

    /// Reads [`KEYS_VAR`], [`URL_VAR`] and [`TTL_VAR`]. Links exist when the keys and the address
    /// are both set; keys without an address are a mistake, an address alone serves other uses.
    pub fn from_settings(get: &impl Fn(&str) -> Option<String>) -> Result<Option<Self>, ConfigError> {
        let ttl = match get(TTL_VAR) {
            Some(t) => parse_duration(&t).map_err(|problem| ConfigError::Invalid { name: TTL_VAR, problem })?,
            None => DEFAULT_TTL,
        };
        let (keys, url) = match (get(KEYS_VAR), get(URL_VAR)) {
            (Some(keys), Some(url)) => (keys, url),
            (Some(_), None) => {
                return Err(ConfigError::Missing {
                    name: URL_VAR,
                    hint: "one-click links need the public https address of the itsm-webhook app, such as https://patchwatch-itsm.azurewebsites.net",
                });
            }
            (None, _) => return Ok(None),
        };
        let base =
            Url::parse(&url).map_err(|e| ConfigError::Invalid { name: URL_VAR, problem: format!("{e} in {url:?}") })?;
        let keys = keys.split_whitespace().map(Secret::new).collect();
        Self::new(base, keys, ttl).map(Some)
    }

    /// The address links point at.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// How long a new link works.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The origin (`scheme://host[:port]`) a confirming form is posted from.
    pub fn origin(&self) -> String {
        self.base.origin().ascii_serialization()
    }

    /// A signed token for `action` on `target`, working until `now` + the lifetime.
    pub fn token(&self, target: &LinkTarget<'_>, action: LinkAction, now: OffsetDateTime) -> String {
        let signer = &self.signer;
        let claims = LinkClaims {
            run: target.run.to_owned(),
            configuration: target.configuration.to_owned(),
            action,
            route: target.route.to_owned(),
            group: target.group.map(str::to_owned),
            exp: now.unix_timestamp().saturating_add(i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX)),
            nonce: nonce(),
            kid: signer.id.clone(),
        };
        // Serialising a struct of strings and integers cannot fail; an empty payload would only
        // make a link that never verifies.
        let json = serde_json::to_vec(&claims).unwrap_or_default();
        let payload = URL_SAFE_NO_PAD.encode(json);
        let signature = URL_SAFE_NO_PAD.encode(sign(signer, SIGNED_PREFIX, &payload).finalize().into_bytes());
        format!("{payload}.{signature}")
    }

    /// The full link: `{base}/api/action?token=…`.
    pub fn link(&self, target: &LinkTarget<'_>, action: LinkAction, now: OffsetDateTime) -> String {
        let mut url = self.base.clone();
        url.set_path(&format!("{}{PATH}", self.base.path().trim_end_matches('/')));
        url.query_pairs_mut().clear().append_pair("token", &self.token(target, action, now));
        url.to_string()
    }

    /// The buttons a message about a failed run carries: acknowledge, re-run the failed
    /// machines, and (when the route reminds) snooze the reminders. Each link is single-use.
    pub fn buttons(&self, target: &LinkTarget<'_>, reminds: bool, now: OffsetDateTime) -> Vec<(String, String)> {
        LinkAction::ALL
            .into_iter()
            .filter(|a| reminds || *a != LinkAction::Snooze)
            .map(|a| (a.label().to_owned(), self.link(target, a, now)))
            .collect()
    }

    /// Checks a token: its shape, the key it names, its signature, then its expiry.
    pub fn verify(&self, token: &str, now: OffsetDateTime) -> Result<LinkClaims, LinkError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(LinkError::Missing);
        }
        if token.len() > MAX_TOKEN_CHARS {
            return Err(LinkError::Malformed("too long"));
        }
        let (payload, signature) = token.split_once('.').ok_or(LinkError::Malformed("no signature"))?;
        if payload.is_empty() || signature.contains('.') {
            return Err(LinkError::Malformed("not two parts"));
        }
        let json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| LinkError::Malformed("the claims are not base64url"))?;
        let signature =
            URL_SAFE_NO_PAD.decode(signature).map_err(|_| LinkError::Malformed("the signature is not base64url"))?;
        let claims: LinkClaims =
            serde_json::from_slice(&json).map_err(|_| LinkError::Malformed("the claims are not readable"))?;
        let mut candidates = self.keys.iter().filter(|k| k.id == claims.kid).peekable();
        if candidates.peek().is_none() {
            return Err(LinkError::UnknownKey { kid: printable(&claims.kid) });
        }
        if !candidates.any(|k| sign(k, SIGNED_PREFIX, payload).verify_slice(&signature).is_ok()) {
            return Err(LinkError::BadSignature);
        }
        if now.unix_timestamp() >= claims.exp {
            return Err(LinkError::Expired { at: claims.expires() });
        }
        Ok(claims)
    }

    /// The confirmation form's `csrf` value for a verified token: an HMAC of the token with the
    /// key that signed it, so the form only works with the token it was served for.
    pub fn csrf(&self, claims: &LinkClaims, token: &str) -> Option<String> {
        let key = self.keys.iter().find(|k| k.id == claims.kid)?;
        Some(URL_SAFE_NO_PAD.encode(sign(key, CSRF_PREFIX, token.trim()).finalize().into_bytes()))
    }

    /// Whether `given` is the `csrf` value of `token` (compared in constant time).
    pub fn check_csrf(&self, claims: &LinkClaims, token: &str, given: &str) -> bool {
        let Ok(given) = URL_SAFE_NO_PAD.decode(given.trim()) else { return false };
        self.keys
            .iter()
            .filter(|k| k.id == claims.kid)
            .any(|k| sign(k, CSRF_PREFIX, token.trim()).verify_slice(&given).is_ok())
    }
}

/// The HMAC of `prefix` + `text` under `key`.
fn sign(key: &Key, prefix: &str, text: &str) -> HmacSha256 {
    let mut mac = key.mac.clone();
    mac.update(prefix.as_bytes());
    mac.update(text.as_bytes());
    mac
}

/// A key id from a token, cut and cleaned for a message (it was not signed by any known key).
fn printable(kid: &str) -> String {
    kid.chars().filter(char::is_ascii_alphanumeric).take(16).collect()
}

fn check_base(base: &Url) -> Result<(), ConfigError> {
    let invalid = |problem: &str| ConfigError::Invalid { name: URL_VAR, problem: problem.to_owned() };
    let loopback = matches!(base.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    match base.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => return Err(invalid("links must use https (plain http only to a loopback address)")),
        _ => return Err(invalid("expected an https URL")),
    }
    if base.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    if base.query().is_some() || base.fragment().is_some() || !base.username().is_empty() || base.password().is_some() {
        return Err(invalid("expected a base URL without query, fragment or credentials"));
    }
    Ok(())
}

/// 16 random bytes, base64url. Without OS randomness (never seen on a supported host), the time,
/// a process counter and the process id still make each nonce unique, which is all single use
/// needs: the signature, not the nonce, is what cannot be forged.
fn nonce() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let t = OffsetDateTime::now_utc().unix_timestamp_nanos();
        let mixed = patchwatch_model::text::fnv64(&format!("{t}:{n}:{}", std::process::id()));
        bytes[..8].copy_from_slice(&mixed.to_le_bytes());
        bytes[8..].copy_from_slice(&((t as u64) ^ n.rotate_left(32)).to_le_bytes());
    }
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use time::macros::datetime;

    const OLD: &str = "old-key-0123456789abcdef0123456789abcdef";
    const NEW: &str = "new-key-fedcba9876543210fedcba9876543210";
    const RUN: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourcegroups/rg-patch/providers/microsoft.maintenance/maintenanceconfigurations/ring2-prod/providers/microsoft.maintenance/applyupdates/20261201220000";
    const NOW: OffsetDateTime = datetime!(2026-12-01 23:00 UTC);

    fn links(keys: &[&str]) -> ActionLinks {
        let keys = keys.iter().map(|k| Secret::new(*k)).collect();
        ActionLinks::new("https://itsm.example.com".parse().unwrap(), keys, DEFAULT_TTL).unwrap()
    }

    fn target() -> LinkTarget<'static> {
        LinkTarget { run: RUN, configuration: "Ring2-Prod", route: "owners", group: Some("team-web") }
    }

    #[test]
    fn a_signed_link_verifies_with_its_claims() {
        let l = links(&[NEW]);
        let url = l.link(&target(), LinkAction::Rerun, NOW);
        assert!(url.starts_with("https://itsm.example.com/api/action?token="), "{url}");
        let token = url.split_once("token=").unwrap().1;
        assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)), "URL-safe: {token}");
        let c = l.verify(token, NOW).unwrap();
        assert_eq!((c.run.as_str(), c.configuration.as_str(), c.action), (RUN, "Ring2-Prod", LinkAction::Rerun));
        assert_eq!((c.route.as_str(), c.group.as_deref()), ("owners", Some("team-web")));
        assert_eq!(c.expires(), NOW + time::Duration::hours(72));
        assert_eq!(c.kid, key_id(&Secret::new(NEW)));
        assert_ne!(
            c.nonce,
            l.verify(&l.token(&target(), LinkAction::Rerun, NOW), NOW).unwrap().nonce,
            "one nonce each"
        );
    }

    #[test]
    fn links_expire() {
        let l = links(&[NEW]);
        let token = l.token(&target(), LinkAction::Acknowledge, NOW);
        assert!(l.verify(&token, NOW + time::Duration::hours(71)).is_ok());
        let at = NOW + time::Duration::hours(72);
        assert_eq!(l.verify(&token, at), Err(LinkError::Expired { at }));
        assert!(LinkError::Expired { at }.to_string().contains("2026-12-04 23:00 UTC"));
    }

    #[test]
    fn tampering_is_refused() {
        let l = links(&[NEW]);
        let token = l.token(&target(), LinkAction::Acknowledge, NOW);
        let (payload, sig) = token.split_once('.').unwrap();
        // Another action under the same signature.
        let mut claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        claims["act"] = "rerun".into();
        let forged = format!("{}.{sig}", URL_SAFE_NO_PAD.encode(claims.to_string()));
        assert_eq!(l.verify(&forged, NOW), Err(LinkError::BadSignature));
        // Every single-character change fails, one way or another.
        for i in 0..token.len() {
            let mut bytes = token.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(bytes).unwrap();
            if changed != token {
                assert!(l.verify(&changed, NOW).is_err(), "position {i}");
            }
        }
        for bad in ["", "abc", "a.b.c", ".sig", "%%%.%%%", &"a".repeat(MAX_TOKEN_CHARS + 1)] {
            assert!(l.verify(bad, NOW).is_err(), "{bad:?}");
        }
        assert_eq!(l.verify("", NOW), Err(LinkError::Missing));
    }

    #[test]
    fn rotation_signs_with_the_first_key_and_verifies_with_all() {
        let before = links(&[OLD]);
        let during = links(&[NEW, OLD]);
        let after = links(&[NEW]);
        let old_token = before.token(&target(), LinkAction::Snooze, NOW);
        assert!(during.verify(&old_token, NOW).is_ok(), "old links work while the old key is kept");
        assert_eq!(
            after.verify(&old_token, NOW),
            Err(LinkError::UnknownKey { kid: key_id(&Secret::new(OLD)) }),
            "and not once it is removed"
        );
        let new_token = during.token(&target(), LinkAction::Snooze, NOW);
        assert!(after.verify(&new_token, NOW).is_ok(), "the first key signs");
        assert!(before.verify(&new_token, NOW).is_err());
    }

    #[test]
    fn csrf_is_bound_to_the_token() {
        let l = links(&[NEW, OLD]);
        let a = l.token(&target(), LinkAction::Acknowledge, NOW);
        let b = l.token(&target(), LinkAction::Acknowledge, NOW);
        let (ca, cb) = (l.verify(&a, NOW).unwrap(), l.verify(&b, NOW).unwrap());
        let csrf = l.csrf(&ca, &a).unwrap();
        assert!(l.check_csrf(&ca, &a, &csrf));
        assert!(!l.check_csrf(&cb, &b, &csrf), "another token's form");
        assert!(!l.check_csrf(&ca, &a, ""));
        assert!(!l.check_csrf(&ca, &a, "not base64!"));
    }

    #[test]
    fn settings_need_long_keys_and_a_safe_address() {
        let read = |vars: &[(&str, &str)]| {
            let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
            ActionLinks::from_settings(&|k: &str| map.get(k).cloned())
        };
        assert!(read(&[]).unwrap().is_none(), "off unless configured");
        assert!(read(&[(URL_VAR, "https://x.example.com")]).unwrap().is_none(), "an address alone makes no links");
        let e = read(&[(KEYS_VAR, NEW)]).unwrap_err().to_string();
        assert!(e.contains(URL_VAR), "{e}");
        let e = read(&[(KEYS_VAR, &format!("{NEW} short")), (URL_VAR, "https://x.example.com")]).unwrap_err();
        let e = e.to_string();
        assert!(e.contains(KEYS_VAR) && e.contains("key 2 of 2 is 5 bytes") && !e.contains("short"), "{e}");
        for (url, ok) in [
            ("http://x.example.com", false),
            ("http://127.0.0.1:8080", true),
            ("https://x.example.com/base/?q=1", false),
            ("ftp://x.example.com", false),
            ("https://user:pw@x.example.com", false),
        ] {
            assert_eq!(read(&[(KEYS_VAR, NEW), (URL_VAR, url)]).is_ok(), ok, "{url}");
        }
        let l = read(&[(KEYS_VAR, &format!("{NEW}  {OLD}")), (URL_VAR, "https://x.example.com/pw/"), (TTL_VAR, "2d")])
            .unwrap()
            .unwrap();
        assert_eq!(l.ttl(), Duration::from_secs(2 * 86_400));
        assert!(l.link(&target(), LinkAction::Snooze, NOW).starts_with("https://x.example.com/pw/api/action?token="));
        assert!(!format!("{l:?}").contains("new-key"), "keys never printed");
        for ttl in ["1m", "31d", "soon"] {
            let e = read(&[(KEYS_VAR, NEW), (URL_VAR, "https://x.example.com"), (TTL_VAR, ttl)]).unwrap_err();
            assert!(e.to_string().contains(TTL_VAR), "{ttl}: {e}");
        }
    }

    #[test]
    fn actions_read_back() {
        for a in LinkAction::ALL {
            assert_eq!(LinkAction::parse(a.as_str()), Some(a));
        }
        assert_eq!(LinkAction::parse("emergency"), None);
    }
}
