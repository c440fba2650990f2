//! Trends over a configuration's last runs: failures and no-shows per run, install time against
//! the window, repeat offenders, and KBs that failed in one ring and are due in the next.

use serde::Serialize;
use time::OffsetDateTime;

/// One run of a configuration, as a point on the trend.
#[derive(Clone, Debug, Serialize)]
pub struct RunPoint {
    pub run_id: String,
    pub start: OffsetDateTime,
    pub machines: usize,
    pub failed: usize,
    pub no_show: usize,
    /// Whole percent of machines that succeeded.
    pub success_percent: u32,
    pub longest_install_minutes: Option<u32>,
}

/// A configuration's last runs, oldest first.
#[derive(Clone, Debug, Serialize)]
pub struct ConfigurationTrend {
    pub configuration: String,
    pub configuration_id: String,
    pub runs: Vec<RunPoint>,
    pub median_install_minutes: Option<u32>,
    pub longest_install_minutes: Option<u32>,
    pub window_minutes: Option<u32>,
}

/// A machine that did not succeed in its configuration's last runs, every one of them.
#[derive(Clone, Debug, Serialize)]
pub struct RepeatOffender {
    pub machine: String,
    pub configuration: String,
    /// How many runs in a row it did not succeed (at least 3).
    pub runs: usize,
    /// `Failed` or `NoShow` in the latest run.
    pub latest: String,
}

/// A KB (or package) that failed in an earlier ring and is due in a later one.
#[derive(Clone, Debug, Serialize)]
pub struct KbCarryover {
    pub patch: String,
    pub failed_in: String,
    pub failed_machines: usize,
    pub scheduled_in: String,
    pub next_run: Option<OffsetDateTime>,
}
