//! The answer key against an independent reading of the written snapshot: a small lint that
//! applies the rules as the fleet's lint states them to the JSON rows, nothing else.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::Value;
use time::{Duration, OffsetDateTime, PrimitiveDateTime, format_description::well_known::Rfc3339, macros::datetime};

use super::key::ring_position;
use crate::{
    CHECKS, FleetOptions, SimulateOptions,
    calendar::{Nth, Recur, Window, Zone},
    write_fleet_snapshot,
};

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}
fn lower(v: &Value) -> String {
    s(v).to_ascii_lowercase()
}
fn time(v: &Value) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(v.as_str()?, &Rfc3339).ok()
}
fn list(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().map(lower).collect()).unwrap_or_default()
}

/// A machine as the lint sees it.
struct M {
    id: String,
    sub: String,
    rg: String,
    location: String,
    kind: String,
    os: String,
    vm: bool,
    tags: Vec<(String, String)>,
    patch_mode: String,
    assessment_mode: String,
    bypass: Option<bool>,
}

fn machine(r: &Value) -> M {
    let p = &r["properties"];
    let vm = lower(&r["type"]) == "microsoft.compute/virtualmachines";
    let os = if vm { lower(&p["storageProfile"]["osDisk"]["osType"]) } else { lower(&p["osType"]) };
    let config = if os == "windows" { "windowsConfiguration" } else { "linuxConfiguration" };
    let settings = &p["osProfile"][config]["patchSettings"];
    let tags = r["tags"].as_object().map(|t| t.iter().map(|(k, v)| (k.to_ascii_lowercase(), lower(v))).collect());
    M {
        id: lower(&r["id"]),
        sub: lower(&r["subscriptionId"]),
        rg: lower(&r["resourceGroup"]),
        location: lower(&r["location"]),
        kind: lower(&r["type"]),
        os,
        vm,
        tags: tags.unwrap_or_default(),
        patch_mode: lower(&settings["patchMode"]),
        assessment_mode: lower(&settings["assessmentMode"]),
        bypass: settings["automaticByPlatformSettings"]["bypassPlatformSafetyChecksOnUserSchedule"].as_bool(),
    }
}

/// Every non-empty list must match; tags Any / All, an empty value list taking any value.
fn scope_takes(scope: &Value, m: &M) -> bool {
    let f = &scope["properties"]["filter"];
    let sub = lower(&scope["subscriptionId"]);
    let within = |key: &str, value: &str| {
        let l = list(&f[key]);
        l.is_empty() || l.iter().any(|x| x == value)
    };
    let tag_ok = |(name, values): (&String, &Value)| {
        let values = list(values);
        m.tags.iter().any(|(k, v)| *k == name.to_ascii_lowercase() && (values.is_empty() || values.contains(v)))
    };
    let tags = f["tagSettings"]["tags"].as_object();
    let tags_ok = match tags.filter(|t| !t.is_empty()) {
        None => true,
        Some(t) if s(&f["tagSettings"]["filterOperator"]).eq_ignore_ascii_case("all") => t.iter().all(tag_ok),
        Some(t) => t.iter().any(tag_ok),
    };
    sub == m.sub
        && within("resourceTypes", &m.kind)
        && within("resourceGroups", &m.rg)
        && within("locations", &m.location)
        && within("osTypes", &m.os)
        && tags_ok
}

/// The snapshot, read for the lint.
struct Snap {
    machines: Vec<M>,
    configs: Vec<Value>,
    statics: Vec<(String, String)>,
    scopes: Vec<Value>,
    /// (configuration, run, start)
    runs: Vec<(String, String, OffsetDateTime)>,
    expected: HashSet<(String, String)>,
    /// (run, machine, install seconds, windows)
    results: Vec<(String, String, i64, bool)>,
    assessed: HashMap<String, OffsetDateTime>,
    /// (machine, classifications, published)
    pending: Vec<(String, Vec<String>, OffsetDateTime)>,
    newest: OffsetDateTime,
}

fn read(tables: &Value) -> Snap {
    let mut snap = Snap {
        machines: Vec::new(),
        configs: Vec::new(),
        statics: Vec::new(),
        scopes: Vec::new(),
        runs: Vec::new(),
        expected: HashSet::new(),
        results: Vec::new(),
        assessed: HashMap::new(),
        pending: Vec::new(),
        newest: OffsetDateTime::UNIX_EPOCH,
    };
    for (table, rows) in tables.as_object().unwrap() {
        for r in rows.as_array().unwrap() {
            for k in ["startDateTime", "endDateTime", "lastModifiedDateTime", "publishedDateTime"] {
                if let Some(t) = time(&r["properties"][k]) {
                    snap.newest = snap.newest.max(t);
                }
            }
            snap.accept(table, r);
        }
    }
    snap
}

