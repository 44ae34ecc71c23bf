//! `GET /api/qr/{org}`: the QR code (and pairing code) to link a phone.
//!
//! JSON with a PNG `data:` URL by default, as the Django page embeds it;
//! `?format=png|svg` returns the image itself (handy in a browser or `curl -o`),
//! `?format=raw` the payload for clients that render their own.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use wa_actors::SessionStatus;

use super::AppState;
use super::error::ApiError;
use super::extract::OrgPath;
use crate::qr_render;

#[derive(Debug, Deserialize)]
pub struct QrQuery {
    format: Option<String>,
}

/// QR codes rotate every 20–60 s: no cache may keep one.
const NO_STORE: (header::HeaderName, &str) = (header::CACHE_CONTROL, "no-store");

pub async fn qr(
    State(state): State<AppState>,
    OrgPath(org): OrgPath,
    query: Result<Query<QrQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let snap = state.supervisor.status(&org);
    if snap.status == SessionStatus::NotStarted {
        return Err(ApiError::NoSession);
    }
    let no_qr = || ApiError::NoQr {
        status: snap.status,
    };
    match query.format.as_deref().unwrap_or("json") {
        "json" => {
            let qr = snap
                .qr
                .as_deref()
                .map(qr_render::png_data_url)
                .transpose()?;
            Ok((
                [NO_STORE],
                Json(json!({
                    "organization_id": snap.organization_id,
                    "status": snap.status,
                    "qr": qr,
                    "has_qr": snap.has_qr(),
                    "pairing_code": snap.pairing_code,
                })),
            )
                .into_response())
        }
        "png" => {
            let png = qr_render::png(snap.qr.as_deref().ok_or_else(no_qr)?)?;
            Ok(([(header::CONTENT_TYPE, "image/png"), NO_STORE], png).into_response())
        }
        "svg" => {
            let svg = qr_render::svg(snap.qr.as_deref().ok_or_else(no_qr)?)?;
            Ok(([(header::CONTENT_TYPE, "image/svg+xml"), NO_STORE], svg).into_response())
        }
        "raw" => {
            let raw = snap.qr.as_deref().ok_or_else(no_qr)?;
            Ok((
                [NO_STORE],
                Json(json!({
                    "organization_id": snap.organization_id,
                    "status": snap.status,
                    "qr_raw": raw,
                    "pairing_code": snap.pairing_code,
                })),
            )
                .into_response())
        }
        other => Err(ApiError::BadRequest(format!(
            "unknown format {other:?}; use json, png, svg or raw"
        ))),
    }
}
