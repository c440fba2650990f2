//! The bearer token of a request, parsed in one place for every handler.

use axum::{extract::FromRequestParts, http::request::Parts};
use patchwatch_model::secret::Secret;

/// The `Authorization: Bearer <token>` of a request, if it has one. Never fails: whether a
/// missing or wrong token is acceptable is the handler's decision. The token is a [`Secret`]:
/// `Debug` never prints it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bearer(Option<Secret>);

impl Bearer {
    /// The token from an `Authorization` header value (`Bearer` is matched case-insensitively).
    pub fn parse(header: &str) -> Option<String> {
        let (scheme, token) = header.trim().split_once(' ')?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
    }

    /// The token of a request's `Authorization` header.
    pub fn from_headers(headers: &axum::http::HeaderMap) -> Self {
        let header = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        Bearer(header.and_then(Bearer::parse).map(Secret::new))
    }

    pub fn token(&self) -> Option<&str> {
        self.0.as_ref().map(Secret::expose)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Bearer::from_headers(&parts.headers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_from_the_header() {
        assert_eq!(Bearer::parse("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(Bearer::parse("bearer  abc ").as_deref(), Some("abc"));
        assert_eq!(Bearer::parse("Basic abc"), None);
        assert_eq!(Bearer::parse("Bearer "), None);
        assert_eq!(Bearer::parse("Bearer"), None);
    }

    #[test]
    fn debug_never_prints_the_token() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("authorization", "Bearer s3cr3t-token".parse().unwrap());
        let bearer = Bearer::from_headers(&headers);
        assert_eq!(bearer.token(), Some("s3cr3t-token"));
        assert!(!format!("{bearer:?}").contains("s3cr3t"), "{bearer:?}");
    }
}