impl Snap {
    fn accept(&mut self, table: &str, r: &Value) {
        let (kind, p) = (lower(&r["type"]), &r["properties"]);
        match (table, kind.as_str()) {
            ("resources", "microsoft.compute/virtualmachines" | "microsoft.hybridcompute/machines") => {
                self.machines.push(machine(r))
            }
            ("resources", "microsoft.maintenance/maintenanceconfigurations") => self.configs.push(r.clone()),
            ("maintenanceresources", "microsoft.maintenance/configurationassignments") if p["filter"].is_object() => {
                self.scopes.push(r.clone())
            }
            ("maintenanceresources", "microsoft.maintenance/configurationassignments") => {
                self.statics.push((lower(&p["resourceId"]), lower(&p["maintenanceConfigurationId"])))
            }
            ("maintenanceresources", "microsoft.maintenance/maintenanceconfigurations/applyupdates") => {
                self.runs.push((
                    lower(&p["maintenanceConfigurationId"]),
                    lower(&p["correlationId"]),
                    time(&p["startDateTime"]).unwrap(),
                ))
            }
            ("maintenanceresources", "microsoft.maintenance/applyupdates") => {
                self.expected.insert((lower(&p["correlationId"]), lower(&p["resourceId"])));
            }
            ("patchinstallationresources", k) if k.ends_with("/patchinstallationresults") => {
                let machine = lower(&r["id"]).split("/patchinstallationresults/").next().unwrap().to_owned();
                let seconds =
                    (time(&p["lastModifiedDateTime"]).unwrap() - time(&p["startDateTime"]).unwrap()).whole_seconds();
                self.results.push((lower(&p["maintenanceRunId"]), machine, seconds, lower(&p["osType"]) == "windows"));
            }
            ("patchassessmentresources", k) if k.ends_with("/patchassessmentresults") => {
                let machine = lower(&r["id"]).split("/patchassessmentresults/").next().unwrap().to_owned();
                self.assessed.insert(machine, time(&p["lastModifiedDateTime"]).unwrap());
            }
            ("patchassessmentresources", k) if k.ends_with("/softwarepatches") => {
                let machine = lower(&r["id"]).split("/patchassessmentresults/").next().unwrap().to_owned();
                self.pending.push((machine, list(&p["classifications"]), time(&p["publishedDateTime"]).unwrap()));
            }
            _ => {}
        }
    }

    /// The configurations a machine is in.
    fn configs_of(&self, m: &M) -> BTreeSet<String> {
        let statics = self.statics.iter().filter(|(machine, _)| *machine == m.id).map(|(_, c)| c.clone());
        let scoped = self
            .scopes
            .iter()
            .filter(|sc| scope_takes(sc, m))
            .map(|sc| lower(&sc["properties"]["maintenanceConfigurationId"]));
        statics.chain(scoped).collect()
    }

    /// A configuration's runs started before `as_of`, newest first.
    fn recent_runs(&self, config: &str, as_of: OffsetDateTime) -> Vec<(String, OffsetDateTime)> {
        let mut runs: Vec<_> =
            self.runs.iter().filter(|(c, _, t)| c == config && *t <= as_of).map(|(_, r, t)| (r.clone(), *t)).collect();
        runs.sort_by_key(|(_, t)| std::cmp::Reverse(*t));
        runs
    }
}

type Found = BTreeSet<(String, String, Option<String>)>;

fn add(found: &mut Found, check: &str, id: &str, severity: Option<&str>) {
    found.insert((check.to_owned(), id.to_ascii_lowercase(), severity.map(str::to_owned)));
}

fn machine_checks(snap: &Snap, as_of: OffsetDateTime, found: &mut Found) {
    for m in &snap.machines {
        let configs = snap.configs_of(m);
        assert!(configs.len() <= 1, "{} is in {configs:?}", m.id);
        let abp = m.patch_mode == "automaticbyplatform";
        if configs.is_empty() {
            add(found, "unassigned", &m.id, None);
        } else if m.vm && !abp {
            add(found, "patch-mode", &m.id, None);
        } else if m.vm && m.bypass != Some(true) {
            add(found, "bypass-flag", &m.id, None);
        }
        if m.assessment_mode != "automaticbyplatform" {
            add(found, "assessment-off", &m.id, None);
        }
        match snap.assessed.get(&m.id).map(|t| as_of - *t) {
            None => add(found, "assessment-stale", &m.id, Some("error")),
            Some(age) if age > Duration::days(7) => add(found, "assessment-stale", &m.id, Some("error")),
            Some(age) if age > Duration::hours(24) => add(found, "assessment-stale", &m.id, Some("warning")),
            Some(_) => {}
        }
        let config = configs.first();
        let last_run = config.and_then(|c| snap.recent_runs(c, as_of).first().map(|(_, t)| *t));
        let critical = |classes: &Vec<String>| classes.iter().any(|c| c.contains("critical") || c.contains("security"));
        if snap.pending.iter().any(|(machine, classes, published)| {
            *machine == m.id
                && critical(classes)
                && *published < as_of - Duration::days(14)
                && (config.is_none() || last_run.is_some_and(|t| t > *published))
        }) {
            add(found, "pending-critical", &m.id, None);
        }
        if let Some(c) = config {
            let runs = snap.recent_runs(c, as_of);
            let last3 = &runs[..runs.len().min(3)];
            if last3.len() == 3
                && last3.iter().all(|(r, _)| snap.expected.contains(&(r.clone(), m.id.clone())))
                && !snap.results.iter().any(|(r, machine, ..)| *machine == m.id && last3.iter().any(|(x, _)| x == r))
            {
                add(found, "repeat-no-show", &m.id, None);
            }
        }
    }
}

