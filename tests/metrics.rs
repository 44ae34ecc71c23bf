//! `GET /metrics` over the real binary: protected by the key, and counting what a
//! session went through.

mod common;

use common::{API_KEY, Daemon, WIPE_AT_ONCE};
use serde_json::json;

/// The value of the sample whose line starts with `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_need_the_key_and_count_a_session() {
    let daemon = Daemon::start_with(WIPE_AT_ONCE).await;
    let org = "5";
    daemon
        .post("/api/start-session", json!({ "organization_id": org }))
        .await;
    daemon.wait_status(org, "qr_ready").await;
    daemon
        .post(
            &format!("/sim/{org}/scan"),
            json!({ "phone": "573001234567" }),
        )
        .await;
    daemon.wait_status(org, "connected").await;
    let (code, _) = daemon
        .post(
            "/api/send-message",
            json!({ "organization_id": org, "phone": "3001112233", "message": "hola" }),
        )
        .await;
    assert_eq!(code, 200);
    for _ in 0..3 {
        daemon
            .post(&format!("/sim/{org}/inject"), json!({ "fault": "bad_mac" }))
            .await;
    }
    daemon.wait_status(org, "qr_ready").await;

    let url = daemon.url("/metrics");
    let anonymous = daemon.http.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let wrong = daemon
        .http
        .get(&url)
        .bearer_auth("not-the-key")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    let by_bearer = daemon
        .http
        .get(&url)
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(by_bearer.status(), 200);
    let by_header = daemon
        .http
        .get(&url)
        .header("X-API-Key", API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(by_header.status(), 200);
    let text = by_header.text().await.unwrap();

    assert_eq!(
        sample(&text, r#"wa_sessions{status="qr_ready"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"wa_sessions{status="connected"}"#),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, r#"wa_decrypt_errors_total{org_id="5"}"#),
        Some(3.0)
    );
    assert_eq!(
        sample(&text, r#"wa_cleanups_total{org_id="5",reason="bad_mac"}"#),
        Some(1.0)
    );
    assert_eq!(sample(&text, r#"wa_backups_total{org_id="5"}"#), Some(1.0));
    assert_eq!(
        sample(&text, r#"wa_messages_sent_total{org_id="5"}"#),
        Some(1.0)
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("wa_http_request_duration_seconds_count")
                && l.contains(r#"route="/api/send-message""#)
                && l.contains(r#"status="200""#)),
        "{text}"
    );
    assert!(!text.contains(API_KEY));
}
