//! The connection-attempt budget (CONTRACT §6) and the restart intensity /
//! quarantine (CONTRACT §5), proven end to end through the HTTP surface of the real
//! binary in simulation mode.

mod common;

use std::time::{Duration, Instant};

use common::{Daemon, WIPE_AT_ONCE};
use serde_json::{Value, json};

async fn start_all(daemon: &Daemon, orgs: &[String]) -> Vec<Value> {
    let mut set = tokio::task::JoinSet::new();
    for org in orgs {
        let (http, url, org) = (
            daemon.http.clone(),
            daemon.url("/api/start-session"),
            org.clone(),
        );
        set.spawn(async move {
            let r = http
                .post(url)
                .header("X-API-Key", common::API_KEY)
                .json(&json!({ "organization_id": org }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        });
    }
    set.join_all().await
}

/// Ten concurrent `start-session` calls of ten orgs against a global budget of
/// three: exactly three connect, seven are `blocked` with `retry_at`, and
/// `rate-limit-status` says so with the field names of CONTRACT §2.
#[tokio::test]
async fn concurrent_starts_draw_exactly_the_budget() {
    let daemon =
        Daemon::start_with("[connection_budget.global]\nlimit = 3\nseconds = 3600\n").await;
    let orgs: Vec<String> = (0..10).map(|i| format!("shop{i}")).collect();
    let answers = start_all(&daemon, &orgs).await;
    let blocked: Vec<&Value> = answers
        .iter()
        .filter(|a| a["status"] == "blocked")
        .collect();
    assert_eq!(blocked.len(), 7, "{answers:?}");
    for a in &blocked {
        assert!(a["retry_at"].is_string(), "{a}");
    }

    let (code, overall) = daemon.get("/api/rate-limit-status").await;
    assert_eq!(code, 200);
    assert_eq!(overall["global_attempts_last_hour"], 3);
    assert_eq!(overall["global_limit"], 3);
    assert_eq!(overall["global_blocked"], true);
    // The three that drew, and the seven held back by the global budget.
    let listed = overall["organizations"].as_array().unwrap();
    assert_eq!(listed.len(), 10, "{overall}");
    assert_eq!(
        listed.iter().filter(|o| o["can_connect"] == false).count(),
        10,
        "the global budget is spent for all: {overall}"
    );
    assert_eq!(
        listed
            .iter()
            .filter(|o| o["attempts_last_24h"] == 1)
            .count(),
        3
    );

    let org = blocked[0]["organization_id"].as_str().unwrap();
    let (_, one) = daemon
        .get(&format!("/api/rate-limit-status?organization_id={org}"))
        .await;
    assert_eq!(one["organization_id"], org);
    assert_eq!(one["can_connect"], false);
    assert_eq!(one["block_reason"], "global_limit");
    assert_eq!(one["attempts_last_24h"], 0);
    assert_eq!(one["daily_limit"], 10);
    assert!(one["wait_time_minutes"].as_u64().unwrap() >= 59, "{one}");
    assert!(one["block_until"].is_string(), "{one}");
    assert_eq!(one["global_blocked"], true);
    let status = daemon.wait_status(org, "blocked").await;
    assert!(status["retry_at"].is_string());

    // One org started ten times at once is one attempt.
    let daemon = Daemon::start().await;
    let answers = start_all(&daemon, &vec!["same".to_owned(); 10]).await;
    let started = answers
        .iter()
        .filter(|a| a["already_running"] == false)
        .count();
    assert_eq!(started, 1, "{answers:?}");
    let (_, one) = daemon
        .get("/api/rate-limit-status?organization_id=same")
        .await;
    assert_eq!(one["attempts_last_24h"], 1);
    assert_eq!(one["can_connect"], true);
    assert_eq!(one["block_reason"], Value::Null);
}

/// A spent per-org budget blocks the next start; the org retries by itself once
/// `retry_at` passes.
#[tokio::test]
async fn a_blocked_org_retries_by_itself() {
    // The window is short enough to wait out, and long enough that the requests
    // below all fall inside it on a loaded machine.
    let daemon = Daemon::start_with("[connection_budget.per_org]\nlimit = 1\nseconds = 10\n").await;
    daemon
        .post("/api/start-session", json!({ "organization_id": "a" }))
        .await;
    daemon.wait_status("a", "qr_ready").await;
    daemon
        .post(
            "/api/force-clean-session",
            json!({ "organization_id": "a" }),
        )
        .await;
    let (code, body) = daemon
        .post("/api/start-session", json!({ "organization_id": "a" }))
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "blocked", "{body}");
    let (_, one) = daemon.get("/api/rate-limit-status?organization_id=a").await;
    assert_eq!(one["can_connect"], false);
    assert_eq!(one["block_reason"], "daily_limit");
    assert_eq!(one["attempts_last_24h"], 1);
    assert_eq!(one["daily_limit"], 1);
    // Sends are refused with the status and a hint.
    let (code, body) = daemon
        .post(
            "/api/send-message",
            json!({ "organization_id": "a", "phone": "3001234567", "message": "hola" }),
        )
        .await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["status"], "blocked");
    assert!(body["hint"].as_str().unwrap().contains("retry_at"));
    daemon.wait_status("a", "qr_ready").await;
}

