//! Microsoft Entra ID bearer tokens on Event Grid webhook deliveries (`PATCHWATCH_EVENTS_AUDIENCE`).
//!
//! An Event Grid subscription with `azureActiveDirectoryTenantId` and
//! `azureActiveDirectoryApplicationIdOrUri` on its WebHook destination sends
//! `Authorization: Bearer <token>` on every delivery (azure-contracts §2.6). [`EntraValidator`]
//! checks that token with `jsonwebtoken` (no hand-written cryptography):
//!
//! - **Signature**: RS256 only, with a key from the tenant's JWKS, found through
//!   `{authority}/{tenant}/v2.0/.well-known/openid-configuration` → `jwks_uri`. Keys are cached
//!   by `kid`. An unknown `kid` refetches at most once per [`EntraSettings::min_refetch`]
//!   (default one minute), so a stream of forged tokens cannot make patchwatch hammer Entra; the
//!   whole set is refreshed every [`EntraSettings::refresh_every`] (default 24 h, the interval
//!   Microsoft suggests in "Access tokens: validate the signature") so rotated keys are picked up.
//!   If a refresh fails, the keys already held keep working until a later refresh succeeds.
//! - **Issuer**, exactly one of: the `issuer` of that OpenID document (v2.0 tokens,
//!   `{authority}/{tenant id}/v2.0`), or `https://sts.windows.net/{tenant id}/` (v1.0 tokens, the
//!   default for an app registration whose `accessTokenAcceptedVersion` is unset;
//!   `https://sts.chinacloudapi.cn/{tenant id}/` when the authority is a `.cn` host). The tenant id
//!   in the v1.0 form is taken from the document's issuer, so `PATCHWATCH_EVENTS_TENANT` may be a
//!   domain name. Multi-tenant authorities (`common`, `organizations`, `consumers`) are refused at
//!   start-up: their templated issuer cannot bind a token to one tenant.
//! - **Audience**: the configured value; when it is a GUID (the application id) also
//!   `api://<guid>`, and when it is `api://<guid>` also `<guid>`. v1.0 tokens carry whichever
//!   form Event Grid asked for (`azureActiveDirectoryApplicationIdOrUri`), v2.0 tokens always the
//!   application id, so both forms of the same application are accepted and nothing else.
//! - **Lifetime**: `exp` is required, `nbf` checked when present (Entra always sets it), with
//!   [`DEFAULT_LEEWAY`] (60 s) of clock skew either way.
//! - **Caller**: the `roles` claim must contain [`EVENT_GRID_ROLE`] and the client application
//!   (`appid` in v1.0 tokens, `azp` in v2.0) must be Event Grid's, [`EVENT_GRID_APP_ID`]. The
//!   documented setup assigns that app role to the Event Grid service principal; without the role
//!   check any principal of the tenant that can get a token for the application would pass, and
//!   without the client check so would the subscription writer, to whom the setup script assigns
//!   the same role.
//!
//! Failures are typed: [`EntraError::Rejected`] (answer 401, which Event Grid does not retry) or
//! [`EntraError::KeysUnavailable`] (the keys could not be fetched: answer 503 so Event Grid retries
//! instead of dropping the event). Neither error nor any log line carries the token, a key or a
//! claim value; [`Rejection::as_str`] is the reason category to log.

