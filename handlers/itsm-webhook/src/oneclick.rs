//! One-click actions: the pages behind a signed link ([`patchwatch_engine::links`]).
//!
//! - `GET /api/action?token=…` checks the link and shows what it will do, with one button. It
//!   changes nothing, not even the use-once marker: mail scanners and link previews fetch every
//!   link they see.
//! - `POST /api/action` is that button's form (`application/x-www-form-urlencoded`: `token`,
//!   `csrf`, `action`). Order of checks, so that no failed check changes anything: links are
//!   configured → content type → `Origin` / `Sec-Fetch-Site` (same origin when present) → body
//!   size → the token (shape, key, signature, expiry) → `csrf` (an HMAC of the token, so a form
//!   is bound to its token; anyone holding the token can have it, so the cross-site guard is
//!   the `Origin` / `Sec-Fetch-Site` check) → `action` names the token's action → the link is marked used
//!   (an atomic create, so two clicks act once) → the action, through [`actions::perform`] as a
//!   signed ITSM request's. When the action cannot be done, the marker is released so the link
//!   works again.
//!
//! Every answer is a small HTML page that escapes everything it prints, with headers that keep
//! it out of frames, caches and referrers.

use std::time::Duration;

use axum::{
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use patchwatch_engine::links::{LinkAction, LinkClaims, LinkError};
use patchwatch_model::{
    event::EventErrorKind,
    resource_id::{RunId, last_segment},
    settings::Action,
    text::format_time,
};
use patchwatch_state::keys;
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::{AppState, ItsmError, actions, auth::Caller, request::Request};

/// The path of the link and of its form.
pub const PATH: &str = patchwatch_engine::links::PATH;
/// Largest form accepted (a token is at most 4 KiB).
pub const MAX_FORM_BYTES: usize = 16 * 1024;
/// How long a snooze link pauses reminders.
pub const SNOOZE: Duration = Duration::from_secs(24 * 3600);
/// What a page that asks to try again says in `Retry-After`.
const RETRY_SECONDS: u64 = 60;

/// The headers of every page.
const SECURITY_HEADERS: [(&str, &str); 6] = [
    (
        "content-security-policy",
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
    ("x-robots-tag", "noindex, nofollow"),
];

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:42rem;margin:2rem auto;\
padding:0 1rem;color:#1b1b1b;line-height:1.45}h1{font-size:1.35rem}dl{display:grid;grid-template-columns:max-content 1fr;\
gap:.3rem 1rem}dt{font-weight:600}dd{margin:0;overflow-wrap:anywhere}button{font-size:1rem;padding:.6rem 1.4rem;\
border:0;border-radius:.3rem;background:#0f6cbd;color:#fff;cursor:pointer}.note{color:#555;font-size:.9rem}";

/// `GET /api/action?token=…`: what the link will do, and the button that does it.
pub async fn confirm(State(state): State<AppState>, uri: Uri) -> Response {
    let Some(links) = state.pipeline.links.as_ref() else { return not_configured().into_response() };
    let token = match query_token(uri.query()) {
        Ok(t) => t,
        Err(e) => return refused(&e).into_response(),
    };
    let claims = match links.verify(&token, state.pipeline.now()) {
        Ok(c) => c,
        Err(e) => return refused(&e).into_response(),
    };
    // A read only: a link already used says so at once (a failed read just shows the button;
    // the confirming POST decides).
    let store = state.pipeline.ledger().store();
    if let Ok(Some(_)) = store.get(&keys::action_used(&claims.nonce)).await {
        return used(&claims).into_response();
    }
    let Some(csrf) = links.csrf(&claims, &token) else {
        return refused(&LinkError::UnknownKey { kid: claims.kid.clone() }).into_response();
    };
    let form_action = format!("{}{PATH}", links.base().path().trim_end_matches('/'));
    confirmation(&claims, Confirm { form_action, token, csrf, action: claims.action }).into_response()
}

/// `POST /api/action`: the confirmation form; acts once.
pub async fn act(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    match act_inner(&state, &headers, body).await {
        Ok(page) | Err(page) => page.into_response(),
    }
}

async fn act_inner(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Page, Page> {
    let links = state.pipeline.links.as_ref().ok_or_else(not_configured)?;
    check_content_type(headers)?;
    check_origin(headers, &links.origin())?;
    let body = patchwatch_host::server::read_body(body, MAX_FORM_BYTES).await.map_err(|e| {
        let status = match e.kind {
            EventErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            EventErrorKind::TimedOut => StatusCode::REQUEST_TIMEOUT,
            EventErrorKind::Malformed => StatusCode::BAD_REQUEST,
        };
        Page::new(status, "This form could not be read").line(e.problem).line(NOTHING_DONE)
    })?;
    let form = Form::parse(&body)?;
    let now = state.pipeline.now();
    let claims = links.verify(&form.token, now).map_err(|e| refused(&e))?;
    if !links.check_csrf(&claims, &form.token, &form.csrf) {
        return Err(Page::new(StatusCode::FORBIDDEN, "This form does not belong to this link")
            .line("The form was not the one patchwatch served for this link, or it was changed.")
            .line(NOTHING_DONE)
            .line("Open the link from the message again and press its button."));
    }
    if form.action.as_deref().and_then(LinkAction::parse) != Some(claims.action) {
        return Err(wrong_action(&claims, form.action.as_deref()));
    }
    let store = state.pipeline.ledger().store();
    let marker = keys::action_used(&claims.nonce);
    let record = json!({ "action": claims.action.as_str(), "run": claims.run, "route": claims.route, "at": now.unix_timestamp() });
    match store.create(&marker, record.to_string().as_bytes()).await {
        Ok(Some(_)) => {}
        Ok(None) => return Err(used(&claims)),
        Err(e) => {
            warn!(error = %e, action = claims.action.as_str(), "Could not mark a one-click link used; asked to retry.");
            return Err(retry(&claims));
        }
    }
    let result = run_action(state, &claims).await;
    if let Err(e) = &result {
        // Nothing was done, or the next click finishes it (the actions are idempotent): the link
        // must work again.
        info!(error = %e, action = claims.action.as_str(), "One-click action not done; the link works again.");
        if let Err(e) = store.delete(&marker, None).await {
            warn!(error = %e, "Could not release a one-click link's use-once marker; the link stays used.");
        }
    }
    match result {
        Ok(value) => Ok(done(&claims, &value)),
        Err(ItsmError::RetryLater(_)) => Err(retry(&claims)),
        Err(e) => Err(failed(&claims, &e)),
    }
}

/// Performs a verified link's action as its one-click caller, exactly as a signed ITSM request
/// for that action would.
async fn run_action(state: &AppState, claims: &LinkClaims) -> Result<Value, ItsmError> {
    let action = match claims.action {
        LinkAction::Acknowledge => Action::Acknowledge,
        LinkAction::Rerun => Action::Rerun,
        LinkAction::Snooze => Action::Snooze,
    };
    RunId::parse(&claims.run).map_err(|e| ItsmError::Unprocessable {
        field: "run".to_owned(),
        message: format!("the link names no run this app knows how to read: {e}"),
    })?;
    let snooze = action == Action::Snooze;
    let req = Request {
        configuration: Some(claims.configuration.clone()),
        run: Some(claims.run.clone()),
        duration: snooze.then_some(SNOOZE),
        route: snooze.then(|| claims.route.clone()),
        group: if snooze { claims.group.clone() } else { None },
        ..Request::new(action, format!("one-click link (route {})", claims.route))
    };
    // The run decides the configuration; a link whose configuration names another is refused.
    let (configuration, configuration_id) = actions::configuration_of(&req)?;
    let caller = Caller::one_click(action, &configuration);
    if !caller.may(action) || !caller.may_act_on(&configuration, configuration_id.as_deref()) {
        return Err(ItsmError::Forbidden(format!("the link may not {} on {configuration}", action.as_str())));
    }
    info!(
        caller = %caller.name,
        requested_by = %req.requested_by,
        action = action.as_str(),
        configuration = %configuration,
        "One-click action confirmed."
    );
    if action == Action::Rerun {
        return rerun_once(state, &caller, &req, &configuration).await;
    }
    actions::perform(state, &caller, &req, &configuration).await.map(|(_, value)| value)
}

/// A re-run from a link patches once per run, however many copies of the link (email, chat,
/// each reminder) are pressed: the first claims the run; a failed attempt frees it again.
async fn rerun_once(state: &AppState, caller: &Caller, req: &Request, configuration: &str) -> Result<Value, ItsmError> {
    let store = state.pipeline.ledger().store();
    let run = req.run.as_deref().unwrap_or_default();
    let key = keys::action_rerun(run);
    let now = state.pipeline.now();
    let mark = json!({ "by": req.requested_by, "at": now.unix_timestamp() });
    match store.create(&key, mark.to_string().as_bytes()).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Err(ItsmError::Unprocessable {
                field: "run".to_owned(),
                message: format!(
                    "a re-run of run {} was already started from a link; its result is reported like a run",
                    last_segment(run)
                ),
            });
        }
        Err(e) => return Err(ItsmError::RetryLater(e.to_string())),
    }
    let done = actions::perform(state, caller, req, configuration).await;
    if done.is_err()
        && let Err(e) = store.delete(&key, None).await
    {
        warn!(error = %e, "Could not free the run's re-run mark; another link will say it already ran.");
    }
    done.map(|(_, value)| value)
}

/// The form's fields.
#[derive(Debug)]
struct Form {
    token: String,
    csrf: String,
    action: Option<String>,
}

impl Form {
    /// Reads the form; a field given twice is refused (which one would count is left to chance).
    fn parse(body: &[u8]) -> Result<Self, Page> {
        let (mut token, mut csrf, mut action) = (None, None, None);
        for (name, value) in url::form_urlencoded::parse(body) {
            let slot = match name.as_ref() {
                "token" => &mut token,
                "csrf" => &mut csrf,
                "action" => &mut action,
                _ => continue,
            };
            if slot.replace(value.into_owned()).is_some() {
                return Err(Page::new(StatusCode::BAD_REQUEST, "This form could not be read")
                    .line(format!("The field {name:?} is given twice."))
                    .line(NOTHING_DONE));
            }
        }
        let token = token.filter(|t| !t.trim().is_empty()).ok_or_else(|| refused(&LinkError::Missing))?;
        Ok(Self { token, csrf: csrf.unwrap_or_default(), action })
    }
}

/// The link's one `token` parameter.
fn query_token(query: Option<&str>) -> Result<String, LinkError> {
    let mut tokens = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned());
    match (tokens.next(), tokens.next()) {
        (Some(t), None) if !t.trim().is_empty() => Ok(t),
        (Some(_), Some(_)) => Err(LinkError::Malformed("the token is given twice")),
        _ => Err(LinkError::Missing),
    }
}

