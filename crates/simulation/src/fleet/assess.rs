//! `patchassessmentresources`: each machine's latest assessment and the critical and security
//! patches it lists as pending.

use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use super::{
    Plan,
    machines::{FleetMachine, Stream, machine_rng},
    spec::{Assess, Pending},
};
use crate::{Fate, PatchLine, Rng, ts};

/// A pending patch: (KB or package, title or version, classification, MSRC severity).
type Catalogued = (&'static str, &'static str, &'static str, &'static str);

/// Published weeks ago; the first also fails to install on the `FailsKb` machine.
const WINDOWS_OLD: [Catalogued; 2] = [
    (
        "5044281",
        "Cumulative Update for Windows Server 2022 for x64-based Systems (KB5044281)",
        "Security Updates",
        "Critical",
    ),
    ("5044414", "Servicing Stack Update for Windows Server 2022 (KB5044414)", "Critical Updates", "Important"),
];
const WINDOWS_RECENT: [Catalogued; 2] = [
    (
        "5046616",
        "Cumulative Update for Windows Server 2022 for x64-based Systems (KB5046616)",
        "Security Updates",
        "Critical",
    ),
    ("5046540", "Cumulative Update for .NET Framework 3.5 and 4.8.1 (KB5046540)", "Security Updates", "Important"),
];
const LINUX_OLD: [Catalogued; 2] =
    [("openssl", "3.0.2-0ubuntu1.18", "Security", ""), ("sudo", "1.9.9-1ubuntu2.5", "Critical", "")];
const LINUX_RECENT: [Catalogued; 2] =
    [("linux-image-azure", "6.8.0-1017.20", "Security", ""), ("curl", "7.81.0-1ubuntu1.19", "Security", "")];

/// The old pending patch, as an installation result names it.
pub(crate) fn old_patch_line(windows: bool) -> PatchLine<'static> {
    if windows {
        let (kb, title, class, _) = WINDOWS_OLD[0];
        PatchLine { name: title, kb: Some(kb), version: None, class }
    } else {
        let (name, version, class, _) = LINUX_OLD[0];
        PatchLine { name, kb: None, version: Some(version), class }
    }
}

/// One pending patch of an assessment.
struct PendingPatch {
    patch: Catalogued,
    published: OffsetDateTime,
}

impl Plan {
    /// The latest assessment and its pending critical and security patches; none for a machine
    /// never assessed.
    pub(crate) fn assessment_rows(&self, fm: &FleetMachine) -> Vec<Value> {
        let Some((assessed, by_user)) = self.assessed(fm) else { return Vec::new() };
        let mut rng = machine_rng(self.seed, fm.index, Stream::Assessment as u64);
        let pending = self.pending_patches(fm, &mut rng);
        let mut rows = vec![latest_row(fm, (assessed, by_user), &pending, &mut rng)];
        for p in &pending {
            rows.push(pending_row(fm, p, assessed, &mut rng));
        }
        rows
    }

    /// When the machine was last assessed, and whether a user started it.
    fn assessed(&self, fm: &FleetMachine) -> Option<(OffsetDateTime, bool)> {
        let age = match fm.assess {
            Assess::Missing => return None,
            Assess::ByUser => return Some((self.as_of - Duration::hours(6), true)),
            Assess::Stale2d => Duration::hours(50),
            Assess::Stale9d => Duration::days(9),
            // The newest timestamp of the snapshot is the simulated now.
            Assess::Fresh if fm.index == 0 => Duration::ZERO,
            Assess::Fresh if fm.off => Duration::hours(20),
            Assess::Fresh => {
                let minutes = 10 + machine_rng(self.seed, fm.index, Stream::Identity as u64 + 40).below(20 * 60 - 10);
                Duration::minutes(minutes as i64)
            }
        };
        Some((self.as_of - age, false))
    }

