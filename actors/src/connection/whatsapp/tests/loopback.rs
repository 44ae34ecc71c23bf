//! The real connection against the loopback WhatsApp Web server.

use std::time::Duration;

use wa_loopback::{Loopback, ServerEvent};

use super::super::*;
use crate::OrgId;
use crate::connection::{ConnectRequest, Connection as _, ConnectionEvent, StartMode};

fn connector(server: &Loopback) -> WhatsAppConnector {
    WhatsAppConnector::new(WhatsAppOptions {
        version: Some((2, 3000, 1_027_000_000)),
        ws_url: Some(server.url()),
    })
}

async fn next_event(events: &mut crate::connection::EventStream) -> ConnectionEvent {
    tokio::time::timeout(Duration::from_secs(20), events.recv())
        .await
        .expect("an event in time")
        .expect("the stream goes on")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_device_shows_a_real_qr_and_pairs() {
    let _ = tracing_subscriber_init();
    let server = Loopback::start().await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("optica-sol");
    std::fs::create_dir(&dir).unwrap();
    let (conn, mut events) = connector(&server)
        .open(ConnectRequest {
            org: OrgId::parse("optica-sol").unwrap(),
            dir: dir.clone(),
            mode: StartMode::Pair {
                phone_for_code: None,
            },
        })
        .await
        .unwrap();
    let qr = match next_event(&mut events).await {
        ConnectionEvent::QrCode { code, .. } => code,
        other => panic!("expected a QR, got {other:?}"),
    };
    assert!(qr.starts_with("loopback-ref-"), "{qr}");
    server.scan(&qr, "573001112233").unwrap();
    let paired = server
        .wait_for("pairing", Duration::from_secs(20), |e| {
            e.iter().find_map(|e| match e {
                ServerEvent::Paired { phone, .. } => Some(phone.clone()),
                _ => None,
            })
        })
        .await
        .unwrap();
    assert_eq!(paired, "573001112233");
    loop {
        let e = next_event(&mut events).await;
        eprintln!("event: {e:?}");
        if matches!(e, ConnectionEvent::RestartRequired) {
            break;
        }
    }
    conn.shutdown().await;
    eprintln!("{:#?}", server.events());
}

fn tracing_subscriber_init() {}
