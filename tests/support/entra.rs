//! A loopback fake of Microsoft Entra ID's token-signing metadata, built from the documented
//! contracts ("OpenID Connect on the Microsoft identity platform", "Access tokens: validate the
//! signature"):
//! - `GET /{tenant}/v2.0/.well-known/openid-configuration` → `{"issuer": "{base}/{tenant}/v2.0",
//!   "jwks_uri": "{base}/{tenant}/discovery/v2.0/keys", …}`;
//! - `GET /{tenant}/discovery/v2.0/keys` → `{"keys": [{"kty": "RSA", "use": "sig", "kid", "x5t",
//!   "n", "e", "issuer"}, …]}`.
//!
//! The test owns the keys (`tests/fixtures/entra/test-only-rsa-*.pem`), swaps the published set
//! (key rotation), counts fetches and can make both endpoints answer 500 (Entra down). Tokens are
//! minted with the claims Event Grid's tokens carry (azure-contracts §2.6).

use std::{
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header, jwk::Jwk};
use serde_json::{Value, json};

/// The tenant the fake serves (any GUID works; this one is made up).
pub const TENANT: &str = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";
/// The webhook application's (client) id that `PATCHWATCH_EVENTS_AUDIENCE` names.
pub const APP_ID: &str = "6a1e3c2b-7d4f-4e8a-9b0c-1d2e3f4a5b6c";
/// Event Grid's application id and app role (azure-contracts §2.6).
pub const EVENT_GRID_APP_ID: &str = "4962773b-9cdb-44cf-a8bf-237846a00ab7";
pub const EVENT_GRID_ROLE: &str = "AzureEventGridSecureWebhookSubscriber";

/// A test-only RSA key with the `kid` it is published and signs under.
pub struct TestKey {
    pub kid: String,
    pub encoding: EncodingKey,
    /// The public half as a JWK, as Entra publishes it.
    pub jwk: Value,
}

impl TestKey {
    /// Loads `tests/fixtures/entra/test-only-rsa-{name}.pem` and names it `kid`.
    pub fn load(name: &str, kid: &str) -> Self {
        let path = crate::root().join(format!("tests/fixtures/entra/test-only-rsa-{name}.pem"));
        let pem = std::fs::read(&path).unwrap();
        let encoding = EncodingKey::from_rsa_pem(&pem).unwrap();
        let mut jwk = serde_json::to_value(Jwk::from_encoding_key(&encoding, Algorithm::RS256).unwrap()).unwrap();
        // Entra's keys carry use, kid, x5t and (v2.0) the issuer, but no alg.
        let obj = jwk.as_object_mut().unwrap();
        obj.remove("alg");
        obj.insert("use".into(), json!("sig"));
        obj.insert("kid".into(), json!(kid));
        obj.insert("x5t".into(), json!(kid));
        obj.insert("issuer".into(), json!(format!("https://login.microsoftonline.com/{TENANT}/v2.0")));
        Self { kid: kid.to_owned(), encoding, jwk }
    }

    /// Signs `claims` as RS256 with this key's `kid` in the header.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_as(&self.kid, claims)
    }

    /// Signs with this key but names another `kid` (a forged token for a published key id).
    pub fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

#[derive(Default)]
struct FakeState {
    keys: Vec<Value>,
    jwks_fetches: usize,
    metadata_fetches: usize,
    failing: bool,
}

/// The fake, serving on `base`.
#[derive(Clone)]
pub struct FakeEntra {
    pub base: String,
    state: Arc<Mutex<FakeState>>,
}

