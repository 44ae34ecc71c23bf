//! The whole life of a session through the real binary, as Django and an operator
//! would see it: start, QR, pairing, send, self-healing after Bad MACs, logout.

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

    for _ in 0..3 {
        let (code, body) = daemon
            .post(&format!("/sim/{org}/inject"), json!({ "fault": "bad_mac" }))
            .await;
        assert_eq!(code, 200, "{body}");
    }
    daemon.wait_status(org, "qr_ready").await;
    let backups = daemon.sessions_dir().join("_backups").join(org);
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
