//! Azure Queue Storage, peek only: the messages at the front of a queue (a poison queue) without
//! changing their visibility or dequeue count. The operator decides what to do with them.
//!
//! `GET <queue URL>/messages?peekonly=true&numofmessages=32` with `x-ms-version`, authorised by
//! a SAS token in the queue URL or a bearer token for `https://storage.azure.com/.default`
//! (managed identity, needs Storage Queue Data Reader). The answer is XML:
//! `<QueueMessagesList><QueueMessage><MessageId/><InsertionTime/><ExpirationTime/>
//! <DequeueCount/><MessageText/></QueueMessage>…</QueueMessagesList>`.

use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use url::Url;

use crate::http::{AzureError, default_http_client, status_error};

/// The token scope for Azure Storage.
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";
/// Bearer tokens on the Queue service need 2017-11-09 or later.
pub const API_VERSION: &str = "2019-12-12";
/// The most messages one peek returns.
pub const MAX_PEEK: u8 = 32;

/// One peeked message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueMessage {
    pub id: String,
    pub inserted: String,
    pub dequeue_count: u32,
    /// The message text as stored (a Functions queue message is usually base64).
    pub text: String,
}

/// A queue, read by peeking.
pub struct QueueClient {
    /// The queue URL, its SAS query included (secret).
    url: Url,
    /// The URL without its query, for logs and errors.
    display: String,
    credential: Option<Arc<dyn TokenCredential>>,
    http: reqwest::Client,
}

impl std::fmt::Debug for QueueClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueClient").field("queue", &self.display).finish_non_exhaustive()
    }
}

impl QueueClient {
    /// `url`: `https://<account>.queue.core.windows.net/<queue>`, with a SAS token or used with
    /// `credential`. Errors name the URL without its query.
    pub fn new(url: &str, credential: Option<Arc<dyn TokenCredential>>) -> Result<Self, String> {
        let display = url.split('?').next().unwrap_or(url).to_owned();
        let parsed = Url::parse(url).map_err(|e| format!("{display}: {e}"))?;
        if !matches!(parsed.scheme(), "https" | "http") || parsed.path().trim_matches('/').is_empty() {
            return Err(format!(
                "{display}: expected a queue URL such as https://<account>.queue.core.windows.net/<queue>"
            ));
        }
        let has_sas = parsed.query_pairs().any(|(k, _)| k == "sig");
        let credential = if has_sas {
            None
        } else {
            if parsed.scheme() != "https" {
                return Err(format!("{display}: without a SAS token the queue URL must use https (managed identity)"));
            }
            Some(
                credential
                    .ok_or_else(|| format!("{display}: no Azure credential for a queue URL without a SAS token"))?,
            )
        };
        Ok(Self { url: parsed, display, credential, http: default_http_client() })
    }

    /// Where the queue is (no secrets).
    pub fn describe(&self) -> &str {
        &self.display
    }

    /// The name of the queue (the URL's last path segment).
    pub fn name(&self) -> &str {
        self.display.trim_end_matches('/').rsplit('/').next().unwrap_or_default()
    }

    /// Up to `max` (1 to 32) messages at the front of the queue, left where they are.
    pub async fn peek(&self, max: u8) -> Result<Vec<QueueMessage>, AzureError> {
        let mut url = self.url.clone();
        url.set_path(&format!("{}/messages", self.url.path().trim_end_matches('/')));
        url.query_pairs_mut()
            .append_pair("peekonly", "true")
            .append_pair("numofmessages", &max.clamp(1, MAX_PEEK).to_string());
        let mut request = self.http.get(url).header("x-ms-version", API_VERSION);
        if let Some(credential) = &self.credential {
            let token = credential.get_token(&[STORAGE_SCOPE], None).await.map_err(AzureError::Credential)?;
            request = request.bearer_auth(token.token.secret());
        }
        // A reqwest error names the URL, SAS token included: never let it through.
        let response = request.send().await.map_err(|e| AzureError::Transport(e.without_url()))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| AzureError::Transport(e.without_url()))?;
        if !status.is_success() {
            return Err(status_error(status, &body));
        }
        parse_peek(&String::from_utf8_lossy(&body))
    }
}

