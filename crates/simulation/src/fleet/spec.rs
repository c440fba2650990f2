//! The fleet by design: its maintenance configurations, dynamic scopes and the hand-made
//! machines that each show one lint check (or, as a trap, look like they should and do not).

use time::Weekday::{Friday, Saturday, Sunday, Thursday, Wednesday};

use crate::calendar::{Nth, Recur, Zone};

/// The fleet's maintenance configurations; `Cfg as usize` indexes [`CONFIGS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cfg {
    Ring0,
    Ring1,
    /// The configuration of the simulated run (named by `SimulateOptions::configuration`).
    Ring2,
    ProdWeekend,
    SapRing0,
    SapRing1,
    DataMonthly,
    WebNightly,
    WebDefender,
    Legacy,
    Q4Freeze,
    ArcOnPrem,
}

pub(crate) const CONFIGS: [Cfg; 12] = [
    Cfg::Ring0,
    Cfg::Ring1,
    Cfg::Ring2,
    Cfg::ProdWeekend,
    Cfg::SapRing0,
    Cfg::SapRing1,
    Cfg::DataMonthly,
    Cfg::WebNightly,
    Cfg::WebDefender,
    Cfg::Legacy,
    Cfg::Q4Freeze,
    Cfg::ArcOnPrem,
];

/// Which classifications a configuration installs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Classes {
    /// Critical, Security and more.
    Usual,
    /// Definitions and rollups only: critical and security patches stay pending.
    NoSecurity,
}

/// When a configuration's window ends for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expiry {
    Never,
    /// End of next year: far away.
    Far,
    /// 134 days before the simulated now (2026-06-30 for the example).
    Expired,
    /// 19 days after the simulated now (2026-11-30 for the example).
    Soon,
}

/// A configuration that does not depend on the simulated run (the rings do: see the plan).
#[derive(Clone, Copy, Debug)]
pub(crate) struct FixedConfig {
    pub(crate) cfg: Cfg,
    pub(crate) name: &'static str,
    pub(crate) recur: Recur,
    pub(crate) zone: Zone,
    pub(crate) hour: u8,
    pub(crate) minutes: i64,
    pub(crate) reboot: &'static str,
    pub(crate) classes: Classes,
    pub(crate) owner: &'static str,
    pub(crate) expiry: Expiry,
}

const fn fixed(cfg: Cfg, name: &'static str, recur: Recur, zone: Zone, hour: u8) -> FixedConfig {
    FixedConfig {
        cfg,
        name,
        recur,
        zone,
        hour,
        minutes: 180,
        reboot: "IfRequired",
        classes: Classes::Usual,
        owner: "team-platform",
        expiry: Expiry::Never,
    }
}

impl FixedConfig {
    const fn minutes(self, minutes: i64) -> Self {
        Self { minutes, ..self }
    }
    const fn reboot(self, reboot: &'static str) -> Self {
        Self { reboot, ..self }
    }
    const fn owner(self, owner: &'static str) -> Self {
        Self { owner, ..self }
    }
    const fn expiry(self, expiry: Expiry) -> Self {
        Self { expiry, ..self }
    }
    const fn classes(self, classes: Classes) -> Self {
        Self { classes, ..self }
    }
}

