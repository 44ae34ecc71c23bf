//! The outbox over the real binary in sim mode (CONTRACT §10): messages accepted
//! before pairing, idempotency keys, expiry and cancel, zombie connections,
//! receipts with their webhooks, and the metrics. A `kill -9` in the middle of
//! delivering is in `tests/outbox_crash.rs`, bad input in `tests/outbox_input.rs`,
//! the compatible send in `tests/outbox_compat.rs`.

mod common;
mod outbox_support;

use chrono::{DateTime, SecondsFormat, Utc};
use common::Daemon;
use outbox_support::*;
use serde_json::{Value, json};

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("a time: {v}")))
        .unwrap()
        .with_timezone(&Utc)
}

/// Twenty reminders accepted while the shop has never scanned its QR all reach the
/// patient after the scan: each once, in the order they were accepted.
#[tokio::test]
async fn messages_accepted_before_the_first_scan_are_sent_in_order_after_it() {
    let daemon = Daemon::start().await;
    let org = "optica-sol";
    showing_qr(&daemon, org).await;

    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(
            accepted(
                &daemon,
                org,
                &format!("Recordatorio {i}: su cita es mañana"),
            )
            .await,
        );
    }
    assert_eq!(listed(&daemon, org, "queued").await.len(), 20);
    assert!(
        phone_received(&daemon, org).await.is_empty(),
        "nothing goes out before the scan"
    );

    scan(&daemon, org).await;
    wait_message(&daemon, &ids[19], "sent").await;
    let received = phone_received(&daemon, org).await;
    let got: Vec<&str> = received
        .iter()
        .map(|m| m["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(got, ids, "each once, in acceptance order");
    for (i, (id, m)) in ids.iter().zip(&received).enumerate() {
        assert_eq!(m["to"], PATIENT);
        assert_eq!(m["text"], format!("Recordatorio {i}: su cita es mañana"));
        let record = message(&daemon, id).await;
        assert_eq!(record["status"], "sent", "{record}");
        assert_eq!(record["attempts"], 1, "{record}");
        assert!(time(&record["sent_at"]) >= time(&record["created_at"]));
    }
}

/// One idempotency key is one message per org: a retry gets the stored one back
/// (`200`, `duplicate:true`) and the patient gets it once; the key with another
/// text or phone is a `409` showing the stored message; another org's same key is
/// another message.
#[tokio::test]
async fn an_idempotency_key_is_one_message_per_org() {
    let daemon = Daemon::start().await;
    let (org, other) = ("optica-sol", "optica-luna");
    daemon.ensure_connected(org, SHOP).await;
    daemon.ensure_connected(other, "573004445566").await;
    let key = json!({ "idempotency_key": "appointment-123-reminder" });
    let text = "Recordatorio: mañana a las 10:00";

    let (code, first) = enqueue(&daemon, org, text, key.clone()).await;
    assert_eq!(code, 202, "{first}");
    assert_eq!(first["duplicate"], false);
    assert_eq!(first["idempotency_key"], "appointment-123-reminder");
    let id = first["message_id"].as_str().unwrap().to_owned();

    let (code, again) = enqueue(&daemon, org, text, key.clone()).await;
    assert_eq!(code, 200, "{again}");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["message_id"], id.as_str());

    let (code, conflict) = enqueue(&daemon, org, "Otro texto", key.clone()).await;
    assert_eq!(code, 409, "{conflict}");
    assert!(
        conflict["error"]
            .as_str()
            .unwrap()
            .contains("idempotency_key"),
        "{conflict}"
    );
    assert_eq!(conflict["message"]["message_id"], id.as_str(), "{conflict}");
    let mut other_phone = json!({ "phone": "3001112233" });
    other_phone["idempotency_key"] = key["idempotency_key"].clone();
    let (code, conflict) = enqueue(&daemon, org, text, other_phone).await;
    assert_eq!(code, 409, "{conflict}");

    let (code, elsewhere) = enqueue(&daemon, other, text, key.clone()).await;
    assert_eq!(code, 202, "{elsewhere}");
    assert_eq!(elsewhere["duplicate"], false);
    let other_id = elsewhere["message_id"].as_str().unwrap().to_owned();
    assert_ne!(other_id, id);

    wait_message(&daemon, &id, "sent").await;
    wait_message(&daemon, &other_id, "sent").await;
    // Once sent, the key still answers with the message, and sends nothing more.
    let (code, late) = enqueue(&daemon, org, text, key).await;
    assert_eq!((code, &late["status"]), (200, &json!("sent")), "{late}");
    assert_eq!(late["message_id"], id.as_str());
    // A message accepted after every retry above, as a marker: once it is sent,
    // anything the retries had queued would have gone out before it.
    let marker = accepted(&daemon, org, "marcador").await;
    wait_message(&daemon, &marker, "sent").await;
    assert_eq!(ids_received(&daemon, org).await, [id, marker]);
    assert_eq!(ids_received(&daemon, other).await, [other_id]);
    let (_, all) = daemon
        .get(&format!("/api/messages?organization_id={org}"))
        .await;
    assert_eq!(
        all["messages"].as_array().unwrap().len(),
        2,
        "retries and conflicts stored nothing: {all}"
    );
}

