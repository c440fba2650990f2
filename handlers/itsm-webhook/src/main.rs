//! itsm-webhook: the Azure Functions custom handler (or Lambda function) for ITSM requests.

use std::process::ExitCode;

use itsm_webhook::{AppState, auth, router};
use patchwatch_engine::pipeline::Pipeline;
use patchwatch_host::runtime;
use patchwatch_host::telemetry;

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init_tracing("info");
    let built = runtime::handler_config().and_then(|c| {
        let callers =
            auth::callers(&c).map_err(|problem| runtime::StartError::Setting { name: "PATCHWATCH_CONFIG", problem })?;
        if callers.is_empty() {
            return Err(runtime::StartError::Setting {
                name: "PATCHWATCH_CONFIG",
                problem: "has no [[itsm.callers]]: every request would be refused".to_owned(),
            });
        }
        let pipeline = Pipeline::from_config(&c)?;
        Ok(router(AppState::new(pipeline, callers)))
    });
    runtime::run_handler(built).await
}
