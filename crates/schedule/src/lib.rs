//! patchwatch-schedule: Azure Update Manager maintenance windows, with no I/O.
//!
//! A maintenance configuration's `maintenanceWindow` says when patching may run, in wall-clock
//! terms of its own time zone: `startDateTime` and `expirationDateTime` as `YYYY-MM-DD hh:mm`,
//! `timeZone` as a Windows zone name, `recurEvery` in Azure's own little grammar. [`Schedule`]
//! parses those fields once and [`Schedule::next_runs`] turns them into UTC instants, so a
//! notice can say "patching starts in 2 hours" correctly on both sides of a daylight saving
//! change.
//!
//! - `recurEvery`: `Day`, `3Days`, `6Hours`, `Week Saturday,Sunday`, `2Weeks`,
//!   `Month day23,day-1`, `Month Second Tuesday Offset4`, … (see [`Schedule::parse`])
//! - `timeZone`: Windows names through CLDR's windowsZones (localzone), rules from jiff's
//!   bundled tzdb; IANA names are accepted too.

mod recurrence;
mod text;
mod zone;

#[cfg(test)]
mod tests;

use jiff::civil::{Date, DateTime};
use time::OffsetDateTime;

use crate::recurrence::Recurrence;
use crate::zone::Zone;

/// The `maintenanceWindow` fields as written in the configuration (strings as Azure returns
/// them), borrowed so callers can hand over their deserialized JSON without copying.
#[derive(Clone, Copy, Debug)]
pub struct WindowSpec<'a> {
    pub start_date_time: &'a str,
    pub expiration_date_time: Option<&'a str>,
    pub duration: &'a str,
    pub time_zone: &'a str,
    pub recur_every: &'a str,
}

/// A `maintenanceWindow` field that cannot be understood. Each variant names its field as the
/// JSON path (`maintenanceWindow.recurEvery`) so an operator can find it in the portal's JSON
/// view, and quotes the value as written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("maintenanceWindow.startDateTime: {reason} in '{value}'")]
    StartDateTime { value: String, reason: String },
    #[error("maintenanceWindow.expirationDateTime: {reason} in '{value}'")]
    ExpirationDateTime { value: String, reason: String },
    #[error("maintenanceWindow.duration: {reason} in '{value}'")]
    Duration { value: String, reason: String },
    #[error("maintenanceWindow.timeZone: {reason} in '{value}'")]
    TimeZone { value: String, reason: String },
    #[error("maintenanceWindow.recurEvery: {reason} in '{value}'")]
    RecurEvery { value: String, reason: String },
}

impl ScheduleError {
    /// The field at fault, as its JSON path (e.g. `maintenanceWindow.timeZone`).
    pub fn field(&self) -> &'static str {
        match self {
            Self::StartDateTime { .. } => "maintenanceWindow.startDateTime",
            Self::ExpirationDateTime { .. } => "maintenanceWindow.expirationDateTime",
            Self::Duration { .. } => "maintenanceWindow.duration",
            Self::TimeZone { .. } => "maintenanceWindow.timeZone",
            Self::RecurEvery { .. } => "maintenanceWindow.recurEvery",
        }
    }
}

/// One window: when it opens and closes (UTC) and how its own time zone writes the opening.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Occurrence {
    /// Window start, UTC.
    pub start: OffsetDateTime,
    /// Window end, UTC: start plus the duration as elapsed time (a window spanning a daylight
    /// saving change still lasts exactly `duration`).
    pub end: OffsetDateTime,
    /// e.g. "2026-12-08 22:00 W. Europe Standard Time": the local wall time of the start
    /// (seconds only when not zero) and the zone name as written, for people who set it.
    pub local: String,
}

/// A parsed `maintenanceWindow`, ready to list its runs.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// startDateTime as a wall time; its time of day is every run's (but for `Hours`).
    start: DateTime,
    /// startDateTime as an instant: no run comes before it.
    start_instant: OffsetDateTime,
    expiration: Option<OffsetDateTime>,
    duration_seconds: u32,
    zone: Zone,
    /// The timeZone as written (trimmed), for [`Occurrence::local`].
    zone_label: String,
    recurrence: Recurrence,
}

