//! Runs computed by hand. Every expected date below was checked outside this crate: weekdays
//! and nth weekdays with Python's `calendar` module, UTC instants with Python's `zoneinfo` on
//! the system tzdata (a different tz database build from jiff's bundled one) and GNU `date`.
//! Each test says which dates it leans on.

use time::OffsetDateTime;
use time::macros::datetime;

use crate::{Schedule, ScheduleError, WindowSpec};

/// Far enough that only `limit` ends a query.
const FAR: OffsetDateTime = datetime!(2100-01-01 00:00 UTC);

fn schedule(start: &str, zone: &str, recur: &str) -> Schedule {
    let spec = WindowSpec {
        start_date_time: start,
        expiration_date_time: None,
        duration: "02:00",
        time_zone: zone,
        recur_every: recur,
    };
    Schedule::parse(&spec).unwrap()
}

fn starts(schedule: &Schedule, after: OffsetDateTime, limit: usize) -> Vec<OffsetDateTime> {
    schedule.next_runs(after, FAR, limit).into_iter().map(|run| run.start).collect()
}

fn locals(schedule: &Schedule, after: OffsetDateTime, limit: usize) -> Vec<String> {
    schedule.next_runs(after, FAR, limit).into_iter().map(|run| run.local).collect()
}

#[test]
fn day_recurs_daily_at_start_time() {
    // UTC, no arithmetic: the 3rd, 4th and 5th day after startDateTime at 03:00.
    let s = schedule("2026-01-10 03:00", "UTC", "Day");
    let runs = s.next_runs(datetime!(2026-01-12 00:00 UTC), FAR, 3);
    let got: Vec<_> = runs.iter().map(|run| (run.start, run.end)).collect();
    assert_eq!(
        got,
        [
            (datetime!(2026-01-12 03:00 UTC), datetime!(2026-01-12 05:00 UTC)),
            (datetime!(2026-01-13 03:00 UTC), datetime!(2026-01-13 05:00 UTC)),
            (datetime!(2026-01-14 03:00 UTC), datetime!(2026-01-14 05:00 UTC)),
        ]
    );
    assert_eq!(runs[0].local, "2026-01-12 03:00 UTC");
    assert_eq!(s.duration_minutes(), 120);
}

#[test]
fn n_days_count_from_start_date() {
    // Tokyo is UTC+9 all year: 22:00 local is 13:00Z the same day (zoneinfo). From 01-01 every
    // 3 days: 01-04, 01-07, 01-10, 01-13; the first after 01-05 is 01-07.
    let s = schedule("2026-01-01 22:00", "Tokyo Standard Time", "3Days");
    assert_eq!(
        starts(&s, datetime!(2026-01-05 00:00 UTC), 3),
        [datetime!(2026-01-07 13:00 UTC), datetime!(2026-01-10 13:00 UTC), datetime!(2026-01-13 13:00 UTC)]
    );
    // "1Day" is "Day"; a long way past the start jumps there without walking every day.
    let s = schedule("2026-01-01 22:00", "Tokyo Standard Time", "1Day");
    assert_eq!(starts(&s, datetime!(2040-06-01 13:00 UTC), 1), [datetime!(2040-06-02 13:00 UTC)]);
}

