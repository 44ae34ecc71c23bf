//! `GET /api/qr/{org}`: the QR code (and pairing code) to link a phone.
//!
//! JSON with a PNG `data:` URL by default, as the Django page embeds it;
//! `?format=png|svg` returns the image itself (handy in a browser or `curl -o`),
//! `?format=raw` the payload for clients that render their own.

use std::borrow::Cow;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};
use wa_actors::{OrgId, SessionStatus};

use super::AppState;
use super::error::ApiError;
use super::extract::OrgPath;
use super::openapi::schemas::{ErrorSchema, OrgIdSchema, SessionStatusSchema};
use crate::qr_render;

#[derive(Debug, Deserialize)]
pub struct QrQuery {
    format: Option<String>,
}

/// What `?format=` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QrFormat {
    Json,
    Png,
    Svg,
    Raw,
}

impl QrFormat {
    pub const ALL: [QrFormat; 4] = [Self::Json, Self::Png, Self::Svg, Self::Raw];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Png => "png",
            Self::Svg => "svg",
            Self::Raw => "raw",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == raw)
    }
}

impl PartialSchema for QrFormat {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(Self::ALL.iter().map(|f| f.as_str())))
            .default(Some(Self::Json.as_str().into()))
            .into()
    }
}

impl ToSchema for QrFormat {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("QrFormat")
    }
}

/// The JSON answers of `GET /api/qr/{org}`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum QrAnswer {
    Image(QrImage),
    Raw(QrRaw),
}

/// The QR code as a PNG `data:` URL (`?format=json`, the default).
#[derive(Debug, Serialize, ToSchema)]
pub struct QrImage {
    #[schema(value_type = OrgIdSchema)]
    organization_id: OrgId,
    #[schema(value_type = SessionStatusSchema)]
    status: SessionStatus,
    /// `data:image/png;base64,…` while a QR code waits to be scanned.
    qr: Option<String>,
    has_qr: bool,
    pairing_code: Option<String>,
}

/// The QR code's payload, for clients that render their own (`?format=raw`).
#[derive(Debug, Serialize, ToSchema)]
pub struct QrRaw {
    #[schema(value_type = OrgIdSchema)]
    organization_id: OrgId,
    #[schema(value_type = SessionStatusSchema)]
    status: SessionStatus,
    qr_raw: String,
    pairing_code: Option<String>,
}

/// QR codes rotate every 20–60 s: no cache may keep one.
const NO_STORE: (header::HeaderName, &str) = (header::CACHE_CONTROL, "no-store");

/// The QR code to link the shop's phone, and the pairing code when one was asked.
///
/// JSON with a PNG `data:` URL by default (`qr` is `null` when no code is shown);
/// `?format=png` or `?format=svg` the image itself, `?format=raw` the payload. The
/// code rotates every 20–60 s.
#[utoipa::path(
    get,
    path = "/api/qr/{org}",
    tag = "sessions",
    params(
        ("org" = OrgIdSchema, Path, description = "The organization."),
        ("format" = Option<QrFormat>, Query, description = "The answer's form."),
    ),
    responses(
        (status = 200, description = "The QR code, as `format` asks.", content(
            (QrAnswer = "application/json"),
            (Vec<u8> = "image/png"),
            (String = "image/svg+xml"),
        )),
        (status = 400, description = "An invalid organization id or an unknown `format`.", body = ErrorSchema),
        (status = 404, description = "No session, or (`png`, `svg`, `raw`) no QR code shown now; `status` says why.", body = ErrorSchema),
        (status = 500, description = "The QR code could not be rendered.", body = ErrorSchema),
    ),
)]
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
    let raw_format = query.format.as_deref().unwrap_or(QrFormat::Json.as_str());
    let format = QrFormat::parse(raw_format).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "unknown format {raw_format:?}; use json, png, svg or raw"
        ))
    })?;
    let no_qr = || ApiError::NoQr {
        status: snap.status,
    };
    match format {
        QrFormat::Json => {
            let qr = snap
                .qr
                .as_deref()
                .map(qr_render::png_data_url)
                .transpose()?;
            let has_qr = snap.has_qr();
            let answer = QrAnswer::Image(QrImage {
                organization_id: snap.organization_id,
                status: snap.status,
                qr,
                has_qr,
                pairing_code: snap.pairing_code,
            });
            Ok(([NO_STORE], Json(answer)).into_response())
        }
        QrFormat::Png => {
            let png = qr_render::png(snap.qr.as_deref().ok_or_else(no_qr)?)?;
            Ok(([(header::CONTENT_TYPE, "image/png"), NO_STORE], png).into_response())
        }
        QrFormat::Svg => {
            let svg = qr_render::svg(snap.qr.as_deref().ok_or_else(no_qr)?)?;
            Ok(([(header::CONTENT_TYPE, "image/svg+xml"), NO_STORE], svg).into_response())
        }
        QrFormat::Raw => {
            let qr_raw = snap.qr.clone().ok_or_else(no_qr)?;
            let answer = QrAnswer::Raw(QrRaw {
                organization_id: snap.organization_id,
                status: snap.status,
                qr_raw,
                pairing_code: snap.pairing_code,
            });
            Ok(([NO_STORE], Json(answer)).into_response())
        }
    }
}