use patchwatch_model::resource_id::is_guid;
use std::{
    collections::{HashMap, HashSet},
    fmt,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use jsonwebtoken::{
    Algorithm, DecodingKey, Validation,
    crypto::CryptoProvider,
    errors::ErrorKind,
    jwk::{AlgorithmParameters, Jwk, KeyAlgorithm, PublicKeyUse},
};
use serde::Deserialize;
use url::Url;

/// Entra ID's public-cloud authority (`PATCHWATCH_ENTRA_AUTHORITY` default).
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// The application id of the "Microsoft.EventGrid" service principal that requests the tokens.
pub const EVENT_GRID_APP_ID: &str = "4962773b-9cdb-44cf-a8bf-237846a00ab7";
/// The app role the setup assigns to Event Grid on the webhook's application.
pub const EVENT_GRID_ROLE: &str = "AzureEventGridSecureWebhookSubscriber";
/// Clock skew allowed on `exp` and `nbf`.
///
/// 60 s: the hosts patchwatch runs on keep NTP time, so real skew is seconds; a minute covers it
/// and a slow request without stretching a token's life much (Microsoft.IdentityModel defaults to
/// five minutes, which only matters for clients with poor clocks). It is also jsonwebtoken's
/// default.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
/// Longest bearer token looked at; Entra access tokens are a few kilobytes.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Largest OpenID or JWKS document read.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// Most keys kept from one JWKS (Entra publishes a handful).
const MAX_KEYS: usize = 64;

/// What an [`EntraValidator`] needs.
#[derive(Clone, Debug)]
pub struct EntraSettings {
    /// Tenant id (GUID) or verified domain name.
    pub tenant: String,
    /// `PATCHWATCH_EVENTS_AUDIENCE`: application id or application ID URI.
    pub audience: String,
    /// Authority base URL, `https://login.microsoftonline.com` in the public cloud.
    pub authority: Url,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// Age after which the key set is fetched again.
    pub refresh_every: Duration,
    /// Least time between two fetches (an unknown `kid`, or a failed fetch, waits this long).
    pub min_refetch: Duration,
    /// Timeout of each of the two requests of a fetch.
    pub fetch_timeout: Duration,
}

impl EntraSettings {
    /// Settings with the default leeway, refresh and refetch intervals.
    pub fn new(tenant: impl Into<String>, audience: impl Into<String>, authority: Url) -> Self {
        Self {
            tenant: tenant.into(),
            audience: audience.into(),
            authority,
            leeway: DEFAULT_LEEWAY,
            refresh_every: Duration::from_secs(24 * 3600),
            min_refetch: Duration::from_secs(60),
            fetch_timeout: Duration::from_secs(5),
        }
    }

    /// The OpenID Connect metadata document of the tenant.
    pub fn metadata_url(&self) -> String {
        format!(
            "{}/{}/v2.0/.well-known/openid-configuration",
            self.authority.as_str().trim_end_matches('/'),
            self.tenant
        )
    }
}

/// Why a token was refused (answer 401). The category is what gets logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// Not a JWT, too long, bad encoding or claim types.
    Malformed,
    /// Signed with anything but RS256.
    Algorithm,
    /// Its `kid` is missing or not in the tenant's key set, even after a refetch.
    UnknownKey,
    /// The signature does not verify.
    Signature,
    /// `exp` has passed.
    Expired,
    /// `nbf` is in the future.
    NotYetValid,
    /// `aud` is not this application.
    Audience,
    /// `iss` is not this tenant.
    Issuer,
    /// `exp`, `aud` or `iss` is missing.
    MissingClaim,
    /// `roles` lacks `AzureEventGridSecureWebhookSubscriber`.
    Role,
    /// The client application is not Event Grid.
    Client,
}

impl Rejection {
    /// A short, stable name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::Malformed => "malformed",
            Rejection::Algorithm => "algorithm",
            Rejection::UnknownKey => "unknown_key",
            Rejection::Signature => "signature",
            Rejection::Expired => "expired",
            Rejection::NotYetValid => "not_yet_valid",
            Rejection::Audience => "audience",
            Rejection::Issuer => "issuer",
            Rejection::MissingClaim => "missing_claim",
            Rejection::Role => "role",
            Rejection::Client => "client",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token that did not pass, or keys that could not be had.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EntraError {
    /// The token is not acceptable: answer 401.
    #[error("Entra ID token refused ({0})")]
    Rejected(Rejection),
    /// The tenant's signing keys could not be fetched, so the token could not be checked: answer
    /// 503 so the sender retries. The text names the step, never a token or key.
    #[error("Entra ID signing keys unavailable: {0}")]
    KeysUnavailable(String),
}

/// The parts of a validated token patchwatch looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntraCaller {
    /// `iss`: which of the two issuer forms the token used.
    pub issuer: String,
    /// The client application (`appid` or `azp`).
    pub client: String,
}