#[test]
fn hours_step_wall_clock_time_across_spring_forward() {
    // UTC: every hour at :30 from 00:30.
    let s = schedule("2026-01-01 00:30", "UTC", "Hour");
    assert_eq!(
        starts(&s, datetime!(2026-05-01 10:00 UTC), 3),
        [datetime!(2026-05-01 10:30 UTC), datetime!(2026-05-01 11:30 UTC), datetime!(2026-05-01 12:30 UTC)]
    );
    // New York springs forward at 02:00 on Sunday 2026-03-08 (second Sunday of March).
    // Wall times 20:00 EST (01:00Z), 02:00 (in the gap: 03:00 EDT = 07:00Z), 08:00 EDT (12:00Z),
    // 14:00 EDT (18:00Z), per zoneinfo.
    let s = schedule("2026-03-07 20:00", "Eastern Standard Time", "6Hours");
    assert_eq!(
        starts(&s, datetime!(2026-03-07 00:00 UTC), 4),
        [
            datetime!(2026-03-08 01:00 UTC),
            datetime!(2026-03-08 07:00 UTC),
            datetime!(2026-03-08 12:00 UTC),
            datetime!(2026-03-08 18:00 UTC),
        ]
    );
    assert_eq!(locals(&s, datetime!(2026-03-08 06:00 UTC), 1), ["2026-03-08 03:00 Eastern Standard Time"]);
    // Hourly, the gap's 02:00 lands on 03:00: one run there, not two.
    let s = schedule("2026-03-08 00:00", "Eastern Standard Time", "Hour");
    assert_eq!(
        starts(&s, datetime!(2026-03-08 04:00 UTC), 4),
        [
            datetime!(2026-03-08 05:00 UTC), // 00:00 EST
            datetime!(2026-03-08 06:00 UTC), // 01:00 EST
            datetime!(2026-03-08 07:00 UTC), // 02:00 -> 03:00 EDT
            datetime!(2026-03-08 08:00 UTC), // 04:00 EDT
        ]
    );
}

#[test]
fn week_with_days() {
    // 2026-01-07 is a Wednesday, so the first Saturday and Sunday are 01-10 and 01-11.
    // London is on GMT (UTC) in January.
    let s = schedule("2026-01-07 23:00", "GMT Standard Time", "Week Saturday,Sunday");
    assert_eq!(
        starts(&s, datetime!(2026-01-01 00:00 UTC), 4),
        [
            datetime!(2026-01-10 23:00 UTC),
            datetime!(2026-01-11 23:00 UTC),
            datetime!(2026-01-17 23:00 UTC),
            datetime!(2026-01-18 23:00 UTC),
        ]
    );
    // Whitespace and letter case do not matter.
    let loose = schedule("2026-01-07 23:00", "GMT Standard Time", "  1week  saturday, SUNDAY ");
    assert_eq!(starts(&loose, datetime!(2026-01-01 00:00 UTC), 4), starts(&s, datetime!(2026-01-01 00:00 UTC), 4));
    // "Week" alone keeps startDateTime's weekday: 2026-01-01 is a Thursday.
    let s = schedule("2026-01-01 06:00", "UTC", "Week");
    assert_eq!(
        starts(&s, datetime!(2026-01-01 07:00 UTC), 2),
        [datetime!(2026-01-08 06:00 UTC), datetime!(2026-01-15 06:00 UTC)]
    );
}

#[test]
fn n_weeks_count_weeks_from_the_start_week() {
    // 2026-02-03 is a Tuesday: every second Tuesday is 02-17, 03-03, 03-17.
    let s = schedule("2026-02-03 18:00", "UTC", "2Weeks");
    assert_eq!(
        starts(&s, datetime!(2026-02-04 00:00 UTC), 3),
        [datetime!(2026-02-17 18:00 UTC), datetime!(2026-03-03 18:00 UTC), datetime!(2026-03-17 18:00 UTC)]
    );
    // Start on Wednesday 2026-01-07, in the Monday-to-Sunday week of 01-05: that week's Monday
    // precedes the start and is skipped, its Friday 01-09 runs; then the weeks of 01-19 and
    // 02-02 (Mondays 01-19 and 02-02, Fridays 01-23 and 02-06).
    let s = schedule("2026-01-07 12:00", "UTC", "2Weeks Monday,Friday");
    assert_eq!(
        starts(&s, datetime!(2026-01-01 00:00 UTC), 5),
        [
            datetime!(2026-01-09 12:00 UTC),
            datetime!(2026-01-19 12:00 UTC),
            datetime!(2026-01-23 12:00 UTC),
            datetime!(2026-02-02 12:00 UTC),
            datetime!(2026-02-06 12:00 UTC),
        ]
    );
}

