//! Which machines each schedule takes in: static assignments, and dynamic scopes evaluated the
//! way Update Manager documents them. Every non-empty filter list must match (values within a
//! list are alternatives); only machines of the scope's subscription (and resource group, for
//! a resource-group scope) count; tags `Any` wants one listed tag with one of its values, `All`
//! wants every listed tag. Names and values compare case-insensitively, and locations ignore
//! spaces (`East US` is `eastus`), as ARG normalises them.

use std::collections::HashMap;

use crate::inventory::{DynamicScope, Fleet, Machine, MachineKind, OsType, TagOperator};

/// The schedules of every machine.
#[derive(Clone, Debug, Default)]
pub struct Coverage {
    /// Per machine (same index as `Fleet::machines`): lower-cased ids of existing configurations,
    /// sorted, unique.
    pub configurations: Vec<Vec<String>>,
    /// Per machine: assignments to configurations the fleet does not hold (deleted, or in a
    /// subscription patchwatch cannot read). They patch nothing, so they cover nothing.
    pub dangling: Vec<Vec<String>>,
    /// Per dynamic scope (same index as `Fleet::scopes`): how many machines it takes in.
    pub scope_sizes: Vec<usize>,
}

impl Coverage {
    /// Resolves every static assignment and dynamic scope against the fleet's machines.
    pub fn resolve(fleet: &Fleet) -> Self {
        let index: HashMap<String, usize> = fleet.machines.iter().enumerate().map(|(i, m)| (m.key(), i)).collect();
        let mut configurations = vec![Vec::new(); fleet.machines.len()];
        for a in &fleet.assignments {
            if let Some(&i) = index.get(&a.machine) {
                configurations[i].push(a.configuration.clone());
            }
        }
        let by_subscription = machines_by_subscription(&fleet.machines);
        let mut scope_sizes = Vec::with_capacity(fleet.scopes.len());
        for scope in &fleet.scopes {
            let mut size = 0;
            for &i in by_subscription.get(scope.subscription.to_ascii_lowercase().as_str()).into_iter().flatten() {
                if matches(scope, &fleet.machines[i]) {
                    configurations[i].push(scope.configuration.clone());
                    size += 1;
                }
            }
            scope_sizes.push(size);
        }
        let known: std::collections::HashSet<String> = fleet.configurations.iter().map(|c| c.key()).collect();
        let mut dangling = vec![Vec::new(); fleet.machines.len()];
        for (list, missing) in configurations.iter_mut().zip(&mut dangling) {
            list.sort_unstable();
            list.dedup();
            missing.extend(list.iter().filter(|c| !known.contains(*c)).cloned());
            list.retain(|c| known.contains(c));
        }
        Self { configurations, dangling, scope_sizes }
    }
}

fn machines_by_subscription(machines: &[Machine]) -> HashMap<String, Vec<usize>> {
    let mut out: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, m) in machines.iter().enumerate() {
        out.entry(m.subscription.to_ascii_lowercase()).or_default().push(i);
    }
    out
}

/// Whether a dynamic scope takes in a machine.
pub fn matches(scope: &DynamicScope, m: &Machine) -> bool {
    let f = &scope.filter;
    m.subscription.eq_ignore_ascii_case(&scope.subscription)
        && scope.resource_group.as_deref().is_none_or(|rg| rg.eq_ignore_ascii_case(&m.resource_group))
        && any_or_empty(&f.resource_types, |t| resource_type_matches(t, m.kind))
        && any_or_empty(&f.resource_groups, |rg| rg.eq_ignore_ascii_case(&m.resource_group))
        && any_or_empty(&f.locations, |l| location_key(l) == location_key(&m.location))
        && any_or_empty(&f.os_types, |o| OsType::parse(o) == m.os && m.os != OsType::Unknown)
        && tags_match(f.tag_operator, &f.tags, m)
}

fn any_or_empty(list: &[String], pred: impl Fn(&str) -> bool) -> bool {
    list.is_empty() || list.iter().any(|v| pred(v))
}

