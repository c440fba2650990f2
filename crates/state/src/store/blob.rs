//! The Azure Blob Storage backend, through the official `azure_storage_blob` crate.
//!
//! Atomicity comes from conditional requests: create is `If-None-Match: *` (409/412 when the
//! blob exists), compare-and-swap is `If-Match: <etag>` (412 when it changed). Authentication
//! is a SAS token in the URL, or the Azure credential (managed identity) for an https URL.

use std::sync::Arc;

use async_trait::async_trait;
use azure_core::{
    credentials::TokenCredential,
    error::ErrorKind,
    http::{ClientOptions, Etag, ExponentialRetryOptions, RequestContent, RetryOptions, StatusCode, Url},
};
use azure_storage_blob::{
    BlobContainerClient, BlobContainerClientOptions,
    models::{BlobClientDeleteOptions, BlobClientUploadOptions, BlobContainerClientListBlobsOptions},
};
use futures::TryStreamExt;

use super::{StateError, StateStore, Versioned};
use crate::keys::check as check_key;

/// The URL without its query (a SAS token is a secret).
pub fn redact(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

pub struct BlobStore {
    container: BlobContainerClient,
    display: String,
    /// The SAS query, scrubbed from any error text.
    secret_query: Option<String>,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStore").field("container", &self.display).finish_non_exhaustive()
    }
}

impl BlobStore {
    /// `url` is a container URL with a SAS token, or an https container URL used with `credential`.
    pub fn new(url: &str, credential: Option<Arc<dyn TokenCredential>>) -> Result<Self, String> {
        let display = redact(url).to_owned();
        let parsed = Url::parse(url).map_err(|e| format!("{display}: {e}"))?;
        let has_sas = parsed.query_pairs().any(|(k, _)| k == "sig");
        let credential = if has_sas {
            None
        } else {
            if parsed.scheme() != "https" {
                return Err(format!(
                    "{display}: without a SAS token the container URL must use https (managed identity)"
                ));
            }
            Some(
                credential
                    .ok_or_else(|| format!("{display}: no Azure credential for a container URL without a SAS token"))?,
            )
        };
        if parsed.path().trim_matches('/').is_empty() {
            return Err(format!(
                "{display}: the URL must name a container, e.g. https://<account>.blob.core.windows.net/patchwatch"
            ));
        }
        // A few quick retries: an event must answer Event Grid within 30 s, and "retry later" is
        // the right answer to a longer outage, not a minute of waiting.
        let retry = RetryOptions::exponential(ExponentialRetryOptions {
            initial_delay: azure_core::time::Duration::milliseconds(200),
            max_retries: 3,
            max_total_elapsed: azure_core::time::Duration::seconds(10),
            max_delay: azure_core::time::Duration::seconds(2),
        });
        let options = BlobContainerClientOptions {
            client_options: ClientOptions { retry, ..Default::default() },
            ..Default::default()
        };
        let container = BlobContainerClient::new(parsed.clone(), credential, Some(options))
            .map_err(|e| format!("{display}: {e}"))?;
        Ok(Self { container, display, secret_query: parsed.query().map(str::to_owned) })
    }

    fn unavailable(&self, e: &azure_core::Error) -> StateError {
        let mut text = e.to_string();
        if let Some(q) = &self.secret_query {
            text = text.replace(q.as_str(), "***");
        }
        StateError::Unavailable(format!("{}: {}", self.display, scrub_sig(&text)))
    }
}

fn status(e: &azure_core::Error) -> Option<StatusCode> {
    match e.kind() {
        ErrorKind::HttpResponse { status, .. } => Some(*status),
        _ => None,
    }
}

fn content(data: &[u8]) -> RequestContent<azure_core::Bytes, azure_core::http::NoFormat> {
    RequestContent::from(data.to_vec())
}

