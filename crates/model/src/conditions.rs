//! Severity routing's conditions on a run's outcome counts (`failed_percent >= 10`), and the
//! short durations of reminder schedules and silences (`4h`, `30m`, `2d`).
//!
//! A route's `when` is a list of clauses, any of which may hold; a clause joins conditions with
//! `and`: `when = ["failed_percent >= 10 and total >= 5", "not_patched == 0"]`.

use std::{fmt, time::Duration};

use crate::summary::Counts;

/// A count of a (part of a) run, or its share of the machines in percent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    Total,
    Patched,
    Succeeded,
    Warnings,
    Failed,
    WindowExceeded,
    RebootPending,
    NoResult,
    /// Failed, window exceeded or no result: `total - patched`.
    NotPatched,
}

impl Metric {
    const NAMES: [(&'static str, Metric); 9] = [
        ("total", Metric::Total),
        ("patched", Metric::Patched),
        ("succeeded", Metric::Succeeded),
        ("warnings", Metric::Warnings),
        ("failed", Metric::Failed),
        ("window_exceeded", Metric::WindowExceeded),
        ("reboot_pending", Metric::RebootPending),
        ("no_result", Metric::NoResult),
        ("not_patched", Metric::NotPatched),
    ];

    fn count(self, c: &Counts) -> usize {
        match self {
            Metric::Total => c.total,
            Metric::Patched => c.patched,
            Metric::Succeeded => c.succeeded,
            Metric::Warnings => c.warnings,
            Metric::Failed => c.failed,
            Metric::WindowExceeded => c.window_exceeded,
            Metric::RebootPending => c.reboot_pending,
            Metric::NoResult => c.no_result,
            Metric::NotPatched => c.total.saturating_sub(c.patched),
        }
    }

    fn name(self) -> &'static str {
        Self::NAMES.iter().find(|(_, m)| *m == self).map_or("?", |(n, _)| n)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
}

impl Op {
    const NAMES: [(&'static str, Op); 5] =
        [(">=", Op::Ge), ("<=", Op::Le), ("==", Op::Eq), (">", Op::Gt), ("<", Op::Lt)];

    fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Op::Ge => left >= right,
            Op::Gt => left > right,
            Op::Le => left <= right,
            Op::Lt => left < right,
            Op::Eq => (left - right).abs() < 1e-9,
        }
    }
}

/// `<metric>[_percent] <op> <number>`: a count of machines, or their percentage of the total.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Condition {
    pub metric: Metric,
    pub percent: bool,
    pub op: Op,
    pub value: f64,
}

impl Condition {
    /// Parses `failed_percent >= 10`, `no_result > 2`, `total<5`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let (at, op_text, op) = Op::NAMES
            .iter()
            .filter_map(|(name, op)| t.find(name).map(|i| (i, *name, *op)))
            .min_by_key(|(i, name, _)| (*i, std::cmp::Reverse(name.len())))
            .ok_or_else(|| format!("{t:?}: expected `<metric> <op> <number>` with op one of >=, >, <=, <, =="))?;
        let left = t[..at].trim().to_ascii_lowercase();
        let right = t[at + op_text.len()..].trim();
        let (base, percent) = match left.strip_suffix("_percent") {
            Some(b) => (b.to_owned(), true),
            None => (left.clone(), false),
        };
        let metric = Metric::NAMES.iter().find(|(n, _)| *n == base).map(|(_, m)| *m).ok_or_else(|| {
            let names: Vec<&str> = Metric::NAMES.iter().map(|(n, _)| *n).collect();
            format!("{t:?}: unknown metric {left:?}; expected one of {} (or <name>_percent)", names.join(", "))
        })?;
        let value: f64 = right.parse().map_err(|_| format!("{t:?}: {right:?} is not a number"))?;
        if !value.is_finite() || value < 0.0 || (percent && value > 100.0) {
            return Err(format!("{t:?}: {value} is out of range"));
        }
        Ok(Self { metric, percent, op, value })
    }

    /// Whether the counts satisfy the condition. A percentage of an empty run is 0.
    pub fn holds(&self, c: &Counts) -> bool {
        let n = self.metric.count(c) as f64;
        let left = if self.percent { if c.total == 0 { 0.0 } else { n * 100.0 / c.total as f64 } } else { n };
        self.op.holds(left, self.value)
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = Op::NAMES.iter().find(|(_, o)| *o == self.op).map_or("?", |(n, _)| n);
        let pct = if self.percent { "_percent" } else { "" };
        write!(f, "{}{pct} {op} {}", self.metric.name(), self.value)
    }
}

