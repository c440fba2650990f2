//! The exact `az` command that fixes each finding. Values are shell-quoted where needed, so a
//! command can be pasted as it is.

use crate::inventory::{Configuration, DynamicScope, Machine, MachineKind, OsType};

/// Quotes a value for a POSIX shell when it holds anything but safe characters.
pub(crate) fn sh(value: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c);
    if !value.is_empty() && value.chars().all(safe) {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

fn os_configuration(os: OsType) -> &'static str {
    match os {
        OsType::Linux => "linuxConfiguration",
        _ => "windowsConfiguration",
    }
}

/// `az vm update --set …` on an Azure VM's patch settings (verified against azure-cli 2.91's
/// request building: a nested object must be set as JSON when the VM lacks it).
fn vm_update(m: &Machine, sets: &[String]) -> String {
    format!(
        "az vm update --subscription {} --resource-group {} --name {} --set {}",
        sh(&m.subscription),
        sh(&m.resource_group),
        sh(&m.name),
        sets.iter().map(|s| sh(s)).collect::<Vec<_>>().join(" ")
    )
}

/// Customer Managed Schedules: the only patch mode under which Update Manager honours a schedule.
pub(crate) fn customer_managed_schedules(m: &Machine) -> String {
    let base = format!("osProfile.{}", os_configuration(m.os));
    let mut sets = Vec::new();
    if m.os != OsType::Linux {
        sets.push(format!("{base}.enableAutomaticUpdates=true"));
    }
    sets.push(format!("{base}.patchSettings.patchMode=AutomaticByPlatform"));
    sets.push(format!(
        "{base}.patchSettings.automaticByPlatformSettings={{\"bypassPlatformSafetyChecksOnUserSchedule\":true,\"rebootSetting\":\"IfRequired\"}}"
    ));
    vm_update(m, &sets)
}

/// Periodic assessment every 24 hours.
pub(crate) fn periodic_assessment(m: &Machine) -> String {
    match m.kind {
        MachineKind::AzureVm => vm_update(
            m,
            &[format!("osProfile.{}.patchSettings.assessmentMode=AutomaticByPlatform", os_configuration(m.os))],
        ),
        // Arc: no --assessment-mode flag; --os-profile merges into the existing profile.
        MachineKind::Arc => format!(
            "az connectedmachine update --subscription {} --resource-group {} --name {} --os-profile {}",
            sh(&m.subscription),
            sh(&m.resource_group),
            sh(&m.name),
            match m.os {
                OsType::Linux => "linux-configuration.patch-settings.assessment-mode=AutomaticByPlatform",
                _ => "windows-configuration.patch-settings.assessment-mode=AutomaticByPlatform",
            }
        ),
    }
}

pub(crate) fn assess_now(m: &Machine) -> String {
    match m.kind {
        MachineKind::AzureVm => format!(
            "az vm assess-patches --subscription {} --resource-group {} --name {}",
            sh(&m.subscription),
            sh(&m.resource_group),
            sh(&m.name)
        ),
        MachineKind::Arc => format!(
            "az connectedmachine assess-patches --subscription {} --resource-group {} --name {}",
            sh(&m.subscription),
            sh(&m.resource_group),
            sh(&m.name)
        ),
    }
}

/// Assigns a machine to a configuration (a placeholder id when no configuration is suggested).
pub(crate) fn assign(m: &Machine, configuration: Option<&Configuration>) -> String {
    let (provider, kind) = match m.kind {
        MachineKind::AzureVm => ("Microsoft.Compute", "virtualMachines"),
        MachineKind::Arc => ("Microsoft.HybridCompute", "machines"),
    };
    let (config_id, assignment) = match configuration {
        Some(c) => (c.id.clone(), format!("{}-{}", m.name, c.name)),
        None => ("<maintenance-configuration-id>".to_owned(), format!("{}-schedule", m.name)),
    };
    format!(
        "az maintenance assignment create --subscription {} --resource-group {} --location {} --resource-name {} \
         --resource-type {kind} --provider-name {provider} --configuration-assignment-name {} \
         --maintenance-configuration-id {}",
        sh(&m.subscription),
        sh(&m.resource_group),
        sh(&m.location),
        sh(&m.name),
        sh(&assignment),
        sh(&config_id)
    )
}

