//! Load: 1,000 concurrent mixed requests over 100 connected orgs, from a bounded
//! client on loopback, against a daemon whose in-flight limit is below the
//! client's concurrency. The only 5xx allowed is deliberate load shedding (503
//! with `Retry-After`); nothing panics; every accepted send is recorded by the fake
//! phone exactly once, and no shed send is recorded at all.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::{API_KEY, Daemon};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

const ORGS: usize = 100;
const REQUESTS: usize = 1_000;
/// The client never has more than this many requests open.
const CLIENT_CONCURRENCY: usize = 96;
const CONFIG: &str = "[connection_budget.global]\nlimit = 1000\n";

#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, bool, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("X-API-Key", API_KEY);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = req.send().await.expect("loopback requests do not fail");
        let code = r.status().as_u16();
        let retry_after = r.headers().contains_key("retry-after");
        (code, retry_after, r.json().await.unwrap_or(Value::Null))
    }
}

fn org(i: usize) -> String {
    format!("load{i:03}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_mixed_requests_over_a_hundred_orgs() {
    // Fewer requests in flight than the client opens: some are shed on purpose.
    let daemon = Daemon::start_with_server("max_in_flight = 48", CONFIG).await;
    let api = Api {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(CLIENT_CONCURRENCY)
            .build()
            .unwrap(),
        base: daemon.url(""),
    };

    // 100 connected orgs (pairing is not under test: done at a modest pace).
    let gate = Arc::new(Semaphore::new(16));
    let mut setup = tokio::task::JoinSet::new();
    for i in 0..ORGS {
        let (api, gate) = (api.clone(), gate.clone());
        setup.spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            let org = org(i);
            let phone = format!("5730020000{i:02}");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            loop {
                let (_, _, s) = api.call("GET", &format!("/api/status/{org}"), None).await;
                match s["status"].as_str().unwrap_or_default() {
                    "connected" => return,
                    "qr_ready" => {
                        api.call(
                            "POST",
                            &format!("/sim/{org}/scan"),
                            Some(json!({ "phone": phone })),
                        )
                        .await;
                    }
                    "not_started" => {
                        api.call(
                            "POST",
                            "/api/start-session",
                            Some(json!({ "organization_id": org })),
                        )
                        .await;
                    }
                    _ => {}
                }
                assert!(std::time::Instant::now() < deadline, "{org} stuck: {s}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        });
    }
    while let Some(r) = setup.join_next().await {
        r.unwrap();
    }

    // The load: all 1,000 at once, at most CLIENT_CONCURRENCY open.
    let gate = Arc::new(Semaphore::new(CLIENT_CONCURRENCY));
    let mut load = tokio::task::JoinSet::new();
    for i in 0..REQUESTS {
        let (api, gate) = (api.clone(), gate.clone());
        load.spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            let org = org(i % ORGS);
            let (method, path, body) = match i % 10 {
                0..=5 => (
                    "POST",
                    "/api/send-message".to_owned(),
                    Some(json!({
                        "organization_id": org,
                        "phone": "+57 300 999 8877",
                        "message": format!("cita #{i}"),
                    })),
                ),
                6 => ("GET", format!("/api/status/{org}"), None),
                7 => ("GET", "/api/sessions".to_owned(), None),
                8 => (
                    "GET",
                    format!("/api/rate-limit-status?organization_id={org}"),
                    None,
                ),
                _ => (
                    "POST",
                    "/api/start-session".to_owned(),
                    Some(json!({ "organization_id": org })),
                ),
            };
            let (code, retry_after, body) = api.call(method, &path, body).await;
            (i, org, method, path, code, retry_after, body)
        });
    }
    let mut accepted: HashMap<String, Vec<(usize, String)>> = HashMap::new();
    let mut shed_sends: HashMap<String, Vec<usize>> = HashMap::new();
    let (mut ok, mut shed) = (0, 0);
    while let Some(r) = load.join_next().await {
        let (i, org, method, path, code, retry_after, body) = r.unwrap();
        match code {
            200 => {
                ok += 1;
                if path == "/api/send-message" {
                    assert_eq!(body["success"], true, "{body}");
                    let id = body["message_id"].as_str().unwrap().to_owned();
                    accepted.entry(org).or_default().push((i, id));
                }
            }
            503 => {
                shed += 1;
                assert!(retry_after, "a 503 without Retry-After: {body}");
                assert_eq!(body["error"], "too many requests in flight", "{body}");
                if path == "/api/send-message" {
                    shed_sends.entry(org).or_default().push(i);
                }
            }
            other => panic!("{method} {path} answered {other}: {body}"),
        }
    }
    assert_eq!(ok + shed, REQUESTS);
    assert!(
        ok >= REQUESTS / 2,
        "only {ok} of {REQUESTS} served ({shed} shed)"
    );

    // Every accepted send was sent exactly once; no shed one was sent.
    let mut recorded = 0;
    for i in 0..ORGS {
        let org = org(i);
        let (code, _, log) = api.call("GET", &format!("/sim/{org}/sent"), None).await;
        assert_eq!(code, 200);
        let sent: Vec<(String, String)> = log["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["message_id"].as_str().unwrap().to_owned(),
                    m["text"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        recorded += sent.len();
        let mine = accepted.remove(&org).unwrap_or_default();
        assert_eq!(
            sent.len(),
            mine.len(),
            "{org}: sent {sent:?} accepted {mine:?}"
        );
        for (n, id) in &mine {
            let hits: Vec<_> = sent.iter().filter(|(sid, _)| sid == id).collect();
            assert_eq!(hits.len(), 1, "{org}: {id} recorded {} times", hits.len());
            assert_eq!(hits[0].1, format!("cita #{n}"));
        }
        for n in shed_sends.remove(&org).unwrap_or_default() {
            let text = format!("cita #{n}");
            assert!(
                !sent.iter().any(|(_, t)| *t == text),
                "shed send {n} was sent"
            );
        }
    }
    assert!(recorded > 0);
    let logs = daemon.logs();
    assert!(!logs.contains("panicked"), "{logs}");
    eprintln!("load: {ok} served, {shed} shed, {recorded} sends recorded");
}
