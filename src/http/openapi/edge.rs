//! What the edge of the HTTP stack adds to every operation of the document.
//!
//! The key check, the body limits, load shedding and the request timeout are
//! layers around every route (`super::super::router_and_paths`), not parts of a
//! handler, so their answers are described here once, for every operation they
//! apply to: `401` for keyed ones, `413` for those with a body, `503` and `504`
//! everywhere. Also here: the two security schemes, and the aliases that one
//! handler serves under several paths.

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Components, ContentBuilder, OpenApi, Ref, RefOr};

use crate::http::error::RETRY_AFTER_SECONDS;
use crate::http::extract::BODY_LIMIT;
use crate::http::sessions::CLEAN_ALIASES;

/// The path whose handler also serves [`CLEAN_ALIASES`].
const CLEAN_PATH: &str = "/api/force-clean-session";

/// Adds the edge's answers, the security schemes and the aliases to `doc`.
pub fn describe(doc: &mut OpenApi) {
    add_aliases(doc);
    let components = doc.components.get_or_insert_with(Components::default);
    add_security_schemes(components);
    for (name, response) in edge_responses() {
        components
            .responses
            .insert(name.to_owned(), RefOr::T(response));
    }
    for item in doc.paths.paths.values_mut() {
        for op in operations(item) {
            add_edge_answers(op);
        }
    }
}

fn add_security_schemes(components: &mut Components) {
    components.security_schemes.insert(
        "api_key".into(),
        RefOr::T(SecurityScheme::ApiKey(ApiKey::Header(
            ApiKeyValue::with_description(
                "X-API-Key",
                "The API key (`WHATSAPP_SERVER_API_KEY` or `[server] api_key_file`).",
            ),
        ))),
    );
    components.security_schemes.insert(
        "bearer".into(),
        RefOr::T(SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "The same API key as `Authorization: Bearer <key>` (Prometheus's \
                     `authorization` scrape setting sends it so).",
                ))
                .build(),
        )),
    );
}

/// The answers of the edge, by component name.
fn edge_responses() -> [(&'static str, utoipa::openapi::Response); 4] {
    let error = || {
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Error")))
            .build()
    };
    let response = |description: String| {
        ResponseBuilder::new()
            .description(description)
            .content("application/json", error())
    };
    [
        (
            "Unauthorized",
            response("The API key is missing or wrong: `{\"error\":\"unauthorized\"}`.".into())
                .build(),
        ),
        (
            "PayloadTooLarge",
            response(format!(
                "The request body is larger than {BODY_LIMIT} bytes."
            ))
            .build(),
        ),
        (
            "Overloaded",
            response(
                "Too many requests in flight (`[server] max_in_flight`): shed at once, not \
                 queued; retry after `Retry-After` seconds."
                    .into(),
            )
            .header(
                "Retry-After",
                HeaderBuilder::new()
                    .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)))
                    .description(Some(format!(
                        "Seconds to wait before retrying ({RETRY_AFTER_SECONDS})."
                    )))
                    .build(),
            )
            .build(),
        ),
        (
            "Timeout",
            response(
                "Still unanswered after `[server] request_timeout_seconds` (30): abandoned.".into(),
            )
            .build(),
        ),
    ]
}

/// The operations of a path item, whatever their method.
fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
        &mut item.query,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// Whether an operation needs no key: it says so with an empty requirement
/// (`security(())`); every other one inherits the document's.
fn is_open(op: &Operation) -> bool {
    op.security.as_ref().is_some_and(|requirements| {
        requirements
            .iter()
            .any(|r| *r == utoipa::openapi::security::SecurityRequirement::default())
    })
}

fn add_edge_answers(op: &mut Operation) {
    let mut answers = vec![("503", "Overloaded"), ("504", "Timeout")];
    if !is_open(op) {
        answers.push(("401", "Unauthorized"));
    }
    if op.request_body.is_some() {
        answers.push(("413", "PayloadTooLarge"));
    }
    for (code, component) in answers {
        op.responses
            .responses
            .entry(code.to_owned())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(component)));
    }
}

/// The aliases of `POST /api/force-clean-session`: the same operation under their
/// own paths and operation ids.
fn add_aliases(doc: &mut OpenApi) {
    let Some(original) = doc.paths.paths.get(CLEAN_PATH).cloned() else {
        return;
    };
    for alias in CLEAN_ALIASES {
        let mut item = original.clone();
        for op in operations(&mut item) {
            op.operation_id = Some(alias.trim_start_matches("/api/").replace('-', "_"));
            op.summary = Some(format!("The same as POST {CLEAN_PATH} (an alias)."));
        }
        doc.paths.paths.insert(alias.to_owned(), item);
    }
}
