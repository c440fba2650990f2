//! Entra ID delivery on `POST /api/events` (`PATCHWATCH_EVENTS_AUDIENCE`): Event Grid's bearer
//! token is checked for signature (keys from a loopback fake of the tenant's OpenID metadata and
//! JWKS), issuer, audience, expiry and not-before, app role and client. A refused token answers
//! 401 and changes nothing (no mail, state directory byte for byte the same); keys that cannot be
//! fetched answer 503 with `Retry-After`; a valid token is processed.

use std::{sync::Arc, time::Duration};

use integration_tests::{
    entra::{
        self, APP_ID, FakeEntra, TENANT, TestKey, hs256_with_public_key, tampered, unsigned, v1_claims, v2_claims, with,
    },
    example, files, http, pipeline, root,
    world::state_of,
};
use maintenance_events::{AppState, router};
use patchwatch_azure::entra::EntraError;
use patchwatch_azure::entra::EntraSettings;
use patchwatch_azure::entra::EntraValidator;
use patchwatch_azure::entra::Rejection;
use patchwatch_engine::config::Config;
use patchwatch_engine::config::Defaults;
use patchwatch_model::secret::Secret;
use serde_json::{Value, json};

struct Handler {
    url: String,
    outbox: tempfile::TempDir,
    state: tempfile::TempDir,
    validator: Arc<EntraValidator>,
}

impl Handler {
    /// POSTs the example post-maintenance event with `authorization` (if any).
    async fn post(&self, authorization: Option<String>) -> (u16, reqwest::header::HeaderMap, Value) {
        self.post_body(authorization, example("events/post-maintenance.json")).await
    }

    async fn post_body(&self, authorization: Option<String>, body: String) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = http().post(&self.url).header("content-type", "application/json").body(body);
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.json().await.unwrap_or(Value::Null);
        (status, headers, body)
    }

    fn mails(&self) -> usize {
        files(self.outbox.path(), "eml").len()
    }

    fn state(&self) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
        state_of(self.state.path())
    }
}

fn bearer(token: &str) -> Option<String> {
    Some(format!("Bearer {token}"))
}

