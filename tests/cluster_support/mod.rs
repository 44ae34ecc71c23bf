//! Several real daemons on one throwaway PostgreSQL database (CONTRACT §13), for
//! the `tests/cluster_*.rs` end-to-end tests: one private PostgreSQL cluster per
//! test binary (or `WA_TEST_DATABASE_URL`), one fresh database per test.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wa_store_postgres::testing::{self, TestDatabase};

use crate::common::{Daemon, Launch};

/// Short leases, so that a takeover takes seconds: the rules are the same at any
/// length (renewals at most half the lease, and room in it for a renewal and a
/// session's stop of 4 × the stop grace + 1 s).
pub const LEASE_SECONDS: u64 = 8;
pub const RENEW_SECONDS: u64 = 2;
pub const STOP_GRACE_MS: u64 = 250;

/// A fresh database for one test's nodes.
pub async fn database() -> TestDatabase {
    testing::database().await
}

/// The configuration of node `id` on `db`.
pub fn node_toml(db: &TestDatabase, id: &str, extra: &str) -> String {
    format!(
        "[store]\nkind = \"postgres\"\nurl = \"{}\"\npool_size = 8\n\
         [cluster]\nnode_id = \"{id}\"\nlease_seconds = {LEASE_SECONDS}\n\
         renew_seconds = {RENEW_SECONDS}\ntakeover_gap_ms = 0\nstop_grace_ms = {STOP_GRACE_MS}\n\
         [sessions]\nresume_gap_ms = 0\n{extra}",
        db.url()
    )
}

/// Starts node `id` in simulation mode on `db`.
pub async fn sim_node(db: &TestDatabase, id: &str) -> Daemon {
    sim_node_with(db, id, "").await
}

/// Like [`sim_node`], with more configuration.
pub async fn sim_node_with(db: &TestDatabase, id: &str, extra: &str) -> Daemon {
    Daemon::start_with(&node_toml(db, id, extra)).await
}

/// Starts node `id` with the real WhatsApp connection to `ws_url` on `db`.
pub async fn real_node(db: &TestDatabase, id: &str, ws_url: &str) -> Daemon {
    Daemon::start_as(Launch {
        real: true,
        extra_toml: format!(
            "[connection]\nkind = \"whatsapp\"\n[whatsapp]\nversion = \"2.3000.1027000000\"\n\
             ws_url = \"{ws_url}\"\n{}",
            node_toml(db, id, "")
        ),
        ..Launch::default()
    })
    .await
}

/// The node a daemon's status of `org` names as its owner.
pub async fn owner(daemon: &Daemon, org: &str) -> Option<String> {
    let (_, status) = daemon.get(&format!("/api/status/{org}")).await;
    status["node_id"].as_str().map(str::to_owned)
}

/// Polls `daemon`'s `/api/status/{org}` until `done` holds (at most `within`);
/// returns every status body seen on the way, the last one satisfying `done`.
pub async fn statuses_until(
    daemon: &Daemon,
    org: &str,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        let (code, status) = daemon.get(&format!("/api/status/{org}")).await;
        assert_eq!(code, 200, "{status}");
        let finished = done(&status);
        seen.push(status);
        if finished {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "{org} never got there within {within:?}; last {}\n{}",
            seen.last().unwrap(),
            daemon.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Pairs `org` through `via` (any node; the scan reaches the owner's fake phone)
/// and returns its owner once `connected`.
pub async fn pair(via: &Daemon, org: &str, phone: &str) -> String {
    let (code, body) = via
        .post("/api/start-session", json!({ "organization_id": org }))
        .await;
    assert_eq!(code, 200, "{body}");
    statuses_until(via, org, Duration::from_secs(20), |s| {
        s["status"] == "qr_ready"
    })
    .await;
    let (code, body) = via
        .post(&format!("/sim/{org}/scan"), json!({ "phone": phone }))
        .await;
    assert_eq!(code, 200, "{body}");
    let seen = statuses_until(via, org, Duration::from_secs(20), |s| {
        s["status"] == "connected"
    })
    .await;
    let last = seen.last().unwrap();
    assert_eq!(last["phone_number"], phone, "{last}");
    last["node_id"].as_str().expect("a node id").to_owned()
}

/// One number from the shared database.
pub async fn scalar(db: &TestDatabase, sql: &str) -> i64 {
    db.pool()
        .get()
        .await
        .unwrap()
        .query_one(sql, &[])
        .await
        .unwrap()
        .get(0)
}

/// Overlapping connections the fake phones counted, over every node.
pub async fn overlaps(db: &TestDatabase) -> i64 {
    scalar(
        db,
        "SELECT coalesce(sum(count), 0)::bigint FROM wa_sim_overlaps",
    )
    .await
}

/// Sends `signal` (`STOP`, `CONT`, `TERM`, `KILL`) to a daemon's process.
pub fn signal(daemon: &Daemon, signal: &str) {
    let pid = daemon.child.id().to_string();
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}
