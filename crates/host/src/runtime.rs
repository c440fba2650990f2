//! One router, several hosts: AWS Lambda when `AWS_LAMBDA_RUNTIME_API` is set, otherwise the
//! Azure Functions custom-handler port on loopback. Handlers never branch on the host.

use std::net::{Ipv4Addr, SocketAddr};

use axum::Router;

use crate::server::ServerLimits;
use tracing::info;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(
        "FUNCTIONS_CUSTOMHANDLER_PORT is required (set by the Azure Functions host), or AWS_LAMBDA_RUNTIME_API on Lambda"
    )]
    NoPort,
    #[error("FUNCTIONS_CUSTOMHANDLER_PORT is invalid: {0:?} is not a port number")]
    BadPort(String),
    #[error("could not listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
    #[error("{0} is required under the AWS Lambda runtime (set by Lambda)")]
    LambdaEnv(&'static str),
    #[error("Lambda runtime failed: {0}")]
    Lambda(lambda_http::Error),
    #[error(transparent)]
    Limits(#[from] crate::server::LimitError),
}

/// Serves `router` on whichever host this process runs under, within `limits`.
pub async fn serve(router: Router, limits: &ServerLimits) -> Result<(), RuntimeError> {
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        // The runtime crate panics without these; Lambda always sets them, a hand-run process may not.
        for var in ["AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION"] {
            if std::env::var(var).map_or(true, |v| v.is_empty()) {
                return Err(RuntimeError::LambdaEnv(var));
            }
        }
        info!("Starting under the AWS Lambda runtime.");
        // Lambda hands over whole requests: no listener to bound, but the same body and
        // concurrency limits and JSON errors apply.
        return lambda_http::run(crate::server::bounded(router, limits)).await.map_err(RuntimeError::Lambda);
    }
    let port = match std::env::var("FUNCTIONS_CUSTOMHANDLER_PORT") {
        Ok(p) => p.trim().parse::<u16>().map_err(|_| RuntimeError::BadPort(p))?,
        Err(_) => return Err(RuntimeError::NoPort),
    };
    serve_on(router, SocketAddr::from((Ipv4Addr::LOCALHOST, port)), limits).await
}

/// Serves `router` on `addr` within `limits` until SIGINT or SIGTERM.
pub async fn serve_on(router: Router, addr: SocketAddr, limits: &ServerLimits) -> Result<(), RuntimeError> {
    crate::server::serve_on(router, addr, limits, shutdown()).await
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
    info!("Shutting down.");
}

/// A handler binary's configuration: the process environment, with the local data directory as
/// the default state store off the cloud. On a cloud host local disk is neither durable nor
/// shared between instances, so `PATCHWATCH_STATE` is required there and `file://` refused.
pub fn handler_config() -> Result<patchwatch_engine::config::Config, StartError> {
    use patchwatch_engine::config::{self, Config, Defaults};
    let env = |k: &str| std::env::var(k).ok();
    let cloud = config::on_cloud_host(env);
    let defaults = Defaults { state: (!cloud).then(|| config::local_state_url(env)), ..Defaults::default() };
    let c = Config::from_env(&defaults)?;
    if cloud && c.state.expose().starts_with("file://") {
        return Err(StartError::FileStateOnCloud);
    }
    Ok(c)
}

/// Why a handler does not start: logged once, then the process exits with a failure.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] patchwatch_engine::config::ConfigError),
    #[error(transparent)]
    Pipeline(#[from] patchwatch_engine::pipeline::StartupError),
    #[error("PATCHWATCH_STATE: file:// state is per instance on a cloud host; use a blob container URL")]
    FileStateOnCloud,
    /// A setting this handler needs, named, and why.
    #[error("{name}: {problem}")]
    Setting { name: &'static str, problem: String },
}

/// `GET /api/health`: the same answer from every handler.
pub async fn health() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

/// A handler binary's whole life after configuration: log why it cannot start, or serve its
/// router on whichever host this is until it stops.
pub async fn run_handler(router: Result<Router, StartError>) -> std::process::ExitCode {
    let router = match router {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "Configuration is invalid; not starting.");
            return std::process::ExitCode::FAILURE;
        }
    };
    let limits = match ServerLimits::from_lookup(|k| std::env::var(k).ok()) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "Configuration is invalid; not starting.");
            return std::process::ExitCode::FAILURE;
        }
    };
    match serve(router, &limits).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "Handler stopped.");
            std::process::ExitCode::FAILURE
        }
    }
}