#[test]
fn month_day_numbers_skip_days_a_month_lacks() {
    // From 2026-01-20: day15 of January precedes the start; February has no 31st, April has
    // no 31st.
    let s = schedule("2026-01-20 04:00", "UTC", "Month day15,day31");
    assert_eq!(
        starts(&s, datetime!(2026-01-01 00:00 UTC), 6),
        [
            datetime!(2026-01-31 04:00 UTC),
            datetime!(2026-02-15 04:00 UTC),
            datetime!(2026-03-15 04:00 UTC),
            datetime!(2026-03-31 04:00 UTC),
            datetime!(2026-04-15 04:00 UTC),
            datetime!(2026-05-15 04:00 UTC),
        ]
    );
    // "Month" alone keeps startDateTime's day: the 31st, so February and April are skipped.
    let s = schedule("2026-01-31 10:00", "UTC", "Month");
    assert_eq!(
        starts(&s, datetime!(2026-01-01 00:00 UTC), 3),
        [datetime!(2026-01-31 10:00 UTC), datetime!(2026-03-31 10:00 UTC), datetime!(2026-05-31 10:00 UTC)]
    );
}

#[test]
fn month_last_day() {
    // day-1 is the last day: 31, 28 (2026 is not a leap year), 31, 30; repeating day31 with it
    // gives one run on the 31st, not two. 2028 is a leap year: February ends on the 29th.
    let s = schedule("2026-01-01 00:00", "UTC", "Month day-1,day31");
    assert_eq!(
        starts(&s, datetime!(2025-12-31 00:00 UTC), 4),
        [
            datetime!(2026-01-31 00:00 UTC),
            datetime!(2026-02-28 00:00 UTC),
            datetime!(2026-03-31 00:00 UTC),
            datetime!(2026-04-30 00:00 UTC),
        ]
    );
    assert_eq!(starts(&s, datetime!(2028-02-01 00:00 UTC), 1), [datetime!(2028-02-29 00:00 UTC)]);
}

#[test]
fn month_nth_weekday_is_patch_tuesday() {
    // Second Tuesdays of 2026: 01-13, 02-10, 03-10, 04-14 (calendar). 23:00 in New York is
    // 04:00Z next day under EST and 03:00Z under EDT, which starts 2026-03-08 (zoneinfo).
    let s = schedule("2026-01-01 23:00", "Eastern Standard Time", "Month Second Tuesday");
    assert_eq!(
        starts(&s, datetime!(2026-01-01 00:00 UTC), 4),
        [
            datetime!(2026-01-14 04:00 UTC),
            datetime!(2026-02-11 04:00 UTC),
            datetime!(2026-03-11 03:00 UTC),
            datetime!(2026-04-15 03:00 UTC),
        ]
    );
    assert_eq!(locals(&s, datetime!(2026-01-01 00:00 UTC), 1), ["2026-01-13 23:00 Eastern Standard Time"]);
}

#[test]
fn month_last_weekday() {
    // Last Sundays of 2026: 01-25, 02-22, 03-29, 04-26 (calendar). 03-29 is also when Berlin
    // springs forward at 02:00, so 02:00 does not exist that day and becomes 03:00 CEST; all
    // three winter runs are 01:00Z, the April one 00:00Z (zoneinfo).
    let s = schedule("2026-01-01 02:00", "W. Europe Standard Time", "Month Last Sunday");
    let runs = s.next_runs(datetime!(2026-01-01 00:00 UTC), FAR, 4);
    let got: Vec<_> = runs.iter().map(|run| (run.start, run.local.as_str())).collect();
    assert_eq!(
        got,
        [
            (datetime!(2026-01-25 01:00 UTC), "2026-01-25 02:00 W. Europe Standard Time"),
            (datetime!(2026-02-22 01:00 UTC), "2026-02-22 02:00 W. Europe Standard Time"),
            (datetime!(2026-03-29 01:00 UTC), "2026-03-29 03:00 W. Europe Standard Time"),
            (datetime!(2026-04-26 00:00 UTC), "2026-04-26 02:00 W. Europe Standard Time"),
        ]
    );
}