fn resource_type_matches(t: &str, kind: MachineKind) -> bool {
    match kind {
        MachineKind::AzureVm => t.eq_ignore_ascii_case("microsoft.compute/virtualmachines"),
        MachineKind::Arc => t.eq_ignore_ascii_case("microsoft.hybridcompute/machines"),
    }
}

fn location_key(l: &str) -> String {
    l.chars().filter(|c| !c.is_whitespace()).flat_map(char::to_lowercase).collect()
}

fn tags_match(op: TagOperator, tags: &std::collections::BTreeMap<String, Vec<String>>, m: &Machine) -> bool {
    if tags.is_empty() {
        return true;
    }
    let one = |(name, values): (&String, &Vec<String>)| {
        m.tag(name).is_some_and(|v| values.is_empty() || values.iter().any(|want| want.eq_ignore_ascii_case(v)))
    };
    match op {
        TagOperator::Any => tags.iter().any(one),
        TagOperator::All => tags.iter().all(one),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::inventory::ScopeFilter;

    /// A machine at (subscription, resource group, location).
    fn machine((sub, rg, loc): (&str, &str, &str), kind: MachineKind, os: OsType, tags: &[(&str, &str)]) -> Machine {
        Machine {
            id: format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/x/y/m"),
            name: "m".into(),
            subscription: sub.into(),
            resource_group: rg.into(),
            location: loc.into(),
            kind,
            os,
            patch_mode: None,
            assessment_mode: None,
            bypass_safety_checks: None,
            power_state: None,
            tags: tags.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        }
    }

    fn scope(filter: ScopeFilter) -> DynamicScope {
        DynamicScope {
            id: "s".into(),
            name: "s".into(),
            subscription: "sub1".into(),
            resource_group: None,
            configuration: "c".into(),
            filter,
        }
    }

    fn tags(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.iter().map(|s| (*s).to_owned()).collect())).collect()
    }

    #[test]
    fn empty_filter_takes_the_whole_subscription_only() {
        let s = scope(ScopeFilter::default());
        assert!(matches(&s, &machine(("SUB1", "rg", "eastus"), MachineKind::Arc, OsType::Linux, &[])));
        assert!(!matches(&s, &machine(("sub2", "rg", "eastus"), MachineKind::Arc, OsType::Linux, &[])));
    }

    #[test]
    fn every_list_must_match() {
        let s = scope(ScopeFilter {
            resource_types: vec!["Microsoft.Compute/virtualMachines".into()],
            resource_groups: vec!["RG-Web".into(), "rg-data".into()],
            locations: vec!["West Europe".into()],
            os_types: vec!["Windows".into()],
            ..ScopeFilter::default()
        });
        let ok = machine(("sub1", "rg-web", "westeurope"), MachineKind::AzureVm, OsType::Windows, &[]);
        assert!(matches(&s, &ok));
        assert!(!matches(&s, &Machine { kind: MachineKind::Arc, ..ok.clone() }), "resource type");
        assert!(!matches(&s, &Machine { resource_group: "rg-other".into(), ..ok.clone() }), "resource group");
        assert!(!matches(&s, &Machine { location: "northeurope".into(), ..ok.clone() }), "location");
        assert!(!matches(&s, &Machine { os: OsType::Linux, ..ok }), "os");
    }

    #[test]
    fn tags_any_and_all() {
        let wanted = tags(&[("env", &["prod", "pre-prod"]), ("patch", &[])]);
        let any = scope(ScopeFilter { tags: wanted.clone(), tag_operator: TagOperator::Any, ..ScopeFilter::default() });
        let all = scope(ScopeFilter { tags: wanted, tag_operator: TagOperator::All, ..ScopeFilter::default() });
        let only_env = machine(("sub1", "rg", "x"), MachineKind::AzureVm, OsType::Linux, &[("Env", "PROD")]);
        let both =
            machine(("sub1", "rg", "x"), MachineKind::AzureVm, OsType::Linux, &[("env", "prod"), ("patch", "yes")]);
        let wrong_value = machine(("sub1", "rg", "x"), MachineKind::AzureVm, OsType::Linux, &[("env", "dev")]);
        assert!(matches(&any, &only_env));
        assert!(!matches(&all, &only_env));
        assert!(matches(&all, &both));
        assert!(!matches(&any, &wrong_value));
    }
}
