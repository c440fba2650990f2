//! Logging setup: readable lines on stderr, JSON with `LOG_FORMAT=json`, Lambda's own format
//! on Lambda. `RUST_LOG` filters (default `info`).

use tracing_subscriber::EnvFilter;

/// `default` applies when `RUST_LOG` is unset (`info` for handlers, `warn` for the CLI).
pub fn init_tracing(default: &str) {
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        lambda_http::tracing::init_default_subscriber();
        return;
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let filter = quiet_transports(filter);
    // Colour only for a person at a terminal: the Functions host's log stream shows escape codes raw.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    // A second init (tests) is harmless: try_init fails quietly.
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}

/// Directives that hold at any `RUST_LOG`: an SMTP transcript carries `AUTH PLAIN <base64 of
/// user and password>`, so lettre never logs (its tracing feature is also off; this keeps it
/// off if a dependency turns the feature on).
pub const ALWAYS: [&str; 1] = ["lettre=off"];

fn quiet_transports(mut filter: EnvFilter) -> EnvFilter {
    for d in ALWAYS {
        if let Ok(d) = d.parse() {
            filter = filter.add_directive(d);
        }
    }
    filter
}

/// Request tracing that records the method and path only: a query string can carry a token
/// (`/api/alerts?token=…`) and must not reach the logs.
pub fn request_spans() -> tower_http::trace::TraceLayer<
    tower_http::classify::SharedClassifier<tower_http::classify::ServerErrorsAsFailures>,
    impl Fn(&http::Request<axum::body::Body>) -> tracing::Span + Clone,
> {
    tower_http::trace::TraceLayer::new_for_http().make_span_with(|req: &http::Request<axum::body::Body>| {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        tracing::info_span!(
            "request",
            method = %req.method(),
            path = %req.uri().path(),
            invocation_id = %header("x-azure-functions-invocationid"),
            delivery_count = %header("aeg-delivery-count"),
        )
    })
}
