//! `resources` rows (machines and maintenance configurations) and the configuration
//! assignments in `maintenanceresources`, as ARG returns them unprojected.

use serde_json::{Map, Value, json};

use super::{
    Plan, PlannedConfig,
    machines::FleetMachine,
    spec::{Cfg, Classes, SCOPES, Sub},
};
use crate::resource_row;

impl Plan {
    /// A VM or Arc machine with its patch settings. The run's machines keep the row the run
    /// writes (its `PatchOwner`/`Environment` tags and states) with the fleet's fields added.
    pub(crate) fn machine_row(&self, fm: &FleetMachine) -> Value {
        let mut row = if fm.in_run { resource_row(&fm.m) } else { self.own_row(fm) };
        if let Some(tags) = row["tags"].as_object_mut() {
            for (k, v) in &fm.tags {
                tags.insert((*k).to_owned(), json!(v));
            }
        }
        let os_key = if fm.m.windows { "windowsConfiguration" } else { "linuxConfiguration" };
        row["properties"]["osProfile"] =
            json!({ "computerName": fm.name, os_key: { "patchSettings": patch_settings(fm) } });
        row
    }

    fn own_row(&self, fm: &FleetMachine) -> Value {
        let m = &fm.m;
        if m.arc {
            let os = if m.windows { "windows" } else { "linux" };
            let status = if fm.off { "Disconnected" } else { "Connected" };
            json!({ "id": m.id, "name": fm.name, "type": "microsoft.hybridcompute/machines", "subscriptionId": m.sub,
                    "resourceGroup": m.rg, "location": fm.location, "tags": {},
                    "properties": { "status": status, "osName": os, "osType": os } })
        } else {
            let power = if fm.off { "PowerState/deallocated" } else { "PowerState/running" };
            json!({ "id": m.id, "name": fm.name, "type": "microsoft.compute/virtualmachines", "subscriptionId": m.sub,
                    "resourceGroup": m.rg, "location": fm.location, "tags": {},
                    "properties": { "storageProfile": { "osDisk": { "osType": m.os() } },
                                    "extended": { "instanceView": { "powerState": { "code": power } } } } })
        }
    }

    /// A maintenance configuration (`resources`, type `microsoft.maintenance/maintenanceconfigurations`).
    pub(crate) fn configuration_row(&self, c: &PlannedConfig) -> Value {
        let (windows, linux): (&[&str], &[&str]) = match c.classes {
            Classes::Usual => {
                (&["Critical", "Security", "UpdateRollup", "Definition", "Updates"], &["Critical", "Security", "Other"])
            }
            Classes::NoSecurity => (&["Definition", "UpdateRollup"], &["Other"]),
        };
        let kb_exclude: &[&str] = if c.cfg == Cfg::DataMonthly { &["5031364"] } else { &[] };
        let w = &c.window;
        json!({
            "id": c.id, "name": c.name, "type": "microsoft.maintenance/maintenanceconfigurations",
            "subscriptionId": self.sub(Sub::Home), "resourceGroup": "rg-patching", "location": "westeurope",
            "tags": { "PatchOwner": c.owner },
            "properties": {
                "maintenanceScope": "InGuestPatch", "extensionProperties": { "InGuestPatchMode": "User" }, "visibility": "Custom",
                "maintenanceWindow": { "startDateTime": w.start_text(), "expirationDateTime": w.expiration_text(),
                                       "duration": w.duration_text(), "timeZone": w.zone.windows_name(), "recurEvery": w.recur.text() },
                "installPatches": {
                    "rebootSetting": c.reboot,
                    "windowsParameters": { "classificationsToInclude": windows, "kbNumbersToInclude": [], "kbNumbersToExclude": kb_exclude },
                    "linuxParameters": { "classificationsToInclude": linux, "packageNameMasksToInclude": [], "packageNameMasksToExclude": [] }
                }
            }
        })
    }

    /// A static assignment: `<machine id>/providers/Microsoft.Maintenance/configurationAssignments/<name>`.
    pub(crate) fn static_assignment(&self, fm: &FleetMachine, cfg: Cfg) -> Value {
        let c = self.config(cfg);
        let name = c.name.to_ascii_lowercase();
        json!({
            "id": format!("{}/providers/Microsoft.Maintenance/configurationAssignments/{name}", fm.m.id), "name": name,
            "type": "microsoft.maintenance/configurationassignments", "subscriptionId": fm.m.sub, "resourceGroup": fm.m.rg,
            "location": fm.location, "tags": {},
            "properties": { "maintenanceConfigurationId": c.id, "resourceId": fm.m.id }
        })
    }

    /// A dynamic scope: a subscription-level assignment with a filter.
    pub(crate) fn scope_row(&self, s: usize) -> Value {
        let spec = &SCOPES[s];
        let sub = self.sub(spec.sub);
        let tags: Map<String, Value> = spec.tags.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
        json!({
            "id": self.scope_id(s), "name": spec.name, "type": "microsoft.maintenance/configurationassignments",
            "subscriptionId": sub, "resourceGroup": "", "location": "global", "tags": {},
            "properties": {
                "maintenanceConfigurationId": self.config(spec.config).id, "resourceId": format!("/subscriptions/{sub}"),
                "filter": { "resourceTypes": spec.types, "resourceGroups": spec.groups, "locations": spec.locations,
                            "osTypes": ["Windows", "Linux"],
                            "tagSettings": { "tags": tags, "filterOperator": if spec.all { "All" } else { "Any" } } }
            }
        })
    }
}

/// `patchSettings`: Arc machines have no platform settings.
fn patch_settings(fm: &FleetMachine) -> Value {
    let s = fm.settings;
    let mut v = json!({});
    if let Some(mode) = s.patch_mode {
        v["patchMode"] = json!(mode);
    }
    if let Some(mode) = s.assessment_mode {
        v["assessmentMode"] = json!(mode);
    }
    if !fm.m.arc && s.patch_mode == Some(super::spec::ABP) {
        let mut platform = json!({ "rebootSetting": "IfRequired" });
        if let Some(bypass) = s.bypass {
            platform["bypassPlatformSafetyChecksOnUserSchedule"] = json!(bypass);
        }
        v["automaticByPlatformSettings"] = platform;
    }
    v
}