pub(crate) const FIXED: [FixedConfig; 9] = [
    // The big one: one dynamic scope takes in most of the fleet.
    fixed(Cfg::ProdWeekend, "Prod-Weekend", Recur::Weekly(Sunday), Zone::WEurope, 4).minutes(235),
    // A ring pair two days apart: ring-order.
    fixed(Cfg::SapRing0, "SAP-Ring0", Recur::Monthly(Nth::Third, Wednesday), Zone::WEurope, 20)
        .reboot("AlwaysReboot")
        .owner("team-sap"),
    fixed(Cfg::SapRing1, "SAP-Ring1", Recur::Monthly(Nth::Third, Friday), Zone::WEurope, 20)
        .reboot("AlwaysReboot")
        .owner("team-sap"),
    // Two hours, and one install took 115 minutes: short-window (error).
    fixed(Cfg::DataMonthly, "Data-Monthly", Recur::Monthly(Nth::Second, Saturday), Zone::Eastern, 23)
        .minutes(120)
        .owner("team-data"),
    // One hour: short-window (warning).
    fixed(Cfg::WebNightly, "Web-Nightly", Recur::Daily, Zone::Utc, 1)
        .minutes(60)
        .reboot("NeverReboot")
        .owner("team-web"),
    // Installs neither critical nor security patches.
    fixed(Cfg::WebDefender, "Web-Defender", Recur::Weekly(Wednesday), Zone::Utc, 12)
        .minutes(120)
        .reboot("NeverReboot")
        .classes(Classes::NoSecurity)
        .owner("team-web")
        .expiry(Expiry::Far),
    // config-expiring: expired, and expiring within 30 days.
    fixed(Cfg::Legacy, "Legacy-2025", Recur::Monthly(Nth::Fourth, Thursday), Zone::Utc, 21)
        .owner("team-finance")
        .expiry(Expiry::Expired),
    fixed(Cfg::Q4Freeze, "Q4-Freeze", Recur::Weekly(Saturday), Zone::Utc, 6)
        .minutes(150)
        .owner("team-finance")
        .expiry(Expiry::Soon),
    fixed(Cfg::ArcOnPrem, "Arc-OnPrem", Recur::Monthly(Nth::Third, Sunday), Zone::Eastern, 2).owner("team-infra"),
];

/// Which of the simulated subscriptions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sub {
    /// The first: the configurations, the rings' machines.
    Home,
    /// The second: the bulk of the fleet.
    Fleet,
    /// The third: SAP, data and on-premises machines.
    Apps,
}

impl Sub {
    pub(crate) fn index(self, subscriptions: usize) -> usize {
        let n = subscriptions.max(1);
        match self {
            Sub::Home => 0,
            Sub::Fleet => 1 % n,
            Sub::Apps => 2 % n,
        }
    }
}

pub(crate) const VM_TYPE: &str = "Microsoft.Compute/virtualMachines";
pub(crate) const ARC_TYPE: &str = "Microsoft.HybridCompute/machines";

/// A dynamic scope: a subscription-level configuration assignment with a filter.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ScopeSpec {
    pub(crate) name: &'static str,
    pub(crate) config: Cfg,
    pub(crate) sub: Sub,
    pub(crate) types: &'static [&'static str],
    pub(crate) groups: &'static [&'static str],
    pub(crate) locations: &'static [&'static str],
    pub(crate) tags: &'static [(&'static str, &'static [&'static str])],
    /// `filterOperator` `All` (else `Any`).
    pub(crate) all: bool,
}

pub(crate) const RING0_SCOPE: usize = 0;
pub(crate) const RING1_SCOPE: usize = 1;
/// The scope that takes in the bulk of the fleet (scope-limit).
pub(crate) const BIG_SCOPE: usize = 2;
pub(crate) const SAP_SCOPE: usize = 3;
pub(crate) const DATA_SCOPE: usize = 4;
pub(crate) const ONPREM_SCOPE: usize = 5;
/// The bulk's resource groups.
pub(crate) const FLEET_GROUPS: [&str; 5] =
    ["rg-fleet-web", "rg-fleet-app", "rg-fleet-data", "rg-fleet-batch", "rg-fleet-files"];

const BOTH: &[&str] = &[VM_TYPE, ARC_TYPE];

