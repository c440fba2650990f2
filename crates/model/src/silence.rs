//! Silences: time-boxed "do not send this" rules, as Alertmanager has them. A silence matches a
//! delivery about to be made (a run summary's notification, a reminder or a notice) by the
//! configuration (glob), the machines it covers (name glob, tag), its outcome and the channel;
//! every matcher given must hold. A silenced delivery is recorded, not sent, and never replayed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{summary::Verdict, text::glob};

/// What a silence matches; at least one matcher is required.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matchers {
    /// Glob on the maintenance configuration's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<String>,
    /// Glob on machine names (or full ids): every machine the delivery covers must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// Tag name → value glob: every machine the delivery covers must carry it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// The delivery's outcome (the run's or its part's verdict), any of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outcome: Vec<Verdict>,
    /// Glob on the channel name from the routing file (`email` for the default recipients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

impl Matchers {
    pub fn is_empty(&self) -> bool {
        self.configuration.is_none()
            && self.machine.is_none()
            && self.tags.is_empty()
            && self.outcome.is_empty()
            && self.channel.is_none()
    }

    /// Whether every matcher given holds for the delivery. A machine or tag matcher needs
    /// machines (a notice about a configuration has none), an outcome matcher needs an outcome.
    pub fn matches(&self, d: &Candidate<'_>) -> bool {
        if self.is_empty() {
            return false;
        }
        let configuration = self.configuration.as_ref().is_none_or(|p| d.configuration.is_some_and(|c| glob(p, c)));
        let channel = self.channel.as_ref().is_none_or(|p| glob(p, d.channel));
        let outcome = self.outcome.is_empty() || d.outcome.is_some_and(|o| self.outcome.contains(&o));
        let per_machine = self.machine.is_some() || !self.tags.is_empty();
        // Machines that simply succeeded are counted without names: a name matcher judges the
        // listed machines (what the delivery is about), a tag matcher the groups too.
        let covered = !d.machines.is_empty() || (self.machine.is_none() && !d.groups.is_empty());
        let machines = !per_machine
            || (covered
                && d.machines.iter().all(|m| self.machine_matches(m))
                && d.groups.iter().all(|tags| self.tags_match(tags)));
        configuration && channel && outcome && machines
    }

    fn machine_matches(&self, m: &MachineRef<'_>) -> bool {
        let name = self.machine.as_ref().is_none_or(|p| glob(p, m.name) || glob(p, m.id));
        name && self.tags_match(&m.tags)
    }

    fn tags_match(&self, tags: &[(&str, &str)]) -> bool {
        self.tags.iter().all(|(k, pattern)| {
            tags.iter().find(|(tk, _)| tk.eq_ignore_ascii_case(k)).is_some_and(|(_, v)| glob(pattern, v))
        })
    }

    /// `configuration=Ring2-* machine=vm-sql-* tag:PatchOwner=team-data outcome=Failed channel=ops-*`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(c) = &self.configuration {
            parts.push(format!("configuration={c}"));
        }
        if let Some(m) = &self.machine {
            parts.push(format!("machine={m}"));
        }
        for (k, v) in &self.tags {
            parts.push(format!("tag:{k}={v}"));
        }
        if !self.outcome.is_empty() {
            let names: Vec<String> = self.outcome.iter().map(|o| format!("{o:?}")).collect();
            parts.push(format!("outcome={}", names.join(",")));
        }
        if let Some(c) = &self.channel {
            parts.push(format!("channel={c}"));
        }
        parts.join(" ")
    }
}

/// One machine of a delivery, as a silence sees it.
#[derive(Clone, Debug)]
pub struct MachineRef<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub tags: Vec<(&'a str, &'a str)>,
}

impl<'a> MachineRef<'a> {
    pub fn new(id: &'a str, name: &'a str, tags: impl IntoIterator<Item = (&'a String, &'a String)>) -> Self {
        Self { id, name, tags: tags.into_iter().map(|(k, v)| (k.as_str(), v.as_str())).collect() }
    }
}

/// A delivery about to be made.
#[derive(Clone, Debug)]
pub struct Candidate<'a> {
    pub configuration: Option<&'a str>,
    pub channel: &'a str,
    pub outcome: Option<Verdict>,
    pub machines: Vec<MachineRef<'a>>,
    /// The tags of each group of machines that simply succeeded (counted, not listed).
    pub groups: Vec<Vec<(&'a str, &'a str)>>,
}

