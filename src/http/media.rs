//! `POST /api/send-media` (CONTRACT §14): a file for a patient, through the outbox.
//!
//! Two shapes, told apart by `Content-Type`:
//!
//! - `multipart/form-data`: `organization_id`, `phone`, `file`, and optionally
//!   `caption`, `filename`, `mimetype`, `idempotency_key`, `expires_at` or
//!   `ttl_seconds`. The file is streamed to disk as it arrives (hashed and counted
//!   on the way), so memory stays flat whatever its size.
//! - JSON: the same fields, with the file as `media_base64` (and `mimetype`
//!   optional).
//!
//! The file's type comes from its bytes; a declared mimetype, or a file name
//! whose extension names another type, is a `400`. A file over `[media]
//! max_bytes` is a `413` as soon as that many bytes have arrived (at once, when
//! `Content-Length` already says so), with nothing kept. Otherwise the file is
//! stored durably beside the outbox and the message accepted: `202`, with the
//! same lifecycle, idempotency, expiry and cancel as `POST /api/messages`.
//!
//! This route has its own body limit (the router's default is for texts) and
//! takes at most [`UPLOADS_AT_ONCE`] uploads at a time; more wait their turn.

use axum::body::Bytes;
use axum::extract::multipart::Field;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{StatusCode, header};
use axum::routing::post;
use axum::{Json, Router, middleware};
use base64::Engine as _;
use serde::Deserialize;
use tower::limit::ConcurrencyLimitLayer;
use utoipa::ToSchema;
use wa_actors::MediaRequest;
use wa_actors::media::{Incoming, IncomingError};
use wa_actors::outbox::Enqueued;

use super::AppState;
use super::error::ApiError;
use super::extract::{Text, required, required_org};
use super::openapi::schemas::{ErrorSchema, OrgIdInputSchema, PhoneInputSchema};
use super::outbox::{Accepted, expiry, idempotency_key};

/// Uploads received at once; each may hold a JSON body of up to ~4/3 of
/// `max_bytes` in memory (a multipart one streams to disk).
pub const UPLOADS_AT_ONCE: usize = 4;
/// The room a body needs beyond the file: the other fields, multipart
/// boundaries and headers.
const FIELDS_ROOM: u64 = 64 * 1024;
/// The longest text field of a form.
const MAX_FIELD_BYTES: usize = 8 * 1024;
/// The longest caption, in characters (WhatsApp's own limit for a caption).
pub const MAX_CAPTION_CHARS: usize = 1024;

/// The route, with its own body limit, concurrency bound and key check.
/// The one route here.
pub const PATH: &str = "/api/send-media";

pub fn routes(state: &AppState) -> Router<AppState> {
    let max_bytes = state.supervisor.config().media.max_bytes;
    Router::new()
        .route(PATH, post(send_media))
        .route_layer(ConcurrencyLimitLayer::new(UPLOADS_AT_ONCE))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            super::auth::require_api_key,
        ))
        .layer(DefaultBodyLimit::max(body_limit(max_bytes)))
}

/// The largest body that can carry a file of `max_bytes`: base64 in JSON is the
/// larger of the two shapes.
fn body_limit(max_bytes: u64) -> usize {
    let base64 = max_bytes.div_ceil(3) * 4;
    usize::try_from(base64 + FIELDS_ROOM).unwrap_or(usize::MAX)
}

/// The JSON shape of the request.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SendMediaBody {
    #[schema(value_type = OrgIdInputSchema, required = true)]
    organization_id: Option<Text>,
    #[schema(value_type = PhoneInputSchema, required = true)]
    phone: Option<Text>,
    /// The file, base64 (standard alphabet, padded; a `data:` URL prefix is fine).
    #[schema(required = true)]
    media_base64: Option<String>,
    /// The type the caller says it is; must match the bytes.
    mimetype: Option<String>,
    /// The name a document is shown with; its extension must match the bytes.
    filename: Option<String>,
    /// At most 1,024 characters.
    caption: Option<String>,
    idempotency_key: Option<String>,
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    #[schema(minimum = 60, maximum = 2592000)]
    ttl_seconds: Option<u64>,
}

/// Every field but the file, as either shape gives them.
#[derive(Default)]
struct Fields {
    organization_id: Option<Text>,
    phone: Option<Text>,
    mimetype: Option<String>,
    filename: Option<String>,
    caption: Option<String>,
    idempotency_key: Option<String>,
    expires_at: Option<String>,
    ttl_seconds: Option<u64>,
}