pub(crate) const SCOPES: [ScopeSpec; 6] = [
    ScopeSpec {
        name: "ring0-dev",
        config: Cfg::Ring0,
        sub: Sub::Home,
        types: BOTH,
        groups: &["rg-dev"],
        locations: &[],
        tags: &[("env", &["dev"])],
        all: false,
    },
    // An empty value list takes any value: `patch-ring` of any value is enough.
    ScopeSpec {
        name: "ring1-preprod",
        config: Cfg::Ring1,
        sub: Sub::Home,
        types: BOTH,
        groups: &["rg-preprod"],
        locations: &[],
        tags: &[("env", &["preprod", "staging"]), ("patch-ring", &[])],
        all: false,
    },
    ScopeSpec {
        name: "prod-fleet",
        config: Cfg::ProdWeekend,
        sub: Sub::Fleet,
        types: BOTH,
        groups: &FLEET_GROUPS,
        locations: &[],
        tags: &[("env", &["prod"])],
        all: false,
    },
    ScopeSpec {
        name: "sap-prd",
        config: Cfg::SapRing1,
        sub: Sub::Apps,
        types: BOTH,
        groups: &["rg-sap-prd"],
        locations: &[],
        tags: &[],
        all: false,
    },
    ScopeSpec {
        name: "data-prod",
        config: Cfg::DataMonthly,
        sub: Sub::Apps,
        types: BOTH,
        groups: &["rg-data-prod"],
        locations: &["westeurope"],
        tags: &[("env", &["prod"]), ("PatchOwner", &["team-data"])],
        all: true,
    },
    ScopeSpec {
        name: "arc-onprem",
        config: Cfg::ArcOnPrem,
        sub: Sub::Apps,
        types: &[ARC_TYPE],
        groups: &["rg-onprem"],
        locations: &[],
        tags: &[],
        all: false,
    },
];

/// How a machine joins a configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Member {
    None,
    Static(Cfg),
    Scope(usize),
}

impl Member {
    pub(crate) fn config(self) -> Option<Cfg> {
        match self {
            Member::None => None,
            Member::Static(c) => Some(c),
            Member::Scope(s) => Some(SCOPES[s].config),
        }
    }
}

pub(crate) const ABP: &str = "AutomaticByPlatform";

/// `osProfile.*.patchSettings`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Settings {
    pub(crate) patch_mode: Option<&'static str>,
    pub(crate) assessment_mode: Option<&'static str>,
    /// `automaticByPlatformSettings.bypassPlatformSafetyChecksOnUserSchedule` (VMs only).
    pub(crate) bypass: Option<bool>,
}

/// What a VM needs to be patched by a schedule.
pub(crate) const VM_READY: Settings =
    Settings { patch_mode: Some(ABP), assessment_mode: Some(ABP), bypass: Some(true) };
pub(crate) const ARC_READY: Settings = Settings { patch_mode: Some(ABP), assessment_mode: Some(ABP), bypass: None };

const fn settings(patch_mode: &'static str, assessment_mode: &'static str, bypass: Option<bool>) -> Settings {
    Settings { patch_mode: Some(patch_mode), assessment_mode: Some(assessment_mode), bypass }
}

/// The latest assessment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Assess {
    /// Within the last 20 hours, by the platform.
    Fresh,
    /// Six hours ago, started by a user (periodic assessment is off).
    ByUser,
    /// 50 hours ago.
    Stale2d,
    /// Nine days ago.
    Stale9d,
    /// No assessment row at all.
    Missing,
}

/// Critical and security patches the assessment lists as pending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pending {
    Nothing,
    /// Published about three days ago.
    Recent,
    /// Published before the oldest of the configuration's last three runs (weeks ago).
    Old,
    /// Published more than 14 days ago but after the configuration's last run.
    AfterLastRun,
}

/// How the machine did in its configuration's earlier runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum History {
    /// Results, a rare failure, at most one run without a result.
    Normal,
    /// A result in every run.
    Steady,
    /// Never a result (off at night): repeat-no-show.
    NeverShows,
    /// A result only in the middle run.
    ShowsOnce,
    /// The old pending patch fails in every run.
    FailsKb,
    /// One install took five minutes less than the window.
    LongInstall,
}

/// One lint finding a persona is built to cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Guilt {
    pub(crate) check: &'static str,
    pub(crate) severity: Option<&'static str>,
}

const fn guilt(check: &'static str) -> Guilt {
    Guilt { check, severity: None }
}
const fn stale(severity: &'static str) -> Guilt {
    Guilt { check: "assessment-stale", severity: Some(severity) }
}

