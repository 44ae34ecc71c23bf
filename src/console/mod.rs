//! `GET /console`: the operator's page, served from the binary.
//!
//! Hand-written HTML, CSS and JavaScript (`index.html`, `app.css`, `app.js` beside
//! this file, embedded with `include_str!`): nothing to install or build for users
//! or CI, small enough to read in one sitting, and no third-party code in a page
//! that holds the API key. It is served under a strict Content-Security-Policy, so
//! the script and the style are routes of their own; none of the three holds any
//! data, so none needs the key (the page asks for it and keeps it in memory).

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::http::routes::Routes;

const INDEX: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const APP_CSS: &str = include_str!("app.css");

/// Only this origin's script, style and API; images from this origin or `data:`
/// (the QR code); no plugins, frames, forms or base URL tricks.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

pub fn routes() -> Routes {
    Routes::new()
        .route("/console", get(page))
        .route("/console/app.js", get(script))
        .route("/console/app.css", get(style))
}

/// The operator's console.
///
/// Enter the API key (kept in the tab's memory only) to see every session live, an
/// organization's QR code, start, clean, log out, restore a backup, and its outbox.
#[utoipa::path(
    get,
    path = "/console",
    tag = "pages",
    security(()),
    responses((status = 200, description = "The page.", content_type = "text/html", body = String)),
)]
pub async fn page() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

/// The console's script.
#[utoipa::path(
    get,
    path = "/console/app.js",
    tag = "pages",
    security(()),
    responses((status = 200, description = "The script.", content_type = "text/javascript", body = String)),
)]
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

/// The console's style sheet.
#[utoipa::path(
    get,
    path = "/console/app.css",
    tag = "pages",
    security(()),
    responses((status = 200, description = "The style sheet.", content_type = "text/css", body = String)),
)]
pub async fn style() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
            // A new binary may bring a new page: always ask again (it is small).
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_no_inline_script_style_or_handler() {
        let lower = INDEX.to_lowercase();
        // Every <script> and stylesheet comes from a route of this origin.
        assert_eq!(lower.matches("<script").count(), 1);
        assert!(lower.contains("<script src=\"/console/app.js\" defer></script>"));
        assert!(!lower.contains("<style"));
        assert!(!lower.contains(" style="));
        for (i, _) in lower.match_indices(" on") {
            let attr: String = lower[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '=')
                .collect();
            assert!(!attr.ends_with('='), "an inline event handler: {attr}");
        }
        assert!(
            !lower.contains("http://") && !lower.contains("https://"),
            "no CDN"
        );
    }

    #[test]
    fn the_key_is_never_stored_or_put_in_a_url() {
        for forbidden in [
            "localstorage",
            "sessionstorage",
            "document.cookie",
            "indexeddb",
            "api_key=",
            "apikey=",
            "innerhtml",
            "eval(",
        ] {
            assert!(
                !APP_JS.to_lowercase().contains(forbidden),
                "app.js mentions {forbidden}"
            );
        }
        assert!(!APP_CSS.contains("http"), "no remote fonts or images");
    }

    #[test]
    fn every_element_the_script_looks_up_is_on_the_page() {
        for (i, _) in APP_JS.match_indices("$(\"#") {
            let id: String = APP_JS[i + 4..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            assert!(
                INDEX.contains(&format!("id=\"{id}\"")),
                "app.js looks up #{id}, which index.html lacks"
            );
        }
    }
}
