//! Simulation routes (CONTRACT §9): drive the fake phone of an org.
//!
//! They exist only when the daemon runs with `--sim` (the router does not mount
//! them otherwise, so they are a plain 404 in production) and, like `/api/*`, only
//! with the API key. Their errors are [`SimRouteError`]s, in the API's JSON shape.

mod error;
mod schemas;

use axum::Json;
use axum::extract::State;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};
use wa_actors::OrgId;
use wa_actors::connection::ReceiptKind;
use wa_actors::connection::sim::{Fault, SentRecord, SimError};

pub use error::SimRouteError;
/// The fake phones of every org, driven by these routes.
pub use wa_actors::connection::sim::SimConnector as FakePhones;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, OrgPath, Text, required};
use super::openapi::schemas::{ErrorSchema, OrgIdSchema, PhoneInputSchema};
use super::routes::Routes;
use schemas::{FaultSchema, ReceiptTypeSchema, SentRecordSchema};

/// The `/sim/*` routes.
pub fn routes() -> Routes {
    Routes::new()
        .route("/sim/{org}/scan", post(scan))
        .route("/sim/{org}/inject", post(inject))
        .route("/sim/{org}/sent", get(sent))
        .route("/sim/{org}/receipt", post(receipt))
        .route("/sim/{org}/contacts", post(contacts))
        .route("/sim/stall", post(stall))
}

/// The OpenAPI description of these routes, added to the document in simulation
/// mode only (tag `sim`).
#[derive(OpenApi)]
#[openapi(paths(scan, inject, sent, receipt, contacts, stall))]
pub struct SimApi;

#[derive(Debug, Deserialize, ToSchema)]
struct StallBody {
    /// 1 to 60.
    #[schema(required = true, minimum = 1, maximum = 60)]
    seconds: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
struct Stalled {
    #[schema(examples(true))]
    success: bool,
    stalled_seconds: u64,
}

/// Wedges the supervisor for a while, as a deadlock would.
///
/// Simulation mode only. At most 60 s: what the systemd watchdog exists for.
#[utoipa::path(
    post,
    path = "/sim/stall",
    tag = "sim",
    request_body = StallBody,
    responses(
        (status = 200, description = "The supervisor is wedged for `stalled_seconds`.", body = Stalled),
        (status = 400, description = "`seconds` missing or out of range.", body = ErrorSchema),
    ),
)]
async fn stall(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<StallBody>,
) -> Result<Json<Stalled>, SimRouteError> {
    sim(&state)?;
    let seconds = body
        .seconds
        .filter(|s| (1..=60).contains(s))
        .ok_or_else(|| ApiError::BadRequest("seconds must be between 1 and 60".into()))?;
    state
        .supervisor
        .stall(std::time::Duration::from_secs(seconds));
    Ok(Json(Stalled {
        success: true,
        stalled_seconds: seconds,
    }))
}

fn sim(state: &AppState) -> Result<&FakePhones, ApiError> {
    // The routes are mounted only with a simulator; this is a guard, not a path.
    state.sim.as_ref().ok_or(ApiError::NotFound)
}