/// A message whose `expires_at` passes before the shop scans is `expired` and never
/// sent; one cancelled while queued is never sent; `ttl_seconds` and the default
/// expiry set `expires_at`; a sent message cannot be cancelled.
#[tokio::test]
async fn expired_and_cancelled_messages_are_never_sent() {
    let daemon = Daemon::start().await;
    let org = "optica-sol";
    showing_qr(&daemon, org).await;

    // `ttl_seconds` is at least a minute; a time a few seconds ahead expires sooner
    // (with room for a slow answer on a loaded machine: it must still be ahead when
    // the daemon checks it).
    let soon =
        (Utc::now() + chrono::Duration::seconds(6)).to_rfc3339_opts(SecondsFormat::Millis, true);
    let (code, expiring) = enqueue(&daemon, org, "caduca", json!({ "expires_at": soon })).await;
    assert_eq!(code, 202, "{expiring}");
    let expiring = expiring["message_id"].as_str().unwrap().to_owned();
    let (code, ttl) = enqueue(&daemon, org, "una hora", json!({ "ttl_seconds": 3600 })).await;
    assert_eq!(code, 202, "{ttl}");
    let lifetime = time(&ttl["expires_at"]) - time(&ttl["created_at"]);
    assert!(
        (3599..=3600).contains(&lifetime.num_seconds()),
        "{lifetime}: {ttl}"
    );
    let default = accepted(&daemon, org, "un día").await;
    let record = message(&daemon, &default).await;
    let lifetime = time(&record["expires_at"]) - time(&record["created_at"]);
    assert_eq!(lifetime.num_seconds(), 86_400, "{record}");

    let cancelled = accepted(&daemon, org, "cancelado").await;
    let (code, body) = cancel(&daemon, &cancelled).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "cancelled");
    assert_eq!(body["message_id"], cancelled.as_str());
    let (code, body) = cancel(&daemon, &cancelled).await;
    assert_eq!(code, 409, "a cancelled message stays cancelled: {body}");
    assert_eq!(body["status"], "cancelled");

    let kept = accepted(&daemon, org, "se envía").await;
    let expired = wait_message(&daemon, &expiring, "expired").await;
    assert_eq!(expired["attempts"], 0, "{expired}");
    assert!(expired["sent_at"].is_null(), "{expired}");

    scan(&daemon, org).await;
    wait_message(&daemon, &kept, "sent").await;
    let texts: Vec<Value> = phone_received(&daemon, org)
        .await
        .into_iter()
        .map(|m| m["text"].clone())
        .collect();
    assert_eq!(texts, ["una hora", "un día", "se envía"]);
    assert_eq!(message(&daemon, &expiring).await["status"], "expired");
    assert_eq!(message(&daemon, &cancelled).await["status"], "cancelled");

    let (code, body) = cancel(&daemon, &kept).await;
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["status"], "sent", "{body}");
    assert_eq!(body["message"]["message_id"], kept.as_str(), "{body}");
    let (code, body) = cancel(&daemon, "3EB0000000000000000000").await;
    assert_eq!(code, 404, "{body}");
}

/// A connection that swallows a message without WhatsApp's ack is taken for dead
/// after `ack_timeout_seconds`: the org reconnects, and the message goes again with
/// the id of its first attempt and is `sent`.
#[tokio::test]
async fn a_zombie_connection_is_reconnected_and_the_message_resent_with_its_id() {
    let hooks = Hooks::start().await;
    let config = format!(
        "[outbox]\nmin_gap_ms = 0\nack_timeout_seconds = 2\n{}",
        hooks.toml()
    );
    let daemon =
        Daemon::start_with_env(&config, &[("WHATSAPP_WEBHOOK_SECRET", "outbox-e2e-secret")]).await;
    let org = "optica-sol";
    daemon.ensure_connected(org, SHOP).await;

    inject(&daemon, org, "no_ack").await;
    let id = accepted(&daemon, org, "Su cita es mañana").await;
    // Pairing itself passes through `reconnecting` ("paired; logging in"): the
    // one wanted is the zombie's.
    let reconnecting = hooks
        .session_event("session.reconnecting", "did not acknowledge")
        .await;
    let created = time(&message(&daemon, &id).await["created_at"]);
    assert!(
        time(&reconnecting["timestamp"]) - created >= chrono::Duration::seconds(2),
        "not taken for dead before ack_timeout_seconds: {reconnecting}"
    );
    let sent = wait_message(&daemon, &id, "sent").await;
    assert_eq!(sent["attempts"], 2, "{sent}");
    // The swallowed attempt never counted as sent: `sent` came after the zombie
    // was given up, and once.
    assert!(
        time(&sent["sent_at"]) >= time(&reconnecting["timestamp"]),
        "{sent} {reconnecting}"
    );
    hooks.message_event("message.sent", &id).await;
    assert_eq!(hooks.events_of(&id), ["message.sent"]);
    daemon.wait_status(org, "connected").await;
    assert_eq!(
        ids_received(&daemon, org).await,
        [id.clone(), id],
        "two attempts, one id"
    );
}