/// The events handler configured the way an operator would (`PATCHWATCH_EVENTS_AUDIENCE`,
/// `AZURE_TENANT_ID`, `PATCHWATCH_ENTRA_AUTHORITY` at the fake), with the example snapshot, an
/// outbox and a state directory of its own. `min_refetch` replaces the one-minute default so
/// tests need not wait a minute; `None` keeps it.
async fn handler(fake: &FakeEntra, min_refetch: Option<Duration>, static_token: Option<&str>) -> Handler {
    let outbox = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let snapshot = root().join("examples/snapshot.json").display().to_string();
    let vars = [
        ("PATCHWATCH_OUTBOX", outbox.path().display().to_string()),
        ("PATCHWATCH_SNAPSHOT", snapshot),
        ("PATCHWATCH_STATE", format!("file://{}", state.path().display())),
        ("PATCHWATCH_EVENTS_AUDIENCE", format!("api://{APP_ID}")),
        ("AZURE_TENANT_ID", TENANT.to_owned()),
        ("PATCHWATCH_ENTRA_AUTHORITY", fake.base.clone()),
    ];
    let lookup = |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
    let config = Config::from_lookup(lookup, &Defaults::default()).unwrap();
    let mut settings = EntraSettings::from(config.events_entra.as_ref().unwrap());
    if let Some(d) = min_refetch {
        settings.min_refetch = d;
    }
    let validator = Arc::new(EntraValidator::new(settings, http()));
    let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let state_for = AppState::new(pipeline(&refs), static_token.map(Secret::new)).with_entra(Some(validator.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(state_for);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Handler { url: format!("http://{addr}/api/events"), outbox, state, validator }
}

fn assert_unauthorized(what: &str, status: u16, body: &Value) {
    assert_eq!(status, 401, "{what}: {body}");
    assert_eq!(body["error"]["code"], "unauthorized", "{what}: {body}");
    assert_eq!(body["error"]["field"], "Authorization", "{what}: {body}");
}

fn sent(body: &Value) -> &str {
    body["events"][0]["outcome"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_valid_event_grid_token_is_processed() {
    let a = TestKey::load("a", "key-a");
    let fake = FakeEntra::start(&[&a]).await;
    let h = handler(&fake, None, None).await;
    assert!(h.state().is_empty());

    // A v1.0 token (the default for an app registration): audience api://<app id>, issuer sts.windows.net.
    let (status, _, body) = h.post(bearer(&a.sign(&v1_claims()))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(sent(&body), "sent", "{body}");
    assert_eq!(h.mails(), 1, "the summary went out");
    assert!(!h.state().is_empty(), "the delivery ledger recorded the run");
    assert_eq!(fake.jwks_fetches(), 1);

    // A v2.0 token: audience the bare application id, the document's issuer, client in azp. The
    // run is already delivered, so the ledger answers "duplicate" and nothing more is sent.
    let (status, _, body) = h.post(bearer(&a.sign(&v2_claims(&fake)))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(sent(&body), "duplicate", "{body}");
    assert_eq!(h.mails(), 1);
    assert_eq!(fake.jwks_fetches(), 1, "known keys are served from the cache");

    // Debug output names the tenant and how many keys are held, never the keys.
    let debug = format!("{:?}", h.validator);
    let modulus = a.jwk["n"].as_str().unwrap();
    assert!(debug.contains(TENANT) && debug.contains("keys_held: 1"), "{debug}");
    assert!(!debug.contains(&modulus[..32]), "{debug}");
}

#[tokio::test]
async fn refused_tokens_answer_401_and_change_nothing() {
    let a = TestKey::load("a", "key-a");
    let attacker = TestKey::load("c", "key-c");
    let fake = FakeEntra::start(&[&a]).await;
    let h = handler(&fake, Some(Duration::from_millis(300)), None).await;
    let before = h.state();

    let valid = a.sign(&v1_claims());
    let t = entra::now();
    let other_tenant = "11111111-2222-4333-8444-555555555555";
    // Without a usable bearer token at all.
    for (what, auth) in [("no Authorization", None), ("not a bearer", Some(format!("Basic {valid}")))] {
        let (status, _, body) = h.post(auth).await;
        assert_unauthorized(what, status, &body);
    }
    // Tokens, each with the reason the validator must give.
    let iss = |v: String| with(v1_claims(), "iss", json!(v));
    let cases: Vec<(&str, String, Rejection)> = vec![
        ("garbage", "not-a-jwt".to_owned(), Rejection::Malformed),
        ("wrong audience", a.sign(&with(v1_claims(), "aud", json!("api://someone-else"))), Rejection::Audience),
        ("another application id", a.sign(&with(v1_claims(), "aud", json!(other_tenant))), Rejection::Audience),
        ("no audience", a.sign(&with(v1_claims(), "aud", Value::Null)), Rejection::MissingClaim),
        (
            "wrong issuer (v1, other tenant)",
            a.sign(&iss(format!("https://sts.windows.net/{other_tenant}/"))),
            Rejection::Issuer,
        ),
        (
            "wrong issuer (v2, other tenant)",
            a.sign(&iss(format!("{}/{other_tenant}/v2.0", fake.base))),
            Rejection::Issuer,
        ),
        (
            "wrong issuer (public cloud, not the configured authority)",
            a.sign(&iss(format!("https://login.microsoftonline.com/{TENANT}/v2.0"))),
            Rejection::Issuer,
        ),
        (
            "bad signature (tampered payload)",
            tampered(&valid, &with(v1_claims(), "aud", json!("api://someone-else-entirely"))),
            Rejection::Signature,
        ),
        (
            "bad signature (published kid, attacker's key)",
            attacker.sign_as("key-a", &v1_claims()),
            Rejection::Signature,
        ),
        (
            "expired",
            a.sign(&with(with(v1_claims(), "exp", json!(t - 3600)), "nbf", json!(t - 7200))),
            Rejection::Expired,
        ),
        ("expired beyond the 60 s leeway", a.sign(&with(v1_claims(), "exp", json!(t - 120))), Rejection::Expired),
        ("no expiry", a.sign(&with(v1_claims(), "exp", Value::Null)), Rejection::MissingClaim),
        ("no issuer", a.sign(&with(v1_claims(), "iss", Value::Null)), Rejection::MissingClaim),
        ("not yet valid", a.sign(&with(v1_claims(), "nbf", json!(t + 600))), Rejection::NotYetValid),
        ("without the app role", a.sign(&with(v1_claims(), "roles", json!(["Reader"]))), Rejection::Role),
        ("no roles claim", a.sign(&with(v1_claims(), "roles", Value::Null)), Rejection::Role),
        ("another client application", a.sign(&with(v1_claims(), "appid", json!(APP_ID))), Rejection::Client),
        ("alg none", unsigned("key-a", &v1_claims()), Rejection::Malformed),
        ("HS256 keyed with the public key", hs256_with_public_key(&a, &v1_claims()), Rejection::Algorithm),
    ];
    for (what, token, reason) in cases {
        assert_eq!(h.validator.validate(&token).await, Err(EntraError::Rejected(reason)), "{what}");
        let (status, _, body) = h.post(bearer(&token)).await;
        assert_unauthorized(what, status, &body);
    }
    // Inside the leeway a just-expired or not-quite-valid token still passes (clock skew).
    let skewed = with(with(v1_claims(), "exp", json!(t - 20)), "nbf", json!(t + 20));
    assert!(h.validator.validate(&a.sign(&skewed)).await.is_ok());
    assert_eq!(fake.jwks_fetches(), 1, "refusals on known keys do not refetch");

    // Signed by a key the tenant never published: the JWKS is fetched again (once the minimum
    // interval has passed) and still lacks it, so 401.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, _, body) = h.post(bearer(&attacker.sign(&v1_claims()))).await;
    assert_unauthorized("unknown key", status, &body);
    assert_eq!(fake.jwks_fetches(), 2, "an unknown kid refetches the key set once");
    let unknown = h.validator.validate(&attacker.sign(&v1_claims())).await;
    assert_eq!(unknown, Err(EntraError::Rejected(Rejection::UnknownKey)));

    assert_eq!(h.mails(), 0, "a refused delivery sent mail");
    assert_eq!(h.state(), before, "a refused delivery changed the state directory");
    // The same event with a valid token goes through: the refusals were about the tokens.
    let (status, _, body) = h.post(bearer(&valid)).await;
    assert_eq!((status, sent(&body)), (200, "sent"), "{body}");
    assert_eq!(h.mails(), 1);
}

#[tokio::test]
async fn rotated_keys_are_picked_up_after_a_refetch() {
    let a = TestKey::load("a", "key-a");
    let b = TestKey::load("b", "key-b");
    let fake = FakeEntra::start(&[&a]).await;
    let h = handler(&fake, Some(Duration::from_millis(200)), None).await;
    let (status, _, body) = h.post(bearer(&a.sign(&v1_claims()))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(fake.jwks_fetches(), 1);

    // Entra rotates: the JWKS now holds only key b, and Event Grid's next token is signed with it.
    fake.publish(&[&b]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _, body) = h.post(bearer(&b.sign(&v1_claims()))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(fake.jwks_fetches(), 2, "the new kid was fetched once");
    let (status, _, _) = h.post(bearer(&b.sign(&v2_claims(&fake)))).await;
    assert_eq!(status, 200);
    assert_eq!(fake.jwks_fetches(), 2, "and is served from the cache afterwards");

    // The retired key is no longer trusted once it left the set.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _, body) = h.post(bearer(&a.sign(&v1_claims()))).await;
    assert_unauthorized("retired key", status, &body);
}

#[tokio::test]
async fn a_burst_of_unknown_keys_refetches_at_most_once_per_interval() {
    let a = TestKey::load("a", "key-a");
    let attacker = TestKey::load("c", "key-c");
    let fake = FakeEntra::start(&[&a]).await;

    // With the default one-minute interval: the first token fetches, then 50 forged kids right
    // after it fetch nothing more.
    let h = handler(&fake, None, None).await;
    assert_eq!(h.post(bearer(&a.sign(&v1_claims()))).await.0, 200);
    assert_eq!(fake.jwks_fetches(), 1);
    let burst = (0..50).map(|i| {
        let token = attacker.sign_as(&format!("forged-{i}"), &v1_claims());
        let h = &h;
        async move { h.post(bearer(&token)).await.0 }
    });
    let statuses = futures::future::join_all(burst).await;
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    assert_eq!(fake.jwks_fetches(), 1, "forged kids inside the interval fetched the JWKS");

    // With a short interval that has passed: 50 concurrent forged kids share one refetch.
    let fake = FakeEntra::start(&[&a]).await;
    let h = handler(&fake, Some(Duration::from_millis(500)), None).await;
    assert_eq!(h.post(bearer(&a.sign(&v1_claims()))).await.0, 200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let before = fake.jwks_fetches();
    let burst = (0..50).map(|i| {
        let token = attacker.sign_as(&format!("forged-{i}"), &v1_claims());
        let h = &h;
        async move { h.post(bearer(&token)).await.0 }
    });
    let statuses = futures::future::join_all(burst).await;
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    let refetches = fake.jwks_fetches() - before;
    assert!((1..=2).contains(&refetches), "{refetches} refetches for a burst of 50 unknown kids");
    // Valid tokens kept working throughout.
    assert_eq!(h.post(bearer(&a.sign(&v2_claims(&fake)))).await.0, 200);
}

#[tokio::test]
async fn the_static_token_still_works_alongside() {
    let a = TestKey::load("a", "key-a");
    let fake = FakeEntra::start(&[&a]).await;
    let h = handler(&fake, None, Some("s3cret-token")).await;
    let (status, _, body) = h.post(Some("Bearer wrong".to_owned())).await;
    assert_unauthorized("wrong static token", status, &body);
    assert_eq!(h.mails(), 0);
    let (status, _, body) = h.post(Some("Bearer s3cret-token".to_owned())).await;
    assert_eq!((status, sent(&body)), (200, "sent"), "{body}");
    assert_eq!(fake.jwks_fetches(), 0, "the static token needs no Entra round trip");
    let (status, _, body) = h.post(bearer(&a.sign(&v1_claims()))).await;
    assert_eq!((status, sent(&body)), (200, "duplicate"), "{body}");
    assert_eq!(h.mails(), 1);
}

#[tokio::test]
async fn entra_down_answers_503_with_retry_after_and_changes_nothing() {
    let a = TestKey::load("a", "key-a");
    let b = TestKey::load("b", "key-b");
    let fake = FakeEntra::start(&[&a]).await;
    fake.set_failing(true);
    let h = handler(&fake, Some(Duration::from_secs(1)), None).await;
    let before = h.state();

    let (status, headers, body) = h.post(bearer(&a.sign(&v1_claims()))).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "retry_later", "{body}");
    let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after >= 1, "{retry_after}");
    assert_eq!(h.mails(), 0);
    assert_eq!(h.state(), before, "a delivery that could not be checked changed the state");
    // Asking again at once does not hammer Entra: the failure is remembered for the interval.
    let fetches = fake.metadata_fetches();
    assert_eq!(h.post(bearer(&a.sign(&v1_claims()))).await.0, 503);
    assert_eq!(fake.metadata_fetches(), fetches);
    // The subscription validation handshake is still answered.
    let handshake = json!([{
        "id": "2d1781af-0000-0000-0000-000000000000", "topic": "/subscriptions/00000000-0000-0000-0000-000000000000",
        "subject": "", "data": { "validationCode": "512d38b6-0000-0000-0000-000000000000" },
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent", "eventTime": "2026-10-28T04:23:35Z",
        "metadataVersion": "1", "dataVersion": "1"
    }]);
    let (status, _, body) = h.post_body(bearer(&a.sign(&v1_claims())), handshake.to_string()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["validationResponse"], "512d38b6-0000-0000-0000-000000000000");

    // Entra is back: after the interval the keys are fetched and the event goes through.
    fake.set_failing(false);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _, body) = h.post(bearer(&a.sign(&v1_claims()))).await;
    assert_eq!((status, sent(&body)), (200, "sent"), "{body}");

    // Down again with the keys cached: known keys keep working, an unknown kid cannot be ruled
    // out (it may be a new key), so it is "retry later", not a refusal.
    fake.set_failing(true);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(h.post(bearer(&a.sign(&v1_claims()))).await.0, 200);
    let (status, headers, _) = h.post(bearer(&b.sign(&v1_claims()))).await;
    assert_eq!(status, 503);
    assert!(headers.contains_key("retry-after"));
}
