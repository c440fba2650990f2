//! `maintenanceWindow.recurEvery`: its grammar and the wall times each recurrence period holds.
//!
//! The grammar (Microsoft.Maintenance REST spec, `MaintenanceWindow.recurEvery`):
//! `[N]Day(s)`, `[N]Week(s) [Monday,…]`, `[N]Month(s) [day1,…]` and
//! `[N]Month(s) First|Second|Third|Fourth|Last <Weekday> [Offset±D]` with D in -6..=6. Two forms
//! the spec's grammar leaves out are accepted because Update Manager documents the schedules
//! behind them: `[N]Hour(s)` (hourly schedules, API only) and `day-1`, the portal's "run on the
//! last date of the month" (spelled so in deployed templates; no other negative day exists).
//!
//! Periods are counted from startDateTime's own period (its day, its Monday-based week, its
//! month), so `2Weeks` means the week of startDateTime, then every second week after it.

use jiff::civil::{Date, DateTime, Weekday};
use jiff::{SignedDuration, Span};

use crate::text::number;

/// Largest `N` accepted in `NDays`, `NWeeks`, …: far past anything meaningful (the service
/// asks for a run at least every 35 days) while keeping period arithmetic far from overflow.
const MAX_INTERVAL: u32 = 9_999;

/// A parsed `recurEvery`, with the defaults startDateTime implies already filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Recurrence {
    /// Every `every` hours of wall-clock time from startDateTime.
    Hours { every: u32 },
    /// Every `every` days at startDateTime's time of day.
    Days { every: u32 },
    /// These weekdays (Monday first) in every `every`-th week.
    Weeks { every: u32, days: Vec<Weekday> },
    /// These days of the month in every `every`-th month.
    MonthDays { every: u32, days: Vec<MonthDay> },
    /// The `nth` (1..=4, or -1 for last) `weekday` of every `every`-th month, moved `offset`
    /// days (which may leave that month).
    MonthWeekday { every: u32, nth: i8, weekday: Weekday, offset: i8 },
}

/// One entry of a `Month dayN,…` list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MonthDay {
    /// `dayN`: skipped in months without day N.
    Day(i8),
    /// `day-1`: the month's last day, whatever its length.
    Last,
}

/// The candidate wall times of one period, soonest first, and a date no candidate precedes
/// (what lets the caller stop once a period lies wholly past the horizon).
#[derive(Debug)]
pub(crate) struct Period {
    pub(crate) floor: Date,
    pub(crate) times: Vec<DateTime>,
}

/// Parses `recurEvery`; `start` supplies the weekday, day of month and time of day the short
/// forms (`Week`, `Month`) leave out. Errors are the reason alone; the caller names the field.
pub(crate) fn parse(text: &str, start: DateTime) -> Result<Recurrence, String> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (count, rest) = text.split_at_checked(digits).unwrap_or((text, ""));
    let every = interval(count)?;
    let rest = rest.trim_start();
    let letters = rest.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(rest.len());
    let (unit, modifiers) = rest.split_at_checked(letters).unwrap_or((rest, ""));
    let tokens: Vec<&str> =
        modifiers.split(|c: char| c == ',' || c.is_whitespace()).filter(|token| !token.is_empty()).collect();
    match unit.to_ascii_lowercase().as_str() {
        "hour" | "hours" => no_modifiers("Hour", &tokens).map(|()| Recurrence::Hours { every }),
        "day" | "days" => no_modifiers("Day", &tokens).map(|()| Recurrence::Days { every }),
        "week" | "weeks" => weekly(every, &tokens, start.date()),
        "month" | "months" => monthly(every, &tokens, start.date()),
        "" => Err("missing unit (Hour, Day, Week or Month)".to_owned()),
        _ => Err(format!("unknown unit '{unit}' (expected Hour, Day, Week or Month)")),
    }
}

/// The leading `N`; absent means 1.
fn interval(count: &str) -> Result<u32, String> {
    if count.is_empty() {
        return Ok(1);
    }
    match number(count, 1, 10).and_then(|n| u32::try_from(n).ok()) {
        Some(0) => Err("interval must be at least 1".to_owned()),
        Some(n) if n <= MAX_INTERVAL => Ok(n),
        _ => Err(format!("interval {count} is above {MAX_INTERVAL}")),
    }
}

