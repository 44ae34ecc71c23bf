//! The API key check in front of every `/api/*`, `/sim/*` and `/metrics` route.
//!
//! The key is accepted as `X-API-Key: <key>` (what the Django client sends) or as
//! `Authorization: Bearer <key>` (what Prometheus's `authorization` scrape setting
//! sends). It runs as middleware, before any extractor reads the body, so an
//! unauthenticated caller learns nothing about what a valid request looks like. The
//! key is compared in constant time and never logged.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use crate::api_key::ApiKey;

/// The header carrying the key (header names are case-insensitive).
pub const HEADER: &str = "x-api-key";

pub async fn require_api_key(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // Run here for another node, which checked the key (only this process can
    // mark a request so).
    if req
        .extensions()
        .get::<super::cluster::Forwarded>()
        .is_some()
    {
        return next.run(req).await;
    }
    match check(&state.api_key, req.headers()) {
        Verdict::Accepted => next.run(req).await,
        refused => {
            tracing::info!(
                path = req.uri().path(),
                key_present = refused == Verdict::WrongKey,
                "rejected a request without a valid API key"
            );
            ApiError::Unauthorized.into_response()
        }
    }
}

/// What the headers of a request amount to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    /// A key was presented in one of the two places, and none matched.
    WrongKey,
    NoKey,
}

/// Checks the two places a key may be in. Either one holding the key is enough;
/// each present one is compared (in constant time), so how long the check takes
/// says nothing about which one was wrong.
pub fn check(key: &ApiKey, headers: &HeaderMap) -> Verdict {
    let presented = [
        headers.get(HEADER).map(|v| v.as_bytes()),
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| bearer_token(v.as_bytes())),
    ];
    let mut any = false;
    let mut matched = false;
    for candidate in presented.into_iter().flatten() {
        any = true;
        matched |= key.matches(candidate);
    }
    match (matched, any) {
        (true, _) => Verdict::Accepted,
        (false, true) => Verdict::WrongKey,
        (false, false) => Verdict::NoKey,
    }
}

/// The token of `Bearer <token>` (the scheme is case-insensitive, RFC 9110 §11.1).
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    const SCHEME: &[u8] = b"bearer ";
    let (scheme, token) = value.split_at_checked(SCHEME.len())?;
    scheme.eq_ignore_ascii_case(SCHEME).then_some(token)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn the_key_is_accepted_as_x_api_key_or_bearer_and_nothing_else() {
        let key = ApiKey::new("s3cret");
        for (pairs, want) in [
            (&[("X-API-Key", "s3cret")][..], Verdict::Accepted),
            (&[("x-api-key", "s3cret")], Verdict::Accepted),
            (&[("Authorization", "Bearer s3cret")], Verdict::Accepted),
            (&[("authorization", "bearer s3cret")], Verdict::Accepted),
            (&[("Authorization", "BEARER s3cret")], Verdict::Accepted),
            // One right place is enough.
            (
                &[("X-API-Key", "wrong"), ("Authorization", "Bearer s3cret")],
                Verdict::Accepted,
            ),
            (&[], Verdict::NoKey),
            (&[("X-API-Key", "s3cre")], Verdict::WrongKey),
            (&[("X-API-Key", "")], Verdict::WrongKey),
            (&[("Authorization", "Bearer s3cretx")], Verdict::WrongKey),
            (&[("Authorization", "Bearer  s3cret")], Verdict::WrongKey),
            // Another scheme, or the key without one, is no key at all.
            (&[("Authorization", "s3cret")], Verdict::NoKey),
            (&[("Authorization", "Basic s3cret")], Verdict::NoKey),
            (&[("Authorization", "Bearer")], Verdict::NoKey),
        ] {
            assert_eq!(check(&key, &headers(pairs)), want, "{pairs:?}");
        }
    }
}