/// Claims beyond the registered ones (which jsonwebtoken validates).
#[derive(Deserialize)]
struct ExtraClaims {
    #[serde(default)]
    roles: Vec<String>,
    appid: Option<String>,
    azp: Option<String>,
    // Missing: refused by jsonwebtoken's required claims, not here.
    #[serde(default)]
    iss: String,
}

/// The subset of the OpenID Connect metadata document that is used.
#[derive(Deserialize)]
struct OpenIdConfiguration {
    issuer: String,
    jwks_uri: String,
}

#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<serde_json::Value>,
}

/// One fetched key set and the issuers it goes with.
struct KeySet {
    issuers: [String; 2],
    keys: HashMap<String, DecodingKey>,
    fetched_at: Instant,
}

/// Bookkeeping of fetches, behind the async lock that makes them one at a time.
#[derive(Default)]
struct FetchState {
    last_attempt: Option<Instant>,
    /// Why the last attempt failed (`None` after a success).
    last_error: Option<String>,
}

/// Validates Event Grid's Entra ID bearer tokens for one tenant and application.
pub struct EntraValidator {
    settings: EntraSettings,
    audiences: Vec<String>,
    http: reqwest::Client,
    keys: RwLock<Option<Arc<KeySet>>>,
    fetch: tokio::sync::Mutex<FetchState>,
}

impl fmt::Debug for EntraValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let held = self.current().map_or(0, |k| k.keys.len());
        f.debug_struct("EntraValidator")
            .field("tenant", &self.settings.tenant)
            .field("audiences", &self.audiences)
            .field("authority", &self.settings.authority.as_str())
            .field("keys_held", &held)
            .finish_non_exhaustive()
    }
}

impl EntraValidator {
    /// A validator that fetches keys with `http` (each request bounded by `fetch_timeout`).
    pub fn new(settings: EntraSettings, http: reqwest::Client) -> Self {
        // jsonwebtoken picks its crypto provider from its crate features; should feature
        // unification ever enable a second backend, select aws-lc-rs here rather than panic later.
        if CryptoProvider::try_get_default().is_none() {
            let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
        }
        let audiences = audiences_for(&settings.audience);
        Self {
            settings,
            audiences,
            http,
            keys: RwLock::new(None),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
        }
    }

    /// A validator with patchwatch's default HTTP client.
    pub fn from_settings(settings: EntraSettings) -> Self {
        Self::new(settings, crate::http::default_http_client())
    }

