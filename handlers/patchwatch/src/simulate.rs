//! `patchwatch simulate`: a realistic snapshot and its pre/post events.

use std::{
    fs::File,
    io::{BufWriter, Write},
    path::PathBuf,
    process::ExitCode,
};

use patchwatch_simulation::{SimulateOptions, write_snapshot};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::EXIT_BAD_INPUT;

/// Write a simulated run: snapshot.json, pre-maintenance.json and post-maintenance.json.
///
/// The mix is realistic: Windows and Linux, Azure VMs and Arc machines, several subscriptions,
/// mostly successes with failures, window overruns, pending reboots and machines that never report.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Number of machines in the run.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    machines: u32,
    /// Number of subscriptions the machines are spread over.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    subscriptions: u32,
    /// Seed: the same seed gives the same run.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Maintenance configuration name.
    #[arg(long, default_value = "Ring2-Prod")]
    configuration: String,
    /// Window start (RFC 3339).
    #[arg(long, default_value = "2026-11-10T22:00:00Z")]
    start: String,
    /// Window length in minutes.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u32).range(30..=235))]
    window_minutes: u32,
    /// Every machine succeeds (a clean run, e.g. to see an incident resolved).
    #[arg(long)]
    clean: bool,
    /// Output directory.
    #[arg(long, default_value = "simulated")]
    out: PathBuf,
}

pub(crate) fn run(args: &Args) -> ExitCode {
    let start = match OffsetDateTime::parse(&args.start, &Rfc3339) {
        Ok(t) => t,
        Err(_) => {
            eprintln!("patchwatch: --start {:?} is not an RFC 3339 date-time such as 2026-11-10T22:00:00Z", args.start);
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    if args.configuration.is_empty()
        || !args.configuration.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        eprintln!("patchwatch: --configuration must be letters, digits, '-', '_' or '.'");
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    let opts = SimulateOptions {
        machines: args.machines as usize,
        subscriptions: args.subscriptions as usize,
        seed: args.seed,
        configuration: args.configuration.clone(),
        start,
        window_minutes: i64::from(args.window_minutes),
        clean: args.clean,
    };
    match write_all(&opts, &args.out) {
        Ok(()) => {
            out!(
                "Wrote {}/snapshot.json, pre-maintenance.json and post-maintenance.json ({} machines).",
                args.out.display(),
                args.machines
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("patchwatch: writing {}: {e}", args.out.display());
            ExitCode::FAILURE
        }
    }
}

fn write_all(opts: &SimulateOptions, dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut snapshot = BufWriter::new(File::create(dir.join("snapshot.json"))?);
    let events = write_snapshot(opts, &mut snapshot)?;
    snapshot.flush()?;
    for (name, event) in [("pre-maintenance.json", &events.pre), ("post-maintenance.json", &events.post)] {
        let mut text = serde_json::to_string_pretty(event).map_err(std::io::Error::other)?;
        text.push('\n');
        std::fs::write(dir.join(name), text)?;
    }
    Ok(())
}