fn check_content_type(headers: &HeaderMap) -> Result<(), Page> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    if form {
        Ok(())
    } else {
        Err(Page::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "This is not the confirmation form")
            .line("Only the confirmation page's form (application/x-www-form-urlencoded) is accepted here.")
            .line(NOTHING_DONE))
    }
}

/// A browser says where a form came from (`Origin`, `Sec-Fetch-Site`): when it does, it must be
/// this app's own page. Clients that say nothing are allowed (the token and `csrf` still bind).
///
/// The pages send `Referrer-Policy: no-referrer`, and under that policy the Fetch standard has
/// the browser send `Origin: null` even for a same-origin form; so `null` is taken when
/// `Sec-Fetch-Site` (which a page cannot forge) says `same-origin`, and refused otherwise.
fn check_origin(headers: &HeaderMap, origin: &str) -> Result<(), Page> {
    let fetch_sites: Vec<&[u8]> = headers.get_all("sec-fetch-site").iter().map(HeaderValue::as_bytes).collect();
    let same_origin_fetch = fetch_sites.iter().all(|v| v.eq_ignore_ascii_case(b"same-origin"));
    let vouched = !fetch_sites.is_empty() && same_origin_fetch;
    let origins_ok = headers.get_all(header::ORIGIN).iter().all(|v| {
        v.to_str().is_ok_and(|v| v.eq_ignore_ascii_case(origin) || (vouched && v.eq_ignore_ascii_case("null")))
    });
    if origins_ok && same_origin_fetch {
        Ok(())
    } else {
        Err(Page::new(StatusCode::FORBIDDEN, "Confirm on patchwatch's own page")
            .line("This form was sent from another site. Only the confirmation page that patchwatch serves can confirm an action.")
            .line(NOTHING_DONE)
            .line("Open the link from the message and press its button."))
    }
}

