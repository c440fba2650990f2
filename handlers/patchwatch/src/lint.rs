//! `patchwatch lint`: every machine or schedule that will not be patched the way its owner
//! thinks, with the fix. Exit 0 clean, 1 findings at or above `--fail-on`, 2 bad input.

use std::{collections::BTreeMap, process::ExitCode};

use patchwatch_engine::compliance::{self, Evaluation};
use patchwatch_fleet::lint::{Check, Finding, Level};
use patchwatch_model::text::{format_time, thousands};

use crate::{EXIT_BAD_INPUT, EXIT_RETRY_LATER, fleet};

/// Lint the fleet's patch settings, assignments, schedules and assessments.
///
/// Reads the fleet from --snapshot, PATCHWATCH_SNAPSHOT, or Azure Resource Graph.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    #[command(flatten)]
    source: fleet::Source,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Exit 1 when a finding is at least this severe.
    #[arg(long, value_enum, default_value_t = FailOn::Warning)]
    fail_on: FailOn,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Text,
    Json,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum FailOn {
    Error,
    Warning,
}

pub(crate) async fn run(args: Args) -> ExitCode {
    let pipeline = match fleet::lint_pipeline(&args.source) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("patchwatch: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let ev = match compliance::evaluate(&pipeline, args.source.as_of).await {
        Ok(ev) => ev,
        Err(e) => {
            eprintln!("patchwatch: {e}");
            return ExitCode::from(if e.retry_after().is_some() { EXIT_RETRY_LATER } else { EXIT_BAD_INPUT });
        }
    };
    match args.format {
        Format::Json => out!("{}", json(&ev)),
        Format::Text => text(&ev),
    }
    let failing = ev.findings.iter().any(|f| f.severity == Level::Error || args.fail_on == FailOn::Warning);
    if failing { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

fn counts(ev: &Evaluation) -> (usize, usize) {
    let errors = ev.findings.iter().filter(|f| f.severity == Level::Error).count();
    (errors, ev.findings.len() - errors)
}

fn json(ev: &Evaluation) -> String {
    let (errors, warnings) = counts(ev);
    let body = serde_json::json!({
        "asOf": ev.options.as_of.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "machines": ev.fleet.machines.len(),
        "configurations": ev.fleet.configurations.len(),
        "errors": errors,
        "warnings": warnings,
        "findings": ev.findings,
    });
    serde_json::to_string_pretty(&body).unwrap_or_default()
}

fn text(ev: &Evaluation) {
    let mut by_check: BTreeMap<Check, Vec<&Finding>> = BTreeMap::new();
    for f in &ev.findings {
        by_check.entry(f.check).or_default().push(f);
    }
    for (check, findings) in &by_check {
        let errors = findings.iter().filter(|f| f.severity == Level::Error).count();
        out!("{} — {} finding(s), {errors} error(s)", check.id(), findings.len());
        if let Some(first) = findings.first() {
            out!("  why: {}", first.why);
        }
        for f in findings {
            let owner = f.owner.as_deref().map(|o| format!(", {o}")).unwrap_or_default();
            out!("  {:<7} {} ({}{owner}): {}", f.severity.as_str(), f.name, f.subscription, f.detail);
            out!("          fix: {}", f.fix);
        }
        out!("");
    }
    let (errors, warnings) = counts(ev);
    out!(
        "{} machines, {} configurations as of {}: {errors} error(s), {warnings} warning(s).",
        thousands(ev.fleet.machines.len()),
        thousands(ev.fleet.configurations.len()),
        format_time(ev.options.as_of)
    );
}
