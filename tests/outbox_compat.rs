//! `POST /api/send-message`, the compatible send, through the outbox (CONTRACT
//! §10): it answers `success:true` only after WhatsApp's ack, waits for a session
//! that is only reconnecting, never delivers a send it answered with an error, and
//! keeps sends issued in order in that order.

mod common;
mod outbox_support;

use std::time::{Duration, Instant};

use common::Daemon;
use outbox_support::*;
use serde_json::{Value, json};

/// Reconnects come quickly once the network is back.
const QUICK_RECONNECT: &str = "[reconnect]\ninitial_ms = 50\nmax_ms = 200\n";

fn send_body(org: &str, text: &str) -> Value {
    json!({ "organization_id": org, "phone": "300 999 8877", "message": text })
}

/// Sends in the background; the handle answers `(status, body)`.
fn send_in_background(daemon: &Daemon, body: Value) -> tokio::task::JoinHandle<(u16, Value)> {
    let http = daemon.http.clone();
    let url = daemon.url("/api/send-message");
    tokio::spawn(async move {
        let r = http
            .post(url)
            .header("X-API-Key", common::API_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    })
}

/// Polls until the org has `n` messages `queued`.
async fn until_queued(daemon: &Daemon, org: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while listed(daemon, org, "queued").await.len() != n {
        assert!(
            Instant::now() < deadline,
            "never {n} queued\n{}",
            daemon.logs()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The answer comes only once WhatsApp acknowledged the message: on a zombie
/// connection that swallows the first attempt, not before the reconnect and the
/// resend that is acknowledged.
#[tokio::test]
async fn success_is_answered_only_after_the_ack() {
    let config = format!("[outbox]\nmin_gap_ms = 0\nack_timeout_seconds = 2\n{QUICK_RECONNECT}");
    let daemon = Daemon::start_with(&config).await;
    let org = "optica-sol";
    daemon.ensure_connected(org, SHOP).await;
    inject(&daemon, org, "no_ack").await;

    let (code, body) = daemon
        .post("/api/send-message", send_body(org, "Su cita es mañana"))
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["success"], true, "{body}");
    assert_eq!(body["phone"], format!("{PATIENT}@s.whatsapp.net"));
    assert!(body["message"].is_string(), "{body}");
    let id = body["message_id"].as_str().unwrap().to_owned();
    // At the answer, the record already says WhatsApp has it, after two attempts.
    let record = message(&daemon, &id).await;
    assert_eq!(record["status"], "sent", "{record}");
    assert_eq!(record["attempts"], 2, "{record}");
    assert_eq!(ids_received(&daemon, org).await, [id.clone(), id]);
}

/// A send to a session that is only reconnecting waits for it and succeeds.
#[tokio::test]
async fn a_send_waits_for_a_reconnecting_session() {
    let daemon = Daemon::start_with(QUICK_RECONNECT).await;
    let org = "optica-sol";
    daemon.ensure_connected(org, SHOP).await;
    inject(&daemon, org, "network_down").await;
    daemon.wait_status(org, "reconnecting").await;

    let send = send_in_background(&daemon, send_body(org, "Su cita es mañana"));
    until_queued(&daemon, org, 1).await;
    assert_eq!(
        daemon.get(&format!("/api/status/{org}")).await.1["status"],
        "reconnecting",
        "still down while the send waits"
    );
    inject(&daemon, org, "network_up").await;
    let (code, body) = send.await.unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["success"], true, "{body}");
    let id = body["message_id"].as_str().unwrap();
    assert_eq!(message(&daemon, id).await["status"], "sent");
    assert_eq!(ids_received(&daemon, org).await, [id]);
}

/// A send whose wait ran out answered an error; it is never delivered afterwards,
/// even once the session is back, and its record says so.
#[tokio::test]
async fn a_send_that_answered_an_error_is_never_delivered() {
    let daemon = Daemon::start_with(&format!("[send]\nwait_seconds = 1\n{QUICK_RECONNECT}")).await;
    let org = "optica-sol";
    daemon.ensure_connected(org, SHOP).await;
    inject(&daemon, org, "network_down").await;
    daemon.wait_status(org, "reconnecting").await;

    let (code, body) = daemon
        .post("/api/send-message", send_body(org, "Nunca llega"))
        .await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["status"], "reconnecting", "{body}");
    assert!(body.get("success").is_none_or(|s| s != true), "{body}");

    inject(&daemon, org, "network_up").await;
    daemon.wait_status(org, "connected").await;
    // Accepted after the failed send: once this one is out, the failed one would
    // have gone before it.
    let marker = accepted(&daemon, org, "marcador").await;
    wait_message(&daemon, &marker, "sent").await;
    let texts: Vec<Value> = phone_received(&daemon, org)
        .await
        .into_iter()
        .map(|m| m["text"].clone())
        .collect();
    assert_eq!(texts, ["marcador"]);
    let (_, all) = daemon
        .get(&format!("/api/messages?organization_id={org}"))
        .await;
    let failed: Vec<&Value> = all["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["message"] == "Nunca llega")
        .collect();
    assert_eq!(failed.len(), 1, "{all}");
    assert!(
        failed[0]["status"] == "expired" || failed[0]["status"] == "failed",
        "{}",
        failed[0]
    );
    assert_eq!(failed[0]["attempts"], 0, "{}", failed[0]);
}

/// An `idempotency_key` makes a retried compatible send the same message, sent once.
#[tokio::test]
async fn an_idempotency_key_makes_a_retried_send_one_message() {
    let daemon = Daemon::start().await;
    let org = "optica-sol";
    daemon.ensure_connected(org, SHOP).await;
    let mut body = send_body(org, "Su cita fue confirmada");
    body["idempotency_key"] = json!("appointment-9-confirmation");

    let (code, first) = daemon.post("/api/send-message", body.clone()).await;
    assert_eq!((code, &first["success"]), (200, &json!(true)), "{first}");
    let (code, again) = daemon.post("/api/send-message", body.clone()).await;
    assert_eq!((code, &again["success"]), (200, &json!(true)), "{again}");
    assert_eq!(again["message_id"], first["message_id"]);
    let marker = accepted(&daemon, org, "marcador").await;
    wait_message(&daemon, &marker, "sent").await;
    let id = first["message_id"].as_str().unwrap().to_owned();
    assert_eq!(ids_received(&daemon, org).await, [id.clone(), marker]);
    assert_eq!(
        message(&daemon, &id).await["idempotency_key"],
        "appointment-9-confirmation"
    );

    body["message"] = json!("Otro texto");
    let (code, conflict) = daemon.post("/api/send-message", body).await;
    assert_eq!(code, 409, "{conflict}");
}

/// Ten sends issued one after another while the session reconnects, each still
/// waiting when the next is issued, reach the phone in the order they were issued.
#[tokio::test]
async fn sends_issued_while_reconnecting_arrive_in_the_order_issued() {
    let daemon = Daemon::start_with(QUICK_RECONNECT).await;
    let org = "optica-sol";
    daemon.ensure_connected(org, SHOP).await;
    inject(&daemon, org, "network_down").await;
    daemon.wait_status(org, "reconnecting").await;

    let mut sends = Vec::new();
    for i in 0..10 {
        sends.push(send_in_background(
            &daemon,
            send_body(org, &format!("mensaje {i}")),
        ));
        // The next is issued once this one is accepted and waiting.
        until_queued(&daemon, org, i + 1).await;
    }
    inject(&daemon, org, "network_up").await;
    let mut ids = Vec::new();
    for send in sends {
        let (code, body) = send.await.unwrap();
        assert_eq!((code, &body["success"]), (200, &json!(true)), "{body}");
        ids.push(body["message_id"].as_str().unwrap().to_owned());
    }
    let received = phone_received(&daemon, org).await;
    let texts: Vec<&str> = received
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    let want: Vec<String> = (0..10).map(|i| format!("mensaje {i}")).collect();
    assert_eq!(texts, want);
    let got: Vec<&str> = received
        .iter()
        .map(|m| m["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(got, ids, "each answered with the id it was sent with");
}