/// One silence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    pub id: String,
    pub matchers: Matchers,
    #[serde(with = "time::serde::rfc3339")]
    pub starts: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub ends: OffsetDateTime,
    pub author: String,
    pub comment: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    /// Who ended it early, if anyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired_by: Option<String>,
}

/// Why a silence cannot be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SilenceError {
    #[error("matchers: give at least one of configuration, machine, tag, outcome or channel")]
    NoMatchers,
    #[error("ends: must be after the start")]
    EndsBeforeStart,
    #[error("ends: a silence lasts at most 90 days")]
    TooLong,
    #[error("{field}: {problem}")]
    Invalid { field: &'static str, problem: String },
}

/// The longest silence: a forgotten one must not mute a fleet for good.
pub const MAX_DAYS: i64 = 90;

impl Silence {
    /// A checked silence; its id is derived from what it says and when it was made.
    /// A checked silence in force over `during` (start inclusive, end exclusive).
    pub fn new(
        matchers: Matchers,
        during: std::ops::Range<OffsetDateTime>,
        author: &str,
        comment: &str,
        created: OffsetDateTime,
    ) -> Result<Self, SilenceError> {
        let std::ops::Range { start: starts, end: ends } = during;
        if matchers.is_empty() {
            return Err(SilenceError::NoMatchers);
        }
        if ends <= starts {
            return Err(SilenceError::EndsBeforeStart);
        }
        if ends - starts > time::Duration::days(MAX_DAYS) {
            return Err(SilenceError::TooLong);
        }
        let author = author.trim();
        if author.is_empty() {
            return Err(SilenceError::Invalid { field: "author", problem: "is required".to_owned() });
        }
        let id = format!(
            "s-{:012x}",
            crate::text::fnv64(&format!("{}|{author}|{}", matchers.describe(), created.unix_timestamp_nanos()))
                & 0xffff_ffff_ffff
        );
        Ok(Self {
            id,
            matchers,
            starts,
            ends,
            author: crate::text::one_line(author),
            comment: crate::text::one_line(comment.trim()),
            created,
            expired_by: None,
        })
    }

    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        self.starts <= now && now < self.ends
    }

    /// The ledger's detail for what it silenced: who, until when, which silence.
    pub fn detail(&self) -> String {
        let comment = if self.comment.is_empty() { String::new() } else { format!(": {}", self.comment) };
        format!(
            "silenced by {} until {} (silence {}{comment})",
            self.author,
            crate::text::format_time(self.ends),
            self.id
        )
    }
}

