use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::connection::ReceiptKind;

fn org(id: &str) -> OrgId {
    OrgId::parse(id).unwrap()
}

async fn open(
    sim: &SimConnector,
    dir: &Path,
    mode: StartMode,
) -> (Arc<dyn Connection>, EventStream) {
    sim.connect(ConnectRequest {
        org: org("1"),
        dir: dir.to_owned(),
        mode,
    })
    .await
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn qr_codes_rotate_then_run_out() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimConnector::new(SimTiming {
        first_qr: Duration::from_secs(60),
        next_qr: Duration::from_secs(20),
        qr_count: 3,
    });
    let (_conn, mut events) = open(
        &sim,
        dir.path(),
        StartMode::Pair {
            phone_for_code: None,
        },
    )
    .await;
    let mut codes = Vec::new();
    while let Some(event) = events.recv().await {
        match event {
            ConnectionEvent::QrCode { code, .. } => {
                assert_eq!(code.split(',').count(), 4, "{code}");
                codes.push(code);
            }
            ConnectionEvent::QrExhausted => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(codes.len(), 3);
    assert_ne!(codes[0], codes[1]);
    assert!(
        events.recv().await.is_none(),
        "the stream ends after exhaustion"
    );
}

#[tokio::test(start_paused = true)]
async fn scan_pairs_writes_credentials_and_asks_for_restart() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimConnector::default();
    let (_conn, mut events) = open(
        &sim,
        dir.path(),
        StartMode::Pair {
            phone_for_code: Some("573001234567".into()),
        },
    )
    .await;
    assert!(matches!(
        events.recv().await,
        Some(ConnectionEvent::QrCode { .. })
    ));
    assert!(
        matches!(events.recv().await, Some(ConnectionEvent::PairingCode { code }) if code.len() == 8)
    );
    sim.scan(&org("1"), "573001234567").unwrap();
    assert_eq!(
        events.recv().await,
        Some(ConnectionEvent::Paired {
            phone: "573001234567".into()
        })
    );
    assert_eq!(events.recv().await, Some(ConnectionEvent::RestartRequired));
    assert_eq!(events.recv().await, None);
    assert_eq!(sim.has_credentials(dir.path()), Ok(true));

    let (conn, mut events) = open(&sim, dir.path(), StartMode::Resume).await;
    assert_eq!(
        events.recv().await,
        Some(ConnectionEvent::Connected {
            phone: "573001234567".into()
        })
    );
    conn.send_text("573009999999", "hola", "3EB0AB")
        .await
        .unwrap();
    assert_eq!(
        events.recv().await,
        Some(ConnectionEvent::ServerAck {
            message_id: "3EB0AB".into(),
            error: None
        })
    );
    assert_eq!(
        sim.sent(&org("1")),
        vec![SentRecord {
            to: "573009999999".into(),
            text: "hola".into(),
            message_id: "3EB0AB".into(),
            kind: "text",
            mimetype: None,
            filename: None,
            bytes: None,
        }]
    );
    assert_eq!(sim.overlaps(), 0);

    // A file is recorded with its kind, type and name, and acked the same way.
    let media = crate::media::Media {
        kind: crate::media::MediaKind::Document,
        mimetype: "application/pdf".into(),
        filename: Some("receta.pdf".into()),
        caption: None,
        bytes: std::sync::Arc::new(b"%PDF-1.4".to_vec()),
    };
    conn.send_media("573009999999", &media, "3EB0AC")
        .await
        .unwrap();
    assert_eq!(
        events.recv().await,
        Some(ConnectionEvent::ServerAck {
            message_id: "3EB0AC".into(),
            error: None
        })
    );
    let json = serde_json::to_value(&sim.sent(&org("1"))[1]).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "to": "573009999999", "text": "", "message_id": "3EB0AC", "kind": "document",
            "mimetype": "application/pdf", "filename": "receta.pdf", "bytes": 8
        })
    );
}

#[tokio::test(start_paused = true)]
async fn a_second_open_connection_on_one_store_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimConnector::default();
    let (first, _e1) = open(
        &sim,
        dir.path(),
        StartMode::Pair {
            phone_for_code: None,
        },
    )
    .await;
    let (_second, _e2) = open(
        &sim,
        dir.path(),
        StartMode::Pair {
            phone_for_code: None,
        },
    )
    .await;
    assert_eq!(sim.overlaps(), 1);
    first.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn faults_need_a_connection_and_network_down_fails_connects() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimConnector::default();
    assert_eq!(
        sim.inject(&org("1"), Fault::BadMac { sender: None }),
        Err(SimError::NoConnection)
    );
    sim.inject(&org("1"), Fault::NetworkDown).unwrap();
    let (_c, mut events) = open(&sim, dir.path(), StartMode::Resume).await;
    assert!(matches!(
        events.recv().await,
        Some(ConnectionEvent::NetworkFailure { .. })
    ));
    assert_eq!(events.recv().await, None);
    sim.inject(&org("1"), Fault::NetworkUp).unwrap();
    let (_c, mut events) = open(&sim, dir.path(), StartMode::Resume).await;
    assert!(matches!(
        events.recv().await,
        Some(ConnectionEvent::QrCode { .. })
    ));
}

