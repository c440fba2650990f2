//! Just enough of Update Manager's `maintenanceWindow` to place the simulated runs: the
//! recurrences the simulated configurations use, in their Windows time zones (daylight saving
//! from the bundled IANA rules).

use time::{Date, Duration, Month, OffsetDateTime, PrimitiveDateTime, Time, Weekday};

/// The Windows time zones the simulated configurations use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Zone {
    Utc,
    WEurope,
    Eastern,
}

impl Zone {
    pub(crate) fn windows_name(self) -> &'static str {
        match self {
            Zone::Utc => "UTC",
            Zone::WEurope => "W. Europe Standard Time",
            Zone::Eastern => "Eastern Standard Time",
        }
    }

    fn iana(self) -> &'static str {
        match self {
            Zone::Utc => "UTC",
            Zone::WEurope => "Europe/Berlin",
            Zone::Eastern => "America/New_York",
        }
    }

    /// The instant of wall-clock `local` in this zone (UTC if the zone cannot be loaded).
    pub(crate) fn instant(self, local: PrimitiveDateTime) -> OffsetDateTime {
        let utc = local.assume_utc();
        let converted = || -> Option<OffsetDateTime> {
            let tz = jiff::tz::TimeZone::get(self.iana()).ok()?;
            let dt = jiff::civil::DateTime::new(
                i16::try_from(local.year()).ok()?,
                i8::try_from(u8::from(local.month())).ok()?,
                i8::try_from(local.day()).ok()?,
                i8::try_from(local.hour()).ok()?,
                i8::try_from(local.minute()).ok()?,
                0,
                0,
            )
            .ok()?;
            OffsetDateTime::from_unix_timestamp(tz.to_timestamp(dt).ok()?.as_second()).ok()
        };
        converted().unwrap_or(utc)
    }
}

/// Which weekday of the month.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Nth {
    First,
    Second,
    Third,
    Fourth,
    Last,
}

impl Nth {
    /// How `date` is named among the same weekdays of its month (the last one is `Last`).
    pub(crate) fn of(date: Date) -> Nth {
        if date.day() + 7 > date.month().length(date.year()) {
            return Nth::Last;
        }
        match (date.day() - 1) / 7 {
            0 => Nth::First,
            1 => Nth::Second,
            2 => Nth::Third,
            _ => Nth::Fourth,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Nth::First => "First",
            Nth::Second => "Second",
            Nth::Third => "Third",
            Nth::Fourth => "Fourth",
            Nth::Last => "Last",
        }
    }

    fn matches(self, date: Date) -> bool {
        match self {
            Nth::Last => date.day() + 7 > date.month().length(date.year()),
            n => Nth::of_index((date.day() - 1) / 7) == Some(n),
        }
    }

    fn of_index(i: u8) -> Option<Nth> {
        [Nth::First, Nth::Second, Nth::Third, Nth::Fourth].get(usize::from(i)).copied()
    }
}

/// `recurEvery`, in the forms the simulation writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Recur {
    Daily,
    Weekly(Weekday),
    Monthly(Nth, Weekday),
}

impl Recur {
    /// As `recurEvery` spells it: `Day`, `Week Sunday`, `Month Second Tuesday`.
    pub(crate) fn text(self) -> String {
        match self {
            Recur::Daily => "Day".to_owned(),
            Recur::Weekly(d) => format!("Week {d}"),
            Recur::Monthly(n, d) => format!("Month {} {d}", n.name()),
        }
    }

    fn matches(self, date: Date) -> bool {
        match self {
            Recur::Daily => true,
            Recur::Weekly(d) => date.weekday() == d,
            Recur::Monthly(n, d) => date.weekday() == d && n.matches(date),
        }
    }
}

/// A configuration's `maintenanceWindow`.
#[derive(Clone, Debug)]
pub(crate) struct Window {
    pub(crate) recur: Recur,
    pub(crate) zone: Zone,
    /// Local start time of every run.
    pub(crate) at: Time,
    /// Local date of `startDateTime`.
    pub(crate) first: Date,
    /// Local `expirationDateTime`; none is `9999-12-31 23:59`.
    pub(crate) expires: Option<PrimitiveDateTime>,
    pub(crate) minutes: i64,
}

/// How far the calendar walks before giving up (a monthly schedule runs at least once a year).
const HORIZON_DAYS: i64 = 800;