impl Schedule {
    /// Parses every field, so that a configuration Azure would run but we cannot read is
    /// reported once, naming the field, instead of silently yielding no runs.
    ///
    /// - startDateTime, expirationDateTime: `YYYY-MM-DD hh:mm`, `:ss` and a `T` separator
    ///   allowed, wall time in timeZone; expiration absent, blank or on 9999-12-31 is never.
    /// - duration: `HH:mm`, `H:mm` or `HH:mm:ss`, above zero.
    /// - timeZone: a Windows zone name in any letter case, or an IANA name.
    /// - recurEvery (any case, blanks and commas between words): `[N]Hour(s)` (wall-clock
    ///   hours from startDateTime), `[N]Day(s)`, `[N]Week(s) [Monday,…]`, `[N]Month(s)
    ///   [dayD,…]` with `day-1` the last day, `[N]Month(s) First|Second|Third|Fourth|Last
    ///   <Weekday> [OffsetD]` with D in -6..=6 days. Runs keep startDateTime's time of day;
    ///   `Week` and `Month` alone keep its weekday and day of month; a day a month lacks is
    ///   skipped, not moved; `N` counts periods from startDateTime's own day, Monday-based
    ///   week or month.
    pub fn parse(spec: &WindowSpec<'_>) -> Result<Schedule, ScheduleError> {
        let zone = zone::resolve(spec.time_zone)
            .map_err(|reason| ScheduleError::TimeZone { value: spec.time_zone.to_owned(), reason })?;
        let start_error =
            |reason: String| ScheduleError::StartDateTime { value: spec.start_date_time.to_owned(), reason };
        let start = text::wall_time(spec.start_date_time).map_err(start_error)?;
        let start_instant = instant(&zone, start).ok_or_else(|| start_error(OUT_OF_RANGE.to_owned()))?;
        let duration_seconds = text::duration_seconds(spec.duration)
            .map_err(|reason| ScheduleError::Duration { value: spec.duration.to_owned(), reason })?;
        let recurrence = recurrence::parse(spec.recur_every, start)
            .map_err(|reason| ScheduleError::RecurEvery { value: spec.recur_every.to_owned(), reason })?;
        let expiration = match spec.expiration_date_time {
            Some(value) => expiration(&zone, value, start_instant)?,
            None => None,
        };
        Ok(Schedule {
            start,
            start_instant,
            expiration,
            duration_seconds,
            zone,
            zone_label: spec.time_zone.trim().to_owned(),
            recurrence,
        })
    }

    /// The window length in whole minutes (a `HH:mm:ss` duration's seconds are dropped here,
    /// though [`Occurrence::end`] keeps them).
    pub fn duration_minutes(&self) -> u32 {
        self.duration_seconds / 60
    }

    /// Expiration as an instant; None when none is set or it is 9999-12-31 (never), which is
    /// what Azure fills in when the field is left out.
    pub fn expiration(&self) -> Option<OffsetDateTime> {
        self.expiration
    }

    /// IANA name the Windows zone maps to (e.g. "Europe/Berlin" for "W. Europe Standard Time"),
    /// as the tz database spells it.
    pub fn iana_zone(&self) -> &str {
        &self.zone.iana
    }

