//! `patchwatch deliveries`: what went to whom, when, and how it ended, from the state store.

use std::process::ExitCode;

use patchwatch_engine::config;
use patchwatch_model::text::format_time;
use patchwatch_state::ledger::Ledger;
use patchwatch_state::ledger::{DeliveryRecord, DeliveryState};
use patchwatch_state::store;

use crate::EXIT_BAD_INPUT;

/// List the delivery ledger: one line per run, phase and target.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Only runs whose id or name contains this text (e.g. 20261110220000 or the full run id).
    #[arg(long)]
    run: Option<String>,
    /// Put this run's deliveries that failed for good back to pending, so the next delivery of
    /// its event retries them (after fixing the cause, e.g. a recipient). Needs --run.
    #[arg(long, requires = "run")]
    retry_failed: bool,
    /// State store (default: PATCHWATCH_STATE, else the local data directory).
    #[arg(long)]
    state: Option<String>,
}

pub(crate) async fn run(args: Args) -> ExitCode {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let url = args.state.clone().or_else(|| env("PATCHWATCH_STATE")).unwrap_or_else(|| config::local_state_url(env));
    // Listing needs no credential when the URL is a directory or carries a SAS token.
    let store = match store::open(&url, None) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("patchwatch: PATCHWATCH_STATE is invalid: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let ledger = Ledger::new(store, std::time::Duration::from_secs(300));
    if args.retry_failed
        && let Some(run) = &args.run
    {
        match ledger.retry_failed(run).await {
            Ok(n) => out!(
                "{n} failed deliveries of runs matching {run:?} will be retried on the next delivery of the event."
            ),
            Err(e) => {
                eprintln!("patchwatch: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let records = match ledger.list(args.run.as_deref()).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("patchwatch: {e}");
            return ExitCode::FAILURE;
        }
    };
    if records.is_empty() {
        out!("No deliveries recorded in {}.", ledger.store().describe());
        return ExitCode::SUCCESS;
    }
    // Columns as wide as their longest value, so long targets and phases stay aligned.
    let width =
        |f: &dyn Fn(&DeliveryRecord) -> usize, title: &str| records.iter().map(f).max().unwrap_or(0).max(title.len());
    let (wc, wp, wt) = (
        width(&|r| r.configuration.len(), "CONFIGURATION"),
        width(&|r| r.phase.len(), "PHASE"),
        width(&|r| r.target.len(), "TARGET"),
    );
    out!(
        "{:<20} {:<wc$} {:<wp$} {:<wt$} {:<9} {:>8}  DETAIL",
        "WHEN",
        "CONFIGURATION",
        "PHASE",
        "TARGET",
        "STATE",
        "ATTEMPTS"
    );
    for r in &records {
        let detail = match r.state {
            DeliveryState::Sent | DeliveryState::Silenced | DeliveryState::Inhibited => {
                format!("{} | {}", r.subject.as_deref().unwrap_or("-"), r.detail.as_deref().unwrap_or("-"))
            }
            DeliveryState::Claimed => format!("claimed by {} until {}", r.owner, format_time(r.lease_until)),
            _ => r.error.clone().unwrap_or_default(),
        };
        out!(
            "{:<20} {:<wc$} {:<wp$} {:<wt$} {:<9} {:>8}  {}",
            format_time(r.sent_at.unwrap_or(r.updated)),
            r.configuration,
            r.phase,
            r.target,
            r.state.label(),
            r.attempts,
            detail
        );
    }
    ExitCode::SUCCESS
}
