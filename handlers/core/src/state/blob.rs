//! Azure Blob Storage backend.

/// The URL without its query (a SAS token is a secret).
pub fn redact(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}
