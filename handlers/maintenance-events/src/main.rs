//! maintenance-events: the Azure Functions custom handler (or Lambda function) for Update
//! Manager pre/post maintenance events.

use std::process::ExitCode;

use maintenance_events::{AppState, router};
use patchwatch_core::{pipeline::Pipeline, runtime, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init_tracing("info");
    let built = runtime::handler_config()
        .and_then(|c| Pipeline::from_config(&c).map(|p| (p, c.webhook_token.clone())).map_err(|e| e.to_string()));
    let (pipeline, token) = match built {
        Ok(b) => b,
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
