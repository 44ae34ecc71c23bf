//! The whole life of a session through the real binary, as Django and an operator
//! would see it: start, QR, pairing, send, self-healing after Bad MACs (CONTRACT
//! §11: one broken contact costs nothing, many senders restart first, then wipe),
//! logout.

mod common;

use common::{API_KEY, Daemon, decode_qr_data_url};
use serde_json::json;

#[tokio::test]
async fn a_session_from_start_to_logout() {
    let daemon = Daemon::start().await;
    let org = "42";

    let r = daemon.http.get(daemon.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let health: serde_json::Value = r.json().await.unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["sessions"], 0);
    assert!(chrono::DateTime::parse_from_rfc3339(health["timestamp"].as_str().unwrap()).is_ok());

    // Django sends the id as a number.
    let (code, body) = daemon
        .post("/api/start-session", json!({ "organization_id": 42 }))
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["organization_id"], "42");
    assert!(body["message"].is_string());

    daemon.wait_status(org, "qr_ready").await;
    let (code, qr) = daemon.get(&format!("/api/qr/{org}")).await;
    assert_eq!(code, 200, "{qr}");
    assert_eq!(qr["has_qr"], true);
    let (_, raw) = daemon.get(&format!("/api/qr/{org}?format=raw")).await;
    let payload = decode_qr_data_url(qr["qr"].as_str().unwrap());
    assert_eq!(payload, raw["qr_raw"].as_str().unwrap());
    assert_eq!(payload.split(',').count(), 4, "WhatsApp's QR shape");

    let (code, body) = daemon
        .post(
            &format!("/sim/{org}/scan"),
            json!({ "phone": "573001234567" }),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let status = daemon.wait_status(org, "connected").await;
    assert_eq!(status["connected"], true);
    assert_eq!(status["phone_number"], "573001234567");

    let (code, sent) = daemon
        .post(
            "/api/send-message",
            json!({ "organization_id": "42", "phone": "3009998877", "message": "Recordatorio: su cita es mañana a las 10:00" }),
        )
        .await;
    assert_eq!(code, 200, "{sent}");
    assert_eq!(sent["success"], true);
    assert_eq!(sent["phone"], "573009998877@s.whatsapp.net");
    let (_, log) = daemon.get(&format!("/sim/{org}/sent")).await;
    let messages = log["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["to"], "573009998877");
    assert_eq!(messages[0]["message_id"], sent["message_id"]);
    assert_eq!(
        messages[0]["text"],
        "Recordatorio: su cita es mañana a las 10:00"
    );

    let backups = daemon.sessions_dir().join("_backups").join(org);
    let bad_mac = async |org: &str, sender: &str| {
        let (code, body) = daemon
            .post(
                &format!("/sim/{org}/inject"),
                json!({ "fault": "bad_mac", "sender": sender }),
            )
            .await;
        assert_eq!(code, 200, "{body}\n{}", daemon.logs());
    };
    let healed = |step: &str| {
        daemon
            .logs()
            .lines()
            .filter(|l| l.contains("healing:") && l.contains(&format!("\"step\":\"{step}\"")))
            .count()
    };
    // Another shop, one of whose patients has a Signal session out of step: five
    // undecryptable messages from that one contact in a few seconds cost it nothing.
    let other = "43";
    daemon.ensure_connected(other, "573004445566").await;
    for _ in 0..5 {
        bad_mac(other, "573001112233").await;
    }
    // Each is logged as the actor takes it, in the same step as its healing
    // decision: once all five are in the log, no decision can be pending.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while daemon
        .logs()
        .matches("message could not be decrypted")
        .count()
        < 5
    {
        assert!(std::time::Instant::now() < deadline, "{}", daemon.logs());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(healed("restart") + healed("wipe"), 0, "{}", daemon.logs());
    assert_eq!(
        daemon.get(&format!("/api/status/{other}")).await.1["status"],
        "connected"
    );
    assert!(
        !daemon.sessions_dir().join("_backups").join(other).exists(),
        "no backup"
    );

    // Three contacts at once: a restart from the same credentials, no backup.
    for sender in ["573001110001", "573001110002", "573001110003"] {
        bad_mac(org, sender).await;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while healed("restart") == 0 {
        assert!(std::time::Instant::now() < deadline, "{}", daemon.logs());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let status = daemon.wait_status(org, "connected").await;
    assert_eq!(status["phone_number"], "573001234567");
    assert!(!backups.exists(), "a restart keeps the session");

    // Three more soon after: back up, wipe, a new QR.
    for sender in ["573001110004", "573001110005", "573001110006"] {
        bad_mac(org, sender).await;
    }
    daemon.wait_status(org, "qr_ready").await;
    let kept: Vec<_> = std::fs::read_dir(&backups).unwrap().flatten().collect();
    assert_eq!(kept.len(), 1);
    assert!(
        kept[0].path().join("sim-credentials.json").is_file(),
        "the backup holds the credentials"
    );

    let (code, body) = daemon
        .post("/api/logout", json!({ "organization_id": org }))
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["success"], true);
    assert!(
        !daemon.sessions_dir().join(org).exists(),
        "live directory gone"
    );
    let (_, status) = daemon.get(&format!("/api/status/{org}")).await;
    assert_eq!(status["status"], "not_started");

    assert!(!daemon.logs().contains(API_KEY), "the key is never logged");
}

#[tokio::test]
async fn sigterm_stops_cleanly_and_a_restart_resumes_without_a_qr() {
    let daemon = Daemon::start().await;
    daemon
        .post("/api/start-session", json!({ "organization_id": "7" }))
        .await;
    daemon.wait_status("7", "qr_ready").await;
    daemon
        .post("/sim/7/scan", json!({ "phone": "573005556677" }))
        .await;
    daemon.wait_status("7", "connected").await;

    let daemon = daemon.restart().await;
    assert!(
        daemon
            .sessions_dir()
            .join("7/sim-credentials.json")
            .is_file(),
        "a shutdown never logs out"
    );
    let status = daemon.wait_status("7", "connected").await;
    assert_eq!(status["phone_number"], "573005556677");
    assert_eq!(status["has_qr"], false);
}