#[async_trait]
impl StateStore for BlobStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StateError> {
        check_key(key)?;
        match self.container.blob_client(key).download(None).await {
            Ok(response) => {
                let etag = response.properties.etag.clone().map(|e| e.to_string()).unwrap_or_default();
                let data = response.body.collect().await.map_err(|e| self.unavailable(&e))?;
                Ok(Some(Versioned { data: data.to_vec(), etag }))
            }
            Err(e) if status(&e) == Some(StatusCode::NotFound) && !container_missing(&e) => Ok(None),
            Err(e) => Err(self.unavailable(&e)),
        }
    }

    async fn create(&self, key: &str, data: &[u8]) -> Result<Option<String>, StateError> {
        check_key(key)?;
        let options = BlobClientUploadOptions::default().if_not_exists();
        match self.container.blob_client(key).upload(content(data), Some(options)).await {
            Ok(r) => Ok(Some(r.etag.map(|e| e.to_string()).unwrap_or_default())),
            Err(e) if matches!(status(&e), Some(StatusCode::Conflict | StatusCode::PreconditionFailed)) => Ok(None),
            Err(e) => Err(self.unavailable(&e)),
        }
    }

    async fn replace(&self, key: &str, data: &[u8], etag: &str) -> Result<Option<String>, StateError> {
        check_key(key)?;
        let options = BlobClientUploadOptions { if_match: Some(Etag::from(etag.to_owned())), ..Default::default() };
        match self.container.blob_client(key).upload(content(data), Some(options)).await {
            Ok(r) => Ok(Some(r.etag.map(|e| e.to_string()).unwrap_or_default())),
            Err(e) if matches!(status(&e), Some(StatusCode::PreconditionFailed | StatusCode::Conflict)) => Ok(None),
            Err(e) if status(&e) == Some(StatusCode::NotFound) && !container_missing(&e) => Ok(None),
            Err(e) => Err(self.unavailable(&e)),
        }
    }

    async fn delete(&self, key: &str, etag: Option<&str>) -> Result<bool, StateError> {
        check_key(key)?;
        let options =
            BlobClientDeleteOptions { if_match: etag.map(|e| Etag::from(e.to_owned())), ..Default::default() };
        match self.container.blob_client(key).delete(Some(options)).await {
            Ok(_) => Ok(true),
            Err(e) if status(&e) == Some(StatusCode::PreconditionFailed) => Ok(false),
            Err(e) if status(&e) == Some(StatusCode::NotFound) && !container_missing(&e) => Ok(false),
            Err(e) => Err(self.unavailable(&e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StateError> {
        let options = BlobContainerClientListBlobsOptions { prefix: Some(prefix.to_owned()), ..Default::default() };
        let mut pager = self.container.list_blobs(Some(options)).map_err(|e| self.unavailable(&e))?;
        let mut out = Vec::new();
        while let Some(item) = pager.try_next().await.map_err(|e| self.unavailable(&e))? {
            if let Some(name) = item.name {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    fn describe(&self) -> String {
        self.display.clone()
    }
}

/// Removes any `sig=` value (a SAS signature) from text.
fn scrub_sig(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("sig=") {
        out.push_str(&rest[..at + 4]);
        out.push_str("***");
        rest = &rest[at + 4..];
        let end = rest.find(|c: char| c == '&' || c.is_whitespace() || c == '"' || c == '\'').unwrap_or(rest.len());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// A missing container is a deployment problem, not an absent key.
fn container_missing(e: &azure_core::Error) -> bool {
    matches!(e.kind(), ErrorKind::HttpResponse { error_code: Some(code), .. } if code == "ContainerNotFound")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sas_signatures_are_scrubbed() {
        assert_eq!(
            scrub_sig("GET https://a/b?sv=1&sig=abc%2Bdef&se=2 failed"),
            "GET https://a/b?sv=1&sig=***&se=2 failed"
        );
        assert_eq!(redact("https://a/c?sig=x"), "https://a/c");
        let err = crate::store::open("HTTPX://a/c?sig=topsecret", None).unwrap_err().to_string();
        assert!(!err.contains("topsecret"), "{err}");
    }
}
