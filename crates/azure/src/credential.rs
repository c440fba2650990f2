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

use patchwatch_model::secret::Secret;

/// Which identity patchwatch is, as configuration says.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    /// The platform provides a managed identity (Functions, App Service).
    pub managed_identity: bool,
    pub tenant_id: Option<String>,
    /// A user-assigned managed identity's client id, or the service principal's.
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
}

/// Builds the credential for `identity`. Does no network I/O: tokens are fetched on first use.
pub fn from_identity(identity: &Identity) -> azure_core::Result<Arc<dyn TokenCredential>> {
    if identity.managed_identity {
        let options = ManagedIdentityCredentialOptions {
            user_assigned_id: identity.client_id.clone().map(UserAssignedId::ClientId),
            ..Default::default()
        };
        Ok(ManagedIdentityCredential::new(Some(options))?)
    } else if let (Some(tenant), Some(client), Some(secret)) =
        (&identity.tenant_id, &identity.client_id, &identity.client_secret)
    {
        Ok(ClientSecretCredential::new(tenant, client.clone(), secret.expose().to_owned().into(), None)?)
    } else {
        Ok(DeveloperToolsCredential::new(None)?)
    }
}