    fn pending_patches(&self, fm: &FleetMachine, rng: &mut Rng) -> Vec<PendingPatch> {
        let (old, recent) = if fm.m.windows { (&WINDOWS_OLD, &WINDOWS_RECENT) } else { (&LINUX_OLD, &LINUX_RECENT) };
        let recent_at = |h: u64| self.as_of - Duration::days(3) - Duration::hours(h as i64);
        match fm.pending {
            Pending::Nothing => Vec::new(),
            Pending::Recent => (0..1 + rng.below(2) as usize)
                .map(|i| PendingPatch { patch: recent[i], published: recent_at(rng.below(6)) })
                .collect(),
            Pending::Old => {
                let mut list = vec![PendingPatch { patch: old[0], published: self.old_published(fm) }];
                if rng.below(2) == 0 {
                    list.push(PendingPatch { patch: recent[0], published: recent_at(rng.below(6)) });
                }
                list
            }
            // Six hours after the last run and at least six hours more than 14 days ago.
            Pending::AfterLastRun => self
                .last_run_of(fm)
                .map(|last| last + Duration::hours(6))
                .filter(|p| *p + Duration::hours(6) <= self.as_of - Duration::days(14))
                .map(|published| PendingPatch { patch: old[1], published })
                .into_iter()
                .collect(),
        }
    }

    fn last_run_of(&self, fm: &FleetMachine) -> Option<OffsetDateTime> {
        fm.member.config().and_then(|c| self.config(c).last_run)
    }

    /// Before the oldest of the configuration's last three runs (it had every chance), and
    /// at least 20 days ago; four weeks ago for a machine in no schedule.
    pub(crate) fn old_published(&self, fm: &FleetMachine) -> OffsetDateTime {
        let weeks_ago = self.as_of - Duration::days(20);
        let oldest = fm.member.config().and_then(|c| self.config(c).history.last().copied());
        match oldest {
            Some(run) => weeks_ago.min(run - Duration::days(2)),
            None => self.as_of - Duration::days(29),
        }
    }
}

fn kind(fm: &FleetMachine) -> &'static str {
    if fm.m.arc { "microsoft.hybridcompute/machines" } else { "microsoft.compute/virtualmachines" }
}

fn latest_row(
    fm: &FleetMachine,
    (assessed, by_user): (OffsetDateTime, bool),
    pending: &[PendingPatch],
    rng: &mut Rng,
) -> Value {
    let m = &fm.m;
    let kind = kind(fm);
    let count = |class: &str| pending.iter().filter(|p| p.patch.2.starts_with(class)).count();
    let (definition, rollup, updates, other) =
        if m.windows { (rng.below(3), rng.below(2), rng.below(4), 0) } else { (0, 0, 0, rng.below(12)) };
    json!({
        "id": format!("{}/patchAssessmentResults/latest", m.id), "name": "latest", "type": format!("{kind}/patchassessmentresults"),
        "subscriptionId": m.sub, "resourceGroup": m.rg, "location": fm.location, "tags": {},
        "properties": {
            "status": "Succeeded", "rebootPending": m.fate == Fate::RebootPending && fm.in_run,
            "patchServiceUsed": if m.windows { "WU" } else { "APT" }, "osType": m.os(),
            "startDateTime": ts(assessed - Duration::minutes(3)), "lastModifiedDateTime": ts(assessed),
            "startedBy": if by_user { "User" } else { "Platform" },
            "availablePatchCountByClassification": {
                "security": count("Security"), "critical": count("Critical"), "definition": definition, "updateRollup": rollup,
                "featurePack": 0, "servicePack": 0, "tools": 0, "updates": updates, "other": other
            }
        }
    })
}

fn pending_row(fm: &FleetMachine, p: &PendingPatch, assessed: OffsetDateTime, rng: &mut Rng) -> Value {
    let m = &fm.m;
    let kind = kind(fm);
    let (what, detail, class, severity) = p.patch;
    let (patch_id, mut props) = if m.windows {
        let props = json!({ "patchName": detail, "kbId": what, "msrcSeverity": severity, "rebootBehavior": "CanRequestReboot" });
        (rng.guid(), props)
    } else {
        let reboot = if what.starts_with("linux-image") { "AlwaysRequiresReboot" } else { "NeverReboots" };
        (format!("{what}_{detail}"), json!({ "patchName": what, "version": detail, "rebootBehavior": reboot }))
    };
    props["classifications"] = json!([class]);
    props["publishedDateTime"] = json!(ts(p.published));
    props["lastModifiedDateTime"] = json!(ts(assessed));
    json!({
        "id": format!("{}/patchAssessmentResults/latest/softwarePatches/{patch_id}", m.id), "name": patch_id,
        "type": format!("{kind}/patchassessmentresults/softwarepatches"), "subscriptionId": m.sub, "resourceGroup": m.rg,
        "location": fm.location, "tags": {}, "properties": props
    })
}
