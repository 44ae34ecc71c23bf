//! Live events across nodes (CONTRACT §12, §13): a listener on one node hears
//! the events of an org that another node drives, each once, as that node's own
//! listeners do.

mod cluster_support;
mod common;
mod sse_support;

use std::collections::HashSet;

use cluster_support::*;
use serde_json::Value;
use sse_support::{listen, read_until};

const ORG: &str = "optica-luz";
const PHONE: &str = "573001234567";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_on_one_node_hears_an_org_another_node_drives() {
    let db = database().await;
    let a = sim_node(&db, "a").await;
    let b = sim_node(&db, "b").await;
    let mut resp = listen(&b).await;
    let mut buf = String::new();

    // Both are empty: a new org goes to "a", whatever node is asked.
    let owner = pair(&b, ORG, PHONE).await;
    assert_eq!(owner, "a");
    let seen = read_until(&mut resp, &mut buf, "session.connected").await;
    let names: Vec<&str> = seen.iter().map(|f| f.event.as_str()).collect();
    let qr = seen
        .iter()
        .find(|f| f.event == "session.qr")
        .unwrap_or_else(|| panic!("no QR before the connection: {names:?}"));
    let body: Value = serde_json::from_str(&qr.data).unwrap();
    assert_eq!(body["organization_id"], ORG);
    assert_eq!(body["event_id"], qr.id.as_str());
    let png = body["data"]["qr"].as_str().unwrap_or_default();
    assert!(png.starts_with("data:image/png;base64,"), "drawn: {body}");
    let connected: Value = serde_json::from_str(&seen.last().unwrap().data).unwrap();
    assert_eq!(connected["data"]["phone_number"], PHONE);
    assert_eq!(connected["status"], "connected");
    let ids: HashSet<&str> = seen.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids.len(), seen.len(), "each event once: {names:?}");

    // The owner's own listeners see the same events (same ids) as before.
    let mut own = listen(&a).await;
    let (code, _) = a
        .post(
            "/api/force-clean-session",
            serde_json::json!({ "organization_id": ORG }),
        )
        .await;
    assert_eq!(code, 200);
    let (mut own_buf, mut b_buf) = (String::new(), buf);
    let on_a = read_until(&mut own, &mut own_buf, "session.cleaned").await;
    let on_b = read_until(&mut resp, &mut b_buf, "session.cleaned").await;
    assert_eq!(on_a.last().unwrap().id, on_b.last().unwrap().id);
    // And a's own listener never hears its own events back from the others:
    // after the next ones (a new pairing's QR), each id is still there once.
    let (code, _) = b
        .post(
            "/api/start-session",
            serde_json::json!({ "organization_id": ORG }),
        )
        .await;
    assert_eq!(code, 200);
    let mut on_a = on_a;
    on_a.extend(read_until(&mut own, &mut own_buf, "session.qr").await);
    let names: Vec<&str> = on_a.iter().map(|f| f.event.as_str()).collect();
    let ids: HashSet<&str> = on_a.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(
        ids.len(),
        on_a.len(),
        "each event once on its own node: {names:?}"
    );
}
