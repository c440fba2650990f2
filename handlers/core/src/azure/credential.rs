//! Picks the Azure credential explicitly: managed identity where the platform provides one,
//! the developer's own `az`/`azd` login otherwise. No chain in production (rust-style §6).

use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_identity::{
    DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
};

use crate::config::Config;

/// Builds the credential for `config`. Does no network I/O: tokens are fetched on first use.
pub fn from_config(config: &Config) -> azure_core::Result<Arc<dyn TokenCredential>> {
    if config.managed_identity {
        let options = ManagedIdentityCredentialOptions {
            user_assigned_id: config.azure_client_id.clone().map(UserAssignedId::ClientId),
            ..Default::default()
        };
        Ok(ManagedIdentityCredential::new(Some(options))?)
    } else {
        Ok(DeveloperToolsCredential::new(None)?)
    }
}