fn zone(name: &str) -> Zone {
    match name {
        "W. Europe Standard Time" => Zone::WEurope,
        "Eastern Standard Time" => Zone::Eastern,
        _ => Zone::Utc,
    }
}

fn local(text: &str) -> PrimitiveDateTime {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    PrimitiveDateTime::parse(text, &f).unwrap()
}

/// `recurEvery` as the simulation writes it, read back (the forms are few; see `Recur::text`).
fn window(w: &Value) -> Window {
    let words: Vec<String> = s(&w["recurEvery"]).split(' ').map(str::to_owned).collect();
    let day = |s: &str| (0..7).map(|i| time::Weekday::Monday.nth_next(i)).find(|d| d.to_string() == s).unwrap();
    let recur = match words.as_slice() {
        [d] if d == "Day" => Recur::Daily,
        [w, d] if w == "Week" => Recur::Weekly(day(d)),
        [_, n, d] => {
            let nth = [Nth::First, Nth::Second, Nth::Third, Nth::Fourth, Nth::Last];
            let names = ["First", "Second", "Third", "Fourth", "Last"];
            Recur::Monthly(nth[names.iter().position(|x| x == n).unwrap()], day(d))
        }
        other => panic!("{other:?}"),
    };
    let start = local(&s(&w["startDateTime"]));
    let expires = Some(local(&s(&w["expirationDateTime"]))).filter(|e| e.year() < 9999);
    let (h, m) =
        s(&w["duration"]).split_once(':').map(|(h, m)| (h.parse::<i64>().unwrap(), m.parse::<i64>().unwrap())).unwrap();
    Window {
        recur,
        zone: zone(&s(&w["timeZone"])),
        at: start.time(),
        first: start.date(),
        expires,
        minutes: h * 60 + m,
    }
}

fn config_checks(snap: &Snap, as_of: OffsetDateTime, found: &mut Found) {
    let mut rings: HashMap<String, Vec<(u32, String, OffsetDateTime)>> = HashMap::new();
    for c in &snap.configs {
        let (id, w) = (lower(&c["id"]), window(&c["properties"]["maintenanceWindow"]));
        let runs = snap.recent_runs(&id, as_of);
        let last3: Vec<&String> = runs.iter().take(3).map(|(r, _)| r).collect();
        let need = snap
            .results
            .iter()
            .filter(|(r, ..)| last3.contains(&r))
            .map(|(.., secs, win)| secs + if *win { 600 } else { 900 })
            .max();
        if need.is_some_and(|n| n > w.minutes * 60) {
            add(found, "short-window", &id, Some("error"));
        } else if w.minutes < 90 {
            add(found, "short-window", &id, Some("warning"));
        }
        if w.expires.is_some_and(|e| w.zone.instant(e) < as_of + Duration::days(30)) {
            add(found, "config-expiring", &id, None);
        }
        if let (Some((prefix, n)), Some(next)) = (ring_position(&s(&c["name"])), w.next_after(as_of)) {
            rings.entry(prefix).or_default().push((n, id, next));
        }
    }
    for mut group in rings.into_values() {
        group.sort();
        for pair in group.windows(2) {
            if pair[1].2 < pair[0].2 + Duration::days(5) {
                add(found, "ring-order", &pair[1].1, None);
            }
        }
    }
    for sc in &snap.scopes {
        let n = snap.machines.iter().filter(|m| scope_takes(sc, m)).count();
        let severity = if n > 1000 {
            Some("error")
        } else if n > 900 {
            Some("warning")
        } else {
            None
        };
        if let Some(sev) = severity {
            add(found, "scope-limit", &lower(&sc["id"]), Some(sev));
        }
    }
}