const NOTHING_DONE: &str = "Nothing was done.";

/// The question a confirmation page asks.
fn question(claims: &LinkClaims) -> String {
    let (run, configuration) = (last_segment(&claims.run), &claims.configuration);
    match claims.action {
        LinkAction::Acknowledge => format!("Acknowledge run {run} of {configuration}?"),
        LinkAction::Rerun => format!("Re-run the failed machines of run {run} of {configuration}?"),
        LinkAction::Snooze => format!("Snooze the reminders of run {run} of {configuration} for 24 hours?"),
    }
}

/// What the action will do, in a sentence.
fn consequence(claims: &LinkClaims) -> String {
    match claims.action {
        LinkAction::Acknowledge => "patchwatch records that this run's outcome has been seen, notes it on the run's \
            ServiceNow incidents, and announces who acknowledged it."
            .to_owned(),
        LinkAction::Rerun => "patchwatch installs updates again, now, on this run's machines that failed, ran out of \
            time or reported no result, with the maintenance configuration's own settings, and reports the re-run \
            like a run."
            .to_owned(),
        LinkAction::Snooze => format!(
            "The reminders about this run to route {} pause for 24 hours; they resume afterwards unless someone acts.",
            claims.route
        ),
    }
}

/// The facts of a link every page shows.
fn facts(page: Page, claims: &LinkClaims) -> Page {
    let route = match &claims.group {
        Some(g) => format!("{} (owner group {g})", claims.route),
        None => claims.route.clone(),
    };
    page.fact("Run", claims.run.clone())
        .fact("Configuration", claims.configuration.clone())
        .fact("Route", route)
        .fact("Link expires", format_time(claims.expires()))
}

