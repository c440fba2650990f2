//! alert-webhook: the Azure Functions custom handler (or Lambda function) for activity-log alerts.

use std::{process::ExitCode, sync::Arc};

use alert_webhook::{AppState, router};
use patchwatch_engine::config;
use patchwatch_engine::pipeline::Pipeline;
use patchwatch_host::runtime;
use patchwatch_host::telemetry;

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init_tracing("info");
    let built = runtime::handler_config().and_then(|c| {
        // Action groups cannot sign: on a public endpoint the token is all that keeps forged alerts out.
        if config::on_cloud_host(|k| std::env::var(k).ok()) && c.alert_token.is_none() {
            return Err(runtime::StartError::Setting {
                name: "PATCHWATCH_ALERT_TOKEN",
                problem: "is required on a cloud host (the action group's webhook URL carries it as ?token=)"
                    .to_owned(),
            });
        }
        let pipeline = Pipeline::from_config(&c)?;
        Ok(router(AppState { pipeline: Arc::new(pipeline), token: c.alert_token.clone() }))
    });
    runtime::run_handler(built).await
}
