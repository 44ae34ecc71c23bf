//! Any node answers every route for every org (CONTRACT §13): this module sends
//! the requests only an org's owner can act on to that node, and serves
//! `GET /api/cluster`.
//!
//! The routes that act on a running session (start, logout, clean and its
//! aliases, restore) and the `/sim/{org}/*` routes that drive the fake phone
//! (scan, inject, receipt, contacts) are answered by the node holding the org's
//! lease. A request for an org held elsewhere is handed to that node whole
//! (method, path, body; the key was checked here and is not passed on) through
//! the database's `wa_commands` table; that node runs it through its own router
//! and its answer is this request's answer, status and body alike. A request
//! that starts a session for an org no node runs goes to the live node holding
//! the fewest orgs (which takes the lease on arrival). Everything else is read
//! from the database by whichever node is asked: statuses and QR codes (the
//! owners publish them), the outbox, backups, the fake phone's sent log.
//!
//! The extension [`Forwarded`] marks a request a node runs for another one: it is
//! never forwarded again (a node that no longer holds the org answers with the
//! holder's id in `x-wa-owner`, and the first node tries once more there), and
//! the key check lets it through (only this process can set an extension).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use wa_actors::OrgId;
use wa_actors::cluster::{ClusterNode, Route};
use wa_store_postgres::PostgresCommands;

use super::AppState;
use super::error::ApiError;
use super::extract::BODY_LIMIT;
use super::openapi::schemas::ErrorSchema;
use crate::cluster::Replies;

/// Marks a request run on behalf of another node.
#[derive(Clone, Copy, Debug)]
pub struct Forwarded;

/// The header a node answers with when it does not hold the org: its holder.
pub const OWNER_HEADER: &str = "x-wa-owner";

/// How many nodes a request is tried on before it is answered `503`.
const HOPS: usize = 3;

/// What the forwarding needs (in the handlers' state, in cluster mode only).
pub struct ClusterHttp {
    pub node: ClusterNode,
    pub commands: Arc<PostgresCommands>,
    pub replies: Replies,
    /// A forwarded request's answer is awaited this long at most.
    pub answer_within: Duration,
}

/// Which node must answer a request, as far as its route says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owned {
    /// Anyone answers.
    Anywhere,
    /// The owner answers; `place`: an org no node runs gets one.
    Owner { place: bool },
}

/// The routes the org's owner answers, and where their org is.
fn owned(method: &axum::http::Method, path: &str) -> Owned {
    if method != axum::http::Method::POST {
        return Owned::Anywhere;
    }
    match path {
        "/api/start-session"
        | "/api/restore"
        | "/api/force-clean-session"
        | "/api/clear-corrupted-session"
        | "/api/clear-session" => Owned::Owner { place: true },
        // The number check asks the org's own connection.
        "/api/logout" | "/api/check-number" => Owned::Owner { place: false },
        // A media file goes to the database's shared store on whichever node
        // accepts it, like a text message to the shared outbox (`/api/send-media`
        // is answered anywhere).
        _ => match sim_route(path) {
            Some((_, "scan" | "inject" | "receipt" | "contacts")) => Owned::Owner { place: false },
            _ => Owned::Anywhere,
        },
    }
}

/// `/sim/{org}/{action}` split.
fn sim_route(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/sim/")?;
    let (org, action) = rest.split_once('/')?;
    (!action.contains('/')).then_some((org, action))
}

/// The org a body names (`organization_id`, a string or a number).
fn org_of_body(body: &[u8]) -> Option<OrgId> {
    let value: Value = serde_json::from_slice(body).ok()?;
    match value.get("organization_id")? {
        Value::String(s) => OrgId::parse(s.trim()).ok(),
        Value::Number(n) => OrgId::parse(&n.to_string()).ok(),
        _ => None,
    }
}

/// The middleware (on the keyed routes, after the key check).
pub async fn forward(
    State(cluster): State<Arc<ClusterHttp>>,
    req: Request,
    next: Next,
) -> Response {
    let Owned::Owner { place } = owned(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    let forwarded = req.extensions().get::<Forwarded>().is_some();
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, BODY_LIMIT).await else {
        return ApiError::PayloadTooLarge { limit: BODY_LIMIT }.into_response();
    };
    let org = match sim_route(parts.uri.path()) {
        Some((org, _)) => OrgId::parse(org).ok(),
        None => org_of_body(&body),
    };
    let req = Request::from_parts(parts, Body::from(body.clone()));
    // A request the handler refuses anyway (no org, a bad one) is answered here.
    let Some(org) = org else {
        return next.run(req).await;
    };
    if forwarded {
        // Sent here as the owner: take the lease if needed, never send it on.
        return match cluster.node.acquire(&org).await {
            Ok(Route::Here) => run_here(&cluster, &org, req, next).await,
            Ok(Route::Node(holder)) => moved(&holder),
            Err(e) => unavailable(&e.to_string()),
        };
    }
    // Built before any await: a request's body is not `Sync`, so no reference to
    // the request may be held across one.
    let envelope = envelope(&req, &body);
    let mut tried = Vec::new();
    let mut route = cluster.node.route(&org, place).await;
    loop {
        match route {
            Ok(Route::Here) => return run_here(&cluster, &org, req, next).await,
            Ok(Route::Node(node)) if tried.len() < HOPS && !tried.contains(&node) => {
                tried.push(node.clone());
                match send(&cluster, &node, &org, &envelope).await {
                    Ok(Answer::Done(response)) => return response,
                    Ok(Answer::Moved(holder)) if holder == cluster.node.node_id() => {
                        route = cluster.node.acquire(&org).await;
                    }
                    Ok(Answer::Moved(holder)) => route = Ok(Route::Node(holder)),
                    Err(response) => return response,
                }
            }
            Ok(Route::Node(node)) => {
                return unavailable(&format!(
                    "the organization is moving between nodes (last seen on {node}); retry"
                ));
            }
            Err(e) => return unavailable(&e.to_string()),
        }
    }
}

