//! itsm-webhook: the Azure Functions custom handler (or Lambda function) for ITSM requests.

use std::process::ExitCode;

use itsm_webhook::{AppState, auth, router};
use patchwatch_core::{
    config::{self, Config, Defaults},
    pipeline::Pipeline,
    runtime, telemetry,
};

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init_tracing("info");
    let env = |k: &str| std::env::var(k).ok();
    let defaults =
        Defaults { state: (!config::on_cloud_host(env)).then(|| config::local_state_url(env)), ..Defaults::default() };
    let built = Config::from_env(&defaults).map_err(|e| e.to_string()).and_then(|c| {
        if config::on_cloud_host(env) && c.state.expose().starts_with("file://") {
            return Err("file:// state is per instance on a cloud host; use a blob container URL".to_owned());
        }
        let callers = auth::callers(&c)?;
        if callers.is_empty() {
            return Err("PATCHWATCH_CONFIG has no [[itsm.callers]]: every request would be refused".to_owned());
        }
        Pipeline::from_config(&c).map(|p| (p, callers)).map_err(|e| e.to_string())
    });
    let (pipeline, callers) = match built {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "Configuration is invalid; not starting.");
            return ExitCode::FAILURE;
        }
    };
    match runtime::serve(router(AppState::new(pipeline, callers))).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "Handler stopped.");
            ExitCode::FAILURE
        }
    }
}
