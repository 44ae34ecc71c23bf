//! Bad input, end to end over the real binary: every malformed, hostile or
//! unauthenticated request gets a clear JSON 4xx, creates nothing on disk, and the
//! next good request is served. Then a whole scenario with a known API key, after
//! which the key is in no log line and no response body, and every log line of a
//! request carries that request's id.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::{API_KEY, Daemon};
use serde_json::{Value, json};

/// Every path (files and directories) below `dir`.
fn tree(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(tree(&path));
        }
        out.insert(path);
    }
    out
}

struct Case {
    what: String,
    method: &'static str,
    path: String,
    key: Option<String>,
    body: Option<Vec<u8>>,
    want: u16,
}

fn case(what: &str, method: &'static str, path: &str, body: Option<Vec<u8>>, want: u16) -> Case {
    Case {
        what: what.to_owned(),
        method,
        path: path.to_owned(),
        key: Some(API_KEY.to_owned()),
        body,
        want,
    }
}

fn json_body(v: Value) -> Option<Vec<u8>> {
    Some(serde_json::to_vec(&v).unwrap())
}

#[tokio::test]
async fn hostile_requests_get_json_4xx_and_touch_nothing() {
    let daemon = Daemon::start().await;
    // One connected org, so sends with a bad phone reach the phone check.
    daemon.ensure_connected("1", "573001234567").await;
    let sessions = daemon.sessions_dir();
    let before = tree(&sessions);

    let mut cases = Vec::new();
    let long = "a".repeat(65);
    let bad_orgs: Vec<(&str, Value)> = vec![
        ("../x", json!("../x")),
        ("..", json!("..")),
        ("empty", json!("")),
        ("65 characters", json!(long)),
        ("non-ASCII", json!("tienda-ñ")),
        ("NUL", json!("a\u{0}b")),
        ("slash", json!("/")),
        ("a/b", json!("a/b")),
        ("float", json!(2.5)),
        ("bool", json!(true)),
        ("array", json!(["1"])),
        ("object", json!({"id": 1})),
    ];
    for (what, org) in &bad_orgs {
        for route in [
            "/api/start-session",
            "/api/logout",
            "/api/force-clean-session",
            "/api/clear-session",
        ] {
            cases.push(case(
                &format!("{route} org {what}"),
                "POST",
                route,
                json_body(json!({ "organization_id": org })),
                400,
            ));
        }
        cases.push(case(
            &format!("send org {what}"),
            "POST",
            "/api/send-message",
            json_body(
                json!({ "organization_id": org, "phone": "573001234567", "message": "hola" }),
            ),
            400,
        ));
    }
    for (what, path) in [
        ("../x", "..%2Fx"),
        ("65 characters", long.as_str()),
        ("non-ASCII", "tienda-%C3%B1"),
        ("NUL", "a%00b"),
        ("slash", "%2F"),
        ("space", "a%20b"),
    ] {
        for route in ["/api/status/", "/api/qr/"] {
            cases.push(case(
                &format!("{route} {what}"),
                "GET",
                &format!("{route}{path}"),
                None,
                400,
            ));
        }
        cases.push(case(
            &format!("sim inject {what}"),
            "POST",
            &format!("/sim/{path}/inject"),
            json_body(json!({ "fault": "bad_mac" })),
            400,
        ));
        cases.push(case(
            &format!("rate-limit-status {what}"),
            "GET",
            &format!("/api/rate-limit-status?organization_id={path}"),
            None,
            400,
        ));
    }
    // An empty path segment matches no route.
    cases.push(case(
        "status of empty org",
        "GET",
        "/api/status/",
        None,
        404,
    ));

    let send = |phone: Value, message: Value| {
        json_body(json!({ "organization_id": "1", "phone": phone, "message": message }))
    };
    for (what, phone) in [
        ("empty", json!("")),
        ("blank", json!("   ")),
        ("letters", json!("abcdefghij")),
        ("digits and letters", json!("57300abc4567")),
        ("too short", json!("12")),
        ("short but invalid", json!("300123")),
        ("too long", json!("5730012345678901234")),
        ("misplaced plus", json!("57+3001234567")),
        ("a JID", json!("573001234567@s.whatsapp.net")),
        ("float", json!(3.5)),
        ("array", json!(["573001234567"])),
        ("null", Value::Null),
    ] {
        cases.push(case(
            &format!("phone {what}"),
            "POST",
            "/api/send-message",
            send(phone, json!("hola")),
            400,
        ));
    }
    for (what, message) in [
        ("empty", json!("")),
        ("blank", json!(" \n\t ")),
        ("number", json!(5)),
        ("object", json!({"text": "hola"})),
        ("missing", Value::Null),
    ] {
        cases.push(case(
            &format!("message {what}"),
            "POST",
            "/api/send-message",
            send(json!("573001234567"), message),
            400,
        ));
    }
    cases.push(case(
        "message over the body limit",
        "POST",
        "/api/send-message",
        send(json!("573001234567"), json!("x".repeat(65 * 1024))),
        413,
    ));
    for (what, raw) in [
        ("no body", ""),
        ("truncated", "{\"organization_id\": \"1\""),
        ("not JSON", "organization_id=1"),
        ("trailing garbage", "{\"organization_id\": \"1\"} x"),
        ("array", "[{\"organization_id\": \"1\"}]"),
        ("string", "\"1\""),
        ("null", "null"),
        ("number", "1"),
        (
            "replacement character",
            "{\"organization_id\": \"\u{FFFD}\"}",
        ),
    ] {
        for route in ["/api/start-session", "/api/send-message", "/api/logout"] {
            cases.push(case(
                &format!("{route} body {what}"),
                "POST",
                route,
                Some(raw.as_bytes().to_vec()),
                400,
            ));
        }
    }
    cases.push(case(
        "raw invalid UTF-8 bytes",
        "POST",
        "/api/start-session",
        Some(vec![b'{', 0xff, 0xfe, b'}']),
        400,
    ));
    for (what, key) in [
        ("missing", None),
        ("empty", Some(String::new())),
        ("wrong", Some("not-the-key".to_owned())),
        ("key plus a byte", Some(format!("{API_KEY}x"))),
        ("key prefix", Some(API_KEY[..API_KEY.len() - 1].to_owned())),
        ("key with a space inside", Some(format!("{API_KEY} x"))),
    ] {
        for (method, path, body) in [
            (
                "POST",
                "/api/start-session",
                json_body(json!({ "organization_id": "2" })),
            ),
            ("GET", "/api/sessions", None),
            ("GET", "/api/status/1", None),
            (
                "POST",
                "/api/send-message",
                send(json!("573001234567"), json!("hola")),
            ),
            (
                "POST",
                "/sim/1/inject",
                json_body(json!({ "fault": "logged_out" })),
            ),
        ] {
            cases.push(Case {
                what: format!("key {what} on {path}"),
                method,
                path: path.to_owned(),
                key: key.clone(),
                body,
                want: 401,
            });
        }
    }
    for (method, path) in [
        ("GET", "/api/start-session"),
        ("GET", "/api/send-message"),
        ("DELETE", "/api/sessions"),
        ("PUT", "/api/logout"),
        ("POST", "/api/status/1"),
        ("POST", "/health"),
        ("PATCH", "/sim/1/inject"),
    ] {
        cases.push(case(&format!("{method} {path}"), method, path, None, 405));
    }

    assert!(cases.len() > 150, "{} cases", cases.len());
    for c in &cases {
        let (code, headers, body) = daemon
            .raw(c.method, &c.path, c.key.as_deref(), c.body.clone())
            .await;
        assert_eq!(code, c.want, "{}: {body}", c.what);
        let ct = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(ct.starts_with("application/json"), "{}: {ct}", c.what);
        let parsed: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {body}", c.what));
        let error = parsed["error"].as_str().unwrap_or_default();
        assert!(!error.is_empty(), "{}: {body}", c.what);
        if c.what.starts_with("phone") && code == 400 {
            assert!(
                error.contains("phone"),
                "{}: names the phone: {error}",
                c.what
            );
        }
        // The next good request is served.
        let (code, _) = daemon.get("/api/status/1").await;
        assert_eq!(code, 200, "after {}", c.what);
    }
    assert_eq!(
        tree(&sessions),
        before,
        "no request created or removed a file"
    );

    // Valid phones in the shapes people type are accepted.
    for phone in [
        "+57 300 999 8877",
        "300-999-8877",
        "+57-300-999-8877",
        "(300) 999 8877",
        "573009998877",
        "3009998877",
    ] {
        let (code, body) = daemon
            .post(
                "/api/send-message",
                json!({ "organization_id": 1, "phone": phone, "message": "Su cita es mañana" }),
            )
            .await;
        assert_eq!(code, 200, "{phone}: {body}");
        assert_eq!(body["phone"], "573009998877@s.whatsapp.net", "{phone}");
    }
    let (_, sent) = daemon.get("/sim/1/sent").await;
    assert_eq!(sent["messages"].as_array().unwrap().len(), 6);
    assert!(!daemon.logs().contains("panicked"), "{}", daemon.logs());
}

