//! Three real daemons (simulation mode) on one PostgreSQL database (CONTRACT §13):
//! a node that dies costs its shops a reconnect, not a QR or a message, and a
//! node that was paused past its lease never drives an org beside the node that
//! took it over. The fake phone keeps its credentials, its log of sends and its
//! count of overlapping connections in the database, so both are checked across
//! processes.

mod cluster_support;
mod common;

use std::time::{Duration, Instant};

use cluster_support::*;
use common::Daemon;
use serde_json::{Value, json};

const ORG: &str = "optica-sol";
const PHONE: &str = "573001234567";

/// The daemons other than the one named `owner`.
fn others<'a>(nodes: &'a [(&str, Daemon)], owner: &str) -> Vec<&'a Daemon> {
    nodes
        .iter()
        .filter(|(id, _)| *id != owner)
        .map(|(_, d)| d)
        .collect()
}

async fn three_nodes(db: &wa_store_postgres::testing::TestDatabase) -> Vec<(&'static str, Daemon)> {
    let mut nodes = Vec::new();
    for id in ["a", "b", "c"] {
        nodes.push((id, sim_node(db, id).await));
    }
    nodes
}

fn index_of(nodes: &[(&str, Daemon)], id: &str) -> usize {
    nodes.iter().position(|(n, _)| *n == id).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_owner_costs_a_reconnect_not_a_qr_nor_a_message() {
    let db = database().await;
    let mut nodes = three_nodes(&db).await;
    // Paired through node c, whichever node owns it.
    let owner = pair(&nodes[2].1, ORG, PHONE).await;
    for (_, d) in &nodes {
        assert_eq!(super_owner(d).await, owner, "every node names the owner");
    }

    // A message that cannot be sent before the kill: the owner's network is down.
    let via = others(&nodes, &owner)[0];
    let (code, body) = via
        .post(
            &format!("/sim/{ORG}/inject"),
            json!({ "fault": "network_down" }),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    statuses_until(via, ORG, Duration::from_secs(10), |s| {
        s["status"] == "reconnecting"
    })
    .await;
    let (code, queued) = via
        .post(
            "/api/messages",
            json!({ "organization_id": ORG, "phone": "3009998877", "message": "Recordatorio de su cita" }),
        )
        .await;
    assert_eq!(code, 202, "{queued}");
    let id = queued["message_id"].as_str().unwrap().to_owned();
    let (_, m) = via.get(&format!("/api/messages/{id}")).await;
    assert_eq!(m["status"], "queued", "{m}");

    let killed_at = Instant::now();
    let at = index_of(&nodes, &owner);
    nodes[at].1.child.kill().unwrap();
    nodes[at].1.child.wait().unwrap();
    let (_, _dead) = nodes.remove(at);

    let survivor = &nodes[0].1;
    let seen = statuses_until(
        survivor,
        ORG,
        Duration::from_secs(LEASE_SECONDS + 10),
        |s| s["status"] == "connected" && s["node_id"] != owner.as_str(),
    )
    .await;
    let took = killed_at.elapsed();
    assert!(
        took < Duration::from_secs(LEASE_SECONDS + 5),
        "taken over after {took:?} (lease {LEASE_SECONDS} s)"
    );
    let last = seen.last().unwrap();
    assert_eq!(last["phone_number"], PHONE, "the same number: {last}");
    for s in &seen {
        assert!(
            s["status"] != "qr_ready" && s["has_qr"] == false,
            "no QR on the way: {s}"
        );
        assert!(
            s["status"] != "connecting" && s["status"] != "disconnected",
            "never a status the client wipes on: {s}"
        );
    }

    // The queued message is delivered once, with the id it was given.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, m) = survivor.get(&format!("/api/messages/{id}")).await;
        if m["status"] == "sent" {
            break;
        }
        assert!(Instant::now() < deadline, "never sent: {m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (_, d) in &nodes {
        let (code, sent) = d.get(&format!("/sim/{ORG}/sent")).await;
        assert_eq!(code, 200, "{sent}");
        let attempts: Vec<&serde_json::Value> = sent["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["message_id"] == id.as_str())
            .collect();
        assert_eq!(attempts.len(), 1, "sent exactly once: {sent}");
        assert_eq!(attempts[0]["to"], "573009998877");
    }
    assert_eq!(overlaps(&db).await, 0);
}

async fn super_owner(d: &Daemon) -> String {
    owner(d, ORG).await.expect("an owner")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_owner_never_drives_the_org_beside_its_successor() {
    let db = database().await;
    let nodes = three_nodes(&db).await;
    let owner = pair(&nodes[0].1, ORG, PHONE).await;
    let at = index_of(&nodes, &owner);
    let paused = &nodes[at].1;
    let watcher = others(&nodes, &owner)[0];

    signal(paused, "STOP");
    let seen = statuses_until(watcher, ORG, Duration::from_secs(LEASE_SECONDS + 10), |s| {
        s["status"] == "connected" && s["node_id"] != owner.as_str()
    })
    .await;
    let successor = seen.last().unwrap()["node_id"].as_str().unwrap().to_owned();
    let taken_over: i64 = scalar(&db, "SELECT (extract(epoch FROM now()) * 1000)::bigint").await;

    // While the old owner sleeps, a message is accepted: the successor sends it.
    let (code, queued) = watcher
        .post(
            "/api/messages",
            json!({ "organization_id": ORG, "phone": "3009998877", "message": "Su cita" }),
        )
        .await;
    assert_eq!(code, 202, "{queued}");
    let id = queued["message_id"].as_str().unwrap().to_owned();

    signal(paused, "CONT");
    // The old owner finds out at once and stops driving the org.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !(paused.logs().contains("stopping the session")
        || paused.logs().contains("stopping their sessions"))
    {
        assert!(
            Instant::now() < deadline,
            "the old owner never let go:\n{}",
            paused.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, m) = watcher.get(&format!("/api/messages/{id}")).await;
        if m["status"] == "sent" {
            break;
        }
        assert!(Instant::now() < deadline, "never sent: {m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every node comes to show the org as the successor's (the old owner once its
    // next tick reads the published snapshots), and a few renewals later it
    // still is, everywhere.
    let successors = |s: &Value| s["node_id"] == successor.as_str() && s["status"] == "connected";
    for (_, d) in &nodes {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (_, s) = d.get(&format!("/api/status/{ORG}")).await;
            if successors(&s) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "not shown as the successor's: {s}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(RENEW_SECONDS * 2)).await;
    for (_, d) in &nodes {
        let (_, s) = d.get(&format!("/api/status/{ORG}")).await;
        assert!(successors(&s), "{s}");
    }
    let by_node = |node: &str| {
        format!(
            "SELECT count(*) FROM wa_sim_sent WHERE node_id = '{node}' AND \
             at > to_timestamp({taken_over} / 1000.0)"
        )
    };
    assert_eq!(
        scalar(&db, &by_node(&owner)).await,
        0,
        "nothing sent by the old owner after the takeover"
    );
    assert_eq!(
        scalar(
            &db,
            &format!("SELECT count(*) FROM wa_sim_sent WHERE message_id = '{id}'")
        )
        .await,
        1,
        "sent exactly once"
    );
    assert_eq!(overlaps(&db).await, 0, "never two connections at once");
    assert_eq!(
        scalar(
            &db,
            &format!(
                "SELECT count(*) FROM wa_snapshots WHERE org = '{ORG}' AND node_id <> '{successor}'"
            )
        )
        .await,
        0,
        "the old owner's snapshot writes were refused"
    );
}

/// A 1×1 PNG.
fn png() -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(
        b"\x00\x00\x00\x0dIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde",
    );
    png.extend_from_slice(
        b"\x00\x00\x00\x0cIDATx\x9cc\xf8\xcf\xc0\x00\x00\x03\x01\x01\x00\xc9\xfe\x92\xef",
    );
    png.extend_from_slice(b"\x00\x00\x00\x00IEND\xaeB`\x82");
    png
}

/// A file accepted by a node that does not drive the org is sent by the owner,
/// even after the accepting node died with it queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_accepted_anywhere_is_sent_by_the_owner_after_the_acceptor_died() {
    use base64::Engine as _;
    let db = database().await;
    let mut nodes = three_nodes(&db).await;
    let owner = pair(&nodes[0].1, ORG, PHONE).await;
    let owning = index_of(&nodes, &owner);
    let (code, body) = nodes[owning]
        .1
        .post(
            &format!("/sim/{ORG}/inject"),
            json!({ "fault": "network_down" }),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let accepting = (owning + 1) % nodes.len();
    let (code, queued) = nodes[accepting]
        .1
        .post(
            "/api/send-media",
            json!({
                "organization_id": ORG,
                "phone": "3009998877",
                "media_base64": base64::engine::general_purpose::STANDARD.encode(png()),
                "caption": "Su fórmula",
            }),
        )
        .await;
    assert_eq!(code, 202, "{queued}");
    let id = queued["message_id"].as_str().unwrap().to_owned();
    let mut acceptor = nodes.remove(accepting).1;
    acceptor.child.kill().unwrap();
    acceptor.child.wait().unwrap();

    let owner_daemon = &nodes[index_of(&nodes, &owner)].1;
    let (code, body) = owner_daemon
        .post(
            &format!("/sim/{ORG}/inject"),
            json!({ "fault": "network_up" }),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, m) = owner_daemon.get(&format!("/api/messages/{id}")).await;
        if m["status"] == "sent" {
            break;
        }
        assert_ne!(m["status"], "failed", "{m}");
        assert!(Instant::now() < deadline, "never sent: {m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, sent) = owner_daemon.get(&format!("/sim/{ORG}/sent")).await;
    let attempts: Vec<&serde_json::Value> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["message_id"] == id.as_str())
        .collect();
    assert_eq!(attempts.len(), 1, "sent exactly once: {sent}");
    assert_eq!(attempts[0]["kind"], "image", "{sent}");
    assert_eq!(
        scalar(
            &db,
            &format!("SELECT count(*) FROM wa_media WHERE message_id = '{id}'")
        )
        .await,
        0,
        "the file is deleted once its message is sent"
    );
}