/// The multipart shape of the request: the same fields as the JSON one, with
/// the file as a part named `file` instead of `media_base64`.
#[derive(ToSchema)]
#[allow(dead_code)] // Only described, never built: the form is read part by part.
pub struct SendMediaForm {
    #[schema(value_type = OrgIdInputSchema)]
    organization_id: String,
    #[schema(value_type = PhoneInputSchema)]
    phone: String,
    /// The file: JPEG, PNG or WebP (sent as an image), PDF or an Office
    /// document (sent as a document); its type is read from its bytes.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// The type the caller says it is; must match the bytes.
    mimetype: Option<String>,
    /// The name a document is shown with; its extension must match the bytes.
    filename: Option<String>,
    /// At most 1,024 characters.
    caption: Option<String>,
    idempotency_key: Option<String>,
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    #[schema(minimum = 60, maximum = 2592000)]
    ttl_seconds: Option<u64>,
}

/// `POST /api/send-media`.
#[utoipa::path(
    post,
    path = "/api/send-media",
    operation_id = "send_media",
    tag = "messages",
    request_body(content(
        (SendMediaForm = "multipart/form-data"),
        (SendMediaBody = "application/json"),
    )),
    responses(
        (status = 202, description = "Accepted and stored with its file (`duplicate: false`).", body = Accepted),
        (status = 200, description = "Accepted before under this idempotency key (`duplicate: true`).", body = Accepted),
        (status = 400, description = "A field missing or invalid; a file of a type not sent, or not the type its name or `mimetype` says.", body = ErrorSchema),
        (status = 404, description = "No session and no stored credentials (`status: not_started`).", body = ErrorSchema),
        (status = 409, description = "The idempotency key holds another message (in `message`).", body = ErrorSchema),
        (status = 413, description = "The file is larger than `[media] max_bytes`.", body = ErrorSchema),
        (status = 500, description = "The outbox failed.", body = ErrorSchema),
    ),
)]
pub async fn send_media(
    State(state): State<AppState>,
    request: Request,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let max_bytes = state.supervisor.config().media.max_bytes;
    let declared_length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared_length.is_some_and(|n| n > body_limit(max_bytes) as u64) {
        return Err(ApiError::FileTooLarge { limit: max_bytes });
    }
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/")
        });
    let (fields, file) = if multipart {
        read_multipart(&state, request, max_bytes).await?
    } else {
        read_json(&state, request, max_bytes).await?
    };

    let org = required_org(fields.organization_id)?;
    let phone = state.phone.normalize(&required(fields.phone, "phone")?)?;
    let caption = caption(fields.caption)?;
    let idempotency_key = idempotency_key(fields.idempotency_key)?;
    let expires_at = expiry(fields.expires_at, fields.ttl_seconds)?;
    let request = MediaRequest {
        org: org.clone(),
        phone,
        file,
        mimetype: fields.mimetype,
        filename: fields.filename,
        caption,
        idempotency_key,
        expires_at,
    };
    let enqueued = state
        .supervisor
        .enqueue_media(request)
        .await
        .map_err(state.session_error(&org))?;
    let (Enqueued::New(message) | Enqueued::Duplicate(message)) = &enqueued;
    let duplicate = matches!(enqueued, Enqueued::Duplicate(_));
    tracing::debug!(org_id = %org, message_id = %message.message_id, kind = message.body.kind(), duplicate, "media message accepted");
    Ok(Accepted::answer(&enqueued))
}

/// An optional caption: at most [`MAX_CAPTION_CHARS`]; a blank one is none.
fn caption(raw: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(caption) = raw.filter(|c| !c.trim().is_empty()) else {
        return Ok(None);
    };
    if caption.chars().count() > MAX_CAPTION_CHARS {
        return Err(ApiError::BadRequest(format!(
            "caption is longer than {MAX_CAPTION_CHARS} characters"
        )));
    }
    Ok(Some(caption))
}

fn received(e: IncomingError) -> ApiError {
    match e {
        IncomingError::TooLarge { limit } => ApiError::FileTooLarge { limit },
        IncomingError::Io(e) => ApiError::Outbox(format!("the file could not be stored: {e}")),
    }
}