impl Window {
    fn run_on(&self, date: Date) -> Option<OffsetDateTime> {
        if date < self.first || !self.recur.matches(date) {
            return None;
        }
        let local = PrimitiveDateTime::new(date, self.at);
        if self.expires.is_some_and(|e| local > e) {
            return None;
        }
        Some(self.zone.instant(local))
    }

    /// The last `count` runs that started before `t`, newest first.
    pub(crate) fn runs_before(&self, t: OffsetDateTime, count: usize) -> Vec<OffsetDateTime> {
        let mut runs = Vec::with_capacity(count);
        let mut date = t.date().next_day().unwrap_or(t.date());
        for _ in 0..HORIZON_DAYS {
            if runs.len() == count {
                break;
            }
            if let Some(run) = self.run_on(date).filter(|r| *r < t) {
                runs.push(run);
            }
            match date.previous_day() {
                Some(d) => date = d,
                None => break,
            }
        }
        runs
    }

    /// The first run that starts after `t`.
    pub(crate) fn next_after(&self, t: OffsetDateTime) -> Option<OffsetDateTime> {
        let mut date = t.date().previous_day().unwrap_or(t.date());
        for _ in 0..HORIZON_DAYS {
            if let Some(run) = self.run_on(date).filter(|r| *r > t) {
                return Some(run);
            }
            date = date.next_day()?;
        }
        None
    }

    /// `startDateTime`: `YYYY-MM-DD hh:mm`.
    pub(crate) fn start_text(&self) -> String {
        local_text(PrimitiveDateTime::new(self.first, self.at))
    }

    /// `expirationDateTime`: `YYYY-MM-DD hh:mm`, `9999-12-31 23:59` when it never expires.
    pub(crate) fn expiration_text(&self) -> String {
        self.expires.map_or_else(|| "9999-12-31 23:59".to_owned(), local_text)
    }

    /// `duration`: `HH:mm`.
    pub(crate) fn duration_text(&self) -> String {
        format!("{:02}:{:02}", self.minutes / 60, self.minutes % 60)
    }

    /// The instant the window expires, if it does.
    pub(crate) fn expires_at(&self) -> Option<OffsetDateTime> {
        self.expires.map(|e| self.zone.instant(e))
    }

    pub(crate) fn length(&self) -> Duration {
        Duration::minutes(self.minutes)
    }
}

fn local_text(t: PrimitiveDateTime) -> String {
    format!("{:04}-{:02}-{:02} {:02}:{:02}", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute())
}

/// January 1st of `year` (for `startDateTime`).
pub(crate) fn new_year(year: i32) -> Date {
    Date::from_calendar_date(year, Month::January, 1).unwrap_or(Date::MIN)
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime, time};

    use super::*;

    fn window(recur: Recur, zone: Zone, at: Time) -> Window {
        Window { recur, zone, at, first: date!(2025 - 01 - 01), expires: None, minutes: 120 }
    }

    #[test]
    fn monthly_runs_and_daylight_saving() {
        let w = window(Recur::Monthly(Nth::Second, Weekday::Tuesday), Zone::Utc, time!(22:00));
        let now = datetime!(2026-11-11 10:00 UTC);
        assert_eq!(
            w.runs_before(now, 3),
            [datetime!(2026-11-10 22:00 UTC), datetime!(2026-10-13 22:00 UTC), datetime!(2026-09-08 22:00 UTC)]
        );
        assert_eq!(w.next_after(now), Some(datetime!(2026-12-08 22:00 UTC)));
        assert_eq!(Nth::of(date!(2026 - 10 - 27)), Nth::Last);
        assert_eq!(Nth::of(date!(2026 - 11 - 03)), Nth::First);
        let w = window(Recur::Weekly(Weekday::Sunday), Zone::WEurope, time!(04:00));
        assert_eq!(
            w.runs_before(now, 3),
            [datetime!(2026-11-08 03:00 UTC), datetime!(2026-11-01 03:00 UTC), datetime!(2026-10-25 03:00 UTC)]
        );
        let w = window(Recur::Monthly(Nth::Second, Weekday::Saturday), Zone::Eastern, time!(23:00));
        assert_eq!(w.runs_before(now, 1), [datetime!(2026-10-11 03:00 UTC)]);
        assert_eq!(w.recur.text(), "Month Second Saturday");
    }
}