/// Simulates, reads the snapshot back, and checks the key against the oracle.
fn check(opts: &SimulateOptions, machines: usize) -> crate::AnswerKey {
    let mut out = Vec::new();
    let sim = write_fleet_snapshot(opts, &FleetOptions { machines }, &mut out).unwrap();
    let tables: Value = serde_json::from_slice(&out).unwrap();
    let snap = read(&tables);
    assert_eq!(snap.newest, sim.key.as_of, "as_of is the newest timestamp");
    assert_eq!(snap.machines.len(), sim.key.machines);
    let mut found = Found::new();
    machine_checks(&snap, sim.key.as_of, &mut found);
    config_checks(&snap, sim.key.as_of, &mut found);
    let key: Found = sim
        .key
        .findings
        .iter()
        .map(|f| (f.check.to_owned(), f.resource_id.to_ascii_lowercase(), f.severity.map(str::to_owned)))
        .collect();
    let extra: Vec<_> = found.difference(&key).collect();
    let missing: Vec<_> = key.difference(&found).collect();
    assert!(extra.is_empty() && missing.is_empty(), "not in the key: {extra:#?}\nnot found: {missing:#?}");
    sim.key
}

fn example() -> SimulateOptions {
    SimulateOptions { machines: 40, seed: 1, ..SimulateOptions::default() }
}

#[test]
fn the_key_is_what_the_rules_find_at_the_example_size() {
    let key = check(&example(), 1000);
    for c in CHECKS {
        assert!(key.count(c) > 0, "{c} has no guilty item");
    }
    assert!(key.findings.iter().any(|f| f.check == "scope-limit" && f.severity == Some("warning")));
    assert_eq!(key.as_of, datetime!(2026-11-11 10:00 UTC));
}

#[test]
fn the_key_holds_for_other_seeds_subscriptions_and_dates() {
    check(&SimulateOptions { machines: 120, seed: 9, subscriptions: 1, ..SimulateOptions::default() }, 300);
    check(&SimulateOptions { machines: 12, seed: 3, subscriptions: 2, ..SimulateOptions::default() }, 0);
    let start = datetime!(2026-03-31 21:30 UTC);
    check(&SimulateOptions { machines: 30, seed: 4, start, window_minutes: 75, ..SimulateOptions::default() }, 200);
    check(&SimulateOptions { machines: 25, seed: 5, clean: true, subscriptions: 5, ..SimulateOptions::default() }, 150);
}

#[test]
fn a_fleet_of_1100_machines_has_a_scope_limit_error() {
    let key = check(&example(), 1100);
    let errors: Vec<_> = key.findings.iter().filter(|f| f.check == "scope-limit").collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].severity, Some("error"));
    assert!(errors[0].resource_id.ends_with("/configurationAssignments/prod-fleet"));
}

#[test]
fn the_same_seed_gives_the_same_snapshot_and_key() {
    let write = |seed| {
        let mut out = Vec::new();
        let opts = SimulateOptions { seed, ..example() };
        let key = write_fleet_snapshot(&opts, &FleetOptions { machines: 300 }, &mut out).unwrap().key;
        (out, key.to_json())
    };
    assert_eq!(write(1), write(1));
    assert_ne!(write(1).0, write(2).0);
}

#[test]
fn the_run_is_the_same_with_or_without_its_fleet() {
    let mut alone = Vec::new();
    crate::write_snapshot(&example(), &mut alone).unwrap();
    let mut with_fleet = Vec::new();
    write_fleet_snapshot(&example(), &FleetOptions::default(), &mut with_fleet).unwrap();
    let (alone, with_fleet): (Value, Value) =
        (serde_json::from_slice(&alone).unwrap(), serde_json::from_slice(&with_fleet).unwrap());
    for table in ["maintenanceresources", "patchinstallationresources"] {
        let rows: HashSet<String> = with_fleet[table].as_array().unwrap().iter().map(Value::to_string).collect();
        assert!(alone[table].as_array().unwrap().iter().all(|r| rows.contains(&r.to_string())), "{table}");
    }
    assert_eq!(with_fleet.as_object().unwrap().len(), 4);
}

#[test]
fn each_table_is_written_once() {
    let mut out = Vec::new();
    write_fleet_snapshot(&example(), &FleetOptions { machines: 100 }, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    for table in ["maintenanceresources", "patchinstallationresources", "patchassessmentresources", "resources"] {
        assert_eq!(text.matches(&format!("\"{table}\": [")).count(), 1, "{table}");
    }
}

#[test]
fn a_name_taken_by_the_fleet_is_refused() {
    let opts = SimulateOptions { configuration: "sap-ring1".into(), ..example() };
    let err = write_fleet_snapshot(&opts, &FleetOptions::default(), &mut Vec::new()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}