/// The recipient's receipts move a sent message to `delivered`, then `read`, set
/// their times, and are posted as `message.delivered` and `message.read`.
#[tokio::test]
async fn receipts_move_a_message_to_delivered_then_read_with_webhooks() {
    let hooks = Hooks::start().await;
    let daemon = Daemon::start_with_env(
        &hooks.toml(),
        &[("WHATSAPP_WEBHOOK_SECRET", "outbox-e2e-secret")],
    )
    .await;
    let org = "optica-sol";
    daemon.ensure_connected(org, SHOP).await;
    let (code, body) = enqueue(
        &daemon,
        org,
        "Su cita es mañana",
        json!({ "idempotency_key": "appointment-77-reminder" }),
    )
    .await;
    assert_eq!(code, 202, "{body}");
    let id = body["message_id"].as_str().unwrap().to_owned();
    let sent = wait_message(&daemon, &id, "sent").await;
    assert!(
        sent["delivered_at"].is_null() && sent["read_at"].is_null(),
        "{sent}"
    );
    hooks.message_event("message.sent", &id).await;

    let receipt = |kind: &'static str| {
        let daemon = &daemon;
        let id = id.clone();
        async move {
            let (code, body) = daemon
                .post(
                    &format!("/sim/{org}/receipt"),
                    json!({ "message_id": id, "type": kind }),
                )
                .await;
            assert_eq!(code, 200, "{body}");
        }
    };
    receipt("delivered").await;
    let delivered = wait_message(&daemon, &id, "delivered").await;
    assert!(delivered["read_at"].is_null(), "{delivered}");
    let hook = hooks.message_event("message.delivered", &id).await;
    assert_eq!(hook["data"]["idempotency_key"], "appointment-77-reminder");
    assert_eq!(hook["data"]["to"], PATIENT);
    assert_eq!(hook["organization_id"], org);

    receipt("read").await;
    let read = wait_message(&daemon, &id, "read").await;
    let (sent_at, delivered_at, read_at) = (
        time(&read["sent_at"]),
        time(&read["delivered_at"]),
        time(&read["read_at"]),
    );
    assert!(sent_at <= delivered_at && delivered_at <= read_at, "{read}");
    assert_eq!(time(&delivered["delivered_at"]), delivered_at, "set once");
    let hook = hooks.message_event("message.read", &id).await;
    assert_eq!(hook["data"]["to"], PATIENT);
    assert_eq!(
        hooks.events_of(&id),
        ["message.sent", "message.delivered", "message.read"]
    );
}

/// The value of the sample named `name` whose labels include every `labels` pair.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn metrics(daemon: &Daemon) -> String {
    let r = daemon
        .http
        .get(daemon.url("/metrics"))
        .header("X-API-Key", common::API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

/// `/metrics` counts the org's messages by status as they move, and times them from
/// acceptance to WhatsApp's ack.
#[tokio::test]
async fn metrics_count_messages_by_status_and_time_them_to_sent() {
    let daemon = Daemon::start().await;
    let org = "optica-sol";
    showing_qr(&daemon, org).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(accepted(&daemon, org, &format!("mensaje {i}")).await);
    }
    let text = metrics(&daemon).await;
    let by = |status| [("org_id", org), ("status", status)];
    assert_eq!(
        sample(&text, "wa_messages", &by("queued")),
        Some(3.0),
        "{text}"
    );

    scan(&daemon, org).await;
    for id in &ids {
        wait_message(&daemon, id, "sent").await;
    }
    let text = metrics(&daemon).await;
    assert_eq!(
        sample(&text, "wa_messages", &by("sent")),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "wa_messages", &by("queued")),
        Some(0.0),
        "none is queued any more: {text}"
    );
    assert_eq!(
        sample(&text, "wa_message_accepted_to_sent_seconds_count", &[]),
        Some(3.0),
        "{text}"
    );
    assert!(
        sample(&text, "wa_message_accepted_to_sent_seconds_sum", &[]).unwrap() > 0.0,
        "{text}"
    );
}
