//! maintenance-events: the Azure Functions custom handler (or Lambda function) for Update
//! Manager pre/post maintenance events.

use std::process::ExitCode;

use maintenance_events::{AppState, router};
use patchwatch_core::{
    config::{self, Config, Defaults},
    pipeline::Pipeline,
    runtime, telemetry,
};

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init_tracing("info");
    // Off the cloud (local runs) the ledger defaults to the local data directory; on a cloud host
    // local disk is not durable, so PATCHWATCH_STATE is required there.
    let env = |k: &str| std::env::var(k).ok();
    let defaults =
        Defaults { state: (!config::on_cloud_host(env)).then(|| config::local_state_url(env)), ..Defaults::default() };
    let (pipeline, token) = match Config::from_env(&defaults).map_err(Into::into).and_then(|c| {
        // Local files are not shared between a cloud host's instances: the ledger would not hold.
        if config::on_cloud_host(env) && c.state.expose().starts_with("file://") {
            return Err(patchwatch_core::pipeline::StartupError::State(
                "file:// state is per instance on a cloud host; use a blob container URL".to_owned(),
            ));
        }
        Pipeline::from_config(&c).map(|p| (p, c.webhook_token.clone()))
    }) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "Configuration is invalid; not starting.");
            return ExitCode::FAILURE;
        }
    };
    match runtime::serve(router(AppState::new(pipeline, token))).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "Handler stopped.");
            ExitCode::FAILURE
        }
    }
}
