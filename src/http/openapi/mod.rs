//! `GET /openapi.json` and `GET /docs`: the API's description, generated from the
//! handlers (`#[utoipa::path]`) and the types they take and answer (`ToSchema`),
//! and Swagger UI over it, served from the binary.
//!
//! Neither needs the key: they hold no data. The document describes what this
//! daemon serves: the `/sim` routes only in simulation mode. The edge of the HTTP
//! stack (the key, body limits, shedding, timeouts) answers the same way on every
//! route, so its answers are added to every operation in one place ([`edge`]).

mod docs;
mod edge;
pub mod schemas;

use std::sync::LazyLock;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::OpenApi;
use utoipa::openapi::tag::TagBuilder;

use super::rate_limit;
use super::routes::Routes;
use super::{AppState, backups, events, health, media, messages, metrics, numbers, outbox, qr};
use super::{cluster, sessions, sim};
use schemas::{ErrorSchema, MessageIdSchema, OrgIdSchema};

/// Where the document is served; Swagger UI reads it there.
pub const SPEC_PATH: &str = "/openapi.json";

/// The tag of the simulation routes, in the document in simulation mode only.
pub const SIM_TAG: &str = "sim";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "wa-supervisor",
        description = "Keeps one WhatsApp Web session alive per organization (a shop) and \
            heals it by itself; sends its messages through an outbox that loses nothing.\n\n\
            Every `/api/*` route, `/metrics` and (in simulation mode) `/sim/*` needs the API \
            key, as the `X-API-Key` header or as `Authorization: Bearer <key>`; a missing or \
            wrong key answers `401 {\"error\":\"unauthorized\"}`. `organization_id` may be a \
            JSON string or number. Every error is JSON with `error`, and for errors about a \
            session also `status` and, where someone can act, `hint`. Extra fields may be \
            added to any answer; none is removed or renamed.",
    ),
    paths(
        health::health,
        sessions::start,
        qr::qr,
        sessions::status,
        messages::send,
        outbox::enqueue,
        outbox::list,
        outbox::get,
        outbox::cancel,
        media::send_media,
        numbers::check,
        sessions::logout,
        sessions::force_clean,
        sessions::list,
        rate_limit::rate_limit_status,
        backups::list,
        backups::restore,
        events::events,
        cluster::nodes,
        metrics::render,
        crate::console::page,
        crate::console::script,
        crate::console::style,
        openapi_json,
        docs::redirect,
        docs::index,
        docs::file,
    ),
    // Path and query parameters name their schemas without registering them.
    components(schemas(ErrorSchema, MessageIdSchema, OrgIdSchema, qr::QrFormat)),
    security(("api_key" = []), ("bearer" = [])),
    tags(
        (name = "sessions", description = "One WhatsApp session per organization: start it, \
            show its QR code, read its status, clean it. The deployed client's surface."),
        (name = "messages", description = "The outbox: a message accepted (202) is on disk and \
            is sent once its organization is connected, with one WhatsApp id whatever the \
            retries."),
        (name = "backups", description = "Every clean, logout and restore keeps the session as a \
            backup; an operator puts one back without a shell."),
        (name = "monitoring", description = "Liveness, metrics, the connection-attempt budget and \
            live events."),
        (name = "pages", description = "The operator's console and this description, served from \
            the binary, working offline; no key."),
    ),
)]
struct ApiDoc;

/// The document this daemon serves: the `/sim` routes only in simulation mode.
pub fn document(sim_mode: bool) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    if sim_mode {
        doc.merge(sim::SimApi::openapi());
        doc.tags.get_or_insert_with(Vec::new).push(
            TagBuilder::new()
                .name(SIM_TAG)
                .description(Some(
                    "Simulation mode only (`wa-supervisor serve --sim`): drive each \
                     organization's fake phone. These routes do not exist otherwise.",
                ))
                .build(),
        );
    }
    edge::describe(&mut doc);
    doc
}

/// The document, serialized once per mode.
static DOCUMENTS: LazyLock<[String; 2]> = LazyLock::new(|| {
    [false, true].map(|sim_mode| {
        serde_json::to_string(&document(sim_mode)).expect("the document serializes")
    })
});

/// The routes of the document and of Swagger UI.
pub fn routes() -> Routes {
    Routes::new()
        .route(SPEC_PATH, get(openapi_json))
        .route("/docs", get(docs::redirect))
        .route("/docs/", get(docs::index))
        .route("/docs/{file}", get(docs::file))
}

/// This description: OpenAPI 3.1, generated from the code.
///
/// Describes what this daemon serves: the `/sim` routes only in simulation mode.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "pages",
    security(()),
    responses((status = 200, description = "The OpenAPI document.", body = Object)),
)]
pub async fn openapi_json(State(state): State<AppState>) -> Response {
    let json = &DOCUMENTS[usize::from(state.sim.is_some())];
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        json.as_str(),
    )
        .into_response()
}
