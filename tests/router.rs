//! The HTTP surface of CONTRACT §2 and §9, route by route, without a socket: each
//! request goes through `tower::ServiceExt::oneshot` into the real router over a
//! real `Supervisor` whose connections are the simulator's fake phones.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tempfile::TempDir;
use tower::ServiceExt;

use common::{decode_png_qr, decode_qr_data_url};
use wa_actors::connection::sim::{SimConnector, SimTiming};
use wa_actors::{
    OrgId, SessionSnapshot, SessionStatus, Supervisor, SupervisorConfig, SupervisorParts,
};
use wa_supervisor::api_key::ApiKey;
use wa_supervisor::http::{AppState, AppStateParts, HttpLimits, router_and_paths};

const KEY: &str = "router-test-key-0123456789abcdef";
const WAIT: Duration = Duration::from_secs(10);

struct App {
    router: Router,
    /// Every path the router serves, from the route tables it is built from.
    paths: Vec<&'static str>,
    sup: Supervisor,
    sim: SimConnector,
    _dir: TempDir,
}

#[derive(Clone, Copy, Debug)]
enum Key {
    Good,
    Missing,
    Wrong,
}

struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Resp {
    fn json(&self) -> Value {
        assert_eq!(
            self.headers
                .get(header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap()),
            Some("application/json"),
            "status {} body {:?}",
            self.status,
            self.body
        );
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// Asserts the status and a JSON error body, and returns the body.
    fn error(&self, status: StatusCode) -> Value {
        let body = self.json();
        assert_eq!(self.status, status, "{body}");
        assert!(body["error"].is_string(), "{body}");
        body
    }

    fn ok(&self) -> Value {
        let body = self.json();
        assert_eq!(self.status, StatusCode::OK, "{body}");
        body
    }
}

async fn app() -> App {
    app_in_mode(true).await
}

async fn app_in_mode(sim_mode: bool) -> App {
    app_with(sim_mode, HttpLimits::default()).await
}

async fn app_with(sim_mode: bool, limits: HttpLimits) -> App {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimConnector::new(SimTiming::default());
    let sup = Supervisor::spawn(SupervisorParts {
        config: SupervisorConfig::new(dir.path().join("sessions")),
        connector: Arc::new(sim.clone()),
        outbox: Arc::new(wa_actors::outbox::MemoryStore::new()),
        events: Arc::new(wa_actors::events::NoEvents),
    })
    .await
    .unwrap();
    let state = AppState::new(AppStateParts {
        supervisor: sup.clone(),
        api_key: Arc::new(ApiKey::new(KEY)),
        sim: sim_mode.then(|| sim.clone()),
        phone: Default::default(),
        events: Default::default(),
        cluster: None,
    });
    let (router, paths) = router_and_paths(state, limits);
    App {
        router,
        paths,
        sup,
        sim,
        _dir: dir,
    }
}

fn org(id: &str) -> OrgId {
    OrgId::parse(id).unwrap()
}

impl App {
    async fn send(&self, req: Request<Body>) -> Resp {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        assert!(
            !String::from_utf8_lossy(&body).contains(KEY),
            "the key leaked into a response"
        );
        Resp {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    async fn request(&self, method: &str, uri: &str, key: Key, body: Option<&str>) -> Resp {
        let mut req = Request::builder().method(method).uri(uri);
        match key {
            Key::Good => req = req.header("X-API-Key", KEY),
            Key::Wrong => req = req.header("X-API-Key", "wrong-key"),
            Key::Missing => {}
        }
        let body = match body {
            Some(text) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(text.to_owned())
            }
            None => Body::empty(),
        };
        self.send(req.body(body).unwrap()).await
    }

    async fn get(&self, uri: &str) -> Resp {
        self.request("GET", uri, Key::Good, None).await
    }

    async fn post(&self, uri: &str, body: Value) -> Resp {
        self.request("POST", uri, Key::Good, Some(&body.to_string()))
            .await
    }

    async fn post_raw(&self, uri: &str, body: &str) -> Resp {
        self.request("POST", uri, Key::Good, Some(body)).await
    }

    async fn wait(&self, id: &str, status: SessionStatus) -> SessionSnapshot {
        self.sup
            .wait_for(&org(id), WAIT, |s| s.status == status)
            .await
            .unwrap_or_else(|| {
                panic!(
                    "{id} never reached {status}: {:?}",
                    self.sup.status(&org(id))
                )
            })
    }

    /// Starts a session and waits for its QR.
    async fn start_qr(&self, id: &str) -> SessionSnapshot {
        self.post("/api/start-session", json!({ "organization_id": id }))
            .await
            .ok();
        self.wait(id, SessionStatus::QrReady).await
    }

    /// Starts a session, scans its QR as `phone` and waits until it is connected.
    async fn connect(&self, id: &str, phone: &str) -> SessionSnapshot {
        self.start_qr(id).await;
        self.sim.scan(&org(id), phone).unwrap();
        self.wait(id, SessionStatus::Connected).await
    }
}

/// Every keyed route with a valid request body (for the auth matrix).
const KEYED: &[(&str, &str, Option<&str>)] = &[
    (
        "POST",
        "/api/start-session",
        Some(r#"{"organization_id":"1"}"#),
    ),
    ("GET", "/api/qr/1", None),
    ("GET", "/api/status/1", None),
    (
        "POST",
        "/api/send-message",
        Some(r#"{"organization_id":"1","phone":"573001234567","message":"hi"}"#),
    ),
    ("POST", "/api/logout", Some(r#"{"organization_id":"1"}"#)),
    (
        "POST",
        "/api/force-clean-session",
        Some(r#"{"organization_id":"1"}"#),
    ),
    (
        "POST",
        "/api/clear-corrupted-session",
        Some(r#"{"organization_id":"1"}"#),
    ),
    (
        "POST",
        "/api/clear-session",
        Some(r#"{"organization_id":"1"}"#),
    ),
    ("GET", "/api/sessions", None),
    ("GET", "/api/rate-limit-status", None),
    ("GET", "/api/rate-limit-status?organization_id=1", None),
    ("POST", "/sim/1/scan", Some(r#"{"phone":"573001234567"}"#)),
    ("POST", "/sim/1/inject", Some(r#"{"fault":"bad_mac"}"#)),
    ("GET", "/sim/1/sent", None),
    ("GET", "/api/backups/1", None),
    (
        "POST",
        "/api/restore",
        Some(r#"{"organization_id":"1","backup":"20260101T000000Z_x"}"#),
    ),
    ("GET", "/api/events", None),
];

/// Routes whose body carries `organization_id`.
const ORG_BODY_ROUTES: &[&str] = &[
    "/api/start-session",
    "/api/send-message",
    "/api/logout",
    "/api/force-clean-session",
    "/api/clear-corrupted-session",
    "/api/clear-session",
    "/api/restore",
];

/// Every route that reads a JSON body.
const BODY_ROUTES: &[&str] = &[
    "/api/start-session",
    "/api/send-message",
    "/api/logout",
    "/api/force-clean-session",
    "/api/clear-corrupted-session",
    "/api/clear-session",
    "/api/restore",
    "/sim/1/scan",
    "/sim/1/inject",
];

#[tokio::test]
async fn health_needs_no_key() {
    let app = app().await;
    let r = app.request("GET", "/health", Key::Missing, None).await;
    let body = r.ok();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["sessions"], 0);
    let ts = body["timestamp"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");

    app.start_qr("3").await;
    assert_eq!(app.get("/health").await.ok()["sessions"], 1);
}

#[tokio::test]
async fn every_keyed_route_refuses_a_missing_or_wrong_key() {
    let app = app().await;
    for &(method, uri, body) in KEYED {
        for key in [Key::Missing, Key::Wrong] {
            let r = app.request(method, uri, key, body).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {uri} {key:?}");
            assert_eq!(
                r.json(),
                json!({ "error": "unauthorized" }),
                "{method} {uri}"
            );
        }
    }
    // Nothing was started by a refused request.
    assert!(app.sup.sessions().is_empty());
}

#[tokio::test]
async fn the_key_is_checked_before_the_body_is_read() {
    let app = app().await;
    for uri in BODY_ROUTES {
        let r = app
            .request("POST", uri, Key::Missing, Some("{not json"))
            .await;
        assert_eq!(r.error(StatusCode::UNAUTHORIZED)["error"], "unauthorized");
        let big = "x".repeat(100 * 1024);
        let r = app.request("POST", uri, Key::Wrong, Some(&big)).await;
        assert_ne!(r.status, StatusCode::OK, "{uri}");
        assert!(r.json()["error"].is_string());
    }
}

#[tokio::test]
async fn the_key_header_name_is_case_insensitive() {
    let app = app().await;
    let req = Request::get("/api/sessions")
        .header("x-api-key", KEY)
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(req).await.status, StatusCode::OK);
    let req = Request::get("/api/sessions")
        .header("X-API-KEY", KEY)
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(req).await.status, StatusCode::OK);
}

#[tokio::test]
async fn start_session_accepts_string_and_number_ids_and_never_restarts() {
    let app = app().await;
    let r = app
        .post(
            "/api/start-session",
            json!({ "organization_id": 42, "extra": [1, 2] }),
        )
        .await;
    let body = r.ok();
    assert_eq!(body["organization_id"], "42");
    assert!(body["message"].is_string());
    assert!(body["status"].is_string());
    assert_eq!(body["already_running"], false);
    let first = app.wait("42", SessionStatus::QrReady).await;

    let body = app
        .post("/api/start-session", json!({ "organization_id": "42" }))
        .await
        .ok();
    assert_eq!(body["organization_id"], "42");
    assert_eq!(body["already_running"], true);
    assert_eq!(body["status"], "qr_ready");
    assert_eq!(
        app.sup.status(&org("42")).qr,
        first.qr,
        "the QR was not reset"
    );
}

#[tokio::test]
async fn start_session_with_a_phone_number_asks_for_a_pairing_code() {
    let app = app().await;
    app.post(
        "/api/start-session",
        json!({ "organization_id": "9", "phone_number": "+57 300-123-4567" }),
    )
    .await
    .ok();
    let snap = app
        .sup
        .wait_for(&org("9"), WAIT, |s| s.pairing_code.is_some())
        .await
        .expect("a pairing code");
    let body = app.get("/api/qr/9").await.ok();
    assert_eq!(body["pairing_code"].as_str(), snap.pairing_code.as_deref());

    let r = app
        .post(
            "/api/start-session",
            json!({ "organization_id": "10", "phone_number": "call me" }),
        )
        .await;
    assert!(
        r.error(StatusCode::BAD_REQUEST)["error"]
            .as_str()
            .unwrap()
            .contains("phone")
    );
    assert_eq!(app.sup.status(&org("10")).status, SessionStatus::NotStarted);
}

#[tokio::test]
async fn body_routes_refuse_missing_or_bad_organization_ids() {
    let app = app().await;
    for uri in ORG_BODY_ROUTES {
        let body = app.post(uri, json!({ "phone": "573001234567" })).await;
        let body = body.error(StatusCode::BAD_REQUEST);
        assert!(
            body["error"].as_str().unwrap().contains("organization_id"),
            "{uri}: {body}"
        );
        let r = app.post(uri, json!({ "organization_id": null })).await;
        r.error(StatusCode::BAD_REQUEST);
        for bad in [
            json!(""),
            json!("../etc"),
            json!("a b"),
            json!("_backups"),
            json!("api_key"),
            json!("x".repeat(65)),
            json!(2.5),
            json!(true),
            json!({ "id": 2 }),
        ] {
            let r = app
                .post(
                    uri,
                    json!({ "organization_id": bad, "phone": "573001234567", "message": "m" }),
                )
                .await;
            let body = r.error(StatusCode::BAD_REQUEST);
            assert!(
                body["error"].as_str().unwrap().contains("organization_id"),
                "{uri} {bad}: {body}"
            );
        }
    }
    assert!(app.sup.sessions().is_empty());
}

#[tokio::test]
async fn body_routes_answer_malformed_json_with_json() {
    let app = app().await;
    for uri in BODY_ROUTES {
        for bad in ["{not json", "", "   ", "[1,2", "\"just a string\"", "42"] {
            let r = app.post_raw(uri, bad).await;
            r.error(StatusCode::BAD_REQUEST);
        }
        // Without a JSON content type the body still parses (curl -d sends
        // application/x-www-form-urlencoded).
        let req = Request::post(*uri)
            .header("X-API-Key", KEY)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from("{oops"))
            .unwrap();
        let r = app.send(req).await;
        assert!(
            r.error(StatusCode::BAD_REQUEST)["error"]
                .as_str()
                .unwrap()
                .contains("malformed JSON")
        );
    }
}

#[tokio::test]
async fn a_body_over_64_kib_is_413_json() {
    let app = app().await;
    let big = json!({ "organization_id": "1", "phone": "573001234567", "message": "x".repeat(65 * 1024) })
        .to_string();
    // Declared too large: refused before the body is read.
    let req = Request::post("/api/send-message")
        .header("X-API-Key", KEY)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, big.len())
        .body(Body::from(big.clone()))
        .unwrap();
    let body = app.send(req).await.error(StatusCode::PAYLOAD_TOO_LARGE);
    assert!(body["error"].as_str().unwrap().contains("65536"), "{body}");
    // No length declared: refused while reading.
    let r = app.post_raw("/api/send-message", &big).await;
    r.error(StatusCode::PAYLOAD_TOO_LARGE);
    // Just under the limit is read (and then refused for what it says).
    let r = app
        .post(
            "/api/send-message",
            json!({ "organization_id": "1", "phone": "573001234567", "message": "x".repeat(60 * 1024) }),
        )
        .await;
    assert_eq!(r.error(StatusCode::NOT_FOUND)["status"], "not_started");
}

#[tokio::test]
async fn unknown_routes_are_404_json_and_wrong_methods_405_json() {
    let app = app().await;
    for uri in [
        "/",
        "/nope",
        "/api",
        "/api/unknown",
        "/api/qr",
        "/api/qr/1/x",
    ] {
        let r = app.get(uri).await;
        assert_eq!(
            r.error(StatusCode::NOT_FOUND)["error"],
            "not found",
            "{uri}"
        );
    }
    for (method, uri) in [
        ("GET", "/api/start-session"),
        ("DELETE", "/api/sessions"),
        ("POST", "/api/status/1"),
        ("PUT", "/api/qr/1"),
        ("POST", "/health"),
        ("GET", "/sim/1/scan"),
    ] {
        let r = app.request(method, uri, Key::Good, None).await;
        let body = r.error(StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body["error"], "method not allowed", "{method} {uri}");
    }
}

#[tokio::test]
async fn qr_routes() {
    let app = app().await;
    // No session: 404 with the status and a hint.
    let body = app.get("/api/qr/5").await.error(StatusCode::NOT_FOUND);
    assert_eq!(body["status"], "not_started");
    assert_eq!(body["hint"], "POST /api/start-session first");
    app.get("/api/qr/5?format=png")
        .await
        .error(StatusCode::NOT_FOUND);
    app.get("/api/qr/bad%20id")
        .await
        .error(StatusCode::BAD_REQUEST);
    app.get("/api/qr/_backups")
        .await
        .error(StatusCode::BAD_REQUEST);

    app.start_qr("5").await;
    let payload = app.sim.current_qr(&org("5")).expect("the phone shows a QR");

    let body = app.get("/api/qr/5").await.ok();
    assert_eq!(body["organization_id"], "5");
    assert_eq!(body["status"], "qr_ready");
    assert_eq!(body["has_qr"], true);
    assert!(body.get("pairing_code").is_some());
    let url = body["qr"].as_str().unwrap();
    assert_eq!(decode_qr_data_url(url), payload);

    let r = app.get("/api/qr/5?format=png").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[header::CONTENT_TYPE], "image/png");
    assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(decode_png_qr(&r.body), payload);

    let r = app.get("/api/qr/5?format=svg").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[header::CONTENT_TYPE], "image/svg+xml");
    assert!(String::from_utf8_lossy(&r.body).contains("<svg"));

    let body = app.get("/api/qr/5?format=raw").await.ok();
    assert_eq!(body["qr_raw"], payload.as_str());

    let body = app
        .get("/api/qr/5?format=gif")
        .await
        .error(StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("png"));

    // Once connected there is no QR: JSON says so, the image formats are 404.
    app.sim.scan(&org("5"), "573001234567").unwrap();
    app.wait("5", SessionStatus::Connected).await;
    let body = app.get("/api/qr/5").await.ok();
    assert_eq!(body["qr"], Value::Null);
    assert_eq!(body["has_qr"], false);
    assert_eq!(body["status"], "connected");
    for format in ["png", "svg", "raw"] {
        let body = app
            .get(&format!("/api/qr/5?format={format}"))
            .await
            .error(StatusCode::NOT_FOUND);
        assert_eq!(body["status"], "connected");
    }
}

#[tokio::test]
async fn status_route() {
    let app = app().await;
    let body = app.get("/api/status/77").await.ok();
    assert_eq!(body["organization_id"], "77");
    assert_eq!(body["status"], "not_started");
    assert_eq!(body["connected"], false);
    assert_eq!(body["has_qr"], false);
    assert_eq!(body["phone_number"], Value::Null);
    app.get("/api/status/a.b")
        .await
        .error(StatusCode::BAD_REQUEST);
    app.get(&format!("/api/status/{}", "x".repeat(65)))
        .await
        .error(StatusCode::BAD_REQUEST);

    app.start_qr("77").await;
    let body = app.get("/api/status/77").await.ok();
    assert_eq!(body["status"], "qr_ready");
    assert_eq!(body["has_qr"], true);

    app.sim.scan(&org("77"), "573001112233").unwrap();
    app.wait("77", SessionStatus::Connected).await;
    let body = app.get("/api/status/77").await.ok();
    assert_eq!(body["status"], "connected");
    assert_eq!(body["connected"], true);
    assert_eq!(body["has_qr"], false);
    assert_eq!(body["phone_number"], "573001112233");
}

#[tokio::test]
async fn send_message_route() {
    let app = app().await;
    let send = |org: &'static str, phone: &'static str, message: &'static str| json!({ "organization_id": org, "phone": phone, "message": message });

    // No session.
    let body = app
        .post("/api/send-message", send("8", "573001234567", "hi"))
        .await
        .error(StatusCode::NOT_FOUND);
    assert_eq!(body["status"], "not_started");
    assert_eq!(body["hint"], "POST /api/start-session first");

    // Not connected yet: 400 with the status and a hint.
    app.start_qr("8").await;
    let body = app
        .post("/api/send-message", send("8", "573001234567", "hi"))
        .await
        .error(StatusCode::BAD_REQUEST);
    assert_eq!(body["status"], "qr_ready");
    assert!(body["hint"].as_str().unwrap().contains("QR"), "{body}");

    app.sim.scan(&org("8"), "573005550000").unwrap();
    app.wait("8", SessionStatus::Connected).await;

    let body = app
        .post(
            "/api/send-message",
            json!({ "organization_id": 8, "phone": "+57 (300) 999-8877", "message": "Su cita es mañana" }),
        )
        .await
        .ok();
    assert_eq!(body["success"], true);
    assert_eq!(body["phone"], "573009998877@s.whatsapp.net");
    assert!(body["message"].is_string());
    let id = body["message_id"].as_str().unwrap().to_owned();

    // A bare Colombian mobile gets its country code.
    let body = app
        .post("/api/send-message", send("8", "3001112233", "Recordatorio"))
        .await
        .ok();
    assert_eq!(body["phone"], "573001112233@s.whatsapp.net");

    let sent = app.sim.sent(&org("8"));
    assert_eq!(sent.len(), 2);
    assert_eq!(
        (
            sent[0].to.as_str(),
            sent[0].text.as_str(),
            sent[0].message_id.as_str()
        ),
        ("573009998877", "Su cita es mañana", id.as_str())
    );

    // Invalid input.
    for (body, needle) in [
        (send("8", "12345", "hi"), "not a valid phone number"),
        (send("8", "57300abc4567", "hi"), "phone"),
        (send("8", "", "hi"), "phone"),
        (send("8", "573001234567", ""), "message"),
        (send("8", "573001234567", "  \n"), "message"),
        (
            json!({ "organization_id": "8", "message": "hi" }),
            "phone is required",
        ),
        (
            json!({ "organization_id": "8", "phone": "573001234567" }),
            "message is required",
        ),
        (
            json!({ "organization_id": "8", "phone": "573001234567", "message": 5 }),
            "invalid type",
        ),
    ] {
        let r = app.post("/api/send-message", body.clone()).await;
        let err = r.error(StatusCode::BAD_REQUEST);
        assert!(
            err["error"].as_str().unwrap().contains(needle),
            "{body} -> {err}"
        );
    }
    assert_eq!(app.sim.sent(&org("8")).len(), 2, "nothing more was sent");

    // A send the connection refuses is tried again, with the same id, and answered
    // once WhatsApp has it.
    let r = app
        .post("/sim/8/inject", json!({ "fault": "send_fails" }))
        .await;
    r.ok();
    let body = app
        .post("/api/send-message", send("8", "573001234567", "hi"))
        .await
        .ok();
    let id = body["message_id"].as_str().unwrap().to_owned();
    let record = app.get(&format!("/api/messages/{id}")).await.ok();
    assert_eq!(
        (record["status"].as_str(), record["attempts"].as_u64()),
        (Some("sent"), Some(2))
    );
    assert_eq!(app.sim.sent(&org("8")).len(), 3);
}

#[tokio::test]
async fn logout_route() {
    let app = app().await;
    let body = app
        .post("/api/logout", json!({ "organization_id": "4" }))
        .await
        .error(StatusCode::NOT_FOUND);
    assert_eq!(body["hint"], "POST /api/start-session first");

    app.connect("4", "573004440000").await;
    let body = app
        .post("/api/logout", json!({ "organization_id": 4 }))
        .await
        .ok();
    assert_eq!(body["success"], true);
    assert_eq!(
        body["message"],
        "Logged out; the session was backed up and removed"
    );
    assert!(
        body["backup"].as_str().is_some_and(|b| !b.is_empty()),
        "{body}"
    );
    assert_eq!(app.sup.status(&org("4")).status, SessionStatus::NotStarted);
    app.post("/api/logout", json!({ "organization_id": "4" }))
        .await
        .error(StatusCode::NOT_FOUND);

    // A session that never paired has nothing stored: the answer says so.
    app.post("/api/start-session", json!({ "organization_id": "5" }))
        .await
        .ok();
    app.wait("5", SessionStatus::QrReady).await;
    let body = app
        .post("/api/logout", json!({ "organization_id": "5" }))
        .await
        .ok();
    assert_eq!(
        body,
        json!({
            "success": true,
            "message": "Logged out; there was nothing stored to back up",
            "backup": null,
        })
    );
}

#[tokio::test]
async fn force_clean_and_its_aliases() {
    let app = app().await;
    for uri in [
        "/api/force-clean-session",
        "/api/clear-corrupted-session",
        "/api/clear-session",
    ] {
        // An org without a session: nothing to do, still a success.
        let body = app
            .post(uri, json!({ "organization_id": "never" }))
            .await
            .ok();
        assert_eq!(body["success"], true);
        assert!(body["message"].is_string());
        assert_eq!(body["backup"], Value::Null);

        app.connect("6", "573006660000").await;
        let body = app.post(uri, json!({ "organization_id": 6 })).await.ok();
        assert_eq!(body["success"], true, "{uri}");
        assert!(body["backup"].is_string(), "{uri}: {body}");
        assert_eq!(app.sup.status(&org("6")).status, SessionStatus::NotStarted);
    }
}

#[tokio::test]
async fn sessions_route() {
    let app = app().await;
    let body = app.get("/api/sessions").await.ok();
    assert_eq!(body, json!({ "total": 0, "sessions": [] }));

    app.connect("b", "573001010101").await;
    app.start_qr("a").await;
    let body = app.get("/api/sessions").await.ok();
    assert_eq!(body["total"], 2);
    let sessions = body["sessions"].as_array().unwrap();
    assert_eq!(sessions[0]["organization_id"], "a");
    assert_eq!(sessions[0]["status"], "qr_ready");
    assert_eq!(sessions[0]["connected"], false);
    assert_eq!(sessions[0]["has_qr"], true);
    assert_eq!(sessions[1]["organization_id"], "b");
    assert_eq!(sessions[1]["status"], "connected");
    assert_eq!(sessions[1]["connected"], true);
    assert_eq!(sessions[1]["has_qr"], false);
}

#[tokio::test]
async fn rate_limit_status_route() {
    let app = app().await;
    let body = app.get("/api/rate-limit-status").await.ok();
    assert_eq!(body["global_attempts_last_hour"], 0);
    assert!(body["global_limit"].is_u64());
    assert_eq!(body["global_blocked"], false);
    assert_eq!(body["organizations"], json!([]));

    let body = app
        .get("/api/rate-limit-status?organization_id=12")
        .await
        .ok();
    assert_eq!(body["organization_id"], "12");
    assert_eq!(body["can_connect"], true);
    assert_eq!(body["block_reason"], Value::Null);
    assert_eq!(body["wait_time_minutes"], 0);
    assert_eq!(body["attempts_last_24h"], 0);
    assert!(body["daily_limit"].is_u64());
    assert_eq!(body["block_until"], Value::Null);
    assert_eq!(body["global_blocked"], false);

    app.get("/api/rate-limit-status?organization_id=..%2Fx")
        .await
        .error(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn sim_routes() {
    let app = app().await;
    // Nothing to scan before a session shows a QR.
    let body = app
        .post("/sim/1/scan", json!({ "phone": "573001234567" }))
        .await
        .error(StatusCode::CONFLICT);
    assert_eq!(body["status"], "not_started");

    app.start_qr("1").await;
    app.post("/sim/1/scan", json!({}))
        .await
        .error(StatusCode::BAD_REQUEST);
    app.post("/sim/1/scan", json!({ "phone": "abc" }))
        .await
        .error(StatusCode::BAD_REQUEST);
    app.post("/sim/bad.id/scan", json!({ "phone": "573001234567" }))
        .await
        .error(StatusCode::BAD_REQUEST);
    let body = app
        .post("/sim/1/scan", json!({ "phone": "+57 300 123 4567" }))
        .await
        .ok();
    assert_eq!(body["success"], true);
    app.wait("1", SessionStatus::Connected).await;
    assert_eq!(
        app.sup.status(&org("1")).phone_number.as_deref(),
        Some("573001234567")
    );

    // Faults.
    let body = app
        .post("/sim/1/inject", json!({ "fault": "meteor" }))
        .await
        .error(StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("bad_mac"),
        "{body}"
    );
    assert_eq!(
        body["valid_faults"].as_array().unwrap().len(),
        wa_actors::connection::sim::Fault::NAMES.len()
    );
    app.post("/sim/1/inject", json!({}))
        .await
        .error(StatusCode::BAD_REQUEST);
    app.post(
        "/sim/1/inject",
        json!({ "fault": "logged_out", "code": "x" }),
    )
    .await
    .error(StatusCode::BAD_REQUEST);
    app.post(
        "/sim/1/inject",
        json!({ "fault": "logged_out", "code": 70000 }),
    )
    .await
    .error(StatusCode::BAD_REQUEST);
    app.post("/sim/1/inject", json!({ "fault": "network_down" }))
        .await
        .ok();
    app.wait("1", SessionStatus::Reconnecting).await;
    app.post("/sim/1/inject", json!({ "fault": "network_up" }))
        .await
        .ok();
    app.wait("1", SessionStatus::Connected).await;
    app.post(
        "/sim/1/inject",
        json!({ "fault": "logged_out", "code": 401 }),
    )
    .await
    .ok();
    app.wait("1", SessionStatus::LoggedOut).await;

    // With no open connection, a connection fault has nowhere to go.
    let body = app
        .post("/sim/1/inject", json!({ "fault": "bad_mac" }))
        .await
        .error(StatusCode::CONFLICT);
    assert_eq!(body["status"], "logged_out");

    // The sent log.
    let body = app.get("/sim/2/sent").await.ok();
    assert_eq!(body, json!({ "messages": [] }));
    app.connect("2", "573002220000").await;
    app.post(
        "/api/send-message",
        json!({ "organization_id": "2", "phone": "573001234567", "message": "uno" }),
    )
    .await
    .ok();
    let body = app.get("/sim/2/sent").await.ok();
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["to"], "573001234567");
    assert_eq!(messages[0]["text"], "uno");
    assert!(messages[0]["message_id"].is_string());
    app.get("/sim/bad.id/sent")
        .await
        .error(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn sim_routes_do_not_exist_outside_simulation_mode() {
    let app = app_in_mode(false).await;
    for (method, uri, body) in [
        ("POST", "/sim/1/scan", Some(r#"{"phone":"573001234567"}"#)),
        ("POST", "/sim/1/inject", Some(r#"{"fault":"bad_mac"}"#)),
        ("GET", "/sim/1/sent", None),
    ] {
        let r = app.request(method, uri, Key::Good, body).await;
        r.error(StatusCode::NOT_FOUND);
        let r = app.request(method, uri, Key::Missing, body).await;
        r.error(StatusCode::NOT_FOUND);
    }
    // The rest works as usual.
    app.get("/api/sessions").await.ok();
}

#[tokio::test]
async fn responses_carry_a_request_id() {
    let app = app().await;
    let r = app.get("/api/sessions").await;
    assert!(r.headers.contains_key("x-request-id"));
    let req = Request::get("/health")
        .header("x-request-id", "abc-123")
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(req).await.headers["x-request-id"], "abc-123");
}

/// With one request in flight allowed, a second is shed at once with a JSON 503
/// and `Retry-After`; the one in flight (a send waiting for a reconnect) is cut at
/// the request timeout with a JSON 504; then the next request is served. Every
/// answer carries a request id.
#[tokio::test]
async fn overload_is_shed_and_slow_requests_time_out_in_json() {
    let app = app_with(
        true,
        HttpLimits {
            request_timeout: Duration::from_millis(1500),
            max_in_flight: 1,
        },
    )
    .await;
    app.connect("s", "573001234567").await;
    app.sim
        .inject(&org("s"), wa_actors::connection::sim::Fault::NetworkDown)
        .unwrap();
    app.wait("s", SessionStatus::Reconnecting).await;
    let router = app.router.clone();
    let held = tokio::spawn(async move {
        loop {
            let req = Request::post("/api/send-message")
                .header("X-API-Key", KEY)
                .body(Body::from(
                    json!({ "organization_id": "s", "phone": "3009998877", "message": "hola" })
                        .to_string(),
                ))
                .unwrap();
            let resp = router.clone().oneshot(req).await.unwrap();
            // Shed itself if a poll below held the slot at that instant: try again.
            if resp.status() != StatusCode::SERVICE_UNAVAILABLE {
                return resp;
            }
            tokio::task::yield_now().await;
        }
    });
    // Poll until the held send occupies the only slot.
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    let shed = loop {
        let r = app.get("/api/sessions").await;
        if r.status == StatusCode::SERVICE_UNAVAILABLE {
            break r;
        }
        assert!(std::time::Instant::now() < deadline, "nothing was shed");
        tokio::task::yield_now().await;
    };
    let body = shed.error(StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body["error"].as_str().unwrap().contains("too many"),
        "{body}"
    );
    assert_eq!(shed.headers[header::RETRY_AFTER], "1");
    assert!(shed.headers.contains_key("x-request-id"));

    let resp = held.await.unwrap();
    assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(resp.headers().contains_key("x-request-id"));
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&bytes).expect("a JSON 504");
    assert!(
        body["error"].as_str().unwrap().contains("too long"),
        "{body}"
    );

    app.get("/api/sessions").await.ok();
}

// ---- GET /openapi.json and GET /docs ---------------------------------------

/// The methods a route can serve; HEAD and OPTIONS follow from them.
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// A concrete URI for a route pattern.
/// The request timing (outside the router, where axum's `MatchedPath` is not
/// known yet) labels a request to each served route with that route's pattern.
#[tokio::test]
async fn every_route_is_timed_under_its_own_pattern() {
    for sim_mode in [false, true] {
        let app = app_in_mode(sim_mode).await;
        let timings = wa_supervisor::http::metrics::HttpTimings::new(&app.paths);
        for path in &app.paths {
            assert_eq!(
                timings.pattern(&sample_uri(path)),
                *path,
                "sim mode {sim_mode}"
            );
        }
        assert_eq!(timings.pattern("/api/nothing-here"), "unmatched");
    }
}

fn sample_uri(pattern: &str) -> String {
    pattern
        .replace("{org}", "probe-org")
        .replace("{message_id}", "3EB0000000000000000001")
        .replace("{file}", "index.css")
}

impl App {
    /// The status of one request, without reading the body (`/api/events` never
    /// ends). POSTs carry an empty JSON body: a 400, never a change.
    async fn status_of(&self, method: &str, uri: &str, key: Key) -> StatusCode {
        let mut req = Request::builder().method(method).uri(uri);
        if let Key::Good = key {
            req = req.header("X-API-Key", KEY);
        }
        let req = req.body(Body::empty()).unwrap();
        self.router.clone().oneshot(req).await.unwrap().status()
    }

    /// The document as a client reads it: no key.
    async fn openapi(&self) -> Value {
        let r = self
            .request("GET", "/openapi.json", Key::Missing, None)
            .await;
        r.ok()
    }
}

/// `path → (method → operation)` of a document.
fn operations(
    doc: &Value,
) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, Value>> {
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .map(|(path, item)| {
            let ops = item
                .as_object()
                .unwrap()
                .iter()
                .filter(|(m, _)| METHODS.contains(&m.to_uppercase().as_str()))
                .map(|(m, op)| (m.to_uppercase(), op.clone()))
                .collect();
            (path.clone(), ops)
        })
        .collect()
}

/// Every `$ref` in `v`.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// The document describes every route the router serves, each with exactly the
/// methods it answers, and nothing else; it says which need the key, and each does.
/// In both modes: the `/sim` routes only in simulation mode, tagged `sim`.
#[tokio::test]
async fn the_openapi_document_describes_every_route_the_router_serves() {
    for sim_mode in [false, true] {
        let app = app_in_mode(sim_mode).await;
        let doc = app.openapi().await;
        assert!(
            doc["openapi"].as_str().unwrap().starts_with("3.1."),
            "{}",
            doc["openapi"]
        );
        let described = operations(&doc);

        // The same paths.
        let served: std::collections::BTreeSet<&str> = app.paths.iter().copied().collect();
        assert_eq!(served.len(), app.paths.len(), "a path added twice");
        let documented: std::collections::BTreeSet<&str> =
            described.keys().map(String::as_str).collect();
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let unserved: Vec<_> = documented.difference(&served).collect();
        assert!(
            undocumented.is_empty() && unserved.is_empty(),
            "sim mode {sim_mode}: served but not in /openapi.json: {undocumented:?}; \
             in /openapi.json but not served: {unserved:?}"
        );
        assert_eq!(
            served.iter().any(|p| p.starts_with("/sim/")),
            sim_mode,
            "the /sim routes exist in simulation mode only"
        );

        for (path, ops) in &described {
            // The methods the router answers on this path (anything but 405).
            let uri = sample_uri(path);
            let mut answered = Vec::new();
            for method in METHODS {
                if app.status_of(method, &uri, Key::Good).await != StatusCode::METHOD_NOT_ALLOWED {
                    answered.push(method.to_owned());
                }
            }
            let documented: Vec<String> = METHODS
                .iter()
                .filter(|m| ops.contains_key(**m))
                .map(|m| m.to_string())
                .collect();
            assert_eq!(answered, documented, "the methods of {path}");

            for (method, op) in ops {
                // Open operations say so with an empty requirement; the rest
                // inherit the document's (the key) and answer 401 without it.
                let open = op["security"]
                    .as_array()
                    .is_some_and(|reqs| reqs.iter().any(|r| r == &json!({})));
                let without_key = app.status_of(method, &uri, Key::Missing).await;
                assert_eq!(
                    without_key != StatusCode::UNAUTHORIZED,
                    open,
                    "{method} {path}: open in the document: {open}; without a key: {without_key}"
                );
                if !open {
                    assert!(op["responses"]["401"].is_object(), "{method} {path}");
                }
                for code in ["503", "504"] {
                    assert!(op["responses"][code].is_object(), "{method} {path} {code}");
                }
                assert!(op["operationId"].is_string(), "{method} {path}");
                let is_sim = path.starts_with("/sim/");
                assert_eq!(
                    op["tags"].as_array().unwrap().contains(&json!("sim")),
                    is_sim,
                    "{method} {path}: tagged sim exactly when a /sim route"
                );
            }
        }

        // Operation ids are unique, and every reference resolves.
        let mut ids: Vec<&str> = described
            .values()
            .flat_map(|ops| ops.values().map(|op| op["operationId"].as_str().unwrap()))
            .collect();
        let count = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), count, "duplicate operationIds");
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(!all.is_empty());
        let unresolved: Vec<&String> = all
            .iter()
            .filter(|r| {
                let pointer = r.strip_prefix('#').expect("a local reference");
                doc.pointer(pointer).is_none()
            })
            .collect();
        assert!(
            unresolved.is_empty(),
            "references that do not resolve: {unresolved:?}"
        );
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes["api_key"]["in"], "header");
        assert_eq!(schemes["api_key"]["name"], "X-API-Key");
        assert_eq!(schemes["bearer"]["scheme"], "bearer");
        let sim_tag = doc["tags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "sim")
            .cloned();
        assert_eq!(sim_tag.is_some(), sim_mode);
        if let Some(tag) = sim_tag {
            assert!(
                tag["description"]
                    .as_str()
                    .unwrap()
                    .contains("Simulation mode only"),
                "{tag}"
            );
        }
    }
}

/// The answers of the handlers are the types the document names: a few of them
/// checked field by field against the live answer.
#[tokio::test]
async fn the_documented_schemas_are_the_answers() {
    let app = app().await;
    let doc = app.openapi().await;
    let schema = |name: &str| doc["components"]["schemas"][name].clone();
    let properties = |name: &str| -> Vec<String> {
        let mut keys: Vec<String> = schema(name)["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{name}: {}", schema(name)))
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    };
    let fields = |v: &Value| -> Vec<String> {
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    // `node_id` is answered only with several daemons on one database.
    let single_node = |name: &str| -> Vec<String> {
        let mut keys = properties(name);
        keys.retain(|k| k != "node_id");
        keys
    };
    let status = app.get("/api/status/1").await.ok();
    assert_eq!(fields(&status), single_node("Status"));
    let sessions = app.get("/api/sessions").await.ok();
    assert_eq!(fields(&sessions), properties("Sessions"));
    app.start_qr("2").await;
    let qr = app.get("/api/qr/2").await.ok();
    assert_eq!(fields(&qr), properties("QrImage"));
    let sessions = app.get("/api/sessions").await.ok();
    assert_eq!(
        fields(&sessions["sessions"][0]),
        single_node("SessionSummary")
    );
    let statuses = schema("SessionStatus")["enum"].clone();
    assert_eq!(statuses.as_array().unwrap().len(), SessionStatus::ALL.len());
    assert!(statuses.as_array().unwrap().contains(&status["status"]));

    // The error body of every 4xx and 5xx.
    let error = schema("Error");
    assert_eq!(error["required"], json!(["error"]));
    let e = app
        .post("/api/start-session", json!({}))
        .await
        .error(StatusCode::BAD_REQUEST);
    for key in e.as_object().unwrap().keys() {
        assert!(error["properties"][key].is_object(), "{key} of {e}");
    }
}

/// `GET /docs`: Swagger UI from the binary, pointed at `/openapi.json`, with no key
/// and nothing fetched from elsewhere.
#[tokio::test]
async fn swagger_ui_is_served_from_the_binary() {
    let app = app().await;
    let r = app.request("GET", "/docs", Key::Missing, None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers[header::LOCATION], "/docs/");

    let page = app.request("GET", "/docs/", Key::Missing, None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = String::from_utf8(page.body.to_vec()).unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    // Every script and style sheet of the page is one of its own files.
    let mut linked = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for (i, _) in html.match_indices(attr) {
            let rest = &html[i + attr.len()..];
            linked.push(rest[..rest.find('"').unwrap()].to_owned());
        }
    }
    assert!(linked.len() >= 4, "{linked:?}");
    for link in &linked {
        let name = link.trim_start_matches("./");
        assert!(!name.contains(':') && !name.starts_with('/'), "{link}");
        let file = app
            .request("GET", &format!("/docs/{name}"), Key::Missing, None)
            .await;
        assert_eq!(file.status, StatusCode::OK, "{link}");
        assert!(!file.body.is_empty(), "{link}");
    }

    let init = app
        .request("GET", "/docs/swagger-initializer.js", Key::Missing, None)
        .await;
    assert_eq!(init.status, StatusCode::OK);
    let init = String::from_utf8(init.body.to_vec()).unwrap();
    assert!(init.contains("\"/openapi.json\""), "{init}");
    assert!(init.contains("\"validatorUrl\": \"none\""), "{init}");

    let missing = app
        .request("GET", "/docs/no-such-file.js", Key::Missing, None)
        .await;
    missing.error(StatusCode::NOT_FOUND);
}
