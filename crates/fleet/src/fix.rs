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

/// `az vm update --set osProfile.<os>Configuration.patchSettings.<key>=<value> …` for an Azure
/// VM; for an Arc machine the same property through `az resource update`.
pub(crate) fn patch_settings(m: &Machine, settings: &[(&str, &str)]) -> String {
    let base = format!("osProfile.{}.patchSettings", os_configuration(m.os));
    let sets: Vec<String> = settings.iter().map(|(k, v)| sh(&format!("{base}.{k}={v}"))).collect();
    match m.kind {
        MachineKind::AzureVm => format!(
            "az vm update --subscription {} --resource-group {} --name {} --set {}",
            sh(&m.subscription),
            sh(&m.resource_group),
            sh(&m.name),
            sets.join(" ")
        ),
        MachineKind::Arc => {
            let sets: Vec<String> =
                settings.iter().map(|(k, v)| sh(&format!("properties.{base}.{k}={v}"))).collect();
            format!("az resource update --ids {} --set {}", sh(&m.id), sets.join(" "))
        }
    }
}

/// Customer Managed Schedules: the only patch mode under which Update Manager honours a schedule.
pub(crate) fn customer_managed_schedules(m: &Machine) -> String {
    patch_settings(
        m,
        &[
            ("patchMode", "AutomaticByPlatform"),
            ("automaticByPlatformSettings.bypassPlatformSafetyChecksOnUserSchedule", "true"),
        ],
    )
}

pub(crate) fn periodic_assessment(m: &Machine) -> String {
    patch_settings(m, &[("assessmentMode", "AutomaticByPlatform")])
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

/// Updates maintenance window settings of a configuration.
pub(crate) fn update_window(c: &Configuration, settings: &[(&str, &str)]) -> String {
    let args: Vec<String> = settings.iter().map(|(k, v)| format!("--{k} {}", sh(v))).collect();
    format!(
        "az maintenance configuration update --subscription {} --resource-group {} --resource-name {} {}",
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
    update_window(c, &[(param, &format!("classifications-to-include={}", wanted.join(" ")))])
}

/// Narrows a dynamic scope to a subset of resource groups (the rest go to a second scope).
pub(crate) fn narrow_scope(s: &DynamicScope, resource_groups: &[String]) -> String {
    format!(
        "az maintenance assignment create-or-update-subscription --subscription {} --name {} \
         --maintenance-configuration-id {} --filter-resource-groups {}",
        sh(&s.subscription),
        sh(&s.name),
        sh(&s.configuration),
        resource_groups.iter().map(|r| sh(r)).collect::<Vec<_>>().join(" ")
    )
}

pub(crate) fn start_vm(m: &Machine) -> String {
    match m.kind {
        MachineKind::AzureVm => format!(
            "az vm start --subscription {} --resource-group {} --name {}",
            sh(&m.subscription),
            sh(&m.resource_group),
            sh(&m.name)
        ),
        MachineKind::Arc => format!(
            "az connectedmachine show --subscription {} --resource-group {} --name {} --query status",
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
             --maximum-duration PT2H --reboot-setting IfRequired",
            sh(&m.subscription),
            sh(&m.resource_group),
            sh(&m.name)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_commands_pasteable() {
        assert_eq!(sh("rg-web_01"), "rg-web_01");
        assert_eq!(sh("W. Europe Standard Time"), "'W. Europe Standard Time'");
        assert_eq!(sh("it's"), r"'it'\''s'");
        assert_eq!(sh("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(sh(""), "''");
    }
}
