//! The one HTTP module every Azure client uses: the shared client with bounded timeouts, the
//! error an answer means, the one `Retry-After` parser and Resource Graph's quota headers.

use std::time::Duration;

use reqwest::{StatusCode, header::HeaderMap};
use serde::Deserialize;
use time::OffsetDateTime;

/// Why an Azure call (ARM, Resource Graph) failed.
#[derive(Debug, thiserror::Error)]
pub enum AzureError {
    #[error("could not get an Azure token: {0}")]
    Credential(azure_core::Error),
    #[error("Azure request failed: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("Azure answered {status} {code}: {message}")]
    Status { status: u16, code: String, message: String },
    #[error("Azure is throttling this identity; retry after {retry_after:?}")]
    Throttled { retry_after: Duration },
    #[error("Azure's response could not be read: {0}")]
    Decode(String),
    /// A run load used its whole time budget; it goes on from where it stopped next time.
    #[error("Resource Graph load did not finish within {spent:?}; it continues on the next delivery")]
    Unfinished { spent: Duration },
}

impl AzureError {
    /// How long to wait before the whole event is worth trying again.
    pub fn retry_after(&self) -> Duration {
        match self {
            Self::Throttled { retry_after } => *retry_after,
            Self::Status { status: 401 | 403, .. } => ACCESS_RETRY,
            Self::Credential(_) => CREDENTIAL_RETRY,
            Self::Unfinished { .. } => UNFINISHED_RETRY,
            _ => OUTAGE_RETRY,
        }
    }
}

/// A missing role takes minutes to be granted and to propagate.
const ACCESS_RETRY: Duration = Duration::from_secs(300);
/// A token endpoint that failed usually answers again within a minute.
const CREDENTIAL_RETRY: Duration = Duration::from_secs(60);
/// A load that ran out of time goes on soon: its pages so far are saved.
const UNFINISHED_RETRY: Duration = Duration::from_secs(10);
/// Any other failure (transport, 5xx, an unreadable answer).
const OUTAGE_RETRY: Duration = Duration::from_secs(30);
/// How long to wait on a 429 that names no wait.
pub const THROTTLE_RETRY: Duration = Duration::from_secs(30);
/// How long to connect, and how long a whole request may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A reqwest client with bounded timeouts, shared by every outbound Azure call.
pub fn default_http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("patchwatch/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// The error an Azure answer other than 2xx means, with ARM's `{"error": {code, message}}`
/// when the body has it.
pub fn status_error(status: StatusCode, bytes: &[u8]) -> AzureError {
    #[derive(Deserialize)]
    struct Envelope {
        error: ErrorBody,
    }
    #[derive(Deserialize)]
    struct ErrorBody {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let (code, message) = match serde_json::from_slice::<Envelope>(bytes) {
        Ok(e) => (e.error.code, e.error.message),
        Err(_) => (String::new(), String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned()),
    };
    AzureError::Status { status: status.as_u16(), code, message }
}

/// `Retry-After` in seconds or as an HTTP date, at most `max`. The one parser every client uses.
pub fn retry_after(headers: &HeaderMap, max: Duration) -> Option<Duration> {
    let v = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(max));
    }
    let when = OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()?;
    let secs = (when - OffsetDateTime::now_utc()).whole_seconds().max(0);
    Some(Duration::from_secs(secs.unsigned_abs()).min(max))
}

/// Resource Graph's remaining quota in this window (`x-ms-user-quota-remaining`).
pub fn quota_remaining(headers: &HeaderMap) -> Option<u64> {
    headers.get("x-ms-user-quota-remaining")?.to_str().ok()?.trim().parse().ok()
}

/// `x-ms-user-quota-resets-after` is `hh:mm:ss`.
pub fn quota_resets_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get("x-ms-user-quota-resets-after")?.to_str().ok()?;
    let mut secs = 0f64;
    for part in v.trim().split(':') {
        secs = secs * 60.0 + part.parse::<f64>().ok()?;
    }
    secs.is_finite().then(|| Duration::from_secs_f64(secs.clamp(0.0, 3600.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_headers_parse() {
        let mut h = HeaderMap::new();
        h.insert("x-ms-user-quota-remaining", "0".parse().unwrap());
        h.insert("x-ms-user-quota-resets-after", "00:00:03".parse().unwrap());
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(quota_remaining(&h), Some(0));
        assert_eq!(quota_resets_after(&h), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(&h, Duration::from_secs(3600)), Some(Duration::from_secs(7)));
    }

    #[test]
    fn retry_after_is_capped_and_reads_dates() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "86400".parse().unwrap());
        assert_eq!(retry_after(&h, Duration::from_secs(600)), Some(Duration::from_secs(600)));
        h.insert("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&h, Duration::from_secs(600)), Some(Duration::ZERO), "a date in the past");
        h.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&h, Duration::from_secs(600)), None);
    }
}
