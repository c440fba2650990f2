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

/// Keys are relative paths of `[A-Za-z0-9._-]` segments, so both backends map them 1:1.
pub fn check_key(key: &str) -> Result<(), StateError> {
    let ok = !key.is_empty()
        && key.len() <= 512
        && key.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && !seg.starts_with('.')
                && seg.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        });
    if ok { Ok(()) } else { Err(StateError::InvalidKey(key.to_owned())) }
}

/// A key segment from arbitrary text: lower-case, unsafe characters replaced, length bounded.
pub fn key_segment(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c.to_ascii_lowercase() } else { '-' })
        .collect();
    out.truncate(80);
    let out = out.trim_matches('-').to_owned();
    if out.is_empty() { "x".to_owned() } else { out }
}

/// Opens the store a `PATCHWATCH_STATE` URL names.
pub fn open(
    url: &str,
    credential: Option<Arc<dyn azure_core::credentials::TokenCredential>>,
) -> Result<Arc<dyn StateStore>, String> {
    if let Some(path) = url.strip_prefix("file://") {
        if path.is_empty() || !path.starts_with('/') {
            return Err(format!("{url:?}: a file URL needs an absolute path, e.g. file:///var/lib/patchwatch"));
        }
        return Ok(Arc::new(file::FileStore::new(path)));
    }
    let scheme = url.split("://").next().unwrap_or_default().to_ascii_lowercase();
    if scheme == "https" || scheme == "http" {
        return blob::BlobStore::new(url, credential).map(|s| Arc::new(s) as Arc<dyn StateStore>);
    }
    Err(format!(
        "{:?}: expected file:///path or a blob container URL (https://<account>.blob.core.windows.net/<container>)",
        blob::redact(url)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        assert!(check_key("deliveries/run-1/post/email").is_ok());
        for bad in ["", "/abs", "a//b", "a/../b", "a/.hidden", "a b", "a\\b"] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
        assert_eq!(key_segment("Ring2/Prod ÄÖ"), "ring2-prod");
        assert_eq!(key_segment("///"), "x");
    }

    #[test]
    fn open_rejects_unknown_urls() {
        assert!(open("file://relative", None).is_err());
        assert!(open("s3://bucket", None).is_err());
        assert!(open("file:///tmp/x", None).is_ok());
    }
}