/// The messages of a Peek Messages answer.
pub fn parse_peek(xml: &str) -> Result<Vec<QueueMessage>, AzureError> {
    if !xml.contains("<QueueMessagesList") {
        return Err(AzureError::Decode("a peek answer without <QueueMessagesList>".to_owned()));
    }
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find("<QueueMessage>") {
        let after = &rest[start + "<QueueMessage>".len()..];
        let end = after
            .find("</QueueMessage>")
            .ok_or_else(|| AzureError::Decode("an unterminated <QueueMessage>".to_owned()))?;
        let item = &after[..end];
        out.push(QueueMessage {
            id: element(item, "MessageId").unwrap_or_default(),
            inserted: element(item, "InsertionTime").unwrap_or_default(),
            dequeue_count: element(item, "DequeueCount").and_then(|c| c.trim().parse().ok()).unwrap_or(0),
            text: element(item, "MessageText").unwrap_or_default(),
        });
        rest = &after[end..];
    }
    Ok(out)
}

/// The unescaped text of `<name>…</name>` in `xml`.
fn element(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(unescape(&xml[start..end]))
}

/// XML's five entities and numeric character references.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(semi) = rest.find(';').filter(|&i| i <= 12) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") || e.starts_with("#X") => {
                u32::from_str_radix(&e[2..], 16).ok().and_then(char::from_u32)
            }
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peek_answer_is_parsed_and_unescaped() {
        let xml = "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?><QueueMessagesList><QueueMessage><MessageId>m-1</MessageId>\
            <InsertionTime>Fri, 09 Oct 2026 21:04:30 GMT</InsertionTime><ExpirationTime>x</ExpirationTime><DequeueCount>0</DequeueCount>\
            <MessageText>{&quot;a&quot;:&lt;1&gt; &amp; &#233;&#x41;}</MessageText></QueueMessage><QueueMessage><MessageId>m-2</MessageId>\
            <DequeueCount>3</DequeueCount><MessageText>eyJ9</MessageText></QueueMessage></QueueMessagesList>";
        let m = parse_peek(xml).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].id.as_str(), m[0].dequeue_count, m[0].text.as_str()), ("m-1", 0, "{\"a\":<1> & éA}"));
        assert_eq!((m[1].id.as_str(), m[1].dequeue_count, m[1].inserted.as_str()), ("m-2", 3, ""));
        assert!(parse_peek("<QueueMessagesList />").unwrap().is_empty());
        assert!(parse_peek("<html>").is_err());
        assert!(parse_peek("<QueueMessagesList><QueueMessage><MessageId>").is_err());
        assert_eq!(unescape("a & b &bogus; &#xZZ; &"), "a & b &bogus; &#xZZ; &");
    }

    #[test]
    fn urls_are_checked_and_never_shown_with_their_sas() {
        let err = QueueClient::new("http://127.0.0.1/acct/q", None).unwrap_err();
        assert!(err.contains("must use https"), "{err}");
        let c = QueueClient::new("http://127.0.0.1:1/acct/q-poison?sv=1&sig=topsecret", None).unwrap();
        assert_eq!((c.describe(), c.name()), ("http://127.0.0.1:1/acct/q-poison", "q-poison"));
        assert!(!format!("{c:?}").contains("topsecret"));
        assert!(QueueClient::new("https://acct.queue.core.windows.net/?sig=x", None).is_err());
    }

    #[tokio::test]
    async fn a_transport_error_does_not_carry_the_sas() {
        let c = QueueClient::new("http://127.0.0.1:1/acct/q?sv=1&sig=topsecret", None).unwrap();
        let err = c.peek(32).await.unwrap_err().to_string();
        assert!(!err.contains("topsecret"), "{err}");
    }
}
