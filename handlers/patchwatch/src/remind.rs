//! `patchwatch remind`: one pass of the `reminders` timer, locally.

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use patchwatch_engine::reminders;
use patchwatch_model::failure::DeliveryStatus;

use crate::{EXIT_BAD_INPUT, EXIT_RETRY_LATER, fleet};

/// Follow up failed runs nobody owns, once (what the `reminders` timer does every 15 minutes).
///
/// Closes the follow-ups whose run was acknowledged, whose ServiceNow incidents were resolved or
/// whose machines a later run patched; sends each due reminder step (and the escalation) once
/// through the ledger. Mail goes to PATCHWATCH_SMTP_URL, or --outbox / PATCHWATCH_OUTBOX, or ./outbox.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    #[command(flatten)]
    source: fleet::Source,
    /// Write email here instead of sending it (overrides PATCHWATCH_SMTP_URL).
    #[arg(long)]
    outbox: Option<PathBuf>,
}

pub(crate) async fn run(args: Args) -> ExitCode {
    let mut pipeline = match fleet::pipeline(&args.source, args.outbox.as_ref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("patchwatch: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    // `--as-of` stands the pass at another time: what would be due then.
    if let Some(at) = args.source.as_of {
        pipeline.set_clock(Arc::new(move || at));
    }
    let pass = match reminders::tick(&pipeline).await {
        Ok(pass) => pass,
        Err(e) => {
            eprintln!("patchwatch: {e}");
            return ExitCode::from(EXIT_RETRY_LATER);
        }
    };
    for (run, route, why) in &pass.closed {
        out!("closed  {run} {route}: {why}");
    }
    for d in &pass.deliveries.reports {
        out!("  {} {}: {}", d.target, d.outcome, d.detail);
    }
    let sent = pass.deliveries.reports.iter().filter(|d| d.outcome != DeliveryStatus::Duplicate).count();
    out!(
        "{} follow-up(s) open, {} closed now; {sent} reminder delivery(ies) now, {} already made earlier.",
        pass.open,
        pass.closed.len(),
        pass.deliveries.reports.len() - sent
    );
    if pass.deliveries.retry.is_some() { ExitCode::from(EXIT_RETRY_LATER) } else { ExitCode::SUCCESS }
}
