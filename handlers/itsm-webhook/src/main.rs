//! itsm-webhook: the Azure Functions custom handler (or Lambda function) for ITSM requests.

use std::process::ExitCode;

use itsm_webhook::{AppState, auth, router};
use patchwatch_core::{pipeline::Pipeline, runtime, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init_tracing("info");
    let built = runtime::handler_config().and_then(|c| {
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
