//! The route table the router is built from.
//!
//! [`Routes`] is axum's `Router` with a record of every path added to it, so the
//! paths the daemon serves can be listed from the one place they are declared:
//! the test that holds `GET /openapi.json` against the router reads this record,
//! and a route added without its OpenAPI entry fails it.

use axum::Router;
use axum::routing::MethodRouter;

use super::AppState;

/// Routes and the paths they serve.
#[derive(Default)]
pub struct Routes {
    router: Router<AppState>,
    paths: Vec<&'static str>,
}

impl Routes {
    pub fn new() -> Self {
        Self::default()
    }

    /// As axum's `Router::route`, recording `path`.
    pub fn route(mut self, path: &'static str, method_router: MethodRouter<AppState>) -> Self {
        self.router = self.router.route(path, method_router);
        self.paths.push(path);
        self
    }

    /// As axum's `Router::merge`, recording the other table's paths.
    pub fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.paths.extend(other.paths);
        self
    }

    /// A router that a library builds (Swagger UI), with the paths it mounts.
    pub fn mount(mut self, paths: &[&'static str], router: Router<AppState>) -> Self {
        self.router = self.router.merge(router);
        self.paths.extend_from_slice(paths);
        self
    }

    /// Every path added, in the order it was added.
    pub fn paths(&self) -> &[&'static str] {
        &self.paths
    }

    pub fn into_router(self) -> Router<AppState> {
        self.router
    }
}