#[test]
fn month_offset_forward_crosses_into_next_month() {
    // Last Fridays of 2026: 01-30, 02-27, 03-27 (calendar); three days on: 02-02, 03-02, 03-30.
    let s = schedule("2026-01-01 09:00", "UTC", "Month Last Friday Offset3");
    assert_eq!(
        starts(&s, datetime!(2026-01-01 00:00 UTC), 3),
        [datetime!(2026-02-02 09:00 UTC), datetime!(2026-03-02 09:00 UTC), datetime!(2026-03-30 09:00 UTC)]
    );
    // "Patch Tuesday + 4": second Tuesdays 01-13, 02-10, 03-10 give Saturdays 01-17, 02-14, 03-14.
    // India is UTC+5:30 all year: 03:00 local is 21:30Z the day before (zoneinfo).
    let s = schedule("2026-01-01 03:00", "India Standard Time", "1Month Second Tuesday Offset4");
    assert_eq!(
        starts(&s, datetime!(2026-01-01 00:00 UTC), 3),
        [datetime!(2026-01-16 21:30 UTC), datetime!(2026-02-13 21:30 UTC), datetime!(2026-03-13 21:30 UTC)]
    );
}

#[test]
fn month_offset_backward_crosses_into_previous_month() {
    // First Mondays of 2026: 01-05, 02-02, 03-02, 04-06, 05-04 (calendar); three days back:
    // 01-02 (before the start, skipped), 01-30, 02-27, 04-03, 05-01.
    let s = schedule("2026-01-15 20:00", "UTC", "Month First Monday Offset-3");
    assert_eq!(
        starts(&s, datetime!(2026-01-01 00:00 UTC), 4),
        [
            datetime!(2026-01-30 20:00 UTC),
            datetime!(2026-02-27 20:00 UTC),
            datetime!(2026-04-03 20:00 UTC),
            datetime!(2026-05-01 20:00 UTC),
        ]
    );
    // Asking from just after 02-27 still finds the run the April period puts in early April.
    assert_eq!(starts(&s, datetime!(2026-02-28 00:00 UTC), 1), [datetime!(2026-04-03 20:00 UTC)]);
    // "Month Third Sunday Offset-6": third Sundays 03-15 and 04-19 give Mondays 03-09, 04-13.
    let s = schedule("2026-03-01 20:00", "UTC", "Month Third Sunday Offset-6");
    assert_eq!(
        starts(&s, datetime!(2026-03-01 00:00 UTC), 2),
        [datetime!(2026-03-09 20:00 UTC), datetime!(2026-04-13 20:00 UTC)]
    );
}

#[test]
fn two_months_count_from_the_start_month() {
    // Every second month from January on the 31st: 01-31, 03-31, 05-31, 07-31; September and
    // November have 30 days and are skipped; then 2027-01-31 and 2027-03-31.
    let s = schedule("2026-01-31 10:00", "UTC", "2Months");
    assert_eq!(
        starts(&s, datetime!(2026-06-01 00:00 UTC), 3),
        [datetime!(2026-07-31 10:00 UTC), datetime!(2027-01-31 10:00 UTC), datetime!(2027-03-31 10:00 UTC)]
    );
    // Months interval with a weekday: second Tuesdays of Jan, Mar, May 2026 are 01-13, 03-10, 05-12.
    let s = schedule("2026-01-01 12:00", "UTC", "2Months Second Tuesday");
    assert_eq!(
        starts(&s, datetime!(2026-01-01 00:00 UTC), 3),
        [datetime!(2026-01-13 12:00 UTC), datetime!(2026-03-10 12:00 UTC), datetime!(2026-05-12 12:00 UTC)]
    );
}

