//! Azure Resource Manager reads with our own bearer header (loopback fakes are plain http).

use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use serde::de::DeserializeOwned;
use url::Url;

use super::resource_graph::{GraphError, default_http_client, status_error};

/// Reads ARM resources: `GET {endpoint}{resource id}?api-version=…`.
#[derive(Clone)]
pub struct ArmClient {
    endpoint: Url,
    credential: Arc<dyn TokenCredential>,
    scope: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for ArmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArmClient").field("endpoint", &self.endpoint.as_str()).finish_non_exhaustive()
    }
}

impl ArmClient {
    pub fn new(endpoint: Url, credential: Arc<dyn TokenCredential>, scope: String) -> Self {
        Self { endpoint, credential, scope, http: default_http_client() }
    }

    /// Reads one resource as JSON. Errors reuse the Resource Graph classification (throttling,
    /// 403, transport), which is ARM's own.
    pub async fn get<T: DeserializeOwned>(&self, resource_id: &str, api_version: &str) -> Result<T, GraphError> {
        let mut url = self.endpoint.clone();
        url.set_path(&format!(
            "{}/{}",
            self.endpoint.path().trim_end_matches('/'),
            resource_id.trim_start_matches('/')
        ));
        url.set_query(Some(&format!("api-version={api_version}")));
        let token = self.credential.get_token(&[self.scope.as_str()], None).await.map_err(GraphError::Credential)?;
        let response = self.http.get(url).bearer_auth(token.token.secret()).send().await?;
        let status = response.status();
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            let wait =
                response.headers().get("retry-after").and_then(|v| v.to_str().ok()?.trim().parse().ok()).unwrap_or(30);
            return Err(GraphError::Throttled { retry_after: std::time::Duration::from_secs(wait) });
        }
        let bytes = response.bytes().await?;
        if !status.is_success() {
            return Err(status_error(status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| GraphError::Decode(e.to_string()))
    }
}
