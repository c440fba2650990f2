//! `ring-order`: each ring of a sequence must run after the previous ring has run since its own
//! last run, and at least five days later, or a bad patch reaches production before anyone
//! could see it fail in dev.

use std::collections::{BTreeMap, HashSet};

use time::{Duration, OffsetDateTime};

use super::Context;
use crate::{
    fix,
    inventory::Configuration,
    lint::{Check, Finding, Level, RingSequence, Subject},
};

const MIN_GAP_DAYS: i64 = 5;
/// How far back to look for the rings' last runs: longer than a monthly cycle and its offset.
const LOOK_BACK_DAYS: i64 = 45;
const LOOK_AHEAD_DAYS: i64 = 400;
/// Enough runs for an hourly schedule over the look-back (45 × 24) and the next one.
const MAX_RUNS: usize = 5_000;

/// The ring sequences: those configured, then `<prefix>Ring<N>` names grouped by subscription
/// and prefix (two subscriptions' `Ring0`s are two sequences, not one).
pub(crate) fn sequences(configurations: &[Configuration], configured: &[RingSequence]) -> Vec<RingSequence> {
    let mut out: Vec<RingSequence> = configured.to_vec();
    let taken: HashSet<&String> = configured.iter().flat_map(|s| s.configurations.iter()).collect();
    let mut by_prefix: BTreeMap<(String, String), Vec<(u32, &Configuration)>> = BTreeMap::new();
    for c in configurations {
        if taken.contains(&c.key()) {
            continue;
        }
        if let Some((prefix, n)) = ring_number(&c.name) {
            let group = (c.subscription.to_ascii_lowercase(), prefix.to_ascii_lowercase());
            by_prefix.entry(group).or_default().push((n, c));
        }
    }
    for (_, mut rings) in by_prefix {
        rings.sort_by_key(|(n, c)| (*n, c.key()));
        if rings.len() >= 2 {
            // Named as the first ring writes its prefix.
            let prefix = ring_number(&rings[0].1.name).map(|(p, _)| p).unwrap_or_default();
            out.push(RingSequence {
                name: format!("{prefix}Ring"),
                configurations: rings.into_iter().map(|(_, c)| c.key()).collect(),
            });
        }
    }
    out
}

/// `SAP-Ring1-Prod` → (`SAP-`, 1): the last `ring` followed by a digit (`Spring-Ring2` is ring 2).
fn ring_number(name: &str) -> Option<(String, u32)> {
    // ASCII lower-casing keeps byte offsets, so `at` indexes `name` too.
    let lower = name.to_ascii_lowercase();
    let at = lower
        .match_indices("ring")
        .map(|(at, _)| at)
        .filter(|at| lower.as_bytes().get(at + 4).is_some_and(u8::is_ascii_digit))
        .last()?;
    let digits: String = name.get(at + 4..)?.chars().take_while(char::is_ascii_digit).collect();
    Some((name.get(..at)?.to_owned(), digits.parse().ok()?))
}

pub(super) fn check(cx: &Context<'_>, out: &mut Vec<Finding>) {
    for sequence in sequences(&cx.fleet.configurations, &cx.options.rings) {
        let rings: Vec<(usize, &Configuration)> =
            sequence.configurations.iter().filter_map(|key| cx.configuration_index(key)).collect();
        let names: Vec<&str> = rings.iter().map(|(_, c)| c.name.as_str()).collect();
        for pair in rings.windows(2) {
            let [(ia, a), (ib, b)] = pair else { continue };
            if let Some(detail) = out_of_order(cx, *ia, a, *ib) {
                out.push(Finding {
                    check: Check::RingOrder,
                    severity: Level::Warning,
                    subject: Subject::Configuration,
                    resource_id: b.id.clone(),
                    name: b.name.clone(),
                    owner: cx.configuration_owner(b),
                    subscription: b.subscription.clone(),
                    detail: format!("{} ({}): {detail}", sequence.name, names.join(" → ")),
                    why:
                        "A later ring must run days after the earlier one, so a bad patch is caught before it spreads."
                            .to_owned(),
                    fix: {
                        let (setting, value) = suggest(cx, *ia, a, b);
                        fix::update_window(b, &[(setting, &value)])
                    },
                });
            }
        }
    }
}