/// Restart intensity: with at most 2 automatic cleanups per hour, the third heal
/// quarantines the org instead of looping; its session stays in place, another org
/// keeps serving, and only an explicit start takes it out.
#[tokio::test]
async fn too_many_cleanups_quarantine_one_org_only() {
    let daemon = Daemon::start_with(&format!(
        "{WIPE_AT_ONCE}[windows.cleanups]\nlimit = 2\nseconds = 3600\n"
    ))
    .await;
    daemon.ensure_connected("q", "573001234567").await;
    daemon.ensure_connected("ok", "573007654321").await;
    let bad_macs = async |n: usize| {
        for _ in 0..n {
            let (code, body) = daemon
                .post("/sim/q/inject", json!({ "fault": "bad_mac" }))
                .await;
            assert_eq!(code, 200, "{body}");
        }
    };
    for round in 1..=2 {
        bad_macs(3).await;
        daemon.wait_status("q", "qr_ready").await;
        let backups = std::fs::read_dir(daemon.sessions_dir().join("_backups/q"))
            .unwrap()
            .count();
        assert_eq!(backups, round);
        daemon.ensure_connected("q", "573001234567").await;
    }
    bad_macs(3).await;
    let status = daemon.wait_status("q", "quarantined").await;
    assert!(
        status["reason"].as_str().unwrap().contains("cleanups"),
        "{status}"
    );
    // Left in place: no third backup, credentials still live.
    assert_eq!(
        std::fs::read_dir(daemon.sessions_dir().join("_backups/q"))
            .unwrap()
            .count(),
        2
    );
    assert!(
        daemon
            .sessions_dir()
            .join("q/sim-credentials.json")
            .is_file()
    );
    // It stays quarantined (no loop) while the other org serves.
    let deadline = Instant::now() + Duration::from_millis(300);
    while Instant::now() < deadline {
        let (_, s) = daemon.get("/api/status/q").await;
        assert_eq!(s["status"], "quarantined");
    }
    let (code, body) = daemon
        .post(
            "/api/send-message",
            json!({ "organization_id": "q", "phone": "3009998877", "message": "hola" }),
        )
        .await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["status"], "quarantined");
    assert!(body["hint"].is_string());
    let (code, body) = daemon
        .post(
            "/api/send-message",
            json!({ "organization_id": "ok", "phone": "3009998877", "message": "hola" }),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(daemon.get("/api/status/ok").await.1["status"], "connected");

    // An explicit start is the operator's word: it resumes the kept session.
    let (code, body) = daemon
        .post("/api/start-session", json!({ "organization_id": "q" }))
        .await;
    assert_eq!(code, 200, "{body}");
    let status = daemon.wait_status("q", "connected").await;
    assert_eq!(status["phone_number"], "573001234567");
}