fn no_modifiers(unit: &str, tokens: &[&str]) -> Result<(), String> {
    match tokens.first() {
        None => Ok(()),
        Some(token) => Err(format!("unexpected '{token}' after {unit}")),
    }
}

fn weekly(every: u32, tokens: &[&str], start: Date) -> Result<Recurrence, String> {
    let mut days = tokens.iter().map(|token| weekday(token)).collect::<Result<Vec<_>, _>>()?;
    if days.is_empty() {
        days.push(start.weekday());
    }
    days.sort_unstable_by_key(|day| day.to_monday_zero_offset());
    days.dedup();
    Ok(Recurrence::Weeks { every, days })
}

fn monthly(every: u32, tokens: &[&str], start: Date) -> Result<Recurrence, String> {
    let Some((first, rest)) = tokens.split_first() else {
        return Ok(Recurrence::MonthDays { every, days: vec![MonthDay::Day(start.day())] });
    };
    if strip_prefix_ignore_case(first, "day").is_some() {
        let days = tokens.iter().map(|token| month_day(token)).collect::<Result<Vec<_>, _>>()?;
        return Ok(Recurrence::MonthDays { every, days });
    }
    let nth = week_of_month(first)?;
    let (day, rest) = rest.split_first().ok_or_else(|| format!("missing weekday after '{first}'"))?;
    let weekday = weekday(day)?;
    let offset = offset(rest)?;
    Ok(Recurrence::MonthWeekday { every, nth, weekday, offset })
}

fn weekday(token: &str) -> Result<Weekday, String> {
    const DAYS: [(&str, Weekday); 7] = [
        ("monday", Weekday::Monday),
        ("tuesday", Weekday::Tuesday),
        ("wednesday", Weekday::Wednesday),
        ("thursday", Weekday::Thursday),
        ("friday", Weekday::Friday),
        ("saturday", Weekday::Saturday),
        ("sunday", Weekday::Sunday),
    ];
    DAYS.iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(token))
        .map(|&(_, day)| day)
        .ok_or_else(|| format!("unknown weekday '{token}'"))
}

/// `dayN` with N in 1..=31, or `day-1` for the last day.
fn month_day(token: &str) -> Result<MonthDay, String> {
    let bad = || format!("bad day of month '{token}' (expected day1 to day31, or day-1 for the last day)");
    let digits = strip_prefix_ignore_case(token, "day").ok_or_else(bad)?;
    if digits == "-1" {
        return Ok(MonthDay::Last);
    }
    match number(digits, 1, 2).and_then(|n| i8::try_from(n).ok()) {
        Some(day @ 1..=31) => Ok(MonthDay::Day(day)),
        _ => Err(bad()),
    }
}

fn week_of_month(token: &str) -> Result<i8, String> {
    const WEEKS: [(&str, i8); 5] = [("first", 1), ("second", 2), ("third", 3), ("fourth", 4), ("last", -1)];
    WEEKS.iter().find(|(name, _)| name.eq_ignore_ascii_case(token)).map(|&(_, nth)| nth).ok_or_else(|| {
        format!(
            "expected day numbers (day23) or a week of the month (First, Second, Third, Fourth, Last), found '{token}'"
        )
    })
}

/// The optional `OffsetD` (also `Offset D`, `Offset+D`) after the weekday; D in -6..=6.
fn offset(tokens: &[&str]) -> Result<i8, String> {
    let Some((first, rest)) = tokens.split_first() else {
        return Ok(0);
    };
    let Some(inline) = strip_prefix_ignore_case(first, "offset") else {
        return Err(format!("unexpected '{first}' (expected OffsetN, N from -6 to 6)"));
    };
    let (value, rest) = match (inline, rest.split_first()) {
        ("", Some((value, rest))) => (*value, rest),
        _ => (inline, rest),
    };
    if let Some(extra) = rest.first() {
        return Err(format!("unexpected '{extra}' after the offset"));
    }
    let (negative, digits) = match value.strip_prefix('-') {
        Some(digits) => (true, digits),
        None => (false, value.strip_prefix('+').unwrap_or(value)),
    };
    match number(digits, 1, 1).and_then(|n| i8::try_from(n).ok()) {
        Some(days @ 0..=6) => Ok(if negative { -days } else { days }),
        _ => Err(format!("offset '{value}' is not a whole number of days from -6 to 6")),
    }
}