/// Updates a configuration's maintenance window. The whole window is sent with the change
/// applied: the CLI sends a PATCH of only the given fields, and whether the service merges the
/// rest is not documented.
pub(crate) fn update_window(c: &Configuration, change: &[(&str, &str)]) -> String {
    let w = &c.window;
    let mut settings: Vec<(&str, String)> = vec![
        ("maintenance-window-start-date-time", w.start_date_time.clone()),
        ("maintenance-window-duration", w.duration.clone()),
        ("maintenance-window-time-zone", w.time_zone.clone()),
        ("maintenance-window-recur-every", w.recur_every.clone()),
    ];
    if let Some(e) = &w.expiration_date_time {
        settings.push(("maintenance-window-expiration-date-time", e.clone()));
    }
    for (k, v) in change {
        match settings.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = (*v).to_owned(),
            None => settings.push((k, (*v).to_owned())),
        }
    }
    let args: Vec<String> =
        settings.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| format!("--{k} {}", sh(v))).collect();
    format!(
        "az maintenance configuration update --subscription {} --resource-group {} --name {} {}",
        sh(&c.subscription),
        sh(&c.resource_group),
        sh(&c.name),
        args.join(" ")
    )
}

/// Adds Critical and Security to the classifications the configuration installs on `os`.
pub(crate) fn include_critical_security(c: &Configuration, os: OsType) -> String {
    let mut wanted: Vec<String> = c.classifications(os).to_vec();
    for class in ["Critical", "Security"] {
        if !wanted.iter().any(|w| w.eq_ignore_ascii_case(class)) {
            wanted.push(class.to_owned());
        }
    }
    let param = match os {
        OsType::Linux => "install-patches-linux-parameters",
        _ => "install-patches-windows-parameters",
    };
    // `classifications-to-include-list`: the plain key stores "[Critical,Security]" as one string.
    update_window(c, &[(param, &format!("classifications-to-include-list=[{}]", wanted.join(",")))])
}

/// Splits a dynamic scope in two by resource group: the scope keeps the first groups and a
/// second scope (`<name>-2`, the same filters otherwise) takes the rest. With a single group
/// there is nothing to split by; the scope is narrowed by OS type into two the same way.
pub(crate) fn split_scope(s: &DynamicScope, first: &[String], rest: &[String]) -> String {
    if rest.is_empty() {
        let windows = scope_command(s, &s.name, &Narrow::OsTypes(&["Windows"]));
        let linux = scope_command(s, &format!("{}-2", s.name), &Narrow::OsTypes(&["Linux"]));
        return format!("{windows} && {linux}");
    }
    let keep = scope_command(s, &s.name, &Narrow::ResourceGroups(first));
    let second = scope_command(s, &format!("{}-2", s.name), &Narrow::ResourceGroups(rest));
    format!("{keep} && {second}")
}

/// What one half of a split scope is narrowed by.
enum Narrow<'a> {
    ResourceGroups(&'a [String]),
    OsTypes(&'a [&'a str]),
}

/// One `create-or-update-subscription` with the scope's filters and one of them narrowed.
fn scope_command(s: &DynamicScope, name: &str, narrow: &Narrow<'_>) -> String {
    let list = |v: &[String]| v.iter().map(|x| sh(x)).collect::<Vec<_>>().join(" ");
    let f = &s.filter;
    let os_types: Vec<String> = match narrow {
        Narrow::OsTypes(os) => os.iter().map(|o| (*o).to_owned()).collect(),
        Narrow::ResourceGroups(_) => f.os_types.clone(),
    };
    let groups: Vec<String> = match narrow {
        Narrow::ResourceGroups(g) => g.to_vec(),
        Narrow::OsTypes(_) => f.resource_groups.clone(),
    };
    let mut cmd = format!(
        "az maintenance assignment create-or-update-subscription --subscription {} --name {} \
         --maintenance-configuration-id {} --location global",
        sh(&s.subscription),
        sh(name),
        sh(&s.configuration)
    );
    for (flag, values) in [
        ("--filter-resource-groups", &groups),
        ("--filter-resource-types", &f.resource_types),
        ("--filter-locations", &f.locations),
        ("--filter-os-types", &os_types),
    ] {
        if !values.is_empty() {
            cmd.push_str(&format!(" {flag} {}", list(values)));
        }
    }
    if !f.tags.is_empty() {
        let tags: Vec<String> = f.tags.iter().map(|(k, v)| format!("{k}:[{}]", v.join(","))).collect();
        let op = match f.tag_operator {
            crate::inventory::TagOperator::All => "All",
            crate::inventory::TagOperator::Any => "Any",
        };
        cmd.push_str(&format!(" --filter-tags {} --filter-tags-operator {op}", sh(&format!("{{{}}}", tags.join(",")))));
    }
    cmd
}

