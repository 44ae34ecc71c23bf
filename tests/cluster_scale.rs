//! 1,000 organizations over three real daemons on one PostgreSQL database: each
//! node owns about a third, and a node stopped with SIGTERM hands its orgs to the
//! others within seconds (CONTRACT §13).

mod cluster_support;
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_support::*;
use serde_json::{Value, json};

const ORGS: usize = 1000;

async fn loads(d: &common::Daemon) -> Vec<(String, u64, bool)> {
    let (code, cluster) = d.get("/api/cluster").await;
    assert_eq!(code, 200, "{cluster}");
    cluster["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n: &Value| {
            (
                n["node_id"].as_str().unwrap().to_owned(),
                n["orgs"].as_u64().unwrap(),
                n["live"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_orgs_are_shared_out_and_handed_over_on_sigterm() {
    let db = database().await;
    let mut nodes = Vec::new();
    for id in ["a", "b", "c"] {
        nodes.push(Arc::new(sim_node(&db, id).await));
    }
    // Started through every node in turn, 16 at a time.
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..16 {
        let (nodes, next) = (nodes.clone(), next.clone());
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= ORGS {
                    return;
                }
                let via = &nodes[(i + w) % nodes.len()];
                let (code, body) = via
                    .post(
                        "/api/start-session",
                        json!({ "organization_id": format!("org-{i:04}") }),
                    )
                    .await;
                assert_eq!(code, 200, "org-{i:04}: {body}");
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.unwrap();
    }
    let loaded = loads(&nodes[0]).await;
    assert_eq!(
        loaded.iter().map(|(_, n, _)| n).sum::<u64>(),
        ORGS as u64,
        "{loaded:?}"
    );
    for (node, orgs, live) in &loaded {
        assert!(live, "{node}");
        assert!(
            (266..=400).contains(orgs),
            "{node} owns {orgs} of {ORGS}: not about a third ({loaded:?})"
        );
    }

    // SIGTERM to c: its orgs are the others' within seconds.
    let stopped = Instant::now();
    let mut c = Arc::into_inner(nodes.pop().unwrap()).expect("no other handle");
    let status = c.terminate();
    assert!(status.success(), "{status:?}\n{}", c.logs());
    let deadline = stopped + Duration::from_secs(10);
    loop {
        let now = loads(&nodes[0]).await;
        let live: Vec<_> = now.iter().filter(|(_, _, live)| *live).collect();
        let held: u64 = live.iter().map(|(_, n, _)| n).sum();
        if live.len() == 2 && held == ORGS as u64 {
            for (node, orgs, _) in live {
                assert!(
                    (400..=600).contains(orgs),
                    "{node} owns {orgs} after the handover: {now:?}"
                );
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not handed over within 10 s: {now:?}\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = stopped.elapsed();
    eprintln!("1,000 orgs: handover of a third took {took:?}");
    // Another node's view of the sessions follows the published snapshots, which
    // the new owners write once their actors have started: it converges after
    // the leases, within the same few seconds.
    loop {
        let (_, sessions) = nodes[1].get("/api/sessions").await;
        assert_eq!(sessions["total"], ORGS, "every org still has a session");
        let elsewhere: Vec<&Value> = sessions["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["node_id"] != "a" && s["node_id"] != "b")
            .collect();
        if elsewhere.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} sessions not shown on a live node within 10 s, e.g. {}",
            elsewhere.len(),
            elsewhere[0]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "1,000 orgs: every session shown on a live node after {:?}",
        stopped.elapsed()
    );
    assert_eq!(overlaps(&db).await, 0);
}
