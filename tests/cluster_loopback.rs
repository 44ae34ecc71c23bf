//! Two real daemons with the real whatsapp-rust connection and their stores in
//! one PostgreSQL database, against the loopback WhatsApp Web server: a device
//! paired on one node is resumed by the other (Noise IK, no QR) after the first
//! is killed, and the server never sees two live connections of that device.

mod cluster_support;
mod common;
mod loopback_support;

use std::collections::HashMap;
use std::time::Duration;

use cluster_support::*;
use wa_loopback::{Loopback, Pattern, ServerEvent};

const ORG: &str = "optica-sol";

/// The most connections of `phone`'s device the server had open at once.
fn most_at_once(events: &[ServerEvent], phone: &str) -> usize {
    let mut open: HashMap<u64, bool> = HashMap::new();
    let mut most = 0;
    for e in events {
        match e {
            ServerEvent::Handshake { conn, phone: p, .. } => {
                open.insert(*conn, p.as_deref() == Some(phone));
            }
            ServerEvent::LoggedIn { phone: p, .. } if p == phone => {}
            ServerEvent::Closed { conn, .. } => {
                open.remove(conn);
            }
            _ => {}
        }
        most = most.max(open.values().filter(|mine| **mine).count());
    }
    most
}

/// Waits until the database holds a device with the server's certificate chain.
async fn cert_chain_stored(db: &wa_store_postgres::testing::TestDatabase) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let client = db.pool().get().await.unwrap();
        let row = client
            .query_one(
                "SELECT count(*) FROM wa_device WHERE server_cert_chain IS NOT NULL",
                &[],
            )
            .await
            .unwrap();
        if row.get::<_, i64>(0) > 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the paired device's certificate chain was never stored"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_paired_on_one_node_resumes_on_another_by_ik() {
    let server = Loopback::start().await.unwrap();
    let db = database().await;
    let a = real_node(&db, "a", &server.url()).await;
    let b = real_node(&db, "b", &server.url()).await;
    // Both are empty: a new org goes to "a" (the least loaded, then by id).
    loopback_support::pair(&a, &server, ORG, loopback_support::PHONE).await;
    assert_eq!(owner(&a, ORG).await.as_deref(), Some("a"));
    assert_eq!(owner(&b, ORG).await.as_deref(), Some("a"));
    let logins_before = loopback_support::logins(&server, loopback_support::PHONE).len();
    // The library stores the server's certificate (what IK needs) from a saver
    // task of its own, just after the handshake; a node killed before that write
    // leaves a device that resumes by XX (still without a QR). This test is about
    // a device whose state is stored, so it kills "a" only once it is.
    cert_chain_stored(&db).await;

    let mut a = a;
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let seen = statuses_until(&b, ORG, Duration::from_secs(LEASE_SECONDS + 20), |s| {
        s["status"] == "connected" && s["node_id"] == "b"
    })
    .await;
    assert!(seen.iter().all(|s| s["has_qr"] == false), "no QR: {seen:?}");
    let logins = loopback_support::logins(&server, loopback_support::PHONE);
    assert!(logins.len() > logins_before, "logged in again");
    assert_eq!(
        logins.last(),
        Some(&Pattern::Ik),
        "resumed with IK: {logins:?}"
    );
    assert_eq!(
        most_at_once(&server.events(), loopback_support::PHONE),
        1,
        "never two live connections of the device"
    );
    // And it works: a message through b reaches the server.
    let id = loopback_support::send(&b, ORG, "3009998877").await;
    loopback_support::recorded(&server, &id).await;
    assert_eq!(most_at_once(&server.events(), loopback_support::PHONE), 1);
}
