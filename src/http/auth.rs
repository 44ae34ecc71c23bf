//! The `X-API-Key` check in front of every `/api/*` and `/sim/*` route.
//!
//! It runs as middleware, before any extractor reads the body, so an unauthenticated
//! caller learns nothing about what a valid request looks like. The key is compared
//! in constant time and never logged.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;

/// The header carrying the key (header names are case-insensitive).
pub const HEADER: &str = "x-api-key";

pub async fn require_api_key(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let presented = req.headers().get(HEADER).map(|v| v.as_bytes());
    match presented {
        Some(key) if state.api_key.matches(key) => next.run(req).await,
        _ => {
            tracing::info!(
                path = req.uri().path(),
                key_present = presented.is_some(),
                "rejected a request without a valid API key"
            );
            ApiError::Unauthorized.into_response()
        }
    }
}
