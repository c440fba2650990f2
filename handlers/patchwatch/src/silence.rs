//! `patchwatch silence add|list|expire`: time-boxed silences in the state store.

use std::process::ExitCode;

use patchwatch_engine::config;
use patchwatch_model::{
    conditions::parse_duration,
    silence::{Matchers, Silence},
    summary::Verdict,
    text::format_time,
};
use patchwatch_state::{
    silences::{Expired, Silences},
    store,
};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::EXIT_BAD_INPUT;

/// Mute notifications for a while: a planned change, a known-bad machine.
///
/// A silenced delivery is recorded in the ledger as silenced (by whom, until when) and not sent;
/// nothing silenced is replayed when the silence ends (`patchwatch deliveries` lists them).
#[derive(clap::Subcommand, Debug)]
pub(crate) enum Command {
    Add(AddArgs),
    List(ListArgs),
    Expire(ExpireArgs),
}

/// Add a silence: every matcher given must hold.
#[derive(clap::Args, Debug)]
pub(crate) struct AddArgs {
    /// Glob on the maintenance configuration's name (`Ring2-*`).
    #[arg(long)]
    configuration: Option<String>,
    /// Glob on machine names or ids: every machine a message covers must match.
    #[arg(long)]
    machine: Option<String>,
    /// `Name=value-glob`: every machine a message covers carries the tag (repeatable).
    #[arg(long, value_parser = parse_tag)]
    tag: Vec<(String, String)>,
    /// The message's outcome: Failed, Incomplete, WindowExceeded, RebootPending,
    /// CompletedWithWarnings or Succeeded (repeatable).
    #[arg(long, value_parser = parse_verdict)]
    outcome: Vec<Verdict>,
    /// Glob on the channel name from the routing file (`email` for the default recipients).
    #[arg(long)]
    channel: Option<String>,
    /// How long: 30m, 4h, 2d (at most 90 days).
    #[arg(long = "for", value_parser = parse_duration, conflicts_with = "until")]
    duration: Option<std::time::Duration>,
    /// Until when (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    until: Option<OffsetDateTime>,
    /// From when (RFC 3339; default now).
    #[arg(long, value_parser = parse_time)]
    starts: Option<OffsetDateTime>,
    /// Who silences (default: $USER).
    #[arg(long)]
    author: Option<String>,
    /// Why: a change number, a ticket.
    #[arg(long, default_value = "")]
    comment: String,
    #[command(flatten)]
    store: StoreArgs,
}

/// List silences: active and upcoming ones (all with --all).
#[derive(clap::Args, Debug)]
pub(crate) struct ListArgs {
    /// Also those that have ended.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    store: StoreArgs,
}

/// End a silence now.
#[derive(clap::Args, Debug)]
pub(crate) struct ExpireArgs {
    /// The silence's id (`s-…`, from `silence list`).
    id: String,
    /// Who ends it (default: $USER).
    #[arg(long)]
    author: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(clap::Args, Debug)]
pub(crate) struct StoreArgs {
    /// State store (default: PATCHWATCH_STATE, else the local data directory).
    #[arg(long)]
    state: Option<String>,
}

fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err(format!("{s:?}: expected Name=value")),
    }
}

fn parse_verdict(s: &str) -> Result<Verdict, String> {
    serde_json::from_value(serde_json::Value::String(s.trim().to_owned())).map_err(|_| {
        format!("{s:?}: expected Failed, Incomplete, WindowExceeded, RebootPending, CompletedWithWarnings or Succeeded")
    })
}

fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s.trim(), &Rfc3339).map_err(|e| format!("expected RFC 3339 like 2026-12-01T07:00:00Z: {e}"))
}

fn silences(args: &StoreArgs) -> Result<Silences, ExitCode> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let url = args.state.clone().or_else(|| env("PATCHWATCH_STATE")).unwrap_or_else(|| config::local_state_url(env));
    match store::open(&url, None) {
        Ok(s) => Ok(Silences::new(s)),
        Err(e) => {
            eprintln!("patchwatch: PATCHWATCH_STATE is invalid: {e}");
            Err(ExitCode::from(EXIT_BAD_INPUT))
        }
    }
}

fn user(given: Option<String>) -> String {
    given
        .or_else(|| std::env::var("USER").ok())
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

pub(crate) async fn run(command: Command) -> ExitCode {
    match command {
        Command::Add(args) => add(args).await,
        Command::List(args) => list(args).await,
        Command::Expire(args) => expire(args).await,
    }
}

async fn add(args: AddArgs) -> ExitCode {
    let store = match silences(&args.store) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let now = OffsetDateTime::now_utc();
    let starts = args.starts.unwrap_or(now);
    let Some(ends) = args.until.or(args.duration.map(|d| starts + d)) else {
        eprintln!("patchwatch: give --for (30m, 4h, 2d) or --until");
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    let matchers = Matchers {
        configuration: args.configuration,
        machine: args.machine,
        tags: args.tag.into_iter().collect(),
        outcome: args.outcome,
        channel: args.channel,
    };
    let silence = match Silence::new(matchers, starts..ends, &user(args.author), &args.comment, now) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("patchwatch: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    match store.add(&silence).await {
        Ok(_) => {
            out!(
                "{}  {} until {}: {}",
                silence.id,
                silence.matchers.describe(),
                format_time(silence.ends),
                silence.author
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("patchwatch: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn list(args: ListArgs) -> ExitCode {
    let store = match silences(&args.store) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let now = OffsetDateTime::now_utc();
    let all = match store.all().await {
        Ok(all) => all,
        Err(e) => {
            eprintln!("patchwatch: {e}");
            return ExitCode::FAILURE;
        }
    };
    let shown: Vec<&Silence> = all.iter().filter(|s| args.all || s.ends > now).collect();
    if shown.is_empty() {
        out!("No {}silences.", if args.all { "" } else { "active or upcoming " });
        return ExitCode::SUCCESS;
    }
    out!("{:<16} {:<8} {:<20} {:<20} {:<16} MATCHES / COMMENT", "ID", "STATE", "STARTS", "ENDS", "AUTHOR");
    for s in shown {
        let state = if s.is_active(now) {
            "active"
        } else if s.starts > now {
            "upcoming"
        } else {
            "ended"
        };
        let ended_by = s.expired_by.as_deref().map(|b| format!(" [ended early by {b}]")).unwrap_or_default();
        out!(
            "{:<16} {:<8} {:<20} {:<20} {:<16} {} | {}{ended_by}",
            s.id,
            state,
            format_time(s.starts),
            format_time(s.ends),
            s.author,
            s.matchers.describe(),
            s.comment
        );
    }
    ExitCode::SUCCESS
}

async fn expire(args: ExpireArgs) -> ExitCode {
    let store = match silences(&args.store) {
        Ok(s) => s,
        Err(code) => return code,
    };
    match store.expire(args.id.trim(), &user(args.author), OffsetDateTime::now_utc()).await {
        Ok(Expired::Ended(s)) => {
            out!("{} ended at {}.", s.id, format_time(s.ends));
            ExitCode::SUCCESS
        }
        Ok(Expired::AlreadyOver(s)) => {
            out!("{} had already ended at {}; nothing changed.", s.id, format_time(s.ends));
            ExitCode::SUCCESS
        }
        Ok(Expired::NotFound) => {
            eprintln!("patchwatch: no silence {:?} (see `patchwatch silence list --all`)", args.id);
            ExitCode::from(EXIT_BAD_INPUT)
        }
        Err(e) => {
            eprintln!("patchwatch: {e}");
            ExitCode::FAILURE
        }
    }
}