/// Runs the request here while the org's lease is held, then lets it go if the
/// request left no session (a clean, a logout).
async fn run_here(cluster: &ClusterHttp, org: &OrgId, req: Request, next: Next) -> Response {
    let finish = Finish {
        node: cluster.node.clone(),
        org: Some(org.clone()),
    };
    let response = next.run(req).await;
    finish.now().await;
    response
}

/// A request answered here ends, even when its client went away and the request
/// was dropped mid-way: the org is never left marked busy.
struct Finish {
    node: ClusterNode,
    org: Option<OrgId>,
}

impl Finish {
    async fn now(mut self) {
        if let Some(org) = self.org.take() {
            self.node.finish(&org).await;
        }
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        if let Some(org) = self.org.take() {
            let node = self.node.clone();
            tokio::spawn(async move { node.finish(&org).await });
        }
    }
}

/// What the node a request was handed to did with it.
enum Answer {
    Done(Response),
    /// It does not hold the org; this node does.
    Moved(String),
}

/// The request as a command row carries it: method, path, content type, body.
fn envelope(req: &Request, body: &Bytes) -> Value {
    json!({
        "method": req.method().as_str(),
        "uri": req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/"),
        "content_type": req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
        "body": B64.encode(body),
    })
}

/// Hands the request to `node` and waits for its answer.
async fn send(
    cluster: &ClusterHttp,
    node: &str,
    org: &OrgId,
    request: &Value,
) -> Result<Answer, Response> {
    let id = cluster
        .commands
        .send(node, org, request)
        .await
        .map_err(|e| unavailable(&format!("the cluster database failed: {e}")))?;
    let reply = cluster
        .replies
        .wait(&cluster.commands, id, cluster.answer_within)
        .await;
    let Some(reply) = reply else {
        let _ = cluster.commands.withdraw(id).await;
        tracing::warn!(org_id = %org, node, "the owning node did not answer a request in time");
        return Err(unavailable(&format!(
            "the node driving this organization ({node}) did not answer in time"
        )));
    };
    if let Some(holder) = reply["owner"].as_str() {
        return Ok(Answer::Moved(holder.to_owned()));
    }
    Ok(Answer::Done(response_of(&reply)))
}

