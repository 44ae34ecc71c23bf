//! The real connection against the loopback WhatsApp Web server: the real Noise
//! handshakes, binary nodes and SQLite store, with no network.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use wa_loopback::{Fault, Loopback, Pattern, ServerEvent};

use super::super::*;
use crate::OrgId;
use crate::connection::{
    Class, ConnectRequest, Connection as _, ConnectionEvent, Connector as _, EventStream,
    StartMode, classify,
};
use crate::outbox::MessageId;

pub(super) const PHONE: &str = "573001112233";
pub(super) const CUSTOMER: &str = "573009998877";
pub(super) const TEXT: &str = "Su cita es mañana a las 10:00";

pub(super) fn options(server: &Loopback) -> WhatsAppOptions {
    WhatsAppOptions {
        version: Some((2, 3000, 1_027_000_000)),
        ws_url: Some(server.url()),
        ..WhatsAppOptions::default()
    }
}

pub(super) fn connector(server: &Loopback) -> WhatsAppConnector {
    WhatsAppConnector::new(options(server))
}

pub(super) async fn next_event(events: &mut EventStream) -> ConnectionEvent {
    tokio::time::timeout(Duration::from_secs(20), events.recv())
        .await
        .expect("an event in time")
        .expect("the stream goes on")
}

/// Skips progress the test does not look at (e.g. further QR codes).
pub(super) async fn until(
    events: &mut EventStream,
    mut wanted: impl FnMut(&ConnectionEvent) -> bool,
) -> ConnectionEvent {
    loop {
        let event = next_event(events).await;
        if wanted(&event) {
            return event;
        }
    }
}

pub(super) async fn open(
    server: &Loopback,
    dir: &Path,
    mode: StartMode,
) -> (Arc<WhatsAppConnection>, EventStream) {
    open_with(&connector(server), dir, mode).await
}

pub(super) async fn open_with(
    connector: &WhatsAppConnector,
    dir: &Path,
    mode: StartMode,
) -> (Arc<WhatsAppConnection>, EventStream) {
    connector
        .open(ConnectRequest {
            org: OrgId::parse("optica-sol").unwrap(),
            dir: dir.to_path_buf(),
            mode,
        })
        .await
        .unwrap()
}

/// Pairs a fresh store with `phone` like the org actor does: QR, scan, 515, a new
/// connection from the stored credentials. Returns the logged-in connection.
pub(super) async fn pair(
    server: &Loopback,
    dir: &Path,
    phone: &str,
) -> (Arc<WhatsAppConnection>, EventStream) {
    pair_with(server, &connector(server), dir, phone).await
}

/// [`pair`] with a connector of given options.
pub(super) async fn pair_with(
    server: &Loopback,
    connector: &WhatsAppConnector,
    dir: &Path,
    phone: &str,
) -> (Arc<WhatsAppConnection>, EventStream) {
    let (conn, mut events) = open_with(
        connector,
        dir,
        StartMode::Pair {
            phone_for_code: None,
        },
    )
    .await;
    let qr = match next_event(&mut events).await {
        ConnectionEvent::QrCode { code, .. } => code,
        other => panic!("expected a QR, got {other:?}"),
    };
    server.scan(&qr, phone).unwrap();
    let paired = until(&mut events, |e| matches!(e, ConnectionEvent::Paired { .. })).await;
    assert_eq!(
        paired,
        ConnectionEvent::Paired {
            phone: phone.to_string()
        }
    );
    until(&mut events, |e| {
        matches!(e, ConnectionEvent::RestartRequired)
    })
    .await;
    conn.shutdown().await;
    assert!(connector.has_credentials(dir).unwrap(), "paired store");
    let (conn, mut events) = open_with(connector, dir, StartMode::Resume).await;
    let connected = until(&mut events, |e| {
        matches!(e, ConnectionEvent::Connected { .. })
    })
    .await;
    assert_eq!(
        connected,
        ConnectionEvent::Connected {
            phone: phone.to_string()
        }
    );
    (conn, events)
}