impl FakeEntra {
    /// Starts the fake on a fresh loopback port, publishing `keys`.
    pub async fn start(keys: &[&TestKey]) -> Self {
        let state = Arc::new(Mutex::new(FakeState::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let fake = FakeEntra { base: base.clone(), state: state.clone() };
        fake.publish(keys);
        let router = Router::new()
            .route("/{tenant}/v2.0/.well-known/openid-configuration", get(metadata))
            .route("/{tenant}/discovery/v2.0/keys", get(jwks))
            .with_state((base, state));
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        fake
    }

    /// Replaces the published key set.
    pub fn publish(&self, keys: &[&TestKey]) {
        self.state.lock().unwrap().keys = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    /// Makes both endpoints answer 500 (or work again).
    pub fn set_failing(&self, failing: bool) {
        self.state.lock().unwrap().failing = failing;
    }

    /// How many times the JWKS was served (or refused while failing).
    pub fn jwks_fetches(&self) -> usize {
        self.state.lock().unwrap().jwks_fetches
    }

    pub fn metadata_fetches(&self) -> usize {
        self.state.lock().unwrap().metadata_fetches
    }

    /// The issuer of v2.0 tokens, as the OpenID document says.
    pub fn v2_issuer(&self) -> String {
        format!("{}/{TENANT}/v2.0", self.base)
    }
}

/// The issuer of v1.0 tokens for the tenant.
pub fn v1_issuer() -> String {
    format!("https://sts.windows.net/{TENANT}/")
}

type Shared = State<(String, Arc<Mutex<FakeState>>)>;

async fn metadata(State((base, state)): Shared, Path(tenant): Path<String>) -> Response {
    let mut s = state.lock().unwrap();
    s.metadata_fetches += 1;
    if s.failing || tenant != TENANT {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    Json(json!({
        "token_endpoint": format!("{base}/{tenant}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/{tenant}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "issuer": format!("{base}/{tenant}/v2.0"),
        "authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/authorize"),
        "tenant_region_scope": "EU",
    }))
    .into_response()
}

async fn jwks(State((_, state)): Shared, Path(tenant): Path<String>) -> Response {
    let mut s = state.lock().unwrap();
    s.jwks_fetches += 1;
    if s.failing || tenant != TENANT {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    Json(json!({ "keys": s.keys })).into_response()
}

pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Claims of a v1.0 token as Event Grid gets it for the webhook application: audience the
/// application ID URI, issuer `sts.windows.net`, client Event Grid, the app role.
pub fn v1_claims() -> Value {
    let t = now();
    json!({
        "aud": format!("api://{APP_ID}"),
        "iss": v1_issuer(),
        "iat": t - 60,
        "nbf": t - 60,
        "exp": t + 3600,
        "aio": "E2ZgYNh0test",
        "appid": EVENT_GRID_APP_ID,
        "appidacr": "2",
        "idp": v1_issuer(),
        "oid": "5c2d1e0f-0000-4000-8000-0000000000aa",
        "rh": "0.test.",
        "roles": [EVENT_GRID_ROLE],
        "sub": "5c2d1e0f-0000-4000-8000-0000000000aa",
        "tid": TENANT,
        "uti": "test-uti",
        "ver": "1.0",
    })
}

/// Claims of a v2.0 token: audience the application id, the document's issuer, client in `azp`.
pub fn v2_claims(fake: &FakeEntra) -> Value {
    let t = now();
    json!({
        "aud": APP_ID,
        "iss": fake.v2_issuer(),
        "iat": t - 60,
        "nbf": t - 60,
        "exp": t + 3600,
        "azp": EVENT_GRID_APP_ID,
        "azpacr": "2",
        "oid": "5c2d1e0f-0000-4000-8000-0000000000aa",
        "roles": [EVENT_GRID_ROLE],
        "sub": "5c2d1e0f-0000-4000-8000-0000000000aa",
        "tid": TENANT,
        "ver": "2.0",
    })
}

/// `claims` with `key` set to `value` (`Value::Null` removes it).
pub fn with(mut claims: Value, key: &str, value: Value) -> Value {
    let obj = claims.as_object_mut().unwrap();
    if value.is_null() {
        obj.remove(key);
    } else {
        obj.insert(key.to_owned(), value);
    }
    claims
}

/// `token` with its payload replaced by `claims`, signature kept (a tampered token).
pub fn tampered(token: &str, claims: &Value) -> String {
    let mut parts: Vec<&str> = token.split('.').collect();
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
    parts[1] = &payload;
    parts.join(".")
}

/// An unsigned token (`alg: none`) with `claims`.
pub fn unsigned(kid: &str, claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(json!({ "alg": "none", "typ": "JWT", "kid": kid }).to_string());
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.")
}

/// An HS256 token keyed with the published RSA modulus (the algorithm-confusion attack).
pub fn hs256_with_public_key(key: &TestKey, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(key.kid.clone());
    let secret = key.jwk["n"].as_str().unwrap().as_bytes().to_vec();
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(&secret).unwrap()).unwrap()
}