#[test]
fn expiration_cuts_runs_off() {
    // India is UTC+5:30: 09:00 local is 03:30Z (zoneinfo). Runs 01-01 to 01-05; the one at
    // the expiration instant itself still starts (none is *after* it).
    let spec = WindowSpec {
        start_date_time: "2026-01-01 09:00",
        expiration_date_time: Some("2026-01-05 09:00"),
        duration: "1:30",
        time_zone: "India Standard Time",
        recur_every: "Day",
    };
    let s = Schedule::parse(&spec).unwrap();
    assert_eq!(s.expiration(), Some(datetime!(2026-01-05 03:30 UTC)));
    let runs = s.next_runs(datetime!(2025-12-01 00:00 UTC), FAR, 100);
    assert_eq!(runs.len(), 5);
    assert_eq!(runs.first().map(|run| run.start), Some(datetime!(2026-01-01 03:30 UTC)));
    assert_eq!(
        runs.last().map(|run| (run.start, run.end)),
        Some((datetime!(2026-01-05 03:30 UTC), datetime!(2026-01-05 05:00 UTC)))
    );
    assert!(s.next_runs(datetime!(2026-01-05 03:30 UTC), FAR, 10).is_empty());

    // Azure's "never" (and no value at all) is no expiration.
    for never in [Some("9999-12-31 23:59:59"), Some("9999-12-31 23:59"), Some(""), None] {
        let s = Schedule::parse(&WindowSpec { expiration_date_time: never, ..spec }).unwrap();
        assert_eq!(s.expiration(), None, "{never:?}");
    }
}

#[test]
fn nothing_before_a_future_start() {
    let s = schedule("2026-06-15 12:00", "UTC", "Day");
    let runs = s.next_runs(datetime!(2026-01-01 00:00 UTC), datetime!(2026-06-18 00:00 UTC), 100);
    let got: Vec<_> = runs.iter().map(|run| run.start).collect();
    assert_eq!(
        got,
        [datetime!(2026-06-15 12:00 UTC), datetime!(2026-06-16 12:00 UTC), datetime!(2026-06-17 12:00 UTC)]
    );
    // Month day1 from the 15th: June's 1st is before the start, so July's is first.
    let s = schedule("2026-06-15 12:00", "UTC", "Month day1");
    assert_eq!(starts(&s, datetime!(2026-01-01 00:00 UTC), 1), [datetime!(2026-07-01 12:00 UTC)]);
}

#[test]
fn window_bounds_are_exclusive_and_limited() {
    let s = schedule("2026-01-01 03:00", "UTC", "Day");
    // A run exactly at `after` or at `until` is not listed.
    let runs = s.next_runs(datetime!(2026-01-02 03:00 UTC), datetime!(2026-01-04 03:00 UTC), 10);
    assert_eq!(runs.iter().map(|run| run.start).collect::<Vec<_>>(), [datetime!(2026-01-03 03:00 UTC)]);
    assert!(s.next_runs(datetime!(2026-01-01 00:00 UTC), FAR, 0).is_empty());
    assert!(s.next_runs(FAR, datetime!(2026-01-01 00:00 UTC), 5).is_empty());
}