/// The first active silence that matches the delivery.
pub fn matching<'s>(silences: &'s [Silence], d: &Candidate<'_>, now: OffsetDateTime) -> Option<&'s Silence> {
    silences.iter().find(|s| s.is_active(now) && s.matchers.matches(d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-12-02 10:00 UTC);

    fn summary<'a>(machines: Vec<MachineRef<'a>>, outcome: Verdict, channel: &'a str) -> Candidate<'a> {
        Candidate { configuration: Some("Ring2-Prod"), channel, outcome: Some(outcome), machines, groups: vec![] }
    }

    fn tags(owner: &str) -> Vec<(&str, &str)> {
        vec![("PatchOwner", owner)]
    }

    /// (what, matchers, delivery, whether it is silenced).
    #[allow(clippy::too_many_lines)] // A table: one case per matcher, read side by side.
    fn cases() -> Vec<(&'static str, Matchers, Candidate<'static>, bool)> {
        let sql1 = MachineRef { id: "/s/x/vm-sql-1", name: "vm-sql-1", tags: tags("team-data") };
        let sql2 = MachineRef { id: "/s/x/vm-sql-2", name: "vm-sql-2", tags: tags("team-data") };
        let web1 = MachineRef { id: "/s/x/vm-web-1", name: "vm-web-1", tags: tags("team-web") };
        let notice = Candidate {
            configuration: Some("Ring2-Prod"),
            channel: "ops",
            outcome: None,
            machines: vec![],
            groups: vec![],
        };
        let m = |f: &dyn Fn(&mut Matchers)| {
            let mut m = Matchers::default();
            f(&mut m);
            m
        };
        vec![
            ("configuration glob", m(&|m| m.configuration = Some("ring2-*".into())), notice.clone(), true),
            ("other configuration", m(&|m| m.configuration = Some("Ring1-*".into())), notice.clone(), false),
            (
                "machine glob, all match",
                m(&|m| m.machine = Some("vm-sql-*".into())),
                summary(vec![sql1.clone(), sql2.clone()], Verdict::Failed, "ops"),
                true,
            ),
            (
                "machine glob, one does not",
                m(&|m| m.machine = Some("vm-sql-*".into())),
                summary(vec![sql1.clone(), web1.clone()], Verdict::Failed, "ops"),
                false,
            ),
            (
                "machine by full id",
                m(&|m| m.machine = Some("/s/x/vm-web-1".into())),
                summary(vec![web1.clone()], Verdict::Failed, "ops"),
                true,
            ),
            ("machine matcher, notice has no machines", m(&|m| m.machine = Some("*".into())), notice.clone(), false),
            (
                "tag",
                m(&|m| {
                    m.tags.insert("patchowner".into(), "team-data".into());
                }),
                summary(vec![sql1.clone(), sql2.clone()], Verdict::Failed, "ops"),
                true,
            ),
            (
                "tag, one machine lacks it",
                m(&|m| {
                    m.tags.insert("PatchOwner".into(), "team-data".into());
                }),
                summary(vec![sql1.clone(), web1.clone()], Verdict::Failed, "ops"),
                false,
            ),
            (
                "outcome",
                m(&|m| m.outcome = vec![Verdict::Failed, Verdict::Incomplete]),
                summary(vec![web1.clone()], Verdict::Incomplete, "ops"),
                true,
            ),
            (
                "other outcome",
                m(&|m| m.outcome = vec![Verdict::Failed]),
                summary(vec![web1.clone()], Verdict::Succeeded, "ops"),
                false,
            ),
            ("outcome matcher, notice has none", m(&|m| m.outcome = vec![Verdict::Failed]), notice.clone(), false),
            (
                "channel",
                m(&|m| m.channel = Some("ops*".into())),
                summary(vec![web1.clone()], Verdict::Failed, "ops-slack"),
                true,
            ),
            (
                "other channel",
                m(&|m| m.channel = Some("ops*".into())),
                summary(vec![web1.clone()], Verdict::Failed, "owners"),
                false,
            ),
            (
                "all together",
                m(&|m| {
                    m.configuration = Some("Ring2-*".into());
                    m.machine = Some("vm-web-*".into());
                    m.outcome = vec![Verdict::Failed];
                    m.channel = Some("owners".into());
                }),
                summary(vec![web1.clone()], Verdict::Failed, "owners"),
                true,
            ),
            (
                "all together, one fails",
                m(&|m| {
                    m.configuration = Some("Ring2-*".into());
                    m.machine = Some("vm-web-*".into());
                    m.channel = Some("ops".into());
                }),
                summary(vec![web1.clone()], Verdict::Failed, "owners"),
                false,
            ),
            ("no matchers never match", Matchers::default(), notice.clone(), false),
        ]
    }

    /// Every matcher, alone and together, against deliveries that should and should not match.
    #[test]
    fn a_silence_matches_exactly_what_it_says() {
        for (name, matchers, candidate, expected) in cases() {
            assert_eq!(matchers.matches(&candidate), expected, "{name}");
        }
    }

    #[test]
    fn silences_are_time_boxed_and_checked() {
        let any = Matchers { configuration: Some("Ring2-*".into()), ..Matchers::default() };
        let s = Silence::new(any.clone(), NOW..NOW + time::Duration::hours(4), "alice", "CHG0042", NOW).unwrap();
        let d = Candidate {
            configuration: Some("Ring2-Prod"),
            channel: "ops",
            outcome: None,
            machines: vec![],
            groups: vec![],
        };
        assert!(matching(std::slice::from_ref(&s), &d, NOW + time::Duration::hours(1)).is_some());
        assert!(matching(std::slice::from_ref(&s), &d, NOW + time::Duration::hours(4)).is_none(), "ended");
        assert!(matching(std::slice::from_ref(&s), &d, NOW - time::Duration::minutes(1)).is_none(), "not begun");
        assert!(s.detail().starts_with("silenced by alice until 2026-12-02 14:00 UTC (silence s-"), "{}", s.detail());
        assert_eq!(Silence::new(Matchers::default(), NOW..NOW, "a", "", NOW), Err(SilenceError::NoMatchers));
        assert_eq!(Silence::new(any.clone(), NOW..NOW, "a", "", NOW), Err(SilenceError::EndsBeforeStart));
        assert_eq!(
            Silence::new(any.clone(), NOW..NOW + time::Duration::days(91), "a", "", NOW),
            Err(SilenceError::TooLong)
        );
        assert!(matches!(
            Silence::new(any, NOW..NOW + time::Duration::hours(1), " ", "", NOW),
            Err(SilenceError::Invalid { field: "author", .. })
        ));
    }
}
