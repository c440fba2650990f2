//! `patchwatch replay EVENT.json`: one delivery through the whole pipeline.

use std::{path::PathBuf, process::ExitCode, time::Instant};

use patchwatch_engine::config;
use patchwatch_engine::config::Config;
use patchwatch_engine::config::Defaults;
use patchwatch_engine::pipeline::EventOutcome;
use patchwatch_engine::pipeline::Pipeline;
use patchwatch_engine::pipeline::default_outbox;
use patchwatch_model::event::Incoming;
use patchwatch_model::event::parse_delivery;

use crate::{EXIT_BAD_INPUT, EXIT_RETRY_LATER, print};

/// Run one event file through the pipeline and print the summary.
///
/// Mail goes to PATCHWATCH_SMTP_URL, or to PATCHWATCH_OUTBOX, or to ./outbox when neither is
/// set. Run data comes from --snapshot, PATCHWATCH_SNAPSHOT, or Azure Resource Graph (with your
/// `az login`).
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Event Grid delivery: a JSON array of events or one event (either schema).
    event: PathBuf,
    /// Snapshot of ARG tables to use instead of Azure Resource Graph.
    #[arg(long)]
    snapshot: Option<PathBuf>,
    /// Write email here instead of sending it (overrides PATCHWATCH_SMTP_URL).
    #[arg(long)]
    outbox: Option<PathBuf>,
    /// Minutes after the post event that missing results are waited for.
    #[arg(long)]
    grace_minutes: Option<u64>,
    /// State store for the delivery ledger (default: the local data directory). A run already
    /// delivered through this ledger is not sent again.
    #[arg(long)]
    state: Option<String>,
    /// Print elapsed time and peak memory to stderr.
    #[arg(long)]
    stats: bool,
}

pub(crate) async fn run(args: Args) -> ExitCode {
    let started = Instant::now();
    let defaults = Defaults {
        outbox: Some(default_outbox()),
        snapshot: args.snapshot.clone(),
        state: Some(config::local_state_url(|k| std::env::var(k).ok())),
    };
    let overrides = |k: &str| -> Option<String> {
        match k {
            "PATCHWATCH_SNAPSHOT" if args.snapshot.is_some() => args.snapshot.as_ref().map(|p| p.display().to_string()),
            "PATCHWATCH_OUTBOX" if args.outbox.is_some() => args.outbox.as_ref().map(|p| p.display().to_string()),
            "PATCHWATCH_RESULT_GRACE_MINUTES" if args.grace_minutes.is_some() => {
                args.grace_minutes.map(|m| m.to_string())
            }
            "PATCHWATCH_STATE" if args.state.is_some() => args.state.clone(),
            _ => std::env::var(k).ok(),
        }
    };
    let pipeline =
        match Config::from_lookup(overrides, &defaults).map_err(Into::into).and_then(|c| Pipeline::from_config(&c)) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("patchwatch: {e}");
                return ExitCode::from(EXIT_BAD_INPUT);
            }
        };
    let body = match std::fs::read(&args.event) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("patchwatch: {}: {e}", args.event.display());
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let items = match parse_delivery(&body) {
        Ok(items) => items,
        Err(e) => {
            eprintln!("patchwatch: {}: {e}", args.event.display());
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    eprintln!(
        "Run data from {}; mail to {}; ledger {}.",
        pipeline.source.describe(),
        pipeline.notifier.email.mailer.describe(),
        pipeline.ledger().store().describe()
    );
    let mut code = ExitCode::SUCCESS;
    for item in items {
        match item {
            Incoming::Maintenance(event) => match pipeline.process(&event).await {
                EventOutcome::Sent(p) => {
                    print::summary(&p.summary, &p.deliveries);
                    // Everything is written and sent: freeing a 50,000-machine summary one
                    // string at a time only delays the exit.
                    std::mem::forget(p);
                }
                EventOutcome::RetryLater { reason, after } => {
                    out!("Not sent yet: {reason}. An upstream would retry in {} s.", after.as_secs());
                    code = ExitCode::from(EXIT_RETRY_LATER);
                }
                EventOutcome::Failed { reason } => {
                    out!("Failed: {reason}");
                    code = ExitCode::FAILURE;
                }
                EventOutcome::Duplicate { record, deliveries } => print::duplicate(record.as_deref(), &deliveries),
                EventOutcome::Ignored { .. } => {}
            },
            Incoming::Validation { code } => out!("Subscription validation event (code {code}); nothing to do."),
            Incoming::Ignored { event_type, .. } => out!("Ignored an event of type {event_type}."),
        }
    }
    if args.stats {
        eprintln!(
            "stats: elapsed {:.3} s, peak memory {}",
            started.elapsed().as_secs_f64(),
            peak_rss().map(|kb| format!("{:.1} MiB", kb as f64 / 1024.0)).unwrap_or_else(|| "unknown".to_owned())
        );
    }
    code
}

/// Peak resident set size in KiB (Linux `VmHWM`).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