#[test]
fn every_contract_fault_name_parses() {
    for name in Fault::NAMES {
        assert!(Fault::parse(name, None, None).is_some(), "{name}");
    }
    assert_eq!(Fault::parse("melt", None, None), None);
    assert_eq!(
        Fault::parse("stream_error", Some(515), None),
        Some(Fault::StreamError { code: Some(515) })
    );
}

async fn paired(sim: &SimConnector, dir: &Path) -> (Arc<dyn Connection>, EventStream) {
    let (_c, mut events) = open(
        sim,
        dir,
        StartMode::Pair {
            phone_for_code: None,
        },
    )
    .await;
    assert!(matches!(
        events.recv().await,
        Some(ConnectionEvent::QrCode { .. })
    ));
    sim.scan(&org("1"), "573001234567").unwrap();
    let (conn, mut events) = open(sim, dir, StartMode::Resume).await;
    assert!(matches!(
        events.recv().await,
        Some(ConnectionEvent::Connected { .. })
    ));
    (conn, events)
}

#[tokio::test(start_paused = true)]
async fn a_qr_pairs_once_even_when_two_scans_race() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimConnector::default();
    let (_c, mut events) = open(
        &sim,
        dir.path(),
        StartMode::Pair {
            phone_for_code: None,
        },
    )
    .await;
    assert!(matches!(
        events.recv().await,
        Some(ConnectionEvent::QrCode { .. })
    ));
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| sim.scan(&org("1"), "573001111111"));
        let b = s.spawn(|| sim.scan(&org("1"), "573002222222"));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(
        [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count(),
        1,
        "{a:?} {b:?}"
    );
    assert!(a == Err(SimError::NoQrShown) || b == Err(SimError::NoQrShown));
}

#[tokio::test(start_paused = true)]
async fn a_zombie_takes_sends_without_acking_until_reconnected() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimConnector::default();
    let (conn, mut events) = paired(&sim, dir.path()).await;
    sim.inject(&org("1"), Fault::NoAck).unwrap();
    conn.send_text("573009999999", "hola", "3EB0A1")
        .await
        .unwrap();
    conn.shutdown().await;
    assert_eq!(events.recv().await, None, "no ack, and the stream ended");
    // The next connection acks again; every attempt is listed.
    let (conn, mut events) = open(&sim, dir.path(), StartMode::Resume).await;
    assert!(matches!(
        events.recv().await,
        Some(ConnectionEvent::Connected { .. })
    ));
    conn.send_text("573009999999", "hola", "3EB0A1")
        .await
        .unwrap();
    assert_eq!(
        events.recv().await,
        Some(ConnectionEvent::ServerAck {
            message_id: "3EB0A1".into(),
            error: None
        })
    );
    let ids: Vec<String> = sim
        .sent(&org("1"))
        .into_iter()
        .map(|r| r.message_id)
        .collect();
    assert_eq!(ids, ["3EB0A1", "3EB0A1"]);
}

#[tokio::test(start_paused = true)]
async fn receipts_senders_and_contacts() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimConnector::default();
    let (conn, mut events) = paired(&sim, dir.path()).await;
    sim.receipt(&org("1"), "3EB0A1", ReceiptKind::Read).unwrap();
    assert_eq!(
        events.recv().await,
        Some(ConnectionEvent::Receipt {
            message_ids: vec!["3EB0A1".into()],
            kind: ReceiptKind::Read
        })
    );
    let sender = |event: Option<ConnectionEvent>| match event {
        Some(ConnectionEvent::Undecryptable { sender, .. }) => sender,
        other => panic!("{other:?}"),
    };
    sim.inject(
        &org("1"),
        Fault::BadMac {
            sender: Some("573001112233".into()),
        },
    )
    .unwrap();
    assert_eq!(sender(events.recv().await), "573001112233@s.whatsapp.net");
    sim.inject(&org("1"), Fault::BadMac { sender: None })
        .unwrap();
    sim.inject(&org("1"), Fault::BadMac { sender: None })
        .unwrap();
    let (x, y) = (sender(events.recv().await), sender(events.recv().await));
    assert_ne!(x, y, "each unnamed Bad MAC comes from a new sender");

    assert_eq!(conn.is_on_whatsapp("573009999999").await, Ok(true));
    sim.set_on_whatsapp(&org("1"), "573009999999", false);
    assert_eq!(conn.is_on_whatsapp("573009999999").await, Ok(false));
}

#[tokio::test(start_paused = true)]
async fn unreadable_credentials_fail_the_connect_instead_of_pairing() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimConnector::default();
    // A directory where the credentials file should be: reading it fails.
    std::fs::create_dir(dir.path().join(CREDENTIALS_FILE)).unwrap();
    assert!(matches!(
        sim.has_credentials(dir.path()),
        Err(ConnectionError::StoreUnavailable(_))
    ));
    let failed = sim
        .connect(ConnectRequest {
            org: org("1"),
            dir: dir.path().to_owned(),
            mode: StartMode::Resume,
        })
        .await;
    assert!(matches!(failed, Err(ConnectionError::StoreUnavailable(_))));
    std::fs::remove_dir(dir.path().join(CREDENTIALS_FILE)).unwrap();
    std::fs::write(dir.path().join(CREDENTIALS_FILE), b"not json").unwrap();
    assert!(matches!(
        sim.has_credentials(dir.path()),
        Err(ConnectionError::StoreCorrupt(_))
    ));
}
