//! A realistic digest for previews and tests: 1,000 machines of four owners in three
//! subscriptions, findings of several checks, pending patches, a calendar and trends.

use time::{Duration, OffsetDateTime, macros::datetime};

use patchwatch_fleet::{
    digest::{AttentionRow, CalendarEntry, ClassificationCount, Compliance, Digest, PendingRow},
    lint::{Check, Finding, Level, Subject},
    trends::{ConfigurationTrend, KbCarryover, RepeatOffender, RunPoint},
};

const OWNERS: [&str; 4] = ["team-web", "team-data", "team-payments", "team-identity"];
const SUBSCRIPTIONS: [&str; 3] = ["prod-web", "prod-data", "shared-services"];
const CONFIGURATIONS: [&str; 4] = ["Ring0-Canary", "Ring1-Web", "Ring2-Prod-Windows", "Ring2-Prod-Linux"];

/// The whole-fleet digest of 2026-W49: 870 of 1,000 machines compliant (87%).
pub fn sample() -> Digest {
    let generated = datetime!(2026-12-07 06:00 UTC);
    Digest {
        generated,
        period: "2026-W49".to_owned(),
        owner: None,
        overall: Compliance { label: "All machines".to_owned(), machines: 1000, compliant: 870 },
        by_owner: compliance(&OWNERS, &[(400, 372), (300, 246), (200, 172), (100, 80)]),
        by_subscription: compliance(&SUBSCRIPTIONS, &[(500, 451), (350, 290), (150, 129)]),
        pending_by_classification: classifications(),
        findings: findings(),
        attention: attention(),
        pending: pending(generated),
        calendar: calendar(generated),
        trends: trends(generated),
        repeat_offenders: repeat_offenders(),
        kb_carryover: kb_carryover(generated),
    }
}

fn compliance(labels: &[&str], counts: &[(usize, usize)]) -> Vec<Compliance> {
    labels
        .iter()
        .zip(counts)
        .map(|(l, (machines, compliant))| Compliance {
            label: (*l).to_owned(),
            machines: *machines,
            compliant: *compliant,
        })
        .collect()
}

fn classifications() -> Vec<ClassificationCount> {
    [("Critical", 96), ("Security", 164), ("UpdateRollup", 41), ("Definition", 12), ("Updates", 7)]
        .into_iter()
        .map(|(c, n)| ClassificationCount { classification: c.to_owned(), patches: n })
        .collect()
}

fn machine(i: usize) -> (String, String, &'static str, &'static str) {
    let owner = OWNERS[i % OWNERS.len()];
    let subscription = SUBSCRIPTIONS[i % SUBSCRIPTIONS.len()];
    let name = format!("vm-{}-{i:03}", owner.trim_start_matches("team-"));
    let id = format!(
        "/subscriptions/{subscription}/resourceGroups/rg-{owner}/providers/Microsoft.Compute/virtualMachines/{name}"
    );
    (name, id, owner, subscription)
}

fn finding(check: Check, severity: Level, i: usize, detail: &str, fix: &str) -> Finding {
    let (name, id, owner, subscription) = machine(i);
    Finding {
        check,
        severity,
        subject: Subject::Machine,
        resource_id: id.clone(),
        name: name.clone(),
        owner: Some(owner.to_owned()),
        subscription: subscription.to_owned(),
        detail: detail.to_owned(),
        why: match check {
            Check::PatchMode => "Update Manager only patches machines whose patch mode is AutomaticByPlatform.",
            Check::BypassFlag => "The schedule never runs on a machine that bypasses platform safety checks.",
            Check::Unassigned => "No maintenance configuration covers it, so nothing patches it.",
            _ => "Its assessment is too old to say what is pending.",
        }
        .to_owned(),
        fix: fix.replace("{name}", &name).replace("{id}", &id),
    }
}

