//! What `lint` and `report` share: the pipeline they run on, and "as of" parsing.

use std::path::PathBuf;

use patchwatch_engine::{
    config::{self, Config, Defaults},
    pipeline::{Pipeline, default_outbox},
};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// Where fleet data, configuration and state come from.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct Source {
    /// Snapshot of ARG tables to use instead of Azure Resource Graph (also PATCHWATCH_SNAPSHOT).
    #[arg(long)]
    pub snapshot: Option<PathBuf>,
    /// Routing file with `[rings]`, `[compliance]` and digest routes (also PATCHWATCH_CONFIG).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// State store with the run history (default: the local data directory).
    #[arg(long)]
    pub state: Option<String>,
    /// Judge the fleet as of this time (RFC 3339). Default: a snapshot's newest timestamp, or now.
    #[arg(long, value_parser = parse_time)]
    pub as_of: Option<OffsetDateTime>,
}

fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s.trim(), &Rfc3339).map_err(|e| format!("expected RFC 3339 like 2026-12-01T07:00:00Z: {e}"))
}

/// The pipeline for `lint`: it sends nothing, so the routing file is read for its `[rings]` and
/// `[compliance]` only, and channel secrets need not be set.
pub(crate) fn lint_pipeline(source: &Source) -> Result<Pipeline, String> {
    let without_config = Source { config: None, ..source.clone() };
    let hidden = |k: &str| k == "PATCHWATCH_CONFIG";
    let mut pipeline = build(&without_config, None, &hidden)?;
    let path = source.config.clone().or_else(|| std::env::var_os("PATCHWATCH_CONFIG").map(PathBuf::from));
    if let Some(path) = path.filter(|p| !p.as_os_str().is_empty()) {
        let (routing, _) = config::load_routing(&path, &|_| true).map_err(|problems| problems.join("\n"))?;
        pipeline.routing = Some(std::sync::Arc::new(routing));
    }
    Ok(pipeline)
}

/// The pipeline for a fleet command; `outbox` overrides PATCHWATCH_OUTBOX.
pub(crate) fn pipeline(source: &Source, outbox: Option<&PathBuf>) -> Result<Pipeline, String> {
    build(source, outbox, &|_| false)
}

fn build(source: &Source, outbox: Option<&PathBuf>, hidden: &dyn Fn(&str) -> bool) -> Result<Pipeline, String> {
    let defaults = Defaults {
        outbox: Some(default_outbox()),
        snapshot: source.snapshot.clone(),
        state: Some(config::local_state_url(|k| std::env::var(k).ok())),
    };
    let overrides = |k: &str| -> Option<String> {
        match k {
            _ if hidden(k) => None,
            "PATCHWATCH_SNAPSHOT" if source.snapshot.is_some() => {
                source.snapshot.as_ref().map(|p| p.display().to_string())
            }
            "PATCHWATCH_CONFIG" if source.config.is_some() => source.config.as_ref().map(|p| p.display().to_string()),
            "PATCHWATCH_STATE" if source.state.is_some() => source.state.clone(),
            "PATCHWATCH_OUTBOX" if outbox.is_some() => outbox.map(|p| p.display().to_string()),
            _ => std::env::var(k).ok(),
        }
    };
    Config::from_lookup(overrides, &defaults)
        .map_err(|e| e.to_string())
        .and_then(|c| Pipeline::from_config(&c).map_err(|e| e.to_string()))
}