async fn read_json(
    state: &AppState,
    request: Request,
    max_bytes: u64,
) -> Result<(Fields, Incoming), ApiError> {
    // Within the route's own body limit; a body that breaks off is a 400.
    let bytes = Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::FileTooLarge { limit: max_bytes }
            } else {
                ApiError::BadRequest(format!(
                    "cannot read the request body: {}",
                    rejection.body_text()
                ))
            }
        })?;
    let body: SendMediaBody = super::extract::parse_json(&bytes)?;
    let encoded = body.media_base64.ok_or_else(|| {
        ApiError::BadRequest(
            "media_base64 is required (or send multipart/form-data with a file)".into(),
        )
    })?;
    // A data URL's header (`data:image/png;base64,`) is not part of the file.
    let encoded = match encoded.strip_prefix("data:") {
        Some(url) => url.split_once(',').map_or("", |(_, data)| data).to_owned(),
        None => encoded,
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|e| ApiError::BadRequest(format!("media_base64 is not base64: {e}")))?;
    if decoded.len() as u64 > max_bytes {
        return Err(ApiError::FileTooLarge { limit: max_bytes });
    }
    let mut file = state
        .supervisor
        .outbox()
        .media()
        .incoming(max_bytes)
        .await
        .map_err(received)?;
    file.write(&decoded).await.map_err(received)?;
    let fields = Fields {
        organization_id: body.organization_id,
        phone: body.phone,
        mimetype: body.mimetype,
        filename: body.filename,
        caption: body.caption,
        idempotency_key: body.idempotency_key,
        expires_at: body.expires_at,
        ttl_seconds: body.ttl_seconds,
    };
    Ok((fields, file))
}

async fn read_multipart(
    state: &AppState,
    request: Request,
    max_bytes: u64,
) -> Result<(Fields, Incoming), ApiError> {
    let too_large = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::FileTooLarge { limit: max_bytes }
        } else {
            ApiError::BadRequest(format!("malformed multipart body: {}", e.body_text()))
        }
    };
    let mut form = Multipart::from_request(request, state)
        .await
        .map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let mut fields = Fields::default();
    let mut file: Option<Incoming> = None;
    let (mut part_filename, mut part_type) = (None, None);
    while let Some(mut field) = form.next_field().await.map_err(too_large)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            if file.is_some() {
                return Err(ApiError::BadRequest("send one file per request".into()));
            }
            part_filename = field.file_name().map(str::to_owned);
            part_type = field.content_type().map(str::to_owned);
            let mut incoming = state
                .supervisor
                .outbox()
                .media()
                .incoming(max_bytes)
                .await
                .map_err(received)?;
            while let Some(chunk) = field.chunk().await.map_err(too_large)? {
                incoming.write(&chunk).await.map_err(received)?;
            }
            file = Some(incoming);
            continue;
        }
        const TEXT_FIELDS: [&str; 8] = [
            "organization_id",
            "phone",
            "mimetype",
            "filename",
            "caption",
            "idempotency_key",
            "expires_at",
            "ttl_seconds",
        ];
        if !TEXT_FIELDS.contains(&name.as_str()) {
            // Fields this route does not know are skipped, as JSON ignores them.
            continue;
        }
        let text = field_text(&mut field, &name).await?;
        match name.as_str() {
            "organization_id" => fields.organization_id = Some(Text(text)),
            "phone" => fields.phone = Some(Text(text)),
            "mimetype" => fields.mimetype = Some(text),
            "filename" => fields.filename = Some(text),
            "caption" => fields.caption = Some(text),
            "idempotency_key" => fields.idempotency_key = Some(text),
            "expires_at" => fields.expires_at = Some(text),
            _ => {
                let ttl = text.trim().parse::<u64>().map_err(|_| {
                    ApiError::BadRequest("ttl_seconds must be a whole number of seconds".into())
                })?;
                fields.ttl_seconds = Some(ttl);
            }
        }
    }
    let file = file.ok_or_else(|| ApiError::BadRequest("file is required".into()))?;
    fields.filename = fields.filename.or(part_filename);
    fields.mimetype = fields.mimetype.or(part_type);
    Ok((fields, file))
}

/// A text field, at most [`MAX_FIELD_BYTES`].
async fn field_text(field: &mut Field<'_>, name: &str) -> Result<String, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| ApiError::BadRequest(format!("malformed multipart body: {}", e.body_text())))?
    {
        if bytes.len() + chunk.len() > MAX_FIELD_BYTES {
            return Err(ApiError::BadRequest(format!(
                "{name} is longer than {MAX_FIELD_BYTES} bytes"
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).map_err(|_| ApiError::BadRequest(format!("{name} is not UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_limit_fits_a_base64_file_and_its_fields() {
        let max = 16 * 1024 * 1024;
        let limit = body_limit(max) as u64;
        assert!(limit >= max / 3 * 4 + 1024);
        assert!(limit < max * 2);
    }

    #[test]
    fn captions_are_bounded_and_blank_is_none() {
        assert_eq!(caption(None).unwrap(), None);
        assert_eq!(caption(Some("  ".into())).unwrap(), None);
        assert_eq!(
            caption(Some("Su fórmula".into())).unwrap().as_deref(),
            Some("Su fórmula")
        );
        assert!(caption(Some("ñ".repeat(MAX_CAPTION_CHARS))).is_ok());
        assert!(matches!(
            caption(Some("ñ".repeat(MAX_CAPTION_CHARS + 1))),
            Err(ApiError::BadRequest(_))
        ));
    }
}