/// Why ring `b` does not follow ring `a`, if it does not.
fn out_of_order(cx: &Context<'_>, ia: usize, a: &Configuration, ib: usize) -> Option<String> {
    let (sa, sb) = (cx.schedule(ia)?, cx.schedule(ib)?);
    let as_of = cx.options.as_of;
    let from = as_of - Duration::days(LOOK_BACK_DAYS);
    let until = as_of + Duration::days(LOOK_AHEAD_DAYS);
    let b_runs = sb.next_runs(from, until, MAX_RUNS);
    let next_b = b_runs.iter().position(|r| r.start > as_of)?;
    let nb = b_runs[next_b].start;
    let pb: Option<OffsetDateTime> = next_b.checked_sub(1).map(|i| b_runs[i].start);
    let a_runs = sa.next_runs(from, nb, MAX_RUNS);
    let Some(la) = a_runs.iter().rev().map(|r| r.start).find(|t| *t < nb) else {
        return Some(format!("{} runs {} before {} has ever run", cx.fleet.configurations[ib].name, fmt(nb), a.name));
    };
    if pb.is_some_and(|pb| la <= pb) {
        return Some(format!(
            "{} runs again on {} but {} has not run since its last run",
            cx.fleet.configurations[ib].name,
            fmt(nb),
            a.name
        ));
    }
    let gap = nb - la;
    (gap < Duration::days(MIN_GAP_DAYS)).then(|| {
        format!(
            "{} runs {} after {} ({} → {}); rings need at least {MIN_GAP_DAYS} days",
            cx.fleet.configurations[ib].name,
            gap_text(gap),
            a.name,
            fmt(la),
            fmt(nb)
        )
    })
}

fn fmt(t: OffsetDateTime) -> String {
    patchwatch_model::text::format_time(t)
}

fn gap_text(gap: Duration) -> String {
    if gap >= Duration::days(1) {
        format!("{} day(s)", gap.whole_days())
    } else {
        format!("{} hour(s)", gap.whole_hours())
    }
}

/// The change that puts ring `b` a week after ring `a`: the next ordinal of `a`'s nth-weekday
/// recurrence (`Month Second Tuesday Offset2` → `Month Third Tuesday Offset2`), else `b`'s own
/// recurrence from a start date a week after `a`'s next run (at `b`'s time of day).
fn suggest(cx: &Context<'_>, ia: usize, a: &Configuration, b: &Configuration) -> (&'static str, String) {
    const ORDINALS: [&str; 4] = ["First", "Second", "Third", "Fourth"];
    let words: Vec<&str> = a.window.recur_every.split_whitespace().collect();
    let ordinal = words.iter().enumerate().find_map(|(pos, w)| {
        let i = ORDINALS.iter().position(|o| o.eq_ignore_ascii_case(w))?;
        Some((pos, ORDINALS.get(i + 1)?))
    });
    if let Some((pos, next)) = ordinal {
        let mut out: Vec<&str> = words.clone();
        out[pos] = next;
        return ("maintenance-window-recur-every", out.join(" "));
    }
    let a_next = cx.schedule(ia).and_then(|s| {
        s.next_runs(cx.options.as_of, cx.options.as_of + Duration::days(LOOK_AHEAD_DAYS), 1).into_iter().next()
    });
    let date = a_next
        .and_then(|o| o.local.get(..10).map(str::to_owned))
        .and_then(|d| time::Date::parse(&d, time::macros::format_description!("[year]-[month]-[day]")).ok())
        .and_then(|d| d.checked_add(Duration::days(7)));
    let time_of_day = b.window.start_date_time.get(11..16).unwrap_or("00:00");
    match date {
        Some(d) => ("maintenance-window-start-date-time", format!("{d} {time_of_day}")),
        None => ("maintenance-window-recur-every", b.window.recur_every.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_names_group_by_prefix() {
        assert_eq!(ring_number("Ring0-Dev"), Some((String::new(), 0)));
        assert_eq!(ring_number("SAP-Ring12"), Some(("SAP-".to_owned(), 12)));
        assert_eq!(ring_number("Spring-Ring2"), Some(("Spring-".to_owned(), 2)));
        assert_eq!(ring_number("Ringtone"), None);
    }
}
