//! `patchwatch simulate`: a realistic snapshot and its pre/post events.

use std::{
    fs::File,
    io::{BufWriter, Write},
    path::PathBuf,
    process::ExitCode,
};

use patchwatch_simulation::{
    AnswerKey, FleetOptions, SimulateOptions, SimulatedEvents, write_fleet_snapshot, write_snapshot,
};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::EXIT_BAD_INPUT;

/// Write a simulated run: snapshot.json, pre-maintenance.json and post-maintenance.json.
///
/// The mix is realistic: Windows and Linux, Azure VMs and Arc machines, several subscriptions,
/// mostly successes with failures, window overruns, pending reboots and machines that never report.
///
/// The snapshot also describes the whole fleet around the run, for `patchwatch lint` and the
/// compliance digest: every machine with its patch settings and tags, maintenance
/// configurations, static assignments and dynamic scopes, assessments with pending critical and
/// security patches, and each configuration's last three runs. The fleet is clean except for a
/// few dozen machines and configurations built to trip one lint check each; --expected-findings
/// writes that answer key. The simulated "now" is 12 hours after --start.
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
    /// Machines in the fleet, the run's own included (at least the run's machines plus 53
    /// hand-made cases). One dynamic scope takes in every machine but the run's and 42 of the
    /// hand-made ones: more than 900 there is a scope-limit warning, more than 1,000 an error
    /// (with --machines 40: from 983 and from 1,083 fleet machines). 0: the run alone.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    fleet_machines: u32,
    /// Also write the fleet's answer key to FILE (JSON): the simulated now and every (check,
    /// resource id) finding the schedule lint must report.
    #[arg(long, value_name = "FILE")]
    expected_findings: Option<PathBuf>,
    /// Output directory.
    #[arg(long, default_value = "simulated")]
    out: PathBuf,
    /// Directory for pre-maintenance.json and post-maintenance.json (default: --out).
    #[arg(long, value_name = "DIR")]
    events_dir: Option<PathBuf>,
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
    if args.fleet_machines == 0 && args.expected_findings.is_some() {
        eprintln!("patchwatch: --expected-findings needs a fleet (--fleet-machines above 0)");
        return ExitCode::from(EXIT_BAD_INPUT);
    }
    let events_dir = args.events_dir.as_ref().unwrap_or(&args.out);
    match write_all(&opts, args) {
        Ok(key) => {
            let fleet = key.map_or_else(String::new, |k| format!(", a fleet of {} machines", k.machines));
            out!(
                "Wrote {}/snapshot.json ({} machines in the run{fleet}), and pre-maintenance.json and post-maintenance.json in {}.",
                args.out.display(),
                args.machines,
                events_dir.display()
            );
            if let Some(path) = &args.expected_findings {
                out!("Wrote the answer key to {}.", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
            eprintln!("patchwatch: {e}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
        Err(e) => {
            eprintln!("patchwatch: writing {}: {e}", args.out.display());
            ExitCode::FAILURE
        }
    }
}

/// Writes the snapshot, the events and the answer key; returns the key (none without a fleet).
fn write_all(opts: &SimulateOptions, args: &Args) -> std::io::Result<Option<AnswerKey>> {
    let events_dir = args.events_dir.as_ref().unwrap_or(&args.out);
    std::fs::create_dir_all(&args.out)?;
    std::fs::create_dir_all(events_dir)?;
    // Written beside and renamed when complete: a failure leaves the previous snapshot as it was.
    let partial = args.out.join("snapshot.json.partial");
    let written = write_snapshot_file(opts, args.fleet_machines, &partial);
    let (events, key) = match written {
        Ok(written) => written,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, args.out.join("snapshot.json"))?;
    for (name, event) in [("pre-maintenance.json", &events.pre), ("post-maintenance.json", &events.post)] {
        write_json(&events_dir.join(name), event)?;
    }
    if let (Some(path), Some(key)) = (&args.expected_findings, &key) {
        write_json(path, &key.to_json())?;
    }
    Ok(key)
}

fn write_snapshot_file(
    opts: &SimulateOptions,
    fleet_machines: u32,
    path: &std::path::Path,
) -> std::io::Result<(SimulatedEvents, Option<AnswerKey>)> {
    let mut snapshot = BufWriter::new(File::create(path)?);
    let written = if fleet_machines == 0 {
        (write_snapshot(opts, &mut snapshot)?, None)
    } else {
        let simulated = write_fleet_snapshot(opts, &FleetOptions { machines: fleet_machines as usize }, &mut snapshot)?;
        (simulated.events, Some(simulated.key))
    };
    snapshot.flush()?;
    Ok(written)
}

fn write_json(path: &std::path::Path, value: &serde_json::Value) -> std::io::Result<()> {
    let mut text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    text.push('\n');
    std::fs::write(path, text)
}
