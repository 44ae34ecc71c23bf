//! The real binary against the loopback WhatsApp Web server: pairing an org, sending,
//! faults, and what the server recorded. Shared by `tests/loopback.rs` and
//! `tests/logs.rs`.

#![allow(dead_code)]

use std::time::Duration;

use serde_json::json;
use wa_loopback::{Fault, Loopback, Pattern, ServerEvent};

use crate::common::Daemon;

pub const PHONE: &str = "573001112233";
pub const OTHER_PHONE: &str = "573004445566";
pub const CUSTOMER: &str = "573009998877";

/// A daemon on the real connection to `server`, healing by the old rule: these
/// tests are about what a wipe does through the real library (CONTRACT §11's rule
/// has its own tests over the fake phone).
pub async fn real_daemon(server: &Loopback) -> Daemon {
    Daemon::start_real(&server.url(), crate::common::OLD_HEALING).await
}

/// The raw QR payload the daemon shows for `org` now.
pub async fn qr_of(daemon: &Daemon, org: &str) -> String {
    let (code, raw) = daemon.get(&format!("/api/qr/{org}?format=raw")).await;
    assert_eq!(code, 200, "{raw}");
    raw["qr_raw"].as_str().unwrap().to_string()
}

/// start-session → the library's QR → the loopback phone scans it → 515 →
/// `connected` as `phone`.
pub async fn pair(daemon: &Daemon, server: &Loopback, org: &str, phone: &str) -> String {
    let (code, body) = daemon
        .post("/api/start-session", json!({ "organization_id": org }))
        .await;
    assert_eq!(code, 200, "{body}");
    daemon.wait_status(org, "qr_ready").await;
    let qr = qr_of(daemon, org).await;
    server.scan(&qr, phone).unwrap();
    let status = daemon.wait_status(org, "connected").await;
    assert_eq!(status["phone_number"], phone, "{status}");
    qr
}

pub async fn send(daemon: &Daemon, org: &str, phone: &str) -> String {
    let (code, sent) = daemon
        .post(
            "/api/send-message",
            json!({ "organization_id": org, "phone": phone, "message": "Su cita es mañana a las 10:00" }),
        )
        .await;
    assert_eq!(code, 200, "{sent}");
    assert_eq!(sent["success"], true, "{sent}");
    sent["message_id"].as_str().unwrap().to_string()
}

/// Waits until the server recorded the message `id` and returns it.
pub async fn recorded(server: &Loopback, id: &str) -> wa_loopback::SentMessage {
    server
        .wait_for("the message stanza", Duration::from_secs(20), |events| {
            events.iter().find_map(|e| match e {
                ServerEvent::Message(m) if m.id == id => Some(m.clone()),
                _ => None,
            })
        })
        .await
        .unwrap()
}

/// Three messages from a customer that `phone`'s device cannot decrypt: the Bad
/// MAC window's default limit.
pub fn three_undecryptable_messages(server: &Loopback, phone: &str) {
    for _ in 0..3 {
        let from = CUSTOMER.to_string();
        server.fault(phone, Fault::Undecryptable { from }).unwrap();
    }
}

pub fn logins(server: &Loopback, phone: &str) -> Vec<Pattern> {
    server
        .events()
        .into_iter()
        .filter_map(|e| match e {
            ServerEvent::LoggedIn { phone: p, pattern } if p == phone => Some(pattern),
            _ => None,
        })
        .collect()
}

pub fn qr_refs_sent(server: &Loopback) -> usize {
    server
        .events()
        .iter()
        .filter(|e| matches!(e, ServerEvent::QrRefs { .. }))
        .count()
}

pub fn backups(daemon: &Daemon, org: &str) -> Vec<std::path::PathBuf> {
    let dir = daemon.sessions_dir().join("_backups").join(org);
    let mut kept: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    kept.sort();
    kept
}
