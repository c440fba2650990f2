//! One-click action links, end to end: the itsm-webhook router served in-process on 127.0.0.1
//! (with the listener's own layers, as the custom-handler port serves it), links minted by the
//! pipeline's `ActionLinks`, and a real headless Chromium (Debian's, driven by playwright-core
//! through tests/browser/click.mjs) that opens them and presses their buttons.
//!
//! The browser is installed by .ci/run (`apt-get install chromium`, `(cd tests/browser && npm ci)`);
//! without it these tests fail, never skip.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use integration_tests::{browser::browse, pipeline, root, world::state_of};
use patchwatch_engine::links::{ActionLinks, DEFAULT_TTL, LinkAction, LinkTarget};
use patchwatch_engine::pipeline::Pipeline;
use patchwatch_model::secret::Secret;
use time::{OffsetDateTime, macros::datetime};

const KEY: &str = "oneclick-test-key-new-0123456789abcdef0123";
const ROTATED_OUT: &str = "oneclick-test-key-old-fedcba9876543210fedc";
const RUN: &str = "/subscriptions/910a2dec-8902-4cc1-8bee-8da1658eec67/resourceGroups/rg-patching/providers/Microsoft.Maintenance/maintenanceConfigurations/Ring2-Prod/providers/microsoft.maintenance/applyupdates/20261201220000";
const T0: OffsetDateTime = datetime!(2026-12-01 23:30 UTC);

type Files = std::collections::BTreeMap<PathBuf, Vec<u8>>;
/// Form fields or headers.
type Fields<'a> = Vec<(&'a str, &'a str)>;