fn sim_error(state: &AppState, org: &OrgId, error: SimError) -> SimRouteError {
    SimRouteError::FakePhone {
        error,
        status: state.supervisor.status(org).status,
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ScanBody {
    /// The number the fake phone pairs as.
    #[schema(value_type = PhoneInputSchema, required = true)]
    phone: Option<Text>,
}

#[derive(Debug, Serialize, ToSchema)]
struct Scanned {
    #[schema(examples(true))]
    success: bool,
    #[schema(value_type = OrgIdSchema)]
    organization_id: OrgId,
    /// The paired number, digits.
    phone: String,
}

/// The fake phone scans the QR code on screen and pairs as `phone`.
///
/// Simulation mode only.
#[utoipa::path(
    post,
    path = "/sim/{org}/scan",
    tag = "sim",
    params(("org" = OrgIdSchema, Path, description = "The organization.")),
    request_body = ScanBody,
    responses(
        (status = 200, description = "Scanned; the session connects.", body = Scanned),
        (status = 400, description = "An invalid organization id or phone.", body = ErrorSchema),
        (status = 409, description = "No QR code is shown now (`status` says why).", body = ErrorSchema),
        (status = 500, description = "The fake phone's credentials could not be written.", body = ErrorSchema),
    ),
)]
async fn scan(
    State(state): State<AppState>,
    OrgPath(org): OrgPath,
    ApiJson(body): ApiJson<ScanBody>,
) -> Result<Json<Scanned>, SimRouteError> {
    let phone = state
        .phone
        .normalize(&required(body.phone, "phone")?)
        .map_err(ApiError::from)?;
    sim(&state)?
        .scan(&org, &phone)
        .map_err(|e| sim_error(&state, &org, e))?;
    tracing::info!(org_id = %org, "sim: QR scanned");
    Ok(Json(Scanned {
        success: true,
        organization_id: org,
        phone,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct InjectBody {
    #[schema(value_type = FaultSchema, required = true)]
    fault: Option<String>,
    /// The signal's numeric code; for `temporary_ban`, the ban's length in seconds.
    #[schema(minimum = 0, maximum = 65535)]
    code: Option<u16>,
    /// For `bad_mac`: who sent the undecryptable message (digits); without it,
    /// every one comes from a new random sender.
    #[schema(value_type = Option<PhoneInputSchema>)]
    sender: Option<Text>,
}

#[derive(Debug, Serialize, ToSchema)]
struct Injected {
    #[schema(examples(true))]
    success: bool,
    #[schema(value_type = OrgIdSchema)]
    organization_id: OrgId,
    #[schema(value_type = FaultSchema)]
    fault: String,
}

/// The connection reports a signal, as WhatsApp would send it.
///
/// Simulation mode only. `send_fails` fails the next send at the connection;
/// `no_ack` swallows every send without a server ack until the connection is
/// replaced (a zombie).
#[utoipa::path(
    post,
    path = "/sim/{org}/inject",
    tag = "sim",
    params(("org" = OrgIdSchema, Path, description = "The organization.")),
    request_body = InjectBody,
    responses(
        (status = 200, description = "Injected.", body = Injected),
        (status = 400, description = "An invalid organization id or sender, or an unknown fault (`valid_faults`).", body = ErrorSchema),
        (status = 409, description = "The organization has no open connection (`status` says why).", body = ErrorSchema),
    ),
)]
async fn inject(
    State(state): State<AppState>,
    OrgPath(org): OrgPath,
    ApiJson(body): ApiJson<InjectBody>,
) -> Result<Json<Injected>, SimRouteError> {
    let name = body
        .fault
        .ok_or_else(|| ApiError::BadRequest("fault is required".into()))?;
    let sender = match body.sender {
        Some(Text(raw)) => Some(state.phone.normalize(&raw).map_err(ApiError::from)?),
        None => None,
    };
    let fault = Fault::parse(&name, body.code, sender)
        .ok_or_else(|| SimRouteError::UnknownFault(name.clone()))?;
    sim(&state)?
        .inject(&org, fault)
        .map_err(|e| sim_error(&state, &org, e))?;
    tracing::info!(org_id = %org, fault = %name, code = ?body.code, "sim: fault injected");
    Ok(Json(Injected {
        success: true,
        organization_id: org,
        fault: name,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
struct SentList {
    /// In send order, resends included.
    #[schema(value_type = Vec<SentRecordSchema>)]
    messages: Vec<SentRecord>,
}

/// Every delivery attempt of the organization's fake phone, in order.
///
/// Simulation mode only.
#[utoipa::path(
    get,
    path = "/sim/{org}/sent",
    tag = "sim",
    params(("org" = OrgIdSchema, Path, description = "The organization.")),
    responses(
        (status = 200, description = "What the fake phone sent.", body = SentList),
        (status = 400, description = "An invalid organization id.", body = ErrorSchema),
    ),
)]
async fn sent(
    State(state): State<AppState>,
    OrgPath(org): OrgPath,
) -> Result<Json<SentList>, SimRouteError> {
    let messages = sim(&state)?
        .sent_log(&org)
        .await
        .map_err(|e| sim_error(&state, &org, e))?;
    Ok(Json(SentList { messages }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ReceiptBody {
    #[schema(value_type = String, required = true)]
    message_id: Option<Text>,
    #[serde(rename = "type")]
    #[schema(value_type = ReceiptTypeSchema, required = true)]
    kind: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct ReceiptDone {
    #[schema(examples(true))]
    success: bool,
    #[schema(value_type = OrgIdSchema)]
    organization_id: OrgId,
    message_id: String,
}

/// The recipient's phone reports a message `delivered` or `read`.
///
/// Simulation mode only.
#[utoipa::path(
    post,
    path = "/sim/{org}/receipt",
    tag = "sim",
    params(("org" = OrgIdSchema, Path, description = "The organization.")),
    request_body = ReceiptBody,
    responses(
        (status = 200, description = "Reported.", body = ReceiptDone),
        (status = 400, description = "A field missing or invalid.", body = ErrorSchema),
        (status = 409, description = "The organization has no open connection (`status` says why).", body = ErrorSchema),
    ),
)]
async fn receipt(
    State(state): State<AppState>,
    OrgPath(org): OrgPath,
    ApiJson(body): ApiJson<ReceiptBody>,
) -> Result<Json<ReceiptDone>, SimRouteError> {
    let message_id = required(body.message_id, "message_id")?;
    let kind = match body.kind.as_deref() {
        Some("delivered") => ReceiptKind::Delivered,
        Some("read") => ReceiptKind::Read,
        _ => {
            return Err(
                ApiError::BadRequest("type must be \"delivered\" or \"read\"".into()).into(),
            );
        }
    };
    sim(&state)?
        .receipt(&org, &message_id, kind)
        .map_err(|e| sim_error(&state, &org, e))?;
    Ok(Json(ReceiptDone {
        success: true,
        organization_id: org,
        message_id,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ContactsBody {
    #[schema(value_type = PhoneInputSchema, required = true)]
    phone: Option<Text>,
    #[schema(required = true)]
    on_whatsapp: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
struct ContactSet {
    #[schema(examples(true))]
    success: bool,
    #[schema(value_type = OrgIdSchema)]
    organization_id: OrgId,
    phone: String,
    on_whatsapp: bool,
}

/// Marks a number as on WhatsApp or not (every valid number is, by default).
///
/// Simulation mode only.
#[utoipa::path(
    post,
    path = "/sim/{org}/contacts",
    tag = "sim",
    params(("org" = OrgIdSchema, Path, description = "The organization.")),
    request_body = ContactsBody,
    responses(
        (status = 200, description = "Marked.", body = ContactSet),
        (status = 400, description = "A field missing or invalid.", body = ErrorSchema),
    ),
)]
async fn contacts(
    State(state): State<AppState>,
    OrgPath(org): OrgPath,
    ApiJson(body): ApiJson<ContactsBody>,
) -> Result<Json<ContactSet>, SimRouteError> {
    let phone = state
        .phone
        .normalize(&required(body.phone, "phone")?)
        .map_err(ApiError::from)?;
    let on_whatsapp = body
        .on_whatsapp
        .ok_or_else(|| ApiError::BadRequest("on_whatsapp is required".into()))?;
    sim(&state)?.set_on_whatsapp(&org, &phone, on_whatsapp);
    Ok(Json(ContactSet {
        success: true,
        organization_id: org,
        phone,
        on_whatsapp,
    }))
}
