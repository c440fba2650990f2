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
        // One-click links (PATCHWATCH_ACTION_KEYS) are a use of their own, without ITSM callers.
        if callers.is_empty() && c.action_links.is_none() {
            return Err(runtime::StartError::Setting {
                name: "PATCHWATCH_CONFIG",
                problem:
                    "has no [[itsm.callers]] (and PATCHWATCH_ACTION_KEYS is unset): every request would be refused"
                        .to_owned(),
            });
        }
        let pipeline = Pipeline::from_config(&c)?;
        Ok(router(AppState::new(pipeline, callers)))
    });
    runtime::run_handler(built).await
}