/// The itsm-webhook app with one-click links on, its state directory and its clock.
struct App {
    base: String,
    pipeline: Arc<Pipeline>,
    state: PathBuf,
    outbox: PathBuf,
    now: Arc<Mutex<OffsetDateTime>>,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl App {
    async fn start(keys: Option<&str>) -> Self {
        let (state_dir, outbox_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let snapshot = root().join("examples/snapshot.json").display().to_string();
        let state = format!("file://{}", state_dir.path().display());
        let outbox = outbox_dir.path().display().to_string();
        let mut vars = vec![
            ("PATCHWATCH_OUTBOX", outbox.as_str()),
            ("PATCHWATCH_SNAPSHOT", snapshot.as_str()),
            ("PATCHWATCH_STATE", state.as_str()),
            ("PATCHWATCH_PUBLIC_URL", base.as_str()),
        ];
        if let Some(k) = keys {
            vars.push(("PATCHWATCH_ACTION_KEYS", k));
        }
        let mut p = pipeline(&vars);
        let now = Arc::new(Mutex::new(T0));
        let clock = now.clone();
        p.set_clock(Arc::new(move || *clock.lock().unwrap()));
        let state_app = itsm_webhook::AppState::new(p, Vec::new());
        let pipeline = state_app.pipeline.clone();
        let router = patchwatch_host::server::bounded(
            itsm_webhook::router(state_app),
            &patchwatch_host::server::ServerLimits::default(),
        );
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self {
            base,
            pipeline,
            state: state_dir.path().to_path_buf(),
            outbox: outbox_dir.path().to_path_buf(),
            now,
            _dirs: (state_dir, outbox_dir),
        }
    }

    fn links(&self) -> &ActionLinks {
        self.pipeline.links.as_ref().unwrap()
    }

    fn link(&self, run: &str, action: LinkAction) -> String {
        let target = LinkTarget { run, configuration: "Ring2-Prod", route: "owners", group: Some("team-web") };
        self.links().link(&target, action, *self.now.lock().unwrap())
    }

    fn set_now(&self, t: OffsetDateTime) {
        *self.now.lock().unwrap() = t;
    }

    /// Everything the app keeps (state store) and sends (outbox).
    fn snapshot(&self) -> (Files, Files) {
        (state_of(&self.state), state_of(&self.outbox))
    }

    async fn acknowledged(&self, run: &str) -> Option<patchwatch_state::approvals::Acknowledgement> {
        self.pipeline.approvals.acknowledgement(run).await.unwrap()
    }
}

/// A token with one character of its claims changed.
fn tamper(token: &str) -> String {
    let (payload, signature) = token.split_once('.').unwrap();
    let mut bytes = payload.as_bytes().to_vec();
    let i = bytes.len() / 2;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    format!("{}.{signature}", String::from_utf8(bytes).unwrap())
}

/// A link whose token has one character of its claims changed.
fn tampered(link: &str) -> String {
    let (head, token) = link.split_once("token=").unwrap();
    format!("{head}token={}", tamper(token))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_in_a_browser_confirms_acts_once_and_refuses_what_is_not_valid() {
    let app = App::start(Some(KEY)).await;
    let link = app.link(RUN, LinkAction::Acknowledge);
    assert!(link.starts_with(&format!("{}/api/action?token=", app.base)), "{link}");

    // Opening the link (as a person, a mail scanner or a link preview would) changes nothing.
    let before = app.snapshot();
    let seen = browse(&link, false, &[]).await;
    assert_eq!(seen.status, 200, "{seen:?}");
    assert_eq!(seen.title, "Acknowledge run 20261201220000 of Ring2-Prod?");
    assert!(seen.text.contains("Nothing has been done yet"), "{}", seen.text);
    assert!(seen.text.contains("owners (owner group team-web)"), "{}", seen.text);
    assert!(seen.text.contains("2026-12-04 23:30 UTC"), "expiry shown: {}", seen.text);
    assert_eq!(app.snapshot(), before, "a GET changed the state");
    assert!(app.acknowledged(RUN).await.is_none());

    // Pressing the button acknowledges the run.
    let seen = browse(&link, true, &[]).await;
    assert!(seen.clicked);
    assert_eq!((seen.status, seen.title.as_str()), (200, "Run 20261201220000 of Ring2-Prod acknowledged"), "{seen:?}");
    let ack = app.acknowledged(RUN).await.expect("the run is acknowledged");
    assert_eq!((ack.by.as_str(), ack.caller.as_str()), ("one-click link (route owners)", "one-click"));
    assert_eq!(ack.at, T0);

    // The same link again: already used, nothing more happens.
    let after_first = app.snapshot();
    let seen = browse(&link, true, &[]).await;
    assert_eq!((seen.status, seen.title.as_str()), (409, "This link was already used"), "{seen:?}");
    assert!(!seen.clicked, "a used link offers no button");
    assert_eq!(app.snapshot(), after_first);

    // Refused links: each page says why, and nothing changes.
    let other_run = RUN.replace("20261201220000", "20261202220000");
    let expired = app.link(&other_run, LinkAction::Acknowledge);
    let rotated_out =
        ActionLinks::new(app.base.parse().unwrap(), vec![Secret::new(ROTATED_OUT)], DEFAULT_TTL).unwrap().link(
            &LinkTarget { run: &other_run, configuration: "Ring2-Prod", route: "owners", group: None },
            LinkAction::Acknowledge,
            T0,
        );
    let tampered = tampered(&app.link(&other_run, LinkAction::Acknowledge));
    let snooze = app.link(&other_run, LinkAction::Snooze);
    for (what, url, click, set, status, title) in [
        ("tampered", tampered.as_str(), true, &[][..], &[400, 403][..], "This link is not valid"),
        ("rotated out", rotated_out.as_str(), true, &[][..], &[403][..], "This link is no longer valid"),
        (
            "wrong action",
            snooze.as_str(),
            true,
            &[("action", "acknowledge")][..],
            &[400][..],
            "This form asks for another action than its link",
        ),
    ] {
        let seen = browse(url, click, set).await;
        assert!(status.contains(&seen.status), "{what}: {seen:?}");
        assert_eq!(seen.title, title, "{what}: {seen:?}");
        assert!(seen.text.contains("Nothing was done"), "{what}: {}", seen.text);
        assert_eq!(app.snapshot(), after_first, "{what} changed the state");
    }
    app.set_now(T0 + time::Duration::hours(73));
    let seen = browse(&expired, true, &[]).await;
    assert_eq!((seen.status, seen.title.as_str()), (410, "This link has expired"), "{seen:?}");
    assert!(seen.text.contains("expired on 2026-12-04 23:30 UTC"), "{}", seen.text);
    assert!(!seen.clicked);
    assert_eq!(app.snapshot(), after_first, "an expired link changed the state");
    assert!(app.acknowledged(&other_run).await.is_none());
}

/// The confirmation form's hidden fields, as the browser would post them.
async fn form_of(link: &str) -> (String, String, String) {
    let html = reqwest::get(link).await.unwrap().text().await.unwrap();
    let field = |name: &str| {
        let start = html.find(&format!("name=\"{name}\" value=\"")).unwrap_or_else(|| panic!("no {name}: {html}"));
        let rest = &html[start + name.len() + 15..];
        rest[..rest.find('"').unwrap()].to_owned()
    };
    (field("token"), field("csrf"), field("action"))
}

/// A form post, as a browser sends one (`application/x-www-form-urlencoded`).
fn form_post(base: &str, body: &[(&str, &str)]) -> reqwest::RequestBuilder {
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(body).finish();
    reqwest::Client::new()
        .post(format!("{base}/api/action"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
}

async fn post(app: &App, body: &[(&str, &str)], headers: &[(&str, &str)]) -> (u16, String, reqwest::header::HeaderMap) {
    let mut req = form_post(&app.base, body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    (status, resp.text().await.unwrap(), headers)
}

fn title(html: &str) -> &str {
    let start = html.find("<title>").map_or(0, |i| i + 7);
    &html[start..html[start..].find("</title>").map_or(start, |i| start + i)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_form_is_checked_before_anything_is_done_and_acts_once() {
    let app = App::start(Some(KEY)).await;
    let link = app.link(RUN, LinkAction::Acknowledge);
    let (token, csrf, action) = form_of(&link).await;
    assert_eq!(action, "acknowledge");
    let same_origin = [("origin", app.base.as_str()), ("sec-fetch-site", "same-origin")];
    let bad_token = tamper(&token);
    let untouched = app.snapshot();

    let other = app.link(RUN, LinkAction::Acknowledge);
    let (other_token, other_csrf, _) = form_of(&other).await;
    let json = reqwest::Client::new()
        .post(format!("{}/api/action", app.base))
        .json(&serde_json::json!({ "token": token, "csrf": csrf, "action": "acknowledge" }))
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 415);
    assert!(json.headers()["content-type"].to_str().unwrap().starts_with("text/html"), "a page, not JSON");
    let cases: [(&str, Fields, Fields, u16); 7] = [
        (
            "another site",
            vec![("token", &token), ("csrf", &csrf), ("action", "acknowledge")],
            vec![("origin", "https://evil.example.com")],
            403,
        ),
        (
            "cross-site fetch",
            vec![("token", &token), ("csrf", &csrf), ("action", "acknowledge")],
            vec![("sec-fetch-site", "cross-site")],
            403,
        ),
        (
            "another token's csrf",
            vec![("token", &token), ("csrf", &other_csrf), ("action", "acknowledge")],
            same_origin.to_vec(),
            403,
        ),
        ("no csrf", vec![("token", &token), ("action", "acknowledge")], same_origin.to_vec(), 403),
        ("no token", vec![("csrf", &csrf), ("action", "acknowledge")], same_origin.to_vec(), 400),
        ("no action", vec![("token", &token), ("csrf", &csrf)], same_origin.to_vec(), 400),
        (
            "tampered token",
            vec![("token", &bad_token), ("csrf", &csrf), ("action", "acknowledge")],
            same_origin.to_vec(),
            403,
        ),
    ];
    for (what, body, headers, status) in cases {
        let (got, html, h) = post(&app, &body, &headers).await;
        assert_eq!(got, status, "{what}: {html}");
        assert!(html.contains("Nothing was done"), "{what}: {html}");
        assert_eq!(h["x-frame-options"], "DENY", "{what}");
        assert!(h["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"), "{what}");
        assert_eq!(app.snapshot(), untouched, "{what} changed the state");
    }

    // Two clicks at once act once.
    let body = [("token", token.as_str()), ("csrf", csrf.as_str()), ("action", "acknowledge")];
    let (a, b) = tokio::join!(post(&app, &body, &same_origin), post(&app, &body, &same_origin));
    let mut statuses = [a.0, b.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{}\n{}", a.1, b.1);
    assert!(app.acknowledged(RUN).await.is_some());
    // A browser that sends no Origin (older ones, some privacy settings) is allowed; the
    // second link of the same run acts on an acknowledged run.
    let (status, html, _) =
        post(&app, &[("token", &other_token), ("csrf", &other_csrf), ("action", "acknowledge")], &[]).await;
    assert_eq!((status, title(&html)), (200, "Run 20261201220000 of Ring2-Prod was already acknowledged"), "{html}");

    // Expired between the page and the click.
    let late = app.link(&RUN.replace("20261201220000", "20261203220000"), LinkAction::Acknowledge);
    let (t, c, _) = form_of(&late).await;
    let before = app.snapshot();
    app.set_now(T0 + time::Duration::hours(72));
    let (status, html, _) = post(&app, &[("token", &t), ("csrf", &c), ("action", "acknowledge")], &same_origin).await;
    assert_eq!((status, title(&html)), (410, "This link has expired"));
    assert_eq!(app.snapshot(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_that_cannot_be_done_leaves_the_link_usable() {
    let app = App::start(Some(KEY)).await;
    // No follow-up is open for this run, so there is nothing to snooze; and no Azure credential
    // or run data to re-run with. The page says so, and the link still works afterwards.
    for action in [LinkAction::Snooze, LinkAction::Rerun] {
        let link = app.link(RUN, action);
        let (token, csrf, form_action) = form_of(&link).await;
        let body = [("token", token.as_str()), ("csrf", csrf.as_str()), ("action", form_action.as_str())];
        let (first, html, _) = post(&app, &body, &[]).await;
        assert!(![200, 409].contains(&first), "{action}: {html}");
        assert!(html.contains("Nothing was done") || html.contains("Try again in a minute"), "{action}: {html}");
        let (second, again, _) = post(&app, &body, &[]).await;
        assert_eq!(second, first, "{action}: the link was not released: {again}");
        let nonce = app.links().verify(&token, T0).unwrap().nonce;
        let marker = patchwatch_state::keys::action_used(&nonce);
        assert!(app.pipeline.ledger().store().get(&marker).await.unwrap().is_none(), "{action}: still marked used");
    }
}

#[tokio::test]
async fn without_keys_the_pages_say_one_click_actions_are_not_configured() {
    let app = App::start(None).await;
    assert!(app.pipeline.links.is_none());
    for resp in [
        reqwest::get(format!("{}/api/action?token=abc.def", app.base)).await.unwrap(),
        form_post(&app.base, &[("token", "abc")]).send().await.unwrap(),
    ] {
        assert_eq!(resp.status(), 404);
        assert_eq!(resp.headers()["cache-control"], "no-store");
        let html = resp.text().await.unwrap();
        assert_eq!(title(&html), "One-click actions are not configured", "{html}");
    }
}