/// A hand-made machine.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Persona {
    pub(crate) name: &'static str,
    pub(crate) arc: bool,
    pub(crate) windows: bool,
    pub(crate) sub: Sub,
    pub(crate) group: &'static str,
    pub(crate) location: &'static str,
    pub(crate) tags: &'static [(&'static str, &'static str)],
    pub(crate) member: Member,
    pub(crate) settings: Settings,
    /// Deallocated (VM) or disconnected (Arc) now.
    pub(crate) off: bool,
    pub(crate) assess: Assess,
    pub(crate) pending: Pending,
    pub(crate) history: History,
    pub(crate) guilt: &'static [Guilt],
    /// Only when the subscription differs from the data scope's.
    pub(crate) needs_other_sub: bool,
}

const fn machine(windows: bool, arc: bool, name: &'static str, sub: Sub, group: &'static str) -> Persona {
    Persona {
        name,
        arc,
        windows,
        sub,
        group,
        location: "westeurope",
        tags: &[],
        member: Member::None,
        settings: if arc { ARC_READY } else { VM_READY },
        off: false,
        assess: Assess::Fresh,
        pending: Pending::Nothing,
        history: History::Normal,
        guilt: &[],
        needs_other_sub: false,
    }
}
const fn win(name: &'static str, sub: Sub, group: &'static str) -> Persona {
    machine(true, false, name, sub, group)
}
const fn lnx(name: &'static str, sub: Sub, group: &'static str) -> Persona {
    machine(false, false, name, sub, group)
}
const fn arc_win(name: &'static str, sub: Sub, group: &'static str) -> Persona {
    machine(true, true, name, sub, group)
}
const fn arc_lnx(name: &'static str, sub: Sub, group: &'static str) -> Persona {
    machine(false, true, name, sub, group)
}

impl Persona {
    const fn tags(self, tags: &'static [(&'static str, &'static str)]) -> Self {
        Self { tags, ..self }
    }
    const fn member(self, member: Member) -> Self {
        Self { member, ..self }
    }
    const fn settings(self, settings: Settings) -> Self {
        Self { settings, ..self }
    }
    const fn assess(self, assess: Assess) -> Self {
        Self { assess, ..self }
    }
    const fn pending(self, pending: Pending) -> Self {
        Self { pending, ..self }
    }
    const fn history(self, history: History) -> Self {
        Self { history, ..self }
    }
    const fn guilty(self, guilt: &'static [Guilt]) -> Self {
        Self { guilt, ..self }
    }
    const fn location(self, location: &'static str) -> Self {
        Self { location, ..self }
    }
    const fn off(self) -> Self {
        Self { off: true, ..self }
    }
    const fn other_sub(self) -> Self {
        Self { needs_other_sub: true, ..self }
    }
}

const R0: Member = Member::Scope(RING0_SCOPE);
const R1: Member = Member::Scope(RING1_SCOPE);
const BIG: Member = Member::Scope(BIG_SCOPE);
const SAP: Member = Member::Scope(SAP_SCOPE);
const DATA: Member = Member::Scope(DATA_SCOPE);
const ONPREM: Member = Member::Scope(ONPREM_SCOPE);
const DATA_TAGS: &[(&str, &str)] = &[("PatchOwner", "team-data"), ("env", "prod")];

