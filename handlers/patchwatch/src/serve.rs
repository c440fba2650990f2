//! `patchwatch serve`: every handler in one process, for local use.

use std::{net::SocketAddr, process::ExitCode, sync::Arc};

use patchwatch_azure::entra::EntraValidator;
use patchwatch_engine::config;
use patchwatch_engine::config::Config;
use patchwatch_engine::config::DataSource;
use patchwatch_engine::config::Defaults;
use patchwatch_engine::pipeline::Pipeline;
use patchwatch_engine::pipeline::default_outbox;
use patchwatch_engine::source::RunDataSource;
use patchwatch_host::runtime;
use patchwatch_simulation::example;

use crate::EXIT_BAD_INPUT;

/// Serve every route on one local address.
///
/// Without PATCHWATCH_SNAPSHOT the embedded example snapshot answers run-data queries (use
/// --resource-graph for live data); without PATCHWATCH_SMTP_URL mail goes to ./outbox.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1:7071")]
    addr: SocketAddr,
    /// Query Azure Resource Graph instead of the embedded example snapshot.
    #[arg(long)]
    resource_graph: bool,
}

pub(crate) async fn run(args: Args) -> ExitCode {
    let defaults = Defaults {
        outbox: Some(default_outbox()),
        snapshot: None,
        state: Some(config::local_state_url(|k| std::env::var(k).ok())),
    };
    let config = match Config::from_env(&defaults) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("patchwatch: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let mut pipeline = match Pipeline::from_config(&config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("patchwatch: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    if matches!(config.data, DataSource::ResourceGraph) && !args.resource_graph {
        pipeline.source = RunDataSource::SnapshotText(Arc::from(example::SNAPSHOT));
    }
    eprintln!("Run data from {}; mail to {}.", pipeline.source.describe(), pipeline.notifier.email.mailer.describe());
    let callers = match itsm_webhook::auth::callers(&config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("patchwatch: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    // One pipeline for every handler here; deployed, each handler is a Function App of its own.
    let entra = config.events_entra.as_ref().map(|e| Arc::new(EntraValidator::from_settings(e.into())));
    let state = maintenance_events::AppState::new(pipeline, config.webhook_token.clone()).with_entra(entra);
    let alerts = alert_webhook::AppState { pipeline: state.pipeline.clone(), token: config.alert_token.clone() };
    let itsm = itsm_webhook::AppState { pipeline: state.pipeline.clone(), callers: Arc::new(callers), concurrency: 8 };
    let router =
        maintenance_events::router(state).merge(alert_webhook::routes(alerts)).merge(itsm_webhook::routes(itsm));
    eprintln!("POST /api/events, /api/alerts, /api/itsm; GET /api/health on http://{}", args.addr);
    let limits = match patchwatch_host::server::ServerLimits::from_lookup(|k| std::env::var(k).ok()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("patchwatch: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    match runtime::serve_on(router, args.addr, &limits).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("patchwatch: {e}");
            ExitCode::FAILURE
        }
    }
}
