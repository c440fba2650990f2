//! The date, time and duration strings of a `maintenanceWindow`, parsed by hand: Azure's
//! formats (`YYYY-MM-DD hh:mm`, `HH:mm`) are not ISO 8601, and every failure must say what was
//! expected rather than surface a generic parser message.

use jiff::civil::{Date, DateTime, Time};

/// A wall-clock `YYYY-MM-DD hh:mm[:ss]` (or with `T` between date and time), no offset: the
/// time zone is a separate field.
pub(crate) fn wall_time(text: &str) -> Result<DateTime, String> {
    const EXPECTED: &str = "expected YYYY-MM-DD hh:mm";
    let text = text.trim();
    let (date, time) = text.split_once(['T', 't', ' ']).ok_or_else(|| EXPECTED.to_owned())?;
    let date = calendar_date(date).ok_or_else(|| EXPECTED.to_owned())?;
    let time = clock_time(time.trim_start()).ok_or_else(|| EXPECTED.to_owned())?;
    Ok(date?.to_datetime(time?))
}

/// `YYYY-MM-DD`; the outer `None` is a shape error, the inner `Err` a date that does not exist.
fn calendar_date(text: &str) -> Option<Result<Date, String>> {
    let mut parts = text.split('-');
    let year = number(parts.next()?, 4, 4)?;
    let month = number(parts.next()?, 1, 2)?;
    let day = number(parts.next()?, 1, 2)?;
    if parts.next().is_some() {
        return None;
    }
    let (Ok(year), Ok(month), Ok(day)) = (i16::try_from(year), i8::try_from(month), i8::try_from(day)) else {
        return None;
    };
    Some(Date::new(year, month, day).map_err(|_| format!("no such date {year:04}-{month:02}-{day:02}")))
}

/// `hh:mm[:ss]`, 24-hour clock.
fn clock_time(text: &str) -> Option<Result<Time, String>> {
    let mut parts = text.split(':');
    let hour = number(parts.next()?, 1, 2)?;
    let minute = number(parts.next()?, 2, 2)?;
    let second = match parts.next() {
        Some(second) => number(second, 2, 2)?,
        None => 0,
    };
    if parts.next().is_some() {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Some(Err(format!("no such time of day {hour:02}:{minute:02}:{second:02}")));
    }
    let (Ok(hour), Ok(minute), Ok(second)) = (i8::try_from(hour), i8::try_from(minute), i8::try_from(second)) else {
        return None;
    };
    Some(Time::new(hour, minute, second, 0).map_err(|error| error.to_string()))
}

/// Longest window accepted, in hours: far beyond any scope's limit (the guest scope allows
/// 3:55), but it keeps every later sum of instants well inside `time`'s range.
const MAX_DURATION_HOURS: u64 = 999;

/// `HH:mm`, `H:mm` or `HH:mm:ss`, in seconds; must be longer than zero.
pub(crate) fn duration_seconds(text: &str) -> Result<u32, String> {
    const EXPECTED: &str = "expected HH:mm";
    let mut parts = text.trim().split(':');
    let mut next = |min_digits, max_digits| parts.next().and_then(|part| number(part, min_digits, max_digits));
    let hours = next(1, 3).ok_or_else(|| EXPECTED.to_owned())?;
    let minutes = next(2, 2).ok_or_else(|| EXPECTED.to_owned())?;
    let seconds = match parts.next() {
        Some(part) => number(part, 2, 2).ok_or_else(|| EXPECTED.to_owned())?,
        None => 0,
    };
    if parts.next().is_some() {
        return Err(EXPECTED.to_owned());
    }
    if minutes > 59 || seconds > 59 {
        return Err("minutes and seconds must be below 60".to_owned());
    }
    if hours > MAX_DURATION_HOURS {
        return Err(format!("longer than {MAX_DURATION_HOURS} hours"));
    }
    let total = hours * 3600 + minutes * 60 + seconds;
    if total == 0 {
        return Err("must be longer than zero".to_owned());
    }
    u32::try_from(total).map_err(|_| format!("longer than {MAX_DURATION_HOURS} hours"))
}

/// An unsigned decimal of `min..=max` ASCII digits (no sign, no spaces).
pub(crate) fn number(text: &str, min_digits: usize, max_digits: usize) -> Option<u64> {
    let digits = text.len();
    if digits < min_digits || digits > max_digits || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn wall_time_forms() {
        let expected = date(2026, 3, 8).at(2, 30, 0, 0);
        for text in ["2026-03-08 02:30", "2026-03-08T02:30", "2026-03-08 02:30:00", " 2026-03-08T02:30:00 "] {
            assert_eq!(wall_time(text), Ok(expected), "{text}");
        }
        assert_eq!(wall_time("2026-03-08 2:30:15"), Ok(date(2026, 3, 8).at(2, 30, 15, 0)));
        for bad in ["", "2026-03-08", "2026/03/08 02:30", "2026-03-08 02:30Z", "26-03-08 02:30", "2026-03-08 02:3"] {
            assert!(wall_time(bad).is_err(), "{bad}");
        }
        assert_eq!(wall_time("2026-02-30 10:00"), Err("no such date 2026-02-30".to_owned()));
        assert_eq!(wall_time("2026-02-03 24:00"), Err("no such time of day 24:00:00".to_owned()));
    }

    #[test]
    fn duration_forms() {
        assert_eq!(duration_seconds("03:55"), Ok(3 * 3600 + 55 * 60));
        assert_eq!(duration_seconds("3:55"), Ok(3 * 3600 + 55 * 60));
        assert_eq!(duration_seconds("01:30:30"), Ok(5430));
        assert!(duration_seconds("00:00").is_err());
        assert!(duration_seconds("1:5").is_err());
        assert!(duration_seconds("01:60").is_err());
        assert!(duration_seconds("PT2H").is_err());
        assert!(duration_seconds("-1:00").is_err());
    }
}
