//! `patchwatch report`: the compliance digests, sent through the routing file's digest routes
//! (or to the default recipients) exactly once per period, and optionally written to files.

use std::{path::PathBuf, process::ExitCode};

use patchwatch_engine::{compliance, mail};
use patchwatch_fleet::digest::Digest;
use patchwatch_model::text::thousands;
use patchwatch_render::parts::XLSX;

use crate::{EXIT_BAD_INPUT, EXIT_RETRY_LATER, fleet};

/// Build the compliance digest: compliance per owner and subscription, charts, schedule
/// findings with fixes, pending patches, the next runs, trends and an .xlsx workbook.
///
/// Sent like run summaries: by the routes with `phase = "digest"` (split by owner), else to
/// PATCHWATCH_MAIL_TO; mail goes to PATCHWATCH_SMTP_URL, or --outbox / PATCHWATCH_OUTBOX, or
/// ./outbox. Each digest is sent once per ISO week through the ledger.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    #[command(flatten)]
    source: fleet::Source,
    /// Write email here instead of sending it (overrides PATCHWATCH_SMTP_URL).
    #[arg(long)]
    outbox: Option<PathBuf>,
    /// Also write the whole-fleet workbook to this .xlsx file.
    #[arg(long)]
    xlsx: Option<PathBuf>,
    /// Also write the whole-fleet digest as one HTML file with its charts inlined.
    #[arg(long)]
    html: Option<PathBuf>,
}

pub(crate) async fn run(args: Args) -> ExitCode {
    let pipeline = match fleet::pipeline(&args.source, args.outbox.as_ref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("patchwatch: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    eprintln!("Fleet from {}; mail to {}.", pipeline.source.describe(), pipeline.notifier.email.mailer.describe());
    let files = args.xlsx.is_some() || args.html.is_some();
    let mut prepared = match compliance::prepare(&pipeline, args.source.as_of, files).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("patchwatch: {e}");
            return ExitCode::from(if e.retry_after().is_some() { EXIT_RETRY_LATER } else { EXIT_BAD_INPUT });
        }
    };
    // Sending and writing the files both render a digest: on two cores, at the same time.
    let whole = prepared.whole.take();
    let (deliveries, written) = tokio::join!(compliance::send(&pipeline, &prepared.plan), async {
        match whole {
            Some(d) => write_files(&pipeline, &d, &args).await,
            None => Ok(Vec::new()),
        }
    });
    let run = prepared.finish(deliveries);
    let percent = (run.compliant * 100).checked_div(run.machines).unwrap_or(100);
    out!(
        "Patch compliance {}: {percent}% ({} of {} machines assessed in the last 7 days with no critical or security patch pending); {} error(s), {} warning(s) in the schedule lint.",
        run.period,
        thousands(run.compliant),
        thousands(run.machines),
        run.errors,
        run.warnings
    );
    for d in &run.deliveries.reports {
        out!("  {} {}: {}", d.target, d.outcome, d.detail);
    }
    match written {
        Ok(lines) => lines.iter().for_each(|l| out!("{l}")),
        Err(e) => {
            eprintln!("patchwatch: {e}");
            return ExitCode::FAILURE;
        }
    }
    if run.deliveries.retry.is_some() { ExitCode::from(EXIT_RETRY_LATER) } else { ExitCode::SUCCESS }
}

/// Writes the requested files; returns what to print once the deliveries are reported.
async fn write_files(
    pipeline: &patchwatch_engine::pipeline::Pipeline,
    d: &Digest,
    args: &Args,
) -> Result<Vec<String>, String> {
    let mut said = Vec::new();
    // One rendering serves both files: the workbook is the email's attachment.
    let templates = pipeline.notifier.email.templates.clone();
    let digest = d.clone();
    let rendered = tokio::task::spawn_blocking(move || templates.render_digest(&digest))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    if let Some(path) = &args.xlsx {
        let bytes = rendered.attachments.iter().find(|a| a.content_type == XLSX).map(|a| a.bytes.as_slice());
        std::fs::write(path, bytes.unwrap_or_default()).map_err(|e| format!("{}: {e}", path.display()))?;
        said.push(format!("Workbook written to {}.", path.display()));
    }
    if let Some(path) = &args.html {
        mail::write_standalone_html(path, (&rendered).into()).await.map_err(|e| e.to_string())?;
        said.push(format!("Digest written to {}.", path.display()));
    }
    Ok(said)
}