fn confirmation(claims: &LinkClaims, form: Confirm) -> Page {
    let mut page = Page::new(StatusCode::OK, question(claims))
        .line(consequence(claims))
        .line("Nothing has been done yet: only the button below does it. The link works once.");
    page = facts(page, claims);
    page.form = Some(Box::new(form));
    page
}

fn done(claims: &LinkClaims, value: &Value) -> Page {
    let text = |k: &str| value.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let run = last_segment(&claims.run);
    let page = match claims.action {
        LinkAction::Acknowledge if text("status") == "already_acknowledged" => {
            Page::new(StatusCode::OK, format!("Run {run} of {} was already acknowledged", claims.configuration))
                .line("Someone acknowledged this run before; nothing more was needed.")
        }
        LinkAction::Acknowledge => {
            Page::new(StatusCode::OK, format!("Run {run} of {} acknowledged", claims.configuration))
                .line(format!("Recorded as acknowledged by one-click link (route {}).", claims.route))
        }
        LinkAction::Rerun => Page::new(StatusCode::OK, format!("Re-run of run {run} started"))
            .line(text("message"))
            .line("The re-run is reported like a run when it finishes."),
        LinkAction::Snooze => {
            Page::new(StatusCode::OK, format!("Reminders of run {run} snoozed until {}", text("until")))
                .line(format!("Routes paused: {}.", list(value.get("routes"))))
        }
    };
    facts(page.line("Done. This link has now been used."), claims)
}