fn findings() -> Vec<Finding> {
    let mut out = Vec::new();
    for i in 0..4 {
        out.push(finding(
            Check::PatchMode,
            Level::Error,
            i * 7,
            "patchMode is AutomaticByOS",
            "az vm update --ids {id} --set osProfile.windowsConfiguration.patchSettings.patchMode=AutomaticByPlatform",
        ));
    }
    for i in 0..2 {
        out.push(finding(Check::BypassFlag, Level::Warning, 30 + i, "bypassPlatformSafetyChecksOnUserSchedule is false",
            "az vm update --ids {id} --set osProfile.windowsConfiguration.patchSettings.automaticByPlatformSettings.bypassPlatformSafetyChecksOnUserSchedule=true"));
    }
    for i in 0..14 {
        out.push(finding(Check::Unassigned, Level::Error, 100 + i, "in no maintenance configuration, static or dynamic",
            "az maintenance assignment create --resource-group rg --resource-name {name} --resource-type virtualMachines --provider-name Microsoft.Compute --configuration-assignment-name {name} --maintenance-configuration-id /subscriptions/prod-web/resourceGroups/rg-maint/providers/Microsoft.Maintenance/maintenanceConfigurations/Ring1-Web"));
    }
    out.push(Finding {
        check: Check::ShortWindow,
        severity: Level::Warning,
        subject: Subject::Configuration,
        resource_id: "/subscriptions/prod-web/resourceGroups/rg-maint/providers/Microsoft.Maintenance/maintenanceConfigurations/Ring2-Prod-Windows".to_owned(),
        name: "Ring2-Prod-Windows".to_owned(),
        owner: Some("team-web".to_owned()),
        subscription: "prod-web".to_owned(),
        detail: "window is 1 h 30 min; the longest install in the last 6 runs took 1 h 24 min".to_owned(),
        why: "Installs still running when the window closes are cut off and retried next time.".to_owned(),
        fix: "az maintenance configuration update --resource-group rg-maint --resource-name Ring2-Prod-Windows --duration 03:00".to_owned(),
    });
    for i in 0..3 {
        out.push(finding(
            Check::AssessmentStale,
            Level::Warning,
            200 + i,
            "last assessed 9 days ago",
            "az vm assess-patches --ids {id}",
        ));
    }
    out
}

fn attention() -> Vec<AttentionRow> {
    (0..130)
        .map(|i| {
            let (name, id, owner, subscription) = machine(i);
            let mut reasons = vec!["pending".to_owned()];
            if i % 7 == 0 && i < 28 {
                reasons.push("patch-mode".to_owned());
            }
            if i % 10 == 3 {
                reasons.push("reboot-pending".to_owned());
            }
            AttentionRow {
                id,
                name,
                owner: Some(owner.to_owned()),
                subscription: subscription.to_owned(),
                critical_or_security: u32::try_from(1 + i % 4).unwrap_or(1),
                reasons,
            }
        })
        .collect()
}

fn pending(now: OffsetDateTime) -> Vec<PendingRow> {
    let patches = [
        ("KB5048667", "Security", "Critical"),
        ("KB5048685", "Critical", "Important"),
        ("openssl 3.0.15-1~deb12u1", "Security", "Important"),
    ];
    (0..260)
        .map(|i| {
            let (machine, machine_id, owner, _) = machine(i / 2);
            let (patch, classification, severity) = patches[i % patches.len()];
            let age = i64::try_from(5 + (i * 3) % 40).unwrap_or(5);
            PendingRow {
                machine,
                machine_id,
                owner: Some(owner.to_owned()),
                patch: patch.to_owned(),
                classification: classification.to_owned(),
                severity: Some(severity.to_owned()),
                published: Some(now - Duration::days(age)),
                age_days: Some(age),
            }
        })
        .collect()
}

fn calendar(now: OffsetDateTime) -> Vec<CalendarEntry> {
    let mut out: Vec<CalendarEntry> = (0..5)
        .flat_map(|week| {
            CONFIGURATIONS.iter().enumerate().map(move |(c, name)| {
                let start = now + Duration::days(week * 7 + i64::try_from(c).unwrap_or(0) + 1) + Duration::hours(16);
                CalendarEntry {
                    configuration: (*name).to_owned(),
                    configuration_id: format!(
                        "/subscriptions/prod-web/resourceGroups/rg-maint/providers/Microsoft.Maintenance/maintenanceConfigurations/{name}"
                    ),
                    start,
                    end: start + Duration::minutes(if c == 2 { 90 } else { 180 }),
                    local: format!("{} 23:00 W. Europe Standard Time", super::model::format_date(start)),
                }
            })
        })
        .filter(|e| e.start < now + Duration::days(35))
        .collect();
    out.sort_by_key(|e| e.start);
    out
}

