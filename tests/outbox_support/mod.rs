//! The outbox over HTTP (CONTRACT §10), as its end-to-end tests use it: accept,
//! read and wait for messages, read what the fake phone received, and a webhook
//! receiver that keeps every event it is posted.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};

use crate::common::Daemon;

/// The shop's phone in these tests.
pub const SHOP: &str = "573001234567";
/// The patient every message goes to, as the API returns it (digits).
pub const PATIENT: &str = "573009998877";

/// `POST /api/messages` with `organization_id`, the patient's phone, `text`, and
/// the fields of `extra` (an object) on top.
pub async fn enqueue(daemon: &Daemon, org: &str, text: &str, extra: Value) -> (u16, Value) {
    let mut body = json!({ "organization_id": org, "phone": PATIENT, "message": text });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    daemon.post("/api/messages", body).await
}

/// Like [`enqueue`], expecting a `202`; returns the message's id.
pub async fn accepted(daemon: &Daemon, org: &str, text: &str) -> String {
    let (code, body) = enqueue(daemon, org, text, json!({})).await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["status"], "queued", "{body}");
    assert_eq!(body["duplicate"], false, "{body}");
    body["message_id"].as_str().unwrap().to_owned()
}

/// `GET /api/messages/{id}`, expecting it to exist.
pub async fn message(daemon: &Daemon, id: &str) -> Value {
    let (code, body) = daemon.get(&format!("/api/messages/{id}")).await;
    assert_eq!(code, 200, "{body}");
    body
}

/// Polls the message until its status is `status` (30 s at most).
pub async fn wait_message(daemon: &Daemon, id: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = message(daemon, id).await;
        if body["status"] == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{id} never reached {status}; last {body}\n{}",
            daemon.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `DELETE /api/messages/{id}`.
pub async fn cancel(daemon: &Daemon, id: &str) -> (u16, Value) {
    let path = format!("/api/messages/{id}");
    let (code, _, body) = daemon
        .raw("DELETE", &path, Some(crate::common::API_KEY), None)
        .await;
    let body = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (code, body)
}

/// Every delivery attempt the org's fake phone received, in order.
pub async fn phone_received(daemon: &Daemon, org: &str) -> Vec<Value> {
    let (code, body) = daemon.get(&format!("/sim/{org}/sent")).await;
    assert_eq!(code, 200, "{body}");
    body["messages"].as_array().unwrap().clone()
}

/// The message ids of [`phone_received`], in order.
pub async fn ids_received(daemon: &Daemon, org: &str) -> Vec<String> {
    phone_received(daemon, org)
        .await
        .iter()
        .map(|m| m["message_id"].as_str().unwrap().to_owned())
        .collect()
}

/// The org's messages in `status` (up to 1000), newest first.
pub async fn listed(daemon: &Daemon, org: &str, status: &str) -> Vec<Value> {
    let (code, body) = daemon
        .get(&format!(
            "/api/messages?organization_id={org}&status={status}&limit=1000"
        ))
        .await;
    assert_eq!(code, 200, "{body}");
    body["messages"].as_array().unwrap().clone()
}

/// Starts a session for `org` and waits until its QR is on screen (never paired).
pub async fn showing_qr(daemon: &Daemon, org: &str) {
    let (code, body) = daemon
        .post("/api/start-session", json!({ "organization_id": org }))
        .await;
    assert_eq!(code, 200, "{body}");
    daemon.wait_status(org, "qr_ready").await;
}

/// The fake phone of `org` scans its QR as the shop's phone.
pub async fn scan(daemon: &Daemon, org: &str) {
    let (code, body) = daemon
        .post(&format!("/sim/{org}/scan"), json!({ "phone": SHOP }))
        .await;
    assert_eq!(code, 200, "{body}");
}

/// Makes the org's connection report `fault` (CONTRACT §9).
pub async fn inject(daemon: &Daemon, org: &str, fault: &str) {
    let (code, body) = daemon
        .post(&format!("/sim/{org}/inject"), json!({ "fault": fault }))
        .await;
    assert_eq!(code, 200, "{fault}: {body}");
}

/// A webhook receiver that answers 200 to everything and keeps each body.
pub struct Hooks {
    pub url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Hooks {
    pub async fn start() -> Self {
        async fn keep(State(bodies): State<Arc<Mutex<Vec<Value>>>>, body: Bytes) -> StatusCode {
            let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            bodies.lock().unwrap().push(value);
            StatusCode::OK
        }
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/hook", post(keep))
            .with_state(bodies.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            url: format!("http://{addr}/hook"),
            bodies,
        }
    }

    /// The `[webhook]` table that points the daemon here.
    pub fn toml(&self) -> String {
        format!(
            "[webhook]\nurl = \"{}\"\ninitial_backoff_ms = 5\nmax_backoff_ms = 20\n",
            self.url
        )
    }

    /// Every event posted so far, in the order it arrived.
    pub fn all(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }

    /// Waits (20 s at most) for the first event that `matches`.
    async fn first(&self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(found) = self.all().into_iter().find(&matches) {
                return found;
            }
            assert!(Instant::now() < deadline, "no {what}; got {:?}", self.all());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the event `name` about message `id`.
    pub async fn message_event(&self, name: &str, id: &str) -> Value {
        self.first(&format!("{name} for {id}"), |b| {
            b["event"] == name && b["data"]["message_id"] == id
        })
        .await
    }

    /// Waits for the first session event `name` whose `reason` contains `reason`.
    pub async fn session_event(&self, name: &str, reason: &str) -> Value {
        self.first(&format!("{name} ({reason})"), |b| {
            b["event"] == name
                && b["data"]["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains(reason))
        })
        .await
    }

    /// The names of every event about message `id` posted so far, in order.
    pub fn events_of(&self, id: &str) -> Vec<String> {
        self.all()
            .iter()
            .filter(|b| b["data"]["message_id"] == id)
            .map(|b| b["event"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}
