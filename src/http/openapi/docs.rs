//! `GET /docs`: Swagger UI over `/openapi.json`, its files inside the binary
//! (`utoipa-swagger-ui`'s `vendored` feature: nothing is fetched at build or run
//! time).
//!
//! Swagger UI keeps an entered key in the page's memory only (its
//! `persistAuthorization` is off), fetches nothing but this origin (its online
//! validator is off) and takes no document URL from the query string.

use std::sync::{Arc, LazyLock};

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use utoipa_swagger_ui::Config;

use super::SPEC_PATH;
use crate::http::error::ApiError;
use crate::http::openapi::schemas::ErrorSchema;

static CONFIG: LazyLock<Arc<Config<'static>>> = LazyLock::new(|| {
    Arc::new(
        Config::from(SPEC_PATH)
            .validator_url("none")
            .persist_authorization(false)
            .query_config_enabled(false),
    )
});

/// Swagger UI: this description as a page where each route can be tried.
///
/// Answers with a redirect to `/docs/`, where the page's relative links resolve.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "pages",
    security(()),
    responses((status = 303, description = "See `/docs/`.", headers(("location" = String)))),
)]
pub async fn redirect() -> Redirect {
    Redirect::to("/docs/")
}

/// Swagger UI's page.
#[utoipa::path(
    get,
    path = "/docs/",
    tag = "pages",
    security(()),
    responses((status = 200, description = "The page.", content_type = "text/html", body = String)),
)]
pub async fn index() -> Result<Response, ApiError> {
    serve("")
}

/// A file of Swagger UI's page: its scripts, style sheets and icons.
#[utoipa::path(
    get,
    path = "/docs/{file}",
    tag = "pages",
    security(()),
    params(("file" = String, Path, description = "The file's name, e.g. `swagger-ui.css`.")),
    responses(
        (status = 200, description = "The file.", content(
            ("text/html"), ("text/css"), ("text/javascript"), ("application/javascript"),
            ("image/png"), ("application/json"), ("application/octet-stream"),
        )),
        (status = 404, description = "No such file.", body = ErrorSchema),
    ),
)]
pub async fn file(Path(name): Path<String>) -> Result<Response, ApiError> {
    serve(&name)
}

fn serve(name: &str) -> Result<Response, ApiError> {
    let file = utoipa_swagger_ui::serve(name, CONFIG.clone())
        .map_err(|e| ApiError::Internal(format!("Swagger UI's {name:?}: {e}")))?
        .ok_or(ApiError::NotFound)?;
    let mut response = (
        [
            (header::CONTENT_TYPE, file.content_type),
            (header::CACHE_CONTROL, "no-cache".to_owned()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            (header::REFERRER_POLICY, "no-referrer".to_owned()),
        ],
        file.bytes.into_owned(),
    )
        .into_response();
    if file.gzpipped {
        response.headers_mut().insert(
            header::CONTENT_ENCODING,
            header::HeaderValue::from_static("gzip"),
        );
    }
    Ok(response)
}