pub(super) fn org_dir(tmp: &tempfile::TempDir, name: &str) -> PathBuf {
    let dir = tmp.path().join(name);
    std::fs::create_dir(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairs_by_qr_logs_in_and_sends_a_real_message() {
    let server = Loopback::start().await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = org_dir(&tmp, "optica-sol");
    let (conn, _events) = pair(&server, &dir, PHONE).await;

    let id = new_id();
    conn.send_text(CUSTOMER, "Su cita es mañana a las 10:00", &id)
        .await
        .unwrap();
    let sent = server
        .wait_for("the message", Duration::from_secs(20), |events| {
            events.iter().find_map(|e| match e {
                ServerEvent::Message(m) if m.id == id => Some(m.clone()),
                _ => None,
            })
        })
        .await
        .unwrap();
    assert_eq!(sent.to.user.as_str(), CUSTOMER);
    assert_eq!(sent.kind, "text");
    assert!(sent.enc_types.iter().any(|t| t == "pkmsg"), "{sent:?}");
    conn.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_socket_resumes_with_ik_and_faults_map_to_their_events() {
    let server = Loopback::start().await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = org_dir(&tmp, "optica-sol");
    let (conn, mut events) = pair(&server, &dir, PHONE).await;

    server.fault(PHONE, Fault::DropSocket).unwrap();
    let dropped = next_event(&mut events).await;
    assert!(
        matches!(dropped, ConnectionEvent::NetworkFailure { .. }),
        "{dropped:?}"
    );
    conn.shutdown().await;
    let (conn, mut events) = open(&server, &dir, StartMode::Resume).await;
    until(&mut events, |e| {
        matches!(e, ConnectionEvent::Connected { .. })
    })
    .await;
    let last_login = server.events().into_iter().rev().find_map(|e| match e {
        ServerEvent::LoggedIn { pattern, .. } => Some(pattern),
        _ => None,
    });
    assert_eq!(
        last_login,
        Some(Pattern::Ik),
        "a cached certificate resumes with IK"
    );

    server
        .fault(
            PHONE,
            Fault::Undecryptable {
                from: CUSTOMER.into(),
            },
        )
        .unwrap();
    let undecryptable = next_event(&mut events).await;
    assert!(
        matches!(&undecryptable, ConnectionEvent::Undecryptable { sender, .. } if sender.starts_with(CUSTOMER)),
        "{undecryptable:?}"
    );

    server.fault(PHONE, Fault::Replaced).unwrap();
    assert_eq!(next_event(&mut events).await, ConnectionEvent::Replaced);
    conn.shutdown().await;

    for (fault, expected) in [
        (Fault::Failure(401), "logged out"),
        (Fault::TemporaryBan { expire_secs: 3600 }, "banned"),
        (Fault::Failure(405), "outdated"),
        (Fault::StreamError(503), "busy"),
    ] {
        let (conn, mut events) = open(&server, &dir, StartMode::Resume).await;
        until(&mut events, |e| {
            matches!(e, ConnectionEvent::Connected { .. })
        })
        .await;
        server.fault(PHONE, fault.clone()).unwrap();
        let event = next_event(&mut events).await;
        let ok = match expected {
            "logged out" => matches!(event, ConnectionEvent::LoggedOut { .. }),
            "banned" => {
                event
                    == ConnectionEvent::TemporaryBan {
                        expires_in: Some(Duration::from_secs(3600)),
                    }
            }
            "outdated" => event == ConnectionEvent::ClientOutdated,
            _ => matches!(
                event,
                ConnectionEvent::ServerBusy { code: 503 } | ConnectionEvent::NetworkFailure { .. }
            ),
        };
        assert!(ok, "{fault:?}: expected {expected}, got {event:?}");
        conn.shutdown().await;
        if expected == "logged out" {
            // A logged-out device is gone for good: pair it again for the next fault.
            std::fs::remove_dir_all(&dir).unwrap();
            std::fs::create_dir(&dir).unwrap();
            let (conn, _events) = pair(&server, &dir, PHONE).await;
            conn.shutdown().await;
        }
    }
}

pub(super) fn new_id() -> String {
    MessageId::generate().as_str().to_owned()
}

pub(super) fn is_delivery(event: &ConnectionEvent) -> bool {
    classify(event) == Class::Delivery
}

/// How many times the server recorded a message stanza with `id`.
pub(super) fn stanzas_with_id(server: &Loopback, id: &str) -> usize {
    server
        .events()
        .iter()
        .filter(|e| matches!(e, ServerEvent::Message(m) if m.id == id))
        .count()
}
