//! Generic webhook: a versioned JSON body signed per the Standard Webhooks scheme.
//!
//! Headers `webhook-id` (stable for one delivery, so receivers can de-duplicate),
//! `webhook-timestamp` (Unix seconds) and `webhook-signature` (`v1,<base64 HMAC-SHA256 of
//! "{id}.{timestamp}.{body}">`, one per configured secret, space-separated, for key rotation).

use base64::Engine;
use reqwest::RequestBuilder;
use time::OffsetDateTime;

/// A signing key: the bytes of the base64 text after `whsec_`.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

/// Parses `whsec_…` secrets, separated by spaces or commas.
pub fn parse_secrets(text: &str) -> Result<Vec<SigningKey>, String> {
    let keys: Vec<SigningKey> = text
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let b64 = s.strip_prefix("whsec_").unwrap_or(s);
            match base64::engine::general_purpose::STANDARD.decode(b64) {
                Ok(k) if k.len() >= 24 => Ok(SigningKey(k)),
                Ok(_) => Err("a signing secret must hold at least 24 bytes".to_owned()),
                Err(_) => Err("a signing secret must be whsec_ followed by base64".to_owned()),
            }
        })
        .collect::<Result<_, _>>()?;
    if keys.is_empty() {
        return Err("no signing secret given".to_owned());
    }
    Ok(keys)
}

/// `v1,<signature>` for each key. The body is signed as bytes, as sent: a body that is not
/// UTF-8 can still be authenticated, and then refused for what it is.
pub fn signatures(id: &str, timestamp: i64, body: impl AsRef<[u8]>, keys: &[SigningKey]) -> String {
    use hmac::{Hmac, Mac};
    keys.iter()
        .filter_map(|k| {
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&k.0).ok()?;
            mac.update(format!("{id}.{timestamp}.").as_bytes());
            mac.update(body.as_ref());
            Some(format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Adds the Standard Webhooks headers for `body`.
pub fn signed(request: RequestBuilder, delivery_id: &str, body: &str, keys: &[SigningKey]) -> RequestBuilder {
    let timestamp = OffsetDateTime::now_utc().unix_timestamp();
    request
        .header("content-type", "application/json")
        .header("webhook-id", delivery_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signatures(delivery_id, timestamp, body, keys))
        .body(body.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_parse_and_sign_per_the_spec() {
        // The Standard Webhooks specification's own test vector.
        let keys = parse_secrets("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = signatures("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, r#"{"test": 2432232314}"#, &keys);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert_eq!(
            parse_secrets("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
                .unwrap()
                .len(),
            2
        );
        assert!(parse_secrets("whsec_!!").is_err());
        assert!(parse_secrets("whsec_c2hvcnQ=").is_err());
        assert!(parse_secrets("  ").is_err());
        assert!(!format!("{keys:?}").contains("MfKQ"));
    }
}
