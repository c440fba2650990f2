//! Azure Resource Manager calls with our own bearer header (loopback fakes are plain http):
//! reads, actions (`POST …/start`), PUTs, DELETEs, and long-running operations polled to completion.

use std::{sync::Arc, time::Duration};

use azure_core::credentials::TokenCredential;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use crate::http::{AzureError, THROTTLE_RETRY, default_http_client, retry_after, status_error};
use patchwatch_model::resource_id::ResourceId;

/// Compute API version for VM actions (start, deallocate, installPatches).
/// ARM's waits are honoured up to ten minutes; a longer one becomes "retry the event later".
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

pub const COMPUTE_API: &str = "2024-07-01";
/// Arc (HybridCompute) installPatches: the version Microsoft's docs use; no GA version is documented.
pub const HYBRID_COMPUTE_API: &str = "2020-08-15-preview";
/// `ApplyUpdates_CreateOrUpdateOrCancel`, as the Update Manager docs call it.
pub const MAINTENANCE_CANCEL_API: &str = "2023-09-01-preview";
/// Maintenance configuration reads.
pub const MAINTENANCE_API: &str = "2023-04-01";

/// Reads and writes ARM resources: `{endpoint}{resource id}?api-version=…`.
#[derive(Clone)]
pub struct ArmClient {
    endpoint: Url,
    credential: Arc<dyn TokenCredential>,
    scope: String,
    http: reqwest::Client,
    /// Smallest wait between polls of a long-running operation (tests shorten it).
    pub min_poll: Duration,
}

impl std::fmt::Debug for ArmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArmClient").field("endpoint", &self.endpoint.as_str()).finish_non_exhaustive()
    }
}

/// An ARM answer: status, the long-running-operation headers, and the JSON body (if any).
#[derive(Debug, Clone)]
pub struct ArmResponse {
    pub status: u16,
    /// Where to poll a long-running operation (`Location`, else `Azure-AsyncOperation`).
    pub poll_url: Option<String>,
    /// The poll URL is an `Azure-AsyncOperation` status monitor (no `Location` was given).
    pub async_operation: bool,
    pub retry_after: Option<Duration>,
    pub body: Value,
}

impl ArmClient {
    pub fn new(endpoint: Url, credential: Arc<dyn TokenCredential>, scope: String) -> Self {
        Self { endpoint, credential, scope, http: default_http_client(), min_poll: Duration::from_secs(5) }
    }

    /// `{endpoint}/{segments…}[/{action}]?api-version=…`, each segment percent-encoded on its
    /// own (a validated id has no `/`, `.`, `..` or `%` segment to begin with). The result is
    /// checked to stay on the endpoint and to name exactly the id's segments before any token
    /// is attached.
    fn url(&self, id: &ResourceId, action: Option<&str>, api_version: &str) -> Result<Url, AzureError> {
        let refuse = |why: &str| AzureError::Decode(format!("ARM URL for {id} refused: {why}"));
        let mut url = self.endpoint.clone();
        url.set_query(None);
        url.set_fragment(None);
        let base: Vec<String> =
            url.path_segments().map(|s| s.filter(|p| !p.is_empty()).map(str::to_owned).collect()).unwrap_or_default();
        let wanted: Vec<&str> = id.segments().chain(action).collect();
        {
            let mut path = url.path_segments_mut().map_err(|()| refuse("the ARM endpoint cannot have a path"))?;
            path.clear();
            path.extend(base.iter().map(String::as_str).chain(wanted.iter().copied()));
        }
        url.set_query(Some(&format!("api-version={api_version}")));
        // The host cannot change (the URL is the endpoint's, with a new path); what could is
        // the path, if a segment were decoded or re-split: it must name exactly these segments.
        let decoded: Vec<String> = url
            .path_segments()
            .map(|s| s.map(|p| percent_encoding::percent_decode_str(p).decode_utf8_lossy().into_owned()).collect())
            .unwrap_or_default();
        let expected: Vec<String> = base.iter().cloned().chain(wanted.iter().map(|s| (*s).to_owned())).collect();
        if decoded != expected {
            return Err(refuse("it does not name the resource on the ARM endpoint"));
        }
        Ok(url)
    }

    /// Reads one resource as JSON. Errors reuse the Resource Graph classification (throttling,
    /// 403, transport), which is ARM's own.
    pub async fn get<T: DeserializeOwned>(&self, id: &ResourceId, api_version: &str) -> Result<T, AzureError> {
        let r = self.request(Method::GET, self.url(id, None, api_version)?, None).await?;
        serde_json::from_value(r.body).map_err(|e| AzureError::Decode(e.to_string()))
    }

    /// `POST {resource id}/{action}` (for example `start`), body optional. 200 and 202 both succeed.
    pub async fn action(
        &self,
        id: &ResourceId,
        action: &'static str,
        api_version: &str,
        body: Option<&Value>,
    ) -> Result<ArmResponse, AzureError> {
        self.request(Method::POST, self.url(id, Some(action), api_version)?, body).await
    }

    /// `PUT {resource id}` with a JSON body, given up after `within` (a deadline that matters).
    pub async fn put(
        &self,
        id: &ResourceId,
        api_version: &str,
        body: &Value,
        within: Option<Duration>,
    ) -> Result<ArmResponse, AzureError> {
        self.send(Method::PUT, self.url(id, None, api_version)?, Some(body), within).await
    }

