//! What the outbox's routes refuse (CONTRACT §10, errors as §2): an org with nowhere
//! to send from is a `404` with its status, bad input a `400` naming the field, a
//! body over the limit a `413`; and none of them stores anything.

mod common;
mod outbox_support;

use chrono::{SecondsFormat, Utc};
use common::{API_KEY, Daemon};
use outbox_support::*;
use serde_json::{Value, json};

async fn stored(daemon: &Daemon, org: &str) -> usize {
    let (code, body) = daemon
        .get(&format!("/api/messages?organization_id={org}"))
        .await;
    assert_eq!(code, 200, "{body}");
    body["messages"].as_array().unwrap().len()
}

/// An org that was never started and holds no credentials has nowhere to send
/// from: `404` with `status`, so the caller can fall back to e-mail.
#[tokio::test]
async fn an_org_never_started_is_a_404_with_its_status() {
    let daemon = Daemon::start().await;
    let (code, body) = enqueue(&daemon, "nadie", "hola", json!({})).await;
    assert_eq!(code, 404, "{body}");
    assert_eq!(body["status"], "not_started", "{body}");
    assert!(
        body["error"].is_string() && body["hint"].is_string(),
        "{body}"
    );
    assert_eq!(stored(&daemon, "nadie").await, 0);
    let (code, status) = daemon.get("/api/status/nadie").await;
    assert_eq!((code, &status["status"]), (200, &json!("not_started")));
}

/// Every bad field is a `400` whose `error` names it, and nothing is stored.
#[tokio::test]
async fn bad_input_is_a_400_naming_the_field_and_stores_nothing() {
    let daemon = Daemon::start().await;
    let org = "optica-sol";
    showing_qr(&daemon, org).await;
    let ahead = |secs: i64| {
        (Utc::now() + chrono::Duration::seconds(secs)).to_rfc3339_opts(SecondsFormat::Secs, true)
    };
    let good = json!({ "organization_id": org, "phone": "3009998877", "message": "hola" });
    let with = |field: &str, value: Value| {
        let mut body = good.clone();
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = good.clone();
        body.as_object_mut().unwrap().remove(field);
        body
    };
    let mut both = with("expires_at", json!(ahead(3600)));
    both["ttl_seconds"] = json!(3600);
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "no organization_id",
            without("organization_id"),
            "organization_id",
        ),
        (
            "a bad organization_id",
            with("organization_id", json!("../x")),
            "organization_id",
        ),
        ("no phone", without("phone"), "phone"),
        ("a bad phone", with("phone", json!("abc")), "phone"),
        ("no message", without("message"), "message"),
        ("a blank message", with("message", json!("   ")), "message"),
        (
            "an empty key",
            with("idempotency_key", json!("")),
            "idempotency_key",
        ),
        (
            "a long key",
            with("idempotency_key", json!("k".repeat(129))),
            "idempotency_key",
        ),
        (
            "a key with a newline",
            with("idempotency_key", json!("a\nb")),
            "idempotency_key",
        ),
        (
            "a key that is not text",
            with("idempotency_key", json!(7)),
            "idempotency_key",
        ),
        (
            "expires_at not a time",
            with("expires_at", json!("mañana")),
            "expires_at",
        ),
        (
            "expires_at in the past",
            with("expires_at", json!(ahead(-60))),
            "expires_at",
        ),
        (
            "expires_at too far",
            with("expires_at", json!(ahead(40 * 86_400))),
            "expires_at",
        ),
        (
            "expires_at and ttl_seconds",
            both,
            "expires_at or ttl_seconds",
        ),
        (
            "ttl_seconds too short",
            with("ttl_seconds", json!(10)),
            "ttl_seconds",
        ),
        (
            "ttl_seconds negative",
            with("ttl_seconds", json!(-5)),
            "ttl_seconds",
        ),
        (
            "ttl_seconds not a number",
            with("ttl_seconds", json!("1h")),
            "ttl_seconds",
        ),
    ];
    for (what, body, field) in cases {
        let (code, answer) = daemon.post("/api/messages", body).await;
        assert_eq!(code, 400, "{what}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(field), "{what}: {error:?} names {field}");
    }

    for (what, query, field) in [
        ("limit 0", "limit=0", "limit"),
        ("limit over 1000", "limit=1001", "limit"),
        ("limit not a number", "limit=all", "limit"),
        ("an unknown status", "status=lost", "status"),
        (
            "a bad organization_id",
            "organization_id=a%2Fb",
            "organization_id",
        ),
    ] {
        let (code, answer) = daemon.get(&format!("/api/messages?{query}")).await;
        assert_eq!(code, 400, "{what}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(field), "{what}: {error:?} names {field}");
    }
    let (code, answer) = daemon.get("/api/messages?limit=1000&status=queued").await;
    assert_eq!(code, 200, "the bounds themselves are fine: {answer}");

    for id in ["a%20b", "..%2Fx", &"x".repeat(65)] {
        let (code, answer) = daemon.get(&format!("/api/messages/{id}")).await;
        assert_eq!(code, 400, "{id}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("message_id"),
            "{answer}"
        );
    }
    let (code, answer) = daemon.get("/api/messages/3EB0000000000000000000").await;
    assert_eq!(code, 404, "an unknown message: {answer}");

    assert_eq!(stored(&daemon, org).await, 0, "nothing was stored");
}

/// A body over the limit is a `413` in JSON, and stores nothing.
#[tokio::test]
async fn a_body_over_the_limit_is_a_413() {
    let daemon = Daemon::start().await;
    let org = "optica-sol";
    showing_qr(&daemon, org).await;
    let body =
        json!({ "organization_id": org, "phone": "3009998877", "message": "x".repeat(70_000) });
    let (code, _, answer) = daemon
        .raw(
            "POST",
            "/api/messages",
            Some(API_KEY),
            Some(serde_json::to_vec(&body).unwrap()),
        )
        .await;
    assert_eq!(code, 413, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert!(answer["error"].is_string(), "{answer}");
    assert_eq!(stored(&daemon, org).await, 0);
}