    /// The audiences accepted in `aud`.
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    /// Checks `token` (the text after `Bearer `).
    pub async fn validate(&self, token: &str) -> Result<EntraCaller, EntraError> {
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(EntraError::Rejected(Rejection::Malformed));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| EntraError::Rejected(Rejection::Malformed))?;
        if header.alg != Algorithm::RS256 {
            return Err(EntraError::Rejected(Rejection::Algorithm));
        }
        let kid = header
            .kid
            .filter(|k| !k.is_empty() && k.len() <= 256)
            .ok_or(EntraError::Rejected(Rejection::UnknownKey))?;
        let set = self.key_set_for(&kid).await?;
        let key = set.keys.get(&kid).ok_or(EntraError::Rejected(Rejection::UnknownKey))?;

        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = self.settings.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_required_spec_claims(&["exp", "aud", "iss"]);
        validation.set_audience(&self.audiences);
        validation.set_issuer(&set.issuers[..]);
        let data = jsonwebtoken::decode::<ExtraClaims>(token, key, &validation)
            .map_err(|e| EntraError::Rejected(rejection(e.kind())))?;
        let claims = data.claims;
        if !claims.roles.iter().any(|r| r == EVENT_GRID_ROLE) {
            return Err(EntraError::Rejected(Rejection::Role));
        }
        let client = claims.appid.or(claims.azp).unwrap_or_default();
        if !client.eq_ignore_ascii_case(EVENT_GRID_APP_ID) {
            return Err(EntraError::Rejected(Rejection::Client));
        }
        Ok(EntraCaller { issuer: claims.iss, client })
    }

    fn current(&self) -> Option<Arc<KeySet>> {
        match self.keys.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn store(&self, set: Arc<KeySet>) {
        match self.keys.write() {
            Ok(mut g) => *g = Some(set),
            Err(poisoned) => *poisoned.into_inner() = Some(set),
        }
    }

    fn usable(&self, set: &KeySet, kid: &str) -> bool {
        set.keys.contains_key(kid) && set.fetched_at.elapsed() < self.settings.refresh_every
    }

    /// The key set to check a token signed with `kid` against: the cached one when it knows the
    /// key and is fresh, else after a fetch (one at a time, at most one per `min_refetch`).
    async fn key_set_for(&self, kid: &str) -> Result<Arc<KeySet>, EntraError> {
        if let Some(set) = self.current().filter(|s| self.usable(s, kid)) {
            return Ok(set);
        }
        let mut state = self.fetch.lock().await;
        // Whoever held the lock may have fetched what this token needs.
        if let Some(set) = self.current().filter(|s| self.usable(s, kid)) {
            return Ok(set);
        }
        let may_fetch = state.last_attempt.is_none_or(|t| t.elapsed() >= self.settings.min_refetch);
        if may_fetch {
            state.last_attempt = Some(Instant::now());
            let had_kid = self.current().is_some_and(|s| s.keys.contains_key(kid));
            match self.fetch_key_set().await {
                Ok(set) => {
                    tracing::info!(
                        keys = set.keys.len(),
                        reason = if had_kid { "refresh" } else { "key not cached" },
                        "Entra ID signing keys fetched."
                    );
                    self.store(Arc::new(set));
                    state.last_error = None;
                }
                Err(problem) => {
                    tracing::warn!(problem = %problem, "Entra ID signing keys could not be fetched.");
                    state.last_error = Some(problem);
                }
            }
        }
        match (self.current(), &state.last_error) {
            // Known key: use it, stale or not (keys rotate with overlap; a failed refresh retries later).
            (Some(set), _) if set.keys.contains_key(kid) => Ok(set),
            // Unknown key while Entra cannot be asked: it may be a new key, so "retry later".
            (_, Some(problem)) => Err(EntraError::KeysUnavailable(problem.clone())),
            (Some(_), None) => Err(EntraError::Rejected(Rejection::UnknownKey)),
            (None, None) => Err(EntraError::KeysUnavailable("no signing keys fetched yet".to_owned())),
        }
    }

    async fn fetch_key_set(&self) -> Result<KeySet, String> {
        let metadata_url = self.settings.metadata_url();
        let body = self.get("OpenID configuration", &metadata_url).await?;
        let doc: OpenIdConfiguration =
            serde_json::from_slice(&body).map_err(|e| format!("OpenID configuration is not the expected JSON: {e}"))?;
        let issuers = issuers_from(&doc.issuer, &self.settings.authority)?;
        let jwks_url =
            Url::parse(&doc.jwks_uri).map_err(|e| format!("OpenID configuration jwks_uri is not a URL: {e}"))?;
        let plain_http_ok = self.settings.authority.scheme() == "http";
        if jwks_url.scheme() != "https" && !(plain_http_ok && jwks_url.scheme() == "http") {
            return Err("OpenID configuration jwks_uri is not https".to_owned());
        }
        let body = self.get("JWKS", jwks_url.as_str()).await?;
        let doc: JwksDocument =
            serde_json::from_slice(&body).map_err(|e| format!("JWKS is not the expected JSON: {e}"))?;
        let keys = rs256_keys(doc.keys);
        if keys.is_empty() {
            return Err("JWKS holds no RSA signing key".to_owned());
        }
        Ok(KeySet { issuers, keys, fetched_at: Instant::now() })
    }

    /// GETs a JSON document of bounded size.
    async fn get(&self, what: &str, url: &str) -> Result<Vec<u8>, String> {
        let mut response = self
            .http
            .get(url)
            .header("accept", "application/json")
            .timeout(self.settings.fetch_timeout)
            .send()
            .await
            .map_err(|e| format!("{what} request failed: {}", without_url(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("{what} answered HTTP {}", status.as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) =
            response.chunk().await.map_err(|e| format!("{what} could not be read: {}", without_url(&e)))?
        {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(format!("{what} is larger than {MAX_DOCUMENT_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// A reqwest error without its URL (URLs here carry nothing secret, but keep logs short).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "bad body"
    } else {
        "transport error"
    };
    kind.to_owned()
}

/// The accepted `aud` values for a configured audience.
fn audiences_for(configured: &str) -> Vec<String> {
    let configured = configured.trim();
    let mut out = vec![configured.to_owned()];
    let guid = configured.strip_prefix("api://").unwrap_or(configured);
    if is_guid(guid) {
        let guid = guid.to_ascii_lowercase();
        for form in [guid.clone(), format!("api://{guid}")] {
            if !out.contains(&form) {
                out.push(form);
            }
        }
    }
    out
}

/// The two accepted issuers: the document's (v2.0) and the v1.0 form for the same tenant id.
fn issuers_from(v2_issuer: &str, authority: &Url) -> Result<[String; 2], String> {
    let url = Url::parse(v2_issuer).map_err(|_| "OpenID configuration issuer is not a URL".to_owned())?;
    let segments: Vec<&str> = url.path_segments().map(|s| s.filter(|p| !p.is_empty()).collect()).unwrap_or_default();
    let tenant_id = match segments.as_slice() {
        [tenant, "v2.0"] if is_guid(tenant) => tenant.to_ascii_lowercase(),
        _ => {
            return Err("OpenID configuration issuer is not {authority}/{tenant id}/v2.0 (a multi-tenant authority?)"
                .to_owned());
        }
    };
    let v1_host = if authority.host_str().is_some_and(|h| h.ends_with(".cn")) {
        "sts.chinacloudapi.cn"
    } else {
        "sts.windows.net"
    };
    Ok([v2_issuer.to_owned(), format!("https://{v1_host}/{tenant_id}/")])
}

/// RS256 signing keys by `kid`; anything else in the set (other key types, encryption keys,
/// keys for other algorithms, entries that do not parse) is skipped.
fn rs256_keys(entries: Vec<serde_json::Value>) -> HashMap<String, DecodingKey> {
    let mut keys = HashMap::new();
    let mut seen = HashSet::new();
    for entry in entries.into_iter().take(MAX_KEYS) {
        let Ok(jwk) = serde_json::from_value::<Jwk>(entry) else { continue };
        let Some(kid) = jwk.common.key_id.clone().filter(|k| !k.is_empty()) else { continue };
        if jwk.common.public_key_use.as_ref().is_some_and(|u| *u != PublicKeyUse::Signature) {
            continue;
        }
        if jwk.common.key_algorithm.is_some_and(|a| a != KeyAlgorithm::RS256) {
            continue;
        }
        let AlgorithmParameters::RSA(rsa) = &jwk.algorithm else { continue };
        let Ok(key) = DecodingKey::from_rsa_components(&rsa.n, &rsa.e) else { continue };
        // A kid published twice is ambiguous: keep neither.
        if !seen.insert(kid.clone()) {
            keys.remove(&kid);
            continue;
        }
        keys.insert(kid, key);
    }
    keys
}

fn rejection(kind: &ErrorKind) -> Rejection {
    match kind {
        ErrorKind::InvalidSignature => Rejection::Signature,
        ErrorKind::ExpiredSignature => Rejection::Expired,
        ErrorKind::ImmatureSignature => Rejection::NotYetValid,
        ErrorKind::InvalidAudience => Rejection::Audience,
        ErrorKind::InvalidIssuer => Rejection::Issuer,
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm | ErrorKind::UnsupportedAlgorithm => {
            Rejection::Algorithm
        }
        ErrorKind::MissingRequiredClaim(_) => Rejection::MissingClaim,
        ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidKeyFormat => Rejection::Signature,
        _ => Rejection::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audience_forms_pair_an_application_id_with_its_default_uri() {
        let guid = "6A1E3C2B-0000-4000-8000-00000000ABCD";
        let lower = guid.to_ascii_lowercase();
        assert_eq!(audiences_for(guid), vec![guid.to_owned(), lower.clone(), format!("api://{lower}")]);
        assert_eq!(audiences_for(&format!("api://{lower}")), vec![format!("api://{lower}"), lower.clone()]);
        assert_eq!(audiences_for("https://contoso.example/patchwatch"), vec!["https://contoso.example/patchwatch"]);
        assert_eq!(audiences_for("api://patchwatch"), vec!["api://patchwatch"]);
    }

    #[test]
    fn issuers_come_from_the_document_with_the_v1_form_for_the_same_tenant() {
        let public = Url::parse(DEFAULT_AUTHORITY).unwrap();
        let tid = "72f988bf-86f1-41af-91ab-2d7cd011db47";
        let v2 = format!("https://login.microsoftonline.com/{tid}/v2.0");
        assert_eq!(issuers_from(&v2, &public).unwrap(), [v2.clone(), format!("https://sts.windows.net/{tid}/")]);
        let china = Url::parse("https://login.chinacloudapi.cn").unwrap();
        let v2cn = format!("https://login.chinacloudapi.cn/{tid}/v2.0");
        assert_eq!(issuers_from(&v2cn, &china).unwrap()[1], format!("https://sts.chinacloudapi.cn/{tid}/"));
        for bad in
            ["https://login.microsoftonline.com/{tenantid}/v2.0", "https://login.microsoftonline.com/common", "x"]
        {
            assert!(issuers_from(bad, &public).is_err(), "{bad}");
        }
    }

    #[test]
    fn key_sets_keep_rs256_signing_keys_only() {
        let n = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";
        let e = "AQAB";
        let entries = vec![
            serde_json::json!({ "kty": "RSA", "use": "sig", "kid": "a", "n": n, "e": e, "x5t": "a", "issuer": "https://login.microsoftonline.com/{tenantid}/v2.0" }),
            serde_json::json!({ "kty": "RSA", "use": "enc", "kid": "enc", "n": n, "e": e }),
            serde_json::json!({ "kty": "RSA", "alg": "RS512", "kid": "rs512", "n": n, "e": e }),
            serde_json::json!({ "kty": "EC", "crv": "P-256", "kid": "ec", "x": "AA", "y": "AA" }),
            serde_json::json!({ "kty": "RSA", "n": n, "e": e }),
            serde_json::json!({ "kty": "RSA", "kid": "dup", "n": n, "e": e }),
            serde_json::json!({ "kty": "RSA", "kid": "dup", "n": n, "e": e }),
            serde_json::json!("not a key"),
        ];
        let keys = rs256_keys(entries);
        let mut kids: Vec<_> = keys.keys().cloned().collect();
        kids.sort();
        assert_eq!(kids, vec!["a"]);
    }

    #[tokio::test]
    async fn garbage_is_refused_before_any_fetch_and_nothing_panics() {
        // An unroutable authority: any fetch would fail and show up as KeysUnavailable.
        let settings = EntraSettings::new(
            "72f988bf-86f1-41af-91ab-2d7cd011db47",
            "6a1e3c2b-0000-4000-8000-00000000abcd",
            Url::parse("http://127.0.0.1:9").unwrap(),
        );
        let v = EntraValidator::new(settings, reqwest::Client::new());
        let long = "a".repeat(MAX_TOKEN_BYTES + 1);
        for token in ["", "abc", "a.b", "a.b.c", "....", "\u{0}.\u{0}.\u{0}", long.as_str(), "eyJhbGciOiJub25lIn0.e30."]
        {
            assert_eq!(v.validate(token).await, Err(EntraError::Rejected(Rejection::Malformed)), "{token:?}");
        }
        // HS256 (the classic key-confusion attack) is refused on the header alone.
        let hs = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImEifQ.e30.c2ln";
        assert_eq!(v.validate(hs).await, Err(EntraError::Rejected(Rejection::Algorithm)));
        // RS256 without a kid cannot name a key.
        let no_kid = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.e30.c2ln";
        assert_eq!(v.validate(no_kid).await, Err(EntraError::Rejected(Rejection::UnknownKey)));
        assert!(!format!("{v:?}").contains("n:"), "{v:?}");
    }
}
