//! A small key/value store with atomic create and compare-and-swap, for the delivery ledger and
//! run history. Backends: a directory (`file:///…`) and an Azure Blob container.

pub mod blob;
pub mod file;

use std::{fmt, sync::Arc};

use async_trait::async_trait;

/// A stored value and the version it was read at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned {
    pub data: Vec<u8>,
    pub etag: String,
}

/// Why the store could not answer. Every variant means "try again later": a store that cannot
/// be reached must never turn into "done".
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state key {0:?} is invalid")]
    InvalidKey(String),
    #[error("state store unavailable: {0}")]
    Unavailable(String),
}

/// The operations the ledger needs; every write is conditional.
#[async_trait]
pub trait StateStore: Send + Sync + fmt::Debug {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StateError>;
    /// Creates `key` only if it does not exist. `Ok(None)` when it already exists.
    async fn create(&self, key: &str, data: &[u8]) -> Result<Option<String>, StateError>;
    /// Replaces `key` only if its version is still `etag`. `Ok(None)` on a conflict.
    async fn replace(&self, key: &str, data: &[u8], etag: &str) -> Result<Option<String>, StateError>;
    /// Deletes `key` (only at `etag` when given). `Ok(false)` if it was absent or changed.
    async fn delete(&self, key: &str, etag: Option<&str>) -> Result<bool, StateError>;
    /// Keys starting with `prefix`, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StateError>;
    /// Where the state lives, for logs (no secrets).
    fn describe(&self) -> String;
}

/// Why a `PATCHWATCH_STATE` URL names no usable store (the URL is shown with any SAS redacted).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OpenError(String);

/// Opens the store a `PATCHWATCH_STATE` URL names.
pub fn open(
    url: &str,
    credential: Option<Arc<dyn azure_core::credentials::TokenCredential>>,
) -> Result<Arc<dyn StateStore>, OpenError> {
    if let Some(path) = url.strip_prefix("file://") {
        if path.is_empty() || !path.starts_with('/') {
            return Err(OpenError(format!(
                "{url:?}: a file URL needs an absolute path, e.g. file:///var/lib/patchwatch"
            )));
        }
        return Ok(Arc::new(file::FileStore::new(path)));
    }
    let scheme = url.split("://").next().unwrap_or_default().to_ascii_lowercase();
    if scheme == "https" || scheme == "http" {
        return blob::BlobStore::new(url, credential).map(|s| Arc::new(s) as Arc<dyn StateStore>).map_err(OpenError);
    }
    Err(OpenError(format!(
        "{:?}: expected file:///path or a blob container URL (https://<account>.blob.core.windows.net/<container>)",
        blob::redact(url)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_rejects_unknown_urls() {
        assert!(open("file://relative", None).is_err());
        assert!(open("s3://bucket", None).is_err());
        assert!(open("file:///tmp/x", None).is_ok());
    }
}
