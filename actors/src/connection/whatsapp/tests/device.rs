//! How the device appears to WhatsApp, on the real connection against the loopback
//! server: never online unless `mark_online`, and named `device_name` on the phone.

use std::time::Duration;

use wa_loopback::{Loopback, ServerEvent};

use super::super::*;
use super::loopback::{
    CUSTOMER, PHONE, TEXT, new_id, options, org_dir, pair, pair_with, stanzas_with_id,
};
use crate::connection::Connection as _;

/// The presences the server got from `phone` after the `after`-th event.
fn presences_after(events: &[ServerEvent], phone: &str, after: usize) -> Vec<String> {
    events[after..]
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Presence { phone: p, kind, .. } if p == phone => Some(kind.clone()),
            _ => None,
        })
        .collect()
}

/// Where the server's log stands now, to look only at what follows.
fn mark(server: &Loopback) -> usize {
    server.events().len()
}

/// The library announces the device `available` at login and when a push name
/// arrives (here after `Connected`); the connection answers each time, so the
/// last presence the server has is `unavailable`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_never_stays_online() {
    let server = Loopback::start().await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = org_dir(&tmp, "optica-sol");
    let start = mark(&server);
    let (conn, _events) = pair(&server, &dir, PHONE).await;
    server
        .wait_for(
            "unavailable after the login",
            Duration::from_secs(20),
            |events| {
                let seen = presences_after(events, PHONE, start);
                (seen.iter().any(|p| p == "available")
                    && seen.last().map(String::as_str) == Some("unavailable"))
                .then_some(())
            },
        )
        .await
        .unwrap();

    let synced = mark(&server);
    server.push_name(PHONE, "Óptica Sol").unwrap();
    server
        .wait_for(
            "unavailable after the push name",
            Duration::from_secs(20),
            |events| {
                let seen = presences_after(events, PHONE, synced);
                (seen.iter().any(|p| p == "available")
                    && seen.last().map(String::as_str) == Some("unavailable"))
                .then_some(())
            },
        )
        .await
        .unwrap();
    conn.shutdown().await;
}

/// `mark_online`: presence is left to the library, as WhatsApp Web does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mark_online_leaves_the_device_available() {
    let server = Loopback::start().await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = org_dir(&tmp, "optica-sol");
    let online = WhatsAppConnector::new(WhatsAppOptions {
        mark_online: true,
        ..options(&server)
    });
    let start = mark(&server);
    let (conn, _events) = pair_with(&server, &online, &dir, PHONE).await;
    let synced = mark(&server);
    server.push_name(PHONE, "Óptica Sol").unwrap();
    server
        .wait_for(
            "available after the push name",
            Duration::from_secs(20),
            |events| {
                presences_after(events, PHONE, synced)
                    .contains(&"available".to_string())
                    .then_some(())
            },
        )
        .await
        .unwrap();
    // A message behind every presence this connection could have sent.
    let id = new_id();
    conn.send_text(CUSTOMER, TEXT, &id).await.unwrap();
    server
        .wait_for("the message", Duration::from_secs(20), |_| {
            (stanzas_with_id(&server, &id) == 1).then_some(())
        })
        .await
        .unwrap();
    let seen = presences_after(&server.events(), PHONE, start);
    assert!(
        seen.len() >= 2,
        "at login and after the push name: {seen:?}"
    );
    assert!(seen.iter().all(|p| p == "available"), "{seen:?}");
    conn.shutdown().await;
}

/// The name the phone lists under "Linked devices" is the one the device
/// registered with when it paired: `device_name`, `wa-supervisor` by default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pairing_carries_the_configured_device_name() {
    let server = Loopback::start().await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let paired_names = |server: &Loopback| -> Vec<Option<String>> {
        server
            .events()
            .into_iter()
            .filter_map(|e| match e {
                ServerEvent::Paired { device_name, .. } => Some(device_name),
                _ => None,
            })
            .collect()
    };

    let dir = org_dir(&tmp, "optica-sol");
    let (conn, _events) = pair(&server, &dir, PHONE).await;
    conn.shutdown().await;
    assert_eq!(
        paired_names(&server),
        vec![Some(DEFAULT_DEVICE_NAME.to_string())]
    );

    let named = WhatsAppConnector::new(WhatsAppOptions {
        device_name: "Óptica Luna – recepción".into(),
        ..options(&server)
    });
    let dir = org_dir(&tmp, "optica-luna");
    let (conn, _events) = pair_with(&server, &named, &dir, "573004445566").await;
    conn.shutdown().await;
    assert_eq!(
        paired_names(&server)[1],
        Some("Óptica Luna – recepción".to_string())
    );
}