/// A machine that is never up at its window: patchwatch's `[power]` starts deallocated VMs for
/// the run and stops them after (no `az` command keeps a VM up at a future time); an Arc
/// machine's agent must be connected, which its status shows.
pub(crate) fn up_for_window(m: &Machine, configuration: &str) -> String {
    match m.kind {
        MachineKind::AzureVm => format!(
            "add {} to configurations under [power] in PATCHWATCH_CONFIG (patchwatch starts deallocated VMs before the window and stops them after); now: az vm start --subscription {} --resource-group {} --name {}",
            sh(configuration),
            sh(&m.subscription),
            sh(&m.resource_group),
            sh(&m.name)
        ),
        MachineKind::Arc => format!(
            "az connectedmachine show --subscription {} --resource-group {} --name {} --query status (the agent must be Connected at the window)",
            sh(&m.subscription),
            sh(&m.resource_group),
            sh(&m.name)
        ),
    }
}

/// Installs critical and security patches now, outside the schedule.
pub(crate) fn install_now(m: &Machine) -> String {
    let classes = match m.os {
        OsType::Linux => "--classifications-to-include-linux Critical Security",
        _ => "--classifications-to-include-win Critical Security",
    };
    match m.kind {
        MachineKind::AzureVm => format!(
            "az vm install-patches --subscription {} --resource-group {} --name {} --maximum-duration PT2H \
             --reboot-setting IfRequired {classes}",
            sh(&m.subscription),
            sh(&m.resource_group),
            sh(&m.name)
        ),
        MachineKind::Arc => format!(
            "az connectedmachine install-patches --subscription {} --resource-group {} --name {} \
             --maximum-duration PT2H --reboot-setting IfRequired --{}-parameters 'classifications-to-include=[Critical,Security]'",
            sh(&m.subscription),
            sh(&m.resource_group),
            sh(&m.name),
            if m.os == OsType::Linux { "linux" } else { "windows" }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_scope_is_split_in_two_with_its_other_filters() {
        let scope = DynamicScope {
            id: "s".into(),
            name: "prod-fleet".into(),
            subscription: "sub".into(),
            resource_group: None,
            configuration:
                "/subscriptions/sub/resourcegroups/rg/providers/microsoft.maintenance/maintenanceconfigurations/mc"
                    .into(),
            filter: crate::inventory::ScopeFilter { locations: vec!["westeurope".into()], ..Default::default() },
        };
        let fix = split_scope(&scope, &["rg-a".into()], &["rg-b".into(), "rg-c".into()]);
        let (keep, second) = fix.split_once(" && ").expect("two commands");
        assert!(
            keep.contains("--name prod-fleet ")
                && keep.contains("--filter-resource-groups rg-a --filter-locations westeurope"),
            "{keep}"
        );
        assert!(
            second.contains("--name prod-fleet-2 ")
                && second.contains("--filter-resource-groups rg-b rg-c --filter-locations westeurope"),
            "{second}"
        );
        let by_os = split_scope(&scope, &["rg-a".into()], &[]);
        assert!(
            by_os.contains("--filter-os-types Windows")
                && by_os.contains("--name prod-fleet-2")
                && by_os.contains("--filter-os-types Linux"),
            "{by_os}"
        );
    }

    #[test]
    fn quoting_keeps_commands_pasteable() {
        assert_eq!(sh("rg-web_01"), "rg-web_01");
        assert_eq!(sh("W. Europe Standard Time"), "'W. Europe Standard Time'");
        assert_eq!(sh("it's"), r"'it'\''s'");
        assert_eq!(sh("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(sh(""), "''");
    }
}