    /// `DELETE {resource id}`. 200, 202 and 204 succeed; any other status (a 404 too) is an
    /// [`AzureError::Status`] for the caller to judge.
    pub async fn delete(&self, id: &ResourceId, api_version: &str) -> Result<ArmResponse, AzureError> {
        self.request(Method::DELETE, self.url(id, None, api_version)?, None).await
    }

    /// Polls a long-running operation until it answers 200 with its result, or `budget` runs
    /// out. Only URLs on the ARM endpoint's own host are followed: the bearer token goes nowhere else.
    pub async fn poll(&self, first: &ArmResponse, budget: Duration) -> Result<Value, AzureError> {
        if first.status != 202 {
            return Ok(first.body.clone());
        }
        let url = first.poll_url.clone().ok_or_else(|| AzureError::Decode("202 without a Location header".into()))?;
        let url = Url::parse(&url).map_err(|e| AzureError::Decode(format!("Location {url:?}: {e}")))?;
        if url.scheme() != self.endpoint.scheme()
            || url.host_str() != self.endpoint.host_str()
            || url.port_or_known_default() != self.endpoint.port_or_known_default()
        {
            return Err(AzureError::Decode(format!(
                "Location points at {}, not the ARM endpoint; not followed",
                url.host_str().unwrap_or("?")
            )));
        }
        let deadline = tokio::time::Instant::now() + budget;
        let mut wait = first.retry_after.unwrap_or(self.min_poll).max(self.min_poll);
        loop {
            if tokio::time::Instant::now() + wait > deadline {
                return Err(AzureError::Decode(format!("operation still running after {}s", budget.as_secs())));
            }
            tokio::time::sleep(wait).await;
            let r = self.request(Method::GET, url.clone(), None).await?;
            // A `Location` answers 202 until done, then the result. An `Azure-AsyncOperation`
            // answers 200 throughout, with a status that ends Succeeded, Failed or Canceled.
            let status = r.body["status"].as_str().map(str::to_ascii_lowercase);
            let running = r.status == 202
                || (first.async_operation
                    && !status
                        .as_deref()
                        .is_some_and(|s| ["succeeded", "failed", "canceled", "cancelled"].contains(&s)));
            if !running {
                return Ok(match (first.async_operation, r.body.pointer("/properties/output")) {
                    (true, Some(output)) => output.clone(),
                    _ => r.body,
                });
            }
            wait = r.retry_after.unwrap_or(self.min_poll).max(self.min_poll);
        }
    }

    async fn request(&self, method: Method, url: Url, body: Option<&Value>) -> Result<ArmResponse, AzureError> {
        self.send(method, url, body, None).await
    }

    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        within: Option<Duration>,
    ) -> Result<ArmResponse, AzureError> {
        tracing::debug!(%method, path = url.path(), "ARM request.");
        let token = self.credential.get_token(&[self.scope.as_str()], None).await.map_err(AzureError::Credential)?;
        let mut request = self.http.request(method, url).bearer_auth(token.token.secret());
        if let Some(t) = within {
            request = request.timeout(t.max(Duration::from_secs(1)));
        }
        request = match body {
            Some(b) => request.json(b),
            // ARM wants a body length on POST actions even without a body.
            None => request.header(reqwest::header::CONTENT_LENGTH, "0"),
        };
        let response = request.send().await?;
        let status = response.status();
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let wait = retry_after(response.headers(), MAX_RETRY_AFTER);
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(AzureError::Throttled { retry_after: wait.unwrap_or(THROTTLE_RETRY) });
        }
        let location = header("location");
        let async_operation = location.is_none() && header("azure-asyncoperation").is_some();
        let poll_url = location.or_else(|| header("azure-asyncoperation"));
        let bytes = response.bytes().await?;
        if !status.is_success() {
            return Err(status_error(status, &bytes));
        }
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|e| AzureError::Decode(e.to_string()))?
        };
        Ok(ArmResponse { status: status.as_u16(), poll_url, async_operation, retry_after: wait, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct NoCredential;

    #[async_trait::async_trait]
    impl TokenCredential for NoCredential {
        async fn get_token(
            &self,
            _: &[&str],
            _: Option<azure_core::credentials::TokenRequestOptions<'_>>,
        ) -> azure_core::Result<azure_core::credentials::AccessToken> {
            Err(azure_core::Error::with_message(azure_core::error::ErrorKind::Credential, "no token in unit tests"))
        }
    }

    fn client(endpoint: &str) -> ArmClient {
        ArmClient::new(endpoint.parse().unwrap(), Arc::new(NoCredential), "scope".to_owned())
    }

    const VM: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg(1)/providers/Microsoft.Compute/virtualMachines/vm.web-01";

    #[test]
    fn urls_are_the_endpoint_plus_the_ids_segments() {
        let id = ResourceId::parse(VM).unwrap();
        let url = client("https://management.azure.com").url(&id, Some("start"), COMPUTE_API).unwrap();
        assert_eq!(url.as_str(), format!("https://management.azure.com{VM}/start?api-version={COMPUTE_API}"));
        // An endpoint with a path (a proxy, a fake) keeps it, with or without a trailing slash.
        for endpoint in ["http://127.0.0.1:8080/arm", "http://127.0.0.1:8080/arm/"] {
            let url = client(endpoint).url(&id, None, MAINTENANCE_API).unwrap();
            assert_eq!(url.path(), format!("/arm{VM}"), "{endpoint}");
            assert_eq!(url.query(), Some(format!("api-version={MAINTENANCE_API}").as_str()));
        }
    }
}