fn list(v: Option<&Value>) -> String {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

fn used(claims: &LinkClaims) -> Page {
    facts(
        Page::new(StatusCode::CONFLICT, "This link was already used")
            .line(format!(
                "The action of this link ({}) was done when it was first confirmed; a link works once.",
                claims.action.label()
            ))
            .line("Nothing more was done."),
        claims,
    )
}

fn retry(claims: &LinkClaims) -> Page {
    let mut page = Page::new(StatusCode::SERVICE_UNAVAILABLE, "Try again in a minute")
        .line(format!(
            "patchwatch could not {} right now: a store or channel it needs is busy or did not answer.",
            claims.action.as_str()
        ))
        .line("The link still works: reload this page in a minute and press the button again.");
    page.retry_after = Some(RETRY_SECONDS);
    facts(page, claims)
}

fn failed(claims: &LinkClaims, e: &ItsmError) -> Page {
    let status = match e {
        ItsmError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        ItsmError::BadRequest(_) => StatusCode::BAD_REQUEST,
        ItsmError::Forbidden(_) => StatusCode::FORBIDDEN,
        ItsmError::NotFound { .. } => StatusCode::NOT_FOUND,
        ItsmError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        ItsmError::RetryLater(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    facts(
        Page::new(status, format!("{}: not done", claims.action.label()))
            .line(e.to_string())
            .line(NOTHING_DONE)
            .line("The link still works once what stands in the way is resolved."),
        claims,
    )
}

fn wrong_action(claims: &LinkClaims, asked: Option<&str>) -> Page {
    let asked = asked.map_or_else(|| "nothing".to_owned(), |a| format!("{a:?}"));
    Page::new(StatusCode::BAD_REQUEST, "This form asks for another action than its link")
        .line(format!("The link is for {:?}, but the form asked for {asked}.", claims.action.as_str()))
        .line(NOTHING_DONE)
        .line("Open the link from the message again and press its button.")
}

fn refused(e: &LinkError) -> Page {
    let (status, title) = match e {
        LinkError::Missing => (StatusCode::BAD_REQUEST, "This link is incomplete"),
        LinkError::Malformed(_) => (StatusCode::BAD_REQUEST, "This link is not valid"),
        LinkError::BadSignature => (StatusCode::FORBIDDEN, "This link is not valid"),
        LinkError::UnknownKey { .. } => (StatusCode::FORBIDDEN, "This link is no longer valid"),
        LinkError::Expired { .. } => (StatusCode::GONE, "This link has expired"),
    };
    Page::new(status, title).line(capitalise(&e.to_string())).line(NOTHING_DONE)
}

fn not_configured() -> Page {
    Page::new(StatusCode::NOT_FOUND, "One-click actions are not configured")
        .line(
            "This patchwatch app does not act on links: PATCHWATCH_ACTION_KEYS and PATCHWATCH_PUBLIC_URL are not set.",
        )
        .line("Acknowledge, re-run or snooze through your ITSM tool or the Azure portal instead.")
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

/// The confirmation form: the token, its `csrf` and its action, posted back to this app.
#[derive(Debug)]
struct Confirm {
    form_action: String,
    token: String,
    csrf: String,
    action: LinkAction,
}

/// One small page: a title, sentences, facts, perhaps the form.
#[derive(Debug)]
struct Page {
    status: StatusCode,
    title: String,
    lines: Vec<String>,
    facts: Vec<(&'static str, String)>,
    form: Option<Box<Confirm>>,
    retry_after: Option<u64>,
}

impl Page {
    fn new(status: StatusCode, title: impl Into<String>) -> Self {
        Self { status, title: title.into(), lines: Vec::new(), facts: Vec::new(), form: None, retry_after: None }
    }

    fn line(mut self, text: impl Into<String>) -> Self {
        let text = text.into();
        if !text.is_empty() {
            self.lines.push(text);
        }
        self
    }

    fn fact(mut self, name: &'static str, value: String) -> Self {
        self.facts.push((name, value));
        self
    }

    /// The page's HTML; every value is escaped.
    fn render(&self) -> String {
        let title = escape(&self.title);
        let mut html = format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <meta name=\"robots\" content=\"noindex, nofollow\">\
             <title>{title}</title><style>{STYLE}</style></head>\n<body><main>\n<h1>{title}</h1>\n"
        );
        for line in &self.lines {
            html.push_str(&format!("<p>{}</p>\n", escape(line)));
        }
        if !self.facts.is_empty() {
            html.push_str("<dl>\n");
            for (name, value) in &self.facts {
                html.push_str(&format!("<dt>{}</dt><dd>{}</dd>\n", escape(name), escape(value)));
            }
            html.push_str("</dl>\n");
        }
        if let Some(f) = &self.form {
            html.push_str(&format!(
                "<form method=\"post\" action=\"{}\">\n\
                 <input type=\"hidden\" name=\"token\" value=\"{}\">\n\
                 <input type=\"hidden\" name=\"csrf\" value=\"{}\">\n\
                 <input type=\"hidden\" name=\"action\" value=\"{}\">\n\
                 <button type=\"submit\">{}</button>\n</form>\n",
                escape(&f.form_action),
                escape(&f.token),
                escape(&f.csrf),
                escape(f.action.as_str()),
                escape(f.action.label())
            ));
        }
        html.push_str("<p class=\"note\">patchwatch, for Azure Update Manager</p>\n</main></body></html>\n");
        html
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.render()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        for (name, value) in SECURITY_HEADERS {
            headers.insert(name, HeaderValue::from_static(value));
        }
        if let Some(s) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        response
    }
}

/// HTML-escapes text for element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> LinkClaims {
        LinkClaims {
            run: "/subscriptions/s/resourcegroups/rg/providers/microsoft.maintenance/maintenanceconfigurations/<b>x</b>/providers/microsoft.maintenance/applyupdates/2026\"'&".to_owned(),
            configuration: "<script>alert(1)</script>".to_owned(),
            action: LinkAction::Snooze,
            route: "ops & <team>".to_owned(),
            group: Some("\"g\"".to_owned()),
            exp: 1_796_000_000,
            nonce: "n".to_owned(),
            kid: "k".to_owned(),
        }
    }

    #[test]
    fn pages_escape_everything_they_print() {
        let c = claims();
        let form = Confirm {
            form_action: "/api/action".to_owned(),
            token: "a\"><script>x</script>".to_owned(),
            csrf: "c'".to_owned(),
            action: c.action,
        };
        let html = confirmation(&c, form).render();
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("value=\"a&quot;&gt;&lt;script&gt;x&lt;/script&gt;\""));
        assert!(html.contains("ops &amp; &lt;team&gt;"));
        assert!(html.contains("<form method=\"post\" action=\"/api/action\">"));
        for page in [used(&c), retry(&c), done(&c, &json!({"until": "<u>", "routes": ["<r>"]})), not_configured()] {
            let html = page.render();
            assert!(!html.contains("<script>") && !html.contains("<u>") && !html.contains("<r>"), "{html}");
            assert!(!html.contains("<form"), "only the confirmation has a form");
        }
    }

    #[test]
    fn every_page_carries_the_security_headers() {
        let r = retry(&claims()).into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "60");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
        for (name, value) in SECURITY_HEADERS {
            assert_eq!(r.headers()[name], value);
        }
    }

    #[test]
    fn forms_and_queries_are_read_strictly() {
        let f = Form::parse(b"token=t.s&csrf=c&action=snooze&other=1").unwrap();
        assert_eq!((f.token.as_str(), f.csrf.as_str(), f.action.as_deref()), ("t.s", "c", Some("snooze")));
        assert_eq!(Form::parse(b"token=a&token=b&csrf=c").unwrap_err().status, StatusCode::BAD_REQUEST);
        assert_eq!(Form::parse(b"csrf=c").unwrap_err().status, StatusCode::BAD_REQUEST);
        assert_eq!(query_token(Some("token=abc")), Ok("abc".to_owned()));
        assert_eq!(query_token(None), Err(LinkError::Missing));
        assert_eq!(query_token(Some("token=")), Err(LinkError::Missing));
        assert!(matches!(query_token(Some("token=a&token=b")), Err(LinkError::Malformed(_))));
    }

    #[test]
    fn only_same_origin_forms_are_taken() {
        let origin = "https://itsm.example.com";
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.append(*k, HeaderValue::from_static(v));
            }
            h
        };
        assert!(check_origin(&headers(&[]), origin).is_ok(), "no browser headers: allowed");
        assert!(check_origin(&headers(&[("origin", origin), ("sec-fetch-site", "same-origin")]), origin).is_ok());
        assert!(
            check_origin(&headers(&[("origin", "null"), ("sec-fetch-site", "same-origin")]), origin).is_ok(),
            "a same-origin form under Referrer-Policy: no-referrer"
        );
        for bad in [
            headers(&[("origin", "https://evil.example.com")]),
            headers(&[("origin", "null")]),
            headers(&[("origin", "null"), ("sec-fetch-site", "cross-site")]),
            headers(&[("sec-fetch-site", "cross-site")]),
            headers(&[("sec-fetch-site", "same-site")]),
            headers(&[("origin", origin), ("origin", "https://evil.example.com")]),
        ] {
            assert_eq!(check_origin(&bad, origin).unwrap_err().status, StatusCode::FORBIDDEN, "{bad:?}");
        }
        assert!(
            check_content_type(&headers(&[("content-type", "application/x-www-form-urlencoded; charset=UTF-8")]))
                .is_ok()
        );
        for ct in ["application/json", "multipart/form-data; boundary=x", "text/plain"] {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            assert_eq!(check_content_type(&h).unwrap_err().status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        }
        assert!(check_content_type(&HeaderMap::new()).is_err());
    }
}