fn strip_prefix_ignore_case<'t>(token: &'t str, prefix: &str) -> Option<&'t str> {
    let head = token.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| token.get(prefix.len()..)).flatten()
}

impl Recurrence {
    /// The first period that can hold a run after the wall time `after`: one period early (and
    /// for hours three hours more), so runs moved by an offset or by a daylight saving change
    /// are not missed; the caller filters by instant.
    pub(crate) fn first_period(&self, start: DateTime, after: DateTime) -> i64 {
        let (elapsed, every) = match *self {
            Self::Hours { every } => (after.duration_since(start).as_hours() - 3, every),
            Self::Days { every } => (days_between(start.date(), after.date()), every),
            Self::Weeks { every, .. } => {
                let monday = week_start(start.date()).unwrap_or(start.date());
                (days_between(monday, after.date()).div_euclid(7), every)
            }
            Self::MonthDays { every, .. } | Self::MonthWeekday { every, .. } => {
                (months_between(start.date(), after.date()), every)
            }
        };
        (elapsed.div_euclid(i64::from(every)) - 1).max(0)
    }

    /// Period `k` (0 is startDateTime's own); `None` once it would leave the calendar.
    pub(crate) fn period(&self, start: DateTime, k: i64) -> Option<Period> {
        let at = |date: Date| date.to_datetime(start.time());
        match self {
            Self::Hours { every } => {
                let hours = k.checked_mul(i64::from(*every))?;
                let wall = start.checked_add(Span::new().try_hours(hours).ok()?).ok()?;
                Some(Period { floor: wall.date(), times: vec![wall] })
            }
            Self::Days { every } => {
                let day = add_days(start.date(), k.checked_mul(i64::from(*every))?)?;
                Some(Period { floor: day, times: vec![at(day)] })
            }
            Self::Weeks { every, days } => {
                let weeks = k.checked_mul(i64::from(*every))?;
                let monday = add_days(week_start(start.date())?, weeks.checked_mul(7)?)?;
                let times = days
                    .iter()
                    .filter_map(|day| add_days(monday, i64::from(day.to_monday_zero_offset())))
                    .map(at)
                    .collect();
                Some(Period { floor: monday, times })
            }
            Self::MonthDays { every, days } => {
                let first = add_months(start.date(), k.checked_mul(i64::from(*every))?)?;
                let mut dates: Vec<Date> = days
                    .iter()
                    .filter_map(|day| match *day {
                        MonthDay::Day(n) => Date::new(first.year(), first.month(), n).ok(),
                        MonthDay::Last => Some(first.last_of_month()),
                    })
                    .collect();
                dates.sort_unstable();
                dates.dedup();
                Some(Period { floor: first, times: dates.into_iter().map(at).collect() })
            }
            Self::MonthWeekday { every, nth, weekday, offset } => {
                let first = add_months(start.date(), k.checked_mul(i64::from(*every))?)?;
                let day = first.nth_weekday_of_month(*nth, *weekday).ok()?;
                let day = add_days(day, i64::from(*offset))?;
                Some(Period { floor: add_days(first, -6)?, times: vec![at(day)] })
            }
        }
    }
}

/// Whole days from `from` to `to` (negative when `to` is earlier).
fn days_between(from: Date, to: Date) -> i64 {
    to.duration_since(from).as_secs().div_euclid(SignedDuration::from_hours(24).as_secs())
}

/// Calendar months from `from`'s month to `to`'s month.
fn months_between(from: Date, to: Date) -> i64 {
    month_index(to) - month_index(from)
}

fn month_index(date: Date) -> i64 {
    i64::from(date.year()) * 12 + i64::from(date.month()) - 1
}

/// The first day of the month `months` after `date`'s month.
fn add_months(date: Date, months: i64) -> Option<Date> {
    let index = month_index(date).checked_add(months)?;
    let year = i16::try_from(index.div_euclid(12)).ok()?;
    let month = i8::try_from(index.rem_euclid(12) + 1).ok()?;
    Date::new(year, month, 1).ok()
}

fn add_days(date: Date, days: i64) -> Option<Date> {
    date.checked_add(Span::new().try_days(days).ok()?).ok()
}

/// The Monday on or before `date`: weeks are ISO weeks, Monday to Sunday.
fn week_start(date: Date) -> Option<Date> {
    add_days(date, -i64::from(date.weekday().to_monday_zero_offset()))
}
