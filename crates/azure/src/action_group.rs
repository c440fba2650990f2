//! Azure Monitor action groups as a channel: the group is read through ARM and the rich summary
//! goes to its email receivers (over SMTP) and its webhook receivers (a payload compatible with
//! the common alert schema, the summary attached), so teams keep managing recipients in Azure.
//! Receiver types that cannot be served this way are reported, never silently dropped.

use serde::Deserialize;
use serde_json::{Map, Value};

use patchwatch_model::{
    resource_id::ResourceId,
    routing::{ChannelSpec, Routing},
};

use crate::arm::ArmClient;

/// The api-version the action group is read with.
pub const API_VERSION: &str = "2023-01-01";

#[derive(Debug, Deserialize)]
pub struct ActionGroup {
    #[serde(default)]
    pub name: String,
    pub properties: Properties,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Properties {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub email_receivers: Vec<EmailReceiver>,
    #[serde(default)]
    pub webhook_receivers: Vec<WebhookReceiver>,
    /// Every other receiver array (SMS, voice, app push, ITSM, runbooks, logic apps, …).
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailReceiver {
    pub name: String,
    pub email_address: String,
    #[serde(default)]
    pub status: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookReceiver {
    pub name: String,
    pub service_uri: String,
    #[serde(default)]
    pub use_aad_auth: Option<bool>,
}

impl ActionGroup {
    /// Email receivers that are not disabled.
    pub fn emails(&self) -> Vec<&EmailReceiver> {
        self.properties
            .email_receivers
            .iter()
            .filter(|r| !r.status.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("disabled")))
            .collect()
    }

    /// Webhook receivers patchwatch can call (secure webhooks need an Entra token for the
    /// receiver's own app, which patchwatch does not hold).
    pub fn webhooks(&self) -> Vec<&WebhookReceiver> {
        self.properties.webhook_receivers.iter().filter(|w| w.use_aad_auth != Some(true)).collect()
    }

    /// What this group holds that patchwatch cannot deliver to, e.g. `smsReceivers (2)`.
    pub fn unsupported(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .properties
            .other
            .iter()
            .filter(|(k, _)| k.ends_with("Receivers"))
            .filter_map(|(k, v)| v.as_array().filter(|a| !a.is_empty()).map(|a| format!("{k} ({})", a.len())))
            .collect();
        for w in self.properties.webhook_receivers.iter().filter(|w| w.use_aad_auth == Some(true)) {
            out.push(format!("secure webhook {:?} (Entra ID authentication)", w.name));
        }
        out.sort();
        out
    }
}

/// For `check-config --azure`: reads every action group the routing names and says what each
/// can and cannot receive.
pub async fn check(routing: &Routing, arm: &ArmClient) -> Vec<String> {
    let mut out = Vec::new();
    for (name, spec) in &routing.channels {
        let ChannelSpec::ActionGroup { id } = spec else { continue };
        let id = match ResourceId::parse(id) {
            Ok(id) => id,
            Err(e) => {
                out.push(format!("channel {name:?}: action group id is invalid: {e}"));
                continue;
            }
        };
        match arm.get::<ActionGroup>(&id, API_VERSION).await {
            Ok(g) => {
                out.push(format!(
                    "channel {name:?}: action group {}: {} email and {} webhook receivers served",
                    g.name,
                    g.emails().len(),
                    g.webhooks().len()
                ));
                let unsupported = g.unsupported();
                if !unsupported.is_empty() {
                    out.push(format!(
                        "channel {name:?}: warning: not served by patchwatch: {}",
                        unsupported.join(", ")
                    ));
                }
                if g.properties.enabled == Some(false) {
                    out.push(format!("channel {name:?}: warning: the action group is disabled"));
                }
            }
            Err(e) => out.push(format!("channel {name:?}: error: cannot read {id}: {e}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn receivers_are_split_into_served_and_reported() {
        let group: ActionGroup = serde_json::from_value(json!({
            "name": "ag", "properties": { "groupShortName": "ag", "enabled": true,
              "emailReceivers": [ { "name": "ops", "emailAddress": "ops@example.com", "status": "Enabled" },
                                  { "name": "old", "emailAddress": "old@example.com", "status": "Disabled" } ],
              "smsReceivers": [ { "name": "s", "countryCode": "1", "phoneNumber": "5555550100" } ],
              "webhookReceivers": [ { "name": "hook", "serviceUri": "https://example.invalid/hook" },
                                    { "name": "secure hook", "serviceUri": "https://example.invalid/h2", "useAadAuth": true } ],
              "itsmReceivers": [], "voiceReceivers": [] } })).unwrap();
        assert_eq!(group.emails().len(), 1);
        assert_eq!(group.webhooks().len(), 1);
        assert_eq!(
            group.unsupported(),
            ["secure webhook \"secure hook\" (Entra ID authentication)", "smsReceivers (1)"]
        );
    }
}
