//! Simulation routes (CONTRACT §9): drive the fake phone of an org.
//!
//! They exist only when the daemon runs with `--sim` (the router does not mount
//! them otherwise, so they are a plain 404 in production) and, like `/api/*`, only
//! with the API key. Their errors are [`SimRouteError`]s, in the API's JSON shape.

mod error;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use wa_actors::OrgId;
use wa_actors::connection::ReceiptKind;
use wa_actors::connection::sim::{Fault, SimError};

pub use error::SimRouteError;
/// The fake phones of every org, driven by these routes.
pub use wa_actors::connection::sim::SimConnector as FakePhones;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, OrgPath, Text, required};

/// The `/sim/*` routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sim/{org}/scan", post(scan))
        .route("/sim/{org}/inject", post(inject))
        .route("/sim/{org}/sent", get(sent))
        .route("/sim/{org}/receipt", post(receipt))
        .route("/sim/{org}/contacts", post(contacts))
        .route("/sim/stall", post(stall))
}

#[derive(Debug, Deserialize)]
struct StallBody {
    seconds: Option<u64>,
}

/// Wedges the supervisor for a while (at most 60 s), as a deadlock would: what the
/// systemd watchdog exists for.
async fn stall(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<StallBody>,
) -> Result<Json<Value>, SimRouteError> {
    sim(&state)?;
    let seconds = body
        .seconds
        .filter(|s| (1..=60).contains(s))
        .ok_or_else(|| ApiError::BadRequest("seconds must be between 1 and 60".into()))?;
    state
        .supervisor
        .stall(std::time::Duration::from_secs(seconds));
    Ok(Json(json!({ "success": true, "stalled_seconds": seconds })))
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

#[derive(Debug, Deserialize)]
pub struct ScanBody {
    phone: Option<Text>,
}

/// The fake phone scans the QR on screen and pairs as `phone`.
async fn scan(
    State(state): State<AppState>,
    OrgPath(org): OrgPath,
    ApiJson(body): ApiJson<ScanBody>,
) -> Result<Json<Value>, SimRouteError> {
    let phone = state
        .phone
        .normalize(&required(body.phone, "phone")?)
        .map_err(ApiError::from)?;
    sim(&state)?
        .scan(&org, &phone)
        .map_err(|e| sim_error(&state, &org, e))?;
    tracing::info!(org_id = %org, "sim: QR scanned");
    Ok(Json(
        json!({ "success": true, "organization_id": org, "phone": phone }),
    ))
}

#[derive(Debug, Deserialize)]
pub struct InjectBody {
    fault: Option<String>,
    code: Option<u16>,
    /// For `bad_mac`: who sent the undecryptable message (digits).
    sender: Option<Text>,
}

/// The connection reports a CONTRACT §4 signal.
async fn inject(
    State(state): State<AppState>,
    OrgPath(org): OrgPath,
    ApiJson(body): ApiJson<InjectBody>,
) -> Result<Json<Value>, SimRouteError> {
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
    Ok(Json(
        json!({ "success": true, "organization_id": org, "fault": name }),
    ))
}

/// Every message the org's fake phone sent, in order.
async fn sent(
    State(state): State<AppState>,
    OrgPath(org): OrgPath,
) -> Result<Json<Value>, SimRouteError> {
    let messages = sim(&state)?
        .sent_log(&org)
        .await
        .map_err(|e| sim_error(&state, &org, e))?;
    Ok(Json(json!({ "messages": messages })))
}

#[derive(Debug, Deserialize)]
pub struct ReceiptBody {
    message_id: Option<Text>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// The recipient's phone reports a message `delivered` or `read`.
async fn receipt(
    State(state): State<AppState>,
    OrgPath(org): OrgPath,
    ApiJson(body): ApiJson<ReceiptBody>,
) -> Result<Json<Value>, SimRouteError> {
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
    Ok(Json(
        json!({ "success": true, "organization_id": org, "message_id": message_id }),
    ))
}

#[derive(Debug, Deserialize)]
pub struct ContactsBody {
    phone: Option<Text>,
    on_whatsapp: Option<bool>,
}

/// Marks a number as on WhatsApp or not (every valid number is, by default).
async fn contacts(
    State(state): State<AppState>,
    OrgPath(org): OrgPath,
    ApiJson(body): ApiJson<ContactsBody>,
) -> Result<Json<Value>, SimRouteError> {
    let phone = state
        .phone
        .normalize(&required(body.phone, "phone")?)
        .map_err(ApiError::from)?;
    let on_whatsapp = body
        .on_whatsapp
        .ok_or_else(|| ApiError::BadRequest("on_whatsapp is required".into()))?;
    sim(&state)?.set_on_whatsapp(&org, &phone, on_whatsapp);
    Ok(Json(
        json!({ "success": true, "organization_id": org, "phone": phone, "on_whatsapp": on_whatsapp }),
    ))
}