/// A whole scenario with a known key: the key is in no response and no log line,
/// and every log line written inside a request carries that request's id.
#[tokio::test]
async fn the_api_key_never_leaks_and_request_logs_carry_their_id() {
    let daemon = Daemon::start().await;
    let mut bodies: Vec<String> = Vec::new();
    let mut ids: BTreeSet<String> = BTreeSet::new();
    let key = Some(API_KEY);
    let steps: Vec<(&str, String, Option<&str>, Option<Value>)> = vec![
        ("GET", "/health".into(), None, None),
        (
            "POST",
            "/api/start-session".into(),
            key,
            Some(json!({ "organization_id": "5" })),
        ),
    ];
    let mut run = |code_ok: bool, r: (u16, reqwest::header::HeaderMap, String)| {
        let (code, headers, body) = r;
        if code_ok {
            assert!(code < 400, "{code} {body}");
        }
        ids.insert(
            headers["x-request-id"]
                .to_str()
                .expect("a request id")
                .to_owned(),
        );
        bodies.push(body);
    };
    for (method, path, key, body) in steps {
        let body = body.map(|b| serde_json::to_vec(&b).unwrap());
        run(true, daemon.raw(method, &path, key, body).await);
    }
    daemon.wait_status("5", "qr_ready").await;
    for (method, path, body) in [
        ("GET", "/api/qr/5", None),
        ("GET", "/api/qr/5?format=raw", None),
        (
            "POST",
            "/sim/5/scan",
            Some(json!({ "phone": "573001234567" })),
        ),
    ] {
        let body = body.map(|b| serde_json::to_vec(&b).unwrap());
        run(true, daemon.raw(method, path, Some(API_KEY), body).await);
    }
    daemon.wait_status("5", "connected").await;
    for (method, path, body) in [
        (
            "POST",
            "/api/send-message",
            Some(json!({ "organization_id": "5", "phone": "3009998877", "message": "hola" })),
        ),
        ("GET", "/api/status/5", None),
        ("GET", "/api/sessions", None),
        ("GET", "/api/rate-limit-status", None),
        ("GET", "/api/rate-limit-status?organization_id=5", None),
        ("GET", "/sim/5/sent", None),
        (
            "POST",
            "/sim/5/inject",
            Some(json!({ "fault": "network_down" })),
        ),
        (
            "POST",
            "/sim/5/inject",
            Some(json!({ "fault": "network_up" })),
        ),
        (
            "POST",
            "/api/force-clean-session",
            Some(json!({ "organization_id": "5" })),
        ),
    ] {
        let body = body.map(|b| serde_json::to_vec(&b).unwrap());
        run(true, daemon.raw(method, path, Some(API_KEY), body).await);
    }
    // Failures, including wrong keys that contain the real one.
    let near = format!("{API_KEY}-but-longer");
    for key in [None, Some("wrong"), Some(near.as_str())] {
        run(false, daemon.raw("GET", "/api/sessions", key, None).await);
    }
    run(
        false,
        daemon
            .raw("POST", "/api/start-session", key, Some(b"{nope".to_vec()))
            .await,
    );

    for body in &bodies {
        assert!(!body.contains(API_KEY), "a response echoes the key: {body}");
        assert!(
            !body.contains(&API_KEY[..12]),
            "a response echoes part of the key: {body}"
        );
    }
    let logs = daemon.logs();
    assert!(!logs.contains(API_KEY), "the key is logged");
    assert!(!logs.contains(&API_KEY[..12]), "part of the key is logged");
    assert!(!logs.contains(&near), "a presented key is logged");

    // Every log line written inside a request span carries its id, and handler
    // logs (e.g. "session start requested") are inside that span.
    let mut in_request = 0;
    let mut seen_ids = BTreeSet::new();
    for line in logs.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            panic!("a log line that is not JSON: {line}");
        };
        let message = v["fields"]["message"].as_str().unwrap_or_default();
        let target = v["target"].as_str().unwrap_or_default();
        if target.starts_with("wa_supervisor::http") {
            let id = v["span"]["request_id"].as_str().unwrap_or_default();
            assert!(
                !id.is_empty(),
                "an HTTP log line without a request id: {line}"
            );
            seen_ids.insert(id.to_owned());
            in_request += 1;
        }
        if message == "session start requested" || message == "message sent" {
            assert_eq!(v["span"]["name"], "request", "{line}");
        }
    }
    assert!(in_request >= 5, "{logs}");
    assert!(
        seen_ids.is_subset(&ids),
        "log ids {seen_ids:?} not among response ids {ids:?}"
    );
}
