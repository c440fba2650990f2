//! maintenance-events: the Azure Functions custom handler (or Lambda function) for Update
//! Manager pre/post maintenance events.

use std::{process::ExitCode, sync::Arc};

use maintenance_events::{AppState, router};
use patchwatch_azure::entra::EntraValidator;
use patchwatch_engine::pipeline::Pipeline;
use patchwatch_host::runtime;
use patchwatch_host::telemetry;

/// Fleet loads allocate millions of small strings; mimalloc makes them markedly cheaper.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init_tracing("info");
    let built = runtime::handler_config().and_then(|c| {
        let pipeline = Pipeline::from_config(&c)?;
        let entra = c.events_entra.as_ref().map(|e| Arc::new(EntraValidator::from_settings(e.into())));
        Ok(router(AppState::new(pipeline, c.webhook_token.clone()).with_entra(entra)))
    });
    runtime::run_handler(built).await
}