#[test]
fn west_europe_daily_across_october_change() {
    // Berlin falls back on Sunday 2026-10-25 (last Sunday of October): 22:00 CEST is 20:00Z
    // before, 22:00 CET is 21:00Z from that evening on (zoneinfo, GNU date).
    let spec = WindowSpec {
        start_date_time: "2026-10-01 22:00",
        expiration_date_time: None,
        duration: "03:00",
        time_zone: "W. Europe Standard Time",
        recur_every: "Day",
    };
    let s = Schedule::parse(&spec).unwrap();
    assert_eq!(s.iana_zone(), "Europe/Berlin");
    let runs = s.next_runs(datetime!(2026-10-23 00:00 UTC), FAR, 4);
    let got: Vec<_> = runs.iter().map(|run| (run.start, run.end, run.local.as_str())).collect();
    assert_eq!(
        got,
        [
            (
                datetime!(2026-10-23 20:00 UTC),
                datetime!(2026-10-23 23:00 UTC),
                "2026-10-23 22:00 W. Europe Standard Time"
            ),
            (
                datetime!(2026-10-24 20:00 UTC),
                datetime!(2026-10-24 23:00 UTC),
                "2026-10-24 22:00 W. Europe Standard Time"
            ),
            (
                datetime!(2026-10-25 21:00 UTC),
                datetime!(2026-10-26 00:00 UTC),
                "2026-10-25 22:00 W. Europe Standard Time"
            ),
            (
                datetime!(2026-10-26 21:00 UTC),
                datetime!(2026-10-27 00:00 UTC),
                "2026-10-26 22:00 W. Europe Standard Time"
            ),
        ]
    );
}

#[test]
fn eastern_weekly_across_november_fold() {
    // New York falls back at 02:00 on Sunday 2026-11-01 (first Sunday of November), so 01:30
    // happens twice that day; the first (EDT, 05:30Z) is taken. The Sundays before run at
    // 01:30 EDT = 05:30Z, the ones after at 01:30 EST = 06:30Z (zoneinfo).
    let s = schedule("2026-10-01 01:30", "Eastern Standard Time", "Week Sunday");
    assert_eq!(
        starts(&s, datetime!(2026-10-20 00:00 UTC), 3),
        [datetime!(2026-10-25 05:30 UTC), datetime!(2026-11-01 05:30 UTC), datetime!(2026-11-08 06:30 UTC)]
    );
}

#[test]
fn eastern_weekly_across_march_gap() {
    // New York springs forward at 02:00 on Sunday 2026-03-08 (second Sunday of March): 02:30
    // does not exist that day and runs at 03:30 EDT (07:30Z), the same instant 02:30 EST would
    // have been. The Sunday before is 07:30Z, the Sunday after 02:30 EDT = 06:30Z (zoneinfo).
    let s = schedule("2026-02-01 02:30", "Eastern Standard Time", "Week Sunday");
    let runs = s.next_runs(datetime!(2026-02-28 00:00 UTC), FAR, 3);
    let got: Vec<_> = runs.iter().map(|run| (run.start, run.local.as_str())).collect();
    assert_eq!(
        got,
        [
            (datetime!(2026-03-01 07:30 UTC), "2026-03-01 02:30 Eastern Standard Time"),
            (datetime!(2026-03-08 07:30 UTC), "2026-03-08 03:30 Eastern Standard Time"),
            (datetime!(2026-03-15 06:30 UTC), "2026-03-15 02:30 Eastern Standard Time"),
        ]
    );
}

