//! patchwatch: local runner and operator CLI.
//!
//! `replay` runs one event through the whole pipeline, `serve` runs every handler on
//! 127.0.0.1:7071, `simulate` writes a realistic snapshot and matching events, `deliveries`
//! lists the delivery ledger, `lint` judges the fleet's schedules, `report` sends the compliance
//! digest, `remind` follows up failed runs nobody owns, `silence` mutes notifications for a while,
//! `package` builds the Function App zips and Lambda bootstraps.

/// `println!` that ignores a closed stdout (`patchwatch … | head`) instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

mod deliveries;
mod fleet;
mod lint;
mod package;
mod print;
mod remind;
mod replay;
mod report;
mod routes;
mod serve;
mod silence;
mod simulate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Know what happened in every Azure Update Manager patch run.
#[derive(Parser, Debug)]
#[command(name = "patchwatch", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    Replay(replay::Args),
    Deliveries(deliveries::Args),
    CheckConfig(routes::CheckArgs),
    #[command(subcommand)]
    Routes(routes::RoutesCommand),
    Serve(serve::Args),
    Simulate(simulate::Args),
    Lint(lint::Args),
    Report(report::Args),
    Remind(remind::Args),
    #[command(subcommand)]
    Silence(silence::Command),
    Package(package::Args),
}

/// Exit code for "nothing sent yet, try again later" (EX_TEMPFAIL).
pub const EXIT_RETRY_LATER: u8 = 75;
/// Exit code for bad input or configuration (EX_USAGE-like).
pub const EXIT_BAD_INPUT: u8 = 2;

/// Fleet loads allocate millions of small strings; mimalloc makes them markedly cheaper.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    patchwatch_host::telemetry::init_tracing("warn");
    match cli.command {
        Command::Replay(args) => replay::run(args).await,
        Command::Deliveries(args) => deliveries::run(args).await,
        Command::CheckConfig(args) => routes::check(&args).await,
        Command::Routes(routes::RoutesCommand::Test(args)) => routes::test(args).await,
        Command::Serve(args) => serve::run(args).await,
        Command::Simulate(args) => simulate::run(&args),
        Command::Lint(args) => lint::run(args).await,
        Command::Report(args) => report::run(args).await,
        Command::Remind(args) => remind::run(args).await,
        Command::Silence(command) => silence::run(command).await,
        Command::Package(args) => package::run(&args),
    }
}