pub(crate) const PERSONAS: [Persona; 53] = [
    // Ring0-Dev.
    win("dev-web-01", Sub::Home, "rg-dev")
        .tags(&[("PatchOwner", "team-web"), ("env", "dev")])
        .member(R0)
        .pending(Pending::Recent),
    lnx("dev-api-01", Sub::Home, "rg-dev")
        .tags(&[("PatchOwner", "team-apps"), ("env", "dev")])
        .member(R0)
        .pending(Pending::AfterLastRun),
    win("dev-web-02", Sub::Home, "rg-dev")
        .tags(&[("PatchOwner", "team-web"), ("env", "dev")])
        .member(R0)
        .settings(settings("AutomaticByOS", ABP, None))
        .guilty(&[guilt("patch-mode")]),
    lnx("dev-api-02", Sub::Home, "rg-dev")
        .tags(&[("PatchOwner", "team-apps"), ("env", "dev")])
        .member(R0)
        .settings(settings(ABP, ABP, None))
        .guilty(&[guilt("bypass-flag")]),
    // Arc machines are not held to the VM patch mode.
    arc_lnx("dev-lab-01", Sub::Home, "rg-dev")
        .tags(&[("PatchOwner", "team-infra"), ("env", "dev")])
        .member(R0)
        .settings(settings("ImageDefault", ABP, None)),
    // Ring1-PreProd.
    win("pp-web-01", Sub::Home, "rg-preprod")
        .tags(&[("PatchOwner", "team-web"), ("env", "preprod")])
        .member(R1)
        .pending(Pending::Recent),
    lnx("pp-api-01", Sub::Home, "rg-preprod")
        .tags(&[("PatchOwner", "team-apps"), ("env", "test"), ("patch-ring", "early")])
        .member(R1),
    win("pp-web-02", Sub::Home, "rg-preprod").tags(&[("PatchOwner", "team-web"), ("env", "Staging")]).member(R1),
    win("pp-web-03", Sub::Home, "rg-preprod")
        .tags(&[("PatchOwner", "team-web"), ("env", "preprod")])
        .member(R1)
        .history(History::NeverShows)
        .guilty(&[guilt("repeat-no-show")]),
    arc_win("pp-kiosk-01", Sub::Home, "rg-preprod")
        .tags(&[("PatchOwner", "team-infra"), ("env", "preprod")])
        .member(R1)
        .history(History::NeverShows)
        .guilty(&[guilt("repeat-no-show")]),
    lnx("pp-api-02", Sub::Home, "rg-preprod")
        .tags(&[("PatchOwner", "team-apps"), ("env", "preprod")])
        .member(R1)
        .history(History::ShowsOnce),
    win("pp-web-04", Sub::Home, "rg-preprod")
        .tags(&[("PatchOwner", "team-web"), ("env", "preprod")])
        .member(R1)
        .history(History::FailsKb)
        .pending(Pending::Old)
        .guilty(&[guilt("pending-critical")]),
    // Deallocated for weeks: no result and no fresh assessment.
    lnx("pp-api-03", Sub::Home, "rg-preprod")
        .tags(&[("PatchOwner", "team-apps"), ("env", "preprod")])
        .member(R1)
        .off()
        .history(History::NeverShows)
        .assess(Assess::Stale9d)
        .guilty(&[guilt("repeat-no-show"), stale("error")]),
    // Prod-Weekend, inside the big scope.
    win("fl-web-stale1", Sub::Fleet, "rg-fleet-web")
        .tags(&[("PatchOwner", "team-web"), ("env", "prod")])
        .member(BIG)
        .assess(Assess::Stale2d)
        .guilty(&[stale("warning")]),
    lnx("fl-app-stale2", Sub::Fleet, "rg-fleet-app")
        .tags(&[("PatchOwner", "team-apps"), ("env", "prod")])
        .member(BIG)
        .assess(Assess::Stale9d)
        .guilty(&[stale("error")]),
    win("fl-data-noassess", Sub::Fleet, "rg-fleet-data")
        .tags(&[("PatchOwner", "team-data"), ("env", "prod")])
        .member(BIG)
        .assess(Assess::Missing)
        .guilty(&[stale("error")]),
    arc_lnx("fl-batch-noassess", Sub::Fleet, "rg-fleet-batch")
        .tags(&[("PatchOwner", "team-infra"), ("env", "prod")])
        .member(BIG)
        .assess(Assess::Missing)
        .guilty(&[stale("error")]),
    win("fl-files-assessoff", Sub::Fleet, "rg-fleet-files")
        .tags(&[("PatchOwner", "team-infra"), ("env", "prod")])
        .member(BIG)
        .settings(settings(ABP, "ImageDefault", Some(true)))
        .assess(Assess::ByUser)
        .guilty(&[guilt("assessment-off")]),
    arc_win("fl-batch-assessoff", Sub::Fleet, "rg-fleet-batch")
        .tags(&[("PatchOwner", "team-infra"), ("env", "prod")])
        .member(BIG)
        .settings(settings(ABP, "ImageDefault", None))
        .assess(Assess::ByUser)
        .guilty(&[guilt("assessment-off")]),
    win("fl-web-bypass", Sub::Fleet, "rg-fleet-web")
        .tags(&[("PatchOwner", "team-web"), ("env", "prod")])
        .member(BIG)
        .settings(settings(ABP, ABP, Some(false)))
        .guilty(&[guilt("bypass-flag")]),
    lnx("fl-app-imagedefault", Sub::Fleet, "rg-fleet-app")
        .tags(&[("PatchOwner", "team-apps"), ("env", "prod")])
        .member(BIG)
        .settings(settings("ImageDefault", ABP, None))
        .guilty(&[guilt("patch-mode")]),
    // Tag values match case-insensitively.
    win("fl-web-caps", Sub::Fleet, "rg-fleet-web").tags(&[("PatchOwner", "team-web"), ("env", "PROD")]).member(BIG),
    // SAP: SAP-Ring0 by static assignment, SAP-Ring1 by a scope without a tag filter.
    lnx("sap-dev-hana01", Sub::Apps, "rg-sap-dev")
        .tags(&[("PatchOwner", "team-sap"), ("env", "dev")])
        .member(Member::Static(Cfg::SapRing0)),
    win("sap-dev-app01", Sub::Apps, "rg-sap-dev")
        .tags(&[("PatchOwner", "team-sap"), ("env", "dev")])
        .member(Member::Static(Cfg::SapRing0)),
    lnx("sap-prd-hana01", Sub::Apps, "rg-sap-prd").tags(&[("PatchOwner", "team-sap"), ("env", "prod")]).member(SAP),
    win("sap-prd-app01", Sub::Apps, "rg-sap-prd").member(SAP),
    arc_win("sap-prd-print01", Sub::Apps, "rg-sap-prd").member(SAP),
    // Data-Monthly: resource group, location and both tags (All) must match.
    win("data-sql01", Sub::Apps, "rg-data-prod").tags(DATA_TAGS).member(DATA).history(History::LongInstall),
    win("data-sql02", Sub::Apps, "rg-data-prod").tags(&[("patchowner", "Team-Data"), ("Env", "PROD")]).member(DATA),
    lnx("data-etl01", Sub::Apps, "rg-data-prod")
        .tags(DATA_TAGS)
        .member(DATA)
        .pending(Pending::Old)
        .guilty(&[guilt("pending-critical")]),
    win("data-sql03", Sub::Apps, "rg-data-prod")
        .tags(&[("PatchOwner", "team-data"), ("env", "production")])
        .guilty(&[guilt("unassigned")]),
    win("data-sql04", Sub::Apps, "rg-data-prod")
        .tags(&[("PatchOwner", "team-web"), ("env", "prod")])
        .guilty(&[guilt("unassigned")]),
    win("data-sql05", Sub::Apps, "rg-data-prod").tags(DATA_TAGS).location("northeurope").guilty(&[guilt("unassigned")]),
    lnx("data-dr01", Sub::Apps, "rg-data-dr").tags(DATA_TAGS).guilty(&[guilt("unassigned")]),
    win("data-sql06", Sub::Fleet, "rg-data-prod").tags(DATA_TAGS).other_sub().guilty(&[guilt("unassigned")]),
    // Web-Nightly (one-hour window).
    lnx("web-edge01", Sub::Home, "rg-web-edge")
        .tags(&[("PatchOwner", "team-web"), ("env", "prod")])
        .member(Member::Static(Cfg::WebNightly)),
    win("web-edge02", Sub::Home, "rg-web-edge")
        .tags(&[("PatchOwner", "team-web"), ("env", "prod")])
        .member(Member::Static(Cfg::WebNightly)),
    // Web-Defender installs no critical or security patches.
    win("web-av01", Sub::Home, "rg-web-av")
        .tags(&[("PatchOwner", "team-web"), ("env", "prod")])
        .member(Member::Static(Cfg::WebDefender))
        .pending(Pending::Old)
        .guilty(&[guilt("pending-critical")]),
    lnx("web-av02", Sub::Home, "rg-web-av")
        .tags(&[("PatchOwner", "team-web"), ("env", "prod")])
        .member(Member::Static(Cfg::WebDefender))
        .pending(Pending::Old)
        .guilty(&[guilt("pending-critical")]),
    win("web-av03", Sub::Home, "rg-web-av")
        .tags(&[("PatchOwner", "team-web"), ("env", "prod")])
        .member(Member::Static(Cfg::WebDefender))
        .pending(Pending::Recent),
    // Legacy-2025 (expired) and Q4-Freeze (expiring).
    win("legacy-app01", Sub::Home, "rg-legacy")
        .tags(&[("PatchOwner", "team-finance"), ("env", "prod")])
        .member(Member::Static(Cfg::Legacy)),
    arc_lnx("legacy-db01", Sub::Home, "rg-legacy")
        .tags(&[("PatchOwner", "team-finance"), ("env", "prod")])
        .member(Member::Static(Cfg::Legacy)),
    win("fin-close01", Sub::Home, "rg-finance")
        .tags(&[("PatchOwner", "team-finance"), ("env", "prod")])
        .member(Member::Static(Cfg::Q4Freeze)),
    lnx("fin-close02", Sub::Home, "rg-finance")
        .tags(&[("PatchOwner", "team-finance"), ("env", "prod")])
        .member(Member::Static(Cfg::Q4Freeze)),
    // Arc-OnPrem takes Arc machines only.
    arc_win("onprem-fs01", Sub::Apps, "rg-onprem")
        .tags(&[("PatchOwner", "team-infra"), ("env", "prod")])
        .member(ONPREM)
        .settings(settings("Manual", ABP, None)),
    arc_lnx("onprem-web01", Sub::Apps, "rg-onprem")
        .tags(&[("PatchOwner", "team-infra"), ("env", "prod")])
        .member(ONPREM)
        .settings(settings("ImageDefault", ABP, None)),
    win("onprem-jump01", Sub::Apps, "rg-onprem")
        .tags(&[("PatchOwner", "team-infra"), ("env", "prod")])
        .guilty(&[guilt("unassigned")]),
    // In no schedule at all.
    arc_win("branch-fs01", Sub::Home, "rg-branch")
        .tags(&[("PatchOwner", "team-infra"), ("env", "prod")])
        .guilty(&[guilt("unassigned")]),
    win("tmp-build01", Sub::Home, "rg-sandbox")
        .settings(settings("AutomaticByOS", ABP, None))
        .guilty(&[guilt("unassigned")]),
    lnx("tmp-build02", Sub::Home, "rg-sandbox")
        .settings(settings(ABP, ABP, Some(false)))
        .guilty(&[guilt("unassigned")]),
    win("mgmt-jump01", Sub::Home, "rg-mgmt")
        .tags(&[("PatchOwner", "team-infra"), ("env", "prod")])
        .pending(Pending::Old)
        .guilty(&[guilt("unassigned"), guilt("pending-critical")]),
    // Two more clean members of the big scope: an Arc server and a Linux VM with recent patches.
    arc_win("fl-files-arc01", Sub::Fleet, "rg-fleet-files")
        .tags(&[("PatchOwner", "team-infra"), ("env", "prod")])
        .member(BIG),
    lnx("fl-app-recent01", Sub::Fleet, "rg-fleet-app")
        .tags(&[("PatchOwner", "team-apps"), ("env", "prod")])
        .member(BIG)
        .pending(Pending::Recent),
];