#[test]
fn windows_zone_names_resolve() {
    // Expected targets are CLDR windowsZones' territory-001 rows, as shipped in localzone.
    let cases = [
        ("Eastern Standard Time", "America/New_York"),
        ("Pacific Standard Time", "America/Los_Angeles"),
        ("Central Standard Time", "America/Chicago"),
        ("W. Europe Standard Time", "Europe/Berlin"),
        ("GMT Standard Time", "Europe/London"),
        ("Romance Standard Time", "Europe/Paris"),
        ("India Standard Time", "Asia/Calcutta"),
        ("Tokyo Standard Time", "Asia/Tokyo"),
        ("AUS Eastern Standard Time", "Australia/Sydney"),
        ("UTC", "Etc/UTC"),
    ];
    for (windows, iana) in cases {
        let s = schedule("2026-01-01 00:00", windows, "Day");
        assert_eq!(s.iana_zone(), iana, "{windows}");
        // Any letter case, surrounding blanks tolerated; the label keeps the name as written.
        let shouted = schedule("2026-01-01 00:00", &format!(" {} ", windows.to_uppercase()), "Day");
        assert_eq!(shouted.iana_zone(), iana, "{windows} in capitals");
    }
    // IANA names are taken as they are.
    assert_eq!(schedule("2026-01-01 00:00", "europe/berlin", "Day").iana_zone(), "Europe/Berlin");
    assert_eq!(schedule("2026-01-01 00:00", "Etc/UTC", "Day").iana_zone(), "Etc/UTC");
    // Case-insensitive lookup knows about as many names as Windows has (about 140).
    let names = crate::zone::windows_names();
    assert!(names.len() > 130, "{}", names.len());
    for name in names {
        let exact = crate::zone::resolve(name).unwrap().iana;
        assert_eq!(crate::zone::resolve(&name.to_lowercase()).unwrap().iana, exact, "{name}");
    }
}

#[test]
fn jumping_ahead_agrees_with_walking_from_the_start() {
    // Not hand-checked: a cross-check that starting the search near `after` (rather than at
    // startDateTime) never loses or invents a run, across zones with daylight saving changes.
    let recurrences = [
        "Hour",
        "7Hours",
        "Day",
        "3Days",
        "Week",
        "3Weeks Monday,Sunday",
        "Month",
        "2Months day1,day-1",
        "Month Last Sunday Offset6",
        "3Months First Monday Offset-6",
    ];
    let zones = ["Eastern Standard Time", "AUS Eastern Standard Time", "GMT Standard Time", "India Standard Time"];
    for recur in recurrences {
        for zone in zones {
            let s = schedule("2025-01-31 01:30", zone, recur);
            let all = s.next_runs(datetime!(2025-01-01 00:00 UTC), datetime!(2027-08-01 00:00 UTC), usize::MAX);
            let mut after = datetime!(2025-03-01 00:00 UTC);
            while after < datetime!(2027-01-01 00:00 UTC) {
                let until = after + time::Duration::days(200);
                let walked: Vec<_> =
                    all.iter().filter(|run| run.start > after && run.start < until).take(5).cloned().collect();
                assert_eq!(s.next_runs(after, until, 5), walked, "{recur} in {zone} after {after}");
                after += time::Duration::hours(173);
            }
        }
    }
}

