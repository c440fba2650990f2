//! Picks the Azure credential explicitly: managed identity where the platform provides one; a
//! service principal's secret (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`) where
//! there is none (AWS Lambda); the developer's own `az`/`azd` login otherwise. No chain in
//! production (rust-style §6).

use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_identity::{
    ClientSecretCredential, DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId,
};

use patchwatch_engine::config::Config;

/// Builds the credential for `config`. Does no network I/O: tokens are fetched on first use.
pub fn from_config(config: &Config) -> azure_core::Result<Arc<dyn TokenCredential>> {
    if config.managed_identity {
        let options = ManagedIdentityCredentialOptions {
            user_assigned_id: config.azure_client_id.clone().map(UserAssignedId::ClientId),
            ..Default::default()
        };
        Ok(ManagedIdentityCredential::new(Some(options))?)
    } else if let (Some(tenant), Some(client), Some(secret)) =
        (&config.azure_tenant_id, &config.azure_client_id, &config.azure_client_secret)
    {
        Ok(ClientSecretCredential::new(tenant, client.clone(), secret.expose().to_owned().into(), None)?)
    } else {
        Ok(DeveloperToolsCredential::new(None)?)
    }
}