/// Per run (failed, no-show), the machines in scope and the window in minutes.
type RunShape = (&'static [(usize, usize)], usize, u32);

fn trends(now: OffsetDateTime) -> Vec<ConfigurationTrend> {
    let shape: [RunShape; 4] = [
        (&[(0, 0), (1, 0), (0, 1), (0, 0), (2, 0), (0, 0)], 20, 180),
        (&[(3, 1), (2, 2), (4, 0), (1, 1), (5, 2), (3, 1)], 180, 180),
        (&[(6, 3), (9, 2), (4, 4), (12, 3), (7, 5), (8, 6)], 420, 90),
        (&[(1, 0), (0, 2), (2, 1), (0, 0), (1, 3), (2, 2)], 380, 180),
    ];
    CONFIGURATIONS
        .iter()
        .zip(shape)
        .map(|(name, (runs, machines, window))| {
            let runs: Vec<RunPoint> = runs
                .iter()
                .enumerate()
                .map(|(i, (failed, no_show))| {
                    let weeks = i64::try_from(runs.len() - i).unwrap_or(0);
                    RunPoint {
                        run_id: format!("{name}-{}", i + 1),
                        start: now - Duration::weeks(weeks) + Duration::hours(16),
                        machines,
                        failed: *failed,
                        no_show: *no_show,
                        success_percent: u32::try_from((machines - failed - no_show) * 100 / machines).unwrap_or(0),
                        longest_install_minutes: Some(window * 6 / 10 + u32::try_from(i * 5).unwrap_or(0)),
                    }
                })
                .collect();
            ConfigurationTrend {
                configuration: (*name).to_owned(),
                configuration_id: format!(
                    "/subscriptions/prod-web/resourceGroups/rg-maint/providers/Microsoft.Maintenance/maintenanceConfigurations/{name}"
                ),
                median_install_minutes: Some(window * 4 / 10),
                longest_install_minutes: runs.iter().filter_map(|r| r.longest_install_minutes).max(),
                window_minutes: Some(window),
                runs,
            }
        })
        .collect()
}

fn repeat_offenders() -> Vec<RepeatOffender> {
    [
        ("vm-data-013", "Ring2-Prod-Windows", 6, "Failed"),
        ("vm-web-044", "Ring1-Web", 4, "NoShow"),
        ("vm-payments-102", "Ring2-Prod-Linux", 3, "Failed"),
    ]
    .into_iter()
    .map(|(m, c, runs, latest)| RepeatOffender {
        machine: m.to_owned(),
        configuration: c.to_owned(),
        configuration_id: format!("{CONFIGS}/{c}"),
        runs,
        latest: latest.to_owned(),
    })
    .collect()
}

/// Where the sample's maintenance configurations live.
const CONFIGS: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-patching/providers/Microsoft.Maintenance/maintenanceConfigurations";

fn kb_carryover(now: OffsetDateTime) -> Vec<KbCarryover> {
    vec![
        KbCarryover {
            patch: "KB5048667".to_owned(),
            failed_in: "Ring1-Web".to_owned(),
            failed_machines: 3,
            scheduled_in: "Ring2-Prod-Windows".to_owned(),
            scheduled_in_id: format!("{CONFIGS}/Ring2-Prod-Windows"),
            next_run: Some(now + Duration::days(3) + Duration::hours(16)),
        },
        KbCarryover {
            patch: "openssl 3.0.15-1~deb12u1".to_owned(),
            failed_in: "Ring0-Canary".to_owned(),
            failed_machines: 1,
            scheduled_in: "Ring2-Prod-Linux".to_owned(),
            scheduled_in_id: format!("{CONFIGS}/Ring2-Prod-Linux"),
            next_run: None,
        },
    ]
}