#[test]
fn bad_inputs_name_their_field() {
    let good = WindowSpec {
        start_date_time: "2026-01-01 09:00",
        expiration_date_time: None,
        duration: "02:00",
        time_zone: "W. Europe Standard Time",
        recur_every: "Week Saturday",
    };
    let start = "maintenanceWindow.startDateTime";
    let expiry = "maintenanceWindow.expirationDateTime";
    let duration = "maintenanceWindow.duration";
    let zone = "maintenanceWindow.timeZone";
    let recur = "maintenanceWindow.recurEvery";
    let cases: [(WindowSpec<'_>, &str); 33] = [
        (WindowSpec { start_date_time: "", ..good }, start),
        (WindowSpec { start_date_time: "2026-01-01", ..good }, start),
        (WindowSpec { start_date_time: "01/01/2026 09:00", ..good }, start),
        (WindowSpec { start_date_time: "2026-02-30 09:00", ..good }, start),
        (WindowSpec { start_date_time: "2026-01-01 25:00", ..good }, start),
        (WindowSpec { start_date_time: "2026-01-01T09:00:00Z", ..good }, start),
        (WindowSpec { expiration_date_time: Some("soon"), ..good }, expiry),
        (WindowSpec { expiration_date_time: Some("2025-12-31 09:00"), ..good }, expiry),
        (WindowSpec { duration: "", ..good }, duration),
        (WindowSpec { duration: "00:00", ..good }, duration),
        (WindowSpec { duration: "2h", ..good }, duration),
        (WindowSpec { duration: "02:75", ..good }, duration),
        (WindowSpec { duration: "PT2H", ..good }, duration),
        (WindowSpec { time_zone: "", ..good }, zone),
        (WindowSpec { time_zone: "Mars Standard Time", ..good }, zone),
        (WindowSpec { time_zone: "W Europe Standard Time", ..good }, zone),
        (WindowSpec { recur_every: "", ..good }, recur),
        (WindowSpec { recur_every: "Fortnight", ..good }, recur),
        (WindowSpec { recur_every: "0Days", ..good }, recur),
        (WindowSpec { recur_every: "99999999999Days", ..good }, recur),
        (WindowSpec { recur_every: "Day Monday", ..good }, recur),
        (WindowSpec { recur_every: "6Hours Offset2", ..good }, recur),
        (WindowSpec { recur_every: "Week Funday", ..good }, recur),
        (WindowSpec { recur_every: "Month day0", ..good }, recur),
        (WindowSpec { recur_every: "Month day32", ..good }, recur),
        (WindowSpec { recur_every: "Month day-2", ..good }, recur),
        (WindowSpec { recur_every: "Month day5,Tuesday", ..good }, recur),
        (WindowSpec { recur_every: "Month Fifth Monday", ..good }, recur),
        (WindowSpec { recur_every: "Month Second", ..good }, recur),
        (WindowSpec { recur_every: "Month Second Tusday", ..good }, recur),
        (WindowSpec { recur_every: "Month Third Sunday Offset7", ..good }, recur),
        (WindowSpec { recur_every: "Month Third Sunday Offset-6 Extra", ..good }, recur),
        (WindowSpec { recur_every: "Month Third Sunday Later", ..good }, recur),
    ];
    assert!(Schedule::parse(&good).is_ok());
    for (spec, field) in cases {
        let error = Schedule::parse(&spec).expect_err(&format!("{spec:?} should be refused"));
        assert_eq!(error.field(), field, "{error}");
        assert!(error.to_string().starts_with(&format!("{field}: ")), "{error}");
    }
}

#[test]
fn error_message_quotes_the_culprit() {
    let spec = WindowSpec {
        start_date_time: "2026-01-01 09:00",
        expiration_date_time: None,
        duration: "02:00",
        time_zone: "UTC",
        recur_every: "Month Second Tusday",
    };
    let error = Schedule::parse(&spec).unwrap_err();
    assert_eq!(error.to_string(), "maintenanceWindow.recurEvery: unknown weekday 'Tusday' in 'Month Second Tusday'");
    assert!(matches!(error, ScheduleError::RecurEvery { .. }));
}

#[test]
fn accepted_spellings() {
    // Seconds, a T separator and HH:mm:ss durations are what some API versions return.
    let spec = WindowSpec {
        start_date_time: "2026-01-01T09:00:00",
        expiration_date_time: Some("2026-12-31T23:59:00"),
        duration: "03:55:00",
        time_zone: "UTC",
        recur_every: "month Second tuesday offset -2",
    };
    let s = Schedule::parse(&spec).unwrap();
    assert_eq!(s.duration_minutes(), 235);
    // Second Tuesday of January 2026 is 01-13; two days back is Sunday 01-11.
    assert_eq!(starts(&s, datetime!(2026-01-01 00:00 UTC), 1), [datetime!(2026-01-11 09:00 UTC)]);
    for plural in ["2Week Saturday", "2 Weeks Saturday", "2weeks saturday"] {
        let s = schedule("2026-01-01 09:00", "UTC", plural);
        // 2026-01-03 is the first Saturday; every second week: 01-03, 01-17.
        assert_eq!(
            starts(&s, datetime!(2026-01-01 00:00 UTC), 2),
            [datetime!(2026-01-03 09:00 UTC), datetime!(2026-01-17 09:00 UTC)],
            "{plural}"
        );
    }
}