/// A reply row as this request's response.
fn response_of(reply: &Value) -> Response {
    let status = reply["status"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::BAD_GATEWAY);
    let body = reply["body"]
        .as_str()
        .and_then(|b| B64.decode(b).ok())
        .unwrap_or_default();
    let mut response = (status, body).into_response();
    if let Some(ct) = reply["content_type"]
        .as_str()
        .and_then(|c| HeaderValue::from_str(c).ok())
    {
        response.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    response
}

/// The answer of a node that does not hold the org any more.
fn moved(holder: &str) -> Response {
    let mut response = unavailable("this node does not drive the organization");
    if let Ok(value) = HeaderValue::from_str(holder) {
        response.headers_mut().insert(OWNER_HEADER, value);
    }
    response
}

fn unavailable(why: &str) -> Response {
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "error": why })),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// Runs a request handed over by another node through this node's router, and
/// returns the reply row's JSON: the response, or `{"owner"}` when this node does
/// not hold the org.
pub async fn run_forwarded(app: axum::Router, request: &Value) -> Value {
    use tower::ServiceExt;
    let method = request["method"].as_str().unwrap_or("GET");
    let uri = request["uri"].as_str().unwrap_or("/");
    let body = request["body"]
        .as_str()
        .and_then(|b| B64.decode(b).ok())
        .unwrap_or_default();
    let mut builder = axum::http::Request::builder().method(method).uri(uri);
    if let Some(ct) = request["content_type"].as_str() {
        builder = builder.header(header::CONTENT_TYPE, ct);
    }
    let Ok(mut req) = builder.body(Body::from(body)) else {
        return json!({ "status": 400, "body": B64.encode(br#"{"error":"unreadable forwarded request"}"#), "content_type": "application/json" });
    };
    req.extensions_mut().insert(Forwarded);
    let response = match app.oneshot(req).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    if let Some(owner) = response
        .headers()
        .get(OWNER_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        return json!({ "owner": owner });
    }
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = axum::body::to_bytes(response.into_body(), 4 * BODY_LIMIT)
        .await
        .unwrap_or_default();
    json!({ "status": status, "content_type": content_type, "body": B64.encode(&body) })
}

/// One node of `GET /api/cluster`.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeInfo {
    node_id: String,
    /// Its last heartbeat.
    last_seen: DateTime<Utc>,
    /// The leases it holds that have not expired.
    orgs: u64,
    /// Whether its last heartbeat is within the lease time.
    live: bool,
}

/// The answer of `GET /api/cluster`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterInfo {
    /// The node that answered.
    node_id: String,
    /// The nodes seen recently, live or not.
    nodes: Vec<NodeInfo>,
    /// Every lease, held or free: the organizations the cluster runs.
    leases: u64,
}

/// The nodes of the cluster, with the organizations each drives.
///
/// Only with several daemons on one database (`[store] kind = "postgres"`); a
/// daemon on its own answers `400`.
#[utoipa::path(
    get,
    path = "/api/cluster",
    operation_id = "cluster_nodes",
    tag = "monitoring",
    responses(
        (status = 200, description = "The nodes seen recently.", body = ClusterInfo),
        (status = 400, description = "This daemon runs on its own: there is no cluster.", body = ErrorSchema),
        (status = 500, description = "The cluster database failed.", body = ErrorSchema),
    ),
)]
pub async fn nodes(State(state): State<AppState>) -> Result<Json<ClusterInfo>, ApiError> {
    let Some(cluster) = &state.cluster else {
        return Err(ApiError::BadRequest(
            "this daemon runs on its own ([store] kind = \"sqlite\"); there is no cluster".into(),
        ));
    };
    let lease = cluster.node.lease();
    let census = cluster
        .node
        .store()
        .census(lease, lease * 20)
        .await
        .map_err(|e| ApiError::Storage(e.to_string()))?;
    let nodes = census
        .nodes
        .into_iter()
        .map(|n| NodeInfo {
            node_id: n.node_id,
            last_seen: n.last_seen,
            orgs: n.orgs,
            live: n.live,
        })
        .collect();
    Ok(Json(ClusterInfo {
        node_id: cluster.node.node_id().to_owned(),
        nodes,
        leases: census.leases,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    #[test]
    fn the_owner_answers_what_acts_on_a_session() {
        #[rustfmt::skip]
        let table = [
            (Method::POST, "/api/start-session",            Owned::Owner { place: true }),
            (Method::POST, "/api/restore",                  Owned::Owner { place: true }),
            (Method::POST, "/api/force-clean-session",      Owned::Owner { place: true }),
            (Method::POST, "/api/clear-corrupted-session",  Owned::Owner { place: true }),
            (Method::POST, "/api/clear-session",            Owned::Owner { place: true }),
            (Method::POST, "/api/logout",                   Owned::Owner { place: false }),
            (Method::POST, "/api/check-number",             Owned::Owner { place: false }),
            (Method::POST, "/sim/7/scan",                   Owned::Owner { place: false }),
            (Method::POST, "/sim/7/inject",                 Owned::Owner { place: false }),
            (Method::POST, "/sim/7/receipt",                Owned::Owner { place: false }),
            (Method::POST, "/sim/7/contacts",               Owned::Owner { place: false }),
            (Method::GET,  "/sim/7/sent",                   Owned::Anywhere),
            (Method::POST, "/sim/stall",                    Owned::Anywhere),
            (Method::POST, "/sim/7/scan/x",                 Owned::Anywhere),
            (Method::POST, "/api/messages",                 Owned::Anywhere),
            (Method::POST, "/api/send-message",             Owned::Anywhere),
            (Method::GET,  "/api/status/7",                 Owned::Anywhere),
            (Method::GET,  "/api/start-session",            Owned::Anywhere),
        ];
        for (method, path, want) in table {
            assert_eq!(owned(&method, path), want, "{method} {path}");
        }
    }

    #[test]
    fn the_org_is_read_from_the_body_as_a_string_or_a_number() {
        let org = |body: &str| org_of_body(body.as_bytes()).map(|o| o.to_string());
        assert_eq!(
            org(r#"{"organization_id":"optica-2"}"#).as_deref(),
            Some("optica-2")
        );
        assert_eq!(org(r#"{"organization_id":2}"#).as_deref(), Some("2"));
        assert_eq!(org(r#"{"organization_id":" 7 "}"#).as_deref(), Some("7"));
        for bad in [
            r#"{"organization_id":"../x"}"#,
            r#"{"organization_id":2.5}"#,
            r#"{"organization_id":null}"#,
            r#"{}"#,
            "not json",
        ] {
            assert_eq!(org(bad), None, "{bad}");
        }
    }
}