    /// Window starts strictly after `after` and before `until`, at most `limit`, soonest first;
    /// none after expiration; none before startDateTime.
    pub fn next_runs(&self, after: OffsetDateTime, until: OffsetDateTime, limit: usize) -> Vec<Occurrence> {
        let mut runs = Vec::new();
        if limit == 0 || until <= after {
            return runs;
        }
        let first = match self.wall_time(after) {
            Some(after) => self.recurrence.first_period(self.start, after),
            // Before the calendar's first day: start from the beginning.
            None if after < self.start_instant => 0,
            // Past the calendar's last day: nothing can follow.
            None => return runs,
        };
        let horizon = match self.expiration {
            Some(expiration) if expiration < until => expiration,
            _ => until,
        };
        // A day of slack: a daylight saving change can move a wall time across midnight.
        let last_date = self.wall_time(horizon).and_then(|wall| wall.date().tomorrow().ok()).unwrap_or(Date::MAX);
        let mut k = first;
        while let Some(period) = self.recurrence.period(self.start, k) {
            if period.floor > last_date {
                break;
            }
            for wall in period.times {
                let Some(start) = instant(&self.zone, wall) else {
                    return runs;
                };
                // A time skipped by a spring-forward gap lands on the next one (`1Hour`).
                let repeated = runs.last().is_some_and(|last: &Occurrence| start <= last.start);
                if start < self.start_instant || start <= after || repeated {
                    continue;
                }
                if start >= until || self.expiration.is_some_and(|expiration| start > expiration) {
                    return runs;
                }
                let Some(run) = self.occurrence(wall, start) else {
                    return runs;
                };
                runs.push(run);
                if runs.len() >= limit {
                    return runs;
                }
            }
            let Some(next) = k.checked_add(1) else { break };
            k = next;
        }
        runs
    }

    /// An instant as a wall time in the schedule's zone; None outside jiff's calendar.
    fn wall_time(&self, at: OffsetDateTime) -> Option<DateTime> {
        let timestamp = jiff::Timestamp::from_second(at.unix_timestamp()).ok()?;
        Some(timestamp.to_zoned_datetime(self.zone.rules.clone()).datetime())
    }

    fn occurrence(&self, wall: DateTime, start: OffsetDateTime) -> Option<Occurrence> {
        let end = start.checked_add(time::Duration::seconds(i64::from(self.duration_seconds)))?;
        // The wall time actually shown on clocks: a time in a spring-forward gap is later.
        let shown = self.zone.rules.to_zoned_datetime(wall).ok()?.datetime();
        let local = format!("{} {}", wall_text(shown), self.zone_label);
        Some(Occurrence { start, end, local })
    }
}

const OUT_OF_RANGE: &str = "outside the supported calendar (years -9999 to 9999)";

/// A wall time in `zone` as a UTC instant; gaps and folds resolve the way jiff's "compatible"
/// disambiguation does (a skipped time moves later, a repeated time takes its first instance),
/// which is also what RFC 5545 calendars and Windows do.
fn instant(zone: &Zone, wall: DateTime) -> Option<OffsetDateTime> {
    let zoned = zone.rules.to_zoned_datetime(wall).ok()?;
    OffsetDateTime::from_unix_timestamp(zoned.timestamp().as_second()).ok()
}

/// expirationDateTime: absent, blank or on 9999-12-31 means never; otherwise it must not come
/// before startDateTime (Azure refuses such a configuration, so it is a corrupt one).
fn expiration(zone: &Zone, value: &str, start: OffsetDateTime) -> Result<Option<OffsetDateTime>, ScheduleError> {
    let error = |reason: String| ScheduleError::ExpirationDateTime { value: value.to_owned(), reason };
    if value.trim().is_empty() {
        return Ok(None);
    }
    let wall = text::wall_time(value).map_err(error)?;
    if wall.date() == Date::MAX {
        return Ok(None);
    }
    let at = instant(zone, wall).ok_or_else(|| error(OUT_OF_RANGE.to_owned()))?;
    if at < start {
        return Err(error("before startDateTime".to_owned()));
    }
    Ok(Some(at))
}

/// `YYYY-MM-DD hh:mm`, with `:ss` only when the seconds are not zero.
fn wall_text(wall: DateTime) -> String {
    let mut text =
        format!("{:04}-{:02}-{:02} {:02}:{:02}", wall.year(), wall.month(), wall.day(), wall.hour(), wall.minute());
    if wall.second() != 0 {
        text.push_str(&format!(":{:02}", wall.second()));
    }
    text
}