/// Conditions joined by `and`: all must hold.
#[derive(Clone, Debug, PartialEq)]
pub struct Clause(pub Vec<Condition>);

impl Clause {
    /// Parses `failed_percent >= 10 and total >= 5` (`&&` works too).
    pub fn parse(text: &str) -> Result<Self, String> {
        let lower = text.to_ascii_lowercase().replace("&&", " and ");
        let mut out = Vec::new();
        let mut rest = lower.as_str();
        loop {
            match rest.find(" and ") {
                Some(i) => {
                    out.push(Condition::parse(&rest[..i])?);
                    rest = &rest[i + 5..];
                }
                None => {
                    out.push(Condition::parse(rest)?);
                    return Ok(Self(out));
                }
            }
        }
    }

    pub fn holds(&self, c: &Counts) -> bool {
        self.0.iter().all(|cond| cond.holds(c))
    }
}

/// `90s`, `30m`, `4h`, `2d`, `1w`: a positive whole number and a unit.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("{t:?} is not a duration such as 30m, 4h or 2d"))?;
    let seconds = match unit.trim() {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(format!("{t:?}: unit must be s, m, h, d or w")),
    };
    if n == 0 || n > 10_000 {
        return Err(format!("{t:?} must be more than 0 and at most 10000 units"));
    }
    Ok(Duration::from_secs(n * seconds))
}

/// A duration for people: `4h`, `1d 6h`, `0m` (whole minutes; messages only, not parsed back).
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, minutes) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    let mut parts = Vec::new();
    if days > 0 {
        parts.push(format!("{days}d"));
    }
    if hours > 0 {
        parts.push(format!("{hours}h"));
    }
    if minutes > 0 || parts.is_empty() {
        parts.push(format!("{minutes}m"));
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(total: usize, failed: usize) -> Counts {
        Counts { total, patched: total - failed, succeeded: total - failed, failed, ..Counts::default() }
    }

    #[test]
    fn conditions_parse_and_hold() {
        let c = Condition::parse("failed_percent >= 10").unwrap();
        assert_eq!((c.metric, c.percent, c.op, c.value), (Metric::Failed, true, Op::Ge, 10.0));
        assert!(c.holds(&counts(50, 6)), "12 %");
        assert!(!c.holds(&counts(40, 2)), "5 %");
        assert!(c.holds(&counts(10, 1)), "exactly 10 %");
        assert!(!c.holds(&counts(0, 0)), "an empty run is 0 %");
        assert!(Condition::parse("no_result>2").unwrap().holds(&Counts {
            total: 5,
            no_result: 3,
            ..Counts::default()
        }));
        assert!(Condition::parse("not_patched == 0").unwrap().holds(&counts(4, 0)));
        assert_eq!(Condition::parse(" total<5 ").unwrap().to_string(), "total < 5");
        for bad in ["failed", "broken >= 1", "failed >= x", "failed_percent >= 101", "failed >= -1", ">= 3"] {
            assert!(Condition::parse(bad).is_err(), "{bad}");
        }
        assert!(Condition::parse("broken >= 1").unwrap_err().contains("not_patched"), "the error lists the metrics");
    }

    #[test]
    fn clauses_join_with_and() {
        let c = Clause::parse("failed_percent >= 10 and total >= 5").unwrap();
        assert_eq!(c.0.len(), 2);
        assert!(c.holds(&counts(50, 6)));
        assert!(!c.holds(&counts(4, 1)), "25 % of 4 machines, but fewer than 5");
        assert_eq!(Clause::parse("failed > 0 && no_result > 0").unwrap().0.len(), 2);
        assert!(Clause::parse("failed > 0 and").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("4h").unwrap(), Duration::from_secs(4 * 3600));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(2 * 86_400));
        for bad in ["", "4", "h", "0h", "4y", "-1h", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(Duration::from_secs(86_400 + 6 * 3600)), "1d 6h");
        assert_eq!(format_duration(Duration::from_secs(0)), "0m");
    }
}
