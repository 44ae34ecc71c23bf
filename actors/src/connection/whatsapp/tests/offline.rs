//! A real connection with no network: nothing leaves the machine (a closed loopback
//! port, a silent loopback server, a pinned version), and the store on disk.

use std::time::{Duration, Instant};

use super::super::*;
use crate::OrgId;
use crate::connection::{
    Class, ConnectRequest, Connection as _, ConnectionError, Connector, StartMode, classify,
};

const ME: &str = "573001234567";

pub(super) fn offline_connector() -> WhatsAppConnector {
    WhatsAppConnector::new(WhatsAppOptions {
        // Pinned, so no version look-up over HTTP; a closed loopback port, so
        // nothing leaves the machine.
        version: Some((2, 3000, 1_027_000_000)),
        ws_url: Some("ws://127.0.0.1:1/ws/chat".into()),
        ..WhatsAppOptions::default()
    })
}

pub(super) fn request(dir: &std::path::Path, mode: StartMode) -> ConnectRequest {
    ConnectRequest {
        org: OrgId::parse("wa-test").unwrap(),
        dir: dir.to_path_buf(),
        mode,
    }
}

/// With no network a connection reports a transient failure, ends its stream, and
/// shuts down promptly with the store released; the store file is in the org's dir.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_network_reports_a_transient_failure_and_shuts_down() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wa-test");
    std::fs::create_dir(&dir).unwrap();
    let connector = offline_connector();
    assert!(!connector.has_credentials(&dir).unwrap(), "empty dir");

    let (conn, mut events) = connector
        .open(request(
            &dir,
            StartMode::Pair {
                phone_for_code: None,
            },
        ))
        .await
        .expect("opening needs no network");
    assert!(
        dir.join(STORE_FILE).is_file(),
        "whatsapp.db in the org's dir"
    );

    let first = tokio::time::timeout(Duration::from_secs(30), events.recv())
        .await
        .expect("an event within the connect timeout")
        .expect("an event before the stream ends");
    assert_eq!(classify(&first), Class::Transient, "got {first:?}");
    // One run, no auto-reconnect: the stream ends on its own.
    let end = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("the stream ends");
    assert_eq!(end, None);

    assert_eq!(
        conn.send_text(ME, "hola", "3EB0AA").await,
        Err(ConnectionError::NotConnected)
    );
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(15), conn.shutdown())
        .await
        .expect("shutdown returns");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        conn.store_released(),
        "nothing holds the store after shutdown"
    );
    // Shutting down twice is harmless.
    conn.shutdown().await;

    assert!(dir.join(STORE_FILE).is_file());
    assert!(
        !connector.has_credentials(&dir).unwrap(),
        "a store without a paired device"
    );
}

/// A loopback server that accepts connections and never answers: a connect to it
/// stays in flight until whatsapp-rust's 20 s connect timeout.
async fn silent_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws/chat", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (url, task)
}

/// Shutting down while the connect is still in flight returns promptly, releases
/// the store and sends nothing afterwards; the store then opens again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_connect_is_prompt_and_silent() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wa-test");
    std::fs::create_dir(&dir).unwrap();
    let (url, server) = silent_server().await;
    let connector = WhatsAppConnector::new(WhatsAppOptions {
        version: Some((2, 3000, 1_027_000_000)),
        ws_url: Some(url),
        ..WhatsAppOptions::default()
    });
    let (conn, mut events) = connector
        .open(request(&dir, StartMode::Resume))
        .await
        .unwrap();
    // Let the dial reach the silent server.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(events.try_recv().is_err(), "nothing happened yet");

    let started = Instant::now();
    conn.shutdown().await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .unwrap(),
        None,
        "no event after shutdown"
    );
    assert!(conn.store_released());

    // The next connect opens the same store again (a new Bot per connect).
    let (again, _events) = connector
        .open(request(&dir, StartMode::Resume))
        .await
        .expect("the store opens again after shutdown");
    again.shutdown().await;
    assert!(again.store_released());
    server.abort();
}

#[test]
fn has_credentials_follows_the_documented_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let connector = WhatsAppConnector::default();
    assert!(
        !connector.has_credentials(tmp.path()).unwrap(),
        "no whatsapp.db"
    );
    std::fs::write(tmp.path().join(STORE_FILE), b"").unwrap();
    assert!(
        !connector.has_credentials(tmp.path()).unwrap(),
        "an empty file has no device table"
    );
}

#[test]
fn has_credentials_needs_a_device_with_number_and_identity() {
    use diesel::connection::SimpleConnection;
    use diesel::{Connection as _, SqliteConnection};

    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(STORE_FILE);
    let mut db = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    // The two columns the rule reads, as whatsapp-rust's schema names them.
    db.batch_execute(
        "CREATE TABLE device (id INTEGER PRIMARY KEY, pn TEXT NOT NULL, account BLOB);",
    )
    .unwrap();
    let connector = WhatsAppConnector::default();
    assert!(
        !connector.has_credentials(tmp.path()).unwrap(),
        "no device row"
    );
    db.batch_execute("INSERT INTO device (id, pn, account) VALUES (1, '', NULL);")
        .unwrap();
    assert!(
        !connector.has_credentials(tmp.path()).unwrap(),
        "a device that never paired"
    );
    db.batch_execute(
        "UPDATE device SET pn = '573001234567@s.whatsapp.net', account = x'0a00' WHERE id = 1;",
    )
    .unwrap();
    assert!(
        connector.has_credentials(tmp.path()).unwrap(),
        "a paired device"
    );
}

/// Pairing by phone number asks for a code once the socket is up; with no network
/// that request must not keep the client (and so the store) alive after shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_by_number_with_no_network_releases_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wa-test");
    std::fs::create_dir(&dir).unwrap();
    let connector = offline_connector();
    let (conn, mut events) = connector
        .open(request(
            &dir,
            StartMode::Pair {
                phone_for_code: Some(ME.into()),
            },
        ))
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(30), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(classify(&first), Class::Transient, "got {first:?}");
    // The store is open (and in WAL mode): has_credentials still reads it.
    assert!(!connector.has_credentials(&dir).unwrap());
    let started = Instant::now();
    conn.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        conn.store_released(),
        "the pairing-code request let go of the client"
    );
}
